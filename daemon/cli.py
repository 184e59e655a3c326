"""The ``dfd`` command line.

Heavy imports (torch, torchaudio) happen inside the commands that need them, so ``dfd --help``,
``--version`` and shell completion answer at once.

Shell completion uses click's own mechanism, e.g. for bash:
``eval "$(_DFD_COMPLETE=bash_source dfd)"`` (``zsh_source`` and ``fish_source`` likewise).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import structlog

from dfd.core.typed_config import ConfigError
from dfd.daemon.logs import LEVELS, configure_logging
from dfd.daemon.settings import Settings, load_settings, resolve_settings, settings_toml

if TYPE_CHECKING:
    from dfd.detectors.bundle import ModelCard, OperatingPoint
    from dfd.dsp.frontends import FrontendSpec

log = structlog.get_logger("dfd.cli")

# ctx.meta keys: the settings error `dfd config` defers, and where each setting was set
CONFIG_ERROR = "dfd.config_error"
CONFIG_ORIGINS = "dfd.config_origins"
CONFIG_PATH = "dfd.config_path"  # the settings file, read again when dfd serve gets SIGHUP


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dfd", prog_name="dfd")
@click.option(
    "--log-level",
    type=click.Choice(LEVELS),
    default=None,
    help="Log verbosity (overrides [logging] level in the config file; default info).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="DFD_CONFIG",
    help="TOML settings file (also read from $DFD_CONFIG). DFD_SECTION__KEY=VALUE variables "
    "override its values, command options override both.",
)
@click.pass_context
def main(ctx: click.Context, log_level: str | None, config_path: Path | None) -> None:
    """dfd: deepfake-voice call screening.

    Scores calls and recordings, window by window, for synthetic speech.
    """
    origins: dict[str, str] = {}
    try:
        resolved = resolve_settings(config_path)
        settings, origins = resolved.value, dict(resolved.origins)
    except ConfigError as error:
        if ctx.invoked_subcommand != "config":
            raise _settings_error(error) from error
        ctx.meta[CONFIG_ERROR] = error  # `dfd config check FILE` needs no good $DFD_CONFIG
        settings = Settings()
    if log_level is not None:
        settings = dataclasses.replace(
            settings, logging=dataclasses.replace(settings.logging, level=log_level)
        )
        origins["logging.level"] = "--log-level"
    ctx.meta[CONFIG_ORIGINS] = origins
    ctx.meta[CONFIG_PATH] = config_path
    configure_logging(
        settings.logging.level,
        settings.logging.format,
        redact_call_ids=settings.logging.redact_call_ids,
    )
    ctx.obj = settings


def _settings_error(error: ConfigError) -> click.UsageError:
    if str(error).startswith("$"):  # a DFD_SECTION__KEY variable
        return click.UsageError(str(error))
    return click.BadParameter(str(error), param_hint="--config")


@main.group("config")
def config_group() -> None:
    """The effective configuration; checking a configuration file."""


@config_group.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the effective configuration as TOML: defaults < the --config file < DFD_SECTION__KEY
    environment variables < command-line options. A value that is not a default is followed by
    a comment saying where it was set."""
    error = ctx.meta.get(CONFIG_ERROR)
    if error is not None:
        raise _settings_error(error)
    click.echo(settings_toml(ctx.obj, ctx.meta[CONFIG_ORIGINS]), nl=False)


@config_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def config_check(file: Path) -> None:
    """Validate the settings file FILE on its own (DFD_* variables are not applied).

    Exit status 0 and "FILE: ok" when it is valid; 1 and one line per problem, each naming the
    key and its line, when it is not.
    """
    from dfd.core.layered_config import SettingsError

    try:
        load_settings(file, environ={})
    except SettingsError as error:
        if len(error.problems) == 1:
            raise click.ClickException(error.problems[0]) from error
        for problem in error.problems:
            click.echo(f"Error: {problem}", err=True)
        raise click.ClickException(f"{file}: {len(error.problems)} problems") from error
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{file}: ok")


@main.command()
def frontends() -> None:
    """List the feature front ends and their default parameters."""
    from dfd.dsp.frontends import frontend_kinds, frontend_spec_class

    for kind in frontend_kinds():
        spec = frontend_spec_class(kind)()
        click.echo(f"{kind:8s} {spec.to_json()}")


