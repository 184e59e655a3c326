"""The installed ``dfd`` command, run as a user runs it: a real process with pipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.signals import SAMPLE_CALL

DFD = str(Path(sys.executable).with_name("dfd"))


def dfd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DFD, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120
    )


def test_version_comes_from_the_installed_distribution() -> None:
    result = dfd("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"dfd, version {version('dfd')}"


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["features"],
        ["frontends"],
        ["corpus", "build"],
        ["models", "list"],
        ["models", "show"],
        ["models", "import-aasist"],
        ["models", "sign"],
        ["train"],
        ["eval"],
        ["subscribe"],
        ["keys"],
        ["keys", "generate"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = dfd(*command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"Usage: dfd {' '.join(command)}".rstrip())
    assert "--help" in result.stdout


def test_features_on_the_bundled_call(tmp_path: Path) -> None:
    out = tmp_path / "features.npz"
    result = dfd("features", str(SAMPLE_CALL), "-f", "mfcc", "-f", "logmel", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "2 channel(s), 15.85 s, WAV/ULAW at 8000 Hz -> 16000 Hz" in result.stdout

    saved = np.load(out)
    samples_16k = 2 * soundfile.info(SAMPLE_CALL).frames  # 253,612: 15.85 s
    # 28 full windows (starts 0 .. 13.5 s), then one ending on the last sample (the tail policy
    # of every scoring path: dfd.dsp.extract.scoring_windows)
    starts = saved["channel0/window_starts"]
    np.testing.assert_array_equal(starts, [*(np.arange(28) * 8000), samples_16k - 32_000])
    np.testing.assert_array_equal(saved["channel0/valid_samples"], 32_000)
    assert saved["channel1/features0"].shape == (29, 20, 201)
    assert saved["channel1/features1"].shape == (29, 80, 201)
    assert [spec["kind"] for spec in json.loads(str(saved["specs"][0]))] == ["mfcc", "logmel"]


def test_logs_are_json_lines_on_stderr_when_not_a_terminal() -> None:
    result = dfd("--log-level", "debug", "features", str(SAMPLE_CALL), "-f", "mfcc")
    assert result.returncode == 0
    records = [json.loads(line) for line in result.stderr.splitlines()]
    decoded = next(record for record in records if record["event"] == "decoded")
    assert decoded["level"] == "info"
    assert decoded["channels"] == 2
    assert "timestamp" in decoded
    assert not any(line.startswith("{") for line in result.stdout.splitlines())


def test_warning_level_silences_info_logs() -> None:
    result = dfd("--log-level", "warning", "features", str(SAMPLE_CALL), "-f", "mfcc")
    assert result.returncode == 0
    assert result.stderr == ""


def test_features_frames_with_the_window_and_hop_given(tmp_path: Path) -> None:
    config = tmp_path / "dfd.toml"
    config.write_text('[logging]\nlevel = "error"\n')
    out = tmp_path / "f.npz"
    result = dfd(
        "--config", str(config), "features", str(SAMPLE_CALL), "-f", "mfcc",
        "--window", "1", "--hop", "1", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    starts = np.load(out)["channel0/window_starts"]
    samples_16k = 2 * soundfile.info(SAMPLE_CALL).frames
    # 15 full seconds, then the last second of the call
    np.testing.assert_array_equal(starts, [*(np.arange(15) * 16_000), samples_16k - 16_000])
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[models]\nhop_seconds = 2.0\n", "unknown key(s) hop_seconds"),
        ("[models]\nhop_s = 0.00003\n", "not a whole number of samples"),
        ("[pipeline]\nbatch_size = true\n", "pipeline.batch_size: expected int"),
        ('[logging]\nlevel = "loud"\n', "logging.level must be one of"),
        ("[alerts]\ntopic = 'x'\n", "unknown key(s) alerts"),
        ("[models\n", "not valid TOML"),
    ],
)
def test_bad_config_files_are_refused_naming_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "dfd.toml"
    config.write_text(text)
    result = dfd("--config", str(config), "frontends")
    assert result.returncode == 2
    assert message in result.stderr


def test_config_path_can_come_from_the_environment(tmp_path: Path) -> None:
    """The hop of [models] (from $DFD_CONFIG) frames dfd features as it frames the daemon."""
    config = tmp_path / "dfd.toml"
    config.write_text("[models]\nhop_s = 0.25\n")
    result = dfd("features", str(SAMPLE_CALL), "-f", "mfcc", env={"DFD_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert "windows of 2.0 s every 0.25 s" in result.stdout


def test_bad_front_end_and_unreadable_audio_are_clean_errors(tmp_path: Path) -> None:
    result = dfd("features", str(SAMPLE_CALL), "-f", "wavelet")
    assert result.returncode == 2
    assert "unknown front-end kind 'wavelet'" in result.stderr
    garbage = tmp_path / "x.wav"
    garbage.write_bytes(b"\0" * 1000)
    result = dfd("features", str(garbage))
    assert result.returncode == 1
    assert result.stderr.startswith("Error:") and "Traceback" not in result.stderr


def test_explicit_spec_json_is_validated_and_used(tmp_path: Path) -> None:
    out = tmp_path / "f.npz"
    spec = '{"kind": "logmel", "n_mels": 128, "hop_length": 250}'
    result = dfd("features", str(SAMPLE_CALL), "--spec", spec, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert np.load(out)["channel0/features0"].shape == (29, 128, 129)
    result = dfd("features", str(SAMPLE_CALL), "--spec", '{"kind": "logmel", "mels": 1}')
    assert result.returncode == 2 and "unknown key(s) mels" in result.stderr


def test_shell_completion_uses_clicks_mechanism() -> None:
    script = dfd(env={"_DFD_COMPLETE": "bash_source"})
    assert script.returncode == 0
    assert "_dfd_completion" in script.stdout
    completed = dfd(
        env={"_DFD_COMPLETE": "bash_complete", "COMP_WORDS": "dfd f", "COMP_CWORD": "1"}
    )
    assert completed.stdout.split() == ["plain,features", "plain,frontends"]


def test_models_show_and_eval_accept_the_embedded_default(tmp_path: Path) -> None:
    shown = dfd("models", "show", "default")
    assert shown.returncode == 0, shown.stderr
    rows = dict(line.split(None, 1) for line in shown.stdout.splitlines() if " " in line)
    assert rows["family"].startswith("sinc-lcnn")
    assert rows["bundle"].rstrip().endswith(str(Path("detectors") / "default"))
    protocol = tmp_path / "protocol.txt"
    protocol.write_text(f"speaker {SAMPLE_CALL.stem} - - bonafide\n")
    missing = dfd("eval", "--model", str(tmp_path / "nowhere"), "--data", str(protocol),
                  "--out", str(tmp_path / "out"))  # fmt: skip
    assert missing.returncode == 1
    assert "no such bundle folder" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_serve_with_an_unknown_input_device_is_one_line_and_exit_2() -> None:
    result = dfd("--log-level", "warning", "serve", "--device", "no-such-device-xyz")
    assert result.returncode == 2  # unusable settings: systemd does not restart on it
    assert "no input device 'no-such-device-xyz'" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_serve_with_a_bundle_it_cannot_load_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """A bad bundle will not mend itself: exit 2, which the unit does not restart on."""
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "model_card.json").write_text('{"format": "dfd-bundle/1", "family": 1e99999}')
    for bundle in (tmp_path / "nowhere", folder):
        result = dfd("--log-level", "warning", "serve", "--model", str(bundle))
        assert result.returncode == 2, result.stderr
        assert str(bundle) in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        shown = dfd("models", "show", str(bundle))
        assert shown.returncode == 2 and "Traceback" not in shown.stderr
