"""Bona fide speech from Debian packages: professional telephony prompts and spoken letters.

Every source is a real human recording. Transcripts, where Asterisk ships them (en, it, ru), let
the text-to-speech attacks speak the very sentences the humans spoke.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds")
KLETTRES = Path("/usr/share/klettres")
TRANSCRIPT_DOCS = Path("/usr/share/doc")


@dataclass(frozen=True)
class BonafideSource:
    """One speaker's recordings in one package."""

    speaker: str
    language: str
    directory: Path
    pattern: str
    debian_package: str
    transcript_language: str | None = None  # core-sounds-<lang>.txt names these prompts
    codec_of_origin: str = "G.722 16 kHz"


BONAFIDE_SOURCES: tuple[BonafideSource, ...] = (
    BonafideSource(
        "allison", "en", ASTERISK_SOUNDS / "en_US_f_Allison", "*.g722",
        "asterisk-core-sounds-en-g722", transcript_language="en",
    ),
    BonafideSource(
        "allison", "es", ASTERISK_SOUNDS / "es_MX_f_Allison", "*.g722",
        "asterisk-core-sounds-es-g722",
    ),
    BonafideSource(
        "june", "fr", ASTERISK_SOUNDS / "fr_CA_f_June", "*.g722", "asterisk-core-sounds-fr-g722"
    ),
    BonafideSource(
        "carlo", "it", ASTERISK_SOUNDS / "it_IT_m_Carlo", "*.g722",
        "asterisk-core-sounds-it-g722", transcript_language="it",
    ),
    BonafideSource(
        "ivrvoice", "ru", ASTERISK_SOUNDS / "ru_RU_f_IvrvoiceRU", "*.g722",
        "asterisk-core-sounds-ru-g722", transcript_language="ru",
    ),
    BonafideSource(
        "menardi", "it", ASTERISK_SOUNDS / "it_IT_f_Menardi", "*.wav",
        "asterisk-prompt-it-menardi-wav", transcript_language="it",
        codec_of_origin="PCM 8 kHz",
    ),
    BonafideSource(
        "armelle", "fr", ASTERISK_SOUNDS / "fr", "*.gsm", "asterisk-prompt-fr-armelle",
        codec_of_origin="GSM 8 kHz",
    ),
    BonafideSource(
        "esco", "es", ASTERISK_SOUNDS / "es", "*.gsm", "asterisk-prompt-es-co",
        codec_of_origin="GSM 8 kHz",
    ),
)  # fmt: skip

MIN_FILE_BYTES = 1024  # a few packaged prompts are empty files; anything this small holds no speech
KLETTRES_PACKAGE = "klettres-data"
TRANSCRIPT_PACKAGES = {lang: f"asterisk-core-sounds-{lang}" for lang in ("en", "it", "ru")}


@dataclass(frozen=True)
class Prompt:
    """One recorded prompt: ``name`` is the file stem, shared across languages."""

    speaker: str
    language: str
    name: str
    path: Path
    text: str | None
    source: BonafideSource


@dataclass(frozen=True)
class LetterSet:
    """klettres: one native speaker per language saying letters and syllables (Ogg Vorbis)."""

    speaker: str
    language: str
    paths: tuple[Path, ...]


def required_packages() -> list[str]:
    packages = {source.debian_package for source in BONAFIDE_SOURCES}
    packages |= set(TRANSCRIPT_PACKAGES.values()) | {KLETTRES_PACKAGE}
    return sorted(packages)


def load_transcripts(language: str) -> dict[str, str]:
    """``name -> sentence`` from Asterisk's core-sounds-<lang>.txt (top-level prompts only)."""
    path = TRANSCRIPT_DOCS / TRANSCRIPT_PACKAGES[language] / f"core-sounds-{language}.txt.gz"
    transcripts: dict[str, str] = {}
    with gzip.open(path, "rt", encoding="utf-8-sig") as lines:
        for line in lines:
            name, separator, text = line.partition(":")
            if line.startswith(";") or not separator or "/" in name:
                continue
            sentence = clean_transcript(text)
            if any(character.isalpha() for character in sentence):  # not "..." or "#"
                transcripts[name.strip()] = sentence
    return transcripts


def clean_transcript(text: str) -> str:
    """Drop translators' notes in brackets and stage directions; keep what was spoken."""
    text = re.sub(r"\([^)]*\)|\[[^\]]*\]|<[^>]*>", " ", text)
    return " ".join(text.split()).strip()


def discover_prompts() -> list[Prompt]:
    """Every top-level prompt of every bona fide source, sorted, with its transcript if any."""
    transcripts = {lang: load_transcripts(lang) for lang in TRANSCRIPT_PACKAGES}
    prompts = []
    for source in BONAFIDE_SOURCES:
        texts = transcripts.get(source.transcript_language or "", {})
        for path in sorted(source.directory.glob(source.pattern)):
            if path.stat().st_size < MIN_FILE_BYTES:
                continue
            prompts.append(
                Prompt(
                    source.speaker, source.language, path.stem, path, texts.get(path.stem), source
                )
            )
    return prompts


def discover_letter_sets(languages: tuple[str, ...] | None = None) -> list[LetterSet]:
    sets = []
    for directory in sorted(path for path in KLETTRES.iterdir() if path.is_dir()):
        paths = tuple(
            path
            for path in sorted(directory.glob("*/*.ogg"))
            if path.stat().st_size >= MIN_FILE_BYTES
        )
        if paths and (languages is None or directory.name in languages):
            sets.append(LetterSet(f"klettres-{directory.name}", directory.name, paths))
    return sets
