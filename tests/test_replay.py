"""``dfd replay`` and its plot: the installed command in a real process for exit codes and
error messages, the click command in-process (``CliRunner``) for the report's content, all with
the embedded default model on the bundled sample calls. Model behaviour is pinned only where it
is the product's promise (the demo call alerts after the voice turns synthetic, the bona fide
call does not); numbers are checked against the model card, not against stored scores."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import structlog
from click.testing import CliRunner, Result

from dfd.daemon.audit.plot import plot_report, report_figure, waveform_envelope
from dfd.daemon.audit.replay import FileReport, ReplayRecorder, format_report, replay_file
from dfd.daemon.cli import main
from dfd.daemon.engine.events import CallEnded, CallEvent, EngineEvent
from dfd.daemon.engine.models import ModelSet, default_bundle_path
from dfd.daemon.engine.pipeline import Pipeline
from dfd.daemon.engine.scoring import InProcessScorer
from dfd.daemon.settings import PipelineSettings
from dfd.detectors.bundle import read_card
from dfd.dsp.audio_io import AudioDecodeError
from dfd.dsp.audio_stream import open_audio_stream
from tests.signals import REPO, SAMPLE_CALL

DFD = str(Path(sys.executable).with_name("dfd"))
DEMO_CALL = REPO / "samples" / "call-bonafide-then-synthetic-8k-ulaw.wav"
SYNTHETIC_FROM_S = 8.90
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ERROR_PREFIX = "dfd replay: error: "
CARD = read_card(default_bundle_path())


def dfd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DFD, *args], capture_output=True, text=True, env=dict(os.environ), timeout=180
    )


def invoke(*args: str) -> Result:
    """The click command in this process; the logging it configures is put back afterwards."""
    try:
        return CliRunner().invoke(main, list(args))
    finally:
        structlog.reset_defaults()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    text = folder / "notes.wav"
    text.write_text("this is not audio\n" * 20)
    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    samples = np.random.default_rng(0).uniform(-0.3, 0.3, 3 * 8_000).astype(np.float32)
    samples[round(2.5 * 8_000)] = np.nan  # in the third second: the first blocks are fine
    nan = folder / "nan.wav"
    soundfile.write(nan, samples, 8_000, subtype="FLOAT")
    return {"text": text, "empty": empty, "nan": nan, "missing": folder / "missing.wav"}


@pytest.fixture(scope="module")
def both_calls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("calls")
    shutil.copy(SAMPLE_CALL, folder / SAMPLE_CALL.name)
    (folder / "nested").mkdir()
    shutil.copy(DEMO_CALL, folder / "nested" / DEMO_CALL.name)
    (folder / "README.txt").write_text("not audio, and not picked up\n")
    return folder


@pytest.fixture(scope="module")
def plots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plots")


@pytest.fixture(scope="module")
def reports(both_calls: Path, plots: Path) -> dict[str, dict[str, Any]]:
    """``dfd replay --json --plot`` over the folder: the report of each call, by file name."""
    result = invoke("replay", "--json", "--plot", str(plots / "audit.png"), str(both_calls))
    assert result.exit_code == 1, result.output
    lines = json_lines(result.stdout)
    assert len(lines) == 2
    return {Path(line["path"]).name: line for line in lines}


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# ------------------------------------------------------------------ the installed command


def test_the_demo_call_raises_an_alert_and_exits_1() -> None:
    result = dfd("replay", str(DEMO_CALL))
    assert result.returncode == 1, result.stderr
    assert "ALERT RAISED" in result.stdout
    assert "verdict: SYNTHETIC" in result.stdout
    assert "Traceback" not in result.stderr


def test_unreadable_inputs_exit_2_with_one_error_line_each(bad_inputs: dict[str, Path]) -> None:
    paths = [bad_inputs[name] for name in ("text", "empty", "missing", "nan")]
    result = dfd("--log-level", "error", "replay", *map(str, paths), str(SAMPLE_CALL))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = result.stderr.splitlines()
    assert len(errors) == 4, result.stderr
    for line, path in zip(errors, paths, strict=True):
        assert line.startswith(ERROR_PREFIX)
        assert str(path) in line
    assert "no such audio file" in errors[2]
    assert "NaN" in errors[3]
    assert "verdict: BONA FIDE" in result.stdout  # the good file after them was still judged
    summary = result.stdout.splitlines()[-1]  # only the file that was read is counted
    assert summary.startswith("1 file(s), ")
    assert summary.endswith("(4 file(s) could not be read)")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("text", "not a readable audio file"),
        ("empty", "not a readable audio file"),
        ("missing", "no such audio file"),
        ("nan", "the audio holds NaN or infinite samples (the first, nan, at 2.500 s"),
    ],
)
def test_each_unreadable_input_alone_exits_2_with_one_line(
    bad_inputs: dict[str, Path], name: str, message: str
) -> None:
    result = invoke("replay", str(bad_inputs[name]))
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{ERROR_PREFIX}")
    assert str(bad_inputs[name]) in line
    assert message in line


# ------------------------------------------------------------------------ the report


def test_the_bona_fide_call_exits_0() -> None:
    result = invoke("replay", str(SAMPLE_CALL))  # in this process: one start of torch spared
    assert result.exit_code == 0, result.output
    assert "verdict: BONA FIDE" in result.stdout
    assert "ALERT" not in result.stdout
    assert "ch0 " in result.stdout and "ch1 " in result.stdout


def test_json_gives_one_object_per_file(reports: dict[str, dict[str, Any]]) -> None:
    assert sorted(reports) == sorted([SAMPLE_CALL.name, DEMO_CALL.name])
    for report in reports.values():
        assert report["model"] == {"name": CARD.family, "version": CARD.version}
        assert report["threshold"] == CARD.thresholds.eer
        assert report["sample_rate"] == 8_000
        assert set(report["channel_verdicts"]) == {str(c) for c in range(report["channels"])}
        assert report["verdict"] == ("synthetic" if report["alerts"] else "bona fide")
    assert reports[DEMO_CALL.name]["verdict"] == "synthetic"
    assert reports[SAMPLE_CALL.name]["verdict"] == "bona fide"
    assert reports[SAMPLE_CALL.name]["alerts"] == []


def test_every_window_of_every_channel_is_reported(reports: dict[str, dict[str, Any]]) -> None:
    slope, offset = CARD.calibration.slope, CARD.calibration.offset
    for report in reports.values():
        for channel in range(report["channels"]):
            rows = [w for w in report["windows"] if w["channel"] == channel]
            assert all(
                set(w) == {"channel", "start", "end", "score", "raw", "speech"} for w in rows
            )
            full = rows[:-1]
            assert [w["start"] for w in full] == [0.5 * i for i in range(len(full))]
            assert all(w["end"] - w["start"] == pytest.approx(2.0) for w in rows)
            assert rows[-1]["end"] == pytest.approx(report["duration"], abs=1e-3)
            assert len(full) == math.floor((report["duration"] - 2.0) / 0.5) + 1
            for window in rows:  # every window scored in an audit, speech or not
                assert isinstance(window["speech"], bool)
                expected = sigmoid(slope * window["raw"] + offset)
                assert window["score"] == pytest.approx(expected, abs=2e-4)


def test_the_demo_call_alerts_once_after_the_voice_turns_synthetic(
    reports: dict[str, dict[str, Any]],
) -> None:
    report = reports[DEMO_CALL.name]
    (raised,) = [a for a in report["alerts"] if a["topic"] == "alert.raised"]
    assert raised["end"] > SYNTHETIC_FROM_S
    assert raised["rule"] == "evidence" and raised["evidence"] >= raised["raise_at"]
    assert report["decision"]["raise_at"] == raised["raise_at"]
    (window,) = [w for w in report["windows"] if w["start"] == raised["start"]]
    assert window["score"] >= report["threshold"]
    assert window["speech"] is True


def test_a_zero_threshold_makes_every_speech_window_count(
    reports: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the windows rule (the window threshold decides; the evidence rule reads the
    calibrated scores themselves)."""
    monkeypatch.setenv("DFD_DECISION__RULE", "windows")
    plot = tmp_path / "plots" / "call.png"
    result = invoke("replay", "--json", "--threshold", "0", "--plot", str(plot), str(SAMPLE_CALL))
    assert result.exit_code == 1
    image = plot.read_bytes()  # one file: the name as given
    assert image.startswith(PNG_SIGNATURE)
    assert len(image) > 10_000
    (report,) = json_lines(result.stdout)
    assert report["threshold"] == 0.0
    assert report["verdict"] == "synthetic"
    for channel in (0, 1):
        speech = [w for w in report["windows"] if w["channel"] == channel and w["speech"]]
        (raised,) = [a for a in report["alerts"] if a["channel"] == channel]
        assert raised["start"] == speech[2]["start"]  # the third speech window: 3 of 5
    # the same windows and scores as with the card's threshold: only the decisions moved
    assert report["windows"] == reports[SAMPLE_CALL.name]["windows"]


