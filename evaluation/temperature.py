"""Temperature scaling (Guo et al., 2017), the standard recalibration baseline.

One scalar ``T > 0`` divides the logits, ``softmax(z / T)``, chosen to minimise the NLL on a
validation split. It never changes the predicted class, only the confidence. Predictions
files store probabilities, so the logits are ``log(probs)``: softmax is unchanged by a
per-row constant, so these are the logits up to that constant for a deterministic head, and
the natural choice for a Monte-Carlo average. The fit is a bounded one-dimensional search on
``log T`` (the NLL is convex in ``1 / T``), plain NumPy and SciPy with no global state.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from evaluation._checks import as_finite_array, check_labels, check_probs
from evaluation.metrics import NLL_FLOOR

#: Search range for the temperature; a fit at either end means something else is wrong.
TEMPERATURE_BOUNDS = (0.05, 20.0)


def logits_from_probs(probs) -> np.ndarray:
    """``log(probs)`` (N, K), floored so that zero probabilities give finite logits."""
    return np.log(np.maximum(check_probs(probs), NLL_FLOOR))


def _checked_logits(logits, labels) -> tuple[np.ndarray, np.ndarray]:
    logits = as_finite_array(logits, "logits", 2, "(N, K)")
    return logits, check_labels(labels, logits.shape[1], logits.shape[0])


def _check_temperature(temperature: float) -> float:
    if not (isinstance(temperature, (int, float, np.floating)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature: expected a finite number > 0, found {temperature!r}")
    return float(temperature)


def temperature_nll(logits, labels, temperature: float) -> float:
    """Mean NLL of ``softmax(logits / temperature)`` at the labels, in nats."""
    logits, labels = _checked_logits(logits, labels)
    log_probs = log_softmax(logits / _check_temperature(temperature), axis=1)
    return float(-np.mean(log_probs[np.arange(labels.shape[0]), labels]))


def fit_temperature(logits, labels, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """The temperature minimising the validation NLL.

    Args:
        logits: Validation logits (N, K); use :func:`logits_from_probs` for probabilities.
        labels: Validation class indices (N,).
        bounds: Smallest and largest temperature searched.

    Returns:
        The fitted temperature. A warning is issued when it lands on a bound.
    """
    logits, labels = _checked_logits(logits, labels)
    low, high = (_check_temperature(b) for b in bounds)
    if not low < high:
        raise ValueError(f"bounds: expected (low, high) with low < high, found {bounds!r}")
    rows = np.arange(labels.shape[0])

    def objective(log_t: float) -> float:
        return float(-np.mean(log_softmax(logits / math.exp(log_t), axis=1)[rows, labels]))

    result = minimize_scalar(objective, bounds=(math.log(low), math.log(high)), method="bounded",
                             options={"xatol": 1e-7})
    temperature = math.exp(result.x)
    if min(abs(result.x - math.log(low)), abs(result.x - math.log(high))) < 1e-4:
        warnings.warn(f"fitted temperature {temperature:.4g} is at the search bound {bounds}; the validation "
                      "set may be tiny, all correct or all wrong", RuntimeWarning, stacklevel=2)
    return temperature


def apply_temperature(logits, temperature: float) -> np.ndarray:
    """Calibrated probabilities ``softmax(logits / temperature)`` (N, K)."""
    logits = as_finite_array(logits, "logits", 2, "(N, K)")
    return softmax(logits / _check_temperature(temperature), axis=1)


@dataclass
class TemperatureScaler:
    """Fit on validation probabilities, then rescale any probabilities.

    Example:
        >>> scaler = TemperatureScaler().fit(valid_probs, valid_labels)
        >>> calibrated = scaler.transform(test_probs)

    Attributes:
        temperature: The fitted temperature (1.0 before fitting).
        nll_before: Validation NLL at temperature 1.
        nll_after: Validation NLL at the fitted temperature.
    """

    temperature: float = 1.0
    nll_before: float | None = None
    nll_after: float | None = None

    def fit(self, probs, labels) -> TemperatureScaler:
        """Fit the temperature on validation probabilities (N, K) and labels (N,)."""
        logits = logits_from_probs(probs)
        self.temperature = fit_temperature(logits, labels)
        self.nll_before = temperature_nll(logits, labels, 1.0)
        self.nll_after = temperature_nll(logits, labels, self.temperature)
        return self

    def transform(self, probs) -> np.ndarray:
        """Rescaled probabilities (N, K)."""
        return apply_temperature(logits_from_probs(probs), self.temperature)
