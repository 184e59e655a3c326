"""The calls protocol: long real calls and calls that turn synthetic part-way.

A detector is judged per 2 s window, but a call centre buys a per-call promise: few genuine callers
flagged, a cloned voice flagged within seconds. So dev and eval also hold whole calls, each spoken
by one held-out speaker (a voice whose family, language or speaker training never heard):

- ``bonafide``: 60-300 s of one speaker's real utterances, joined with short pauses;
- ``turns-synthetic``: the same speaker for 10-40 s, then copy-synthesised speech of that speaker
  (other utterances re-synthesised by the split's held-out vocoder): the voice stays, the waveform
  turns synthetic, as when a fraudster hands over to a cloned voice.

Calls are planned from the finished clean files (their durations decide how many utterances make a
call), and every draw comes from the seed and the call's own key, so they rebuild byte-identically.
Pauses carry a faint noise floor rather than digital silence, as a phone line does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from dfd.trainers.corpus.plan import CorpusPlan, Preset, Split, seeded_unit

CallKind = Literal["bonafide", "turns-synthetic"]
CALL_SPLITS: tuple[Split, ...] = ("dev", "eval")
PAUSE_S = (0.3, 1.2)
PAUSE_LEVEL_DBFS = -65.0


@dataclass(frozen=True)
class CallLengths:
    """Seconds: a call's drawn length, and how long a turning call stays real."""

    call: tuple[float, float]
    real_opening: tuple[float, float]


CALL_LENGTHS: dict[Preset, CallLengths] = {
    "full": CallLengths(call=(60.0, 300.0), real_opening=(10.0, 40.0)),
    "small": CallLengths(call=(8.0, 12.0), real_opening=(3.0, 5.0)),
}


@dataclass(frozen=True)
class CallItem:
    call_id: str
    split: Split
    kind: CallKind
    speaker: str
    language: str
    attack: str  # "-" for a real call, else the vocoder of its synthetic part
    segments: tuple[str, ...]  # utt_ids, joined in order
    synthetic_from: int  # index of the first synthetic segment; len(segments) for a real call
    pauses_s: tuple[float, ...]  # the pause after each segment but the last


def plan_calls(plan: CorpusPlan, seconds: Mapping[str, float]) -> list[CallItem]:
    """Calls of the held-out bona fide speakers of dev and eval, from the files that were made
    (``seconds``: utt_id -> duration of every clean file written)."""
    lengths = CALL_LENGTHS[plan.preset]
    calls: list[CallItem] = []
    for split in CALL_SPLITS:
        real: dict[str, list[str]] = defaultdict(list)
        language: dict[str, str] = {}
        for item in plan.bonafide:
            if item.split == split and item.held_out and item.utt_id in seconds:
                real[item.speaker].append(item.utt_id)
                language.setdefault(item.speaker, item.language)
        copies: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
        for copy in plan.copy_synthesis:
            if copy.split == split and copy.utt_id in seconds:
                copies[copy.speaker][copy.source_utt_id] = (copy.utt_id, copy.attack)
        for speaker in sorted(real):
            calls += _speaker_calls(
                plan.seed, split, speaker, language[speaker], real[speaker],
                copies[speaker], seconds, lengths,
            )  # fmt: skip
    letter = {"dev": "D", "eval": "E"}
    counters: dict[str, int] = defaultdict(int)
    numbered = []
    for call in calls:
        counters[call.split] += 1
        numbered.append(
            replace(call, call_id=f"DFD_CALL_{letter[call.split]}_{counters[call.split]:04d}")
        )
    return numbered


def _speaker_calls(
    seed: int,
    split: Split,
    speaker: str,
    language: str,
    utterances: Sequence[str],
    copies: Mapping[str, tuple[str, str]],
    seconds: Mapping[str, float],
    lengths: CallLengths,
) -> list[CallItem]:
    """Real and turning calls, taking turns, until the speaker's utterances run out. An utterance
    is used once, as itself or as its vocoded copy."""
    pool = sorted(utterances, key=lambda u: seeded_unit(seed, f"call-order:{u}"))
    calls: list[CallItem] = []
    while pool:
        index = len(calls)
        key = f"call:{split}:{speaker}:{index}"
        target = _draw(seed, f"{key}:length", lengths.call)
        kind: CallKind = "bonafide" if index % 2 == 0 else "turns-synthetic"
        opening = (
            target if kind == "bonafide" else _draw(seed, f"{key}:opening", lengths.real_opening)
        )
        draft = _Draft(seed, key, seconds)
        while pool and draft.seconds < opening:
            draft.add(pool.pop(0))
        synthetic_from = len(draft.segments)
        attack = "-"
        if kind == "turns-synthetic":
            for utt in [u for u in pool if u in copies]:
                if draft.seconds >= target:
                    break
                copy_id, vocoder = copies[utt]
                if attack not in ("-", vocoder):
                    continue  # one vocoder per call
                pool.remove(utt)
                draft.add(copy_id)
                attack = vocoder
            if attack == "-":
                break  # no copies left to turn synthetic with
        if draft.seconds < lengths.call[0]:
            break  # too little left for a call of the protocol's length
        calls.append(
            CallItem(
                "", split, kind, speaker, language, attack, tuple(draft.segments), synthetic_from,
                tuple(draft.pauses),
            )
        )  # fmt: skip
    return calls


class _Draft:
    """A call being put together: its segments, the drawn pause after each, its length."""

    def __init__(self, seed: int, key: str, seconds: Mapping[str, float]) -> None:
        self._seed, self._key, self._durations = seed, key, seconds
        self.segments: list[str] = []
        self.pauses: list[float] = []
        self.seconds = 0.0

    def add(self, utt_id: str) -> None:
        if self.segments:
            pause = round(_draw(self._seed, f"{self._key}:pause:{len(self.pauses)}", PAUSE_S), 3)
            self.pauses.append(pause)
            self.seconds += pause
        self.segments.append(utt_id)
        self.seconds += self._durations[utt_id]


def assemble_call(
    call: CallItem, audio: Sequence[np.ndarray], rate: int, seed: int
) -> tuple[np.ndarray, float]:
    """The call's samples (segments joined by pauses with a faint noise floor) and the second at
    which its synthetic part starts (its length for a real call)."""
    rng = np.random.default_rng(int(seeded_unit(seed, f"call-noise:{call.call_id}") * 2**63))
    floor = 10 ** (PAUSE_LEVEL_DBFS / 20)
    pieces: list[np.ndarray] = []
    synthetic_from_s = None
    position = 0
    for index, segment in enumerate(audio):
        if index == call.synthetic_from:
            synthetic_from_s = position / rate
        pieces.append(segment.astype(np.float32))
        position += len(segment)
        if index < len(call.pauses_s):
            pause = round(call.pauses_s[index] * rate)
            pieces.append((rng.standard_normal(pause) * floor).astype(np.float32))
            position += pause
    samples = np.concatenate(pieces)
    return samples, (position / rate if synthetic_from_s is None else synthetic_from_s)


def _draw(seed: int, key: str, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return low + (high - low) * seeded_unit(seed, key)
