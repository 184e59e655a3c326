"""Bona fide utterances and their vocoded copies, for paired training batches.

The corpus copy-synthesises bona fide utterances through vocoders (docs/corpus.md: WORLD,
Griffin-Lim, HiFi-GAN in training): the copy says the same words in the same voice, aligned in
time, and differs only by what the vocoder does to it. A batch that holds an utterance and its
copy, cut at the same place and put through the same augmentation, leaves the model one thing to
tell them apart by: the vocoder's traces, not the speaker, the words or the channel (the idea of
project-NN's ``09-asvspoof-vocoded-trn`` recipe; here without its contrastive term).

Which spoof is a copy of which utterance is in the corpus's ``manifest.json`` (each file's
``family`` and ``origin``), beside the ``audio/`` folder of the trials.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dfd.core.typed_config import ConfigError
from dfd.dsp.framer import WindowGeometry
from dfd.trainers.augment import augmented_window
from dfd.trainers.config import AugmentConfig
from dfd.trainers.datasets import Trial

MANIFEST = "manifest.json"
VOCODER_PREFIX = "vocoder:"


def vocoded_copies(trials: Sequence[Trial]) -> dict[int, list[int]]:
    """For each bona fide trial with vocoded copies among ``trials``, their indices. The
    manifest is read from each trial's corpus folder (the parent of its ``audio/`` folder)."""
    index = {trial.utterance_id: i for i, trial in enumerate(trials)}
    copies: dict[int, list[int]] = {}
    for root in sorted({trial.path.parent.parent for trial in trials}):
        manifest = root / MANIFEST
        if not manifest.is_file():
            raise ConfigError(
                f"vocoded_pairs needs the corpus manifest, and {manifest} is not a file"
            )
        for entry in json.loads(manifest.read_text(encoding="utf-8"))["files"]:
            if not str(entry.get("family", "")).startswith(VOCODER_PREFIX):
                continue
            copy, source = index.get(entry["utt_id"]), index.get(entry.get("origin", ""))
            if copy is None or source is None:
                continue
            if trials[copy].label == "spoof" and trials[source].label == "bonafide":
                copies.setdefault(source, []).append(copy)
    return copies


def paired_windows(
    bonafide: np.ndarray,
    copy: np.ndarray,
    geometry: WindowGeometry,
    config: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """A window of an utterance and the same window of its vocoded copy: both cut to their
    common length first (a vocoder may add or drop a few samples at the end), then the same cut
    and the same augmentation (one seed drawn from ``rng`` drives both)."""
    length = min(len(bonafide), len(copy))
    seed = int(rng.integers(2**63))
    first = augmented_window(bonafide[:length], geometry, config, np.random.default_rng(seed))
    second = augmented_window(copy[:length], geometry, config, np.random.default_rng(seed))
    return first, second


def check_pairs(copies: dict[int, list[int]], share: float, where: Path | str) -> None:
    if share > 0 and not copies:
        raise ConfigError(
            f"vocoded_pairs = {share}, but no bona fide utterance of {where} has a vocoded copy "
            "in the same training data"
        )
