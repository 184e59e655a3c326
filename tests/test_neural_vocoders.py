"""The in-house neural vocoders: model shapes and sizes, the committed weights on a real held-out
Asterisk prompt, and a few steps of the real training entry point with a resume."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dfd.dsp.audio_io import load_audio
from dfd.trainers.corpus.neural_vocoders import NEURAL_VOCODERS, train
from dfd.trainers.corpus.neural_vocoders.frontend import HOP, MEL_BANDS, SAMPLE_RATE
from dfd.trainers.corpus.neural_vocoders.models import ARCHITECTURES, get_architecture
from dfd.trainers.corpus.neural_vocoders.sanity import log_mel_distance, shaped_noise
from dfd.trainers.corpus.vocoders import MIN_DURATION_S

NAMES = sorted(ARCHITECTURES)
MAX_PARAMETERS = 1_000_000
MAX_WEIGHT_BYTES = 3_000_000
HELD_OUT_PROMPT = Path("/usr/share/asterisk/sounds/it_IT_m_Carlo/agent-pass.g722")
PACKAGE = Path(__file__).resolve().parents[1] / "trainers/corpus/neural_vocoders"
TRAINING_FILES = PACKAGE / "training_files.txt"


@pytest.fixture(scope="module")
def prompt() -> np.ndarray:
    samples: np.ndarray = load_audio(HELD_OUT_PROMPT, SAMPLE_RATE).samples[0]
    return samples


@pytest.mark.parametrize("name", NAMES)
def test_forward_shape_and_size(name: str) -> None:
    architecture = get_architecture(name)
    torch.manual_seed(0)
    model = architecture.build(architecture.config())
    log_mel = torch.randn(2, MEL_BANDS, 12) - 4.0
    f0 = torch.tensor([[0.0] * 4 + [120.0] * 8, [210.0] * 12])
    with torch.no_grad():
        out = model(log_mel, f0, torch.Generator().manual_seed(0))
    assert out.shape == (2, 12 * HOP)
    assert torch.isfinite(out).all()
    assert sum(p.numel() for p in model.parameters()) <= MAX_PARAMETERS
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    assert buffer.tell() <= MAX_WEIGHT_BYTES


def test_configs_are_validated() -> None:
    with pytest.raises(ValueError, match="multiply to 256"):
        get_architecture("hifigan").config({"upsample_rates": (8, 8, 2)})
    with pytest.raises(ValueError, match="unknown vocos config keys"):
        get_architecture("vocos").config({"chanels": 64})
    with pytest.raises(ValueError, match="odd"):
        get_architecture("nsf").config({"kernel": 4})
    with pytest.raises(ValueError, match="unknown architecture"):
        get_architecture("wavenet")


@pytest.mark.parametrize("name", NAMES)
def test_committed_weights_resynthesise_speech(name: str, prompt: np.ndarray) -> None:
    vocoder = NEURAL_VOCODERS[name]
    first = vocoder(prompt, SAMPLE_RATE, 7)
    again = vocoder(prompt, SAMPLE_RATE, 7)
    assert first.dtype == np.float32 and first.shape == prompt.shape
    assert np.array_equal(first, again)
    assert np.max(np.abs(first)) <= 1.0
    # noise with the prompt's energy envelope scores about 0.8 decades; Griffin-Lim about 0.1
    noise_distance = log_mel_distance(prompt, shaped_noise(prompt))
    assert log_mel_distance(prompt, first) < 0.4 * noise_distance
    report = json.loads((PACKAGE / "weights" / f"{name}.json").read_text())
    assert report["training_files_sha256"] == train.file_list_sha256(TRAINING_FILES)


def test_nsf_noise_follows_the_seed(prompt: np.ndarray) -> None:
    assert not np.array_equal(
        NEURAL_VOCODERS["nsf"](prompt, SAMPLE_RATE, 0),
        NEURAL_VOCODERS["nsf"](prompt, SAMPLE_RATE, 1),
    )


@pytest.mark.parametrize("name", NAMES)
def test_other_rates_and_short_input(name: str, prompt: np.ndarray) -> None:
    vocoder = NEURAL_VOCODERS[name]
    narrowband = prompt[::2].copy()  # 8 kHz (aliased a little, which does not matter here)
    out = vocoder(narrowband, 8000, 0)
    assert out.shape == narrowband.shape and out.dtype == np.float32
    too_short = np.zeros(int(MIN_DURATION_S * SAMPLE_RATE) - 1, dtype=np.float32)
    with pytest.raises(ValueError, match="at least"):
        vocoder(too_short, SAMPLE_RATE, 0)


def test_training_steps_checkpoint_and_resume(tmp_path: Path) -> None:
    files = tmp_path / "files.txt"
    files.write_text("\n".join(TRAINING_FILES.read_text().splitlines()[:2]) + "\n")
    out, weights = tmp_path / "run", tmp_path / "weights"
    common = ["--arch", "vocos", "--files", str(files), "--out", str(out)]
    common += ["--weights-dir", str(weights), "--held-out", "0"]

    torch.manual_seed(train.DEFAULT_CONFIGS["vocos"].seed)
    architecture = get_architecture("vocos")
    initial = architecture.build(architecture.config()).state_dict()

    report = train.main([*common, "--steps", "3"])
    assert report["steps"] == 3
    trained = torch.load(weights / "vocos.pt", weights_only=True)
    assert set(trained) == set(initial)
    assert any(not torch.equal(trained[key], initial[key]) for key in initial)
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 3

    resumed = train.main([*common, "--steps", "5", "--resume"])
    assert resumed["steps"] == 5
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 5
    assert json.loads((weights / "vocos.json").read_text())["steps"] == 5
