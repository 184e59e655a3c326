"""The training objective: a multi-resolution STFT loss plus a mel L1 loss, without adversaries.

Spectral convergence and log-magnitude L1 at three resolutions (Parallel WaveGAN, Yamamoto et al.
2020) keep the fine structure honest at several time-frequency trade-offs; the L1 distance of log
mel spectrograms (HiFi-GAN's reconstruction term) weighs errors as the ear and the conditioning
front end do. A discriminator would sharpen the output but costs several times the compute, which
a one-core training budget of minutes does not have.
"""

from __future__ import annotations

import torch
from torch import nn

from dfd.trainers.corpus.neural_vocoders.frontend import LogMel

STFT_RESOLUTIONS = ((512, 128), (1024, 256), (256, 64))  # (n_fft, hop); window = n_fft
MAGNITUDE_FLOOR = 1e-7


class ReconstructionLoss(nn.Module):
    """``stft + mel_weight * mel`` between a synthesized and a target waveform, both
    ``(batch, samples)``; :meth:`terms` gives the two parts separately for logging."""

    def __init__(self, mel_weight: float) -> None:
        super().__init__()
        self.mel_weight = mel_weight
        self.log_mel = LogMel()
        for n_fft, _ in STFT_RESOLUTIONS:
            self.register_buffer(f"window_{n_fft}", torch.hann_window(n_fft), persistent=False)

    def terms(self, synthesized: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
        stft_loss = torch.zeros(())
        for n_fft, hop in STFT_RESOLUTIONS:
            window = getattr(self, f"window_{n_fft}")
            fake = _magnitude(synthesized, n_fft, hop, window)
            real = _magnitude(target, n_fft, hop, window)
            convergence = torch.linalg.norm(real - fake) / torch.linalg.norm(real).clamp_min(1e-7)
            log_distance = torch.mean(torch.abs(torch.log(real) - torch.log(fake)))
            stft_loss = stft_loss + convergence + log_distance
        stft_loss = stft_loss / len(STFT_RESOLUTIONS)
        mel_loss = torch.mean(torch.abs(self.log_mel(synthesized) - self.log_mel(target)))
        return stft_loss, mel_loss

    def forward(self, synthesized: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        stft_loss, mel_loss = self.terms(synthesized, target)
        return stft_loss + self.mel_weight * mel_loss


def _magnitude(waveform: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    spectrum = torch.stft(waveform, n_fft, hop, window=window, return_complex=True)
    return torch.sqrt(torch.clamp(spectrum.real**2 + spectrum.imag**2, min=MAGNITUDE_FLOOR))
