"""Short-time spectral front ends built on torchaudio: log-mel, MFCC, LFCC and the log spectrogram.

All four take the natural log of their energies (filter-bank outputs, or the log spectrogram's
bins) plus a small offset. torchaudio's
default dB conversion (``AmplitudeToDB`` with ``top_db``) clamps against the loudest value of the
*whole batch*, which would make a window's features depend on the other windows batched with it;
the log path has no such coupling.
"""

from __future__ import annotations

import torch
import torchaudio.transforms as tat

from dfd.dsp.frontends.base import Frontend
from dfd.dsp.frontends.kinds import LfccSpec, LogMelSpec, LogSpectrogramSpec, MfccSpec


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


class LogSpectrogram(Frontend):
    """``(batch, samples)`` -> ``(batch, bins, frames)``: natural log of the power of the STFT bins
    between ``f_min`` and ``f_max``, on a linear frequency axis."""

    spec: LogSpectrogramSpec

    def __init__(self, spec: LogSpectrogramSpec) -> None:
        super().__init__(spec)
        self.spectrogram = tat.Spectrogram(
            n_fft=spec.n_fft, win_length=spec.window_length, hop_length=spec.hop_length, power=2.0
        )
        self.first_bin, self.last_bin = spec.bin_range

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        power = self.spectrogram(waveforms)[..., self.first_bin : self.last_bin, :]
        return torch.log(power + self.spec.log_offset)


if __name__ == "__main__":  # pragma: no cover
    batch = torch.randn(2, 32_000)
    for spec in (LogMelSpec(), MfccSpec(), LfccSpec(), LogSpectrogramSpec()):
        print(f"{spec.kind}: {tuple(spec.build()(batch).shape)}")  # noqa: T201
