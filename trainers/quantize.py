"""``dfd models quantize``: a bundle whose graph runs in 8 bits on the CPU.

Static quantisation in ONNX Runtime's QDQ format: the weights of every convolution and dense
layer in int8, one scale per output channel; the activations entering them in uint8, their
ranges measured (minimum and maximum) on windows of a protocol cut, featurised and mean-removed
exactly as scoring cuts them (``trainers.evaluate.window_values``). The first convolution stays
in float: it sees the raw waveform (a sinc-lcnn's sinc filters) or the front end's features, and
its output passes through a log before the rest of the network, so an 8-bit grid there moves the
scores by several logits (the live-budget sinc-lcnn's raw outputs moved by up to 7.1 with it
quantised, 0.24 without).

The quantised graph is checked against the float one on other windows of the same protocol,
ones the ranges were not measured on: it is refused unless their raw outputs correlate at
``min_correlation`` or better, and unless ONNX Runtime's fused integer kernels on this CPU give
what the quantised graph means (its outputs unoptimised) within ``KERNEL_TOLERANCE``. The weights
use a 7-bit range (``reduce_range``): on x86 CPUs without VNNI the uint8 x int8 kernels add pairs
of products in 16 bits, which the full int8 range overflows (the saturation ONNX Runtime's
quantisation guide warns of); with 7 bits a pair is at most 2 x 255 x 64, which fits.

The new bundle keeps the card, its hashes written anew, and records what was done under
``training.quantization``. Its scores moved a little, so its calibration, thresholds and operating
point are the float model's until ``dfd models calibrate`` fits them again on the quantised graph;
the command says so.
"""

from __future__ import annotations

import dataclasses
import random
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from dfd.detectors.bundle import BundleError, load_bundle, write_bundle
from dfd.detectors.runtime import KERNEL_TOLERANCE
from dfd.trainers.datasets import Trial, read_dataset
from dfd.trainers.evaluate import window_values

log = structlog.get_logger("dfd.quantize")

QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")
MIN_CORRELATION = 0.99
CALIBRATION_BATCH = 16


@dataclasses.dataclass(frozen=True)
class QuantizationReport:
    """How the quantised graph compares with the float one on the check windows."""

    range_windows: int
    check_windows: int
    correlation: float
    max_abs_difference: float  # raw output units (logits)
    float_nodes: tuple[str, ...]
    quantized_nodes: int
    fused_kernel_difference: float  # raw units: fused kernels against the graph unoptimised

    def as_card_entry(self, protocol: str) -> dict[str, Any]:
        return {
            "method": (
                "static QDQ: int8 weights per output channel in a 7-bit range (reduce_range), "
                "uint8 activations (MinMax)"
            ),
            "ops": list(QUANTIZED_OPS),
            "quantized_nodes": self.quantized_nodes,
            "float_nodes": list(self.float_nodes),
            "ranges_on": f"{self.range_windows} windows of {protocol}",
            "checked_on": f"{self.check_windows} other windows of {protocol}",
            "raw_correlation": round(self.correlation, 6),
            "raw_max_abs_difference": round(self.max_abs_difference, 6),
            "fused_kernels_max_abs_difference": round(self.fused_kernel_difference, 6),
        }


