"""Evaluation on data sets with other classes, unreadable images left out, and clear errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import evaluation.inference
from evaluation.calibration import main
from evaluation.cross_dataset import RESTRICTION_RULE, restrict
from evaluation.predictions import Predictions, load_predictions, save_predictions
from tests.stand_ins import FERPLUS, pixel_predictor, write_faces

REPO = Path(__file__).resolve().parents[2]


def test_restrict_keeps_the_shared_columns_renormalised_and_reindexes_labels():
    predictions = Predictions(
        probs=np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.1, 0.6, 0.3]]),
        labels=np.array([0, 2, 1]),
        samples=np.array([[[0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.1, 0.6, 0.3]]]),
        class_names=("neutral", "happiness", "surprise"),
    )
    restricted, outside = restrict(predictions, ["surprise", "neutral"])
    assert restricted.class_names == ("neutral", "surprise") and outside == 1  # the happiness face
    np.testing.assert_allclose(restricted.probs, [[0.5 / 0.7, 0.2 / 0.7], [0.25, 0.75]])
    np.testing.assert_array_equal(restricted.labels, [0, 1])
    np.testing.assert_allclose(restricted.samples[0], restricted.probs)
    with pytest.raises(ValueError, match=r"classes \['fear'\] are not among"):
        restrict(predictions, ["fear", "neutral"])


class _ReadingPredictor:
    """Scores real image files: probabilities from the mean red, green and blue of each image."""

    class_names = ["neutral", "happiness", "surprise"]
    data_config = {"dataset": "folder", "label_mode": "majority", "image_size": 4}

    def eval_transform(self, image):
        return torch.from_numpy(np.asarray(image.convert("RGB").resize((4, 4)), dtype=np.float32) / 255).permute(2, 0, 1)

    def predict_batch(self, images, num_samples=30, return_samples=False):
        probs = torch.softmax(5 * images.mean(dim=(2, 3)), dim=-1)
        return {"probs": probs, "loc": probs.log(), "scale": torch.zeros_like(probs),
                "samples": probs[None].expand(num_samples, -1, -1) if return_samples else None}


def test_unreadable_images_are_left_out_and_named_never_replaced(tmp_path, monkeypatch):
    names = [f"test/{cls}/{i:02d}.png" for cls in ("neutral", "happy", "surprise") for i in range(30)]
    paths = write_faces(tmp_path / "data", names + ["test/neutral/30.png", "test/happy/30.png"])
    broken = [paths[5], paths[40], paths[41]]
    for path in broken:
        path.write_bytes(b"truncated")
    monkeypatch.setattr(evaluation.inference, "load_predictor", lambda path, device="auto": _ReadingPredictor())
    checkpoint = tmp_path / "model.pt"
    out = tmp_path / "eval"
    code = main(["--checkpoint", str(checkpoint), "--dataset", "folder", "--data-root", str(tmp_path / "data"),
                 "--out", str(out), "--num-samples", "2", "--batch-size", "8", "--no-progress"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_examples"] == 89 and metrics["num_listed"] == 92
    assert metrics["excluded/unreadable"] == 3
    assert sorted(metrics["excluded/unreadable_files"]) == sorted(str(p) for p in broken)
    # Each readable face is scored once, under its own label: no neighbour stands in for a broken one.
    saved = load_predictions(out / "predictions.npz")
    readable = [p for p in paths if p not in broken]
    folder_class = {"neutral": 0, "happy": 1, "surprise": 2}
    in_dataset_order = sorted(readable, key=lambda p: (p.parent.name, p.name))  # folders, then files, by name
    np.testing.assert_array_equal(saved.labels, [folder_class[p.parent.name] for p in in_dataset_order])
    assert len(np.unique(saved.probs, axis=0)) == 89
    report = (out / "report.md").read_text()
    assert "3 unreadable image(s) were left out (never replaced by other images)" in report
    assert str(broken[0]) in report


def test_six_of_eight_classes_score_alike_in_checkpoint_and_predictions_mode(tmp_path, monkeypatch):
    # The data set: 6 of the model's 8 FER+ classes, one folder named by a synonym.
    folders = {"neutral": "neutral", "happy": "happiness", "surprise": "surprise", "sadness": "sadness",
               "anger": "anger", "disgust": "disgust"}
    names = [f"test/{folder}/{i:02d}.png" for folder in folders for i in range(12)]
    paths = write_faces(tmp_path / "faces", names)
    predictor = pixel_predictor(FERPLUS, guide="delta")  # deterministic: both modes see the same probabilities
    monkeypatch.setattr(evaluation.inference, "load_predictor", lambda path, device="auto": predictor)
    out = tmp_path / "checkpoint-mode"
    assert main(["--checkpoint", str(tmp_path / "model.pt"), "--dataset", "folder", "--data-root",
                 str(tmp_path / "faces"), "--out", str(out), "--num-samples", "1", "--no-progress"]) == 0
    by_checkpoint = json.loads((out / "metrics.json").read_text())

    # Predictions mode on the same faces, predicted here by hand.
    result = predictor(paths, num_samples=1)
    labels = np.array([FERPLUS.index(folders[p.parent.name]) for p in paths])
    save_predictions(tmp_path / "faces.npz", Predictions(probs=result.probs.numpy().astype(np.float64),
                                                         labels=labels, class_names=FERPLUS))
    again = tmp_path / "predictions-mode"
    assert main(["--predictions", str(tmp_path / "faces.npz"), "--out", str(again),
                 "--restrict-to", *folders]) == 0
    by_predictions = json.loads((again / "metrics.json").read_text())

    assert by_checkpoint["classes/missing_from_data"] == by_predictions["classes/missing_from_data"] == [
        "fear", "contempt"]
    assert by_checkpoint["classes/shared"] == ["neutral", "happiness", "surprise", "sadness", "anger", "disgust"]
    assert by_checkpoint["shared/rule"] == by_predictions["shared/rule"] == RESTRICTION_RULE
    for key in ("accuracy", "shared/accuracy", "shared/nll", "nll"):
        assert by_checkpoint[key] == pytest.approx(by_predictions[key], abs=1e-6), key
    assert by_checkpoint["shared/num_examples"] == by_checkpoint["num_examples"] == 72
    # Restricting can only remove wrong answers: the two excluded classes can no longer be predicted.
    assert by_checkpoint["shared/accuracy"] >= by_checkpoint["accuracy"]
    report = (out / "report.md").read_text()
    assert "lacks the model's class(es) fear, contempt" in report and "## Shared classes (6:" in report


def test_calibrate_on_predictions_of_another_class_count_is_an_error(tmp_path, make_predictions, capsys,
                                                                     monkeypatch):
    save_predictions(tmp_path / "test.npz", make_predictions(seed=0, n=30, k=8))
    save_predictions(tmp_path / "valid.npz", make_predictions(seed=1, n=30, k=7))
    assert main(["--predictions", str(tmp_path / "test.npz"), "--calibrate-on", str(tmp_path / "valid.npz"),
                 "--out", str(tmp_path / "o")]) == 1
    assert "holds K = 7 classes but --predictions" in capsys.readouterr().err
    predictor = pixel_predictor(FERPLUS)
    calls = []
    predictor.predict_batch = lambda *a, **k: calls.append(1)
    monkeypatch.setattr(evaluation.inference, "load_predictor", lambda path, device="auto": predictor)
    assert main(["--checkpoint", str(tmp_path / "m.pt"), "--calibrate-on", str(tmp_path / "valid.npz"),
                 "--out", str(tmp_path / "o")]) == 1
    assert "holds K = 7 classes but the checkpoint" in capsys.readouterr().err and calls == []


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "random"])
def test_unreadable_checkpoints_are_one_clear_error(kind, tmp_path, capsys):
    path = tmp_path / "best.pt"
    torch.save({"weights": torch.zeros(1000)}, path)
    whole = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": whole[: len(whole) // 2], "text": b"not a checkpoint\n",
                      "random": np.random.default_rng(1).bytes(4096)}[kind])
    assert main(["--checkpoint", str(path), "--out", str(tmp_path / "o"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and len(err.strip().splitlines()) == 1
    assert "weights_only" not in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["--num-samples", "0"], "must be positive integers"),
    (["--num-samples", "5000"], "--num-samples must be at most 1000"),
    (["--device", "tpu"], "--device: unknown device 'tpu'"),
    (["--class-map", "joy"], "--class-map expects FOLDER=CLASS pairs"),
])
def test_bad_flags_are_refused(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(tmp_path / "m.pt"), "--out", str(tmp_path / "o"), *argv])
    assert message in capsys.readouterr().err


def test_restrict_to_only_with_predictions_and_only_known_classes(tmp_path, make_predictions, capsys):
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(tmp_path / "m.pt"), "--out", str(tmp_path / "o"), "--restrict-to", "happy"])
    assert "--restrict-to applies with --predictions" in capsys.readouterr().err
    save_predictions(tmp_path / "t.npz", make_predictions(seed=0, n=30, k=3,
                                                          class_names=("neutral", "happiness", "surprise")))
    assert main(["--predictions", str(tmp_path / "t.npz"), "--out", str(tmp_path / "o"),
                 "--restrict-to", "happy", "angry"]) == 1
    assert "--restrict-to names ['angry']" in capsys.readouterr().err


def test_a_trained_checkpoint_on_class_folders_with_fewer_classes(synthetic_checkpoints, tmp_path):
    folders = ["neutral", "happy", "sad", "surprised", "angry"]
    write_faces(tmp_path / "faces", [f"test/{f}/{i}.png" for f in folders for i in range(4)], size=40)
    proc = subprocess.run(
        [sys.executable, "-m", "evaluation.calibration", "--checkpoint", str(synthetic_checkpoints["normal"]),
         "--dataset", "folder", "--data-root", str(tmp_path / "faces"), "--num-samples", "4", "--device", "cpu",
         "--no-progress", "--out", str(tmp_path / "eval")],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["classes/missing_from_data"] == ["fear", "disgust"]
    assert metrics["num_examples"] == metrics["shared/num_examples"] == 20
    assert "Over the 5 shared classes" in proc.stdout
