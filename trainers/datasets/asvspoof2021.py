"""ASVspoof 2021 LA and DF evaluation keys (the ``LA-keys-full`` and ``DF-keys-full`` packages).

``keys/LA/CM/trial_metadata.txt`` has 8 columns::

    LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval
    SPEAKER UTTERANCE CODEC TRANSMISSION ATTACK LABEL TRIM SUBSET

``keys/DF/CM/trial_metadata.txt`` has 13: the same first eight, with the compression in place of
the codec and the source corpus in place of the transmission, then the vocoder type and four more
columns dfd does not use::

    LA_0043 DF_E_2000026 mp3m4a asvspoof A09 spoof notrim eval traditional_vocoder - - - -

The trial's condition is the codec (LA) or the compression (DF). The column count of the first
line tells LA from DF. ``subset`` keeps the trials whose SUBSET column is ``eval``, ``progress``
or ``hidden_track`` (all by default).

``location`` is the key file, or a folder under which exactly one key file lies (at
``keys/{LA,DF}/CM/``, ``{LA,DF}/CM/``, ``CM/`` or the folder itself). The audio is
``ASVspoof2021_{LA,DF}_eval/flac/<UTTERANCE>.flac`` (or ``.wav``), looked for in the folders up to
three levels above the key file (the folder holding ``keys/`` in the official packages), unless
``audio_dir`` says where.
"""

from __future__ import annotations

from pathlib import Path

from dfd.trainers.datasets.protocol import (
    BONAFIDE_OR_SPOOF,
    AudioFolder,
    TrialCollector,
    attack_of,
    data_lines,
    existing,
    first_data_line,
)
from dfd.trainers.datasets.trial import DatasetError, Trial

SUBSETS = ("eval", "progress", "hidden_track")
KEY_FILE = "trial_metadata.txt"
KEY_FOLDERS = ("keys/LA/CM", "keys/DF/CM", "LA/CM", "DF/CM", "CM", ".")
EXTENSIONS = (".flac", ".wav")
TRACK_COLUMNS = {
    8: ("LA", "SPEAKER UTTERANCE CODEC TRANSMISSION ATTACK LABEL TRIM SUBSET"),
    13: ("DF", "SPEAKER UTTERANCE COMPRESSION SOURCE ATTACK LABEL TRIM SUBSET VOCODER + 4"),
}
_AUDIO_SEARCH_DEPTH = 4


def read_asvspoof2021(
    location: str | Path, subset: str | None = None, *, audio_dir: str | Path | None = None
) -> list[Trial]:
    location = existing(location)
    if subset is not None and subset not in SUBSETS:
        raise DatasetError(
            f"unknown subset {subset!r} for {location} (known: {', '.join(SUBSETS)})"
        )
    key_file = key_file_in(location) if location.is_dir() else location
    first = first_data_line(key_file)
    if first is None:
        raise DatasetError(f"no trials in {key_file}")
    if len(first.fields) not in TRACK_COLUMNS:
        layouts = " or ".join(f"{count} ({track})" for count, (track, _) in TRACK_COLUMNS.items())
        raise first.error(f"expected {layouts} columns, found {len(first.fields)}")
    columns = len(first.fields)
    track, layout = TRACK_COLUMNS[columns]
    audio = (
        AudioFolder(Path(audio_dir)) if audio_dir is not None else audio_folder_of(key_file, track)
    )
    trials = TrialCollector()
    for line in data_lines(key_file):
        line.expect_columns(columns, f"ASVspoof 2021 {track}: {layout}")
        speaker, utterance, condition, _, attack, label_text, _, trial_subset = line.fields[:8]
        label = line.label(label_text, BONAFIDE_OR_SPOOF)
        if trial_subset not in SUBSETS:
            raise line.error(f"unknown subset {trial_subset!r} (expected {', '.join(SUBSETS)})")
        if subset is not None and trial_subset != subset:
            continue
        path = audio.find(line, utterance, EXTENSIONS)
        trial = Trial(utterance, path, label, attack_of(label, attack), speaker, condition)
        trials.add(trial, line.where)
    return trials.result(f"{key_file}" if subset is None else f"{key_file} (subset {subset})")


def key_file_in(folder: Path) -> Path:
    found = [
        folder / place / KEY_FILE for place in KEY_FOLDERS if (folder / place / KEY_FILE).is_file()
    ]
    if not found:
        places = ", ".join(f"{place}/{KEY_FILE}" for place in KEY_FOLDERS)
        raise DatasetError(f"no ASVspoof 2021 key file in {folder}: looked for {places}")
    if len(found) > 1:
        raise DatasetError(
            f"{folder} holds several ASVspoof 2021 key files ({', '.join(map(str, found))});"
            " give the one to read"
        )
    return found[0]


def audio_folder_of(key_file: Path, track: str) -> AudioFolder:
    name = f"ASVspoof2021_{track}_eval"
    candidates = [folder / name / "flac" for folder in list(key_file.parents)[:_AUDIO_SEARCH_DEPTH]]
    for candidate in candidates:
        if candidate.is_dir():
            return AudioFolder(candidate)
    raise DatasetError(
        f"cannot find the audio folder of {key_file}: none of"
        f" {', '.join(map(str, candidates))} exists (give the audio folder as audio_dir)"
    )
