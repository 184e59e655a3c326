"""Asterisk's voice prompts: professional telephony recordings, one prompt per file.

Transcripts, where Asterisk ships them (en, it, ru), let the text-to-speech attacks speak the very
sentences the humans spoke. A prompt's file name is its ``text_group``: every speaker's and every
language's recording of one prompt, and every synthetic rendering of its text, share one split.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

from dfd.trainers.corpus.bonafide.family import BonafideFamily
from dfd.trainers.corpus.recordings import FilePart, SpeechRecording

ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds")
TRANSCRIPT_DOCS = Path("/usr/share/doc")
MIN_FILE_BYTES = 1024  # a few packaged prompts are empty files; anything this small holds no speech


@dataclass(frozen=True)
class PromptVoice:
    """One speaker's prompts in one package."""

    speaker: str
    language: str
    directory: Path
    pattern: str
    debian_package: str
    transcript_language: str | None = None  # core-sounds-<lang>.txt names these prompts
    codec_of_origin: str = "G.722 16 kHz"


PROMPT_VOICES: tuple[PromptVoice, ...] = (
    PromptVoice(
        "allison", "en", ASTERISK_SOUNDS / "en_US_f_Allison", "*.g722",
        "asterisk-core-sounds-en-g722", transcript_language="en",
    ),
    PromptVoice(
        "allison", "es", ASTERISK_SOUNDS / "es_MX_f_Allison", "*.g722",
        "asterisk-core-sounds-es-g722",
    ),
    PromptVoice(
        "june", "fr", ASTERISK_SOUNDS / "fr_CA_f_June", "*.g722", "asterisk-core-sounds-fr-g722"
    ),
    PromptVoice(
        "carlo", "it", ASTERISK_SOUNDS / "it_IT_m_Carlo", "*.g722",
        "asterisk-core-sounds-it-g722", transcript_language="it",
    ),
    PromptVoice(
        "ivrvoice", "ru", ASTERISK_SOUNDS / "ru_RU_f_IvrvoiceRU", "*.g722",
        "asterisk-core-sounds-ru-g722", transcript_language="ru",
    ),
    PromptVoice(
        "menardi", "it", ASTERISK_SOUNDS / "it_IT_f_Menardi", "*.wav",
        "asterisk-prompt-it-menardi-wav", transcript_language="it",
        codec_of_origin="PCM 8 kHz",
    ),
    PromptVoice(
        "armelle", "fr", ASTERISK_SOUNDS / "fr", "*.gsm", "asterisk-prompt-fr-armelle",
        codec_of_origin="GSM 8 kHz",
    ),
    PromptVoice(
        "esco", "es", ASTERISK_SOUNDS / "es", "*.gsm", "asterisk-prompt-es-co",
        codec_of_origin="GSM 8 kHz",
    ),
)  # fmt: skip

TRANSCRIPT_PACKAGES = {lang: f"asterisk-core-sounds-{lang}" for lang in ("en", "it", "ru")}


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


def discover() -> list[SpeechRecording]:
    """Every top-level prompt of every voice, sorted, with its transcript where there is one."""
    transcripts = {lang: load_transcripts(lang) for lang in TRANSCRIPT_PACKAGES}
    recordings = []
    for voice in PROMPT_VOICES:
        texts = transcripts.get(voice.transcript_language or "", {})
        for path in sorted(voice.directory.glob(voice.pattern)):
            if path.stat().st_size < MIN_FILE_BYTES:
                continue
            recordings.append(
                SpeechRecording(
                    family="asterisk",
                    speaker=voice.speaker,
                    language=voice.language,
                    key=f"{voice.speaker}:{voice.language}:{path.stem}",
                    parts=(FilePart(path),),
                    text=texts.get(path.stem),
                    origin=voice.codec_of_origin,
                    package=f"debian:{voice.debian_package}",
                    text_group=path.stem,
                )
            )
    return recordings


FAMILY = BonafideFamily(
    name="asterisk",
    packages=tuple(
        sorted(
            {f"debian:{voice.debian_package}" for voice in PROMPT_VOICES}
            | {f"debian:{package}" for package in TRANSCRIPT_PACKAGES.values()}
        )
    ),
    licence="CC-BY-SA 3.0 (core sounds, Allison Smith / Digium); prompts per their packages",
    description=(
        "Professional IVR prompts: allison (en, es), june (fr), carlo (it), ivrvoice (ru), "
        "menardi (it, 8 kHz PCM), armelle (fr, GSM), esco (es, GSM)"
    ),
    discover=discover,
    left_out="empty placeholder files (under 1 kB); prompts in sub-folders (digits, letters)",
)
