"""``dfd serve`` end to end: the installed command in a real process, fed by real senders (ffmpeg
over RTP, a ZeroMQ PUSH socket, paplay into a private PulseAudio server), heard by a plain pyzmq
subscriber that knows nothing of dfd, and driven by real signals.

The call is ``samples/call-bonafide-then-synthetic-8k-ulaw.wav`` cut to 12 s: 6 s of a human
voice, then 6 s of Piper neural TTS. Sent at real-time pace, the daemon must raise one alert for
it, only once synthetic audio has been sent, and close the call with the verdict ``synthetic``.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import soundfile
import zmq

from dfd.daemon.engine.models import default_bundle_path
from dfd.dsp.audio_io import load_audio
from tests.pulse import SINK, private_pulse_server, pulse_tool
from tests.signals import REPO

DFD = str(Path(sys.executable).with_name("dfd"))
SCHEMA = json.loads((REPO / "docs" / "alerts.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

SAMPLE = REPO / "samples" / "call-bonafide-then-synthetic-8k-ulaw.wav"
SAMPLE_BOUNDARY_S = 8.9  # human before, Piper TTS after
CUT_S = (4.9, 16.9)
BOUNDARY_S = SAMPLE_BOUNDARY_S - CUT_S[0]  # 4.0 s into the cut
CALL_S = CUT_S[1] - CUT_S[0]
# The evidence rule raises at 6 nats, and no window counts for more than 3 nats nor, after the
# first, for more than a quarter of it (0.5 s of new audio in 2 s): the alert needs about 4 s of
# synthetic speech scored at the cap. `dfd replay` of the cut raises on the window ending 10.0 s,
# 6.0 s past the boundary. Allow two hops more.
ALERT_LATEST_END_S = BOUNDARY_S + 7.0
# Senders start a moment after the time the test notes; this covers a scheduler hiccup the
# other way round (a real-time sender is never early by more than one packet or frame).
SEND_SLACK_S = 0.3

STARTUP_TIMEOUT_S = 60.0  # model load and detector workers on a busy 2-core machine
EVENT_TIMEOUT_S = 20.0


# --- the call ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def call_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 12 s cut of the sample call, still 8 kHz G.711 mu-law: decoded and encoded again, every
    sample keeps its value (only mu-law's negative zero becomes positive zero)."""
    audio, rate = soundfile.read(SAMPLE, dtype="float32")
    cut = audio[round(CUT_S[0] * rate) : round(CUT_S[1] * rate)]
    path = tmp_path_factory.mktemp("call") / "call.wav"
    soundfile.write(path, cut, rate, subtype="ULAW")
    assert soundfile.info(path).duration == pytest.approx(CALL_S)
    return path


# --- a daemon and a subscriber -------------------------------------------------------------


class Received:
    """One message as the subscriber got it."""

    def __init__(self, at: float, topic: str, payload: bytes) -> None:
        self.at = at  # time.monotonic() on arrival
        self.topic = topic
        self.payload = payload
        self.event: dict[str, Any] = json.loads(payload)


class Subscriber:
    """A plain pyzmq SUB socket on its own thread: only zmq and json, as a consumer writes it."""

    TOPICS = (b"alert", b"call.", b"status")  # every topic but score (off by default)

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.messages: list[Received] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-subscriber", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        context = zmq.Context()
        socket = context.socket(zmq.SUB)
        try:
            for topic in self.TOPICS:
                socket.setsockopt(zmq.SUBSCRIBE, topic)
            socket.connect(self.endpoint)
            while not self._stop.is_set():
                if not socket.poll(20):
                    continue
                frames = socket.recv_multipart()
                if len(frames) != 2:
                    self.errors.append(f"{len(frames)} frames: {frames!r}")
                    continue
                message = Received(time.monotonic(), frames[0].decode(), frames[1])
                with self._lock:
                    self.messages.append(message)
        except Exception as error:  # noqa: BLE001 - reported by the test, not lost on a thread
            self.errors.append(repr(error))
        finally:
            socket.close(linger=0)
            context.term()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def received(self, topic: str | None = None, call_id: str | None = None) -> list[Received]:
        with self._lock:
            messages = list(self.messages)
        return [
            m
            for m in messages
            if (topic is None or m.topic == topic)
            and (call_id is None or m.event["call_id"] == call_id)
        ]


