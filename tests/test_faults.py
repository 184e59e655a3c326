"""Faults in a running ``dfd serve``: a detector worker process killed in the middle of calls.

The installed command runs in a real process with two detector workers; three calls are pushed
to its ZeroMQ PCM ingest at real-time pace (the 12 s cut of the demo call that ``test_serve``
uses: human for 6 s, then Piper TTS); a plain pyzmq subscriber hears every event, scores
included. One worker is stopped and then killed while it holds a batch: the daemon must go on,
restart the worker, send the batch to the other worker, and alert on every call.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile

from dfd.dsp.audio_io import load_audio
from tests.test_serve import (
    BOUNDARY_S,
    CUT_S,
    SAMPLE,
    VALIDATOR,
    Served,
    Subscriber,
    push_call,
    write_config,
)

PCM_RATE = 16_000
CALLS = [f"fault-call-{n}" for n in range(3)]
STAGGER_S = 0.2  # the calls start a little apart, so their windows do not all come at once
KILL_AT_S = 3.0  # into the calls: well before the synthetic part, so the alerts come after it
HELD_S = 1.0  # the stopped worker is killed this long after: it has taken a batch by then


class EverySubscriber(Subscriber):
    """Every topic, ``score`` included (so the seqs it sees must be consecutive)."""

    TOPICS = (b"",)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Served]:
    environment = {
        **os.environ,
        "DFD_MODELS__WORKERS": "2",
        "DFD_SERVE__PUBLISH_SCORES": "true",
        "DFD_SERVE__METRICS": "127.0.0.1:0",
    }
    served = Served(
        write_config(tmp_path), "tcp://127.0.0.1:*", ["--pcm", "tcp://127.0.0.1:*"], environment
    )
    try:
        served.start_serving()
        yield served
    finally:
        served.kill()
        print(f"--- dfd {' '.join(served.args)}: exit status {served.process.returncode}")
        print(served.stderr)


def parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


def loads_torch(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def carries_audio(value: object) -> bool:
    """A run of more than 16 numbers, or text as long as 20 ms of 16 kHz PCM in base64."""
    if isinstance(value, dict):
        return any(carries_audio(v) for v in value.values())
    if isinstance(value, list | tuple):
        numbers = sum(isinstance(v, int | float) for v in value)
        return numbers > 16 or any(carries_audio(v) for v in value)
    return isinstance(value, str | bytes) and len(value) > 853


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    found = re.search(rf"^{name} (\S+)$", text, flags=re.MULTILINE)
    assert found, f"{name} not in the metrics"
    return float(found.group(1))


def test_a_worker_killed_mid_call_is_restarted_and_every_call_still_alerts(
    daemon: Served, tmp_path: Path
) -> None:
    audio, rate = soundfile.read(SAMPLE, dtype="float32")
    cut = tmp_path / "call.wav"
    soundfile.write(cut, audio[round(CUT_S[0] * rate) : round(CUT_S[1] * rate)], rate)
    samples = load_audio(cut, sample_rate=PCM_RATE).samples[0]

    _, serving = daemon.wait_for_log("serving")
    events = EverySubscriber(serving["pub"])
    try:
        daemon.wait_until(lambda: bool(events.received("status")), 10, "a status event")
        _, ready = daemon.wait_for_log("detector workers ready")
        stopped, other = ready["pids"]
        assert parent_pid(stopped) == parent_pid(other) == daemon.process.pid
        # Workers run ONNX graphs only: torch (which the daemon loads for its front ends)
        # would cost every worker start, restarts included, seconds and hundreds of MB.
        assert loads_torch(daemon.process.pid)
        assert not loads_torch(stopped) and not loads_torch(other)
        _, listening = daemon.wait_for_log("pcm_ingest_listening")
        _, metrics = daemon.wait_for_log("metrics_listening")

        senders = []
        for n, call_id in enumerate(CALLS):
            sender = threading.Thread(
                target=push_call, args=(listening["endpoint"], call_id, samples), daemon=True
            )
            senders.append(sender)
            sender.start()
            time.sleep(STAGGER_S if n < len(CALLS) - 1 else 0.0)
        time.sleep(KILL_AT_S - STAGGER_S * (len(CALLS) - 1))
        # Stopped first, so that it takes a batch and holds it (the pool hands a batch to the
        # first free worker; scoring one takes milliseconds, so a plain kill finds it idle).
        os.kill(stopped, signal.SIGSTOP)
        time.sleep(HELD_S)
        os.kill(stopped, signal.SIGKILL)
        killed_at = time.monotonic()
        restarted_at, restarted = daemon.wait_for_log("detector worker restarted")
        for sender in senders:
            sender.join(30)
        for call_id in CALLS:
            daemon.wait_until(
                lambda call_id=call_id: bool(events.received("call.ended", call_id)),
                20,
                f"call.ended for {call_id}",
            )

        assert daemon.process.poll() is None
        (failed,) = [record for _, record in daemon.logs("detector worker failed; restarting")]
        assert (failed["pid"], failed["why"], failed["exitcode"]) == (stopped, "died", -9)
        assert failed["batch"] is not None and failed["attempt"] == 1  # it held one: sent again
        assert restarted["pid"] not in (stopped, other)
        assert parent_pid(restarted["pid"]) == daemon.process.pid
        print(f"worker back {restarted_at - killed_at:.1f} s after the kill")
        url = metrics["url"]
        assert metric(url, "dfd_detector_worker_restarts_total") == 1
        assert metric(url, "dfd_windows_lost_total") == 0  # the held batch was scored again

        for call_id in CALLS:
            topics = [m.topic for m in events.received(call_id=call_id) if m.topic != "score"]
            assert topics == ["call.started", "alert.raised", "call.ended"], call_id
            (raised,) = [m.event for m in events.received("alert.raised", call_id)]
            assert raised["end"] > BOUNDARY_S
            ended = events.received("call.ended", call_id)[0].event
            assert (ended["verdict"], ended["alerts"]) == ("synthetic", 1)
            scores = [m.event for m in events.received("score", call_id)]
            assert len(scores) == ended["windows"]
            unscored = [s for s in scores if s["speech"] and s["score"] is None]
            assert len(unscored) <= 1, f"{call_id}: speech windows lost or shed {unscored}"

        assert daemon.stop() == 0
        assert events.errors == []
        every = [m.event for m in events.received()]
        for event in every:
            assert [e.message for e in VALIDATOR.iter_errors(event)] == [], event
        seqs = [event["seq"] for event in every if event["seq"] is not None]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))

        # Alerts and logs carry no audio: no event and no log line holds a run of samples.
        assert carries_audio({"window": {"pcm": [0.0] * 320}})  # what the check would catch
        assert carries_audio({"pcm": "UklGRg" * 200})
        assert every and not [event for event in every if carries_audio(event)]
        logged = [json.loads(line) for _, line in daemon.lines if line.startswith("{")]
        assert len(logged) > 10
        assert not [record for record in logged if carries_audio(record)]
    finally:
        events.close()
