"""Settings: defaults, overridden by a TOML file (``--config``), overridden by command options."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from dfd.core.typed_config import ConfigError, build_dataclass
from dfd.daemon.logs import LEVELS, LogFormat
from dfd.dsp.framer import WindowGeometry


@dataclasses.dataclass(frozen=True)
class LoggingSettings:
    level: str = "info"
    format: LogFormat = "auto"

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ConfigError(
                f"logging.level must be one of {', '.join(LEVELS)}, got {self.level!r}"
            )


@dataclasses.dataclass(frozen=True)
class DspSettings:
    sample_rate: int = 16_000
    window_s: float = 2.0
    hop_s: float = 0.5
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    batch_size: int = 64

    def __post_init__(self) -> None:
        self.geometry()  # validates the window arithmetic
        if self.batch_size < 1:
            raise ConfigError(f"dsp.batch_size must be at least 1, got {self.batch_size}")
        if self.device != "auto" and self.device.split(":")[0] not in ("cpu", "cuda"):
            raise ConfigError(f"dsp.device must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    def geometry(self) -> WindowGeometry:
        try:
            return WindowGeometry(self.sample_rate, self.window_s, self.hop_s)
        except ValueError as error:
            raise ConfigError(f"dsp: {error}") from error


@dataclasses.dataclass(frozen=True)
class Settings:
    logging: LoggingSettings = dataclasses.field(default_factory=LoggingSettings)
    dsp: DspSettings = dataclasses.field(default_factory=DspSettings)


def load_settings(path: Path | None) -> Settings:
    if path is None:
        return Settings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from error
    return build_dataclass(Settings, data, where=str(path))
