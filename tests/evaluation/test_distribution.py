"""Vote metrics against values worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.distribution import (
    intensity_vote_correlation,
    js_divergence,
    kl_divergence,
    pearson_correlation,
    total_variation,
    vote_distribution,
    vote_metrics,
)

VOTES = np.array([[2, 2, 0], [0, 4, 0]])  # shares (1/2, 1/2, 0) and (0, 1, 0)
PROBS = np.array([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]])


def test_vote_distribution():
    np.testing.assert_allclose(vote_distribution(VOTES), [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])


def test_kl_divergence():
    # Row 1: 0.5 log(0.5 / 0.25) = 0.5 log 2; row 2: 1 log(1 / 0.5) = log 2.
    assert kl_divergence(VOTES, PROBS) == pytest.approx(0.75 * math.log(2))


def test_js_divergence():
    # Row 1: m = (1/2, 3/8, 1/8), KL(v||m) = 0.5 log(4/3), KL(p||m) = 0.25 log(4/3): JS = 0.375 log(4/3).
    # Row 2: m = (1/8, 3/4, 1/8), KL(v||m) = log(4/3), KL(p||m) = 0.5 log(4/3): JS = 0.75 log(4/3).
    assert js_divergence(VOTES, PROBS) == pytest.approx(0.5625 * math.log(4 / 3))


def test_total_variation():
    assert total_variation(VOTES, PROBS) == pytest.approx((0.25 + 0.5) / 2)


def test_divergences_vanish_for_matching_distributions_and_are_bounded():
    shares = vote_distribution(VOTES)
    matched = np.array([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])
    assert kl_divergence(VOTES, matched) == pytest.approx(0.0)
    assert js_divergence(VOTES, matched) == pytest.approx(0.0)
    assert total_variation(shares, matched) == pytest.approx(0.0)
    disjoint = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    assert js_divergence(VOTES, disjoint) == pytest.approx(math.log(2))
    assert total_variation(VOTES, disjoint) == pytest.approx(1.0)


def test_pearson_correlation():
    assert pearson_correlation([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="constant"):
        pearson_correlation([1, 1, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="equal length"):
        pearson_correlation([1, 2], [1, 2, 3])


def test_intensity_vote_correlation():
    shares = vote_distribution(VOTES)
    assert intensity_vote_correlation(2 * shares + 1, VOTES) == pytest.approx(1.0)
    assert intensity_vote_correlation(-shares, VOTES, per_image=True) == pytest.approx(-1.0)
    # A per-image offset leaves the per-image correlation at 1 but lowers the pooled one.
    shifted = shares + np.array([[0.0], [10.0]])
    assert intensity_vote_correlation(shifted, VOTES, per_image=True) == pytest.approx(1.0)
    assert intensity_vote_correlation(shifted, VOTES) < 0.9
    with pytest.raises(ValueError, match=r"votes: expected shape \(2, 2\) to match probs"):
        intensity_vote_correlation(np.zeros((2, 2)), VOTES)


def test_vote_metrics_keys_and_undefined_correlations():
    results = vote_metrics(VOTES, PROBS, loc=2 * vote_distribution(VOTES))
    assert set(results) == {"kl", "js", "total_variation", "probability_correlation", "entropy_correlation",
                            "intensity_correlation", "intensity_correlation_per_image"}
    assert results["kl"] == pytest.approx(0.75 * math.log(2))
    assert results["intensity_correlation"] == pytest.approx(1.0)
    # Both predictions have the same entropy: that correlation is undefined, reported as None.
    same_entropy = np.array([[0.5, 0.25, 0.25], [0.25, 0.25, 0.5]])
    assert vote_metrics(VOTES, same_entropy)["entropy_correlation"] is None
    assert "intensity_correlation" not in vote_metrics(VOTES, PROBS)
