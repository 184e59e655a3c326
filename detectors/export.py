"""ONNX export of a detector, and a CPU ONNX Runtime session to check it against torch.

The graph has one input named ``features`` (the front end's output batch, or the raw waveform
batch for a model whose front end is part of it), one output (``logits``, or ``score`` for a
model whose output is not a logit), a dynamic batch axis named ``batch`` and opset 17. Export
uses torch's TorchScript-based exporter (``dynamo=False``): the newer ``torch.export`` path needs
the ``onnxscript`` package, which this project does not depend on. That exporter has no
conversion for ``aten::sinc`` (the learnable SincConv rebuilds its filters with it on every
forward pass), so ``export_onnx`` lends it one (``where(x == 0, 1, sin(pi x) / (pi x))``) for the
duration of the export; the filters depend only on parameters, so constant folding then stores
them as one initialiser.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from dfd.detectors.contract import BATCH_AXIS, INPUT_NAME

if TYPE_CHECKING:
    import onnxruntime

OPSET = 17


def _sinc_symbolic(graph: Any, x: Any) -> Any:
    pi = graph.op("Constant", value_t=torch.tensor(math.pi, dtype=torch.float32))
    pi_x = graph.op("Mul", x, pi)
    ratio = graph.op("Div", graph.op("Sin", pi_x), pi_x)
    is_zero = graph.op("Equal", x, graph.op("Constant", value_t=torch.tensor(0.0)))
    return graph.op("Where", is_zero, graph.op("Constant", value_t=torch.tensor(1.0)), ratio)


@contextlib.contextmanager
def _sinc_conversion(opset: int) -> Iterator[None]:
    # Both are kept out of torch.onnx.__all__ with the rest of the TorchScript exporter's API.
    torch.onnx.register_custom_op_symbolic("aten::sinc", _sinc_symbolic, opset)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::sinc", opset)  # type: ignore[attr-defined]


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: str | Path,
    *,
    output_name: str = "logits",
    opset: int = OPSET,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``model`` (in eval mode) to ``path`` as ONNX; return the path.

    ``example`` is one input batch (any batch size: the batch axis is dynamic). The model's
    output on it must be finite (a siamese-mel model without prototypes is refused).
    ``metadata`` goes into the file's ``metadata_props``.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A plain copy: features from the DSP batcher are inference-mode tensors, which tracing
    # refuses.
    example = example.detach().clone()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            reference = model(example)
        if not bool(torch.isfinite(reference).all()):
            raise ValueError(
                "the model's output on the example batch is not finite; refusing to export "
                "(a siamese-mel model needs set_prototypes first)"
            )
        with _sinc_conversion(opset), warnings.catch_warnings():
            # The TorchScript exporter announces its own deprecation; it is chosen on purpose.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[output_name],
                opset_version=opset,
                dynamic_axes={INPUT_NAME: {0: BATCH_AXIS}, output_name: {0: BATCH_AXIS}},
                do_constant_folding=True,
            )
    finally:
        model.train(was_training)
    proto = onnx.load(str(path))
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def cpu_session(path: str | Path, threads: int = 1) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session on the CPU provider only, with ``threads`` intra-op threads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def run_session(session: onnxruntime.InferenceSession, features: torch.Tensor) -> np.ndarray:
    """The session's single output for one batch of features."""
    feed = {INPUT_NAME: features.detach().cpu().numpy().astype(np.float32, copy=False)}
    (output,) = session.run(None, feed)
    return np.asarray(output)
