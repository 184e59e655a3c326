"""Generated test signals, importable from any test module (``from tests.signals import tone``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SAMPLE_CALL = REPO / "samples" / "call-8k-ulaw-stereo.wav"
RATE = 16_000


def tone(
    frequency_hz: float, seconds: float, rate: int = RATE, amplitude: float = 0.5
) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)
