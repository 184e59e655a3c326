"""The alert bus through real ZeroMQ sockets (TCP on 127.0.0.1 and ipc), the journal on disk, the
published JSON Schema, and the plain-pyzmq example subscriber run as a process."""

from __future__ import annotations

import json
import math
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import structlog
import zmq

from dfd.daemon.clients.subscriber import Discontinuity, SequenceTracker, format_event, subscribe
from dfd.daemon.engine.decisions import ALERT_BASIS
from dfd.daemon.engine.events import (
    AlertCleared,
    AlertRaised,
    BatchDispatched,
    CallEnded,
    CallEvent,
    CallStarted,
    WindowScored,
)
from dfd.daemon.service.bus import (
    ALERT_TOPICS,
    SCHEMA_VERSION,
    TOPICS,
    AlertJournal,
    BusError,
    EventBus,
    JournalError,
    utc_timestamp,
)
from tests.signals import REPO

SCHEMA = json.loads((REPO / "docs" / "alerts.schema.json").read_text(encoding="utf-8"))
ALERTS_DOC = (REPO / "docs" / "alerts.md").read_text(encoding="utf-8")
EXAMPLE_SUBSCRIBER = REPO / "examples" / "subscriber.py"
ENVELOPE = ("schema", "seq", "topic", "time")
WAIT_S = 10.0  # how long a test waits for a message before failing; never reached when all is well
MODEL = {"name": "sinc-lcnn", "version": "1"}


def documented_examples() -> dict[str, dict[str, Any]]:
    blocks = re.findall(r"```json\n(.*?)```", ALERTS_DOC, flags=re.DOTALL)
    events = [json.loads(block) for block in blocks]
    return {event["topic"]: event for event in events}


EXAMPLES = documented_examples()


def body_of(topic: str, **changes: Any) -> dict[str, Any]:
    """The documented example of a topic without its envelope, with ``changes`` applied."""
    body = {key: value for key, value in EXAMPLES[topic].items() if key not in ENVELOPE}
    return {**body, **changes}


# --- a checker for the subset of JSON Schema 2020-12 that docs/alerts.schema.json uses ---------
# jsonschema is not a dependency of dfd; test_schema_with_jsonschema uses it where installed.

_ANNOTATIONS = {"$schema", "$id", "title", "description", "$comment", "format", "$defs"}


def _is_type(value: Any, name: str) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return {
        "null": value is None,
        "boolean": isinstance(value, bool),
        "integer": number and float(value).is_integer(),
        "number": number,
        "string": isinstance(value, str),
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
    }[name]


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_json_equal, a, b))
    same_kind = type(a) is type(b) or (_is_type(a, "number") and _is_type(b, "number"))
    return same_kind and a == b


def _resolve(reference: str) -> Any:
    assert reference.startswith("#/"), f"only local references are supported: {reference}"
    node: Any = SCHEMA
    for token in reference[2:].split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def schema_errors(value: Any, schema: dict[str, Any], where: str = "event") -> list[str]:
    errors: list[str] = []
    is_object = isinstance(value, dict)
    number = _is_type(value, "number")
    for key, rule in schema.items():
        if key in _ANNOTATIONS or key in ("then", "else"):
            continue
        if key == "$ref":
            errors += schema_errors(value, _resolve(rule), where)
        elif key == "type":
            names = [rule] if isinstance(rule, str) else rule
            if not any(_is_type(value, name) for name in names):
                errors.append(f"{where}: {value!r} is not of type {rule}")
        elif key == "const":
            if not _json_equal(value, rule):
                errors.append(f"{where}: {value!r} is not {rule!r}")
        elif key == "enum":
            if not any(_json_equal(value, option) for option in rule):
                errors.append(f"{where}: {value!r} is not one of {rule}")
        elif key == "required":
            if is_object:
                errors += [f"{where}: {name} is missing" for name in rule if name not in value]
        elif key == "properties":
            if is_object:
                for name, sub in rule.items():
                    if name in value:
                        errors += schema_errors(value[name], sub, f"{where}.{name}")
        elif key == "additionalProperties":
            if is_object:
                for name in value.keys() - schema.get("properties", {}).keys():
                    if rule is False:
                        errors.append(f"{where}: {name} is not allowed")
                    else:
                        errors += schema_errors(value[name], rule, f"{where}.{name}")
        elif key == "propertyNames":
            if is_object:
                for name in value:
                    if schema_errors(name, rule):
                        errors.append(f"{where}: {name} is not allowed here")
        elif key == "minimum":
            if number and value < rule:
                errors.append(f"{where}: {value} < {rule}")
        elif key == "maximum":
            if number and value > rule:
                errors.append(f"{where}: {value} > {rule}")
        elif key == "minLength":
            if isinstance(value, str) and len(value) < rule:
                errors.append(f"{where}: {value!r} is shorter than {rule}")
        elif key == "pattern":
            if isinstance(value, str) and not re.search(rule, value):
                errors.append(f"{where}: {value!r} does not match {rule}")
        elif key == "allOf":
            for sub in rule:
                errors += schema_errors(value, sub, where)
        elif key == "anyOf":
            if all(schema_errors(value, sub, where) for sub in rule):
                errors.append(f"{where}: {value!r} matches none of anyOf")
        elif key == "if":
            branch = "else" if schema_errors(value, rule, where) else "then"
            if branch in schema:
                errors += schema_errors(value, schema[branch], where)
        else:
            raise AssertionError(f"the test's schema checker does not implement {key!r}")
    return errors


