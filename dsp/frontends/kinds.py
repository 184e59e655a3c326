"""The front-end kinds as specs: frozen dataclasses, registered by ``kind``, with no torch.

A spec is what a model card stores and what the loader checks; reading one must not pull in
torch, so that processes which only run ONNX graphs (the daemon's detector workers) stay small
and start fast. ``build()`` imports the ``nn.Module`` that computes the features when it is
called.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Literal

from dfd.dsp.frontends.spec import FrontendSpec, FrontendSpecError, register_frontend

if TYPE_CHECKING:
    from dfd.dsp.frontends.constant_q import ConstantQ
    from dfd.dsp.frontends.sinc import SincConv
    from dfd.dsp.frontends.spectral import Lfcc, LogMel, LogSpectrogram, Mfcc
    from dfd.dsp.frontends.waveform import Waveform


@register_frontend
@dataclasses.dataclass(frozen=True)
class SincConvSpec(FrontendSpec):
    kind = "sinc"
    out_channels: int = 70
    kernel_size: int = 129
    stride: int = 1
    padding: int = 0
    f_min: float = 0.0
    f_max: float | None = None  # None: the Nyquist frequency
    min_low_hz: float = 0.0
    min_band_hz: float = 0.0
    learnable: bool = False
    normalisation: Literal["passband", "peak"] = "passband"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.out_channels < 1:
            raise FrontendSpecError("sinc: out_channels must be at least 1")
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise FrontendSpecError(
                f"sinc: kernel_size must be odd and at least 3 so the filters are symmetric, "
                f"got {self.kernel_size}"
            )
        if self.stride < 1 or self.padding < 0:
            raise FrontendSpecError("sinc: stride must be >= 1 and padding >= 0")
        if not 0.0 <= self.f_min < self.upper_hz <= self.sample_rate / 2:
            raise FrontendSpecError(
                f"sinc: need 0 <= f_min < f_max <= sample_rate / 2, got f_min={self.f_min}, "
                f"f_max={self.f_max} at {self.sample_rate} Hz"
            )
        if self.normalisation not in ("passband", "peak"):
            raise FrontendSpecError(f"sinc: unknown normalisation {self.normalisation!r}")

    @property
    def upper_hz(self) -> float:
        return float(self.sample_rate / 2 if self.f_max is None else self.f_max)

    def output_shape(self, num_samples: int) -> tuple[int, ...]:
        frames = (num_samples + 2 * self.padding - self.kernel_size) // self.stride + 1
        return (self.out_channels, frames)

    def build(self) -> SincConv:
        from dfd.dsp.frontends.sinc import SincConv

        return SincConv(self)


@dataclasses.dataclass(frozen=True)
class _StftSpec(FrontendSpec):
    """Parameters shared by every STFT-based front end (centred frames, reflect padding)."""

    n_fft: int = 512
    win_length: int | None = None  # None: n_fft
    hop_length: int = 160
    f_min: float = 0.0
    f_max: float | None = None  # None: the Nyquist frequency

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_fft < 2 or self.hop_length < 1:
            raise FrontendSpecError(f"{self.kind}: n_fft must be >= 2 and hop_length >= 1")
        if not 0 < self.window_length <= self.n_fft:
            raise FrontendSpecError(f"{self.kind}: need 0 < win_length <= n_fft")
        if not 0.0 <= self.f_min < self.upper_hz <= self.sample_rate / 2:
            raise FrontendSpecError(
                f"{self.kind}: need 0 <= f_min < f_max <= sample_rate / 2, "
                f"got f_min={self.f_min}, f_max={self.f_max}"
            )

    @property
    def window_length(self) -> int:
        return self.n_fft if self.win_length is None else self.win_length

    @property
    def upper_hz(self) -> float:
        return float(self.sample_rate / 2 if self.f_max is None else self.f_max)

    def frames(self, num_samples: int) -> int:
        return num_samples // self.hop_length + 1


@register_frontend
@dataclasses.dataclass(frozen=True)
class LogMelSpec(_StftSpec):
    kind = "logmel"
    n_mels: int = 80
    log_offset: float = 1e-6

    def output_shape(self, num_samples: int) -> tuple[int, ...]:
        return (self.n_mels, self.frames(num_samples))

    def build(self) -> LogMel:
        from dfd.dsp.frontends.spectral import LogMel

        return LogMel(self)


@register_frontend
@dataclasses.dataclass(frozen=True)
class MfccSpec(_StftSpec):
    kind = "mfcc"
    n_mfcc: int = 20
    n_mels: int = 40

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.n_mfcc <= self.n_mels:
            raise FrontendSpecError("mfcc: need 0 < n_mfcc <= n_mels")

    def output_shape(self, num_samples: int) -> tuple[int, ...]:
        return (self.n_mfcc, self.frames(num_samples))

    def build(self) -> Mfcc:
        from dfd.dsp.frontends.spectral import Mfcc

        return Mfcc(self)


@register_frontend
@dataclasses.dataclass(frozen=True)
class LfccSpec(_StftSpec):
    """Defaults follow the ASVspoof 2019 baseline: 20 linear filters, 20 coefficients, 20 ms
    frames every 10 ms, with deltas and double deltas (60 features per frame)."""

    kind = "lfcc"
    win_length: int | None = 320
    n_filter: int = 20
    n_lfcc: int = 20
    with_deltas: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.n_lfcc <= self.n_filter:
            raise FrontendSpecError("lfcc: need 0 < n_lfcc <= n_filter")

    def output_shape(self, num_samples: int) -> tuple[int, ...]:
        rows = self.n_lfcc * (3 if self.with_deltas else 1)
        return (rows, self.frames(num_samples))

    def build(self) -> Lfcc:
        from dfd.dsp.frontends.spectral import Lfcc

        return Lfcc(self)


@register_frontend
@dataclasses.dataclass(frozen=True)
class LogSpectrogramSpec(_StftSpec):
    """The log power of the STFT's bins from ``f_min`` to ``f_max``, on a linear frequency axis
    (no filter bank: the high band keeps the resolution of the low). ``f_max = 4000.0`` gives the
    0-4 kHz narrowband variant for phone audio."""

    kind = "logspec"
    log_offset: float = 1e-6

    @property
    def bin_range(self) -> tuple[int, int]:
        """First and one-past-last STFT bin kept: every bin whose frequency is in the range."""
        hz_per_bin = self.sample_rate / self.n_fft
        return math.ceil(self.f_min / hz_per_bin), math.floor(self.upper_hz / hz_per_bin) + 1

    def output_shape(self, num_samples: int) -> tuple[int, ...]:
        first, last = self.bin_range
        return (last - first, self.frames(num_samples))

    def build(self) -> LogSpectrogram:
        from dfd.dsp.frontends.spectral import LogSpectrogram

        return LogSpectrogram(self)


@register_frontend
@dataclasses.dataclass(frozen=True)
class ConstantQSpec(FrontendSpec):
    """A constant-Q transform (Brown 1991): ``bins_per_octave`` geometrically spaced bins from
    ``f_min``, each a Hann-windowed complex exponential of ``Q`` cycles, so its length (and time
    resolution) scales with 1 / frequency; computed octave by octave on a signal halved in rate
    each octave down (``constant_q``). Output: log power per bin, one frame every
    ``hop_length`` samples (frames centred on their sample, reflect padding at the ends).
    The highest bin is the last whose centre lies at or below ``f_max`` (None: the Nyquist
    frequency divided by 2 ** (1 / bins_per_octave), so its band stays below Nyquist)."""

    kind = "cqt"
    f_min: float = 50.0
    f_max: float | None = None
    bins_per_octave: int = 12
    hop_length: int = 160
    # Each kernel is divided by its length, so a full-scale sine's bin holds a power of 1/16 where
    # a 512-point STFT's holds 16,384: 1e-11 puts the floor about 100 dB below it, as 1e-6 does
    # for the STFT front ends. At 1e-6, 85 % of corpus speech's bins sat on the floor.
    log_offset: float = 1e-11

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bins_per_octave < 1 or self.hop_length < 1:
            raise FrontendSpecError("cqt: bins_per_octave and hop_length must be at least 1")
        if not 0.0 < self.f_min < self.upper_hz <= self.sample_rate / 2:
            raise FrontendSpecError(
                f"cqt: need 0 < f_min < f_max <= sample_rate / 2, got f_min={self.f_min}, "
                f"f_max={self.f_max} at {self.sample_rate} Hz"
            )

    @property
    def upper_hz(self) -> float:
        if self.f_max is not None:
            return float(self.f_max)
        return float(self.sample_rate / 2 / 2 ** (1 / self.bins_per_octave))

    @property
    def quality(self) -> float:
        """Q: centre frequency over bandwidth, the number of cycles in each bin's kernel."""
        return 1.0 / (2 ** (1 / self.bins_per_octave) - 1)

    @property
    def n_bins(self) -> int:
        octaves = math.log2(self.upper_hz / self.f_min)
        return math.floor(octaves * self.bins_per_octave + 1e-9) + 1

    @property
    def centre_hz(self) -> list[float]:
        return [self.f_min * 2 ** (k / self.bins_per_octave) for k in range(self.n_bins)]

    @property
    def octaves(self) -> int:
        """How many octaves (the lowest possibly partial) the bins span, each computed at half
        the sample rate of the one above it."""
        return math.ceil(self.n_bins / self.bins_per_octave)

    def output_shape(self, num_samples: int) -> tuple[int, ...]:
        return (self.n_bins, num_samples // self.hop_length + 1)

    def build(self) -> ConstantQ:
        from dfd.dsp.frontends.constant_q import ConstantQ

        return ConstantQ(self)


@register_frontend
@dataclasses.dataclass(frozen=True)
class WaveformSpec(FrontendSpec):
    kind = "waveform"

    def output_shape(self, num_samples: int) -> tuple[int, ...]:
        return (num_samples,)

    def build(self) -> Waveform:
        from dfd.dsp.frontends.waveform import Waveform

        return Waveform(self)
