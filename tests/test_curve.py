"""CURVE on the event bus and the PCM ingest, through real sockets on 127.0.0.1: the subscribers
and senders with the right keys get through, the others are turned away in the handshake (seen on
their socket monitors) and receive or deliver nothing; ``dfd keys generate``; key files that
cannot be used are one-line errors."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from dfd.core.typed_config import ConfigError
from dfd.daemon.clients.subscriber import subscribe
from dfd.daemon.engine.events import AudioChunk, CaptureEvent, StreamEnded
from dfd.daemon.service.bus import EventBus
from dfd.daemon.service.capture.pcm_ingest import PcmIngestSource
from dfd.daemon.service.keys import (
    CurveClient,
    CurveServer,
    KeyFileError,
    KeyPair,
    generate_key_pair,
    load_client_keys,
    load_curve_server,
    load_key_pair,
    load_public_key,
)
from dfd.daemon.settings import ServeSettings
from tests.signals import tone

DFD = str(Path(sys.executable).with_name("dfd"))
WAIT_S = 10.0  # the longest a test waits for something due; never reached when all is well
QUIET_S = 0.5  # how long a turned-away peer is watched for anything getting through
STARTUP_S = 120.0  # dfd serve: models loaded, workers warmed up
STATUS = {"calls": 0, "windows_per_second": 0.0, "dropped_windows": 0, "overload": False}
HANDSHAKE_FAILED = {
    zmq.Event.HANDSHAKE_FAILED_NO_DETAIL,
    zmq.Event.HANDSHAKE_FAILED_PROTOCOL,
    zmq.Event.HANDSHAKE_FAILED_AUTH,
}


@dataclasses.dataclass(frozen=True)
class Keys:
    """Pairs made by ``generate_key_pair``: the daemon's, alice's (listed in ``clients``) and
    mallory's (a valid pair the daemon does not list)."""

    folder: Path
    clients: Path
    daemon: KeyPair
    alice: KeyPair
    mallory: KeyPair

    def server(self, *, listed: bool = True) -> CurveServer:
        """The daemon's side, loaded from the files as ``dfd serve`` loads it."""
        server = load_curve_server(
            ServeSettings(
                curve_secret_key=str(self.folder / "dfd.key_secret"),
                curve_clients=str(self.clients) if listed else None,
            )
        )
        assert server is not None
        return server

    def client(self, pair: KeyPair, server_key: bytes | None = None) -> CurveClient:
        return CurveClient(pair, self.daemon.public if server_key is None else server_key)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    folder, clients = tmp_path / "keys", tmp_path / "clients"
    pairs = {}
    for name in ("dfd", "alice", "mallory"):
        _, secret = generate_key_pair(folder, name)
        pairs[name] = load_key_pair(secret)
    clients.mkdir()
    shutil.copy(folder / "alice.key", clients / "alice.key")
    return Keys(folder, clients, pairs["dfd"], pairs["alice"], pairs["mallory"])


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.destroy(linger=0)


@dataclasses.dataclass
class Peer:
    socket: zmq.Socket[Any]
    monitor: zmq.Socket[Any]

    def handshake(self) -> zmq.Event:
        """The outcome of the first CURVE handshake with the daemon."""
        deadline = time.monotonic() + WAIT_S
        while self.monitor.poll(max(1, round((deadline - time.monotonic()) * 1000))):
            event = recv_monitor_message(self.monitor)["event"]
            if event == zmq.Event.HANDSHAKE_SUCCEEDED or event in HANDSHAKE_FAILED:
                return zmq.Event(event)
        raise AssertionError(f"no handshake within {WAIT_S} s")

    def drain(self, wait_s: float = 0.0) -> list[list[bytes]]:
        messages = []
        while self.socket.poll(round(wait_s * 1000)):
            messages.append(self.socket.recv_multipart())
        return messages


def connect(context: zmq.Context[Any], kind: int, endpoint: str, curve: CurveClient | None) -> Peer:
    socket = context.socket(kind)
    socket.setsockopt(zmq.LINGER, 0)
    monitor = socket.get_monitor_socket()
    if curve is not None:
        curve.secure(socket)
    socket.connect(endpoint)
    if kind == zmq.SUB:
        socket.setsockopt(zmq.SUBSCRIBE, b"")
    return Peer(socket, monitor)


# --- the event bus -----------------------------------------------------------------------------


