"""AASIST / AASIST-L: shapes, parameter counts, the official front end, importing the official
checkpoints, ONNX export and one CPU training step.

The official checkpoints are not part of the repository; the tests that need them look in
``../shared/third_party/aasist`` beside the checkout (or ``$DFD_AASIST_DIR``) and are skipped when
the files are not there.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

from dfd.core.typed_config import ConfigError
from dfd.detectors.aasist import (
    AASIST,
    AASIST_L,
    BONAFIDE_INDEX,
    PRESETS,
    AasistConfig,
    AasistModel,
    GraphPool,
    HtrgGraphAttentionLayer,
    aasist_preset,
    build_aasist,
    example_features,
    export_aasist_onnx,
    mask_frequency_band,
    min_samples,
)
from dfd.detectors.aasist_import import load_official_aasist
from dfd.detectors.export import cpu_session, run_session
from dfd.detectors.registry import family
from dfd.detectors.state_dicts import load_checked_state_dict
from tests.signals import SAMPLE_CALL

AASIST_DIR = Path(
    os.environ.get(
        "DFD_AASIST_DIR", Path(__file__).resolve().parents[2] / "shared" / "third_party" / "aasist"
    )
)
CHECKPOINTS = {"AASIST": AASIST_DIR / "AASIST.pth", "AASIST-L": AASIST_DIR / "AASIST-L.pth"}
EXPECTED_PARAMETERS = {"AASIST": 297_866, "AASIST-L": 85_306}
OFFICIAL_SAMPLES = 64_600

# Bona fide logits of the official checkpoints on the first 64,600 samples (16 kHz) of each
# channel of samples/call-8k-ulaw-stereo.wav. The official code path (clovaai/aasist Model, its
# float32-built CONV filters) gives the same figures to within 2e-5.
SAMPLE_CALL_BONAFIDE_LOGITS = {
    "AASIST": (-4.223088, 1.4435532),
    "AASIST-L": (-5.2725916, 0.25181162),
}


def needs_checkpoint(name: str) -> pytest.MarkDecorator:
    path = CHECKPOINTS[name]
    return pytest.mark.skipif(
        not path.exists(), reason=f"official {name} checkpoint not found at {path}"
    )


def official_pad(x: np.ndarray, max_len: int = OFFICIAL_SAMPLES) -> np.ndarray:
    """clovaai/aasist data_utils.pad: cut, or repeat the whole waveform until long enough."""
    if x.shape[0] >= max_len:
        return x[:max_len]
    repeats = int(max_len / x.shape[0]) + 1
    return np.tile(x, repeats)[:max_len]


def official_sinc_filters(out_channels: int = 70, kernel_size: int = 129) -> np.ndarray:
    """The published construction of AASIST's fixed filters (models/AASIST.py, CONV), float64."""
    rate = 16_000
    grid = (rate // 2) * np.linspace(0, 1, 257)
    mel = 2595 * np.log10(1 + grid / 700)
    edges = 700 * (10 ** (np.linspace(mel.min(), mel.max(), out_channels + 1) / 2595) - 1)
    n = np.arange(-(kernel_size - 1) / 2, (kernel_size - 1) / 2 + 1)
    return np.stack(
        [
            np.hamming(kernel_size)
            * (
                (2 * high / rate) * np.sinc(2 * high * n / rate)
                - (2 * low / rate) * np.sinc(2 * low * n / rate)
            )
            for low, high in itertools.pairwise(edges)
        ]
    )


@pytest.fixture(scope="module")
def call_windows() -> torch.Tensor:
    """Both channels of the sample call, cut or padded to 64,600 samples like the official eval."""
    from dfd.dsp.audio_io import load_audio

    samples = load_audio(SAMPLE_CALL).samples
    return torch.from_numpy(np.stack([official_pad(channel) for channel in samples]))


# ---------------------------------------------------------------- shapes and sizes


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_forward_shape_and_parameter_count(name: str) -> None:
    torch.manual_seed(0)
    model = build_aasist(name).eval()
    assert model.parameter_count() == EXPECTED_PARAMETERS[name]
    with torch.inference_mode():
        logits = model.forward_waveform(torch.randn(2, 32_000))
    assert logits.shape == (2, 2)
    assert bool(torch.isfinite(logits).all())


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("num_samples", [32_000, OFFICIAL_SAMPLES, 48_000])
def test_every_op_takes_the_window_length(name: str, num_samples: int) -> None:
    """Shapes only, on the meta device (no arithmetic): the official checkpoints' 64,600-sample
    forward pass with real numbers is in the checkpoint tests below."""
    model = build_aasist(name).to("meta").eval()
    with torch.inference_mode():
        logits = model.forward_waveform(torch.empty(2, num_samples, device="meta"))
    assert logits.shape == (2, 2)


def test_state_dict_keys_are_the_official_ones() -> None:
    keys = list(AasistModel(AASIST).state_dict())
    assert keys[:3] == ["pos_S", "master1", "master2"]
    for key in [
        "first_bn.running_var",
        "encoder.0.0.conv_downsample.weight",
        "encoder.5.0.bn1.weight",
        "HtrgGAT_layer_ST22.att_weightM",
        "pool_hT2.proj.bias",
        "out_layer.weight",
    ]:
        assert key in keys
    assert "encoder.0.0.bn1.weight" not in keys  # the first block has no pre-activation
    assert not any(key.startswith("conv_time") for key in keys)  # the sinc bank is fixed


def test_too_short_input_is_refused_and_the_shortest_works() -> None:
    model = AasistModel(AASIST_L).eval()
    with torch.inference_mode():
        assert model.forward_waveform(torch.randn(1, min_samples())).shape == (1, 2)
        with pytest.raises(ValueError, match="at least"):
            model.forward_waveform(torch.randn(1, min_samples() - 1))
        with pytest.raises(ValueError, match="sinc features"):
            model(torch.randn(1, 60, 5000))


def test_a_batch_of_one_matches_its_row_in_a_batch() -> None:
    torch.manual_seed(1)
    model = AasistModel(AASIST_L).eval()
    features = example_features(AASIST_L, 8_000, batch=3)
    with torch.inference_mode():
        together = model(features)
        alone = model(features[1:2])
    torch.testing.assert_close(alone, together[1:2], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- front end and graph layers


def test_sinc_front_end_is_the_official_conv() -> None:
    model = AasistModel(AASIST)
    spec = model.frontend_spec
    assert (spec.out_channels, spec.kernel_size, spec.stride, spec.padding) == (70, 129, 1, 0)
    assert (spec.learnable, spec.normalisation, spec.sample_rate) == (False, "passband", 16_000)

    rng = np.random.default_rng(5)
    waveform = rng.standard_normal((2, 4_000)) * 0.1
    expected = torch.nn.functional.conv1d(
        torch.from_numpy(waveform).unsqueeze(1),
        torch.from_numpy(official_sinc_filters()).unsqueeze(1),
    ).numpy()
    features = spec.build()(torch.from_numpy(waveform.astype(np.float32))).detach().numpy()
    assert features.shape == expected.shape == (2, 70, 4_000 - 128)
    np.testing.assert_allclose(features, expected, rtol=0, atol=1e-5 * np.abs(expected).max())

    model.eval()
    with torch.inference_mode():
        direct = model(spec.build()(torch.from_numpy(waveform.astype(np.float32))))
        through = model.forward_waveform(torch.from_numpy(waveform.astype(np.float32)))
    torch.testing.assert_close(through, direct, rtol=0, atol=0)


def test_hs_gal_attention_blocks_use_their_own_weights() -> None:
    """The block-wise attention map equals the official in-place construction."""
    torch.manual_seed(2)
    layer = HtrgGraphAttentionLayer(8, 6, temperature=100.0)
    x = torch.randn(2, 7, 8)
    n1 = 3
    att = torch.tanh(layer.att_proj(x.unsqueeze(2) * x.unsqueeze(1)))
    board = torch.zeros(2, 7, 7, 1)
    board[:, :n1, :n1] = att[:, :n1, :n1] @ layer.att_weight11
    board[:, n1:, n1:] = att[:, n1:, n1:] @ layer.att_weight22
    board[:, :n1, n1:] = att[:, :n1, n1:] @ layer.att_weight12
    board[:, n1:, :n1] = att[:, n1:, :n1] @ layer.att_weight12
    expected = torch.softmax(board / 100.0, dim=-2)
    torch.testing.assert_close(layer._derive_att_map(x, n1), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("nodes", "ratio", "kept"), [(29, 0.7, 20), (14, 0.5, 7), (2, 0.4, 1)])
def test_graph_pool_keeps_the_best_scored_nodes_scaled_by_their_score(
    nodes: int, ratio: float, kept: int
) -> None:
    torch.manual_seed(3)
    pool = GraphPool(ratio, 4, dropout=0.3).eval()
    h = torch.randn(2, nodes, 4)
    pooled = pool(h)
    assert pooled.shape == (2, kept, 4)
    scores = torch.sigmoid(pool.proj(h))
    for item in range(2):
        order = torch.argsort(scores[item, :, 0], descending=True)[:kept]
        torch.testing.assert_close(pooled[item], h[item, order] * scores[item, order])


def test_frequency_mask_zeroes_one_band_of_fewer_than_twenty_channels() -> None:
    torch.manual_seed(4)
    features = torch.randn(3, 70, 50) + 10.0
    for _ in range(20):
        masked = mask_frequency_band(features)
        zeroed = (masked == 0).all(dim=2).all(dim=0)
        band = torch.nonzero(zeroed).flatten()
        assert band.numel() < 20
        if band.numel():
            assert torch.equal(band, torch.arange(int(band[0]), int(band[0]) + band.numel()))
        torch.testing.assert_close(masked[:, ~zeroed], features[:, ~zeroed], rtol=0, atol=0)


# ---------------------------------------------------------------- configs


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_round_trips_through_the_official_model_config(name: str) -> None:
    preset = aasist_preset(name)
    assert AasistConfig.from_official({"model_config": preset.to_official()}) == preset
    assert preset.sinc_kernel_size == 129


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"architecture": "RawNet2"}, "architecture"),
        ({"filts": [70, [1, 32], [32, 32], [16, 64], [64, 64]]}, "do not chain"),
        ({"filts": [70, [1, 32], [32, 32], [32, 64], [64, 24]]}, "equal input and output"),
        ({"pool_ratios": [0.5, 0.7, 0.0, 0.5]}, "pool_ratios"),
        ({"gat_dims": [64]}, "pair"),
        ({"nb_samp": True}, "nb_samp"),
        ({"freq_aug": True}, "unknown"),
    ],
)
def test_bad_model_configs_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AasistConfig.from_official({"model_config": {**AASIST.to_official(), **change}})
    with pytest.raises(ConfigError, match="unknown AASIST preset"):
        aasist_preset("AASIST-XL")


