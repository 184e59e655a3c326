"""Short-time spectral front ends built on torchaudio: log-mel, MFCC and LFCC.

All three take the natural log of the filter-bank energies plus a small offset. torchaudio's
default dB conversion (``AmplitudeToDB`` with ``top_db``) clamps against the loudest value of the
*whole batch*, which would make a window's features depend on the other windows batched with it;
the log path has no such coupling.
"""

from __future__ import annotations

import dataclasses

import torch
import torchaudio.transforms as tat

from dfd.dsp.frontends.base import Frontend
from dfd.dsp.frontends.spec import FrontendSpec, FrontendSpecError, register_frontend


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

    def build(self) -> LogMel:
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

    def build(self) -> Mfcc:
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

    def build(self) -> Lfcc:
        return Lfcc(self)


class LogMel(Frontend):
    """``(batch, samples)`` -> ``(batch, n_mels, frames)``, natural log of mel power."""

    spec: LogMelSpec

    def __init__(self, spec: LogMelSpec) -> None:
        super().__init__(spec)
        self.mel = tat.MelSpectrogram(
            sample_rate=spec.sample_rate,
            n_fft=spec.n_fft,
            win_length=spec.window_length,
            hop_length=spec.hop_length,
            f_min=spec.f_min,
            f_max=spec.upper_hz,
            n_mels=spec.n_mels,
            power=2.0,
        )

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel(waveforms) + self.spec.log_offset)

    def output_shape(self, num_samples: int) -> tuple[int, ...]:
        return (self.spec.n_mels, self.spec.frames(num_samples))


class Mfcc(Frontend):
    """``(batch, samples)`` -> ``(batch, n_mfcc, frames)``: orthonormal DCT-II of log mel power."""

    spec: MfccSpec

    def __init__(self, spec: MfccSpec) -> None:
        super().__init__(spec)
        self.mfcc = tat.MFCC(
            sample_rate=spec.sample_rate,
            n_mfcc=spec.n_mfcc,
            log_mels=True,
            melkwargs={
                "n_fft": spec.n_fft,
                "win_length": spec.window_length,
                "hop_length": spec.hop_length,
                "f_min": spec.f_min,
                "f_max": spec.upper_hz,
                "n_mels": spec.n_mels,
            },
        )

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.mfcc(waveforms)
        return features

    def output_shape(self, num_samples: int) -> tuple[int, ...]:
        return (self.spec.n_mfcc, self.spec.frames(num_samples))


class Lfcc(Frontend):
    """``(batch, samples)`` -> ``(batch, n_lfcc * (3 if with_deltas else 1), frames)``."""

    spec: LfccSpec

    def __init__(self, spec: LfccSpec) -> None:
        super().__init__(spec)
        self.lfcc = tat.LFCC(
            sample_rate=spec.sample_rate,
            n_filter=spec.n_filter,
            f_min=spec.f_min,
            f_max=spec.upper_hz,
            n_lfcc=spec.n_lfcc,
            log_lf=True,
            speckwargs={
                "n_fft": spec.n_fft,
                "win_length": spec.window_length,
                "hop_length": spec.hop_length,
            },
        )
        self.deltas = tat.ComputeDeltas()

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        coefficients: torch.Tensor = self.lfcc(waveforms)
        if not self.spec.with_deltas:
            return coefficients
        delta = self.deltas(coefficients)
        return torch.cat([coefficients, delta, self.deltas(delta)], dim=-2)

    def output_shape(self, num_samples: int) -> tuple[int, ...]:
        rows = self.spec.n_lfcc * (3 if self.spec.with_deltas else 1)
        return (rows, self.spec.frames(num_samples))


if __name__ == "__main__":  # pragma: no cover
    batch = torch.randn(2, 32_000)
    for spec in (LogMelSpec(), MfccSpec(), LfccSpec()):
        print(f"{spec.kind}: {tuple(spec.build()(batch).shape)}")  # noqa: T201