@pytest.mark.parametrize("listed", [True, False], ids=["client-listed", "any-client"])
def test_a_subscriber_with_the_right_keys_receives_the_events(keys: Keys, listed: bool) -> None:
    """Without a client list, any pair works as long as it names the daemon's public key."""
    client = keys.client(keys.alice if listed else KeyPair.generate())
    received: queue.Queue[dict[str, Any]] = queue.Queue()
    with EventBus("tcp://127.0.0.1:*", curve=keys.server(listed=listed)) as bus:
        assert bus.endpoint is not None
        endpoint = bus.endpoint

        def receive() -> None:
            for event in subscribe(endpoint, ("status",), timeout_s=WAIT_S, curve=client):
                received.put(event)

        thread = threading.Thread(target=receive, daemon=True)
        thread.start()
        deadline = time.monotonic() + WAIT_S
        while received.empty() and time.monotonic() < deadline:
            sent = bus.publish("status", STATUS)  # again and again: the slow joiner
            time.sleep(0.05)
        event = received.get(timeout=WAIT_S)
    assert event["topic"] == "status" and event["seq"] <= sent["seq"]
    assert {key: event[key] for key in STATUS} == STATUS


def test_only_subscribers_with_a_listed_key_and_the_daemons_key_receive_anything(
    keys: Keys, context: zmq.Context[Any]
) -> None:
    with EventBus("tcp://127.0.0.1:*", curve=keys.server()) as bus:
        assert bus.endpoint is not None
        alice = connect(context, zmq.SUB, bus.endpoint, keys.client(keys.alice))
        turned_away = {
            "no CURVE": connect(context, zmq.SUB, bus.endpoint, None),
            "a wrong server key": connect(
                context, zmq.SUB, bus.endpoint, keys.client(keys.alice, keys.mallory.public)
            ),
            "an unlisted client key": connect(
                context, zmq.SUB, bus.endpoint, keys.client(keys.mallory)
            ),
        }
        assert alice.handshake() == zmq.Event.HANDSHAKE_SUCCEEDED
        outcomes = {name: peer.handshake() for name, peer in turned_away.items()}
        assert outcomes["an unlisted client key"] == zmq.Event.HANDSHAKE_FAILED_AUTH  # ZAP: 400
        assert set(outcomes.values()) <= HANDSHAKE_FAILED, outcomes

        deadline = time.monotonic() + WAIT_S
        while not alice.socket.poll(50):  # the subscription reaches the daemon
            assert time.monotonic() < deadline, f"alice received nothing in {WAIT_S} s"
            bus.publish("status", STATUS)
        alice.drain()
        sent = [bus.publish("status", STATUS)["seq"] for _ in range(5)]
        got = [json.loads(body)["seq"] for _, body in alice.drain(wait_s=QUIET_S)]
        assert got == sent
        for name, peer in turned_away.items():
            assert peer.drain(wait_s=QUIET_S) == [], f"a subscriber with {name} received"


def test_the_dfd_subscribe_command_takes_the_keys(keys: Keys) -> None:
    with EventBus("tcp://127.0.0.1:*", curve=keys.server()) as bus:
        assert bus.endpoint is not None
        command = [DFD, "subscribe", "--endpoint", bus.endpoint, "--json", "--count", "1"]
        command += ["--timeout", str(WAIT_S)]
        command += ["--server-key", str(keys.folder / "dfd.key")]
        command += ["--client-key", str(keys.folder / "alice.key_secret")]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + WAIT_S + 5
            while process.poll() is None and time.monotonic() < deadline:
                bus.publish("status", STATUS)
                time.sleep(0.05)
            stdout, stderr = process.communicate(timeout=WAIT_S)
        finally:
            process.kill()
    assert process.returncode == 0, stderr.decode()
    assert json.loads(stdout)["topic"] == "status"


# --- the PCM ingest ----------------------------------------------------------------------------


class Collector:
    def __init__(self) -> None:
        self.events: queue.Queue[CaptureEvent] = queue.Queue()

    def __call__(self, event: CaptureEvent) -> None:
        self.events.put(event)

    def until_ended(self) -> list[CaptureEvent]:
        events: list[CaptureEvent] = []
        while not events or not isinstance(events[-1], StreamEnded):
            events.append(self.events.get(timeout=WAIT_S))
        return events


def pcm_messages(call_id: str, samples: np.ndarray, frame: int = 320) -> list[list[bytes]]:
    pcm = (samples * 32767).astype("<i2")
    chunks = [pcm[start : start + frame].tobytes() for start in range(0, len(pcm), frame)]
    return [
        [call_id.encode(), b"0", str(seq).encode(), chunk]
        for seq, chunk in enumerate([*chunks, b""])  # the empty one ends the stream
    ]


