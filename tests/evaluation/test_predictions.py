"""The predictions file format, its validation, and the batch-accumulating meter."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation.meter import EvaluationMeter
from evaluation.predictions import Predictions, load_predictions, save_predictions
from evaluation.summary import compute_metrics


def test_round_trip(tmp_path, make_predictions):
    original = make_predictions(class_names=tuple("abcdefg"))
    loaded = load_predictions(save_predictions(tmp_path / "p.npz", original))
    assert loaded.class_names == tuple("abcdefg")
    for name in ("probs", "labels", "votes", "samples", "loc", "scale"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name))


def test_minimal_file_gets_default_class_names(tmp_path):
    np.savez(tmp_path / "p.npz", probs=np.array([[0.2, 0.8]]), labels=np.array([1]))
    loaded = load_predictions(tmp_path / "p.npz")
    assert loaded.class_names == ("class_0", "class_1")
    assert loaded.samples is None and loaded.votes is None and loaded.loc is None


def test_missing_file_and_missing_arrays(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"predictions file not found: .*nowhere\.npz"):
        load_predictions(tmp_path / "nowhere.npz")
    np.savez(tmp_path / "p.npz", labels=np.array([1]), votes=np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"p\.npz: missing array\(s\) probs; found labels, votes"):
        load_predictions(tmp_path / "p.npz")


def test_bad_array_in_file_names_file_and_array(tmp_path):
    np.savez(tmp_path / "p.npz", probs=np.array([[0.2, 0.9]]), labels=np.array([1]))
    with pytest.raises(ValueError, match=r"p\.npz: probs: every row must sum to 1"):
        load_predictions(tmp_path / "p.npz")


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"samples": np.full((3, 2, 2), 0.5)}, r"samples: expected shape \(\?, 1, 2\) to match probs"),
        ({"votes": np.ones((1, 3))}, r"votes: expected shape \(1, 2\)"),
        ({"loc": np.zeros((1, 2))}, r"loc and scale: expected both or neither, found only loc"),
        ({"loc": np.zeros((1, 2)), "scale": -np.ones((1, 2))}, r"scale: expected standard deviations >= 0"),
        ({"class_names": ("a", "b", "c")}, r"class_names: expected 2 names to match probs \(K = 2\), found 3"),
        ({"class_names": ("a", "a")}, r"class_names: expected distinct names"),
    ],
)
def test_inconsistent_arrays(extra, match):
    with pytest.raises(ValueError, match=match):
        Predictions(probs=np.array([[0.2, 0.8]]), labels=np.array([1]), **extra)


def test_meter_matches_one_shot_metrics(make_predictions):
    whole = make_predictions(n=60)
    meter = EvaluationMeter(whole.class_names)
    for start in range(0, 60, 25):
        part = slice(start, start + 25)
        meter.update(torch.from_numpy(whole.probs[part]), torch.from_numpy(whole.labels[part]),
                     votes=whole.votes[part], samples=whole.samples[:, part], loc=whole.loc[part],
                     scale=whole.scale[part])
    assert meter.compute() == compute_metrics(whole)
    meter.reset()
    with pytest.raises(ValueError, match=r"no batches: call update\(\) before compute\(\)"):
        meter.compute()


def test_meter_rejects_fields_given_for_only_some_batches():
    meter = EvaluationMeter()
    meter.update(np.array([[0.2, 0.8]]), np.array([1]))
    with pytest.raises(ValueError, match="votes: given for some batches but not others"):
        meter.update(np.array([[0.2, 0.8]]), np.array([1]), votes=np.ones((1, 2)))