@pytest.mark.parametrize(
    ("value", "message"),
    [("1.5", "threshold must lie in [0, 1]"), ("-0.2", "threshold must lie in [0, 1]")],
)
def test_a_threshold_out_of_range_is_a_clean_error(value: str, message: str) -> None:
    result = invoke("replay", "--threshold", value, str(SAMPLE_CALL))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{ERROR_PREFIX}{message}, got {float(value)}"
    assert result.stdout == ""


def test_a_threshold_that_is_no_number_is_a_usage_error() -> None:
    result = invoke("replay", "--threshold", "strict", str(SAMPLE_CALL))
    assert result.exit_code == 2
    assert "eer, far_1pct or a number" in result.stderr


def test_a_longer_hop_halves_the_windows(reports: dict[str, dict[str, Any]]) -> None:
    result = invoke("replay", "--json", "--hop", "1.0", "--threshold", "far_1pct", str(DEMO_CALL))
    assert result.exit_code in (0, 1)
    (report,) = json_lines(result.stdout)
    assert report["threshold"] == CARD.thresholds.far_1pct  # a card threshold by name
    default = reports[DEMO_CALL.name]["windows"]
    full = [w["start"] for w in report["windows"][:-1]]
    assert full == [w["start"] for w in default[:-1]][::2]
    assert len(full) == math.floor((report["duration"] - 2.0) / 1.0) + 1
    assert report["windows"][-1] == default[-1]  # the same tail window over the last 2 s


