"""One file's acoustic and channel condition: what room, noise, device and phone route it met.

A :class:`Condition` holds the choices that describe the condition (an RT60, an SNR, a codec);
the details below them (the room's size, which cough, which packets were lost) are drawn from the
seed given to :func:`~dfd.trainers.corpus.conditions.apply.apply_condition`. Its short string
goes into the corpus manifest and reads back to an equal condition::

    room=sim:rt60=0.42|noise=keyboard:snr=17.0|device=headset:gain=-3.0|phone=gsm:loss=0.02
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dfd.trainers.corpus.conditions.devices import CLIPPINGS, Clipping

SIMULATED_ROOM = "sim"
CLEAN = "clean"
STAGE_SEPARATOR = "|"
FIELD_SEPARATOR = ":"


@dataclass(frozen=True)
class RoomStage:
    """``sim`` (a simulated shoebox of ``rt60_s``) or the name of a packaged room response."""

    room: str
    rt60_s: float | None = None

    def __post_init__(self) -> None:
        if (self.room == SIMULATED_ROOM) != (self.rt60_s is not None):
            raise ValueError("a simulated room, and only it, needs rt60_s")


@dataclass(frozen=True)
class NoiseStage:
    kind: str
    snr_db: float


@dataclass(frozen=True)
class DeviceStage:
    """``response``: an EQ curve or cabinet name, or ``flat``; then clipping, then gain."""

    response: str
    gain_db: float = 0.0
    clipping: Clipping | None = None
    drive_db: float = 0.0

    def __post_init__(self) -> None:
        if self.clipping is not None and self.clipping not in CLIPPINGS:
            raise ValueError(f"clipping must be one of {CLIPPINGS}, got {self.clipping!r}")


@dataclass(frozen=True)
class PhoneStage:
    route: str
    bitrate_kbps: int | None = None
    loss_rate: float = 0.0


@dataclass(frozen=True)
class Condition:
    """Stages in the order sound meets them; ``None``: the stage is skipped."""

    room: RoomStage | None = None
    noise: NoiseStage | None = None
    device: DeviceStage | None = None
    phone: PhoneStage | None = None

    def __str__(self) -> str:
        parts = []
        if self.room is not None:
            parts.append(_join("room", self.room.room, rt60=self.room.rt60_s))
        if self.noise is not None:
            parts.append(_join("noise", self.noise.kind, snr=self.noise.snr_db))
        if self.device is not None:
            clipped = self.device.clipping is not None
            parts.append(
                _join(
                    "device",
                    self.device.response,
                    gain=self.device.gain_db,
                    clip=self.device.clipping,
                    drive=self.device.drive_db if clipped else None,
                )
            )
        if self.phone is not None:
            loss = self.phone.loss_rate or None
            parts.append(_join("phone", self.phone.route, kbps=self.phone.bitrate_kbps, loss=loss))
        return STAGE_SEPARATOR.join(parts) or CLEAN

    @classmethod
    def from_string(cls, text: str) -> Condition:
        """The inverse of ``str(condition)``."""
        if text == CLEAN:
            return cls()
        stages: dict[str, Any] = {}
        for part in text.split(STAGE_SEPARATOR):
            stage, _, rest = part.partition("=")
            value, *pairs = rest.split(FIELD_SEPARATOR)
            options = dict(pair.split("=", 1) for pair in pairs)
            if stage in stages or not value:
                raise ValueError(f"bad condition string {text!r}")
            stages[stage] = _parse_stage(stage, value, options)
        return cls(**stages)

    def to_dict(self) -> dict[str, str | float | int | None]:
        """Flat, JSON-ready fields for a manifest row; absent stages give ``None``."""
        return {
            "condition": str(self),
            "room": self.room.room if self.room else None,
            "rt60_s": self.room.rt60_s if self.room else None,
            "noise": self.noise.kind if self.noise else None,
            "snr_db": self.noise.snr_db if self.noise else None,
            "device": self.device.response if self.device else None,
            "gain_db": self.device.gain_db if self.device else None,
            "clipping": self.device.clipping if self.device else None,
            "drive_db": self.device.drive_db if self.device else None,
            "phone": self.phone.route if self.phone else None,
            "bitrate_kbps": self.phone.bitrate_kbps if self.phone else None,
            "loss_rate": self.phone.loss_rate if self.phone else None,
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Condition:
        return cls.from_string(str(row["condition"]))


def _join(stage: str, value: str, **options: str | float | int | None) -> str:
    pairs = [f"{key}={_format(option)}" for key, option in options.items() if option is not None]
    return FIELD_SEPARATOR.join([f"{stage}={value}", *pairs])


def _format(value: str | float | int) -> str:
    return repr(value) if isinstance(value, float) else str(value)  # repr: exact round trip


_STAGE_OPTIONS = {
    "room": {"rt60": "rt60_s"},
    "noise": {"snr": "snr_db"},
    "device": {"gain": "gain_db", "clip": "clipping", "drive": "drive_db"},
    "phone": {"kbps": "bitrate_kbps", "loss": "loss_rate"},
}
_OPTION_PARSERS: dict[str, Callable[[str], Any]] = {
    "rt60": float,
    "snr": float,
    "gain": float,
    "clip": str,
    "drive": float,
    "kbps": int,
    "loss": float,
}
_STAGE_TYPES: dict[str, type] = {
    "room": RoomStage,
    "noise": NoiseStage,
    "device": DeviceStage,
    "phone": PhoneStage,
}


def _parse_stage(stage: str, value: str, options: dict[str, str]) -> Any:
    if stage not in _STAGE_TYPES:
        raise ValueError(f"unknown condition stage {stage!r}")
    names = _STAGE_OPTIONS[stage]
    unknown = set(options) - set(names)
    if unknown:
        raise ValueError(f"unknown {stage} options {sorted(unknown)}")
    arguments = {names[key]: _OPTION_PARSERS[key](text) for key, text in options.items()}
    stage_type = _STAGE_TYPES[stage]
    return stage_type(value, **arguments)
