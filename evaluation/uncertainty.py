"""Uncertainty scores and how well they rank mistakes.

Predictive entropy, expected entropy and mutual information from Monte-Carlo class
probabilities (S, N, K); the risk-coverage curve, its area (AURC) and selective accuracy;
the AUROC of detecting misclassified examples from an uncertainty score. Entropies are in nats.
"""
from __future__ import annotations

import numpy as np
from scipy.special import xlogy
from scipy.stats import rankdata

from evaluation._checks import as_finite_array, check_labels, check_probs, check_samples


def entropy(probs) -> np.ndarray:
    """Shannon entropy of each row of ``probs`` (N, K), in nats, with 0 log 0 = 0: shape (N,)."""
    probs = check_probs(probs)
    return -np.sum(xlogy(probs, probs), axis=1)


def predictive_entropy(samples) -> np.ndarray:
    """Entropy of the Monte-Carlo mean, ``H[mean_s p_s]`` (total uncertainty): shape (N,).

    Args:
        samples: Class probabilities per draw (S, N, K).
    """
    return entropy(check_samples(samples).mean(axis=0))


def expected_entropy(samples) -> np.ndarray:
    """Mean entropy of the draws, ``mean_s H[p_s]`` (the aleatoric part): shape (N,).

    Args:
        samples: Class probabilities per draw (S, N, K).
    """
    samples = check_samples(samples)
    return -np.sum(xlogy(samples, samples), axis=2).mean(axis=0)


def mutual_information(samples) -> np.ndarray:
    """Mutual information between the label and the latent draw (the epistemic part): shape (N,).

    ``MI = H[mean_s p_s] - mean_s H[p_s]``, which is >= 0 by Jensen's inequality; rounding
    below 0 is clipped. It is 0 for a single draw or identical draws.

    Args:
        samples: Class probabilities per draw (S, N, K).
    """
    samples = check_samples(samples)
    return np.maximum(predictive_entropy(samples) - expected_entropy(samples), 0.0)


def _checked_scores(scores, num_examples: int, name: str) -> np.ndarray:
    scores = as_finite_array(scores, name, 1, "(N,)")
    if scores.shape[0] != num_examples:
        raise ValueError(f"{name}: expected {num_examples} scores to match probs (N = {num_examples}), "
                         f"found {scores.shape[0]}")
    return scores


def risk_coverage_curve(probs, labels, confidence=None) -> tuple[np.ndarray, np.ndarray]:
    """Selective risk when keeping the ``n`` most confident examples, for n = 1..N.

    Examples with equal confidence cannot be ordered, so within a tie the curve takes the
    expectation over their orderings: keeping ``j`` of ``g`` tied examples of which ``e`` are
    wrong adds ``j * e / g`` expected errors. The curve thus does not depend on input order.

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).
        confidence: Scores (N,), higher meaning more confident; the maximum probability by default.

    Returns:
        ``(coverage, risk)``, both (N,): ``coverage[n-1] = n / N`` and ``risk[n-1]`` the
        expected error rate among the ``n`` most confident examples.
    """
    probs = check_probs(probs)
    labels = check_labels(labels, probs.shape[1], probs.shape[0])
    n = probs.shape[0]
    confidence = probs.max(axis=1) if confidence is None else _checked_scores(confidence, n, "confidence")
    errors = (np.argmax(probs, axis=1) != labels).astype(np.float64)
    order = np.argsort(-confidence, kind="stable")
    sorted_conf, sorted_err = confidence[order], errors[order]
    # Tie groups in the sorted order: start position, size and error count of each.
    starts = np.flatnonzero(np.r_[True, sorted_conf[1:] != sorted_conf[:-1]])
    sizes = np.diff(np.r_[starts, n])
    group_errors = np.add.reduceat(sorted_err, starts)
    errors_before = np.r_[0.0, np.cumsum(group_errors)[:-1]]
    group = np.repeat(np.arange(starts.shape[0]), sizes)  # (N,) tie group of each position
    kept = np.arange(1, n + 1)
    expected_errors = errors_before[group] + (kept - starts[group]) * group_errors[group] / sizes[group]
    return kept / n, expected_errors / kept


def aurc(probs, labels, confidence=None) -> float:
    """Area under the risk-coverage curve: the mean selective risk over the N coverage levels.

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).
        confidence: Scores (N,), higher meaning more confident; the maximum probability by default.

    Returns:
        AURC in [0, 1]; lower is better.
    """
    return float(np.mean(risk_coverage_curve(probs, labels, confidence)[1]))


