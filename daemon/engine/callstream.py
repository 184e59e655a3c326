"""``CallStream``: everything the pipeline keeps for one party of one call.

A stream turns that party's audio chunks (at the source's rate) into 16 kHz windows, marks each
window speech or not, and, as the scores come back, applies them to its decision state strictly
in window order, whatever order the batches finish in. Windows shed under overload or lost with
a worker are applied as unscored, so the order never stalls.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, Literal

import numpy as np

from dfd.daemon.engine.decisions import DecisionPolicy, DecisionState, Transition
from dfd.daemon.engine.speech import SpeechFrames, SpeechGate
from dfd.dsp.extract import repeat_to_window
from dfd.dsp.framer import WindowFramer, WindowGeometry
from dfd.dsp.stream_resample import StreamResampler

# What became of a window: scored; skipped for having no speech (live calls); shed under
# overload before scoring; lost with a detector worker that failed twice.
WindowFate = Literal["scored", "no-speech", "shed", "lost"]
WINDOW_FATES: tuple[WindowFate, ...] = ("scored", "no-speech", "shed", "lost")


@dataclasses.dataclass(eq=False)
class PendingWindow:
    """A window waiting to be scored. ``ready_at``: monotonic time its last sample arrived."""

    stream: CallStream
    index: int  # the stream's window counter, from 0
    start: int  # first sample, 16 kHz, from the start of the stream
    end: int  # one past the last real sample (shorter than start + window only at the end)
    samples: np.ndarray
    speech: bool
    ready_at: float


@dataclasses.dataclass(frozen=True)
class WindowOutcome:
    """A window applied to the decision state, in stream order."""

    window: PendingWindow
    score: float | None  # None: not scored (no speech in a live call, shed, or lost)
    raw: float | None
    transition: Transition | None
    basis: dict[str, Any]  # the decision state after this window (DecisionState.basis)


class CallStream:
    def __init__(
        self,
        call_id: str,
        channel: int,
        source: str,
        source_rate: int,
        geometry: WindowGeometry,
        gate: SpeechGate,
        policy: DecisionPolicy,
        threshold: float,
    ) -> None:
        self.threshold = threshold
        self.call_id, self.channel, self.source = call_id, channel, source
        self.source_rate = source_rate
        self.geometry = geometry
        self.gate = gate
        self.decision = DecisionState(policy)
        self.window_fates: collections.Counter[WindowFate] = collections.Counter()
        self._resampler = StreamResampler(source_rate, geometry.sample_rate)
        self._framer = WindowFramer(geometry)
        self._speech = SpeechFrames(gate, geometry.sample_rate)
        self._held: list[np.ndarray] = []  # source-rate input not yet resampled
        self._held_samples = 0
        self._input_needed = self._input_needed_for_next_window()
        self._last_window: np.ndarray | None = None
        self._last_window_start = 0
        self._next_index = 0
        self._next_to_apply = 0
        self._results: dict[int, tuple[PendingWindow, float | None, float | None]] = {}
        self.queued = 0  # windows waiting for a batch (window_queued to window_dispatched)
        self.ending = False
        self.end_reason = ""

    @property
    def samples_received(self) -> int:
        """16 kHz samples received so far."""
        return self._framer.samples_received

    @property
    def duration_s(self) -> float:
        return self.samples_received / self.geometry.sample_rate

    @property
    def done(self) -> bool:
        """Ended, and every window applied."""
        return self.ending and self._next_to_apply == self._next_index

    def seconds(self, sample: int) -> float:
        return sample / self.geometry.sample_rate

    def push(self, samples: np.ndarray, arrived: float) -> list[PendingWindow]:
        """Add source-rate samples; return the windows they complete.

        Resampling costs a fixed overhead per call, so input is held until it completes the
        next window (about one hop of audio per call) and resampled in one go. A window is cut as
        soon as its last input sample is in, without waiting for the resampler's look-ahead
        (8.6 ms at 8 kHz, so a whole 20 ms packet): its last few milliseconds are resampled as if
        the input held its last sample (``StreamResampler.provisional_ending``), the rest exactly.
        So a window is the same however the audio was split into packets (live and replay agree),
        and equals the window of the audio resampled whole (`dfd eval`) but for those last
        samples (tests/test_scoring_path.py). Audio already at the pipeline's rate is cut
        exactly."""
        if self.ending:
            raise ValueError(f"{self.call_id} channel {self.channel} has already ended")
        self._held.append(np.asarray(samples, dtype=np.float32))
        self._held_samples += len(samples)
        if self._held_samples < self._input_needed:
            return []
        return self._release(arrived)

    def _input_needed_for_next_window(self) -> int:
        """Source samples that must be held before the next window can be cut: up to the one
        its last sample is resampled from (the look-ahead is left out, see ``push``)."""
        next_end = self._framer.next_window_start + self.geometry.window_samples
        needed = self._resampler.input_needed_for(next_end) - self._resampler.delay_samples
        return max(0, needed - self._resampler.samples_received)

    def _release(self, arrived: float) -> list[PendingWindow]:
        held = np.concatenate(self._held) if len(self._held) > 1 else self._held[0]
        self._held, self._held_samples = [], 0
        cut = []
        # Each window is cut with the input up to its own end, however much more has come in.
        while 0 < self._input_needed <= len(held):
            upto, held = held[: self._input_needed], held[self._input_needed :]
            cut += self._framer.push(self._resampler.push(upto))
            cut += self._framer.push_provisional(self._resampler.provisional_ending())
            self._input_needed = self._input_needed_for_next_window()
        if len(held):
            cut += self._framer.push(self._resampler.push(held))
            self._input_needed = self._input_needed_for_next_window()
        return [self._pending(w.start, w.samples, w.end, arrived) for w in cut]

    def finish(self, reason: str, arrived: float, min_stream_s: float = 0.0) -> list[PendingWindow]:
        """End of the stream: the windows still to come, including one over the uncovered tail
        (the last full window's worth of audio, or the whole call repeated if it is shorter),
        except for a stream shorter than ``min_stream_s``, which gets no window at all."""
        self.ending, self.end_reason = True, reason
        windows = self._release(arrived) if self._held else []
        windows += [
            self._pending(w.start, w.samples, w.end, arrived)
            for w in self._framer.push(self._resampler.finish())
        ]
        tail = self._framer.finish()
        if tail is not None and self.duration_s >= min_stream_s:
            end = tail.start + tail.valid_samples
            length = self.geometry.window_samples
            previous_end = self._last_window_start + length
            if self._last_window is None or previous_end < tail.start:
                # Shorter than one window (or windows that leave gaps): repeat what there is.
                samples = repeat_to_window(tail.samples[: tail.valid_samples], self.geometry)
                windows.append(self._pending(tail.start, samples, end, arrived))
            else:  # the last window's audio, then the exact audio from where the tail starts
                own = self._last_window[: tail.start - self._last_window_start]
                joined = np.concatenate([own, tail.samples[: tail.valid_samples]])
                offset = end - length - self._last_window_start
                windows.append(
                    self._pending(end - length, joined[offset : offset + length], end, arrived)
                )
        return windows

    def _pending(self, start: int, samples: np.ndarray, end: int, arrived: float) -> PendingWindow:
        window = PendingWindow(
            self,
            self._next_index,
            start,
            min(end, start + len(samples)),
            samples,
            self._speech.is_speech(samples, start),
            arrived,
        )
        self._next_index += 1
        self._last_window, self._last_window_start = samples, start
        return window

    def window_queued(self) -> None:
        """One of this stream's windows joined the pipeline's queue."""
        self.queued += 1

    def window_dispatched(self) -> None:
        """One of its queued windows left the queue in a batch."""
        self.queued -= 1

    def resolve(
        self, window: PendingWindow, score: float | None, raw: float | None, fate: WindowFate
    ) -> list[WindowOutcome]:
        """Record a window's score (``None`` unless ``fate`` is ``"scored"``) and what became of
        it; apply every window now complete in order. A window shed under overload leaves the
        queue here."""
        if fate == "shed":
            self.queued -= 1
        self.window_fates[fate] += 1
        self._results[window.index] = (window, score, raw)
        outcomes = []
        while self._next_to_apply in self._results:
            pending, score, raw = self._results.pop(self._next_to_apply)
            self._next_to_apply += 1
            transition = self.decision.update(
                score,
                pending.speech,
                self.threshold,
                self.seconds(pending.start),
                self.seconds(pending.end),
                self.geometry.window_s,
            )
            basis = self.decision.basis() if transition is not None else {}
            outcomes.append(WindowOutcome(pending, score, raw, transition, basis))
        return outcomes
