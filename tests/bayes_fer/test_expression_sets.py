"""Conformal expression sets from a predictor: calibrated on faces, datasets, loaders or saved
predictions, covering exchangeable faces at 1 - alpha, and refusing what cannot be right.

The model is a real Predictor around a pixel-sized network (tests/stand_ins.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import betabinom
from torch.utils.data import DataLoader

from bayes_fer.conformal import ConformalCalibrator
from bayes_fer.ensemble import EnsemblePredictor
from bayes_fer.results import NoCalibratorError, result_row
from tests.stand_ins import FERPLUS, pixel_predictor


class Faces(torch.utils.data.Dataset):
    """Labelled faces as bayes-fer's datasets yield them: ``{"image", "label"}`` dicts."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, class_names=FERPLUS) -> None:
        self.images, self.labels, self.class_names = images, labels, list(class_names)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": int(self.labels[i])}


def _faces(predictor, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random normalized faces and labels drawn from the model's own probabilities: i.i.d. pairs."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, 16, 16, generator=g)
    probs = predictor.predict_batch(images, num_samples=20).probs
    return images, torch.multinomial(probs, 1, generator=g).squeeze(1)


@pytest.mark.parametrize("score, randomized", [("lac", False), ("aps", True)])
def test_sets_cover_exchangeable_faces_within_binomial_tolerance(score, randomized):
    predictor = pixel_predictor()
    n_cal = n_test = 1500
    alpha = 0.2
    images, labels = _faces(predictor, n_cal + n_test, seed=1)
    calibrator = predictor.calibrate_conformal(Faces(images[:n_cal], labels[:n_cal]), alpha=alpha, score=score,
                                               randomized=randomized, num_samples=20, batch_size=256)
    result = predictor.predict_batch(images[n_cal:], num_samples=20)
    sets = result.prediction_set_indices()
    covered = sum(int(y) in s for s, y in zip(sets, labels[n_cal:].tolist()))
    # Continuous scores: the covered count of one split is BetaBinomial(n_test, rank, n_cal + 1 - rank).
    rank = math.ceil((n_cal + 1) * (1 - alpha))
    law = betabinom(n_test, rank, n_cal + 1 - rank)
    assert law.ppf(0.0005) <= covered <= law.ppf(0.9995), (covered / n_test, calibrator.qhat[0])
    # The model is right about half the time, so sets must grow past one class to cover 80%.
    assert 1.2 < np.mean([len(s) for s in sets]) < len(FERPLUS)
    assert all(s[0] == int(p) for s, p in zip(sets, result.prediction))  # the predicted class is always in


def test_a_face_keeps_its_set_whatever_its_batch():
    predictor = pixel_predictor()
    images, labels = _faces(predictor, 300, seed=2)
    predictor.calibrate_conformal(Faces(images, labels), alpha=0.2, score="aps", randomized=True, num_samples=20)
    result = predictor.predict_batch(images[:40], num_samples=20)
    assert result.set_uniforms.shape == (40,)
    rows = [result_row(result, i, {"index": i}) for i in range(40)]
    assert [row.prediction_set()[0] for row in rows] == result.prediction_set()
    assert [row.to_records()[0]["readout"] for row in rows] == result.compound()
    assert result.prediction_set() == result.prediction_set()  # asking again draws nothing new


def test_one_calibration_answers_other_levels_and_refuses_those_it_cannot():
    predictor = pixel_predictor()
    images, labels = _faces(predictor, 99, seed=3)
    predictor.calibrate_conformal(Faces(images, labels), alpha=0.1, num_samples=20)
    result = predictor.predict_batch(images[:20], num_samples=20)
    small, large = result.prediction_set(0.3), result.prediction_set(0.05)
    assert all(set(a) <= set(b) for a, b in zip(small, large)) and small != large
    for alpha in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"expected a miscoverage level in \(0, 1\)"):
            result.prediction_set(alpha)
    with pytest.raises(ValueError, match=r"0.005 is below the calibrated range \[0.01, 1\).*calibrate on more"):
        result.prediction_set(0.005)


