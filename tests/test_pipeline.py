"""The real-time pipeline: ``CallStream`` windows, ordering, shedding, lost batches, events,
model fusion, and the scorers (in-process and worker processes).

The mechanics are tested with small untrained models exported once per module and, where the
ordering of batch completions matters, a scripted scorer; the real scorers and the embedded
default model are tested on real audio."""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dfd.core.typed_config import ConfigError
from dfd.daemon.audit.replay import ReplayRecorder
from dfd.daemon.engine.callstream import CallStream, PendingWindow
from dfd.daemon.engine.decisions import DecisionPolicy
from dfd.daemon.engine.events import AudioChunk, StreamEnded
from dfd.daemon.engine.models import (
    UNCALIBRATED_THRESHOLD,
    LoadedModel,
    ModelSet,
    default_bundle_path,
    pick_threshold,
)
from dfd.daemon.engine.pipeline import Pipeline
from dfd.daemon.engine.scoring import BatchResult, InProcessScorer, WorkerError, WorkerPool
from dfd.daemon.engine.speech import SpeechGate
from dfd.daemon.settings import PipelineSettings
from dfd.detectors.bundle import (
    MODEL_NAME,
    BundleError,
    Calibration,
    ModelWindow,
    OperatingPoint,
    Thresholds,
    load_bundle,
    new_card,
    write_bundle,
)
from dfd.detectors.export import export_onnx
from dfd.detectors.registry import family
from dfd.detectors.runtime import DetectorSession
from dfd.dsp.audio_io import resample
from dfd.dsp.batcher import FrontendBank
from dfd.dsp.framer import WindowFramer, WindowGeometry
from dfd.dsp.stream_resample import StreamResampler
from tests.signals import RATE, REPO

DEMO_CALL = REPO / "samples" / "call-bonafide-then-synthetic-8k-ulaw.wav"
SYNTHETIC_FROM_S = 8.90  # the demo call is human until here, Piper TTS after
GEOMETRY = WindowGeometry(RATE, 2.0, 0.5)
WINDOW, HOP = GEOMETRY.window_samples, GEOMETRY.hop_samples
QUIET_DBFS, LOUD_DBFS = -30.0, -10.0  # both speech to the gate (noise, not a tone)
LOUD_RMS = 0.1  # the scripted scorer calls a window synthetic above this RMS


# ------------------------------------------------------------------------------ fixtures


@dataclasses.dataclass(frozen=True)
class Bundles:
    wave: Path  # sinc-lcnn, 2 s every 0.5 s; score = sigmoid(raw); eer 0.5, far_1pct 0.8
    wave_b: Path  # the same graph, another card: sigmoid(2 raw - 1); eer 0.3, far_1pct 0.9
    wave_1s: Path  # sinc-lcnn with 1 s windows
    mfcc: Path  # mfcc-cnn (class logits): sigmoid(0.5 raw + 0.25); eer 0.6, far_1pct 0.95
    uncalibrated: Path  # the graph of `wave` with a card that has no thresholds
    no_thresholds: Path  # the graph of `wave`, calibrated, but its thresholds never measured
    wave_point: Path  # `wave` with an operating point: the evidence rule raises at 4.5 nats


def export(folder: Path, name: str, samples: int) -> Path:
    entry = family(name)
    torch.manual_seed(11)
    model = entry.build().eval()
    example = 0.1 * torch.randn(2, samples, generator=torch.Generator().manual_seed(0))
    features = FrontendBank("cpu").compute(example, [entry.frontend])[entry.frontend].clone()
    return export_onnx(
        model,
        features,
        folder / f"{name}-{samples}.onnx",
        output_name=entry.output_name,
        metadata=entry.metadata(),
    )


def bundle(folder: Path, onnx: Path, name: str, samples: int, version: str, **card: Any) -> Path:
    point = card.pop("operating_point", None)
    written = new_card(family(name), version=version, window=ModelWindow.of(samples, 0.5), **card)
    return write_bundle(folder, onnx, dataclasses.replace(written, operating_point=point))


OPERATING_POINT = OperatingPoint(
    raise_at=4.5,
    max_window_evidence=3.0,
    target_false_alarm_rate=0.01,
    false_alarm_rate=0.0,
    real_calls=3,
    real_hours=0.1,
    turning_calls=1,
    turning_detected=1,
    median_time_to_alert_s=3.0,
    chosen_on="calls.dev.tsv",
)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    root = tmp_path_factory.mktemp("bundles")
    wave, wave_1s = export(root, "sinc-lcnn", WINDOW), export(root, "sinc-lcnn", RATE)
    mfcc = export(root, "mfcc-cnn", WINDOW)
    return Bundles(
        wave=bundle(
            root / "wave",
            wave,
            "sinc-lcnn",
            WINDOW,
            "a",
            calibration=Calibration(slope=1.0, offset=0.0, calibrated=True),
            thresholds=Thresholds(eer=0.5, far_1pct=0.8),
        ),
        wave_b=bundle(
            root / "wave-b",
            wave,
            "sinc-lcnn",
            WINDOW,
            "b",
            calibration=Calibration(slope=2.0, offset=-1.0, calibrated=True),
            thresholds=Thresholds(eer=0.3, far_1pct=0.9),
        ),
        wave_1s=bundle(
            root / "wave-1s",
            wave_1s,
            "sinc-lcnn",
            RATE,
            "a",
            calibration=Calibration(slope=1.0, offset=0.0, calibrated=True),
            thresholds=Thresholds(eer=0.5, far_1pct=0.8),
        ),
        mfcc=bundle(
            root / "mfcc",
            mfcc,
            "mfcc-cnn",
            WINDOW,
            "m",
            calibration=Calibration(slope=0.5, offset=0.25, calibrated=True),
            thresholds=Thresholds(eer=0.6, far_1pct=0.95),
        ),
        uncalibrated=bundle(root / "uncalibrated", wave, "sinc-lcnn", WINDOW, "u"),
        no_thresholds=bundle(
            root / "no-thresholds",
            wave,
            "sinc-lcnn",
            WINDOW,
            "n",
            calibration=Calibration(slope=1.0, offset=0.0, calibrated=True),
        ),
        wave_point=bundle(
            root / "wave-point",
            wave,
            "sinc-lcnn",
            WINDOW,
            "p",
            calibration=Calibration(slope=1.0, offset=0.0, calibrated=True),
            thresholds=Thresholds(eer=0.5, far_1pct=0.8),
            operating_point=OPERATING_POINT,
        ),
    )


@pytest.fixture(scope="module")
def wave_models(bundles: Bundles) -> ModelSet:
    return ModelSet.load([bundles.wave])


def noise_at(dbfs: float, seconds: float, seed: int = 0, rate: int = RATE) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(round(seconds * rate))
    return (noise * 10 ** (dbfs / 20) / np.sqrt(np.mean(noise**2))).astype(np.float32)


def rms(windows: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.square(windows, dtype=np.float64), axis=1))


