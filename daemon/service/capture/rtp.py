"""RTP over UDP (RFC 3550): the call audio that SBCs and media servers fork to a recorder.

Three layers, each usable alone:

- ``parse_rtp`` turns a datagram into an ``RtpPacket`` (CSRC list and header extension skipped,
  padding removed) and ``decode_payload`` turns its payload into samples: PCMU (PT 0), PCMA
  (PT 8) and comfort noise (PT 13), plus the payload types given in ``payload_formats``
  (``{96: PayloadFormat("L16", 16000, 1)}``; the static L16 types 10 and 11, 44.1 kHz, only when
  mapped there). Anything else raises ``MalformedPacket``.
- ``RtpSource`` admits new streams within limits (``dfd.daemon.service.capture.admission``: streams
  open, streams per sender host, new streams per second per host), so a flood of SSRCs cannot
  grow its state without bound.
- ``RtpStream`` is the jitter buffer of one SSRC, without sockets: it puts packets back in
  order, drops duplicates and packets that come after their place was played out, and fills
  lost packets and silence-suppressed stretches with silence whose length comes from the RTP
  timestamps, so that sample positions stay exact.
- ``RtpSource`` receives on a UDP socket and runs one ``RtpStream`` per (SSRC, sender address).

Calls. Each (SSRC, sender host:port) is one call, ``call_id = "rtp-<ssrc as 8 hex digits>@<host>:
<port>"`` (``rtp-1a2b3c4d@10.0.0.5:40002``); the same SSRC and sender coming back after its
stream ended (a hold longer than the idle timeout) is a new call, ``...#2``, ``#3`` and so on.
Each channel of the payload is a channel of the call: mono payloads give channel 0, stereo L16
gives channels 0 and 1 (kept apart, not mixed down: one party per channel is common in
recordings, and a mix would hide a synthetic voice behind a human one). A call's sample rate and
channel count are those of its first audio packet; a later packet whose payload type has another
rate or channel count is counted as malformed.

A stream ends with reason ``"timeout"`` when its SSRC has been silent for ``idle_timeout_s``
(raise it for senders that stop sending during silence, RFC 3389), with ``"bye"`` on an RTCP
BYE, and with ``"ssrc-change"`` when ``ssrc_change_ends_stream`` is set and a new SSRC arrives
from the same sender address (right for one-stream-per-port senders such as ffmpeg; wrong for an
SBC that forks many calls from one socket, hence off by default). RTCP is read from
``rtcp_port`` when one is given (the RTP port + 1 by convention; 0 picks a free port) and from the
RTP port itself (rtcp-mux, RFC 5761). SRTP is not supported.
"""

from __future__ import annotations

import collections
import dataclasses
import selectors
import socket
import struct
import threading
import time
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import structlog

from dfd.daemon.engine.events import STOPPED, AudioChunk, StreamEnded
from dfd.daemon.service.capture.admission import (
    REFUSAL_WARNING_S,
    RateLimitedWarning,
    StreamAdmission,
    StreamLimits,
)
from dfd.daemon.service.capture.base import Sink, Source
from dfd.dsp.g711 import alaw_to_linear, ulaw_to_linear

log = structlog.get_logger(__name__)

RTP_VERSION = 2
RTP_HEADER_BYTES = 12
RTCP_BYE = 203
# RFC 3550 appendix A.1: a jump of more than MAX_DROPOUT sequence numbers ahead, or more than
# MAX_MISORDER behind, is taken as a restarted sequence once the next packet confirms it.
MAX_DROPOUT = 3000
MAX_MISORDER = 100


class MalformedPacket(ValueError):  # noqa: N818 - the name the capture interface uses
    """A datagram that is not an RTP packet dfd can use: counted as malformed and dropped."""


@dataclasses.dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    csrcs: tuple[int, ...]
    payload: bytes


class PayloadFormat(NamedTuple):
    """What an RTP payload type carries: ``encoding`` is one of ``ENCODINGS``."""

    encoding: str
    clock_rate: int
    channels: int = 1


