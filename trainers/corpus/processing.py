"""The processing every corpus file goes through, bona fide and spoofed alike.

If the two classes were processed differently, a detector could learn the processing instead of
the synthesis. So every file, whatever its origin, is mixed to mono, resampled to 16 kHz,
band-passed to the G.722 band (50-7000 Hz: most bona fide prompts were G.722-coded, and without
this the mere presence of energy above 7 kHz would betray a synthesizer), trimmed of leading and
trailing silence by one rule, and normalised to one active-speech level.

Some bona fide prompts were recorded at 8 kHz and hold nothing above 4 kHz, while every
synthesizer here produces wideband audio; "narrowband means human" would be a shortcut. So a seeded
share of all files, of both classes alike, also passes through the 8 kHz telephone band.
"""

from __future__ import annotations

import numpy as np

from dfd.dsp.audio_io import PIPELINE_SAMPLE_RATE, resample
from dfd.dsp.channel import band_limit

BAND_LOW_HZ = 50.0
BAND_HIGH_HZ = 7000.0
BRICKWALL_RATE = 2 * int(BAND_HIGH_HZ)
TELEPHONE_RATE = 8_000
TRIM_THRESHOLD_DB = -40.0  # frames this far below the loudest 20 ms frame count as silence
TRIM_MARGIN_S = 0.1
TARGET_SPEECH_LEVEL_DBFS = -26.0
PEAK_CEILING = 0.97
FRAME_S = 0.02


def to_mono(samples: np.ndarray) -> np.ndarray:
    """``(channels, frames)`` or ``(frames,)`` -> ``(frames,)``, channels averaged."""
    return samples if samples.ndim == 1 else samples.mean(axis=0).astype(np.float32)


def frame_levels_db(samples: np.ndarray, rate: int) -> np.ndarray:
    frame = round(FRAME_S * rate)
    count = len(samples) // frame
    frames = samples[: count * frame].astype(np.float64).reshape(count, frame)
    levels: np.ndarray = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    return levels


def speech_bounds(samples: np.ndarray, rate: int) -> tuple[int, int]:
    """First and one-past-last sample of the speech, with a margin; (0, 0) for silence."""
    levels = frame_levels_db(samples, rate)
    if len(levels) == 0 or levels.max() < -80:
        return 0, 0
    active = np.flatnonzero(levels > levels.max() + TRIM_THRESHOLD_DB)
    frame = round(FRAME_S * rate)
    margin = round(TRIM_MARGIN_S * rate)
    start = max(0, active[0] * frame - margin)
    stop = min(len(samples), (active[-1] + 1) * frame + margin)
    return start, stop


def trim_silence(samples: np.ndarray, rate: int) -> np.ndarray:
    start, stop = speech_bounds(samples, rate)
    return samples[start:stop]


def normalise_level(samples: np.ndarray, rate: int) -> np.ndarray:
    """Scale so the active frames (within 40 dB of the loudest) sit at -26 dBFS RMS, then lower
    the whole file if its peak would pass the ceiling."""
    levels = frame_levels_db(samples, rate)
    active = levels[levels > levels.max() + TRIM_THRESHOLD_DB]
    speech_level_db = 10 * np.log10(np.mean(10 ** (active / 10)))
    scaled = samples * 10 ** ((TARGET_SPEECH_LEVEL_DBFS - speech_level_db) / 20)
    peak = np.abs(scaled).max()
    if peak > PEAK_CEILING:
        scaled *= PEAK_CEILING / peak
    normalised: np.ndarray = scaled.astype(np.float32)
    return normalised


def finalise(samples: np.ndarray, rate: int, narrowband: bool = False) -> np.ndarray:
    """Any audio in (mono or ``(channels, frames)``, any rate) -> a corpus file's samples.

    ``narrowband`` first limits the audio to the 8 kHz telephone band (nothing above 4 kHz)."""
    mono = to_mono(np.asarray(samples, dtype=np.float32))
    if narrowband:
        mono, rate = resample(mono, rate, TELEPHONE_RATE), TELEPHONE_RATE
    # Through 14 kHz: the windowed-sinc resampler is a brick wall just below 7 kHz.
    narrowed = resample(resample(mono, rate, BRICKWALL_RATE), BRICKWALL_RATE, PIPELINE_SAMPLE_RATE)
    banded = band_limit(narrowed, PIPELINE_SAMPLE_RATE, BAND_LOW_HZ, BAND_HIGH_HZ)
    trimmed = trim_silence(banded, PIPELINE_SAMPLE_RATE)
    if len(trimmed) < round(0.1 * PIPELINE_SAMPLE_RATE):
        raise ValueError("less than 0.1 s of speech after trimming")
    return normalise_level(trimmed, PIPELINE_SAMPLE_RATE)
