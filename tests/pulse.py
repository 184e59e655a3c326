"""A private PulseAudio server for live-capture tests: a null sink whose monitor PortAudio records
through ALSA's ``pulse`` device, reached through the environment ``private_pulse_server`` yields.

Test modules wrap it in a fixture of their own (``with private_pulse_server() as env: yield
env``), so the server lives as long as that fixture's scope."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SINK = "dfdtest"
SILENCE = ["--format=s16le", "--rate=16000", "--channels=1"]
# What a process needs to reach the private server (and nothing else).
PULSE_VARIABLES = ("HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "PULSE_SERVER")


def pulse_tool(name: str) -> str:
    executable = shutil.which(name)
    if executable is None:
        pytest.skip(
            f"`{name}` is needed for the live-capture test (apt-get install pulseaudio "
            "pulseaudio-utils; scripts/install-system-packages.sh installs them)"
        )
    return executable


@contextlib.contextmanager
def private_pulse_server() -> Iterator[dict[str, str]]:
    """A private PulseAudio server (root or not, no D-Bus, no X) with a null sink as the
    default sink and its monitor as the default source. Yields the environment that reaches it."""
    pulseaudio, pactl, pacat = (pulse_tool(name) for name in ("pulseaudio", "pactl", "pacat"))
    home = Path(tempfile.mkdtemp(prefix="dfd-pulse-"))  # short: the socket path must fit 108 bytes
    runtime = home / "run"
    runtime.mkdir(mode=0o700)
    socket_path = runtime / "native"
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime),
        "XDG_CONFIG_HOME": str(home / "config"),
        "PULSE_SERVER": f"unix:{socket_path}",
    }
    env.pop("DISPLAY", None)
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    command = [
        pulseaudio,
        "--daemonize=no",
        "--exit-idle-time=-1",
        "--disallow-exit",
        "--use-pid-file=no",
        "--realtime=no",
        "--high-priority=no",
        "--disable-shm=yes",  # containers may have a small /dev/shm
        "--log-target=stderr",
        "-n",
        f"--load=module-native-protocol-unix auth-anonymous=1 socket={socket_path}",
        f"--load=module-null-sink sink_name={SINK} rate=48000",
    ]
    log = (home / "pulseaudio.log").open("wb")
    keeper: subprocess.Popen[bytes] | None = None
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while subprocess.run([pactl, "info"], env=env, capture_output=True).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"PulseAudio did not start:\n{(home / 'pulseaudio.log').read_text()}")
            time.sleep(0.1)
        for setting in (["set-default-sink", SINK], ["set-default-source", f"{SINK}.monitor"]):
            subprocess.run([pactl, *setting], env=env, check=True, capture_output=True)
        # An idle null sink renders 2 s blocks, which reach its monitor (and PortAudio) in bursts.
        # A low-latency stream of silence keeps it rendering in 10 ms steps, as a sound card
        # would, and at 16 kHz it keeps the sink in the 48 kHz family (at 44.1 kHz the round
        # trip through PulseAudio's resamplers smears the test signal).
        with open("/dev/zero", "rb") as zeros:
            keeper = subprocess.Popen(
                [pacat, "--playback", "--latency-msec=10", f"--device={SINK}", "--raw", *SILENCE],
                env=env,
                stdin=zeros,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        yield env
    finally:
        if keeper is not None:
            keeper.terminate()
            keeper.wait(10)
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(home, ignore_errors=True)
