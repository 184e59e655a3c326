"""``dfd models quantize``: an 8-bit copy of a bundle that scores as the float one does, carries
what was done in its card, runs through the daemon's own path, and is refused when it would not
score alike."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import structlog
import structlog.testing
from click.testing import CliRunner, Result
from onnx import numpy_helper

from dfd.daemon.cli import main
from dfd.daemon.engine.models import default_bundle_path
from dfd.detectors import runtime
from dfd.detectors.bundle import BundleError, load_bundle, write_bundle
from dfd.detectors.runtime import KERNEL_TOLERANCE, DetectorSession
from dfd.dsp.audio_io import load_audio
from dfd.dsp.extract import remove_mean
from dfd.trainers.quantize import quantize_bundle
from tests.signals import RATE, REPO

DEMO_CALL = REPO / "samples" / "call-bonafide-then-synthetic-8k-ulaw.wav"


def demo_call_features() -> np.ndarray:
    call = load_audio(DEMO_CALL, sample_rate=RATE).samples[0]
    hop = RATE // 2
    windows = np.stack([call[s : s + 2 * RATE] for s in range(0, len(call) - 2 * RATE, hop)])
    return remove_mean(windows)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["--log-level", "warning", *args])


def dequantized_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """The float graph a QDQ graph stands for: every constant DequantizeLinear folded into a
    float initializer, every QuantizeLinear -> DequantizeLinear pair on an activation removed."""
    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    rename: dict[str, str] = {}
    kept = []
    quantizers = {node.output[0]: node for node in graph.node if node.op_type == "QuantizeLinear"}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in constants:
            values, scale, zero = (numpy_helper.to_array(constants[n]) for n in node.input[:3])
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % values.ndim
            shape = [1] * values.ndim
            if scale.ndim:
                shape[axis] = -1
            weights = (values.astype(np.float64) - zero.reshape(shape)) * scale.reshape(shape)
            float32 = weights.astype(np.float32)
            graph.initializer.append(numpy_helper.from_array(float32, node.output[0]))
        elif node.op_type == "DequantizeLinear" and node.input[0] in quantizers:
            rename[node.output[0]] = quantizers[node.input[0]].input[0]
        elif node.op_type != "QuantizeLinear":
            kept.append(node)
    for node in kept:
        for index, name in enumerate(node.input):
            node.input[index] = rename.get(name, name)
    del graph.node[:]
    graph.node.extend(kept)
    return model


@pytest.fixture(scope="module")
def float_default(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded default (quantised) as the float bundle it was quantised from."""
    source = load_bundle(default_bundle_path())
    graph = dequantized_graph(onnx.load(source.model_path))
    assert not {n.op_type for n in graph.graph.node} & {"QuantizeLinear", "DequantizeLinear"}
    card = dataclasses.replace(
        source.card, training=dataclasses.replace(source.card.training, quantization=None)
    )
    out = tmp_path_factory.mktemp("float") / "default-float"
    return write_bundle(out, graph.SerializeToString(), card)


