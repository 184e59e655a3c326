"""Plain folders: ``<root>/real/`` and ``<root>/fake/`` (or ``bonafide/`` and ``spoof/``), searched
recursively for audio in any format dfd decodes (wav, flac, ogg, mp3, m4a, g722, gsm, ul, al ...).

The utterance id is the file's path under the root (``real/alice/call1.wav``), unique by
construction; attacks, speakers and conditions are not known. Either class may be absent (a
folder of human calls alone measures false alarms), but not both.
"""

from __future__ import annotations

from pathlib import Path

from dfd.trainers.datasets.protocol import (
    TrialCollector,
    audio_files,
    existing,
    expect_no_subset,
)
from dfd.trainers.datasets.trial import NOT_GIVEN, UNKNOWN_ATTACK, DatasetError, Label, Trial

CLASS_FOLDERS: dict[str, Label] = {
    "real": "bonafide",
    "bonafide": "bonafide",
    "fake": "spoof",
    "spoof": "spoof",
}


def read_folders(location: str | Path, subset: str | None = None) -> list[Trial]:
    location = existing(location, folder=True)
    expect_no_subset(subset, location, "plain folders have no subsets")
    present = class_folders(location)
    if not present:
        expected = ", ".join(f"{name}/" for name in CLASS_FOLDERS)
        raise DatasetError(f"no class folders in {location}: looked for {expected}")
    trials = TrialCollector()
    for name in present:
        add_audio_under(location, location / name, CLASS_FOLDERS[name], trials)
    return trials.result(str(location))


def class_folders(root: Path) -> list[str]:
    return [name for name in CLASS_FOLDERS if (root / name).is_dir()]


def add_audio_under(root: Path, folder: Path, label: Label, trials: TrialCollector) -> None:
    """Add every audio file under ``folder`` with ``label``; ids are paths relative to ``root``."""
    attack = NOT_GIVEN if label == "bonafide" else UNKNOWN_ATTACK
    for path in audio_files(folder):
        utterance = path.relative_to(root).as_posix()
        trials.add(Trial(utterance, path, label, attack, NOT_GIVEN), str(path))
