"""``python -m evaluation.calibration`` end to end, its errors, and checkpoint mode against a stand-in model."""
from __future__ import annotations

import json
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation.calibration import main
from evaluation.calibration_error import ece
from evaluation.inference import collect_predictions
from evaluation.predictions import Predictions, load_predictions, save_predictions

REPO = Path(__file__).resolve().parents[2]
REQUIRED = ("accuracy", "balanced_accuracy", "nll", "brier", "ece", "mce", "average_calibration_error", "adaptive_ece", "aurc")
CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
FIGURES = ("reliability_diagram", "reliability_diagram_calibrated", "confusion_matrix", "risk_coverage",
           "intensity_distributions")


def _strict_json(path: Path) -> dict:
    def reject(token: str):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(path.read_text(), parse_constant=reject)


def test_predictions_mode_end_to_end(tmp_path, make_predictions):
    test = make_predictions(seed=0, n=150, k=8, class_names=CLASSES)
    save_predictions(tmp_path / "test.npz", test)
    save_predictions(tmp_path / "valid.npz", make_predictions(seed=1, n=150, k=8, class_names=CLASSES))
    out = tmp_path / "eval"
    run = subprocess.run(
        [sys.executable, "-m", "evaluation.calibration", "--predictions", str(tmp_path / "test.npz"),
         "--calibrate-on", str(tmp_path / "valid.npz"), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "| ECE |" in run.stdout and "After temperature scaling" in run.stdout

    metrics = _strict_json(out / "metrics.json")
    assert set(REQUIRED) <= set(metrics)
    assert metrics["ece"] == pytest.approx(ece(test.probs, test.labels))
    for name in CLASSES:
        assert {f"precision/{name}", f"recall/{name}", f"f1/{name}", f"support/{name}",
                f"ece_classwise/{name}"} <= set(metrics)
    assert metrics["num_mc_samples"] == 6 and metrics["mutual_information_mean"] > 0
    assert {"temperature", "calibrated/ece", "calibrated/nll", "votes/kl", "auroc_misclassification/entropy"} <= set(
        metrics)
    for stem in FIGURES:
        assert (out / f"{stem}.png").stat().st_size > 0 and (out / f"{stem}.pdf").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "| happiness |" in report and "![Reliability diagram](reliability_diagram.png)" in report


def test_minimal_predictions_skip_what_they_lack(tmp_path, capsys):
    np.savez(tmp_path / "p.npz", probs=np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]),
             labels=np.array([0, 2, 2]))
    assert main(["--predictions", str(tmp_path / "p.npz"), "--out", str(tmp_path / "out"), "--formats", "png"]) == 0
    metrics = _strict_json(tmp_path / "out" / "metrics.json")
    assert metrics["mutual_information_mean"] is None
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert not (tmp_path / "out" / "intensity_distributions.png").exists()
    assert not (tmp_path / "out" / "confusion_matrix.pdf").exists()
    report = (tmp_path / "out" / "report.md").read_text()
    assert "No intensity distributions: the predictions hold no loc / scale arrays." in report
    assert "| Accuracy | 0.6667 |" in capsys.readouterr().out


def test_missing_file_and_missing_array_are_reported(tmp_path, capsys):
    assert main(["--predictions", str(tmp_path / "absent.npz"), "--out", str(tmp_path / "out")]) == 1
    assert f"predictions file not found: {tmp_path / 'absent.npz'}" in capsys.readouterr().err
    np.savez(tmp_path / "p.npz", labels=np.array([0]))
    assert main(["--predictions", str(tmp_path / "p.npz"), "--out", str(tmp_path / "out")]) == 1
    assert "missing array(s) probs" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--predictions", "p.npz", "--out", "o", "--data-root", "d"], "--data-root only apply with --checkpoint"),
        (["--predictions", "p.npz", "--checkpoint", "c.pt", "--out", "o"], "not allowed with argument"),
        (["--predictions", "p.npz", "--out", "o", "--coverages", "0", "0.5"], r"--coverages must lie in (0, 1]"),
        (["--predictions", "p.npz", "--out", "o", "--num-bins", "0"], "must be positive integers"),
        (["--out", "o"], "one of the arguments --checkpoint --predictions is required"),
    ],
)
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


# -- checkpoint mode against a stand-in for bayes_fer's Predictor and load_dataset ----------


@dataclass
class _Result:
    probs: torch.Tensor
    loc: torch.Tensor
    scale: torch.Tensor
    samples: torch.Tensor | None


class _Predictor:
    """Latent intensities from the image means: loc = 3 * mean over pixels, scale = 0.5."""

    class_names = ["neutral", "happiness", "surprise"]
    data_config = {"dataset": "synthetic", "label_mode": "majority", "image_size": 4}

    def eval_transform(self, image):
        return image

    def predict_batch(self, images, num_samples=30, return_samples=False, stochastic=True):
        loc = 3 * images.mean(dim=(2, 3))  # (B, 3)
        scale = torch.full_like(loc, 0.5 if stochastic else 0.0)
        draws = torch.softmax(loc + scale * torch.randn(num_samples, *loc.shape), dim=-1)  # (S, B, 3)
        return _Result(draws.mean(0), loc, scale, draws if return_samples else None)


