"""MTCNN: the Keras weight filter, the converted networks' shapes, landmarks on real FER+ faces."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from bayes_fer.mtcnn import KERAS_LAYERS, MTCNN, ONet, PNet, RNet, keras_filter_fn, load_network, weights_dir
from tests.conftest import require_shared

mtcnn_installed = pytest.mark.skipif(importlib.util.find_spec("mtcnn") is None,
                                     reason='MTCNN needs its weights: pip install "bayes-fer[faces]"')


def keras_arrays(model: torch.nn.Module, name: str) -> list[np.ndarray]:
    """Zero arrays in the package's layout: per layer (kernel, bias) or PReLU slopes (1, 1, C)."""
    arrays = []
    for layer in KERAS_LAYERS[name]:
        module = getattr(model, layer)
        if isinstance(module, torch.nn.PReLU):
            shape = (1, 1, module.num_parameters) if name == "pnet" or layer[-1] in "123" else (module.num_parameters,)
            arrays.append(np.zeros(shape, np.float32))
        elif isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            arrays += [np.zeros((kh, kw, module.in_channels, module.out_channels), np.float32),
                       np.zeros(module.out_channels, np.float32)]
        else:
            arrays += [np.zeros((module.in_features, module.out_features), np.float32),
                       np.zeros(module.out_features, np.float32)]
    return arrays


def test_keras_filter_moves_each_axis_where_torch_wants_it():
    model = RNet()
    arrays = keras_arrays(model, "rnet")
    arrays[0][0, 2, 1, 27] = 1.0  # conv1 kernel: row 0, column 2, input channel 1, output channel 27
    arrays[2][0, 0, 5] = 0.25  # prelu1's slope of channel 5
    arrays[9][575, 3] = 2.0  # fc4 kernel: input 575, output 3
    state = keras_filter_fn(arrays, model, "rnet")
    assert state["conv1.weight"].shape == (28, 3, 3, 3) and state["conv1.weight"][27, 1, 0, 2] == 1.0
    assert state["conv1.weight"].sum() == 1.0
    assert state["prelu1.weight"].shape == (28,) and state["prelu1.weight"][5] == 0.25
    assert state["fc4.weight"].shape == (128, 576) and state["fc4.weight"][3, 575] == 2.0
    model.load_state_dict(state, strict=True)


@pytest.mark.parametrize("cut", [-1, 1])
def test_keras_filter_rejects_a_list_of_another_length(cut):
    model = PNet()
    arrays = keras_arrays(model, "pnet")
    arrays = arrays[:cut] if cut < 0 else arrays + [np.zeros(2, np.float32)]
    with pytest.raises(ValueError, match="is the mtcnn package 1.x"):
        keras_filter_fn(arrays, model, "pnet")


@mtcnn_installed
def test_converted_networks_give_the_right_shapes():
    torch.manual_seed(0)
    with torch.inference_mode():
        prob, offsets = load_network("pnet")(torch.rand(2, 3, 30, 40) * 2 - 1)
        assert prob.shape == (2, 10, 15) and offsets.shape == (2, 4, 10, 15)  # ceil((30 - 2) / 2) - 4 = 10
        assert ((prob >= 0) & (prob <= 1)).all()
        prob, offsets = load_network("rnet")(torch.rand(5, 3, 24, 24) * 2 - 1)
        assert prob.shape == (5,) and offsets.shape == (5, 4)
        prob, offsets, marks = load_network("onet")(torch.rand(5, 3, 48, 48) * 2 - 1)
        assert prob.shape == (5,) and offsets.shape == (5, 4) and marks.shape == (5, 10)
    assert isinstance(load_network("onet"), ONet)


def test_missing_package_names_the_extra(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mtcnn" else find_spec(name, *a))
    with pytest.raises(ImportError, match=r'pip install "bayes-fer\[faces\]"'):
        weights_dir()
    with pytest.raises(ImportError, match=r'pip install "bayes-fer\[faces\]"'):
        MTCNN()


@mtcnn_installed
def test_landmarks_on_upright_fer_faces():
    """The weights are read right when real faces are found, each inside a pasted face, with
    the eyes above the nose above the mouth, the picture's left eye on the left, every
    landmark inside the face's box."""
    from tests.bayes_fer import scenes

    cv2 = pytest.importorskip("cv2")
    faces = scenes.fer_faces(require_shared("data", "ferplus"), 6)
    scene = np.full((200, 1200), 128, np.uint8)
    truth = [scenes.paste(scene, face, (100 + 200 * i, 100.0), 120, 0.0) for i, face in enumerate(faces)]
    found = MTCNN().detect(cv2.cvtColor(scene, cv2.COLOR_GRAY2RGB))[0]
    assert len(found) >= 5, f"{len(found)} of 6 faces found"
    for box, score, points in zip(found.boxes, found.scores, found.points):
        (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = points.tolist()
        assert score > 0.9
        assert lx < nx < rx and mlx < mrx, points
        assert max(ly, ry) < ny < min(mly, mry), points
        assert (points[:, 0] > box[0]).all() and (points[:, 0] < box[2]).all(), (box, points)
        assert (points[:, 1] > box[1]).all() and (points[:, 1] < box[3]).all(), (box, points)
        cx, cy = (box[:2] + box[2:]).tolist()
        assert any(t[0] < cx / 2 < t[2] and t[1] < cy / 2 < t[3] for t in truth), box