class Served:
    """``dfd serve`` in a subprocess: its JSON log lines (with the monotonic time each arrived)
    and, once it serves, a subscriber on its event bus."""

    def __init__(self, config: Path, pub: str, args: list[str], env: dict[str, str] | None) -> None:
        self.state_directory = config.parent / "state"
        self.args = ["serve", "--pub", pub, *args]
        self.process = subprocess.Popen(
            [DFD, "--config", str(config), *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.lines: list[tuple[float, str]] = []
        self.stdout = ""
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self._subscriber: Subscriber | None = None
        self.sigterm_at: float | None = None

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._lock:
                self.lines.append((time.monotonic(), line.rstrip("\n")))

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        self.stdout = self.process.stdout.read()

    # -- logs -------------------------------------------------------------------------------

    @property
    def stderr(self) -> str:
        with self._lock:
            return "\n".join(line for _, line in self.lines)

    def logs(self, event: str) -> list[tuple[float, dict[str, Any]]]:
        """The log records whose ``event`` is ``event``, with their arrival times."""
        with self._lock:
            lines = list(self.lines)
        records = []
        for at, line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get("event") == event:
                records.append((at, record))
        return records

    def wait_for_log(self, event: str, timeout: float = EVENT_TIMEOUT_S, count: int = 1) -> Any:
        """The ``count``-th log record ``event`` (arrival time, record), once it has come."""
        self.wait_until(lambda: len(self.logs(event)) >= count, timeout, f"log line {event!r}")
        return self.logs(event)[count - 1]

    # -- events -----------------------------------------------------------------------------

    @property
    def subscriber(self) -> Subscriber:
        assert self._subscriber is not None, "start_serving() connects the subscriber"
        return self._subscriber

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        exited_at: float | None = None
        while not condition():
            now = time.monotonic()
            if exited_at is None and self.process.poll() is not None:
                exited_at = now  # what it sent or logged last may still be on its way
            if exited_at is not None and now > exited_at + 1.0:
                pytest.fail(f"dfd serve exited ({self.process.returncode}) before {what}")
            if now > deadline:
                pytest.fail(f"no {what} within {timeout} s")
            time.sleep(0.02)

    def wait_for_event(
        self, topic: str, call_id: str | None = None, timeout: float = EVENT_TIMEOUT_S
    ) -> Received:
        subscriber = self.subscriber
        what = f"{topic} event" + (f" for {call_id}" if call_id else "")
        self.wait_until(lambda: bool(subscriber.received(topic, call_id)), timeout, what)
        return subscriber.received(topic, call_id)[0]

    def start_serving(self) -> None:
        """Wait for the "serving" line, connect the subscriber, and wait for a status event:
        from then on the subscription has reached the daemon and nothing is missed."""
        _, serving = self.wait_for_log("serving", STARTUP_TIMEOUT_S)
        self._subscriber = Subscriber(serving["pub"].replace("0.0.0.0", "127.0.0.1"))
        self.wait_for_event("status")

    # -- ending -----------------------------------------------------------------------------

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit status (the daemon must finish its calls and exit)."""
        self.sigterm_at = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"dfd serve did not exit within {timeout} s of SIGTERM")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for reader in self._readers:
            reader.join(5)
        if self._subscriber is not None:
            self._subscriber.close()

    def check_events(self) -> list[dict[str, Any]]:
        """Every event received is valid against docs/alerts.schema.json, its topic frame is
        its topic field, and seqs are consecutive (nothing lost; score events are off)."""
        assert self.subscriber.errors == []
        events = [m.event for m in self.subscriber.received()]
        for message in self.subscriber.received():
            errors = [e.message for e in VALIDATOR.iter_errors(message.event)]
            assert errors == [], f"{message.topic} event {message.event} breaks the schema"
            assert message.event["topic"] == message.topic
        seqs = [event["seq"] for event in events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"seqs {seqs}"
        return events

    def journal(self) -> list[bytes]:
        path = self.state_directory / "alerts.jsonl"
        return path.read_bytes().splitlines() if path.exists() else []


def write_config(folder: Path, extra: str = "") -> Path:
    (folder / "state").mkdir()
    config = folder / "dfd.toml"
    config.write_text(
        f"""
[logging]
level = "info"
format = "json"

[models]
workers = 1

[serve]
state_directory = "{folder / "state"}"
status_interval_s = 0.5
{extra}
""",
        encoding="utf-8",
    )
    return config


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start ``dfd serve ARGS`` (one per test); always killed at the end, its log printed (pytest
    shows it when the test fails)."""
    started: list[Served] = []

    def start(
        *args: str,
        pub: str = "tcp://127.0.0.1:*",
        env: dict[str, str] | None = None,
        config_extra: str = "",
    ) -> Served:
        folder = tmp_path / f"daemon{len(started)}"
        folder.mkdir()
        daemon = Served(write_config(folder, config_extra), pub, list(args), env)
        started.append(daemon)
        daemon.start_serving()
        return daemon

    yield start
    for daemon in started:
        daemon.kill()
        print(f"--- dfd {' '.join(daemon.args)}: exit status {daemon.process.returncode}")
        print(daemon.stderr)
        if daemon.stdout:
            print(f"--- its standard output:\n{daemon.stdout}")


def check_synthetic_call(
    daemon: Served, call_id: str, sent_at: float, duration_s: float
) -> tuple[Received, Received]:
    """The events of one call that went human -> synthetic at BOUNDARY_S: started, one alert
    raised in the synthetic part and not before it was sent, ended with the verdict synthetic.
    Returns the alert and the end."""
    daemon.wait_for_event("call.ended", call_id)
    messages = daemon.subscriber.received(call_id=call_id)
    assert [m.topic for m in messages] == ["call.started", "alert.raised", "call.ended"]
    started, alert, ended = messages

    assert started.at >= sent_at
    raised = alert.event
    assert raised["channel"] == 0
    assert BOUNDARY_S < raised["end"] <= ALERT_LATEST_END_S
    assert raised["end"] - raised["start"] == pytest.approx(2.0)
    assert raised["score"] >= raised["threshold"]
    assert raised["rule"] == "evidence"
    assert raised["evidence"] == raised["raise_at"] == 6.0  # capped at the operating point
    assert raised["speech_s"] == pytest.approx(raised["end"])  # all speech, from 0 s
    # Not before the synthetic audio, nor the window that tripped it, was sent.
    assert alert.at > sent_at + BOUNDARY_S
    assert alert.at > sent_at + raised["end"] - SEND_SLACK_S

    end = ended.event
    assert end["verdict"] == "synthetic"
    assert end["alerts"] == 1
    assert end["duration"] == pytest.approx(duration_s, abs=0.03)
    assert end["end"] == end["duration"]
    assert end["score"] == end["max_score"] >= raised["score"]
    hops = int((end["duration"] - 2.0) / 0.5) + 1  # whole windows in the call, all speech
    assert end["speech_windows"] >= hops
    assert end["windows"] >= end["speech_windows"]
    assert raised["model"] == end["model"] == started.event["model"]
    assert raised["threshold"] == end["threshold"] == started.event["threshold"]

    # Journaled before it was sent: the line in the journal is the frame the subscriber got.
    assert daemon.journal() == [alert.payload]
    return alert, ended


# --- RTP -----------------------------------------------------------------------------------


def ffmpeg() -> str:
    executable = shutil.which("ffmpeg")
    assert executable, "the ffmpeg binary is a test dependency (apt-get install ffmpeg)"
    return executable


def free_udp_port_pair() -> int:
    """An even UDP port that is free on 127.0.0.1 together with the port after it."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1] & ~1
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp_socket:
                rtp_socket.bind(("127.0.0.1", port))
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtcp_socket:
                    rtcp_socket.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise AssertionError("no free UDP port pair")


def test_rtp_call_from_ffmpeg_raises_one_alert_in_its_synthetic_part(
    serve: Callable[..., Served], call_wav: Path
) -> None:
    # L16 at 16 kHz, which ffmpeg announces as dynamic payload type 97, mapped in the settings;
    # RTCP to the RTP port + 1 (ffmpeg's default), so the BYE it sends at the end ends the call.
    port = free_udp_port_pair()
    daemon = serve("--rtp", f"127.0.0.1:{port}", config_extra='rtp_payloads = ["97=L16/16000"]')
    _, listening = daemon.wait_for_log("rtp_listening")
    host = listening["address"][0]
    assert listening["address"][1] == port and listening["rtcp_address"][1] == port + 1
    url = f"rtp://{host}:{port}?pkt_size=652"  # 20 ms of 16-bit samples at 16 kHz
    command = [ffmpeg(), "-nostdin", "-v", "error", "-re", "-i", str(call_wav), "-ac", "1"]
    command += ["-c:a", "pcm_s16be", "-ar", "16000", "-rtpflags", "send_bye", "-f", "rtp", url]
    sent_at = time.monotonic()
    sender = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, errors = sender.communicate(timeout=CALL_S + 30)
    finally:
        sender.kill()
        sender.wait()
    assert sender.returncode == 0, errors
    finished_at = time.monotonic()

    started = daemon.wait_for_event("call.started")
    call_id = started.event["call_id"]
    assert re.fullmatch(rf"rtp-[0-9a-f]{{8}}@{re.escape(host)}:[0-9]+", call_id), call_id
    assert daemon.wait_for_log("rtp_stream_started")[1]["call_id"] == call_id
    assert started.event["source"] == "rtp"
    _, ended = check_synthetic_call(daemon, call_id, sent_at, CALL_S)
    assert ended.event["reason"] == "bye"
    assert ended.at >= finished_at - SEND_SLACK_S

    assert daemon.stop() == 0
    daemon.check_events()


# --- ZeroMQ PCM ingest ---------------------------------------------------------------------

PCM_RATE = 16_000  # PcmIngestSource's default, which `dfd serve --pcm` uses
FRAME = PCM_RATE // 50  # 20 ms


def push_call(endpoint: str, call_id: str, samples: np.ndarray) -> tuple[float, float]:
    """Push ``samples`` as 20 ms ``[call_id, channel, seq, pcm]`` messages at real-time pace, then
    the end message. Returns when the first message and the end message were sent."""
    pcm = (np.clip(samples, -1, 32767 / 32768) * 32768).astype("<i2")
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    try:
        push.connect(endpoint)
        frames = range(0, len(pcm), FRAME)
        started = time.monotonic()
        for seq, offset in enumerate(frames):
            delay = started + seq * FRAME / PCM_RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            message = [call_id.encode(), b"0", str(seq).encode(), pcm[offset : offset + FRAME]]
            push.send_multipart([bytes(part) for part in message])
        delay = started + len(pcm) / PCM_RATE - time.monotonic()
        time.sleep(max(delay, 0.0))
        ended = time.monotonic()
        push.send_multipart([call_id.encode(), b"0", str(len(frames)).encode(), b""])
    finally:
        push.close(linger=5000)  # the end message must leave before the socket goes
        context.term()
    return started, ended


def test_pcm_call_pushed_over_zeromq_raises_one_alert_in_its_synthetic_part(
    serve: Callable[..., Served], call_wav: Path
) -> None:
    daemon = serve("--pcm", "tcp://127.0.0.1:*")
    _, listening = daemon.wait_for_log("pcm_ingest_listening")
    assert listening["sample_rate"] == PCM_RATE
    samples = load_audio(call_wav, sample_rate=PCM_RATE).samples[0]

    sent_at, end_sent_at = push_call(listening["endpoint"], "pcm-call-1", samples)

    started = daemon.wait_for_event("call.started", "pcm-call-1")
    assert started.event["source"] == "pcm"
    _, ended = check_synthetic_call(daemon, "pcm-call-1", sent_at, CALL_S)
    assert ended.event["reason"] == "end-message"
    assert ended.at > end_sent_at

    assert daemon.stop() == 0
    daemon.check_events()


# --- a sound device (PulseAudio through PortAudio) -----------------------------------------


@pytest.fixture(scope="module")
def pulse_server() -> Iterator[dict[str, str]]:
    with private_pulse_server() as env:
        yield env


def test_device_call_alerts_and_sigterm_ends_it_before_exiting_zero(
    serve: Callable[..., Served], call_wav: Path, pulse_server: dict[str, str]
) -> None:
    paplay = pulse_tool("paplay")
    daemon = serve("--device", "pulse", env=pulse_server)
    capturing_at, capturing = daemon.wait_for_log("device_capturing")
    call_id = capturing["call_id"]
    assert call_id.startswith("device-pulse-")

    played_at = time.monotonic()
    subprocess.run(
        [paplay, f"--device={SINK}", str(call_wav)],
        env=pulse_server,
        check=True,
        capture_output=True,
        timeout=CALL_S + 30,
    )
    alert = daemon.wait_for_event("alert.raised", call_id)
    assert daemon.stop() == 0

    # The device's stream (silence before and after the call) only ends when the daemon stops,
    # and its call.ended goes out before the process exits.
    ended = daemon.wait_for_event("call.ended", call_id, timeout=5)
    assert daemon.logs("stopped")
    topics = [m.topic for m in daemon.subscriber.received(call_id=call_id)]
    if topics[:1] == ["call.started"]:  # else it went out before the subscription was in place
        topics.pop(0)
    assert topics == ["alert.raised", "call.ended"]
    raised = alert.event
    # The stream started when capture did; the call was played into it ``offset`` s later.
    offset = played_at - capturing_at
    assert offset + BOUNDARY_S < raised["end"] <= offset + ALERT_LATEST_END_S + 0.5
    assert alert.at > played_at + BOUNDARY_S
    assert raised["score"] >= raised["threshold"]
    end = ended.event
    assert (end["reason"], end["verdict"], end["alerts"]) == ("daemon-stopping", "synthetic", 1)
    assert daemon.sigterm_at is not None
    captured_s = daemon.sigterm_at - capturing_at  # the whole capture, silence included
    assert end["duration"] == pytest.approx(captured_s, abs=1.0), f"captured {captured_s:.2f} s"
    assert daemon.journal() == [alert.payload]
    daemon.check_events()


class ScoreSubscriber(Subscriber):
    TOPICS = (b"score",)


def test_a_live_call_is_scored_window_for_window_as_dfd_replay_scores_its_recording(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    """The one scoring path, live: 5.3 s pushed at 16 kHz (no resampling) and the same samples
    replayed from a file give the same windows and raw outputs, the end-aligned last one too."""
    audio = load_audio(SAMPLE, sample_rate=PCM_RATE).samples[0]
    start = round(6.0 * PCM_RATE)
    pcm = np.round(audio[start : start + round(5.3 * PCM_RATE)] * 32767).astype(np.int16)
    recording = tmp_path / "call.wav"
    soundfile.write(recording, pcm, PCM_RATE, subtype="PCM_16")
    daemon = serve("--pcm", "tcp://127.0.0.1:*", config_extra="publish_scores = true")
    _, listening = daemon.wait_for_log("pcm_ingest_listening")
    scores = ScoreSubscriber(daemon.subscriber.endpoint)
    time.sleep(1.0)  # the subscription reaches the daemon
    try:
        push_call(listening["endpoint"], "agreement", pcm.astype(np.float32) / 32768)
        daemon.wait_for_event("call.ended", "agreement")
        time.sleep(0.5)
        live = [m.event for m in scores.received("score", "agreement")]
    finally:
        scores.close()

    replayed = subprocess.run(
        [DFD, "--log-level", "warning", "replay", "--json", str(recording)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert replayed.returncode in (0, 1, 3), replayed.stderr
    windows = json.loads(replayed.stdout)["windows"]
    assert [(round(e["start"], 3), round(e["end"], 3)) for e in live] == [
        (w["start"], w["end"]) for w in windows
    ]
    assert windows[-1]["end"] == pytest.approx(5.3)  # the last window ends with the audio
    np.testing.assert_allclose([e["raw"] for e in live], [w["raw"] for w in windows], atol=1e-5)
    assert daemon.stop() == 0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")


def test_a_real_call_alerts_through_floods_of_ssrcs_and_call_ids(
    serve: Callable[..., Served],
) -> None:
    """5,000 one-packet RTP streams and 5,000 one-message PCM call ids beside one real RTP call:
    the call still alerts before it ends, the floods are refused past the stream limits, and the
    daemon's memory comes back to within 100 MB of where it started."""
    port = free_udp_port_pair()
    daemon = serve("--rtp", f"127.0.0.1:{port}", "--pcm", "tcp://127.0.0.1:*")
    _, listening = daemon.wait_for_log("pcm_ingest_listening")
    before = rss_mb(daemon.process.pid)
    url = f"rtp://127.0.0.1:{port}?pkt_size=172"  # PCMU, 20 ms a packet
    command = [ffmpeg(), "-nostdin", "-v", "error", "-re", "-i", str(SAMPLE), "-c:a", "pcm_mulaw"]
    command += ["-ar", "8000", "-ac", "1", "-rtpflags", "send_bye", "-f", "rtp", url]
    sent_at = time.monotonic()
    sender = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)
    packet = b"\xff" * 160
    for number in range(5000):  # each from its own port, as a flood of SSRCs would come
        header = struct.pack("!BBHII", 0x80, 0, 1, 0, 0x20000000 + number)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flooder:
            flooder.sendto(header + packet, ("127.0.0.1", port))
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.connect(listening["endpoint"])
    for number in range(5000):
        push.send_multipart([f"flood-{number}".encode(), b"0", b"0", bytes(640)])
    push.close(linger=5000)
    context.term()
    _, errors = sender.communicate(timeout=60)
    assert sender.returncode == 0, errors
    call_ended_at = time.monotonic()

    alerts = [
        m
        for m in daemon.subscriber.received("alert.raised")
        if not m.event["call_id"].startswith(("rtp-2000", "flood-"))
    ]
    assert len(alerts) == 1
    assert sent_at + SAMPLE_BOUNDARY_S < alerts[0].at < call_ended_at  # before the call ended
    started = daemon.subscriber.received("call.started")
    assert len(started) <= 2 * (50 + 25)  # the bursts, and what refilled while the floods ran
    time.sleep(7.0)  # idle timeout: every admitted flood stream has ended
    assert rss_mb(daemon.process.pid) - before < 100
    assert daemon.stop() == 0


# --- signals -------------------------------------------------------------------------------


def test_sighup_reloads_models_and_a_broken_bundle_keeps_the_old_ones_serving(
    serve: Callable[..., Served], call_wav: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), bundle)
    daemon = serve("--model", str(bundle), "--pcm", "tcp://127.0.0.1:*")
    _, listening = daemon.wait_for_log("pcm_ingest_listening")

    daemon.process.send_signal(signal.SIGHUP)
    reloaded_at, reloaded = daemon.wait_for_log("models reloaded")
    assert reloaded["models"] == {"name": "sinc-lcnn", "version": "2.1"}
    daemon.wait_until(
        lambda: any(m.at > reloaded_at for m in daemon.subscriber.received("status")),
        EVENT_TIMEOUT_S,
        "status event after the reload",
    )

    model = bundle / "model.onnx"
    corrupted = bytearray(model.read_bytes())
    middle = len(corrupted) // 2
    corrupted[middle : middle + 16] = bytes(b ^ 0xFF for b in corrupted[middle : middle + 16])
    model.write_bytes(bytes(corrupted))
    daemon.process.send_signal(signal.SIGHUP)
    failed_at, failed = daemon.wait_for_log("reload failed; the previous models keep serving")
    assert "model.onnx" in failed["error"]
    assert len(daemon.logs("models reloaded")) == 1
    assert daemon.process.poll() is None

    # The old models still score: the synthetic half of the call is caught.
    samples = load_audio(call_wav, sample_rate=PCM_RATE).samples[0]
    synthetic = samples[round(BOUNDARY_S * PCM_RATE) :]  # 8 s: enough evidence to alert
    sent_at, _ = push_call(listening["endpoint"], "after-bad-reload", synthetic)
    assert sent_at > failed_at
    ended = daemon.wait_for_event("call.ended", "after-bad-reload")
    end = ended.event
    assert (end["reason"], end["verdict"], end["alerts"]) == ("end-message", "synthetic", 1)
    assert end["speech_windows"] >= 13  # windows ending 2.0, 2.5, ... 8.0 s
    assert end["model"] == {"name": "sinc-lcnn", "version": "2.1"}

    assert daemon.stop() == 0
    assert daemon.logs("stopped")
    daemon.check_events()


