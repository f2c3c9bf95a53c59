"""Classification metrics against values worked out by hand (see the ``four_examples`` fixture)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.metrics import (
    accuracy,
    balanced_accuracy,
    brier_score,
    confusion_matrix,
    nll,
    per_class_scores,
    predictions_of,
)


def test_accuracy(four_examples):
    assert accuracy(*four_examples) == 0.5


def test_confusion_matrix_counts_and_normalisation(four_examples):
    expected = np.array([[1, 0, 0], [1, 1, 1], [0, 0, 0]])
    np.testing.assert_array_equal(confusion_matrix(*four_examples), expected)
    np.testing.assert_allclose(confusion_matrix(*four_examples, normalize="true"),
                               [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0, 0, 0]])
    np.testing.assert_allclose(confusion_matrix(*four_examples, normalize="all"), expected / 4)
    with pytest.raises(ValueError, match=r"normalize: expected None, 'true' or 'all', found 'rows'"):
        confusion_matrix(*four_examples, normalize="rows")


def test_per_class_scores(four_examples):
    scores = per_class_scores(*four_examples)
    # class 0: 1 right of 2 predicted, 1 of 1 found; class 1: 1 of 1, 1 of 3; class 2: 0 of 1, absent.
    np.testing.assert_allclose(scores.precision, [0.5, 1.0, 0.0])
    np.testing.assert_allclose(scores.recall, [1.0, 1 / 3, 0.0])
    np.testing.assert_allclose(scores.f1, [2 / 3, 0.5, 0.0])
    np.testing.assert_array_equal(scores.support, [1, 3, 0])
    assert scores.macro_f1 == pytest.approx(7 / 18)


def test_balanced_accuracy_leaves_out_absent_classes(four_examples):
    assert balanced_accuracy(*four_examples) == pytest.approx((1 + 1 / 3) / 2)


def test_nll(four_examples):
    assert nll(*four_examples) == pytest.approx(-math.log(0.7 * 0.6 * 0.3 * 0.4) / 4)


def test_nll_is_finite_for_a_certain_mistake():
    assert nll(np.array([[1.0, 0.0]]), np.array([1])) == pytest.approx(-math.log(1e-12))


def test_brier_score(four_examples):
    # rows: 0.09+0.04+0.01, 0.01+0.16+0.09, 0.09+0.49+0.16, 0.25+0.36+0.01
    assert brier_score(*four_examples) == pytest.approx((0.14 + 0.26 + 0.74 + 0.62) / 4)


def test_perfect_one_hot_predictions():
    probs = np.eye(3)[[0, 1, 2, 2]]
    labels = np.array([0, 1, 2, 2])
    assert accuracy(probs, labels) == 1.0
    assert brier_score(probs, labels) == 0.0
    assert nll(probs, labels) == 0.0


def test_ties_go_to_the_first_class():
    np.testing.assert_array_equal(predictions_of(np.array([[0.5, 0.5], [0.25, 0.75]])), [0, 1])
