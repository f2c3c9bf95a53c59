"""Split-conformal expression sets: "this face is {happiness, surprise}" with a stated coverage.

Scores (higher means the label conforms less), for class probabilities ``p`` (K,) and a
candidate label ``y`` of rank ``o(y)`` (1 = most probable) with ``rho(y)`` the mass of the
classes ranked strictly above it:

* LAC (Sadinle, Lei & Wasserman 2019): ``s = 1 - p_y``.
* APS (Romano, Sesia & Candes 2020): ``s = rho(y) + u * p_y``; the non-randomized variant
  takes ``u = 1`` (the whole mass up to and including ``y``).
* RAPS (Angelopoulos et al. 2021): the APS score plus ``lambda * max(0, o(y) - k_reg)``,
  which penalises long tails of small probabilities.

``u ~ Uniform(0, 1)`` is drawn once per example, shared by every candidate label.

Calibration on ``n`` held-out examples takes ``qhat`` as the ``ceil((n + 1)(1 - alpha))``-th
smallest score, i.e. the empirical quantile at level ``ceil((n + 1)(1 - alpha)) / n``; when that
rank exceeds ``n`` the quantile is infinite and every set holds all classes. The set of a new
example is ``{y : s(x, y) <= qhat}``, which covers the true label with probability at least
``1 - alpha`` for exchangeable data (at most ``1 - alpha + 1 / (n + 1)`` for continuous
randomized scores). Mondrian (class-conditional) calibration fits one ``qhat_y`` per class on
the examples of that class, so each class is covered at ``1 - alpha`` however rare it is.

Empty sets: by default the most probable class always conforms: its score is set to 0
before calibration and prediction alike, so no set is empty and, the rule being part of the
score, the coverage guarantee still holds exactly (filling empty sets afterwards, as RAPS's
reference code does, would over-cover). When the model's top-1 accuracy exceeds ``1 - alpha``
no non-empty set can cover less than that accuracy, so coverage is then the accuracy.
``allow_empty=True`` keeps the scores as the papers define them and empty sets where they
arise, which some users read as "no expression I am sure of".

A fitted calibrator keeps its calibration scores, sorted per true class, so one calibration
serves every level: ``thresholds(alpha)`` takes the quantile again. Levels below
``1 / (n + 1)`` (``n`` the calibration examples; the largest class's count when Mondrian) are
refused: no finite threshold exists there, and sets of every class say nothing. It also keeps
the class names it was calibrated with, so that sets are never read with another model's
classes.
"""
from __future__ import annotations

import math

import numpy as np

SCORES = ("lac", "aps", "raps")


def _check_probs(probs) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0 or probs.shape[1] < 2:
        raise ValueError(f"probs: expected class probabilities of shape (N, K) with N >= 1 and K >= 2, "
                         f"found shape {probs.shape}")
    if not np.isfinite(probs).all() or (probs < -1e-6).any() or np.abs(probs.sum(axis=1) - 1.0).max() > 1e-4:
        raise ValueError("probs: expected finite rows of probabilities summing to 1; pass softmax outputs, "
                         "not logits")
    return probs