@main.command()
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
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N (default from settings).")
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
    device: str | None,
    out: Path | None,
) -> None:
    """Run the DSP stage on AUDIO: decode, resample, window every channel, compute features."""
    import numpy as np

    from dfd.dsp.audio_io import AudioDecodeError, MissingToolError, load_audio
    from dfd.dsp.batcher import FrontendBank
    from dfd.dsp.extract import extract_features

    specs = _parse_specs(kinds, spec_texts)
    geometry = settings.dsp.geometry()
    try:
        recording = load_audio(audio, sample_rate=geometry.sample_rate)
        bank = FrontendBank(device or settings.dsp.device)
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
    channels = extract_features(recording, specs, geometry, bank, settings.dsp.batch_size)
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


@main.group()
def corpus() -> None:
    """Build the open telephony deepfake corpus from packaged speech."""


@corpus.command("build")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to create (protocols/, audio/, calls/, manifest.json, STATS.md).",
)
@click.option(
    "--preset",
    type=click.Choice(["small", "full"]),
    default="full",
    show_default=True,
    help="small: a few files of every kind, for tests; full: the corpus (docs/corpus.md).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed for splits and synthesis."
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: one per CPU core). The output does not depend on it.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing corpus in --out.")
@click.option(
    "--stats-doc",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Also write the statistics into this Markdown file's corpus-stats block.",
)
def corpus_build(
    out: Path, preset: str, seed: int, jobs: int | None, overwrite: bool, stats_doc: Path | None
) -> None:
    """Build the corpus: real speech, TTS and vocoder spoofs, held-out splits, codec and phone
    conditions, and whole calls."""
    import os

    from dfd.trainers.corpus.builder import CorpusBuildError, build_corpus
    from dfd.trainers.corpus.stats import StatsDocError, update_stats_doc

    started = time.perf_counter()
    try:
        manifest = build_corpus(
            out,
            "small" if preset == "small" else "full",
            seed,
            jobs or os.cpu_count() or 1,
            overwrite,
        )
        if stats_doc is not None:
            update_stats_doc(stats_doc, manifest)
    except (CorpusBuildError, StatsDocError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"built {out}: {len(manifest['files'])} files, {len(manifest['attacks'])} attacks, "
        f"in {time.perf_counter() - started:.0f} s"
    )
    for key, counts in manifest["counts"].items():
        click.echo(f"  {key:14s} bonafide {counts['bonafide']:5d}  spoof {counts['spoof']:5d}")
    click.echo(f"  calls          {len(manifest['calls'])}")


DEFAULT_BUNDLES_DIR = Path("/var/lib/dfd/bundles")


@main.group()
def models() -> None:
    """Detector families and model bundles (model.onnx + model_card.json)."""


@models.command("list")
@click.option(
    "--dir",
    "bundles_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="DFD_BUNDLES",
    default=DEFAULT_BUNDLES_DIR,
    show_default=True,
    help="Folder of installed bundles, one per subfolder (also read from $DFD_BUNDLES).",
)
def models_list(bundles_dir: Path) -> None:
    """List the detector families and the bundles installed under --dir (verified)."""
    from dfd.detectors.bundle import CARD_NAME
    from dfd.detectors.registry import FAMILIES

    click.echo("families:")
    for name, entry in sorted(FAMILIES.items()):
        spoof = "" if entry.spoof_index is None else f", spoof index {entry.spoof_index}"
        click.echo(
            f"  {name:12s} front end {entry.frontend.kind:8s} "
            f"output {entry.output_name!r}: {entry.output}{spoof}"
        )
    from dfd.daemon.models import default_bundle_path

    click.echo(f"embedded default: {_bundle_summary(default_bundle_path())}")
    if not bundles_dir.is_dir():
        click.echo(f"bundles: none ({bundles_dir} does not exist)")
        return
    folders = sorted(path.parent for path in bundles_dir.glob(f"*/{CARD_NAME}"))
    click.echo(f"bundles in {bundles_dir}: {len(folders)}")
    for folder in folders:
        click.echo(f"  {folder.name:24s} {_bundle_summary(folder)}")


def _bundle_summary(folder: Path) -> str:
    """One line about a verified bundle, or why it is invalid."""
    from dfd.detectors.bundle import BundleError, load_bundle

    try:
        card = load_bundle(folder).card
    except BundleError as error:
        return f"INVALID: {error}"
    return (
        f"{card.family} {card.version}, window {card.window.window_s} s "
        f"every {card.window.hop_s} s, "
        f"{'calibrated' if card.calibration.calibrated else 'uncalibrated'}"
    )


