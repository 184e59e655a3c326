"""The conditioning all three neural vocoders share: an 80-band log-mel spectrogram at 16 kHz and,
for the source-filter model, the WORLD F0 sampled at the mel frame centres.

Frames are 64 ms long every 16 ms (1024 and 256 samples), the mel spectrogram an acoustic model
of a neural TTS system would emit. The signal is padded by ``(N_FFT - HOP) / 2`` at both ends
instead of centring the first window on sample 0, so a signal of ``k * HOP`` samples gives exactly
``k`` frames, and frame ``t`` is centred on the middle of output block ``t`` (samples
``t * HOP`` to ``(t + 1) * HOP``), as in HiFi-GAN's own front end.
"""

from __future__ import annotations

import numpy as np
import pyworld
import torch
import torchaudio.transforms as tat

SAMPLE_RATE = 16_000
N_FFT = 1024
HOP = 256
MEL_BANDS = 80
LOG_FLOOR = 1e-5  # natural-log floor of the magnitude mel, -11.5: far below any recording's noise
WORLD_FRAME_PERIOD_MS = 5.0


class LogMel(torch.nn.Module):
    """Natural log of the 80-band magnitude mel spectrogram (Slaney scale and area norm, 0-8 kHz).

    Takes ``(..., samples)`` and returns ``(..., MEL_BANDS, samples // HOP)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mel = tat.MelSpectrogram(
            SAMPLE_RATE,
            n_fft=N_FFT,
            hop_length=HOP,
            f_min=0.0,
            f_max=SAMPLE_RATE / 2,
            n_mels=MEL_BANDS,
            power=1.0,
            center=False,
            norm="slaney",
            mel_scale="slaney",
        )

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        edge = (N_FFT - HOP) // 2
        padded = torch.nn.functional.pad(
            waveform.unsqueeze(-2), (edge, edge), mode="reflect"
        ).squeeze(-2)
        magnitude: torch.Tensor = self.mel(padded)
        return torch.log(torch.clamp(magnitude, min=LOG_FLOOR))


def world_f0(audio: np.ndarray) -> np.ndarray:
    """DIO F0 refined by StoneMask every 5 ms (0 where unvoiced), as ``vocoders.py`` tracks it."""
    signal = np.ascontiguousarray(audio, dtype=np.float64)
    rough, times = pyworld.dio(signal, SAMPLE_RATE, frame_period=WORLD_FRAME_PERIOD_MS)
    f0: np.ndarray = pyworld.stonemask(signal, rough, times, SAMPLE_RATE)
    return f0


def f0_at_frames(f0: np.ndarray, first_sample: int, frames: int) -> np.ndarray:
    """The WORLD F0 nearest to the centres of ``frames`` mel frames of a segment that starts at
    ``first_sample`` of the signal ``f0`` was tracked on (0 past its end), as float32."""
    centres = first_sample + np.arange(frames) * HOP + HOP // 2
    period = round(WORLD_FRAME_PERIOD_MS * SAMPLE_RATE / 1000)
    nearest = np.round(centres / period).astype(np.intp)
    inside = nearest < f0.shape[0]
    out = np.zeros(frames, dtype=np.float32)
    out[inside] = f0[nearest[inside]]
    return out
