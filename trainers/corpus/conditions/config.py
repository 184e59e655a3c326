"""How conditions are drawn: a probability per stage and the choices within each, validated.

The same config is used for both classes: a condition is drawn from the generator alone, never
from the file's label, source or speaker, so bona fide and spoofed audio meet one distribution.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dfd.trainers.corpus.conditions.devices import DEVICE_KINDS
from dfd.trainers.corpus.conditions.noises import NOISE_KINDS
from dfd.trainers.corpus.conditions.phone import OPUS_BITRATES_KBPS, PHONE_ROUTES

Weights = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class ConditionConfig:
    """Per-stage probabilities and ranges. Weights are relative (need not sum to 1)."""

    room_probability: float = 0.4
    simulated_room_share: float = 0.6  # of the rooms: simulated shoebox, else a packaged response
    rt60_s: tuple[float, float] = (0.15, 0.8)

    noise_probability: float = 0.4
    noise_kinds: Weights = (
        ("babble", 1.0),
        ("brown", 0.5),
        ("crowd", 1.0),
        ("household", 1.0),
        ("human", 1.0),
        ("keyboard", 1.0),
        ("pink", 1.0),
        ("traffic", 0.5),
        ("white", 0.5),
    )
    snr_db: tuple[float, float] = (5.0, 30.0)

    device_probability: float = 0.4
    device_kinds: Weights = (
        ("cabinet", 1.0),
        ("handset", 1.0),
        ("headset", 1.0),
        ("laptop", 1.0),
        ("speakerphone", 1.0),
    )
    gain_db: tuple[float, float] = (-6.0, 6.0)
    clipping_probability: float = 0.15
    drive_db: tuple[float, float] = (1.0, 12.0)

    phone_probability: float = 0.4
    phone_routes: Weights = (
        ("alaw", 1.0),
        ("band", 1.0),
        ("g722", 1.0),
        ("g726", 0.5),
        ("gsm", 1.0),
        ("mulaw", 1.0),
        ("opus", 2.0),
        ("resample11k", 0.3),
        ("resample44k", 0.3),
        ("resample8k", 0.5),
    )
    opus_bitrates_kbps: tuple[int, ...] = OPUS_BITRATES_KBPS
    loss_probability: float = 0.3  # of packet routes
    loss_rate: tuple[float, float] = (0.005, 0.05)

    def __post_init__(self) -> None:
        for name in (
            "room_probability",
            "simulated_room_share",
            "noise_probability",
            "device_probability",
            "clipping_probability",
            "phone_probability",
            "loss_probability",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        _check_range("rt60_s", self.rt60_s, 0.05, 3.0)
        _check_range("snr_db", self.snr_db, -20.0, 80.0)
        _check_range("gain_db", self.gain_db, -40.0, 20.0)
        _check_range("drive_db", self.drive_db, 0.0, 40.0)
        _check_range("loss_rate", self.loss_rate, 0.0, 0.5)
        _check_weights("noise_kinds", self.noise_kinds, NOISE_KINDS, self.noise_probability)
        _check_weights("device_kinds", self.device_kinds, DEVICE_KINDS, self.device_probability)
        _check_weights("phone_routes", self.phone_routes, PHONE_ROUTES, self.phone_probability)
        if (
            not set(self.opus_bitrates_kbps) <= set(OPUS_BITRATES_KBPS)
            or not self.opus_bitrates_kbps
        ):
            raise ValueError(f"opus_bitrates_kbps must be taken from {OPUS_BITRATES_KBPS}")

    def replace(self, **changes: object) -> ConditionConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _check_range(name: str, bounds: tuple[float, float], low: float, high: float) -> None:
    if not low <= bounds[0] <= bounds[1] <= high:
        raise ValueError(f"{name} must be (min, max) within [{low}, {high}], got {bounds}")


def _check_weights(name: str, weights: Weights, known: tuple[str, ...], probability: float) -> None:
    names = [choice for choice, _ in weights]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"{name}: unknown {unknown}; known: {', '.join(known)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{name}: a choice is listed twice")
    if any(weight < 0 for _, weight in weights):
        raise ValueError(f"{name}: weights must not be negative")
    if probability > 0 and sum(weight for _, weight in weights) <= 0:
        raise ValueError(f"{name}: a stage with probability {probability} needs a positive weight")


DEFAULT_CONDITIONS = ConditionConfig()
NO_CONDITIONS = ConditionConfig(
    room_probability=0.0, noise_probability=0.0, device_probability=0.0, phone_probability=0.0
)
# The evaluation condition "a real call": every stage on, every time.
PHONE_FULL = ConditionConfig(
    room_probability=1.0,
    noise_probability=1.0,
    device_probability=1.0,
    phone_probability=1.0,
    phone_routes=(("alaw", 1.0), ("g726", 0.5), ("gsm", 1.0), ("mulaw", 1.0), ("opus", 2.0)),
    loss_probability=0.5,
)
PRESETS: dict[str, ConditionConfig] = {
    "default": DEFAULT_CONDITIONS,
    "none": NO_CONDITIONS,
    "phone_full": PHONE_FULL,
}
