"""Shared fixtures: a seeded generator and real speech from the bundled call recording."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.signals import RATE, REPO, SAMPLE_CALL, tone

__all__ = ["RATE", "REPO", "SAMPLE_CALL", "tone"]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `dfd corpus build --preset small`, built once for the whole test session."""
    from dfd.trainers.corpus.builder import build_corpus

    out = tmp_path_factory.mktemp("corpus") / "small"
    build_corpus(out, "small", seed=0, jobs=2)
    return out


@pytest.fixture(scope="session")
def speech_16k() -> np.ndarray:
    """Real speech: the agent channel of the bundled call, at 16 kHz."""
    from dfd.dsp.audio_io import load_audio

    return load_audio(SAMPLE_CALL).samples[0]
