"""ZeroMQ PCM ingest: media servers push call audio to a PULL socket the daemon binds.

One message per frame of audio, four ZeroMQ frames::

    [call_id, channel, seq, pcm]

- ``call_id``: UTF-8, 1 to 256 bytes.
- ``channel``: ASCII decimal, the party (0, 1, ...), at most 3 digits.
- ``seq``: ASCII decimal, counting the messages of that (call_id, channel) stream from 0.
- ``pcm``: little-endian signed 16-bit mono samples at the endpoint's ``sample_rate`` (one rate
  per endpoint, set in the configuration; 16 kHz by default, the pipeline's own rate).

``[call_id, channel, seq, b""]`` (no samples) ends that stream (reason ``"end-message"``); so
does ``idle_timeout_s`` without a message (``"timeout"``). Messages for a stream that ended by an
end message are dropped (counted ``late``) for ``idle_timeout_s`` afterwards; after that the same
call id and channel start a new stream.

Sequence numbers. The first message seen anchors a stream (a sender that was already running
when the daemon started is picked up mid-stream). A message whose ``seq`` is not above the last
one is dropped and counted in ``duplicates`` (TCP keeps one sender's messages in order, so it
can only be a resend). Skipped numbers are counted in ``lost`` and filled with silence as long as
the last message received times the number skipped, capped at ``max_fill_s``: exact for senders
that push fixed-size frames, which media servers do (20 ms), close otherwise.

Anything else (another frame count, a call id that is not UTF-8, a channel or seq that is not
plain ASCII digits, an odd number of PCM bytes) is counted in ``malformed`` and dropped, and the
source carries on; a warning (``pcm_ingest_malformed``) names the problem, at most one every
``MALFORMED_WARNING_S`` seconds. A sender whose frame exceeds ``MAX_MESSAGE_BYTES`` is
disconnected by ZeroMQ itself (that message never arrives, so it is not counted). The wire format
for integrators: docs/pcm-ingest.md.

With ``curve`` (``service.keys``) the socket is a CURVE server: a sender needs the daemon's
public key, and with a client list its own key must be listed; others deliver nothing.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence

import numpy as np
import structlog
import zmq
from zmq.auth.thread import ThreadAuthenticator

from dfd.daemon.engine.events import STOPPED, AudioChunk, StreamEnded
from dfd.daemon.service.capture.admission import (
    REFUSAL_WARNING_S,
    RateLimitedWarning,
    StreamAdmission,
    StreamLimits,
)
from dfd.daemon.service.capture.base import Sink, Source
from dfd.daemon.service.keys import CurveServer

log = structlog.get_logger(__name__)

MAX_CALL_ID_BYTES = 256
MAX_CHANNEL_DIGITS = 3
MAX_SEQ_DIGITS = 19  # fits an int64
MAX_MESSAGE_BYTES = 1 << 20


class MalformedFrame(ValueError):  # noqa: N818 - named like rtp.MalformedPacket
    """A message that does not follow the PCM ingest format: counted as malformed and dropped."""


@dataclasses.dataclass(frozen=True)
class PcmFrame:
    call_id: str
    channel: int
    seq: int
    samples: np.ndarray  # (n,) float32 in [-1, 1]; empty for an end message

    @property
    def is_end(self) -> bool:
        return len(self.samples) == 0


def parse_pcm_frames(frames: Sequence[bytes]) -> PcmFrame:
    """Parse one multipart message; raises ``MalformedFrame`` if it breaks the format."""
    if len(frames) != 4:
        raise MalformedFrame(f"{len(frames)} frames, expected 4 (call_id, channel, seq, pcm)")
    raw_call_id, raw_channel, raw_seq, pcm = (bytes(frame) for frame in frames)
    if not 0 < len(raw_call_id) <= MAX_CALL_ID_BYTES:
        raise MalformedFrame(f"a call id of {len(raw_call_id)} bytes (1 to 256 allowed)")
    try:
        call_id = raw_call_id.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedFrame("the call id is not UTF-8") from error
    channel = _decimal(raw_channel, "channel", MAX_CHANNEL_DIGITS)
    seq = _decimal(raw_seq, "seq", MAX_SEQ_DIGITS)
    if len(pcm) % 2:
        raise MalformedFrame(f"{len(pcm)} PCM bytes is not a whole number of 16-bit samples")
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    return PcmFrame(call_id, channel, seq, samples)


def _decimal(raw: bytes, what: str, max_digits: int) -> int:
    if not 0 < len(raw) <= max_digits or not raw.isdigit():
        raise MalformedFrame(f"{what} must be 1 to {max_digits} ASCII digits, not {raw[:24]!r}")
    return int(raw)


StreamKey = tuple[str, int]  # (call_id, channel)


@dataclasses.dataclass
class _Stream:
    next_seq: int
    last_frames: int
    last_arrival: float


class PcmIngestSource(Source):
    """Binds a ZeroMQ PULL socket on ``endpoint`` (``tcp://127.0.0.1:5560``, ``ipc://...``;
    ``tcp://host:*`` or ``tcp://host:0`` picks a free port; ``endpoint`` then holds the one
    bound)."""

    name = "pcm"
    TICK_MS = 50  # poll wait: bounds how long stop() and timeouts take to be noticed
    MALFORMED_WARNING_S = 10.0  # at most one malformed-message warning this often

    def __init__(
        self,
        endpoint: str,
        *,
        sample_rate: int = 16_000,
        idle_timeout_s: float = 5.0,
        max_fill_s: float = 5.0,
        curve: CurveServer | None = None,
        limits: StreamLimits | None = None,
    ) -> None:
        super().__init__()
        limits = limits or StreamLimits()
        self.admission = StreamAdmission(
            limits.max_streams, limits.max_per_sender, limits.new_per_s, limits.burst
        )
        self._refusals = RateLimitedWarning("pcm_stream_refused", REFUSAL_WARNING_S)
        if sample_rate <= 0 or idle_timeout_s <= 0 or max_fill_s < 0:
            raise ValueError("sample_rate and idle_timeout_s must be positive, max_fill_s >= 0")
        self.endpoint = endpoint
        self.sample_rate = sample_rate
        self.idle_timeout_s = idle_timeout_s
        self.max_fill = round(max_fill_s * sample_rate)
        self.curve = curve
        self._streams: dict[StreamKey, _Stream] = {}
        self._ended: dict[StreamKey, float] = {}  # ended by an end message -> when
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._socket: zmq.Socket[bytes] | None = None
        self._authenticator: ThreadAuthenticator | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._sink: Sink | None = None
        self._last_malformed_warning = -float("inf")
        self._malformed_unlogged = 0

    def start(self, sink: Sink) -> None:
        if self._thread is not None:
            raise RuntimeError("this PcmIngestSource is already started")
        self._sink = sink
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.PULL)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        try:
            if self.curve is not None:
                self.curve.secure(self._socket)
                self._authenticator = self.curve.start_authenticator(self._context)
            self._socket.bind(self.endpoint)
        except zmq.ZMQError:
            self._close()
            raise
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._thread = threading.Thread(target=self._run, name="dfd-pcm-ingest", daemon=True)
        self._thread.start()
        log.info(
            "pcm_ingest_listening",
            endpoint=self.endpoint,
            sample_rate=self.sample_rate,
            curve="off" if self.curve is None else self.curve.describe(),
        )

    def stop(self, reason: str = STOPPED) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        self._close()
        for key in list(self._streams):
            self._end(key, reason)

    def _close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        if self._authenticator is not None:
            self._authenticator.stop()  # its ZAP socket would hold up terminating the context
            self._authenticator = None
        if self._context is not None:
            self._context.term()
            self._context = None

    def _run(self) -> None:
        assert self._socket is not None
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        last_housekeeping = time.monotonic()
        while not self._stopping.is_set():
            if poller.poll(self.TICK_MS):
                for _ in range(256):  # drain a burst, then look at the clock again
                    try:
                        frames = self._socket.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    try:
                        self.handle_message(frames, time.monotonic())
                    except Exception:  # a bug must not stop the capture of every other call
                        self.counters.malformed += 1
                        log.exception("pcm_ingest_message_failed")
            now = time.monotonic()
            if now - last_housekeeping >= self.TICK_MS / 1000:
                self.housekeeping(now)
                last_housekeeping = now

    def handle_message(self, frames: Sequence[bytes], now: float) -> None:
        """Everything one message causes; called on the receive thread."""
        try:
            frame = parse_pcm_frames(frames)
        except MalformedFrame as error:
            self.counters.malformed += 1
            self._warn_malformed(str(error), now)
            return
        key = (frame.call_id, frame.channel)
        stream = self._streams.get(key)
        if stream is None:
            if key in self._ended:
                self.counters.late += 1
                return
            if frame.is_end:
                return  # the end of a stream that sent nothing
            # PULL does not say which connection a message came on: the limits are the
            # endpoint's, as one sender
            refusal = self.admission.admit(self.endpoint, now)
            if refusal is not None:
                self.counters.refused += 1
                self._refusals.warn(now, refusal=refusal, call_id=frame.call_id)
                return
            stream = _Stream(next_seq=frame.seq, last_frames=0, last_arrival=now)
            self._streams[key] = stream
            self.counters.streams_started += 1
            log.info("pcm_stream_started", call_id=frame.call_id, channel=frame.channel)
        if frame.seq < stream.next_seq:
            self.counters.duplicates += 1
            return
        stream.last_arrival = now
        missing = frame.seq - stream.next_seq
        stream.next_seq = frame.seq + 1
        self.counters.lost += missing
        if frame.is_end:
            self._end(key, "end-message")
            self._ended[key] = now
            return
        samples = frame.samples
        if missing:
            fill = min(missing * stream.last_frames, self.max_fill)
            samples = np.concatenate([np.zeros(fill, dtype=np.float32), samples])
        stream.last_frames = frame.samples.shape[0]
        assert self._sink is not None
        self._deliver(
            self._sink, AudioChunk(frame.call_id, frame.channel, samples, self.sample_rate)
        )

    def _warn_malformed(self, error: str, now: float) -> None:
        """A warning for a malformed message, at most one per ``MALFORMED_WARNING_S``; the next
        one says how many were not logged in between."""
        if now - self._last_malformed_warning < self.MALFORMED_WARNING_S:
            self._malformed_unlogged += 1
            return
        log.warning(
            "pcm_ingest_malformed",
            error=error,
            endpoint=self.endpoint,
            not_logged_since_last=self._malformed_unlogged,
        )
        self._last_malformed_warning, self._malformed_unlogged = now, 0

    def housekeeping(self, now: float) -> None:
        """End streams that went quiet; forget streams that ended long enough ago."""
        for key, stream in list(self._streams.items()):
            if now - stream.last_arrival >= self.idle_timeout_s:
                self._end(key, "timeout")
        while self._ended:
            key, ended_at = next(iter(self._ended.items()))
            if now - ended_at < self.idle_timeout_s:
                break
            del self._ended[key]

    def _end(self, key: StreamKey, reason: str) -> None:
        del self._streams[key]
        self.admission.closed(self.endpoint)
        call_id, channel = key
        log.info("pcm_stream_ended", call_id=call_id, channel=channel, reason=reason)
        assert self._sink is not None
        self._deliver(self._sink, StreamEnded(call_id, channel, reason))