def test_sighup_reads_the_decision_settings_again(
    serve: Callable[..., Served], call_wav: Path, tmp_path: Path
) -> None:
    """An operating point too high to reach, then the card's again after an edit and SIGHUP."""
    daemon = serve("--pcm", "tcp://127.0.0.1:*", config_extra="[decision]\nraise_at = 60.0\n")
    _, listening = daemon.wait_for_log("pcm_ingest_listening")
    samples = load_audio(call_wav, sample_rate=PCM_RATE).samples[0]
    synthetic = samples[round(BOUNDARY_S * PCM_RATE) :]

    push_call(listening["endpoint"], "before-reload", synthetic)
    before = daemon.wait_for_event("call.ended", "before-reload").event
    assert (before["verdict"], before["alerts"]) == ("bona fide", 0)

    config = tmp_path / "daemon0" / "dfd.toml"
    config.write_text(config.read_text().replace("raise_at = 60.0", "raise_at = 6.0"))
    daemon.process.send_signal(signal.SIGHUP)
    _, reloaded = daemon.wait_for_log("models reloaded")
    assert (reloaded["rule"], reloaded["raise_at"]) == ("evidence", 6.0)

    push_call(listening["endpoint"], "after-reload", synthetic)
    raised = daemon.wait_for_event("alert.raised", "after-reload").event
    assert (raised["rule"], raised["raise_at"]) == ("evidence", 6.0)
    assert daemon.stop() == 0
    daemon.check_events()


