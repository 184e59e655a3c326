"""Logistic calibration of a detector's raw output into a probability of spoof.

A model's raw output ``r`` follows the models' convention: HIGHER = MORE SPOOF (a spoof logit or an
uncalibrated spoof score, see ``dfd.detectors.common.OutputConvention``). Calibration maps it to

    p_spoof = sigmoid(a * r + b)

with slope ``a`` and offset ``b`` fitted by ``fit_logistic`` (Newton's method, i.e. IRLS, on the
binary cross-entropy; numpy only). The score that ``dfd eval`` writes follows the ASVspoof
convention, HIGHER = MORE BONA FIDE: it is ``log_odds_bonafide(r) = -(a * r + b)``, the log-odds of
bona fide, ``log(P(bona fide) / P(spoof))``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dfd.core.typed_config import build_dataclass
from dfd.detectors.bundle import Calibration, Thresholds

FloatArray = NDArray[np.float64]

# Fitting is done on standardised raw outputs, where these are scale-free.
L2_PENALTY = 1e-6  # on the standardised slope and the offset, per unit of total sample weight
MAX_ITERATIONS = 100
TOLERANCE = 1e-10  # on the Newton decrement (half the squared Newton step in the Hessian norm)


@dataclass(frozen=True)
class LogisticFit:
    """How a calibration was fitted, kept in the model card.

    ``prior`` is the spoof prevalence the probabilities assume: the training set's own share of
    spoofs unless ``fit_logistic`` was given one. ``cross_entropy`` is the weighted mean binary
    cross-entropy at the solution, in nats (0.693 = chance at a prior of 0.5).
    """

    converged: bool
    iterations: int
    n_bonafide: int
    n_spoof: int
    prior: float
    cross_entropy: float


@dataclass(frozen=True)
class ScoreCalibration:
    """``p_spoof = sigmoid(slope * raw + offset)``; raw output higher = more spoof."""

    method: Literal["logistic"] = "logistic"
    slope: float = 1.0
    offset: float = 0.0
    fit: LogisticFit | None = None

    def __post_init__(self) -> None:
        if self.method != "logistic":
            raise ValueError(f"calibration method must be 'logistic', got {self.method!r}")
        for name in ("slope", "offset"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"calibration {name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"calibration {name} must be finite, got {value!r}")

    def spoof_log_odds(self, raw: ArrayLike) -> FloatArray:
        """``slope * raw + offset``: the log-odds of spoof."""
        values = np.asarray(raw, dtype=np.float64)
        return np.asarray(self.slope * values + self.offset, dtype=np.float64)

    def apply(self, raw: ArrayLike) -> FloatArray:
        """Probability of spoof for each raw output (same shape as ``raw``)."""
        return _sigmoid(self.spoof_log_odds(raw))

    def log_odds_bonafide(self, raw: ArrayLike) -> FloatArray:
        """``-(slope * raw + offset)``: the ASVspoof-convention score (higher = more bona fide)."""
        return -self.spoof_log_odds(raw)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready mapping for the model card; ``from_dict`` reads it back."""
        data: dict[str, Any] = {"method": self.method, "slope": self.slope, "offset": self.offset}
        if self.fit is not None:
            data["fit"] = asdict(self.fit)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "calibration") -> ScoreCalibration:
        """Inverse of ``to_dict``; ``ConfigError`` (a ``ValueError``) on unknown or bad keys."""
        return build_dataclass(cls, data, where)


def _sigmoid(z: FloatArray) -> FloatArray:
    # exp of a non-positive number only: no overflow for large |z|.
    e = np.exp(-np.abs(z))
    return np.asarray(np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)), dtype=np.float64)


def _objective(
    theta: FloatArray, x: FloatArray, y: FloatArray, weights: FloatArray
) -> tuple[float, FloatArray, FloatArray]:
    """Weighted cross-entropy + L2, with its gradient and Hessian, at ``theta = (a, b)``."""
    z = theta[0] * x + theta[1]
    cross_entropy = float(np.sum(weights * (np.logaddexp(0.0, z) - y * z)))
    p = _sigmoid(z)
    residual = weights * (p - y)
    curvature = weights * p * (1.0 - p)
    gradient = np.array([residual @ x, residual.sum()]) + L2_PENALTY * theta
    hessian = np.array(
        [[curvature @ (x * x), curvature @ x], [curvature @ x, curvature.sum()]]
    ) + L2_PENALTY * np.eye(2)
    loss = cross_entropy + 0.5 * L2_PENALTY * float(theta @ theta)
    return loss, gradient, hessian