def _metrics_lines(name: str, metrics: dict[str, Any] | None) -> list[str]:
    """A card's metrics on one protocol, in words (the card itself holds every figure)."""
    if not metrics:
        return [f"{name}: none recorded"]
    counts = metrics.get("counts", {})
    line = (
        f"{name}: EER {100 * metrics['eer']:.2f} %, min DCF {metrics['min_dcf']:.4f}, "
        f"ROC AUC {metrics.get('roc_auc', float('nan')):.4f} "
        f"({counts.get('bonafide', '?')} bona fide, {counts.get('spoof', '?')} spoof)"
    )
    lines = [line]
    far = metrics.get("at_far")
    if far:
        lines.append(
            f"{name} at {100 * far['target_false_alarm_rate']:g} % false alarms: "
            f"false alarm rate {100 * far['false_alarm_rate']:.2f} %, "
            f"miss rate {100 * far['miss_rate']:.2f} %"
        )
    return lines


@models.command("show")
@click.argument("bundle", type=click.Path(path_type=Path))
def models_show(bundle: Path) -> None:
    """Verify BUNDLE (a folder, or "default" for the embedded one: every file's sha256, the ONNX
    contract) and print its model card."""
    from dfd.daemon.decisions import DEFAULT_RAISE_AT
    from dfd.daemon.models import UNCALIBRATED_THRESHOLD, resolve_bundle_path
    from dfd.detectors.bundle import BundleError, load_bundle

    try:
        loaded = load_bundle(resolve_bundle_path(bundle))
    except BundleError as error:  # exit 2: a bad bundle, as replay and serve say it
        raise _UnusableSettings(str(error)) from error
    card = loaded.card
    window, output, calibration = card.window, card.output, card.calibration
    spoof = "" if output.spoof_index is None else f", spoof index {output.spoof_index}"
    state = "calibrated" if calibration.calibrated else "uncalibrated"
    rows = {
        "bundle": str(loaded.path),
        "family": f"{card.family}, version {card.version} ({card.format}, {card.created_by})",
        "window": (
            f"{window.window_s} s ({window.samples} samples) every {window.hop_s} s "
            f"at {window.sample_rate} Hz"
        ),
        "frontend": json.dumps(card.frontend, sort_keys=True),
        "graph": (
            f"{loaded.model_path.name}: features (batch, "
            f"{', '.join(str(dim) for dim in loaded.feature_shape)}) -> {output.name!r}, "
            f"opset {loaded.opset}"
        ),
        "output": f"{output.convention}{spoof}",
        "labels": card.labels,
        "calibration": (
            f"{calibration.method}: sigmoid({calibration.slope:g} * raw "
            f"{'-' if calibration.offset < 0 else '+'} {abs(calibration.offset):g}) ({state})"
        ),
        "thresholds": (
            f"eer {json.dumps(card.thresholds.eer)}, "
            f"far_1pct {json.dumps(card.thresholds.far_1pct)}"
            + (
                f" (uncalibrated: the score is the softmax P(synthetic) and a missing threshold "
                f"is {UNCALIBRATED_THRESHOLD:g} until dfd models calibrate fits them)"
                if not calibration.calibrated
                else ""
            )
        ),
        "operating": (
            "none chosen: the evidence rule raises at the default "
            f"{DEFAULT_RAISE_AT:g} nats (dfd models calibrate --calls chooses one)"
            if card.operating_point is None
            else _operating_point_text(card.operating_point).removeprefix("operating point: ")
        ),
        "training": f"data manifest sha256 {json.dumps(card.training.data_manifest_sha256)}",
    }
    for key, value in rows.items():
        click.echo(f"{key:12s} {value}")
    for line in _metrics_lines("dev", card.metrics.dev) + _metrics_lines("eval", card.metrics.eval):
        click.echo(f"{'metrics':12s} {line}")
    for name, digest in card.files.items():
        click.echo(f"{'file':12s} {name} sha256 {digest} verified")


