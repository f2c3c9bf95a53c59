"""``python -m bayes_fer.predict`` and ``python -m evaluation.calibration --checkpoint`` end to end."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
from PIL import Image

from tests.checkpoints import REPO


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=600)


def test_predict_cli_on_a_folder_with_a_bad_file(synthetic_checkpoints, tmp_path):
    faces = tmp_path / "faces"
    faces.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg"):
        Image.fromarray((rng.random((80, 80, 3)) * 255).astype(np.uint8)).save(faces / name)
    (faces / "broken.png").write_bytes(b"\x89PNG not really")
    proc = _run("-m", "bayes_fer.predict", str(faces), "--checkpoint", str(synthetic_checkpoints["normal"]),
                "--num-samples", "20", "--json", str(tmp_path / "out.json"), "--csv", str(tmp_path / "out.csv"),
                "--annotate", str(tmp_path / "annotated"))
    assert proc.returncode == 0, proc.stderr
    assert "broken.png: not a readable image" in proc.stderr
    assert "2 face(s) predicted, 1 input(s) without a result" in proc.stdout
    document = json.loads((tmp_path / "out.json").read_text())
    faces_json = document["faces"]
    assert len(faces_json) == 3 and sum("error" in f for f in faces_json) == 1 and document["complete"] is True
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert {r["prediction"] for r in rows if r["prediction"]} <= {
        "neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger"}
    annotated = sorted(p.name for p in (tmp_path / "annotated").iterdir())
    assert annotated == ["a.png.annotated.png", "b.jpg.annotated.png"]
    assert Image.open(tmp_path / "annotated" / "a.png.annotated.png").width > 80


def test_predict_cli_names_a_missing_checkpoint(tmp_path):
    proc = _run("-m", "bayes_fer.predict", str(tmp_path), "--checkpoint", str(tmp_path / "none.pt"))
    assert proc.returncode == 2 and "none.pt" in proc.stderr and "does not exist" in proc.stderr


def test_calibration_cli_on_a_checkpoint_from_the_training_script(synthetic_checkpoints, tmp_path):
    proc = _run("-m", "evaluation.calibration", "--checkpoint", str(synthetic_checkpoints["normal"]),
                "--split", "test", "--size", "48", "--num-samples", "8", "--calibrate-split", "valid",
                "--device", "cpu", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "nll", "brier", "ece", "mce", "average_calibration_error", "adaptive_ece", "aurc",
                "votes/kl", "temperature"):
        assert key in metrics, key
    assert metrics["num_examples"] == 48
    for name in ("reliability_diagram.png", "confusion_matrix.png", "risk_coverage.png", "report.md", "predictions.npz"):
        assert (tmp_path / name).exists(), name
    assert "ece" in proc.stdout.lower()