# ---------------------------------------------------------------- official checkpoints


@pytest.mark.parametrize("name", [pytest.param(n, marks=needs_checkpoint(n)) for n in CHECKPOINTS])
def test_official_checkpoint_imports_strictly(name: str) -> None:
    config, model = load_official_aasist(CHECKPOINTS[name])
    conf_json = json.loads(CHECKPOINTS[name].with_suffix(".conf").read_text())
    assert config == PRESETS[name] == AasistConfig.from_official(conf_json)
    assert config.to_official() == conf_json["model_config"]
    assert model.parameter_count() == EXPECTED_PARAMETERS[name]
    assert not model.training
    official = torch.load(CHECKPOINTS[name], weights_only=True, map_location="cpu")
    state = model.state_dict()
    assert list(state) == list(official)
    assert all(torch.equal(state[key], official[key]) for key in official)


@needs_checkpoint("AASIST-L")
def test_a_renamed_or_reshaped_entry_is_refused_by_name(tmp_path: Path) -> None:
    state = torch.load(CHECKPOINTS["AASIST-L"], weights_only=True, map_location="cpu")
    conf = CHECKPOINTS["AASIST-L"].with_suffix(".conf")

    renamed = dict(state)
    renamed["GAT_layer_S.att_weights"] = renamed.pop("GAT_layer_S.att_weight")
    torch.save(renamed, tmp_path / "renamed.pth")
    with pytest.raises(ValueError, match=r"missing keys: GAT_layer_S\.att_weight\b") as error:
        load_official_aasist(tmp_path / "renamed.pth", conf)
    assert "unexpected keys: GAT_layer_S.att_weights" in str(error.value)

    reshaped = dict(state)
    reshaped["pos_S"] = torch.zeros(1, 24, 24)
    torch.save(reshaped, tmp_path / "reshaped.pth")
    with pytest.raises(ValueError, match=r"shape mismatch: pos_S \(checkpoint \(1, 24, 24\)"):
        load_official_aasist(tmp_path / "reshaped.pth", conf)

    # The right weights with the other variant's hyper-parameters do not fit either.
    with pytest.raises(ValueError, match="shape mismatch"):
        load_official_aasist(CHECKPOINTS["AASIST-L"], CHECKPOINTS["AASIST"].with_suffix(".conf"))
    with pytest.raises(ValueError, match=r"no AASIST config"):
        load_official_aasist(tmp_path / "renamed.pth")


