"""RTP capture: the packet parser against hand-built packets, the jitter buffer's ordering, loss
and duplicate handling, fuzzing, and real ffmpeg RTP senders through a real UDP socket."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from dfd.daemon.engine.events import AudioChunk, CaptureEvent, StreamEnded
from dfd.daemon.service.capture.rtp import (
    MAX_DROPOUT,
    MalformedPacket,
    PayloadFormat,
    RtpSource,
    RtpStream,
    decode_payload,
    is_rtcp,
    parse_rtp,
    rtcp_bye_ssrcs,
)
from dfd.dsp.audio_io import load_audio
from tests.signals import SAMPLE_CALL

SSRC = 0x1A2B3C4D
FRAME = 160  # 20 ms at 8 kHz


def rtp(
    seq: int,
    timestamp: int,
    payload: bytes = b"\xff" * FRAME,
    *,
    payload_type: int = 0,
    marker: bool = False,
    ssrc: int = SSRC,
    csrcs: tuple[int, ...] = (),
    extension: bytes | None = None,
    padding: int = 0,
) -> bytes:
    """An RTP packet laid out by hand from RFC 3550 section 5.1."""
    first = 2 << 6 | (0x20 if padding else 0) | (0x10 if extension is not None else 0) | len(csrcs)
    packet = struct.pack("!BBHII", first, marker << 7 | payload_type, seq, timestamp, ssrc)
    packet += b"".join(struct.pack("!I", csrc) for csrc in csrcs)
    if extension is not None:
        assert len(extension) % 4 == 0
        packet += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    packet += payload
    if padding:
        packet += bytes(padding - 1) + bytes([padding])
    return packet


# parse_rtp


def test_parse_reads_every_header_field() -> None:
    packet = parse_rtp(rtp(54321, 0xDEADBEEF, b"abc", payload_type=8, marker=True))
    assert packet.payload_type == 8
    assert packet.marker
    assert packet.sequence == 54321
    assert packet.timestamp == 0xDEADBEEF
    assert packet.ssrc == SSRC
    assert packet.csrcs == ()
    assert packet.payload == b"abc"


def test_parse_skips_csrcs_extension_and_padding() -> None:
    datagram = rtp(7, 160, b"voice", csrcs=(1, 2, 0xFFFFFFFF), extension=b"\x10" * 8, padding=7)
    packet = parse_rtp(datagram)
    assert packet.csrcs == (1, 2, 0xFFFFFFFF)
    assert packet.payload == b"voice"
    assert parse_rtp(rtp(7, 160, b"", extension=b"")).payload == b""
    assert parse_rtp(rtp(7, 160, b"x", padding=1)).payload == b"x"
    assert parse_rtp(rtp(7, 160, b"x\x00")).payload == b"x\x00"  # no padding bit: all payload
    assert parse_rtp(rtp(7, 160, b"", padding=4)).payload == b""


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"", "shorter"),
        (rtp(1, 1)[:11], "shorter"),
        (bytes([0x40]) + rtp(1, 1)[1:], "version 1"),
        (bytes([0xC0]) + rtp(1, 1)[1:], "version 3"),
        (bytes([0x00]) + rtp(1, 1)[1:], "version 0"),
        (bytes([0xA0]) + rtp(1, 1, b"ab\x00")[1:], "padding length is 0"),
        (bytes([0xA0]) + rtp(1, 1, b"ab\x10")[1:], "overrun"),
        (bytes([0xA0]) + rtp(1, 1, b"\xff")[1:], "overrun"),
        (bytes([0x83]) + rtp(1, 1, b"12345678")[1:], "overrun"),
        (bytes([0x90]) + rtp(1, 1, b"\xbe\xde")[1:], "cut short"),
        (bytes([0x90]) + rtp(1, 1, b"\xbe\xde\x00\x02abcd")[1:], "overruns"),
    ],
)
def test_parse_refuses_malformed_packets(datagram: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket, match=reason):
        parse_rtp(datagram)


def test_rtcp_bye_from_ffmpeg_is_found() -> None:
    # The compound packet ffmpeg -rtpflags send_bye sends last: a sender report, then BYE.
    compound = bytes.fromhex(
        "80c8000635640f1aeeacfb8ed33333330bfbce65000000100000096081cb000135640f1a"
    )
    assert is_rtcp(compound)
    assert not is_rtcp(rtp(1, 1))
    assert rtcp_bye_ssrcs(compound) == (0x35640F1A,)
    assert rtcp_bye_ssrcs(compound[:28]) == ()
    with pytest.raises(MalformedPacket):
        rtcp_bye_ssrcs(compound[:-1])


def test_decode_payloads() -> None:
    # G.711 code words with values fixed by the Recommendation.
    assert decode_payload(b"\xff\x00\x80", PayloadFormat("PCMU", 8000)).ravel().tolist() == [
        0.0,
        -32124 / 32768,
        32124 / 32768,
    ]
    assert decode_payload(b"\xd5\x55", PayloadFormat("PCMA", 8000)).ravel().tolist() == [
        8 / 32768,
        -8 / 32768,
    ]
    stereo = decode_payload(
        struct.pack(">4h", 1, -2, 32767, -32768), PayloadFormat("L16", 44100, 2)
    )
    assert stereo.dtype == np.float32
    np.testing.assert_array_equal(stereo * 32768, [[1, -2], [32767, -32768]])
    assert decode_payload(b"\x20", PayloadFormat("CN", 8000)).shape == (0, 1)
    with pytest.raises(MalformedPacket, match="do not fill"):
        decode_payload(b"\x00\x01\x02", PayloadFormat("L16", 16000))
    with pytest.raises(MalformedPacket, match="do not fill"):
        decode_payload(b"\x00\x01", PayloadFormat("L16", 44100, 2))


# RtpStream


def packet_audio(seq: int) -> np.ndarray:
    """One packet of samples that say which packet they came from."""
    return np.full((FRAME, 1), (seq % 1000) / 1000, dtype=np.float32)


def feed(stream: RtpStream, seqs: list[int], first_seq: int = 0, now: float = 0.0) -> np.ndarray:
    """Push packets by sequence number, with the timestamps a 20 ms sender gives them."""
    out = []
    for seq in seqs:
        timestamp = ((seq - first_seq) % 65536) * FRAME + 1000
        out.append(stream.push(seq, timestamp, packet_audio(seq), now))
    return np.concatenate(out)


def expected(seqs: list[int], lost: tuple[int, ...] = ()) -> np.ndarray:
    return np.concatenate(
        [np.zeros((FRAME, 1), np.float32) if seq in lost else packet_audio(seq) for seq in seqs]
    )


def test_in_order_packets_play_at_once() -> None:
    stream = RtpStream(8000)
    for seq in range(5):
        out = feed(stream, [seq])
        np.testing.assert_array_equal(out, packet_audio(seq))
    assert stream.stats.played == 5
    assert stream.stats.lost == stream.stats.late == stream.stats.duplicates == 0


def test_reordered_packets_are_put_back_in_order() -> None:
    stream = RtpStream(8000, reorder_window=4)
    assert feed(stream, [0]).shape == (FRAME, 1)
    assert feed(stream, [2, 3]).shape == (0, 1)  # held behind the missing 1
    out = feed(stream, [1, 5, 4])
    np.testing.assert_array_equal(out, expected([1, 2, 3, 4, 5]))
    assert stream.stats.lost == 0
    assert stream.buffered == 0


def test_sequence_numbers_wrap_around() -> None:
    stream = RtpStream(8000)
    seqs = [65533, 65534, 0, 65535, 2, 1, 3]
    out = feed(stream, seqs, first_seq=65533)
    order = [65533, 65534, 65535, 0, 1, 2, 3]
    np.testing.assert_array_equal(out, expected(order))
    assert stream.stats.played == 7
    assert stream.stats.lost == stream.stats.late == 0


def test_lost_packets_become_silence_as_long_as_the_timestamps_say() -> None:
    stream = RtpStream(8000, reorder_window=3)
    out = feed(stream, [65534, 65535, 2, 3], first_seq=65534)  # 0 and 1 lost across the wrap
    assert out.shape[0] == 2 * FRAME
    out = np.concatenate([out, feed(stream, [4], first_seq=65534)])  # 3 wait: the gap is certain
    np.testing.assert_array_equal(out, expected([65534, 65535, 0, 1, 2, 3, 4], lost=(0, 1)))
    assert stream.stats.lost == 2
    assert stream.stats.played == 5


def test_a_gap_is_released_after_the_reorder_delay() -> None:
    stream = RtpStream(8000, reorder_window=10, reorder_delay_s=0.08)
    feed(stream, [0, 2], now=10.0)
    assert stream.poll(10.05).shape == (0, 1)
    np.testing.assert_array_equal(stream.poll(10.09), expected([1, 2], lost=(1,)))
    assert stream.stats.lost == 1


def test_duplicates_are_dropped_whether_held_or_played() -> None:
    stream = RtpStream(8000)
    out = feed(stream, [0, 1, 1, 0, 3, 3])
    np.testing.assert_array_equal(out, expected([0, 1]))
    assert stream.stats.duplicates == 3
    np.testing.assert_array_equal(feed(stream, [2]), expected([2, 3]))
    assert stream.stats.received == stream.stats.played + stream.stats.duplicates


def test_a_packet_after_its_place_was_filled_is_late() -> None:
    stream = RtpStream(8000, reorder_window=4)
    out = feed(stream, [0, 2, 3, 4, 5, 1])
    np.testing.assert_array_equal(out, expected([0, 1, 2, 3, 4, 5], lost=(1,)))
    assert stream.stats.late == 1
    assert stream.stats.lost == 1
    assert stream.stats.duplicates == 0


def test_timestamp_jumps() -> None:
    stream = RtpStream(8000, max_fill_s=1.0)
    audio = packet_audio(1)
    stream.push(0, 0, audio, 0.0)
    # Comfort noise: a packet without samples, then speech resumes 100 ms later.
    stream.push(1, FRAME, np.zeros((0, 1), np.float32), 0.0)
    out = stream.push(2, FRAME + 800, audio, 0.0)
    np.testing.assert_array_equal(out[:800], 0.0)
    np.testing.assert_array_equal(out[800:], audio)
    # A jump beyond max_fill_s, and one backwards: played without a fill.
    assert stream.push(3, 100_000, audio, 0.0).shape == (FRAME, 1)
    assert stream.push(4, 50, audio, 0.0).shape == (FRAME, 1)
    assert stream.stats.discontinuities == 2
    # The 32-bit timestamp wraps: no discontinuity.
    stream.push(5, 0xFFFFFFFF - FRAME + 1, audio, 0.0)
    assert stream.push(6, 0, audio, 0.0).shape == (FRAME, 1)
    assert stream.stats.discontinuities == 3
    assert stream.stats.lost == 0


def test_a_sequence_restart_is_followed_once_confirmed() -> None:
    stream = RtpStream(8000)
    feed(stream, [0, 1])
    jump = 1 + MAX_DROPOUT + 500
    assert feed(stream, [jump]).shape == (0, 1)  # a stray: dropped
    np.testing.assert_array_equal(feed(stream, [2]), expected([2]))
    assert feed(stream, [jump + 10]).shape == (0, 1)
    np.testing.assert_array_equal(feed(stream, [jump + 11]), expected([jump + 11]))
    assert stream.stats.resyncs == 1
    assert stream.stats.late == 2


def test_stereo_stream_and_bad_shapes() -> None:
    stream = RtpStream(44100, channels=2)
    out = stream.push(9, 0, np.ones((4, 2), np.float32), 0.0)
    assert out.shape == (4, 2)
    with pytest.raises(ValueError, match="frames, 2"):
        stream.push(10, 4, np.ones(4, np.float32), 0.0)


# fuzzing: only MalformedPacket, and every packet accounted for

FORMATS = {
    0: PayloadFormat("PCMU", 8000),
    8: PayloadFormat("PCMA", 8000),
    13: PayloadFormat("CN", 8000),
    96: PayloadFormat("L16", 16000),
}

valid_packets = st.builds(
    lambda seq, timestamp, payload, payload_type, csrcs, extension, padding: rtp(
        seq,
        timestamp,
        payload,
        payload_type=payload_type,
        csrcs=tuple(csrcs),
        extension=extension,
        padding=padding,
    ),
    seq=st.integers(0, 40).map(lambda offset: (65520 + offset) % 65536),
    timestamp=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=64),
    payload_type=st.sampled_from([0, 8, 13, 96, 3, 127]),
    csrcs=st.lists(st.integers(0, 2**32 - 1), max_size=3),
    extension=st.none() | st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4]),
    padding=st.integers(0, 8),
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    packet = bytearray(draw(valid_packets))
    for _ in range(draw(st.integers(0, 3))):
        if packet:
            packet[draw(st.integers(0, len(packet) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(packet)))
    return bytes(packet[:cut] if draw(st.booleans()) else packet)


datagrams = st.lists(st.one_of(st.binary(max_size=80), valid_packets, mutated()), max_size=60)


@settings(max_examples=300, deadline=None)
@given(datagrams=datagrams, window=st.integers(1, 6))
def test_fuzz_parser_and_jitter_buffer(datagrams: list[bytes], window: int) -> None:
    stream = RtpStream(8000, reorder_window=window, reorder_delay_s=0.05, max_fill_s=0.5)
    now = 0.0
    for datagram in datagrams:
        now += 0.01
        try:
            packet = parse_rtp(datagram)
            payload_format = FORMATS.get(packet.payload_type)
            if payload_format is None:
                raise MalformedPacket("unknown payload type")
            samples = decode_payload(packet.payload, payload_format)
        except MalformedPacket:
            continue
        out = stream.push(packet.sequence, packet.timestamp, samples, now)
        out = np.concatenate([out, stream.poll(now)])
        assert out.dtype == np.float32
        assert out.shape[1] == 1
        assert np.all(np.abs(out) <= 1.0)
        stats = stream.stats
        assert stats.received == stats.played + stats.duplicates + stats.late + stream.buffered
        assert stream.buffered < window
    stream.flush()
    stats = stream.stats
    assert stream.buffered == 0
    assert stats.received == stats.played + stats.duplicates + stats.late


@settings(max_examples=200, deadline=None)
@given(
    datagrams=st.lists(
        st.tuples(st.one_of(st.binary(max_size=80), valid_packets, mutated()), st.integers(0, 2)),
        max_size=40,
    )
)
def test_fuzz_source_never_fails_and_counts_what_it_sends(
    datagrams: list[tuple[bytes, int]],
) -> None:
    source = RtpSource(
        "127.0.0.1", 0, payload_formats={96: ("L16", 16000, 1)}, ssrc_change_ends_stream=True
    )
    events: list[CaptureEvent] = []
    source._sink = events.append  # driven without its socket thread
    now = 0.0
    for datagram, sender in datagrams:
        now += 0.02
        source.handle_datagram(datagram, ("10.0.0.1", 4000 + sender), now)
        source.housekeeping(now)
    source.housekeeping(now + source.idle_timeout_s)
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    ended = [e for e in events if isinstance(e, StreamEnded)]
    assert source.counters.samples == sum(len(c.samples) for c in chunks)
    assert source.counters.streams_started == source.counters.streams_ended == len(ended)
    assert {c.call_id for c in chunks} <= {e.call_id for e in ended}


def test_source_ends_streams_on_ssrc_change_and_numbers_returning_ssrcs() -> None:
    source = RtpSource("127.0.0.1", 0, idle_timeout_s=1.0, ssrc_change_ends_stream=True)
    events: list[CaptureEvent] = []
    source._sink = events.append
    sender = ("192.0.2.7", 30000)
    source.handle_datagram(rtp(1, 0, ssrc=1), sender, 0.0)
    source.handle_datagram(rtp(1, 0, ssrc=2), sender, 0.1)
    source.housekeeping(5.0)
    source.handle_datagram(rtp(9, 0, ssrc=2), sender, 6.0)
    source.handle_datagram(b"\x80\x05" + bytes(20), sender, 6.0)  # unknown payload type 5
    source.housekeeping(10.0)
    ends = [(e.call_id, e.reason) for e in events if isinstance(e, StreamEnded)]
    assert ends == [
        ("rtp-00000001@192.0.2.7:30000", "ssrc-change"),
        ("rtp-00000002@192.0.2.7:30000", "timeout"),
        ("rtp-00000002@192.0.2.7:30000#2", "timeout"),
    ]
    assert source.counters.malformed == 1


def test_bad_payload_format_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="bad RTP payload format 96"):
        RtpSource(payload_formats={96: ("OPUS", 48000, 2)})
    with pytest.raises(ValueError, match="bad RTP payload format 200"):
        RtpSource(payload_formats={200: ("L16", 16000, 1)})


def test_an_unknown_payload_type_is_warned_about_once_per_stream() -> None:
    source = RtpSource("127.0.0.1", 0)
    collector = Collector()
    source._sink = collector  # handle_datagram is driven directly, without sockets
    with structlog.testing.capture_logs() as logs:
        for sender in [("127.0.0.1", 4000), ("127.0.0.1", 4002)]:
            for seq in range(5):
                source.handle_datagram(rtp(seq, seq * FRAME, payload_type=97), sender, 0.0)
        source.handle_datagram(rtp(5, 5 * FRAME, payload_type=0), ("127.0.0.1", 4000), 0.0)
    warnings = [entry for entry in logs if entry["event"] == "rtp_unknown_payload_type"]
    assert [(w["log_level"], w["payload_type"], w["sender"]) for w in warnings] == [
        ("warning", 97, "127.0.0.1:4000"),
        ("warning", 97, "127.0.0.1:4002"),
    ]
    assert "rtp_payloads" in warnings[0]["hint"]
    assert source.counters.malformed == 10  # dropped and counted, not decoded
    assert source.counters.streams_started == 1  # the PCMU packet starts a stream as before


# real ffmpeg senders


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.5 s of real speech, 16-bit 8 kHz mono."""
    speech = load_audio(SAMPLE_CALL, 8000).samples[0][8000:20000]
    path = tmp_path_factory.mktemp("rtp") / "speech.wav"
    soundfile.write(path, speech, 8000, subtype="PCM_16")
    return path


