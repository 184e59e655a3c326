"""sd_notify against a real unix datagram socket: the ``Notifier`` alone, the daemon's watchdog
in-process (its loop blocked, its detectors hung), and the installed ``dfd serve`` in a
subprocess started the way systemd starts it (``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and
``$WATCHDOG_PID`` set, the pid kept across exec), driven by real signals.

The listener asks the kernel for each sender's credentials (``SO_PASSCRED``), as systemd does
to honour ``NotifyAccess=main``: every message must come from the daemon's main process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from structlog.testing import capture_logs

from dfd.daemon.engine.events import AudioChunk, StreamEnded
from dfd.daemon.engine.scoring import BatchResult
from dfd.daemon.service.capture.base import Sink, Source
from dfd.daemon.service.notify import Notifier, PipelineWatchdog
from dfd.daemon.service.serve import Daemon
from dfd.daemon.settings import load_settings

DFD = str(Path(sys.executable).with_name("dfd"))
STARTUP_TIMEOUT_S = 60.0  # model load and a detector worker on a busy 2-core machine
WAIT_S = 20.0
WATCHDOG_USEC = 1_000_000  # pings due every 1 s: the daemon sends one every 0.5 s
# Speech in every window: the part of the sample call between 2.9 s and 14.9 s (test_serve.py)
SPEECH_CALL = (
    Path(__file__).resolve().parent.parent / "samples" / "call-bonafide-then-synthetic-8k-ulaw.wav"
)
STATUS_LINE = re.compile(r"^(stalled, )?(\d+) calls, [0-9.]+ windows/s, \d+ windows dropped$")


# --- a notify socket as systemd holds it ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Message:
    at: float  # time.monotonic() on arrival
    pid: int  # the sender, from the kernel's SCM_CREDENTIALS
    fields: dict[str, str]


class NotifyListener:
    """A bound ``AF_UNIX`` ``SOCK_DGRAM`` socket, read on a thread; each datagram parsed the way
    systemd parses it (newline-separated ``KEY=VALUE``) and refused otherwise."""

    def __init__(self, address: str) -> None:
        self.address = address  # for $NOTIFY_SOCKET: a path, or @name for an abstract socket
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind("\0" + address[1:] if address.startswith("@") else address)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.socket.settimeout(0.05)
        self.messages: list[Message] = []
        self.malformed: list[bytes] = []
        self.on_message: Callable[[Message], None] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        credentials = struct.calcsize("3i")
        while not self._stop.is_set():
            try:
                data, ancillary, _, _ = self.socket.recvmsg(4096, socket.CMSG_SPACE(credentials))
            except TimeoutError:
                continue
            except OSError:
                return
            at = time.monotonic()
            pid = next(
                struct.unpack("3i", payload[:credentials])[0]
                for level, kind, payload in ancillary
                if (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS)
            )
            lines = data.decode().split("\n")
            if not all(re.fullmatch(r"[A-Z_]+=[^\n]*", line) for line in lines):
                self.malformed.append(data)
                continue
            message = Message(at, pid, dict(line.split("=", 1) for line in lines))
            if self.on_message is not None:
                self.on_message(message)
            with self._lock:
                self.messages.append(message)

    def received(self, key: str | None = None, after: float = -1.0) -> list[Message]:
        with self._lock:
            messages = list(self.messages)
        return [m for m in messages if (key is None or key in m.fields) and m.at > after]

    def wait_for(
        self,
        key: str,
        after: float = -1.0,
        timeout: float = WAIT_S,
        alive: Callable[[], bool] = lambda: True,
        value: str | None = None,
    ) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.received(key, after) if value in (None, m.fields[key])]
            if found:
                return found[0]
            if not alive():
                pytest.fail(f"the daemon went away before {key}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {key} within {timeout} s; got {self.received()}")
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.socket.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    notify = NotifyListener(str(tmp_path / "notify"))
    yield notify
    notify.close()
    assert notify.malformed == []


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """12 s of 16 kHz speech without pauses long enough to leave a window without it."""
    from dfd.dsp.audio_io import load_audio

    return load_audio(SPEECH_CALL, sample_rate=16_000).samples[0][
        round(2.9 * 16_000) : round(14.9 * 16_000)
    ]


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


# --- the Notifier on its own ---------------------------------------------------------------


def test_each_message_is_one_datagram_of_assignments_from_this_process(
    listener: NotifyListener,
) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": listener.address})
    assert notifier.enabled
    assert notifier.ready("serving sinc-lcnn, 0 calls")
    assert notifier.status("2 calls\n4.0 windows/s")  # one line: systemd shows the status as is
    assert notifier.watchdog()
    before = monotonic_usec()
    assert notifier.reloading("reloading models")
    after = monotonic_usec()
    assert notifier.stopping()
    notifier.close()

    listener.wait_for("STOPPING")
    ready, status, ping, reloading, stopping = [m.fields for m in listener.received()]
    assert ready == {"READY": "1", "STATUS": "serving sinc-lcnn, 0 calls"}
    assert status == {"STATUS": "2 calls 4.0 windows/s"}
    assert ping == {"WATCHDOG": "1"}
    assert reloading.keys() == {"RELOADING", "MONOTONIC_USEC", "STATUS"}
    assert (reloading["RELOADING"], reloading["STATUS"]) == ("1", "reloading models")
    # CLOCK_MONOTONIC at the request, in microseconds, as Type=notify-reload expects
    assert before <= int(reloading["MONOTONIC_USEC"]) <= after
    assert stopping == {"STOPPING": "1"}
    assert {m.pid for m in listener.received()} == {os.getpid()}


def test_an_abstract_socket_name_is_reached(tmp_path: Path) -> None:
    listener = NotifyListener(f"@dfd-test-{uuid.uuid4().hex}")
    try:
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": listener.address})
        assert notifier.ready()
        assert listener.wait_for("READY").fields == {"READY": "1"}
        assert not any(tmp_path.iterdir())  # nothing in the file system: the abstract namespace
    finally:
        listener.close()


def test_without_notify_socket_nothing_is_sent_and_nothing_logged(
    listener: NotifyListener,
) -> None:
    with capture_logs() as logs:
        notifier = Notifier.from_environment({"WATCHDOG_USEC": "1000000"})
        results = [
            notifier.ready("x"),
            notifier.status("x"),
            notifier.watchdog(),
            notifier.reloading(),
            notifier.stopping(),
        ]
    assert not notifier.enabled
    assert notifier.watchdog_interval_s is None
    assert results == [False] * 5
    time.sleep(0.2)
    assert listener.received() == []
    assert logs == []


@pytest.mark.parametrize(
    ("environment", "interval_s"),
    [
        ({"WATCHDOG_USEC": "3000000"}, 3.0),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "{pid}"}, 3.0),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_interval_comes_from_watchdog_usec_for_this_pid(
    environment: dict[str, str], interval_s: float | None
) -> None:
    environ = {key: value.format(pid=os.getpid()) for key, value in environment.items()}
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": "/run/x/notify", **environ})
    assert notifier.watchdog_interval_s == interval_s
    assert PipelineWatchdog(notifier).enabled == (interval_s is not None)
    if interval_s is not None:
        assert PipelineWatchdog(notifier).ping_every_s == interval_s / 2


def test_a_send_that_fails_is_logged_once_and_never_raises(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens"))
    with capture_logs() as logs:
        assert not notifier.ready()
        assert not notifier.watchdog()
        assert not notifier.stopping()
    assert notifier.failed == 3
    assert [entry["log_level"] for entry in logs] == ["warning"]
    assert "No such file or directory" in logs[0]["error"]


def test_a_manager_that_does_not_read_never_blocks_the_sender(tmp_path: Path) -> None:
    """A unix datagram socket's queue is short (net.unix.max_dgram_qlen); a blocking send into
    a full one would stall the daemon's loop. The sends must return (False) instead."""
    deaf = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    deaf.bind(str(tmp_path / "deaf"))
    notifier = Notifier(str(tmp_path / "deaf"))
    results: list[bool] = []
    sender = threading.Thread(
        target=lambda: results.extend(notifier.watchdog() for _ in range(2000)), daemon=True
    )
    try:
        with capture_logs() as logs:
            sender.start()
            sender.join(30)
        assert not sender.is_alive(), "a send blocked on the full queue"
        assert True in results and False in results
        assert len([entry for entry in logs if entry["log_level"] == "warning"]) == 1
    finally:
        deaf.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_watchdog_pings_at_half_the_interval_while_the_pipeline_moves(
    listener: NotifyListener,
) -> None:
    clock = FakeClock()
    watchdog = PipelineWatchdog(Notifier(listener.address, watchdog_usec=2_000_000), clock=clock)
    assert (watchdog.ping_every_s, watchdog.stall_after_s) == (1.0, 2.0)
    turn_s = 0.125  # exact in binary: no drift in the fake clock

    def run(seconds: float, waiting: int, finished: Callable[[int], int]) -> int:
        """Turn the loop every 0.125 s for ``seconds``; returns the pings sent meanwhile."""
        pings = watchdog.pings
        for turn in range(round(seconds / turn_s)):
            watchdog.tick(waiting, finished(turn))
            clock.now += turn_s
            deadline = time.monotonic() + WAIT_S
            while len(listener.received("WATCHDOG")) < watchdog.pings:  # one at a time
                assert time.monotonic() < deadline
                time.sleep(0.001)
        return watchdog.pings - pings

    assert run(10.0, 0, lambda turn: 0) == 10  # idle: no calls, nothing waits, it moves
    assert run(10.0, 3, lambda turn: turn) == 10  # busy, batches coming back
    # Batches waiting, none back from the detectors: pings for 2 s (at 0, 1 and 2 s), then none.
    assert run(4.0, 3, lambda turn: 7) == 3
    assert watchdog.stalled
    assert run(10.0, 3, lambda turn: 7) == 0
    assert run(3.0, 3, lambda turn: 100 + turn) == 3  # batches come back: moving again
    assert not watchdog.stalled
    # The loop itself held up for 5 s (a reload): that cost it its pings; once it turns again
    # the detectors get a whole interval before they are judged stuck.
    clock.now += 5.0
    assert run(2.0, 3, lambda turn: 123) == 2
    assert not watchdog.stalled
    assert run(1.0, 3, lambda turn: 123) == 1
    assert watchdog.stalled

    time.sleep(0.1)
    assert len(listener.received("WATCHDOG")) == watchdog.pings == 29
    assert [m.fields["STATUS"] for m in listener.received("STATUS")] == [
        "stalled: no detector batch finished for 2.1 s",
        "stalled: no detector batch finished for 2.1 s",
    ]