def test_the_pcm_ingest_takes_audio_only_from_senders_with_the_right_keys(
    keys: Keys, context: zmq.Context[Any]
) -> None:
    collector = Collector()
    source = PcmIngestSource("tcp://127.0.0.1:*", curve=keys.server())
    source.start(collector)
    try:
        turned_away = {
            "no CURVE": connect(context, zmq.PUSH, source.endpoint, None),
            "an unlisted client key": connect(
                context, zmq.PUSH, source.endpoint, keys.client(keys.mallory)
            ),
        }
        for name, peer in turned_away.items():
            for message in pcm_messages(f"refused: {name}", tone(440, 0.2)):
                with contextlib.suppress(zmq.Again):  # queued until turned away, then dropped
                    peer.socket.send_multipart(message, zmq.NOBLOCK)
            assert peer.handshake() in HANDSHAKE_FAILED, name

        alice = connect(context, zmq.PUSH, source.endpoint, keys.client(keys.alice))
        audio = tone(300, 0.5)
        for message in pcm_messages("alice-1", audio):
            alice.socket.send_multipart(message)
        assert alice.handshake() == zmq.Event.HANDSHAKE_SUCCEEDED
        events = collector.until_ended()
        time.sleep(QUIET_S)  # anything from the others would have come by now
    finally:
        source.stop()
    chunks = [event for event in events if isinstance(event, AudioChunk)]
    assert {event.call_id for event in events} == {"alice-1"}
    received = np.concatenate([chunk.samples for chunk in chunks])
    np.testing.assert_allclose(received, audio, atol=2 / 32768)
    assert isinstance(events[-1], StreamEnded) and events[-1].reason == "end-message"
    assert collector.events.empty()  # nothing from the others, before or after
    assert source.counters.malformed == 0


def test_build_sources_gives_the_pcm_ingest_the_keys(keys: Keys, tmp_path: Path) -> None:
    from dfd.daemon.service.serve import build_sources
    from dfd.daemon.settings import Settings

    serve = ServeSettings(
        pcm=("tcp://127.0.0.1:*",),
        curve_secret_key=str(keys.folder / "dfd.key_secret"),
        curve_clients=str(keys.clients),
    )
    (source,) = build_sources(Settings(serve=serve))
    assert isinstance(source, PcmIngestSource)
    assert source.curve == CurveServer(keys.daemon, frozenset({keys.alice.public}))


# --- key files ---------------------------------------------------------------------------------


def dfd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DFD, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120
    )


def test_dfd_keys_generate_writes_a_usable_pair_and_keeps_an_existing_one(
    tmp_path: Path,
) -> None:
    out = tmp_path / "new" / "keys"
    result = dfd("keys", "generate", "dfd", "--out", str(out))
    assert result.returncode == 0, result.stderr
    public_path, secret_path = out / "dfd.key", out / "dfd.key_secret"
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(public_path.stat().st_mode) == 0o644
    pair = load_key_pair(secret_path)
    assert load_public_key(public_path) == pair.public == zmq.curve_public(pair.secret)
    assert result.stdout.splitlines() == [
        f"public certificate  {public_path}",
        f"secret certificate  {secret_path} (mode 0600; keep it private)",
        f"public key          {pair.public.decode()}",
    ]
    # pyzmq reads them as ZeroMQ certificates; the public one holds no secret
    assert zmq.auth.load_certificate(secret_path) == (pair.public, pair.secret)
    assert zmq.auth.load_certificate(public_path) == (pair.public, None)
    assert sorted(path.name for path in out.iterdir()) == ["dfd.key", "dfd.key_secret"]

    again = dfd("keys", "generate", "dfd", "--out", str(out))
    assert again.returncode == 1
    assert again.stderr == (
        f"Error: {public_path}, {secret_path} already exist(s); --force replaces the pair\n"
    )
    assert load_key_pair(secret_path) == pair

    forced = dfd("keys", "generate", "dfd", "--out", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    replaced = load_key_pair(secret_path)
    assert replaced.public != pair.public
    assert load_public_key(public_path) == replaced.public
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", ""])
def test_a_key_name_that_is_not_a_plain_file_name_is_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="key name"):
        generate_key_pair(tmp_path, name)
    assert list(tmp_path.iterdir()) == []


def test_certificates_made_by_pyzmq_load(tmp_path: Path) -> None:
    _, secret_path = zmq.auth.create_certificates(tmp_path, "made-by-pyzmq")
    os.chmod(secret_path, 0o600)
    pair = load_key_pair(Path(secret_path))
    assert (pair.public, pair.secret) == zmq.auth.load_certificate(secret_path)
    assert load_client_keys(tmp_path) == {pair.public}  # the *.key_secret is not a client


