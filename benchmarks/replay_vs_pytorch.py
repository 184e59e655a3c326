"""Side by side on the same recording: ``dfd replay`` against AASIST-L in PyTorch at batch 1.

The recording is the demo call (8 kHz mu-law, human then synthetic speech) repeated to
``--seconds`` of audio. Both arms read the same file and judge a window every 0.5 s:

- ``dfd replay --json FILE``: the command an auditor runs (a new process: start-up, decoding,
  resampling, the speech gate, the embedded default model in ONNX Runtime, decisions, the
  report), timed from launch to exit.
- what a user would otherwise run: AASIST-L (the official checkpoint when
  ``--aasist-checkpoint`` points at it; the same graph freshly initialised otherwise, which costs
  the same) in PyTorch, one window at a time: its own 4.04 s window (64,600 samples) every 0.5 s,
  sinc front end then network, under ``torch.inference_mode``, torch's default threads. The
  file is decoded once before the clock starts, so this arm is timed for scoring alone.

Windows per second = windows judged / seconds; the ratio is dfd's over PyTorch's.

    python benchmarks/replay_vs_pytorch.py [--seconds 300]
        [--aasist-checkpoint ../shared/third_party/aasist/AASIST-L.pth]
        [--out docs/benchmarks/replay-vs-pytorch.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "call-bonafide-then-synthetic-8k-ulaw.wav"
DEFAULT_OUT = ROOT / "docs" / "benchmarks" / "replay-vs-pytorch.md"
HOP_S = 0.5


def make_recording(folder: Path, seconds: float) -> Path:
    """The demo call repeated to ``seconds``, written as 8 kHz mu-law WAV (as the sample is)."""
    audio, rate = soundfile.read(SAMPLE, dtype="float32")
    repeats = int(np.ceil(seconds * rate / len(audio)))
    long = np.tile(audio, repeats)[: int(seconds * rate)]
    path = folder / f"demo-call-{seconds:g}s-8k-ulaw.wav"
    soundfile.write(path, long, rate, subtype="ULAW")
    return path


def time_replay(recording: Path) -> tuple[float, int]:
    """(seconds from launch to exit, windows judged) for ``dfd replay --json``."""
    started = time.perf_counter()
    dfd = Path(sys.executable).with_name("dfd")
    command = [str(dfd) if dfd.exists() else "dfd", "--log-level", "error", "replay", "--json"]
    result = subprocess.run(
        [*command, str(recording)],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode not in (0, 1, 3):
        raise SystemExit(f"dfd replay failed ({result.returncode}): {result.stderr[-2000:]}")
    report = json.loads(result.stdout)
    return elapsed, len(report["windows"])


def time_aasist_l(recording: Path, checkpoint: Path | None) -> tuple[float, int, str]:
    """(seconds, windows, which weights) for AASIST-L in PyTorch, batch 1, a window per hop."""
    import torch

    from dfd.detectors.aasist import AASIST_L, AasistModel
    from dfd.detectors.aasist_import import load_official_aasist
    from dfd.dsp.audio_io import load_audio
    from dfd.dsp.batcher import FrontendBank

    if checkpoint is not None and checkpoint.is_file():
        config, model = load_official_aasist(checkpoint)
        weights = f"official checkpoint {checkpoint.name}"
    else:
        config, model = AASIST_L, AasistModel(AASIST_L).eval()
        weights = "freshly initialised (the official checkpoint was not found)"
    bank, spec = FrontendBank("cpu"), config.frontend
    audio = load_audio(recording, sample_rate=16_000).samples[0]
    size, hop = config.nb_samp, round(HOP_S * 16_000)
    starts = range(0, max(1, len(audio) - size + 1), hop)
    with torch.inference_mode():
        model(bank.compute(audio[None, :size], [spec])[spec])  # warm-up, not timed
        started = time.perf_counter()
        for start in starts:
            window = audio[None, start : start + size]
            model(bank.compute(window, [spec])[spec])
        elapsed = time.perf_counter() - started
    return elapsed, len(starts), weights


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the recording")
    parser.add_argument(
        "--aasist-checkpoint",
        type=Path,
        default=ROOT.parent / "shared" / "third_party" / "aasist" / "AASIST-L.pth",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    import torch

    from dfd.daemon.engine.models import ModelSet

    identity = ModelSet.load(["default"]).identity
    with tempfile.TemporaryDirectory(prefix="dfd-bench-") as folder:
        recording = make_recording(Path(folder), args.seconds)
        replay_s, replay_windows = time_replay(recording)
        torch_s, torch_windows, weights = time_aasist_l(recording, args.aasist_checkpoint)
    replay_rate, torch_rate = replay_windows / replay_s, torch_windows / torch_s
    lines = [
        "# `dfd replay` against AASIST-L in PyTorch, same recording",
        "",
        "Generated by `benchmarks/replay_vs_pytorch.py`; do not edit by hand, run it again.",
        "",
        f"- command: `python benchmarks/replay_vs_pytorch.py --seconds {args.seconds:g}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- CPU: {cpu_name()}, {os.cpu_count()} logical cores; GPU: not used",
        f"- Python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)",
        f"- recording: the demo call repeated to {args.seconds:g} s (8 kHz mu-law WAV)",
        f"- dfd: `dfd replay --json` with the embedded default ({identity['name']} "
        f"{identity['version']}), timed from launch to exit",
        f"- PyTorch: AASIST-L, {weights}; batch 1, a 64,600-sample window every {HOP_S:g} s, "
        "sinc front end and network; decoding not timed",
        "",
        "| arm | windows | seconds | windows/s | audio seconds per second |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| `dfd replay` | {replay_windows} | {replay_s:.1f} | {replay_rate:.0f} "
        f"| {args.seconds / replay_s:.0f} |",
        f"| AASIST-L, PyTorch, batch 1 | {torch_windows} | {torch_s:.1f} | {torch_rate:.1f} "
        f"| {args.seconds / torch_s:.1f} |",
        "",
        f"Ratio (windows/s, dfd over PyTorch): **{replay_rate / torch_rate:.0f}x**; in audio "
        f"time: **{torch_s / replay_s:.0f}x** faster to judge the same recording.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
