"""One scoring path: the windows and their scores are the same whether a recording is
evaluated (``dfd eval --windows``), audited (``dfd replay``) or heard live packet by packet
(``CallStream``; the live PCM ingest's agreement is in test_serve.py). Audio not at 16 kHz is
resampled as it streams in, and each window is cut as soon as its last input sample is in: live
and replay still agree exactly, and `dfd eval` (the file resampled whole) differs from them only
in each window's last few milliseconds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import structlog
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from dfd.daemon.cli import main
from dfd.daemon.engine.callstream import CallStream
from dfd.daemon.engine.decisions import DecisionPolicy
from dfd.daemon.engine.models import ModelSet
from dfd.daemon.engine.scoring import FeatureStage, InProcessScorer
from dfd.daemon.engine.speech import SpeechGate
from dfd.dsp.audio_io import load_audio
from dfd.dsp.extract import scoring_windows
from dfd.dsp.framer import WindowGeometry
from tests.signals import RATE, REPO

GEOMETRY = WindowGeometry(RATE, 2.0, 0.5)
DEMO = REPO / "samples" / "call-bonafide-then-synthetic-8k-ulaw.wav"


def live_windows(signal: np.ndarray, chunk: int) -> list[tuple[int, np.ndarray]]:
    stream = CallStream("c", 0, "t", RATE, GEOMETRY, SpeechGate(), DecisionPolicy(), 0.5)
    windows = []
    for first in range(0, len(signal), chunk):
        windows += stream.push(signal[first : first + chunk], 0.0)
    windows += stream.finish("bye", 0.0)
    return [(w.start, w.samples) for w in windows]


@settings(max_examples=40, deadline=None)
@given(
    length=st.integers(1, 6 * RATE),
    chunk=st.sampled_from([160, 320, 1000, 16_000]),
)
def test_the_scoring_windows_are_those_a_live_stream_cuts(length: int, chunk: int) -> None:
    signal = np.random.default_rng(length).standard_normal(length).astype(np.float32)
    offline = [(w.start, w.samples) for w in scoring_windows(signal, GEOMETRY)]
    live = live_windows(signal, chunk)
    assert [start for start, _ in offline] == [start for start, _ in live]
    for (_, ours), (_, theirs) in zip(offline, live, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    if length >= GEOMETRY.window_samples:  # every window is real audio, the last ends the file
        assert offline[-1][0] + GEOMETRY.window_samples == length
        assert all(len(samples) == GEOMETRY.window_samples for _, samples in offline)


def invoke(*args: str) -> str:
    try:
        result = CliRunner().invoke(main, ["--log-level", "warning", *args])
    finally:
        structlog.reset_defaults()
    assert result.exit_code in (0, 1, 3), result.output
    return result.stdout


@pytest.mark.parametrize("seconds", [5.3, 1.3, 6.0])
def test_eval_and_replay_score_every_window_alike(tmp_path: Path, seconds: float) -> None:
    """A file whose length is not a multiple of the hop (5.3 s), one shorter than a window
    (1.3 s, repeated) and one the windows tile (6.0 s): the same windows, the same raw outputs."""
    audio = load_audio(DEMO, sample_rate=RATE).samples[0]
    start = round(6.0 * RATE)  # human speech, then the synthetic voice at 8.9 s
    (tmp_path / "flac").mkdir()
    soundfile.write(
        tmp_path / "flac" / "call.wav", audio[start : start + round(seconds * RATE)], RATE,
        subtype="FLOAT",
    )  # fmt: skip
    protocol = tmp_path / "protocol.txt"
    protocol.write_text("speaker call - - bonafide\n")
    invoke("eval", "--model", "default", "--data", str(protocol), "--out", str(tmp_path / "e"),
           "--windows")  # fmt: skip
    with (tmp_path / "e" / "windows.tsv").open() as handle:
        evaluated = list(csv.DictReader(handle, delimiter="\t"))
    (report,) = [
        json.loads(line)
        for line in invoke("replay", "--json", str(tmp_path / "flac" / "call.wav")).splitlines()
    ]
    replayed = report["windows"]
    np.testing.assert_allclose(
        [(float(w["start"]), float(w["end"])) for w in evaluated],
        [(w["start"], w["end"]) for w in replayed],
        atol=1e-3,
    )
    np.testing.assert_allclose(
        [float(w["raw"]) for w in evaluated], [w["raw"] for w in replayed], atol=1e-5
    )


def test_a_live_8khz_call_scores_as_its_replay_and_near_the_whole_file() -> None:
    """The demo call pushed at its own 8 kHz in 20 ms packets, as RTP brings it, scores window
    for window as `dfd replay` of the file (read a second at a time): a window is cut as soon as
    its last input sample is in, so its last 8.6 ms are resampled as if the call ended there,
    however the audio was split. Against the file resampled whole (what `dfd eval` scores), only
    those milliseconds differ: the embedded default's raw outputs within 0.05 (0.033 at most
    when measured, mean 0.002)."""
    narrow, rate = soundfile.read(DEMO, dtype="float32")
    assert rate == 8_000
    models = ModelSet.load(["default"])
    stream = CallStream("c", 0, "t", 8_000, models.geometry, SpeechGate(), DecisionPolicy(), 0.5)
    live = [w for i in range(0, len(narrow), 160) for w in stream.push(narrow[i : i + 160], 0.0)]
    live += stream.finish("bye", 0.0)
    whole = scoring_windows(load_audio(DEMO).samples[0], models.geometry)
    assert [w.start for w in live] == [w.start for w in whole]
    scorer = InProcessScorer(models.paths, threads=1)
    features = FeatureStage(models.frontend_inputs)
    for number, windows in enumerate([live, whole]):
        scorer.submit(number, features.compute(np.stack([w.samples for w in windows])))
    (_, live_raw), (_, whole_raw) = scorer.collect(0.0)
    assert live_raw is not None and whole_raw is not None

    (report,) = [json.loads(line) for line in invoke("replay", "--json", str(DEMO)).splitlines()]
    replayed = report["windows"]
    np.testing.assert_allclose(
        [(w.start / RATE, w.end / RATE) for w in live],
        [(w["start"], w["end"]) for w in replayed],
        atol=1e-3,
    )
    np.testing.assert_allclose(live_raw[0], [w["raw"] for w in replayed], atol=1e-5)
    difference = live_raw[0] - whole_raw[0]
    assert 0 < np.abs(difference).max() < 0.05
    assert abs(difference.mean()) < 0.005
