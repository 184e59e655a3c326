"""``dfd frontends`` and ``dfd features``: the DSP stage's front ends, run on a file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dfd.daemon.cli.common import log
from dfd.daemon.settings import Settings

if TYPE_CHECKING:
    from dfd.dsp.frontends import FrontendSpec


@click.command()
def frontends() -> None:
    """List the feature front ends and their default parameters."""
    from dfd.dsp.frontends import frontend_kinds, frontend_spec_class

    for kind in frontend_kinds():
        spec = frontend_spec_class(kind)()
        click.echo(f"{kind:8s} {spec.to_json()}")


@click.command()
@click.argument("audio", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--frontend",
    "-f",
    "kinds",
    multiple=True,
    metavar="KIND",
    help="Front end to run with its default parameters (repeatable; default: every kind).",
)
@click.option(
    "--spec",
    "spec_texts",
    multiple=True,
    metavar="JSON",
    help='Front end with explicit parameters, e.g. \'{"kind": "logmel", "n_mels": 128}\'.',
)
@click.option(
    "--window",
    "window_s",
    type=float,
    default=2.0,
    show_default=True,
    help="Window length in seconds.",
)
@click.option(
    "--hop", "hop_s", type=float, help="Hop in seconds (default [models] hop_s, else 0.5)."
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Windows per batch.",
)
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N (default [models] device).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Save window starts and features to this .npz file.",
)
@click.pass_obj
def features(
    settings: Settings,
    audio: Path,
    kinds: tuple[str, ...],
    spec_texts: tuple[str, ...],
    window_s: float,
    hop_s: float | None,
    batch_size: int,
    device: str | None,
    out: Path | None,
) -> None:
    """Run the DSP stage on AUDIO: decode, resample, window every channel, compute features."""
    import numpy as np

    from dfd.dsp.audio_io import AudioDecodeError, MissingToolError, load_audio
    from dfd.dsp.batcher import FrontendBank
    from dfd.dsp.extract import extract_features
    from dfd.dsp.framer import WindowGeometry

    specs = _parse_specs(kinds, spec_texts)
    try:
        geometry = WindowGeometry(16_000, window_s, hop_s or settings.models.hop_s or 0.5)
    except (ValueError, OverflowError) as error:
        raise click.BadParameter(str(error), param_hint="--window/--hop") from error
    try:
        recording = load_audio(audio, sample_rate=geometry.sample_rate)
        bank = FrontendBank(device or settings.models.device)
    except (AudioDecodeError, MissingToolError, RuntimeError) as error:
        raise click.ClickException(str(error)) from error
    log.info(
        "decoded",
        path=str(audio),
        channels=recording.channels,
        seconds=round(recording.duration_s, 3),
        source_rate=recording.source_sample_rate,
        source_format=recording.source_format,
    )
    started = time.perf_counter()
    channels = extract_features(recording, specs, geometry, bank, batch_size)
    elapsed = time.perf_counter() - started

    click.echo(
        f"{audio}: {recording.channels} channel(s), {recording.duration_s:.2f} s, "
        f"{recording.source_format} at {recording.source_sample_rate} Hz "
        f"-> {recording.sample_rate} Hz"
    )
    click.echo(
        f"windows of {geometry.window_s} s every {geometry.hop_s} s on {bank.device}; "
        f"features in {elapsed * 1000:.0f} ms"
    )
    arrays: dict[str, np.ndarray] = {}
    for channel in channels:
        click.echo(f"channel {channel.channel}: {len(channel.window_starts)} windows")
        arrays[f"channel{channel.channel}/window_starts"] = channel.window_starts
        arrays[f"channel{channel.channel}/valid_samples"] = channel.valid_samples
        for index, (spec, values) in enumerate(channel.features.items()):
            click.echo(
                f"  {spec.kind:8s} {values.shape[1:]!s:16s} "
                f"mean {values.mean():+.3f}  std {values.std():.3f}"
            )
            arrays[f"channel{channel.channel}/features{index}"] = values
    if out is not None:
        arrays["specs"] = np.array([json.dumps([spec.to_dict() for spec in specs])])
        np.savez_compressed(out, **arrays)  # type: ignore[arg-type]
        click.echo(f"saved {out}")


def _parse_specs(kinds: tuple[str, ...], spec_texts: tuple[str, ...]) -> list[FrontendSpec]:
    from dfd.dsp.frontends import (
        FrontendSpec,
        FrontendSpecError,
        frontend_kinds,
        frontend_spec_class,
    )

    specs: list[FrontendSpec] = []
    try:
        if not kinds and not spec_texts:
            kinds = tuple(frontend_kinds())
        specs += [frontend_spec_class(kind)() for kind in kinds]
        for text in spec_texts:
            try:
                specs.append(FrontendSpec.from_json(text))
            except json.JSONDecodeError as error:
                raise FrontendSpecError(f"--spec is not JSON: {error}") from error
    except FrontendSpecError as error:
        raise click.BadParameter(str(error)) from error
    return list(dict.fromkeys(specs))
