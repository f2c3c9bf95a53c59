"""Per-class coverage of Mondrian sets against its Beta-Binomial sampling range."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import betabinom

from bayes_fer.conformal import ConformalCalibrator, conformal_quantile, conformal_rank
from evaluation.class_coverage import (
    class_coverage,
    class_coverage_markdown,
    class_coverage_metrics,
    covered_count_range,
)


def test_beta_binomial_by_hand():
    # n = 3, alpha = 0.5: r = ceil(4 * 0.5) = 2, so BetaBinomial(m, 2, 2). For m = 2,
    # P(k) = C(2, k) B(k + 2, 4 - k) / B(2, 2) with B(2, 2) = 1/6:
    # P(0) = 6 * B(2, 4) = 6 / 20 = 0.3, P(1) = 6 * 2 * B(3, 3) = 12 / 30 = 0.4, P(2) = 0.3.
    assert conformal_rank(3, 0.5) == 2
    np.testing.assert_allclose(betabinom(2, 2, 2).pmf([0, 1, 2]), [0.3, 0.4, 0.3])
    # cdf 0.3, 0.7, 1.0: the 2.5% and 97.5% points are 0 and 2; the 35% and 65% points both 1.
    assert covered_count_range(3, 2, 0.5) == (0, 2)
    assert covered_count_range(3, 2, 0.5, level=0.3) == (1, 1)
    # n = 1, alpha = 0.5: r = 1, BetaBinomial(m, 1, 1) is uniform on 0..m; m = 9: cdf (k + 1) / 10,
    # so the 25% point is 2 and the 75% point 7.
    assert covered_count_range(1, 9, 0.5, level=0.5) == (2, 7)
    assert covered_count_range(1, 9, 0.5) == (0, 9)


def test_infinite_threshold_is_always_covered():
    # n = 5, alpha = 0.1: r = ceil(6 * 0.9) = 6 > 5, so every set holds the class.
    assert covered_count_range(5, 12, 0.1) == (12, 12)
    assert covered_count_range(0, 3, 0.2) == (3, 3)


@pytest.mark.parametrize("n", [1, 9, 19, 25, 99, 1000])
@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.2, 0.5])
def test_rank_is_the_calibrators_rank(n, alpha):
    rank = conformal_rank(n, alpha)
    expected = conformal_quantile(np.arange(1.0, n + 1), alpha)  # the score of rank r is r
    assert (rank > n and np.isinf(expected)) or rank == expected


@pytest.mark.parametrize("call, match", [
    (lambda: covered_count_range(10, 0, 0.1), "expected m >= 1"),
    (lambda: covered_count_range(10, 5, 0.1, level=1.0), r"level must lie in \(0, 1\)"),
    (lambda: conformal_rank(10, 0.0), r"alpha in \(0, 1\)"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _calibrated(rng, counts, k=3):
    """Probabilities and labels drawn from them: a model calibrated by construction, classes by count."""
    labels = np.repeat(np.arange(k), counts)
    probs = rng.dirichlet(np.ones(k), labels.shape[0]) * 0.6 + 0.4 * np.eye(k)[labels]
    return probs, labels


def test_refuses_marginal_calibrator_and_no_draws():
    probs, labels = _calibrated(np.random.default_rng(0), [20, 20, 20])
    with pytest.raises(ValueError, match="mondrian=True"):
        class_coverage(ConformalCalibrator(alpha=0.1), probs, labels, probs, labels)
    with pytest.raises(ValueError, match="draws must be a positive"):
        class_coverage(ConformalCalibrator(alpha=0.1, mondrian=True), probs, labels, probs, labels, draws=0)


def test_exchangeable_splits_land_in_range():
    # One pool, exchangeable within each class; many random splits with n and m fixed per class.
    # Tie-free scores (randomized APS, empty sets allowed): the covered count of each class is
    # BetaBinomial(m, r, n + 1 - r), so about 95% of the (split, class) cells land in the range
    # and the mean coverage over splits is r / (n + 1).
    rng = np.random.default_rng(1)
    n, m, alpha, splits = np.array([200, 40, 12]), np.array([200, 40, 15]), 0.1, 200
    probs, labels = _calibrated(rng, n + m)
    calibrator = ConformalCalibrator(alpha=alpha, score="aps", mondrian=True, allow_empty=True)
    inside, coverage = np.zeros((splits, 3)), np.zeros((splits, 3))
    for s in range(splits):
        order = rng.permutation(labels.shape[0])
        calib = np.concatenate([order[labels[order] == c][:n[c]] for c in range(3)])
        test = np.concatenate([order[labels[order] == c][n[c]:] for c in range(3)])
        report = class_coverage(calibrator, probs[calib], labels[calib], probs[test], labels[test], draws=1, seed=s)
        assert report.calibration_count.tolist() == n.tolist() and report.test_count.tolist() == m.tolist()
        inside[s], coverage[s] = report.in_range, report.coverage_mean
    # Binomial tolerance over 200 splits: SD of a 95% rate is 1.5 points.
    assert inside.mean(axis=0).min() >= 0.90, inside.mean(axis=0)
    expected = np.array([conformal_rank(c, alpha) / (c + 1) for c in n])
    sd = np.sqrt(expected * (1 - expected) / (m * splits))  # below the Beta-Binomial SD: 3 SDs is generous
    assert np.all(np.abs(coverage.mean(axis=0) - expected) < 6 * sd), (coverage.mean(axis=0), expected)


def test_never_empty_sets_over_cover_a_class_the_model_always_gets_right():
    rng = np.random.default_rng(2)
    probs, labels = _calibrated(rng, [300, 300, 300])
    probs[labels == 0] = [0.9, 0.05, 0.05]  # class 0: top-1 recall 1 > 1 - alpha
    probs[labels == 0] += rng.uniform(0, 0.01, (300, 3))
    probs /= probs.sum(axis=1, keepdims=True)
    calib, test = np.arange(0, 900, 2), np.arange(1, 900, 2)
    args = probs[calib], labels[calib], probs[test], labels[test]
    pinned = class_coverage(ConformalCalibrator(alpha=0.2, mondrian=True), *args, draws=5)
    assert pinned.coverage_mean[0] == 1.0 and pinned.coverage_mean[0] > pinned.range_high[0]
    assert not pinned.in_range[0] and not pinned.within_tolerance[0]
    free = class_coverage(ConformalCalibrator(alpha=0.2, mondrian=True, allow_empty=True), *args, draws=5)
    assert free.in_range[0] and free.within_tolerance[0] and free.coverage_sd[0] > 0


def test_metrics_and_table():
    rng = np.random.default_rng(3)
    probs, labels = _calibrated(rng, [60, 30, 0])
    test_probs, test_labels = _calibrated(rng, [50, 20, 0])
    names = ("neutral", "happiness", "contempt")
    report = class_coverage(ConformalCalibrator(alpha=0.1, score="raps", mondrian=True), probs, labels,
                            test_probs, test_labels, draws=4)
    metrics = class_coverage_metrics([report], names)
    assert metrics["conformal_class_calibration_count/happiness"] == 30
    assert metrics["conformal_class_test_count/neutral"] == 50
    assert metrics["conformal_class_coverage_mean@0.1/raps/neutral"] == pytest.approx(report.coverage_mean[0])
    low, high = covered_count_range(30, 20, 0.1)
    assert metrics["conformal_class_range_low@0.1/raps/happiness"] == pytest.approx(low / 20)
    assert metrics["conformal_class_range_high@0.1/raps/happiness"] == pytest.approx(high / 20)
    # contempt: absent from both splits, so an infinite threshold and nothing to measure.
    assert metrics["conformal_class_coverage_mean@0.1/raps/contempt"] is None
    assert metrics["conformal_class_in_range@0.1/raps/contempt"] is None
    assert metrics["conformal_classes_in_range@0.1/raps"] == int(report.in_range[:2].sum())
    assert metrics["conformal_class_draws"] == 4
    table = class_coverage_markdown([report], names)
    assert "**raps, alpha 0.1** (target 0.900; 4 draws)" in table
    assert f"| happiness | 30 | 20 | {report.coverage_mean[1]:.3f} ± {report.coverage_sd[1]:.3f} |" in table
    assert "| contempt | 0 | 0 | n/a |" in table
