"""ASVspoof 2019 countermeasure protocols (LA and PA), and dfd's own open corpus, which uses the
same format.

A protocol line is ``SPEAKER UTTERANCE ENVIRONMENT ATTACK LABEL``::

    LA_0079 LA_T_1138215 - - bonafide
    LA_0079 LA_T_1271820 - A01 spoof

The third column is ``-`` in LA and the acoustic environment in PA; it becomes the trial's
condition. The audio is ``<audio folder>/<UTTERANCE>.flac``, or ``.wav`` when there is no FLAC.

Where the files lie:

- the official tree: ``LA/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.train.trn.txt`` (and
  ``dev.trl``, ``eval.trl``) with audio in ``LA/ASVspoof2019_LA_train/flac/`` (``_dev``, ``_eval``);
- dfd's corpus: ``DIR/protocols/{train,dev,eval}.txt`` with audio in ``DIR/audio/``.

``location`` is a protocol file, or the ``LA`` (``PA``) folder or corpus folder, where ``subset``
picks train, dev or eval (all present by default). Without ``audio_dir`` the audio folder of a
protocol file is the one the official tree or the corpus gives it, else ``flac/`` or ``audio/``
beside or above the protocol.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from dfd.trainers.datasets.protocol import (
    BONAFIDE_OR_SPOOF,
    AudioFolder,
    TrialCollector,
    attack_of,
    choose_subsets,
    data_lines,
    existing,
    expect_no_subset,
)
from dfd.trainers.datasets.trial import DatasetError, Trial

SUBSETS = ("train", "dev", "eval")
COLUMNS = "SPEAKER UTTERANCE ENVIRONMENT ATTACK LABEL"
EXTENSIONS = (".flac", ".wav")
CORPUS_PROTOCOLS = "protocols"
CORPUS_AUDIO = "audio"
OFFICIAL_PROTOCOLS_GLOB = "ASVspoof2019_*_cm_protocols"
_OFFICIAL_FILE_PART = {"train": "train.trn", "dev": "dev.trl", "eval": "eval.trl"}
_OFFICIAL_NAME = re.compile(
    r"ASVspoof2019\.(?P<track>LA|PA)\.cm\.(?P<subset>train|dev|eval)\.(trn|trl)\.txt"
)


def read_asvspoof2019(
    location: str | Path, subset: str | None = None, *, audio_dir: str | Path | None = None
) -> list[Trial]:
    location = existing(location)
    audio = AudioFolder(Path(audio_dir)) if audio_dir is not None else None
    trials = TrialCollector()
    if location.is_dir():
        protocols = protocols_in(location)
        for name in choose_subsets(subset, SUBSETS, list(protocols), location):
            read_protocol(protocols[name], audio or audio_folder_of(protocols[name]), trials)
    else:
        expect_no_subset(subset, location, "a protocol file is a single subset")
        read_protocol(location, audio or audio_folder_of(location), trials)
    return trials.result(f"{location}" if subset is None else f"{location} (subset {subset})")


def read_protocol(
    protocol: Path,
    audio: AudioFolder,
    trials: TrialCollector,
    extensions: tuple[str, ...] = EXTENSIONS,
) -> None:
    for line in data_lines(protocol):
        line.expect_columns(5, COLUMNS)
        speaker, utterance, environment, attack, label_text = line.fields
        label = line.label(label_text, BONAFIDE_OR_SPOOF)
        path = audio.find(line, utterance, extensions)
        trial = Trial(utterance, path, label, attack_of(label, attack), speaker, environment)
        trials.add(trial, line.where)


def protocols_in(folder: Path) -> dict[str, Path]:
    """The protocol file of each subset in ``folder``, as the corpus or the official tree has it."""
    corpus = {
        name: folder / CORPUS_PROTOCOLS / f"{name}.txt"
        for name in SUBSETS
        if (folder / CORPUS_PROTOCOLS / f"{name}.txt").is_file()
    }
    layouts = [corpus] if corpus else []
    for official_folder in sorted(folder.glob(OFFICIAL_PROTOCOLS_GLOB)):
        track = official_folder.name.split("_")[1]
        official = {
            name: official_folder / f"ASVspoof2019.{track}.cm.{part}.txt"
            for name, part in _OFFICIAL_FILE_PART.items()
            if (official_folder / f"ASVspoof2019.{track}.cm.{part}.txt").is_file()
        }
        if official:
            layouts.append(official)
    if not layouts:
        raise DatasetError(
            f"no ASVspoof 2019 protocols in {folder}: looked for"
            f" {CORPUS_PROTOCOLS}/{{train,dev,eval}}.txt and"
            f" {OFFICIAL_PROTOCOLS_GLOB}/ASVspoof2019.*.cm.*.txt"
        )
    if len(layouts) > 1:
        found = ", ".join(str(next(iter(layout.values())).parent) for layout in layouts)
        raise DatasetError(f"{folder} holds several sets of protocols ({found}); give one file")
    return layouts[0]


def audio_folder_of(protocol: Path) -> AudioFolder:
    candidates = []
    official = _OFFICIAL_NAME.fullmatch(protocol.name)
    if official is not None:
        part = f"ASVspoof2019_{official['track']}_{official['subset']}"
        candidates.append(protocol.parent.parent / part / "flac")
    candidates += [
        folder / name
        for folder in (protocol.parent, protocol.parent.parent)
        for name in ("flac", CORPUS_AUDIO)
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return AudioFolder(candidate)
    raise DatasetError(
        f"cannot find the audio folder of {protocol}: none of"
        f" {', '.join(map(str, candidates))} exists (give the audio folder as audio_dir)"
    )


def write_asvspoof2019_protocol(trials: Iterable[Trial], path: str | Path) -> Path:
    """Write ``trials`` as ``SPEAKER UTTERANCE CONDITION ATTACK LABEL`` lines, which
    :func:`read_asvspoof2019` reads back; the audio must lie at ``<audio folder>/<UTTERANCE>.flac``
    (or ``.wav``), since a protocol does not hold paths."""
    path = Path(path)
    lines = []
    for trial in trials:
        fields = (trial.speaker, trial.utterance_id, trial.condition, trial.attack, trial.label)
        if any(field.split() != [field] for field in fields) or trial.speaker.startswith("#"):
            raise DatasetError(
                f"{path}: cannot write trial {trial.utterance_id!r}: protocol fields must be"
                f" single words and the speaker must not start with '#', got {fields}"
            )
        lines.append(" ".join(fields) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")
    return path
