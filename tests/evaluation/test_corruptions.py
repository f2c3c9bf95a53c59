"""Corruptions at five severities: each grows with severity and severity 0 changes nothing."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation.corruptions import (
    CONTRAST_FACTOR,
    CORRUPTIONS,
    NOISE_STD,
    OCCLUSION_SIDE,
    CorruptedTransform,
    corrupt,
)


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:64] / 64
    base = 0.5 + 0.2 * np.sin(8 * x) * np.cos(6 * y)
    return np.clip(np.stack([base, base * 0.9, base * 1.1], axis=-1) + rng.normal(0, 0.02, (64, 64, 3)), 0, 1)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_severity_zero_is_identity_and_damage_grows(name, image):
    np.testing.assert_array_equal(corrupt(image, name, 0), image)
    errors = [np.mean((corrupt(image, name, s, np.random.default_rng(1)) - image) ** 2) for s in range(1, 6)]
    assert errors[0] > 0
    assert errors[-1] > errors[0]
    for s in range(1, 6):
        out = corrupt(image, name, s, np.random.default_rng(1))
        assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1


def test_noise_has_the_stated_spread():
    grey = np.full((128, 128, 3), 0.5)
    for s, std in enumerate(NOISE_STD[:3], start=1):  # past 0.18 clipping at 0 and 1 trims the spread
        assert corrupt(grey, "gaussian_noise", s, np.random.default_rng(0)).std() == pytest.approx(std, rel=0.05)


def test_contrast_shrinks_the_spread_by_its_factor(image):
    for s, factor in enumerate(CONTRAST_FACTOR, start=1):
        out = corrupt(image, "contrast", s)
        assert out.std() == pytest.approx(factor * image.std(), rel=1e-9)
        assert out.mean() == pytest.approx(image.mean())


def test_blur_removes_more_detail_with_severity(image):
    detail = [np.abs(np.diff(corrupt(image, "gaussian_blur", s), axis=0)).mean() for s in range(6)]
    assert all(a > b for a, b in zip(detail, detail[1:]))


def test_occlusion_covers_the_stated_square(image):
    for s, side in enumerate(OCCLUSION_SIDE, start=1):
        out = corrupt(image, "occlusion", s, np.random.default_rng(s))
        grey = np.all(out == 0.5, axis=-1)
        assert grey.sum() == round(side * 64) ** 2


def test_corrupted_transform_feeds_the_model_transform():
    from PIL import Image

    seen = []
    transform = CorruptedTransform("occlusion", 5, 32, then=lambda x: seen.append(x) or x)
    out = transform(Image.new("L", (48, 48), 255))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    assert (out == 0.5).all(dim=0).sum() == round(0.6 * 32) ** 2 and out.max() == 1.0
    clean = CorruptedTransform("clean", 0, 32, then=lambda x: x)(Image.new("L", (48, 48), 255))
    assert torch.all(clean == 1.0)


def test_bad_arguments(image):
    with pytest.raises(ValueError, match="corruption: expected one of gaussian_noise"):
        corrupt(image, "fog", 1)
    with pytest.raises(ValueError, match="severity: expected an integer from 0"):
        corrupt(image, "jpeg", 6)
    with pytest.raises(ValueError, match=r"image: expected a float \(H, W, 3\) array in \[0, 1\]"):
        corrupt(image * 255, "jpeg", 1)
    with pytest.raises(ValueError, match="severity"):
        CorruptedTransform("jpeg", 9, 32, then=lambda x: x)