# --- the daemon in this process: a blocked loop and hung detectors -------------------------


class LoopingCall(Source):
    """A call of real speech at real-time pace, 20 ms chunks, until stopped. ``start`` waits for
    ``may_start`` (a source that takes its time to bind)."""

    name = "pcm"

    def __init__(self, speech: np.ndarray) -> None:
        super().__init__()
        self.speech = speech
        self.may_start = threading.Event()
        self.may_start.set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, sink: Sink) -> None:
        self.may_start.wait()
        self._thread = threading.Thread(target=self._run, args=(sink,), daemon=True)
        self._thread.start()

    def _run(self, sink: Sink) -> None:
        chunk = 320
        started = time.monotonic()
        for index in range(10**9):
            if self._stop.wait(max(0.0, started + index * 0.02 - time.monotonic())):
                break
            offset = (index * chunk) % (len(self.speech) - chunk)
            samples = self.speech[offset : offset + chunk].astype(np.float32)
            self._deliver(sink, AudioChunk("looping-call", 0, samples, 16_000))
        self._deliver(sink, StreamEnded("looping-call", 0, "source-stopped"))

    def stop(self, reason: str = "source-stopped") -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class GatedScorer:
    """The daemon's real worker pool behind two gates. Closing ``loop`` blocks ``collect``
    itself, so the main loop stops inside ``pipeline.pump()``, as in a call that never returns.
    Closing ``results`` holds finished batches back while the loop turns: hung detectors."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.loop = threading.Event()
        self.results = threading.Event()
        self.loop.set()
        self.results.set()
        self.held: list[BatchResult] = []

    @property
    def free_slots(self) -> int:
        return int(self.pool.free_slots)

    @property
    def in_flight(self) -> int:
        return int(self.pool.in_flight) + len(self.held)

    def submit(self, batch_id: int, features: list[np.ndarray]) -> None:
        self.pool.submit(batch_id, features)

    def collect(self, timeout: float) -> list[BatchResult]:
        self.loop.wait()
        results: list[BatchResult] = self.held + self.pool.collect(timeout)
        if not self.results.is_set():
            self.held = results
            return []
        self.held = []
        return results

    def close(self) -> None:
        self.pool.close()


def test_a_stalled_pipeline_stops_the_watchdog_pings_and_they_resume_when_it_moves(
    listener: NotifyListener, tmp_path: Path, speech: np.ndarray
) -> None:
    config = tmp_path / "dfd.toml"
    config.write_text(
        f'[models]\nworkers = 1\n[serve]\nstate_directory = "{tmp_path}"\n'
        "status_interval_s = 0.25\n"
    )
    call = LoopingCall(speech)
    call.may_start.clear()
    notifier = Notifier(listener.address, watchdog_usec=WATCHDOG_USEC)
    daemon = Daemon(load_settings(config, environ={}), [call], notifier=notifier)
    gated = GatedScorer(daemon.pool)
    daemon.pipeline.scorer = gated
    runner = threading.Thread(target=daemon.run, name="daemon", daemon=True)
    runner.start()
    try:
        # READY=1 only once every source listens.
        time.sleep(1.0)
        assert listener.received() == []
        call.may_start.set()
        listener.wait_for("READY")
        assert "READY" in listener.received()[0].fields  # nothing before it
        deadline = time.monotonic() + WAIT_S
        while daemon.pipeline.counters.windows_scored == 0:  # the call's windows are scored
            assert time.monotonic() < deadline and runner.is_alive()
            time.sleep(0.05)
        moving = daemon.pipeline.counters.windows_scored

        # 1. The loop blocks inside the pipeline: no pings and no status, though alive.
        listener.wait_for("WATCHDOG", after=time.monotonic())
        gated.loop.clear()
        blocked_at = time.monotonic()
        time.sleep(3.0)
        assert runner.is_alive()
        late = blocked_at + 0.5  # the turn under way when the gate closed may still finish
        assert listener.received("WATCHDOG", after=late) == []
        assert listener.received("STATUS", after=late) == []
        gated.loop.set()
        listener.wait_for("WATCHDOG", after=time.monotonic(), timeout=5)

        # 2. The loop turns but the detectors hold every batch: status goes on, pings stop
        # once no batch has come back for a whole interval (1 s).
        listener.wait_for("WATCHDOG", after=time.monotonic())
        gated.results.clear()
        hung_at = time.monotonic()
        time.sleep(5.0)
        assert runner.is_alive()
        assert listener.received("WATCHDOG", after=hung_at + 2.0) == []
        statuses = [m.fields["STATUS"] for m in listener.received("STATUS", after=hung_at + 2.5)]
        assert len(statuses) >= 4
        assert all(status.startswith("stalled, 1 calls") for status in statuses), statuses
        assert daemon.watchdog.stalled
        gated.results.set()
        listener.wait_for("WATCHDOG", after=time.monotonic(), timeout=5)
        assert not daemon.watchdog.stalled
        assert daemon.pipeline.counters.windows_scored > moving
    finally:
        gated.loop.set()
        gated.results.set()
        daemon.request_stop()
        runner.join(30)
    assert not runner.is_alive()
    stopping = listener.wait_for("STOPPING")
    assert listener.received("WATCHDOG", after=stopping.at) == []
    assert {m.pid for m in listener.received()} == {os.getpid()}
    for message in listener.received("STATUS"):
        status = message.fields["STATUS"]
        assert STATUS_LINE.match(status) or status.startswith(("serving ", "stopping", "stalled:"))


# --- the installed dfd serve, started as systemd starts it ----------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServedWithNotify:
    """``dfd serve`` exec'd from a shell that first sets ``WATCHDOG_PID=$$``: the daemon's pid,
    as systemd sets it between fork and exec. Its JSON logs are kept."""

    def __init__(self, tmp_path: Path, listener: NotifyListener, pcm_port: int) -> None:
        config = tmp_path / "dfd.toml"
        config.write_text(
            f'[logging]\nformat = "json"\n[models]\nworkers = 1\n[serve]\n'
            f'state_directory = "{tmp_path}"\nstatus_interval_s = 0.5\n'
        )
        command = 'WATCHDOG_PID=$$ exec "$0" --config "$1" serve --pub "$2" --pcm "$3"'
        pub, pcm = "tcp://127.0.0.1:*", f"tcp://127.0.0.1:{pcm_port}"
        env = {
            **os.environ,
            "NOTIFY_SOCKET": listener.address,
            "WATCHDOG_USEC": str(WATCHDOG_USEC),
        }
        self.process = subprocess.Popen(
            ["/bin/sh", "-c", command, DFD, str(config), pub, pcm],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def alive(self) -> bool:
        return self.process.poll() is None

    def logs(self, event: str) -> list[dict[str, Any]]:
        records = []
        for line in list(self.lines):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get("event") == event:
                records.append(record)
        return records

    def detector_workers(self) -> list[int]:
        """The detector worker processes (multiprocessing's spawned children)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [
            int(child)
            for child in children
            if b"--multiprocessing-fork" in Path(f"/proc/{child}/cmdline").read_bytes()
            and b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()
        ]

    def finish(self) -> None:
        if self.alive():
            self.process.kill()
            self.process.wait()
        self._reader.join(5)
        print("\n".join(self.lines))


