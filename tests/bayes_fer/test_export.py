"""ONNX export of the packaged model: onnxruntime matches torch, with a dynamic batch axis."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.checkpoints import REPO

ort = pytest.importorskip("onnxruntime", reason='export needs pip install "bayes-fer[export]"')


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "ferplus.onnx"
    proc = subprocess.run([sys.executable, "-m", "bayes_fer.export", "--onnx", str(path)],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return path


def test_onnx_matches_torch_for_any_batch_size(exported):
    from bayes_fer.predictive import Predictor

    predictor = Predictor.pretrained(device="cpu")
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    side = predictor.image_size
    for batch in (1, 3, 9):
        x = torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(batch))
        loc, log_var = session.run(["loc", "log_var"], {"images": x.numpy()})
        with torch.no_grad():
            out = predictor.guide.encode(x)
        np.testing.assert_allclose(loc, out.loc.numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(log_var, out.log_var.clamp(-10, 10).numpy(), atol=1e-4, rtol=0)


def test_metadata_turns_outputs_into_the_predictors_probabilities(exported):
    from bayes_fer.predictive import Predictor

    predictor = Predictor.pretrained(device="cpu")
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    assert meta["class_names"] == predictor.class_names
    assert meta["image_size"] == predictor.image_size
    side = meta["image_size"]
    x = torch.rand(4, 3, side, side, generator=torch.Generator().manual_seed(0))
    normalized = ((x - torch.tensor(meta["mean"])[:, None, None]) / torch.tensor(meta["std"])[:, None, None]).numpy()
    loc, log_var = session.run(None, {"images": normalized})
    # The README's recipe: Monte-Carlo E[softmax(z + log rates)], z ~ N(loc, exp(log_var)).
    rng = np.random.default_rng(0)
    z = loc + np.exp(0.5 * log_var) * rng.standard_normal((4000, *loc.shape))
    logits = z + np.array(meta["log_prediction_rates"])
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs = (probs / probs.sum(-1, keepdims=True)).mean(0)
    expected = predictor.predict_batch(torch.from_numpy(normalized), num_samples=4000).probs.numpy()
    np.testing.assert_allclose(probs, expected, atol=0.02)


def test_export_names_a_missing_checkpoint(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bayes_fer.export", "--onnx", str(tmp_path / "m.onnx"),
                           "--checkpoint", str(tmp_path / "none.pt")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
