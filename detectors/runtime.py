"""``DetectorSession``: a bundle's graph in an ONNX Runtime session, configured on purpose.

- Providers: ``CUDAExecutionProvider`` first only when ONNX Runtime offers it *and* the CUDA
  driver shows a GPU (asking for CUDA on a host without one makes ONNX Runtime log errors), else
  the CPU.
- Threads: ``intra_op_num_threads`` per session (default 1: the daemon runs several sessions
  side by side), one inter-op thread, graph optimisation level ALL.
- A warm-up run at load on a zero batch of one window, so the first call's latency is not spent
  on allocation and kernel selection.

A session is stateless: ``raw`` and ``score`` take any number of windows' features at once, and
concurrent calls from several threads are safe (``InferenceSession.run`` is).
``onnxruntime`` is imported when a session is made, not when this module is; torch never is.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dfd.detectors.bundle import Bundle, load_bundle
from dfd.detectors.contract import INPUT_NAME

if TYPE_CHECKING:
    import onnxruntime

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

Provider = str | tuple[str, dict[str, Any]]


def cuda_device_count() -> int:
    """CUDA devices the driver shows this process (``CUDA_VISIBLE_DEVICES`` applies); 0 without
    a driver. Asked of the driver itself, as torch does, but without importing torch: detector
    workers run ONNX graphs only and must start fast and small."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def select_providers(device: str = "auto") -> list[Provider]:
    """Execution providers for ``device``: ``auto`` (CUDA when usable), ``cpu``, ``cuda[:N]``."""
    import onnxruntime

    if device == "cpu":
        return [CPU]
    if device != "auto" and device.split(":")[0] != "cuda":
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    devices = cuda_device_count()
    usable = CUDA in onnxruntime.get_available_providers() and devices > 0
    if device == "auto":
        return [CUDA, CPU] if usable else [CPU]
    if not usable:
        raise RuntimeError(
            f"device {device!r} was requested but ONNX Runtime offers "
            f"{onnxruntime.get_available_providers()} and the CUDA driver sees "
            f"{devices} device(s)"
        )
    _, _, index = device.partition(":")
    return [(CUDA, {"device_id": int(index or 0)}), CPU]


class DetectorSession:
    """Scores windows' features with one bundle. ``bundle``: a loaded ``Bundle`` or its folder."""

    def __init__(self, bundle: Bundle | str | Path, *, threads: int = 1, device: str = "auto"):
        import onnxruntime

        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session: onnxruntime.InferenceSession = onnxruntime.InferenceSession(
            str(self.bundle.model_path), sess_options=options, providers=select_providers(device)
        )
        self.feature_shape = self._feature_shape()
        self._output_tail: tuple[int, ...] = (
            (2,) if self.bundle.card.output.convention == "class_logits" else ()
        )
        self.outputs(np.zeros((1, *self.feature_shape), dtype=np.float32))  # warm-up

    @property
    def providers(self) -> list[str]:
        """The providers the session actually runs on, first choice first."""
        return list(self.session.get_providers())

    def outputs(self, features: np.ndarray) -> np.ndarray:
        """The graph's output as it is, for a batch ``(windows, *feature_shape)``."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.ndim != 1 + len(self.feature_shape) or features.shape[1:] != self.feature_shape:
            raise ValueError(
                f"{self.bundle.path}: expected features (windows, "
                f"{', '.join(map(str, self.feature_shape))}), got {features.shape}"
            )
        if features.shape[0] == 0:
            return np.zeros((0, *self._output_tail), dtype=np.float32)
        (output,) = self.session.run(None, {INPUT_NAME: features})
        return np.asarray(output, dtype=np.float32)

    def raw(self, features: np.ndarray) -> np.ndarray:
        """The spoof-direction output per window, ``(windows,)``: higher = more spoof
        (class logits: the spoof log-odds ``logit[spoof] - logit[bona fide]``)."""
        return self.bundle.card.output.raw(self.outputs(features))

    def score(self, features: np.ndarray) -> np.ndarray:
        """The calibrated P(synthetic) per window, ``(windows,)``."""
        return self.bundle.card.calibration.apply(self.raw(features))

    def _feature_shape(self) -> tuple[int, ...]:
        declared = self.bundle.feature_shape
        if all(isinstance(dim, int) for dim in declared):
            return tuple(int(dim) for dim in declared if dim is not None)
        # A symbolic axis (a graph exported with a dynamic time axis): the front end says.
        return self.bundle.frontend_spec.output_shape(self.bundle.window.samples)
