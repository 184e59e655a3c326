"""The speech gate: silence, DC, line noise and call-progress tones are not speech; real speech
is. Levels are set from their definition (RMS relative to full scale, per 20 ms frame)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dfd.core.typed_config import ConfigError
from dfd.daemon.engine.speech import SpeechFrames, SpeechGate
from dfd.daemon.settings import load_settings
from dfd.dsp.audio_io import load_audio, resample
from dfd.dsp.g711 import linear_to_ulaw, ulaw_to_linear
from tests.signals import RATE, REPO

WINDOW = 2 * RATE
FRAME = 320  # 20 ms at 16 kHz
DEMO_CALL = REPO / "samples" / "call-bonafide-then-synthetic-8k-ulaw.wav"


def noise_at(dbfs: float, samples: int, rng: np.random.Generator) -> np.ndarray:
    """White noise whose RMS is ``dbfs`` relative to full scale."""
    noise = rng.standard_normal(samples)
    noise *= 10 ** (dbfs / 20) / np.sqrt(np.mean(noise**2))
    return noise.astype(np.float32)


def tones(frequencies: list[float], dbfs: float = -12.0, seconds: float = 2.0) -> np.ndarray:
    """Equal-level sines summed, the sum at ``dbfs`` RMS, random phases."""
    rng = np.random.default_rng(len(frequencies))
    t = np.arange(round(seconds * RATE)) / RATE
    signal = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in frequencies)
    signal = np.asarray(signal, dtype=np.float64)
    return (signal * 10 ** (dbfs / 20) / np.sqrt(np.mean(signal**2))).astype(np.float32)


def over_the_phone(signal: np.ndarray) -> np.ndarray:
    """What a 16 kHz signal looks like after an 8 kHz G.711 mu-law leg, back at 16 kHz."""
    narrow = np.clip(np.round(resample(signal, RATE, 8_000) * 32768), -32768, 32767)
    decoded = ulaw_to_linear(linear_to_ulaw(narrow.astype(np.int16))) / 32768
    return resample(decoded.astype(np.float32), 8_000, RATE)


@pytest.fixture(scope="module")
def demo_call() -> np.ndarray:
    return load_audio(DEMO_CALL).samples[0]


GATE = SpeechGate()


def test_digital_silence_is_not_speech() -> None:
    silence = np.zeros(WINDOW, dtype=np.float32)
    assert GATE.active_fraction(silence) == 0.0
    assert not GATE.is_speech(silence)


def test_a_dc_offset_alone_is_not_speech(rng: np.random.Generator) -> None:
    dc = np.full(WINDOW, 0.4, dtype=np.float32)
    assert GATE.active_fraction(dc) == 0.0
    # nor a DC offset under quiet line noise: the offset is not counted as level
    assert not GATE.is_speech(dc + noise_at(-60.0, WINDOW, rng))


def test_noise_below_the_level_is_not_speech_and_above_it_is_active(
    rng: np.random.Generator,
) -> None:
    assert GATE.active_fraction(noise_at(-48.0, WINDOW, rng)) == 0.0
    assert GATE.active_fraction(noise_at(-55.0, WINDOW, rng)) == 0.0
    assert GATE.active_fraction(noise_at(-42.0, WINDOW, rng)) == 1.0  # not a tone: active
    louder = SpeechGate(active_level_dbfs=-30.0)
    assert louder.active_fraction(noise_at(-33.0, WINDOW, rng)) == 0.0
    assert louder.active_fraction(noise_at(-27.0, WINDOW, rng)) == 1.0


def test_active_fraction_counts_frames_and_min_active_fraction_decides(
    rng: np.random.Generator,
) -> None:
    frames = np.zeros((WINDOW // FRAME, FRAME), dtype=np.float32)
    loud = rng.choice(len(frames), size=30, replace=False)  # 30 of the 100 frames
    frames[loud] = noise_at(-20.0, 30 * FRAME, rng).reshape(30, FRAME)
    window = frames.reshape(-1)

    assert GATE.active_fraction(window) == pytest.approx(0.30)
    assert SpeechGate(min_active_fraction=0.3).is_speech(window)
    assert not SpeechGate(min_active_fraction=0.31).is_speech(window)
    # 40 ms frames: pairs of 20 ms frames, active when either half is loud enough
    pairs = frames.reshape(-1, 2, FRAME).any(axis=(1, 2))
    expected = np.mean(pairs)
    assert SpeechGate(frame_s=0.04).active_fraction(window) == pytest.approx(expected)


def test_the_fraction_is_measured_at_the_rate_given(rng: np.random.Generator) -> None:
    # 8 kHz: a 20 ms frame is 160 samples; 25 of 100 such frames loud
    frames = np.zeros((100, 160), dtype=np.float32)
    frames[:25] = noise_at(-20.0, 25 * 160, rng).reshape(25, 160)
    assert GATE.active_fraction(frames.reshape(-1), sample_rate=8_000) == pytest.approx(0.25)


def test_a_window_shorter_than_one_frame_is_not_speech(rng: np.random.Generator) -> None:
    assert GATE.active_fraction(noise_at(-10.0, FRAME - 1, rng)) == 0.0


TONES = {
    "European dial tone": [425.0],
    "1 kHz test tone": [1_000.0],
    "US dial tone": [350.0, 440.0],
    "US ringback": [440.0, 480.0],
    "US busy tone": [480.0, 620.0],
    "UK dial tone": [350.0, 450.0],
    "DTMF digit 1": [697.0, 1_209.0],
}


@pytest.mark.parametrize("name", TONES)
def test_call_progress_tones_are_not_speech(name: str) -> None:
    clean = tones(TONES[name])
    assert GATE.active_fraction(clean) == 0.0, name
    assert not GATE.is_speech(over_the_phone(clean)), name
    quiet_line = clean + noise_at(-50.0, len(clean), np.random.default_rng(0))
    assert not GATE.is_speech(quiet_line), name


def test_a_cadenced_tone_is_not_speech() -> None:
    """Ringback: 2 s on, 4 s off; a window sees part of a burst and silence."""
    window = tones([440.0, 480.0])
    window[RATE // 2 :] = 0.0
    assert not GATE.is_speech(window)


def test_speech_from_the_sample_call_is_speech(speech_16k: np.ndarray) -> None:
    # The agent talks from 0 to about 5 s of channel 0 (tests/test_audio_io.py reads the same)
    for start in (0, RATE // 2, RATE, 2 * RATE, 3 * RATE):
        window = speech_16k[start : start + WINDOW]
        assert GATE.is_speech(window), start
        assert GATE.active_fraction(window) > 0.5


def test_speech_of_both_voices_of_the_demo_call_is_speech(demo_call: np.ndarray) -> None:
    """The demo call talks throughout: the human part (before 8.9 s) and the neural TTS part."""
    starts = range(0, len(demo_call) - WINDOW + 1, RATE // 2)
    assert all(GATE.is_speech(demo_call[s : s + WINDOW]) for s in starts)


def test_a_tone_under_speech_does_not_hide_the_speech(speech_16k: np.ndarray) -> None:
    """Half a window of speech, half of dial tone: the speech frames keep it speech."""
    window = np.concatenate([speech_16k[:RATE], tones([350.0, 440.0], seconds=1.0)])
    assert GATE.is_speech(window)


def test_speech_below_the_level_is_not_speech(speech_16k: np.ndarray) -> None:
    window = speech_16k[:WINDOW]
    peak_rms_db = 10 * np.log10(np.max(np.mean(window.reshape(-1, FRAME) ** 2, axis=1)))
    quiet = window * 10 ** ((-46.0 - peak_rms_db) / 20)  # its loudest frame at -46 dBFS
    assert GATE.active_fraction(quiet) == 0.0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"min_active_fraction": 0.0}, "min_active_fraction"),
        ({"min_active_fraction": 1.5}, "min_active_fraction"),
        ({"min_active_fraction": -0.1}, "min_active_fraction"),
        ({"frame_s": 0.0}, "frame_s"),
        ({"frame_s": -0.02}, "frame_s"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SpeechGate(**settings)


def test_bad_settings_in_a_config_file_are_refused_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "dfd.toml"
    config.write_text("[speech]\nmin_active_fraction = 0\n")
    with pytest.raises(ConfigError, match="min_active_fraction"):
        load_settings(config)
    config.write_text("[speech]\nloudness = 3\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_settings(config)
    config.write_text("[speech]\nactive_level_dbfs = -40\nmin_active_fraction = 0.5\n")
    assert load_settings(config).speech == SpeechGate(-40.0, 0.5)


@pytest.mark.parametrize("hop", [8_000, 16_000, 4_000, 5_000])
def test_a_streams_frame_memory_gives_each_window_the_gates_own_verdict(
    demo_call: np.ndarray, hop: int, rng: np.random.Generator
) -> None:
    """``SpeechFrames`` measures each frame once per stream; every window's verdict must still be
    the one the gate gives that window alone: over speech, a dial tone, silence and speech too
    quiet to count, at hops on frame boundaries (8000, 16000, 4000) and off them (5000), and
    for a window after a gap."""
    stream = np.concatenate(
        [
            noise_at(-70.0, 3 * RATE, rng),
            demo_call[: 8 * RATE],
            tones([350.0, 440.0], seconds=5.0),
            demo_call[8 * RATE :] * 10 ** (-40 / 20),
            demo_call[: 6 * RATE],
        ]
    )
    gate = SpeechGate()
    memory = SpeechFrames(gate, RATE)
    starts = [*range(0, len(stream) - WINDOW, hop), len(stream) - WINDOW]
    middle = len(starts) // 2
    del starts[middle : middle + 7]  # a gap of more than one window
    fractions = [memory.active_fraction(stream[s : s + WINDOW], s) for s in starts]
    expected = [gate.active_fraction(stream[s : s + WINDOW]) for s in starts]
    assert fractions == expected
    speech = [f >= gate.min_active_fraction for f in expected]
    assert 0 < sum(speech) < len(speech)  # both verdicts occur
    assert 0.0 in expected  # the tone
    assert [memory.is_speech(stream[s : s + WINDOW], s) for s in starts] == speech
