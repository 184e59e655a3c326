"""Front-end throughput: windows per second through ``FrontendBank.compute``, per device.

Every front-end kind with its default spec (and SincConv with learnable filters, which rebuilds
its filter bank on every forward pass) is timed on batches of 1, 16 and 64 two-second windows at
16 kHz, on the CPU and, when one is visible, on CUDA (host-to-device transfer included, as
``compute`` does it). A "shared" row computes all four default specs in one call on a batch of 64,
as the pipeline does when detectors of every family are loaded. The results are written as a
Markdown document (regenerated wholly on every run) and printed.

    python benchmarks/frontend_throughput.py [--quick] [--out docs/benchmarks/frontends.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio

from dfd.dsp.batcher import FrontendBank
from dfd.dsp.framer import WindowGeometry
from dfd.dsp.frontends import (
    ConstantQSpec,
    FrontendSpec,
    LfccSpec,
    LogMelSpec,
    LogSpectrogramSpec,
    MfccSpec,
    SincConvSpec,
)

BATCH_SIZES = (1, 16, 64)
SHARED_BATCH = 64
SEED = 20240601
DEFAULT_OUT = Path("docs/benchmarks/frontends.md")
HEADER = ("front end", "spec summary", "batch", "ms per batch (median)", "windows/s")


@dataclass(frozen=True)
class Case:
    """One row group: a label and the specs computed together in one ``compute`` call."""

    label: str
    specs: tuple[FrontendSpec, ...]
    batch_sizes: tuple[int, ...]


@dataclass(frozen=True)
class Timing:
    repetitions: int
    median_s: float


@dataclass(frozen=True)
class Result:
    case: Case
    batch: int
    timing: Timing

    @property
    def windows_per_s(self) -> float:
        return self.batch / self.timing.median_s


@dataclass(frozen=True)
class Budget:
    """How long each cell is warmed up and timed: at least so many runs and so many seconds.

    The warm-up is timed too: the first calls that allocate large outputs can be several times
    slower than the steady state while the allocator and the kernel settle.
    """

    warmup: int
    warmup_seconds: float
    min_reps: int
    min_seconds: float
    max_reps: int


def default_cases() -> list[Case]:
    defaults: list[tuple[str, FrontendSpec]] = [
        ("sinc", SincConvSpec()),
        ("sinc (learnable)", SincConvSpec(learnable=True)),
        ("logmel", LogMelSpec()),
        ("mfcc", MfccSpec()),
        ("lfcc", LfccSpec()),
        ("logspec", LogSpectrogramSpec()),
        ("cqt", ConstantQSpec()),
    ]
    cases = [Case(label, (spec,), BATCH_SIZES) for label, spec in defaults]
    shared = (SincConvSpec(), LogMelSpec(), MfccSpec(), LfccSpec())
    cases.append(Case("shared (all four defaults)", shared, (SHARED_BATCH,)))
    return cases


def summarise_spec(spec: FrontendSpec) -> str:
    if isinstance(spec, SincConvSpec):
        text = f"{spec.out_channels} filters, {spec.kernel_size} taps, stride {spec.stride}"
        return text + (", learnable" if spec.learnable else ", fixed")
    if isinstance(spec, LogMelSpec):
        return f"{spec.n_mels} mels, n_fft {spec.n_fft}, hop {spec.hop_length}"
    if isinstance(spec, MfccSpec):
        return f"{spec.n_mfcc} of {spec.n_mels} mels, n_fft {spec.n_fft}, hop {spec.hop_length}"
    if isinstance(spec, LfccSpec):
        deltas = " + Δ, ΔΔ" if spec.with_deltas else ""
        return (
            f"{spec.n_lfcc} of {spec.n_filter} linear{deltas}, win {spec.window_length}, "
            f"hop {spec.hop_length}"
        )
    if isinstance(spec, LogSpectrogramSpec):
        first, last = spec.bin_range
        return f"{last - first} linear bins, n_fft {spec.n_fft}, hop {spec.hop_length}"
    if isinstance(spec, ConstantQSpec):
        return (
            f"{spec.n_bins} bins from {spec.f_min:g} Hz, {spec.bins_per_octave} an octave, "
            f"hop {spec.hop_length}"
        )
    return spec.to_json()


def summarise_case(case: Case) -> str:
    if len(case.specs) == 1:
        return summarise_spec(case.specs[0])
    return " + ".join(spec.kind for spec in case.specs) + ", one call"


def speech_like_audio(batch: int, samples: int, sample_rate: int, seed: int) -> np.ndarray:
    """Pink-ish noise plus a wandering harmonic tone, under a syllable-rate envelope, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal((batch, samples)), axis=-1)
    freqs = np.fft.rfftfreq(samples, d=1.0 / sample_rate)
    spectrum /= np.sqrt(np.maximum(freqs, 50.0))
    noise = np.fft.irfft(spectrum, n=samples, axis=-1)
    noise /= np.abs(noise).max(axis=-1, keepdims=True)
    t = np.arange(samples) / sample_rate
    pitch = rng.uniform(90.0, 220.0, (batch, 1)) * (1.0 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch, axis=-1) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3.0, 6.0, (batch, 1)) * t)
    audio = envelope * (0.3 * np.asarray(voiced) + 0.2 * noise)
    audio /= np.abs(audio).max(axis=-1, keepdims=True)
    return (0.8 * audio).astype(np.float32)


