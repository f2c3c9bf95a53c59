"""The training augmentation as batched tensor ops, with random parameters drawn per sample.

:func:`bayes_fer.data.transforms.train_transform` augments one PIL image at a time in
DataLoader workers. :class:`BatchAugment` draws the same distribution for a whole uint8
batch on the training device: each sample gets its own flip, its own rotation angle and
crop offset (together, with probability ``geometric``), its own brightness, contrast and
saturation factors applied in its own random order, and its own erased rectangle.
(torchvision's v2 transforms, given a batch, draw one parameter set for all of it.)

The distribution is the PIL pipeline's: horizontal flip; with probability ``geometric``,
rotation by U(-rotation, rotation) degrees about the centre followed by a random S x S crop
of the image zero-padded by ``round(crop_padding * S)`` pixels; colour jitter with factors
U(1 - j, 1 + j) in a random order; ImageNet normalization; random erasing (area a fraction
U(scale) of the image, log aspect ratio U(log 0.3, log 3.3), erased to 0). The arithmetic
is arranged for speed and differs in small ways: colour jitter runs before the resize to
S x S, at the stored resolution (it is pointwise, so the two commute up to rounding);
flip, rotation, crop and resize are one bilinear resampling (PIL resizes bilinearly, then
rotates by nearest neighbour); values stay float instead of being rounded to 8 bits after
each colour op; a rectangle too large for the image leaves the sample unerased instead of
being redrawn (it never happens at the default scale of at most a quarter of the image).

Randomness comes from torch's global generator of the batch's device (or ``generator``),
so seeding and checkpointed RNG state cover it. Nothing reads a value back to the host:
on a GPU the whole batch is queued without a synchronisation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bayes_fer.data.transforms import MEAN, STD, AugmentConfig, _check_size

#: Aspect-ratio range of random erasing (torchvision's default).
ERASE_RATIO: tuple[float, float] = (0.3, 3.3)

#: ITU-R 601 luma weights, as PIL and torchvision turn RGB into grey.
LUMA: tuple[float, float, float] = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class AugmentParams:
    """One batch's random draws, one row per sample."""

    flip: torch.Tensor  # (B,) bool
    geometric: torch.Tensor  # (B,) bool: rotation and crop applied
    angle: torch.Tensor  # (B,) degrees, counter-clockwise
    shift: torch.Tensor  # (B, 2) int: crop offset (dy, dx) in pixels, in [-pad, pad]
    jitter: torch.Tensor  # (B, 3) brightness, contrast, saturation factors
    order: torch.Tensor  # (B, 3) int: the order the three colour ops run in
    erase: torch.Tensor  # (B,) bool: a rectangle is erased
    box: torch.Tensor  # (B, 4) int: top, left, height, width of the erased rectangle


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """A uint8 (or float) batch (B, C, h, w), C in {1, 3}, as float in [0, 1]."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected an image batch (B, 1 or 3, h, w), got shape {tuple(images.shape)}")
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()


def normalize(x: torch.Tensor) -> torch.Tensor:
    """ImageNet normalization of a float batch in [0, 1]; a grey batch (C = 1) comes out as RGB.

    One fused multiply-add, ``x / std - mean / std``, that also broadcasts grey to RGB.
    """
    std = torch.tensor(STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    mean = torch.tensor(MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return torch.addcmul(-mean / std, x, 1.0 / std)


def unit_grid(size: int, device: torch.device | str, dtype: torch.dtype) -> torch.Tensor:
    """(S * S, 3) homogeneous pixel centres ``[x, y, 1]`` of an S x S image in normalized
    coordinates (``align_corners=False``: the image spans [-1, 1]), rows in raster order."""
    c = (torch.arange(size, device=device, dtype=dtype) * 2 + 1) / size - 1
    y, x = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([x.flatten(), y.flatten(), torch.ones_like(x).flatten()], dim=1)


def eval_batch(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """The deterministic evaluation preprocessing of a uint8 batch: resize to S x S (bilinear,
    antialiased, as :func:`bayes_fer.data.transforms.eval_transform`), scale, normalize."""
    x = to_unit(images)
    if x.shape[-2:] != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
        x = x.clamp_(0.0, 1.0)
    return normalize(x)


class BatchAugment(torch.nn.Module):
    """Training augmentation of a uint8 batch, on whatever device the batch lives.

    Args:
        image_size: network input side S.
        config: the augmentation (the same :class:`AugmentConfig` the PIL pipeline takes).

    Raises:
        ValueError: hue jitter is asked for (it is not implemented batched).
    """

    def __init__(self, image_size: int = 112, config: AugmentConfig = AugmentConfig()) -> None:
        super().__init__()
        self.size = _check_size(image_size)
        if config.hue > 0:
            raise ValueError(f"hue jitter ({config.hue}) is not available in the batched augmentation; "
                             "set hue=0 or train without --data-cache (the PIL pipeline has it)")
        self.config = config
        # The PIL pipeline's RandomCrop padding, in pixels.
        self.pad = max(1, round(config.crop_padding * self.size)) if config.crop_padding > 0 else 0
        self._grid: dict = {}  # (device, dtype) -> unit_grid(S), built on first use

    def sample(self, batch_size: int, device: torch.device | str = "cpu",
               generator: torch.Generator | None = None) -> AugmentParams:
        """Draw every sample's parameters."""
        cfg, S, B = self.config, self.size, batch_size
        u = torch.rand(B, 12, device=device, generator=generator)  # (B, 12) one uniform per draw
        j = cfg.jitter
        jitter = (1.0 - j + 2.0 * j * u[:, 4:7]).clamp_min(0.0) if j > 0 else torch.ones(B, 3, device=device)
        shift = (u[:, 2:4] * (2 * self.pad + 1)).floor().clamp_max(2 * self.pad).long() - self.pad
        area = S * S * (cfg.erasing_scale[0] + (cfg.erasing_scale[1] - cfg.erasing_scale[0]) * u[:, 8])
        log_r = math.log(ERASE_RATIO[0]) + (math.log(ERASE_RATIO[1]) - math.log(ERASE_RATIO[0])) * u[:, 9]
        h = (area * log_r.exp()).sqrt().round().long()
        w = (area / log_r.exp()).sqrt().round().long()
        fits = (h < S) & (w < S)
        top = (u[:, 10] * (S - h + 1).clamp_min(1)).floor().long()
        left = (u[:, 11] * (S - w + 1).clamp_min(1)).floor().long()
        return AugmentParams(
            flip=u[:, 0] < cfg.flip,
            geometric=u[:, 1] < (cfg.geometric if (cfg.rotation > 0 or self.pad > 0) else 0.0),
            angle=(2.0 * u[:, 7] - 1.0) * cfg.rotation,
            shift=shift,
            jitter=jitter,
            order=torch.rand(B, 3, device=device, generator=generator).argsort(dim=1),
            erase=(torch.rand(B, device=device, generator=generator) < cfg.erasing) & fits,
            box=torch.stack([top, left, h, w], dim=1),
        )

    def forward(self, images: torch.Tensor, params: AugmentParams | None = None) -> torch.Tensor:
        """Augment a uint8 (or [0, 1] float) batch (B, 1 or 3, h, w) into a normalized (B, 3, S, S) batch.

        Colour jitter runs at the stored resolution (it is pointwise, so it commutes with
        resizing); flip, rotation, crop and the resize to S x S are one bilinear resampling.
        """
        x = to_unit(images)
        p = params if params is not None else self.sample(x.shape[0], x.device)
        cfg = self.config
        if cfg.jitter > 0:
            x = self._jitter(x, p)
        if cfg.flip > 0 or self._geometric or x.shape[-2:] != (self.size, self.size):
            x = self._warp(x, p)
        x = normalize(x)
        if cfg.erasing > 0:
            x = x.masked_fill_(self._erase_mask(p, x.device), 0.0)
        return x

    @property
    def _geometric(self) -> bool:
        return self.config.geometric > 0 and (self.config.rotation > 0 or self.pad > 0)

    def _warp(self, x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
        """Flip, rotation about the centre, padded crop and resize to S x S in one resampling.

        Output pixel u reads the rotated image at u + t (t: the crop offset), which reads the
        flipped image at R(angle) (u + t), which reads the input with x negated. In
        normalized coordinates (the image spans [-1, 1]) an output pixel is 2 / S wide, and
        the same coordinates address the input whatever its side.
        """
        B = x.shape[0]
        if self._geometric:
            rad = torch.where(p.geometric, torch.deg2rad(p.angle), torch.zeros_like(p.angle)).to(x.dtype)
            t = torch.where(p.geometric[:, None], p.shift, torch.zeros_like(p.shift)).to(x.dtype) * (2.0 / self.size)
        else:
            rad = torch.zeros(B, device=x.device, dtype=x.dtype)
            t = torch.zeros(B, 2, device=x.device, dtype=x.dtype)
        cos, sin = rad.cos(), rad.sin()
        tx, ty = t[:, 1], t[:, 0]
        sign = 1.0 - 2.0 * p.flip.to(x.dtype) if self.config.flip > 0 else torch.ones_like(cos)
        theta = torch.stack([
            torch.stack([sign * cos, -sign * sin, sign * (cos * tx - sin * ty)], dim=1),
            torch.stack([sin, cos, sin * tx + cos * ty], dim=1),
        ], dim=1)  # (B, 2, 3)
        # F.affine_grid computes the same grid several times slower on the CPU than one
        # batched matrix product with the cached pixel centres.
        base = self._grid.get((x.device, x.dtype))
        if base is None:
            base = self._grid[(x.device, x.dtype)] = unit_grid(self.size, x.device, x.dtype)
        grid = torch.matmul(base, theta.transpose(1, 2)).view(B, self.size, self.size, 2)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _jitter(self, x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
        """Brightness, contrast and saturation in each sample's own order.

        At each of the three positions every op runs, with factor 1 (the identity) for the
        samples whose op at that position is another one.
        """
        luma = torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        to_grey = (lambda v: (v * luma).sum(1, keepdim=True)) if x.shape[1] == 3 else (lambda v: v)
        one = torch.ones((), device=x.device, dtype=x.dtype)
        for position in range(3):
            f = torch.where(p.order[:, position:position + 1] == torch.arange(3, device=x.device), p.jitter, one)
            f = f.to(x.dtype).view(-1, 3, 1, 1, 1)  # (B, op, 1, 1, 1)
            x = (x * f[:, 0]).clamp(0.0, 1.0)
            mean = to_grey(x).mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
            x = (f[:, 1] * x + (1.0 - f[:, 1]) * mean).clamp(0.0, 1.0)
            if x.shape[1] == 3:  # saturation leaves grey images as they are
                x = (f[:, 2] * x + (1.0 - f[:, 2]) * to_grey(x)).clamp(0.0, 1.0)
        return x

    def _erase_mask(self, p: AugmentParams, device: torch.device) -> torch.Tensor:
        """(B, 1, S, S) bool: inside each sample's rectangle, for the samples erased."""
        r = torch.arange(self.size, device=device)
        top, left, h, w = p.box.unbind(1)
        rows = (r >= top[:, None]) & (r < (top + h)[:, None])  # (B, S)
        cols = (r >= left[:, None]) & (r < (left + w)[:, None])  # (B, S)
        return (rows[:, :, None] & cols[:, None, :] & p.erase[:, None, None])[:, None]


__all__ = ["AugmentParams", "BatchAugment", "eval_batch", "normalize", "to_unit", "unit_grid"]
