"""In-the-Wild (Müller et al., Interspeech 2022): recordings of public figures, real and faked.

``<root>/meta.csv`` has the header ``file,speaker,label``::

    file,speaker,label
    0.wav,Alec Guinness,spoof
    1.wav,Alec Guinness,bona-fide

and the audio lies at ``<root>/<file>``. ``bona-fide`` is bona fide. The utterance id is the file
name without its extension; In-the-Wild names no attacks. ``location`` is the folder or its
``meta.csv``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from dfd.trainers.datasets.protocol import (
    AudioFolder,
    TrialCollector,
    attack_of,
    data_lines,
    existing,
    expect_no_subset,
)
from dfd.trainers.datasets.trial import NOT_GIVEN, DatasetError, Label, Trial

META_FILE = "meta.csv"
HEADER = ("file", "speaker", "label")
LABELS: dict[str, Label] = {"bona-fide": "bonafide", "spoof": "spoof"}


def read_in_the_wild(location: str | Path, subset: str | None = None) -> list[Trial]:
    location = existing(location)
    expect_no_subset(subset, location, "In-the-Wild has no subsets")
    meta = location / META_FILE if location.is_dir() else location
    if not meta.is_file():
        raise DatasetError(f"no such metadata file: {meta}")
    audio = AudioFolder(meta.parent)
    trials = TrialCollector()
    lines = data_lines(meta, split=split_csv)
    header = next(lines, None)
    if header is None:
        raise DatasetError(f"no trials in {meta}")
    missing = [name for name in HEADER if name not in header.fields]
    if missing:
        raise header.error(f"the header lacks {', '.join(missing)} (expected {','.join(HEADER)})")
    file_column, speaker_column, label_column = (header.fields.index(name) for name in HEADER)
    for line in lines:
        line.expect_columns(len(header.fields), ",".join(header.fields))
        file, speaker = line.fields[file_column], line.fields[speaker_column].strip()
        if not file:
            raise line.error("empty file name")
        label = line.label(line.fields[label_column], LABELS)
        path = audio.find(line, file, ("",))
        utterance = Path(file).with_suffix("").as_posix()
        trial = Trial(utterance, path, label, attack_of(label, NOT_GIVEN), speaker or NOT_GIVEN)
        trials.add(trial, line.where)
    return trials.result(str(meta))


def split_csv(text: str) -> list[str]:
    return next(csv.reader([text]))