@models.command("sign")
@click.argument("bundle")
@click.option(
    "--key",
    "secret_key",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The secret ed25519 key (NAME.secret, PEM).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Sign a copy of BUNDLE written to this new folder (needed for the embedded default).",
)
def models_sign(bundle: str, secret_key: Path, out: Path | None) -> None:
    """Verify BUNDLE (a folder, or "default" with --out) and write its signature.json: an
    ed25519 signature of its model_card.json, which holds the sha256 of every other file."""
    import shutil

    from dfd.daemon.models import DEFAULT_MODEL, resolve_bundle_path
    from dfd.detectors.bundle import SIGNATURE_NAME
    from dfd.detectors.signing import sign_bundle

    source = resolve_bundle_path(bundle)
    if out is None and bundle == DEFAULT_MODEL:
        raise click.UsageError("the embedded default belongs to the package: sign a copy (--out)")
    if out is not None and out.exists():
        raise click.BadParameter(f"{out} already exists; give a new folder", param_hint="--out")
    try:
        if out is not None:
            shutil.copytree(source, out, symlinks=True)  # a link stays a link, and is refused
        signature = sign_bundle(out or source, secret_key)
    except (ValueError, OSError) as error:  # BundleError, KeyFileError, a failed copy
        if out is not None:
            shutil.rmtree(out, ignore_errors=True)  # no unsigned copy left behind
        raise click.ClickException(str(error)) from error
    click.echo(f"signed {out or source}: {SIGNATURE_NAME} by key {signature.key_id}")


@models.command("calibrate")
@click.argument("bundle")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Protocol of labelled utterances to fit the calibration and window thresholds on "
    "(e.g. corpus/protocols/dev.txt).",
)
@click.option(
    "--calls",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Calls protocol to choose the evidence rule's operating point on "
    "(e.g. corpus/protocols/calls.dev.tsv).",
)
@click.option(
    "--target-false-alarm-rate",
    "target",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=0.01,
    show_default=True,
    help="Share of real calls allowed to alert at the operating point.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the recalibrated bundle to this new folder (needed for the embedded default); "
    "without it BUNDLE is rewritten in place.",
)
@click.option(
    "--key",
    "secret_key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Sign the new card with this secret ed25519 key.",
)
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.pass_obj
def models_calibrate(
    settings: Settings,
    bundle: str,
    data: Path | None,
    calls: Path | None,
    target: float,
    out: Path | None,
    secret_key: Path | None,
    device: str,
) -> None:
    """Fit BUNDLE's calibration and thresholds on a protocol (--data) and its call-level
    operating point on a calls protocol (--calls), through the daemon's own scoring; the card's
    hashes are written anew, and its signature too when --key is given."""
    import shutil

    from dfd.daemon.models import DEFAULT_MODEL, resolve_bundle_path
    from dfd.detectors.signing import sign_bundle
    from dfd.trainers.calibrate_bundle import calibrate_bundle

    if data is None and calls is None:
        raise click.UsageError("give --data, --calls or both")
    if out is None and bundle == DEFAULT_MODEL:
        raise click.UsageError("the embedded default belongs to the package: give --out")
    if out is not None and out.exists():
        raise click.BadParameter(f"{out} already exists; give a new folder", param_hint="--out")
    folder = out or resolve_bundle_path(bundle)
    try:
        if out is not None:
            shutil.copytree(resolve_bundle_path(bundle), out, symlinks=True)  # links refused
        card = calibrate_bundle(
            folder,
            settings=settings,
            data=data,
            calls=calls,
            target_false_alarm_rate=target,
            device=device,
        )
        signed = f", signed by key {sign_bundle(folder, secret_key).key_id}" if secret_key else ""
    except (ValueError, OSError) as error:  # BundleError, ConfigError, DatasetError, KeyFileError
        if out is not None:
            shutil.rmtree(out, ignore_errors=True)
        raise click.ClickException(str(error)) from error
    click.echo(f"wrote {folder}{signed}")
    for line in _calibration_lines(card):
        click.echo(f"  {line}")


def _calibration_lines(card: ModelCard) -> list[str]:
    calibration, thresholds = card.calibration, card.thresholds
    lines = [
        f"calibration: sigmoid({calibration.slope:.4g} * raw {calibration.offset:+.4g})"
        f" ({'calibrated' if calibration.calibrated else 'uncalibrated'})",
        f"thresholds: eer {json.dumps(thresholds.eer)}, far_1pct {json.dumps(thresholds.far_1pct)}",
    ]
    point = card.operating_point
    if point is not None:
        lines.append(_operating_point_text(point))
    return lines


