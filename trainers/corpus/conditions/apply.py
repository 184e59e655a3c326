"""Applying conditions to audio: one file or window at a time, or a whole batch at once.

The batched form is the real one: room, noise and device run per item, then every item's phone
route up to its codec; the ffmpeg codecs then run once per distinct codec over the whole batch
(:func:`~dfd.trainers.corpus.codecs.codec_round_trip`), and packet loss per item again. So
thousands of files, or a training batch of 2 s windows, cost two ffmpeg processes per codec.

Each item draws from its own generator (from its seed), split into one child per stage, so an
item's output depends on its audio, condition and seed, not on its place in the batch; the only
exception is the state a stateful ffmpeg codec (G.722, G.726, GSM, Opus) carries over from the
item before it across the silent gap, a difference at the level of the codec's own noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dfd.trainers.corpus.conditions.condition import SIMULATED_ROOM, Condition
from dfd.trainers.corpus.conditions.devices import apply_device
from dfd.trainers.corpus.conditions.impulses import convolve_aligned, load_impulse
from dfd.trainers.corpus.conditions.noises import mix_at_snr, noise_track
from dfd.trainers.corpus.conditions.phone import after_codec, before_codec, ffmpeg_codec, run_codecs
from dfd.trainers.corpus.conditions.rooms import simulated_room_impulse

Seed = int | np.random.Generator
FLAT = "flat"


def apply_condition(
    audio: np.ndarray,
    condition: Condition,
    rng_or_seed: Seed,
    babble_utterances: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """``audio`` (16 kHz mono float32) under ``condition``; same length, deterministic for a seed.

    ``babble_utterances``: bona fide training audio, needed only for ``noise=babble``."""
    return apply_conditions([audio], [condition], [rng_or_seed], babble_utterances)[0]


def apply_conditions(
    segments: Sequence[np.ndarray],
    conditions: Sequence[Condition],
    seeds: Sequence[Seed],
    babble_utterances: Sequence[np.ndarray] = (),
) -> list[np.ndarray]:
    """Every segment under its condition and seed; one ffmpeg round trip per distinct codec."""
    if not len(segments) == len(conditions) == len(seeds):
        raise ValueError(
            f"{len(segments)} segments, {len(conditions)} conditions and {len(seeds)} seeds"
        )
    phone_rngs: list[np.random.Generator] = []
    staged: list[np.ndarray] = []
    for audio, condition, seed in zip(segments, conditions, seeds, strict=True):
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        room_rng, noise_rng, phone_rng = rng.spawn(3)
        out = _acoustic(
            np.asarray(audio, dtype=np.float32), condition, room_rng, noise_rng, babble_utterances
        )
        if condition.phone is not None:
            out = before_codec(out, condition.phone.route)
        staged.append(out)
        phone_rngs.append(phone_rng)
    codecs = [
        ffmpeg_codec(c.phone.route, c.phone.bitrate_kbps) if c.phone is not None else None
        for c in conditions
    ]
    coded = run_codecs(staged, codecs)
    results = []
    for out, condition, phone_rng, original in zip(
        coded, conditions, phone_rngs, segments, strict=True
    ):
        if condition.phone is not None:
            out = after_codec(out, condition.phone.route, condition.phone.loss_rate, phone_rng)
        if len(out) != len(original):
            raise AssertionError(f"a condition changed the length: {len(original)} -> {len(out)}")
        results.append(out.astype(np.float32))
    return results


def _acoustic(
    audio: np.ndarray,
    condition: Condition,
    room_rng: np.random.Generator,
    noise_rng: np.random.Generator,
    babble_utterances: Sequence[np.ndarray],
) -> np.ndarray:
    """Room, noise and device: the stages that need no ffmpeg."""
    out = audio
    if condition.room is not None:
        room = condition.room
        if room.room == SIMULATED_ROOM and room.rt60_s is not None:
            impulse = simulated_room_impulse(room.rt60_s, room_rng)
        else:
            impulse = load_impulse(room.room)
        out = convolve_aligned(out, impulse)
    if condition.noise is not None:
        noise = noise_track(condition.noise.kind, len(out), noise_rng, babble_utterances)
        out = mix_at_snr(out, noise, condition.noise.snr_db)
    if condition.device is not None:
        device = condition.device
        response = None if device.response == FLAT else device.response
        out = apply_device(out, response, device.gain_db, device.clipping, device.drive_db)
    return out
