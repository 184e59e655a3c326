"""Corpus v2's rooms, noises, devices and phone lines applied online, to training windows.

The phone copies of the corpus (``train.phone.txt``) give every training file one condition chain,
drawn once from its id. Online, a share of the windows of every batch (``[augment]
conditions_probability``) gets a chain drawn afresh from a preset of
:mod:`dfd.trainers.corpus.conditions` (``conditions``, default ``phone_full``: the evaluation
condition "a real call", every stage on), so a file is heard through a new room, noise, device and
line each time it is drawn. Both classes alike: the draw never looks at the label.

The chain runs on the finished window (after tempo, pitch, RawBoost, gain, G.711 and noise), for
the whole batch at once, so the ffmpeg codecs run once per distinct codec per batch
(:func:`~dfd.trainers.corpus.conditions.apply_conditions`). Every draw (which windows, their
conditions, their seeds) comes from the run's generator, and none is made when the probability is
0. Babble noise is made of the run's bona fide training utterances.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dfd.trainers.config import AugmentConfig

SEED_BOUND = 2**63


def condition_windows(
    windows: list[np.ndarray],
    config: AugmentConfig,
    rng: np.random.Generator,
    babble_utterances: Sequence[np.ndarray],
) -> list[np.ndarray]:
    """``windows`` with ``config.conditions_probability`` of them under a drawn condition chain;
    the others unchanged (the same objects). Lengths are kept."""
    if config.conditions_probability <= 0 or not windows:
        return windows
    # Imported here: the chain needs the corpus extras (pyroomacoustics), which a run without
    # online conditions does not.
    from dfd.trainers.corpus.conditions import PRESETS, apply_conditions, sample_condition

    preset = PRESETS[config.conditions]
    chosen = np.flatnonzero(rng.random(len(windows)) < config.conditions_probability)
    if len(chosen) == 0:
        return windows
    conditions = [sample_condition(rng, preset) for _ in chosen]
    seeds = [int(seed) for seed in rng.integers(0, SEED_BOUND, len(chosen))]
    conditioned = apply_conditions(
        [windows[i] for i in chosen], conditions, seeds, babble_utterances
    )
    out = list(windows)
    for index, window in zip(chosen, conditioned, strict=True):
        out[int(index)] = window
    return out
