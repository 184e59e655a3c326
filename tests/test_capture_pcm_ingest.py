"""ZeroMQ PCM ingest: the message parser, fuzzing, and real PUSH sockets sending calls to the
source's PULL socket over TCP and IPC."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import structlog
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from dfd.daemon.engine.events import AudioChunk, StreamEnded
from dfd.daemon.service.capture.pcm_ingest import (
    MalformedFrame,
    PcmIngestSource,
    parse_pcm_frames,
)
from tests.capture_sink import CollectingSink
from tests.signals import RATE, tone

FRAME = RATE // 50  # 20 ms


def message(call_id: str, channel: int, seq: int, pcm: np.ndarray | bytes) -> list[bytes]:
    data = pcm if isinstance(pcm, bytes) else pcm.astype("<i2").tobytes()
    return [call_id.encode(), str(channel).encode(), str(seq).encode(), data]


def as_int16(signal: np.ndarray) -> np.ndarray:
    return np.round(signal * 32767).astype(np.int16)


# parse_pcm_frames


def test_parse_a_message_and_an_end_message() -> None:
    pcm = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    frame = parse_pcm_frames(message("call-7 ü", 1, 42, pcm))
    assert (frame.call_id, frame.channel, frame.seq, frame.is_end) == ("call-7 ü", 1, 42, False)
    assert frame.samples.dtype == np.float32
    np.testing.assert_array_equal(frame.samples * 32768, pcm)
    end = parse_pcm_frames(message("call-7 ü", 1, 43, b""))
    assert end.is_end
    assert end.samples.shape == (0,)


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([b"call", b"0", b"0"], "3 frames"),
        ([b"call", b"0", b"0", b"\x00\x00", b""], "5 frames"),
        ([b"", b"0", b"0", b""], "call id of 0 bytes"),
        ([b"x" * 257, b"0", b"0", b""], "call id of 257 bytes"),
        ([b"\xff\xfe", b"0", b"0", b""], "not UTF-8"),
        ([b"call", b"-1", b"0", b""], "channel"),
        ([b"call", b" 1", b"0", b""], "channel"),
        ([b"call", b"1000", b"0", b""], "channel"),
        ([b"call", b"", b"0", b""], "channel"),
        ([b"call", "٣".encode(), b"0", b""], "channel"),
        ([b"call", b"0", b"1.0", b""], "seq"),
        ([b"call", b"0", b"+1", b""], "seq"),
        ([b"call", b"0", b"1_000", b""], "seq"),
        ([b"call", b"0", b"1" * 20, b""], "seq"),
        ([b"call", b"0", b"0", b"\x00\x00\x00"], "3 PCM bytes"),
    ],
)
def test_parse_refuses_malformed_messages(frames: list[bytes], reason: str) -> None:
    with pytest.raises(MalformedFrame, match=reason):
        parse_pcm_frames(frames)


valid_messages = st.builds(
    lambda call_id, channel, seq, pcm: [
        call_id.encode(),
        str(channel).encode(),
        str(seq).encode(),
        pcm,
    ],
    call_id=st.text(min_size=1, max_size=64).filter(lambda t: len(t.encode()) <= 256),
    channel=st.integers(0, 999),
    seq=st.integers(0, 10**18),
    pcm=st.binary(max_size=64).map(lambda b: b[: len(b) // 2 * 2]),
)


@settings(max_examples=300, deadline=None)
@given(
    frames=st.one_of(
        st.lists(st.binary(max_size=24), max_size=6),
        valid_messages,
        st.tuples(valid_messages, st.integers(0, 3), st.binary(max_size=4)).map(
            lambda t: [*t[0][: t[1]], t[2], *t[0][t[1] + 1 :]]
        ),
    )
)
def test_fuzz_parser_raises_only_malformed_frame(frames: list[bytes]) -> None:
    try:
        frame = parse_pcm_frames(frames)
    except MalformedFrame:
        return
    assert frame.call_id.encode() == frames[0]
    assert (frame.channel, frame.seq) == (int(frames[1]), int(frames[2]))
    assert frame.samples.dtype == np.float32
    assert len(frame.samples) * 2 == len(frames[3])
    assert np.all(np.abs(frame.samples) <= 1.0)


# real sockets


class Collector(CollectingSink):
    def ended(self) -> list[StreamEnded]:
        with self.lock:
            return [e for e in self.events if isinstance(e, StreamEnded)]

    def wait_for_ends(self, count: int, timeout_s: float = 10.0) -> list[StreamEnded]:
        deadline = time.monotonic() + timeout_s
        while len(self.ended()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        ends = self.ended()
        assert len(ends) >= count, f"only {len(ends)} of {count} streams ended"
        return ends

    def audio(self, call_id: str, channel: int) -> np.ndarray:
        chunks = [
            e.samples
            for e in self.events
            if isinstance(e, AudioChunk) and (e.call_id, e.channel) == (call_id, channel)
        ]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


@pytest.fixture
def push() -> Iterator[zmq.Socket[bytes]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = context.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    yield sock
    sock.close(linger=0)
    context.term()


def start(
    collector: Collector, endpoint: str = "tcp://127.0.0.1:*", **options: Any
) -> PcmIngestSource:
    source = PcmIngestSource(endpoint, **options)
    source.start(collector)
    assert source.endpoint.startswith(endpoint.split("*")[0])
    return source


def test_two_interleaved_calls_arrive_exactly(push: zmq.Socket[bytes]) -> None:
    collector = Collector()
    source = start(collector)
    try:
        push.connect(source.endpoint)
        calls = {
            ("call-a", 0): as_int16(tone(440, 1.0)),
            ("call-a", 1): as_int16(tone(660, 1.0, amplitude=0.3)),
            ("call-b", 0): as_int16(tone(1000, 0.7)),
        }
        seqs = dict.fromkeys(calls, 0)
        for start_sample in range(0, RATE, FRAME):
            for key, pcm in calls.items():
                block = pcm[start_sample : start_sample + FRAME]
                if len(block):
                    push.send_multipart(message(*key, seqs[key], block))
                    seqs[key] += 1
            if start_sample == FRAME * 10:
                push.send_multipart([b"not", b"enough"])
                push.send_multipart(message("call-a", 0, 0, b"\x00\x01\x02"))
                push.send_multipart([b"call-a", b"zero", b"5", b""])
        for key in calls:
            push.send_multipart(message(*key, seqs[key], b""))
        ends = collector.wait_for_ends(3)
    finally:
        source.stop()
    assert sorted((e.call_id, e.channel, e.reason) for e in ends) == [
        ("call-a", 0, "end-message"),
        ("call-a", 1, "end-message"),
        ("call-b", 0, "end-message"),
    ]
    for (call_id, channel), pcm in calls.items():
        np.testing.assert_array_equal(collector.audio(call_id, channel), pcm / np.float32(32768))
    chunks = [e for e in collector.events if isinstance(e, AudioChunk)]
    assert {c.sample_rate for c in chunks} == {16_000}
    counters = source.counters
    assert counters.malformed == 3
    assert counters.lost == counters.duplicates == counters.late == 0
    assert counters.streams_started == counters.streams_ended == 3
    assert counters.samples == sum(len(pcm) for pcm in calls.values())


def test_gaps_are_filled_duplicates_dropped_and_quiet_streams_time_out(
    push: zmq.Socket[bytes],
) -> None:
    collector = Collector()
    source = start(collector, idle_timeout_s=0.3)
    try:
        push.connect(source.endpoint)
        blocks = [np.full(FRAME, 1000 * (i + 1), dtype=np.int16) for i in range(6)]
        for seq in [0, 1, 1, 0, 4, 5]:  # 2 and 3 lost, two resends
            push.send_multipart(message("gappy", 0, seq, blocks[seq]))
        ends = collector.wait_for_ends(1)
        push.send_multipart(message("gappy", 0, 6, blocks[0]))  # after the end: a new stream
        ends = collector.wait_for_ends(2)
    finally:
        source.stop()
    assert [e.reason for e in ends] == ["timeout", "timeout"]
    silence = np.zeros(2 * FRAME, dtype=np.int16)
    expected = np.concatenate([blocks[0], blocks[1], silence, blocks[4], blocks[5], blocks[0]])
    np.testing.assert_array_equal(collector.audio("gappy", 0), expected / np.float32(32768))
    assert source.counters.lost == 2
    assert source.counters.duplicates == 2
    assert source.counters.streams_started == 2


def test_messages_after_an_end_message_are_late_and_stop_ends_open_streams(
    tmp_path: Path, push: zmq.Socket[bytes]
) -> None:
    collector = Collector()
    source = start(collector, endpoint=f"ipc://{tmp_path}/ingest")
    try:
        push.connect(source.endpoint)
        pcm = as_int16(tone(300, 0.1))
        push.send_multipart(message("done", 0, 0, pcm))
        push.send_multipart(message("done", 0, 1, b""))
        push.send_multipart(message("done", 0, 2, pcm))
        push.send_multipart(message("open", 3, 7, pcm))  # joined mid-stream: no fill before 7
        deadline = time.monotonic() + 10
        while source.counters.chunks < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        stopping = time.monotonic()
    finally:
        source.stop()
    assert time.monotonic() - stopping < 1.0
    assert [(e.call_id, e.channel, e.reason) for e in collector.ended()] == [
        ("done", 0, "end-message"),
        ("open", 3, "source-stopped"),
    ]
    np.testing.assert_array_equal(collector.audio("open", 3), pcm / np.float32(32768))
    assert source.counters.late == 1
    assert source.counters.lost == 0


def test_bad_settings_and_endpoints_are_refused() -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        PcmIngestSource("tcp://127.0.0.1:*", sample_rate=0)
    with pytest.raises(zmq.ZMQError):
        PcmIngestSource("nonsense://here").start(Collector())


def test_malformed_messages_are_warned_about_at_a_bounded_rate() -> None:
    source = PcmIngestSource("tcp://127.0.0.1:*")
    source._sink = Collector()  # driven directly, without its socket thread
    with structlog.testing.capture_logs() as logs:
        for i in range(5):  # a burst: one warning, four counted
            source.handle_message([b"not", b"enough"], now=100.0 + i)
        source.handle_message([b"call", b"x", b"0", b""], now=100.0 + source.MALFORMED_WARNING_S)
    warnings = [entry for entry in logs if entry["event"] == "pcm_ingest_malformed"]
    assert [w["log_level"] for w in warnings] == ["warning", "warning"]
    assert "2 frames, expected 4" in warnings[0]["error"]
    assert warnings[0]["not_logged_since_last"] == 0
    assert "channel" in warnings[1]["error"] and warnings[1]["not_logged_since_last"] == 4
    assert source.counters.malformed == 6
