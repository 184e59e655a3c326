"""Resampling a stream chunk by chunk, with the same output as resampling it whole.

Live sources deliver 20 ms packets at 8 kHz (G.711) or 44.1/48 kHz (sound cards); the pipeline
runs at 16 kHz. Resampling each packet on its own would put edge artefacts at every packet
boundary, so ``StreamResampler`` keeps enough input on either side of the part it converts for
the kernel never to see an edge, holding back that much (a few milliseconds) until the next
chunk arrives. It uses the same Kaiser windowed-sinc kernel as ``audio_io.resample``; a stream
resampled in any chunking equals the whole signal resampled at once (to float rounding).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio.transforms

from dfd.dsp.audio_io import RESAMPLING_KERNEL, check_resampling


class StreamResampler:
    def __init__(self, from_rate: int, to_rate: int) -> None:
        check_resampling(from_rate, to_rate)  # positive rates, and a filter of sane size
        self.from_rate, self.to_rate = from_rate, to_rate
        common = math.gcd(from_rate, to_rate)
        self._step_in, self._step_out = from_rate // common, to_rate // common
        self._received = 0  # input samples pushed
        self._converted = 0  # input index up to which output was returned (a multiple of step_in)
        self._transform: torchaudio.transforms.Resample | None = None
        self._context = 0
        if from_rate != to_rate:
            # dtype float32: the kernel computed as ``audio_io.resample`` computes it for float32
            # audio (by default the transform computes it in float64 and rounds it, which moves
            # the output by up to 2e-5).
            self._transform = torchaudio.transforms.Resample(
                from_rate, to_rate, **RESAMPLING_KERNEL, dtype=torch.float32
            )
            # The kernel reads `width` samples before and `width + step_in` after an output's
            # input position; hold that much, rounded to whole steps so phases line up.
            reach = self._transform.width + self._step_in
            self._context = math.ceil(reach / self._step_in) * self._step_in
        # Input kept from `_buffer_start` on; the stream starts with the same zeros the whole-
        # signal resampler pads with.
        self._buffer = np.zeros(self._context, dtype=np.float32)
        self._buffer_start = -self._context

    @property
    def delay_samples(self) -> int:
        """Input samples held back for context (the latency this stage adds)."""
        return self._context

    @property
    def samples_received(self) -> int:
        return self._received

    def input_needed_for(self, output_samples: int) -> int:
        """How many input samples must have been pushed for the first ``output_samples`` output
        samples to be final (returned by ``push``)."""
        steps = math.ceil(output_samples / self._step_out)
        return steps * self._step_in + self._context

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Add input samples; return every output sample that is now final."""
        chunk = np.asarray(chunk, dtype=np.float32)
        if self._transform is None:
            self._received += len(chunk)
            return chunk
        self._buffer = np.concatenate([self._buffer, chunk])
        self._received += len(chunk)
        target = (self._received - self._context) // self._step_in * self._step_in
        if target <= self._converted:
            return np.zeros(0, dtype=np.float32)
        output = self._convert(self._converted, target, self._received)
        self._converted = target
        self._trim()
        return output

    def finish(self) -> np.ndarray:
        """End of stream: the remaining output, as the whole-signal resampler would end it."""
        if self._transform is None:
            return np.zeros(0, dtype=np.float32)
        total_out = math.ceil(self._received * self._step_out / self._step_in)
        remaining = total_out - self._converted // self._step_in * self._step_out
        if remaining <= 0:
            return np.zeros(0, dtype=np.float32)
        end = self._converted + math.ceil(remaining / self._step_out) * self._step_in
        self._buffer = np.concatenate(
            [self._buffer, np.zeros(end + self._context - self._received, dtype=np.float32)]
        )
        output = self._convert(self._converted, end, end + self._context)[:remaining]
        self._converted = self._received = end
        self._trim()
        return output

    def _convert(self, start: int, stop: int, available: int) -> np.ndarray:
        """Output for inputs [start, stop), computed from [start - context, stop + context)."""
        assert self._transform is not None
        first = start - self._context - self._buffer_start
        segment = self._buffer[first : stop + self._context - self._buffer_start]
        with torch.inference_mode():
            converted = self._transform(torch.from_numpy(np.ascontiguousarray(segment)))
        lead = self._context // self._step_in * self._step_out
        count = (stop - start) // self._step_in * self._step_out
        result: np.ndarray = converted.numpy()[lead : lead + count].copy()
        return result

    def _trim(self) -> None:
        keep_from = self._converted - self._context
        drop = keep_from - self._buffer_start
        if drop > 0:
            self._buffer = self._buffer[drop:]
            self._buffer_start = keep_from