# Comfort noise and DTMF events carry no samples but still take a sequence number.
AUDIO_ENCODINGS = frozenset({"PCMU", "PCMA", "L16"})
ENCODINGS = AUDIO_ENCODINGS | {"CN", "telephone-event"}
# Known without configuration. The static L16 types (10: 44.1 kHz stereo, 11: 44.1 kHz mono;
# RFC 3551) are not: telephony never sends them, and each stream of them costs a 44.1 kHz
# resampler, which a flood of one-packet streams would multiply. Map them in ``payload_formats``
# ("11=L16/44100") to accept them.
STATIC_PAYLOAD_FORMATS: dict[int, PayloadFormat] = {
    0: PayloadFormat("PCMU", 8000, 1),
    8: PayloadFormat("PCMA", 8000, 1),
    13: PayloadFormat("CN", 8000, 1),
}


def parse_rtp(datagram: bytes) -> RtpPacket:
    """Parse one RTP packet; raises ``MalformedPacket`` on anything RFC 3550 does not allow."""
    if len(datagram) < RTP_HEADER_BYTES:
        raise MalformedPacket(f"{len(datagram)} bytes is shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = struct.unpack_from("!BBHII", datagram)
    if first >> 6 != RTP_VERSION:
        raise MalformedPacket(f"RTP version {first >> 6}, expected {RTP_VERSION}")
    end = len(datagram)
    if first & 0x20:
        padding = datagram[-1]
        if padding == 0:
            raise MalformedPacket("padding bit set but the padding length is 0")
        end -= padding
    csrc_count = first & 0x0F
    offset = RTP_HEADER_BYTES + 4 * csrc_count
    if offset > end:
        raise MalformedPacket(f"{csrc_count} CSRCs or the padding overrun the packet")
    csrcs = struct.unpack_from(f"!{csrc_count}I", datagram, RTP_HEADER_BYTES)
    if first & 0x10:
        if offset + 4 > end:
            raise MalformedPacket("header extension cut short")
        (words,) = struct.unpack_from("!H", datagram, offset + 2)
        offset += 4 + 4 * words
        if offset > end:
            raise MalformedPacket(f"header extension of {words} words overruns the packet")
    return RtpPacket(
        payload_type=second & 0x7F,
        marker=bool(second & 0x80),
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        csrcs=csrcs,
        payload=bytes(datagram[offset:end]),
    )


def is_rtcp(datagram: bytes) -> bool:
    """RTCP multiplexed on the RTP port (RFC 5761 section 4): packet types 192 to 223."""
    return len(datagram) >= 2 and datagram[0] >> 6 == RTP_VERSION and 192 <= datagram[1] <= 223


def rtcp_bye_ssrcs(datagram: bytes) -> tuple[int, ...]:
    """The SSRCs that leave in an RTCP compound packet (empty if it holds no BYE)."""
    if len(datagram) < 4:
        raise MalformedPacket(f"{len(datagram)} bytes is shorter than an RTCP header")
    leaving: list[int] = []
    offset = 0
    while offset < len(datagram):
        if len(datagram) - offset < 4:
            raise MalformedPacket("RTCP packet header cut short")
        first, packet_type, words = struct.unpack_from("!BBH", datagram, offset)
        if first >> 6 != RTP_VERSION:
            raise MalformedPacket(f"RTCP version {first >> 6}, expected {RTP_VERSION}")
        size = 4 * (words + 1)
        if offset + size > len(datagram):
            raise MalformedPacket("RTCP packet length overruns the datagram")
        if packet_type == RTCP_BYE:
            count = first & 0x1F
            if 4 + 4 * count > size:
                raise MalformedPacket(f"RTCP BYE with {count} sources overruns its length")
            leaving.extend(struct.unpack_from(f"!{count}I", datagram, offset + 4))
        offset += size
    return tuple(leaving)


def decode_payload(payload: bytes, payload_format: PayloadFormat) -> np.ndarray:
    """Samples of ``payload`` as float32 of shape (frames, channels), in [-1, 1]."""
    channels = payload_format.channels
    encoding = payload_format.encoding
    if encoding not in AUDIO_ENCODINGS:
        return np.zeros((0, channels), dtype=np.float32)
    width = 2 if encoding == "L16" else 1
    if len(payload) % (width * channels):
        raise MalformedPacket(
            f"{len(payload)} payload bytes do not fill {channels}-channel {encoding} frames"
        )
    if encoding == "L16":
        linear = np.frombuffer(payload, dtype=">i2")
    else:
        codes = np.frombuffer(payload, dtype=np.uint8)
        linear = ulaw_to_linear(codes) if encoding == "PCMU" else alaw_to_linear(codes)
    return (linear.astype(np.float32) / 32768.0).reshape(-1, channels)


@dataclasses.dataclass
class RtpStreamStats:
    received: int = 0  # packets pushed
    played: int = 0  # packets played out in order
    duplicates: int = 0  # received twice: dropped
    late: int = 0  # came after their place was played out, or too far out of sequence: dropped
    lost: int = 0  # never came: filled with silence (from the timestamps) where possible
    discontinuities: int = 0  # timestamp jumps too large or backwards to fill: played as is
    resyncs: int = 0  # sequence restarts (RFC 3550 A.1) followed


@dataclasses.dataclass
class _Held:
    timestamp: int
    samples: np.ndarray
    arrival: float


class RtpStream:
    """Jitter buffer of one RTP stream (one SSRC).

    Packets in order are played out at once. A missing packet holds back the ones after it until
    it arrives, until ``reorder_window`` packets wait behind it, or until the first of them has
    waited ``reorder_delay_s``; then it is declared lost. The silence that replaces lost packets,
    and the stretches a sender left out (comfort noise, RFC 3389), are as long as the RTP
    timestamps say, up to ``max_fill_s``; longer or backward jumps are played without a fill.
    Packets without samples (comfort noise, DTMF, an undecodable payload pushed as an empty
    array) take their sequence number and leave the timing to the next audio packet.

    ``push``, ``poll`` and ``flush`` return the audio now ready, float32 (frames, channels),
    possibly empty; ``now`` is any monotonic clock in seconds.
    """

    def __init__(
        self,
        clock_rate: int,
        channels: int = 1,
        reorder_window: int = 4,
        reorder_delay_s: float = 0.08,
        max_fill_s: float = 5.0,
    ) -> None:
        if clock_rate <= 0 or channels <= 0 or reorder_window <= 0:
            raise ValueError("clock_rate, channels and reorder_window must be positive")
        self.clock_rate = clock_rate
        self.channels = channels
        self.reorder_window = reorder_window
        self.reorder_delay_s = reorder_delay_s
        self.max_fill = round(max_fill_s * clock_rate)
        self.stats = RtpStreamStats()
        self._held: dict[int, _Held] = {}  # extended sequence number -> packet
        self._next: int | None = None  # extended sequence number to play next
        self._highest = 0  # highest extended sequence number accepted
        self._next_timestamp: int | None = None  # RTP timestamp the next audio should have
        self._history: collections.deque[bool] = collections.deque(maxlen=MAX_MISORDER)
        self._probation: int | None = None  # sequence number that would confirm a restart

    @property
    def buffered(self) -> int:
        return len(self._held)

    def push(self, sequence: int, timestamp: int, samples: np.ndarray, now: float) -> np.ndarray:
        if samples.ndim != 2 or samples.shape[1] != self.channels:
            raise ValueError(f"samples must be (frames, {self.channels}), not {samples.shape}")
        self.stats.received += 1
        held = _Held(timestamp, samples, now)
        if self._next is None:
            self._next = self._highest = sequence
            self._held[sequence] = held
            return self._drain(now, force=False)
        delta = ((sequence - self._highest + 0x8000) & 0xFFFF) - 0x8000
        extended = self._highest + delta
        behind = self._next - extended
        if extended in self._held:
            self.stats.duplicates += 1
            return self._empty()
        if 0 < behind <= len(self._history):
            if self._history[-behind]:
                self.stats.duplicates += 1
            else:
                self.stats.late += 1
            return self._empty()
        if 0 < behind <= MAX_MISORDER:
            self.stats.late += 1  # before the start of the stream
            return self._empty()
        if behind > 0 or extended - self._next > MAX_DROPOUT:
            return self._restart_or_drop(sequence, extended, held, now)
        self._probation = None
        self._highest = max(self._highest, extended)
        self._held[extended] = held
        return self._drain(now, force=False)

    def poll(self, now: float) -> np.ndarray:
        """Release what waited ``reorder_delay_s`` behind a missing packet."""
        return self._drain(now, force=False)

    def flush(self) -> np.ndarray:
        """Play out everything held (the stream is ending)."""
        return self._drain(0.0, force=True)

    def _restart_or_drop(self, sequence: int, extended: int, held: _Held, now: float) -> np.ndarray:
        if self._probation != sequence:
            self._probation = (sequence + 1) & 0xFFFF
            self.stats.late += 1
            return self._empty()
        out = self._drain(now, force=True)
        self.stats.resyncs += 1
        self._probation = None
        self._next = self._highest = extended
        self._history.clear()
        self._held[extended] = held
        return np.concatenate([out, self._drain(now, force=False)])

    def _drain(self, now: float, force: bool) -> np.ndarray:
        out: list[np.ndarray] = []
        while self._held:
            assert self._next is not None
            held = self._held.pop(self._next, None)
            if held is not None:
                self._play(held, out)
                continue
            waited = now - min(h.arrival for h in self._held.values())
            if not (
                force or len(self._held) >= self.reorder_window or waited >= self.reorder_delay_s
            ):
                break
            first = min(self._held)
            missing = first - self._next
            self.stats.lost += missing
            self._history.extend([False] * min(missing, MAX_MISORDER))
            self._next = first
        return np.concatenate(out) if out else self._empty()

    def _play(self, held: _Held, out: list[np.ndarray]) -> None:
        assert self._next is not None
        self.stats.played += 1
        self._history.append(True)
        self._next += 1
        frames = held.samples.shape[0]
        if frames == 0:
            return
        if self._next_timestamp is not None:
            gap = (
                (held.timestamp - self._next_timestamp + 0x8000_0000) & 0xFFFF_FFFF
            ) - 0x8000_0000
            if 0 < gap <= self.max_fill:
                out.append(np.zeros((gap, self.channels), dtype=np.float32))
            elif gap != 0:
                self.stats.discontinuities += 1
        out.append(held.samples.astype(np.float32, copy=False))
        self._next_timestamp = (held.timestamp + frames) & 0xFFFF_FFFF

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.channels), dtype=np.float32)


