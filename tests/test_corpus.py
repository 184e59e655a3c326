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
from dfd.trainers.corpus.builder import NARROWBAND_DB, CorpusBuildError, build_corpus
from dfd.trainers.corpus.processing import (
    TARGET_SPEECH_LEVEL_DBFS,
    finalise,
    frame_levels_db,
    trim_silence,
)
from tests.signals import RATE, tone

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


def test_the_held_out_speaker_and_attacks_appear_only_in_eval(
    full_plan: planning.CorpusPlan,
) -> None:
    for item in full_plan.bonafide:
        if item.speaker in planning.HELD_OUT_SPEAKERS:
            assert item.split == "eval"
    spoofs = [*full_plan.copy_synthesis, *full_plan.tts]
    attacks_by_split = defaultdict(set)
    for spoof in spoofs:
        attacks_by_split[spoof.split].add(spoof.attack)
    assert attacks_by_split["eval"] == set(planning.HELD_OUT_ATTACKS)
    assert {"piper-joe", "lpc"} <= attacks_by_split["eval"]
    assert not attacks_by_split["train"] & set(planning.HELD_OUT_ATTACKS)
    assert attacks_by_split["dev"] == attacks_by_split["train"]


def test_a_prompt_and_its_renderings_share_a_split(full_plan: planning.CorpusPlan) -> None:
    bonafide_split = {
        (item.language, item.text_key): item.split
        for item in full_plan.bonafide
        if item.speaker not in planning.HELD_OUT_SPEAKERS and not item.speaker.startswith("klet")
    }
    for item in full_plan.tts:
        assert bonafide_split.get((item.language, item.text_key), item.split) == item.split
    sources = {item.utt_id: item for item in full_plan.bonafide}
    for item in full_plan.copy_synthesis:
        source = sources[item.source_utt_id]
        assert (item.split, item.speaker) == (source.split, source.speaker)


def test_split_sizes_and_ids(full_plan: planning.CorpusPlan) -> None:
    items = [*full_plan.bonafide, *full_plan.copy_synthesis, *full_plan.tts]
    ids = [item.utt_id for item in items]
    assert len(ids) == len(set(ids))
    letters = {"train": "T", "dev": "D", "eval": "E"}
    assert all(item.utt_id.startswith(f"DFD_{letters[item.split]}_") for item in items)
    seen = [i for i in full_plan.bonafide if i.speaker not in planning.HELD_OUT_SPEAKERS]
    train_share = sum(i.split == "train" for i in seen) / len(seen)
    assert 0.55 < train_share < 0.65
    assert len(full_plan.bonafide) > 2000


def test_the_plan_depends_on_the_seed_only() -> None:
    first, again, other = (planning.make_plan("small", seed) for seed in (0, 0, 1))
    assert first == again
    assert [i.split for i in first.bonafide] != [i.split for i in other.bonafide]


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


def test_layout_protocols_and_audio(small_corpus: Path) -> None:
    names = sorted(p.name for p in (small_corpus / "protocols").iterdir())
    assert names == sorted(["train.txt", "dev.txt", "eval.txt"] + [f"eval.{c}.txt" for c in CODECS])
    for protocol in (small_corpus / "protocols").iterdir():
        for speaker, utt_id, dash, attack, label in read_protocol(protocol):
            assert dash == "-"
            assert label in ("bonafide", "spoof")
            assert (attack == "-") == (label == "bonafide")
            info = soundfile.info(small_corpus / "audio" / f"{utt_id}.flac")
            assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16")
            assert speaker != "-"


def test_classes_attacks_and_held_out_speaker_per_split(small_corpus: Path) -> None:
    rows = {s: read_protocol(small_corpus / "protocols" / f"{s}.txt") for s in planning.SPLITS}
    attacks = {s: {r[3] for r in rows[s] if r[4] == "spoof"} for s in rows}
    speakers = {s: {r[0] for r in rows[s] if r[4] == "bonafide"} for s in rows}
    for split in planning.SPLITS:
        assert {r[4] for r in rows[split]} == {"bonafide", "spoof"}
    assert attacks["eval"] == set(planning.HELD_OUT_ATTACKS)
    assert attacks["train"] == attacks["dev"]
    assert len(attacks["train"]) == 11  # 9 TTS systems, 2 vocoders
    assert not attacks["train"] & attacks["eval"]
    assert "carlo" in speakers["eval"]
    assert "carlo" not in speakers["train"] | speakers["dev"]


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
    protocol_lines = sum(len(read_protocol(p)) for p in (small_corpus / "protocols").iterdir())
    assert protocol_lines == len(files)
    total = sum(c["bonafide"] + c["spoof"] for c in manifest["counts"].values())
    assert total == len(files)
    clean_hours = sum(f["seconds"] for f in files if f["condition"] == "clean") / 3600
    listed = sum(sum(h.values()) for k, h in manifest["hours"].items() if k.endswith("/clean"))
    assert listed == pytest.approx(clean_hours, abs=1e-3)
    assert manifest["sources"]["debian:espeak-ng"]
    assert manifest["held_out"]["speakers"] == ["carlo"]


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

    for protocol in sorted((small_corpus / "protocols").iterdir()):
        trials = read_dataset(protocol)
        assert len(trials) == len(read_protocol(protocol))
        assert all(t.path.parent == small_corpus / "audio" for t in trials)
        assert {t.label for t in trials} == {"bonafide", "spoof"}