def ffmpeg() -> str:
    executable = shutil.which("ffmpeg")
    assert executable, "the ffmpeg binary is a test dependency (apt-get install ffmpeg)"
    return executable


def ffmpeg_reference(wav: Path, output_args: list[str]) -> bytes:
    """What ffmpeg's own encoder makes of the file, as raw bytes."""
    command = [ffmpeg(), "-nostdin", "-v", "error", "-i", str(wav), *output_args, "-"]
    return subprocess.run(command, capture_output=True, check=True).stdout


class Collector:
    def __init__(self) -> None:
        self.events: list[tuple[float, CaptureEvent]] = []
        self.ended = threading.Event()

    def __call__(self, event: CaptureEvent) -> None:
        self.events.append((time.monotonic(), event))
        if isinstance(event, StreamEnded):
            self.ended.set()

    def audio(self) -> np.ndarray:
        chunks = [e.samples for _, e in self.events if isinstance(e, AudioChunk)]
        return np.concatenate(chunks)


def send_with_ffmpeg(wav: Path, url: str, codec_args: list[str]) -> None:
    command = [ffmpeg(), "-nostdin", "-v", "error", "-re", "-i", str(wav), *codec_args]
    subprocess.run([*command, "-f", "rtp", url], capture_output=True, check=True, timeout=60)


