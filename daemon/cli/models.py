"""``dfd models``: detector families and model bundles (list, show, sign, calibrate, quantize,
import)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dfd.daemon.cli.common import UnusableSettings
from dfd.daemon.settings import Settings

if TYPE_CHECKING:
    from dfd.detectors.bundle import Bundle, ModelCard, OperatingPoint


DEFAULT_BUNDLES_DIR = Path("/var/lib/dfd/bundles")


@click.group()
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
    from dfd.daemon.engine.models import default_bundle_path

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


def _kernels_text(bundle: Bundle) -> str:
    """How an 8-bit graph runs on this CPU: ``DetectorSession``'s check at load."""
    from dfd.detectors.runtime import DetectorSession

    check = DetectorSession(bundle, device="cpu").kernel_check
    assert check is not None  # every quantised bundle is checked
    if check.fused:
        return (
            "fused 8-bit kernels on this CPU (largest difference from the graph on the probe "
            f"windows: {check.max_difference:.3g})"
        )
    return (
        f"the fused 8-bit kernels stray up to {check.max_difference:.3g} from the graph on this "
        "CPU: scored without the QDQ fusions (exact, slower); re-quantise with this dfd"
    )


@models.command("show")
@click.argument("bundle", type=click.Path(path_type=Path))
def models_show(bundle: Path) -> None:
    """Verify BUNDLE (a folder, or "default" for the embedded one: every file's sha256, the ONNX
    contract) and print its model card."""
    from dfd.daemon.engine.decisions import DEFAULT_RAISE_AT
    from dfd.daemon.engine.models import UNCALIBRATED_THRESHOLD, resolve_bundle_path
    from dfd.detectors.bundle import BundleError, load_bundle

    try:
        loaded = load_bundle(resolve_bundle_path(bundle))
    except BundleError as error:  # exit 2: a bad bundle, as replay and serve say it
        raise UnusableSettings(str(error)) from error
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
    quantization = card.training.quantization
    if quantization is not None:
        rows["quantized"] = (
            f"{quantization.get('quantized_nodes', '?')} layers in 8 bits, float: "
            f"{', '.join(quantization.get('float_nodes', [])) or 'none'}; raw outputs correlate "
            f"at {quantization.get('raw_correlation', '?')} with the float graph's "
            f"({quantization.get('checked_on', '?')})"
        )
        rows["kernels"] = _kernels_text(loaded)
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

    from dfd.daemon.engine.models import DEFAULT_MODEL, resolve_bundle_path
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

    from dfd.daemon.engine.models import DEFAULT_MODEL, resolve_bundle_path
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


@models.command("quantize")
@click.argument("bundle")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Protocol whose windows set the activation ranges and check the result "
    "(e.g. corpus/protocols/train.txt).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="New folder for the quantised bundle.",
)
@click.option(
    "--windows",
    type=click.IntRange(32),
    default=512,
    show_default=True,
    help="Windows to measure activation ranges on (as many again check the result).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Which windows are drawn.")
def models_quantize(bundle: str, data: Path, out: Path, windows: int, seed: int) -> None:
    """Write an 8-bit copy of BUNDLE (int8 weights per channel, uint8 activations; the first
    convolution stays in float) to --out, refused unless its raw outputs correlate at 0.99 or
    better with the float graph's on windows of --data it was not fitted on. Recalibrate the new
    bundle afterwards with `dfd models calibrate`: its scores moved a little."""
    import shutil

    from dfd.daemon.engine.models import resolve_bundle_path
    from dfd.trainers.quantize import quantize_bundle

    if out.exists():
        raise click.BadParameter(f"{out} already exists; give a new folder", param_hint="--out")
    try:
        report = quantize_bundle(
            resolve_bundle_path(bundle),
            out,
            data,
            range_windows=windows,
            check_windows=windows,
            seed=seed,
        )
    except (ValueError, OSError) as error:  # BundleError, DatasetError
        shutil.rmtree(out, ignore_errors=True)
        raise click.ClickException(str(error)) from error
    click.echo(
        f"wrote {out}: {report.quantized_nodes} layers in 8 bits, "
        f"{', '.join(report.float_nodes) or 'none'} in float; on {report.check_windows} check "
        f"windows the raw outputs correlate at {report.correlation:.4f} with the float graph's "
        f"(largest difference {report.max_abs_difference:.3f})"
    )
    click.echo(
        f"next: dfd models calibrate {out} --data DEV_PROTOCOL --calls CALLS_PROTOCOL "
        "(its calibration, thresholds and operating point are still the float model's)"
    )


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
