"""`dfd train` on the real small corpus: every family trains, checkpoints and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dfd.core.typed_config import ConfigError
from dfd.detectors.registry import FAMILIES
from dfd.trainers.config import TrainConfig, load_train_config
from dfd.trainers.train import BEST, CHECKPOINT, HISTORY, RESOLVED_CONFIG, train

QUICK = {"epochs": 1, "batch_size": 4, "steps_per_epoch": 2, "dev_max_trials": 12}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.mark.parametrize("name", sorted(set(FAMILIES) - {"aasist"}))
def test_every_family_trains_a_few_steps(name: str, small_corpus: Path, tmp_path: Path) -> None:
    config = TrainConfig(family=name, **QUICK)
    protocols = small_corpus / "protocols"
    run = train(config, protocols / "train.txt", protocols / "dev.txt", tmp_path / name)
    assert len(run.history) == 1
    assert np.isfinite(run.history[0].train_loss)
    assert 0.0 <= run.history[0].dev_eer <= 1.0
    assert run.dev_raw.shape == (12,) and np.all(np.isfinite(run.dev_raw))
    for name_ in (CHECKPOINT, BEST, HISTORY, RESOLVED_CONFIG):
        assert (tmp_path / name / name_).is_file()
    saved = json.loads((tmp_path / name / RESOLVED_CONFIG).read_text())
    assert saved["family"] == name and saved["steps_per_epoch"] == 2


class SimulatedCrashError(Exception):
    pass


def test_a_resumed_run_matches_an_uninterrupted_one(small_corpus: Path, tmp_path: Path) -> None:
    protocols = small_corpus / "protocols"
    config = TrainConfig(family="mfcc-cnn", **{**QUICK, "epochs": 2})
    straight = train(config, protocols / "train.txt", protocols / "dev.txt", tmp_path / "a")

    def stop_in_epoch_two(done: int, total: int) -> None:
        if done > QUICK["steps_per_epoch"]:
            raise SimulatedCrashError

    with pytest.raises(SimulatedCrashError):  # killed during epoch 2, after epoch 1's checkpoint
        train(config, protocols / "train.txt", protocols / "dev.txt", tmp_path / "b",
              progress=stop_in_epoch_two)  # fmt: skip
    assert torch.load(tmp_path / "b" / CHECKPOINT, weights_only=True)["epoch"] == 1
    resumed = train(
        config, protocols / "train.txt", protocols / "dev.txt", tmp_path / "b", resume=True
    )
    assert [h.epoch for h in resumed.history] == [1, 2]
    assert resumed.history[1].train_loss == pytest.approx(straight.history[1].train_loss, rel=1e-5)
    np.testing.assert_allclose(resumed.dev_raw, straight.dev_raw, rtol=1e-4, atol=1e-5)


def test_an_existing_run_is_not_overwritten_and_resume_needs_the_same_config(
    small_corpus: Path, tmp_path: Path
) -> None:
    protocols = small_corpus / "protocols"
    config = TrainConfig(family="mfcc-cnn", **QUICK)
    train(config, protocols / "train.txt", protocols / "dev.txt", tmp_path)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(config, protocols / "train.txt", protocols / "dev.txt", tmp_path)
    changed = TrainConfig(family="mfcc-cnn", **{**QUICK, "learning_rate": 0.5})
    with pytest.raises(ConfigError, match="configuration the run started with"):
        train(changed, protocols / "train.txt", protocols / "dev.txt", tmp_path, resume=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('family = "mfcc-cnn"\nepochs = 0\n', "epochs must be positive"),
        ('family = "mfcc-cnn"\nbatch_sizes = 3\n', "unknown key"),
        ('family = "mfcc-cnn"\n[augment]\nnoise_probability = 2.0\n', "noise_probability"),
        ("epochs = 3\n", "needs a family"),
    ],
)
def test_bad_training_configs_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_train_config(path)