@pytest.mark.parametrize(
    ("codec", "raw_format", "encoding"),
    [("pcm_mulaw", "mulaw", "PCMU"), ("pcm_alaw", "alaw", "PCMA")],
)
def test_ffmpeg_g711_stream_arrives_sample_exact_and_times_out(
    speech_wav: Path, codec: str, raw_format: str, encoding: str
) -> None:
    source = RtpSource("127.0.0.1", 0, idle_timeout_s=0.5)
    collector = Collector()
    source.start(collector)
    try:
        assert source.address is not None
        host, port = source.address
        send_with_ffmpeg(speech_wav, f"rtp://{host}:{port}?pkt_size=172", ["-c:a", codec])
        assert collector.ended.wait(10), "no StreamEnded after the sender stopped"
    finally:
        source.stop()

    codes = np.frombuffer(ffmpeg_reference(speech_wav, ["-f", raw_format]), dtype=np.uint8)
    sent = decode_payload(codes.tobytes(), PayloadFormat(encoding, 8000))[:, 0]
    received = collector.audio()
    assert len(sent) - FRAME < len(received) <= len(sent)
    np.testing.assert_array_equal(received, sent[: len(received)])
    speech = soundfile.read(speech_wav, dtype="float32")[0]
    assert np.corrcoef(received, speech[: len(received)])[0, 1] > 0.99

    chunk_times = [t for t, e in collector.events if isinstance(e, AudioChunk)]
    ends = [(t, e) for t, e in collector.events if isinstance(e, StreamEnded)]
    assert len(ends) == 1
    end_time, end = ends[0]
    assert end.reason == "timeout"
    assert end.call_id.startswith("rtp-") and "@127.0.0.1:" in end.call_id
    assert {e.call_id for _, e in collector.events} == {end.call_id}
    assert end_time - max(chunk_times) >= 0.5 - RtpSource.TICK_S
    counters = source.counters
    assert counters.lost == counters.late == counters.malformed == counters.duplicates == 0
    assert counters.samples == len(received)
    assert counters.streams_started == counters.streams_ended == 1


