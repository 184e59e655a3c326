"""One trial of an anti-spoofing dataset: an audio file, its label, what the dataset says of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Label = Literal["bonafide", "spoof"]
LABELS: tuple[Label, ...] = ("bonafide", "spoof")
NOT_GIVEN = "-"
UNKNOWN_ATTACK = "spoof"


class DatasetError(ValueError):
    """A dataset's files are missing, malformed or contradict each other."""


@dataclass(frozen=True)
class Trial:
    """``attack`` is ``"-"`` for bona fide speech and the attack or system id for spoofed speech
    (``"spoof"`` when the dataset does not name it); ``speaker`` and ``condition`` are ``"-"`` when
    the dataset does not give them."""

    utterance_id: str
    path: Path
    label: Label
    attack: str
    speaker: str
    condition: str = NOT_GIVEN

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise DatasetError(
                f"trial {self.utterance_id!r} ({self.path}): label must be 'bonafide' or 'spoof',"
                f" got {self.label!r}"
            )
        if (self.attack == NOT_GIVEN) != (self.label == "bonafide"):
            raise DatasetError(
                f"trial {self.utterance_id!r} ({self.path}): a {self.label} trial cannot have"
                f" attack {self.attack!r} (bona fide trials have '-', spoofed ones an attack id"
                f" or {UNKNOWN_ATTACK!r})"
            )
        for name in ("utterance_id", "attack", "speaker", "condition"):
            if not getattr(self, name):
                raise DatasetError(f"trial {self.utterance_id!r} ({self.path}): empty {name}")
