"""Input checks shared by every metric: each error names the array, the problem and the fix.

The metrics take NumPy arrays (or anything ``np.asarray`` accepts, CPU tensors included) and
return plain Python floats. Checking once here keeps the metric bodies short and the messages
consistent.
"""
from __future__ import annotations

import numpy as np

#: Probabilities may lie this far outside [0, 1], and rows may sum this far from 1 (float32
#: softmax is ~1e-7 off); what passes is clipped to [0, 1] and renormalised.
SUM_TOLERANCE = 1e-4


def as_finite_array(values, name: str, ndim: int, shape_doc: str) -> np.ndarray:
    """``values`` as a float64 array of ``ndim`` dimensions, non-empty and finite.

    Args:
        values: Anything ``np.asarray`` accepts.
        name: The array's name in error messages.
        ndim: The required number of dimensions.
        shape_doc: The expected shape as shown in messages, e.g. ``"(N, K)"``.
    """
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array of shape {shape_doc}, found dtype {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(
            f"{name}: expected shape {shape_doc}, found shape {array.shape} ({array.ndim}-D); "
            f"pass one row per example"
        )
    if array.shape[-2 if ndim > 1 else 0] == 0 or array.size == 0:
        raise ValueError(f"{name}: empty (shape {array.shape}); expected at least one example")
    array = array.astype(np.float64, copy=False)
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(array[where]) else "an infinite value"
        raise ValueError(f"{name}: contains {kind} at index {where} ({int(bad.sum())} non-finite entries in all)")
    return array


def check_probs(probs, name: str = "probs", tolerance: float = SUM_TOLERANCE) -> np.ndarray:
    """Validate class probabilities of shape (N, K).

    Args:
        probs: Probabilities, one row per example, each row summing to 1.
        name: The array's name in error messages.
        tolerance: How far a row sum may be from 1.

    Returns:
        The probabilities as a float64 array, clipped to [0, 1] and renormalised (values within
        ``tolerance`` outside [0, 1] pass validation; clipping keeps entropies finite).

    Raises:
        ValueError: Wrong shape, empty, non-finite, outside [0, 1] or rows not summing to 1.
    """
    array = as_finite_array(probs, name, 2, "(N, K)")
    if array.shape[1] < 2:
        raise ValueError(f"{name}: expected at least 2 classes (shape (N, K) with K >= 2), found shape {array.shape}")
    low, high = float(array.min()), float(array.max())
    if low < -tolerance or high > 1 + tolerance:
        raise ValueError(
            f"{name}: expected probabilities in [0, 1], found values in [{low:.4g}, {high:.4g}]; "
            "pass softmax outputs, not logits"
        )
    sums = array.sum(axis=1)
    off = np.abs(sums - 1.0) > tolerance
    if off.any():
        row = int(np.argmax(off))
        raise ValueError(
            f"{name}: every row must sum to 1 (within {tolerance:g}), but row {row} sums to {sums[row]:.6g} "
            f"({int(off.sum())} rows off); pass softmax outputs, or renormalise with "
            f"{name} / {name}.sum(axis=1, keepdims=True)"
        )
    if low < 0.0 or high > 1.0:  # only values within the tolerance outside [0, 1] get here
        array = np.clip(array, 0.0, 1.0)
        array = array / array.sum(axis=1, keepdims=True)
    return array


def check_labels(labels, num_classes: int, num_examples: int | None = None, name: str = "labels") -> np.ndarray:
    """Validate integer class labels of shape (N,) in ``[0, num_classes)``.

    Args:
        labels: Class indices.
        num_classes: K, the number of classes.
        num_examples: N, when the labels must match another array's length.
        name: The array's name in error messages.

    Returns:
        The labels as an int64 array.

    Raises:
        ValueError: Wrong shape or length, empty, NaN, fractional or out-of-range labels.
        TypeError: A non-numeric dtype.
    """
    array = np.asarray(labels)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected integer class indices of shape (N,), found dtype {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"{name}: expected shape (N,) of class indices, found shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name}: empty (shape {array.shape}); expected at least one example")
    if num_examples is not None and array.shape[0] != num_examples:
        raise ValueError(
            f"{name}: expected {num_examples} labels to match probs (N = {num_examples}), found {array.shape[0]}"
        )
    if array.dtype.kind == "f":
        if np.isnan(array).any():
            raise ValueError(f"{name}: contains NaN at index {int(np.argmax(np.isnan(array)))}")
        if (array != np.round(array)).any():
            raise ValueError(f"{name}: expected integer class indices, found fractional values such as "
                             f"{array[array != np.round(array)][0]}")
    array = array.astype(np.int64)
    bad = (array < 0) | (array >= num_classes)
    if bad.any():
        index = int(np.argmax(bad))
        raise ValueError(
            f"{name}: expected class indices in [0, {num_classes - 1}] for K = {num_classes} classes, "
            f"found {array[index]} at index {index}"
        )
    return array


def check_samples(samples, name: str = "samples") -> np.ndarray:
    """Validate Monte-Carlo class probabilities of shape (S, N, K); each (S, N) row sums to 1."""
    array = as_finite_array(samples, name, 3, "(S, N, K)")
    if array.shape[0] == 0:
        raise ValueError(f"{name}: no Monte-Carlo draws (shape {array.shape}); expected S >= 1")
    s, n, k = array.shape
    check_probs(array.reshape(s * n, k), name=f"{name} (flattened to (S*N, K))")
    return array


def check_votes(votes, num_examples: int | None = None, num_classes: int | None = None,
                name: str = "votes") -> np.ndarray:
    """Validate annotator vote counts (or shares) of shape (N, K): non-negative, no all-zero row."""
    array = as_finite_array(votes, name, 2, "(N, K)")
    check_same_shape(array, (num_examples, num_classes), name)
    if (array < 0).any():
        raise ValueError(f"{name}: expected non-negative vote counts, found {array.min():.4g}")
    empty = array.sum(axis=1) <= 0
    if empty.any():
        raise ValueError(
            f"{name}: row {int(np.argmax(empty))} has no votes ({int(empty.sum())} such rows); "
            "drop examples without annotations before evaluating"
        )
    return array


def check_same_shape(array: np.ndarray, expected: tuple[int | None, ...], name: str) -> None:
    """Raise when ``array.shape`` differs from ``expected`` (``None`` entries match anything)."""
    if len(expected) != array.ndim or any(e is not None and e != a for e, a in zip(expected, array.shape)):
        parts = ["?" if e is None else str(e) for e in expected]
        shown = f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"
        raise ValueError(f"{name}: expected shape {shown} to match probs, found {array.shape}")


def check_num_bins(num_bins: int) -> int:
    """Validate a bin count."""
    if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise ValueError(f"num_bins: expected a positive integer, found {num_bins!r}")
    return int(num_bins)
