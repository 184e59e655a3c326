"""Drascula: The Vampire Strikes Back (Alcachofa Soft, 1996): voice acting in English and Spanish.

Each line is one ``.ALS`` file, headerless 8-bit unsigned PCM at 11.025 kHz. ScummVM's
``engines/drascula/talk.cpp`` names a line's file after its speaker: ``<n>`` John Hacker, ``I``
Igor, ``D`` Drascula (``D68`` on: the blind man, ``TEXTD_START``), ``T`` the bartender, ``BJ``
B.J., ``P`` the pianist, ``B`` the drunk, ``VB`` Von Braun, ``L`` the werewolf, ``E`` the
musician. ``S`` files are sound effects; the three ``F`` files are not spoken by the talk code.

The speaker is ``drascula-<language>-<character>``: the English and Spanish casts differ, and a
cast member may voice several characters (the package does not say).

``drascula-italian`` is left out: it has Italian subtitles over the English voices (722 of its 783
files correlate above 0.9 with the English file of the same name; ``README.Debian``: only the
Spanish version has its own voices), and the language of its other 61 files is not known.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from dfd.trainers.corpus.bonafide.family import BonafideFamily
from dfd.trainers.corpus.recordings import RawPcmPart, SpeechRecording

GAME_DATA = Path("/usr/share/scummvm/drascula")
PACKAGE_OF_LANGUAGE = {"en": "drascula", "es": "drascula-spanish"}
SAMPLE_RATE = 11_025
ORIGIN = "PCM 8-bit 11.025 kHz"
BLIND_MAN_FIRST_LINE = 68  # ScummVM's TEXTD_START: the blind man's lines share the ``D`` prefix

LINE_FILE = re.compile(r"(?P<prefix>BJ|VB|[BDEFILPST]?)(?P<number>\d+)\.ALS", re.IGNORECASE)
CHARACTER_OF_PREFIX = {
    "": "hacker",
    "I": "igor",
    "D": "drascula",
    "T": "bartender",
    "BJ": "bj",
    "P": "pianist",
    "B": "drunk",
    "VB": "vonbraun",
    "L": "werewolf",
    "E": "musician",
}

# Spanish files that are the English recording (not always byte-identical): their waveform
# correlates above 0.99 with the English file of the same name and length (within 200 samples).
# Measured over every Spanish file; ``F1``-``F3`` are left out by name already.
COPIES_OF_ENGLISH: tuple[str, ...] = (
    "25", "255", "256", "257", "258", "259", "366", "39", "40", "47", "49", "51", "52", "53",
    "62", "63", "64", "B61", "B62", "D40", "D79", "D80", "D81",
)  # fmt: skip


def character_of_file(name: str) -> str | None:
    """The character speaking an ``.ALS`` file, ``None`` for sound effects and unknown files."""
    match = LINE_FILE.fullmatch(name)
    if match is None:
        return None
    prefix = match["prefix"].upper()
    if prefix == "D" and int(match["number"]) >= BLIND_MAN_FIRST_LINE:
        return "blindman"
    return CHARACTER_OF_PREFIX.get(prefix)


def discover() -> list[SpeechRecording]:
    """Every spoken line of every language, sorted; a file identical to one already kept (a
    language copying another's recording) is kept once, under the first language."""
    recordings = []
    seen_digests: set[str] = set()
    for language, package in PACKAGE_OF_LANGUAGE.items():
        for path in sorted((GAME_DATA / language).glob("*.ALS")):
            character = character_of_file(path.name)
            if character is None or (language != "en" and path.stem.upper() in COPIES_OF_ENGLISH):
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in seen_digests:
                continue
            seen_digests.add(digest)
            recordings.append(
                SpeechRecording(
                    family="drascula",
                    speaker=f"drascula-{language}-{character}",
                    language=language,
                    key=f"drascula:{language}:{path.stem}",
                    parts=(RawPcmPart(path.resolve(), SAMPLE_RATE, "u8"),),
                    text=None,
                    origin=ORIGIN,
                    package=f"debian:{package}",
                    text_group=f"drascula:{path.stem.upper()}",
                )
            )
    return recordings


FAMILY = BonafideFamily(
    name="drascula",
    packages=tuple(f"debian:{package}" for package in PACKAGE_OF_LANGUAGE.values()),
    licence="Drascula licence (freeware, BSD-like; (C) 1996-2008 Alcachofa Soft S.L.)",
    description="voice acting of an adventure game in en and es, one speaker per character "
    "and language",
    discover=discover,
    left_out=(
        "sound effects (S*.ALS); the F*.ALS files (not played by the talk code); Spanish files "
        "that copy the English recording; drascula-italian (English voices, Italian subtitles)"
    ),
)