def _check_labels(labels, num_examples: int, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (num_examples,) or labels.dtype.kind not in "iu":
        raise ValueError(f"labels: expected {num_examples} integer class indices (shape ({num_examples},)), "
                         f"found shape {labels.shape} and dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels: expected indices in [0, {num_classes}), found [{labels.min()}, {labels.max()}]")
    return labels.astype(np.int64)


def _check_alpha(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: expected a miscoverage level in (0, 1) such as 0.1 for 90% sets, found {alpha!r}")
    return float(alpha)


def _check_score(score: str) -> str:
    if score not in SCORES:
        raise ValueError(f"score: expected one of {', '.join(SCORES)}, found {score!r}")
    return score


def conformity_scores(
    probs,
    score: str = "aps",
    randomized: bool = True,
    lam: float = 0.01,
    k_reg: int = 1,
    u=None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Non-conformity score of every candidate label: shape (N, K), higher conforming less.

    Args:
        probs: Class probabilities (N, K).
        score: ``"lac"``, ``"aps"`` or ``"raps"``.
        randomized: APS and RAPS draw ``u ~ U(0, 1)`` per example; ``False`` takes ``u = 1``.
            LAC ignores it.
        lam: RAPS penalty per rank beyond ``k_reg``.
        k_reg: RAPS: ranks up to this one carry no penalty.
        u: Optional uniforms (N,) to use instead of drawing them (for reproducible tests).
        rng: Generator for ``u``; a fresh unseeded one when ``None``.

    Returns:
        ``scores[i, y] = s(x_i, y)``.
    """
    probs = _check_probs(probs)
    score = _check_score(score)
    if score == "lac":
        return 1.0 - probs
    if lam < 0 or k_reg < 0:
        raise ValueError(f"RAPS: expected lam >= 0 and k_reg >= 0, found lam={lam!r}, k_reg={k_reg!r}")
    n, k = probs.shape
    # Stable descending order so ties rank by class index, the same for calibration and prediction.
    order = np.argsort(-probs, axis=1, kind="stable")  # (N, K) class at each rank
    sorted_probs = np.take_along_axis(probs, order, axis=1)  # (N, K)
    mass_above = np.cumsum(sorted_probs, axis=1) - sorted_probs  # (N, K) rho at each rank
    if randomized:
        u = (rng or np.random.default_rng()).uniform(size=n) if u is None else np.asarray(u, dtype=np.float64)
        if u.shape != (n,):
            raise ValueError(f"u: expected {n} uniforms (shape ({n},)), found shape {u.shape}")
    else:
        u = np.ones(n)
    ranked = mass_above + u[:, None] * sorted_probs  # (N, K)
    if score == "raps":
        ranks = np.arange(1, k + 1)
        ranked = ranked + lam * np.maximum(ranks - k_reg, 0)[None, :]
    scores = np.empty_like(ranked)
    np.put_along_axis(scores, order, ranked, axis=1)
    return scores


def conformal_rank(n: int, alpha: float) -> int:
    """``ceil((n + 1)(1 - alpha))``: the rank of the threshold among ``n`` calibration scores."""
    if n < 0 or not 0.0 < alpha < 1.0:
        raise ValueError(f"conformal_rank: expected n >= 0 and alpha in (0, 1), got n = {n}, alpha = {alpha}")
    return math.ceil((n + 1) * (1.0 - alpha) - 1e-9)  # the tolerance keeps e.g. (19 + 1) * 0.95 at 19


def conformal_quantile(scores, alpha: float) -> float:
    """The ``ceil((n + 1)(1 - alpha))``-th smallest of ``n`` calibration scores (``inf`` past ``n``).

    Args:
        scores: Scores of the true labels on the calibration set (n,).
        alpha: Miscoverage level in (0, 1).

    Returns:
        ``qhat``; sets ``{y : s(x, y) <= qhat}`` cover with probability >= ``1 - alpha``.
    """
    alpha = _check_alpha(alpha)
    scores = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    n = scores.shape[0]
    if n == 0:
        raise ValueError("scores: expected at least one calibration score, found none")
    rank = conformal_rank(n, alpha)
    return float("inf") if rank > n else float(scores[rank - 1])


def prediction_sets(scores, qhat, probs=None, allow_empty: bool = False) -> np.ndarray:
    """Boolean sets (N, K) from candidate scores and one threshold or one per class.

    Args:
        scores: ``s(x_i, y)`` (N, K) from :func:`conformity_scores`.
        qhat: A threshold, or K thresholds (Mondrian).
        probs: Class probabilities (N, K); needed unless ``allow_empty``, to fill empty sets
            with the most probable class.
        allow_empty: Keep empty sets.
    """
    scores = np.asarray(scores, dtype=np.float64)
    qhat = np.asarray(qhat, dtype=np.float64)
    # A safety net only for scores not pinned by top_class_conforms: a set never ends up empty.
    sets = scores <= (qhat[None, :] if qhat.ndim == 1 else qhat)
    if not allow_empty:
        if probs is None:
            raise ValueError("probs: needed to fill empty sets with the most probable class; pass probs, "
                             "or allow_empty=True")
        empty = ~sets.any(axis=1)
        sets[empty, np.argmax(np.asarray(probs)[empty], axis=1)] = True
    return sets


def top_class_conforms(scores, probs) -> np.ndarray:
    """``scores`` (N, K) with the most probable class's score set to 0, the least possible value.

    Thresholds are never below 0, so every set then holds the most probable class.
    """
    scores = np.array(scores, dtype=np.float64)
    scores[np.arange(scores.shape[0]), np.argmax(np.asarray(probs), axis=1)] = 0.0
    return scores


def coverage(sets, labels) -> float:
    """Fraction of examples whose true label lies in their set."""
    sets = np.asarray(sets, dtype=bool)
    labels = _check_labels(labels, sets.shape[0], sets.shape[1])
    return float(sets[np.arange(labels.shape[0]), labels].mean())


def set_sizes(sets) -> np.ndarray:
    """Number of labels in each set: shape (N,)."""
    return np.asarray(sets, dtype=bool).sum(axis=1)
