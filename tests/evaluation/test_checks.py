"""Bad input fails with an error that names the array and the problem."""
from __future__ import annotations

import numpy as np
import pytest

from evaluation._checks import check_labels, check_probs, check_samples, check_votes
from evaluation.calibration_error import ece
from evaluation.metrics import accuracy, nll

GOOD = np.array([[0.6, 0.4], [0.3, 0.7]])


@pytest.mark.parametrize(
    "probs, match",
    [
        (np.array([[0.6, 0.6], [0.3, 0.7]]), r"probs: every row must sum to 1 .* row 0 sums to 1\.2"),
        (np.array([[2.0, -1.0], [0.3, 0.7]]), r"probs: expected probabilities in \[0, 1\].*not logits"),
        (np.array([[np.nan, 0.4], [0.3, 0.7]]), r"probs: contains NaN at index \(0, 0\)"),
        (np.array([[np.inf, 0.4], [0.3, 0.7]]), r"probs: contains an infinite value"),
        (np.zeros((0, 3)), r"probs: empty"),
        (np.array([0.6, 0.4]), r"probs: expected shape \(N, K\), found shape \(2,\)"),
        (np.ones((2, 1)), r"probs: expected at least 2 classes"),
        (np.array([["a", "b"]]), r"probs: expected a numeric array"),
    ],
)
def test_bad_probs(probs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        accuracy(probs, np.zeros(len(probs), dtype=int))


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.array([0, 2]), r"labels: expected class indices in \[0, 1\] for K = 2 classes, found 2 at index 1"),
        (np.array([0, -1]), r"labels: .* found -1 at index 1"),
        (np.array([0, 1, 1]), r"labels: expected 2 labels to match probs \(N = 2\), found 3"),
        (np.array([0.0, np.nan]), r"labels: contains NaN at index 1"),
        (np.array([0.0, 0.5]), r"labels: expected integer class indices, found fractional"),
        (np.array([[0, 1]]), r"labels: expected shape \(N,\)"),
    ],
)
def test_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        nll(GOOD, labels)


def test_empty_labels_are_rejected():
    with pytest.raises(ValueError, match=r"labels: empty"):
        check_labels(np.array([], dtype=int), num_classes=3)


def test_whole_float_labels_and_tensors_are_accepted():
    import torch

    assert accuracy(torch.tensor(GOOD), torch.tensor([0.0, 1.0])) == 1.0


def test_rounding_within_tolerance_is_accepted():
    probs = check_probs(np.array([[0.5, 0.5 + 5e-5]], dtype=np.float32))
    assert probs.dtype == np.float64


def test_bad_samples_votes_and_bins():
    with pytest.raises(ValueError, match=r"samples: expected shape \(S, N, K\)"):
        check_samples(GOOD)
    with pytest.raises(ValueError, match=r"samples \(flattened to \(S\*N, K\)\): every row must sum to 1"):
        check_samples(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match=r"votes: expected shape \(2, 2\) to match probs, found \(2, 3\)"):
        check_votes(np.ones((2, 3)), 2, 2)
    with pytest.raises(ValueError, match=r"votes: row 1 has no votes"):
        check_votes(np.array([[1, 0], [0, 0]]))
    with pytest.raises(ValueError, match=r"votes: expected non-negative"):
        check_votes(np.array([[1, -1], [0, 1]]))
    with pytest.raises(ValueError, match=r"num_bins: expected a positive integer, found 0"):
        ece(GOOD, np.array([0, 1]), num_bins=0)