def test_a_dataset_a_loader_and_saved_predictions_calibrate_alike(tmp_path):
    predictor = pixel_predictor()
    images, labels = _faces(predictor, 200, seed=4)
    torch.manual_seed(0)
    from_dataset = predictor.calibrate_conformal(Faces(images, labels), num_samples=20, batch_size=64)
    torch.manual_seed(0)
    pairs = DataLoader(list(zip(images, labels)), batch_size=64)
    from_loader = predictor.calibrate_conformal(pairs, num_samples=20)
    assert from_loader.qhat == pytest.approx(from_dataset.qhat)
    probs = predictor.predict_batch(images, num_samples=20).probs.double().numpy()
    np.savez(tmp_path / "valid.npz", probs=probs, labels=labels.numpy(), class_names=np.array(FERPLUS))
    from_file = predictor.calibrate_conformal(tmp_path / "valid.npz", alpha=0.2, score="raps", mondrian=True)
    expected = ConformalCalibrator(alpha=0.2, score="raps", mondrian=True, randomized=False).fit(probs, labels.numpy())
    assert from_file.qhat == expected.qhat and from_file.class_names == list(FERPLUS)
    assert predictor.conformal is from_file


def test_a_calibrator_of_other_classes_is_refused(tmp_path):
    predictor = pixel_predictor()
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(8), size=50)
    reordered = ["happiness", "neutral", *FERPLUS[2:]]
    path = ConformalCalibrator().fit(probs, rng.integers(0, 8, 50), class_names=reordered).save(tmp_path / "c.json")
    with pytest.raises(ValueError, match=r"calibrated on the classes \['happiness', 'neutral'.*but the model has "
                                         r"\['neutral', 'happiness'.*Calibrate on this model's validation"):
        predictor.conformal = path
    seven = ConformalCalibrator().fit(probs[:, :7] / probs[:, :7].sum(1, keepdims=True), rng.integers(0, 7, 50))
    with pytest.raises(ValueError, match=r"calibrated on K = 7 classes, but the model has K = 8"):
        predictor.conformal = seven
    np.savez(tmp_path / "other.npz", probs=probs, labels=rng.integers(0, 8, 50), class_names=np.array(reordered))
    with pytest.raises(ValueError, match=r"other.npz: predictions over the classes \['happiness', 'neutral'"):
        predictor.calibrate_conformal(tmp_path / "other.npz")
    with pytest.raises(ValueError, match=r"c.json is a saved calibrator, not validation data; attach it with"):
        predictor.calibrate_conformal(path)
    images, labels = _faces(predictor, 10, seed=5)
    with pytest.raises(ValueError, match=r"its classes \['happiness', 'neutral'.*are not the model's"):
        predictor.calibrate_conformal(Faces(images, labels, class_names=reordered))
    assert predictor.conformal is None


def test_a_saved_calibrator_loads_by_path_and_sets_need_one(tmp_path):
    predictor = pixel_predictor()
    images, labels = _faces(predictor, 200, seed=6)
    with pytest.raises(NoCalibratorError, match="calibrate_conformal"):
        predictor.predict_batch(images[:3], num_samples=5).prediction_set(0.1)
    path = predictor.calibrate_conformal(Faces(images, labels), alpha=0.2, num_samples=20).save(tmp_path / "c.json")
    fresh = pixel_predictor()
    fresh.conformal = path
    assert fresh.conformal == predictor.conformal
    torch.manual_seed(1)
    expected = predictor.predict_batch(images[:30], num_samples=20).prediction_set()
    torch.manual_seed(1)
    assert fresh.predict_batch(images[:30], num_samples=20).prediction_set() == expected
    with pytest.raises(FileNotFoundError, match="conformal calibrator file not found"):
        fresh.conformal = tmp_path / "absent.json"


def test_an_ensemble_answers_sets_from_its_own_calibration():
    members = [pixel_predictor(seed=0), pixel_predictor(seed=1)]
    ensemble = EnsemblePredictor(members)
    images, labels = _faces(members[0], 200, seed=7)
    ensemble.calibrate_conformal(Faces(images, labels), alpha=0.2, num_samples=20)
    result = ensemble(torch.rand(10, 3, 16, 16), num_samples=20)
    assert result.conformal is ensemble.conformal and members[0].conformal is None
    # LAC: a class is in the set when its averaged probability passes the ensemble's threshold.
    passes = (result.probs >= 1 - ensemble.conformal.qhat[0] - 1e-6) | torch.nn.functional.one_hot(
        result.prediction, len(FERPLUS)).bool()
    assert [sorted(s) for s in result.prediction_set_indices()] == [row.nonzero().squeeze(1).tolist() for row in passes]
