"""Detector families, their registry, ONNX export and the training losses.

Every family: output shape for a 2 s batch through its declared front end, a pinned parameter
count, one CPU training step with its own loss, eval-mode determinism and batch independence, and
torch-vs-ONNX Runtime agreement. Building blocks and losses are checked against hand-computed
values.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf
from torch import nn

from dfd.core.typed_config import ConfigError, build_dataclass
from dfd.detectors.common import WINDOW_SAMPLES
from dfd.detectors.contract import BATCH_AXIS, INPUT_NAME
from dfd.detectors.export import OPSET, cpu_session, export_onnx
from dfd.detectors.export import run_session as run_onnx
from dfd.detectors.mfcc_cnn import MfccCnn, MfccCnnConfig
from dfd.detectors.registry import FAMILIES, DetectorFamily, family
from dfd.detectors.siamese_mel import SiameseMel, SqueezeExcitation
from dfd.detectors.sinc_lcnn import MaxFeatureMap, SincLcnn, SincLcnnConfig
from dfd.dsp.frontends import (
    ConstantQSpec,
    FrontendSpec,
    LfccSpec,
    LogMelSpec,
    LogSpectrogramSpec,
    WaveformSpec,
)
from dfd.trainers.losses import ContrastiveLoss, FocalLoss, build_loss

OWN_FAMILIES = ["sinc-lcnn", "effnet-mel", "siamese-mel", "mfcc-cnn"]

# Pinned so that an architecture change is a conscious one. mfcc-cnn's, by hand: input batch
# norm 2 * 20, conv 1 * 16 * 9 + batch norm 2 * 16, conv 16 * 32 * 9 + batch norm 2 * 32,
# dense (32 * 5 * 50) * 128 + 128, output 128 * 2 + 2.
PARAMETERS = {
    "sinc-lcnn": 163_817,
    "effnet-mel": 4_335_421,
    "siamese-mel": 345_136,
    "mfcc-cnn": 40 + 144 + 32 + 4_608 + 64 + 8_000 * 128 + 128 + 128 * 2 + 2,
}
EXPECTED_OUTPUT = {
    "sinc-lcnn": (2,),
    "effnet-mel": (2,),
    "siamese-mel": (2,),
    "mfcc-cnn": (2, 2),
}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def waveforms(batch: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, WINDOW_SAMPLES, generator=generator)


def build(name: str, seed: int = 0) -> nn.Module:
    """A freshly initialised model; siamese-mel gets (random) prototypes so it can score."""
    torch.manual_seed(seed)
    model = family(name).build()
    if isinstance(model, SiameseMel):
        dim = model.config.embedding_dim
        model.set_prototypes(torch.randn(dim), torch.randn(dim))
    return model


def features_of(entry: DetectorFamily[object], batch: int, seed: int = 0) -> torch.Tensor:
    with torch.no_grad():
        features: torch.Tensor = entry.build_frontend().eval()(waveforms(batch, seed))
    return features


@pytest.fixture(scope="module")
def eval_models() -> dict[str, nn.Module]:
    return {name: build(name).eval() for name in OWN_FAMILIES}


# ---------------------------------------------------------------- every family


@pytest.mark.parametrize("name", OWN_FAMILIES)
def test_output_shape_through_declared_frontend(
    name: str, eval_models: dict[str, nn.Module]
) -> None:
    entry = family(name)
    features = features_of(entry, batch=2)
    assert features.shape[1:] == entry.frontend.build().output_shape(WINDOW_SAMPLES)
    with torch.no_grad():
        output = eval_models[name](features)
    assert output.shape == EXPECTED_OUTPUT[name]
    assert torch.isfinite(output).all()


@pytest.mark.parametrize("name", OWN_FAMILIES)
def test_parameter_count(name: str, eval_models: dict[str, nn.Module]) -> None:
    count = sum(parameter.numel() for parameter in eval_models[name].parameters())
    assert count == PARAMETERS[name]


def training_loss(name: str, model: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """The family's own loss on a batch labelled bona fide, spoof, bona fide, spoof, ..."""
    entry = family(name)
    labels = torch.arange(features.shape[0]) % 2
    loss = build_loss(entry.loss)
    if entry.loss == "contrastive":
        assert isinstance(model, SiameseMel)
        embeddings = model.embed(features)
        first, second = torch.tensor([0, 1]), torch.tensor([2, 2])  # one similar pair, one not
        similar = (labels[first] == labels[second]).long()
        assert similar.tolist() == [1, 0]
        result: torch.Tensor = loss(embeddings[first], embeddings[second], similar)
        return result
    targets = labels if entry.loss == "cross_entropy" else labels.float()
    result = loss(model(features), targets)
    return result