def test_ffmpeg_rtcp_bye_ends_the_stream(speech_wav: Path) -> None:
    source = RtpSource("127.0.0.1", 0, idle_timeout_s=30.0, rtcp_port=0)
    collector = Collector()
    source.start(collector)
    try:
        assert source.address is not None and source.rtcp_address is not None
        host, port = source.address
        url = f"rtp://{host}:{port}?rtcpport={source.rtcp_address[1]}&pkt_size=172"
        started = time.monotonic()
        send_with_ffmpeg(speech_wav, url, ["-c:a", "pcm_alaw", "-rtpflags", "send_bye"])
        assert collector.ended.wait(10), "no StreamEnded after RTCP BYE"
        assert time.monotonic() - started < 30.0
    finally:
        source.stop()
    codes = np.frombuffer(ffmpeg_reference(speech_wav, ["-f", "alaw"]), dtype=np.uint8)
    sent = decode_payload(codes.tobytes(), PayloadFormat("PCMA", 8000))[:, 0]
    np.testing.assert_array_equal(collector.audio(), sent)
    ends = [e for _, e in collector.events if isinstance(e, StreamEnded)]
    assert [e.reason for e in ends] == ["bye"]
    assert source.counters.malformed == 0


def test_ffmpeg_l16_on_a_dynamic_payload_type(speech_wav: Path) -> None:
    # ffmpeg sends L16 at rates other than 44.1 kHz on dynamic payload type 97.
    source = RtpSource("127.0.0.1", 0, idle_timeout_s=0.5, payload_formats={97: ("L16", 16000, 1)})
    collector = Collector()
    source.start(collector)
    try:
        assert source.address is not None
        host, port = source.address
        codec = ["-c:a", "pcm_s16be", "-ar", "16000"]
        send_with_ffmpeg(speech_wav, f"rtp://{host}:{port}", codec)
        assert collector.ended.wait(10)
    finally:
        source.stop()
    reference = ffmpeg_reference(speech_wav, ["-ar", "16000", "-f", "s16be"])
    sent = np.frombuffer(reference, dtype=">i2").astype(np.float32) / 32768
    np.testing.assert_array_equal(collector.audio(), sent)
    assert {e.sample_rate for _, e in collector.events if isinstance(e, AudioChunk)} == {16000}


def test_stop_ends_open_streams_and_is_prompt() -> None:
    source = RtpSource("127.0.0.1", 0, idle_timeout_s=30.0)
    collector = Collector()
    source.start(collector)
    assert source.address is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for seq in range(3):
            sender.sendto(rtp(seq, seq * FRAME), source.address)
        deadline = time.monotonic() + 5
        while source.counters.chunks < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    started = time.monotonic()
    source.stop()
    assert time.monotonic() - started < 1.0
    ends = [e for _, e in collector.events if isinstance(e, StreamEnded)]
    assert [e.reason for e in ends] == ["source-stopped"]
    assert len(collector.audio()) == 3 * FRAME
