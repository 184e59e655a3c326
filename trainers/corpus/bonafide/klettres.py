"""klettres: one native speaker per language saying letters and syllables (Ogg Vorbis, 44.1 kHz).

A single letter is too short to judge, so four consecutive letters of one speaker make one
utterance (the builder keeps a natural pause around each).
"""

from __future__ import annotations

from pathlib import Path

from dfd.trainers.corpus.bonafide.family import BonafideFamily
from dfd.trainers.corpus.recordings import FilePart, SpeechRecording

KLETTRES = Path("/usr/share/klettres")
LETTERS_PER_UTTERANCE = 4
MIN_FILE_BYTES = 1024
# klettres names its folders by locale; the corpus speaks ISO 639-1
LANGUAGE_OF_FOLDER = {"en_GB": "en", "pt_BR": "pt", "nds": "nds"}


def discover() -> list[SpeechRecording]:
    recordings = []
    for directory in sorted(path for path in KLETTRES.iterdir() if path.is_dir()):
        paths = [
            path
            for path in sorted(directory.glob("*/*.ogg"))
            if path.stat().st_size >= MIN_FILE_BYTES
        ]
        speaker = f"klettres-{directory.name}"
        for index in range(0, len(paths), LETTERS_PER_UTTERANCE):
            recordings.append(
                SpeechRecording(
                    family="klettres",
                    speaker=speaker,
                    language=LANGUAGE_OF_FOLDER.get(directory.name, directory.name),
                    key=f"{speaker}:letters-{index // LETTERS_PER_UTTERANCE:03d}",
                    parts=tuple(FilePart(p) for p in paths[index : index + LETTERS_PER_UTTERANCE]),
                    text=None,
                    origin="Ogg Vorbis 44.1 kHz",
                    package="debian:klettres-data",
                )
            )
    return recordings


FAMILY = BonafideFamily(
    name="klettres",
    packages=("debian:klettres-data",),
    licence="GPL-2+ (klettres-data)",
    description="letters and syllables, one native speaker per language, 20 languages",
    discover=discover,
    left_out="files under 1 kB",
)
