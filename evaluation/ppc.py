"""Posterior-predictive checks of the annotator votes.

A model fitted to votes should produce votes like the real ones: for each held-out face,
votes are simulated from the fitted predictive (n_i annotators, each voting with the face's
predicted class probabilities; with a Dirichlet-multinomial fit, the probabilities are first
drawn from Dirichlet(alpha p_i)), and summary statistics of the simulated votes are compared
with those of the real votes. A statistic far in the tail of its simulated distribution
(posterior-predictive p-value near 0 or 1) shows where the model misdescribes annotators.
"""
from __future__ import annotations

import numpy as np

from evaluation._checks import check_probs, check_votes


def vote_entropy(votes: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each face's vote proportions (N,); faces without votes give 0."""
    n = votes.sum(-1, keepdims=True)
    p = np.divide(votes, n, out=np.zeros_like(votes, dtype=np.float64), where=n > 0)
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1)


def top_vote_share(votes: np.ndarray) -> np.ndarray:
    """Share of each face's votes that went to its most voted class (N,): 1 = unanimous."""
    n = votes.sum(-1)
    return np.divide(votes.max(-1), n, out=np.zeros(votes.shape[:-1]), where=n > 0)


def simulate_votes(probs: np.ndarray, totals: np.ndarray, num_replicates: int, rng: np.random.Generator,
                   concentration: float | None = None) -> np.ndarray:
    """Replicated votes (R, N, K): multinomial with each face's probabilities, or
    Dirichlet-multinomial with total concentration ``concentration``."""
    R, (N, K) = num_replicates, probs.shape
    p = np.broadcast_to(probs, (R, N, K))
    if concentration is not None:
        p = rng.gamma(np.maximum(concentration * p, 1e-6))
        p = p / p.sum(-1, keepdims=True)
    out = np.empty((R, N, K))
    for r in range(R):
        out[r] = rng.multinomial(totals.astype(np.int64), p[r])
    return out


def vote_ppc(probs, votes, num_replicates: int = 200, concentration: float | None = None,
             seed: int = 0) -> dict[str, float | np.ndarray]:
    """Posterior-predictive check of vote entropy and agreement on held-out faces.

    Args:
        probs: (N, K) predicted class probabilities per face.
        votes: (N, K) real annotator vote counts.
        num_replicates: simulated vote sets.
        concentration: alpha of a Dirichlet-multinomial fit; None for multinomial.
        seed: seed of the simulation.

    Returns:
        ``observed/<stat>`` and ``replicated/<stat>`` (mean and 5th/95th percentiles over
        replicates) for mean vote entropy and mean top-vote share, their two-sided-ready
        p-values ``p_value/<stat>`` = P(replicated >= observed), ``face_coverage_90``: the share of
        faces whose real vote entropy lies within the central 90% of its own simulations, and
        ``replicated_entropy`` (R, N) for plotting.
    """
    probs = check_probs(probs)
    votes = check_votes(votes, probs.shape[0], probs.shape[1])
    if num_replicates < 10:
        raise ValueError(f"num_replicates must be >= 10 for percentiles to mean anything, got {num_replicates}")
    if concentration is not None and not (np.isfinite(concentration) and concentration > 0):
        raise ValueError(f"concentration must be a finite number > 0, got {concentration}")
    totals = votes.sum(-1).round()
    keep = totals > 0
    if not keep.any():
        raise ValueError("no face has any votes: a vote check needs vote counts (FER+ gives 10 per face)")
    probs, votes, totals = probs[keep], votes[keep], totals[keep]
    rng = np.random.default_rng(seed)
    sims = simulate_votes(probs, totals, num_replicates, rng, concentration)  # (R, N, K)
    out: dict[str, float | np.ndarray] = {"num_faces": int(keep.sum())}
    for name, stat in (("vote_entropy", vote_entropy), ("top_vote_share", top_vote_share)):
        observed = stat(votes)  # (N,)
        replicated = stat(sims)  # (R, N)
        means = replicated.mean(1)
        out[f"observed/{name}"] = float(observed.mean())
        out[f"replicated/{name}"] = float(means.mean())
        out[f"replicated_p05/{name}"] = float(np.percentile(means, 5))
        out[f"replicated_p95/{name}"] = float(np.percentile(means, 95))
        out[f"p_value/{name}"] = float(np.mean(means >= observed.mean()))
        if name == "vote_entropy":
            lo, hi = np.percentile(replicated, [5, 95], axis=0)
            out["face_coverage_90"] = float(np.mean((observed >= lo) & (observed <= hi)))
            out["replicated_entropy"] = replicated
            out["observed_entropy"] = observed
    return out
