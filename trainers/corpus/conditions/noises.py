"""Background noise tracks: real recorded noises from packages, babble of training talkers, and
stationary coloured noise; mixed at an exact signal-to-noise ratio.

Recorded noises (all resampled to 16 kHz once per process):

- ``keyboard``: typing built from Debian ``bucklespring-data``'s key press and release clicks
  (a buckling-spring IBM Model M, one recording per key), at 3-9 keys a second;
- ``human``: coughs, laughs and sneezes, ``crowd``: a party, ``household``: doors, footsteps,
  running water, a sewing machine and typing, ``traffic``: a car and a motorcycle passing, all
  from the media library of Debian ``scratch`` (CC-BY-SA-3.0);
- ``babble``: 3-6 utterances of training talkers summed (the caller passes bona fide training
  audio, so no evaluation talker is ever heard in the background);
- ``white``, ``pink``, ``brown``: Gaussian noise with a 1/f^0, 1/f^1, 1/f^2 power spectrum.

A file longer than the window gives a random excerpt of itself; a shorter one is placed 1-3
times at random positions, as events.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dfd.dsp.audio_io import PIPELINE_SAMPLE_RATE, load_audio

BUCKLESPRING_FOLDER = Path("/usr/share/buckle/wav")
BUCKLESPRING_FILE_COUNT = 171  # bucklespring-data 1.4.0: NN-0.wav press, NN-1.wav release
SCRATCH_SOUNDS = "/usr/share/scratch/Media/Sounds/"

# Every recorded noise file used, per kind, sorted (keyboard clicks: BUCKLESPRING_FOLDER).
NOISE_FILES: dict[str, tuple[str, ...]] = {
    "crowd": (SCRATCH_SOUNDS + "Human/PartyNoise.wav",),
    "household": tuple(
        SCRATCH_SOUNDS + name
        for name in (
            "Effects/DoorClose.mp3",
            "Effects/DoorCreak.wav",
            "Effects/SewingMachine.mp3",
            "Effects/Typing.mp3",
            "Effects/WaterRunning.mp3",
            "Human/Footsteps-1.wav",
            "Human/Footsteps-2.mp3",
        )
    ),
    "human": tuple(
        SCRATCH_SOUNDS + "Human/" + name
        for name in (
            "Cough-female.wav",
            "Cough-male.wav",
            "Laugh-female.wav",
            "Laugh-male1.wav",
            "Laugh-male2.wav",
            "Laugh-male3.mp3",
            "Sneeze-female.wav",
            "Sneeze-male.wav",
        )
    ),
    "traffic": (
        SCRATCH_SOUNDS + "Effects/CarPassing.wav",
        SCRATCH_SOUNDS + "Effects/MotorcyclePassing.wav",
    ),
}
NOISE_PACKAGES: dict[str, str] = {
    "keyboard": "debian:bucklespring-data",
    "crowd": "debian:scratch",
    "household": "debian:scratch",
    "human": "debian:scratch",
    "traffic": "debian:scratch",
}
COLOUR_FLOOR_HZ = 50.0
COLOUR_EXPONENTS: dict[str, float] = {"white": 0.0, "pink": 1.0, "brown": 2.0}
BABBLE = "babble"
KEYBOARD = "keyboard"
NOISE_KINDS: tuple[str, ...] = (
    BABBLE,
    *sorted(COLOUR_EXPONENTS),
    *sorted([*NOISE_FILES, KEYBOARD]),
)
BABBLE_TALKERS = (3, 6)
KEYS_PER_SECOND = (3.0, 9.0)
KEY_HOLD_S = (0.06, 0.16)
EVENTS = (1, 3)
SILENT_SIGNAL_LEVEL_DBFS = -26.0  # the corpus speech level: SNR reference for a silent window


def keyboard_files() -> tuple[Path, ...]:
    files = tuple(sorted(BUCKLESPRING_FOLDER.glob("*.wav")))
    if len(files) != BUCKLESPRING_FILE_COUNT:
        raise FileNotFoundError(
            f"{BUCKLESPRING_FOLDER}: {len(files)} key clicks, expected "
            f"{BUCKLESPRING_FILE_COUNT}: install Debian bucklespring-data"
        )
    return files


@functools.cache
def load_noise(path: str) -> np.ndarray:
    """Mono 16 kHz samples of a noise file, read once per process."""
    recording = load_audio(path, PIPELINE_SAMPLE_RATE)
    samples: np.ndarray = recording.samples.mean(axis=0).astype(np.float32)
    samples.setflags(write=False)
    return samples


def noise_track(
    kind: str,
    length: int,
    rng: np.random.Generator,
    babble_utterances: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """``length`` samples of noise of ``kind`` (one of ``NOISE_KINDS``), at an arbitrary level."""
    if kind in COLOUR_EXPONENTS:
        return coloured_noise(length, COLOUR_EXPONENTS[kind], rng)
    if kind == BABBLE:
        return babble(babble_utterances, length, rng)
    if kind == KEYBOARD:
        return typing_noise(length, rng)
    if kind in NOISE_FILES:
        files = NOISE_FILES[kind]
        return _recorded_track([load_noise(f) for f in files], length, rng)
    raise ValueError(f"unknown noise kind {kind!r}; known: {', '.join(NOISE_KINDS)}")


def coloured_noise(length: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power falls as 1/f^``exponent`` down to 50 Hz and is flat below (so
    sub-audible rumble does not take up the SNR), without DC."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.fft.rfftfreq(length)
    shaping = np.maximum(frequencies, COLOUR_FLOOR_HZ / PIPELINE_SAMPLE_RATE) ** (-exponent / 2)
    shaping[0] = 0.0
    noise: np.ndarray = np.fft.irfft(spectrum * shaping, length).astype(np.float32)
    return noise


def babble(utterances: Sequence[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """3-6 random cuts of distinct ``utterances`` (tiled when short), each at unit RMS, summed."""
    usable = [u for u in utterances if len(u) and np.any(u)]
    if not usable:
        raise ValueError("babble noise needs bona fide training utterances (babble_utterances)")
    talkers = min(len(usable), int(rng.integers(BABBLE_TALKERS[0], BABBLE_TALKERS[1] + 1)))
    mix = np.zeros(length)
    for index in rng.choice(len(usable), size=talkers, replace=False):
        voice = np.asarray(usable[int(index)], dtype=np.float64)
        if len(voice) < length:
            voice = np.tile(voice, -(-length // len(voice)) + 1)
        start = int(rng.integers(0, len(voice) - length + 1))
        cut = voice[start : start + length]
        mix += cut / max(float(np.sqrt(np.mean(cut**2))), 1e-9)
    return mix.astype(np.float32)


def typing_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """Someone typing: random keys pressed and released, each press a Poisson arrival."""
    keys = key_clicks()
    rate = rng.uniform(*KEYS_PER_SECOND) / PIPELINE_SAMPLE_RATE
    track = np.zeros(length)
    position = rng.exponential(1 / rate) - PIPELINE_SAMPLE_RATE * 0.1
    while position < length:
        press, release = keys[int(rng.integers(len(keys)))]
        hold = round(rng.uniform(*KEY_HOLD_S) * PIPELINE_SAMPLE_RATE)
        gain = 10 ** (rng.uniform(-3.0, 3.0) / 20)
        _place(track, press * gain, round(position))
        if release is not None:
            _place(track, release * gain, round(position) + hold)
        position += rng.exponential(1 / rate)
    return track.astype(np.float32)


@functools.lru_cache(maxsize=1)
def key_clicks() -> tuple[tuple[np.ndarray, np.ndarray | None], ...]:
    """(press, release) of every key, read once per process; a few keys have no release."""
    files = {path.stem: path for path in keyboard_files()}
    return tuple(
        (
            load_noise(str(path)),
            load_noise(str(files[stem[:-2] + "-1"])) if stem[:-2] + "-1" in files else None,
        )
        for stem, path in sorted(files.items())
        if stem.endswith("-0")
    )


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal + noise`` with the noise scaled so that the power ratio is exactly ``snr_db``.

    A silent signal takes its reference from the corpus speech level instead, so a pause still
    carries the background a speaker would have had."""
    noise_power = float(np.mean(np.square(noise, dtype=np.float64)))
    if noise_power == 0.0:
        return np.array(signal, dtype=np.float32, copy=True)
    signal_power = float(np.mean(np.square(signal, dtype=np.float64)))
    if signal_power == 0.0:
        signal_power = 10 ** (SILENT_SIGNAL_LEVEL_DBFS / 10)
    scale = np.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    mixed: np.ndarray = (signal + noise.astype(np.float64) * scale).astype(np.float32)
    return mixed


def _recorded_track(
    recordings: Sequence[np.ndarray], length: int, rng: np.random.Generator
) -> np.ndarray:
    track = np.zeros(length)
    events = int(rng.integers(EVENTS[0], EVENTS[1] + 1))
    for _ in range(events):
        sound = recordings[int(rng.integers(len(recordings)))]
        if len(sound) >= length:  # a bed: one excerpt covers the window
            start = int(rng.integers(0, len(sound) - length + 1))
            return np.asarray(sound[start : start + length], dtype=np.float32)
        _place(track, sound, int(rng.integers(-len(sound) // 2, length)))
    return track.astype(np.float32)


def _place(track: np.ndarray, sound: np.ndarray, start: int) -> None:
    """Add ``sound`` into ``track`` from ``start`` (may be negative), cut at both ends."""
    begin, end = max(start, 0), min(start + len(sound), len(track))
    if begin < end:
        track[begin:end] += sound[begin - start : end - start]
