"""A stratified, seeded hold-out of a training protocol, for ``validation = "split"``.

Each label is split on its own, so the held-out part has the protocol's share of bona fide and
spoofed trials; within a label the trials are lined up attack by attack (shuffled within each
attack) and every ``1 / fraction``-th one is held out, so each attack, too, keeps its share to
within one trial.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dfd.core.typed_config import ConfigError
from dfd.trainers.datasets import Trial


def stratified_split(
    trials: Sequence[Trial], fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices ``(kept, held_out)`` of ``trials``: disjoint, together all of them, with
    about ``fraction`` of each label (exactly ``floor`` or ``ceil`` of it) held out."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    held: list[int] = []
    for label in ("bonafide", "spoof"):
        indices = [i for i, trial in enumerate(trials) if trial.label == label]
        shuffled = rng.permutation(len(indices))
        # Attack by attack, in a random order within each attack.
        lined_up = sorted(shuffled, key=lambda k: trials[indices[k]].attack)
        # Position j is held out when floor(j f + u) steps up at j: evenly spaced picks.
        start = rng.random()
        steps = np.floor((np.arange(len(indices)) + 1) * fraction + start)
        steps -= np.floor(np.arange(len(indices)) * fraction + start)
        chosen = [indices[lined_up[j]] for j in np.flatnonzero(steps)]
        if not chosen or len(chosen) == len(indices):
            raise ConfigError(
                f"a {fraction:g} validation split of {len(indices)} {label} trials leaves one "
                f'side without any; use more data or validation = "dev"'
            )
        held.extend(chosen)
    held_out = np.array(sorted(held), dtype=np.int64)
    kept = np.setdiff1d(np.arange(len(trials)), held_out)
    return kept, held_out
