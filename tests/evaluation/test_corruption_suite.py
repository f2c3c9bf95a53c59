"""Scoring a cached corruption suite: per-severity table, monotonic rise, cache files."""
from __future__ import annotations

import numpy as np
import pytest

from evaluation.corruption_suite import (
    corruption_metrics,
    corruption_table,
    load_corruption_predictions,
    rises_monotonically,
)
from evaluation.predictions import Predictions, save_predictions


def _predictions(confidence: float, right: int) -> Predictions:
    """Four examples of class 0 with top probability ``confidence``, the first ``right`` predicted right."""
    other = 1.0 - confidence
    rows = [[confidence, other] if i < right else [other, confidence] for i in range(4)]
    return Predictions(probs=np.array(rows), labels=np.zeros(4, int))


def _suite() -> dict:
    results = {("clean", 0): _predictions(0.9, 4)}
    for s in range(1, 6):
        results[("jpeg", s)] = _predictions(0.9 - 0.07 * s, 4 - s % 4)
        results[("contrast", s)] = _predictions(0.9, 4)  # contrast changes nothing here
    return results


def test_rises_monotonically():
    assert rises_monotonically([0.1, 0.2, 0.3])
    assert not rises_monotonically([0.1, 0.2, 0.2])
    assert not rises_monotonically([0.3])


def test_table_by_hand():
    table = corruption_table(_suite())
    assert list(table) == ["jpeg", "contrast", "mean"]  # in the suite's order, then the mean
    np.testing.assert_allclose(table["jpeg"]["max_prob"], [0.1, 0.17, 0.24, 0.31, 0.38, 0.45])
    np.testing.assert_allclose(table["jpeg"]["accuracy"], [1, 0.75, 0.5, 0.25, 1.0, 0.75])
    np.testing.assert_allclose(table["contrast"]["max_prob"], [0.1] * 6)
    np.testing.assert_allclose(table["mean"]["max_prob"], [0.1, 0.135, 0.17, 0.205, 0.24, 0.275])
    # ECE of four examples at confidence 0.83, three right: |0.75 - 0.83|.
    assert table["jpeg"]["ece"][1] == pytest.approx(0.08)


def test_metrics_keys():
    metrics = corruption_metrics(corruption_table(_suite()))
    assert metrics["corruption/jpeg/3/max_prob"] == pytest.approx(0.31)
    assert metrics["corruption/mean/0/accuracy"] == 1.0
    assert metrics["corruption_monotonic/jpeg/max_prob"] == 1
    assert metrics["corruption_monotonic/contrast/max_prob"] == 0
    assert metrics["corruption_monotonic/max_prob"] == 1
    assert metrics["corruption_rise/max_prob"] == pytest.approx(0.175)
    assert "corruption_monotonic/accuracy" not in metrics


def test_missing_severities_are_reported_as_unknown():
    results = {("clean", 0): _predictions(0.9, 4), ("jpeg", 5): _predictions(0.6, 2)}
    metrics = corruption_metrics(corruption_table(results))
    assert metrics["corruption/jpeg/2/max_prob"] is None
    assert metrics["corruption_monotonic/max_prob"] is None


def test_load_cache_folder(tmp_path):
    for (name, severity), predictions in _suite().items():
        save_predictions(tmp_path / f"{name}_s{severity}.npz", predictions)
    (tmp_path / "notes_s1.npz").write_bytes(b"")  # not a corruption: ignored
    loaded = load_corruption_predictions(tmp_path)
    assert len(loaded) == 11 and ("jpeg", 3) in loaded
    (tmp_path / "clean_s0.npz").unlink()
    with pytest.raises(ValueError, match="expected clean_s0.npz"):
        load_corruption_predictions(tmp_path)
    with pytest.raises(FileNotFoundError, match="corruption predictions folder not found"):
        load_corruption_predictions(tmp_path / "nowhere")