@pytest.mark.parametrize("name", [pytest.param(n, marks=needs_checkpoint(n)) for n in CHECKPOINTS])
def test_a_training_run_can_start_from_the_official_weights(name: str) -> None:
    """``init_weights`` for fine-tuning: the family's default model takes the official file."""
    model = family(name.lower()).build()
    load_checked_state_dict(model, CHECKPOINTS[name], model_name=name.lower())
    official = torch.load(CHECKPOINTS[name], weights_only=True, map_location="cpu")
    assert all(torch.equal(model.state_dict()[key], official[key]) for key in official)
    other = "AASIST" if name == "AASIST-L" else "AASIST-L"
    with pytest.raises(ValueError, match=f"does not fit {other.lower()}: shape mismatch"):
        load_checked_state_dict(
            family(other.lower()).build(), CHECKPOINTS[name], model_name=other.lower()
        )


def test_anything_but_a_plain_state_dict_is_refused(tmp_path: Path) -> None:
    conf = tmp_path / "AASIST.conf"
    conf.write_text(json.dumps({"model_config": AASIST.to_official()}))
    torch.save({"model": AasistModel(AASIST_L).state_dict(), "epoch": 3}, tmp_path / "AASIST.pth")
    with pytest.raises(ValueError, match="not tensors: model, epoch"):
        load_official_aasist(tmp_path / "AASIST.pth")
    (tmp_path / "AASIST.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="weights-only"):
        load_official_aasist(tmp_path / "AASIST.pth")


@pytest.mark.parametrize("name", [pytest.param(n, marks=needs_checkpoint(n)) for n in CHECKPOINTS])
def test_official_model_scores_real_speech_deterministically(
    name: str, call_windows: torch.Tensor
) -> None:
    _, model = load_official_aasist(CHECKPOINTS[name])
    assert call_windows.shape == (2, OFFICIAL_SAMPLES)
    with torch.inference_mode():
        logits = model.forward_waveform(call_windows)
        first_second = [model.forward_waveform(call_windows[:, 16_000:32_000]) for _ in range(2)]
    assert torch.equal(first_second[0], first_second[1])  # eval mode: no dropout, fixed stats
    bonafide = logits[:, BONAFIDE_INDEX].numpy()
    assert np.isfinite(bonafide).all()
    np.testing.assert_allclose(bonafide, SAMPLE_CALL_BONAFIDE_LOGITS[name], rtol=0, atol=1e-3)


# ---------------------------------------------------------------- ONNX and training


def test_onnx_export_agrees_with_torch(tmp_path: Path) -> None:
    import onnx

    torch.manual_seed(6)
    model = AasistModel(AASIST)
    path = export_aasist_onnx(model, tmp_path / "aasist.onnx", num_samples=16_000)
    assert model.training  # export leaves the mode as it found it
    metadata = {prop.key: prop.value for prop in onnx.load(str(path)).metadata_props}
    assert json.loads(metadata["model_config"]) == AASIST.to_official()
    assert metadata["num_samples"] == "16000"
    assert json.loads(metadata["labels"]) == {"spoof": 0, "bonafide": 1}

    features = example_features(AASIST, 16_000, batch=3)  # another batch size than exported
    model.eval()
    with torch.inference_mode():
        expected = model(features).numpy()
    session = cpu_session(path)
    actual = run_session(session, features)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4 * scale)
    with pytest.raises(InvalidArgument, match="dimensions"):  # the time axis is fixed
        run_session(session, example_features(AASIST, 20_000, batch=1))


def test_one_training_step_on_the_cpu_changes_the_weights() -> None:
    torch.manual_seed(8)
    model = AasistModel(AASIST).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    logits = model.forward_waveform(torch.randn(2, 32_000) * 0.1, freq_aug=True)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]))
    assert bool(torch.isfinite(loss))
    optimiser.zero_grad()
    loss.backward()
    # The official residual blocks compute bn1 and then feed conv1 the raw input, so bn1 of
    # blocks 2 to 6 never receives a gradient; everything else does.
    without_gradient = {name for name, p in model.named_parameters() if p.grad is None}
    assert without_gradient == {
        f"encoder.{block}.0.bn1.{kind}" for block in range(1, 6) for kind in ("weight", "bias")
    }
    optimiser.step()
    unchanged = [
        name
        for name, parameter in model.named_parameters()
        if name not in without_gradient and torch.equal(parameter, before[name])
    ]
    assert unchanged == []