Address = tuple[str, int]
StreamKey = tuple[int, Address]  # (SSRC, sender address)


@dataclasses.dataclass
class _Call:
    call_id: str
    key: StreamKey
    generation: int
    payload_format: PayloadFormat
    stream: RtpStream
    last_arrival: float
    bye_at: float | None = None
    reported: tuple[int, int, int] = (0, 0, 0)  # lost, late, duplicates already in the counters


@dataclasses.dataclass(frozen=True)
class _Ended:
    at: float
    generation: int
    reason: str


class RtpSource(Source):
    """Receives RTP on ``host``:``port`` (port 0 picks a free one; ``address`` tells which once
    started). See the module docstring for call ids, channels and how streams end."""

    name = "rtp"
    TICK_S = 0.05  # socket wait: bounds how long stop() and timeouts take to be noticed
    ENDED_MEMORY_S = 3600.0  # how long an ended stream is remembered (for its call id's #n)
    UNKNOWN_PAYLOADS_REMEMBERED = 1024  # streams warned about an unknown payload type
    ENDED_REMEMBERED = 10_000  # ended streams remembered at most

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 5004,
        *,
        payload_formats: Mapping[int, PayloadFormat | tuple[str, int, int]] | None = None,
        idle_timeout_s: float = 5.0,
        reorder_window: int = 4,
        reorder_delay_s: float = 0.08,
        max_fill_s: float = 5.0,
        rtcp_port: int | None = None,
        ssrc_change_ends_stream: bool = False,
        receive_buffer_bytes: int = 4 << 20,
        limits: StreamLimits | None = None,
    ) -> None:
        super().__init__()
        limits = limits or StreamLimits()
        self.admission = StreamAdmission(
            limits.max_streams, limits.max_per_sender, limits.new_per_s, limits.burst
        )
        self.formats = dict(STATIC_PAYLOAD_FORMATS)
        for payload_type, spec in (payload_formats or {}).items():
            payload_format = PayloadFormat(*spec)
            if not 0 <= payload_type <= 127 or payload_format.encoding not in ENCODINGS:
                raise ValueError(f"bad RTP payload format {payload_type}: {spec}")
            if payload_format.clock_rate <= 0 or payload_format.channels <= 0:
                raise ValueError(f"bad RTP payload format {payload_type}: {spec}")
            self.formats[payload_type] = payload_format
        if idle_timeout_s <= 0:
            raise ValueError("idle_timeout_s must be positive")
        self.host, self.port, self.rtcp_port = host, port, rtcp_port
        self.idle_timeout_s = idle_timeout_s
        self.reorder_window, self.reorder_delay_s = reorder_window, reorder_delay_s
        self.max_fill_s = max_fill_s
        self.ssrc_change_ends_stream = ssrc_change_ends_stream
        self.receive_buffer_bytes = receive_buffer_bytes
        self.address: Address | None = None
        self.rtcp_address: Address | None = None
        self._calls: dict[StreamKey, _Call] = {}
        self._by_sender: dict[Address, StreamKey] = {}
        self._ended: dict[StreamKey, _Ended] = {}
        self._unknown_payloads: set[tuple[StreamKey, int]] = set()
        self._refusals = RateLimitedWarning("rtp_stream_refused", REFUSAL_WARNING_S)
        self._sockets: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._sink: Sink | None = None

    def start(self, sink: Sink) -> None:
        if self._thread is not None:
            raise RuntimeError("this RtpSource is already started")
        self._sink = sink
        try:
            rtp = self._bind(self.port)
            self.address = _address(rtp.getsockname())
            if self.rtcp_port is not None:
                rtcp = self._bind(self.rtcp_port)
                self.rtcp_address = _address(rtcp.getsockname())
        except OSError:
            self._close_sockets()
            raise
        self._thread = threading.Thread(target=self._run, name="dfd-rtp", daemon=True)
        self._thread.start()
        log.info("rtp_listening", address=self.address, rtcp_address=self.rtcp_address)

    def stop(self, reason: str = STOPPED) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        self._close_sockets()
        for call in list(self._calls.values()):
            self._end(call, reason, time.monotonic())

    def _bind(self, port: int) -> socket.socket:
        family, kind, proto, _, address = socket.getaddrinfo(
            self.host, port, type=socket.SOCK_DGRAM
        )[0]
        sock = socket.socket(family, kind, proto)
        self._sockets.append(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer_bytes)
        sock.bind(address)
        sock.setblocking(False)
        return sock

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            for index, sock in enumerate(self._sockets):
                selector.register(sock, selectors.EVENT_READ, data=(sock, index > 0))
            last_housekeeping = time.monotonic()
            while not self._stopping.is_set():
                for key, _ in selector.select(self.TICK_S):
                    sock, rtcp_only = key.data
                    self._receive(sock, rtcp_only)
                now = time.monotonic()
                if now - last_housekeeping >= self.TICK_S:
                    self.housekeeping(now)
                    last_housekeeping = now

    def _receive(self, sock: socket.socket, rtcp_only: bool) -> None:
        for _ in range(64):  # drain a burst, then look at the clock again
            try:
                datagram, sender = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # an ICMP error surfacing on the UDP socket
                log.warning("rtp_receive_error", error=str(error))
                return
            sender_address, now = _address(sender), time.monotonic()
            try:
                if rtcp_only:
                    self.handle_rtcp(datagram, sender_address, now)
                else:
                    self.handle_datagram(datagram, sender_address, now)
            except Exception:  # a bug must not stop the capture of every other call
                self.counters.malformed += 1
                log.exception("rtp_datagram_failed", sender=sender_address)

    def handle_datagram(self, datagram: bytes, sender: Address, now: float) -> None:
        """Everything one datagram causes; called on the receive thread."""
        if is_rtcp(datagram):
            self.handle_rtcp(datagram, sender, now)
            return
        try:
            packet = parse_rtp(datagram)
        except MalformedPacket:
            self.counters.malformed += 1
            return
        key = (packet.ssrc, sender)
        call = self._calls.get(key)
        payload_format = self.formats.get(packet.payload_type)
        if payload_format is None:
            self._warn_unknown_payload(key, packet.payload_type)
        if call is None:
            if payload_format is None:
                self.counters.malformed += 1
                return
            if payload_format.encoding not in AUDIO_ENCODINGS:
                return  # comfort noise or DTMF before any audio: nothing to start a call with
            call = self._open(key, payload_format, now)
            if call is None:
                return
        call.last_arrival = now
        try:
            samples = self._decode(packet, payload_format, call.payload_format)
        except MalformedPacket:
            self.counters.malformed += 1
            samples = np.zeros((0, call.payload_format.channels), dtype=np.float32)
        audio = call.stream.push(packet.sequence, packet.timestamp, samples, now)
        self._emit(call, audio)

    def _warn_unknown_payload(self, key: StreamKey, payload_type: int) -> None:
        """A warning for the first packet of each stream with an unknown payload type (the
        streams remembered are bounded, so a flood of SSRCs cannot flood the log)."""
        if (key, payload_type) in self._unknown_payloads:
            return
        if len(self._unknown_payloads) >= self.UNKNOWN_PAYLOADS_REMEMBERED:
            return
        self._unknown_payloads.add((key, payload_type))
        ssrc, sender = key
        log.warning(
            "rtp_unknown_payload_type",
            payload_type=payload_type,
            ssrc=ssrc,
            sender=f"{sender[0]}:{sender[1]}",
            hint='map it in [serve] rtp_payloads, e.g. "97=L16/16000"',
        )

    def housekeeping(self, now: float) -> None:
        """Release audio held too long, end streams that said BYE or went quiet."""
        for call in list(self._calls.values()):
            if call.bye_at is not None and now - call.bye_at >= self.reorder_delay_s:
                self._end(call, "bye", now)
            elif now - call.last_arrival >= self.idle_timeout_s:
                self._end(call, "timeout", now)
            else:
                self._emit(call, call.stream.poll(now))
        while self._ended:
            key, ended = next(iter(self._ended.items()))
            if now - ended.at < self.ENDED_MEMORY_S:
                break
            del self._ended[key]

    def _decode(
        self, packet: RtpPacket, payload_format: PayloadFormat | None, stream_format: PayloadFormat
    ) -> np.ndarray:
        if payload_format is None:
            raise MalformedPacket(f"unknown RTP payload type {packet.payload_type}")
        if payload_format.encoding in AUDIO_ENCODINGS and (
            payload_format.clock_rate != stream_format.clock_rate
            or payload_format.channels != stream_format.channels
        ):
            raise MalformedPacket(f"payload type {packet.payload_type} changes the stream's format")
        samples = decode_payload(packet.payload, payload_format)
        if samples.shape[1] != stream_format.channels:  # comfort noise or DTMF: no frames
            return np.zeros((0, stream_format.channels), dtype=np.float32)
        return samples

    def _open(self, key: StreamKey, payload_format: PayloadFormat, now: float) -> _Call | None:
        ssrc, sender = key
        ended = self._ended.get(key)
        if ended is not None and ended.reason == "bye" and now - ended.at < self.idle_timeout_s:
            self.counters.late += 1  # a straggler after the sender said BYE
            return None
        if self.ssrc_change_ends_stream and sender in self._by_sender:
            self._end(self._calls[self._by_sender[sender]], "ssrc-change", now)
        refusal = self.admission.admit(sender[0], now)  # limits per host: ports are free to vary
        if refusal is not None:
            self.counters.refused += 1
            self._refusals.warn(now, refusal=refusal, sender=sender[0], ssrc=ssrc)
            return None
        generation = 1 if ended is None else ended.generation + 1
        host = f"[{sender[0]}]" if ":" in sender[0] else sender[0]
        call_id = f"rtp-{ssrc:08x}@{host}:{sender[1]}"
        if generation > 1:
            call_id += f"#{generation}"
        stream = RtpStream(
            payload_format.clock_rate,
            payload_format.channels,
            self.reorder_window,
            self.reorder_delay_s,
            self.max_fill_s,
        )
        call = _Call(call_id, key, generation, payload_format, stream, last_arrival=now)
        self._calls[key] = call
        self._by_sender[sender] = key
        self._ended.pop(key, None)
        self.counters.streams_started += payload_format.channels
        log.info(
            "rtp_stream_started",
            call_id=call_id,
            encoding=payload_format.encoding,
            sample_rate=payload_format.clock_rate,
            channels=payload_format.channels,
        )
        return call

    def _end(self, call: _Call, reason: str, now: float) -> None:
        self._emit(call, call.stream.flush())
        del self._calls[call.key]
        self.admission.closed(call.key[1][0])
        if self._by_sender.get(call.key[1]) == call.key:
            del self._by_sender[call.key[1]]
        self._ended[call.key] = _Ended(now, call.generation, reason)  # in order of ending
        while len(self._ended) > self.ENDED_REMEMBERED:  # a flood of one-packet SSRCs
            del self._ended[next(iter(self._ended))]
        stats = call.stream.stats
        log.info(
            "rtp_stream_ended", call_id=call.call_id, reason=reason, **dataclasses.asdict(stats)
        )
        assert self._sink is not None
        for channel in range(call.payload_format.channels):
            self._deliver(self._sink, StreamEnded(call.call_id, channel, reason))

    def _emit(self, call: _Call, audio: np.ndarray) -> None:
        stats = call.stream.stats
        lost, late, duplicates = call.reported
        self.counters.lost += stats.lost - lost
        self.counters.late += stats.late - late
        self.counters.duplicates += stats.duplicates - duplicates
        call.reported = (stats.lost, stats.late, stats.duplicates)
        if audio.shape[0] == 0:
            return
        assert self._sink is not None
        rate = call.payload_format.clock_rate
        for channel in range(audio.shape[1]):
            samples = np.ascontiguousarray(audio[:, channel])
            self._deliver(self._sink, AudioChunk(call.call_id, channel, samples, rate))

    def handle_rtcp(self, datagram: bytes, sender: Address, now: float) -> None:
        """A BYE marks the sender's streams to end once their last packets had time to come."""
        try:
            leaving = rtcp_bye_ssrcs(datagram)
        except MalformedPacket:
            self.counters.malformed += 1
            return
        for call in self._calls.values():
            ssrc, (host, _) = call.key
            if ssrc in leaving and host == sender[0] and call.bye_at is None:
                call.bye_at = now


def _address(sockaddr: tuple[str, int] | tuple[str, int, int, int]) -> Address:
    return (str(sockaddr[0]), int(sockaddr[1]))
