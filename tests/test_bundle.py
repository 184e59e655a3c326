"""Model bundles: writing, loading and verifying them, scoring with ONNX Runtime, the ``dfd models``
commands and the official AASIST import.

Every bundle here holds a real exported model; features come from the real front ends on the
bundled call recording. The AASIST import test needs the official checkpoints, looked up in
``../shared/third_party/aasist`` beside the checkout (or ``$DFD_AASIST_DIR``), and is skipped when
they are not there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from dfd.core.typed_config import ConfigError
from dfd.detectors.aasist_bundle import import_aasist
from dfd.detectors.bundle import (
    CARD_NAME,
    FORMAT,
    MODEL_NAME,
    BundleError,
    Calibration,
    ModelCard,
    ModelWindow,
    load_bundle,
    new_card,
    read_card,
    sha256_file,
    write_bundle,
)
from dfd.detectors.export import export_onnx
from dfd.detectors.registry import family
from dfd.detectors.runtime import DetectorSession, cuda_device_count
from dfd.dsp.audio_io import load_audio
from dfd.dsp.batcher import FrontendBank
from tests.signals import SAMPLE_CALL

DFD = str(Path(sys.executable).with_name("dfd"))
AASIST_DIR = Path(
    os.environ.get(
        "DFD_AASIST_DIR", Path(__file__).resolve().parents[2] / "shared" / "third_party" / "aasist"
    )
)
SLOPE, OFFSET = 2.0, -0.5
WINDOW = 32_000
# The official AASIST checkpoint's bona fide logit on the first 64,600 samples of channel 0 of
# the sample call (tests/test_aasist.py; the official code path agrees to within 2e-5).
AASIST_BONAFIDE_LOGIT = -4.223088


def dfd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DFD, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120
    )


@pytest.fixture(scope="module")
def call() -> np.ndarray:
    """Both channels of the sample call at 16 kHz, ``(2, samples)``."""
    return load_audio(SAMPLE_CALL).samples


@pytest.fixture(scope="module")
def windows(call: np.ndarray) -> np.ndarray:
    """2 s windows every 0.5 s over channel 0, ``(28, 32000)``."""
    starts = range(0, call.shape[1] - WINDOW + 1, WINDOW // 4)
    return np.stack([call[0, start : start + WINDOW] for start in starts])


@dataclasses.dataclass(frozen=True)
class Built:
    folder: Path
    model: nn.Module
    features: torch.Tensor


def build_bundle(folder: Path, name: str, windows: np.ndarray, **card: Any) -> Built:
    """A freshly initialised model of family ``name``, exported and bundled into ``folder``."""
    entry = family(name)
    torch.manual_seed(3)
    model = entry.build().eval()
    features = FrontendBank("cpu").compute(windows, [entry.frontend])[entry.frontend].clone()
    onnx_path = export_onnx(
        model,
        features[:2],
        folder.parent / f"{folder.name}.onnx",
        output_name=entry.output_name,
        metadata=entry.metadata(),
    )
    written = new_card(entry, version="test-1", window=ModelWindow.of(WINDOW, 0.5), **card)
    write_bundle(folder, onnx_path, written)
    return Built(folder, model, features)


@pytest.fixture(scope="module")
def mfcc(tmp_path_factory: pytest.TempPathFactory, windows: np.ndarray) -> Built:
    """An mfcc-cnn bundle (class logits, spoof index 1) with a non-trivial calibration."""
    folder = tmp_path_factory.mktemp("bundles") / "mfcc-cnn"
    calibration = Calibration(slope=SLOPE, offset=OFFSET, calibrated=True)
    return build_bundle(folder, "mfcc-cnn", windows, calibration=calibration)


@pytest.fixture
def copy(mfcc: Built, tmp_path: Path) -> Path:
    """A private copy of the mfcc-cnn bundle, to tamper with."""
    return Path(shutil.copytree(mfcc.folder, tmp_path / "bundle"))


def edit_card(folder: Path, change: Any) -> None:
    card = json.loads((folder / CARD_NAME).read_text())
    change(card)
    (folder / CARD_NAME).write_text(json.dumps(card))


# ---------------------------------------------------------------- the card and its files


def test_written_card_lists_every_file_by_sha256_and_loads_back(mfcc: Built) -> None:
    raw_card = json.loads((mfcc.folder / CARD_NAME).read_text())
    assert sorted(raw_card) == sorted(field.name for field in dataclasses.fields(ModelCard))
    assert raw_card["format"] == FORMAT == "dfd-bundle/1"
    onnx_sha256 = hashlib.sha256((mfcc.folder / MODEL_NAME).read_bytes()).hexdigest()
    assert raw_card["files"] == {MODEL_NAME: onnx_sha256}
    assert raw_card["window"] == {
        "sample_rate": 16_000,
        "window_s": 2.0,
        "hop_s": 0.5,
        "samples": 32_000,
    }
    assert raw_card["frontend"] == family("mfcc-cnn").frontend.to_dict()
    assert raw_card["output"] == {"name": "logits", "convention": "class_logits", "spoof_index": 1}
    assert raw_card["calibration"] == {
        "method": "logistic",
        "slope": SLOPE,
        "offset": OFFSET,
        "calibrated": True,
    }
    assert raw_card["thresholds"] == {"eer": None, "far_1pct": None}
    assert "higher = more bona fide" in raw_card["labels"]

    bundle = load_bundle(mfcc.folder)
    assert bundle.card.to_dict() == raw_card
    assert bundle.feature_shape == tuple(mfcc.features.shape[1:]) == (20, 201)
    assert bundle.opset == 17
    assert bundle.frontend_spec == family("mfcc-cnn").frontend


def test_extra_files_are_hashed_too_and_an_existing_bundle_is_kept(
    mfcc: Built, tmp_path: Path
) -> None:
    folder = tmp_path / "with-notes"
    folder.mkdir()
    (folder / "notes").mkdir()
    (folder / "notes" / "eval.txt").write_text("dev EER 3.1 %\n")
    card = load_bundle(mfcc.folder).card
    write_bundle(folder, (mfcc.folder / MODEL_NAME).read_bytes(), card)
    files = load_bundle(folder).card.files
    assert files["notes/eval.txt"] == hashlib.sha256(b"dev EER 3.1 %\n").hexdigest()
    assert sorted(files) == [MODEL_NAME, "notes/eval.txt"]

    with pytest.raises(BundleError, match="already holds a bundle"):
        write_bundle(folder, mfcc.folder / MODEL_NAME, card)
    (folder / "notes" / "eval.txt").write_text("dev EER 2.9 %\n")
    with pytest.raises(BundleError, match=r"notes/eval\.txt: sha256"):
        load_bundle(folder)
    write_bundle(folder, folder / MODEL_NAME, card, overwrite=True)  # re-hashes in place
    assert load_bundle(folder).card.files[MODEL_NAME] == card.files[MODEL_NAME]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(extra=1), r"unknown key\(s\) extra"),
        (lambda c: c["calibration"].update(temperature=1.5), r"calibration: unknown key\(s\) temp"),
        (lambda c: c.update(format="dfd-bundle/2"), r"format: expected one of 'dfd-bundle/1'"),
        (lambda c: c["calibration"].update(slope="2"), r"calibration\.slope: expected float"),
        (lambda c: c["calibration"].update(slope=-1.0), "slope must be positive"),
        (lambda c: c["window"].update(samples=32_001), "samples=32001"),
        (lambda c: c["output"].pop("spoof_index"), "class_logits needs spoof_index"),
        (lambda c: c["frontend"].update(kind="wavelet"), "unknown front-end kind 'wavelet'"),
        (lambda c: c.update(frontend="mfcc"), "frontend must be a JSON object"),
        (lambda c: c["frontend"].update(sample_rate=8000), "front end runs at 8000 Hz"),
        (lambda c: c["thresholds"].update(eer=1.5), r"eer is a calibrated score in \[0, 1\]"),
        (lambda c: c["training"].update(config=[1]), "config must be a JSON object"),
        (lambda c: c["files"].update({"../x": "0" * 64}), r"'\.\./x' is not a file"),
        (lambda c: c.pop("labels"), "labels"),
    ],
)
def test_a_malformed_card_is_refused_naming_the_key(copy: Path, change: Any, message: str) -> None:
    edit_card(copy, change)
    with pytest.raises(BundleError, match=message) as error:
        load_bundle(copy)
    assert str(error.value).startswith(f"{copy}: ")
    with pytest.raises(ConfigError, match=message):
        ModelCard.from_dict(json.loads((copy / CARD_NAME).read_text()))


# ---------------------------------------------------------------- tampering


def test_one_changed_byte_of_the_model_is_refused(copy: Path) -> None:
    data = bytearray((copy / MODEL_NAME).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / MODEL_NAME).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"{MODEL_NAME}: sha256 [0-9a-f]{{64}} does not match"):
        load_bundle(copy)


def test_a_card_naming_another_family_is_refused_by_the_onnx_metadata(copy: Path) -> None:
    edit_card(copy, lambda card: card.update(family="sinc-lcnn"))
    with pytest.raises(
        BundleError, match=r"metadata mismatch: model\.onnx says dfd\.family = 'mfcc-cnn' but "
    ) as error:
        load_bundle(copy)
    assert "says 'sinc-lcnn'" in str(error.value)


def test_a_card_naming_another_front_end_is_refused_by_the_onnx_metadata(copy: Path) -> None:
    edit_card(copy, lambda card: card["frontend"].update(n_mfcc=13))
    with pytest.raises(BundleError, match=r"metadata mismatch: model.onnx says dfd.frontend"):
        load_bundle(copy)


def test_a_missing_listed_file_is_refused(copy: Path) -> None:
    (copy / MODEL_NAME).unlink()
    with pytest.raises(BundleError, match=f"{MODEL_NAME} is listed in {CARD_NAME} but missing"):
        load_bundle(copy)


def test_a_missing_card_or_folder_is_refused(copy: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such bundle folder"):
        load_bundle(tmp_path / "nowhere")
    (copy / CARD_NAME).unlink()
    with pytest.raises(BundleError, match=f"not a bundle: no {CARD_NAME}"):
        load_bundle(copy)


def test_an_unlisted_onnx_file_is_refused(copy: Path) -> None:
    shutil.copyfile(copy / MODEL_NAME, copy / "other.onnx")
    with pytest.raises(BundleError, match=rf"not listed in {CARD_NAME}: other\.onnx"):
        load_bundle(copy)


def test_a_model_without_the_contract_or_with_other_names_is_never_bundled(
    mfcc: Built, tmp_path: Path
) -> None:
    entry = family("mfcc-cnn")
    card = load_bundle(mfcc.folder).card
    bare = export_onnx(mfcc.model, mfcc.features[:1], tmp_path / "bare.onnx")
    with pytest.raises(BundleError, match=r"carries no dfd\.family metadata"):
        write_bundle(tmp_path / "bare", bare, card)
    assert not (tmp_path / "bare" / CARD_NAME).exists()

    renamed = export_onnx(
        mfcc.model,
        mfcc.features[:1],
        tmp_path / "renamed.onnx",
        output_name="score",
        metadata=entry.metadata(),
    )
    with pytest.raises(BundleError, match=r"gives output\(s\) \['score'\] but .* 'logits'"):
        write_bundle(tmp_path / "renamed", renamed, card)


# ---------------------------------------------------------------- ONNX Runtime


def test_the_driver_sees_the_gpus_torch_sees() -> None:
    """Detector workers ask the CUDA driver, not torch, whether to use the GPU."""
    assert cuda_device_count() == torch.cuda.device_count()


def test_session_raw_output_is_the_torch_spoof_log_odds_and_score_is_calibrated(
    mfcc: Built,
) -> None:
    session = DetectorSession(mfcc.folder)
    expected_provider = (
        "CUDAExecutionProvider" if torch.cuda.is_available() else "CPUExecutionProvider"
    )
    assert session.providers[0] == expected_provider
    assert session.session.get_session_options().intra_op_num_threads == 1

    features = mfcc.features.numpy()
    with torch.inference_mode():
        logits = mfcc.model(mfcc.features).numpy()
    expected_raw = logits[:, 1] - logits[:, 0]  # mfcc-cnn: spoof at index 1
    raw = session.raw(features)
    assert raw.shape == (len(features),) == (28,)
    np.testing.assert_allclose(raw, expected_raw, rtol=0, atol=1e-4)
    assert np.ptp(raw) > 1e-3  # the windows differ, so a constant output would be a bug
    np.testing.assert_allclose(
        session.score(features), 1.0 / (1.0 + np.exp(-(SLOPE * raw + OFFSET))), rtol=0, atol=1e-6
    )
    # Stateless and batched: any subset of windows scores as it does in the full batch.
    np.testing.assert_allclose(session.raw(features[[5]]), raw[[5]], rtol=0, atol=1e-5)
    np.testing.assert_allclose(session.raw(features[3:10]), raw[3:10], rtol=0, atol=1e-5)
    assert session.raw(features[:0]).shape == (0,)
    with pytest.raises(ValueError, match=r"expected features \(windows, 20, 201\)"):
        session.raw(features[:, :, :100])


def test_a_waveform_model_with_a_spoof_logit_scores_its_output_as_is(
    tmp_path: Path, windows: np.ndarray
) -> None:
    built = build_bundle(tmp_path / "sinc-lcnn", "sinc-lcnn", windows[:6])
    bundle = load_bundle(built.folder)
    assert bundle.card.frontend == {"kind": "waveform", "sample_rate": 16_000}
    assert bundle.card.output.spoof_index is None
    assert bundle.card.calibration == Calibration()  # uncalibrated: slope 1, offset 0
    session = DetectorSession(bundle)
    with torch.inference_mode():
        expected = built.model(built.features).numpy()
    raw = session.raw(windows[:6])
    np.testing.assert_allclose(raw, expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(session.score(windows[:6]), 1 / (1 + np.exp(-raw)), atol=1e-6)
    with pytest.raises(ValueError, match="no bona fide logit"):
        bundle.official_score(raw)


def test_calibration_saturates_without_overflow() -> None:
    calibration = Calibration(slope=3.0, offset=1.0)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        score = calibration.apply(np.array([-1e4, -1.0 / 3.0, 1e4]))
    np.testing.assert_allclose(score, [0.0, 0.5, 1.0], atol=1e-7)


# ---------------------------------------------------------------- dfd models


def test_models_show_prints_a_verified_card_and_fails_on_a_tampered_bundle(
    mfcc: Built, copy: Path
) -> None:
    good = dfd("models", "show", str(mfcc.folder))
    assert good.returncode == 0, good.stderr
    digest = load_bundle(mfcc.folder).card.files[MODEL_NAME]
    assert f"{MODEL_NAME} sha256 {digest} verified" in good.stdout
    assert "mfcc-cnn, version test-1" in good.stdout
    assert "features (batch, 20, 201) -> 'logits', opset 17" in good.stdout
    assert "sigmoid(2 * raw - 0.5) (calibrated)" in good.stdout
    card = load_bundle(mfcc.folder).card
    metric_lines = [line for line in good.stdout.splitlines() if line.startswith("metrics ")]
    if card.metrics.dev:  # figures in words, from the card
        assert f"dev: EER {100 * card.metrics.dev['eer']:.2f} %" in metric_lines[0]
    else:
        assert metric_lines[0].split(None, 1)[1] == "dev: none recorded"

    edit_card(copy, lambda card: card.update(family="aasist"))
    bad = dfd("models", "show", str(copy))
    assert bad.returncode == 2  # a bad bundle: exit 2, as in replay and serve
    assert bad.stdout == ""
    assert bad.stderr.startswith(f"Error: {copy}: metadata mismatch")


def test_models_list_shows_families_and_checks_each_installed_bundle(
    mfcc: Built, copy: Path, tmp_path: Path
) -> None:
    installed = tmp_path / "installed"
    installed.mkdir()
    shutil.copytree(mfcc.folder, installed / "good")
    (copy / MODEL_NAME).write_bytes(b"not a model")
    shutil.move(copy, installed / "broken")
    result = dfd("models", "list", env={"DFD_BUNDLES": str(installed)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  aasist       front end sinc     output 'logits': class_logits, spoof index 0" in lines
    assert "  sinc-lcnn    front end waveform output 'logits': spoof_logit" in lines
    assert f"bundles in {installed}: 2" in lines
    assert "embedded default: sinc-lcnn 2.1, window 2.0 s every 0.5 s, calibrated" in lines
    assert any(line.split()[:3] == ["good", "mfcc-cnn", "test-1,"] for line in lines)
    broken = next(line for line in lines if line.split()[0] == "broken")
    assert "INVALID" in broken
    assert "model.onnx: sha256" in broken

    absent = dfd("models", "list", "--dir", str(tmp_path / "absent"))
    assert absent.returncode == 0, absent.stderr
    assert absent.stdout.splitlines()[-1] == f"bundles: none ({tmp_path / 'absent'} does not exist)"


@pytest.mark.skipif(
    not (AASIST_DIR / "AASIST.pth").exists(),
    reason=f"official AASIST checkpoint not found in {AASIST_DIR}",
)
def test_import_aasist_bundles_the_official_model_with_its_official_score(
    tmp_path: Path, call: np.ndarray
) -> None:
    out = tmp_path / "aasist"
    result = dfd("models", "import-aasist", str(AASIST_DIR / "AASIST.pth"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out}: aasist official-1")
    assert sorted(path.name for path in out.iterdir()) == [MODEL_NAME, CARD_NAME]

    bundle = load_bundle(out)
    card = bundle.card
    assert card.family == "aasist"
    assert card.window == ModelWindow(
        sample_rate=16_000, window_s=4.0375, hop_s=1.0, samples=64_600
    )
    assert (card.output.name, card.output.convention, card.output.spoof_index) == (
        "logits",
        "class_logits",
        0,
    )
    assert "Official ASVspoof score = the bona fide logit = logits[:, 1]" in card.labels
    assert card.calibration == Calibration(slope=1.0, offset=0.0, calibrated=False)
    assert card.thresholds.eer is None
    assert card.training.config is not None
    assert (
        card.training.config["checkpoint_sha256"]
        == hashlib.sha256((AASIST_DIR / "AASIST.pth").read_bytes()).hexdigest()
    )
    assert card.frontend["kind"] == "sinc"

    spec = bundle.frontend_spec
    features = FrontendBank("cpu").compute(call[:1, :64_600], [spec])[spec].numpy()
    session = DetectorSession(bundle)
    logits = session.outputs(features)
    np.testing.assert_allclose(
        bundle.official_score(logits), [AASIST_BONAFIDE_LOGIT], rtol=0, atol=1e-3
    )
    np.testing.assert_allclose(session.raw(features), logits[:, 0] - logits[:, 1], atol=1e-6)

    with pytest.raises(BundleError, match="already holds a bundle"):  # refused before exporting
        import_aasist(AASIST_DIR / "AASIST.pth", out)


# ---------------------------------------------------------------- hostile bundle files


def test_a_listed_file_that_is_a_symbolic_link_is_refused(copy: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.onnx"
    shutil.move(copy / MODEL_NAME, elsewhere)
    (copy / MODEL_NAME).symlink_to(elsewhere)  # same bytes, same sha256: only the link differs
    with pytest.raises(BundleError, match=r"model.onnx: .*a symbolic link"):
        load_bundle(copy)


def test_a_fifo_in_a_bundle_is_refused_without_blocking(copy: Path) -> None:
    os.unlink(copy / MODEL_NAME)
    os.mkfifo(copy / MODEL_NAME)  # opening it for reading would wait for a writer forever
    with pytest.raises(BundleError, match="not a regular file"):
        load_bundle(copy)
    os.unlink(copy / CARD_NAME)
    os.mkfifo(copy / CARD_NAME)
    with pytest.raises(BundleError, match=f"cannot read {CARD_NAME}.*not a regular file"):
        read_card(copy)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"family": ' + "9" * 5000 + "}", "not usable JSON"),
        ("[" * 100_000 + "]" * 100_000, "not usable JSON \\(nested too deeply\\)"),
        (" " * (2 << 20) + "{}", "2097154 bytes, more than the 1048576"),
    ],
    ids=["huge-number", "deep-nesting", "two-megabytes"],
)
def test_a_card_that_cannot_be_a_card_is_refused_in_one_line(
    copy: Path, text: str, message: str
) -> None:
    (copy / CARD_NAME).write_text(text)
    with pytest.raises(BundleError, match=message) as caught:
        load_bundle(copy)
    assert "\n" not in str(caught.value)


def test_a_graph_with_external_weights_is_refused(copy: Path, tmp_path: Path) -> None:
    import onnx

    proto = onnx.load(str(copy / MODEL_NAME))
    onnx.save_model(
        proto, str(copy / MODEL_NAME), save_as_external_data=True, all_tensors_to_one_file=True,
        location="weights.bin", size_threshold=0,
    )  # fmt: skip
    files = {name: sha256_file(copy / name) for name in (MODEL_NAME, "weights.bin")}
    edit_card(copy, lambda card: card["files"].update(files))
    with pytest.raises(BundleError, match="keeps weights in external data files"):
        load_bundle(copy)