class ScriptedScorer:
    """A ``Scorer`` whose raw output is scripted from the features it is given (by default
    +4 for a window louder than ``LOUD_RMS``, else -4: the test signal says which windows are
    'synthetic'). It holds every batch until ``collect``, which returns them newest first;
    ``slots`` bounds how many it takes at once, and batches in ``lose`` come back lost."""

    def __init__(
        self,
        slots: int = 1_000,
        lose: frozenset[int] = frozenset(),
        raw_of: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.slots = slots
        self.lose = lose
        self.raw_of = raw_of or (lambda features: np.where(rms(features) > LOUD_RMS, 4.0, -4.0))
        self.pending: list[BatchResult] = []
        self.submitted: list[tuple[int, int]] = []  # (batch id, windows)
        self.completed: list[int] = []  # batch ids in the order collect returned them

    @property
    def free_slots(self) -> int:
        return max(0, self.slots - len(self.pending))

    @property
    def in_flight(self) -> int:
        return len(self.pending)

    def submit(self, batch_id: int, features: list[np.ndarray]) -> None:
        assert len(self.pending) < self.slots, "submitted without a free slot"
        self.submitted.append((batch_id, len(features[0])))
        raw = None if batch_id in self.lose else np.stack([self.raw_of(f) for f in features])
        self.pending.append((batch_id, raw))

    def collect(self, timeout: float) -> list[BatchResult]:
        done, self.pending = self.pending[::-1], []
        self.completed += [batch_id for batch_id, _ in done]
        return done

    def close(self) -> None:
        self.pending.clear()


WINDOWS_RULE = DecisionPolicy(rule="windows")


def make_pipeline(
    models: ModelSet,
    scorer: Any,
    decision: DecisionPolicy | None = None,
    one_window_per_stream: bool = False,
    **pipeline_settings: Any,
) -> tuple[Pipeline, ReplayRecorder]:
    recorder = ReplayRecorder()
    pipeline = Pipeline(
        models,
        scorer,
        recorder,
        PipelineSettings(**pipeline_settings),
        decision=decision or WINDOWS_RULE,  # most tests here count windows; see the evidence ones
        frontend_device="cpu",
        one_window_per_stream=one_window_per_stream,
    )
    return pipeline, recorder


def feed(
    pipeline: Pipeline,
    samples: np.ndarray,
    rate: int = RATE,
    chunk: int | None = None,
    call_id: str = "call",
    channel: int = 0,
    pump: bool = True,
    end: bool = True,
) -> None:
    step = chunk or len(samples)
    for first in range(0, len(samples), step):
        pipeline.accept(AudioChunk(call_id, channel, samples[first : first + step], rate))
        if pump:
            pipeline.pump()
    if end:
        pipeline.accept(StreamEnded(call_id, channel, "bye"))


def topics(recorder: ReplayRecorder) -> list[str]:
    return [event.topic for event in recorder.events]


def of_topic(recorder: ReplayRecorder, topic: str) -> list[dict[str, Any]]:
    """The published bodies of the events on ``topic``, in order."""
    return [event.body() for event in recorder.events if event.topic == topic]


# ------------------------------------------------------------------ windows of a CallStream


def new_stream(source_rate: int, gate: SpeechGate | None = None) -> CallStream:
    return CallStream(
        "call", 0, "test", source_rate, GEOMETRY, gate or SpeechGate(), DecisionPolicy(), 0.5
    )


def stream_windows(source_rate: int, chunks: list[np.ndarray]) -> list[PendingWindow]:
    stream = new_stream(source_rate)
    windows = [w for chunk in chunks for w in stream.push(chunk, 0.0)]
    return windows + stream.finish("bye", 0.0)


def input_end(end: int, rate: int) -> int:
    """The source samples a 16 kHz window ending at ``end`` is resampled from: up to the whole
    input step holding its last sample."""
    common = math.gcd(rate, RATE)
    step_in, step_out = rate // common, RATE // common
    return -(-end // step_out) * step_in


def expected_windows(signal: np.ndarray, rate: int = RATE) -> list[tuple[int, int, np.ndarray]]:
    """``(start, end, samples)`` of a whole signal at ``rate``: the ``WindowFramer``'s windows of
    it resampled to 16 kHz (a window every hop while one fits); then, if audio is left uncovered,
    one over the last window's worth, ending at the end of the stream; or the whole stream
    repeated when it is shorter than one window. A live stream cuts each window as soon as the
    input up to its end is in, so a window is the audio up to its end resampled as if its last
    sample held on: the whole signal's window but for its last few milliseconds."""
    whole = resample(signal, rate, RATE)
    length = len(whole)
    if length == 0:
        return []
    if length < WINDOW:
        return [(0, length, np.resize(whole, WINDOW))]
    windows = []
    hold = StreamResampler(rate, RATE).delay_samples  # the look-ahead, taken as the last sample
    for w in WindowFramer(GEOMETRY).push(whole):
        known = signal[: input_end(w.end, rate)]
        held = np.concatenate([known, np.full(hold, known[-1], dtype=np.float32)])
        windows.append((w.start, w.end, resample(held, rate, RATE)[w.start : w.end]))
    if windows[-1][1] < length:
        windows.append((length - WINDOW, length, whole[length - WINDOW :]))
    return windows


def assert_windows_match(got: list[PendingWindow], signal: np.ndarray, rate: int = RATE) -> None:
    expected = expected_windows(signal, rate)
    assert [(w.start, w.end) for w in got] == [(s, e) for s, e, _ in expected]
    assert [w.index for w in got] == list(range(len(expected)))
    for window, (_, _, samples) in zip(got, expected, strict=True):
        assert window.samples.shape == (WINDOW,)
        np.testing.assert_allclose(window.samples, samples, rtol=0, atol=1e-5)


def split(signal: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    bounds = np.minimum(np.cumsum([0, *sizes]), len(signal))
    return [signal[a:b] for a, b in itertools.pairwise(bounds)] + [signal[bounds[-1] :]]


@pytest.mark.parametrize("chunk", [None, 160, 1_000, 37])
def test_8khz_windows_match_the_whole_signal_resampled_and_framed(chunk: int | None) -> None:
    narrow = noise_at(-20.0, 3.3, seed=1, rate=8_000)  # 20 ms packets when chunk == 160
    chunks = (
        [narrow] if chunk is None else [narrow[i : i + chunk] for i in range(0, len(narrow), chunk)]
    )
    got = stream_windows(8_000, chunks)
    assert_windows_match(got, narrow, 8_000)
    assert got[-1].end == 2 * len(narrow)  # the tail ends where the stream ends
    whole = resample(narrow, 8_000, RATE)
    provisional = 2 * StreamResampler(8_000, RATE).delay_samples  # 16 kHz samples resampled
    for window in got:  # the input taken to hold after the window: only the last 8.6 ms differ
        exact = whole[window.start : window.end]
        np.testing.assert_allclose(window.samples[:-provisional], exact[:-provisional], atol=1e-5)
    assert np.abs(got[0].samples[-provisional:] - whole[WINDOW - provisional : WINDOW]).max() > 0.01


def test_a_window_is_cut_by_the_packet_that_holds_its_last_sample() -> None:
    """At 8 kHz in 20 ms packets, the first window (2 s) is complete with packet 100; the
    resampler's 8.6 ms look-ahead must not hold it until packet 101."""
    narrow = noise_at(-20.0, 3.0, seed=2, rate=8_000)
    stream = new_stream(8_000)
    cut_by = [len(stream.push(narrow[i : i + 160], 0.0)) for i in range(0, len(narrow), 160)]
    assert [number + 1 for number, count in enumerate(cut_by) if count] == [100, 125, 150]


@settings(max_examples=25, deadline=None)
@given(
    rate=st.sampled_from([8_000, 16_000, 44_100]),
    seconds=st.floats(0.05, 3.2),
    sizes=st.lists(
        st.one_of(st.just(0), st.just(1), st.integers(2, 400), st.integers(401, 9_000)),
        max_size=25,
    ),
)
def test_windows_do_not_depend_on_the_chunking(rate: int, seconds: float, sizes: list[int]) -> None:
    signal = noise_at(-20.0, seconds, seed=len(sizes), rate=rate)
    got = stream_windows(rate, split(signal, sizes))
    assert_windows_match(got, signal, rate)


def test_the_tail_window_covers_the_last_window_of_audio() -> None:
    signal = noise_at(-20.0, 3.3)  # 52,800 samples: windows end at 32k, 40k, 48k
    got = stream_windows(RATE, [signal])
    assert [(w.start, w.end) for w in got] == [
        (0, 32_000),
        (8_000, 40_000),
        (16_000, 48_000),
        (20_800, 52_800),
    ]
    np.testing.assert_array_equal(got[-1].samples, signal[-WINDOW:])


def test_no_tail_window_when_the_windows_cover_the_stream() -> None:
    got = stream_windows(RATE, [noise_at(-20.0, 3.0)])
    assert [(w.start, w.end) for w in got] == [(0, 32_000), (8_000, 40_000), (16_000, 48_000)]


@pytest.mark.parametrize(("rate", "seconds"), [(RATE, 0.75), (8_000, 0.3), (RATE, 1.999)])
def test_a_stream_shorter_than_a_window_yields_one_repeated_window(
    rate: int, seconds: float
) -> None:
    signal = noise_at(-20.0, seconds, rate=rate)
    got = stream_windows(rate, [signal[:100], signal[100:]])
    resampled = resample(signal, rate, RATE)
    assert len(got) == 1
    assert (got[0].start, got[0].end) == (0, len(resampled))
    np.testing.assert_allclose(got[0].samples, np.resize(resampled, WINDOW), rtol=0, atol=1e-5)


def test_an_empty_stream_yields_no_window() -> None:
    assert stream_windows(8_000, [np.zeros(0, dtype=np.float32)]) == []


def test_windows_are_marked_by_the_speech_gate() -> None:
    signal = np.concatenate([np.zeros(2 * RATE, dtype=np.float32), noise_at(-20.0, 2.0)])
    got = stream_windows(RATE, [signal])
    gate = SpeechGate()
    assert [w.speech for w in got] == [gate.is_speech(w.samples) for w in got]
    assert got[0].speech is False
    assert got[-1].speech is True


def test_pushing_after_the_end_is_refused() -> None:
    stream = new_stream(RATE)
    stream.finish("bye", 0.0)
    with pytest.raises(ValueError, match="already ended"):
        stream.push(np.zeros(10, dtype=np.float32), 0.0)


# ----------------------------------------------------------------- ordering and overload


def quiet_then_loud() -> np.ndarray:
    """3 s quiet then 3 s loud: windows from 1.5 s on are over LOUD_RMS (0.5 s of the loud
    part is enough), so with 3 of 5 the alert is raised on the window starting at 2.5 s."""
    return np.concatenate([noise_at(QUIET_DBFS, 3.0, 1), noise_at(LOUD_DBFS, 3.0, 2)])


def test_windows_are_applied_in_order_when_batches_complete_out_of_order(
    wave_models: ModelSet,
) -> None:
    scorer = ScriptedScorer()
    pipeline, recorder = make_pipeline(
        wave_models, scorer, batch_size=2, max_queued_windows_per_stream=20
    )
    feed(pipeline, quiet_then_loud(), pump=False)  # everything queued, nothing dispatched
    pipeline.drain()

    assert scorer.completed == sorted(scorer.completed, reverse=True)  # newest batch first
    assert len(scorer.completed) == 5  # 9 windows in batches of 2
    scores = of_topic(recorder, "score")
    assert [s["start"] for s in scores] == [0.5 * i for i in range(9)]
    assert [s["score"] > 0.5 for s in scores] == [False] * 3 + [True] * 6
    (raised,) = of_topic(recorder, "alert.raised")
    assert (raised["start"], raised["end"]) == (2.5, 4.5)
    assert (raised["over"], raised["of"]) == (3, 5)
    assert topics(recorder).index("alert.raised") == topics(recorder).index("score") + 6
    assert pipeline.counters.windows_scored == 9
    assert pipeline.idle


def test_a_stream_over_its_queue_bound_sheds_its_oldest_windows(wave_models: ModelSet) -> None:
    scorer = ScriptedScorer(slots=0)  # the host cannot keep up: nothing can be dispatched
    pipeline, recorder = make_pipeline(
        wave_models,
        scorer,
        decision=DecisionPolicy(rule="windows", raise_over=2, of=2),
        max_queued_windows_per_stream=2,
    )
    loud = noise_at(LOUD_DBFS, 4.0)  # 5 windows, all 'synthetic'
    feed(pipeline, loud, chunk=800, channel=0)
    feed(pipeline, loud, chunk=800, channel=1)
    assert pipeline.counters.windows_shed == 6  # 3 per stream, the 2 newest of each kept
    assert pipeline.queued_windows == 4
    scorer.slots = 10
    pipeline.drain()

    for channel in (0, 1):
        scores = [s for s in of_topic(recorder, "score") if s["channel"] == channel]
        assert [s["start"] for s in scores] == [0.0, 0.5, 1.0, 1.5, 2.0]  # still in order
        assert [s["score"] is None for s in scores] == [True, True, True, False, False]
        (raised,) = [a for a in of_topic(recorder, "alert.raised") if a["channel"] == channel]
        assert raised["start"] == 2.0  # shed windows did not count towards the alert
        (ended,) = [e for e in of_topic(recorder, "call.ended") if e["channel"] == channel]
        assert (ended["windows"], ended["speech_windows"]) == (5, 2)
        fates = ("windows_scored", "windows_no_speech", "windows_shed", "windows_lost")
        assert [ended[key] for key in fates] == [2, 0, 3, 0]
    assert pipeline.counters.windows_scored == 4
    assert pipeline.counters.windows == 10


def test_a_flood_of_new_streams_sheds_its_own_windows_not_those_of_a_call_under_way(
    wave_models: ModelSet,
) -> None:
    """The global bound: a call talking for 10 s, then 40 new streams of 2 s each, while
    nothing can be scored. The new streams shed first; the call keeps its queued windows."""
    scorer = ScriptedScorer(slots=0)
    pipeline, recorder = make_pipeline(
        wave_models, scorer, max_queued_windows=12, max_queued_windows_per_stream=8
    )
    feed(pipeline, noise_at(LOUD_DBFS, 10.0), call_id="established", end=False)
    assert pipeline.queued_windows == 8  # its own bound: 17 windows cut, 9 shed
    for number in range(40):
        feed(pipeline, noise_at(LOUD_DBFS, 2.0, seed=number), call_id=f"flood-{number}")
    assert pipeline.queued_windows == 12
    queued = collections.Counter(w.stream.call_id for w in pipeline._queue)
    assert queued["established"] == 8  # none of its windows went for the flood
    scorer.slots = 10
    pipeline.end_all("bye")
    pipeline.drain()
    ended = {e["call_id"]: e for e in of_topic(recorder, "call.ended")}
    assert ended["established"]["windows_shed"] == 9
    assert sum(e["windows_shed"] for k, e in ended.items() if k != "established") >= 36


def test_a_stream_shorter_than_min_stream_s_gets_no_window(wave_models: ModelSet) -> None:
    pipeline, recorder = make_pipeline(wave_models, ScriptedScorer(), min_stream_s=0.5)
    feed(pipeline, noise_at(LOUD_DBFS, 0.02), call_id="one-packet")
    feed(pipeline, noise_at(LOUD_DBFS, 0.6), call_id="short")
    pipeline.drain()
    ended = {e["call_id"]: e for e in of_topic(recorder, "call.ended")}
    assert (ended["one-packet"]["windows"], ended["one-packet"]["verdict"]) == (0, "no speech")
    assert ended["short"]["windows"] == 1
    assert pipeline.idle


def test_lost_batches_are_counted_and_their_windows_left_unscored(
    wave_models: ModelSet,
) -> None:
    scorer = ScriptedScorer(lose=frozenset({0}))
    pipeline, recorder = make_pipeline(wave_models, scorer, batch_size=4)
    feed(pipeline, noise_at(LOUD_DBFS, 4.5), pump=False)  # 6 windows: batches of 4 and 2
    pipeline.drain()

    assert pipeline.counters.windows_lost == 4
    assert pipeline.counters.windows_scored == 2
    scores = of_topic(recorder, "score")
    assert [s["score"] is None for s in scores] == [True] * 4 + [False] * 2
    assert all(s["raw"] is None for s in scores[:4])
    (ended,) = of_topic(recorder, "call.ended")
    assert (ended["windows"], ended["speech_windows"], ended["alerts"]) == (6, 2, 0)
    assert (ended["windows_scored"], ended["windows_lost"], ended["windows_shed"]) == (2, 4, 0)


def test_a_scorer_that_loses_everything_still_ends_the_call(wave_models: ModelSet) -> None:
    scorer = ScriptedScorer(lose=frozenset(range(100)))
    pipeline, recorder = make_pipeline(wave_models, scorer)
    feed(pipeline, noise_at(LOUD_DBFS, 3.0), chunk=320)
    pipeline.drain()
    assert pipeline.counters.windows_lost == 3
    assert topics(recorder)[-1] == "call.ended"
    assert of_topic(recorder, "call.ended")[0]["alerts"] == 0


def lost_per_stream(recorder: ReplayRecorder) -> dict[tuple[str, int], int]:
    """Speech windows left unscored (lost: nothing is shed in these tests), per stream."""
    lost: dict[tuple[str, int], int] = {}
    for body in of_topic(recorder, "score"):
        key = (body["call_id"], body["channel"])
        lost[key] = lost.get(key, 0) + (body["speech"] and body["score"] is None)
    return lost


@pytest.mark.parametrize("one_window_per_stream", [True, False])
def test_a_lost_batch_costs_each_stream_one_window_when_batches_take_one_per_stream(
    wave_models: ModelSet, one_window_per_stream: bool
) -> None:
    scorer = ScriptedScorer(lose=frozenset({0}))
    pipeline, recorder = make_pipeline(
        wave_models, scorer, one_window_per_stream=one_window_per_stream, batch_size=4
    )
    calls = [f"call-{n}" for n in range(3)]
    for seed, call_id in enumerate(calls):  # 4.5 s each: 6 windows, all queued at once
        feed(pipeline, noise_at(LOUD_DBFS, 4.5, seed), call_id=call_id, pump=False)
    pipeline.drain()

    lost = lost_per_stream(recorder)
    if one_window_per_stream:
        # Batches of one window per stream, the oldest of each: 3 windows a batch (3 calls)
        assert [windows for _, windows in scorer.submitted] == [3] * 6
        assert lost == {(call_id, 0): 1 for call_id in calls}
        assert pipeline.counters.windows_lost == 3
    else:  # as `dfd replay` batches: the 4 oldest windows, all of the first call
        assert [windows for _, windows in scorer.submitted] == [4, 4, 4, 4, 2]
        assert lost == {("call-0", 0): 4, ("call-1", 0): 0, ("call-2", 0): 0}
    for call_id in calls:  # windows are applied in order all the same, and every call ends
        scores = [s for s in of_topic(recorder, "score") if s["call_id"] == call_id]
        assert [s["start"] for s in scores] == [0.5 * i for i in range(6)]
    assert [e["call_id"] for e in of_topic(recorder, "call.ended")] == calls
    assert pipeline.counters.windows_scored + pipeline.counters.windows_lost == 18


def test_batches_of_one_window_per_stream_take_the_oldest_window_of_each(
    wave_models: ModelSet,
) -> None:
    """Windows of three calls queued in the order they became ready, a0 a1 b0 b1 b2 c0; batches
    of up to 2 windows, one per stream: (a0 b0) (a1 b1) (c0 b2)... never two windows of one call,
    and a call whose windows are older goes first."""
    scorer = ScriptedScorer(slots=0)
    pipeline, _ = make_pipeline(
        wave_models, scorer, one_window_per_stream=True, batch_size=2, score_silence=True
    )
    for call_id, seconds in (("a", 2.5), ("b", 3.0), ("c", 2.0)):
        samples = noise_at(LOUD_DBFS, seconds)
        pipeline.accept(AudioChunk(call_id, 0, samples, RATE), arrived=float(ord(call_id)))
    assert pipeline.queued_windows == 6
    scorer.slots = 1  # one batch at a time, collected in order
    order: list[list[str]] = []
    while pipeline.queued_windows:
        before = {k: s.queued for k, s in pipeline._streams.items()}
        pipeline.pump()
        order.append(sorted(k[0] for k, s in pipeline._streams.items() if s.queued < before[k]))
    assert order == [["a", "b"], ["a", "b"], ["b", "c"]]


# ----------------------------------------------------------------------------------- events


def test_events_of_a_synthetic_call(wave_models: ModelSet) -> None:
    scorer = ScriptedScorer()
    pipeline, recorder = make_pipeline(wave_models, scorer)
    feed(pipeline, noise_at(LOUD_DBFS, 6.0), chunk=320)  # 20 ms at 16 kHz
    pipeline.drain()

    seen = topics(recorder)
    assert seen[0] == "call.started"
    assert seen[-1] == "call.ended"
    assert seen.count("alert.raised") == 1
    assert "alert.cleared" not in seen
    assert seen.count("score") == 9
    (raised,) = of_topic(recorder, "alert.raised")
    assert raised["start"] == 1.0  # the third window
    assert raised["threshold"] == 0.5
    assert raised["model"] == {"name": "sinc-lcnn", "version": "a"}
    assert raised["score"] == pytest.approx(1 / (1 + math.exp(-4.0)))
    (ended,) = of_topic(recorder, "call.ended")
    assert ended["verdict"] == "synthetic"
    assert (ended["windows"], ended["speech_windows"], ended["alerts"]) == (9, 9, 1)
    assert ended["duration"] == pytest.approx(6.0)
    assert ended["max_score"] == pytest.approx(1 / (1 + math.exp(-4.0)))
    assert ended["reason"] == "bye"
    assert pipeline.counters.alerts_raised == 1
    assert (pipeline.counters.streams_started, pipeline.counters.streams_ended) == (1, 1)


def test_an_episode_that_ends_is_cleared_once(wave_models: ModelSet) -> None:
    scorer = ScriptedScorer()
    pipeline, recorder = make_pipeline(wave_models, scorer)
    signal = np.concatenate([noise_at(LOUD_DBFS, 4.0, 1), noise_at(QUIET_DBFS, 6.0, 2)])
    feed(pipeline, signal, chunk=1_600)
    pipeline.drain()
    seen = [t for t in topics(recorder) if t.startswith("alert.")]
    assert seen == ["alert.raised", "alert.cleared"]
    (cleared,) = of_topic(recorder, "alert.cleared")
    # Windows from 4.0 s on are all quiet; the fifth of them (6.0 s) empties the history.
    assert cleared["start"] == 6.0
    assert (cleared["over"], cleared["of"]) == (0, 5)
    assert of_topic(recorder, "call.ended")[0]["verdict"] == "synthetic"


def test_each_party_of_a_call_is_its_own_stream(wave_models: ModelSet) -> None:
    scorer = ScriptedScorer()
    pipeline, recorder = make_pipeline(wave_models, scorer)
    for first in range(0, 3 * RATE, 320):
        for channel, level in ((0, QUIET_DBFS), (1, LOUD_DBFS)):
            chunk = noise_at(level, 3.0, channel)[first : first + 320]
            pipeline.accept(AudioChunk("call", channel, chunk, RATE))
        pipeline.pump()
    pipeline.end_all("source-stopped")
    pipeline.drain()
    ended = {e["channel"]: e for e in of_topic(recorder, "call.ended")}
    assert {c: e["verdict"] for c, e in ended.items()} == {0: "bona fide", 1: "synthetic"}
    assert {c: e["reason"] for c, e in ended.items()} == {0: "source-stopped", 1: "source-stopped"}
    assert [a["channel"] for a in of_topic(recorder, "alert.raised")] == [1]
    assert [s["channel"] for s in of_topic(recorder, "call.started")] == [0, 1]


EVIDENCE_RULE = DecisionPolicy(raise_at=6.0)


def test_the_evidence_rule_raises_on_seconds_of_synthetic_speech(wave_models: ModelSet) -> None:
    """Every loud window scores sigmoid(4): 3 nats at the cap, the first whole, each next by a
    quarter (0.5 s of 2 s new): 3 + 4 * 0.75 = 6 nats at the fifth window, 2.0-4.0 s."""
    pipeline, recorder = make_pipeline(wave_models, ScriptedScorer(), decision=EVIDENCE_RULE)
    feed(pipeline, noise_at(LOUD_DBFS, 6.0), chunk=320)
    pipeline.drain()
    (raised,) = of_topic(recorder, "alert.raised")
    assert (raised["start"], raised["end"]) == (2.0, 4.0)
    assert raised["rule"] == "evidence"
    assert raised["evidence"] == pytest.approx(6.0)
    assert (raised["raise_at"], raised["clear_at"]) == (6.0, 0.0)
    assert raised["speech_s"] == pytest.approx(4.0)
    assert (raised["over"], raised["of"]) == (5, 5)
    (ended,) = of_topic(recorder, "call.ended")
    assert ended["verdict"] == "synthetic"
    assert ended["speech_s"] == pytest.approx(6.0)


def test_the_evidence_rule_clears_once_the_speech_turns_real(wave_models: ModelSet) -> None:
    pipeline, recorder = make_pipeline(wave_models, ScriptedScorer(), decision=EVIDENCE_RULE)
    signal = np.concatenate([noise_at(LOUD_DBFS, 5.0, 1), noise_at(QUIET_DBFS, 10.0, 2)])
    feed(pipeline, signal, chunk=1_600)
    pipeline.drain()
    assert [t for t in topics(recorder) if t.startswith("alert.")] == [
        "alert.raised",
        "alert.cleared",
    ]
    (cleared,) = of_topic(recorder, "alert.cleared")
    assert cleared["evidence"] == 0.0
    assert of_topic(recorder, "call.ended")[0]["verdict"] == "synthetic"


def test_too_little_speech_is_inconclusive_not_bona_fide(wave_models: ModelSet) -> None:
    """3 s of speech per party: less than min_speech_s (4 s). The loud party scores synthetic
    in every window but cannot reach 6 nats in 3 s; neither party is called bona fide."""
    pipeline, recorder = make_pipeline(wave_models, ScriptedScorer(), decision=EVIDENCE_RULE)
    for channel, level in ((0, QUIET_DBFS), (1, LOUD_DBFS)):
        feed(pipeline, noise_at(level, 3.0, channel), channel=channel)
    pipeline.drain()
    ended = {e["channel"]: e for e in of_topic(recorder, "call.ended")}
    assert {c: e["verdict"] for c, e in ended.items()} == {0: "inconclusive", 1: "inconclusive"}
    assert {c: e["speech_s"] for c, e in ended.items()} == {0: 3.0, 1: 3.0}
    assert not of_topic(recorder, "alert.raised")


def test_the_operating_point_comes_from_the_card_unless_the_settings_give_one(
    bundles: Bundles,
) -> None:
    models = ModelSet.load([bundles.wave_point])
    assert models.raise_at == 4.5
    pipeline, _ = make_pipeline(models, ScriptedScorer(), decision=DecisionPolicy())
    assert pipeline.decision.raise_at == 4.5
    pipeline, _ = make_pipeline(models, ScriptedScorer(), decision=DecisionPolicy(raise_at=8.0))
    assert pipeline.decision.raise_at == 8.0
    # a fusion with a model whose card has none falls back to the default operating point
    fused = ModelSet.load([bundles.wave_point, bundles.wave])
    assert fused.raise_at is None
    pipeline, _ = make_pipeline(fused, ScriptedScorer(), decision=DecisionPolicy())
    assert pipeline.decision.raise_at == 6.0


def test_swapping_models_retunes_open_calls(bundles: Bundles) -> None:
    pipeline, recorder = make_pipeline(
        ModelSet.load([bundles.wave]), ScriptedScorer(), decision=DecisionPolicy()
    )
    feed(pipeline, noise_at(LOUD_DBFS, 3.0), end=False)
    pipeline.drain()
    assert not of_topic(recorder, "alert.raised")  # 3 + 2 * 0.75 = 4.5 nats < 6
    pipeline.swap_models(ModelSet.load([bundles.wave_point]), ScriptedScorer())
    assert pipeline.decision.raise_at == 4.5
    feed(pipeline, noise_at(LOUD_DBFS, 0.5, seed=3), end=False)
    pipeline.drain()
    (raised,) = of_topic(recorder, "alert.raised")
    assert raised["raise_at"] == 4.5
    pipeline.swap_models(
        ModelSet.load([bundles.wave]), ScriptedScorer(), DecisionPolicy(rule="windows")
    )
    assert pipeline.decision.rule == "windows"
    pipeline.end_all("bye")
    pipeline.drain()
    assert of_topic(recorder, "call.ended")[0]["verdict"] == "synthetic"


def test_a_chunk_at_another_rate_mid_stream_is_rejected(wave_models: ModelSet) -> None:
    pipeline, recorder = make_pipeline(wave_models, ScriptedScorer())
    pipeline.accept(AudioChunk("call", 0, noise_at(LOUD_DBFS, 1.0), RATE))
    pipeline.accept(AudioChunk("call", 0, noise_at(LOUD_DBFS, 3.0, rate=8_000), 8_000))
    pipeline.end_all("bye")
    pipeline.drain()
    assert pipeline.counters.chunks_rejected == 1
    assert of_topic(recorder, "call.ended")[0]["duration"] == pytest.approx(1.0)


def test_silence_is_not_scored_in_a_live_call(wave_models: ModelSet) -> None:
    scorer = ScriptedScorer(raw_of=lambda features: np.full(len(features), 9.0))
    pipeline, recorder = make_pipeline(wave_models, scorer, score_silence=False)
    feed(pipeline, np.zeros(3 * RATE, dtype=np.float32), chunk=320)
    pipeline.drain()
    assert scorer.submitted == []
    scores = of_topic(recorder, "score")
    assert len(scores) == 3
    assert all(s["score"] is None and s["raw"] is None and s["speech"] is False for s in scores)
    assert pipeline.counters.windows_unscored == 3
    (ended,) = of_topic(recorder, "call.ended")
    assert ended["verdict"] == "no speech"
    assert (ended["windows"], ended["windows_no_speech"], ended["windows_scored"]) == (3, 3, 0)


def test_scored_silence_is_marked_and_never_alerts(wave_models: ModelSet) -> None:
    scorer = ScriptedScorer(raw_of=lambda features: np.full(len(features), 9.0))
    pipeline, recorder = make_pipeline(wave_models, scorer, score_silence=True)
    feed(pipeline, np.zeros(6 * RATE, dtype=np.float32), chunk=320)
    pipeline.drain()
    assert sum(count for _, count in scorer.submitted) == 9
    scores = of_topic(recorder, "score")
    assert all(s["speech"] is False for s in scores)
    assert all(s["score"] == pytest.approx(1 / (1 + math.exp(-9.0))) for s in scores)
    assert of_topic(recorder, "alert.raised") == []
    (ended,) = of_topic(recorder, "call.ended")
    assert (ended["verdict"], ended["speech_windows"], ended["max_score"]) == ("no speech", 0, None)


# -------------------------------------------------------------------------- model sets


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def test_one_model_fuses_to_itself(bundles: Bundles) -> None:
    models = ModelSet.load([bundles.wave_b])
    raw = np.array([[-3.0, 0.0, 0.5, 4.0]])
    fused, fused_raw = models.fuse(raw)
    np.testing.assert_allclose(fused, sigmoid(2 * raw[0] - 1), rtol=1e-6)
    np.testing.assert_array_equal(fused_raw, raw[0].astype(np.float32))
    assert models.threshold == 0.3
    assert models.identity == {"name": "sinc-lcnn", "version": "b"}
    assert (models.geometry.window_samples, models.geometry.hop_samples) == (WINDOW, HOP)


def test_two_models_fuse_with_weights(bundles: Bundles) -> None:
    models = ModelSet.load([bundles.wave, bundles.wave_b], weights=[1.0, 3.0])
    assert models.threshold == pytest.approx((1 * 0.5 + 3 * 0.3) / 4)
    assert models.identity == {"name": "sinc-lcnn+sinc-lcnn", "version": "a+b"}
    raw = np.array([[-2.0, 0.0, 1.0], [1.0, 0.5, -4.0]])
    fused, fused_raw = models.fuse(raw)
    first, second = sigmoid(raw[0]), sigmoid(2 * raw[1] - 1)
    np.testing.assert_allclose(fused, (first + 3 * second) / 4, rtol=1e-6)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    np.testing.assert_allclose(fused_raw, (logit(first) + 3 * logit(second)) / 4, rtol=1e-5)
    far = ModelSet.load([bundles.wave, bundles.wave_b], threshold="far_1pct")
    assert far.threshold == pytest.approx((0.8 + 0.9) / 2)
    assert ModelSet.load([bundles.wave], threshold=0.7).threshold == 0.7


def test_models_of_different_window_lengths_fuse_by_time(
    bundles: Bundles, speech_16k: np.ndarray
) -> None:
    """A 2 s and a 1 s model: windows of the longest length; the 1 s model scores the last
    second of each, so both judge the audio up to the same instant."""
    paths = [bundles.wave_1s, bundles.wave]
    models = ModelSet.load(paths, weights=[1.0, 1.0])
    assert (models.geometry.window_samples, models.geometry.hop_samples) == (WINDOW, HOP)
    assert models.frontend_inputs[0][1] == RATE and models.frontend_inputs[1][1] == WINDOW
    pipeline, recorder = make_pipeline(
        models, InProcessScorer(paths, threads=1, device="cpu"), score_silence=True
    )
    signal = speech_16k[: round(3.0 * RATE)]
    feed(pipeline, signal, chunk=320)
    pipeline.drain()

    windows = np.stack([samples for _, _, samples in expected_windows(signal)])
    last_second = windows[:, -RATE:] - windows[:, -RATE:].mean(axis=1, keepdims=True)
    whole = windows - windows.mean(axis=1, keepdims=True)
    short = DetectorSession(bundles.wave_1s, device="cpu").score(last_second)
    long = DetectorSession(bundles.wave, device="cpu").score(whole)
    scores = of_topic(recorder, "score")
    assert [(s["start"], s["end"]) for s in scores] == [(0.0, 2.0), (0.5, 2.5), (1.0, 3.0)]
    np.testing.assert_allclose([s["score"] for s in scores], (short + long) / 2, atol=1e-5)
    with pytest.raises(BundleError, match=r"take 2.0 s windows \(the longest"):
        ModelSet.load(paths, window_s=1.0)
    with pytest.raises(ConfigError, match=r"the shortest window"):
        ModelSet.load(paths, hop_s=1.5)


def test_a_window_override_is_refused_for_a_fixed_shape_graph(bundles: Bundles) -> None:
    with pytest.raises(BundleError, match=r"take 2.0 s windows \(the longest of them\)"):
        ModelSet.load([bundles.wave], window_s=3.0)
    same = ModelSet.load([bundles.wave], window_s=2.0, hop_s=0.25)
    assert (same.geometry.window_samples, same.geometry.hop_samples) == (WINDOW, 4_000)


def test_bad_model_set_settings_are_refused(bundles: Bundles) -> None:
    with pytest.raises(ConfigError, match="one positive weight per model"):
        ModelSet.load([bundles.wave, bundles.wave_b], weights=[1.0])
    with pytest.raises(ConfigError, match="one positive weight per model"):
        ModelSet.load([bundles.wave], weights=[0.0])
    with pytest.raises(ConfigError, match="one positive weight per model"):
        ModelSet.load([bundles.wave], weights=[math.nan])
    with pytest.raises(ConfigError, match="hop_s"):
        ModelSet.load([bundles.wave], hop_s=0.00001)
    with pytest.raises(ConfigError, match="at least one model"):
        ModelSet([])
    with pytest.raises(BundleError, match="no such bundle folder"):
        ModelSet.load([bundles.wave.parent / "missing"])


def test_pick_threshold(bundles: Bundles) -> None:
    calibrated, uncalibrated = load_bundle(bundles.wave), load_bundle(bundles.uncalibrated)
    assert pick_threshold(calibrated, "eer") == 0.5
    assert pick_threshold(calibrated, "far_1pct") == 0.8
    assert pick_threshold(uncalibrated, 0.25) == 0.25
    assert pick_threshold(uncalibrated, 1) == 1.0
    # an uncalibrated import scores its softmax P(synthetic): the softmax decision until calibrated
    assert pick_threshold(uncalibrated, "eer") == UNCALIBRATED_THRESHOLD == 0.5
    assert ModelSet.load([bundles.uncalibrated], threshold="far_1pct").threshold == 0.5
    # a calibrated card whose thresholds were never measured cannot be guessed at
    with pytest.raises(BundleError, match="no 'eer' threshold"):
        pick_threshold(load_bundle(bundles.no_thresholds), "eer")
    for bad in (-0.1, 1.5, math.inf):
        with pytest.raises(ConfigError, match="threshold must lie in"):
            pick_threshold(calibrated, bad)


def test_loaded_model_scores_with_its_card(bundles: Bundles) -> None:
    model = LoadedModel(load_bundle(bundles.mfcc), 0.6)
    np.testing.assert_allclose(
        model.score(np.array([-2.0, 0.0, 2.0])), sigmoid(np.array([-0.75, 0.25, 1.25])), rtol=1e-6
    )


# ---------------------------------------------------------------- real scorers, real models


def test_in_process_fusion_of_two_real_models_matches_each_session(
    bundles: Bundles, speech_16k: np.ndarray
) -> None:
    """A waveform model and an MFCC model fused: every window's score is the weighted mean of
    what each model's own session says for that window."""
    paths = [bundles.wave, bundles.mfcc]
    models = ModelSet.load(paths, weights=[1.0, 3.0])
    pipeline, recorder = make_pipeline(
        models, InProcessScorer(paths, threads=1, device="cpu"), score_silence=True
    )
    signal = speech_16k[: round(3.2 * RATE)]
    feed(pipeline, signal, chunk=320)
    pipeline.drain()

    windows = np.stack([samples for _, _, samples in expected_windows(signal)])
    windows -= windows.mean(axis=1, keepdims=True)  # the feature stage removes each one's mean
    wave = DetectorSession(bundles.wave, device="cpu").score(windows)
    spec = load_bundle(bundles.mfcc).frontend_spec
    features = FrontendBank("cpu").compute(windows, [spec])[spec].numpy()
    mfcc = DetectorSession(bundles.mfcc, device="cpu").score(features)
    scores = of_topic(recorder, "score")
    assert [s["start"] for s in scores] == [0.0, 0.5, 1.0, 1.2]
    np.testing.assert_allclose([s["score"] for s in scores], (wave + 3 * mfcc) / 4, atol=1e-5)
    assert scores[0]["threshold"] == pytest.approx((0.5 + 3 * 0.6) / 4)
    assert scores[0]["model"] == {"name": "sinc-lcnn+mfcc-cnn", "version": "a+m"}


def test_the_default_model_alerts_once_after_the_voice_turns_synthetic() -> None:
    """The product's promise on the demo call, fed as a live call in 20 ms packets: one alert,
    on a window that reaches into the synthetic part, none while the caller is human."""
    paths = [default_bundle_path()]
    models = ModelSet.load(paths)
    pipeline, recorder = make_pipeline(models, InProcessScorer(paths, threads=1, device="cpu"))
    audio, rate = soundfile.read(DEMO_CALL, dtype="float32")
    assert rate == 8_000
    feed(pipeline, audio, rate=rate, chunk=160)
    pipeline.drain()

    raised = of_topic(recorder, "alert.raised")
    assert len(raised) == 1
    assert raised[0]["end"] > SYNTHETIC_FROM_S
    (ended,) = of_topic(recorder, "call.ended")
    assert ended["verdict"] == "synthetic"
    assert ended["alerts"] == 1
    assert ended["duration"] == pytest.approx(len(audio) / rate, abs=1e-3)
    human = [s for s in of_topic(recorder, "score") if s["end"] <= SYNTHETIC_FROM_S]
    assert len(human) >= 10  # the human part was judged, and did not alert


# -------------------------------------------------------------------------------- workers


def collect_until(pool: WorkerPool, count: int, timeout_s: float = 90.0) -> dict[int, Any]:
    results: dict[int, Any] = {}
    deadline = time.monotonic() + timeout_s
    while len(results) < count:
        assert time.monotonic() < deadline, f"only {sorted(results)} of {count} batches came back"
        results.update(pool.collect(0.2))
    return results


def wait_for(pool: WorkerPool, condition: Callable[[], bool], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the worker pool did not get there in time"
        assert pool.collect(0.2) == []


def test_worker_pool_restarts_a_killed_worker_and_retries_its_batch(bundles: Bundles) -> None:
    windows = noise_at(-20.0, 32 * 2.0).reshape(32, WINDOW)  # about half a second of work
    expected = DetectorSession(bundles.wave, device="cpu").raw(windows)
    pool = WorkerPool([bundles.wave], workers=2, threads=1, device="cpu")
    try:
        first, second = pool.pids
        assert pool.free_slots == 2
        pool.submit(0, [windows[:4]])
        pool.submit(1, [windows[:2, :100]])  # features of the wrong shape: that batch fails
        results = collect_until(pool, 2)
        np.testing.assert_allclose(results[0][0], expected[:4], atol=1e-5)
        assert results[1] is None
        assert (pool.restarts, pool.lost_batches, pool.pids) == (0, 1, [first, second])

        # Both workers hold a batch; one of them is killed.
        pool.submit(2, [windows])
        pool.submit(3, [windows[::-1]])
        assert (pool.free_slots, pool.in_flight) == (0, 2)
        os.kill(first, signal.SIGKILL)
        results = collect_until(pool, 2)
        np.testing.assert_allclose(results[2][0], expected, atol=1e-5)  # sent again
        np.testing.assert_allclose(results[3][0], expected[::-1], atol=1e-5)
        assert (pool.restarts, pool.lost_batches) == (1, 1)
        replacement = pool.pids[0]
        assert pool.pids == [replacement, second]
        assert replacement != first

        # Later batches work on both workers.
        wait_for(pool, lambda: pool.free_slots == 2)
        pool.submit(4, [windows[3:5]])
        pool.submit(5, [windows[5:6]])
        results = collect_until(pool, 2)
        np.testing.assert_allclose(results[4][0], expected[3:5], atol=1e-5)
        np.testing.assert_allclose(results[5][0], expected[5:6], atol=1e-5)
        assert pool.pids[1] == second
        assert pool.restarts == 1
    finally:
        pool.close()


def test_a_batch_whose_worker_dies_twice_is_lost_and_the_pool_goes_on(bundles: Bundles) -> None:
    windows = noise_at(-20.0, 32 * 2.0).reshape(32, WINDOW)
    expected = DetectorSession(bundles.wave, device="cpu").raw(windows)
    pool = WorkerPool([bundles.wave], workers=1, threads=1, device="cpu")
    try:
        pool.submit(0, [windows])
        os.kill(pool.pids[0], signal.SIGKILL)
        # The batch waits for a free worker: the replacement, once it has started.
        wait_for(
            pool,
            lambda: (
                pool.restarts == 1 and pool._workers[0].ready and pool._workers[0].job is not None
            ),
        )
        assert pool.in_flight == 1
        os.kill(pool.pids[0], signal.SIGKILL)  # it dies again while holding the batch
        results = collect_until(pool, 1)
        assert results == {0: None}
        assert (pool.restarts, pool.lost_batches) == (2, 1)
        wait_for(pool, lambda: pool.free_slots == 1)
        pool.submit(1, [windows[:3]])
        np.testing.assert_allclose(collect_until(pool, 1)[1][0], expected[:3], atol=1e-5)
    finally:
        pool.close()


def process_state(pid: int) -> str:
    """The state letter of ``/proc/PID/stat`` (R, S, T stopped, Z zombie), "" once reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return ""
    return stat.rpartition(")")[2].split()[0]


def wait_until_stopped(pid: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while process_state(pid) != "T":
        assert time.monotonic() < deadline, f"process {pid} is {process_state(pid)!r}"
        time.sleep(0.005)


def wait_until_dead(pid: int, timeout_s: float = 10.0) -> None:
    """Until the child ``pid`` can be waited for (left for its parent, this process, to reap):
    every thread of it gone, not just its main thread a zombie."""
    deadline = time.monotonic() + timeout_s
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        assert time.monotonic() < deadline, f"process {pid} is {process_state(pid)!r}"
        time.sleep(0.005)


def test_a_stopped_worker_holding_a_batch_is_killed_at_the_timeout_and_the_batch_retried(
    bundles: Bundles,
) -> None:
    windows = noise_at(-20.0, 8 * 2.0).reshape(8, WINDOW)
    expected = DetectorSession(bundles.wave, device="cpu").raw(windows)
    timeout_s = 1.0
    pool = WorkerPool([bundles.wave], workers=2, device="cpu", batch_timeout_s=timeout_s)
    try:
        stopped, second = pool.pids
        os.kill(stopped, signal.SIGSTOP)  # hung: alive, holding its batch, never answering
        wait_until_stopped(stopped)
        sent = time.monotonic()
        pool.submit(0, [windows])  # the first idle worker takes it: the stopped one
        results = collect_until(pool, 1, timeout_s=timeout_s + 30)
        took = time.monotonic() - sent
        np.testing.assert_allclose(results[0][0], expected, atol=1e-5)  # scored by the other
        assert timeout_s <= took < timeout_s + 5.0, took
        assert (pool.timeouts, pool.retried_batches, pool.lost_batches) == (1, 1, 0)
        assert pool.restarts == 1
        assert pool.pids[0] != stopped and pool.pids[1] == second
        assert process_state(stopped) == ""  # killed and reaped, not left stopped

        wait_for(pool, lambda: pool.free_slots == 2)  # the replacement scores like the others
        pool.submit(1, [windows[:3]])
        pool.submit(2, [windows[3:]])
        results = collect_until(pool, 2)
        np.testing.assert_allclose(results[1][0], expected[:3], atol=1e-5)
        np.testing.assert_allclose(results[2][0], expected[3:], atol=1e-5)
        assert (pool.timeouts, pool.restarts, pool.lost_batches) == (1, 1, 0)
    finally:
        pool.close()


def test_a_batch_that_outlasts_the_timeout_twice_is_lost(bundles: Bundles) -> None:
    """32 windows take about half a second; with a 50 ms timeout both tries are cut short."""
    windows = noise_at(-20.0, 32 * 2.0).reshape(32, WINDOW)
    pool = WorkerPool([bundles.wave], workers=1, device="cpu", batch_timeout_s=0.05)
    try:
        first = pool.pids[0]
        pool.submit(0, [windows])
        assert collect_until(pool, 1) == {0: None}
        assert (pool.timeouts, pool.retried_batches, pool.lost_batches) == (2, 1, 1)
        assert pool.restarts == 2
        assert first not in pool.pids
        wait_for(pool, lambda: pool.free_slots == 1)  # and a third worker is ready
    finally:
        pool.close()


def test_a_worker_killed_while_idle_is_replaced_before_the_next_batch(bundles: Bundles) -> None:
    windows = noise_at(-20.0, 4 * 2.0).reshape(4, WINDOW)
    expected = DetectorSession(bundles.wave, device="cpu").raw(windows)
    pool = WorkerPool([bundles.wave], workers=2, device="cpu")
    try:
        first, second = pool.pids
        # Killed between two batches, and the next batch comes before any collect: the pool
        # finds the worker dead as it picks one, replaces it and sends the batch to the other.
        os.kill(first, signal.SIGKILL)
        wait_until_dead(first)
        pool.submit(0, [windows])
        assert pool.restarts == 1 and pool.pids[0] != first
        np.testing.assert_allclose(collect_until(pool, 1)[0][0], expected, atol=1e-5)
        assert (pool.retried_batches, pool.lost_batches, pool.timeouts) == (0, 0, 0)

        # Killed while the pool waits in collect with nothing to do: replaced from there.
        wait_for(pool, lambda: pool.free_slots == 2)
        os.kill(second, signal.SIGKILL)
        wait_for(pool, lambda: pool.restarts == 2)
        assert pool.pids[1] != second and process_state(second) == ""
        wait_for(pool, lambda: pool.free_slots == 2)
        pool.submit(1, [windows[:1]])
        pool.submit(2, [windows[1:]])
        results = collect_until(pool, 2)
        np.testing.assert_allclose(results[1][0], expected[:1], atol=1e-5)
        np.testing.assert_allclose(results[2][0], expected[1:], atol=1e-5)
        assert (pool.retried_batches, pool.lost_batches, pool.restarts) == (0, 0, 2)
    finally:
        pool.close()


def test_a_batch_lost_with_its_worker_costs_each_call_one_window(
    wave_models: ModelSet,
) -> None:
    """The daemon's batching (one window per stream) over a real pool whose worker is killed
    twice while it holds the first batch: 12 calls lose one window each, and all of them end."""
    pool = WorkerPool(wave_models.paths, workers=1, device="cpu")
    try:
        pipeline, recorder = make_pipeline(
            wave_models, pool, one_window_per_stream=True, batch_size=16
        )  # one batch holds a window of each of the 12 calls
        calls = [f"call-{n:02}" for n in range(12)]
        for seed, call_id in enumerate(calls):  # 3 s each: 3 windows per call, all queued
            feed(pipeline, noise_at(LOUD_DBFS, 3.0, seed), call_id=call_id, pump=False)
        pipeline.pump()  # the first batch: the first window of each call
        assert (pipeline.counters.batches, pool.in_flight) == (1, 1)
        os.kill(pool.pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 90
        while not (pool.restarts == 1 and pool._workers[0].ready and pool.free_slots == 0):
            assert time.monotonic() < deadline, "the replacement never took the batch"
            pipeline.pump(timeout=0.05)
        assert pool.retried_batches == 1
        os.kill(pool.pids[0], signal.SIGKILL)  # dies again while holding the same batch
        pipeline.drain()

        assert (pool.lost_batches, pool.restarts) == (1, 2)
        assert pipeline.counters.windows_lost == 12
        assert pipeline.counters.windows_scored == 24
        assert lost_per_stream(recorder) == {(call_id, 0): 1 for call_id in calls}
        firsts = [s for s in of_topic(recorder, "score") if s["start"] == 0.0]
        assert [s["score"] for s in firsts] == [None] * 12  # the oldest window of each call
        assert sorted(e["call_id"] for e in of_topic(recorder, "call.ended")) == calls
    finally:
        pool.close()


def test_a_worker_refuses_a_bundle_whose_card_changed_since_it_was_verified(
    bundles: Bundles,
) -> None:
    verified = load_bundle(bundles.wave).card_sha256
    assert len(verified) == 64
    other = "0" * 64
    with pytest.raises(WorkerError, match=f"changed since the bundle was verified.*{other}"):
        WorkerPool([bundles.wave], workers=1, device="cpu", card_sha256s=[other])


def test_a_worker_that_cannot_load_its_bundle_fails_the_pool_start(
    bundles: Bundles, tmp_path: Path
) -> None:
    """(A bundle folder that does not exist fails the same way: ``load_bundle`` in the worker
    raises, the worker reports it and exits; one process start is spared here.)"""
    tampered = Path(shutil.copytree(bundles.wave, tmp_path / "tampered"))
    model = bytearray((tampered / MODEL_NAME).read_bytes())
    model[-10] ^= 0xFF
    (tampered / MODEL_NAME).write_bytes(bytes(model))
    with pytest.raises(WorkerError, match="sha256"):
        WorkerPool([tampered], workers=1, device="cpu", start_timeout_s=60)
