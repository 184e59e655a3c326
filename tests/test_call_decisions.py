"""Decisions per call, end to end with the embedded default model: a long real call of held-out
speakers stays quiet, a call that turns synthetic alerts after the turn, a 2 s clip is not
"bona fide", and ``dfd models calibrate`` writes an operating point the daemon then uses."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import structlog
from click.testing import CliRunner, Result

from dfd.daemon.cli import main
from dfd.daemon.engine.models import ModelSet, default_bundle_path
from dfd.detectors.bundle import Calibration, Thresholds, load_bundle, write_bundle
from dfd.detectors.signing import TrustedKeys
from dfd.dsp.audio_io import load_audio
from dfd.trainers.datasets.calls import read_calls_protocol
from tests.signals import RATE, REPO

DEMO_CALL = REPO / "samples" / "call-bonafide-then-synthetic-8k-ulaw.wav"
DEMO_TURN_S = 8.9  # human before, Piper TTS after
AASIST_L = (
    Path(os.environ.get("DFD_AASIST_DIR", REPO.parent / "shared" / "third_party" / "aasist"))
    / "AASIST-L.pth"
)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    try:
        return CliRunner().invoke(main, list(args), env=env)
    finally:
        structlog.reset_defaults()


def replay_json(path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, Any]:
    result = invoke("--log-level", "warning", "replay", "--json", *args, str(path), env=env)
    assert result.exit_code in (0, 1, 3), result.output
    return result.exit_code, json.loads(result.stdout)


def held_out_real_speech(corpus: Path) -> np.ndarray:
    """The real speech of the evaluation calls (speakers no model was trained on), 16 kHz."""
    calls = read_calls_protocol(corpus / "protocols" / "calls.eval.tsv")
    parts = [
        load_audio(call.path, sample_rate=RATE).samples[0][: int(call.synthetic_from_s * RATE)]
        for call in calls
    ]
    return np.concatenate(parts)


def test_a_ten_minute_real_call_of_held_out_speakers_does_not_alert(
    small_corpus: Path, tmp_path: Path
) -> None:
    speech = held_out_real_speech(small_corpus)
    assert len(speech) > 60 * RATE  # over a minute of distinct speech, repeated to 10 minutes
    call = tmp_path / "real-10min.flac"
    soundfile.write(call, np.resize(speech, 600 * RATE), RATE)

    code, report = replay_json(call)
    assert (code, report["verdict"], report["alerts"]) == (0, "bona fide", [])
    assert report["decision"] == {
        "rule": "evidence",
        "raise_at": 6.0,
        "clear_at": 0.0,
        "min_speech_s": 4.0,
    }
    # The rule before alerts on the same call: every window is another chance for 3 of 5.
    code, report = replay_json(call, env={"DFD_DECISION__RULE": "windows"})
    assert (code, report["verdict"]) == (1, "synthetic")


def test_a_call_that_turns_synthetic_alerts_after_the_turn_and_not_before(
    small_corpus: Path, tmp_path: Path
) -> None:
    """Three minutes of held-out real speech, then the demo call's Piper voice."""
    real = np.resize(held_out_real_speech(small_corpus), 180 * RATE)
    demo = load_audio(DEMO_CALL, sample_rate=RATE).samples[0]
    call = tmp_path / "turning.flac"
    soundfile.write(call, np.concatenate([real, demo[int(DEMO_TURN_S * RATE) :]]), RATE)

    code, report = replay_json(call)
    assert code == 1
    (raised,) = [a for a in report["alerts"] if a["topic"] == "alert.raised"]
    assert 180.0 < raised["end"] <= 180.0 + 8.0  # after the turn, within 8 s of it
    assert raised["evidence"] >= raised["raise_at"] == 6.0
    assert report["channel_verdicts"] == {"0": "synthetic"}


def test_a_two_second_synthetic_clip_is_inconclusive_not_bona_fide(tmp_path: Path) -> None:
    demo, rate = soundfile.read(DEMO_CALL, dtype="float32")
    clip = tmp_path / "clip.wav"
    start = round((DEMO_TURN_S + 3.0) * rate)
    soundfile.write(clip, demo[start : start + 2 * rate], rate)

    code, report = replay_json(clip)
    assert (code, report["verdict"], report["alerts"]) == (3, "inconclusive", [])
    assert report["channel_speech_s"] == {"0": 2.0}
    assert max(w["score"] for w in report["windows"]) > 0.5  # it does sound synthetic
    result = invoke("--log-level", "warning", "replay", str(clip))
    assert result.exit_code == 3
    assert "verdict: INCONCLUSIVE  (ch0: inconclusive (only 2.0 s of speech))" in result.stdout


@pytest.fixture(scope="module")
def signing_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    result = invoke("keys", "generate", "release", "--kind", "signing", "--out", str(folder))
    assert result.exit_code == 0, result.output
    return folder


