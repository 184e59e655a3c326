"""Evaluation metrics, score calibration and evaluation plots (dfd.trainers.metrics, .calibration,
.plots), checked against hand-computed values and independent brute-force implementations.

Scores: higher = more bona fide; a trial is flagged as spoof when its score is below the threshold.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from dfd.core.typed_config import ConfigError
from dfd.trainers.calibration import MAX_ITERATIONS, ScoreCalibration, fit_logistic
from dfd.trainers.metrics import (
    binary_report,
    compute_eer,
    compute_min_dcf,
    evaluate,
    roc_auc,
    spoofness_eer,
    threshold_at_far,
    threshold_sweep,
)

# Hand example used by several tests (8 trials, no ties):
#   sorted scores: 0s 1b 2b 3s 4s 5b 6b 7b   (b = bona fide, s = spoof; 5 bona fide, 3 spoof)
HAND_BONAFIDE = np.array([5.0, 1.0, 7.0, 2.0, 6.0])
HAND_SPOOF = np.array([3.0, 0.0, 4.0])

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def brute_force_eer(bonafide: np.ndarray, spoof: np.ndarray) -> tuple[float, float]:
    """For each candidate threshold t (below all scores, then every score in ascending order):
    FRR = share of bona fide with score <= t, FAR = share of spoof with score > t; take the first
    t minimising |FRR - FAR| and average the two rates there."""
    candidates = np.concatenate(
        (
            [np.min(np.concatenate((bonafide, spoof))) - 1.0],
            np.sort(np.concatenate((bonafide, spoof))),
        )
    )
    best: tuple[float, float, float] | None = None
    for t in candidates:
        frr = np.count_nonzero(bonafide <= t) / bonafide.size
        far = np.count_nonzero(spoof > t) / spoof.size
        gap = abs(frr - far)
        if best is None or gap < best[0]:
            best = (gap, (frr + far) / 2, t)
    assert best is not None
    return best[1], best[2]


def brute_force_min_dcf(
    bonafide: np.ndarray, spoof: np.ndarray, p_spoof: float, c_miss: float, c_fa: float
) -> float:
    candidates = np.concatenate(([-np.inf], np.sort(np.concatenate((bonafide, spoof)))))
    costs = [
        c_miss * (1 - p_spoof) * np.mean(bonafide <= t) + c_fa * p_spoof * np.mean(spoof > t)
        for t in candidates
    ]
    return min(costs) / min(c_miss * (1 - p_spoof), c_fa * p_spoof)


def random_scores(
    rng: np.random.Generator, n_bonafide: int, n_spoof: int, shift: float
) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(shift, 1.0, n_bonafide), rng.normal(0.0, 1.5, n_spoof)


# --- EER -----------------------------------------------------------------------------------------


def test_eer_is_zero_for_perfectly_separated_scores() -> None:
    eer, threshold = compute_eer([2.0, 3.0, 4.0], [-1.0, 0.0, 1.0])
    assert eer == 0.0
    assert threshold == 1.0  # the point rejecting every score <= 1: all spoofs, no bona fide


def test_eer_is_one_half_for_identical_distributions(rng: np.random.Generator) -> None:
    eer, _ = compute_eer(rng.normal(size=20_000), rng.normal(size=20_000))
    assert eer == pytest.approx(0.5, abs=0.015)


def test_eer_of_the_hand_example_uses_the_step_curve() -> None:
    # Step DET curve (threshold t rejects scores <= t): FRR = bona fide rejected, FAR = spoofs kept
    #   t = -0.001: FRR 0/5, FAR 3/3   |diff| 1
    #   t = 0:      FRR 0/5, FAR 2/3   0.667
    #   t = 1:      FRR 1/5, FAR 2/3   0.467
    #   t = 2:      FRR 2/5, FAR 2/3   0.267
    #   t = 3:      FRR 2/5, FAR 1/3   0.067   <- minimum
    #   t = 4:      FRR 2/5, FAR 0/3   0.4
    # EER = (2/5 + 1/3) / 2 = 11/30 at threshold 3. (Interpolating the DET curve would give 0.4.)
    eer, threshold = compute_eer(HAND_BONAFIDE, HAND_SPOOF)
    assert eer == pytest.approx(11 / 30, abs=1e-12)
    assert threshold == 3.0


def test_eer_is_one_for_reversed_scores() -> None:
    # Every spoof scores above every bona fide: FRR reaches 1 before FAR leaves 1.
    assert compute_eer([0.0, 1.0], [5.0, 6.0]) == (1.0, 1.0)


def test_eer_ties_put_bona_fide_first_like_the_official_stable_sort() -> None:
    # Every score tied: mergesort keeps bona fide (concatenated first) before spoof, so the curve
    # goes (0, 1) -> (1/2, 1) -> (1, 1): the official code reports EER 1, not 1/2.
    eer, _ = compute_eer([1.0, 1.0], [1.0, 1.0])
    assert eer == 1.0


@pytest.mark.parametrize(
    ("n_bonafide", "n_spoof", "shift"), [(50, 70, 1.0), (200, 37, 2.0), (13, 400, 0.3)]
)
def test_eer_matches_a_brute_force_threshold_search(
    rng: np.random.Generator, n_bonafide: int, n_spoof: int, shift: float
) -> None:
    bonafide, spoof = random_scores(rng, n_bonafide, n_spoof, shift)
    eer, threshold = compute_eer(bonafide, spoof)
    expected_eer, expected_threshold = brute_force_eer(bonafide, spoof)
    assert eer == pytest.approx(expected_eer, abs=1e-12)
    assert threshold == expected_threshold


def test_spoofness_eer_reads_scores_that_rise_with_spoofing(rng: np.random.Generator) -> None:
    is_spoof = np.array([False, False, True, True])
    assert spoofness_eer(np.array([0.1, 0.2, 0.8, 0.9]), is_spoof) == 0.0
    assert spoofness_eer(np.array([0.8, 0.9, 0.1, 0.2]), is_spoof) == 1.0
    bonafide, spoof = random_scores(rng, 60, 45, 1.0)  # higher = more bona fide
    spoofness = -np.concatenate((bonafide, spoof))
    labels = np.concatenate((np.zeros(60, dtype=bool), np.ones(45, dtype=bool)))
    order = rng.permutation(105)
    assert spoofness_eer(spoofness[order], labels[order]) == compute_eer(bonafide, spoof)[0]
    with pytest.raises(ValueError, match="4 scores for 3 labels"):
        spoofness_eer(np.zeros(4), np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="1 scores for 2 labels"):
        spoofness_eer(np.float64(0.5), np.zeros(2, dtype=bool))


# --- min DCF -------------------------------------------------------------------------------------


def test_min_dcf_of_the_hand_example() -> None:
    # DCF(t) = 1 * 0.95 * FRR + 10 * 0.05 * FAR on the curve above; normaliser min(0.95, 0.5).
    #   t = -0.001: 0.5      t = 0: 0.333 (minimum)      t = 1: 0.523      t = 4: 0.38
    min_dcf, threshold = compute_min_dcf(HAND_BONAFIDE, HAND_SPOOF)
    assert min_dcf == pytest.approx((0.5 * 2 / 3) / 0.5)
    assert threshold == 0.0


def test_min_dcf_is_zero_when_separated_and_one_when_useless() -> None:
    assert compute_min_dcf([2.0, 3.0], [0.0, 1.0])[0] == pytest.approx(0.0)
    # Reversed scores: no threshold beats the best trivial system (accept everything).
    assert compute_min_dcf([0.0, 1.0], [2.0, 3.0])[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("p_spoof", "c_miss", "c_fa"), [(0.05, 1.0, 10.0), (0.5, 1.0, 1.0), (0.2, 3.0, 2.0)]
)
def test_min_dcf_matches_a_brute_force_sweep(
    rng: np.random.Generator, p_spoof: float, c_miss: float, c_fa: float
) -> None:
    bonafide, spoof = random_scores(rng, 150, 90, 1.2)
    min_dcf, _ = compute_min_dcf(bonafide, spoof, p_spoof=p_spoof, c_miss=c_miss, c_fa=c_fa)
    assert min_dcf == pytest.approx(brute_force_min_dcf(bonafide, spoof, p_spoof, c_miss, c_fa))


# --- ROC AUC -------------------------------------------------------------------------------------


def test_roc_auc_matches_pair_counting_with_ties(rng: np.random.Generator) -> None:
    bonafide = np.round(rng.normal(0.8, 1.0, 300), 1)  # rounding makes many ties
    spoof = np.round(rng.normal(0.0, 1.0, 211), 1)
    wins = (bonafide[:, None] > spoof[None, :]).sum()
    ties = (bonafide[:, None] == spoof[None, :]).sum()
    assert ties > 0
    assert roc_auc(bonafide, spoof) == pytest.approx((wins + ties / 2) / (300 * 211), abs=1e-12)


def test_roc_auc_extremes() -> None:
    assert roc_auc([2.0, 3.0], [0.0, 1.0]) == 1.0
    assert roc_auc([0.0, 1.0], [2.0, 3.0]) == 0.0
    assert roc_auc([1.0, 1.0], [1.0]) == 0.5


# --- decisions at a threshold --------------------------------------------------------------------


def test_binary_report_against_hand_counts() -> None:
    # threshold 3.5 flags bona fide {1, 2} and spoofs {0, 3}; spoof 4 is missed.
    report = binary_report(HAND_BONAFIDE, HAND_SPOOF, 3.5)
    assert report.confusion == {
        "bonafide": {"bonafide": 3, "spoof": 2},
        "spoof": {"bonafide": 1, "spoof": 2},
    }
    assert report.accuracy == pytest.approx(5 / 8)
    assert report.precision == pytest.approx(2 / 4)
    assert report.recall == pytest.approx(2 / 3)
    assert report.f1 == pytest.approx(4 / 7)
    assert report.false_alarm_rate == pytest.approx(2 / 5)
    assert report.miss_rate == pytest.approx(1 / 3)
    assert json.loads(json.dumps(report.to_dict()))["confusion"] == report.confusion


def test_binary_report_flags_strictly_below_the_threshold() -> None:
    report = binary_report(HAND_BONAFIDE, HAND_SPOOF, 3.0)  # spoof scoring 3.0 is accepted
    assert report.confusion["spoof"] == {"bonafide": 2, "spoof": 1}


def test_binary_report_with_nothing_flagged_has_zero_precision() -> None:
    report = binary_report(HAND_BONAFIDE, HAND_SPOOF, -10.0)
    assert (report.precision, report.recall, report.f1) == (0.0, 0.0, 0.0)
    assert report.miss_rate == 1.0
    assert report.accuracy == pytest.approx(5 / 8)


def test_threshold_at_far_is_the_tightest_threshold_meeting_the_target(
    rng: np.random.Generator,
) -> None:
    spoof = rng.normal(-2.0, 1.0, 100)
    for bonafide in (rng.normal(size=1000), np.round(rng.normal(size=777), 1)):  # ties too
        threshold = threshold_at_far(bonafide, spoof, far=0.01)
        assert np.mean(bonafide < threshold) <= 0.01
        next_up = np.nextafter(threshold, np.inf)
        assert np.mean(bonafide < next_up) > 0.01
        assert binary_report(bonafide, spoof, threshold).false_alarm_rate <= 0.01


def test_threshold_at_far_counts_exactly_despite_float_rounding() -> None:
    bonafide = np.arange(100.0)
    # 0.29 * 100 == 28.999999999999996 in floating point; 29 false alarms are still allowed.
    threshold = threshold_at_far(bonafide, [0.0], far=0.29)
    assert np.count_nonzero(bonafide < threshold) == 29
    assert threshold_at_far(bonafide, [0.0], far=0.0) == 0.0  # no false alarm at all


def test_threshold_sweep_matches_direct_counts(rng: np.random.Generator) -> None:
    bonafide, spoof = random_scores(rng, 40, 60, 1.0)
    thresholds = np.array([-3.0, -0.5, 0.0, bonafide[0], 1.7, 5.0])
    sweep = threshold_sweep(bonafide, spoof, thresholds)
    for t, false_alarm, miss in zip(
        thresholds, sweep.false_alarm_rate, sweep.miss_rate, strict=True
    ):
        assert false_alarm == np.mean(bonafide < t)
        assert miss == np.mean(spoof >= t)


# --- evaluate ------------------------------------------------------------------------------------


def test_evaluate_reports_overall_and_per_group_eers(rng: np.random.Generator) -> None:
    bonafide, spoof = random_scores(rng, 120, 90, 1.5)
    scores = np.concatenate((bonafide, spoof))
    labels = np.array(["bonafide"] * 120 + ["spoof"] * 90)
    attack = np.array(["-"] * 120 + ["A01"] * 30 + ["A02"] * 60)
    codec = np.array((["g711", "opus"] * 60) + (["g711", "opus", "opus"] * 30))
    result = evaluate(scores, labels, {"attack": attack, "codec": codec})
    json.dumps(result, allow_nan=False)  # JSON-serialisable as it stands

    assert result["counts"] == {"bonafide": 120, "spoof": 90}
    assert (result["eer"], result["eer_threshold"]) == compute_eer(bonafide, spoof)
    assert result["min_dcf"] == compute_min_dcf(bonafide, spoof)[0]
    assert result["roc_auc"] == roc_auc(bonafide, spoof)
    assert result["at_far"]["false_alarm_rate"] <= 0.01

    attacks = result["groups"]["attack"]
    assert attacks["A01"]["eer"] == compute_eer(bonafide, spoof[:30])[0]  # vs ALL bona fide
    assert attacks["A01"]["bonafide_reference"] == "all"
    assert attacks["A02"]["n_bonafide"] == 120
    assert attacks["-"]["eer"] is None  # bona fide only
    opus = result["groups"]["codec"]["opus"]
    is_opus = codec == "opus"
    within = compute_eer(bonafide[is_opus[:120]], spoof[is_opus[120:]])
    assert (opus["eer"], opus["eer_threshold"]) == within  # within the condition
    assert (opus["n_bonafide"], opus["n_spoof"], opus["bonafide_reference"]) == (60, 60, "group")


def test_evaluate_accepts_a_boolean_is_bonafide_mask() -> None:
    scores = np.concatenate((HAND_BONAFIDE, HAND_SPOOF))
    mask = np.array([True] * 5 + [False] * 3)
    as_strings = np.where(mask, "bonafide", "spoof")
    assert evaluate(scores, mask) == evaluate(scores, as_strings)


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bonafide", "spoof", "message"),
    [
        ([], [1.0], "bona fide scores: no scores"),
        ([1.0], [], "spoof scores: no scores"),
        ([1.0, math.nan], [0.0], "bona fide scores: 1 of 2 scores are NaN"),
        ([1.0], [0.0, math.inf], "spoof scores: 1 of 2 scores are infinite"),
        ([[1.0, 2.0]], [0.0], "1-D"),
        (["a"], [0.0], "must be numbers"),
    ],
)
def test_metrics_refuse_bad_scores(
    bonafide: list[object], spoof: list[float], message: str
) -> None:
    for metric in (compute_eer, compute_min_dcf, roc_auc, threshold_at_far):
        with pytest.raises(ValueError, match=message):
            metric(bonafide, spoof)
    with pytest.raises(ValueError, match=message):
        binary_report(bonafide, spoof, 0.0)


def test_metrics_refuse_bad_parameters() -> None:
    with pytest.raises(ValueError, match="p_spoof"):
        compute_min_dcf([1.0], [0.0], p_spoof=1.0)
    with pytest.raises(ValueError, match="far must be in"):
        threshold_at_far([1.0], [0.0], far=1.0)
    with pytest.raises(ValueError, match="threshold must be a finite"):
        binary_report([1.0], [0.0], math.nan)


def test_evaluate_refuses_bad_labels() -> None:
    with pytest.raises(ValueError, match="'genuine'"):
        evaluate([1.0, 0.0], ["genuine", "spoof"])
    with pytest.raises(ValueError, match="boolean is_bonafide"):
        evaluate([1.0, 0.0], np.array([0, 1]))  # ints are ambiguous: training uses 1 = spoof
    with pytest.raises(ValueError, match="no spoof trials"):
        evaluate([1.0, 0.0], ["bonafide", "bonafide"])
    with pytest.raises(ValueError, match="one label per score"):
        evaluate([1.0, 0.0], ["bonafide"])
    with pytest.raises(ValueError, match="group 'codec'"):
        evaluate([1.0, 0.0], ["bonafide", "spoof"], {"codec": np.array(["g711"])})


# --- calibration ---------------------------------------------------------------------------------


def logistic_sample(
    rng: np.random.Generator, slope: float, offset: float, n: int
) -> tuple[np.ndarray, np.ndarray]:
    raw = rng.normal(0.5, 2.0, n)
    is_spoof = rng.random(n) < 1.0 / (1.0 + np.exp(-(slope * raw + offset)))
    return raw, is_spoof


def test_logistic_fit_recovers_the_generating_slope_and_offset(rng: np.random.Generator) -> None:
    raw, is_spoof = logistic_sample(rng, slope=1.5, offset=-0.7, n=40_000)
    calibration = fit_logistic(raw, is_spoof)
    assert calibration.slope == pytest.approx(1.5, rel=0.04)
    assert calibration.offset == pytest.approx(-0.7, rel=0.06)
    assert calibration.fit is not None
    assert calibration.fit.converged
    assert (calibration.fit.n_spoof, calibration.fit.n_bonafide) == (
        int(is_spoof.sum()),
        int((~is_spoof).sum()),
    )


def test_logistic_fit_with_a_prior_shifts_only_the_offset(rng: np.random.Generator) -> None:
    # Reweighting the classes to a prior pi multiplies the posterior odds by
    # (pi / n_spoof) / ((1 - pi) / n_bonafide): the generating offset moves by its log, the slope
    # stays (exactly in the population; within sampling error here).
    raw, is_spoof = logistic_sample(rng, slope=1.0, offset=-2.0, n=40_000)
    balanced = fit_logistic(raw, is_spoof, prior=0.5)
    shift = math.log((~is_spoof).sum() / is_spoof.sum())
    assert shift > 0.5  # the sample is far from balanced
    assert balanced.slope == pytest.approx(1.0, rel=0.04)
    assert balanced.offset == pytest.approx(-2.0 + shift, abs=0.08)
    assert balanced.fit is not None
    assert balanced.fit.prior == 0.5


def test_calibration_is_monotone_and_its_bonafide_log_odds_are_the_asvspoof_score(
    rng: np.random.Generator,
) -> None:
    raw, is_spoof = logistic_sample(rng, slope=0.8, offset=0.3, n=5_000)
    calibration = fit_logistic(raw, is_spoof)
    grid = np.linspace(-10, 10, 201)
    probability = calibration.apply(grid)
    assert np.all(np.diff(probability) > 0)
    assert np.all((probability > 0) & (probability < 1))
    log_odds = calibration.log_odds_bonafide(grid)
    assert log_odds == pytest.approx(np.log((1 - probability) / probability), rel=1e-9)
    # A monotone decreasing map of raw: the ASVspoof EER is that of -raw.
    assert compute_eer(
        calibration.log_odds_bonafide(raw[~is_spoof]), calibration.log_odds_bonafide(raw[is_spoof])
    )[0] == pytest.approx(compute_eer(-raw[~is_spoof], -raw[is_spoof])[0])


def test_logistic_fit_survives_separable_data(rng: np.random.Generator) -> None:
    raw = np.concatenate((rng.uniform(1.0, 2.0, 200), rng.uniform(-2.0, -1.0, 300)))
    is_spoof = np.array([True] * 200 + [False] * 300)
    calibration = fit_logistic(raw, is_spoof)
    assert calibration.fit is not None
    assert calibration.fit.converged
    assert calibration.fit.iterations <= MAX_ITERATIONS
    assert math.isfinite(calibration.slope)
    assert math.isfinite(calibration.offset)
    assert calibration.slope > 0
    assert np.all(calibration.apply(raw[is_spoof]) > 0.99)
    assert np.all(calibration.apply(raw[~is_spoof]) < 0.01)


def test_calibration_round_trips_through_a_json_model_card(rng: np.random.Generator) -> None:
    raw, is_spoof = logistic_sample(rng, slope=1.0, offset=0.0, n=500)
    calibration = fit_logistic(raw, is_spoof)
    card = json.loads(json.dumps(calibration.to_dict()))
    assert ScoreCalibration.from_dict(card) == calibration
    hand_written = ScoreCalibration.from_dict({"method": "logistic", "slope": 2, "offset": -1.0})
    assert hand_written.apply([0.5]) == pytest.approx([0.5])


def test_calibration_refuses_bad_input() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        ScoreCalibration.from_dict({"method": "logistic", "slope": 1.0, "offset": 0.0, "x": 1})
    with pytest.raises(ConfigError, match="'logistic'"):
        ScoreCalibration.from_dict({"method": "platt", "slope": 1.0, "offset": 0.0})
    with pytest.raises(ValueError, match="slope must be finite"):
        ScoreCalibration(slope=math.inf)
    with pytest.raises(ValueError, match="no spoof trials"):
        fit_logistic([0.0, 1.0], np.array([False, False]))
    with pytest.raises(ValueError, match="boolean"):
        fit_logistic([0.0, 1.0], np.array([0, 1]))
    with pytest.raises(ValueError, match="finite"):
        fit_logistic([0.0, math.nan], np.array([False, True]))
    with pytest.raises(ValueError, match="all equal"):
        fit_logistic([1.0, 1.0], np.array([False, True]))
    with pytest.raises(ValueError, match="prior"):
        fit_logistic([0.0, 1.0], np.array([False, True]), prior=0.0)


# --- plots ---------------------------------------------------------------------------------------


def test_write_plots_writes_png_images(rng: np.random.Generator, tmp_path: Path) -> None:
    from matplotlib.image import imread

    from dfd.trainers.plots import write_plots

    bonafide, spoof = random_scores(rng, 300, 200, 2.0)
    per_attack = {"A01": spoof[:80], "A02": spoof[80:150], "A03": spoof[150:], "A04": spoof[:10]}
    paths = write_plots(tmp_path / "plots", bonafide, spoof, per_attack)
    assert sorted(p.name for p in paths) == [
        "det.png",
        "roc.png",
        "score_histograms.png",
        "threshold_sweep.png",
    ]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        height, width = imread(path).shape[:2]
        assert height >= 300
        assert width >= 400


def test_probit_matches_the_normal_quantiles() -> None:
    from dfd.trainers.plots import probit

    assert probit([0.5, 0.975, 0.025]) == pytest.approx([0.0, 1.959964, -1.959964], abs=1e-6)
    with pytest.raises(ValueError, match="strictly between"):
        probit([0.0])
