"""Evaluation metrics of a spoofing countermeasure: EER, min DCF, ROC AUC, operating points.

Score convention (the ASVspoof CM score file): HIGHER = MORE BONA FIDE. A trial is flagged as spoof
when its score is below the decision threshold (``score < threshold``).

Names, from the point of view of a call centre, where the detector's job is to flag spoofs:

=====================  ==========================================  ===============================
here                   meaning                                     ASVspoof name
=====================  ==========================================  ===============================
``false_alarm_rate``   bona fide trials flagged as spoof           FRR, P_miss (bona fide missed)
``miss_rate``          spoofed trials accepted as bona fide        FAR, P_fa (spoof accepted)
=====================  ==========================================  ===============================

ASVspoof treats bona fide speech as the target class, so its "false acceptance" is our miss and
its "false rejection" is our false alarm.

``det_curve`` and ``compute_eer`` follow ``compute_det_curve`` and ``compute_eer`` of the official
ASVspoof 2019/2021 evaluation package (``eval_metrics.py``): a step DET curve over the sorted
scores, no interpolation. On that curve the point at threshold ``t`` rejects the trials scoring
``<= t`` (the official cumulative sums), whereas ``binary_report``, ``threshold_sweep`` and
``threshold_at_far`` flag the trials scoring ``< t`` (the official ``obtain_asv_error_rates``);
the two differ only for trials scoring exactly ``t``. ``compute_min_dcf`` follows
``compute_mindcf`` of the ASVspoof 5 evaluation package (``calculate_modules.py``).

Every function refuses an empty class, non-finite scores and arrays that are not 1-D with a
``ValueError`` that says which input is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

BONAFIDE = "bonafide"
SPOOF = "spoof"

# ASVspoof 5 min DCF cost model (evaluation plan; calculate_metrics.py).
ASVSPOOF5_P_SPOOF = 0.05
ASVSPOOF5_C_MISS = 1.0
ASVSPOOF5_C_FA = 10.0


def validate_scores(values: ArrayLike, name: str) -> FloatArray:
    """``values`` as a 1-D float64 array; ``ValueError`` naming ``name`` if empty, not 1-D, not
    numeric, or not finite."""
    try:
        scores = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: scores must be numbers ({error})") from error
    if scores.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of scores, got shape {scores.shape}")
    if scores.size == 0:
        raise ValueError(f"{name}: no scores (the class is empty)")
    n_nan = int(np.isnan(scores).sum())
    if n_nan:
        raise ValueError(f"{name}: {n_nan} of {scores.size} scores are NaN")
    n_inf = int(np.isinf(scores).sum())
    if n_inf:
        raise ValueError(f"{name}: {n_inf} of {scores.size} scores are infinite")
    return scores


def _validate_pair(bonafide: ArrayLike, spoof: ArrayLike) -> tuple[FloatArray, FloatArray]:
    return validate_scores(bonafide, "bona fide scores"), validate_scores(spoof, "spoof scores")


def _validate_threshold(threshold: float, name: str = "threshold") -> float:
    value = float(threshold)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {threshold!r}")
    return value


@dataclass(frozen=True)
class DetCurve:
    """The step DET curve of the official ASVspoof ``compute_det_curve``.

    Point 0 is below every score (threshold = lowest score - 0.001: nothing rejected); point
    ``i >= 1`` is at the ``i``-th lowest score and rejects the ``i`` lowest-scoring trials (ties
    are ordered bona fide first, spoofed second, by a stable sort).
    """

    thresholds: FloatArray
    false_alarm_rate: FloatArray  # bona fide rejected (ASVspoof frr)
    miss_rate: FloatArray  # spoof accepted (ASVspoof far)


def det_curve(bonafide_scores: ArrayLike, spoof_scores: ArrayLike) -> DetCurve:
    """The ASVspoof step DET curve: one point per trial plus the starting point."""
    bonafide, spoof = _validate_pair(bonafide_scores, spoof_scores)
    n_bonafide, n_spoof = bonafide.size, spoof.size
    all_scores = np.concatenate((bonafide, spoof))
    is_bonafide = np.concatenate((np.ones(n_bonafide), np.zeros(n_spoof)))
    order = np.argsort(all_scores, kind="mergesort")
    bonafide_at_or_below = np.cumsum(is_bonafide[order])
    spoof_above = n_spoof - (np.arange(1, all_scores.size + 1) - bonafide_at_or_below)
    false_alarm_rate = np.concatenate((np.atleast_1d(0), bonafide_at_or_below / n_bonafide))
    miss_rate = np.concatenate((np.atleast_1d(1), spoof_above / n_spoof))
    thresholds = np.concatenate((np.atleast_1d(all_scores[order[0]] - 0.001), all_scores[order]))
    return DetCurve(
        thresholds=thresholds.astype(np.float64),
        false_alarm_rate=false_alarm_rate.astype(np.float64),
        miss_rate=miss_rate.astype(np.float64),
    )


def compute_eer(bonafide_scores: ArrayLike, spoof_scores: ArrayLike) -> tuple[float, float]:
    """Equal error rate as a FRACTION (0.05 = 5 %) and its threshold, the ASVspoof way.

    The point of the step DET curve where ``|false alarm rate - miss rate|`` is smallest (the
    first such point); the EER is the mean of the two rates there. No interpolation.
    """
    curve = det_curve(bonafide_scores, spoof_scores)
    index = int(np.argmin(np.abs(curve.false_alarm_rate - curve.miss_rate)))
    eer = np.mean((curve.false_alarm_rate[index], curve.miss_rate[index]))
    return float(eer), float(curve.thresholds[index])


def spoofness_eer(spoofness: np.ndarray, is_spoof: np.ndarray) -> float:
    """The EER (a fraction) of scores that rise with how spoofed a trial looks, such as a model's
    raw output during training, where :func:`compute_eer` wants scores that rise with bona fide."""
    spoofness = np.asarray(spoofness, dtype=np.float64)
    is_spoof = np.asarray(is_spoof, dtype=bool)
    if spoofness.shape != is_spoof.shape:
        raise ValueError(f"{spoofness.size} scores for {is_spoof.size} labels")
    return compute_eer(-spoofness[~is_spoof], -spoofness[is_spoof])[0]


def compute_min_dcf(
    bonafide_scores: ArrayLike,
    spoof_scores: ArrayLike,
    p_spoof: float = ASVSPOOF5_P_SPOOF,
    c_miss: float = ASVSPOOF5_C_MISS,
    c_fa: float = ASVSPOOF5_C_FA,
) -> tuple[float, float]:
    """Normalised minimum detection cost and its threshold, as in the ASVspoof 5 package.

    ``DCF(t) = c_miss (1 - p_spoof) P_miss(t) + c_fa p_spoof P_fa(t)`` where, in ASVspoof 5 terms,
    ``P_miss`` is the rate of bona fide trials rejected (our false alarm rate) and ``P_fa`` the
    rate of spoofs accepted (our miss rate), over the points of the step DET curve; the minimum
    (first point reaching it) is divided by ``min(c_miss (1 - p_spoof), c_fa p_spoof)``, the
    cost of the better of the two trivial systems (accept all, reject all). The defaults are the
    ASVspoof 5 cost model: C_miss = 1, C_fa = 10, pi_spoof = 0.05.
    """
    if not 0.0 < p_spoof < 1.0:
        raise ValueError(f"p_spoof must be in (0, 1), got {p_spoof}")
    if not (c_miss > 0.0 and c_fa > 0.0):
        raise ValueError(f"costs must be positive, got c_miss={c_miss}, c_fa={c_fa}")
    curve = det_curve(bonafide_scores, spoof_scores)
    # Same arithmetic as the official loop, so that ties between points break the same way.
    p_target = 1 - p_spoof
    costs = c_miss * curve.false_alarm_rate * p_target + c_fa * curve.miss_rate * (1 - p_target)
    index = int(np.argmin(costs))
    default_cost = min(c_miss * p_target, c_fa * (1 - p_target))
    return float(costs[index] / default_cost), float(curve.thresholds[index])


def roc_auc(bonafide_scores: ArrayLike, spoof_scores: ArrayLike) -> float:
    """Area under the ROC curve: P(bona fide score > spoof score) + P(equal) / 2.

    The Mann-Whitney U statistic over every (bona fide, spoof) pair, counted exactly with
    integer arithmetic in O(n log n). 1 = perfect separation, 0.5 = chance.
    """
    bonafide, spoof = _validate_pair(bonafide_scores, spoof_scores)
    sorted_spoof = np.sort(spoof)
    below = np.searchsorted(sorted_spoof, bonafide, side="left").astype(np.int64)
    at_or_below = np.searchsorted(sorted_spoof, bonafide, side="right").astype(np.int64)
    twice_u = int(below.sum()) + int(at_or_below.sum())  # 2 * (wins + ties / 2)
    return twice_u / (2 * bonafide.size * spoof.size)


@dataclass(frozen=True)
class BinaryReport:
    """Decisions at one threshold. Positive class = spoof (flagged when ``score < threshold``).

    ``precision`` is 0 when nothing is flagged and ``f1`` is 0 when precision and recall are both
    0. ``confusion[true][predicted]`` counts trials.
    """

    threshold: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    false_alarm_rate: float  # bona fide flagged as spoof
    miss_rate: float  # spoof accepted as bona fide
    confusion: dict[str, dict[str, int]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "accuracy": self.accuracy,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "false_alarm_rate": self.false_alarm_rate,
            "miss_rate": self.miss_rate,
            "confusion": {true: dict(row) for true, row in self.confusion.items()},
        }


def binary_report(
    bonafide_scores: ArrayLike, spoof_scores: ArrayLike, threshold: float
) -> BinaryReport:
    """Accuracy, precision, recall, F1 (positive = spoof) and error rates at ``threshold``."""
    bonafide, spoof = _validate_pair(bonafide_scores, spoof_scores)
    threshold = _validate_threshold(threshold)
    false_alarms = int(np.count_nonzero(bonafide < threshold))
    detected = int(np.count_nonzero(spoof < threshold))
    correct_bonafide = bonafide.size - false_alarms
    missed = spoof.size - detected
    flagged = detected + false_alarms
    precision = detected / flagged if flagged else 0.0
    recall = detected / spoof.size
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return BinaryReport(
        threshold=threshold,
        accuracy=(detected + correct_bonafide) / (bonafide.size + spoof.size),
        precision=precision,
        recall=recall,
        f1=f1,
        false_alarm_rate=false_alarms / bonafide.size,
        miss_rate=missed / spoof.size,
        confusion={
            BONAFIDE: {BONAFIDE: correct_bonafide, SPOOF: false_alarms},
            SPOOF: {BONAFIDE: missed, SPOOF: detected},
        },
    )


def threshold_at_far(
    bonafide_scores: ArrayLike, spoof_scores: ArrayLike, far: float = 0.01
) -> float:
    """The highest threshold that flags at most a fraction ``far`` of the BONA FIDE trials.

    A false alarm is a real caller flagged as spoof (``score < threshold``). With ``n`` bona fide
    trials the largest allowed number of false alarms is ``k = max{k : k / n <= far}``, and the
    answer is the ``(k+1)``-th lowest bona fide score: at it at most ``k`` bona fide trials score
    strictly below, while any higher threshold flags at least ``k + 1``. It is therefore the
    tightest threshold meeting the target, the one that flags the most spoofs. With ``far = 0``
    it is the lowest bona fide score (no false alarm). ``spoof_scores`` are only validated; they
    do not move the threshold.
    """
    bonafide, _ = _validate_pair(bonafide_scores, spoof_scores)
    if not 0.0 <= far < 1.0:
        raise ValueError(f"far must be in [0, 1), got {far}")
    n = bonafide.size
    allowed = int(np.floor(far * n))
    while allowed + 1 <= n - 1 and (allowed + 1) / n <= far:  # float rounding of far * n
        allowed += 1
    while allowed > 0 and allowed / n > far:
        allowed -= 1
    return float(np.sort(bonafide)[allowed])


@dataclass(frozen=True)
class ThresholdSweep:
    """Error rates at each given threshold (flagged = ``score < threshold``)."""

    thresholds: FloatArray
    false_alarm_rate: FloatArray  # bona fide flagged
    miss_rate: FloatArray  # spoof accepted


def threshold_sweep(
    bonafide_scores: ArrayLike, spoof_scores: ArrayLike, thresholds: ArrayLike
) -> ThresholdSweep:
    """False-alarm and miss rates at every threshold in ``thresholds`` (for plots)."""
    bonafide, spoof = _validate_pair(bonafide_scores, spoof_scores)
    points = validate_scores(thresholds, "thresholds")
    flagged_bonafide = np.searchsorted(np.sort(bonafide), points, side="left")
    flagged_spoof = np.searchsorted(np.sort(spoof), points, side="left")
    return ThresholdSweep(
        thresholds=points,
        false_alarm_rate=(flagged_bonafide / bonafide.size).astype(np.float64),
        miss_rate=((spoof.size - flagged_spoof) / spoof.size).astype(np.float64),
    )


def is_bonafide_mask(labels: ArrayLike) -> NDArray[np.bool_]:
    """Labels as a boolean is-bona-fide mask.

    Accepts the strings ``"bonafide"``/``"spoof"`` or a boolean array (True = bona fide). Integer
    labels are refused: the training code uses 1 = spoof, the opposite of a bona fide mask.
    """
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"labels: expected a 1-D array, got shape {array.shape}")
    if array.dtype == np.bool_:
        return array
    if array.dtype.kind in "USO":
        as_text = array.astype(str)
        unknown = sorted(set(as_text.tolist()) - {BONAFIDE, SPOOF})
        if unknown:
            shown = ", ".join(map(repr, unknown[:5]))
            raise ValueError(f"labels: expected 'bonafide' or 'spoof', got {shown}")
        return np.asarray(as_text == BONAFIDE, dtype=np.bool_)
    raise ValueError(
        "labels: expected the strings 'bonafide'/'spoof' or a boolean is_bonafide array,"
        f" got dtype {array.dtype}"
    )


def _group_eers(
    scores: FloatArray,
    is_bonafide: NDArray[np.bool_],
    name: str,
    values: ArrayLike,
) -> dict[str, dict[str, Any]]:
    group = np.asarray(values)
    if group.shape != scores.shape:
        raise ValueError(
            f"group {name!r}: expected one value per trial ({scores.size}), got shape {group.shape}"
        )
    keys = group.astype(str)
    result: dict[str, dict[str, Any]] = {}
    for key in sorted(set(keys.tolist())):
        in_group = keys == key
        spoof = scores[in_group & ~is_bonafide]
        bonafide_in_group = scores[in_group & is_bonafide]
        # An attack id names spoofed trials only: compare with ALL bona fide (ASVspoof per-attack
        # EER). A condition (codec, channel) holds both classes: compare within the condition.
        reference = "group" if bonafide_in_group.size else "all"
        bonafide = bonafide_in_group if bonafide_in_group.size else scores[is_bonafide]
        entry: dict[str, Any] = {
            "n_bonafide": int(bonafide.size),
            "n_spoof": int(spoof.size),
            "bonafide_reference": reference,
            "eer": None,
            "eer_threshold": None,
        }
        if spoof.size:
            eer, threshold = compute_eer(bonafide, spoof)
            entry["eer"], entry["eer_threshold"] = eer, threshold
        result[key] = entry
    return result


def evaluate(
    scores: ArrayLike,
    labels: ArrayLike,
    groups: Mapping[str, ArrayLike] | None = None,
    *,
    far: float = 0.01,
) -> dict[str, Any]:
    """Every metric of a score file, as a JSON-serialisable dict.

    ``scores``: higher = more bona fide; ``labels``: ``"bonafide"``/``"spoof"`` or a boolean
    is_bonafide array. ``groups`` maps a grouping name (``"attack"``, ``"codec"``) to one value
    per trial; each value gets its own EER. A value that holds only spoofed trials (an attack id)
    is scored against ALL bona fide trials, the ASVspoof way; a value that holds both classes (a
    codec condition) is scored within itself; a value with no spoofed trial has ``eer`` None.
    ``far`` is the false-alarm target of the ``at_far`` operating point (bona fide flagged).
    """
    values = validate_scores(scores, "scores")
    is_bonafide = is_bonafide_mask(labels)
    if is_bonafide.shape != values.shape:
        raise ValueError(
            f"labels: expected one label per score ({values.size}), got {is_bonafide.size}"
        )
    bonafide, spoof = values[is_bonafide], values[~is_bonafide]
    if bonafide.size == 0:
        raise ValueError("labels: no bona fide trials")
    if spoof.size == 0:
        raise ValueError("labels: no spoof trials")
    eer, eer_threshold = compute_eer(bonafide, spoof)
    min_dcf, min_dcf_threshold = compute_min_dcf(bonafide, spoof)
    at_far_threshold = threshold_at_far(bonafide, spoof, far)
    at_far = binary_report(bonafide, spoof, at_far_threshold)
    return {
        "counts": {"bonafide": int(bonafide.size), "spoof": int(spoof.size)},
        "eer": eer,
        "eer_threshold": eer_threshold,
        "min_dcf": min_dcf,
        "min_dcf_threshold": min_dcf_threshold,
        "min_dcf_cost_model": {
            "p_spoof": ASVSPOOF5_P_SPOOF,
            "c_miss": ASVSPOOF5_C_MISS,
            "c_fa": ASVSPOOF5_C_FA,
        },
        "roc_auc": roc_auc(bonafide, spoof),
        "at_eer_threshold": binary_report(bonafide, spoof, eer_threshold).to_dict(),
        "at_far": {"target_false_alarm_rate": far, **at_far.to_dict()},
        "groups": {
            name: _group_eers(values, is_bonafide, name, group_values)
            for name, group_values in (groups or {}).items()
        },
    }
