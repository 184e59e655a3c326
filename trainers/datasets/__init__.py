"""Readers for anti-spoofing datasets: the open corpus and the public ones, behind one interface.

``read_dataset(location, kind="auto", subset=None)`` returns a list of :class:`Trial`; every
problem with the files (a missing audio file, an unknown label, a malformed or duplicated line, an
empty set) is a :class:`DatasetError` naming the file and, where there is one, the line.
"""

from dfd.trainers.datasets.asvspoof2017 import read_asvspoof2017
from dfd.trainers.datasets.asvspoof2019 import read_asvspoof2019, write_asvspoof2019_protocol
from dfd.trainers.datasets.asvspoof2021 import read_asvspoof2021
from dfd.trainers.datasets.decro import read_decro
from dfd.trainers.datasets.detect import detect_kind
from dfd.trainers.datasets.fake_or_real import read_fake_or_real
from dfd.trainers.datasets.folders import read_folders
from dfd.trainers.datasets.in_the_wild import read_in_the_wild
from dfd.trainers.datasets.registry import READERS, Reader, read_dataset, reader_for
from dfd.trainers.datasets.trial import DatasetError, Label, Trial

__all__ = [
    "READERS",
    "DatasetError",
    "Label",
    "Reader",
    "Trial",
    "detect_kind",
    "read_asvspoof2017",
    "read_asvspoof2019",
    "read_asvspoof2021",
    "read_dataset",
    "read_decro",
    "read_fake_or_real",
    "read_folders",
    "read_in_the_wild",
    "reader_for",
    "write_asvspoof2019_protocol",
]
