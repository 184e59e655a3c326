"""Training audio: the bona fide training prompts, decoded once, and random segments of them.

Only the files the list names are read: the list is the corpus's bona fide training split, and
the held-out evaluation speakers must never reach a vocoder's weights.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dfd.dsp.audio_io import load_audio
from dfd.trainers.corpus.neural_vocoders.frontend import HOP, SAMPLE_RATE, f0_at_frames, world_f0


def read_file_list(path: Path) -> list[Path]:
    """The audio paths listed in ``path``, one a line (blank lines and ``#`` comments skipped)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    files = [Path(line.strip()) for line in lines if line.strip() and not line.startswith("#")]
    if not files:
        raise ValueError(f"{path} lists no audio files")
    return files


def file_list_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Utterance:
    samples: np.ndarray  # float32 at SAMPLE_RATE
    f0: np.ndarray  # WORLD F0 every 5 ms


@dataclass(frozen=True)
class Batch:
    waveform: torch.Tensor  # (batch, frames * HOP)
    f0: torch.Tensor  # (batch, frames), Hz at the mel frame centres


def load_utterances(files: list[Path], segment_samples: int) -> list[Utterance]:
    """Decode every file at 16 kHz and track its F0; files shorter than one segment are padded
    with silence to one segment, so every file can be drawn from."""
    utterances = []
    for path in files:
        samples = load_audio(path, SAMPLE_RATE).samples[0].astype(np.float32)
        if samples.shape[0] < segment_samples:
            samples = np.pad(samples, (0, segment_samples - samples.shape[0]))
        utterances.append(Utterance(samples, world_f0(samples)))
    return utterances


def random_batch(
    utterances: list[Utterance], batch_size: int, frames: int, rng: np.random.Generator
) -> Batch:
    """``batch_size`` segments of ``frames * HOP`` samples, files and offsets drawn from ``rng``."""
    length = frames * HOP
    waveforms = np.empty((batch_size, length), dtype=np.float32)
    f0 = np.empty((batch_size, frames), dtype=np.float32)
    for row in range(batch_size):
        utterance = utterances[int(rng.integers(len(utterances)))]
        start = int(rng.integers(utterance.samples.shape[0] - length + 1))
        waveforms[row] = utterance.samples[start : start + length]
        f0[row] = f0_at_frames(utterance.f0, start, frames)
    return Batch(torch.from_numpy(waveforms), torch.from_numpy(f0))