@pytest.fixture(scope="module")
def quantized(
    small_corpus: Path, float_default: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("quantized") / "default-int8"
    train = small_corpus / "protocols" / "train.txt"
    result = invoke(
        "models", "quantize", str(float_default), "--data", str(train), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert "layers in 8 bits" in result.stdout and "dfd models calibrate" in result.stdout
    return out


def test_the_quantized_graph_keeps_the_first_convolution_in_float(quantized: Path) -> None:
    bundle = load_bundle(quantized)  # every hash checks out, the ONNX contract too
    record = bundle.card.training.quantization
    assert record is not None
    graph = onnx.load(bundle.model_path).graph
    convolutions = [node for node in graph.node if node.op_type == "Conv"]
    assert record["float_nodes"] == [convolutions[0].name]
    dequantized = {
        out for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output
    }
    # every later convolution reads 8-bit weights and activations, the first reads floats
    assert not set(convolutions[0].input) & dequantized
    for node in convolutions[1:]:
        assert set(node.input[:2]) <= dequantized, node.name
    assert record["quantized_nodes"] == len(convolutions) - 1 + sum(
        node.op_type in ("Gemm", "MatMul") for node in graph.node
    )
    assert record["raw_correlation"] >= 0.99
    assert record["fused_kernels_max_abs_difference"] <= KERNEL_TOLERANCE
    assert "reduce_range" in record["method"]
    # 7-bit weights: a uint8 x int8 product pair fits the 16 bits that kernels without VNNI add in
    int8_weights = [
        numpy_helper.to_array(init)
        for init in graph.initializer
        if init.data_type == onnx.TensorProto.INT8 and len(init.dims) > 1
    ]
    assert len(int8_weights) == record["quantized_nodes"]
    assert all(np.abs(w.astype(int)).max() <= 64 for w in int8_weights)  # 2 x 255 x 64 < 2**15
    source = load_bundle(default_bundle_path()).card
    assert bundle.card.calibration == source.calibration  # until dfd models calibrate
    assert source.training.quantization is not None  # the embedded default is quantised
    shown = invoke("models", "show", str(quantized))
    assert shown.exit_code == 0
    assert f"quantized    {record['quantized_nodes']} layers in 8 bits, float: " in shown.stdout
    assert "kernels      fused 8-bit kernels on this CPU" in shown.stdout


def test_the_quantized_bundle_scores_real_calls_as_the_float_one_does(
    quantized: Path, float_default: Path
) -> None:
    features = demo_call_features()  # human, then synthetic speech
    reference = DetectorSession(float_default).raw(features)
    candidate = DetectorSession(quantized).raw(features)
    assert len(features) >= 8
    assert np.corrcoef(reference, candidate)[0, 1] > 0.99
    assert np.max(np.abs(reference - candidate)) < 0.5  # logits; the threshold sits near 0
    assert not np.array_equal(reference, candidate)  # it is another graph

    # the daemon's own path: the demo call still turns synthetic, at about the same moment
    verdicts = {}
    for name, model in (("float", str(float_default)), ("int8", str(quantized))):
        result = invoke("replay", "--json", "--model", model, str(DEMO_CALL))
        assert result.exit_code == 1, result.output
        report = json.loads(result.stdout)
        verdicts[name] = (report["verdict"], report["alerts"][0]["end"])
    assert verdicts["int8"][0] == verdicts["float"][0] == "synthetic"
    assert abs(verdicts["int8"][1] - verdicts["float"][1]) <= 1.0


def unoptimised_raw(bundle_path: Path, features: np.ndarray) -> np.ndarray:
    """What the graph means: ONNX Runtime with every graph optimisation (and fusion) off."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    bundle = load_bundle(bundle_path)
    session = onnxruntime.InferenceSession(
        str(bundle.model_path), options, providers=["CPUExecutionProvider"]
    )
    (output,) = session.run(None, {"features": features})
    return np.asarray(bundle.card.output.raw(output))


@pytest.mark.parametrize("which", ["embedded default", "quantized here"])
def test_a_session_scores_an_8_bit_graph_as_the_graph_means_on_this_cpu(
    which: str, quantized: Path
) -> None:
    # The embedded default of 2026-12-06 (full int8 weights) scored the whole demo call as bona
    # fide on an AVX2 CPU: the fused uint8 x int8 kernels saturated. Whatever the CPU, the session
    # must give what the graph means, fused (7-bit weights) or by falling back.
    path = default_bundle_path() if which == "embedded default" else quantized
    features = demo_call_features()
    session = DetectorSession(path, device="cpu")
    assert session.kernel_check is not None
    expected = unoptimised_raw(path, features)
    assert np.max(np.abs(session.raw(features) - expected)) <= KERNEL_TOLERANCE
    if which == "quantized here":  # quantised with reduce_range: the fused kernels are exact
        assert session.kernel_check.fused


def test_a_session_whose_fused_kernels_disagree_falls_back_to_the_exact_graph(
    quantized: Path,
    float_default: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No CPU can be made to saturate on demand: a negative tolerance makes every check disagree.
    monkeypatch.setattr(runtime, "KERNEL_TOLERANCE", -1.0)
    with structlog.testing.capture_logs() as logs:
        session = DetectorSession(quantized, device="cpu")
    assert session.kernel_check is not None and not session.kernel_check.fused
    features = demo_call_features()
    assert np.allclose(session.raw(features), unoptimised_raw(quantized, features), atol=1e-4)
    assert [entry["log_level"] for entry in logs if "kernels disagree" in entry["event"]] == [
        "warning"
    ]
    assert DetectorSession(float_default).kernel_check is None  # a float graph: nothing to check
    shown = invoke("models", "show", str(quantized))
    assert shown.exit_code == 0
    assert "scored without the QDQ fusions (exact, slower); re-quantise" in shown.stdout
    float_shown = invoke("models", "show", str(float_default)).stdout.splitlines()
    assert not [line for line in float_shown if line.startswith("kernels")]


def test_quantize_refuses_what_it_cannot_do(
    small_corpus: Path, float_default: Path, tmp_path: Path
) -> None:
    train = small_corpus / "protocols" / "train.txt"
    taken = tmp_path / "taken"
    taken.mkdir()
    result = invoke(
        "models", "quantize", str(float_default), "--data", str(train), "--out", str(taken)
    )
    assert result.exit_code == 2 and "already exists" in result.output
    result = invoke(
        "models", "quantize", "default", "--data", str(train), "--out", str(tmp_path / "x")
    )
    assert result.exit_code == 1 and "quantised already" in result.output
    assert not (tmp_path / "x").exists()
    # a check no 8-bit graph can pass: nothing is written
    with pytest.raises(BundleError, match="keep the float bundle"):
        quantize_bundle(float_default, tmp_path / "strict", train, min_correlation=1.0)
    assert not (tmp_path / "strict").exists()
    # fused kernels that stray from the graph on the quantising host: refused, nothing written
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("dfd.trainers.quantize.KERNEL_TOLERANCE", -1.0)
        with pytest.raises(BundleError, match="fused 8-bit kernels"):
            quantize_bundle(float_default, tmp_path / "stray", train)
    assert not (tmp_path / "stray").exists()


def test_the_calibration_reader_hands_whole_batches_and_starts_again_on_rewind() -> None:
    from dfd.trainers.quantize import _Batches

    features = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)  # 2 batches of 16, 8 left over
    reader = _Batches("features", features)
    first = [reader.get_next(), reader.get_next(), reader.get_next()]
    assert [None if b is None else b["features"].shape for b in first] == [(16, 3), (16, 3), None]
    reader.rewind()
    again = reader.get_next()
    assert again is not None and np.array_equal(again["features"], features[:16])