@pytest.fixture
def served(tmp_path: Path, listener: NotifyListener) -> Iterator[Callable[[int], ServedWithNotify]]:
    started: list[ServedWithNotify] = []

    def start(pcm_port: int) -> ServedWithNotify:
        started.append(ServedWithNotify(tmp_path, listener, pcm_port))
        return started[-1]

    yield start
    for daemon in started:
        daemon.finish()


def push_speech(endpoint: str, call_id: str, speech: np.ndarray, stop: threading.Event) -> None:
    """``[call_id, channel, seq, pcm]`` messages of 20 ms at real-time pace until ``stop``."""
    pcm = (np.clip(speech, -1, 32767 / 32768) * 32768).astype("<i2")
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    try:
        push.connect(endpoint)
        started = time.monotonic()
        for seq in range(10**9):
            if stop.wait(max(0.0, started + seq * 0.02 - time.monotonic())):
                break
            offset = (seq * 320) % (len(pcm) - 320)
            frame = pcm[offset : offset + 320].tobytes()
            push.send_multipart([call_id.encode(), b"0", str(seq).encode(), frame])
    finally:
        push.close(linger=0)
        context.term()


def wait_for_a_call_in_status(
    listener: NotifyListener, alive: Callable[[], bool], after: float
) -> None:
    """Until a STATUS says 1 call with windows coming (audio reaches the pipeline)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        for message in listener.received("STATUS", after):
            match = STATUS_LINE.match(message.fields["STATUS"])
            if match and match.group(2) == "1" and ", 0.0 windows/s" not in match.group(0):
                return
        assert time.monotonic() < deadline and alive(), listener.received("STATUS")
        time.sleep(0.05)


def test_dfd_serve_reports_ready_status_watchdog_reload_and_stopping(
    served: Callable[[int], ServedWithNotify], listener: NotifyListener, speech: np.ndarray
) -> None:
    port = free_port()
    accepting: list[bool] = []

    def on_message(message: Message) -> None:
        if "READY" in message.fields and not accepting:  # at once: is the source listening?
            with socket.socket() as probe:
                accepting.append(probe.connect_ex(("127.0.0.1", port)) == 0)

    listener.on_message = on_message
    daemon = served(port)
    ready = listener.wait_for("READY", timeout=STARTUP_TIMEOUT_S, alive=daemon.alive)
    assert accepting == [True]
    assert ready.fields == {"READY": "1", "STATUS": "serving sinc-lcnn, 0 calls"}
    assert listener.received()[0] == ready  # nothing before it: systemd arms the watchdog then

    # Pings from the loop at half the interval, idle or not.
    idle_from = time.monotonic()
    listener.wait_for("WATCHDOG", after=idle_from + 2.0, alive=daemon.alive)
    assert len(listener.received("WATCHDOG", after=idle_from)) >= 3

    stop = threading.Event()
    sender = threading.Thread(
        target=push_speech, args=(f"tcp://127.0.0.1:{port}", "call-1", speech, stop)
    )
    sender.start()
    try:
        wait_for_a_call_in_status(listener, daemon.alive, after=ready.at)

        # SIGHUP: RELOADING=1 (with the monotonic time), then READY=1 once swapped in.
        hup_usec = monotonic_usec()
        daemon.process.send_signal(signal.SIGHUP)
        reloading = listener.wait_for("RELOADING", alive=daemon.alive)
        assert int(reloading.fields["MONOTONIC_USEC"]) >= hup_usec
        reloaded = listener.wait_for("READY", after=reloading.at, timeout=STARTUP_TIMEOUT_S)
        assert reloaded.fields["STATUS"] == "serving sinc-lcnn (reloaded)"
        assert daemon.logs("models reloaded")
        listener.wait_for("WATCHDOG", after=reloaded.at, alive=daemon.alive)
    finally:
        stop.set()
        sender.join(10)

    # SIGTERM: STOPPING=1 first, then the calls end and it exits 0.
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(30) == 0
    stopping = listener.wait_for("STOPPING")
    assert stopping.fields == {"STOPPING": "1", "STATUS": "stopping: finishing open calls"}
    assert listener.received("WATCHDOG", after=stopping.at) == []
    assert {m.pid for m in listener.received()} == {daemon.process.pid}  # NotifyAccess=main
    for message in listener.received("STATUS"):
        status = message.fields["STATUS"]
        assert STATUS_LINE.match(status) or status.startswith(("serving ", "reloading", "stop"))


def test_a_hung_detector_worker_stops_the_pings_of_dfd_serve_until_it_answers(
    served: Callable[[int], ServedWithNotify], listener: NotifyListener, speech: np.ndarray
) -> None:
    """SIGSTOP on the detector worker (the daemon itself runs on): a batch sent to it never
    comes back, and a large one cannot even be written to its pipe. Either way the pipeline no
    longer moves, and systemd must hear nothing."""
    port = free_port()
    daemon = served(port)
    ready = listener.wait_for("READY", timeout=STARTUP_TIMEOUT_S, alive=daemon.alive)
    (worker,) = daemon.detector_workers()
    stop = threading.Event()
    sender = threading.Thread(
        target=push_speech, args=(f"tcp://127.0.0.1:{port}", "call-1", speech, stop)
    )
    sender.start()
    try:
        wait_for_a_call_in_status(listener, daemon.alive, after=ready.at)
        os.kill(worker, signal.SIGSTOP)
        hung_at = time.monotonic()
        time.sleep(6.0)
        assert daemon.alive()
        # a whole interval (1 s) without a batch back, then nothing; the last 3 s in silence
        assert listener.received("WATCHDOG", after=hung_at + 3.0) == []
        os.kill(worker, signal.SIGCONT)
        listener.wait_for("WATCHDOG", after=time.monotonic(), timeout=10, alive=daemon.alive)
    finally:
        stop.set()
        sender.join(10)
        os.kill(worker, signal.SIGCONT)
    assert daemon.alive()
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(30) == 0
