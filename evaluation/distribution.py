"""Distribution-level metrics against annotator votes (FER+).

FER+ gives every face ten crowd votes over the expressions. If the model learns expression
mixtures, as VICH claims, its predictive distribution should match the vote shares, not just
their majority. These functions measure how far it is: KL(votes || prediction), the
Jensen-Shannon divergence and the total variation distance (means over examples, in nats
where logarithms appear), and correlations between predictions and votes.
"""
from __future__ import annotations

import numpy as np
from scipy.special import xlogy

from evaluation._checks import as_finite_array, check_probs, check_same_shape, check_votes

#: Predicted probabilities are floored here inside logarithms, so a zero under a vote stays finite.
LOG_FLOOR = 1e-12


def vote_distribution(votes) -> np.ndarray:
    """Vote counts (N, K) normalised to shares that sum to 1 per example."""
    votes = check_votes(votes)
    return votes / votes.sum(axis=1, keepdims=True)


def _pair(votes, probs) -> tuple[np.ndarray, np.ndarray]:
    probs = check_probs(probs)
    return vote_distribution(check_votes(votes, *probs.shape)), probs


def _kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    # sum_k p log(p / q) with 0 log 0 = 0: (N,)
    return np.sum(xlogy(p, p) - xlogy(p, np.maximum(q, LOG_FLOOR)), axis=1)


def kl_divergence(votes, probs) -> float:
    """Mean KL(vote shares || predicted probabilities), in nats.

    Args:
        votes: Vote counts or shares (N, K).
        probs: Predicted class probabilities (N, K).

    Returns:
        ``mean_n sum_k v[n, k] log(v[n, k] / p[n, k])`` with ``v`` the vote shares.
    """
    shares, probs = _pair(votes, probs)
    return float(np.mean(_kl_rows(shares, probs)))


def js_divergence(votes, probs) -> float:
    """Mean Jensen-Shannon divergence between vote shares and predictions, in nats (<= log 2).

    Args:
        votes: Vote counts or shares (N, K).
        probs: Predicted class probabilities (N, K).

    Returns:
        ``mean_n [KL(v || m) + KL(p || m)] / 2`` with ``m = (v + p) / 2``.
    """
    shares, probs = _pair(votes, probs)
    middle = (shares + probs) / 2
    return float(np.mean((_kl_rows(shares, middle) + _kl_rows(probs, middle)) / 2))


def total_variation(votes, probs) -> float:
    """Mean total variation distance between vote shares and predictions, in [0, 1].

    Args:
        votes: Vote counts or shares (N, K).
        probs: Predicted class probabilities (N, K).

    Returns:
        ``mean_n sum_k |v[n, k] - p[n, k]| / 2``.
    """
    shares, probs = _pair(votes, probs)
    return float(np.mean(np.abs(shares - probs).sum(axis=1) / 2))


def pearson_correlation(x, y) -> float:
    """Pearson correlation of two equally long sequences (flattened).

    Raises:
        ValueError: Different sizes, fewer than two values or a constant input.
    """
    x = as_finite_array(np.ravel(x), "x", 1, "(M,)")
    y = as_finite_array(np.ravel(y), "y", 1, "(M,)")
    if x.shape != y.shape or x.shape[0] < 2:
        raise ValueError(f"expected two sequences of equal length >= 2, found {x.shape[0]} and {y.shape[0]}")
    dx, dy = x - x.mean(), y - y.mean()
    norm = np.sqrt(np.sum(dx**2) * np.sum(dy**2))
    if norm == 0:
        raise ValueError("correlation is undefined for a constant sequence")
    return float(np.sum(dx * dy) / norm)


def intensity_vote_correlation(loc, votes, per_image: bool = False) -> float:
    """Correlation between predicted intensity means and vote shares.

    Args:
        loc: Means of the latent expression intensities (N, K) (or probabilities, for a
            deterministic head).
        votes: Vote counts or shares (N, K).
        per_image: Pool all (image, class) pairs into one Pearson correlation (``False``), or
            correlate the K classes within each image and average over images (``True``),
            which ignores per-image offsets of the intensities. Images whose intensities or
            shares are constant are left out of the average.

    Returns:
        The correlation in [-1, 1].

    Raises:
        ValueError: Mismatched shapes, or (per image) no image with varying values.
    """
    loc = as_finite_array(loc, "loc", 2, "(N, K)")
    shares = vote_distribution(check_votes(votes, *loc.shape))
    if not per_image:
        return pearson_correlation(loc, shares)
    dl = loc - loc.mean(axis=1, keepdims=True)
    ds = shares - shares.mean(axis=1, keepdims=True)
    norm = np.sqrt(np.sum(dl**2, axis=1) * np.sum(ds**2, axis=1))  # (N,)
    varying = norm > 0
    if not varying.any():
        raise ValueError("per-image correlation is undefined: every image has constant intensities or shares")
    return float(np.mean(np.sum(dl * ds, axis=1)[varying] / norm[varying]))


def vote_metrics(votes, probs, loc=None) -> dict[str, float | None]:
    """All vote metrics, keyed as in ``metrics.json`` (a correlation is None where undefined).

    Args:
        votes: Vote counts or shares (N, K).
        probs: Predicted class probabilities (N, K).
        loc: Optional intensity means (N, K).

    Returns:
        ``kl``, ``js``, ``total_variation``, ``probability_correlation``,
        ``entropy_correlation`` (predicted entropy against vote entropy, per image) and, with
        ``loc``, ``intensity_correlation`` and ``intensity_correlation_per_image``.
    """
    shares, probs = _pair(votes, probs)
    results: dict[str, float | None] = {
        "kl": kl_divergence(shares, probs),
        "js": js_divergence(shares, probs),
        "total_variation": total_variation(shares, probs),
    }

    def guarded(fn, *args, **kwargs) -> float | None:
        try:
            return fn(*args, **kwargs)
        except ValueError:
            return None

    results["probability_correlation"] = guarded(pearson_correlation, probs, shares)
    results["entropy_correlation"] = guarded(
        pearson_correlation, -np.sum(xlogy(probs, probs), axis=1), -np.sum(xlogy(shares, shares), axis=1)
    )
    if loc is not None:
        check_same_shape(np.asarray(loc), probs.shape, "loc")
        results["intensity_correlation"] = guarded(intensity_vote_correlation, loc, shares)
        results["intensity_correlation_per_image"] = guarded(intensity_vote_correlation, loc, shares, per_image=True)
    return results
