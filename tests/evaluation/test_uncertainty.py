"""Entropy, mutual information, risk-coverage, AURC and AUROC against values worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.uncertainty import (
    aurc,
    auroc,
    entropy,
    excess_aurc,
    expected_entropy,
    misclassification_auroc,
    mutual_information,
    optimal_aurc,
    predictive_entropy,
    risk_coverage_curve,
    select_examples,
    selective_accuracy,
    uncertainty_scores,
)

# Confidences 0.9, 0.8, 0.7, 0.6 with outcomes right, wrong, right, wrong.
PROBS = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
LABELS = np.array([0, 1, 0, 1])


def test_entropy():
    probs = np.array([[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    np.testing.assert_allclose(entropy(probs), [math.log(2), 0.0, math.log(4)])


def test_mutual_information_of_disagreeing_certain_draws():
    samples = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # (S=2, N=1, K=2)
    np.testing.assert_allclose(predictive_entropy(samples), [math.log(2)])
    np.testing.assert_allclose(expected_entropy(samples), [0.0])
    np.testing.assert_allclose(mutual_information(samples), [math.log(2)])


def test_mutual_information_is_zero_for_identical_draws():
    samples = np.repeat(np.array([[[0.3, 0.7], [0.5, 0.5]]]), 4, axis=0)  # (4, 2, 2)
    np.testing.assert_allclose(mutual_information(samples), [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(expected_entropy(samples), entropy(samples[0]))


def test_risk_coverage_curve_and_aurc():
    coverage, risk = risk_coverage_curve(PROBS, LABELS)
    np.testing.assert_allclose(coverage, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(risk, [0.0, 1 / 2, 1 / 3, 2 / 4])
    assert aurc(PROBS, LABELS) == pytest.approx((0 + 1 / 2 + 1 / 3 + 1 / 2) / 4)
    # Best ranking puts both right answers first: risks 0, 0, 1/3, 1/2.
    assert optimal_aurc(PROBS, LABELS) == pytest.approx((1 / 3 + 1 / 2) / 4)
    assert excess_aurc(PROBS, LABELS) == pytest.approx(0.125)


def test_risk_coverage_ties_take_the_expectation_over_orderings():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.5, 0.5]])
    labels = np.array([0, 1, 0])  # the two tied examples: one right, one wrong
    _, risk = risk_coverage_curve(probs, labels)
    np.testing.assert_allclose(risk, [0.5, 0.5, 1 / 3])
    _, swapped = risk_coverage_curve(probs[[1, 0, 2]], labels[[1, 0, 2]])
    np.testing.assert_allclose(swapped, risk)


def test_custom_confidence_reorders_the_curve():
    # Ranking by the reversed order puts the wrong 0.6 first: risks 1, 1/2, 2/3, 1/2.
    _, risk = risk_coverage_curve(PROBS, LABELS, confidence=np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_allclose(risk, [1.0, 0.5, 2 / 3, 0.5])
    with pytest.raises(ValueError, match=r"confidence: expected 4 scores to match probs \(N = 4\), found 3"):
        risk_coverage_curve(PROBS, LABELS, confidence=np.ones(3))


@pytest.mark.parametrize("coverage, expected", [(0.25, 1.0), (0.5, 0.5), (0.7, 2 / 3), (0.75, 2 / 3), (1.0, 0.5)])
def test_selective_accuracy(coverage, expected):
    assert selective_accuracy(PROBS, LABELS, coverage) == pytest.approx(expected)


def test_selective_accuracy_rejects_bad_coverage():
    with pytest.raises(ValueError, match=r"coverage: expected a fraction in \(0, 1\], found 0"):
        selective_accuracy(PROBS, LABELS, 0)


def test_auroc():
    # Positives score 0.35 and 0.8, negatives 0.1 and 0.4: three of four pairs ordered right.
    assert auroc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(0.75)
    assert auroc([0.5, 0.5], [True, False]) == pytest.approx(0.5)
    assert auroc([0.0, 1.0], [False, True]) == 1.0
    with pytest.raises(ValueError, match="AUROC is undefined with 2 positives and 0 negatives"):
        auroc([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match=r"positive: expected shape \(2,\)"):
        auroc([0.1, 0.2], [True, False, True])


def test_misclassification_auroc():
    # 1 - confidence = 0.1, 0.2, 0.3, 0.4; the mistakes score 0.2 and 0.4, the right ones 0.1 and 0.3.
    assert misclassification_auroc(1 - PROBS.max(axis=1), PROBS, LABELS) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="undefined with 0 positives"):
        misclassification_auroc(np.ones(4), PROBS, np.array([0, 0, 0, 0]))


def test_uncertainty_scores():
    scores = uncertainty_scores(PROBS)
    assert set(scores) == {"max_prob", "entropy"}
    np.testing.assert_allclose(scores["max_prob"], [0.1, 0.2, 0.3, 0.4])
    samples = np.stack([PROBS, PROBS[:, ::-1]])  # (2, 4, 2)
    scores = uncertainty_scores(PROBS, samples)
    np.testing.assert_allclose(scores["mutual_information"], math.log(2) - entropy(PROBS))


def test_select_examples():
    probs = np.array([[0.9, 0.1], [0.95, 0.05], [0.55, 0.45], [0.8, 0.2]])
    labels = np.array([0, 1, 0, 0])
    assert select_examples(probs, labels) == {"most_confident": 0, "most_uncertain": 2, "misclassified": 1}
    assert select_examples(probs[[0, 2]], labels[[0, 2]]) == {"most_confident": 0, "most_uncertain": 1}
