"""``DetectorSession``: a bundle's graph in an ONNX Runtime session, configured on purpose.

- Providers: ``CUDAExecutionProvider`` first only when ONNX Runtime offers it *and* the CUDA
  driver shows a GPU (asking for CUDA on a host without one makes ONNX Runtime log errors), else
  the CPU.
- Threads: ``intra_op_num_threads`` per session (default 1: the daemon runs several sessions
  side by side), one inter-op thread, graph optimisation level ALL.
- A warm-up run at load on a zero batch of one window, so the first call's latency is not spent
  on allocation and kernel selection.
- An 8-bit graph (``dfd models quantize``) is checked at load against itself unoptimised: ONNX
  Runtime fuses its QuantizeLinear / DequantizeLinear pairs into integer kernels chosen by the CPU,
  and on x86 CPUs without VNNI (AVX2 only) the uint8 x int8 kernels add pairs of products in 16
  bits, which saturate for a graph quantised with the full int8 weight range: the embedded default
  of 2026-12-06 scored every window of the README's call as bona fide there. When the fused
  session's raw outputs on fixed probe windows stray from the unfused graph's by more than
  ``KERNEL_TOLERANCE``, the session is rebuilt without the QDQ fusions (exact, slower) and says so
  in the log and in ``kernel_check``.

A session is stateless: ``raw`` and ``score`` take any number of windows' features at once, and
concurrent calls from several threads are safe (``InferenceSession.run`` is).
``onnxruntime`` is imported when a session is made, not when this module is; torch never is.
"""

from __future__ import annotations

import ctypes
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

from dfd.detectors.bundle import Bundle, load_bundle
from dfd.detectors.contract import INPUT_NAME

if TYPE_CHECKING:
    import onnxruntime

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

# Raw-output units (logits). The fused integer kernels round their requantisation differently from
# the unfused graph, by a small fraction of a logit (0.03 for the embedded default, version 2.1);
# saturation moved the default's outputs by up to 5.
KERNEL_TOLERANCE = 0.5
PROBE_WINDOWS = 4

Provider = str | tuple[str, dict[str, Any]]

log = structlog.get_logger("dfd.detectors")


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


@dataclasses.dataclass(frozen=True)
class KernelCheck:
    """How an 8-bit graph's fused session compared with the graph unoptimised at load."""

    max_difference: float  # raw output units, the fused session on the probe windows
    fused: bool  # False: the session runs without the QDQ fusions


def probe_windows(feature_shape: tuple[int, ...], waveform: bool) -> np.ndarray:
    """Fixed windows that exercise every layer: white noise with clicks at speech level for a
    waveform graph (mean removed, as scoring does), standard normal features otherwise."""
    rng = np.random.default_rng(0)
    windows = rng.standard_normal((PROBE_WINDOWS, *feature_shape))
    if waveform:
        windows *= 0.05
        windows[..., ::400] += 0.3
        windows -= windows.mean(axis=-1, keepdims=True)
    return windows.astype(np.float32)


class DetectorSession:
    """Scores windows' features with one bundle. ``bundle``: a loaded ``Bundle`` or its folder."""

    def __init__(self, bundle: Bundle | str | Path, *, threads: int = 1, device: str = "auto"):
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self._threads, self._providers = threads, select_providers(device)
        self.session: onnxruntime.InferenceSession = self._new_session()
        self.feature_shape = self._feature_shape()
        self._output_tail: tuple[int, ...] = (
            (2,) if self.bundle.card.output.convention == "class_logits" else ()
        )
        self.kernel_check: KernelCheck | None = None
        if self.bundle.card.training.quantization is not None:
            self.kernel_check = self._check_kernels()
        self.outputs(np.zeros((1, *self.feature_shape), dtype=np.float32))  # warm-up

    def _new_session(
        self, *, unoptimised: bool = False, without_qdq_fusion: bool = False
    ) -> onnxruntime.InferenceSession:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        levels = onnxruntime.GraphOptimizationLevel
        options.graph_optimization_level = (
            levels.ORT_DISABLE_ALL if unoptimised else levels.ORT_ENABLE_ALL
        )
        if without_qdq_fusion:
            options.add_session_config_entry("session.disable_quant_qdq", "1")
        return onnxruntime.InferenceSession(
            str(self.bundle.model_path),
            sess_options=options,
            providers=[CPU] if unoptimised else self._providers,
        )

    def _check_kernels(self) -> KernelCheck:
        """Compare the fused session with the graph unoptimised on ``probe_windows``; fall back to
        a session without the QDQ fusions when they disagree."""
        waveform = self.bundle.card.frontend.get("kind") == "waveform"
        probes = probe_windows(self.feature_shape, waveform)
        expected = self.raw(probes, session=self._new_session(unoptimised=True))
        difference = float(np.max(np.abs(self.raw(probes) - expected)))
        if difference <= KERNEL_TOLERANCE:
            return KernelCheck(difference, fused=True)
        self.session = self._new_session(without_qdq_fusion=True)
        unfused = float(np.max(np.abs(self.raw(probes) - expected)))
        log.warning(
            "8-bit kernels disagree with the graph on this CPU; running it without the QDQ "
            "fusions (exact, slower). Re-quantise the bundle with this dfd to run it fused.",
            bundle=str(self.bundle.path),
            fused_max_difference=round(difference, 3),
            unfused_max_difference=round(unfused, 3),
        )
        return KernelCheck(difference, fused=False)

    @property
    def providers(self) -> list[str]:
        """The providers the session actually runs on, first choice first."""
        return list(self.session.get_providers())

    def outputs(
        self, features: np.ndarray, session: onnxruntime.InferenceSession | None = None
    ) -> np.ndarray:
        """The graph's output as it is, for a batch ``(windows, *feature_shape)``."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.ndim != 1 + len(self.feature_shape) or features.shape[1:] != self.feature_shape:
            raise ValueError(
                f"{self.bundle.path}: expected features (windows, "
                f"{', '.join(map(str, self.feature_shape))}), got {features.shape}"
            )
        if features.shape[0] == 0:
            return np.zeros((0, *self._output_tail), dtype=np.float32)
        (output,) = (session or self.session).run(None, {INPUT_NAME: features})
        return np.asarray(output, dtype=np.float32)

    def raw(
        self, features: np.ndarray, session: onnxruntime.InferenceSession | None = None
    ) -> np.ndarray:
        """The spoof-direction output per window, ``(windows,)``: higher = more spoof
        (class logits: the spoof log-odds ``logit[spoof] - logit[bona fide]``)."""
        return self.bundle.card.output.raw(self.outputs(features, session))

    def score(self, features: np.ndarray) -> np.ndarray:
        """The calibrated P(synthetic) per window, ``(windows,)``."""
        return self.bundle.card.calibration.apply(self.raw(features))

    def _feature_shape(self) -> tuple[int, ...]:
        declared = self.bundle.feature_shape
        if all(isinstance(dim, int) for dim in declared):
            return tuple(int(dim) for dim in declared if dim is not None)
        # A symbolic axis (a graph exported with a dynamic time axis): the front end says.
        return self.bundle.frontend_spec.output_shape(self.bundle.window.samples)