def synchroniser(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_cell(
    bank: FrontendBank, windows: np.ndarray, specs: Sequence[FrontendSpec], budget: Budget
) -> Timing:
    sync = synchroniser(bank.device)
    warmup_runs, start = 0, time.perf_counter()
    while warmup_runs < budget.warmup or time.perf_counter() - start < budget.warmup_seconds:
        bank.compute(windows, specs)
        sync()
        warmup_runs += 1
    durations: list[float] = []
    while len(durations) < budget.max_reps and (
        len(durations) < budget.min_reps or sum(durations) < budget.min_seconds
    ):
        start = time.perf_counter()
        bank.compute(windows, specs)
        sync()
        durations.append(time.perf_counter() - start)
    return Timing(len(durations), statistics.median(durations))


def run_device(
    device: torch.device, cases: Sequence[Case], audio: np.ndarray, budget: Budget
) -> list[Result]:
    bank = FrontendBank(device)
    results: list[Result] = []
    for case in cases:
        for batch in case.batch_sizes:
            timing = time_cell(bank, audio[:batch], case.specs, budget)
            result = Result(case, batch, timing)
            ms, rate = format_row(result)[3:]
            print(f"  {device.type}: {case.label}, batch {batch}: {ms} ms, {rate} windows/s")
            results.append(result)
    return results


def format_row(result: Result) -> tuple[str, ...]:
    return (
        result.case.label,
        summarise_case(result.case),
        str(result.batch),
        f"{result.timing.median_s * 1000:.2f}",
        f"{result.windows_per_s:,.0f}",
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def read_proc_field(path: str, field: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == field:
                    return value.strip()
    except OSError:
        return None
    return None


def machine_lines() -> list[str]:
    cpu = read_proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown"
    mem_kib = read_proc_field("/proc/meminfo", "MemTotal")
    memory = f"{int(mem_kib.split()[0]) / 2**20:.1f} GiB" if mem_kib else "unknown"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores",
        f"- memory: {memory}",
        f"- GPU: {gpu}",
        f"- Python {platform.python_version()}, torch {torch.__version__}, "
        f"torchaudio {torchaudio.__version__}",
        f"- torch threads: {torch.get_num_threads()} (torch's default)",
    ]


def capacity_table(results: Sequence[Result], windows_per_channel_s: float) -> list[str]:
    """Per case, the best throughput over batch sizes and the channels it keeps up with."""
    best: dict[str, Result] = {}
    for result in results:
        kept = best.get(result.case.label)
        if kept is None or result.windows_per_s > kept.windows_per_s:
            best[result.case.label] = result
    rows = [
        (
            label,
            f"{result.windows_per_s:,.0f} (batch {result.batch})",
            f"{result.windows_per_s / windows_per_channel_s:,.0f}",
        )
        for label, result in best.items()
    ]
    header = ("front end", "best windows/s", "concurrent channels (windows/s ÷ 2)")
    return markdown_table(header, rows)


def device_section(
    device: torch.device, results: Sequence[Result], windows_per_channel_s: float
) -> list[str]:
    title = "CPU" if device.type == "cpu" else f"CUDA ({torch.cuda.get_device_name(device)})"
    lines = [f"## {title}", ""]
    lines += markdown_table(HEADER, [format_row(result) for result in results])
    lines += ["", "Real-time capacity (front end alone):", ""]
    lines += capacity_table(results, windows_per_channel_s)
    return [*lines, ""]


def window_paragraph(geometry: WindowGeometry, windows_per_channel_s: float) -> str:
    return (
        f"A window is {geometry.window_s:g} s of audio at {geometry.sample_rate} Hz "
        f"({geometry.window_samples:,} samples); the framer starts one every {geometry.hop_s:g} s, "
        f"so a live call needs {windows_per_channel_s:g} windows/s per channel. Concurrent "
        f"channels = windows/s ÷ {windows_per_channel_s:g}: how many calls this device could keep "
        "up with if it did nothing but this front end (no decoding, resampling or detectors)."
    )


def method_paragraph(budget: Budget) -> str:
    return (
        "Each cell times `FrontendBank(device).compute(batch, specs)` (NumPy batch in, features "
        "on the device, host-to-device copy included) on fixed-seed speech-like noise: at least "
        f"{budget.warmup} warm-up calls lasting at least {budget.warmup_seconds:g} s, then at "
        f"least {budget.min_reps} timed calls lasting at least {budget.min_seconds:g} s; the "
        "median is reported. windows/s = batch ÷ median."
    )


def render(
    command: str,
    started: dt.datetime,
    budget: Budget,
    geometry: WindowGeometry,
    sections: dict[torch.device, list[Result]],
) -> str:
    windows_per_channel_s = 1.0 / geometry.hop_s
    lines = [
        "# Front-end throughput",
        "",
        "Generated by `benchmarks/frontend_throughput.py`; do not edit by hand, run it again.",
        "",
        f"- command: `{command}`",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        *machine_lines(),
        "",
        window_paragraph(geometry, windows_per_channel_s),
        "",
        method_paragraph(budget),
        "",
    ]
    for device, results in sections.items():
        lines += device_section(device, results, windows_per_channel_s)
    return "\n".join(lines)


def devices() -> list[torch.device]:
    found = [torch.device("cpu")]
    if torch.cuda.is_available():
        found.append(torch.device("cuda"))
    return found


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown file to write")
    parser.add_argument("--quick", action="store_true", help="one warm-up and few repetitions")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "benchmarks/frontend_throughput.py", *given])
    budget = Budget(1, 0.0, 2, 0.1, 5) if args.quick else Budget(3, 0.5, 5, 1.0, 200)
    geometry = WindowGeometry()
    audio = speech_like_audio(
        max(*BATCH_SIZES, SHARED_BATCH), geometry.window_samples, geometry.sample_rate, SEED
    )
    sections: dict[torch.device, list[Result]] = {}
    for device in devices():
        print(f"timing on {device} ({torch.get_num_threads()} torch threads)")
        sections[device] = run_device(device, default_cases(), audio, budget)
    text = render(command, started, budget, geometry, sections)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print()
    print(text)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
