"""DECRO, the English-Chinese deepfake cross-lingual evaluation set (Ba et al., WWW 2023;
github.com/petrichorwq/DECRO-dataset, zenodo.org/record/7603208).

One list per language and partition at the root, ``en_train.txt``, ``en_dev.txt``,
``en_eval.txt``, ``ch_train.txt``, ``ch_dev.txt``, ``ch_eval.txt``, each line in the ASVspoof 2019
format::

    4 4-727-124443-0055 - baidu spoof
    SPEAKER UTTERANCE - SYSTEM LABEL

and the audio of each list in the folder of the same name: ``en_eval/4-727-124443-0055.wav``
(``.flac`` accepted too). ``zh_`` is accepted wherever ``ch_`` is.

Assumption: this layout comes from two independent public loaders of DECRO that agree on it, not
from a copy of the dataset, which dfd has not seen. (Neither knows of an ``inner/wav/`` tree or
of ``<path> <label>`` lists.)

``location`` is the DECRO folder or one list file. ``subset`` picks lists by name (``en_eval``),
language (``en``, ``ch``) or partition (``eval``: both languages); by default every list present
is read.
"""

from __future__ import annotations

import re
from pathlib import Path

from dfd.trainers.datasets.asvspoof2019 import read_protocol
from dfd.trainers.datasets.protocol import (
    AudioFolder,
    TrialCollector,
    existing,
    expect_no_subset,
)
from dfd.trainers.datasets.trial import DatasetError, Trial

LANGUAGES = ("en", "ch", "zh")
PARTITIONS = ("train", "dev", "eval")
EXTENSIONS = (".wav", ".flac")
LIST_NAME = re.compile(r"(?P<language>en|ch|zh)_(?P<partition>train|dev|eval)\.txt")


def read_decro(location: str | Path, subset: str | None = None) -> list[Trial]:
    location = existing(location)
    trials = TrialCollector()
    if location.is_dir():
        for list_file in chosen_lists(location, subset):
            read_protocol(list_file, audio_folder_of(list_file), trials, EXTENSIONS)
    else:
        expect_no_subset(subset, location, "a DECRO list is a single subset")
        read_protocol(location, audio_folder_of(location), trials, EXTENSIONS)
    return trials.result(f"{location}" if subset is None else f"{location} (subset {subset})")


def lists_in(folder: Path) -> list[Path]:
    return sorted(
        path for path in folder.iterdir() if LIST_NAME.fullmatch(path.name) and path.is_file()
    )


def chosen_lists(folder: Path, subset: str | None) -> list[Path]:
    present = lists_in(folder)
    if not present:
        raise DatasetError(
            f"no DECRO lists in {folder}: looked for {{en,ch,zh}}_{{train,dev,eval}}.txt"
        )
    if subset is None:
        return present
    lists = {f"{language}_{partition}" for language in LANGUAGES for partition in PARTITIONS}
    known = {*LANGUAGES, *PARTITIONS, *lists}
    if subset not in known:
        raise DatasetError(
            f"unknown subset {subset!r} for {folder} (known: a list name such as en_eval,"
            f" a language {', '.join(LANGUAGES)} or a partition {', '.join(PARTITIONS)})"
        )
    chosen = [path for path in present if subset in (path.stem, *path.stem.split("_"))]
    if not chosen:
        raise DatasetError(
            f"{folder}: no DECRO list for subset {subset!r} (present: "
            f"{', '.join(path.name for path in present)})"
        )
    return chosen


def audio_folder_of(list_file: Path) -> AudioFolder:
    folder = list_file.with_suffix("")
    if not folder.is_dir():
        raise DatasetError(f"cannot find the audio folder of {list_file}: {folder} does not exist")
    return AudioFolder(folder)
