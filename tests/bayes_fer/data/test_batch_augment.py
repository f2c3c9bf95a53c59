"""Batched on-device augmentation against the PIL pipeline: the same distribution, drawn per sample.

Each statistic is measured the same way on both pipelines' outputs for one source image:
N draws of the PIL transform against one batch of N copies through BatchAugment.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bayes_fer.data.batch_augment import BatchAugment, eval_batch
from bayes_fer.data.transforms import AugmentConfig, eval_transform, train_transform

S = 112
N = 400
ONLY = dict(flip=0.0, geometric=0.0, jitter=0.0, erasing=0.0)  # every op off; tests turn one on


def _both(image: np.ndarray, **aug) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, S, S) outputs of the PIL pipeline and of BatchAugment for an RGB uint8 image (S, S, 3)."""
    options = {**ONLY, **aug}
    pil = train_transform(S, **options)
    img = Image.fromarray(image, "RGB")
    torch.manual_seed(0)
    ref = torch.stack([pil(img) for _ in range(N)])
    batch = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).repeat(N, 1, 1, 1)
    torch.manual_seed(1)
    ours = BatchAugment(S, AugmentConfig(**options))(batch)
    return ref, ours


def _white() -> np.ndarray:
    return np.full((S, S, 3), 255, dtype=np.uint8)


def _fill(x: torch.Tensor) -> torch.Tensor:
    """Per pixel: closer to black (the fill of rotation and crop padding) than to white."""
    return x.mean(1) < 0.0  # normalized white is about +2.2, black about -1.9


def test_flip_rate_matches():
    ramp = np.tile(np.linspace(0, 255, S, dtype=np.uint8)[None, :, None], (S, 1, 3))
    ref, ours = _both(ramp, flip=0.5)
    rate = lambda x: (x[..., : S // 2].mean((1, 2, 3)) > x[..., S // 2:].mean((1, 2, 3))).float().mean().item()  # noqa: E731
    assert abs(rate(ref) - 0.5) < 0.08 and abs(rate(ours) - 0.5) < 0.08
    assert abs(rate(ref) - rate(ours)) < 0.1


def test_rotation_range_matches():
    ref, ours = _both(_white(), geometric=1.0, rotation=10.0, crop_padding=0.0)
    filled_ref = _fill(ref).float().mean((1, 2))  # share of the image left empty by the rotation
    filled_ours = _fill(ours).float().mean((1, 2))
    # The emptied corners grow with |angle|: the largest share tells the range, the quantiles the spread.
    assert filled_ref.max() > 0.05 and abs(filled_ours.max() - filled_ref.max()) < 0.02
    for q in (0.25, 0.5, 0.75):
        assert abs(filled_ours.quantile(q) - filled_ref.quantile(q)) < 0.015, q


def test_crop_offsets_match():
    pad = round(0.08 * S)
    ref, ours = _both(_white(), geometric=1.0, rotation=0.0, crop_padding=0.08)

    def offsets(x: torch.Tensor) -> torch.Tensor:
        cols = _fill(x).all(1)  # (N, S): empty columns
        left = cols.long().cumprod(1).sum(1)
        right = cols.flip(1).long().cumprod(1).sum(1)
        return left - right  # the horizontal shift, in pixels

    dx_ref, dx_ours = offsets(ref), offsets(ours)
    assert dx_ref.min() == dx_ours.min() == -pad and dx_ref.max() == dx_ours.max() == pad
    # Uniform on the 2 pad + 1 integers: mean |dx| = pad (pad + 1) / (2 pad + 1).
    expected = pad * (pad + 1) / (2 * pad + 1)
    for dx in (dx_ref, dx_ours):
        assert abs(dx.abs().float().mean() - expected) < 0.6


def test_erasing_rate_and_area_match():
    ref, ours = _both(_white(), erasing=0.25)

    def stats(x: torch.Tensor) -> tuple[float, float]:
        erased = (x == 0).all(1).float().mean((1, 2))  # share of each image erased to 0
        hit = erased > 0
        return hit.float().mean().item(), erased[hit].mean().item()

    (rate_ref, area_ref), (rate_ours, area_ours) = stats(ref), stats(ours)
    assert abs(rate_ref - 0.25) < 0.07 and abs(rate_ours - 0.25) < 0.07
    assert abs(area_ref - 0.135) < 0.03 and abs(area_ours - 0.135) < 0.03  # U(0.02, 0.25) of the area


def test_colour_jitter_spread_matches():
    rng = np.random.default_rng(0)
    image = rng.integers(40, 216, (S, S, 3), dtype=np.uint8)
    ref, ours = _both(image, jitter=0.2)
    for stat in (lambda x: x.mean((1, 2, 3)), lambda x: x.std((1, 2, 3))):
        a, b = stat(ref), stat(ours)
        assert abs(a.mean() - b.mean()) < 0.05 and abs(a.std() - b.std()) < 0.25 * a.std()


def test_parameters_are_drawn_per_sample():
    aug = BatchAugment(S, AugmentConfig())
    params = aug.sample(64)
    assert 0 < params.flip.sum() < 64 and 0 < params.geometric.sum() < 64 and 0 < params.erase.sum() < 64
    assert params.angle.unique().numel() == 64 and params.jitter.unique(dim=0).shape[0] == 64
    assert params.order.unique(dim=0).shape[0] > 1, "colour ops run in each sample's own order"
    out = aug(torch.full((64, 3, 48, 48), 128, dtype=torch.uint8))
    assert out.flatten(1).unique(dim=0).shape[0] == 64, "identical inputs must come out differently"


def test_grey_batches_equal_their_rgb_copies_and_hue_is_refused():
    aug = BatchAugment(S, AugmentConfig())
    grey = torch.randint(0, 256, (8, 1, 48, 48), dtype=torch.uint8)
    params = aug.sample(8)
    assert torch.allclose(aug(grey, params), aug(grey.expand(-1, 3, -1, -1), params), atol=1e-5)
    with pytest.raises(ValueError, match="hue jitter"):
        BatchAugment(S, AugmentConfig(hue=0.1))
    with pytest.raises(ValueError, match="expected an image batch"):
        aug(torch.zeros(2, 4, 8, 8, dtype=torch.uint8))


def test_eval_preprocessing_matches_the_eval_transform():
    rng = np.random.default_rng(1)
    at_size = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)
    batch = torch.from_numpy(at_size).permute(2, 0, 1)[None]
    assert torch.allclose(eval_batch(batch, S)[0], eval_transform(S)(Image.fromarray(at_size)), atol=1e-5)
    small = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    ours = eval_batch(torch.from_numpy(small)[None, None], S)[0]
    ref = eval_transform(S)(Image.fromarray(small, "L"))
    assert (ours - ref).abs().mean() < 0.03  # PIL rounds its resize to 8 bits
