"""``dfd serve``: the daemon. Live sources feed the pipeline; events go out on the bus.

Threads and processes:

- each capture source runs its own thread(s) and hands events to ``intake``, a bounded queue
  that never blocks them (``service.intake``; when it is full, the event is counted and
  dropped);
- the main thread runs the loop: take capture events, feed the ``Pipeline``, dispatch batches to
  the detector worker processes, apply their scores, publish events, and every
  ``status_interval_s`` a ``status`` event;
- the detector workers (``WorkerPool``) are processes with their own ONNX Runtime sessions.

Signals: SIGTERM and SIGINT stop the sources, let every open call finish (each gets its
``call.ended``) and exit 0; SIGHUP loads the models again and swaps them in between two
batches, or, when the new bundles fail to load, keeps the old ones and logs why.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from dfd.core.typed_config import ConfigError
from dfd.daemon.engine.events import DAEMON_STOPPING, CaptureEvent, EventFanout
from dfd.daemon.engine.models import ModelSet
from dfd.daemon.engine.pipeline import Pipeline
from dfd.daemon.engine.scoring import WorkerPool
from dfd.daemon.service.bus import AlertJournal, EventBus
from dfd.daemon.service.capture.base import Source
from dfd.daemon.service.intake import IntakeQueue
from dfd.daemon.service.keys import load_curve_server
from dfd.daemon.service.metrics import DaemonMetrics, serve_metrics
from dfd.daemon.service.notify import Notifier, PipelineWatchdog
from dfd.daemon.settings import Settings, load_settings, parse_rtp_payload

log = structlog.get_logger(__name__)

IDLE_WAIT_S = 0.005  # the loop's longest sleep when nothing is happening
PUMP_EVERY_S = 0.001  # while capture events keep coming, pump about this often (see step)


@dataclasses.dataclass
class DaemonCounters:
    intake_dropped: int = 0
    reloads: int = 0
    reload_failures: int = 0


def load_models(settings: Settings, bundles: list[str] | None = None) -> ModelSet:
    return ModelSet.from_settings(settings.models, bundles or ())


def start_pool(settings: Settings, models: ModelSet) -> WorkerPool:
    from dfd.detectors.runtime import CUDA, select_providers

    config = settings.models
    # On the GPU when the workers' sessions will be: "auto" asks what the sessions ask
    on_gpu = config.device.startswith("cuda") or (
        config.device == "auto" and CUDA in select_providers("auto")
    )
    workers = config.workers or (1 if on_gpu else 0)
    return WorkerPool(
        models.paths,
        workers=workers,
        threads=config.threads_per_worker,
        device=config.device,
        batch_timeout_s=config.batch_timeout_s,
        card_sha256s=models.card_sha256s,
    )


class Daemon:
    def __init__(
        self,
        settings: Settings,
        sources: list[Source],
        bundles: list[str] | None = None,
        on_loop: Callable[[Daemon], None] | None = None,
        notifier: Notifier | None = None,
        settings_path: Path | None = None,
    ) -> None:
        curve = load_curve_server(settings.serve)  # before the slow start: a bad key fails at once
        import torch

        torch.set_num_threads(1)  # the pipeline thread; detectors run in their own processes
        self.settings = settings
        # Read again on SIGHUP for [models] and [decision] (with DFD_SECTION__KEY variables).
        self.settings_path = settings_path
        self.sources = sources
        self._bundles = bundles
        self._on_loop = on_loop
        # sd_notify: a no-op unless systemd (or a test) set $NOTIFY_SOCKET
        self.notifier = notifier or Notifier.from_environment()
        self.watchdog = PipelineWatchdog(self.notifier)
        self.counters = DaemonCounters()
        self.intake: IntakeQueue[tuple[str, CaptureEvent, float]] = IntakeQueue(
            settings.serve.intake_queue
        )
        self._last_pump = 0.0
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.started_at = time.monotonic()
        self.models = load_models(settings, bundles)
        self.pool = start_pool(settings, self.models)
        serve = settings.serve
        try:
            journal = AlertJournal(serve.journal_path(), serve.journal_fsync_interval_s)
            self.bus = EventBus(
                serve.pub, journal, publish_scores=serve.publish_scores, curve=curve
            )
        except BaseException:
            self.pool.close()
            raise
        self.metrics = DaemonMetrics(self, settings.pipeline.batch_size)
        self.pipeline = self._pipeline(self.models, self.pool)
        self._last_status = time.monotonic()
        self._windows_at_status = 0
        self._journal_errors_reported = 0
        self._shed_at_status = 0  # windows shed or dropped up to the last status
        self.metrics_server = serve_metrics(serve.metrics, self.metrics.registry)

    def _pipeline(self, models: ModelSet, pool: WorkerPool) -> Pipeline:
        return Pipeline(
            models,
            pool,
            EventFanout([self.metrics, self.bus]),  # metrics observe, the bus publishes
            self.settings.pipeline,
            speech=self.settings.speech,
            decision=self.settings.decision,
            frontend_device=self.settings.models.device,
            one_window_per_stream=True,  # a lost batch costs each call at most one window
        )

    # -- control ----------------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        self._stop.set()

    def request_reload(self, *_: Any) -> None:
        self._reload.set()

    def install_signal_handlers(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            self.request_stop()

        def reload(signum: int, frame: FrameType | None) -> None:
            self.request_reload()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        """Start the sources and run until asked to stop (or until every source with a natural
        end, such as a WAV file, has finished and its calls have ended)."""
        for source in self.sources:
            source.start(self._sink_for(source))
        if not self.sources:
            log.warning(
                "no capture source",
                hint="nothing will be scored: set [serve] rtp, pcm, devices or wav "
                "(or --rtp, --pcm, --device, --wav)",
            )
        log.info(
            "serving",
            sources=[s.name for s in self.sources],
            pub=self.bus.endpoint,
            journal=str(self.settings.serve.journal_path()),
            models=self.models.identity,
            threshold=round(self.models.threshold, 4),
        )
        # models loaded, workers warmed up, every source listening
        self.notifier.ready(f"serving {self.models.identity['name']}, 0 calls")
        try:
            while not self._stop.is_set():
                self.step()
                if self._sources_done():
                    log.info("every source finished")
                    break
        finally:
            self.shutdown()

    def _sources_done(self) -> bool:
        return (
            bool(self.sources)
            and all(s.finished for s in self.sources)
            and self.intake.empty()
            and self.pipeline.active_streams == 0
            and self.pipeline.idle
        )

    def step(self) -> None:
        """One turn of the loop: intake, scoring, status, reload. While capture events keep
        coming, the loop takes them as they come but pumps (dispatches batches, polls the
        workers) at most every ``PUMP_EVERY_S``: polling the worker pipes costs more than taking
        a packet, and turns come every packet or two under load. It also takes events for at
        most that long before it pumps: sources deliver packets in bursts (every call's 20 ms
        packet at once), and a burst of a few hundred takes milliseconds to cut into windows,
        while a worker that finished its batch would wait idle for the next. When no event came,
        it pumps and waits on the workers up to ``IDLE_WAIT_S``."""
        took = self._take_intake(until=self._last_pump + PUMP_EVERY_S)
        now = time.monotonic()
        if not took or now - self._last_pump >= PUMP_EVERY_S:
            self.pipeline.pump(timeout=0.0 if took else IDLE_WAIT_S)
            self._last_pump = now = time.monotonic()
        if now - self._last_status >= self.settings.serve.status_interval_s:
            status = self.publish_status(now)
            self.notifier.status(
                f"{'stalled, ' if self.watchdog.stalled else ''}{status['calls']} calls, "
                f"{status['windows_per_second']} windows/s, "
                f"{status['dropped_windows']} windows dropped"
            )
        if self._reload.is_set():
            self._reload.clear()
            self.reload()
        if self._on_loop is not None:
            self._on_loop(self)
        # Pinged from here, so only a loop that turns (and detectors that answer) keeps it fed.
        counters = self.pipeline.counters
        self.watchdog.tick(
            waiting=self.pipeline.queued_windows + self.pipeline.scorer.in_flight,
            finished=counters.windows_scored + counters.windows_lost,
        )

    def _sink_for(self, source: Source) -> Callable[[CaptureEvent], None]:
        kind = source.name  # rtp, pcm, device, wav: the event schema's `source`
        intake, counters = self.intake, self.counters

        def sink(event: CaptureEvent) -> None:
            try:
                intake.put_nowait((kind, event, time.monotonic()))
            except queue.Full:
                counters.intake_dropped += 1

        return sink

    def _take_intake(self, until: float = math.inf, check_every: int = 8) -> int:
        """Take capture events until the intake is empty or the clock passes ``until`` (read
        every ``check_every`` events, so at least that many are taken when there are)."""
        taken = 0
        while True:
            try:
                name, event, arrived = self.intake.get_nowait()
            except queue.Empty:
                break
            self.pipeline.accept(event, name, arrived)
            taken += 1
            if taken % check_every == 0 and time.monotonic() >= until:
                break
        return taken

    def publish_status(self, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        counters = self.pipeline.counters
        elapsed = max(now - self._last_status, 1e-9)
        rate = (counters.windows - self._windows_at_status) / elapsed
        self._last_status, self._windows_at_status = now, counters.windows
        dropped = counters.windows_shed + counters.windows_lost + self.counters.intake_dropped
        status = {
            "call_id": None,
            "channel": None,
            "start": None,
            "end": None,
            "score": None,
            "threshold": None,  # a status is about the daemon, not one model's decisions
            "model": None,
            "calls": self.pipeline.active_streams,
            "windows_per_second": round(rate, 2),
            "dropped_windows": dropped,
            "overload": self._overloaded(),
            "queue_depth": self.pipeline.queued_windows + self.intake.qsize(),
            "uptime": round(now - self.started_at, 1),
            "journal_errors": self.bus.journal_errors,
        }
        event = self.bus.publish("status", status)
        log.info(
            "status",
            calls=status["calls"],
            windows_per_second=status["windows_per_second"],
            dropped_windows=dropped,
        )
        if self.bus.journal_errors > self._journal_errors_reported:  # once per new failure spell
            self._journal_errors_reported = self.bus.journal_errors
            self.notifier.ready(
                f"alert journal failing: {self.bus.journal_errors} events not on disk"
            )
        return event

    def _overloaded(self) -> bool:
        """Work was dropped since the last status, or the window queue is over half full."""
        shed = self.pipeline.counters.windows_shed + self.counters.intake_dropped
        overloaded = shed > self._shed_at_status
        self._shed_at_status = shed
        deep = self.pipeline.queued_windows > self.settings.pipeline.max_queued_windows // 2
        return overloaded or deep

    def reload(self) -> bool:
        """Read the settings file again for ``[models]`` and ``[decision]``, load the models
        again and swap them in; on any failure keep the running ones."""
        log.info("reloading models")
        self.notifier.reloading("reloading models")
        try:
            settings = self._reloaded_settings()
            models = load_models(settings, self._bundles)
            if models.geometry.window_samples != self.models.geometry.window_samples:
                raise ValueError(
                    "the new models take a different window length; restart the daemon to "
                    "change it (open calls are framed for the old one)"
                )
            decision = settings.decision.with_raise_at(models.raise_at)  # checked before the swap
            pool = start_pool(settings, models)
        except Exception as error:  # noqa: BLE001 - any failure keeps the old models serving
            self.counters.reload_failures += 1
            log.error("reload failed; the previous models keep serving", error=str(error))
            self.notifier.ready("reload failed; the previous models keep serving")
            return False
        while self.pipeline.scorer.in_flight:  # let the old workers finish their batches
            self.pipeline.pump(timeout=IDLE_WAIT_S)
        old_pool = self.pool
        self.metrics.collector.retire_pool(old_pool)  # before the swap: its restarts stay counted
        self.pipeline.swap_models(models, pool, settings.decision)
        self.models, self.pool, self.settings = models, pool, settings
        old_pool.close()
        self.counters.reloads += 1
        log.info(
            "models reloaded",
            models=models.identity,
            threshold=round(models.threshold, 4),
            rule=decision.rule,
            raise_at=decision.raise_at,
        )
        self.notifier.ready(f"serving {models.identity['name']} (reloaded)")
        return True

    def _reloaded_settings(self) -> Settings:
        """The running settings with ``[models]`` and ``[decision]`` read again from the file;
        a change anywhere else is logged as needing a restart."""
        if self.settings_path is None:
            return self.settings
        fresh = load_settings(self.settings_path)
        kept = [
            section.name
            for section in dataclasses.fields(Settings)
            if section.name not in ("models", "decision", "serve", "logging")
            and getattr(fresh, section.name) != getattr(self.settings, section.name)
        ]
        if kept:
            log.warning("settings changed that only a restart applies", sections=kept)
        return dataclasses.replace(self.settings, models=fresh.models, decision=fresh.decision)

    def shutdown(self) -> None:
        log.info("stopping")
        self.notifier.stopping("stopping: finishing open calls")
        for source in self.sources:
            source.stop(DAEMON_STOPPING)
        self._take_intake()
        self.pipeline.end_all(DAEMON_STOPPING)
        self.pipeline.drain()
        self.publish_status()
        self.bus.close()
        self.pool.close()
        if self.metrics_server is not None:
            self.metrics_server.close()
        self.notifier.close()
        log.info("stopped", **dataclasses.asdict(self.pipeline.counters))


def build_sources(settings: Settings) -> list[Source]:
    """The capture sources named in ``[serve]`` (and the command line)."""
    serve = settings.serve
    sources: list[Source] = []
    if serve.rtp:
        from dfd.daemon.service.capture.rtp import RtpSource

        payloads = dict(parse_rtp_payload(spec) for spec in serve.rtp_payloads)
        for address in serve.rtp:
            host, _, port = address.rpartition(":")
            rtp_port = int(port)
            rtcp_port = (rtp_port + 1 if rtp_port else 0) if serve.rtp_rtcp else None
            sources.append(
                RtpSource(
                    host=host or "127.0.0.1",
                    port=rtp_port,
                    idle_timeout_s=serve.idle_timeout_s,
                    payload_formats=payloads,
                    rtcp_port=rtcp_port,
                    limits=serve.stream_limits,
                )
            )
    if serve.pcm:
        from dfd.daemon.service.capture.pcm_ingest import PcmIngestSource

        curve = load_curve_server(serve)
        sources += [
            PcmIngestSource(
                endpoint,
                sample_rate=serve.pcm_rate,
                idle_timeout_s=serve.idle_timeout_s,
                curve=curve,
                limits=serve.stream_limits,
            )
            for endpoint in serve.pcm
        ]
    if serve.devices:
        from dfd.daemon.service.capture.devices import DeviceSource

        for device in serve.devices:
            name: str | int = int(device) if device.isdigit() else device
            _check_input_device(name)
            sources.append(DeviceSource(name, channels=serve.device_channels))
    if serve.wav:
        from dfd.daemon.service.capture.wavfile import WavSource

        sources.append(WavSource(list(serve.wav), realtime=True))
    return sources


def _check_input_device(name: str | int) -> None:
    """Refuse, as unusable settings, an input device that PortAudio does not have."""
    import sounddevice

    try:
        sounddevice.query_devices(name, kind="input")
    except (ValueError, sounddevice.PortAudioError) as error:
        raise ConfigError(
            f"[serve] devices: no input device {name!r} ({error}); "
            "`python -m sounddevice` lists the devices"
        ) from error
