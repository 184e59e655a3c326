"""The open corpus: its plan (fast, no audio), its processing, and a real `small` build."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile

from dfd.trainers.corpus import plan as planning
from dfd.trainers.corpus.bonafide import BONAFIDE_FAMILIES, discover_recordings
from dfd.trainers.corpus.builder import CorpusBuildError, build_corpus
from dfd.trainers.corpus.calls import CallItem, assemble_call, plan_calls
from dfd.trainers.corpus.processing import (
    TARGET_SPEECH_LEVEL_DBFS,
    finalise,
    frame_levels_db,
    trim_silence,
)
from dfd.trainers.corpus.stats import NARROWBAND_DB
from dfd.trainers.corpus.tts import TTS_SYSTEMS
from dfd.trainers.datasets.calls import read_calls_protocol
from tests.signals import RATE, REPO, tone

DFD = str(Path(sys.executable).with_name("dfd"))
CODECS = ("alaw", "g722", "gsm", "mulaw", "opus")


def band_energy_db(samples: np.ndarray, low_hz: float, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    return float(10 * np.log10(spectrum[freqs > low_hz].sum() / spectrum.sum() + 1e-30))


# ---------------------------------------------------------------- the plan


@pytest.fixture(scope="module")
def full_plan() -> planning.CorpusPlan:
    return planning.make_plan("full", seed=0)


def spoof_family(attack: str) -> str:
    system = TTS_SYSTEMS.get(attack)
    return f"tts:{system.family}" if system else f"vocoder:{attack}"


def held_out_spoof_families(split: str) -> set[str]:
    rule = planning.HELD_OUT[split]
    return {f"tts:{f}" for f in rule.tts_families} | {f"vocoder:{v}" for v in rule.vocoders}


def test_the_install_script_installs_every_debian_package_the_corpus_reads() -> None:
    """What `dfd corpus build` needs and what `scripts/install-system-packages.sh --corpus`
    installs are one list: a package declared but not installed fails the build on a fresh host,
    one read but not declared (Fish Fillets' level scripts, once) silently thins the corpus."""
    from dfd.trainers.corpus.bonafide import required_packages
    from dfd.trainers.corpus.conditions import REQUIRED_PACKAGES as CONDITION_PACKAGES

    script = (REPO / "scripts" / "install-system-packages.sh").read_text(encoding="utf-8")
    listed = script.split("corpus_packages=(", 1)[1].split(")", 1)[0].split()
    needed = {
        package.removeprefix("debian:")
        for package in (*required_packages(), *CONDITION_PACKAGES)
        if package.startswith("debian:")
    }
    needed |= {system.debian_package for system in TTS_SYSTEMS.values() if system.debian_package}
    assert needed - set(listed) == set()
    assert "fillets-ng-data" in needed  # the level scripts: who speaks each line, and its text


def test_held_out_voices_and_attack_families_never_reach_training(
    full_plan: planning.CorpusPlan,
) -> None:
    for item in full_plan.bonafide:
        held = planning.held_out_split(item.family, item.language, item.speaker)
        assert item.held_out == (held is not None)
        if held is not None:
            assert item.split == held, item.key
    families_by_split = defaultdict(set)
    for spoof in [*full_plan.copy_synthesis, *full_plan.tts]:
        families_by_split[spoof.split].add(spoof_family(spoof.attack))
        if spoof_family(spoof.attack) in held_out_spoof_families("eval"):
            assert spoof.split == "eval" and spoof.held_out
    held_anywhere = held_out_spoof_families("eval") | held_out_spoof_families("dev")
    assert not families_by_split["train"] & held_anywhere
    assert held_out_spoof_families("eval") <= families_by_split["eval"]
    assert held_out_spoof_families("dev") <= families_by_split["dev"]
    assert {"tts:piper", "vocoder:lpc"} <= families_by_split["eval"]


def test_a_text_and_its_renderings_share_a_split(full_plan: planning.CorpusPlan) -> None:
    bonafide_split: dict[tuple[str, str], set[str]] = defaultdict(set)
    for item in full_plan.bonafide:
        if not item.held_out and item.recording.text_group:
            bonafide_split[(item.language, item.recording.text_group)].add(item.split)
    assert all(len(splits) == 1 for splits in bonafide_split.values())
    checked = 0
    for tts in full_plan.tts:
        splits = bonafide_split.get((tts.language, tts.text_key))
        if splits and not tts.held_out:
            assert splits == {tts.split}
            checked += 1
    assert checked > 100
    sources = {item.utt_id: item for item in full_plan.bonafide}
    for copy in full_plan.copy_synthesis:
        source = sources[copy.source_utt_id]
        assert (copy.split, copy.speaker, copy.language) == (
            source.split,
            source.speaker,
            source.language,
        )


def test_every_training_utterance_has_a_vocoded_copy(full_plan: planning.CorpusPlan) -> None:
    copied = {c.source_utt_id for c in full_plan.copy_synthesis}
    train = [i for i in full_plan.bonafide if i.split == "train"]
    assert all(item.utt_id in copied for item in train)
    counts = defaultdict(int)
    for copy in full_plan.copy_synthesis:
        if copy.split == "train":
            counts[copy.attack] += 1
    assert set(counts) == set(planning.SEEN_VOCODERS)
    assert max(counts.values()) - min(counts.values()) <= 1  # they take turns


def test_split_sizes_and_ids(full_plan: planning.CorpusPlan) -> None:
    items = [*full_plan.bonafide, *full_plan.copy_synthesis, *full_plan.tts]
    ids = [item.utt_id for item in items]
    assert len(ids) == len(set(ids))
    letters = {"train": "T", "dev": "D", "eval": "E"}
    assert all(item.utt_id.startswith(f"DFD_{letters[item.split]}_") for item in items)
    seen = [i for i in full_plan.bonafide if not i.held_out]
    assert sum(i.split == "train" for i in seen) / len(seen) > 0.55  # after the per-voice caps
    shares = defaultdict(int)
    recordings = discover_recordings()
    for recording in recordings:
        split, held_out = planning.split_of_recording(0, recording)
        shares[split] += not held_out
    assert shares["train"] / sum(shares.values()) == pytest.approx(0.8, abs=0.02)
    assert len(full_plan.bonafide) > 5000


def test_the_plan_depends_on_the_seed_only() -> None:
    first, again, other = (planning.make_plan("small", seed) for seed in (0, 0, 1))
    assert first == again
    assert [i.split for i in first.bonafide] != [i.split for i in other.bonafide]


def test_calls_are_one_held_out_speaker_and_use_each_utterance_once(
    full_plan: planning.CorpusPlan,
) -> None:
    seconds = {i.utt_id: 4.0 for i in [*full_plan.bonafide, *full_plan.copy_synthesis]}
    calls = plan_calls(full_plan, seconds)
    assert {c.kind for c in calls} == {"bonafide", "turns-synthetic"}
    bonafide = {i.utt_id: i for i in full_plan.bonafide}
    copies = {c.utt_id: c for c in full_plan.copy_synthesis}
    used: list[str] = []
    for call in calls:
        real, synthetic = call.segments[: call.synthetic_from], call.segments[call.synthetic_from :]
        assert all(bonafide[u].speaker == call.speaker and bonafide[u].held_out for u in real)
        assert all(bonafide[u].split == call.split for u in real)
        assert all(copies[u].speaker == call.speaker for u in synthetic)
        assert {copies[u].attack for u in synthetic} == ({call.attack} if synthetic else set())
        assert (call.kind == "bonafide") == (not synthetic)
        used += [*real, *(copies[u].source_utt_id for u in synthetic)]
        length = len(call.segments) * 4.0 + sum(call.pauses_s)
        assert 60 <= length <= 300 + 4.0 + 1.2
        if synthetic:
            assert call.synthetic_from * 4.0 + sum(call.pauses_s[: call.synthetic_from]) >= 10
    assert len(used) == len(set(used))
    assert len({c.call_id for c in calls}) == len(calls)


def test_an_assembled_call_says_where_the_synthetic_speech_starts() -> None:
    call = CallItem("DFD_CALL_E_0001", "eval", "turns-synthetic", "s", "it", "lpc",
                    ("a", "b", "c"), 2, (0.5, 0.25))  # fmt: skip
    parts = [np.full(RATE, 0.5, np.float32), np.full(2 * RATE, 0.5, np.float32)]
    parts.append(np.full(RATE // 2, -0.5, np.float32))
    samples, onset = assemble_call(call, parts, RATE, seed=0)
    assert len(samples) == RATE * 3.5 + RATE * 0.75
    assert onset == pytest.approx(3.75)
    assert np.all(samples[round(onset * RATE) :] == -0.5)
    pause = samples[RATE : RATE + RATE // 2]
    assert 0 < np.sqrt(np.mean(pause**2)) < 10 ** (-60 / 20)  # a faint floor, not silence


# ---------------------------------------------------------------- processing


def test_trimming_keeps_the_speech_and_a_tenth_of_a_second() -> None:
    speech = tone(500, 1.0)
    padded = np.concatenate([np.zeros(RATE), speech, np.zeros(2 * RATE)]).astype(np.float32)
    trimmed = trim_silence(padded, RATE)
    assert len(trimmed) == pytest.approx(len(speech) + 2 * 0.1 * RATE, abs=0.02 * RATE)


def test_finalise_sets_the_speech_level_and_removes_the_band_edges() -> None:
    rate = 22_050
    mix = tone(300, 2.0, rate) + tone(7_500, 2.0, rate, amplitude=0.3) + tone(30, 2.0, rate)
    out = finalise(mix, rate)
    assert band_energy_db(out, 7_000) < -60  # brick wall below 7 kHz (measured: -65 dB)
    levels = frame_levels_db(out, RATE)
    active = levels[levels > levels.max() - 40]
    level = 10 * np.log10(np.mean(10 ** (active / 10)))
    assert level == pytest.approx(TARGET_SPEECH_LEVEL_DBFS, abs=0.1)
    assert band_energy_db(finalise(mix, rate, narrowband=True), 4_000) < -60


# ---------------------------------------------------------------- a real small build


def read_protocol(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


def asvspoof_protocols(corpus: Path) -> list[Path]:
    return sorted(p for p in (corpus / "protocols").iterdir() if p.suffix == ".txt")


def test_layout_protocols_and_audio(small_corpus: Path) -> None:
    names = {p.name for p in (small_corpus / "protocols").iterdir()}
    expected = {"train.txt", "dev.txt", "eval.txt", "calls.dev.tsv", "calls.eval.tsv"}
    expected |= {f"eval.{c}.txt" for c in CODECS} | {"eval.unseen.txt"}
    assert expected <= names
    for protocol in asvspoof_protocols(small_corpus):
        for speaker, utt_id, dash, attack, label in read_protocol(protocol):
            assert dash == "-"
            assert label in ("bonafide", "spoof")
            assert (attack == "-") == (label == "bonafide")
            info = soundfile.info(small_corpus / "audio" / f"{utt_id}.flac")
            assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16")
            assert speaker != "-"


def test_classes_attacks_and_held_out_families_per_split(small_corpus: Path) -> None:
    rows = {s: read_protocol(small_corpus / "protocols" / f"{s}.txt") for s in planning.SPLITS}
    families = {s: {spoof_family(r[3]) for r in rows[s] if r[4] == "spoof"} for s in rows}
    speakers = {s: {r[0] for r in rows[s] if r[4] == "bonafide"} for s in rows}
    for split in planning.SPLITS:
        assert {r[4] for r in rows[split]} == {"bonafide", "spoof"}
    assert held_out_spoof_families("eval") <= families["eval"]
    assert not families["train"] & held_out_spoof_families("eval")
    assert "carlo" in speakers["eval"]
    assert "carlo" not in speakers["train"] | speakers["dev"]
    unseen = read_protocol(small_corpus / "protocols" / "eval.unseen.txt")
    assert {r[4] for r in unseen} == {"bonafide", "spoof"}
    # unseen spoofs: a held-out attack family, or a seen synthesizer in a held-out language
    vocoded = {spoof_family(r[3]) for r in unseen if r[4] == "spoof" and r[3] not in TTS_SYSTEMS}
    assert vocoded and vocoded <= held_out_spoof_families("eval")
    seen_voices = {r[0] for r in rows["train"] if r[4] == "bonafide"}
    assert not {r[0] for r in unseen if r[4] == "bonafide"} & seen_voices


def test_calls_protocol_and_audio(small_corpus: Path) -> None:
    calls = read_calls_protocol(small_corpus / "protocols" / "calls.eval.tsv")
    assert {c.kind for c in calls} == {"bonafide", "turns-synthetic"}
    manifest = json.loads((small_corpus / "manifest.json").read_text())
    planned = {c["call_id"]: c for c in manifest["calls"]}
    for call in calls:
        audio, rate = soundfile.read(call.path, dtype="float32")
        assert rate == RATE
        assert len(audio) / RATE == pytest.approx(call.seconds, abs=1e-3)
        if call.kind == "bonafide":
            assert call.synthetic_from_s == pytest.approx(call.seconds)
        else:
            assert 0 < call.synthetic_from_s < call.seconds
            first_synthetic = planned[call.call_id]["segments"][
                planned[call.call_id]["synthetic_from"]
            ]
            start = round(call.synthetic_from_s * RATE)
            segment, _ = soundfile.read(small_corpus / "audio" / f"{first_synthetic}.flac")
            assert np.allclose(audio[start : start + len(segment)], segment, atol=1e-4)


def test_manifest_matches_the_files(small_corpus: Path) -> None:
    manifest = json.loads((small_corpus / "manifest.json").read_text())
    files = manifest["files"]
    on_disk = sorted(p.name for p in (small_corpus / "audio").iterdir())
    assert sorted(Path(f["path"]).name for f in files) == on_disk
    for entry in files:
        assert (
            hashlib.sha256((small_corpus / entry["path"]).read_bytes()).hexdigest()
            == (entry["sha256"])
        )
    main_protocols = [p for p in asvspoof_protocols(small_corpus) if "unseen" not in p.name]
    assert sum(len(read_protocol(p)) for p in main_protocols) == len(files)
    total = sum(c["bonafide"] + c["spoof"] for c in manifest["counts"].values())
    assert total == len(files)
    clean_hours = sum(f["seconds"] for f in files if f["condition"] == "clean") / 3600
    listed = sum(sum(h.values()) for k, h in manifest["hours"].items() if k.endswith("/clean"))
    assert listed == pytest.approx(clean_hours, abs=1e-3)
    by_family = sum(row["hours"] for row in manifest["hours_by_family_and_language"])
    assert by_family == pytest.approx(clean_hours, abs=1e-2)
    assert manifest["sources"]["debian:espeak-ng"]
    assert manifest["held_out"]["eval"]["speakers"] == ["carlo"]
    assert set(manifest["families"]) == set(BONAFIDE_FAMILIES)


def test_every_clean_file_went_through_the_same_processing(small_corpus: Path) -> None:
    manifest = json.loads((small_corpus / "manifest.json").read_text())
    narrowband = defaultdict(list)
    for entry in manifest["files"]:
        if entry["condition"] != "clean":
            continue
        audio, _ = soundfile.read(small_corpus / entry["path"], dtype="float32")
        assert band_energy_db(audio, 7_000) < -50, entry["utt_id"]
        assert np.abs(audio).max() <= 0.971
        levels = frame_levels_db(audio, RATE)
        active = levels[levels > levels.max() - 40]
        assert 10 * np.log10(np.mean(10 ** (active / 10))) <= TARGET_SPEECH_LEVEL_DBFS + 0.2
        narrowband[entry["label"]].append(entry["high_band_db"] < NARROWBAND_DB)
    # both classes hold narrowband and wideband files: the band does not tell the class
    for flags in narrowband.values():
        assert 0.15 < np.mean(flags) < 0.75


def test_codec_conditions_hold_the_eval_files_through_each_codec(small_corpus: Path) -> None:
    clean = read_protocol(small_corpus / "protocols" / "eval.txt")
    for codec in CODECS:
        coded = read_protocol(small_corpus / "protocols" / f"eval.{codec}.txt")
        assert [r[1] for r in coded] == [f"{r[1]}-{codec}" for r in clean]
        assert [r[4] for r in coded] == [r[4] for r in clean]
    utt_id = clean[0][1]
    original, _ = soundfile.read(small_corpus / "audio" / f"{utt_id}.flac")
    for codec in CODECS:
        audio, _ = soundfile.read(small_corpus / "audio" / f"{utt_id}-{codec}.flac")
        assert len(audio) == len(original)
        correlation = np.corrcoef(audio, original)[0, 1]
        assert correlation > (0.3 if codec in ("opus", "gsm") else 0.95), codec
        assert not np.array_equal(audio, original)
    mulaw, _ = soundfile.read(small_corpus / "audio" / f"{utt_id}-mulaw.flac")
    assert band_energy_db(mulaw, 4_100) < -40  # 8 kHz codec: nothing above 4 kHz


def test_the_same_seed_rebuilds_byte_identical(small_corpus: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    build_corpus(again, "small", seed=0, jobs=1)
    assert (again / "manifest.json").read_bytes() == (small_corpus / "manifest.json").read_bytes()
    for path in sorted((small_corpus / "audio").iterdir()):
        assert (again / "audio" / path.name).read_bytes() == path.read_bytes(), path.name
    for path in sorted((small_corpus / "protocols").iterdir()):
        assert (again / "protocols" / path.name).read_bytes() == path.read_bytes()


def test_a_non_empty_folder_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(CorpusBuildError, match="not empty"):
        build_corpus(tmp_path, "small", seed=0)
    with pytest.raises(CorpusBuildError, match="holds no corpus"):
        build_corpus(tmp_path, "small", seed=0, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_missing_tools_are_named_in_one_message(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    result = subprocess.run(
        [DFD, "corpus", "build", "--out", str(tmp_path / "c"), "--preset", "small"],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(empty)},
        timeout=120,
    )
    assert result.returncode == 1
    message = result.stderr
    for package in ("ffmpeg", "espeak-ng", "flite", "festival"):
        assert package in message
    assert "scripts/setup.sh --dev" in message
    assert not (tmp_path / "c").exists()


def test_the_dataset_reader_reads_every_protocol(small_corpus: Path) -> None:
    from dfd.trainers.datasets import read_dataset

    for protocol in asvspoof_protocols(small_corpus):
        trials = read_dataset(protocol)
        assert len(trials) == len(read_protocol(protocol))
        assert all(t.path.parent == small_corpus / "audio" for t in trials)
        assert {t.label for t in trials} == {"bonafide", "spoof"}