@pytest.mark.parametrize("name", OWN_FAMILIES)
def test_one_training_step_changes_parameters(name: str) -> None:
    model = build(name).train()
    batch = 4 if name == "siamese-mel" else 2
    features = features_of(family(name), batch=batch)
    before = {key: value.detach().clone() for key, value in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.zero_grad()
    loss = training_loss(name, model, features)
    loss.backward()
    optimizer.step()

    assert loss.dim() == 0
    assert torch.isfinite(loss)
    parameters = dict(model.named_parameters())
    assert all(parameter.grad is not None for parameter in parameters.values())
    changed = [key for key, value in parameters.items() if not torch.equal(value, before[key])]
    names = list(parameters)
    assert names[0] in changed
    assert names[-1] in changed
    assert len(changed) > len(names) // 2


@pytest.mark.parametrize("name", OWN_FAMILIES)
def test_eval_mode_is_deterministic_and_batch_independent(
    name: str, eval_models: dict[str, nn.Module]
) -> None:
    model = eval_models[name]
    features = features_of(family(name), batch=2, seed=1)
    with torch.no_grad():
        first = model(features)
        second = model(features)
        alone = model(features[1:])
    assert torch.equal(first, second)
    torch.testing.assert_close(alone, first[1:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", OWN_FAMILIES)
def test_torch_and_onnx_runtime_agree(
    name: str, eval_models: dict[str, nn.Module], tmp_path: Path
) -> None:
    import onnx

    entry = family(name)
    model = eval_models[name]
    with torch.inference_mode():  # as the DSP batcher computes features
        example = entry.build_frontend().eval()(waveforms(2))
    path = export_onnx(
        model,
        example,
        tmp_path / f"{name}.onnx",
        output_name=entry.output_name,
        metadata=entry.metadata(),
    )
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == OPSET
    assert {prop.key: prop.value for prop in proto.metadata_props} == entry.metadata()

    session = cpu_session(path)
    (graph_input,) = session.get_inputs()
    (graph_output,) = session.get_outputs()
    assert graph_input.name == INPUT_NAME
    assert graph_input.shape[0] == BATCH_AXIS
    assert graph_output.name == entry.output_name

    features = features_of(entry, batch=3, seed=2)  # a batch size other than the exported one
    with torch.no_grad():
        expected = model(features).numpy()
    np.testing.assert_allclose(run_onnx(session, features), expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- building blocks


def test_mfm_keeps_the_larger_of_the_two_channel_halves() -> None:
    x = torch.tensor([1.0, -2.0, 5.0, 0.5, 3.0, -1.0, 4.0, 7.0]).reshape(1, 4, 2, 1)
    # halves: channels (0, 1) and (2, 3); per position the larger one
    expected = torch.tensor([3.0, -1.0, 5.0, 7.0]).reshape(1, 2, 2, 1)
    assert torch.equal(MaxFeatureMap(4, dim=1)(x), expected)
    with pytest.raises(ValueError, match="even"):
        MaxFeatureMap(3, dim=1)
    with pytest.raises(ValueError, match="built for 4"):
        MaxFeatureMap(4, dim=1)(torch.zeros(1, 6, 2, 2))


def test_an_exported_sinc_lcnn_slices_at_constant_offsets(tmp_path: Path) -> None:
    """No Shape arithmetic in the graph: in an 8-bit graph a Shape node forces a convolution's
    whole output to be dequantised just to read its size."""
    import onnx

    entry = family("sinc-lcnn")
    model = entry.build().eval()
    with torch.inference_mode():
        example = entry.build_frontend().eval()(waveforms(2))
    proto = onnx.load(str(export_onnx(model, example, tmp_path / "lcnn.onnx")))
    ops = {node.op_type for node in proto.graph.node}
    assert "Max" in ops  # the MFM layers are there
    assert not ops & {"Shape", "Gather"}


def test_se_block_rescales_each_channel_by_its_gate() -> None:
    se = SqueezeExcitation(channels=2, reduction=1)
    with torch.no_grad():
        for layer in (se.squeeze, se.excite):
            layer.weight.copy_(torch.eye(2))
            layer.bias.zero_()
    x = torch.stack([torch.full((3, 3), 2.0), torch.full((3, 3), -1.0)]).unsqueeze(0)
    # means (2, -1) -> relu (2, 0) -> identity (2, 0) -> sigmoid (1 / (1 + e^-2), 1 / 2)
    gate = torch.tensor([1.0 / (1.0 + math.exp(-2.0)), 0.5])
    expected = x * gate[None, :, None, None]
    torch.testing.assert_close(se(x), expected)
    assert se(x)[0, 1, 0, 0].item() == pytest.approx(-0.5)


def test_sinc_lcnn_trains_its_own_filter_bank() -> None:
    entry = family("sinc-lcnn")
    assert entry.frontend == WaveformSpec()
    assert json.loads(entry.metadata()["dfd.frontend"])["kind"] == "waveform"
    model = SincLcnn()
    parameter_names = dict(model.named_parameters())
    assert {"sinc.low_hz_", "sinc.band_hz_"} <= set(parameter_names)
    assert model.frames(WINDOW_SAMPLES) == ((WINDOW_SAMPLES - 251) // 8 + 1) // 20 == 198
    image = model.filterbank_image(waveforms(1))
    assert image.shape == (1, 70, 198)


def test_siamese_score_is_distance_to_bonafide_minus_distance_to_spoof() -> None:
    model = SiameseMel().eval()
    features = features_of(family("siamese-mel"), batch=2)
    assert not model.has_prototypes()
    with torch.no_grad():
        assert torch.isnan(model(features)).all()
        embeddings = model.embed(features)
    assert embeddings.shape == (2, 256)
    bonafide, spoof = embeddings[0], embeddings[1]
    model.set_prototypes(bonafide, spoof)
    assert model.has_prototypes()
    with torch.no_grad():
        scores = model(features)
    distance = torch.linalg.vector_norm(bonafide - spoof).item()
    # window 0 sits on the bona fide prototype, window 1 on the spoof one
    assert scores.tolist() == pytest.approx([-distance, distance], rel=1e-5)
    assert set(model.state_dict()) >= {"bonafide_prototype", "spoof_prototype"}
    with pytest.raises(ValueError, match="shape"):
        model.set_prototypes(torch.zeros(3), torch.zeros(256))


def test_siamese_crops_and_pads_the_frame_axis() -> None:
    model = SiameseMel()
    long = torch.randn(1, 128, 129)
    short = torch.randn(1, 128, 120)
    assert torch.equal(model.patch(long), long[..., :128])
    padded = model.patch(short)
    assert padded.shape == (1, 128, 128)
    assert torch.equal(padded[..., 119:], short[..., 119:].expand(1, 128, 9))


def test_export_refuses_a_siamese_model_without_prototypes(tmp_path: Path) -> None:
    model = SiameseMel()
    with pytest.raises(ValueError, match="set_prototypes"):
        export_onnx(model, torch.randn(2, 128, 129), tmp_path / "x.onnx", output_name="score")


def test_a_narrower_coarser_sinc_lcnn_scores_windows_and_exports(tmp_path: Path) -> None:
    """The live-budget variant: 20 ms frames (sinc stride 16, pooled by 20), LCNN channels
    scaled by ``width``; fewer parameters, the same contract, the same ONNX scores."""
    sinc = dataclasses.replace(SincLcnnConfig().sinc, stride=16)
    config = SincLcnnConfig(sinc=sinc, pool=20, width=0.5)
    model = SincLcnn(config).eval()
    assert model.frames(32_000) == 99  # (32000 - 251) // 16 + 1 = 1985 outputs, pooled by 20
    assert model.lcnn.out_channels == 16
    parameters = sum(p.numel() for p in model.parameters())
    assert parameters < 0.4 * sum(p.numel() for p in SincLcnn().parameters())
    batch = torch.randn(3, 32_000) * 0.1
    with torch.inference_mode():
        expected = model(batch).numpy()
    assert expected.shape == (3,)
    path = export_onnx(model, batch, tmp_path / "narrow.onnx")
    np.testing.assert_allclose(run_onnx(cpu_session(path), batch), expected, atol=1e-4)


def test_mfcc_cnn_refuses_features_of_another_shape() -> None:
    with pytest.raises(ValueError, match=r"\(batch, 20, 201\)"):
        MfccCnn()(torch.randn(2, 20, 150))
    assert MfccCnnConfig().input_shape == (20, 201)


def test_mfcc_cnn_time_statistics_head_is_small_takes_any_length_and_exports(
    tmp_path: Path,
) -> None:
    """pooling = "time-stats": mean and standard deviation over time per channel and band, so
    2 x 32 x 5 inputs to the dense layer instead of 32 x 5 x 50, and any number of frames."""
    model = MfccCnn(MfccCnnConfig(pooling="time-stats")).eval()
    flat = MfccCnn().eval()
    dense_in = model.head[1].in_features
    assert dense_in == 2 * 32 * 5
    weights = sum(p.numel() for p in model.parameters())
    assert weights == PARAMETERS["mfcc-cnn"] - (8_000 - dense_in) * 128
    assert sorted(model.state_dict()) == sorted(flat.state_dict())  # same names as v1 bundles
    with torch.inference_mode():
        assert model(torch.randn(2, 20, 150)).shape == (2, 2)
        # the statistics are over time: a window and the same window repeated score alike
        one = torch.randn(1, 20, 200)
        np.testing.assert_allclose(
            model(one).numpy(), model(one.repeat(1, 1, 2)).numpy(), atol=2e-2
        )
        batch = torch.randn(3, 20, 201)
        expected = model(batch).numpy()
    with pytest.raises(ValueError, match=r"\(batch, 20, at least 4\)"):
        model(torch.randn(2, 19, 201))
    path = export_onnx(model, batch, tmp_path / "stats.onnx")
    np.testing.assert_allclose(run_onnx(cpu_session(path), batch), expected, atol=1e-4)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"n_lfcc": 20, "n_filter": 20}, LfccSpec(n_lfcc=20, n_filter=20)),
        ({"kind": "lfcc"}, LfccSpec()),
        ({"kind": "logspec", "f_max": 4000}, LogSpectrogramSpec(f_max=4000.0)),
        ({"kind": "cqt"}, ConstantQSpec()),
    ],
    ids=["lfcc by its fields", "lfcc", "0-4 kHz log spectrogram", "constant-q"],
)
def test_mfcc_cnn_takes_the_front_end_its_model_table_names_and_exports_with_it(
    table: dict[str, object], expected: FrontendSpec, tmp_path: Path
) -> None:
    """``[model] frontend = { kind = ... }`` in a recipe: the front end named, computed by the
    DSP stage's module for it, the model built for its rows, and the exported graph's contract
    naming it, so the daemon computes the same features."""
    config = build_dataclass(
        MfccCnnConfig, {"pooling": "time-stats", "frontend": table}, where="[model]"
    )
    assert config.frontend == expected
    entry = family("mfcc-cnn")
    model = MfccCnn(config).eval()
    with torch.inference_mode():
        features = entry.build_frontend(config).eval()(waveforms(3))
        expected_scores = model(features).numpy()
    assert tuple(features.shape[1:]) == expected.output_shape(WINDOW_SAMPLES)
    assert model.input_norm.num_features == features.shape[1]
    path = export_onnx(model, features, tmp_path / "m.onnx", metadata=entry.metadata(config))
    np.testing.assert_allclose(run_onnx(cpu_session(path), features), expected_scores, atol=1e-4)
    assert FrontendSpec.from_json(entry.metadata(config)["dfd.frontend"]) == expected


@pytest.mark.parametrize(
    ("name", "table", "expected"),
    [
        ("effnet-mel", {"frontend": {"kind": "lfcc"}}, LfccSpec()),
        ("siamese-mel", {"frontend": {"kind": "cqt"}, "frames": 200}, ConstantQSpec()),
        (
            "siamese-mel",
            {"frontend": {"kind": "logspec", "f_max": 4000}, "frames": 200},
            LogSpectrogramSpec(f_max=4000.0),
        ),
    ],
    ids=["effnet-mel lfcc", "siamese-mel constant-q", "siamese-mel 0-4 kHz log spectrogram"],
)
def test_the_image_families_take_another_front_end_by_kind_and_export_with_it(
    name: str, table: dict[str, object], expected: FrontendSpec, tmp_path: Path
) -> None:
    """effnet-mel and siamese-mel read LFCCs, a log spectrogram or constant-Q when the recipe
    names one: normalised per row of that front end, every frame read (siamese-mel's crop set to
    the hop's 200 frames), and the graph's contract naming it for the daemon."""
    entry = family(name)
    config = build_dataclass(entry.config_class, table, where="[model]")
    assert config.frontend == expected
    torch.manual_seed(0)
    model = entry.build(config).eval()
    if isinstance(model, SiameseMel):
        model.set_prototypes(torch.randn(256), torch.randn(256))
    with torch.inference_mode():
        features = entry.build_frontend(config).eval()(waveforms(2))
        scores = model(features).numpy()
        # the last frame a 2 s window makes is beyond siamese-mel's 200: not read
        if isinstance(model, SiameseMel):
            embedding = model.embed(features)
            moved = features.clone()
            moved[..., 200:] += 10.0
            assert torch.equal(model.embed(moved), embedding)
            moved[..., 199] += 10.0
            assert not torch.allclose(model.embed(moved), embedding, atol=1e-6)
    assert tuple(features.shape[1:]) == expected.output_shape(WINDOW_SAMPLES)
    assert model.input_norm.num_features == features.shape[1]
    path = export_onnx(model, features, tmp_path / "m.onnx", metadata=entry.metadata(config))
    np.testing.assert_allclose(run_onnx(cpu_session(path), features), scores, atol=1e-4)
    assert FrontendSpec.from_json(entry.metadata(config)["dfd.frontend"]) == expected


def test_a_table_without_a_kind_is_still_the_image_families_log_mel() -> None:
    """Recipes written before other front ends were allowed keep meaning a log-mel spec."""
    for config_type in (family("effnet-mel").config_class, family("siamese-mel").config_class):
        config = build_dataclass(config_type, {"frontend": {"n_mels": 64}}, where="[model]")
        assert config.frontend == LogMelSpec(n_mels=64)
    with pytest.raises(ConfigError, match="kind 'mfcc' is not one of 'logmel', 'lfcc'"):
        build_dataclass(
            family("effnet-mel").config_class, {"frontend": {"kind": "mfcc"}}, where="[model]"
        )


def test_a_front_end_named_by_the_wrong_kind_is_refused() -> None:
    known = "'mfcc', 'lfcc', 'logspec', 'cqt'"
    with pytest.raises(ConfigError, match=f"frontend: kind 'logmel' is not one of {known}"):
        build_dataclass(MfccCnnConfig, {"frontend": {"kind": "logmel"}}, where="[model]")
    with pytest.raises(ConfigError, match=r"frontend.bins_per_octave: expected int"):
        build_dataclass(
            MfccCnnConfig, {"frontend": {"kind": "cqt", "bins_per_octave": 1.5}}, where="[model]"
        )
    with pytest.raises(ConfigError, match="kind 'lfcc' is not 'cqt'"):
        build_dataclass(ConstantQSpec, {"kind": "lfcc"}, where="[model].frontend")


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ConfigError, match="pool"):
        SincLcnnConfig(pool=0)
    with pytest.raises(ConfigError, match="hidden"):
        SincLcnnConfig(hidden=7)
    with pytest.raises(ConfigError, match="width"):
        SincLcnnConfig(width=0.1)
    with pytest.raises(ConfigError, match="dropout"):
        MfccCnnConfig(dropout=1.0)


