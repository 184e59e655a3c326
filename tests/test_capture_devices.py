"""Sound card capture through a real PortAudio device: a private PulseAudio server with a null
sink, whose monitor PortAudio records through ALSA's ``pulse`` device while ``paplay`` plays a
sweep into the sink."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sounddevice
import soundfile

from dfd.daemon.engine.events import AudioChunk, StreamEnded
from dfd.daemon.service.capture.devices import DeviceSource, list_input_devices
from tests.capture_sink import CollectingSink
from tests.pulse import PULSE_VARIABLES, SINK, private_pulse_server, pulse_tool
from tests.signals import RATE


@pytest.fixture(scope="module")
def pulse_server() -> Iterator[dict[str, str]]:
    with private_pulse_server() as env:
        yield env


@pytest.fixture
def portaudio_with_pulse(
    pulse_server: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """PortAudio re-initialised inside the server's environment: it lists devices once, when
    it starts, and ALSA's ``pulse`` device finds the server through PULSE_SERVER."""
    for name in PULSE_VARIABLES:
        monkeypatch.setenv(name, pulse_server[name])
    sounddevice._terminate()
    sounddevice._initialize()
    yield
    monkeypatch.undo()
    sounddevice._terminate()
    sounddevice._initialize()


class Collector(CollectingSink):
    def audio(self, channel: int) -> np.ndarray:
        with self.lock:
            chunks = [
                e.samples for e in self.events if isinstance(e, AudioChunk) and e.channel == channel
            ]
        return np.concatenate(chunks)


@pytest.mark.usefixtures("portaudio_with_pulse")
def test_pulse_device_is_listed() -> None:
    names = [device.name for device in list_input_devices()]
    assert "pulse" in names, f"PortAudio input devices: {names}"


def chirp(seconds: float, amplitude: float) -> np.ndarray:
    """A sweep from 200 Hz to 3 kHz with 20 ms fades: it correlates with itself at one lag only."""
    t = np.arange(round(seconds * RATE)) / RATE
    phase = 2 * np.pi * (200 * t + (3000 - 200) / (2 * seconds) * t**2)
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.02)
    return (amplitude * fade * np.sin(phase)).astype(np.float32)


def normalised_cross_correlation(recorded: np.ndarray, played: np.ndarray) -> np.ndarray:
    """For each lag, the cosine between ``played`` and the stretch of ``recorded`` at that lag."""
    n = len(recorded) + len(played)
    spectrum = np.fft.rfft(recorded, n) * np.conj(np.fft.rfft(played, n))
    dot = np.fft.irfft(spectrum, n)[: len(recorded) - len(played) + 1]
    energy = np.convolve(recorded.astype(np.float64) ** 2, np.ones(len(played)), "valid")
    return dot / np.sqrt(np.maximum(energy, 1e-12) * np.sum(played.astype(np.float64) ** 2))


def delayed(signal: np.ndarray, delay: float) -> np.ndarray:
    """``signal`` delayed by a fraction of a sample (its ends are faded, so wrapping is silent)."""
    n = len(signal) + 64
    shift = np.exp(-2j * np.pi * np.fft.rfftfreq(n) * delay)
    return np.fft.irfft(np.fft.rfft(signal, n) * shift, n)[: len(signal)]


@pytest.mark.usefixtures("portaudio_with_pulse")
def test_device_source_records_what_is_played(pulse_server: dict[str, str], tmp_path: Path) -> None:
    played = chirp(1.0, amplitude=0.5)
    soundfile.write(tmp_path / "chirp.wav", played, RATE, subtype="FLOAT")
    paplay = pulse_tool("paplay")

    source = DeviceSource("pulse", channels=2, sample_rate=RATE, block_s=0.02)
    collector = Collector()
    source.start(collector)
    try:
        # PortAudio may take a moment to deliver the first block: play once audio flows.
        deadline = time.monotonic() + 10
        while source.counters.chunks < 2 * 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        subprocess.run(
            [paplay, f"--device={SINK}", str(tmp_path / "chirp.wav")],
            env=pulse_server,
            check=True,
            capture_output=True,
            timeout=30,
        )
        time.sleep(0.5)
    finally:
        source.stop()

    assert source.call_id.startswith("device-pulse-")
    events = collector.events
    assert [(e.call_id, e.channel, e.reason) for e in events if isinstance(e, StreamEnded)] == [
        (source.call_id, 0, "source-stopped"),
        (source.call_id, 1, "source-stopped"),
    ]
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    assert {(c.call_id, c.sample_rate) for c in chunks} == {(source.call_id, RATE)}
    assert {len(c.samples) for c in chunks} == {RATE // 50}
    for channel in (0, 1):  # paplay's mono file reaches both channels of the sink
        recorded = collector.audio(channel)
        assert len(recorded) > len(played), f"only {len(recorded) / RATE:.2f} s recorded"
        lag = int(np.argmax(normalised_cross_correlation(recorded, played)))
        match = recorded[lag : lag + len(played)].astype(np.float64)
        # PulseAudio resamples 16 -> 48 -> 16 kHz, which can delay by a third of a sample.
        candidates = [delayed(played, fraction) for fraction in np.linspace(-1, 1, 41)]
        reference = max(candidates, key=lambda c: np.dot(match, c) / np.linalg.norm(c))
        similarity = np.dot(match, reference) / (np.linalg.norm(match) * np.linalg.norm(reference))
        assert similarity > 0.999, f"best match {similarity:.4f} at {lag / RATE:.3f} s"
        gain = np.dot(match, reference) / np.dot(reference, reference)
        assert gain == pytest.approx(1.0, abs=0.01)  # PulseAudio at 100 % volume
        outside = np.concatenate(
            [recorded[: max(lag - 160, 0)], recorded[lag + len(played) + 160 :]]
        )
        assert np.max(np.abs(outside), initial=0.0) < 0.01  # silence around it
    assert source.counters.streams_started == source.counters.streams_ended == 2


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="channels"):
        DeviceSource(channels=0)
