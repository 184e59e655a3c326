"""The detectors a pipeline runs: bundles loaded and checked together, and how they fuse.

Every bundle says its own window, front end, calibration and thresholds (its model card). Models
of different window lengths fuse by time: the pipeline cuts windows of the longest length, and
each model scores the last samples of each, as many as its own window holds, so that all of them
judge the audio up to the same instant (a 4 s AASIST-L and a 2 s model: the 2 s model scores the
second half of each 4 s window). The calibrated scores (P(synthetic)) are averaged with weights,
and so are their thresholds and operating points. With a single model, fusion is the identity.

With trusted keys (``[models] trusted_keys``), every bundle must carry a good signature by one of
them (``dfd.detectors.signing``), the embedded default included: sign a copy of it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from dfd.core.typed_config import ConfigError
from dfd.detectors.bundle import Bundle, BundleError, load_bundle
from dfd.detectors.signing import TrustedKeys
from dfd.dsp.framer import WindowGeometry
from dfd.dsp.frontends import FrontendSpec

if TYPE_CHECKING:
    from dfd.daemon.settings import ModelSettings

ThresholdName = Literal["eer", "far_1pct"]
DEFAULT_MODEL = "default"  # the bundle shipped inside the package


def default_bundle_path() -> Path:
    """The embedded default bundle (package data of ``dfd.detectors``)."""
    return Path(str(resources.files("dfd.detectors").joinpath("default")))


def resolve_bundle_path(name: str | Path) -> Path:
    return default_bundle_path() if str(name) == DEFAULT_MODEL else Path(name)


def load_trusted_keys(paths: Sequence[str]) -> TrustedKeys | None:
    """The public keys of ``[models] trusted_keys``, None when there are none (bundles are then
    verified by sha256 alone); a ``ConfigError`` naming a key file that is missing or bad."""
    return TrustedKeys.from_files(paths) if paths else None


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    bundle: Bundle
    threshold: float
    weight: float = 1.0

    @property
    def name(self) -> str:
        return self.bundle.card.family

    @property
    def version(self) -> str:
        return self.bundle.card.version

    def score(self, raw: np.ndarray) -> np.ndarray:
        return self.bundle.card.calibration.apply(raw)


UNCALIBRATED_THRESHOLD = 0.5  # an uncalibrated bundle's score is its softmax P(synthetic)


def pick_threshold(bundle: Bundle, threshold: ThresholdName | float) -> float:
    """A number is taken as given; a name is read from the bundle's card. An uncalibrated card
    (an official import: score = the softmax probability of spoof) without that threshold gets
    ``UNCALIBRATED_THRESHOLD``, the softmax decision, until ``dfd models calibrate`` fits one."""
    if isinstance(threshold, int | float):
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must lie in [0, 1], got {threshold}")
        return float(threshold)
    value = getattr(bundle.card.thresholds, threshold, None)
    if value is None and not bundle.card.calibration.calibrated:
        return UNCALIBRATED_THRESHOLD
    if value is None:
        raise BundleError(
            f"{bundle.path}: the model card has no {threshold!r} threshold (an uncalibrated "
            f"import?); give the threshold as a number"
        )
    return float(value)


class ModelSet:
    """The loaded models, one window geometry for all, and score fusion."""

    def __init__(
        self,
        models: Sequence[LoadedModel],
        hop_s: float | None = None,
        window_s: float | None = None,
    ) -> None:
        if not models:
            raise ConfigError("at least one model is needed")
        rates = {m.bundle.window.sample_rate for m in models}
        if len(rates) > 1:
            raise BundleError(f"models fused together must share one sample rate, got {rates}")
        # Models of different window lengths fuse by time: every window ends at the same sample
        # for all of them, the longest model's window, each model scoring its own length of it.
        longest = max(models, key=lambda m: m.bundle.window.samples).bundle.window
        window_s = window_s or longest.window_s
        if window_s != longest.window_s:
            # A model scores the window length it was trained and calibrated on, and no other.
            raise BundleError(
                f"{models[0].bundle.path}: the models take {longest.window_s} s windows "
                f"(the longest of them); they cannot score {window_s} s windows"
            )
        self.models = list(models)
        hop_s = hop_s or min(m.bundle.window.hop_s for m in models)
        try:
            self.geometry = WindowGeometry(longest.sample_rate, window_s, hop_s)
        except ValueError as error:
            raise ConfigError(str(error)) from error
        shortest = min(m.bundle.window.window_s for m in models)
        if self.geometry.hop_s > shortest:
            raise ConfigError(
                f"hop {self.geometry.hop_s:g} s must lie in (0, {shortest:g}] s, "
                "the shortest window: a longer hop would leave audio between windows unscored"
            )
        total = sum(m.weight for m in models)
        self.weights = np.array([m.weight / total for m in models])
        self.threshold = float(np.dot(self.weights, [m.threshold for m in models]))

    @property
    def raise_at(self) -> float | None:
        """The evidence rule's operating point (nats): the weighted mean of the cards' own, None
        when a card has none (the rule then uses ``decisions.DEFAULT_RAISE_AT``)."""
        points = [m.bundle.card.operating_point for m in self.models]
        if any(point is None for point in points):
            return None
        return float(np.dot(self.weights, [p.raise_at for p in points if p is not None]))

    @classmethod
    def load(
        cls,
        paths: Sequence[str | Path],
        threshold: ThresholdName | float = "eer",
        weights: Sequence[float] | None = None,
        hop_s: float | None = None,
        window_s: float | None = None,
        trusted_keys: TrustedKeys | None = None,
    ) -> ModelSet:
        """Load and verify the bundles ``paths`` (``default``: the embedded one); with
        ``trusted_keys``, each must be signed by one of them."""
        weights = list(weights) if weights is not None else [1.0] * len(paths)
        if len(weights) != len(paths) or any(w <= 0 or not math.isfinite(w) for w in weights):
            raise ConfigError("give one positive weight per model")
        models = []
        for path, weight in zip(paths, weights, strict=True):
            bundle = load_bundle(resolve_bundle_path(path), trusted_keys)
            models.append(LoadedModel(bundle, pick_threshold(bundle, threshold), weight))
        return cls(models, hop_s, window_s)

    @classmethod
    def from_settings(
        cls,
        settings: ModelSettings,
        bundles: Sequence[str | Path] = (),
        threshold: ThresholdName | float | None = None,
        hop_s: float | None = None,
        window_s: float | None = None,
    ) -> ModelSet:
        """The models ``[models]`` names, with its threshold, weights, hop and trusted keys (the
        key files read again each time: a reload picks up a new key). ``bundles`` (a command's
        ``--model``) replace its bundles and weights; ``threshold`` and ``hop_s`` override."""
        return cls.load(
            list(bundles) or list(settings.bundles),
            threshold=threshold if threshold is not None else settings.threshold,
            weights=None if bundles else settings.weights,
            hop_s=hop_s if hop_s is not None else settings.hop_s,
            window_s=window_s,
            trusted_keys=load_trusted_keys(settings.trusted_keys),
        )

    @property
    def paths(self) -> list[Path]:
        return [m.bundle.path for m in self.models]

    @property
    def card_sha256s(self) -> list[str]:
        """Each bundle's model card as verified at load (see ``load_bundle``)."""
        return [m.bundle.card_sha256 for m in self.models]

    @property
    def frontend_inputs(self) -> list[tuple[FrontendSpec, int]]:
        """Per model, its front end and how many samples of each window it takes (the last
        ones: a shorter model scores the end of the longest model's window)."""
        return [(m.bundle.frontend_spec, m.bundle.window.samples) for m in self.models]

    @property
    def identity(self) -> dict[str, str]:
        """``{"name", "version"}`` for events: joined with ``+`` when several models fuse."""
        return {
            "name": "+".join(m.name for m in self.models),
            "version": "+".join(m.version for m in self.models),
        }

    def fuse(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``raw`` (models, windows) -> (fused P(synthetic), fused raw), each (windows,).

        The fused raw output is the raw output itself for one model, else the weighted mean of
        the calibrated log-odds.
        """
        scores = np.stack([m.score(r) for m, r in zip(self.models, raw, strict=True)])
        fused = (self.weights[:, None] * scores).sum(axis=0).astype(np.float32)
        if len(self.models) == 1:
            return fused, np.asarray(raw[0], dtype=np.float32)
        clipped = np.clip(scores.astype(np.float64), 1e-7, 1 - 1e-7)
        log_odds = (self.weights[:, None] * np.log(clipped / (1 - clipped))).sum(axis=0)
        return fused, log_odds.astype(np.float32)