def fit_logistic(
    raw: ArrayLike, is_spoof: ArrayLike, prior: float | None = None
) -> ScoreCalibration:
    """Fit ``p_spoof = sigmoid(a * raw + b)`` by damped Newton's method (IRLS).

    Minimises the weighted binary cross-entropy plus a tiny L2 penalty, which keeps the solution
    finite when the classes are separable (the slope then grows only until the penalty balances
    the vanishing gradient). ``prior``, if given, is the spoof prevalence the probabilities
    should assume: the two classes are reweighted to carry ``prior`` and ``1 - prior`` of the
    total weight (the BOSARIS/ASVspoof prior-weighted logistic regression); by default every
    trial weighs the same, so the training set's own prevalence is assumed. At most
    ``MAX_ITERATIONS`` steps; ``result.fit.converged`` says whether the Newton decrement fell
    below ``TOLERANCE``.
    """
    x_raw = np.asarray(raw, dtype=np.float64)
    labels = np.asarray(is_spoof)
    if x_raw.ndim != 1 or labels.ndim != 1:
        raise ValueError("raw and is_spoof must be 1-D arrays")
    if x_raw.shape != labels.shape:
        raise ValueError(f"raw has {x_raw.size} values but is_spoof has {labels.size}")
    if labels.dtype != np.bool_:
        raise ValueError(f"is_spoof must be a boolean array, got dtype {labels.dtype}")
    if not np.all(np.isfinite(x_raw)):
        raise ValueError("raw outputs must be finite (no NaN or infinity)")
    n_spoof = int(labels.sum())
    n_bonafide = labels.size - n_spoof
    if n_spoof == 0:
        raise ValueError("is_spoof: no spoof trials; calibration needs both classes")
    if n_bonafide == 0:
        raise ValueError("is_spoof: no bona fide trials; calibration needs both classes")
    if prior is not None and not 0.0 < prior < 1.0:
        raise ValueError(f"prior must be in (0, 1), got {prior}")

    center, scale = float(x_raw.mean()), float(x_raw.std())
    if scale == 0.0:
        raise ValueError("raw outputs are all equal: nothing to calibrate")
    x = (x_raw - center) / scale
    y = labels.astype(np.float64)
    if prior is None:
        weights = np.full(labels.size, 1.0 / labels.size)
        effective_prior = n_spoof / labels.size
    else:
        weights = np.where(labels, prior / n_spoof, (1.0 - prior) / n_bonafide)
        effective_prior = prior

    theta = np.array([0.0, math.log(effective_prior / (1.0 - effective_prior))])
    loss, gradient, hessian = _objective(theta, x, y, weights)
    converged = False
    iterations = 0
    while iterations < MAX_ITERATIONS:
        step = np.linalg.solve(hessian, gradient)
        decrement = 0.5 * float(gradient @ step)
        if decrement < TOLERANCE:
            converged = True
            break
        iterations += 1
        # Backtracking (Armijo): the full Newton step can overshoot far from the optimum.
        length = 1.0
        while length >= 1e-8:
            candidate = theta - length * step
            new_loss, new_gradient, new_hessian = _objective(candidate, x, y, weights)
            if new_loss <= loss - 0.25 * length * decrement:
                break
            length *= 0.5
        else:
            break  # no step decreases the loss any more: stop, reported as not converged
        theta, loss, gradient, hessian = candidate, new_loss, new_gradient, new_hessian

    slope = float(theta[0] / scale)
    offset = float(theta[1] - theta[0] * center / scale)
    z = theta[0] * x + theta[1]
    cross_entropy = float(np.sum(weights * (np.logaddexp(0.0, z) - y * z)))
    return ScoreCalibration(
        method="logistic",
        slope=slope,
        offset=offset,
        fit=LogisticFit(
            converged=converged,
            iterations=iterations,
            n_bonafide=n_bonafide,
            n_spoof=n_spoof,
            prior=float(effective_prior),
            cross_entropy=cross_entropy,
        ),
    )


@dataclass(frozen=True)
class CardCalibration:
    """What a model card needs from a labelled set of raw outputs: the calibration (left
    uncalibrated when the fit ranks the classes backwards: ``fitted_slope`` says so), the window
    thresholds at the set's EER and at 1 % false alarms, and the spoof log-odds of each trial."""

    calibration: Calibration
    thresholds: Thresholds
    spoof_log_odds: FloatArray
    fitted_slope: float


def card_calibration(raw: ArrayLike, is_spoof: ArrayLike) -> CardCalibration:
    from dfd.trainers.metrics import compute_eer, threshold_at_far

    raw_values = np.asarray(raw, dtype=np.float64)
    labels = np.asarray(is_spoof)
    fitted = fit_logistic(raw_values, labels)
    if fitted.slope > 0:
        calibration = Calibration(slope=fitted.slope, offset=fitted.offset, calibrated=True)
    else:  # never flip a model silently
        calibration = Calibration()
    log_odds = calibration.slope * raw_values + calibration.offset
    bonafide_scores, spoof_scores = -log_odds[~labels], -log_odds[labels]
    eer_threshold = compute_eer(bonafide_scores, spoof_scores)[1]
    far_threshold = threshold_at_far(bonafide_scores, spoof_scores, far=0.01)
    thresholds = Thresholds(eer=probability(-eer_threshold), far_1pct=probability(-far_threshold))
    return CardCalibration(calibration, thresholds, log_odds, fitted.slope)


def probability(log_odds: float) -> float:
    """``sigmoid(log_odds)``, exactly 0 far below."""
    return 1.0 / (1.0 + math.exp(-log_odds)) if log_odds > -700 else 0.0
