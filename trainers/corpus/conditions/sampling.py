"""Drawing a :class:`Condition` from a generator and a config, and nothing else.

Values are rounded as they are drawn (RT60 to 10 ms, SNR, gain and drive to 0.1 dB, loss to
0.1 %), so the condition string states exactly what was applied. Each stage draws from its own
child generator, so switching one stage off leaves the draws of the others unchanged.
"""

from __future__ import annotations

import numpy as np

from dfd.trainers.corpus.conditions.condition import (
    SIMULATED_ROOM,
    Condition,
    DeviceStage,
    NoiseStage,
    PhoneStage,
    RoomStage,
)
from dfd.trainers.corpus.conditions.config import ConditionConfig, Weights
from dfd.trainers.corpus.conditions.devices import CABINET, CLIPPINGS
from dfd.trainers.corpus.conditions.impulses import CABINET_IMPULSES, ROOM_IMPULSES
from dfd.trainers.corpus.conditions.phone import PACKET_ROUTES


def sample_condition(rng: np.random.Generator, config: ConditionConfig) -> Condition:
    room_rng, noise_rng, device_rng, phone_rng = rng.spawn(4)
    return Condition(
        room=_room(room_rng, config) if room_rng.random() < config.room_probability else None,
        noise=_noise(noise_rng, config) if noise_rng.random() < config.noise_probability else None,
        device=(
            _device(device_rng, config) if device_rng.random() < config.device_probability else None
        ),
        phone=_phone(phone_rng, config) if phone_rng.random() < config.phone_probability else None,
    )


def _room(rng: np.random.Generator, config: ConditionConfig) -> RoomStage:
    if rng.random() < config.simulated_room_share:
        return RoomStage(SIMULATED_ROOM, round(float(rng.uniform(*config.rt60_s)), 2))
    return RoomStage(_uniform(rng, sorted(ROOM_IMPULSES)))


def _noise(rng: np.random.Generator, config: ConditionConfig) -> NoiseStage:
    kind = _weighted(rng, config.noise_kinds)
    return NoiseStage(kind, round(float(rng.uniform(*config.snr_db)), 1))


def _device(rng: np.random.Generator, config: ConditionConfig) -> DeviceStage:
    response = _weighted(rng, config.device_kinds)
    if response == CABINET:
        response = _uniform(rng, sorted(CABINET_IMPULSES))
    gain = round(float(rng.uniform(*config.gain_db)), 1) + 0.0  # + 0.0: no "-0.0" in strings
    if rng.random() < config.clipping_probability:
        clipping = CLIPPINGS[int(rng.integers(len(CLIPPINGS)))]
        return DeviceStage(response, gain, clipping, round(float(rng.uniform(*config.drive_db)), 1))
    return DeviceStage(response, gain)


def _phone(rng: np.random.Generator, config: ConditionConfig) -> PhoneStage:
    route = _weighted(rng, config.phone_routes)
    bitrate = None
    if route == "opus":
        bitrate = int(config.opus_bitrates_kbps[int(rng.integers(len(config.opus_bitrates_kbps)))])
    loss = 0.0
    if route in PACKET_ROUTES and rng.random() < config.loss_probability:
        loss = round(float(rng.uniform(*config.loss_rate)), 3)
    return PhoneStage(route, bitrate, loss)


def _weighted(rng: np.random.Generator, weights: Weights) -> str:
    names = [name for name, _ in weights]
    values = np.array([weight for _, weight in weights], dtype=np.float64)
    return names[int(rng.choice(len(names), p=values / values.sum()))]


def _uniform(rng: np.random.Generator, names: list[str]) -> str:
    return names[int(rng.integers(len(names)))]
