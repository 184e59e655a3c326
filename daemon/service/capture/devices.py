"""Sound card input through PortAudio (sounddevice): a headset tap, a line-in from a PBX, or
PulseAudio/PipeWire's ``pulse`` device with a monitor source.

A device is one call for as long as the source runs; input channel ``i`` is party ``i``. The call
id is the one configured or ``device-<device name>-<UTC start time>``
(``device-pulse-20250101T120000Z``). PortAudio's callback runs on its own thread and hands each
block to the sink (which returns at once by contract). A block in which PortAudio reports an
input overflow (samples it had to drop) is counted in ``lost``.

``sample_rate`` must be one the device accepts: ALSA's ``pulse`` and ``default`` devices (and
``plughw:``) convert any rate, raw ``hw:`` devices often take only 44.1 or 48 kHz (the pipeline
resamples chunks to 16 kHz itself). ``list_input_devices`` shows what PortAudio found when it
started; a device plugged in later needs a restart of the daemon.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

import numpy as np
import sounddevice
import structlog

from dfd.daemon.engine.events import STOPPED, AudioChunk, StreamEnded
from dfd.daemon.service.capture.base import Sink, Source

log = structlog.get_logger(__name__)


@dataclasses.dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    host_api: str
    max_input_channels: int
    default_sample_rate: float


def list_input_devices() -> list[InputDevice]:
    """The PortAudio devices that can record, as PortAudio saw them when it was initialised."""
    host_apis = sounddevice.query_hostapis()
    devices = []
    for info in sounddevice.query_devices():
        if info["max_input_channels"] > 0:
            devices.append(
                InputDevice(
                    index=int(info["index"]),
                    name=str(info["name"]),
                    host_api=str(host_apis[info["hostapi"]]["name"]),
                    max_input_channels=int(info["max_input_channels"]),
                    default_sample_rate=float(info["default_samplerate"]),
                )
            )
    return devices


class DeviceSource(Source):
    name = "device"

    def __init__(
        self,
        device: str | int | None = None,
        *,
        channels: int = 1,
        sample_rate: int = 16_000,
        call_id: str | None = None,
        block_s: float = 0.02,
    ) -> None:
        super().__init__()
        if channels <= 0 or sample_rate <= 0 or block_s <= 0:
            raise ValueError("channels, sample_rate and block_s must be positive")
        self.device = device
        self.channels = channels
        self.sample_rate = sample_rate
        self.block_s = block_s
        self.call_id = call_id or ""  # set at start when not configured
        self._stream: sounddevice.InputStream | None = None
        self._sink: Sink | None = None

    def start(self, sink: Sink) -> None:
        if self._stream is not None:
            raise RuntimeError("this DeviceSource is already started")
        info = sounddevice.query_devices(self.device, kind="input")
        if not self.call_id:
            name = re.sub(r"[^A-Za-z0-9._-]+", "-", str(info["name"])).strip("-") or "input"
            started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            self.call_id = f"device-{name}-{started}"
        self._sink = sink
        self._stream = sounddevice.InputStream(
            device=self.device,
            channels=self.channels,
            samplerate=self.sample_rate,
            blocksize=round(self.block_s * self.sample_rate),
            dtype="float32",
            callback=self._callback,
        )
        self._stream.start()
        self.counters.streams_started += self.channels
        log.info(
            "device_capturing",
            call_id=self.call_id,
            device=str(info["name"]),
            channels=self.channels,
            sample_rate=self.sample_rate,
        )

    def stop(self, reason: str = STOPPED) -> None:
        if self._stream is None:
            return
        self._stream.stop()  # returns once the callback has run for the last time
        self._stream.close()
        self._stream = None
        assert self._sink is not None
        for channel in range(self.channels):
            self._deliver(self._sink, StreamEnded(self.call_id, channel, reason))

    def _callback(
        self, indata: np.ndarray, frames: int, time_info: Any, status: sounddevice.CallbackFlags
    ) -> None:
        if status.input_overflow:
            self.counters.lost += 1
        assert self._sink is not None
        for channel in range(self.channels):
            samples = indata[:frames, channel].copy()  # PortAudio reuses its buffer
            self._deliver(self._sink, AudioChunk(self.call_id, channel, samples, self.sample_rate))