def optimal_aurc(probs, labels) -> float:
    """The AURC of a confidence that ranks every correct example above every mistake."""
    probs = check_probs(probs)
    correct = (np.argmax(probs, axis=1) == check_labels(labels, probs.shape[1], probs.shape[0])).astype(float)
    return aurc(probs, labels, confidence=correct)


def excess_aurc(probs, labels, confidence=None) -> float:
    """AURC minus :func:`optimal_aurc` (E-AURC), which removes the effect of the error rate."""
    return aurc(probs, labels, confidence) - optimal_aurc(probs, labels)


def selective_accuracy(probs, labels, coverage: float, confidence=None) -> float:
    """Accuracy on the ``ceil(coverage * N)`` most confident examples (ties by expectation).

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).
        coverage: Fraction of examples kept, in (0, 1].
        confidence: Scores (N,), higher meaning more confident; the maximum probability by default.

    Returns:
        The accuracy on the kept examples.
    """
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage: expected a fraction in (0, 1], found {coverage!r}")
    _, risk = risk_coverage_curve(probs, labels, confidence)
    kept = max(1, int(np.ceil(coverage * risk.shape[0] - 1e-9)))
    return float(1.0 - risk[kept - 1])


def auroc(scores, positive) -> float:
    """Area under the ROC curve of ``scores`` separating positives from negatives.

    Equals the probability that a random positive scores above a random negative, ties
    counting one half (the Mann-Whitney statistic from average ranks).

    Args:
        scores: Scores (N,), higher meaning more likely positive.
        positive: Booleans (N,).

    Returns:
        AUROC in [0, 1].

    Raises:
        ValueError: When ``positive`` holds only one class, where AUROC is undefined.
    """
    scores = as_finite_array(scores, "scores", 1, "(N,)")
    positive = np.asarray(positive, dtype=bool)
    if positive.shape != scores.shape:
        raise ValueError(f"positive: expected shape {scores.shape} to match scores, found {positive.shape}")
    num_pos = int(positive.sum())
    num_neg = positive.shape[0] - num_pos
    if num_pos == 0 or num_neg == 0:
        raise ValueError(f"AUROC is undefined with {num_pos} positives and {num_neg} negatives; "
                         "both classes must occur")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - num_pos * (num_pos + 1) / 2) / (num_pos * num_neg))


def misclassification_auroc(uncertainty, probs, labels) -> float:
    """AUROC of an uncertainty score at flagging misclassified examples.

    Args:
        uncertainty: Scores (N,), higher meaning more uncertain (e.g. entropy, ``1 - max prob``).
        probs: Class probabilities (N, K), which decide what is misclassified.
        labels: Class indices (N,).

    Returns:
        AUROC in [0, 1]; 0.5 is chance.

    Raises:
        ValueError: When every example is right, or every one wrong.
    """
    probs = check_probs(probs)
    labels = check_labels(labels, probs.shape[1], probs.shape[0])
    uncertainty = _checked_scores(uncertainty, probs.shape[0], "uncertainty")
    return auroc(uncertainty, np.argmax(probs, axis=1) != labels)


def uncertainty_scores(probs, samples=None) -> dict[str, np.ndarray]:
    """Per-example uncertainty scores, each (N,) with higher meaning more uncertain.

    Args:
        probs: Class probabilities (N, K).
        samples: Optional Monte-Carlo class probabilities (S, N, K).

    Returns:
        ``{"max_prob": 1 - max prob, "entropy": entropy of probs}``, plus
        ``"mutual_information"`` when samples are given.
    """
    probs = check_probs(probs)
    scores = {"max_prob": 1.0 - probs.max(axis=1), "entropy": entropy(probs)}
    if samples is not None:
        scores["mutual_information"] = mutual_information(samples)
    return scores


def select_examples(probs, labels) -> dict[str, int]:
    """Indices of telling examples to plot (the paper's Fig. 5).

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).

    Returns:
        ``"most_confident"``: the correct example (any example when none is correct) with the
        highest maximum probability; ``"most_uncertain"``: the highest-entropy example;
        ``"misclassified"``: the most confident mistake, absent when there is none.
    """
    probs = check_probs(probs)
    labels = check_labels(labels, probs.shape[1], probs.shape[0])
    confidence = probs.max(axis=1)
    wrong = np.argmax(probs, axis=1) != labels
    right_conf = np.where(wrong, -np.inf, confidence) if (~wrong).any() else confidence
    chosen = {"most_confident": int(np.argmax(right_conf)), "most_uncertain": int(np.argmax(entropy(probs)))}
    if wrong.any():
        chosen["misclassified"] = int(np.argmax(np.where(wrong, confidence, -np.inf)))
    return chosen