def test_calibrate_writes_calibration_thresholds_and_an_operating_point(
    small_corpus: Path, tmp_path: Path, signing_keys: Path
) -> None:
    protocols = small_corpus / "protocols"
    out = tmp_path / "calibrated"
    result = invoke(
        "--log-level",
        "warning",
        "models",
        "calibrate",
        "default",
        "--data",
        str(protocols / "dev.txt"),
        "--calls",
        str(protocols / "calls.dev.tsv"),
        "--target-false-alarm-rate",
        "0.25",
        "--out",
        str(out),
        "--key",
        str(signing_keys / "release.secret"),
    )
    assert result.exit_code == 0, result.output
    assert "signed by key" in result.stdout and "operating point: alert at" in result.stdout

    trusted = TrustedKeys.from_files([str(signing_keys / "release.pub")])
    card = load_bundle(out, trusted).card  # every hash, and the new signature, check out
    default = load_bundle(default_bundle_path()).card
    assert card.files == default.files  # the graph is the default's, untouched
    assert card.calibration.calibrated and card.calibration.slope > 0
    assert card.calibration != default.calibration  # fitted on another protocol
    assert card.metrics.dev is not None and card.metrics.dev["calibrated_on"] == "dev.txt"
    assert card.thresholds.eer is not None and card.thresholds.far_1pct is not None
    assert 0.0 < card.thresholds.eer <= card.thresholds.far_1pct < 1.0
    point = card.operating_point
    assert point is not None
    assert (point.chosen_on, point.real_calls, point.turning_calls) == ("calls.dev.tsv", 4, 1)
    assert point.target_false_alarm_rate == 0.25
    assert point.false_alarm_rate <= 0.25  # at most one of the four dev calls
    assert point.raise_at >= 2 * point.max_window_evidence
    assert ModelSet.load([out]).raise_at == point.raise_at  # what the pipeline will use

    result = invoke("models", "show", str(out))
    assert result.exit_code == 0
    assert f"operating    alert at {point.raise_at:g} nats of evidence" in result.stdout


def test_calibrate_refuses_what_it_cannot_do(small_corpus: Path, tmp_path: Path) -> None:
    dev = str(small_corpus / "protocols" / "dev.txt")
    result = invoke("models", "calibrate", "default", "--data", dev)
    assert result.exit_code == 2 and "give --out" in result.output
    result = invoke("models", "calibrate", "default", "--out", str(tmp_path / "x"))
    assert result.exit_code == 2 and "give --data, --calls or both" in result.output
    taken = tmp_path / "taken"
    taken.mkdir()
    result = invoke("models", "calibrate", "default", "--data", dev, "--out", str(taken))
    assert result.exit_code == 2 and "already exists" in result.output
    assert list(taken.iterdir()) == []
    # calibrating in place drops a signature that no longer matches the card
    copy = tmp_path / "copy"
    shutil.copytree(default_bundle_path(), copy)
    (copy / "signature.json").write_text("{}")
    result = invoke("--log-level", "warning", "models", "calibrate", str(copy), "--data", dev)
    assert result.exit_code == 0, result.output
    assert not (copy / "signature.json").exists()
    load_bundle(copy)


def uncalibrated_copy(folder: Path) -> Path:
    """The default's graph with the card an official import has: no calibration, no thresholds."""
    source = load_bundle(default_bundle_path())
    card = dataclasses.replace(
        source.card, calibration=Calibration(), thresholds=Thresholds(), operating_point=None
    )
    return write_bundle(folder, source.model_path, card)


def test_an_uncalibrated_bundle_replays_without_a_threshold(tmp_path: Path) -> None:
    bundle = uncalibrated_copy(tmp_path / "uncalibrated")
    result = invoke("models", "show", str(bundle))
    assert "uncalibrated: the score is the softmax P(synthetic)" in result.stdout
    code, report = replay_json(DEMO_CALL, "--model", str(bundle))
    assert report["threshold"] == 0.5
    assert code in (0, 1) and report["verdict"] in ("synthetic", "bona fide")


@pytest.mark.skipif(not AASIST_L.exists(), reason=f"official checkpoint not found at {AASIST_L}")
def test_an_imported_aasist_l_replays_without_a_threshold(tmp_path: Path) -> None:
    out = tmp_path / "aasist-l"
    result = invoke("models", "import-aasist", str(AASIST_L), "--out", str(out))
    assert result.exit_code == 0, result.output
    code, report = replay_json(DEMO_CALL, "--model", str(out))
    assert code in (0, 1)
    assert report["threshold"] == 0.5
    assert report["model"]["name"] == "aasist-l"
    assert len(report["windows"]) > 10  # 4 s windows every second over the 20 s call
