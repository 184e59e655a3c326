"""``dfd eval``: score a protocol with a bundle and report the ASVspoof metrics.

Every utterance is cut into the windows the daemon scores (``dfd.dsp.extract.scoring_windows``:
the bundle's window and hop, a last window ending on the last sample, an utterance shorter than a
window repeated to fill it), each loses its mean and is scored through the bundle's front end and
ONNX graph, and the utterance's score is the mean over its windows. ``--windows`` also writes
each window's raw output and score (``windows.tsv``): they agree with what ``dfd replay`` and a
live call report for the same audio (tests/test_scoring_path.py, tests/test_serve.py).
``scores.txt`` follows the ASVspoof 2019 CM score-file convention, higher = more bona fide, so
the official scoring scripts read it unchanged: the calibrated log-odds of bona fide, or for an
uncalibrated class-logit bundle (an imported official AASIST) the bona fide logit, which is the
official score.
"""

from __future__ import annotations

import dataclasses
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
from dfd.dsp.extract import remove_mean, scoring_windows
from dfd.dsp.framer import WindowGeometry
from dfd.trainers.datasets import Trial, read_dataset
from dfd.trainers.metrics import binary_report, evaluate
from dfd.trainers.plots import write_plots

log = structlog.get_logger("dfd.eval")


@dataclasses.dataclass(frozen=True)
class WindowValues:
    """Per window, in trial order: its trial's index, its first and end sample (16 kHz, in the
    trial's audio) and the values ``per_window`` gave it, shaped (windows, ...)."""

    owners: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    values: np.ndarray

    def means(self, trials: int) -> np.ndarray:
        """Each trial's mean over its windows of the first value."""
        first = self.values if self.values.ndim == 1 else self.values[:, 0]
        counts = np.bincount(self.owners, None, trials)
        return np.asarray(np.bincount(self.owners, first, trials) / counts)


def window_values(
    bundle: Bundle,
    trials: Sequence[Trial],
    per_window: Callable[[DetectorSession, np.ndarray], np.ndarray],
    device: str = "auto",
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> WindowValues:
    """``per_window`` (a batch of features through the session -> one value, or one row of
    values, per window) over every scoring window (``scoring_windows``, the bundle's own window
    and hop, each window's mean removed) of every trial."""
    card = bundle.card
    session = DetectorSession(bundle, device=device)
    bank = FrontendBank(device)
    spec = bundle.frontend_spec
    geometry = WindowGeometry(card.window.sample_rate, card.window.window_s, card.window.hop_s)
    owners: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    windows: list[np.ndarray] = []
    values: list[np.ndarray] = []

    def flush() -> None:
        features = bank.compute(remove_mean(np.stack(windows)), [spec])[spec].cpu().numpy()
        values.append(np.asarray(per_window(session, features), dtype=np.float64))
        windows.clear()

    for index, trial in enumerate(trials):
        audio = load_audio(trial.path, sample_rate=geometry.sample_rate).samples[0]
        for window in scoring_windows(audio, geometry):
            owners.append(index)
            starts.append(window.start)
            ends.append(window.start + min(window.valid_samples, geometry.window_samples))
            windows.append(window.samples)
            if len(windows) == batch_size:
                flush()
        if progress is not None:
            progress(index + 1, len(trials))
    if windows:
        flush()
    return WindowValues(
        np.array(owners, dtype=np.int64),
        np.array(starts, dtype=np.int64),
        np.array(ends, dtype=np.int64),
        np.concatenate(values),
    )


def evaluate_bundle(
    bundle_dir: Path,
    protocol: Path,
    out: Path,
    device: str = "auto",
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
    windows: bool = False,
) -> dict[str, Any]:
    """Score ``protocol`` into ``out`` (``scores.txt``, ``report.json``, plots; with
    ``windows``, also every window's score in ``windows.tsv``)."""
    bundle = load_bundle(bundle_dir)  # a bad bundle is named before the data is read
    trials = read_dataset(protocol)
    return _evaluate(
        bundle, bundle_dir, trials, str(protocol), out, device, batch_size, progress, windows
    )


def evaluate_trials(
    bundle_dir: Path,
    trials: Sequence[Trial],
    protocol: str,
    out: Path,
    device: str = "auto",
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
    windows: bool = False,
) -> dict[str, Any]:
    """:func:`evaluate_bundle` on trials already read (``protocol`` names them in the report)."""
    bundle = load_bundle(bundle_dir)
    return _evaluate(
        bundle, bundle_dir, trials, protocol, out, device, batch_size, progress, windows
    )


def _evaluate(
    bundle: Bundle,
    bundle_dir: Path,
    trials: Sequence[Trial],
    protocol: str,
    out: Path,
    device: str,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
    windows: bool,
) -> dict[str, Any]:
    card = bundle.card
    official = not card.calibration.calibrated and card.output.bonafide_index is not None

    def bonafide_score_and_raw(session: DetectorSession, features: np.ndarray) -> np.ndarray:
        outputs = session.outputs(features)
        raw = card.output.raw(outputs)
        if official:
            score = bundle.official_score(outputs)
        else:
            score = -(card.calibration.slope * raw + card.calibration.offset)
        return np.stack([score, raw], axis=1)

    found = window_values(bundle, trials, bonafide_score_and_raw, device, batch_size, progress)
    scores = found.means(len(trials))

    labels = np.array([t.label for t in trials])
    attacks = np.array([t.attack for t in trials])
    conditions = np.array([t.condition for t in trials])
    out.mkdir(parents=True, exist_ok=True)
    with (out / "scores.txt").open("w") as handle:
        for trial, score in zip(trials, scores, strict=True):
            handle.write(f"{trial.utterance_id} {trial.attack} {trial.label} {score:.6f}\n")
    if windows:
        _write_windows(out / WINDOWS_NAME, trials, found, card.window.sample_rate)

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
    report["protocol"] = protocol
    report["score"] = "bona fide logit (official)" if official else "calibrated bona fide log-odds"
    (out / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    per_attack = {str(a): scores[attacks == a] for a in sorted(set(attacks)) if a != "-"}
    write_plots(out, bonafide, spoof, per_attack)
    log.info("evaluated", trials=len(trials), eer=report["eer"], out=str(out))
    return report


WINDOWS_NAME = "windows.tsv"


def _write_windows(path: Path, trials: Sequence[Trial], found: WindowValues, rate: int) -> None:
    """One line per window: utterance, start and end in seconds, the raw output (spoof
    direction, as ``dfd replay --json`` reports it) and the score ``scores.txt`` averages."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write("utterance_id\tstart\tend\traw\tscore\n")
        for owner, start, end, (score, raw) in zip(
            found.owners, found.starts, found.ends, found.values, strict=True
        ):
            handle.write(
                f"{trials[owner].utterance_id}\t{start / rate:.4f}\t{end / rate:.4f}\t"
                f"{raw:.6f}\t{score:.6f}\n"
            )
