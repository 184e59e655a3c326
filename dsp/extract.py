"""Features of a whole recording: frame every channel, batch the windows, run the front ends.

The windows come from the same streaming :class:`~dfd.dsp.framer.WindowFramer` that live calls
use; the recording is pushed in one piece, which yields exactly the windows 20 ms packets would.
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


def frame_channel(samples: np.ndarray, geometry: WindowGeometry) -> list[Window]:
    framer = WindowFramer(geometry)
    windows = framer.push(samples)
    tail = framer.finish()
    return [*windows, tail] if tail is not None else windows


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
        windows = frame_channel(samples, geometry)
        outputs: dict[FrontendSpec, list[np.ndarray]] = {spec: [] for spec in specs}
        for first in range(0, len(windows), batch_size):
            batch = [window.samples for window in windows[first : first + batch_size]]
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