def quantize_bundle(
    source: Path,
    out: Path,
    protocol: Path,
    *,
    range_windows: int = 512,
    check_windows: int = 512,
    min_correlation: float = MIN_CORRELATION,
    seed: int = 0,
) -> QuantizationReport:
    """Write the quantised copy of the bundle in ``source`` to the new folder ``out``."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    bundle = load_bundle(source)
    if bundle.card.training.quantization is not None:
        raise BundleError(f"{source}: is quantised already")
    trials = read_dataset(protocol)
    features = _protocol_features(bundle, trials, range_windows + check_windows, seed)
    if len(features) < 2 * CALIBRATION_BATCH:
        raise BundleError(
            f"{protocol}: gives {len(features)} windows; quantising needs at least "
            f"{2 * CALIBRATION_BATCH}"
        )
    ranges_on, check_on = features[:range_windows], features[range_windows:]
    if len(check_on) == 0:
        ranges_on, check_on = features[: len(features) // 2], features[len(features) // 2 :]

    model = onnx.load(bundle.model_path)
    input_name = model.graph.input[0].name
    weighted = [node for node in model.graph.node if node.op_type in QUANTIZED_OPS]
    if not weighted:
        raise BundleError(f"{source}: the graph has no {', '.join(QUANTIZED_OPS)} to quantise")
    first_conv = next((node.name for node in weighted if node.op_type == "Conv"), None)
    float_nodes = (first_conv,) if first_conv else ()

    with tempfile.TemporaryDirectory(prefix="dfd-quantize-") as work:
        prepared, quantized = Path(work) / "prepared.onnx", Path(work) / "quantized.onnx"
        quant_pre_process(str(bundle.model_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(quantized),
            _Batches(input_name, ranges_on),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            calibrate_method=CalibrationMethod.MinMax,
            op_types_to_quantize=list(QUANTIZED_OPS),
            nodes_to_exclude=list(float_nodes),
        )
        quantized_bytes = quantized.read_bytes()
    output = bundle.card.output.name
    reference = _raw_outputs(bundle.model_path.read_bytes(), input_name, output, check_on)
    candidate = _raw_outputs(quantized_bytes, input_name, output, check_on)
    unfused = _raw_outputs(quantized_bytes, input_name, output, check_on, optimised=False)
    correlation = float(np.corrcoef(reference, candidate)[0, 1])
    report = QuantizationReport(
        len(ranges_on),
        len(check_on),
        correlation,
        float(np.max(np.abs(reference - candidate))),
        tuple(float_nodes),
        len(weighted) - len(float_nodes),
        float(np.max(np.abs(candidate - unfused))),
    )
    log.info("quantised", **dataclasses.asdict(report))
    if not correlation >= min_correlation:
        raise BundleError(
            f"{source}: the quantised graph's raw outputs correlate at {correlation:.4f} with the "
            f"float graph's on {len(check_on)} windows of {protocol} (at least "
            f"{min_correlation} needed); keep the float bundle"
        )
    if not report.fused_kernel_difference <= KERNEL_TOLERANCE:
        raise BundleError(
            f"{source}: ONNX Runtime's fused 8-bit kernels on this CPU move the quantised graph's "
            f"raw outputs by up to {report.fused_kernel_difference:.3f} (at most "
            f"{KERNEL_TOLERANCE} allowed); keep the float bundle"
        )
    card = bundle.card
    training = dataclasses.replace(card.training, quantization=report.as_card_entry(protocol.name))
    write_bundle(out, quantized_bytes, dataclasses.replace(card, training=training))
    return report


def _protocol_features(bundle: Any, trials: Sequence[Trial], windows: int, seed: int) -> np.ndarray:
    """Model inputs (features) of about ``windows`` windows from trials drawn at random."""
    order = list(trials)
    random.Random(seed).shuffle(order)
    collected: list[np.ndarray] = []

    def keep(_session: Any, features: np.ndarray) -> np.ndarray:
        collected.append(features)
        return np.zeros(len(features))

    count, taken = 0, 0
    per_trial = max(1, round(bundle.card.window.window_s / bundle.card.window.hop_s))
    while count < windows and taken < len(order):
        chunk = order[taken : taken + max(1, (windows - count) // per_trial + 1)]
        taken += len(chunk)
        window_values(bundle, chunk, keep)
        count = sum(len(f) for f in collected)
    features = np.concatenate(collected) if collected else np.zeros((0,))
    shuffled = np.random.default_rng(seed).permutation(len(features))
    return np.asarray(features[shuffled][:windows], dtype=np.float32)


class _Batches:
    """ONNX Runtime's calibration reader: the range windows in batches of 16, from the first
    again after ``rewind``."""

    def __init__(self, input_name: str, features: np.ndarray) -> None:
        whole = len(features) // CALIBRATION_BATCH * CALIBRATION_BATCH
        self._all = np.split(features[:whole], whole // CALIBRATION_BATCH)
        self._batches: Iterator[np.ndarray] = iter(self._all)
        self.input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:
        self._batches = iter(self._all)


def _raw_outputs(
    model: bytes, input_name: str, output: str, features: np.ndarray, *, optimised: bool = True
) -> np.ndarray:
    """The graph's output (its first column, for a class-logit graph) for each window, as the
    daemon's sessions run it (every optimisation) or as the graph means it (``optimised=False``)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    if not optimised:
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    outputs = [
        session.run([output], {input_name: features[i : i + 64]})[0]
        for i in range(0, len(features), 64)
    ]
    return np.concatenate(outputs).reshape(len(features), -1)[:, 0].astype(np.float64)
