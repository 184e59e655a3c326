"""Does the daemon's Python heap grow while calls come and go?

Runs the real daemon in this process (as ``pipeline_capacity.py`` does: detector worker
processes, bus, journal) with N paced calls of the demo sample, each replayed under a new call id
when it ends, and compares two ``tracemalloc`` snapshots taken after a garbage collection. Prints
the traced memory at each and the allocation sites whose size changed most between them.

    python benchmarks/heap_growth.py [--calls 40] [--first 60] [--second 180]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_capacity import SAMPLE, PacedCalls

from dfd.daemon.logs import configure_logging
from dfd.daemon.service.serve import Daemon
from dfd.daemon.settings import ServeSettings, Settings
from dfd.dsp.audio_stream import open_audio_stream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--first", type=float, default=60.0, help="first snapshot, s")
    parser.add_argument("--second", type=float, default=180.0, help="second snapshot, s")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    configure_logging("error", "console")
    info, blocks = open_audio_stream(SAMPLE)
    audio = np.concatenate(list(blocks), axis=1)[0]
    with tempfile.TemporaryDirectory(prefix="dfd-heap-") as state:
        settings = Settings(
            serve=ServeSettings(pub="tcp://127.0.0.1:*", state_directory=state, metrics="")
        )
        settings = dataclasses.replace(
            settings, models=dataclasses.replace(settings.models, workers=args.workers)
        )
        source = PacedCalls(args.calls, audio, info.sample_rate, spread_s=0.5)
        tracemalloc.start(10)
        snapshots: dict[float, tracemalloc.Snapshot] = {}
        started = time.monotonic()

        def take_snapshots(daemon: Daemon) -> None:
            elapsed = time.monotonic() - started
            for mark in (args.first, args.second):
                if elapsed >= mark and mark not in snapshots:
                    gc.collect()
                    snapshots[mark] = tracemalloc.take_snapshot()
                    current, _ = tracemalloc.get_traced_memory()
                    print(f"{mark:.0f} s: {current / 2**20:.1f} MiB traced", flush=True)
            if len(snapshots) == 2:
                daemon.request_stop()

        Daemon(settings, [source], on_loop=take_snapshots).run()
    changes = snapshots[args.second].compare_to(snapshots[args.first], "traceback")
    for change in changes[:6]:
        print(f"{change.size_diff / 1024:+.0f} KiB in {change.count_diff:+d} blocks")
        for line in change.traceback.format()[-4:]:
            print("    " + line)


if __name__ == "__main__":
    main()