def test_key_files_that_cannot_be_used_are_refused(keys: Keys, tmp_path: Path) -> None:
    secret = keys.folder / "dfd.key_secret"
    with pytest.raises(KeyFileError, match=r"cannot read it \(No such file or directory\)"):
        load_key_pair(tmp_path / "absent.key_secret")
    with pytest.raises(KeyFileError, match="no secret-key in it"):
        load_key_pair(keys.folder / "dfd.key")
    os.chmod(secret, 0o604)
    with pytest.raises(KeyFileError, match=r"open to every user \(mode 0604\); chmod 600"):
        load_key_pair(secret)
    os.chmod(secret, 0o600)
    mixed = tmp_path / "mixed.key_secret"
    mixed.write_text(
        secret.read_text().replace(keys.daemon.public.decode(), keys.alice.public.decode())
    )
    os.chmod(mixed, 0o600)
    with pytest.raises(KeyFileError, match="does not belong to its secret-key"):
        load_key_pair(mixed)
    broken = tmp_path / "broken.key"
    broken.write_text('curve\n    public-key = "tooshort"\n')
    with pytest.raises(KeyFileError, match="not a Z85-encoded CURVE key"):
        load_public_key(broken)
    empty = tmp_path / "empty-clients"
    empty.mkdir()
    with pytest.raises(KeyFileError, match="no public certificates"):
        load_client_keys(empty)


def test_curve_settings_name_the_setting_that_cannot_be_used(keys: Keys, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"serve\.curve_clients needs serve\.curve_secret_key"):
        ServeSettings(curve_clients=str(keys.clients))
    missing = ServeSettings(curve_secret_key=str(tmp_path / "absent.key_secret"))
    with pytest.raises(ConfigError, match=r"^serve.curve_secret_key: .*absent.key_secret: cannot"):
        load_curve_server(missing)
    no_clients = ServeSettings(
        curve_secret_key=str(keys.folder / "dfd.key_secret"), curve_clients=str(tmp_path / "no")
    )
    with pytest.raises(ConfigError, match=r"^serve.curve_clients: .*not a folder"):
        load_curve_server(no_clients)
    assert load_curve_server(ServeSettings()) is None
    assert load_curve_server(ServeSettings(curve_secret_key="")) is None


def test_a_missing_key_file_is_a_one_line_error(tmp_path: Path) -> None:
    absent = tmp_path / "absent.key_secret"
    started = time.monotonic()
    result = dfd("serve", env={"DFD_SERVE__CURVE_SECRET_KEY": str(absent)})
    assert result.returncode == 2  # bad settings: the systemd unit does not restart on 2
    assert result.stderr == (
        f"Error: serve.curve_secret_key: {absent}: cannot read it (No such file or directory)\n"
    )
    assert time.monotonic() - started < 60  # refused before the models load
    result = dfd("subscribe", "--server-key", str(tmp_path / "absent.key"), "--count", "1")
    assert result.returncode == 1
    assert result.stderr == (
        f"Error: {tmp_path / 'absent.key'}: cannot read it (No such file or directory)\n"
    )


# --- the daemon --------------------------------------------------------------------------------


def test_dfd_serve_publishes_on_a_curve_bus(keys: Keys, tmp_path: Path) -> None:
    """The daemon wires its settings to the bus: alice receives its status events."""
    config = tmp_path / "dfd.toml"
    config.write_text(
        f"""
[logging]
format = "json"

[models]
workers = 1

[serve]
pub = "tcp://127.0.0.1:*"
metrics = ""
state_directory = "{tmp_path}"
status_interval_s = 0.2
curve_secret_key = "{keys.folder / "dfd.key_secret"}"
curve_clients = "{keys.clients}"
""",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [DFD, "--config", str(config), "serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    records: queue.Queue[dict[str, Any]] = queue.Queue()

    def read_logs() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if line.startswith("{"):
                records.put(json.loads(line))

    threading.Thread(target=read_logs, daemon=True).start()
    try:
        logged: dict[str, dict[str, Any]] = {}
        while "serving" not in logged:
            record = records.get(timeout=STARTUP_S)  # Empty: it did not start in time
            logged[record["event"]] = record
        assert logged["event bus bound"]["curve"] == "1 authorised client key(s)"
        alice = keys.client(keys.alice)
        pub = logged["serving"]["pub"]
        events = subscribe(pub, ("status",), max_events=1, timeout_s=WAIT_S, curve=alice)
        assert [event["topic"] for event in events] == ["status"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        process.kill()
        process.wait()
