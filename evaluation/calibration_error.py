"""Binned calibration errors: ECE, MCE, average calibration error, adaptive ECE and class-wise ECE.

All of them reduce (N, K) probabilities to a confidence and a 0/1 outcome per example, sort
the confidences into bins and compare each bin's mean outcome ("accuracy") with its mean
confidence. The conventions are netcal's (``netcal.metrics.ECE``, ``MCE``, ``ACE``), so the
numbers agree with it to floating-point precision:

* the top-label confidence is the maximum probability and the outcome is whether its argmax
  (first class on ties) is the label;
* confidences are clipped to ``[eps, 1 - eps]`` (float64 machine epsilon) and a bin holds
  ``[lower, upper)``, except that values reaching the last edge stay in the last bin;
* equal-width bins split [0, 1] evenly; equal-mass bins put their inner edges at the
  confidence quantiles (NumPy's linear interpolation) and their outer edges at 0 and 1;
* an empty bin has accuracy, confidence and gap 0.

Equal-mass edges may coincide when many confidences tie; the bins between them are empty
here, where netcal (through SciPy's ``binned_statistic_dd``) raises.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluation._checks import check_labels, check_num_bins, check_probs

#: Number of bins when none is given (the usual choice for ECE since Guo et al., 2017).
DEFAULT_NUM_BINS = 15

_EPS = np.finfo(np.float64).eps


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin statistics of a reliability diagram; arrays have one entry per bin.

    Attributes:
        edges: Bin edges (B + 1,), from 0 to 1.
        counts: Examples per bin (B,).
        accuracy: Mean outcome per bin (B,), 0 in empty bins.
        confidence: Mean confidence per bin (B,), 0 in empty bins.
    """

    edges: np.ndarray
    counts: np.ndarray
    accuracy: np.ndarray
    confidence: np.ndarray

    @property
    def gaps(self) -> np.ndarray:
        """``|accuracy - confidence|`` per bin (B,), 0 in empty bins."""
        return np.abs(self.accuracy - self.confidence)

    @property
    def num_examples(self) -> int:
        return int(self.counts.sum())

    def expected_error(self) -> float:
        """Bin gaps weighted by the fraction of examples in each bin (ECE)."""
        return float(np.sum(self.counts / self.num_examples * self.gaps))

    def maximum_error(self) -> float:
        """Largest bin gap (MCE)."""
        return float(self.gaps.max())

    def average_error(self) -> float:
        """Bin gaps averaged over non-empty bins, each bin weighted equally (ACE)."""
        return float(self.gaps[self.counts > 0].mean())


