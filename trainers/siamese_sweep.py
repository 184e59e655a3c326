"""Pair-verification threshold sweep of a trained siamese model on the dev protocol.

One window per dev utterance (the middle one of the daemon's windows) is embedded; every pair of
them is labelled same class or not, and an equal number of same-class and different-class pairs
is drawn (seeded, at most ``max_pairs`` in all). A pair is predicted to be of one class when
its Euclidean distance is below a threshold (0.20 to 2.10 in steps of 0.05, the scale of the
contrastive loss's margin of 2) or when its cosine similarity is above one (0.10 to 0.90 in
steps of 0.05). The accuracy at every threshold and the best of each are reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from dfd.dsp.extract import remove_mean, scoring_windows
from dfd.dsp.framer import WindowGeometry

EUCLIDEAN_THRESHOLDS = np.round(0.20 + 0.05 * np.arange(39), 2)  # 0.20 ... 2.10
COSINE_THRESHOLDS = np.round(0.10 + 0.05 * np.arange(17), 2)  # 0.10 ... 0.90
MAX_UTTERANCES = 1000  # all pairs of at most this many utterances are candidates


def middle_window(audio: np.ndarray, geometry: WindowGeometry) -> np.ndarray:
    windows = scoring_windows(audio, geometry)
    samples: np.ndarray = windows[len(windows) // 2].samples
    return samples


def embed_windows(
    model: nn.Module,
    frontend: nn.Module,
    windows: Sequence[np.ndarray],
    device: torch.device,
    batch_size: int = 64,
) -> np.ndarray:
    model.eval()
    embeddings = []
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            batch = remove_mean(np.stack(windows[start : start + batch_size]).astype(np.float32))
            features = frontend(torch.from_numpy(batch).to(device))
            embeddings.append(model.embed(features).double().cpu().numpy())  # type: ignore[operator]
    return np.concatenate(embeddings)


def balanced_pairs(
    is_spoof: np.ndarray, max_pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(first, second, same)``: equally many same-class and different-class pairs, drawn
    without replacement from all pairs of distinct items."""
    first, second = np.triu_indices(len(is_spoof), k=1)
    same = is_spoof[first] == is_spoof[second]
    same_pairs, different_pairs = np.flatnonzero(same), np.flatnonzero(~same)
    count = min(len(same_pairs), len(different_pairs), max_pairs // 2)
    if count == 0:
        raise ValueError("the pair sweep needs two trials of one class and one of the other")
    chosen = np.concatenate(
        [
            rng.choice(same_pairs, count, replace=False),
            rng.choice(different_pairs, count, replace=False),
        ]
    )
    return first[chosen], second[chosen], same[chosen]


def sweep(
    values: np.ndarray, same: np.ndarray, thresholds: np.ndarray, same_below: bool
) -> dict[str, Any]:
    """Accuracy of "same class when value < threshold" (``same_below``) or "> threshold"."""
    predicted = values[None, :] < thresholds[:, None]
    if not same_below:
        predicted = values[None, :] > thresholds[:, None]
    accuracy = (predicted == same[None, :]).mean(axis=1)
    best = int(np.argmax(accuracy))  # the lowest threshold among ties
    return {
        "thresholds": [float(t) for t in thresholds],
        "accuracy": [float(a) for a in accuracy],
        "best_threshold": float(thresholds[best]),
        "best_accuracy": float(accuracy[best]),
    }


def pair_threshold_sweep(
    model: nn.Module,
    frontend: nn.Module,
    audio: Sequence[np.ndarray],
    is_spoof: np.ndarray,
    geometry: WindowGeometry,
    device: torch.device,
    rng: np.random.Generator,
    max_pairs: int = 20_000,
) -> dict[str, Any]:
    """The sweep described in the module docstring, as a JSON-ready mapping."""
    chosen = np.arange(len(audio))
    if len(chosen) > MAX_UTTERANCES:
        chosen = np.sort(rng.choice(len(audio), MAX_UTTERANCES, replace=False))
    windows = [middle_window(audio[int(i)], geometry) for i in chosen]
    embeddings = embed_windows(model, frontend, windows, device)
    first, second, same = balanced_pairs(is_spoof[chosen], max_pairs, rng)
    a, b = embeddings[first], embeddings[second]
    distance = np.linalg.norm(a - b, axis=1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    similarity = np.einsum("ij,ij->i", a, b) / np.maximum(norms, 1e-12)
    return {
        "utterances": len(chosen),
        "pairs": {"same": int(same.sum()), "different": int((~same).sum())},
        "window": "the middle daemon window of each dev utterance",
        "euclidean": sweep(distance, same, EUCLIDEAN_THRESHOLDS, same_below=True),
        "cosine": sweep(similarity, same, COSINE_THRESHOLDS, same_below=False),
    }


def best_figures(result: dict[str, Any]) -> dict[str, Any]:
    """The best threshold and accuracy of each measure, for the model card's dev metrics."""
    return {
        measure: {
            "threshold": result[measure]["best_threshold"],
            "accuracy": result[measure]["best_accuracy"],
            "pairs": result["pairs"]["same"] + result["pairs"]["different"],
        }
        for measure in ("euclidean", "cosine")
    }
