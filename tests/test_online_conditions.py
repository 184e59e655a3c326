"""Corpus v2's condition chains applied online to training windows: real speech, the real
packaged rooms and noises, the real ffmpeg codecs, the real small corpus."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import numpy as np
import pytest
import torch

from dfd.core.typed_config import ConfigError
from dfd.dsp.audio_io import load_audio
from dfd.trainers import train as train_module
from dfd.trainers.config import AugmentConfig, ConditionPreset, TrainConfig, load_train_config
from dfd.trainers.corpus.conditions import PRESETS, apply_conditions, sample_condition
from dfd.trainers.online_conditions import condition_windows
from dfd.trainers.train import train
from tests.signals import RATE, SAMPLE_CALL


@pytest.fixture(scope="module")
def speech_windows() -> list[np.ndarray]:
    """Eight 2 s windows of the sample call's caller and agent."""
    channels = load_audio(SAMPLE_CALL).samples
    speech = np.concatenate([channels[0, : 5 * RATE], channels[1, 5 * RATE : 11 * RATE]])
    return [speech[start : start + 2 * RATE].copy() for start in range(0, 8 * RATE, RATE)]


def test_nothing_is_drawn_or_changed_at_probability_zero(
    speech_windows: list[np.ndarray],
) -> None:
    rng = np.random.default_rng(5)
    out = condition_windows(speech_windows, AugmentConfig(), rng, speech_windows)
    assert out is speech_windows
    assert rng.random() == np.random.default_rng(5).random()  # the generator was not touched


def test_every_window_gets_a_chain_of_the_preset_seeded_by_the_run(
    speech_windows: list[np.ndarray],
) -> None:
    """At probability 1 each window is the corpus's own chain (a condition drawn from the preset,
    applied by ``apply_conditions`` in one batch) and the same generator gives the same batch."""
    config = AugmentConfig(conditions_probability=1.0, conditions="phone_full")
    out = condition_windows(speech_windows, config, np.random.default_rng(11), speech_windows)
    again = condition_windows(speech_windows, config, np.random.default_rng(11), speech_windows)
    for window, conditioned, repeated in zip(speech_windows, out, again, strict=True):
        assert conditioned.shape == window.shape and conditioned.dtype == np.float32
        assert not np.allclose(conditioned, window, atol=1e-3)
        np.testing.assert_array_equal(conditioned, repeated)
    # the same draws, made by hand: which windows (all), their conditions, their seeds
    rng = np.random.default_rng(11)
    assert np.all(rng.random(len(speech_windows)) < 1.0)
    conditions = [sample_condition(rng, PRESETS["phone_full"]) for _ in speech_windows]
    assert all(c.phone is not None and c.room is not None for c in conditions)
    seeds = [int(s) for s in rng.integers(0, 2**63, len(speech_windows))]
    expected = apply_conditions(speech_windows, conditions, seeds, speech_windows)
    for conditioned, wanted in zip(out, expected, strict=True):
        np.testing.assert_array_equal(conditioned, wanted)


def test_the_training_batch_is_unchanged_but_for_its_conditioned_windows(
    small_corpus: Path,
) -> None:
    """Adding online conditions changes only the windows they were drawn for: every other row
    of the batch is what the run drew without them (same cuts, same augmentation)."""
    data = train_module.LabelledAudio.load(small_corpus / "protocols" / "train.txt", RATE)
    geometry = train_module.WindowGeometry(RATE, 2.0, 0.5)
    plain = TrainConfig(family="mfcc-cnn", batch_size=32)
    online = TrainConfig(
        family="mfcc-cnn", batch_size=32, augment=AugmentConfig(conditions_probability=0.5)
    )
    before, labels = train_module._training_batch(data, plain, geometry, np.random.default_rng(2))
    after, same_labels = train_module._training_batch(
        data, online, geometry, np.random.default_rng(2)
    )
    np.testing.assert_array_equal(labels, same_labels)
    changed = [i for i in range(32) if not np.allclose(before[i], after[i], atol=1e-4)]
    assert 6 <= len(changed) <= 26  # half of 32, well inside the binomial's 99.9 % range
    unchanged = sorted(set(range(32)) - set(changed))
    np.testing.assert_array_equal(before[unchanged], after[unchanged])
    # both classes are conditioned: the draw never looks at the label
    assert {bool(labels[i]) for i in changed} == {False, True}


def test_a_run_with_online_conditions_trains(small_corpus: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    protocols = small_corpus / "protocols"
    config = TrainConfig(
        family="mfcc-cnn",
        epochs=1,
        batch_size=4,
        steps_per_epoch=2,
        dev_max_trials=12,
        augment=AugmentConfig(conditions_probability=0.5),
    )
    run = train(config, protocols / "train.txt", protocols / "dev.txt", tmp_path / "online")
    assert np.isfinite(run.history[0].train_loss)


@pytest.mark.parametrize(
    ("augment", "message"),
    [
        ('conditions = "office"', "conditions"),
        ("conditions_probability = 1.5", "conditions_probability"),
    ],
)
def test_bad_online_condition_settings_are_refused(
    tmp_path: Path, augment: str, message: str
) -> None:
    recipe = tmp_path / "bad.toml"
    recipe.write_text(f'family = "mfcc-cnn"\n[augment]\n{augment}\n')
    with pytest.raises(ConfigError, match=message):
        load_train_config(recipe)


def test_every_preset_a_recipe_may_name_is_a_corpus_preset() -> None:
    """The config names the presets without importing the corpus extras; the two lists agree
    (``none`` would be a probability of 0)."""
    assert set(get_args(ConditionPreset)) == set(PRESETS) - {"none"}