def test_a_hop_that_is_no_whole_number_of_samples_is_refused() -> None:
    result = invoke("replay", "--hop", "0.00001", str(SAMPLE_CALL))
    assert result.exit_code == 2
    assert result.stderr.startswith(ERROR_PREFIX)
    assert "hop_s" in result.stderr


@pytest.mark.parametrize(
    ("hop", "message"),
    [
        ("0", "--hop must lie in (0, window] s, got 0"),
        ("-1", "--hop must lie in (0, window] s, got -1"),
        ("nan", "--hop must lie in (0, window] s, got nan"),
        ("2.5", "hop 2.5 s must lie in (0, 2] s, the shortest window"),
    ],
)
def test_a_hop_outside_zero_to_the_window_is_refused_in_one_line(hop: str, message: str) -> None:
    """An audit scores every stretch of audio: no hop of zero (it was taken as "the model's"),
    none longer than the window (audio between windows would go unscored)."""
    result = invoke("replay", "--hop", hop, str(SAMPLE_CALL))
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(ERROR_PREFIX) and message in line
    assert result.stdout == ""


def test_a_folder_without_audio_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing to hear")
    result = invoke("replay", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{ERROR_PREFIX}no audio files found in {tmp_path}"


def test_a_missing_model_is_an_error(tmp_path: Path) -> None:
    result = invoke("replay", "--model", str(tmp_path / "nothing"), str(SAMPLE_CALL))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{ERROR_PREFIX}{tmp_path / 'nothing'}: no such bundle")


def test_a_plot_that_cannot_be_written_is_a_clean_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file where the plot's folder should be")
    result = invoke("replay", "--plot", str(blocker / "call.png"), str(SAMPLE_CALL))
    assert result.exit_code == 2
    assert "verdict: BONA FIDE" in result.stdout  # the report itself was still printed
    (line,) = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert line.startswith(f"{ERROR_PREFIX}cannot plot {SAMPLE_CALL} to {blocker / 'call.png'}")


def test_a_file_failing_part_way_leaves_nothing_open(bad_inputs: dict[str, Path]) -> None:
    """Its streams are ended (call.ended published), nothing of it stays queued or recorded,
    and the pipeline goes on with the next file."""
    forwarded: list[CallEvent] = []

    class Forward:
        def emit(self, event: EngineEvent) -> None:
            if isinstance(event, CallEvent):
                forwarded.append(event)

    paths = [default_bundle_path()]
    models = ModelSet.load(paths)
    recorder = ReplayRecorder(Forward())
    pipeline = Pipeline(
        models,
        InProcessScorer(paths, threads=1, device="cpu"),
        recorder,
        PipelineSettings(score_silence=True),
        frontend_device="cpu",
    )
    with pytest.raises(AudioDecodeError, match="NaN"):
        replay_file(pipeline, recorder, bad_inputs["nan"])
    assert pipeline.active_streams == 0
    assert pipeline.idle
    assert recorder.events == []
    seen = [event.topic for event in forwarded]
    assert seen[0] == "call.started"
    assert seen[-1] == "call.ended"
    assert isinstance(forwarded[-1], CallEnded)
    assert forwarded[-1].reason == "decode-error"

    report = replay_file(pipeline, recorder, SAMPLE_CALL)
    assert report.verdict == "bona fide"
    assert {w["channel"] for w in report.windows} == {0, 1}


def test_a_damaged_file_that_makes_ffmpeg_talk_a_lot_does_not_stall(tmp_path: Path) -> None:
    """ffmpeg writes an error line per damaged frame; reading its messages only at the end
    must not let them fill a pipe and stall ffmpeg (and the replay) for ever."""
    encoded = tmp_path / "call.aac"
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:duration=150", "-ar", "8000"]
    aac = ["-c:a", "aac", "-b:a", "16k", "-f", "adts", str(encoded)]
    subprocess.run(["ffmpeg", "-v", "error", *tone, *aac], check=True, timeout=60)
    data = bytearray(encoded.read_bytes())
    rng = np.random.default_rng(4)
    data[2_000::97] = rng.integers(0, 256, len(data[2_000::97]), dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.aac"
    damaged.write_bytes(bytes(data))
    talk = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(damaged), "-f", "f32le", "-"],
        capture_output=True,
        timeout=60,
    )
    assert len(talk.stderr) > 1 << 16  # more than a pipe holds

    outcome: list[BaseException | int] = []

    def read_all() -> None:
        try:
            _, blocks = open_audio_stream(damaged)
            outcome.append(sum(block.shape[1] for block in blocks))
        except AudioDecodeError as error:
            outcome.append(error)

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    reader.join(60)
    assert not reader.is_alive(), "reading the damaged file stalled"
    (result,) = outcome
    if isinstance(result, AudioDecodeError):  # ffmpeg gave up: one line, its last words
        assert "\n" not in str(result)
        assert str(result).startswith(f"{damaged}: ffmpeg could not decode it (")
    else:
        assert result > 60 * 8_000


