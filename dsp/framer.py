"""Streaming framer: chunks of any size in, fixed-length overlapping windows out.

Positions are integer sample indices counted from the start of the stream, so nothing drifts
however long a call lasts, and the windows are the same whether the audio arrives in one piece or
in 20 ms packets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class WindowGeometry:
    """Window length and hop in seconds, checked to be whole numbers of samples."""

    sample_rate: int = 16_000
    window_s: float = 2.0
    hop_s: float = 0.5

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        for name in ("window_s", "hop_s"):
            seconds = getattr(self, name)
            if seconds <= 0:
                raise ValueError(f"{name} must be positive, got {seconds}")
            samples = seconds * self.sample_rate
            if abs(samples - round(samples)) > 1e-6:
                raise ValueError(
                    f"{name}={seconds} s is not a whole number of samples at {self.sample_rate} Hz"
                )

    @property
    def window_samples(self) -> int:
        return round(self.window_s * self.sample_rate)

    @property
    def hop_samples(self) -> int:
        return round(self.hop_s * self.sample_rate)


@dataclass(frozen=True, eq=False)
class Window:
    """One analysis window. ``start`` is the stream index of ``samples[0]``.

    ``valid_samples`` is shorter than the window only for the zero-padded tail window that
    :meth:`WindowFramer.finish` returns at the end of a stream.
    """

    start: int
    samples: np.ndarray
    valid_samples: int

    @property
    def end(self) -> int:
        return self.start + len(self.samples)

    def start_seconds(self, sample_rate: int) -> float:
        return self.start / sample_rate


class WindowFramer:
    """Cuts one channel of a stream into windows of ``geometry.window_samples`` every hop."""

    def __init__(self, geometry: WindowGeometry, dtype: npt.DTypeLike = np.float32) -> None:
        self.geometry = geometry
        self._window = geometry.window_samples
        self._hop = geometry.hop_samples
        self._dtype = np.dtype(dtype)
        self._buffer = np.empty(2 * self._window, dtype=self._dtype)
        self._buffer_start = 0  # stream index of self._buffer[0]
        self._filled = 0  # valid samples in the buffer
        self._next_start = 0  # stream index where the next window begins
        self._received = 0  # samples pushed so far
        self._windows_emitted = 0

    @property
    def samples_received(self) -> int:
        return self._received

    @property
    def next_window_start(self) -> int:
        return self._next_start

    def push(self, chunk: npt.ArrayLike) -> list[Window]:
        """Add samples; return the windows they complete, oldest first."""
        return list(self._push(np.asarray(chunk, dtype=self._dtype)))

    def push_provisional(self, chunk: npt.ArrayLike) -> list[Window]:
        """The windows ``chunk`` would complete if it followed the samples received so far, cut
        now; the chunk itself is not kept, and the next ``push`` goes on from the last real
        sample. A live stream resampled with look-ahead passes its provisional ending here
        (``StreamResampler.provisional_ending``) to cut a window without waiting for the input
        after it."""
        chunk = np.asarray(chunk, dtype=self._dtype)
        windows = []
        buffer_end = self._buffer_start + self._filled
        while self._next_start + self._window <= buffer_end + len(chunk):
            offset = self._next_start - self._buffer_start
            real = self._buffer[min(offset, self._filled) : self._filled]
            provisional = chunk[
                max(0, self._next_start - buffer_end) : self._next_start + self._window - buffer_end
            ]
            samples = np.concatenate([real, provisional])
            windows.append(Window(self._next_start, samples, valid_samples=self._window))
            self._next_start += self._hop
            self._windows_emitted += 1
        return windows

    def finish(self) -> Window | None:
        """End of stream: the samples no window has covered yet, zero-padded to a full window.

        Returns ``None`` when every received sample already lies in an emitted window.
        """
        covered_until = self._next_start - self._hop + self._window if self._windows_emitted else 0
        if self._received <= covered_until or self._received <= self._next_start:
            return None
        valid = self._received - self._next_start
        offset = self._next_start - self._buffer_start
        samples = np.zeros(self._window, dtype=self._dtype)
        samples[:valid] = self._buffer[offset : offset + valid]
        return Window(start=self._next_start, samples=samples, valid_samples=valid)

    def _push(self, chunk: np.ndarray) -> Iterator[Window]:
        if chunk.ndim != 1:
            raise ValueError(f"push one channel at a time: expected a 1-D chunk, got {chunk.shape}")
        if self._filled == 0 and self._received < self._next_start:
            # hop longer than window: samples between windows are never needed
            skipped = min(self._next_start - self._received, len(chunk))
            chunk = chunk[skipped:]
            self._received += skipped
            self._buffer_start = self._received
        if len(chunk) == 0:
            return
        self._make_room(len(chunk))
        self._buffer[self._filled : self._filled + len(chunk)] = chunk
        self._filled += len(chunk)
        self._received += len(chunk)

        buffer_end = self._buffer_start + self._filled
        while self._next_start + self._window <= buffer_end:
            offset = self._next_start - self._buffer_start
            samples = self._buffer[offset : offset + self._window].copy()
            yield Window(start=self._next_start, samples=samples, valid_samples=self._window)
            self._next_start += self._hop
            self._windows_emitted += 1
        if self._next_start >= buffer_end:
            self._buffer_start, self._filled = buffer_end, 0

    def _make_room(self, incoming: int) -> None:
        if self._filled + incoming <= len(self._buffer):
            return
        # Samples before the next window's start are never read again: move the rest to the front.
        drop = min(self._next_start - self._buffer_start, self._filled)
        kept = self._filled - drop
        self._buffer[:kept] = self._buffer[drop : self._filled]
        self._buffer_start += drop
        self._filled = kept
        if kept + incoming > len(self._buffer):
            grown = np.empty(max(kept + incoming, 2 * len(self._buffer)), dtype=self._dtype)
            grown[:kept] = self._buffer[:kept]
            self._buffer = grown
