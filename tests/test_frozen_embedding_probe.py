"""benchmarks/frozen_embedding_probe.py (issue 16's pretrained front ends), on the small corpus.

The resemblyzer wheel is not installed here, so the encoder carries random weights saved in
resemblyzer's checkpoint layout: what is tested is the probe's machinery (windows, level,
selection, scores, fusion, the report), not what the pretrained encoder knows."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from dfd.daemon.engine.models import default_bundle_path
from dfd.trainers.evaluate import evaluate_bundle
from dfd.trainers.metrics import compute_eer
from tests.signals import REPO

SCRIPT = REPO / "benchmarks" / "frozen_embedding_probe.py"


@pytest.fixture(scope="module")
def probe() -> Iterator[ModuleType]:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import frozen_embedding_probe

        yield frozen_embedding_probe
    finally:
        sys.path.remove(str(SCRIPT.parent))


def test_the_encoder_sees_neither_the_level_nor_the_length_of_its_vector(
    probe: ModuleType, speech_16k: np.ndarray
) -> None:
    torch.manual_seed(0)
    encoder = probe.SpeakerEncoder().eval()
    windows = torch.from_numpy(np.stack([speech_16k[:32000], speech_16k[32000:64000]])).float()
    with torch.inference_mode():
        loud, quiet = encoder.embed_windows(windows), encoder.embed_windows(0.02 * windows)
        mels = encoder.mels(windows)
    assert mels.shape == (2, 201, 40)  # 25 ms every 10 ms over 2 s, 40 bands
    assert torch.allclose(loud, quiet, atol=1e-4)
    assert torch.allclose(loud.norm(dim=1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(loud[0], loud[1], atol=1e-3)  # two windows, two embeddings


def test_the_probe_reports_what_its_scores_give_and_fuses_no_worse_than_either_side(
    probe: ModuleType, small_corpus: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "pretrained.pt"
    torch.save({"model_state": probe.SpeakerEncoder().state_dict()}, weights)
    protocols = small_corpus / "protocols"
    bundle = {}
    for name in ("dev", "eval"):
        evaluate_bundle(default_bundle_path(), protocols / f"{name}.txt", tmp_path / name)
        bundle[name] = tmp_path / name / "scores.txt"
    out = tmp_path / "docs" / "frozen.md"
    subprocess.run(
        [
            sys.executable, str(SCRIPT), "--weights", str(weights), "--corpus", str(small_corpus),
            "--train", "train.txt", "--select", "dev.txt", "--test", "eval.txt",
            "--epochs", "3", "--cache", str(tmp_path / "cache"),
            "--fuse-select", str(bundle["dev"]), "--fuse", f"eval.txt={bundle['eval']}",
            "--out", str(out),
        ],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    text = out.read_text()
    # every EER in the table is the EER of the scores behind it (higher = bona fide)
    row = next(line for line in text.splitlines() if line.startswith("| eval.txt | "))
    head_eer, bundle_eer, fused_eer = map(float, re.findall(r"([\d.]+) %", row))
    assert head_eer == round(eer_of(tmp_path / "cache" / "eval.head-scores.txt"), 2)
    assert bundle_eer == round(eer_of(bundle["eval"]), 2)
    assert 0.0 <= fused_eer <= 100.0
    # fusion weights 1 and 0 are the head and the bundle alone, so on the set that chose the
    # weight the fusion is at least as good as either
    chosen = re.search(r"EER ([\d.]+) %; fused there ([\d.]+) % \(weight ([\d.]+)\)", text)
    assert chosen is not None
    head_select, fused_select, weight = map(float, chosen.groups())
    assert fused_select <= min(head_select, eer_of(bundle["dev"])) + 0.01
    assert 0.0 <= weight <= 1.0
    assert "ms (ONNX Runtime)" in text
    cached = sorted(path.name for path in (tmp_path / "cache").glob("*.npz"))
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    assert cached == [
        f"{name}-{digest}.npz" for name in ("dev-hop0.5", "eval-hop0.5", "train-hop1")
    ]


def eer_of(scores: Path) -> float:
    """EER in percent of a scores file in dfd eval's layout (higher = bona fide)."""
    rows = [line.split() for line in scores.read_text().splitlines()]
    bonafide = [float(row[3]) for row in rows if row[2] == "bonafide"]
    spoof = [float(row[3]) for row in rows if row[2] == "spoof"]
    return 100 * compute_eer(bonafide, spoof)[0]
