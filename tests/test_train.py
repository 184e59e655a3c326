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


def test_dfd_train_then_dfd_eval_through_the_command_line(
    small_corpus: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    from dfd.detectors.bundle import load_bundle

    dfd = str(Path(sys.executable).with_name("dfd"))
    experiment = tmp_path / "exp.toml"
    experiment.write_text('family = "mfcc-cnn"\nepochs = 1\nbatch_size = 8\nsteps_per_epoch = 3\n')
    protocols = small_corpus / "protocols"
    trained = subprocess.run(
        [dfd, "--log-level", "warning", "train", "--config", str(experiment),
         "--data", str(protocols / "train.txt"), "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    bundle = load_bundle(tmp_path / "run" / "bundle")  # hashes and ONNX contract verified
    card = bundle.card
    assert card.family == "mfcc-cnn"
    assert card.window.samples == 32_000
    assert card.training.data_manifest_sha256 is not None
    assert card.metrics.dev is not None and 0.0 <= card.metrics.dev["eer"] <= 1.0
    assert card.calibration.calibrated == (card.calibration.slope != 1.0)

    evaluated = subprocess.run(
        [dfd, "--log-level", "warning", "eval", "--model", str(tmp_path / "run" / "bundle"),
         "--data", str(protocols / "eval.mulaw.txt"), "--out", str(tmp_path / "eval")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    lines = (tmp_path / "eval" / "scores.txt").read_text().splitlines()
    protocol = (protocols / "eval.mulaw.txt").read_text().splitlines()
    assert [line.split()[:3] for line in lines] == [
        [row.split()[1], row.split()[3], row.split()[4]] for row in protocol
    ]
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert 0.0 <= report["eer"] <= 1.0
    assert set(report["groups"]["attack"]) >= {"lpc", "piper-joe", "festival-slt-hts"}
    for plot in ("roc.png", "det.png", "score_histograms.png", "threshold_sweep.png"):
        assert (tmp_path / "eval" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
