"""Image transforms: the training augmentation and the deterministic evaluation transform.

Both map a PIL image (any mode) or a uint8 / float CHW tensor to a normalized float tensor
(3, S, S). S = 112 is POSTER-Var's native input: the network never sees more detail, so
larger sizes only cost time. The training recipe follows the paper's Table 1 and the
POSTER++ reference: resize, horizontal flip, small rotation and padded random crop (applied
together on a fraction of the images, as the reference's ``RandomApply``), colour jitter 0.2,
ImageNet normalization, random erasing.

:func:`eval_transform` is what the predictive API applies to users' photos, so it is
deterministic and simple: convert to RGB, resize the whole image to S x S (bilinear with
antialiasing, no crop: a face crop is assumed), scale to [0, 1], normalize with
:data:`MEAN` and :data:`STD`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

#: ImageNet channel statistics, as in the reference code.
MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation; ``train_transform(size, **fields)`` overrides any field."""

    flip: float = 0.5  # probability of a horizontal flip (expressions are near-symmetric)
    geometric: float = 0.2  # probability of rotation + padded crop together (POSTER++'s RandomApply p)
    rotation: float = 10.0  # rotations are uniform in +-rotation degrees ("small rotation")
    crop_padding: float = 0.08  # random crop after zero padding by this fraction of the side
    jitter: float = 0.2  # brightness, contrast and saturation jitter (Table 1: 0.2)
    hue: float = 0.0  # hue jitter; 0 keeps skin tones and saves the costly HSV round trip
    erasing: float = 0.25  # probability of random erasing (occlusion robustness)
    erasing_scale: tuple[float, float] = (0.02, 0.25)  # erased area, as a fraction of the image


#: Named augmentation strengths for ``train_transform(size, **AUGMENTATIONS[name])``.
#: ``"flip"`` suits data that already varies in pose, light and occlusion (the synthetic faces).
AUGMENTATIONS: dict[str, dict] = {
    "standard": {},
    "flip": dict(geometric=0.0, jitter=0.0, erasing=0.0),
    "none": dict(flip=0.0, geometric=0.0, jitter=0.0, erasing=0.0),
}


def to_rgb(img: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
    """Convert an image to 3 channels.

    PIL: ``RGB`` is returned as is; ``L``/``1``/``P``/``CMYK``/``YCbCr`` are converted;
    ``RGBA``/``LA``/``PA`` and palette images with transparency are composited over white;
    16-bit (``I;16*``, ``I``) and float (``F``) greyscale are scaled to 8 bits (PIL's own
    conversion would clip them). Tensors: (H, W) or (C, H, W) with C in 1-4; 1 channel is
    repeated, 2 (grey + alpha) and 4 (RGBA) are composited over white; uint8 values are in
    [0, 255] and float values in [0, 1].
    """
    if isinstance(img, torch.Tensor):
        return _tensor_to_rgb(img)
    if not isinstance(img, Image.Image):
        raise TypeError(f"expected a PIL image or a CHW tensor, got {type(img).__name__}")
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(img), mode), "L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    if mode == "F":
        arr = arr * 255.0 if arr.size and np.nanmax(arr) <= 1.0 else arr
        return np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    arr = arr.astype(np.int64)
    if mode.startswith("I;16") or (arr.size and arr.max() > 255):
        arr = np.clip(arr, 0, 65535) >> 8  # 16-bit range onto 8 bits
    return np.clip(arr, 0, 255).astype(np.uint8)


def _tensor_to_rgb(x: torch.Tensor) -> torch.Tensor:
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim != 3 or x.shape[0] not in (1, 2, 3, 4):
        raise ValueError(f"expected an image tensor (H, W) or (C, H, W) with C in 1..4, got shape {tuple(x.shape)}")
    channels = x.shape[0]
    if channels == 3:
        return x
    if channels == 1:
        return x.expand(3, -1, -1).clone()
    full = 255.0 if x.dtype == torch.uint8 else 1.0
    xf = x.float()
    alpha = xf[-1:] / full
    color = xf[:1].expand(3, -1, -1) if channels == 2 else xf[:3]
    out = color * alpha + full * (1 - alpha)  # over a white background
    return out.round().to(torch.uint8) if x.dtype == torch.uint8 else out.to(x.dtype)


class ToRGB(torch.nn.Module):
    """:func:`to_rgb` as a transform."""

    def forward(self, img: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
        return to_rgb(img)


class ResizeSquare(torch.nn.Module):
    """Resize to ``size x size`` (bilinear, antialiased), skipping images already that size."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.resize = v2.Resize((size, size), interpolation=v2.InterpolationMode.BILINEAR, antialias=True)

    def forward(self, img: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
        h, w = (img.height, img.width) if isinstance(img, Image.Image) else img.shape[-2:]
        return img if (h, w) == (self.size, self.size) else self.resize(img)


def _check_size(image_size: int) -> int:
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an int >= 8 (112 is POSTER-Var's native input), got {image_size!r}")
    return image_size


def _to_normalized() -> list[torch.nn.Module]:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]


def train_transform(image_size: int = 112, **aug) -> v2.Compose:
    """The training augmentation at ``image_size``; keyword arguments override :class:`AugmentConfig`.

    Order: RGB, resize to S x S, flip, rotation and padded random crop (together, with
    probability ``geometric``), colour jitter, tensor in [0, 1], normalization, random
    erasing (on the normalized tensor, erased to 0 = the mean).
    Randomness comes from torch's global generator (seeded per DataLoader worker).
    """
    size = _check_size(image_size)
    names = {f.name for f in dataclasses.fields(AugmentConfig)}
    unknown = sorted(set(aug) - names)
    if unknown:
        raise TypeError(f"unknown augmentation option(s) {unknown}; valid options: {', '.join(sorted(names))}")
    cfg = AugmentConfig(**aug)
    ops: list[torch.nn.Module] = [ToRGB(), ResizeSquare(size)]
    if cfg.flip > 0:
        ops.append(v2.RandomHorizontalFlip(cfg.flip))
    geometric: list[torch.nn.Module] = []
    if cfg.rotation > 0:
        geometric.append(v2.RandomRotation(cfg.rotation))
    if cfg.crop_padding > 0:
        geometric.append(v2.RandomCrop(size, padding=max(1, round(cfg.crop_padding * size))))
    if geometric and cfg.geometric > 0:
        ops.append(v2.RandomApply(geometric, p=cfg.geometric))
    if cfg.jitter > 0 or cfg.hue > 0:
        ops.append(v2.ColorJitter(cfg.jitter, cfg.jitter, cfg.jitter, cfg.hue))
    ops += _to_normalized()
    if cfg.erasing > 0:
        ops.append(v2.RandomErasing(cfg.erasing, scale=cfg.erasing_scale))
    return v2.Compose(ops)


def eval_transform(image_size: int = 112) -> v2.Compose:
    """The deterministic evaluation transform: RGB, resize to S x S, normalize.

    The same input always gives the same output; this is the preprocessing of the predictive
    API, so a photo is seen exactly as validation images were.
    """
    return v2.Compose([ToRGB(), ResizeSquare(_check_size(image_size)), *_to_normalized()])


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Undo the normalization of an image or batch, for display: values in [0, 1]."""
    mean = torch.tensor(MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * std + mean).clamp(0, 1)