# ---------------------------------------------------------------- registry


def test_registry_refuses_unknown_names_and_lists_the_known() -> None:
    with pytest.raises(ValueError, match=r"unknown detector family 'rawnet9'.*mfcc-cnn"):
        family("rawnet9")
    assert set(OWN_FAMILIES) <= set(FAMILIES)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_states_its_contract(name: str) -> None:
    entry = family(name)
    metadata = entry.metadata()
    assert metadata["dfd.family"] == name
    assert metadata["dfd.output"] == entry.output
    if entry.frontend is not None:
        assert FrontendSpec.from_json(metadata["dfd.frontend"]) == entry.frontend
    assert isinstance(entry.default_config, entry.config_class)


def test_registry_output_conventions() -> None:
    assert family("mfcc-cnn").output == "class_logits"
    assert family("mfcc-cnn").spoof_index == 1
    assert family("siamese-mel").output_name == "score"
    assert {family(name).output for name in ("sinc-lcnn", "effnet-mel")} == {"spoof_logit"}
    with pytest.raises(ValueError, match="spoof_index"):
        DetectorFamily(
            name="broken",
            model_class=MfccCnn,
            default_config=MfccCnnConfig(),
            frontend_of=lambda config: config.frontend,
            loss="cross_entropy",
            output="class_logits",
        )


