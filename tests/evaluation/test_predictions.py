"""The predictions file format, its validation, and the batch-accumulating meter."""
from __future__ import annotations

import json

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
        ({"epistemic_mi": np.array([0.1, 0.2])}, r"epistemic_mi: expected shape \(1,\)"),
        ({"epistemic_mi": np.array([-0.1])}, r"epistemic_mi: expected mutual information >= 0 nats"),
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


class _Faces:
    """A labelled split as bayes-fer's datasets yield it."""

    def __init__(self, n: int, num_classes: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, 16, 16, generator=g)
        self.labels = torch.randint(0, num_classes, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": int(self.labels[i]), "index": i}


def _bayesian_head_predictor():
    from bayes_fer.predictive import Predictor
    from bayes_fer.vich import VICHModel
    from guides import BayesianHeadGuide
    from tests.stand_ins import FERPLUS, PixelNet

    K = len(FERPLUS)
    return Predictor(PixelNet(K), BayesianHeadGuide(K, 48), FERPLUS, image_size=16, device="cpu",
                     model=VICHModel(K, head_shape=(K, 49)))


def test_a_bayesian_heads_epistemic_share_reaches_the_file_and_predictions_mode(tmp_path, capsys):
    from evaluation.calibration import main
    from evaluation.inference import collect_predictions
    from tests.stand_ins import pixel_predictor

    predictor, faces = _bayesian_head_predictor(), _Faces(200, 8)
    given, predict_batch = [], predictor.predict_batch
    predictor.predict_batch = lambda *args, **kwargs: given.append(predict_batch(*args, **kwargs)) or given[-1]
    predictions = collect_predictions(predictor, faces, num_samples=64, batch_size=50, progress=False).predictions
    assert predictions.epistemic_mi.shape == (200,) and (predictions.epistemic_mi > 0).all()
    np.testing.assert_array_equal(predictions.epistemic_mi, torch.cat([r.epistemic_mi for r in given]).numpy())
    loaded = load_predictions(save_predictions(tmp_path / "test.npz", predictions))
    np.testing.assert_array_equal(loaded.epistemic_mi, predictions.epistemic_mi)
    metrics = compute_metrics(loaded)
    assert metrics["epistemic_mi_mean"] == pytest.approx(predictions.epistemic_mi.mean())
    assert 0 <= metrics["auroc_misclassification/epistemic_mi"] <= 1
    assert main(["--predictions", str(tmp_path / "test.npz"), "--out", str(tmp_path / "eval"), "--formats", "png",
                 "--ood-predictions", str(tmp_path / "test.npz")]) == 0
    scored = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert scored["auroc_misclassification/epistemic_mi"] == metrics["auroc_misclassification/epistemic_mi"]
    assert scored["auroc_ood/epistemic_mi"] == pytest.approx(0.5)  # the same faces on both sides
    # A point-estimate head has no epistemic share, and none is written.
    plain = collect_predictions(pixel_predictor(), faces, num_samples=8, progress=False).predictions
    assert plain.epistemic_mi is None
    assert "epistemic_mi" not in np.load(save_predictions(tmp_path / "plain.npz", plain)).files
