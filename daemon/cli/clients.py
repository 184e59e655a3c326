"""``dfd subscribe`` and ``dfd status``: clients of a running daemon."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dfd.daemon.settings import Settings


@click.command()
@click.option(
    "--endpoint",
    default=None,
    help="The daemon's event bus (default [serve] pub, tcp://127.0.0.1:5555).",
)
@click.option(
    "--topic",
    "topics",
    multiple=True,
    help="Topic prefix to receive (repeatable): alert, call, score, status; default all.",
)
@click.option("--json", "as_json", is_flag=True, help="Print each event as one JSON line.")
@click.option("--count", type=click.IntRange(min=1), help="Exit after this many events.")
@click.option("--timeout", type=click.FloatRange(min=0), help="Exit after this long without one.")
@click.option(
    "--server-key",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="The daemon's public CURVE certificate (NAME.key), when its bus uses CURVE.",
)
@click.option(
    "--client-key",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="This subscriber's secret certificate (NAME.key_secret), when the daemon lets in listed "
    "clients only; default: a throw-away key pair.",
)
@click.pass_obj
def subscribe(
    settings: Settings,
    endpoint: str | None,
    topics: tuple[str, ...],
    as_json: bool,
    count: int | None,
    timeout: float | None,
    server_key: Path | None,
    client_key: Path | None,
) -> None:
    """Print the daemon's events as they come (Ctrl-C to stop)."""
    from dfd.daemon.clients.subscriber import SequenceTracker, format_event, subscribe
    from dfd.daemon.service.keys import CurveClient, KeyFileError

    curve = None
    if client_key is not None and server_key is None:
        raise click.UsageError("--client-key needs --server-key (the daemon's public key)")
    if server_key is not None:
        try:
            curve = CurveClient.from_files(server_key, client_key)
        except KeyFileError as error:
            raise click.ClickException(str(error)) from error
    tracker = SequenceTracker()
    events = subscribe(
        endpoint or settings.serve.pub,
        topics or ("",),
        timeout_s=timeout,
        max_events=count,
        curve=curve,
    )
    try:
        for event in events:
            # seq counts every topic, so gaps are only meaningful when receiving them all
            gap = tracker.observe(event) if not topics else None
            if gap is not None:
                click.echo(f"# {gap.describe()}", err=True)
            click.echo(json.dumps(event) if as_json else format_event(event))
    except KeyboardInterrupt:
        pass


@click.command()
@click.option(
    "--metrics",
    "address",
    metavar="HOST:PORT",
    default=None,
    help="The daemon's metrics endpoint (default [serve] metrics, 127.0.0.1:9464).",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0.1), default=3.0, show_default=True, help="Seconds."
)
@click.pass_obj
def status(settings: Settings, address: str | None, timeout: float) -> None:
    """Summarise a running daemon from its metrics endpoint (exit 1 when it does not answer)."""
    from dfd.daemon.clients.status import StatusError, fetch_metrics, summarize

    address = address or settings.serve.metrics
    if not address:
        raise click.ClickException(
            "the metrics endpoint is off ([serve] metrics is empty); pass --metrics HOST:PORT"
        )
    try:
        lines = summarize(fetch_metrics(address, timeout), address)
    except StatusError as error:
        raise click.ClickException(str(error)) from error
    for line in lines:
        click.echo(line)
