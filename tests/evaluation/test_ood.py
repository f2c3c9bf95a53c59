"""Uncertainty scores of predictions and the misclassification and OOD metrics, worked by hand."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bayes_fer.conformal import ConformalCalibrator
from evaluation.ood import (
    fpr_at_tpr,
    load_extra_scores,
    misclassification_aurc,
    misclassification_metrics,
    ood_auroc,
    ood_metrics,
    roc_curve,
    uncertainty_score_table,
)
from evaluation.predictions import Predictions


def test_ood_auroc_by_hand():
    # Out-scores beat 4 + 2.5 (a tie at 0.4 counts one half) + 3 of the 12 pairs.
    assert ood_auroc([0.1, 0.4, 0.35, 0.8], [0.9, 0.4, 0.5]) == pytest.approx(9.5 / 12)
    assert ood_auroc([0.0, 0.1], [0.5, 0.6]) == 1.0
    assert ood_auroc([0.5, 0.6], [0.0, 0.1]) == 0.0


def test_fpr_at_95_tpr_by_hand():
    faces = np.arange(1, 21, dtype=float)  # the 19th smallest, 19, keeps 95% of the faces
    assert fpr_at_tpr(faces, [5.0, 19.0, 19.5, 25.0]) == pytest.approx(0.5)
    assert fpr_at_tpr(faces, [30.0, 40.0]) == 0.0
    assert fpr_at_tpr(faces, [0.0, 40.0], tpr=1.0) == pytest.approx(0.5)  # threshold 20
    with pytest.raises(ValueError, match=r"tpr: expected a fraction in \(0, 1\]"):
        fpr_at_tpr(faces, faces, tpr=0.0)


def test_misclassification_aurc_by_hand():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    labels = np.array([0, 1, 1, 0])  # right, wrong, right, wrong
    # Kept by rising uncertainty: right, right, wrong, wrong -> risks 0, 0, 1/3, 1/2.
    assert misclassification_aurc([0.1, 0.9, 0.2, 0.3], probs, labels) == pytest.approx((1 / 3 + 1 / 2) / 4)
    metrics = misclassification_metrics({"u": np.array([0.1, 0.9, 0.2, 0.3])}, probs, labels)
    assert metrics["auroc_misclassification/u"] == 1.0
    assert metrics["aurc/u"] == pytest.approx(5 / 24)
    assert misclassification_metrics({"u": np.zeros(2)}, probs[:1].repeat(2, 0), np.zeros(2, int))[
        "auroc_misclassification/u"] is None  # every example right: undefined


def test_roc_curve_by_hand():
    fpr, tpr = roc_curve([0.1, 0.4], [0.3, 0.5])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])


def test_ood_metrics_keys_for_scores_in_both_sets():
    metrics = ood_metrics({"a": np.array([0.0, 1.0]), "b": np.array([0.0, 1.0])}, {"a": np.array([2.0, 3.0])})
    assert metrics == {"auroc_ood/a": 1.0, "fpr95_ood/a": 0.0}


def test_score_table_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1]])
    scale = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    predictions = Predictions(probs=probs, labels=[0, 1], loc=np.zeros((2, 3)), scale=scale)
    scores = uncertainty_score_table(predictions)
    assert list(scores) == ["max_prob", "entropy", "spread"]  # no samples: no mutual information, no aleatoric
    np.testing.assert_allclose(scores["max_prob"], [0.3, 0.5])
    np.testing.assert_allclose(scores["spread"], [0.1, 0.5])  # scale of the predicted class
    np.testing.assert_allclose(scores["entropy"], -(probs * np.log(probs)).sum(axis=1))


def test_score_table_takes_optional_arrays_by_name():
    samples = np.array([[[0.9, 0.1], [0.5, 0.5]], [[0.1, 0.9], [0.5, 0.5]]])  # (S=2, N=2, K=2)
    carrier = SimpleNamespace(probs=samples.mean(0), samples=samples, scale=np.zeros((2, 2)),
                              epistemic_mi=np.array([0.3, 0.0]))
    scores = uncertainty_score_table(carrier, extra={"aleatoric": np.array([1.0, 2.0])})
    assert list(scores) == ["max_prob", "entropy", "mutual_information", "aleatoric", "epistemic_mi"]
    np.testing.assert_allclose(scores["epistemic_mi"], [0.3, 0.0])
    np.testing.assert_allclose(scores["aleatoric"], [1.0, 2.0])  # a given array replaces the computed one
    h = -(0.9 * np.log(0.9) + 0.1 * np.log(0.1))
    np.testing.assert_allclose(scores["mutual_information"], [np.log(2) - h, 0.0], atol=1e-12)
    assert "spread" not in scores  # an all-zero scale is a deterministic head
    with pytest.raises(ValueError, match=r"epistemic_mi: expected 2 scores to match probs \(N = 2\), found 3"):
        uncertainty_score_table(carrier, extra={"epistemic_mi": np.zeros(3)})


def test_set_size_score():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    calibrator = ConformalCalibrator(randomized=False, score="lac").fit(probs, [1, 2], alpha=0.4)
    scores = uncertainty_score_table(SimpleNamespace(probs=probs), calibrator=calibrator)
    np.testing.assert_array_equal(scores["set_size"], calibrator.predict_sets(probs).sum(axis=1))


def test_load_extra_scores(tmp_path):
    np.savez(tmp_path / "p.npz", probs=np.eye(2), epistemic_mi=np.array([0.1, 0.2]))
    loaded = load_extra_scores(tmp_path / "p.npz")
    assert list(loaded) == ["epistemic_mi"]
    np.testing.assert_allclose(loaded["epistemic_mi"], [0.1, 0.2])
