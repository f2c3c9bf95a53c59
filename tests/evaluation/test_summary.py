"""The flat metrics mapping behind metrics.json."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from evaluation.predictions import Predictions
from evaluation.summary import compute_metrics, jsonable, temperature_scaled, write_metrics_json

REQUIRED = ("accuracy", "balanced_accuracy", "nll", "brier", "ece", "mce", "average_calibration_error", "adaptive_ece", "aurc")


def test_keys_and_values_of_the_worked_example(four_examples):
    probs, labels = four_examples
    metrics = compute_metrics(Predictions(probs, labels, class_names=("neutral", "happiness", "surprise")))
    assert set(REQUIRED) <= set(metrics)
    assert metrics["accuracy"] == 0.5
    assert metrics["brier"] == pytest.approx(0.44)
    assert metrics["balanced_accuracy"] == pytest.approx(2 / 3)
    assert metrics["precision/neutral"] == 0.5
    assert metrics["recall/happiness"] == pytest.approx(1 / 3)
    assert metrics["f1/neutral"] == pytest.approx(2 / 3)
    assert metrics["support/happiness"] == 3 and isinstance(metrics["support/happiness"], int)
    assert "ece_classwise/surprise" in metrics
    assert metrics["num_mc_samples"] is None
    assert metrics["mutual_information_mean"] is None
    assert metrics["auroc_misclassification/mutual_information"] is None
    # Mistakes have max probs 0.4 and 0.5, right answers 0.7 and 0.6: 1 - max prob ranks them perfectly.
    assert metrics["auroc_misclassification/max_prob"] == 1.0
    assert metrics["selective_accuracy/0.50"] == 1.0
    assert not any(key.startswith("votes/") for key in metrics)


def test_monte_carlo_and_vote_entries(make_predictions):
    predictions = make_predictions()
    metrics = compute_metrics(predictions, coverages=(0.9,))
    assert metrics["num_mc_samples"] == 6
    assert metrics["mutual_information_mean"] > 0
    assert metrics["entropy_mean"] >= metrics["expected_entropy_mean"]
    assert 0.0 <= metrics["auroc_misclassification/mutual_information"] <= 1.0
    assert {"votes/kl", "votes/js", "votes/total_variation", "votes/intensity_correlation"} <= set(metrics)
    assert [k for k in metrics if k.startswith("selective_accuracy/")] == ["selective_accuracy/0.90"]


def test_auroc_is_none_when_every_prediction_is_right():
    metrics = compute_metrics(Predictions(np.eye(3), np.arange(3)))
    assert metrics["auroc_misclassification/max_prob"] is None
    assert metrics["accuracy"] == 1.0


def test_temperature_scaled_keys(make_predictions):
    validation, test = make_predictions(seed=1), make_predictions(seed=2)
    scaled, calibrated = temperature_scaled(validation, test)
    assert scaled["temperature"] > 0
    assert scaled["temperature_valid_nll_after"] <= scaled["temperature_valid_nll_before"]
    assert scaled["calibrated/accuracy"] == compute_metrics(test)["accuracy"]
    assert scaled["calibrated/ece"] == compute_metrics(calibrated)["ece"]
    assert "calibrated/votes/kl" in scaled
    assert not any(key.startswith(("calibrated/precision/", "calibrated/mutual")) for key in scaled)
    with pytest.raises(ValueError, match=r"have K = 2 classes but the evaluated ones have K = 7"):
        temperature_scaled(Predictions(np.eye(2), np.arange(2)), test)


def test_json_has_no_nan(tmp_path):
    metrics = {"a": float("nan"), "b": np.float32(0.5), "c": np.int64(3), "d": None, "e": math.inf}
    assert jsonable(metrics) == {"a": None, "b": 0.5, "c": 3, "d": None, "e": None}
    path = write_metrics_json(tmp_path / "metrics.json", metrics)
    assert json.loads(path.read_text()) == {"a": None, "b": 0.5, "c": 3, "d": None, "e": None}


def test_accuracy_of_the_papers_rule_is_reported_beside_argmax_probs():
    # Example 1: probs favour class 0 (right), intensity means favour class 1 (wrong).
    probs = np.array([[0.6, 0.4], [0.3, 0.7]])
    loc = np.array([[0.0, 1.0], [0.0, 1.0]])
    metrics = compute_metrics(Predictions(probs, np.array([0, 1]), loc=loc, scale=np.ones((2, 2))))
    assert metrics["accuracy"] == 1.0
    assert metrics["accuracy_argmax_loc"] == 0.5
