"""``dfd replay``: audit recordings through the live pipeline, as fast as the machine allows.

Each file is one call (its path is the call id), each of its channels one party. The file is
read block by block at its own rate and fed to the very ``Pipeline`` that ``dfd serve`` runs, with
``score_silence`` on: an audit wants the whole timeline, so windows without speech are scored
too, marked ``speech: false``, and never count towards an alert.

A file that cannot be judged (undecodable, NaN or infinite samples, a sample rate below 8 kHz or
with no affordable conversion to 16 kHz) gets one error line and no report. A damaged file that
decodes part-way (a truncated WAV, a FLAC file cut off or corrupt) is judged on the audio before
the damage: its report says so (``incomplete``) and an error line too, and the exit status is 2
(docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import click
import structlog

from dfd.core.text import printable
from dfd.core.typed_config import ConfigError
from dfd.daemon.engine.decisions import ALERT_BASIS, VERDICTS, DecisionPolicy
from dfd.daemon.engine.events import (
    AlertChanged,
    AudioChunk,
    CallEnded,
    CallEvent,
    EngineEvent,
    EventSink,
    StreamEnded,
    WindowScored,
)
from dfd.daemon.engine.models import ModelSet
from dfd.daemon.engine.pipeline import Pipeline
from dfd.daemon.engine.scoring import InProcessScorer, Scorer
from dfd.daemon.settings import Settings, check_local_endpoint
from dfd.detectors.bundle import BundleError
from dfd.dsp.audio_io import AudioDecodeError, MissingToolError
from dfd.dsp.audio_stream import AudioDamagedError, open_audio_stream

log = structlog.get_logger(__name__)

PUBLISH_SETTLE_S = 0.3
# Windows an audit lets wait for the scorer before it reads more of the file: bounds its memory
# (a 2 s window is 128 kB) without ever shedding one.
AUDIT_BACKLOG_WINDOWS = 256

AUDIO_SUFFIXES = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".g722", ".gsm"}
    | {".ul", ".ulaw", ".mulaw", ".al", ".alaw", ".sln", ".sln16", ".raw", ".au", ".aiff"}
)


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as given; directories searched recursively for audio files, in sorted order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
            )
        else:
            found.append(path)
    return found


class ReplayRecorder:
    """The pipeline's event sink during a replay: keeps every call event (scores included) and
    forwards every event to a real bus when ``--publish`` asked for one."""

    def __init__(self, forward: EventSink | None = None) -> None:
        self.forward = forward
        self.events: list[CallEvent] = []

    def emit(self, event: EngineEvent) -> None:
        if self.forward is not None:
            self.forward.emit(event)
        if isinstance(event, CallEvent):
            self.events.append(event)

    def take(self, call_id: str) -> list[CallEvent]:
        """The events of one call, in order, no longer kept."""
        mine = [e for e in self.events if e.call_id == call_id]
        self.events = [e for e in self.events if e.call_id != call_id]
        return mine


@dataclasses.dataclass
class FileReport:
    path: str
    duration_s: float
    channels: int
    sample_rate: int
    source_format: str
    elapsed_s: float
    threshold: float
    model: dict[str, str]
    windows: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    channel_verdicts: dict[int, str]
    channel_speech_s: dict[int, float]
    decision: dict[str, Any]  # the rule and its operating point
    incomplete: str | None = None  # why the report covers only part of the file

    @property
    def verdict(self) -> str:
        """The file's: synthetic if a channel is; else inconclusive if a channel could not be
        judged (never "bona fide" for a party the rule could not judge); else bona fide."""
        verdicts = set(self.channel_verdicts.values())
        for verdict in VERDICTS:
            if verdict in verdicts:
                return verdict
        return "no speech"

    @property
    def inconclusive(self) -> bool:
        return self.verdict == "inconclusive"

    @property
    def alerted(self) -> bool:
        return any(a["topic"] == "alert.raised" for a in self.alerts)

    @property
    def speed(self) -> float:
        """Times faster than real time."""
        return self.duration_s / self.elapsed_s if self.elapsed_s > 0 else float("inf")

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "duration": round(self.duration_s, 3),
            "channels": self.channels,
            "sample_rate": self.sample_rate,
            "format": self.source_format,
            "model": self.model,
            "threshold": self.threshold,
            "verdict": self.verdict,
            "channel_verdicts": {str(c): v for c, v in sorted(self.channel_verdicts.items())},
            "channel_speech_s": {str(c): s for c, s in sorted(self.channel_speech_s.items())},
            "decision": self.decision,
            "alerts": self.alerts,
            "incomplete": self.incomplete,
            "windows": self.windows,
            "elapsed": round(self.elapsed_s, 3),
            "speed": round(self.speed, 1),
        }


def replay_file(
    pipeline: Pipeline,
    recorder: ReplayRecorder,
    path: Path,
    progress: Callable[[float, float | None], None] | None = None,
    block_s: float = 1.0,
) -> FileReport:
    """Feed one file through the pipeline and wait for every window's verdict."""
    started = time.perf_counter()
    rate = pipeline.models.geometry.sample_rate
    info, blocks = open_audio_stream(path, block_s, for_rate=rate)
    call_id = str(path)
    fed = 0
    incomplete = info.damage
    try:
        for block in blocks:
            for channel, samples in enumerate(block):
                pipeline.accept(AudioChunk(call_id, channel, samples, info.sample_rate), "replay")
            pipeline.pump()
            while pipeline.queued_windows > AUDIT_BACKLOG_WINDOWS:  # wait, never shed
                pipeline.pump(timeout=0.05)
            fed += block.shape[1]
            if progress is not None:
                progress(fed / info.sample_rate, info.duration_s)
    except AudioDamagedError as error:  # judged on the audio before the damage
        incomplete = str(error)
    except Exception:
        # A file that fails part-way must not leave its streams open in the pipeline (their
        # windows would be scored during the next file, and no call.ended would be published).
        for channel in range(info.channels):
            pipeline.accept(StreamEnded(call_id, channel, "decode-error"))
        pipeline.drain()
        recorder.take(call_id)
        raise
    reason = "end-of-file" if incomplete is None else "decode-error"
    for channel in range(info.channels):
        pipeline.accept(StreamEnded(call_id, channel, reason))
    pipeline.drain()
    elapsed = time.perf_counter() - started
    events = recorder.take(call_id)
    windows = [_window_row(e) for e in events if isinstance(e, WindowScored)]
    alerts = [_alert_row(e) for e in events if isinstance(e, AlertChanged)]
    ended = [e for e in events if isinstance(e, CallEnded)]
    return FileReport(
        path=call_id,
        duration_s=fed / info.sample_rate,
        channels=info.channels,
        sample_rate=info.sample_rate,
        source_format=info.source_format,
        elapsed_s=elapsed,
        threshold=pipeline.models.threshold,
        model=pipeline.models.identity,
        windows=windows,
        alerts=alerts,
        channel_verdicts={e.channel: e.verdict for e in ended},
        channel_speech_s={e.channel: e.speech_s for e in ended},
        decision=_decision_row(pipeline.decision),
        incomplete=incomplete,
    )