def _operating_point_text(point: OperatingPoint) -> str:
    median = point.median_time_to_alert_s
    return (
        f"operating point: alert at {point.raise_at:g} nats of evidence (target "
        f"{100 * point.target_false_alarm_rate:g} % of real calls; on {point.chosen_on}: "
        f"{100 * point.false_alarm_rate:.1f} % of {point.real_calls} calls "
        f"({point.real_hours:.2f} h of real speech) alerted, {point.turning_detected} of "
        f"{point.turning_calls} turning calls alerted after the turn, median "
        f"{'-' if median is None else f'{median:.1f} s'})"
    )


@models.command("import-aasist")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Bundle folder to write.",
)
@click.option(
    "--config",
    "conf",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The official .conf file (default: beside CHECKPOINT, same stem).",
)
@click.option("--version", "bundle_version", default=None, help="Bundle version string.")
@click.option("--overwrite", is_flag=True, help="Replace a bundle already in --out.")
def models_import_aasist(
    checkpoint: Path, out: Path, conf: Path | None, bundle_version: str | None, overwrite: bool
) -> None:
    """Bundle an official AASIST / AASIST-L checkpoint (clovaai/aasist) as it is."""
    from dfd.detectors.aasist_bundle import DEFAULT_VERSION, import_aasist
    from dfd.detectors.bundle import load_bundle

    try:
        folder = import_aasist(
            checkpoint, out, conf, bundle_version or DEFAULT_VERSION, overwrite=overwrite
        )
        card = load_bundle(folder).card
    except ValueError as error:  # BundleError and the importer's checkpoint errors
        raise click.ClickException(str(error)) from error
    click.echo(
        f"wrote {folder}: {card.family} {card.version}, window {card.window.window_s} s every "
        f"{card.window.hop_s} s, official score = bona fide logit (logits[:, 1]), uncalibrated"
    )


@main.command()
@click.option(
    "--model", "family_name", metavar="FAMILY", help="Detector family (see dfd models list)."
)
@click.option(
    "--data",
    required=True,
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Training protocol (ASVspoof 2019 format, e.g. corpus/protocols/train.txt); repeat it "
    "to train on several (e.g. train.txt and train.phone.txt).",
)
@click.option(
    "--dev",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Development protocol (default: dev.txt beside the first --data).",
)
@click.option(
    "--config",
    "experiment",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Experiment TOML: family, epochs, batch size, [model], [loss], [augment].",
)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--epochs", type=click.IntRange(min=1), help="Override the config's epochs.")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    help="Override the config's seed (repeat a recipe over seeds to measure its spread).",
)
@click.option("--device", help="auto, cpu, cuda or cuda:N (default auto).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
def train(
    family_name: str | None,
    data: tuple[Path, ...],
    dev: Path | None,
    experiment: Path | None,
    out: Path,
    epochs: int | None,
    seed: int | None,
    device: str | None,
    resume: bool,
) -> None:
    """Train a detector family and export it as a calibrated bundle (OUT/bundle)."""
    from dfd.core.typed_config import ConfigError
    from dfd.trainers.bundling import bundle_run
    from dfd.trainers.config import load_train_config
    from dfd.trainers.train import train as run_training

    dev = dev or data[0].with_name("dev.txt")
    if not dev.is_file():
        raise click.BadParameter(f"no dev protocol at {dev}; pass --dev", param_hint="--dev")
    try:
        config = load_train_config(
            experiment, family=family_name, epochs=epochs, seed=seed, device=device
        )
        with _progress_bar("training") as progress:
            run = run_training(config, data, dev, out, resume=resume, progress=progress)
        manifest = data[0].parent.parent / "manifest.json"
        bundle = bundle_run(
            run, config, out / "bundle", manifest if manifest.is_file() else None, overwrite=True
        )
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    best = min(run.history, key=lambda h: h.dev_eer)
    click.echo(f"trained {config.family}: best dev EER {best.dev_eer:.4f} (epoch {best.epoch})")
    click.echo(f"bundle: {bundle}")


@main.command("eval")
@click.option(
    "--model",
    "bundle",
    required=True,
    type=click.Path(path_type=Path),
    help='Model bundle folder, or "default" for the embedded one.',
)
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Protocol to score (ASVspoof 2019 format, or another reader's layout).",
)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Windows scored at once. Lower it for large graphs: an AASIST window (4 s) takes "
    "about 0.3 GB on the CPU.",
)
@click.option(
    "--windows",
    is_flag=True,
    help="Also write OUT/windows.tsv: every window's start, end, raw output and score (the "
    "windows dfd replay scores).",
)
def eval_command(
    bundle: Path, data: Path, out: Path, device: str, batch_size: int, windows: bool
) -> None:
    """Score a protocol: OUT/scores.txt (higher = bona fide), OUT/report.json, PNG plots."""
    from dfd.daemon.models import resolve_bundle_path
    from dfd.detectors.bundle import BundleError
    from dfd.trainers.datasets import DatasetError
    from dfd.trainers.evaluate import evaluate_bundle

    try:
        with _progress_bar("scoring") as progress:
            report = evaluate_bundle(
                resolve_bundle_path(bundle),
                data,
                out,
                device=device,
                batch_size=batch_size,
                progress=progress,
                windows=windows,
            )
    except (BundleError, DatasetError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"EER {100 * report['eer']:.2f} %  min DCF {report['min_dcf']:.4f}  -> {out}")
    for attack, entry in sorted(report["groups"]["attack"].items()):
        if entry.get("eer") is not None:
            click.echo(f"  {attack:18s} EER {100 * entry['eer']:.2f} %")


