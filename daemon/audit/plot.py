"""``dfd replay --plot``: one PNG per file, waveform and score over time for every channel.

The waveform is re-read block by block and reduced to a min/max envelope of about
``ENVELOPE_POINTS`` columns while it streams past, so a two-hour recording costs no more memory
than a short one. Below each waveform, the window scores as a step line at the window centres
(a hop wide each), the threshold dashed, windows without speech greyed out and alert episodes
(raised until cleared, or until the end) shaded. Figures are drawn on an explicit Agg canvas,
without pyplot, so no process-wide backend setting is touched.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dfd.daemon.audit.replay import FileReport
from dfd.dsp.audio_stream import AudioDamagedError, open_audio_stream

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ENVELOPE_POINTS = 2000
DPI = 100
SCORE_COLOUR = "tab:blue"
NO_SPEECH_COLOUR = "0.6"
ALERT_COLOUR = "tab:red"


def plot_report(report: FileReport, path: Path) -> None:
    """Write ``report`` (and its file's waveform) as a PNG image to ``path``."""
    figure = report_figure(report)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")


def report_figure(report: FileReport) -> Figure:
    """The figure ``plot_report`` saves: two axes per channel (waveform above its scores)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    times, lows, highs = waveform_envelope(Path(report.path), ENVELOPE_POINTS)
    channels = max(report.channels, 1)
    figure = Figure(figsize=(12.0, 3.2 * channels), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2 * channels, 1, height_ratios=[1.0, 1.4] * channels)
    first: Any = None
    for channel in range(channels):
        wave = figure.add_subplot(grid[2 * channel], sharex=first)
        first = first or wave
        score = figure.add_subplot(grid[2 * channel + 1], sharex=first)
        if channel < len(lows):
            wave.fill_between(times, lows[channel], highs[channel], color="0.25", linewidth=0)
        wave.set_ylim(-1.0, 1.0)
        wave.set_ylabel(f"ch{channel}")
        wave.tick_params(labelbottom=False)
        rows = [w for w in report.windows if w["channel"] == channel]
        _draw_scores(score, rows, report.threshold)
        for start, end in _alert_spans(report, channel):
            for axes in (wave, score):
                axes.axvspan(start, end, color=ALERT_COLOUR, alpha=0.15, linewidth=0)
        if channel < channels - 1:
            score.tick_params(labelbottom=False)
    first.set_xlim(0.0, max(report.duration_s, 1e-3))
    figure.axes[-1].set_xlabel("time [s]")
    model = f"{report.model['name']} {report.model['version']}"
    figure.suptitle(
        f"{Path(report.path).name}: model {model}, threshold {report.threshold:.3f}, "
        f"verdict {report.verdict.upper()}"
    )
    return figure


def waveform_envelope(
    path: Path, points: int = ENVELOPE_POINTS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(times, lows, highs)``: the min and max of each of about ``points`` equal stretches of
    every channel (``lows``, ``highs``: ``(channels, stretches)``), read block by block."""
    info, damaged_blocks = open_audio_stream(path)
    blocks = _until_damage(damaged_blocks)  # a damaged file is drawn as far as it was judged
    if info.frames is not None:
        bucket = max(1, math.ceil(info.frames / points))
        return _envelope(blocks, bucket, info.sample_rate)
    # The length is unknown until the end (a pipe from ffmpeg): reduce finely, then regroup.
    times, lows, highs = _envelope(blocks, max(1, info.sample_rate // 100), info.sample_rate)
    group = max(1, math.ceil(lows.shape[1] / points))
    if group == 1:
        return times, lows, highs
    count = math.ceil(lows.shape[1] / group)
    pad = count * group - lows.shape[1]
    lows = np.pad(lows, ((0, 0), (0, pad)), mode="edge").reshape(len(lows), count, group)
    highs = np.pad(highs, ((0, 0), (0, pad)), mode="edge").reshape(len(highs), count, group)
    return times[::group], lows.min(axis=2), highs.max(axis=2)


def _until_damage(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    try:
        yield from blocks
    except AudioDamagedError:
        return


def _envelope(
    blocks: Iterable[np.ndarray], bucket: int, sample_rate: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lows: list[np.ndarray] = []
    highs: list[np.ndarray] = []
    carry: np.ndarray | None = None
    for block in blocks:
        data = block if carry is None else np.concatenate([carry, block], axis=1)
        whole = data.shape[1] // bucket * bucket
        if whole:
            shaped = data[:, :whole].reshape(len(data), -1, bucket)
            lows.append(shaped.min(axis=2))
            highs.append(shaped.max(axis=2))
        carry = data[:, whole:]
    if carry is not None and carry.shape[1]:
        lows.append(carry.min(axis=1, keepdims=True))
        highs.append(carry.max(axis=1, keepdims=True))
    if not lows:
        empty = np.zeros((0, 0), dtype=np.float32)
        return np.zeros(0), empty, empty
    low, high = np.concatenate(lows, axis=1), np.concatenate(highs, axis=1)
    times = np.arange(low.shape[1]) * bucket / sample_rate
    return times, low, high


def _draw_scores(axes: Any, rows: list[dict[str, Any]], threshold: float) -> None:
    axes.set_ylim(-0.04, 1.04)  # scores of exactly 0 or 1 stay visible
    axes.set_ylabel("P(synthetic)")
    axes.axhline(threshold, color=ALERT_COLOUR, linestyle="--", linewidth=1.0, label="threshold")
    if not rows:
        return
    centres = np.array([(w["start"] + w["end"]) / 2 for w in rows])
    scores = np.array([np.nan if w["score"] is None else w["score"] for w in rows], dtype=float)
    speech = np.array([bool(w["speech"]) for w in rows])
    hop = float(np.median(np.diff(centres))) if len(rows) > 1 else rows[0]["end"] - rows[0]["start"]
    for start, end in _runs(centres, ~speech, hop):
        axes.axvspan(start, end, color=NO_SPEECH_COLOUR, alpha=0.25, linewidth=0)
    axes.step(centres, np.where(speech, scores, np.nan), where="mid", color=SCORE_COLOUR)
    axes.step(centres, np.where(speech, np.nan, scores), where="mid", color=NO_SPEECH_COLOUR)


def _runs(centres: np.ndarray, mask: np.ndarray, hop: float) -> Iterator[tuple[float, float]]:
    """Merged ``(start, end)`` spans, a hop wide around each centre where ``mask`` holds."""
    start: float | None = None
    for index, flagged in enumerate(mask):
        if flagged and start is None:
            start = float(centres[index]) - hop / 2
        if start is not None and (not flagged or index == len(mask) - 1):
            last = index if flagged else index - 1
            yield start, float(centres[last]) + hop / 2
            start = None


def _alert_spans(report: FileReport, channel: int) -> list[tuple[float, float]]:
    """From each raised alert's window start to its clearing window's end (or the end)."""
    spans: list[tuple[float, float]] = []
    raised: float | None = None
    for alert in report.alerts:
        if alert["channel"] != channel:
            continue
        if alert["topic"] == "alert.raised":
            raised = float(alert["start"])
        elif raised is not None:
            spans.append((raised, float(alert["end"])))
            raised = None
    if raised is not None:
        spans.append((raised, report.duration_s))
    return spans
