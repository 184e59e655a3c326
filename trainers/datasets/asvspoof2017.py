"""ASVspoof 2017 version 2 (replay attacks).

``protocol_V2/ASVspoof2017_V2_train.trn.txt`` (and ``_dev.trl``, ``_eval.trl``) has 7 columns::

    T_1000001.wav genuine M0001 S01 - - -
    T_1001509.wav spoof M0002 S03 E02 P05 R04
    FILE LABEL SPEAKER PHRASE ENVIRONMENT PLAYBACK RECORDING

The audio is ``ASVspoof2017_V2_train/<FILE>`` (``_dev``, ``_eval``) beside ``protocol_V2/``.
``genuine`` is bona fide. A replay attack is named by its replay configuration,
``ENVIRONMENT-PLAYBACK-RECORDING`` (``E02-P05-R04``), or ``spoof`` when the protocol leaves it out.
The utterance id is the file name without its extension.

``location`` is a protocol file or the folder holding ``protocol_V2/``, where ``subset`` picks
train, dev or eval (all present by default).
"""

from __future__ import annotations

import re
from pathlib import Path

from dfd.trainers.datasets.protocol import (
    AudioFolder,
    TrialCollector,
    attack_of,
    choose_subsets,
    data_lines,
    existing,
    expect_no_subset,
)
from dfd.trainers.datasets.trial import NOT_GIVEN, DatasetError, Label, Trial

SUBSETS = ("train", "dev", "eval")
COLUMNS = "FILE LABEL SPEAKER PHRASE ENVIRONMENT PLAYBACK RECORDING"
LABELS: dict[str, Label] = {"genuine": "bonafide", "spoof": "spoof"}
PROTOCOL_FOLDER = "protocol_V2"
_PROTOCOL_FILE = {
    "train": "ASVspoof2017_V2_train.trn.txt",
    "dev": "ASVspoof2017_V2_dev.trl.txt",
    "eval": "ASVspoof2017_V2_eval.trl.txt",
}
_PROTOCOL_NAME = re.compile(r"ASVspoof2017_V2_(?P<subset>train|dev|eval)\.(trn|trl)\.txt")


def read_asvspoof2017(
    location: str | Path, subset: str | None = None, *, audio_dir: str | Path | None = None
) -> list[Trial]:
    location = existing(location)
    audio = AudioFolder(Path(audio_dir)) if audio_dir is not None else None
    trials = TrialCollector()
    if location.is_dir():
        protocols = {
            name: location / PROTOCOL_FOLDER / file
            for name, file in _PROTOCOL_FILE.items()
            if (location / PROTOCOL_FOLDER / file).is_file()
        }
        if not protocols:
            expected = ", ".join(f"{PROTOCOL_FOLDER}/{file}" for file in _PROTOCOL_FILE.values())
            raise DatasetError(f"no ASVspoof 2017 protocols in {location}: looked for {expected}")
        for name in choose_subsets(subset, SUBSETS, list(protocols), location):
            read_protocol(protocols[name], audio or audio_folder_of(protocols[name]), trials)
    else:
        expect_no_subset(subset, location, "a protocol file is a single subset")
        read_protocol(location, audio or audio_folder_of(location), trials)
    return trials.result(f"{location}" if subset is None else f"{location} (subset {subset})")


def read_protocol(protocol: Path, audio: AudioFolder, trials: TrialCollector) -> None:
    for line in data_lines(protocol):
        line.expect_columns(7, COLUMNS)
        file, label_text, speaker, _, environment, playback, recording = line.fields
        label = line.label(label_text, LABELS)
        replay = (environment, playback, recording)
        attack = NOT_GIVEN if NOT_GIVEN in replay else "-".join(replay)
        path = audio.find(line, file, ("",))
        trial = Trial(Path(file).stem, path, label, attack_of(label, attack), speaker)
        trials.add(trial, line.where)


def audio_folder_of(protocol: Path) -> AudioFolder:
    match = _PROTOCOL_NAME.fullmatch(protocol.name)
    if match is None:
        raise DatasetError(
            f"cannot tell which subset {protocol} is (official names are"
            f" {', '.join(_PROTOCOL_FILE.values())}); give the audio folder as audio_dir"
        )
    name = f"ASVspoof2017_V2_{match['subset']}"
    candidates = [protocol.parent.parent / name, protocol.parent / name]
    for candidate in candidates:
        if candidate.is_dir():
            return AudioFolder(candidate)
    raise DatasetError(
        f"cannot find the audio folder of {protocol}: none of"
        f" {', '.join(map(str, candidates))} exists (give the audio folder as audio_dir)"
    )