# --- sockets -----------------------------------------------------------------------------------


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture(params=["tcp", "ipc"])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "tcp://127.0.0.1:*" if request.param == "tcp" else f"ipc://{tmp_path}/bus.sock"


def sub_socket(context: zmq.Context[Any], endpoint: str, *prefixes: bytes) -> zmq.Socket[Any]:
    socket = context.socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    for prefix in prefixes or (b"",):
        socket.setsockopt(zmq.SUBSCRIBE, prefix)
    return socket


def receive(socket: zmq.Socket[Any]) -> tuple[bytes, dict[str, Any], list[bytes]]:
    assert socket.poll(WAIT_S * 1000), f"nothing received within {WAIT_S} s"
    frames = socket.recv_multipart()
    return frames[0], json.loads(frames[-1]), frames


def wait_until_live(bus: EventBus, socket: zmq.Socket[Any], topic: str = "status") -> int:
    """Publish ``topic`` events until one arrives (the slow joiner); return the last seq sent.
    The socket may still hold later probes: skip events at or below the returned seq."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        sent = bus.publish(topic, body_of(topic))
        if socket.poll(50):
            socket.recv_multipart()
            return int(sent["seq"])
    raise AssertionError(f"the subscription did not go live within {WAIT_S} s")


def receive_after(socket: zmq.Socket[Any], seq: int) -> tuple[bytes, dict[str, Any], list[bytes]]:
    while True:
        topic, event, frames = receive(socket)
        if event["seq"] > seq:
            return topic, event, frames


# --- publishing --------------------------------------------------------------------------------


def test_events_arrive_as_topic_and_json_frames_with_consecutive_seq(
    context: zmq.Context[Any], endpoint: str, tmp_path: Path
) -> None:
    with EventBus(endpoint, AlertJournal(tmp_path / "alerts.jsonl")) as bus:
        assert bus.endpoint is not None
        assert not bus.endpoint.endswith(("*", ":0"))
        socket = sub_socket(context, bus.endpoint)
        probe = wait_until_live(bus, socket)
        sent = [bus.publish(topic, body_of(topic)) for topic in TOPICS if topic != "score"]
        received = [receive_after(socket, probe) for _ in sent]

    assert [event["seq"] for event in sent] == list(range(probe + 1, probe + 1 + len(sent)))
    for event, (topic, received_event, frames) in zip(sent, received, strict=True):
        assert len(frames) == 2
        assert topic == event["topic"].encode()
        assert frames[1] == json.dumps(event, separators=(",", ":")).encode()
        assert received_event == event
        assert list(event)[:4] == list(ENVELOPE)
        assert event["schema"] == SCHEMA_VERSION
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["time"])
        assert schema_errors(event, SCHEMA) == []


@pytest.mark.parametrize("wildcard", ["tcp://127.0.0.1:*", "tcp://127.0.0.1:0"])
def test_a_wildcard_port_resolves_to_the_bound_port(wildcard: str) -> None:
    with EventBus(wildcard) as bus:
        assert bus.endpoint is not None
        port = int(bus.endpoint.rsplit(":", 1)[1])
        assert bus.endpoint == f"tcp://127.0.0.1:{port}"
        assert port > 0


def test_a_taken_port_is_a_bus_error_and_releases_the_journal(tmp_path: Path) -> None:
    journal_path = tmp_path / "alerts.jsonl"
    with EventBus("tcp://127.0.0.1:*") as first:
        assert first.endpoint is not None
        with pytest.raises(BusError, match="cannot bind the event bus"):
            EventBus(first.endpoint, AlertJournal(journal_path))
    AlertJournal(journal_path).close()  # the failed bus closed the journal and its lock


def test_prefix_subscription_filters_topics(endpoint: str) -> None:
    with EventBus(endpoint) as bus:
        assert bus.endpoint is not None
        alerts = _Collector(bus.endpoint, ("alert",))
        calls = _Collector(bus.endpoint, ("call.",))
        try:
            alerts.wait_until_live(bus, "alert.raised")
            calls.wait_until_live(bus, "call.started")
            for topic in TOPICS:
                bus.publish(topic, body_of(topic))
            marker = bus.publish("alert.cleared", body_of("alert.cleared"))
            call_marker = bus.publish("call.ended", body_of("call.ended"))
            alert_topics = alerts.topics_until(marker["seq"])
            call_topics = calls.topics_until(call_marker["seq"])
        finally:
            alerts.stop()
            calls.stop()
    assert set(alert_topics) == set(ALERT_TOPICS)
    assert set(call_topics) == {"call.started", "call.ended"}


class _Collector:
    """``subscribe`` running on a thread, its events in a queue (publishing stays on the main
    thread, the bus's one thread). The thread ends at ``max_events``, at the first event after
    ``stop``, or after ``WAIT_S`` without events."""

    def __init__(
        self, endpoint: str, topics: tuple[str, ...], max_events: int | None = None
    ) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.received = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(endpoint, topics, max_events), daemon=True
        )
        self.thread.start()

    def _run(self, endpoint: str, topics: tuple[str, ...], max_events: int | None) -> None:
        for event in subscribe(endpoint, topics, timeout_s=WAIT_S, max_events=max_events):
            self.received += 1
            self.events.put(event)
            if self._stop.is_set():
                break

    def wait_until_live(self, bus: EventBus, topic: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            bus.publish(topic, body_of(topic))
            try:
                self.events.get(timeout=0.05)
            except queue.Empty:
                continue
            return
        raise AssertionError(f"the subscription did not go live within {WAIT_S} s")

    def topics_until(self, seq: int) -> list[str]:
        topics = []
        while True:
            event = self.events.get(timeout=WAIT_S)
            topics.append(event["topic"])
            if event["seq"] == seq:
                return topics

    def stop(self, reason: str = "source-stopped") -> None:
        self._stop.set()


def test_score_events_are_skipped_unless_enabled(context: zmq.Context[Any]) -> None:
    with EventBus("tcp://127.0.0.1:*") as bus:
        assert bus.endpoint is not None
        socket = sub_socket(context, bus.endpoint)
        probe = wait_until_live(bus, socket)
        skipped = bus.publish("score", body_of("score"))
        status = bus.publish("status", body_of("status"))
        _, received, _ = receive_after(socket, probe)
        assert bus.published == probe + 1

    assert skipped["seq"] is None
    assert skipped["score"] == EXAMPLES["score"]["score"]
    assert status["seq"] == probe + 1  # the score used no number
    assert received == status

    with EventBus("tcp://127.0.0.1:*", publish_scores=True) as bus:
        assert bus.endpoint is not None
        socket = sub_socket(context, bus.endpoint)
        probe = wait_until_live(bus, socket)
        score = bus.publish("score", body_of("score"))
        topic, received, _ = receive_after(socket, probe)
    assert topic == b"score"
    assert received == score
    assert score["seq"] == probe + 1
    assert schema_errors(score, SCHEMA) == []


def test_no_socket_still_numbers_and_journals(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    with EventBus(None, AlertJournal(path)) as bus:
        assert bus.endpoint is None
        events = [bus.publish(topic, body_of(topic)) for topic in TOPICS]
    assert [event["seq"] for event in events] == [1, 2, 3, 4, None, 5]
    assert AlertJournal.read(path) == events[:2]


# --- the journal -------------------------------------------------------------------------------


class _SpySocket:
    """Stands in for the bus's PUB socket: notes what the journal holds at each send."""

    def __init__(self, socket: zmq.Socket[Any], journal: Path) -> None:
        self.socket = socket
        self.journal = journal
        self.journaled_at_send: list[tuple[int, bool]] = []

    def send_multipart(self, frames: list[bytes], flags: int = 0) -> None:
        seq = json.loads(frames[1])["seq"]
        journaled = [event["seq"] for event in AlertJournal.read(self.journal)]
        self.journaled_at_send.append((seq, seq in journaled))
        self.socket.send_multipart(frames, flags=flags)

    def close(self, linger: int | None = None) -> None:
        self.socket.close(linger=linger)


def test_an_alert_is_in_the_journal_before_it_is_sent(
    context: zmq.Context[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "alerts.jsonl"
    with EventBus("tcp://127.0.0.1:*", AlertJournal(path, fsync_interval_s=0)) as bus:
        assert bus.endpoint is not None
        real = bus._socket
        assert real is not None
        spy = _SpySocket(real, path)
        monkeypatch.setattr(bus, "_socket", spy)
        socket = sub_socket(context, bus.endpoint, b"alert")
        probe = wait_until_live(bus, socket, "alert.raised")
        cleared = bus.publish("alert.cleared", body_of("alert.cleared"))
        bus.publish("status", body_of("status"))
        _, received, frames = receive_after(socket, probe)
        journal_when_received = AlertJournal.read(path, since_seq=probe)

    assert received == cleared
    assert journal_when_received == [cleared]
    lines = path.read_bytes().splitlines()
    assert lines[-1] == frames[1]  # the journal line is the published frame, byte for byte
    assert all(journaled for seq, journaled in spy.journaled_at_send if seq <= cleared["seq"])
    assert (cleared["seq"], True) in spy.journaled_at_send
    assert (cleared["seq"] + 1, False) in spy.journaled_at_send  # status: never journaled


def write_events(path: Path, seqs: list[int]) -> list[dict[str, Any]]:
    events = [{**EXAMPLES["alert.raised"], "seq": seq} for seq in seqs]
    path.write_bytes(b"".join(json.dumps(event).encode() + b"\n" for event in events))
    return events


@pytest.mark.parametrize(
    "torn",
    [b'{"schema":1,"seq":9,"topic":"alert.ra', b"\0" * 300, b'{"seq": 9}'],
    ids=["half-written", "zeros-after-power-loss", "no-newline"],
)
def test_a_torn_last_line_is_skipped_and_cut_off(torn: bytes, tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    events = write_events(path, [3, 5, 8])
    whole = path.read_bytes()
    path.write_bytes(whole + torn)

    assert AlertJournal.read(path) == events
    assert AlertJournal.read(path, since_seq=3) == events[1:]
    assert AlertJournal.last_seq(path) == 8

    with AlertJournal(path) as journal:
        assert journal.tail_seq == 8
        assert path.read_bytes() == whole  # the torn bytes are gone before anything is added
        journal.append({**EXAMPLES["alert.cleared"], "seq": 9})
    assert [event["seq"] for event in AlertJournal.read(path)] == [3, 5, 8, 9]


def test_a_corrupt_complete_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    write_events(path, [1, 2])
    path.write_bytes(path.read_bytes() + b"not json\n")
    with pytest.raises(JournalError, match="line 3: not a JSON event"):
        AlertJournal.read(path)
    with pytest.raises(JournalError, match="not a JSON event"):
        AlertJournal.last_seq(path)
    for _ in range(2):  # refused without keeping the file locked
        with pytest.raises(JournalError, match="not a JSON event"):
            AlertJournal(path)


def test_last_seq_reads_across_tail_blocks(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    big = {**EXAMPLES["alert.raised"], "seq": 41, "call_id": "x" * 200_000}
    path.write_bytes(json.dumps(big).encode() + b"\n" + b"\0" * 100_000)
    assert AlertJournal.last_seq(path) == 41
    assert AlertJournal.last_seq(tmp_path / "missing.jsonl") == 0
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert AlertJournal.last_seq(tmp_path / "empty.jsonl") == 0


def test_seq_continues_after_a_restart_from_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    with EventBus(None, AlertJournal(path)) as bus:
        first_run = [
            bus.publish(topic, body_of(topic))
            for topic in ("call.started", "alert.raised", "alert.cleared", "status", "status")
        ]
    assert [event["seq"] for event in first_run] == [1, 2, 3, 4, 5]

    with EventBus(None, AlertJournal(path)) as bus:
        assert bus.next_seq == 4
        restarted = bus.publish("alert.raised", body_of("alert.raised"))
    assert restarted["seq"] == 4  # after the last journaled alert; status 4 and 5 are reused
    assert [event["seq"] for event in AlertJournal.read(path)] == [2, 3, 4]

    tracker = SequenceTracker()
    for event in first_run:
        assert tracker.observe(event) is None
    found = tracker.observe(restarted)
    assert found == Discontinuity(expected=6, received=4)
    assert found.restarted
    assert tracker.restarts == 1
    assert tracker.lost == 0

    with pytest.raises(ValueError, match="above the journal's last seq"):
        EventBus(None, AlertJournal(path), first_seq=4)
    with EventBus(None, AlertJournal(path), first_seq=100) as bus:
        assert bus.publish("alert.cleared", body_of("alert.cleared"))["seq"] == 100


def test_the_journal_folder_is_created_when_missing(tmp_path: Path) -> None:
    path = tmp_path / "state" / "dfd" / "alerts.jsonl"
    with AlertJournal(path) as journal:
        journal.append({"seq": 1, "topic": "alert.raised"})
    assert AlertJournal.read(path) == [{"seq": 1, "topic": "alert.raised"}]


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    with AlertJournal(path), pytest.raises(JournalError, match="open for writing"):
        AlertJournal(path)


def test_journal_seq_must_increase(tmp_path: Path) -> None:
    with AlertJournal(tmp_path / "alerts.jsonl") as journal:
        journal.append({"seq": 5})
        for bad in (5, 4, None, True, "6"):
            with pytest.raises(ValueError, match="integer seq above 5"):
                journal.append({"seq": bad})


def test_fsync_schedule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    journal = AlertJournal(tmp_path / "alerts.jsonl", fsync_interval_s=1.0)
    monkeypatch.setattr(os, "fsync", counting_fsync)

    def append_at(now: float, seq: int) -> int:
        clock[0] = now
        journal.append({"seq": seq})
        return len(synced)

    assert append_at(1000.0, 1) == 1  # after a quiet spell: at once
    assert append_at(1000.2, 2) == 1  # a burst: not again within the interval
    assert append_at(1000.9, 3) == 1
    assert append_at(1001.0, 4) == 2  # the interval has passed
    clock[0] = 1001.5
    journal.sync_if_due()
    assert len(synced) == 2  # nothing due yet
    clock[0] = 1002.0
    journal.sync_if_due()
    assert len(synced) == 2  # nothing unsynced
    assert append_at(1002.1, 5) == 3
    assert append_at(1002.2, 6) == 3
    clock[0] = 1003.5
    journal.sync_if_due()  # what EventBus does on every publish
    assert len(synced) == 4
    assert append_at(1003.6, 7) == 4
    journal.close()  # syncs what is left
    assert len(synced) == 5
    journal.close()
    assert len(synced) == 5

    with AlertJournal(tmp_path / "every.jsonl", fsync_interval_s=0) as every:
        for seq in range(1, 4):
            every.append({"seq": seq})
    assert len(synced) == 5 + 1 + 3  # the new file's folder, then every append
    with pytest.raises(ValueError, match="fsync_interval_s"):
        AlertJournal(tmp_path / "bad.jsonl", fsync_interval_s=-1)


# --- what publish refuses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"score": math.nan},
        {"score": math.inf},
        {"model": {"name": "sinc-lcnn", "version": "1", "temperature": -math.inf}},
    ],
    ids=["nan", "inf", "nested"],
)
def test_non_finite_numbers_are_refused(changes: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    with EventBus(None, AlertJournal(path)) as bus:
        with pytest.raises(ValueError, match="non-finite"):
            bus.publish("alert.raised", body_of("alert.raised", **changes))
        assert bus.publish("status", body_of("status"))["seq"] == 1  # no number was used
    assert AlertJournal.read(path) == []


def test_unknown_topics_and_envelope_keys_are_refused() -> None:
    with EventBus(None) as bus:
        with pytest.raises(ValueError, match="unknown topic 'alert'"):
            bus.publish("alert", body_of("alert.raised"))
        with pytest.raises(ValueError, match="envelope keys: seq"):
            bus.publish("status", body_of("status", seq=7))
    with pytest.raises(ValueError, match="closed"):
        bus.publish("status", body_of("status"))


# --- a subscriber that never reads -------------------------------------------------------------


def test_a_stalled_subscriber_never_blocks_publish(context: zmq.Context[Any]) -> None:
    count = 200_000
    with EventBus("tcp://127.0.0.1:*", send_hwm=100) as bus:
        assert bus.endpoint is not None
        socket = sub_socket(context, bus.endpoint)
        socket.setsockopt(zmq.RCVHWM, 100)
        probe = wait_until_live(bus, socket)
        errors: list[BaseException] = []

        def flood() -> None:
            try:
                for _ in range(count):
                    bus.publish("status", body_of("status"))
            except BaseException as error:  # noqa: BLE001 - handed to the test thread
                errors.append(error)

        publisher = threading.Thread(target=flood, daemon=True)
        publisher.start()
        publisher.join(timeout=300)  # a hang guard, not a timing expectation
        assert not publisher.is_alive(), "publish blocked on a subscriber that does not read"
        assert errors == []
        assert bus.published == probe + count

        tracker = SequenceTracker()
        tracker.observe({"seq": probe})  # so drops before the first event read count as gaps
        received = 0
        while socket.poll(500):
            _, event, _ = receive(socket)
            if event["seq"] > probe:
                received += 1
                tracker.observe(event)
    assert received < count  # ZeroMQ dropped what the subscriber could not hold
    assert tracker.expected is not None
    dropped_at_the_end = probe + count - (tracker.expected - 1)
    assert tracker.lost + dropped_at_the_end == count - received  # every drop is seen as a gap


# --- the subscriber side -----------------------------------------------------------------------


def test_subscribe_stops_at_max_events_and_after_the_timeout() -> None:
    with EventBus("tcp://127.0.0.1:*") as bus:
        assert bus.endpoint is not None
        started = time.monotonic()
        quiet = list(subscribe(bus.endpoint, timeout_s=0.3))
        waited = time.monotonic() - started
        collector = _Collector(bus.endpoint, ("status",), max_events=3)
        collector.wait_until_live(bus, "status")
        for _ in range(5):
            bus.publish("status", body_of("status"))
        collector.thread.join(timeout=WAIT_S)
        assert not collector.thread.is_alive()
    assert quiet == []
    assert waited >= 0.3
    assert collector.received == 3
    with pytest.raises(ValueError, match="timeout_s"):
        subscribe("tcp://127.0.0.1:1", timeout_s=-1)
    with pytest.raises(ValueError, match="max_events"):
        subscribe("tcp://127.0.0.1:1", max_events=-1)


def test_sequence_tracker_reports_gaps_and_restarts() -> None:
    tracker = SequenceTracker()
    seen = [tracker.observe({"seq": seq}) for seq in (7, 8, 9, 12, 13, 15, 2, 3)]
    assert seen == [
        None,
        None,
        None,
        Discontinuity(expected=10, received=12),
        None,
        Discontinuity(expected=14, received=15),
        Discontinuity(expected=16, received=2),
        None,
    ]
    assert tracker.lost == 3
    assert tracker.restarts == 1
    assert seen[3] is not None and seen[3].describe() == "2 events lost (seq 10-11)"
    assert seen[5] is not None and seen[5].describe() == "1 event lost (seq 14)"
    assert seen[6] is not None and seen[6].describe().startswith(
        "publisher restarted: seq 2 after 15"
    )


def test_format_event_gives_one_line_per_topic() -> None:
    lines = {topic: format_event(event) for topic, event in EXAMPLES.items()}
    assert lines == {
        "alert.raised": "12:03:04.120  ALERT RAISED   call=rtp-1a2b ch0  4.0-6.0 s  "
        "score 0.97 >= 0.85  evidence 6.0/6 nats  model sinc-lcnn 1",
        "alert.cleared": "12:03:11.620  ALERT CLEARED  call=rtp-1a2b ch0  11.5-13.5 s  "
        "score 0.12 < 0.85  evidence 0.0/6 nats  model sinc-lcnn 1",
        "call.started": "12:03:00.020  CALL STARTED   call=rtp-1a2b ch0  source rtp  "
        "model sinc-lcnn 1",
        "call.ended": "12:03:31.500  CALL ENDED     call=rtp-1a2b ch0  31.4 s  verdict synthetic  "
        "25.5 s speech  max 0.99  1 alert  60 windows (48 speech)  reason bye",
        "score": "12:03:04.118  SCORE          call=rtp-1a2b ch0  4.0-6.0 s  "
        "score 0.97 >= 0.85 (raw 3.12)  speech  model sinc-lcnn 1",
        "status": "12:03:35.000  STATUS         12 calls  48.0 windows/s  queue 3  dropped 0  "
        "uptime 86400 s",
    }
    assert format_event({"topic": "status", **body_of("status", overload=True)}).endswith(
        "OVERLOAD"
    )
    by_windows = {
        key: value
        for key, value in EXAMPLES["alert.raised"].items()
        if key not in ("evidence", "raise_at", "clear_at")
    }
    assert "  score 0.97 >= 0.85  5 of 5  model" in format_event({**by_windows, "rule": "windows"})
    unscored = {"topic": "score", **body_of("score", score=None, raw=None, speech=False)}
    assert format_event(unscored) == (
        "--:--:--.---  SCORE          call=rtp-1a2b ch0  4.0-6.0 s  not scored  no speech  "
        "model sinc-lcnn 1"
    )
    assert format_event({"topic": "future", "time": "x", "spin": 1}) == "x  FUTURE         spin=1"
    assert "\n" not in format_event({})


def test_a_call_id_cannot_write_escape_codes_to_the_operators_terminal() -> None:
    forged = "a\x1b[2K\rALERT CLEARED\x1b[0m\u202e"  # erase the line, write over it, reverse
    line = format_event({**EXAMPLES["alert.raised"], "call_id": forged})
    assert line.isprintable()
    assert "call=a\\x1b[2K\\rALERT CLEARED\\x1b[0m\\u202e ch0" in line
    assert line.startswith("12:03:04.120  ALERT RAISED ")


def test_utc_timestamp() -> None:
    assert utc_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert utc_timestamp(1_750_000_000.1239) == "2025-06-15T15:06:40.123Z"


# --- the schema and the documentation ----------------------------------------------------------


def test_every_topic_has_a_documented_example_that_the_bus_reproduces() -> None:
    assert set(EXAMPLES) == set(TOPICS)
    with EventBus(None, publish_scores=True) as bus:
        for topic, example in EXAMPLES.items():
            assert schema_errors(example, SCHEMA) == [], topic
            event = bus.publish(topic, body_of(topic))
            assert schema_errors(event, SCHEMA) == [], topic
            assert list(event) == list(example), topic
        unscored = bus.publish("score", body_of("score", score=None, raw=None, speech=False))
        assert schema_errors(unscored, SCHEMA) == []


def engine_event(topic: str) -> CallEvent:
    """The engine's typed event for a topic's documented example."""
    body = body_of(topic)
    common = {key: body[key] for key in ("call_id", "channel", "threshold", "model")}
    span = {key: body[key] for key in ("start", "end", "score")}
    if topic == "call.started":
        return CallStarted(**common, source=body["source"])
    if topic == "score":
        return WindowScored(**common, **span, raw=body["raw"], speech=body["speech"])
    basis = {key: body[key] for key in ALERT_BASIS if key in body}
    if topic == "alert.raised":
        return AlertRaised(**common, **span, basis=basis, latency_s=0.01)
    if topic == "alert.cleared":
        return AlertCleared(**common, **span, basis=basis)
    assert topic == "call.ended"
    fields = {key: value for key, value in body.items() if key not in {*common, *span}}
    return CallEnded(**common, **fields)


def test_the_engines_events_are_the_documented_json_and_only_call_events_are_published() -> None:
    """Each typed event's body is its topic's documented example, key for key and in order;
    the bus publishes call events and nothing for a batch."""
    call_topics = [topic for topic in TOPICS if topic != "status"]
    with EventBus(None, publish_scores=True) as bus:
        for topic in call_topics:
            event = engine_event(topic)
            assert event.topic == topic
            assert list(event.body().items()) == list(body_of(topic).items()), topic
        bus.emit(BatchDispatched(4))
        assert bus.published == 0
        for topic in call_topics:
            bus.emit(engine_event(topic))
        assert bus.published == len(call_topics)


@pytest.mark.parametrize(
    ("topic", "changes", "error"),
    [
        ("alert.raised", {"score": None}, "event.score: None is not of type number"),
        ("alert.raised", {"score": 1.5}, "event.score: 1.5 > 1"),
        ("alert.raised", {"over": 2.5}, "event.over: 2.5 is not of type integer"),
        ("alert.cleared", {"extra": 1}, "extra is not allowed"),
        ("alert.raised", {"model": {"name": "x"}}, "event.model: version is missing"),
        ("call.started", {"source": "sip"}, "is not one of"),
        ("call.started", {"start": 0.0}, "event.start: 0.0 is not of type null"),
        ("call.ended", {"verdict": "fake"}, "event.verdict"),
        ("call.ended", {"start": 1.0}, "event.start: 1.0 is not 0"),
        ("score", {"speech": 1}, "event.speech: 1 is not of type boolean"),
        ("score", {"start": None}, "event.start: None is not of type number"),
        ("score", {"raw": "3.1"}, "event.raw: '3.1' is not of type"),
        ("status", {"call_id": "rtp-1"}, "event.call_id"),
        ("status", {"overload": None}, "event.overload"),
        ("status", {"time": "2025-06-02 12:03:35"}, "does not match"),
        ("status", {"schema": 2}, "event.schema: 2 is not 1"),
        ("status", {"seq": 0}, "event.seq: 0 < 1"),
        ("status", {"channel": True}, "event.channel: True is not of type"),
    ],
)
def test_the_schema_refuses_malformed_events(
    topic: str, changes: dict[str, Any], error: str
) -> None:
    errors = schema_errors({**EXAMPLES[topic], **changes}, SCHEMA)
    assert any(error in line for line in errors), errors


@pytest.mark.parametrize("topic", TOPICS)
def test_the_schema_requires_every_common_field(topic: str) -> None:
    for field in (*ENVELOPE, "call_id", "channel", "start", "end", "score", "threshold", "model"):
        event = {key: value for key, value in EXAMPLES[topic].items() if key != field}
        assert f"event: {field} is missing" in schema_errors(event, SCHEMA)


def test_schema_with_jsonschema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    for event in EXAMPLES.values():
        validator.validate(event)
    assert not validator.is_valid({**EXAMPLES["status"], "call_id": "x"})


def test_the_documented_subscriber_is_the_example_file() -> None:
    source = EXAMPLE_SUBSCRIBER.read_text(encoding="utf-8")
    assert f"```python\n{source}```" in ALERTS_DOC
    assert len(source.splitlines()) <= 16
    imports = re.findall(r"^(?:import|from) (\S+)", source, flags=re.MULTILINE)
    assert imports == ["json", "sys", "zmq"]


def _read_lines(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def test_the_example_subscriber_prints_alerts_from_a_real_bus(tmp_path: Path) -> None:
    with (
        EventBus(f"ipc://{tmp_path}/bus.sock") as bus,
        subprocess.Popen(
            [sys.executable, str(EXAMPLE_SUBSCRIBER), str(bus.endpoint)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process,
    ):
        assert process.stdout is not None and process.stderr is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
        try:
            deadline = time.monotonic() + 60  # the interpreter and pyzmq start first
            probe = None
            while probe is None and time.monotonic() < deadline:
                probe = bus.publish("alert.raised", body_of("alert.raised", call_id="probe"))
                try:
                    lines.get(timeout=0.1)
                except queue.Empty:
                    probe = None
            assert probe is not None, process.stderr.read() if process.poll() is not None else ""
            sent = [
                bus.publish("call.started", body_of("call.started")),
                bus.publish("alert.raised", body_of("alert.raised")),
                bus.publish("status", body_of("status")),
                bus.publish("alert.cleared", body_of("alert.cleared")),
                bus.publish("call.ended", body_of("call.ended")),
            ]
            printed = []
            while not printed or not printed[-1].startswith(f"{sent[3]['seq']} "):
                line = lines.get(timeout=WAIT_S).rstrip("\n")
                if "probe" not in line:
                    printed.append(line)
        finally:
            process.terminate()
            process.wait(timeout=WAIT_S)
    raised, cleared = sent[1]["seq"], sent[3]["seq"]
    assert printed == [
        f"{raised} alert.raised rtp-1a2b 0 0.97",
        f"{cleared} alert.cleared rtp-1a2b 0 0.12",
    ]


def test_a_journal_path_that_is_a_link_or_a_fifo_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("not an alert journal\n")
    link = tmp_path / "alerts.jsonl"
    link.symlink_to(target)
    with pytest.raises(JournalError, match="is a symbolic link"):
        AlertJournal(link)
    assert target.read_text() == "not an alert journal\n"  # neither appended to nor cut
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(JournalError, match="not a regular file"):
        AlertJournal(fifo)


def test_a_failing_journal_sync_is_counted_and_the_events_keep_flowing(tmp_path: Path) -> None:
    journal = AlertJournal(tmp_path / "alerts.jsonl", fsync_interval_s=0)
    with EventBus(None, journal) as bus:
        bus.publish("alert.raised", body_of("alert.raised"))
        real_fd = journal._fd
        read_end, write_end = os.pipe()  # fsync on a pipe fails (EINVAL), as on a dying disk
        journal._fd, journal._dirty = read_end, True
        try:
            with structlog.testing.capture_logs() as logs:
                status = bus.publish("status", body_of("status"))
        finally:
            journal._fd = real_fd
            os.close(read_end)
            os.close(write_end)
        assert status["seq"] == 2 and bus.journal_errors == 1
        assert [entry["event"] for entry in logs] == ["alert journal sync failed"]
        bus.publish("alert.cleared", body_of("alert.cleared"))  # the journal works again
    assert [event["seq"] for event in AlertJournal.read(tmp_path / "alerts.jsonl")] == [1, 3]


def test_a_file_that_is_not_a_journal_is_never_cut(tmp_path: Path) -> None:
    """A journal path pointed at some other file (no newline in it): refused, not truncated."""
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b"# somebody's notes, no newline at the end")
    with pytest.raises(JournalError, match="not a dfd alert journal"):
        AlertJournal(path)
    assert path.read_bytes() == b"# somebody's notes, no newline at the end"


def test_a_state_directory_writable_by_everyone_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(JournalError, match="writable by every user"):
        AlertJournal(folder / "alerts.jsonl")
    assert not (folder / "alerts.jsonl").exists()
    folder.chmod(0o750)
    with AlertJournal(folder / "alerts.jsonl") as journal:
        assert journal.tail_seq == 0
