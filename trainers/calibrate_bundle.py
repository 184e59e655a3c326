"""``dfd models calibrate``: fit a bundle's calibration, thresholds and operating point anew.

With a protocol of utterances (``--data``), every utterance is scored through the bundle's own
windows as ``dfd eval`` scores it (the mean raw output over its windows), a logistic calibration
is fitted to the labels (``fit_logistic``), and the window thresholds are set at that protocol's
EER and at 1 % false alarms, as training sets them on dev. With a calls protocol (``--calls``),
every call is audited as ``dfd replay`` audits it (the daemon's pipeline: its windows, speech
gate and calibrated scores) and the evidence rule's operating point is chosen on it
(``dfd.trainers.operating_point``). The card is rewritten with the new figures, its files hashed
again and, given a secret key, signed; an unsigned bundle's old signature is removed, since it
signed the card being replaced.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from dfd.daemon.engine.models import ModelSet
from dfd.daemon.settings import Settings
from dfd.detectors.bundle import (
    Bundle,
    BundleError,
    Calibration,
    Metrics,
    ModelCard,
    OperatingPoint,
    Thresholds,
    load_bundle,
    write_bundle,
)
from dfd.trainers.calibration import card_calibration
from dfd.trainers.datasets import read_dataset
from dfd.trainers.datasets.calls import CallTrial, read_calls_protocol
from dfd.trainers.evaluate import window_values
from dfd.trainers.metrics import evaluate
from dfd.trainers.operating_point import ScoredWindow, channel_windows, operating_point

log = structlog.get_logger("dfd.calibrate")


def calibrate_on_protocol(
    bundle: Bundle, protocol: Path, device: str = "auto"
) -> tuple[Calibration, Thresholds, dict[str, Any]]:
    """The calibration and window thresholds fitted on ``protocol``, and its metrics."""
    trials = read_dataset(protocol)
    scored = window_values(bundle, trials, lambda session, feats: session.raw(feats), device)
    raw = scored.means(len(trials))  # per utterance, as dfd eval scores it
    is_spoof = np.array([trial.label == "spoof" for trial in trials])
    fitted = card_calibration(raw, is_spoof)
    if not fitted.calibration.calibrated:
        raise BundleError(
            f"{bundle.path}: on {protocol} the model ranks bona fide above spoof (calibration "
            f"slope {fitted.fitted_slope:.3g}); it cannot be calibrated on this protocol"
        )
    log_odds = fitted.spoof_log_odds
    labels = np.where(is_spoof, "spoof", "bonafide")
    attacks = np.array([trial.attack for trial in trials])
    metrics = evaluate(-log_odds, labels, {"attack": attacks})
    metrics["calibrated_on"] = protocol.name
    return fitted.calibration, fitted.thresholds, metrics


def audit_calls(
    bundle_dir: Path,
    calls: list[CallTrial],
    settings: Settings,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, list[ScoredWindow]]:
    """Each call's first-channel windows as ``dfd replay`` scores them, keyed by call id."""
    from dfd.daemon.audit.replay import audit_pipeline, replay_file
    from dfd.daemon.engine.scoring import InProcessScorer

    models = ModelSet.load([bundle_dir])
    scorer = InProcessScorer(models.paths, device=device)
    pipeline, recorder = audit_pipeline(settings, models, scorer, device)
    windows = {}
    try:
        for number, call in enumerate(calls, start=1):
            report = replay_file(pipeline, recorder, call.path)
            windows[call.call_id] = channel_windows(report.to_json())
            if progress is not None:
                progress(number, len(calls))
    finally:
        scorer.close()
    return windows


def calibrate_bundle(
    bundle_dir: Path,
    *,
    settings: Settings,
    data: Path | None = None,
    calls: Path | None = None,
    target_false_alarm_rate: float = 0.01,
    device: str = "auto",
) -> ModelCard:
    """Recalibrate the bundle in ``bundle_dir`` in place (work on a copy to keep the original);
    return its new card."""
    if data is None and calls is None:
        raise ValueError("give a protocol to calibrate on (data), a calls protocol, or both")
    bundle = load_bundle(bundle_dir)
    card = bundle.card
    if data is not None:
        calibration, thresholds, dev_metrics = calibrate_on_protocol(bundle, data, device)
        card = dataclasses.replace(
            card,
            calibration=calibration,
            thresholds=thresholds,
            metrics=Metrics(dev=dev_metrics, eval=card.metrics.eval),
            operating_point=None,  # chosen on scores calibrated differently
        )
        _rewrite(bundle, card)
        log.info("calibrated", protocol=str(data), dev_eer=dev_metrics["eer"])
    if calls is not None:
        trials = read_calls_protocol(calls)
        windows = audit_calls(bundle_dir, trials, settings, device)
        point: OperatingPoint = operating_point(
            trials,
            windows,
            settings.decision,
            card.window.window_s,
            target_false_alarm_rate,
            calls.name,
        )
        card = dataclasses.replace(card, operating_point=point)
        _rewrite(bundle, card)
        log.info("operating point chosen", **dataclasses.asdict(point))
    return load_bundle(bundle_dir).card


def _rewrite(bundle: Bundle, card: ModelCard) -> None:
    write_bundle(bundle.path, bundle.model_path.read_bytes(), card, overwrite=True)
