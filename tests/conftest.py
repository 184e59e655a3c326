"""Shared fixtures: a seeded generator and real speech from the bundled call recording."""

from __future__ import annotations

import numpy as np
import pytest

from tests.signals import RATE, REPO, SAMPLE_CALL, tone

__all__ = ["RATE", "REPO", "SAMPLE_CALL", "tone"]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def speech_16k() -> np.ndarray:
    """Real speech: the agent channel of the bundled call, at 16 kHz."""
    from dfd.dsp.audio_io import load_audio

    return load_audio(SAMPLE_CALL).samples[0]
