"""Features of a whole recording: frame every channel, batch the windows, run the front ends.

The windows are those every scoring path cuts (``scoring_windows``: the tail policy) and each
loses its mean first (``remove_mean``), as in the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dfd.dsp.audio_io import Recording
from dfd.dsp.batcher import FrontendBank
from dfd.dsp.framer import Window, WindowFramer, WindowGeometry
from dfd.dsp.frontends import FrontendSpec


@dataclass
class ChannelFeatures:
    channel: int
    window_starts: np.ndarray  # sample index of each window's first sample
    valid_samples: np.ndarray
    features: dict[FrontendSpec, np.ndarray] = field(default_factory=dict)


def repeat_to_window(samples: np.ndarray, geometry: WindowGeometry) -> np.ndarray:
    """An utterance shorter than one window, repeated to fill it (as AASIST's evaluation pads);
    longer ones are returned as they are."""
    if len(samples) >= geometry.window_samples:
        return samples
    repeats = -(-geometry.window_samples // len(samples))
    return np.tile(samples, repeats)[: geometry.window_samples]


def scoring_windows(samples: np.ndarray, geometry: WindowGeometry) -> list[Window]:
    """The windows every scoring path cuts from a recording: the tail policy, written once.

    A window every hop from the first sample. If audio is left after the last of them, one more
    window ends on the last sample (it overlaps the window before: every window is real audio,
    never zero padding). A recording shorter than one window is repeated to fill one. A live
    call (``CallStream``) gets the same windows from the same audio, packet by packet, except
    that a call not at 16 kHz has each window's last few milliseconds resampled as if its last
    sample held on (``CallStream.push``); the agreement is tested (tests/test_scoring_path.py)."""
    length, size = len(samples), geometry.window_samples
    if length == 0:
        return []
    if length < size:
        return [Window(start=0, samples=repeat_to_window(samples, geometry), valid_samples=length)]
    framer = WindowFramer(geometry)
    windows = framer.push(samples)
    if framer.finish() is not None:  # audio after the last full window: end-aligned tail
        windows.append(Window(start=length - size, samples=samples[-size:], valid_samples=size))
    return windows


def remove_mean(windows: np.ndarray) -> np.ndarray:
    """Each window (a row) less its own mean: the DSP stage's pre-processing on every path.
    Telephone audio carries no DC, the corpus the models learnt from has none, and an offset added
    to a call (+0.5 full scale took the demo call's synthetic half below the threshold) must not
    move a score."""
    means = windows.mean(axis=-1, keepdims=True, dtype=np.float64).astype(windows.dtype)
    return np.asarray(windows - means)


def extract_features(
    recording: Recording,
    specs: list[FrontendSpec],
    geometry: WindowGeometry,
    bank: FrontendBank,
    batch_size: int = 64,
) -> list[ChannelFeatures]:
    if recording.sample_rate != geometry.sample_rate:
        raise ValueError(
            f"recording is at {recording.sample_rate} Hz "
            f"but the windows expect {geometry.sample_rate} Hz"
        )
    results = []
    for channel, samples in enumerate(recording.samples):
        windows = scoring_windows(samples, geometry)
        outputs: dict[FrontendSpec, list[np.ndarray]] = {spec: [] for spec in specs}
        for first in range(0, len(windows), batch_size):
            batch = remove_mean(np.stack([w.samples for w in windows[first : first + batch_size]]))
            for spec, features in bank.compute(batch, specs).items():
                outputs[spec].append(features.cpu().numpy())
        results.append(
            ChannelFeatures(
                channel=channel,
                window_starts=np.array([w.start for w in windows], dtype=np.int64),
                valid_samples=np.array([w.valid_samples for w in windows], dtype=np.int64),
                features={spec: np.concatenate(parts) for spec, parts in outputs.items() if parts},
            )
        )
    return results
