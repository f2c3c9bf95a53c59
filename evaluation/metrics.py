"""Classification metrics and proper scoring rules as pure functions of (probs, labels).

Accuracy, balanced accuracy, the confusion matrix (the paper's Fig. 4), per-class precision,
recall, F1 and support (the paper's Table 4), the negative log-likelihood and the Brier score.
Every function takes ``probs`` (N, K) and ``labels`` (N,) and divides by the true example
count. The binned calibration errors live in :mod:`evaluation.calibration_error`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluation._checks import check_labels, check_probs

#: Probabilities are floored here in the NLL: a confident mistake costs -log(1e-12) ~ 27.6 nats, not inf.
NLL_FLOOR = 1e-12


def _checked(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    probs = check_probs(probs)
    return probs, check_labels(labels, probs.shape[1], probs.shape[0])


def predictions_of(probs) -> np.ndarray:
    """The predicted class per example, ``argmax`` over classes (the first class wins ties)."""
    return np.argmax(check_probs(probs), axis=1)


def accuracy(probs, labels) -> float:
    """Fraction of examples whose most probable class is the label.

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).

    Returns:
        Accuracy in [0, 1].
    """
    probs, labels = _checked(probs, labels)
    return float(np.mean(np.argmax(probs, axis=1) == labels))


def confusion_matrix(probs, labels, normalize: str | None = None) -> np.ndarray:
    """Confusion matrix with true classes as rows and predicted classes as columns.

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).
        normalize: ``None`` for counts, ``"true"`` to divide each row by its class support
            (rows of absent classes stay 0), ``"all"`` to divide by N.

    Returns:
        A (K, K) array; ``matrix[i, j]`` counts examples of class i predicted as class j.
    """
    probs, labels = _checked(probs, labels)
    k = probs.shape[1]
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (labels, np.argmax(probs, axis=1)), 1)
    if normalize is None:
        return matrix
    if normalize == "true":
        support = matrix.sum(axis=1, keepdims=True)
        return np.divide(matrix, support, out=np.zeros((k, k)), where=support > 0)
    if normalize == "all":
        return matrix / matrix.sum()
    raise ValueError(f"normalize: expected None, 'true' or 'all', found {normalize!r}")


@dataclass(frozen=True)
class PerClassScores:
    """Per-class precision, recall, F1 and support, each of shape (K,).

    A class never predicted has precision 0, a class never present has recall 0, and F1 is 0
    when precision and recall are both 0 (scikit-learn's ``zero_division=0`` convention).
    """

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray

    @property
    def macro_f1(self) -> float:
        """Unweighted mean F1 over all K classes."""
        return float(self.f1.mean())


def per_class_scores(probs, labels) -> PerClassScores:
    """Precision, recall, F1 and support per class (the paper's Table 4).

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).

    Returns:
        A :class:`PerClassScores`.
    """
    matrix = confusion_matrix(probs, labels)
    true_positive = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive), where=predicted > 0)
    recall = np.divide(true_positive, support, out=np.zeros_like(true_positive), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return PerClassScores(precision=precision, recall=recall, f1=f1, support=support)


def balanced_accuracy(probs, labels) -> float:
    """Mean recall over the classes present in ``labels`` (absent classes are left out).

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).

    Returns:
        Balanced accuracy in [0, 1].
    """
    scores = per_class_scores(probs, labels)
    return float(scores.recall[scores.support > 0].mean())


def nll(probs, labels, floor: float = NLL_FLOOR) -> float:
    """Mean negative log-likelihood of the labels, in nats.

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).
        floor: Probabilities below this are raised to it, so one certain mistake is finite.

    Returns:
        ``-mean(log probs[n, labels[n]])``.
    """
    probs, labels = _checked(probs, labels)
    picked = probs[np.arange(labels.shape[0]), labels]
    return float(-np.mean(np.log(np.maximum(picked, floor))))


def brier_score(probs, labels) -> float:
    """Multi-class Brier score: mean over examples of the squared distance to the one-hot label.

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).

    Returns:
        ``mean_n sum_k (probs[n, k] - 1[k == labels[n]])**2``, in [0, 2].
    """
    probs, labels = _checked(probs, labels)
    one_hot = np.eye(probs.shape[1])[labels]
    return float(np.mean(np.sum((probs - one_hot) ** 2, axis=1)))
