"""Settings, in order of precedence: defaults < a TOML file (``--config``) < ``DFD_SECTION__KEY``
environment overrides (``DFD_SERVE__PUB=tcp://127.0.0.1:6000``) < command-line options. A bad
value is refused naming the key and where it was set: the file and line, or the variable.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from dfd.core.layered_config import Resolved, resolve, to_toml
from dfd.core.typed_config import ConfigError
from dfd.daemon.engine.decisions import DecisionPolicy
from dfd.daemon.engine.speech import SpeechGate
from dfd.daemon.logs import LEVELS, LogFormat
from dfd.daemon.service.capture.admission import StreamLimits
from dfd.dsp.framer import WindowGeometry


@dataclasses.dataclass(frozen=True)
class LoggingSettings:
    level: str = "info"
    format: LogFormat = "auto"
    redact_call_ids: bool = False  # log a hash of each call id instead of the id itself

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ConfigError(
                f"logging.level must be one of {', '.join(LEVELS)}, got {self.level!r}"
            )


@dataclasses.dataclass(frozen=True)
class PipelineSettings:
    """How windows are batched and shed (see ``dfd.daemon.engine.pipeline``)."""

    # Small batches: per window, ONNX Runtime on a CPU core is cheapest at batch 1 to 4 (a batch's
    # activations stay in the core's cache: the 8-bit default takes 3.1 ms a window at 4, 3.4 ms
    # at 16), and a small batch holds a worker for a short time, so a window that just missed
    # one waits less (docs/benchmarks.md).
    batch_size: int = 4
    max_batch_delay_s: float = 0.0  # 0: dispatch when a worker is free; batches form under load
    max_queued_windows_per_stream: int = 8
    # All streams together; beyond it the least-established stream (least audio so far) sheds
    # first, so a flood of new streams cannot push out the windows of calls under way.
    max_queued_windows: int = 2000
    # A stream that ends with less audio than this gets no window (a one-packet stream is noise).
    min_stream_s: float = 0.5
    score_silence: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"pipeline.batch_size must be at least 1, got {self.batch_size}")
        if self.max_batch_delay_s < 0:
            raise ConfigError("pipeline.max_batch_delay_s must not be negative")
        if self.max_queued_windows_per_stream < 1 or self.max_queued_windows < 1:
            raise ConfigError(
                "pipeline.max_queued_windows_per_stream and max_queued_windows must be at least 1"
            )
        if not 0.0 <= self.min_stream_s < math.inf:
            raise ConfigError("pipeline.min_stream_s must be at least 0")


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """The detectors: bundle folders (``default`` = the embedded model), how their scores fuse,
    and where they run."""

    bundles: tuple[str, ...] = ("default",)
    weights: tuple[float, ...] | None = None  # one per bundle; equal when absent
    threshold: Literal["eer", "far_1pct"] | float = "eer"  # a card's threshold, or a number
    # The one place for the hop and the device; each bundle carries its own window.
    hop_s: float | None = None  # None: each bundle's own hop
    device: str = "auto"  # front ends and ONNX Runtime: auto | cpu | cuda | cuda:N
    workers: int = 0  # detector worker processes; 0: one per CPU core (one when on CUDA)
    threads_per_worker: int = 1
    # A worker that holds a batch this long is killed and restarted, the batch sent again once.
    # A batch of 16 windows takes about 0.05 s of one core; 10 s spares an overloaded host, and
    # two tries (20 s) end before the systemd watchdog (30 s) would restart the whole daemon.
    batch_timeout_s: float = 10.0
    # ed25519 public key files (PEM); when set, every bundle must be signed by one of them
    trusted_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.bundles:
            raise ConfigError("models.bundles must name at least one bundle")
        if self.hop_s is not None:
            try:  # a whole number of samples at the pipeline's rate (16 kHz)
                WindowGeometry(hop_s=self.hop_s)
            except (ValueError, OverflowError) as error:
                raise ConfigError(f"models.hop_s: {error}") from error
        if self.device != "auto" and self.device.split(":")[0] not in ("cpu", "cuda"):
            raise ConfigError(
                f"models.device must be auto, cpu, cuda or cuda:N, got {self.device!r}"
            )
        if self.weights is not None and len(self.weights) != len(self.bundles):
            raise ConfigError("models.weights must give one weight per bundle")
        if self.workers < 0 or self.threads_per_worker < 1:
            raise ConfigError("models.workers must be >= 0 and models.threads_per_worker >= 1")
        if not self.batch_timeout_s > 0:  # NaN too
            raise ConfigError(
                f"models.batch_timeout_s must be positive, got {self.batch_timeout_s}"
            )


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def endpoint_host(endpoint: str) -> str | None:
    """The host of ``tcp://HOST:PORT`` or ``HOST:PORT``; None for ipc:// and inproc://."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return None
    address = endpoint.removeprefix("tcp://").removeprefix("udp://")
    host, _, _ = address.rpartition(":")
    return host