def _threshold(value: str | None) -> str | float | None:
    if value is None or value in ("eer", "far_1pct"):
        return value
    try:
        return float(value)
    except ValueError as error:
        raise click.BadParameter("eer, far_1pct or a number in [0, 1]") from error


@main.command()
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
    from dfd.daemon.replay import run_replay

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


class _UnusableSettings(click.ClickException):
    """Settings (or a bundle) that cannot work: exit status 2, which the systemd unit does not
    restart on."""

    exit_code = 2


@main.command()
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
    from dfd.daemon.bus import BusError, JournalError
    from dfd.daemon.serve import Daemon, build_sources
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
        raise _UnusableSettings(str(error)) from error  # exit 2: no restart loop under systemd
    except (BusError, JournalError, OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    daemon.install_signal_handlers()
    daemon.run()


@main.command()
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
    from dfd.daemon.keys import CurveClient, KeyFileError
    from dfd.daemon.subscriber import SequenceTracker, format_event, subscribe

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


@main.command()
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
    from dfd.daemon.status import StatusError, fetch_metrics, summarize

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


@main.group()
def keys() -> None:
    """Key pairs: CURVE keys for the event bus and the PCM ingest; ed25519 keys that sign models."""


@keys.command("generate")
@click.argument("name")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write NAME.key (public) and NAME.key_secret (secret, mode 0600) to.",
)
@click.option(
    "--kind",
    type=click.Choice(["curve", "signing"]),
    default="curve",
    show_default=True,
    help="curve: the bus and PCM ingest; signing: ed25519, for dfd models sign.",
)
@click.option("--force", is_flag=True, help="Replace an existing pair of that name.")
def keys_generate(name: str, out: Path, kind: str, force: bool) -> None:
    """Generate a key pair NAME.

    curve (ZeroMQ's certificate format): give the public file to the other side, the daemon's
    to its subscribers and PCM senders, a client's to the daemon's [serve] curve_clients folder.
    signing (PEM): NAME.secret signs bundles (dfd models sign); list NAME.pub in [models]
    trusted_keys on the hosts that load them. Keep secret files where they are.
    """
    from dfd.daemon.keys import KeyFileError, generate_key_pair, load_public_key

    if kind == "signing":
        from dfd.detectors.signing import write_signing_keypair

        try:
            public_path, secret_path = write_signing_keypair(out, name, force=force)
        except (FileExistsError, ValueError, OSError) as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"public key  {public_path}")
        click.echo(f"secret key  {secret_path} (mode 0600; keep it private)")
        return
    try:
        public_path, secret_path = generate_key_pair(out, name, force=force)
    except KeyFileError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"public certificate  {public_path}")
    click.echo(f"secret certificate  {secret_path} (mode 0600; keep it private)")
    click.echo(f"public key          {load_public_key(public_path).decode('ascii')}")


@contextlib.contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on standard error, driven by ``(done, total)`` callbacks."""
    with click.progressbar(length=1, label=label, file=sys.stderr) as bar:

        def update(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        yield update
