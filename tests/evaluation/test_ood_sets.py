"""Generated non-face image sets and user folders."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from evaluation.ood_sets import KINDS, folder_images, synthetic_ood_set


def test_synthetic_set_mixes_every_kind_evenly():
    images, kind = synthetic_ood_set(14, size=24, seed=0)
    assert images.shape == (14, 24, 24, 3) and images.dtype == np.uint8
    counts = {k: int((kind == k).sum()) for k in KINDS}
    assert sorted(counts.values()) == [2, 2, 2, 2, 3, 3]
    for k in KINDS:  # every generator draws images with content, not a constant
        assert images[kind == k].std() > 5, k


def test_synthetic_set_is_seeded():
    first, _ = synthetic_ood_set(6, size=16, seed=3)
    np.testing.assert_array_equal(first, synthetic_ood_set(6, size=16, seed=3)[0])
    assert not np.array_equal(first, synthetic_ood_set(6, size=16, seed=4)[0])


def test_noise_statistics():
    images, _ = synthetic_ood_set(4, size=64, seed=0, kinds=["uniform_noise"])
    assert images.mean() == pytest.approx(127.5, abs=3)
    gaussian, _ = synthetic_ood_set(4, size=64, seed=0, kinds=["gaussian_noise"])
    assert gaussian.astype(float).std() == pytest.approx(0.25 * 255, rel=0.1)  # clipping trims a little


def test_checkerboards_hold_two_colours():
    images, _ = synthetic_ood_set(3, size=32, seed=1, kinds=["checkerboard"])
    for image in images:
        assert len(np.unique(image.reshape(-1, 3), axis=0)) <= 2


def test_bad_requests():
    with pytest.raises(ValueError, match="kinds: expected names among"):
        synthetic_ood_set(4, kinds=["faces"])
    with pytest.raises(ValueError, match="expected n >= 1"):
        synthetic_ood_set(0)


def test_folder_images(tmp_path):
    (tmp_path / "walls").mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "walls" / "a.png")
    Image.new("L", (20, 20), 90).save(tmp_path / "b.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    images, paths = folder_images(tmp_path, size=16)
    assert images.shape == (2, 16, 16, 3)
    assert [p.split("/")[-1] for p in paths] == ["b.jpg", "a.png"]  # files at the top first, then sub-folders
    np.testing.assert_array_equal(images[1, 0, 0], [200, 10, 10])
    with pytest.raises(FileNotFoundError, match="OOD folder not found"):
        folder_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        folder_images(tmp_path / "empty")
