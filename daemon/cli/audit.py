"""``dfd replay``: audit recordings through the engine."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dfd.daemon.logs import configure_logging
from dfd.daemon.settings import Settings


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--model",
    "bundles",
    multiple=True,
    metavar="BUNDLE",
    help="Model bundle folder (repeat to fuse several); default: [models] bundles, or the "
    "embedded default model.",
)
@click.option(
    "--window",
    "window_s",
    type=float,
    help="Window length in seconds: the model's own (checked; others are refused).",
)
@click.option("--hop", "hop_s", type=float, help="Hop between windows in seconds (the model's).")
@click.option(
    "--threshold", help="eer, far_1pct (the model card's) or a number; default [models] threshold."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file per line.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write waveform and score over time as PNG (one file: this name; several: NAME-N.png).",
)
@click.option("--publish", metavar="ENDPOINT", help="Also publish the events on a ZeroMQ endpoint.")
@click.option("--device", help="auto, cpu, cuda or cuda:N (default [models] device).")
@click.pass_obj
def replay(
    settings: Settings,
    paths: tuple[Path, ...],
    bundles: tuple[str, ...],
    window_s: float | None,
    hop_s: float | None,
    threshold: str | None,
    as_json: bool,
    plot: Path | None,
    publish: str | None,
    device: str | None,
) -> None:
    """Audit recordings: score every window, print a timeline and a verdict per file.

    Exit status: 0 when every file was judged and none raised an alert, 1 when one did, 3 when
    none did but a file was inconclusive (too little speech to judge), 2 on an error.
    """
    from dfd.daemon.audit.replay import run_replay

    if settings.logging.level == "info":  # the report says it all; keep stderr for problems
        configure_logging(
            "warning",
            settings.logging.format,
            redact_call_ids=settings.logging.redact_call_ids,
        )
    code = run_replay(
        settings,
        list(paths),
        bundles=list(bundles),
        window_s=window_s,
        hop_s=hop_s,
        threshold=_threshold(threshold),
        as_json=as_json,
        plot=plot,
        publish=publish,
        device=device,
    )
    sys.exit(code)


def _threshold(value: str | None) -> str | float | None:
    if value is None or value in ("eer", "far_1pct"):
        return value
    try:
        return float(value)
    except ValueError as error:
        raise click.BadParameter("eer, far_1pct or a number in [0, 1]") from error
