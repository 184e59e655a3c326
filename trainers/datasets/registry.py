"""The readers by dataset kind, and ``read_dataset``, the one way in for trainers and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dfd.trainers.datasets.asvspoof2017 import read_asvspoof2017
from dfd.trainers.datasets.asvspoof2019 import read_asvspoof2019
from dfd.trainers.datasets.asvspoof2021 import read_asvspoof2021
from dfd.trainers.datasets.decro import read_decro
from dfd.trainers.datasets.detect import detect_kind
from dfd.trainers.datasets.fake_or_real import read_fake_or_real
from dfd.trainers.datasets.folders import read_folders
from dfd.trainers.datasets.in_the_wild import read_in_the_wild
from dfd.trainers.datasets.protocol import existing
from dfd.trainers.datasets.trial import DatasetError, Trial

Reader = Callable[[Path, str | None], list[Trial]]

READERS: dict[str, Reader] = {
    "asvspoof2019": read_asvspoof2019,
    "asvspoof2021": read_asvspoof2021,
    "asvspoof2017": read_asvspoof2017,
    "fake-or-real": read_fake_or_real,
    "decro": read_decro,
    "in-the-wild": read_in_the_wild,
    "folders": read_folders,
}
AUTO = "auto"


def reader_for(kind: str) -> Reader:
    try:
        return READERS[kind]
    except KeyError:
        known = ", ".join([AUTO, *READERS])
        raise DatasetError(f"unknown dataset kind {kind!r} (known: {known})") from None


def read_dataset(location: str | Path, kind: str = AUTO, subset: str | None = None) -> list[Trial]:
    """Every trial of the dataset at ``location`` (a folder or a protocol file), or of its
    ``subset``, whose meaning depends on the kind: train/dev/eval for ASVspoof 2019 and 2017,
    eval/progress/hidden_track for ASVspoof 2021, training/validation/testing for Fake-or-Real,
    a list, language or partition for DECRO; In-the-Wild and plain folders have none."""
    reader = None if kind == AUTO else reader_for(kind)
    location = existing(location)
    return (reader or reader_for(detect_kind(location)))(location, subset)