def _window_row(event: WindowScored) -> dict[str, Any]:
    return {
        "channel": event.channel,
        "start": round(event.start, 3),
        "end": round(event.end, 3),
        "score": None if event.score is None else round(event.score, 6),
        "raw": None if event.raw is None else round(event.raw, 6),
        "speech": event.speech,
    }


def _alert_row(event: AlertChanged) -> dict[str, Any]:
    assert event.score is not None  # an alert changes on a scored window
    row = {
        "topic": event.topic,
        "channel": event.channel,
        "start": round(event.start, 3),
        "end": round(event.end, 3),
        "score": round(event.score, 4),
    }
    row.update({key: event.basis[key] for key in ALERT_BASIS if key in event.basis})
    return row


def _decision_row(policy: DecisionPolicy) -> dict[str, Any]:
    if policy.rule == "evidence":
        return {
            "rule": "evidence",
            "raise_at": policy.raise_at,
            "clear_at": policy.clear_at,
            "min_speech_s": policy.min_speech_s,
        }
    return {"rule": "windows", "raise_over": policy.raise_over, "of": policy.of}


# -- terminal rendering -----------------------------------------------------------------------

_LEVELS = "▁▂▃▄▅▆▇█"


def format_report(report: FileReport, width: int = 100) -> str:
    """A readable timeline: one row of score bars per channel, alerts, verdicts."""
    lines = [
        f"{report.path}  {report.duration_s:.1f} s, {report.channels} channel(s), "
        f"{report.source_format} {report.sample_rate} Hz",
        f"model {report.model['name']} {report.model['version']}, threshold "
        f"{report.threshold:.3f} (█ high = synthetic, · no speech, ! at or above threshold)",
    ]
    for channel in range(report.channels):
        rows = [w for w in report.windows if w["channel"] == channel]
        timeline = _timeline(rows, report.threshold, width)
        lines.append(f"  ch{channel} {timeline}")
        if rows:
            lines.append(f"      {_axis(len(timeline), rows[-1]['end'])}  {_window_count(rows)}")
    for alert in report.alerts:
        what = "ALERT RAISED " if alert["topic"] == "alert.raised" else "alert cleared"
        lines.append(
            f"  {what} ch{alert['channel']} at {alert['start']:.1f}-{alert['end']:.1f} s, "
            f"score {alert['score']:.3f} ({_basis_text(alert)})"
        )
    if report.incomplete is not None:
        lines.append(f"  INCOMPLETE: judged on the first {report.duration_s:.1f} s only")
    verdicts = ", ".join(
        f"ch{c}: {v}"
        + (
            f" (only {report.channel_speech_s.get(c, 0.0):.1f} s of speech)"
            if v == "inconclusive"
            else ""
        )
        for c, v in sorted(report.channel_verdicts.items())
    )
    lines.append(f"  verdict: {report.verdict.upper()}  ({verdicts})")
    return "\n".join(printable(line) for line in lines)


