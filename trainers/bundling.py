"""Turn a finished training run into a model bundle: calibrate on dev, set thresholds, export.

The raw output of every family is spoof-direction (higher = more likely synthetic). A logistic
fit on the dev set maps it to ``score`` = P(synthetic); the thresholds are that score at the dev
EER and at a 1 % false-alarm rate (at most 1 % of bona fide dev utterances flagged). A siamese
run's best pair thresholds (Euclidean and cosine, ``dfd.trainers.siamese_sweep``) join the card's
dev metrics as ``pair_threshold_sweep``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch

from dfd.detectors.bundle import Metrics, ModelWindow, Training, new_card
from dfd.detectors.bundle import write_bundle as write_bundle_folder
from dfd.detectors.export import export_onnx
from dfd.trainers.calibration import card_calibration
from dfd.trainers.config import TrainConfig
from dfd.trainers.metrics import evaluate
from dfd.trainers.siamese_sweep import best_figures
from dfd.trainers.train import TrainingRun

log = structlog.get_logger("dfd.train")


def bundle_run(
    run: TrainingRun,
    config: TrainConfig,
    out: Path,
    data_manifest: Path | None = None,
    version: str = "1",
    overwrite: bool = False,
) -> Path:
    is_spoof = run.dev.is_spoof
    fitted = card_calibration(run.dev_raw, is_spoof)
    if not fitted.calibration.calibrated:
        # the model ranks dev backwards: keep it uncalibrated rather than flip it silently
        log.warning(
            "calibration slope not positive; bundle left uncalibrated", slope=fitted.fitted_slope
        )
    calibration, thresholds, log_odds = fitted.calibration, fitted.thresholds, fitted.spoof_log_odds
    labels = np.where(is_spoof, "spoof", "bonafide")
    attacks = np.array([trial.attack for trial in run.dev.trials])
    dev_metrics = evaluate(-log_odds, labels, {"attack": attacks})
    if run.pair_sweep is not None:  # siamese: the best pair thresholds (siamese_sweep.json)
        dev_metrics["pair_threshold_sweep"] = best_figures(run.pair_sweep)

    card = new_card(
        run.family,
        version=version,
        window=ModelWindow.of(round(config.window_s * 16_000), config.hop_s),
        config=run.model_config,
        calibration=calibration,
        thresholds=thresholds,
        training=Training(
            data_manifest_sha256=_sha256(data_manifest) if data_manifest else None,
            config=_provenance(config),
        ),
        metrics=Metrics(dev=dev_metrics),
    )
    frontend = run.family.build_frontend(run.model_config).eval()
    example = frontend(torch.zeros(2, round(config.window_s * 16_000))).detach()
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / ".model.onnx.export"
    export_onnx(
        run.model,
        example,
        onnx_path,
        output_name=run.family.output_name,
        metadata=run.family.metadata(run.model_config),
    )
    try:
        write_bundle_folder(out, onnx_path.read_bytes(), card, overwrite=overwrite)
    finally:
        onnx_path.unlink(missing_ok=True)
    log.info("bundle written", out=str(out), dev_eer=dev_metrics["eer"], thresholds=thresholds)
    return out


def _provenance(config: TrainConfig) -> dict[str, Any]:
    """The resolved training config, with the sha256 of the initial weights when there were any."""
    resolved = config.to_dict()
    if config.init_weights is not None:
        resolved["init_weights_sha256"] = _sha256(Path(config.init_weights))
    return resolved


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
