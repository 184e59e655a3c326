"""``dfd corpus build``, ``dfd train`` and ``dfd eval``: the corpus, training and evaluation."""

from __future__ import annotations

import time
from pathlib import Path

import click

from dfd.core.typed_config import ConfigError
from dfd.daemon.cli.common import progress_bar


@click.group()
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


@click.command()
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
        with progress_bar("training") as progress:
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


@click.command("eval")
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
    from dfd.daemon.engine.models import resolve_bundle_path
    from dfd.detectors.bundle import BundleError
    from dfd.trainers.datasets import DatasetError
    from dfd.trainers.evaluate import evaluate_bundle

    try:
        with progress_bar("scoring") as progress:
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
