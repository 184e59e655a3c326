"""Stream admission under floods: limits on open streams, per sender and on the rate of new
ones, in the admission itself, in the RTP source and in the PCM ingest, and the pipeline's global
window bound that sheds the least-established calls first."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from dfd.daemon.engine.events import AudioChunk, CaptureEvent, StreamEnded
from dfd.daemon.service.capture.admission import StreamAdmission, StreamLimits
from dfd.daemon.service.capture.pcm_ingest import PcmIngestSource
from dfd.daemon.service.capture.rtp import RtpSource


def rtp(seq: int, ssrc: int, payload_type: int = 0, payload: bytes = b"\xff" * 160) -> bytes:
    return struct.pack("!BBHII", 0x80, payload_type, seq, seq * 160, ssrc) + payload


def test_a_sender_opens_its_burst_at_once_then_new_per_s() -> None:
    admission = StreamAdmission(max_streams=100, max_per_sender=100, new_per_s=10.0, burst=5)
    assert [admission.admit("a", 0.0) for _ in range(6)] == [None] * 5 + ["rate"]
    assert admission.admit("b", 0.0) is None  # another sender has its own bucket
    assert admission.admit("a", 0.05) == "rate"  # half a token
    assert admission.admit("a", 0.1) is None  # one token back after 0.1 s
    assert admission.admit("a", 10.0) is None
    assert admission.open == 8
    assert admission.refused == {"rate": 2}


def test_open_streams_are_capped_per_sender_and_in_all_and_freed_on_close() -> None:
    admission = StreamAdmission(max_streams=3, max_per_sender=2, new_per_s=1000.0, burst=1000)
    assert [admission.admit("a", 0.0) for _ in range(3)] == [None, None, "max-per-sender"]
    assert admission.admit("b", 0.0) is None
    assert admission.admit("c", 0.0) == "max-streams"
    admission.closed("a")
    assert admission.admit("c", 0.0) is None
    assert admission.refused_total == 2
    with pytest.raises(ValueError, match="must be positive"):
        StreamAdmission(0, 1, 1.0, 1)


def test_an_rtp_flood_of_ssrcs_is_refused_past_the_limits() -> None:
    """5,000 SSRCs with one packet each from one host at once: the burst is let in, the rest
    refused and counted; a real call from another host still starts."""
    limits = StreamLimits(max_streams=1000, max_per_sender=200, new_per_s=20.0, burst=50)
    source = RtpSource("127.0.0.1", 0, limits=limits)
    events: list[CaptureEvent] = []
    source._sink = events.append
    for ssrc in range(5000):
        source.handle_datagram(rtp(1, ssrc), ("192.0.2.66", 10_000 + ssrc % 50_000), 0.0)
    assert source.counters.streams_started == 50
    assert source.counters.refused == 4950
    source.handle_datagram(rtp(1, 7), ("192.0.2.10", 40_000), 0.1)
    assert source.counters.streams_started == 51
    source.housekeeping(60.0)  # every stream times out and frees its place
    assert source.admission.open == 0
    assert len([e for e in events if isinstance(e, StreamEnded)]) == 51


def test_the_static_44k_l16_payload_types_need_mapping() -> None:
    source = RtpSource("127.0.0.1", 0)
    source._sink = lambda event: None
    source.handle_datagram(rtp(1, 1, payload_type=11, payload=bytes(882)), ("192.0.2.1", 1), 0.0)
    assert (source.counters.streams_started, source.counters.malformed) == (0, 1)
    mapped = RtpSource("127.0.0.1", 0, payload_formats={11: ("L16", 44100, 1)})
    chunks: list[CaptureEvent] = []
    mapped._sink = chunks.append
    mapped.handle_datagram(rtp(1, 1, payload_type=11, payload=bytes(882)), ("192.0.2.1", 1), 0.0)
    mapped.housekeeping(1.0)
    assert mapped.counters.streams_started == 1
    assert any(isinstance(e, AudioChunk) and e.sample_rate == 44_100 for e in chunks)


def test_the_pcm_ingest_caps_new_call_ids() -> None:
    limits = StreamLimits(max_streams=1000, max_per_sender=1000, new_per_s=10.0, burst=20)
    source = PcmIngestSource("tcp://127.0.0.1:*", limits=limits)
    events: list[CaptureEvent] = []
    source._sink = events.append
    pcm = np.zeros(320, dtype="<i2").tobytes()
    for number in range(500):
        source.handle_message([f"flood-{number}".encode(), b"0", b"0", pcm], 0.0)
    assert source.counters.streams_started == 20
    assert source.counters.refused == 480
    source.housekeeping(100.0)
    assert source.admission.open == 0