def top_label(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidence and correctness.

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).

    Returns:
        ``(confidence, correct)``, both (N,): the maximum probability and whether its class
        (the first on ties) is the label, as 0.0 / 1.0.
    """
    probs = check_probs(probs)
    labels = check_labels(labels, probs.shape[1], probs.shape[0])
    correct = (np.argmax(probs, axis=1) == labels).astype(np.float64)
    return probs.max(axis=1), correct


def equal_width_edges(num_bins: int) -> np.ndarray:
    """``num_bins`` bins of width ``1 / num_bins`` over [0, 1]: edges of shape (B + 1,)."""
    return np.linspace(0.0, 1.0, check_num_bins(num_bins) + 1)


def equal_mass_edges(confidence: np.ndarray, num_bins: int) -> np.ndarray:
    """Edges at the quantiles of ``confidence`` so that bins hold (nearly) equal counts.

    Args:
        confidence: Confidences (N,) in [0, 1].
        num_bins: B.

    Returns:
        Non-decreasing edges (B + 1,) with the first at 0 and the last at 1.
    """
    edges = np.quantile(np.clip(confidence, _EPS, 1.0 - _EPS), equal_width_edges(num_bins))
    edges[0], edges[-1] = 0.0, 1.0
    return edges


def bin_outcomes(confidence: np.ndarray, outcome: np.ndarray, edges: np.ndarray) -> ReliabilityBins:
    """Sort (confidence, outcome) pairs into bins and average each bin.

    Args:
        confidence: Confidences (N,) in [0, 1].
        outcome: 0/1 outcomes (N,), e.g. whether the prediction was right.
        edges: Non-decreasing bin edges (B + 1,) from 0 to 1.

    Returns:
        The :class:`ReliabilityBins`.
    """
    assert confidence.shape == outcome.shape and confidence.ndim == 1, "confidence and outcome must be (N,)"
    num_bins = edges.shape[0] - 1
    confidence = np.clip(confidence, _EPS, 1.0 - _EPS)
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, num_bins - 1)
    counts = np.bincount(index, minlength=num_bins)
    filled = counts > 0
    mean_outcome = np.zeros(num_bins)
    mean_confidence = np.zeros(num_bins)
    mean_outcome[filled] = np.bincount(index, weights=outcome, minlength=num_bins)[filled] / counts[filled]
    mean_confidence[filled] = np.bincount(index, weights=confidence, minlength=num_bins)[filled] / counts[filled]
    return ReliabilityBins(edges=edges, counts=counts, accuracy=mean_outcome, confidence=mean_confidence)


def reliability_bins(probs, labels, num_bins: int = DEFAULT_NUM_BINS, equal_mass: bool = False) -> ReliabilityBins:
    """Top-label reliability statistics, the data behind a reliability diagram.

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).
        num_bins: Number of bins B.
        equal_mass: Equal-count bins at the confidence quantiles instead of equal-width bins.

    Returns:
        The :class:`ReliabilityBins` of the top-label confidence.
    """
    confidence, correct = top_label(probs, labels)
    edges = equal_mass_edges(confidence, num_bins) if equal_mass else equal_width_edges(num_bins)
    return bin_outcomes(confidence, correct, edges)


def ece(probs, labels, num_bins: int = DEFAULT_NUM_BINS) -> float:
    """Expected calibration error: equal-width bins, gaps weighted by bin count.

    Matches ``netcal.metrics.ECE(num_bins).measure(probs, labels)``; netcal reads labels with
    at most two distinct values as a binary problem, so compare only with K > 2 classes present.

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).
        num_bins: Number of equal-width bins.

    Returns:
        ``sum_b (n_b / N) |acc(b) - conf(b)|``, in [0, 1].
    """
    return reliability_bins(probs, labels, num_bins).expected_error()


def mce(probs, labels, num_bins: int = DEFAULT_NUM_BINS) -> float:
    """Maximum calibration error over equal-width bins (netcal's ``MCE``).

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).
        num_bins: Number of equal-width bins.

    Returns:
        ``max_b |acc(b) - conf(b)|`` over the bins, empty bins counting 0.
    """
    return reliability_bins(probs, labels, num_bins).maximum_error()


def average_calibration_error(probs, labels, num_bins: int = DEFAULT_NUM_BINS) -> float:
    """Average calibration error: equal-width bins, every non-empty bin weighted equally (netcal's ``ACE``).

    Not Nixon et al.'s *adaptive* calibration error (also abbreviated ACE), which bins by
    equal mass over all classes; :func:`adaptive_ece` is the equal-mass top-label variant.

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).
        num_bins: Number of equal-width bins.

    Returns:
        The mean of ``|acc(b) - conf(b)|`` over non-empty bins.
    """
    return reliability_bins(probs, labels, num_bins).average_error()


def adaptive_ece(probs, labels, num_bins: int = DEFAULT_NUM_BINS) -> float:
    """ECE over equal-mass bins (netcal's ``ECE(num_bins, equal_intervals=False)``).

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).
        num_bins: Number of equal-mass bins.

    Returns:
        ``sum_b (n_b / N) |acc(b) - conf(b)|`` with bin edges at the confidence quantiles.
    """
    return reliability_bins(probs, labels, num_bins, equal_mass=True).expected_error()


def classwise_ece_per_class(probs, labels, num_bins: int = DEFAULT_NUM_BINS) -> np.ndarray:
    """ECE of each class's probability against the one-vs-rest outcome ``labels == k``.

    Each entry equals netcal's binary ``ECE(num_bins).measure(probs[:, k], labels == k)``.

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).
        num_bins: Number of equal-width bins.

    Returns:
        Per-class calibration errors (K,).
    """
    probs = check_probs(probs)
    labels = check_labels(labels, probs.shape[1], probs.shape[0])
    edges = equal_width_edges(num_bins)
    return np.array([
        bin_outcomes(probs[:, k], (labels == k).astype(np.float64), edges).expected_error()
        for k in range(probs.shape[1])
    ])


def classwise_ece(probs, labels, num_bins: int = DEFAULT_NUM_BINS) -> float:
    """Class-wise ECE: the mean over classes of :func:`classwise_ece_per_class`.

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).
        num_bins: Number of equal-width bins.

    Returns:
        The class-wise ECE.
    """
    return float(classwise_ece_per_class(probs, labels, num_bins).mean())
