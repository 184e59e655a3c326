"""What every reader shares: protocol lines that know where they came from, label maps, audio
lookup in large folders, and the checks every dataset must pass (unique ids, at least one trial)."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dfd.trainers.datasets.trial import NOT_GIVEN, UNKNOWN_ATTACK, DatasetError, Label, Trial

BONAFIDE_OR_SPOOF: Mapping[str, Label] = {"bonafide": "bonafide", "spoof": "spoof"}

# The extensions dfd.dsp.audio_io decodes: libsndfile's, ffmpeg's and headerless telephony codecs.
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".g722", ".722", ".gsm"}
    | {".ul", ".ulaw", ".mulaw", ".mu", ".al", ".alaw"}
)


@dataclass(frozen=True)
class Line:
    """One data line of a protocol file, split on whitespace (or on commas for CSV)."""

    source: Path
    number: int
    text: str
    fields: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.source}, line {self.number}"

    def error(self, problem: str) -> DatasetError:
        return DatasetError(f"{self.where}: {problem}: {self.text!r}")

    def expect_columns(self, count: int, layout: str) -> None:
        if len(self.fields) != count:
            raise self.error(f"expected {count} columns ({layout}), found {len(self.fields)}")

    def label(self, value: str, labels: Mapping[str, Label]) -> Label:
        try:
            return labels[value]
        except KeyError:
            expected = ", ".join(map(repr, labels))
            raise self.error(f"unknown label {value!r} (expected {expected})") from None


def data_lines(
    path: Path, split: Callable[[str], list[str]] = str.split
) -> Generator[Line, None, None]:
    """The non-blank lines of ``path`` that are not ``#`` comments, numbered from 1 and split on
    whitespace (or by ``split``)."""
    if not path.is_file():
        raise DatasetError(f"no such protocol file: {path}")
    try:
        with path.open(encoding="utf-8-sig") as lines:
            for number, raw in enumerate(lines, start=1):
                text = raw.strip()
                if text and not text.startswith("#"):
                    yield Line(path, number, text, tuple(split(text)))
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text ({error})") from error


def first_data_line(path: Path) -> Line | None:
    lines = data_lines(path)
    try:
        return next(lines, None)
    finally:
        lines.close()


def existing(location: str | Path, folder: bool = False) -> Path:
    path = Path(location)
    if not path.exists():
        raise DatasetError(f"no such file or folder: {path}")
    if folder and not path.is_dir():
        raise DatasetError(f"{path} is not a folder")
    return path


def attack_of(label: Label, column: str) -> str:
    """The trial's attack: ``"-"`` for bona fide, else the named attack or ``"spoof"``."""
    if label == "bonafide":
        return NOT_GIVEN
    return column if column != NOT_GIVEN else UNKNOWN_ATTACK


class AudioFolder:
    """A folder of audio files, listed once rather than probed once per file: ASVspoof 2021 DF
    names more than 600 000 files."""

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise DatasetError(f"no such audio folder: {folder}")
        self.folder = folder
        self._names: frozenset[str] | None = None

    def find(self, line: Line, stem: str, extensions: Sequence[str]) -> Path:
        """``folder/stem+ext`` for the first extension that exists; a missing file is an error
        naming the protocol line that asked for it."""
        for extension in extensions:
            if self._contains(stem + extension):
                return self.folder / (stem + extension)
        alternatives = f" (nor {', '.join(extensions[1:])})" if len(extensions) > 1 else ""
        raise line.error(
            f"audio file {self.folder / (stem + extensions[0])} not found{alternatives}"
        )

    def _contains(self, name: str) -> bool:
        if "/" in name:
            return (self.folder / name).is_file()
        if self._names is None:
            with os.scandir(self.folder) as entries:
                self._names = frozenset(entry.name for entry in entries if entry.is_file())
        return name in self._names


class TrialCollector:
    """Gathers trials, refusing a second trial with the same utterance id."""

    def __init__(self) -> None:
        self._trials: list[Trial] = []
        self._first_given: dict[str, str] = {}

    def add(self, trial: Trial, where: str) -> None:
        first = self._first_given.get(trial.utterance_id)
        if first is not None:
            raise DatasetError(
                f"{where}: utterance id {trial.utterance_id!r} was already given at {first}"
            )
        self._first_given[trial.utterance_id] = where
        self._trials.append(trial)

    def result(self, source: str) -> list[Trial]:
        if not self._trials:
            raise DatasetError(f"no trials in {source}")
        return self._trials


def audio_files(folder: Path) -> list[Path]:
    """Every audio file under ``folder``, recursively and sorted; hidden files (such as the
    ``._name.wav`` forks macOS leaves in archives) are skipped."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in AUDIO_EXTENSIONS
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.is_file()
    )


def expect_no_subset(subset: str | None, location: Path, why: str) -> None:
    if subset is not None:
        raise DatasetError(f"{location}: subset {subset!r} does not apply here ({why})")


def choose_subsets(
    subset: str | None, known: Sequence[str], present: Sequence[str], location: Path
) -> list[str]:
    """``present`` (in ``known`` order) when no subset is asked for, else the one asked for."""
    if subset is None:
        if not present:
            raise DatasetError(f"no trials in {location}: none of {', '.join(known)} is there")
        return [name for name in known if name in present]
    if subset not in known:
        raise DatasetError(f"unknown subset {subset!r} for {location} (known: {', '.join(known)})")
    if subset not in present:
        raise DatasetError(f"{location}: subset {subset!r} is not there")
    return [subset]