def test_mel_families_share_one_frontend() -> None:
    shared = {family("effnet-mel").frontend, family("siamese-mel").frontend}
    assert shared == {LogMelSpec(n_fft=1024, win_length=512, hop_length=250, n_mels=128)}


# ---------------------------------------------------------------- losses


def test_focal_loss_reduces_to_bce_at_gamma_zero() -> None:
    logits = torch.tensor([-150.0, -3.0, -0.2, 0.0, 0.7, 4.0, 150.0, 30.0])
    labels = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    focal = FocalLoss(gamma=0.0, alpha=None)(logits, labels)
    torch.testing.assert_close(focal, nnf.binary_cross_entropy_with_logits(logits, labels))
    weighted = FocalLoss(gamma=0.0, class_weights=(0.25, 2.0))(logits, labels)
    weights = torch.where(labels == 1, 2.0, 0.25)
    expected = nnf.binary_cross_entropy_with_logits(logits, labels, weight=weights)
    torch.testing.assert_close(weighted, expected)


def test_focal_loss_hand_computed_values() -> None:
    ln2 = math.log(2.0)
    zero = torch.zeros(1)
    spoof, bonafide = torch.ones(1), torch.zeros(1)
    # p_t = 1/2: (1 - p_t)^2 = 1/4
    assert FocalLoss(gamma=2.0)(zero, spoof).item() == pytest.approx(0.25 * ln2)
    assert FocalLoss(gamma=2.0, alpha=0.25)(zero, spoof).item() == pytest.approx(0.0625 * ln2)
    assert FocalLoss(gamma=2.0, alpha=0.25)(zero, bonafide).item() == pytest.approx(
        0.75 * 0.25 * ln2
    )
    # logit ln 3: p = 3/4; label spoof: 1/16 * -ln(3/4); label bona fide: 9/16 * -ln(1/4)
    logit = torch.tensor([math.log(3.0), math.log(3.0)])
    losses = FocalLoss(gamma=2.0, reduction="none")(logit, torch.tensor([1.0, 0.0]))
    assert losses.tolist() == pytest.approx([-math.log(0.75) / 16, -9 * math.log(0.25) / 16])


