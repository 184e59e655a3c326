"""Simulated shoebox rooms: pyroomacoustics image sources for the early reflections, a seeded
exponentially decaying noise tail for the rest.

A full image-source simulation of a small room at RT60 0.8 s needs reflection order ~150 and
seconds of CPU per response, far too slow for online training. The image sources up to
``MAX_IMAGE_ORDER`` cost milliseconds and are complete until the first missing order can arrive;
from there the response is continued by Gaussian noise under the decay envelope of the requested
RT60 (60 dB in RT60 seconds), its level matched to the image-source energy just before the
junction. The response's measured decay then follows the requested RT60 (tested).
"""

from __future__ import annotations

import numpy as np
import pyroomacoustics as pra

from dfd.dsp.audio_io import PIPELINE_SAMPLE_RATE

SPEED_OF_SOUND = 343.0
MAX_IMAGE_ORDER = 6
ROOM_SIZE_MIN_M = (3.0, 2.5, 2.4)
ROOM_SIZE_MAX_M = (9.0, 7.0, 3.5)
WALL_CLEARANCE_M = 0.5
SHRINK_STEP = 0.85  # a room too large for a short RT60 is shrunk by this until it is feasible
CROSSFADE_S = 0.004


def simulated_room_impulse(
    rt60_s: float, rng: np.random.Generator, rate: int = PIPELINE_SAMPLE_RATE
) -> np.ndarray:
    """A room response with reverberation time ``rt60_s``; room size and the talker's and the
    microphone's positions are drawn from ``rng``."""
    dims = rng.uniform(ROOM_SIZE_MIN_M, ROOM_SIZE_MAX_M)
    while True:
        try:
            absorption, full_order = pra.inverse_sabine(rt60_s, dims)
            break
        except ValueError:  # absorption above 1: no wall can be that dead in a room this large
            dims = dims * SHRINK_STEP
    source = rng.uniform(WALL_CLEARANCE_M, dims - WALL_CLEARANCE_M)
    microphone = rng.uniform(WALL_CLEARANCE_M, dims - WALL_CLEARANCE_M)
    order = min(full_order, MAX_IMAGE_ORDER)
    room = pra.ShoeBox(dims.tolist(), fs=rate, materials=pra.Material(absorption), max_order=order)
    room.add_source(source.tolist())
    room.add_microphone(microphone.tolist())
    room.compute_rir()
    early = np.asarray(room.rir[0][0], dtype=np.float64)
    if full_order <= MAX_IMAGE_ORDER:
        return early.astype(np.float32)
    return _with_decaying_tail(early, dims, order, rt60_s, rng, rate).astype(np.float32)


def _with_decaying_tail(
    early: np.ndarray,
    dims: np.ndarray,
    order: int,
    rt60_s: float,
    rng: np.random.Generator,
    rate: int,
) -> np.ndarray:
    direct = int(np.argmax(np.abs(early)))
    # Images of order ``order + 1`` lie at least (order + 1) x the shortest room side away.
    junction = max(direct + 1, round((order + 1) * float(dims.min()) / SPEED_OF_SOUND * rate))
    junction = min(junction, len(early))
    length = junction + round(rt60_s * rate)
    decay = np.exp(-3 * np.log(10) * np.arange(length) / (rt60_s * rate))  # -60 dB at rt60
    reference = slice((direct + junction) // 2, junction)
    early_energy = float(np.sum(early[reference] ** 2))
    envelope_energy = float(np.sum(decay[reference] ** 2)) or 1.0
    tail = rng.standard_normal(length) * decay * np.sqrt(early_energy / envelope_energy)
    fade = min(round(CROSSFADE_S * rate), junction - direct)
    ramp = np.linspace(0.0, 1.0, fade) if fade > 0 else np.zeros(0)
    response = np.zeros(length)
    response[:junction] = early[:junction]
    response[junction - fade : junction] *= 1.0 - ramp
    tail[: junction - fade] = 0.0
    tail[junction - fade : junction] *= ramp
    combined: np.ndarray = response + tail
    return combined
