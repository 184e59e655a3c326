"""The alert bus: numbered events published as ZeroMQ ``[topic, json]`` frames, alerts journaled.

Every event is one JSON object (the envelope ``schema``, ``seq``, ``topic``, ``time``, then the
topic's body; ``docs/alerts.md`` and ``docs/alerts.schema.json`` describe them). ``EventBus``
numbers the events, writes ``alert.*`` events to the ``AlertJournal`` *before* sending them, and
sends on a PUB socket that never blocks the pipeline: a slow or stalled subscriber loses events
(visible to it as a gap in ``seq``), it never holds up scoring.

Sequence numbers are one counter over all topics. The journal is the only thing persisted, so a
restarted daemon continues after the last *journaled* seq: alert seqs are unique and increasing
for as long as the journal file survives, but the seqs of non-alert events published after the
last alert of a run are given out again by the next run. A subscriber that stays connected across
a restart therefore sees ``seq`` step back (``SequenceTracker`` in ``dfd.daemon.clients.subscriber``
reports that as a restart, not as lost events).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import math
import os
import stat
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import structlog
import zmq
from zmq.auth.thread import ThreadAuthenticator

from dfd.daemon.engine.events import CallEvent, EngineEvent
from dfd.daemon.service.keys import CurveServer

log = structlog.get_logger(__name__)

SCHEMA_VERSION: Final = 1
TOPICS: Final = ("alert.raised", "alert.cleared", "call.started", "call.ended", "score", "status")
ALERT_TOPICS: Final = ("alert.raised", "alert.cleared")
ENVELOPE_KEYS: Final = ("schema", "seq", "topic", "time")
DEFAULT_ENDPOINT: Final = "tcp://127.0.0.1:5555"

_TAIL_BLOCK = 64 * 1024


class JournalError(Exception):
    """The journal is held by another process or a complete line in it is not a JSON event."""


class BusError(Exception):
    """The bus could not bind its endpoint."""


class AlertJournal:
    """Append-only JSON-lines file of the alert events, one compact JSON object per line.

    An event counts as journaled once its line *and* its newline are written. A daemon that dies
    mid-write leaves a last line without a newline (a torn line): ``read`` and ``last_seq`` skip
    it, and opening the journal for appending cuts it off, so the next event starts on a clean
    line. A complete line that is not a JSON object is corruption and raises ``JournalError``.

    Durability: each ``append`` hands its line to the kernel with ``os.write`` (nothing is
    buffered in the process, so a crashed or killed daemon loses nothing that ``append`` returned
    for). Against power loss, the line is also fsynced when the previous fsync is older than
    ``fsync_interval_s``; with 0, every append is fsynced. So an alert after a quiet spell (the
    usual case) is on disk when ``append`` returns, and a burst of alerts costs at most one fsync
    per interval. Lines left unsynced by a burst are fsynced by ``sync_if_due`` (``EventBus``
    calls it on every publish, including the periodic status events), by ``sync`` and by
    ``close``. A power cut can therefore lose at most the alerts of the last interval, plus the
    ones after it if nothing was published since.

    One writer: the file is locked (``flock``) while open, a second writer gets ``JournalError``.
    Not thread-safe; the ``EventBus`` that owns it is used from one thread.
    """

    def __init__(self, path: Path, fsync_interval_s: float = 1.0) -> None:
        if not math.isfinite(fsync_interval_s) or fsync_interval_s < 0:
            raise ValueError(f"fsync_interval_s must be >= 0 seconds, got {fsync_interval_s}")
        self.path = Path(path)
        self.fsync_interval_s = fsync_interval_s
        self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)  # ~/.local/state/dfd
        folder = os.stat(self.path.parent)
        if folder.st_mode & stat.S_IWOTH:
            # anyone could swap the journal for a link or a file of their own between runs
            raise JournalError(
                f"{self.path.parent}: the state directory is writable by every user; give the "
                "daemon a directory of its own (mode 0750)"
            )
        created = not self.path.exists()
        # Never through a symbolic link (whatever it points at would be appended to, or cut at
        # a "torn line"), and never a FIFO or device: only a regular file is a journal.
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            self._fd: int | None = os.open(self.path, flags, 0o640)
        except OSError as error:
            if self.path.is_symlink():
                raise JournalError(
                    f"{self.path}: the alert journal is a symbolic link; give its real path"
                ) from error
            raise
        try:
            if not stat.S_ISREG(os.fstat(self._fd).st_mode):
                raise JournalError(f"{self.path}: the alert journal is not a regular file")
            os.set_blocking(self._fd, True)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JournalError(
                    f"{self.path}: the alert journal is open for writing in another process"
                ) from None
            complete_end, last_line = _scan_tail(self._fd, self.path)
            size = os.fstat(self._fd).st_size
            if complete_end < size:
                _check_torn_line(self._fd, complete_end, size, self.path)
                log.warning(
                    "alert journal ends with a torn line; cutting it off",
                    path=str(self.path),
                    torn_bytes=size - complete_end,
                )
                os.ftruncate(self._fd, complete_end)
                os.fsync(self._fd)
            if created:
                _fsync_directory(self.path.parent)
            self._tail_seq = 0 if last_line is None else _seq_of(last_line, self.path)
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise
        self._last_fsync = -math.inf
        self._dirty = False

    @property
    def tail_seq(self) -> int:
        """The seq of the last journaled event, 0 for an empty journal."""
        return self._tail_seq

    @property
    def closed(self) -> bool:
        return self._fd is None

    def append(self, event: dict[str, Any]) -> None:
        """Write one event as a line; fsync on the schedule in the class docstring.

        The event's ``seq`` must be an integer above every seq already journaled.
        """
        seq = event.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq <= self._tail_seq:
            raise ValueError(
                f"journal events need an integer seq above {self._tail_seq}, got {seq!r}"
            )
        self.append_line(_encode(event) + b"\n", seq)

    def append_line(self, line: bytes, seq: int) -> None:
        """``append`` for a line already encoded (by ``EventBus``, which sends the same bytes)."""
        fd = self._require_open()
        if seq <= self._tail_seq:
            raise ValueError(f"journal seq must increase: {seq} after {self._tail_seq}")
        end = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            # A short write (disk full) must not leave half a line for the next one to extend.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, end)
            raise
        self._tail_seq = seq
        self._dirty = True
        self.sync_if_due()

    def sync_if_due(self) -> None:
        """Fsync unsynced lines if the last fsync is older than ``fsync_interval_s``."""
        if self._dirty and time.monotonic() - self._last_fsync >= self.fsync_interval_s:
            self.sync()

    def sync(self) -> None:
        """Fsync now."""
        os.fsync(self._require_open())
        self._last_fsync = time.monotonic()
        self._dirty = False

    def close(self) -> None:
        """Fsync what is unsynced and release the file. Closing twice is harmless."""
        if self._fd is None:
            return
        try:
            if self._dirty:
                self.sync()
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @staticmethod
    def read(path: Path, since_seq: int | None = None) -> list[dict[str, Any]]:
        """The journaled events in file order, only those with ``seq > since_seq`` if given.

        A late subscriber catches up by reading the events after the last seq it saw. A torn
        last line is skipped; a missing file raises ``FileNotFoundError``.
        """
        data = Path(path).read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        events = []
        for number, line in enumerate(complete.splitlines(), start=1):
            event = _decode(line, path, number)
            if since_seq is None or _seq_of_event(event, path, number) > since_seq:
                events.append(event)
        return events

    @staticmethod
    def last_seq(path: Path) -> int:
        """The seq of the last complete line, 0 if the file is missing or has none.

        Reads only the end of the file. A restarted daemon numbers on from ``last_seq + 1``.
        """
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return 0
        try:
            _, last_line = _scan_tail(fd, Path(path))
        finally:
            os.close(fd)
        return 0 if last_line is None else _seq_of(last_line, Path(path))

    def _require_open(self) -> int:
        if self._fd is None:
            raise ValueError(f"{self.path}: the alert journal is closed")
        return self._fd


class EventBus:
    """Numbers events, journals alerts, publishes ``[topic, json]`` on a ZeroMQ PUB socket.

    ``endpoint`` is bound, not connected: subscribers connect to the daemon. ``tcp://HOST:PORT``
    (``tcp://127.0.0.1:*`` or port 0 picks a free port; ``endpoint`` tells which) or
    ``ipc:///path``, whose folder the caller provides (under systemd, the ``RuntimeDirectory``).
    ``None`` opens no socket: events are still numbered, journaled and returned (``dfd replay``
    without publishing).

    Sends never block: at ``send_hwm`` queued messages for a subscriber, ZeroMQ drops further
    messages to that subscriber. PUB does that silently; ``dropped`` counts the sends ZeroMQ
    refused outright. ``published`` counts the events given a seq.

    ``score`` events (one per window) are skipped unless ``publish_scores``: they use no seq,
    are not sent, and ``publish`` returns them with ``"seq": None``.

    The bus owns ``journal`` from construction on and closes it (also when binding fails).
    ``first_seq`` defaults to the one after the journal's last seq (1 without a journal); an
    explicit ``first_seq`` at or below the journal's last seq is refused.

    ``curve`` makes the socket a CURVE server (``service.keys``): the events are encrypted,
    and only subscribers that know the daemon's public key (and, with a client list, only the
    listed ones) receive them. Its ZAP handler is started on ``context``, which can hold one.

    ``publish`` must be called from one thread only (ZeroMQ sockets are not thread-safe).
    """

    def __init__(
        self,
        endpoint: str | None,
        journal: AlertJournal | None = None,
        *,
        send_hwm: int = 10_000,
        context: zmq.Context[Any] | None = None,
        first_seq: int | None = None,
        publish_scores: bool = False,
        curve: CurveServer | None = None,
    ) -> None:
        self.journal = journal
        self.publish_scores = publish_scores
        self.published = 0
        self.dropped = 0
        self.journal_errors = 0
        self._socket: zmq.Socket[Any] | None = None
        self._context: zmq.Context[Any] | None = None
        self._authenticator: ThreadAuthenticator | None = None
        self._owns_context = False
        self._endpoint: str | None = None
        self._closed = False
        try:
            journal_seq = 0 if journal is None else journal.tail_seq
            if first_seq is None:
                first_seq = journal_seq + 1
            if first_seq < 1 or first_seq <= journal_seq:
                raise ValueError(
                    f"first_seq must be at least 1 and above the journal's last seq "
                    f"({journal_seq}), got {first_seq}"
                )
            if send_hwm < 0:
                raise ValueError(f"send_hwm must be >= 0 (0: no limit), got {send_hwm}")
            self._next_seq = first_seq
            if endpoint is not None:
                self._owns_context = context is None
                self._context = zmq.Context() if context is None else context
                self._socket = self._context.socket(zmq.PUB)
                self._socket.setsockopt(zmq.LINGER, 0)
                self._socket.setsockopt(zmq.SNDHWM, send_hwm)
                if curve is not None:
                    curve.secure(self._socket)
                    self._authenticator = curve.start_authenticator(self._context)
                try:
                    self._socket.bind(endpoint)
                except zmq.ZMQError as error:
                    raise BusError(f"cannot bind the event bus to {endpoint}: {error}") from error
                self._endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
                log.info(
                    "event bus bound",
                    endpoint=self._endpoint,
                    first_seq=first_seq,
                    curve="off" if curve is None else curve.describe(),
                )
        except BaseException:
            self.close()
            raise

    @property
    def endpoint(self) -> str | None:
        """The endpoint actually bound (a wildcard port resolved), None without a socket."""
        return self._endpoint

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def emit(self, event: EngineEvent) -> None:
        """The engine's event sink: each call event published as its topic's JSON body; the
        others (``BatchDispatched``) are not for subscribers."""
        if isinstance(event, CallEvent):
            self.publish(event.topic, event.body())

    def publish(self, topic: str, body: dict[str, Any]) -> dict[str, Any]:
        """Number, journal (``alert.*``) and send one event; return the event as sent.

        Raises ``ValueError`` for an unknown topic, a body that uses an envelope key, or a
        non-finite number (NaN, infinity) anywhere in the body; nothing is numbered then.
        """
        if self._closed:
            raise ValueError("the event bus is closed")
        if topic not in TOPICS:
            raise ValueError(f"unknown topic {topic!r} (topics: {', '.join(TOPICS)})")
        clash = [key for key in ENVELOPE_KEYS if key in body]
        if clash:
            raise ValueError(f"{topic} body must not set envelope keys: {', '.join(clash)}")
        send = topic != "score" or self.publish_scores
        event: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "seq": self._next_seq if send else None,
            "topic": topic,
            "time": utc_timestamp(),
            **body,
        }
        try:
            payload = _encode(event)
        except ValueError as error:
            raise ValueError(f"{topic} event has a non-finite number: {body!r}") from error
        if not send:
            return event
        self._next_seq += 1
        self.published += 1
        if self.journal is not None:
            if topic in ALERT_TOPICS:
                self._journal(payload, event)
            else:
                self._sync_journal()
        if self._socket is not None:
            try:
                self._socket.send_multipart([topic.encode(), payload], flags=zmq.NOBLOCK)
            except zmq.Again:
                self.dropped += 1
                if self.dropped == 1:
                    log.warning("event bus send queue full; dropping (counted from now on)")
        return event

    def close(self) -> None:
        """Close the socket (linger 0), the journal, and the context if the bus made it."""
        self._closed = True
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        if self._authenticator is not None:
            self._authenticator.stop()  # its ZAP socket would hold up terminating the context
            self._authenticator = None
        if self._context is not None:
            if self._owns_context:
                self._context.term()
            self._context = None
        if self.journal is not None:
            self.journal.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _sync_journal(self) -> None:
        """The journal's scheduled fsync; a failing disk is logged and counted, and the events
        keep flowing (as for a failed append)."""
        assert self.journal is not None
        try:
            self.journal.sync_if_due()
        except OSError as error:
            self.journal_errors += 1
            log.error("alert journal sync failed", path=str(self.journal.path), error=str(error))

    def _journal(self, payload: bytes, event: dict[str, Any]) -> None:
        assert self.journal is not None
        try:
            self.journal.append_line(payload + b"\n", event["seq"])
        except OSError as error:
            # The live alert matters more than its journal line: send it anyway.
            self.journal_errors += 1
            log.error(
                "alert not journaled",
                path=str(self.journal.path),
                seq=event["seq"],
                error=str(error),
            )


def utc_timestamp(now: float | None = None) -> str:
    """UTC ISO-8601 with milliseconds and ``Z``: ``2025-01-31T12:03:04.120Z``."""
    moment = datetime.datetime.fromtimestamp(time.time() if now is None else now, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


def _check_torn_line(fd: int, start: int, size: int, path: Path) -> None:
    """Refuse to cut off the tail of a file that is not a journal: one whose only bytes are that
    tail (no complete event line before it) and which neither starts like an event line (``{"``)
    nor is zeros (what a power cut can leave)."""
    if start > 0:
        return  # complete event lines before it: a journal with a torn last line
    head = os.pread(fd, min(size, 4096), 0)
    if head.startswith(b'{"') or not head.strip(b"\0"):
        return
    raise JournalError(
        f"{path}: holds {size} bytes that are not dfd events; not a dfd alert journal, left as "
        "it is (give the daemon a journal path of its own)"
    )


def _encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), allow_nan=False).encode()


def _decode(line: bytes, path: Path, number: int | None) -> dict[str, Any]:
    where = f"{path}" if number is None else f"{path} line {number}"
    try:
        event = json.loads(line)
    except ValueError as error:
        raise JournalError(f"{where}: not a JSON event ({error})") from error
    if not isinstance(event, dict):
        raise JournalError(f"{where}: not a JSON object")
    return event


def _seq_of_event(event: dict[str, Any], path: Path, number: int | None) -> int:
    seq = event.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        where = f"{path}" if number is None else f"{path} line {number}"
        raise JournalError(f"{where}: event has no integer seq")
    return seq


def _seq_of(line: bytes, path: Path) -> int:
    return _seq_of_event(_decode(line, path, None), path, None)


def _scan_tail(fd: int, path: Path) -> tuple[int, bytes | None]:
    """(bytes up to and including the last newline, the last complete line or None)."""
    size = os.fstat(fd).st_size
    tail = b""  # the bytes from `position` to the end of the file
    position = size
    while position > 0:
        start = max(0, position - _TAIL_BLOCK)
        tail = os.pread(fd, position - start, start) + tail
        position = start
        newline = tail.rfind(b"\n")
        if newline >= 0 and (position == 0 or tail.rfind(b"\n", 0, newline) >= 0):
            break
    newline = tail.rfind(b"\n")
    if newline < 0:
        return 0, None
    line = tail[tail.rfind(b"\n", 0, newline) + 1 : newline]
    return position + newline + 1, line


def _fsync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
