"""Posterior-predictive queries on checkpoints from the training script."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from bayes_fer.predictive import ImageInputError, Predictor


@pytest.fixture(scope="module")
def predictor(synthetic_checkpoints) -> Predictor:
    return Predictor.from_checkpoint(synthetic_checkpoints["normal"], device="cpu")


def test_shapes_class_names_and_probabilities(predictor):
    result = predictor(torch.rand(4, 3, 90, 90), num_samples=50, return_samples=True)
    K = len(predictor.class_names)
    assert predictor.class_names[:2] == ["neutral", "happiness"] and K == 7
    assert result.probs.shape == result.loc.shape == result.scale.shape == (4, K)
    assert result.samples.shape == (50, 4, K)
    assert torch.allclose(result.probs.sum(-1), torch.ones(4), atol=1e-5)
    assert torch.all(result.scale > 0)
    assert torch.equal(result.prediction, result.probs.argmax(-1))  # the one prediction rule
    assert torch.all(result.mutual_information >= 0)
    assert torch.all(result.mutual_information <= result.entropy + 1e-6)


def test_monte_carlo_probabilities_approach_the_closed_form_expectation(predictor):
    x = torch.rand(2, 3, 112, 112)
    result = predictor(x, num_samples=20_000)
    # Reference by brute force with the same posterior: E[softmax(mu + sigma * eps)].
    g = torch.Generator().manual_seed(5)
    eps = torch.randn(200_000, 2, len(predictor.class_names), generator=g)
    expected = (result.loc + result.scale * eps).softmax(-1).mean(0)
    # Three standard errors of a mean of 20,000 bounded draws.
    assert torch.allclose(result.probs, expected, atol=3 * 0.5 / np.sqrt(20_000))


def test_the_network_runs_once_whatever_the_number_of_draws(predictor, monkeypatch):
    calls = []
    original = predictor.net.forward_features
    monkeypatch.setattr(predictor.net, "forward_features", lambda x: calls.append(len(x)) or original(x))
    predictor(torch.rand(3, 3, 112, 112), num_samples=1000)
    assert calls == [3]


def test_delta_guide_checkpoint_reports_zero_spread(synthetic_checkpoints):
    result = Predictor.from_checkpoint(synthetic_checkpoints["delta"], device="cpu")(torch.rand(2, 3, 112, 112), num_samples=30)
    assert not result.stochastic
    assert torch.all(result.scale == 0) and torch.all(result.mutual_information == 0)
    assert result.to_records()[0]["spread"].startswith("zero")


def test_lowrank_checkpoint_exposes_its_covariance_factor(synthetic_checkpoints):
    result = Predictor.from_checkpoint(synthetic_checkpoints["lowrank"], device="cpu")(torch.rand(2, 3, 112, 112))
    assert result.cov_factor.shape == (2, 7, 2)


def test_every_input_kind_gives_the_same_answer(predictor, tmp_path):
    side = predictor.image_size  # at the network's own side no input kind is resized
    rgb = (np.random.default_rng(0).random((side, side, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    as_tensor = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    inputs = [as_tensor[None], [Image.fromarray(rgb)], [rgb], [tmp_path / "a.png"], tmp_path]
    locs = [predictor(x, num_samples=2).loc for x in inputs]
    for loc in locs[1:]:
        assert torch.allclose(loc, locs[0], atol=1e-5)


def test_greyscale_rgba_16bit_and_large_images_are_handled(predictor, tmp_path):
    Image.new("L", (60, 60), 128).save(tmp_path / "grey.png")
    Image.new("RGBA", (60, 80), (10, 200, 30, 128)).save(tmp_path / "rgba.png")
    Image.fromarray(np.full((50, 50), 40000, dtype=np.uint16)).save(tmp_path / "deep.png")
    Image.new("RGB", (3000, 2000), (90, 90, 90)).save(tmp_path / "large.jpg")
    result = predictor(tmp_path, num_samples=5)
    assert [s["path"].rsplit("/", 1)[1] for s in result.sources] == ["deep.png", "grey.png", "large.jpg", "rgba.png"]
    assert torch.isfinite(result.probs).all()


def test_bad_inputs_name_the_file(predictor, tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageInputError, match="notes.png: not a readable image"):
        predictor([tmp_path / "notes.png"])
    with pytest.raises(ImageInputError, match="missing.png: no such file"):
        predictor([tmp_path / "missing.png"])
    with pytest.raises(ImageInputError, match=r"values in \[0, 1\]"):
        predictor(torch.full((1, 3, 20, 20), 255.0))
    with pytest.raises(ImageInputError, match="no images"):
        predictor(tmp_path / "empty_dir" if (tmp_path / "empty_dir").mkdir() is None else None)


def test_records_and_json(predictor):
    result = predictor(torch.rand(2, 3, 112, 112), num_samples=10)
    records = result.to_records()
    assert len(records) == 2 and abs(sum(v for k, v in records[0].items() if k.startswith("prob/")) - 1) < 1e-5
    json.dumps(result.to_dict())
    assert all(isinstance(s, str) and s for s in result.compound())


def test_without_a_calibrator_the_readout_names_the_predicted_class_only(predictor):
    result = predictor(torch.rand(1, 3, 112, 112), num_samples=5)
    result.probs = torch.tensor([[0.05, 0.40, 0.02, 0.45, 0.03, 0.03, 0.02]])  # runner-up 0.05 behind
    result.prediction = result.probs.argmax(-1)
    assert result.compound() == ["surprised"]
    assert "set" not in result.to_records()[0]


@pytest.mark.parametrize("kind", ["var", "pp"])
def test_reference_checkpoints_predict_with_their_head_type(kind, tmp_path):
    from tests.bayes_fer.test_models import _reference

    _, state_dict, _ = _reference(kind)
    path = tmp_path / f"poster_{kind}.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state_dict.items()}}, path)
    with pytest.raises(ValueError, match="dataset='rafdb'"):
        Predictor.from_checkpoint(path, device="cpu")
    result = Predictor.from_checkpoint(path, device="cpu", dataset="rafdb")(torch.rand(2, 3, 112, 112), num_samples=20)
    assert result.class_names[0] == "surprise" and result.probs.shape == (2, 7)
    torch.testing.assert_close(result.probs.sum(-1), torch.ones(2))
    if kind == "var":  # POSTER-Var: the paper's mean-field posterior
        assert result.stochastic and torch.all(result.scale > 0)
    else:  # POSTER++: a linear head, so the spread is zero and said to be
        assert not result.stochastic and torch.all(result.scale == 0)
        assert result.to_records()[0]["spread"] == "zero (deterministic head)"


def test_numpy_float_images_above_one_are_refused_like_tensors(predictor):
    with pytest.raises(ImageInputError, match=r"values in \[0, 1\].*divide 8-bit values by 255"):
        predictor(np.full((20, 20, 3), 255.0))
    with pytest.raises(ImageInputError, match=r"values in \[0, 1\]"):
        predictor(torch.full((1, 3, 20, 20), 255.0))
    assert predictor(np.full((20, 20, 3), 0.5), num_samples=2).probs.shape == (1, 7)
