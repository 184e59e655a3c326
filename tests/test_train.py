"""`dfd train` on the real small corpus: every family trains, checkpoints and resumes."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import structlog
import torch
from click.testing import CliRunner

from dfd.core.typed_config import ConfigError
from dfd.daemon.cli import main
from dfd.detectors.bundle import load_bundle
from dfd.detectors.registry import FAMILIES, family
from dfd.trainers import train as train_module
from dfd.trainers.bundling import bundle_run
from dfd.trainers.config import AugmentConfig, TrainConfig, load_train_config
from dfd.trainers.datasets import Trial, read_dataset
from dfd.trainers.siamese_sweep import balanced_pairs, sweep
from dfd.trainers.split import stratified_split
from dfd.trainers.train import (
    BEST,
    CHECKPOINT,
    HISTORY,
    RESOLVED_CONFIG,
    SIAMESE_SWEEP,
    SPLIT,
    epoch_weights,
    resolve_model_config,
    train,
)
from dfd.trainers.vocoded_pairs import paired_windows, vocoded_copies
from tests.signals import REPO, SAMPLE_CALL

RECIPES = REPO / "trainers" / "recipes"

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

    # Exported, loaded and scored by the daemon's pipeline, as `dfd replay --model` runs it.
    bundle = bundle_run(run, config, tmp_path / "bundle")
    replayed = CliRunner().invoke(
        main, ["replay", "--json", "--hop", "1", "--model", str(bundle), str(SAMPLE_CALL)]
    )
    structlog.reset_defaults()
    assert replayed.exit_code in (0, 1), replayed.output
    report = json.loads(replayed.stdout)
    assert report["model"]["name"] == name and not report["incomplete"]
    windows = report["windows"]
    per_channel = math.floor(report["duration"] - 2.0) + 1  # 2 s windows every second
    assert len(windows) >= report["channels"] * per_channel
    assert all(0.0 <= w["score"] <= 1.0 and math.isfinite(w["raw"]) for w in windows)


class SimulatedCrashError(Exception):
    pass


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {
            "validation": "split",
            "augment": AugmentConfig(time_stretch_probability=0.5, pitch_shift_probability=0.5),
        },
    ],
    ids=["plain", "split-stretch-shift"],
)
def test_a_resumed_run_matches_an_uninterrupted_one(
    small_corpus: Path, tmp_path: Path, settings: dict[str, Any]
) -> None:
    protocols = small_corpus / "protocols"
    config = TrainConfig(family="mfcc-cnn", **{**QUICK, "epochs": 2, **settings})
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
        ('family = "mfcc-cnn"\nvalidation = "holdout"\n', "validation"),
        ('family = "mfcc-cnn"\nvalidation_fraction = 1.0\n', "validation_fraction"),
        ('family = "mfcc-cnn"\n[augment]\nstretch_max = 3.0\n', "stretch"),
    ],
)
def test_bad_training_configs_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_train_config(path)


def test_a_run_starts_from_init_weights_and_its_card_names_them(
    small_corpus: Path, tmp_path: Path
) -> None:
    protocols = small_corpus / "protocols"
    torch.manual_seed(123)
    start = family("mfcc-cnn").build()
    torch.save(start.state_dict(), tmp_path / "start.pt")
    # A learning rate of 1e-12 leaves the weights where they started, to float precision.
    settings = {**QUICK, "learning_rate": 1e-12}
    config = TrainConfig(family="mfcc-cnn", init_weights=str(tmp_path / "start.pt"), **settings)
    run = train(config, protocols / "train.txt", protocols / "dev.txt", tmp_path / "from")
    fresh = train(
        TrainConfig(family="mfcc-cnn", **settings), protocols / "train.txt",
        protocols / "dev.txt", tmp_path / "fresh",
    )  # fmt: skip
    trained, untouched = dict(run.model.named_parameters()), dict(fresh.model.named_parameters())
    for name, parameter in start.named_parameters():
        torch.testing.assert_close(trained[name], parameter, atol=1e-6, rtol=0)
        if parameter.dim() > 1:  # random weights (batch-norm scales all start at 1)
            assert not torch.allclose(untouched[name], parameter)

    card = load_bundle(bundle_run(run, config, tmp_path / "bundle")).card
    assert card.training.config is not None
    recorded = card.training.config
    assert recorded["init_weights"] == str(tmp_path / "start.pt")
    digest = hashlib.sha256((tmp_path / "start.pt").read_bytes()).hexdigest()
    assert recorded["init_weights_sha256"] == digest

    # A resumed run continues from its own checkpoint; the initial weights are not read again.
    (tmp_path / "start.pt").unlink()
    resumed = train(
        config, protocols / "train.txt", protocols / "dev.txt", tmp_path / "from", resume=True
    )
    np.testing.assert_allclose(resumed.dev_raw, run.dev_raw, rtol=1e-5, atol=1e-6)


def test_init_weights_that_do_not_fit_the_family_are_refused(
    small_corpus: Path, tmp_path: Path
) -> None:
    protocols = small_corpus / "protocols"
    torch.save(family("sinc-lcnn").build().state_dict(), tmp_path / "lcnn.pt")
    config = TrainConfig(family="mfcc-cnn", init_weights=str(tmp_path / "lcnn.pt"), **QUICK)
    with pytest.raises(ConfigError, match=r"init_weights: .*does not fit mfcc-cnn: missing keys"):
        train(config, protocols / "train.txt", protocols / "dev.txt", tmp_path / "a")
    torch.save({"model": family("mfcc-cnn").build().state_dict()}, tmp_path / "wrapped.pt")
    config = TrainConfig(family="mfcc-cnn", init_weights=str(tmp_path / "wrapped.pt"), **QUICK)
    with pytest.raises(ConfigError, match="not tensors: model"):
        train(config, protocols / "train.txt", protocols / "dev.txt", tmp_path / "b")
    config = TrainConfig(family="mfcc-cnn", init_weights=str(tmp_path / "absent.pt"), **QUICK)
    with pytest.raises(ConfigError, match="no such checkpoint"):
        train(config, protocols / "train.txt", protocols / "dev.txt", tmp_path / "c")


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
         "--data", str(protocols / "train.txt"), "--data", str(protocols / "train.phone.txt"),
         "--out", str(tmp_path / "run")],
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
    attacks_in_protocol = {row.split()[3] for row in protocol} - {"-"}
    assert set(report["groups"]["attack"]) - {"-"} == attacks_in_protocol
    assert attacks_in_protocol >= {"lpc", "nsf", "piper-joe"}  # eval's held-out attacks
    for plot in ("roc.png", "det.png", "score_histograms.png", "threshold_sweep.png"):
        assert (tmp_path / "eval" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    small_batches = subprocess.run(
        [dfd, "--log-level", "warning", "eval", "--model", str(tmp_path / "run" / "bundle"),
         "--data", str(protocols / "eval.mulaw.txt"), "--out", str(tmp_path / "eval-3"),
         "--batch-size", "3"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert small_batches.returncode == 0, small_batches.stderr
    again = (tmp_path / "eval-3" / "scores.txt").read_text().splitlines()
    assert [line.split()[:3] for line in again] == [line.split()[:3] for line in lines]
    np.testing.assert_allclose(
        [float(line.split()[3]) for line in again],
        [float(line.split()[3]) for line in lines],
        atol=1e-4,
    )


def test_a_run_resumes_across_settings_added_since_it_started(
    small_corpus: Path, tmp_path: Path
) -> None:
    """A config.json written before a setting existed resumes while the setting is at its
    default, and is refused once it is not."""
    protocols = small_corpus / "protocols"
    config = TrainConfig(family="mfcc-cnn", **QUICK)
    train(config, protocols / "train.txt", protocols / "dev.txt", tmp_path)
    saved = json.loads((tmp_path / RESOLVED_CONFIG).read_text())
    del saved["validation"], saved["validation_fraction"]
    del saved["augment"]["time_stretch_probability"], saved["augment"]["pitch_shift_probability"]
    (tmp_path / RESOLVED_CONFIG).write_text(json.dumps(saved))
    resumed = train(config, protocols / "train.txt", protocols / "dev.txt", tmp_path, resume=True)
    assert [h.epoch for h in resumed.history] == [1]
    changed = TrainConfig(family="mfcc-cnn", **{**QUICK, "validation": "split"})
    with pytest.raises(ConfigError, match="configuration the run started with"):
        train(changed, protocols / "train.txt", protocols / "dev.txt", tmp_path, resume=True)


def _trials(counts: dict[str, int]) -> list[Trial]:
    trials = []
    for attack, count in counts.items():
        label = "bonafide" if attack == "-" else "spoof"
        for index in range(count):
            name = f"{attack}-{index}"
            trials.append(Trial(name, Path(f"{name}.wav"), label, attack, "speaker"))
    return trials


def test_the_validation_split_is_stratified_disjoint_and_seeded() -> None:
    counts = {"-": 101, "world": 40, "griffinlim": 33, "lpc": 7}
    trials = _trials(counts)
    kept, held = stratified_split(trials, 0.2, np.random.default_rng(3))
    assert not set(kept) & set(held)
    assert sorted([*kept, *held]) == list(range(len(trials)))
    bonafide = sum(trials[i].label == "bonafide" for i in held)
    assert bonafide in (20, 21)  # floor or ceil of 0.2 x 101
    assert len(held) - bonafide in (16, 17)  # of 80 spoofs
    for attack, count in counts.items():
        in_held = sum(trials[i].attack == attack for i in held)
        assert abs(in_held - 0.2 * count) <= 1, attack
    again = stratified_split(trials, 0.2, np.random.default_rng(3))
    np.testing.assert_array_equal(held, again[1])
    other = stratified_split(trials, 0.2, np.random.default_rng(4))
    assert not np.array_equal(held, other[1])


def test_a_split_that_leaves_a_class_empty_is_refused() -> None:
    with pytest.raises(ConfigError, match="validation split"):
        stratified_split(_trials({"-": 2, "world": 20}), 0.2, np.random.default_rng(0))


def test_a_split_run_stops_on_held_out_training_data_and_calibrates_on_dev(
    small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    protocols = small_corpus / "protocols"
    trained_on: set[str] = set()
    original = train_module._training_batch

    def recording_batch(data: train_module.LabelledAudio, *args: Any) -> Any:
        trained_on.update(trial.utterance_id for trial in data.trials)
        return original(data, *args)

    monkeypatch.setattr(train_module, "_training_batch", recording_batch)
    config = TrainConfig(family="mfcc-cnn", **{**QUICK, "validation": "split"})
    run = train(config, protocols / "train.txt", protocols / "dev.txt", tmp_path)
    held_out = set(json.loads((tmp_path / SPLIT).read_text())["held_out"])
    train_ids = {trial.utterance_id for trial in read_dataset(protocols / "train.txt")}
    assert held_out and held_out < train_ids
    assert trained_on == train_ids - held_out
    trials = read_dataset(protocols / "train.txt")
    for label in ("bonafide", "spoof"):  # floor or ceil of a fifth of each class
        of_label = {t.utterance_id for t in trials if t.label == label}
        assert math.floor(0.2 * len(of_label)) <= len(held_out & of_label)
        assert len(held_out & of_label) <= math.ceil(0.2 * len(of_label))
    dev_ids = {trial.utterance_id for trial in read_dataset(protocols / "dev.txt")}
    assert {trial.utterance_id for trial in run.dev.trials} <= dev_ids
    assert len(run.dev.trials) == QUICK["dev_max_trials"] == len(run.dev_raw)


def test_sweep_accuracy_against_hand_counted_pairs() -> None:
    distance = np.array([0.1, 0.5, 1.0, 3.0])
    same = np.array([True, True, False, False])
    result = sweep(distance, same, np.array([0.2, 0.6, 1.5]), same_below=True)
    assert result["accuracy"] == [0.75, 1.0, 0.75]
    assert (result["best_threshold"], result["best_accuracy"]) == (0.6, 1.0)
    similarity = np.array([0.9, 0.7, 0.5, -0.3])
    result = sweep(similarity, same, np.array([0.1, 0.6, 0.8]), same_below=False)
    assert result["accuracy"] == [0.75, 1.0, 0.75]
    assert result["best_threshold"] == 0.6
    tied = sweep(distance, same, np.array([0.6, 0.8]), same_below=True)
    assert tied["best_threshold"] == 0.6  # ties go to the first threshold


def test_balanced_pairs_are_distinct_and_balanced() -> None:
    is_spoof = np.array([False] * 5 + [True] * 3)  # 10 + 3 same-class pairs, 15 different
    first, second, same = balanced_pairs(is_spoof, 20_000, np.random.default_rng(0))
    assert same.sum() == (~same).sum() == 13
    assert np.all(first < second)
    assert len(set(zip(first.tolist(), second.tolist(), strict=True))) == 26
    np.testing.assert_array_equal(same, is_spoof[first] == is_spoof[second])
    assert len(balanced_pairs(is_spoof, 10, np.random.default_rng(0))[0]) == 10


def test_a_siamese_run_sweeps_pair_thresholds_into_its_bundle(
    small_corpus: Path, tmp_path: Path
) -> None:
    protocols = small_corpus / "protocols"
    config = TrainConfig(family="siamese-mel", **QUICK)
    run = train(config, protocols / "train.txt", protocols / "dev.txt", tmp_path)
    result = json.loads((tmp_path / SIAMESE_SWEEP).read_text())
    assert result == run.pair_sweep
    euclidean, cosine = result["euclidean"], result["cosine"]
    np.testing.assert_allclose(euclidean["thresholds"], np.arange(0.20, 2.1001, 0.05))
    assert len(euclidean["thresholds"]) == 39
    assert euclidean["thresholds"][0] == 0.2 and euclidean["thresholds"][-1] == 2.1
    np.testing.assert_allclose(cosine["thresholds"], np.arange(0.10, 0.9001, 0.05))
    assert len(cosine["thresholds"]) == 17
    assert cosine["thresholds"][0] == 0.1 and cosine["thresholds"][-1] == 0.9
    assert result["utterances"] == QUICK["dev_max_trials"]
    pairs = result["pairs"]["same"] + result["pairs"]["different"]
    assert result["pairs"]["same"] == result["pairs"]["different"] > 0
    for measure in (euclidean, cosine):
        assert len(measure["accuracy"]) == len(measure["thresholds"])
        assert all(round(a * pairs) == pytest.approx(a * pairs) for a in measure["accuracy"])
        best = int(np.argmax(measure["accuracy"]))
        assert measure["best_accuracy"] == max(measure["accuracy"])
        assert measure["best_threshold"] == measure["thresholds"][best]

    bundle = load_bundle(bundle_run(run, config, tmp_path / "bundle"))
    assert bundle.card.metrics.dev is not None
    card_sweep = bundle.card.metrics.dev["pair_threshold_sweep"]
    assert card_sweep["euclidean"]["threshold"] == euclidean["best_threshold"]
    assert card_sweep["cosine"]["accuracy"] == cosine["best_accuracy"]


def test_no_sweep_for_other_families(small_corpus: Path, tmp_path: Path) -> None:
    protocols = small_corpus / "protocols"
    run = train(
        TrainConfig(family="mfcc-cnn", **QUICK), protocols / "train.txt", protocols / "dev.txt",
        tmp_path,
    )  # fmt: skip
    assert run.pair_sweep is None and not (tmp_path / SIAMESE_SWEEP).exists()


def test_the_recipes_folder_holds_the_expected_experiments() -> None:
    names = {path.stem for path in RECIPES.glob("*.toml")}
    assert names >= {"sinc-lcnn", "effnet-mel", "siamese-mel", "mfcc-cnn", "aasist-l"}


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("*.toml")), ids=lambda path: path.stem)
def test_every_recipe_loads_and_names_its_retrain_command(recipe: Path) -> None:
    config = load_train_config(recipe)
    entry = family(config.family)
    resolve_model_config(entry, config.model)
    header = []
    for line in recipe.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    command = (
        f"dfd train --config trainers/recipes/{recipe.name} "
        f"--data corpus/protocols/train.txt --out runs/{recipe.stem}"
    )
    assert any(command in line for line in header), "\n".join(header)


@pytest.mark.parametrize(
    "recipe", sorted((RECIPES / "experiments").glob("*.toml")), ids=lambda path: path.stem
)
def test_every_experiment_loads_and_names_its_command(recipe: Path) -> None:
    config = load_train_config(recipe)
    resolve_model_config(family(config.family), config.model)
    header = "\n".join(
        line for line in recipe.read_text(encoding="utf-8").splitlines() if line.startswith("#")
    )
    assert f"--config trainers/recipes/experiments/{recipe.name}" in header
    assert f"--out runs/{recipe.stem}" in header


def test_training_reads_several_protocols_in_turn(small_corpus: Path) -> None:
    protocols = small_corpus / "protocols"
    clean, phone = protocols / "train.txt", protocols / "train.phone.txt"
    both = train_module.LabelledAudio.load([clean, phone], 16_000)
    expected = read_dataset(clean) + read_dataset(phone)
    assert [t.utterance_id for t in both.trials] == [t.utterance_id for t in expected]
    assert len(both.audio) == len(expected)
    assert both.is_spoof.tolist() == [t.label == "spoof" for t in expected]


def test_averaging_keeps_the_mean_of_the_best_epochs_weights(
    small_corpus: Path, tmp_path: Path
) -> None:
    protocols = small_corpus / "protocols"
    quick = {**QUICK, "epochs": 3}
    config = TrainConfig(family="mfcc-cnn", average_checkpoints=2, **quick)
    with structlog.testing.capture_logs() as logs:
        run = train(config, protocols / "train.txt", protocols / "dev.txt", tmp_path)
    history = json.loads((tmp_path / HISTORY).read_text())
    best_two = sorted(history, key=lambda row: row["dev_eer"])[:2]
    states = [
        torch.load(tmp_path / epoch_weights(row["epoch"]), weights_only=True) for row in best_two
    ]
    for key, value in run.model.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (states[0][key] + states[1][key]) / 2)
        else:
            assert int(value) == max(int(states[0][key]), int(states[1][key]))
    averaged = [entry for entry in logs if entry["event"] == "checkpoints averaged"]
    assert averaged and averaged[0]["epochs"] == sorted(row["epoch"] for row in best_two)
    assert all((tmp_path / epoch_weights(epoch)).is_file() for epoch in (1, 2, 3))


def test_average_state_dicts_means_floats_and_keeps_the_largest_count() -> None:
    first = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(4)}
    second = {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(6)}
    averaged = train_module.average_state_dicts([first, second])
    torch.testing.assert_close(averaged["w"], torch.tensor([2.0, 4.0]))
    assert int(averaged["n"]) == 6
    with pytest.raises(ConfigError, match="average_checkpoints"):
        TrainConfig(family="mfcc-cnn", average_checkpoints=0)


def test_sharpness_aware_training_takes_its_own_steps(small_corpus: Path, tmp_path: Path) -> None:
    """The same seeded batches, with and without SAM: both learn, and they end apart (the SAM
    run stepped with gradients taken at perturbed weights)."""
    protocols = small_corpus / "protocols"
    weights = {}
    for name, rho in (("plain", 0.0), ("sam", 0.05)):
        config = TrainConfig(family="mfcc-cnn", sam_rho=rho, **QUICK)
        run = train(config, protocols / "train.txt", protocols / "dev.txt", tmp_path / name)
        assert np.isfinite(run.history[0].train_loss)
        weights[name] = {k: v.clone() for k, v in run.model.state_dict().items()}
    changed = [
        key
        for key, value in weights["plain"].items()
        if value.is_floating_point() and not torch.equal(value, weights["sam"][key])
    ]
    assert changed
    with pytest.raises(ConfigError, match="sam_rho"):
        TrainConfig(family="mfcc-cnn", sam_rho=-0.1)


# ------------------------------------------------------------------ paired vocoded batches


def test_the_manifest_pairs_each_vocoded_copy_with_its_source(small_corpus: Path) -> None:
    data = train_module.LabelledAudio.load(small_corpus / "protocols" / "train.txt", 16_000)
    copies = vocoded_copies(data.trials)
    manifest = json.loads((small_corpus / "manifest.json").read_text(encoding="utf-8"))
    entries = {entry["utt_id"]: entry for entry in manifest["files"]}
    assert copies, "the small corpus copy-synthesises training utterances"
    for source, found in copies.items():
        assert data.trials[source].label == "bonafide"
        for copy in found:
            entry = entries[data.trials[copy].utterance_id]
            assert data.trials[copy].label == "spoof"
            assert entry["family"].startswith("vocoder:")
            assert entry["origin"] == data.trials[source].utterance_id
    # every training copy of a training utterance is found, and nothing else
    expected = sum(
        1
        for entry in entries.values()
        if entry["family"].startswith("vocoder:")
        and entry["origin"] in {t.utterance_id for t in data.trials}
        and entry["utt_id"] in {t.utterance_id for t in data.trials}
    )
    assert sum(len(found) for found in copies.values()) == expected


def test_a_pair_is_the_same_cut_with_the_same_augmentation() -> None:
    rng = np.random.default_rng(3)
    speech = rng.normal(0, 0.1, 48_123).astype(np.float32)
    copy = np.concatenate([speech, np.zeros(37, dtype=np.float32)])  # a vocoder's longer end
    geometry = train_module.WindowGeometry(16_000, 2.0, 0.5)
    augment = AugmentConfig(noise_probability=1.0, codec_probability=1.0)
    first, second = paired_windows(speech, copy, geometry, augment, rng)
    np.testing.assert_array_equal(first, second)  # the same audio gives the same window
    other, _ = paired_windows(speech, copy, geometry, augment, rng)
    assert not np.array_equal(first, other)  # the next pair is cut and augmented afresh


def test_paired_batches_hold_each_utterance_beside_its_copy(small_corpus: Path) -> None:
    data = train_module.LabelledAudio.load(small_corpus / "protocols" / "train.txt", 16_000)
    copies = vocoded_copies(data.trials)
    # each copy replaced by its source's audio: a pair's two windows must then be equal
    for source, found in copies.items():
        for copy in found:
            data.audio[copy] = data.audio[source].copy()
    config = TrainConfig(family="mfcc-cnn", batch_size=8, vocoded_pairs=0.5)
    geometry = train_module.WindowGeometry(16_000, 2.0, 0.5)
    windows, is_spoof = train_module._training_batch(
        data, config, geometry, np.random.default_rng(0), copies
    )
    assert windows.shape == (8, 32_000)
    assert is_spoof.tolist() == [0, 1, 0, 1, 0, 0, 1, 1]  # two pairs, then two of each
    np.testing.assert_array_equal(windows[0], windows[1])
    np.testing.assert_array_equal(windows[2], windows[3])
    assert not np.array_equal(windows[4], windows[5])
    # without pairs, the batch is what it always was (same draws, same order)
    plain = TrainConfig(family="mfcc-cnn", batch_size=8)
    before, _ = train_module._training_batch(data, plain, geometry, np.random.default_rng(0))
    again, _ = train_module._training_batch(data, plain, geometry, np.random.default_rng(0), copies)
    np.testing.assert_array_equal(before, again)


def test_a_paired_run_trains_and_pairs_need_a_manifest(small_corpus: Path, tmp_path: Path) -> None:
    protocols = small_corpus / "protocols"
    config = TrainConfig(family="mfcc-cnn", vocoded_pairs=0.5, **QUICK)
    run = train(config, protocols / "train.txt", protocols / "dev.txt", tmp_path / "paired")
    assert np.isfinite(run.history[0].train_loss)
    with pytest.raises(ConfigError, match="vocoded_pairs"):
        TrainConfig(family="mfcc-cnn", vocoded_pairs=1.5)
    stray = Trial("u1", tmp_path / "audio" / "u1.wav", "bonafide", "-", "-")
    with pytest.raises(ConfigError, match="manifest"):
        vocoded_copies([stray])


def test_the_epoch_curves_benchmark_scores_each_epoch_as_training_validated_it(
    small_corpus: Path, tmp_path: Path
) -> None:
    """benchmarks/epoch_curves.py rebuilds a run's model from its saved config and scores every
    saved epoch with the trainer's scoring: on the run's own dev protocol it must give, epoch by
    epoch, the EER training logged, and the epoch training kept."""
    protocols = small_corpus / "protocols"
    config = TrainConfig(
        family="mfcc-cnn",
        epochs=3,
        batch_size=4,
        steps_per_epoch=3,
        model={"pooling": "time-stats"},
    )
    run = train(config, protocols / "train.txt", protocols / "dev.txt", tmp_path / "run")
    out = tmp_path / "curves.md"
    subprocess.run(
        [
            sys.executable, str(REPO / "benchmarks" / "epoch_curves.py"),
            "--run", f"mfcc={tmp_path / 'run'}", "--split", f"dev={protocols / 'dev.txt'}",
            "--out", str(out),
        ],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    lines = out.read_text().splitlines()
    start = lines.index("## mfcc") + 4
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[start:]]
    assert [row[0].split()[0] for row in rows] == ["1", "2", "3"]
    for row, logged in zip(rows, run.history, strict=True):
        assert row[2] == row[3] == f"{100 * logged.dev_eer:.2f} %"
    kept = min(run.history, key=lambda result: result.dev_eer).epoch
    assert [row[0] for row in rows if "(kept)" in row[0]] == [f"{kept} (kept)"]
