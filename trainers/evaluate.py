"""``dfd eval``: score a protocol with a bundle and report the ASVspoof metrics.

Every utterance is cut into the bundle's own windows (the daemon's windows: its window and hop,
the tail zero-padded, an utterance shorter than one window repeated to fill it), each window is
scored through the bundle's front end and ONNX graph, and the utterance's score is the mean over
its windows. ``scores.txt`` follows the ASVspoof 2019 CM score-file convention, higher = more bona
fide, so the official scoring scripts read it unchanged: the calibrated log-odds of bona fide, or
for an uncalibrated class-logit bundle (an imported official AASIST) the bona fide logit, which is
the official score.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from dfd.detectors.bundle import Bundle, load_bundle
from dfd.detectors.runtime import DetectorSession
from dfd.dsp.audio_io import load_audio
from dfd.dsp.batcher import FrontendBank
from dfd.dsp.extract import frame_channel, repeat_to_window
from dfd.dsp.framer import WindowGeometry
from dfd.trainers.datasets import Trial, read_dataset
from dfd.trainers.metrics import binary_report, evaluate
from dfd.trainers.plots import write_plots

log = structlog.get_logger("dfd.eval")


def utterance_means(
    bundle: Bundle,
    trials: Sequence[Trial],
    per_window: Callable[[DetectorSession, np.ndarray], np.ndarray],
    device: str = "auto",
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Each trial's mean over its windows (the bundle's own window and hop) of ``per_window``,
    which maps a batch of features to one value per window through the session."""
    card = bundle.card
    session = DetectorSession(bundle, device=device)
    bank = FrontendBank(device)
    spec = bundle.frontend_spec
    geometry = WindowGeometry(card.window.sample_rate, card.window.window_s, card.window.hop_s)
    owners: list[int] = []
    windows: list[np.ndarray] = []
    values: list[np.ndarray] = []

    def flush() -> None:
        features = bank.compute(np.stack(windows), [spec])[spec].cpu().numpy()
        values.append(np.asarray(per_window(session, features), dtype=np.float64))
        windows.clear()

    for index, trial in enumerate(trials):
        audio = load_audio(trial.path, sample_rate=geometry.sample_rate).samples[0]
        for window in frame_channel(repeat_to_window(audio, geometry), geometry):
            owners.append(index)
            windows.append(window.samples)
            if len(windows) == batch_size:
                flush()
        if progress is not None:
            progress(index + 1, len(trials))
    if windows:
        flush()
    per_window_values = np.concatenate(values)
    counts = np.bincount(owners, None, len(trials))
    return np.asarray(np.bincount(owners, per_window_values, len(trials)) / counts)


def evaluate_bundle(
    bundle_dir: Path,
    protocol: Path,
    out: Path,
    device: str = "auto",
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    bundle = load_bundle(bundle_dir)
    card = bundle.card
    official = not card.calibration.calibrated and card.output.bonafide_index is not None
    trials = read_dataset(protocol)

    def bonafide_score(session: DetectorSession, features: np.ndarray) -> np.ndarray:
        if official:
            return bundle.official_score(session.outputs(features))
        return -(card.calibration.slope * session.raw(features) + card.calibration.offset)

    scores = utterance_means(bundle, trials, bonafide_score, device, batch_size, progress)

    labels = np.array([t.label for t in trials])
    attacks = np.array([t.attack for t in trials])
    conditions = np.array([t.condition for t in trials])
    out.mkdir(parents=True, exist_ok=True)
    with (out / "scores.txt").open("w") as handle:
        for trial, score in zip(trials, scores, strict=True):
            handle.write(f"{trial.utterance_id} {trial.attack} {trial.label} {score:.6f}\n")

    groups = {"attack": attacks}
    if len(set(conditions)) > 1:
        groups["condition"] = conditions
    report = evaluate(scores, labels, groups)
    bonafide, spoof = scores[labels == "bonafide"], scores[labels == "spoof"]
    threshold = card.thresholds.eer
    if card.calibration.calibrated and threshold is not None and 0.0 < threshold < 1.0:
        # flagged as synthetic when P(synthetic) >= t, i.e. bona fide log-odds <= -logit(t)
        bonafide_threshold = -math.log(threshold / (1.0 - threshold))
        report["at_bundle_threshold"] = {
            "p_synthetic": threshold,
            **binary_report(bonafide, spoof, bonafide_threshold).to_dict(),
        }
    report["bundle"] = {"path": str(bundle_dir), "family": card.family, "version": card.version}
    report["protocol"] = str(protocol)
    report["score"] = "bona fide logit (official)" if official else "calibrated bona fide log-odds"
    (out / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    per_attack = {str(a): scores[attacks == a] for a in sorted(set(attacks)) if a != "-"}
    write_plots(out, bonafide, spoof, per_attack)
    log.info("evaluated", trials=len(trials), eer=report["eer"], out=str(out))
    return report