# --------------------------------------------------------------------------------- plots


def test_the_envelope_holds_the_extremes_of_each_stretch(tmp_path: Path) -> None:
    rate, seconds = 8_000, 60.0
    rng = np.random.default_rng(1)
    signal = (0.5 * rng.uniform(-1, 1, (2, round(rate * seconds)))).astype(np.float32)
    signal[1, 123_456] = 0.99  # a click the envelope must keep
    path = tmp_path / "long.wav"
    soundfile.write(path, signal.T, rate, subtype="FLOAT")

    times, lows, highs = waveform_envelope(path, points=2_000)
    assert lows.shape == highs.shape == (2, 2_000)
    bucket = 240  # 480,000 frames in 2,000 stretches
    np.testing.assert_array_equal(times, np.arange(2_000) * bucket / rate)
    np.testing.assert_array_equal(lows, signal.reshape(2, -1, bucket).min(axis=2))
    np.testing.assert_array_equal(highs, signal.reshape(2, -1, bucket).max(axis=2))
    assert highs[1].max() == np.float32(0.99)


def test_the_envelope_of_a_stream_of_unknown_length(tmp_path: Path) -> None:
    """A raw mu-law file comes through an ffmpeg pipe: its length is known only at the end."""
    rate = 8_000
    codes = np.random.default_rng(2).integers(0, 256, rate * 50, dtype=np.uint8)
    path = tmp_path / "call.ul"
    path.write_bytes(codes.tobytes())
    times, lows, highs = waveform_envelope(path, points=2_000)
    assert lows.shape == highs.shape
    assert 1_000 <= lows.shape[1] <= 2_000
    decoded, _ = soundfile.read(  # libsndfile's own mu-law decoder, as a reference
        path, samplerate=rate, channels=1, format="RAW", subtype="ULAW", dtype="float32"
    )
    assert lows.min() == decoded.min()
    assert highs.max() == decoded.max()
    assert times[-1] < 50.0


