"""Conformal coverage keys: calibrated on one split, measured on another, per class."""
from __future__ import annotations

import numpy as np
import pytest

from evaluation.conformal_metrics import ConformalSettings, conformal_markdown, conformal_metrics, evaluate_sets
from evaluation.predictions import Predictions
from bayes_fer.conformal import ConformalCalibrator

NAMES = ("neutral", "happiness", "surprise")


def test_evaluate_sets_by_hand():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.6, 0.3, 0.1]])
    labels = np.array([1, 1, 0, 0])
    # LAC, no randomness: qhat 0.7 keeps classes with p >= 0.3.
    calibrator = ConformalCalibrator(score="lac", randomized=False, qhat=[0.7] * 3, num_calibration=[1, 1, 1])
    result = evaluate_sets(calibrator, probs, labels)
    # Sets: {0, 1}, {1, 2}, {2}, {0, 1}: covered, covered, missed, covered.
    assert result.coverage == pytest.approx(0.75)
    assert result.set_size == pytest.approx(7 / 4)
    np.testing.assert_allclose(result.class_coverage[:2], [0.5, 1.0])
    np.testing.assert_allclose(result.class_set_size[:2], [1.5, 2.0])
    assert np.isnan(result.class_coverage[2]) and result.class_support.tolist() == [2, 2, 0]


def _split(seed: int, n: int) -> Predictions:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    probs = rng.dirichlet(np.ones(3), n) * 0.5 + 0.5 * np.eye(3)[labels]
    return Predictions(probs=probs, labels=labels, class_names=NAMES)


def test_keys_for_every_level_and_score():
    settings = ConformalSettings(alphas=(0.1, 0.2), scores=("raps", "aps"), mondrian=True)
    metrics, results = conformal_metrics(_split(0, 300), _split(1, 300), settings, NAMES)
    assert [(r.alpha, r.score) for r in results] == [(0.1, "raps"), (0.1, "aps"), (0.2, "raps"), (0.2, "aps")]
    assert metrics["conformal_coverage@0.1"] == metrics["conformal_coverage@0.1/raps"] == results[0].coverage
    assert metrics["conformal_set_size@0.2/aps"] == results[3].set_size
    assert metrics["conformal_coverage@0.2/aps/surprise"] == pytest.approx(results[3].class_coverage[2])
    gap = np.max(np.abs(results[1].class_coverage - 0.9))
    assert metrics["conformal_class_gap@0.1/aps"] == pytest.approx(gap)
    assert metrics["conformal_mondrian"] == 1 and metrics["conformal_calibration_examples"] == 300
    table = conformal_markdown(results, NAMES)
    assert "| 0.1 | raps | 0.900 |" in table and "| surprise |" in table


def test_class_count_mismatch_is_reported():
    other = Predictions(probs=np.full((4, 4), 0.25), labels=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="K = 3 classes but the evaluated ones K = 4"):
        conformal_metrics(_split(0, 30), other, ConformalSettings(alphas=(0.1,)), NAMES)
