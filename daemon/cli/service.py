"""``dfd serve``: the live service."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from dfd.core.typed_config import ConfigError
from dfd.daemon.cli.common import CONFIG_PATH, UnusableSettings
from dfd.daemon.settings import Settings


@click.command()
@click.option("--rtp", multiple=True, metavar="HOST:PORT", help="Receive RTP here (repeatable).")
@click.option("--pcm", multiple=True, metavar="ENDPOINT", help="ZeroMQ PULL for pushed PCM.")
@click.option("--device", "devices", multiple=True, metavar="NAME", help="Sound input device.")
@click.option("--wav", multiple=True, metavar="FILE", help="Play a file in at real-time pace.")
@click.option("--pub", metavar="ENDPOINT", help="Event bus (default tcp://127.0.0.1:5555).")
@click.option("--model", "bundles", multiple=True, metavar="BUNDLE", help="Model bundle(s).")
@click.pass_obj
def serve(
    settings: Settings,
    rtp: tuple[str, ...],
    pcm: tuple[str, ...],
    devices: tuple[str, ...],
    wav: tuple[str, ...],
    pub: str | None,
    bundles: tuple[str, ...],
) -> None:
    """Run the screening daemon: capture, score, publish alerts (SIGTERM stops, SIGHUP reloads)."""
    from dfd.daemon.service.bus import BusError, JournalError
    from dfd.daemon.service.serve import Daemon, build_sources
    from dfd.detectors.bundle import BundleError

    overrides: dict[str, Any] = {
        "rtp": rtp or None,
        "pcm": pcm or None,
        "devices": devices or None,
        "wav": wav or None,
        "pub": pub,
    }
    try:
        serve_settings = dataclasses.replace(
            settings.serve, **{k: v for k, v in overrides.items() if v is not None}
        )
        settings = dataclasses.replace(settings, serve=serve_settings)
        daemon = Daemon(
            settings,
            build_sources(settings),
            list(bundles) or None,
            settings_path=click.get_current_context().meta.get(CONFIG_PATH),
        )
    except (ConfigError, BundleError) as error:  # a CURVE key file, a bundle that cannot be used
        raise UnusableSettings(str(error)) from error  # exit 2: no restart loop under systemd
    except (BusError, JournalError, OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    daemon.install_signal_handlers()
    daemon.run()
