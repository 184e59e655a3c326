"""Tell the kind of a dataset from its layout, for ``read_dataset(location, kind="auto")``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dfd.trainers.datasets import asvspoof2017, asvspoof2019, asvspoof2021, decro, fake_or_real
from dfd.trainers.datasets.folders import class_folders
from dfd.trainers.datasets.in_the_wild import META_FILE
from dfd.trainers.datasets.protocol import first_data_line
from dfd.trainers.datasets.trial import DatasetError


def _asvspoof2019(folder: Path) -> bool:
    return (folder / asvspoof2019.CORPUS_PROTOCOLS).is_dir() or any(
        folder.glob(asvspoof2019.OFFICIAL_PROTOCOLS_GLOB)
    )


def _asvspoof2021(folder: Path) -> bool:
    places = asvspoof2021.KEY_FOLDERS
    return any((folder / place / asvspoof2021.KEY_FILE).is_file() for place in places)


def _asvspoof2017(folder: Path) -> bool:
    return (folder / asvspoof2017.PROTOCOL_FOLDER).is_dir()


# kind, what marks it, and the test for that mark
FOLDER_MARKS: tuple[tuple[str, str, Callable[[Path], bool]], ...] = (
    ("asvspoof2019", "protocols/ or ASVspoof2019_*_cm_protocols/", _asvspoof2019),
    ("asvspoof2021", "keys/{LA,DF}/CM/trial_metadata.txt", _asvspoof2021),
    ("asvspoof2017", "protocol_V2/", _asvspoof2017),
    (
        "fake-or-real",
        "training/, validation/ or testing/",
        lambda folder: any((folder / name).is_dir() for name in fake_or_real.SUBSETS),
    ),
    ("decro", "{en,ch,zh}_{train,dev,eval}.txt", lambda folder: bool(decro.lists_in(folder))),
    ("in-the-wild", META_FILE, lambda folder: (folder / META_FILE).is_file()),
    (
        "folders",
        "real/ and fake/ (or bonafide/ and spoof/)",
        lambda folder: bool(class_folders(folder)),
    ),
)
PROTOCOL_COLUMNS = {5: "asvspoof2019", 7: "asvspoof2017", 8: "asvspoof2021", 13: "asvspoof2021"}


def detect_kind(location: Path) -> str:
    """The one dataset kind whose layout ``location`` has; none or several is an error asking for
    the kind to be given."""
    if location.is_file():
        return _file_kind(location)
    if not location.is_dir():
        raise DatasetError(f"no such file or folder: {location}")
    kinds = [kind for kind, _, marked in FOLDER_MARKS if marked(location)]
    if len(kinds) == 1:
        return kinds[0]
    if not kinds:
        marks = "; ".join(f"{mark} ({kind})" for kind, mark, _ in FOLDER_MARKS)
        raise DatasetError(
            f"cannot tell what kind of dataset {location} is: it holds none of {marks};"
            " give the kind (--kind)"
        )
    raise DatasetError(
        f"{location} looks like more than one kind of dataset ({', '.join(kinds)});"
        " give the kind (--kind)"
    )


def _file_kind(path: Path) -> str:
    if path.suffix.lower() == ".csv":
        return "in-the-wild"
    if path.suffix.lower() == ".txt":
        first = first_data_line(path)
        columns = len(first.fields) if first is not None else 0
        if columns == 5 and decro.LIST_NAME.fullmatch(path.name):
            return "decro"
        if columns in PROTOCOL_COLUMNS:
            return PROTOCOL_COLUMNS[columns]
        found = f"its first line has {columns} columns" if first else "it holds no lines"
    else:
        found = "it is neither a .txt protocol nor a .csv list"
    raise DatasetError(
        f"cannot tell what kind of dataset {path} is ({found}; a protocol has 5 columns for"
        " ASVspoof 2019 or DECRO, 7 for ASVspoof 2017, 8 or 13 for ASVspoof 2021); give the kind"
        " (--kind)"
    )
