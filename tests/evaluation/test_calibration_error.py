"""Binned calibration errors: values worked out by hand, and agreement with netcal to 1e-6."""
from __future__ import annotations

import numpy as np
import pytest
from netcal.metrics import ACE, ECE, MCE

from evaluation.calibration_error import (
    average_calibration_error,
    adaptive_ece,
    classwise_ece,
    classwise_ece_per_class,
    ece,
    equal_mass_edges,
    mce,
    reliability_bins,
)

# Gaps of the seven-confidence fixture with 4 bins: top 2/3 vs 0.88333, middle 1 vs 0.575, low 1/2 vs 0.375.
TOP_GAP, MIDDLE_GAP, LOW_GAP = 2.65 / 3 - 2 / 3, 0.425, 0.125


def test_reliability_bins_by_hand(seven_confidences):
    bins = reliability_bins(*seven_confidences, num_bins=4)
    np.testing.assert_allclose(bins.edges, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_array_equal(bins.counts, [0, 2, 2, 3])
    np.testing.assert_allclose(bins.accuracy, [0, 0.5, 1.0, 2 / 3])
    np.testing.assert_allclose(bins.confidence, [0, 0.375, 0.575, 2.65 / 3])
    np.testing.assert_allclose(bins.gaps, [0, LOW_GAP, MIDDLE_GAP, TOP_GAP])


def test_ece_mce_ace_by_hand(seven_confidences):
    assert ece(*seven_confidences, num_bins=4) == pytest.approx((3 * TOP_GAP + 2 * MIDDLE_GAP + 2 * LOW_GAP) / 7)
    assert ece(*seven_confidences, num_bins=4) == pytest.approx(0.25)
    assert mce(*seven_confidences, num_bins=4) == pytest.approx(0.425)
    assert average_calibration_error(*seven_confidences, num_bins=4) == pytest.approx((TOP_GAP + MIDDLE_GAP + LOW_GAP) / 3)


def test_adaptive_ece_by_hand(seven_confidences):
    # Two equal-mass bins split at the median confidence 0.6: {0.35, 0.4, 0.55} has accuracy 2/3 and
    # confidence 1.3/3; {0.6, 0.8, 0.9, 0.95} has accuracy 3/4 and confidence 3.25/4.
    expected = (3 * abs(2 / 3 - 1.3 / 3) + 4 * abs(0.75 - 3.25 / 4)) / 7
    assert adaptive_ece(*seven_confidences, num_bins=2) == pytest.approx(expected)
    assert expected == pytest.approx(0.95 / 7)


def test_classwise_ece_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    labels = np.array([0, 1, 1])
    # Two bins. Class 0: {0.7 right, 0.6 wrong} gap 0.15, {0.2 wrong} gap 0.2. Class 1: {0.7 right} gap 0.3,
    # {0.2 wrong, 0.3 right} gap 0.25. Class 2: {0.1, 0.1, 0.1 all wrong} gap 0.1.
    per_class = classwise_ece_per_class(probs, labels, num_bins=2)
    np.testing.assert_allclose(per_class, [(2 * 0.15 + 0.2) / 3, (0.3 + 2 * 0.25) / 3, 0.1])
    assert classwise_ece(probs, labels, num_bins=2) == pytest.approx(np.mean(per_class))


def test_perfectly_calibrated_bins_have_zero_error():
    # Every example at confidence 0.5 over two classes, half of them right.
    probs = np.tile([0.5, 0.25, 0.25], (4, 1))
    labels = np.array([0, 0, 1, 2])
    assert ece(probs, labels) == pytest.approx(0.0)
    assert mce(probs, labels) == pytest.approx(0.0)


def _netcal(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {
        "ece": ECE(15).measure(probs, labels),
        "mce": MCE(15).measure(probs, labels),
        "average_calibration_error": ACE(15).measure(probs, labels),
        "adaptive_ece": ECE(15, equal_intervals=False).measure(probs, labels),
    }


def _ours(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {"ece": ece(probs, labels), "mce": mce(probs, labels), "average_calibration_error": average_calibration_error(probs, labels),
            "adaptive_ece": adaptive_ece(probs, labels)}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("concentration", [0.2, 1.0, 5.0])
def test_agrees_with_netcal_on_dirichlet_probabilities(seed, concentration):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(7, concentration), size=400)
    # Labels drawn from the probabilities themselves (roughly calibrated) for half of the rows.
    labels = np.where(np.arange(400) % 2 == 0, [rng.choice(7, p=p) for p in probs], rng.integers(0, 7, 400))
    theirs, ours = _netcal(probs, labels), _ours(probs, labels)
    for key in ours:
        assert ours[key] == pytest.approx(theirs[key], abs=1e-6), key


@pytest.mark.parametrize("seed", range(3))
def test_agrees_with_netcal_on_float32_input(seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(8), size=300).astype(np.float32)
    labels = rng.integers(0, 8, 300)
    theirs, ours = _netcal(probs, labels), _ours(probs, labels)
    for key in ours:
        assert ours[key] == pytest.approx(theirs[key], abs=1e-6), key


def test_agrees_with_netcal_with_ties_and_edge_confidences():
    # Tie groups stay smaller than an equal-mass bin (300 / 15 = 20), where netcal's quantile edges
    # would coincide and SciPy would raise (see test_adaptive_ece_with_coinciding_quantiles).
    rng = np.random.default_rng(7)
    probs = rng.dirichlet(np.ones(5), size=300)
    probs[:10] = np.eye(5)[rng.integers(0, 5, 10)]  # confidence exactly 1
    probs[10:20] = 0.2  # uniform: confidence exactly 1/K, every class tied, argmax 0
    probs[20:30] = probs[30]  # repeated rows
    probs[30:35] = [0.6, 0.4, 0.0, 0.0, 0.0]  # confidence 0.6, a bin edge for 15 bins
    labels = rng.integers(0, 5, 300)
    theirs, ours = _netcal(probs, labels), _ours(probs, labels)
    for key in ours:
        assert ours[key] == pytest.approx(theirs[key], abs=1e-6), key


@pytest.mark.parametrize("seed", range(3))
def test_classwise_agrees_with_netcal_binary_ece(seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(6, 0.5), size=300)
    labels = rng.integers(0, 6, 300)
    theirs = [ECE(15).measure(probs[:, k], (labels == k).astype(int)) for k in range(6)]
    np.testing.assert_allclose(classwise_ece_per_class(probs, labels), theirs, atol=1e-6)


def test_adaptive_ece_with_coinciding_quantiles():
    # Three groups of 20 identical confidences (1/5, 2/5, 1), each 1/5 right: many equal-mass edges
    # coincide. Each group lands in its own bin, so the error is (0 + 0.2 + 0.8) / 3. netcal raises here.
    probs = np.zeros((60, 5))
    probs[:20, 0] = 1.0
    probs[20:40] = 0.2
    probs[40:] = [0.4, 0.3, 0.1, 0.1, 0.1]
    labels = np.arange(60) % 5
    edges = equal_mass_edges(probs.max(axis=1), 15)
    assert np.any(np.diff(edges) == 0)
    assert adaptive_ece(probs, labels) == pytest.approx(1 / 3)
    assert ece(probs, labels) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="edge difference"):
        ECE(15, equal_intervals=False).measure(probs, labels)