def check_local_endpoint(endpoint: str, allow_remote: bool, where: str) -> None:
    """``ConfigError`` for an endpoint that binds beyond localhost, unless ``allow_remote``."""
    host = endpoint_host(endpoint)
    if not allow_remote and host is not None and host not in LOCAL_HOSTS:
        raise ConfigError(
            f"{where}: {endpoint} binds to {host or 'every interface'}, not localhost; "
            f"set serve.allow_remote_endpoints = true to allow it"
        )


def parse_rtp_payload(spec: str) -> tuple[int, tuple[str, int, int]]:
    """``"97=L16/16000"`` -> ``(97, ("L16", 16000, 1))``; ``ConfigError`` naming the entry when
    it is not ``PT=ENCODING/RATE[/CHANNELS]`` with a dynamic or known type and encoding."""
    from dfd.daemon.service.capture.rtp import ENCODINGS

    payload_type, equals, rtpmap = spec.partition("=")
    parts = rtpmap.split("/")
    numbers = [payload_type.strip(), *[part.strip() for part in parts[1:]]]
    if (
        not equals
        or len(parts) not in (2, 3)
        or not all(n.isascii() and n.isdigit() for n in numbers)
    ):
        raise ConfigError(
            f"serve.rtp_payloads: {spec!r} is not PT=ENCODING/RATE[/CHANNELS], e.g. 97=L16/16000"
        )
    encoding = parts[0].strip()
    known = {name.upper(): name for name in ENCODINGS}
    if encoding.upper() not in known:
        raise ConfigError(
            f"serve.rtp_payloads: {spec!r}: encoding {encoding!r} is not one of "
            f"{', '.join(sorted(ENCODINGS))}"
        )
    rate, channels = int(numbers[1]), int(numbers[2]) if len(numbers) == 3 else 1
    if not 0 <= int(payload_type) <= 127 or rate <= 0 or not 1 <= channels <= 8:
        raise ConfigError(
            f"serve.rtp_payloads: {spec!r}: need a payload type in 0-127, a positive rate and "
            "1 to 8 channels"
        )
    return int(payload_type), (known[encoding.upper()], rate, channels)


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    """``dfd serve``: where audio comes in and events go out."""

    pub: str = "tcp://127.0.0.1:5555"  # the event bus (ZeroMQ PUB)
    rtp: tuple[str, ...] = ()  # HOST:PORT to receive RTP on
    # Dynamic RTP payload types, as in an SDP rtpmap: "PT=ENCODING/RATE[/CHANNELS]", e.g.
    # "97=L16/16000" (what ffmpeg -c:a pcm_s16be -ar 16000 -f rtp sends). Encodings: PCMU, PCMA,
    # L16, CN, telephone-event. The static types 0, 8 and 13 are always known; the static L16
    # 44.1 kHz types only when mapped here ("10=L16/44100/2", "11=L16/44100").
    rtp_payloads: tuple[str, ...] = ()
    rtp_rtcp: bool = True  # also read RTCP (BYE) on each RTP port + 1, besides rtcp-mux
    pcm: tuple[str, ...] = ()  # ZeroMQ PULL endpoints for pushed PCM
    pcm_rate: int = 16_000  # sample rate of the s16le PCM pushed to the ingest endpoints
    idle_timeout_s: float = 5.0  # an RTP or PCM stream silent this long has ended
    devices: tuple[str, ...] = ()  # sound input devices (sounddevice names or indices)
    device_channels: int = 1
    wav: tuple[str, ...] = ()  # files played at real-time pace (demos, load tests)
    state_directory: str | None = (
        None  # alert journal; None: $STATE_DIRECTORY or ~/.local/state/dfd
    )
    status_interval_s: float = 5.0
    journal_fsync_interval_s: float = 1.0
    intake_queue: int = (
        20_000  # capture events waiting for the pipeline; beyond, counted and dropped
    )
    # Stream limits, per capture source (RTP: per sender host; PCM ingest: per endpoint). New
    # streams beyond them are refused and their packets counted (refused) and dropped.
    max_streams: int = 1000  # streams open at once
    max_streams_per_sender: int = 200
    new_streams_per_s: float = 20.0  # new streams a sender may open per second, sustained ...
    new_streams_burst: int = 50  # ... and at once
    publish_scores: bool = False  # per-window scores on the `score` topic
    allow_remote_endpoints: bool = False  # bind to other hosts than localhost
    metrics: str = "127.0.0.1:9464"  # Prometheus endpoint, HOST:PORT; "" turns it off
    # CURVE (service.keys): the daemon's secret certificate makes the bus and the PCM ingest
    # encrypted, authenticating servers; None or "": plain ZeroMQ
    curve_secret_key: str | None = None
    # a folder of the public certificates (*.key) of the clients let in; None or "": any client
    # that knows the daemon's public key
    curve_clients: str | None = None

    def __post_init__(self) -> None:
        if self.curve_clients and not self.curve_secret_key:
            raise ConfigError(
                "serve.curve_clients needs serve.curve_secret_key: without the daemon's key "
                "CURVE is off and the client list would not be checked"
            )
        if self.status_interval_s <= 0 or self.journal_fsync_interval_s < 0:
            raise ConfigError("serve.status_interval_s must be > 0, journal_fsync_interval_s >= 0")
        if self.pcm_rate < 1 or self.idle_timeout_s <= 0:
            raise ConfigError("serve.pcm_rate and serve.idle_timeout_s must be positive")
        if self.intake_queue < 1:
            raise ConfigError("serve.intake_queue must be at least 1")
        if min(self.max_streams, self.max_streams_per_sender, self.new_streams_burst) < 1 or not (
            0 < self.new_streams_per_s < math.inf
        ):
            raise ConfigError(
                "serve.max_streams, max_streams_per_sender, new_streams_per_s and "
                "new_streams_burst must be positive"
            )
        if self.metrics:
            _, colon, port = self.metrics.rpartition(":")
            if not colon or not (port.isascii() and port.isdigit()) or int(port) > 65_535:
                raise ConfigError(
                    f"serve.metrics must be HOST:PORT (or empty to turn the endpoint off), "
                    f"got {self.metrics!r}"
                )
        for spec in self.rtp_payloads:
            parse_rtp_payload(spec)
        endpoints = [self.pub, *self.rtp, *self.pcm] + ([self.metrics] if self.metrics else [])
        for endpoint in endpoints:
            check_local_endpoint(endpoint, self.allow_remote_endpoints, "serve")

    @property
    def stream_limits(self) -> StreamLimits:
        return StreamLimits(
            self.max_streams,
            self.max_streams_per_sender,
            self.new_streams_per_s,
            self.new_streams_burst,
        )

    def journal_path(self) -> Path:
        folder = self.state_directory or os.environ.get("STATE_DIRECTORY", "").split(":")[0]
        base = Path(folder) if folder else Path.home() / ".local" / "state" / "dfd"
        return base / "alerts.jsonl"