def _basis_text(alert: dict[str, Any]) -> str:
    """What an alert rested on, in words."""
    if alert.get("rule") == "evidence":
        comparison = ">=" if alert["topic"] == "alert.raised" else "<="
        limit = alert["raise_at"] if alert["topic"] == "alert.raised" else alert["clear_at"]
        return (
            f"evidence {alert['evidence']:.1f} {comparison} {limit:g} nats after "
            f"{alert['speech_s']:.1f} s of speech"
        )
    return f"{alert['over']} of the last {alert['of']} speech windows at or above threshold"


def _axis(cells: int, end_s: float) -> str:
    """``0 s`` under the timeline's first cell, its end time under its last."""
    start, end = "0 s", f"{end_s:.0f} s"
    return start + " " * max(1, cells - len(start) - len(end)) + end


def _window_count(rows: list[dict[str, Any]]) -> str:
    if len(rows) == 1:
        return "(1 window)"
    return f"({len(rows)} windows, hop {rows[1]['start'] - rows[0]['start']:.2f} s)"


def _timeline(rows: list[dict[str, Any]], threshold: float, width: int) -> str:
    if not rows:
        return "(no windows)"
    step = max(1, -(-len(rows) // width))
    cells = []
    for i in range(0, len(rows), step):
        group = rows[i : i + step]
        speech = [w for w in group if w["speech"] and w["score"] is not None]
        if not speech:
            cells.append("·")
            continue
        score = max(w["score"] for w in speech)
        cells.append("!" if score >= threshold else _LEVELS[min(7, int(score * 8))])
    return "".join(cells)


# -- the command ------------------------------------------------------------------------------


def audit_pipeline(
    settings: Settings,
    models: ModelSet,
    scorer: Scorer,
    device: str | None = None,
    forward: EventSink | None = None,
) -> tuple[Pipeline, ReplayRecorder]:
    """The pipeline an audit runs (every window scored, none shed) and its event recorder."""
    recorder = ReplayRecorder(forward)
    # an audit judges whatever audio a file has, however short
    audit = dataclasses.replace(
        settings.pipeline, score_silence=True, batch_size=32, min_stream_s=0.0
    )
    pipeline = Pipeline(
        models,
        scorer,
        recorder,
        audit,
        speech=settings.speech,
        decision=settings.decision,
        frontend_device=device or settings.models.device,
        shed_windows=False,  # an audit scores every window
    )
    return pipeline, recorder


def run_replay(
    settings: Settings,
    paths: list[Path],
    *,
    bundles: list[str],
    window_s: float | None = None,
    hop_s: float | None = None,
    threshold: str | float | None = None,
    as_json: bool = False,
    plot: Path | None = None,
    publish: str | None = None,
    device: str | None = None,
    out: TextIO | None = None,
) -> int:
    """``dfd replay``: 0 when every file was judged and none raised an alert, 1 when one did, 3
    when none did but a file was inconclusive (too little speech to judge), 2 when anything
    failed (which wins over the others)."""
    out = out or sys.stdout
    files = expand_paths(paths)
    if not files:
        _error("no audio files found in " + ", ".join(map(str, paths)))
        return 2
    models_settings = settings.models
    if hop_s is not None and not (math.isfinite(hop_s) and hop_s > 0):
        _error(f"--hop must lie in (0, window] s, got {hop_s:g}")
        return 2
    if publish:  # the same rule as dfd serve's bus: localhost unless remote endpoints are allowed
        try:
            check_local_endpoint(publish, settings.serve.allow_remote_endpoints, "--publish")
        except ConfigError as error:
            _error(str(error))
            return 2
    try:
        models = ModelSet.from_settings(
            models_settings,
            bundles or (),
            threshold=threshold,  # type: ignore[arg-type]
            hop_s=hop_s,
            window_s=window_s,
        )
        scorer = InProcessScorer(models.paths, device=device or models_settings.device)
    except (BundleError, ConfigError, FileNotFoundError) as error:
        _error(str(error))
        return 2
    bus = None
    if publish:
        from dfd.daemon.service.bus import EventBus

        bus = EventBus(publish, publish_scores=True)
        # Subscribers already waiting reconnect every 100 ms (ZeroMQ's default): give them time
        # to do so, or the first events would go out before anyone receives them.
        time.sleep(PUBLISH_SETTLE_S)
    pipeline, recorder = audit_pipeline(settings, models, scorer, device, bus)
    failed = alerted = inconclusive = False
    total_audio = total_elapsed = 0.0
    files_read = 0
    try:
        for number, path in enumerate(files, start=1):
            try:
                with _progress(path) as progress:
                    report = replay_file(pipeline, recorder, path, progress)
            except (AudioDecodeError, FileNotFoundError, MissingToolError, OSError) as error:
                _error(str(error))
                failed = True
                continue
            if report.incomplete is not None:
                _error(f"{report.incomplete}; judged on the first {report.duration_s:.3f} s only")
                failed = True
            alerted |= report.alerted
            inconclusive |= report.inconclusive
            files_read += 1
            total_audio += report.duration_s
            total_elapsed += report.elapsed_s
            if as_json:
                click.echo(json.dumps(report.to_json(), allow_nan=False), file=out)
            else:
                click.echo(format_report(report), file=out)
            if plot is not None:
                from dfd.daemon.audit.plot import plot_report

                target = plot if len(files) == 1 else plot.with_name(f"{plot.stem}-{number}.png")
                try:
                    plot_report(report, target)
                except (AudioDecodeError, OSError) as error:
                    _error(f"cannot plot {path} to {target}: {error}")
                    failed = True
    finally:
        scorer.close()
        if bus is not None:
            bus.close()
    if total_elapsed > 0:
        log.info(
            "replay finished",
            files=files_read,
            files_failed=len(files) - files_read,
            audio_s=round(total_audio, 1),
            elapsed_s=round(total_elapsed, 2),
            faster_than_real_time=round(total_audio / total_elapsed, 1),
        )
        if not as_json:
            unread = len(files) - files_read
            click.echo(
                f"{files_read} file(s), {total_audio:.1f} s of audio in {total_elapsed:.1f} s: "
                f"{total_audio / total_elapsed:.1f}x faster than real time"
                + (f" ({unread} file(s) could not be read)" if unread else ""),
                file=out,
            )
    return 2 if failed else 1 if alerted else 3 if inconclusive else 0


def _error(message: str) -> None:
    click.echo(f"dfd replay: error: {printable(message)}", err=True)


@contextlib.contextmanager
def _progress(path: Path) -> Iterator[Callable[[float, float | None], None] | None]:
    """A progress bar on a terminal, for files long enough to need one."""
    if not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=1000, label=path.name, file=sys.stderr) as bar:

        def update(done_s: float, total_s: float | None) -> None:
            if total_s and total_s > 60:
                bar.update(round(1000 * done_s / total_s) - bar.pos)

        yield update