def hand_made_report(path: Path, channels: int) -> FileReport:
    windows = [
        {
            "channel": channel,
            "start": 0.5 * i,
            "end": 0.5 * i + 2.0,
            "score": 0.1 + 0.1 * i,
            "raw": 0.0,
            "speech": i != 2,
        }
        for channel in range(channels)
        for i in range(7)
    ]
    alerts = [
        {"topic": "alert.raised", "channel": 0, "start": 2.0, "end": 4.0},
        {"topic": "alert.cleared", "channel": 0, "start": 2.5, "end": 4.5},
        {"topic": "alert.raised", "channel": 0, "start": 2.5, "end": 4.5},
    ]
    return FileReport(
        path=str(path),
        duration_s=5.0,
        channels=channels,
        sample_rate=8_000,
        source_format="WAV/FLOAT",
        elapsed_s=0.1,
        threshold=0.45,
        model={"name": "test", "version": "1"},
        windows=windows,
        alerts=[{**a, "score": 0.9, "rule": "windows", "over": 3, "of": 5} for a in alerts],
        channel_verdicts={c: "synthetic" if c == 0 else "bona fide" for c in range(channels)},
        channel_speech_s={c: 4.5 for c in range(channels)},
        decision={"rule": "windows", "raise_over": 3, "of": 5},
    )


def test_the_terminal_report_of_one_window_and_of_many(tmp_path: Path) -> None:
    report = hand_made_report(tmp_path / "x.wav", 1)
    lines = format_report(report, width=100).splitlines()
    timeline, axis = lines[2], lines[3]
    assert timeline == "  ch0 ▁▂·▄!!!"  # scores 0.1..0.7 against 0.45; the third is silence
    assert axis == "      0 s 5 s  (7 windows, hop 0.50 s)"  # the last window ends at 5 s
    assert "(3 of the last 5 speech windows at or above threshold)" in lines[4]
    assert "at or above threshold)" in lines[1]  # the legend
    short = dataclasses.replace(report, windows=report.windows[:1], alerts=[])
    lines = format_report(short, width=100).splitlines()
    assert lines[2:4] == ["  ch0 ▁", "      0 s 2 s  (1 window)"]
    long = dataclasses.replace(
        report,
        windows=[{**report.windows[0], "start": 0.5 * i, "end": 0.5 * i + 2} for i in range(400)],
    )
    timeline, axis = format_report(long, width=100).splitlines()[2:4]
    assert len(timeline) == len("  ch0 ") + 100  # four windows to a cell
    assert len(axis) - len("  (400 windows, hop 0.50 s)") == len(timeline)
    assert axis.split("  (")[0].endswith(" 202 s")
    by_evidence = dataclasses.replace(
        report,
        alerts=[
            {
                **report.alerts[0],
                "rule": "evidence",
                "evidence": 6.0,
                "raise_at": 6.0,
                "clear_at": 0.0,
                "speech_s": 4.0,
            }
        ],
        channel_verdicts={0: "inconclusive"},
        channel_speech_s={0: 2.5},
    )
    lines = format_report(by_evidence).splitlines()
    assert "(evidence 6.0 >= 6 nats after 4.0 s of speech)" in lines[4]
    assert lines[-1] == "  verdict: INCONCLUSIVE  (ch0: inconclusive (only 2.5 s of speech))"
    hostile = dataclasses.replace(report, path=str(tmp_path / "x\x1b[2K\rverdict: BONA FIDE.wav"))
    first = format_report(hostile).splitlines()[0]  # the file name cannot rewrite the terminal
    assert first.isprintable() and "x\\x1b[2K\\rverdict: BONA FIDE.wav" in first