class _Faces(torch.utils.data.Dataset):
    class_names = ["neutral", "happiness", "surprise"]

    def __init__(self, split: str, size: int = 24):
        generator = torch.Generator().manual_seed(0 if split == "test" else 1)
        self.images = torch.rand(size, 3, 4, 4, generator=generator)
        self.labels = torch.randint(0, 3, (size,), generator=generator)
        self.votes = torch.randint(0, 4, (size, 3), generator=generator) + torch.nn.functional.one_hot(self.labels, 3)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": self.labels[i], "index": i, "votes": self.votes[i].float()}


@pytest.fixture
def stand_in_bayes_fer(monkeypatch):
    calls = []
    predictive = types.ModuleType("bayes_fer.predictive")
    predictive.Predictor = types.SimpleNamespace(
        from_checkpoint=lambda path, device="auto": calls.append(("from_checkpoint", Path(path), device))
        or _Predictor())
    data = types.ModuleType("bayes_fer.data")

    def load_dataset(name, root, split, *, transform, label_mode, **options):
        calls.append(("load_dataset", name, root, split, label_mode, options))
        return _Faces(split, **options)

    data.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "bayes_fer.predictive", predictive)
    monkeypatch.setitem(sys.modules, "bayes_fer.data", data)
    return calls


def test_checkpoint_mode_against_stand_in(tmp_path, stand_in_bayes_fer, capsys):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights")
    out = tmp_path / "eval"
    code = main(["--checkpoint", str(checkpoint), "--out", str(out), "--calibrate-split", "valid", "--size", "20",
                 "--num-samples", "5", "--batch-size", "8", "--no-progress", "--device", "cpu"])
    assert code == 0
    assert stand_in_bayes_fer[0] == ("from_checkpoint", checkpoint, "cpu")
    assert stand_in_bayes_fer[1] == ("load_dataset", "synthetic", None, "test", "majority", {"size": 20})
    assert stand_in_bayes_fer[2][3] == "valid"

    saved = load_predictions(out / "predictions.npz")
    faces = _Faces("test", 20)
    np.testing.assert_array_equal(saved.labels, faces.labels.numpy())
    np.testing.assert_allclose(saved.loc, 3 * faces.images.mean(dim=(2, 3)).numpy(), rtol=1e-6)
    assert saved.samples.shape == (5, 20, 3) and saved.votes.shape == (20, 3)
    assert saved.class_names == ("neutral", "happiness", "surprise")
    assert load_predictions(out / "predictions_valid.npz").num_examples == 20

    metrics = _strict_json(out / "metrics.json")
    assert metrics["num_examples"] == 20 and "calibrated/ece" in metrics and "votes/js" in metrics
    assert (out / "intensity_distributions.png").exists()
    assert "| ECE |" in capsys.readouterr().out


def test_checkpoint_mode_reports_a_missing_checkpoint(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "o")]) == 1
    assert f"checkpoint not found: {tmp_path / 'none.pt'}" in capsys.readouterr().err


def test_collect_predictions_from_a_deterministic_head_with_mapping_results():
    class Deterministic(_Predictor):
        def predict_batch(self, images, num_samples=30, return_samples=False):
            result = super().predict_batch(images, num_samples, return_samples, stochastic=False)
            return {"probs": result.probs, "loc": result.loc, "scale": result.scale, "samples": None}

    predictions = collect_predictions(Deterministic(), _Faces("test", 10), num_samples=1, batch_size=4,
                                      progress=False).predictions
    assert isinstance(predictions, Predictions)
    assert predictions.samples is None and predictions.num_examples == 10
    np.testing.assert_array_equal(predictions.scale, np.zeros((10, 3)))


def test_collect_predictions_maps_another_class_order_by_name():
    faces = _Faces("test", 12)
    faces.class_names = ["happy", "neutral", "surprised"]  # synonyms, in another order
    split = collect_predictions(_Predictor(), faces, num_samples=2, progress=False)
    # The model's order is neutral, happiness, surprise: data label 0 (happy) is model class 1.
    np.testing.assert_array_equal(split.predictions.labels, np.array([1, 0, 2])[faces.labels.numpy()])
    np.testing.assert_array_equal(split.predictions.votes, faces.votes.numpy()[:, [1, 0, 2]])
    assert split.scope.shared == ("neutral", "happiness", "surprise") and not split.scope.restricted


def test_collect_predictions_rejects_a_dataset_without_shared_classes():
    faces = _Faces("test", 4)
    faces.class_names = ["fear", "disgust", "contempt"]
    with pytest.raises(ValueError, match=r"the dataset's classes .* share none with the model's"):
        collect_predictions(_Predictor(), faces, num_samples=2, progress=False)


def test_collect_predictions_compares_with_the_field_asked_for():
    class Mixed(_Faces):
        def __getitem__(self, i: int) -> dict:
            sample = super().__getitem__(i)
            sample["mixture"] = sample["votes"] / sample["votes"].sum()
            return sample

    faces = Mixed("test", 6)
    predictions = collect_predictions(_Predictor(), faces, num_samples=2, progress=False, reference="mixture").predictions
    expected = torch.stack([faces[i]["mixture"] for i in range(6)]).numpy()
    np.testing.assert_allclose(predictions.votes, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="carry no 'mixture'.*use --reference votes"):
        collect_predictions(_Predictor(), _Faces("test", 6), num_samples=2, progress=False, reference="mixture")
