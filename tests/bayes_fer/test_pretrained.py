"""The packaged FER+ model: checksum, float32 restore, reproducible packaging, its model card's accuracy."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import torch

from bayes_fer import pretrained
from bayes_fer.predictive import Predictor
from tests.checkpoints import REPO
from tests.conftest import require_shared

MODEL_CARD = REPO / "docs" / "model_card_ferplus.md"


def test_packaged_model_loads_in_float32_with_its_base_rates():
    assert "ferplus" in pretrained.available_models()
    predictor = Predictor.pretrained(device="cpu")
    packed = torch.load(pretrained.pretrained_path("ferplus"), weights_only=True)
    assert not {"optimizer", "rng", "warmup", "decay"} & set(packed)
    for key, value in predictor.net.state_dict().items():
        if value.is_floating_point():
            assert value.dtype == torch.float32
            assert torch.equal(value, packed["model"][key].float()), key
    assert torch.equal(predictor.model.log_base_rates, packed["vich"]["log_base_rates"])
    # The network the guide owns is saved under "model", as before the guide owned it; "guide" keeps the rest.
    assert predictor.net is predictor.guide.net
    assert set(packed["guide"]) == set(predictor.guide.state_dict_without_net())
    assert {f"net.{k}" for k in packed["model"]} <= set(predictor.guide.state_dict())
    assert predictor.class_names[:2] == ["neutral", "happiness"] and len(predictor.class_names) == 8
    assert pretrained.pretrained_path().stat().st_size < 25 * 2**20
    assert torch.equal(predictor.model.log_prediction_rates, predictor.model.log_base_rates)


def test_packaged_model_predicts_under_a_chosen_class_prior():
    predictor = Predictor.pretrained(device="cpu", class_prior=0.3)
    assert torch.allclose(predictor.model.log_prediction_rates, 0.3 * predictor.model.log_base_rates)


def test_a_damaged_file_is_refused(tmp_path):
    folder = tmp_path / "weights"
    shutil.copytree(pretrained.weights_dir(), folder, ignore=shutil.ignore_patterns("__pycache__"))
    data = bytearray((folder / "ferplus.pt").read_bytes())
    data[-100] ^= 0xFF
    (folder / "ferplus.pt").write_bytes(bytes(data))
    with pytest.raises(pretrained.ChecksumError, match="has SHA-256 .* the manifest expects"):
        pretrained.load_pretrained("ferplus", "cpu", folder=folder)
    with pytest.raises(ValueError, match="no packaged model named 'affectnet'; packaged models: ferplus"):
        pretrained.load_pretrained("affectnet", "cpu", folder=folder)


def test_packaging_is_reproducible(tmp_path):
    # Package the packaged model again (a valid checkpoint itself): same bytes both times.
    for out in ("a", "b"):
        proc = subprocess.run([sys.executable, "scripts/package_model.py", "--checkpoint",
                               str(pretrained.pretrained_path()), "--out-dir", str(tmp_path / out)],
                              capture_output=True, text=True, cwd=REPO, timeout=300)
        assert proc.returncode == 0, proc.stderr
    a = json.loads((tmp_path / "a" / "manifest.json").read_text())["ferplus"]
    b = json.loads((tmp_path / "b" / "manifest.json").read_text())["ferplus"]
    assert a["sha256"] == b["sha256"] == pretrained.manifest()["ferplus"]["sha256"]


def test_package_script_names_a_bad_checkpoint(tmp_path):
    proc = subprocess.run([sys.executable, "scripts/package_model.py", "--checkpoint", str(tmp_path / "none.pt"),
                           "--out-dir", str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_predict_cli_without_checkpoint_uses_the_packaged_model(tmp_path):
    from PIL import Image

    Image.new("L", (48, 48), 100).save(tmp_path / "face.png")
    proc = subprocess.run([sys.executable, "-m", "bayes_fer.predict", str(tmp_path / "face.png"), "--num-samples", "8",
                           "--device", "cpu"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "1 face(s) predicted" in proc.stdout


@pytest.mark.slow
def test_test_split_accuracy_matches_the_model_card():
    from evaluation.inference import predict_split

    root = require_shared("data", "ferplus")
    card = re.search(r"\|\s*accuracy\s*\|\s*([0-9.]+)\s*\|", MODEL_CARD.read_text())
    assert card, f"{MODEL_CARD} has no '| accuracy | value |' row"
    predictions = predict_split(Predictor.pretrained(device="cpu"), root, "test", num_samples=30, seed=0,
                                progress=False).predictions
    accuracy = float((predictions.probs.argmax(1) == predictions.labels).mean())
    assert abs(accuracy - float(card.group(1))) <= 0.005, (accuracy, card.group(1))
