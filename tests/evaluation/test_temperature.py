"""Temperature scaling: a closed-form case, netcal's fit, and no reliance on Pyro's global state."""
from __future__ import annotations

import math

import numpy as np
import pyro
import pytest
import torch

from evaluation.temperature import (
    TemperatureScaler,
    apply_temperature,
    fit_temperature,
    logits_from_probs,
    temperature_nll,
)

# Four examples at (0.8, 0.2), three of them class 0. The logit gap is log 4, and the NLL is
# minimal where sigmoid(log 4 / T) = 3/4, i.e. T = log 4 / log 3.
PROBS = np.tile([0.8, 0.2], (4, 1))
LABELS = np.array([0, 0, 0, 1])


def test_closed_form_temperature():
    temperature = fit_temperature(logits_from_probs(PROBS), LABELS)
    assert temperature == pytest.approx(math.log(4) / math.log(3), rel=1e-5)
    np.testing.assert_allclose(apply_temperature(logits_from_probs(PROBS), temperature), np.tile([0.75, 0.25], (4, 1)),
                               rtol=1e-5)


def test_scaler_reports_nll_before_and_after():
    scaler = TemperatureScaler().fit(PROBS, LABELS)
    assert scaler.nll_before == pytest.approx(-(3 * math.log(0.8) + math.log(0.2)) / 4)
    assert scaler.nll_after == pytest.approx(-(3 * math.log(0.75) + math.log(0.25)) / 4, rel=1e-6)
    assert scaler.nll_after < scaler.nll_before


def test_temperature_one_is_the_identity_and_argmax_is_kept():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=50)
    np.testing.assert_allclose(apply_temperature(logits_from_probs(probs), 1.0), probs)
    scaled = apply_temperature(logits_from_probs(probs), 3.0)
    np.testing.assert_array_equal(scaled.argmax(axis=1), probs.argmax(axis=1))
    assert scaled.max(axis=1).mean() < probs.max(axis=1).mean()


def test_overconfident_predictions_get_a_temperature_above_one():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(600, 7)) * 2
    true_probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(7, p=p) for p in true_probs])
    # The "model" is three times too sharp: the fit should undo it (T close to 3).
    temperature = fit_temperature(3 * logits, labels)
    assert 2.4 < temperature < 3.6
    assert temperature_nll(3 * logits, labels, temperature) < temperature_nll(3 * logits, labels, 1.0)


@pytest.mark.filterwarnings("ignore:independent is deprecated:DeprecationWarning")
def test_agrees_with_netcal_and_ignores_pyro_param_store():
    from netcal.scaling import TemperatureScaling

    rng = np.random.default_rng(2)
    logits = rng.normal(size=(400, 7)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(7, p=p) for p in np.exp(logits / 2) / np.exp(logits / 2).sum(1, keepdims=True)])
    ours_before = TemperatureScaler().fit(probs, labels).temperature

    pyro.param("sentinel", torch.ones(1))
    netcal = TemperatureScaling()
    netcal.fit(probs, labels)
    assert "sentinel" not in pyro.get_param_store()  # netcal clears the global store ...
    ours_after = TemperatureScaler().fit(probs, labels).temperature
    assert ours_after == ours_before  # ... which nothing of ours reads
    # netcal fits the inverse temperature as a logit weight.
    assert ours_after == pytest.approx(1.0 / float(np.ravel(netcal.weights)[0]), rel=1e-3)


def test_bad_temperature_and_bounds():
    with pytest.raises(ValueError, match=r"temperature: expected a finite number > 0, found 0"):
        apply_temperature(logits_from_probs(PROBS), 0)
    with pytest.raises(ValueError, match=r"bounds: expected \(low, high\) with low < high"):
        fit_temperature(logits_from_probs(PROBS), LABELS, bounds=(2.0, 1.0))


def test_fit_at_the_bound_warns():
    # All predictions right: the NLL keeps falling as T -> 0.
    with pytest.warns(RuntimeWarning, match="at the search bound"):
        temperature = fit_temperature(logits_from_probs(PROBS), np.zeros(4, dtype=int))
    assert temperature == pytest.approx(0.05, rel=1e-3)
