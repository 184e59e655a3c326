"""Copy synthesis through the committed neural vocoders, with the corpus's ``Vocoder`` contract.

Each takes float32 mono audio at any rate of at least 8 kHz, resamples it to 16 kHz when needed,
re-synthesises it from its log mel (and, for ``nsf``, its WORLD F0) and returns float32 audio of the
same length and rate, peak-limited to 1. ``hifigan`` and ``vocos`` are deterministic and ignore the
seed; ``nsf`` draws its source noise and sine phases from ``seed``. Weights load once per process,
on CPU. Run worker processes with ``torch.set_num_threads(1)``, as for ``vocoders.py``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch

from dfd.dsp.audio_io import resample
from dfd.trainers.corpus.neural_vocoders.frontend import (
    HOP,
    SAMPLE_RATE,
    LogMel,
    f0_at_frames,
    world_f0,
)
from dfd.trainers.corpus.neural_vocoders.models import get_architecture
from dfd.trainers.corpus.vocoders import _finished, _validated

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@functools.cache
def load_model(arch: str, weights_dir: Path = WEIGHTS_DIR) -> torch.nn.Module:
    """The model ``arch`` with the weights in ``weights_dir``, built from the config saved beside
    them, in eval mode; cached, so each process reads the files once."""
    architecture = get_architecture(arch)
    report = json.loads((weights_dir / f"{arch}.json").read_text(encoding="utf-8"))
    model = architecture.build(architecture.config(report["config"]["model"]))
    state = torch.load(weights_dir / f"{arch}.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    loaded: torch.nn.Module = model
    return loaded


@functools.cache
def _log_mel() -> LogMel:
    return LogMel()


def resynthesize(
    model: torch.nn.Module,
    uses_f0: bool,
    samples: np.ndarray,
    sample_rate: int,
    seed: int,
    name: str,
) -> np.ndarray:
    """``samples`` re-synthesised by ``model``: the body of every neural ``Vocoder``."""
    audio = _validated(samples, sample_rate)
    wideband = resample(audio.astype(np.float32), sample_rate, SAMPLE_RATE).astype(np.float32)
    length = wideband.shape[0]
    frames = -(-length // HOP)
    padded = np.pad(wideband, (0, frames * HOP - length))
    f0 = None
    if uses_f0:
        f0 = torch.from_numpy(f0_at_frames(world_f0(padded), 0, frames)).unsqueeze(0)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        log_mel = _log_mel()(torch.from_numpy(padded).unsqueeze(0))
        synthesized = model(log_mel, f0, generator)[0, :length].numpy()
    restored = resample(synthesized, SAMPLE_RATE, sample_rate)
    finished: np.ndarray = _finished(restored.astype(np.float64), audio.shape[0], name)
    return finished


def _committed(arch: str, samples: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
    model = load_model(arch)
    return resynthesize(model, get_architecture(arch).uses_f0, samples, sample_rate, seed, arch)


def hifigan_resynthesis(samples: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
    """The committed HiFi-GAN-style generator (deterministic: ``seed`` is unused)."""
    return _committed("hifigan", samples, sample_rate, seed)


def vocos_resynthesis(samples: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
    """The committed Vocos-style iSTFT vocoder (deterministic: ``seed`` is unused)."""
    return _committed("vocos", samples, sample_rate, seed)


def nsf_resynthesis(samples: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
    """The committed neural source-filter vocoder; its noise and sine phases come from ``seed``."""
    return _committed("nsf", samples, sample_rate, seed)
