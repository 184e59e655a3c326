"""The statistics of a built corpus, as Markdown: ``STATS.md`` and the generated block of
docs/corpus.md, rendered from the manifest alone."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dfd.trainers.corpus.conditions import summary_table

NARROWBAND_DB = -45.0  # a file with less energy above 4 kHz than this counts as narrowband
STATS_BEGIN = "<!-- corpus-stats:begin -->"
STATS_END = "<!-- corpus-stats:end -->"


class StatsDocError(ValueError):
    """The document has no generated statistics block to replace."""


def render_stats(manifest: dict[str, Any]) -> str:
    """The statistics section of docs/corpus.md, from a manifest."""
    lines = [
        f"Built by `dfd corpus build --preset {manifest['preset']} --seed {manifest['seed']}` "
        f"(dfd {manifest['dfd_version']}): {len(manifest['files'])} files, "
        f"{sum(h for split in manifest['hours'].values() for h in split.values()):.2f} h.",
        "",
        "| split | condition | bona fide files | spoof files | bona fide hours | spoof hours |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for key, counts in manifest["counts"].items():
        split, _, condition = key.partition("/")
        hours = manifest["hours"][key]
        lines.append(
            f"| {split} | {condition} | {counts['bonafide']} | {counts['spoof']} "
            f"| {hours['bonafide']:.2f} | {hours['spoof']:.2f} |"
        )
    lines += [
        "",
        "| attack | kind | splits | files (clean) | hours (clean) |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for attack, info in manifest["attacks"].items():
        lines.append(
            f"| {attack} | {info['kind']} | {', '.join(info['splits'])} | {info['files']} "
            f"| {info['hours']:.2f} |"
        )
    if manifest["skipped"]:
        lines += ["", f"Skipped {len(manifest['skipped'])} planned files:"]
        lines += [f"- {s['utt_id']}: {s['reason']}" for s in manifest["skipped"]]
    lines += ["", "Held out of training, whole:", ""]
    for split, rule in manifest["held_out"].items():
        held = [
            f"{what.replace('_', ' ')} {', '.join(names)}" for what, names in rule.items() if names
        ]
        lines.append(f"- {split}: {'; '.join(held) or 'nothing'}")
    lines += [
        "",
        "Hours of clean audio by class, family and language (a spoof's family is its TTS family "
        "or vocoder):",
        "",
        "| class | family | language | hours |",
        "| --- | --- | --- | ---: |",
    ]
    lines += [
        f"| {row['label']} | {row['family']} | {row['language']} | {row['hours']:.3f} |"
        for row in manifest["hours_by_family_and_language"]
    ]
    lines += ["", "Bona fide sources:", ""]
    lines += [
        f"- **{name}** ({', '.join(info['packages'])}; {info['licence']}): {info['description']}."
        + (f" Left out: {info['left_out']}." if info["left_out"] else "")
        for name, info in manifest["families"].items()
    ]
    lines += _calls_summary(manifest["calls"])
    lines += _vocoder_sanity(manifest["neural_vocoders"])
    lines += [
        "",
        "The phone condition (`<split>.phone.txt`): each clean file again through a room, noise, a "
        "device and a phone line drawn from its id, never its class. The draws per class, train:",
        "",
        summary_table(
            {
                label: {stage: Counter(values) for stage, values in stages.items()}
                for label, stages in manifest["phone_conditions"]["train"].items()
            }
        ),
    ]
    lines += [
        "",
        "Bona fide speakers (clean files): "
        + ", ".join(f"{s} {n}" for s, n in manifest["speakers"].items())
        + ".",
        "",
        "Residual differences, measured on the clean files after processing: energy above 4 kHz "
        "relative to the whole signal (median, dB), by origin.",
        "",
        "| class | origin | files | median energy above 4 kHz (dB) |",
        "| --- | --- | ---: | ---: |",
    ]
    for row in manifest["residuals"]:
        lines.append(
            f"| {row['label']} | {row['origin']} | {row['files']} | {row['high_band_db']:.1f} |"
        )
    shares = manifest["narrowband_share"]
    lines += [
        "",
        f"Narrowband files (less than {NARROWBAND_DB:.0f} dB of their energy above 4 kHz): "
        f"{100 * shares.get('bonafide', 0):.1f} % of bona fide, "
        f"{100 * shares.get('spoof', 0):.1f} % of spoof (clean files).",
    ]
    return "\n".join(lines) + "\n"


def _vocoder_sanity(reports: dict[str, Any]) -> list[str]:
    """The neural vocoders and the signal-processing ones against held-out speech."""
    lines = [
        "",
        "Neural vocoders, re-synthesising held-out speech (30 prompts of the eval voice carlo): "
        "log-mel distance (mean absolute difference of log10 80-band mel) and F0 error on frames "
        "voiced in both; WORLD, Griffin-Lim and noise shaped to the input's energy for scale.",
        "",
        "| vocoder | parameters | weights | training CPU | log-mel distance | F0 RMSE (Hz) "
        "| voicing agreement | CPU s per audio s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    baselines: dict[str, Any] = {}
    for name, report in reports.items():
        systems = report["sanity"]["systems"]
        own = systems[name]
        lines.append(
            f"| {name} | {report['parameters']:,} | {report['weights_bytes'] / 1e6:.1f} MB "
            f"| {report['cpu_seconds'] / 60:.0f} min | {own['log_mel_distance']:.3f} "
            f"| {own['f0_rmse_hz']:.1f} | {own['voicing_agreement']:.2f} "
            f"| {own['cpu_seconds_per_audio_second']:.4f} |"
        )
        baselines.update({k: v for k, v in systems.items() if k not in reports})
    for name, figures in sorted(baselines.items()):
        lines.append(
            f"| {name} | - | - | - | {figures['log_mel_distance']:.3f} "
            f"| {figures['f0_rmse_hz']:.1f} | {figures['voicing_agreement']:.2f} "
            f"| {figures['cpu_seconds_per_audio_second']:.4f} |"
        )
    return lines


def _calls_summary(calls: Sequence[dict[str, Any]]) -> list[str]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for call in calls:
        groups[(call["split"], call["kind"])].append(call)
    lines = [
        "",
        "Calls (`protocols/calls.<split>.tsv`), each one held-out speaker:",
        "",
        "| split | kind | calls | speakers | hours | length (s) | synthetic from (s) |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for (split, kind), group in sorted(groups.items()):
        seconds = [c["seconds"] for c in group]
        onsets = [c["synthetic_from_s"] for c in group if kind != "bonafide"]
        onset = f"{min(onsets):.0f}-{max(onsets):.0f}" if onsets else "-"
        lines.append(
            f"| {split} | {kind} | {len(group)} | {len({c['speaker'] for c in group})} "
            f"| {sum(seconds) / 3600:.2f} | {min(seconds):.0f}-{max(seconds):.0f} | {onset} |"
        )
    return lines


def update_stats_doc(doc: Path, manifest: dict[str, Any]) -> None:
    """Replace the generated block of ``doc`` (between the corpus-stats markers)."""
    text = doc.read_text(encoding="utf-8")
    head, begin, rest = text.partition(STATS_BEGIN)
    _, end, tail = rest.partition(STATS_END)
    if not begin or not end:
        raise StatsDocError(f"{doc} has no {STATS_BEGIN} ... {STATS_END} block to update")
    doc.write_text(f"{head}{STATS_BEGIN}\n{render_stats(manifest)}{STATS_END}{tail}", "utf-8")