@pytest.mark.parametrize("channels", [1, 3])
def test_a_plot_has_a_waveform_and_a_score_panel_per_channel(tmp_path: Path, channels: int) -> None:
    audio = tmp_path / "call.wav"
    samples = np.random.default_rng(3).uniform(-0.5, 0.5, (5 * 8_000, channels))
    soundfile.write(audio, samples.astype(np.float32), 8_000, subtype="FLOAT")
    report = hand_made_report(audio, channels)

    figure = report_figure(report)
    assert len(figure.axes) == 2 * channels
    title = figure.get_suptitle()
    assert "call.wav" in title and "test 1" in title and "SYNTHETIC" in title
    score_axes = figure.axes[1]
    dashed = [line for line in score_axes.get_lines() if line.get_linestyle() == "--"]
    assert [tuple(line.get_ydata()) for line in dashed] == [(0.45, 0.45)]

    target = tmp_path / "out" / "call.png"
    plot_report(report, target)
    image = target.read_bytes()
    assert image.startswith(PNG_SIGNATURE)
    assert len(image) > 10_000


def test_replay_plots_several_files_to_numbered_names(
    reports: dict[str, dict[str, Any]], plots: Path
) -> None:
    assert sorted(p.name for p in plots.iterdir()) == ["audit-1.png", "audit-2.png"]
    for path in plots.iterdir():
        assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_publish_sends_the_replayed_events_to_a_waiting_subscriber() -> None:
    import zmq

    context = zmq.Context()
    subscriber = context.socket(zmq.SUB)
    subscriber.setsockopt(zmq.LINGER, 0)
    subscriber.setsockopt(zmq.SUBSCRIBE, b"")
    port = subscriber.bind_to_random_port("tcp://127.0.0.1")  # find a free port
    subscriber.unbind(subscriber.getsockopt_string(zmq.LAST_ENDPOINT))
    subscriber.connect(f"tcp://127.0.0.1:{port}")  # waiting before the publisher exists
    try:
        result = invoke("replay", str(DEMO_CALL), "--publish", f"tcp://127.0.0.1:{port}")
        assert result.exit_code == 1, result.output
        events = []
        while subscriber.poll(2000):
            topic, payload = subscriber.recv_multipart()
            events.append((topic.decode(), json.loads(payload)))
    finally:
        subscriber.close()
        context.term()
    topics = [topic for topic, _ in events]
    assert topics[0] == "call.started" and topics[-1] == "call.ended"
    assert topics.count("alert.raised") == 1
    assert topics.count("score") == 38  # every window of the 20.3 s call, hop 0.5 s
    seqs = [event["seq"] for _, event in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    (alert,) = [event for topic, event in events if topic == "alert.raised"]
    assert alert["end"] > SYNTHETIC_FROM_S
    assert events[-1][1]["verdict"] == "synthetic"


def test_publish_binds_to_localhost_only_unless_remote_endpoints_are_allowed() -> None:
    result = invoke("replay", "--publish", "tcp://0.0.0.0:5999", str(SAMPLE_CALL))
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(ERROR_PREFIX + "--publish: tcp://0.0.0.0:5999 binds to 0.0.0.0")
    assert "serve.allow_remote_endpoints = true" in line
    assert result.stdout == ""  # nothing was replayed


def test_an_audit_never_sheds_a_window_however_short_the_hop() -> None:
    """16 windows a second per channel outrun the scorer; a live call would shed the oldest
    waiting ones, an audit waits for them (it used to report 220 of 446 unscored)."""
    result = invoke("replay", "--json", "--hop", "0.0625", str(SAMPLE_CALL))
    assert result.exit_code == 0, result.output
    report = json_lines(result.stdout)[0]
    per_channel = math.floor((report["duration"] - 2.0) / 0.0625) + 1 + 1  # and the tail window
    assert len(report["windows"]) == 2 * per_channel
    assert all(window["score"] is not None for window in report["windows"])
