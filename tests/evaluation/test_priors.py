"""Choosing the class prior's power on validation data."""
from __future__ import annotations

import numpy as np
import pytest

from evaluation.priors import POWER_GRID, select_prior_power


def _faces(rare_evidence: float, n_common: int = 900, n_rare: int = 100, seed: int = 0):
    """Two classes; the common class's faces lead by 2 on average, the rare class's by
    ``rare_evidence`` (an under-fitted network gives them a small lead, or none)."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(n_common, int), np.ones(n_rare, int)]
    lead = np.where(labels == 0, 2.0, -rare_evidence) + rng.normal(0, 1.5, labels.size)
    loc = np.stack([lead / 2, -lead / 2], axis=1)
    return loc, labels, np.log([0.9, 0.1])


def test_grid_spans_rare_favoured_to_training_rates():
    assert POWER_GRID[0] == -1.0 and POWER_GRID[-1] == 1.0 and 0.0 in POWER_GRID


def test_choice_maximises_the_mean_of_accuracy_and_balanced_accuracy():
    loc, labels, rates = _faces(rare_evidence=2.0)
    power, table = select_prior_power(loc, labels, rates)
    scores = {row["power"]: (row["accuracy"] + row["balanced_accuracy"]) / 2 for row in table}
    assert scores[power] == max(scores.values())
    # Worked by hand at power 0: the argmax of loc alone is the sign of the lead.
    row = next(r for r in table if r["power"] == 0.0)
    pred = (loc[:, 1] > loc[:, 0]).astype(int)
    assert row["accuracy"] == pytest.approx(np.mean(pred == labels))
    recall = [np.mean(pred[labels == k] == k) for k in (0, 1)]
    assert row["balanced_accuracy"] == pytest.approx(np.mean(recall))


def test_under_fitted_rare_class_moves_the_choice_below_zero():
    # Equal evidence for both classes: balanced intensities, no reason to go below 0.
    fitted, _ = select_prior_power(*_faces(rare_evidence=2.0))
    # The network has not learned the rare class (its faces lean to the common one):
    # favouring it beyond uniform recovers its recall at a smaller cost in accuracy.
    weak, _ = select_prior_power(*_faces(rare_evidence=-0.5))
    assert fitted >= 0.0 > weak


def test_powers_outside_the_range_are_refused():
    loc, labels, rates = _faces(rare_evidence=1.0)
    with pytest.raises(ValueError, match=r"powers must lie in \[-1, 1\]"):
        select_prior_power(loc, labels, rates, grid=(0.0, 1.5))