def test_focal_loss_is_finite_for_confidently_wrong_logits() -> None:
    logits = torch.tensor([300.0, -300.0], requires_grad=True)
    loss = FocalLoss(gamma=2.0, alpha=0.5, reduction="sum")(logits, torch.tensor([0.0, 1.0]))
    loss.backward()
    assert loss.item() == pytest.approx(300.0)  # 2 * 0.5 * 300: (1 - p_t)^2 is 1
    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all()


def test_contrastive_loss_hand_computed_values() -> None:
    first = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    second = torch.tensor([[3.0, 4.0], [3.0, 4.0], [1.0, 0.0], [1.0, 1.0]])
    similar = torch.tensor([1, 0, 0, 0])
    # d = 5, 5, 1, 0: similar 25; dissimilar beyond the margin 0; (2 - 1)^2 = 1; (2 - 0)^2 = 4
    losses = ContrastiveLoss(margin=2.0, reduction="none")(first, second, similar)
    assert losses.tolist() == pytest.approx([25.0, 0.0, 1.0, 4.0])
    assert ContrastiveLoss(margin=2.0)(first, second, similar).item() == pytest.approx(30.0 / 4)


def test_contrastive_loss_gradient_is_finite_for_coinciding_embeddings() -> None:
    first = torch.ones(2, 3, requires_grad=True)
    loss = ContrastiveLoss()(first, torch.ones(2, 3), torch.tensor([0, 1]))
    loss.backward()
    assert first.grad is not None
    assert torch.isfinite(first.grad).all()


def test_losses_refuse_bad_settings() -> None:
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        build_loss("hinge")
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1.0)
    with pytest.raises(ValueError, match="class_weights"):
        FocalLoss(class_weights=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="margin"):
        ContrastiveLoss(margin=0.0)
    assert isinstance(build_loss("bce"), nn.BCEWithLogitsLoss)
    assert isinstance(build_loss("cross_entropy"), nn.CrossEntropyLoss)


def test_the_model_layer_does_not_import_the_trainers() -> None:
    """Loading, exporting and running detectors needs nothing from dfd.trainers."""
    import subprocess
    import sys

    code = (
        "import sys, dfd.detectors.registry, dfd.detectors.bundle, dfd.detectors.runtime, "
        "dfd.detectors.export\n"
        "print(sorted(m for m in sys.modules if m.startswith('dfd.trainers')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