# --- localhost by default ------------------------------------------------------------------


@pytest.mark.parametrize("where", ["option", "config"])
def test_a_remote_endpoint_is_refused_unless_allowed(tmp_path: Path, where: str) -> None:
    remote = "tcp://0.0.0.0:5555"
    config = write_config(tmp_path, f'pub = "{remote}"' if where == "config" else "")
    command = [DFD, "--config", str(config), "serve"]
    if where == "option":
        command += ["--pub", remote]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert remote in errors[0]
    assert "not localhost" in errors[0]
    assert "serve.allow_remote_endpoints = true" in errors[0]
    if where == "option":  # nothing else than that line
        assert result.stderr.strip() == errors[0]
    assert not (tmp_path / "state" / "alerts.jsonl").exists()


def test_a_remote_endpoint_is_served_when_allowed(serve: Callable[..., Served]) -> None:
    daemon = serve(pub="tcp://0.0.0.0:*", config_extra="allow_remote_endpoints = true")
    _, serving = daemon.wait_for_log("serving")
    assert serving["pub"].startswith("tcp://0.0.0.0:")
    assert serving["journal"] == str(daemon.state_directory / "alerts.jsonl")
    _, warning = daemon.wait_for_log("no capture source")  # started without a source
    assert warning["level"] == "warning" and "--rtp" in warning["hint"]
    assert daemon.stop() == 0
    daemon.check_events()
