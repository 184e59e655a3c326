"""Peak memory of one detector worker's ONNX Runtime session, by batch size.

Each measurement is a fresh process that loads the bundle the way a detector worker does
(``DetectorSession``: CPU, one thread, warm-up included), scores one batch of random features and
reports its peak resident set (``ru_maxrss``). Large graphs (AASIST) hold their activations for
the whole batch, so this is what ``[pipeline] batch_size`` costs per worker.

    python benchmarks/session_memory.py BUNDLE [BUNDLE ...] [--batch 1 --batch 4 --batch 16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

MEASURE = """
import json, resource, sys, time
import numpy as np
from dfd.detectors.runtime import DetectorSession
session = DetectorSession(sys.argv[1], threads=1, device="cpu")
batch = int(sys.argv[2])
features = 0.1 * np.random.default_rng(0).standard_normal((batch, *session.feature_shape))
start = time.perf_counter()
session.raw(features.astype(np.float32))
seconds = time.perf_counter() - start
print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": seconds}))
"""


def measure(bundle: Path, batch: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(bundle), str(batch)],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--batch", type=int, action="append")
    args = parser.parse_args()
    batches = args.batch or [1, 4, 16]
    print("| bundle | " + " | ".join(f"batch {b}" for b in batches) + " |")
    print("| --- | " + " | ".join("---:" for _ in batches) + " |")
    for bundle in args.bundles:
        cells = [f"{measure(bundle, b)['peak_mib']:,.0f} MiB" for b in batches]
        print(f"| {bundle} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
