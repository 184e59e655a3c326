"""The Fake-or-Real dataset (FoR: for-original, for-norm, for-2sec, for-rerec), York University.

Layout: ``<root>/{training,validation,testing}/{real,fake}/*.wav``. ``subset`` picks training,
validation or testing (all present by default). The utterance id is the file's path under the
root (``training/real/file1.wav``): FoR's file names repeat across its folders. FoR names no
attacks or speakers.
"""

from __future__ import annotations

from pathlib import Path

from dfd.trainers.datasets.folders import add_audio_under
from dfd.trainers.datasets.protocol import TrialCollector, choose_subsets, existing
from dfd.trainers.datasets.trial import DatasetError, Label, Trial

SUBSETS = ("training", "validation", "testing")
CLASS_FOLDERS: dict[str, Label] = {"real": "bonafide", "fake": "spoof"}


def read_fake_or_real(location: str | Path, subset: str | None = None) -> list[Trial]:
    location = existing(location, folder=True)
    present = [name for name in SUBSETS if (location / name).is_dir()]
    trials = TrialCollector()
    for name in choose_subsets(subset, SUBSETS, present, location):
        classes = [folder for folder in CLASS_FOLDERS if (location / name / folder).is_dir()]
        if not classes:
            raise DatasetError(f"{location / name} has neither real/ nor fake/")
        for folder in classes:
            add_audio_under(location, location / name / folder, CLASS_FOLDERS[folder], trials)
    return trials.result(f"{location}" if subset is None else f"{location} (subset {subset})")
