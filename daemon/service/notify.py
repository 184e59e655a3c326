"""sd_notify spoken natively: systemd's notification datagrams, without libsystemd.

Under ``Type=notify`` the service manager puts the address of a unix datagram socket in
``$NOTIFY_SOCKET`` (a file path, or an abstract name written with a leading ``@``); the service
tells it how it is doing by sending datagrams of newline-separated ``KEY=VALUE`` lines
(sd_notify(3)): ``READY=1``, ``STATUS=...``, ``WATCHDOG=1``, ``RELOADING=1``, ``STOPPING=1``.
Without ``$NOTIFY_SOCKET`` (a terminal, a test) every call is a silent no-op.

``$WATCHDOG_USEC`` (meant for this process unless ``$WATCHDOG_PID`` names another) asks for
``WATCHDOG=1`` at least that often. ``PipelineWatchdog`` sends it from the daemon's main loop,
never from a timer thread: a loop that stops turning stops the pings by itself, and a loop that
turns while the detectors hold a batch forever withholds them.

Sending never raises into the daemon: a failure is logged once and the daemon carries on.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """Sends sd_notify messages to ``address`` (a path or ``@abstract``); ``None``: no-op."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address or None
        self._target = _socket_address(self.address) if self.address else None
        # sd_watchdog_enabled(3): pings are due at least every interval; send at half of it
        self.watchdog_interval_s = (
            watchdog_usec / 1e6 if self._target is not None and watchdog_usec else None
        )
        self._socket: socket.socket | None = None
        self._failure_logged = False
        self.sent = 0
        self.failed = 0

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, pid: int | None = None
    ) -> Notifier:
        """``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID`` as systemd sets them."""
        environ = os.environ if environ is None else environ
        return cls(environ.get("NOTIFY_SOCKET"), _watchdog_usec(environ, pid or os.getpid()))

    @property
    def enabled(self) -> bool:
        return self._target is not None

    # -- the messages dfd sends -------------------------------------------------------------

    def ready(self, status: str | None = None) -> bool:
        return self.send(READY="1", STATUS=status)

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG="1")

    def reloading(self, status: str | None = None) -> bool:
        # MONOTONIC_USEC: systemd >= 253 (Type=notify-reload) pairs it with the reload request;
        # older managers ignore the extra field.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send(RELOADING="1", MONOTONIC_USEC=str(usec), STATUS=status)

    def stopping(self, status: str | None = None) -> bool:
        return self.send(STOPPING="1", STATUS=status)

    # -- the protocol -----------------------------------------------------------------------

    def send(self, **fields: str | None) -> bool:
        """One datagram with a ``KEY=VALUE`` line per field (``None`` fields left out). True when
        it was sent; False when disabled or on failure (logged once, never raised)."""
        if self._target is None:
            return False
        lines = [f"{key}={_one_line(value)}" for key, value in fields.items() if value is not None]
        payload = "\n".join(lines).encode("utf-8", "replace")
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            # Never wait on the service manager: a full receive queue drops the message.
            self._socket.sendto(payload, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL, self._target)
        except OSError as error:
            self.failed += 1
            if not self._failure_logged:
                self._failure_logged = True
                log.warning(
                    "sd_notify failed; the service manager may not see the daemon's state",
                    socket=self.address,
                    error=str(error),
                )
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _socket_address(address: str) -> str | None:
    if address.startswith("@"):
        return "\0" + address[1:]  # Linux abstract namespace
    if address.startswith("/"):
        return address
    log.warning("NOTIFY_SOCKET is neither a path nor @abstract; not notifying", socket=address)
    return None


def _watchdog_usec(environ: Mapping[str, str], pid: int) -> int | None:
    text = environ.get("WATCHDOG_USEC")
    if not text:
        return None
    owner = environ.get("WATCHDOG_PID")
    if owner and owner.strip() != str(pid):
        return None  # the watchdog is another process's (we were started by it)
    try:
        usec = int(text)
    except ValueError:
        usec = 0
    if usec <= 0:
        log.warning("WATCHDOG_USEC is not a positive integer; no watchdog pings", value=text)
        return None
    return usec


def _one_line(value: str) -> str:
    return " ".join(value.splitlines())


class PipelineWatchdog:
    """``WATCHDOG=1`` at half the interval, from the loop that drives the pipeline.

    ``tick`` is called once per turn of the daemon's loop, so a loop blocked in a call that
    never returns (a hung front end, a send to a worker that no longer reads) sends nothing and
    systemd's watchdog fires. An idle loop (no calls) is moving and pings. A loop that turns
    while the detectors are stuck is not moving either: when windows wait for scores (queued or
    in flight) and no batch has finished for ``stall_after_s`` (default: one whole watchdog
    interval, far beyond any batch's scoring time), the pings are withheld until one does.
    Only time the loop spent turning counts towards that: after the loop itself was held up
    (a reload, a long step), which already cost it its pings, the detectors are judged afresh.
    """

    def __init__(
        self,
        notifier: Notifier,
        stall_after_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notifier = notifier
        interval = notifier.watchdog_interval_s
        self.enabled = interval is not None
        self.ping_every_s = interval / 2 if interval else math.inf
        self.stall_after_s = stall_after_s if stall_after_s is not None else (interval or math.inf)
        self.clock = clock
        self.stalled = False
        self.pings = 0
        self._next_ping = -math.inf
        self._finished = -1
        self._progress_at = self._last_tick = clock()

    def tick(self, waiting: int, finished: int) -> None:
        """One turn of the loop. ``waiting``: work waiting for the detectors (windows queued
        plus batches in flight; 0 when none); ``finished``: windows whose batch has come back,
        scored or lost (any change is progress)."""
        if not self.enabled:
            return
        now = self.clock()
        if now - self._last_tick > self.ping_every_s:
            self._progress_at = now
        self._last_tick = now
        if waiting == 0 or finished != self._finished:
            self._finished, self._progress_at = finished, now
            if self.stalled:
                self.stalled = False
                log.warning("pipeline moving again; watchdog pings resume")
        elif now - self._progress_at > self.stall_after_s:
            if not self.stalled:
                self.stalled = True
                stuck_s = round(now - self._progress_at, 1)
                log.error(
                    "pipeline stalled: windows wait for scores and no batch has finished; "
                    "watchdog pings withheld",
                    waiting=waiting,
                    seconds=stuck_s,
                )
                self.notifier.status(f"stalled: no detector batch finished for {stuck_s} s")
            return
        if now >= self._next_ping:
            self._next_ping = now + self.ping_every_s
            self.pings += 1  # sent, or tried: a failed send is the notifier's to report
            self.notifier.watchdog()
