"""PNG plots of an evaluation: ROC, DET, score histograms per attack, threshold sweep.

Scores follow the ASVspoof convention (higher = more bona fide; flagged as spoof below the
threshold). matplotlib is imported inside the functions (it belongs to the ``train`` extra, and
importing ``dfd`` must stay light); figures are drawn on an explicit Agg canvas, without pyplot, so
no process-wide backend setting is touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from dfd.trainers.metrics import (
    FloatArray,
    compute_eer,
    det_curve,
    roc_auc,
    threshold_sweep,
    validate_scores,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGSIZE = (5.5, 4.5)
DPI = 100
# DET axes: the probit scale runs between these rates; the ticks are where NIST/ASVspoof put them.
DET_LIMITS = (0.0005, 0.95)
DET_TICKS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9)
BONAFIDE_COLOUR = "tab:green"
SPOOF_COLOUR = "tab:red"


def probit(rates: ArrayLike) -> FloatArray:
    """Inverse standard normal CDF (``scipy.stats.norm.ppf``), from ``statistics.NormalDist``."""
    values = np.asarray(rates, dtype=np.float64)
    if np.any((values <= 0.0) | (values >= 1.0)):
        raise ValueError("probit: rates must lie strictly between 0 and 1")
    unique, inverse = np.unique(values, return_inverse=True)
    inv_cdf = NormalDist().inv_cdf
    mapped = np.array([inv_cdf(float(v)) for v in unique], dtype=np.float64)
    return np.asarray(mapped[inverse].reshape(values.shape), dtype=np.float64)


def _new_figure(figsize: tuple[float, float] = FIGSIZE) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def plot_roc(path: Path, bonafide_scores: ArrayLike, spoof_scores: ArrayLike) -> Path:
    """ROC: spoofs flagged (detection rate) against bona fide flagged (false-alarm rate)."""
    curve = det_curve(bonafide_scores, spoof_scores)
    auc = roc_auc(bonafide_scores, spoof_scores)
    figure = _new_figure()
    axes = figure.add_subplot()
    axes.plot(curve.false_alarm_rate, 1.0 - curve.miss_rate, label=f"AUC = {auc:.4f}")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("Bona fide flagged as spoof (false-alarm rate)")
    axes.set_ylabel("Spoofs flagged (detection rate)")
    axes.set_title("ROC")
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    return _save(figure, Path(path))


def plot_det(path: Path, bonafide_scores: ArrayLike, spoof_scores: ArrayLike) -> Path:
    """DET curve on probit (normal deviate) axes, with the EER point marked."""
    curve = det_curve(bonafide_scores, spoof_scores)
    eer, _ = compute_eer(bonafide_scores, spoof_scores)
    low, high = DET_LIMITS
    x = probit(np.clip(curve.miss_rate, low, high))
    y = probit(np.clip(curve.false_alarm_rate, low, high))
    figure = _new_figure()
    axes = figure.add_subplot()
    axes.plot(x, y, drawstyle="steps-post", label="DET")
    eer_point = probit(np.clip([eer], low, high))[0]
    axes.plot([eer_point], [eer_point], "o", color="black", label=f"EER = {100 * eer:.2f} %")
    limits = probit(np.array(DET_LIMITS))
    ticks = probit(np.array(DET_TICKS))
    labels = [f"{100 * t:g}" for t in DET_TICKS]
    axes.plot(limits, limits, linestyle=":", color="grey")
    axes.set_xlim(*limits)
    axes.set_ylim(*limits)
    axes.set_xticks(ticks, labels)
    axes.set_yticks(ticks, labels)
    axes.set_xlabel("Spoofs accepted (miss rate, ASVspoof FAR) [%]")
    axes.set_ylabel("Bona fide flagged (false-alarm rate, ASVspoof FRR) [%]")
    axes.set_title("DET")
    axes.legend(loc="upper right")
    axes.grid(alpha=0.3)
    return _save(figure, Path(path))


def plot_score_histograms(
    path: Path, bonafide_scores: ArrayLike, per_attack: Mapping[str, ArrayLike]
) -> Path:
    """One panel per attack: bona fide score histogram against that attack's scores."""
    if not per_attack:
        raise ValueError("per_attack: no attack to plot")
    bonafide = validate_scores(bonafide_scores, "bona fide scores")
    attacks = {
        name: validate_scores(s, f"spoof scores of {name!r}") for name, s in per_attack.items()
    }
    edges = np.histogram_bin_edges(np.concatenate([bonafide, *attacks.values()]), bins=50).tolist()
    ncols = min(3, len(attacks))
    nrows = -(-len(attacks) // ncols)
    figure = _new_figure(figsize=(4.0 * ncols, 3.0 * nrows))
    for index, (name, spoof) in enumerate(sorted(attacks.items())):
        axes = figure.add_subplot(nrows, ncols, index + 1)
        axes.hist(
            bonafide,
            bins=edges,
            density=True,
            alpha=0.5,
            color=BONAFIDE_COLOUR,
            label=f"bona fide ({bonafide.size})",
        )
        axes.hist(
            spoof,
            bins=edges,
            density=True,
            alpha=0.5,
            color=SPOOF_COLOUR,
            label=f"{name} ({spoof.size})",
        )
        eer, _ = compute_eer(bonafide, spoof)
        axes.set_title(f"{name}: EER {100 * eer:.2f} %", fontsize="medium")
        axes.set_xlabel("score (higher = more bona fide)")
        axes.legend(fontsize="small")
    return _save(figure, Path(path))


def plot_threshold_sweep(
    path: Path, bonafide_scores: ArrayLike, spoof_scores: ArrayLike, n_points: int = 400
) -> Path:
    """False-alarm and miss rates against the threshold, with the EER point marked."""
    bonafide = validate_scores(bonafide_scores, "bona fide scores")
    spoof = validate_scores(spoof_scores, "spoof scores")
    everything = np.concatenate([bonafide, spoof])
    low, high = float(everything.min()), float(everything.max())
    margin = 0.02 * (high - low) or 1.0
    eer, eer_threshold = compute_eer(bonafide, spoof)
    points = np.union1d(np.linspace(low - margin, high + margin, n_points), [eer_threshold])
    sweep = threshold_sweep(bonafide, spoof, points)
    figure = _new_figure()
    axes = figure.add_subplot()
    axes.plot(
        sweep.thresholds,
        sweep.false_alarm_rate,
        color=BONAFIDE_COLOUR,
        label="bona fide flagged (false alarms)",
    )
    axes.plot(
        sweep.thresholds, sweep.miss_rate, color=SPOOF_COLOUR, label="spoofs accepted (misses)"
    )
    axes.plot(
        [eer_threshold],
        [eer],
        "o",
        color="black",
        label=f"EER {100 * eer:.2f} % at {eer_threshold:.4g}",
    )
    axes.set_xlabel("threshold (flagged as spoof below it)")
    axes.set_ylabel("rate")
    axes.set_ylim(0, 1)
    axes.set_title("Error rates against the threshold")
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    return _save(figure, Path(path))


def write_plots(
    out_dir: Path,
    bonafide: ArrayLike,
    spoof: ArrayLike,
    per_attack: Mapping[str, ArrayLike],
) -> list[Path]:
    """Write roc.png, det.png, score_histograms.png and threshold_sweep.png into ``out_dir``.

    With an empty ``per_attack`` the histogram compares bona fide with all spoofs.
    """
    out_dir = Path(out_dir)
    attacks = per_attack if per_attack else {"spoof": spoof}
    return [
        plot_roc(out_dir / "roc.png", bonafide, spoof),
        plot_det(out_dir / "det.png", bonafide, spoof),
        plot_score_histograms(out_dir / "score_histograms.png", bonafide, attacks),
        plot_threshold_sweep(out_dir / "threshold_sweep.png", bonafide, spoof),
    ]