@dataclasses.dataclass(frozen=True)
class Settings:
    logging: LoggingSettings = dataclasses.field(default_factory=LoggingSettings)
    models: ModelSettings = dataclasses.field(default_factory=ModelSettings)
    pipeline: PipelineSettings = dataclasses.field(default_factory=PipelineSettings)
    decision: DecisionPolicy = dataclasses.field(default_factory=DecisionPolicy)
    speech: SpeechGate = dataclasses.field(default_factory=SpeechGate)
    serve: ServeSettings = dataclasses.field(default_factory=ServeSettings)


ENVIRONMENT_PREFIX = "DFD_"  # DFD_SECTION__KEY; names without "__" (DFD_CONFIG) are not settings


def resolve_settings(
    path: Path | None, environ: Mapping[str, str] | None = None
) -> Resolved[Settings]:
    """The settings and where each value that is not a default came from. ``environ``:
    ``os.environ`` when None; pass ``{}`` for the file alone."""
    environ = os.environ if environ is None else environ
    return resolve(Settings, path, environ, ENVIRONMENT_PREFIX)


def load_settings(path: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults < the TOML file ``path`` < ``DFD_SECTION__KEY`` variables in ``environ``."""
    return resolve_settings(path, environ).value


def settings_toml(settings: Settings, origins: Mapping[str, str] | None = None) -> str:
    """``settings`` as a TOML file that loads back to them (``dfd config show``)."""
    return to_toml(settings, origins)
