"""The decoded-once cache: contents equal the decoded images, a changed data set rebuilds it."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bayes_fer.data import load_dataset
from bayes_fer.data import cache as cache_mod
from bayes_fer.data.cache import open_cache
from bayes_fer.data.transforms import ResizeSquare


def _write(path, array: np.ndarray, mode: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


def _folder(root, mode: str, size: tuple[int, int], n: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    for i in range(n):
        cls = ("happy", "sad")[i % 2]
        _write(root / "train" / cls / f"{i:03d}.png", rng.integers(0, 256, shape, dtype=np.uint8), mode)
    return load_dataset("folder", root, "train")


def test_grey_48_images_are_stored_as_decoded_in_one_channel(tmp_path):
    ds = _folder(tmp_path / "data", "L", (48, 48))
    cache = open_cache(ds, tmp_path / "cache", 112, progress=False)
    assert cache.images.shape == (len(ds), 1, 48, 48) and cache.images.dtype == torch.uint8
    for i in range(len(ds)):
        expected = np.asarray(Image.open(ds.paths[i]))
        assert np.array_equal(cache.images[i, 0].numpy(), expected), i
    assert torch.equal(cache.labels, torch.as_tensor(ds.labels))


def test_larger_colour_images_are_stored_resized_as_the_pil_pipeline_resizes(tmp_path):
    ds = _folder(tmp_path / "data", "RGB", (130, 100))
    cache = open_cache(ds, tmp_path / "cache", 112, workers=0, progress=False)
    assert cache.images.shape == (len(ds), 3, 112, 112)
    resize = ResizeSquare(112)
    for i in range(len(ds)):
        expected = np.asarray(resize(Image.open(ds.paths[i]).convert("RGB"))).transpose(2, 0, 1)
        assert np.array_equal(cache.images[i].numpy(), expected), i


def test_synthetic_faces_and_their_extras_are_cached(tmp_path):
    ds = load_dataset("synthetic", split="valid", size=5, label_mode="probability")
    cache = open_cache(ds, tmp_path, 112, progress=False)
    assert cache.images.shape == (5, 3, 112, 112)
    assert np.array_equal(cache.images[3].numpy(), np.asarray(ds.load_image(3)).transpose(2, 0, 1))
    assert torch.equal(cache.extras["votes"][2], ds.sample_extras(2)["votes"])
    assert set(cache.extras) == {"votes", "mixture", "target"}


def test_a_changed_image_or_label_rebuilds_the_cache_and_an_unchanged_one_does_not(tmp_path, monkeypatch):
    ds = _folder(tmp_path / "data", "L", (48, 48))
    first = open_cache(ds, tmp_path / "cache", 112, progress=False)
    builds = []
    real_build = cache_mod._build
    monkeypatch.setattr(cache_mod, "_build", lambda *a, **k: (builds.append(a[1]), real_build(*a, **k)))
    again = open_cache(load_dataset("folder", tmp_path / "data", "train"), tmp_path / "cache", 112, progress=False)
    assert again.path == first.path and builds == [], "an unchanged data set must reuse its cache"

    _write(ds.paths[2], np.full((48, 48), 7, dtype=np.uint8), "L")
    os.utime(ds.paths[2], ns=(1, 1))  # a new size or modification time is what tells
    changed = open_cache(load_dataset("folder", tmp_path / "data", "train"), tmp_path / "cache", 112, progress=False)
    assert changed.path != first.path and len(builds) == 1
    assert (changed.images[2] == 7).all()
    assert not first.path.exists(), "the stale file of the same data set and split is removed"

    relabelled = load_dataset("folder", tmp_path / "data", "train")
    relabelled.labels[0] = 1 - relabelled.labels[0]
    assert open_cache(relabelled, tmp_path / "cache", 112, progress=False).path != changed.path
    assert len(builds) == 2


def test_a_corrupt_cache_file_says_how_to_recover(tmp_path):
    ds = _folder(tmp_path / "data", "L", (48, 48))
    path = open_cache(ds, tmp_path / "cache", 112, progress=False).path
    np.save(path, np.zeros((2, 5), dtype=np.uint8))
    with pytest.raises(ValueError, match="delete it and it will be rebuilt"):
        open_cache(ds, tmp_path / "cache", 112, progress=False)
