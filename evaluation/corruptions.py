"""Image corruptions at five severities, after ImageNet-C (Hendrycks & Dietterich, ICLR 2019).

Each corruption maps a float image (H, W, 3) in [0, 1] and a severity 1-5 to a corrupted
image in [0, 1]; severity 0 returns the image unchanged. The parameters are ImageNet-C's
where it defines the corruption (Gaussian noise, Gaussian blur, JPEG, contrast); blur sigmas
are given for 224-pixel images there and are scaled to the image's side here, so a 112-pixel
network input is blurred as much, relative to the face, as an ImageNet image. Occlusion is
not in ImageNet-C: a mid-grey square at a random place whose side is 20-60% of the image's.
Corruptions apply at the network's input size, after the resize and before normalisation.
"""
from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

SEVERITIES = (1, 2, 3, 4, 5)

#: Parameter per severity 1..5.
NOISE_STD = (0.08, 0.12, 0.18, 0.26, 0.38)
BLUR_SIGMA_224 = (1.0, 2.0, 3.0, 4.0, 6.0)
JPEG_QUALITY = (25, 18, 15, 10, 7)
CONTRAST_FACTOR = (0.4, 0.3, 0.2, 0.1, 0.05)
OCCLUSION_SIDE = (0.2, 0.3, 0.4, 0.5, 0.6)


def gaussian_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Add N(0, c^2) to every pixel."""
    return np.clip(image + rng.normal(0.0, NOISE_STD[severity - 1], size=image.shape), 0.0, 1.0)


def gaussian_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blur each channel with a Gaussian of ImageNet-C's sigma scaled to the image side."""
    sigma = BLUR_SIGMA_224[severity - 1] * image.shape[0] / 224.0
    return np.clip(gaussian_filter(image, sigma=(sigma, sigma, 0)), 0.0, 1.0)


def jpeg(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Encode and decode as JPEG at ImageNet-C's quality."""
    buffer = io.BytesIO()
    Image.fromarray(np.rint(image * 255).astype(np.uint8)).save(buffer, format="JPEG",
                                                                 quality=JPEG_QUALITY[severity - 1])
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.float64) / 255.0


def contrast(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Shrink every pixel towards the image's mean by the factor c."""
    mean = image.mean()
    return np.clip((image - mean) * CONTRAST_FACTOR[severity - 1] + mean, 0.0, 1.0)


def occlusion(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Paint a mid-grey square, side a fraction of the image's, at a uniformly random place."""
    height, width = image.shape[:2]
    side = max(1, int(round(OCCLUSION_SIDE[severity - 1] * min(height, width))))
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    out = image.copy()
    out[top:top + side, left:left + side] = 0.5
    return out


CORRUPTIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": gaussian_noise, "gaussian_blur": gaussian_blur, "jpeg": jpeg,
    "contrast": contrast, "occlusion": occlusion,
}


def corrupt(image: np.ndarray, name: str, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` (0 = none) to a float (H, W, 3) image in [0, 1].

    Raises:
        ValueError: Unknown name, severity outside 0-5, or an image that is not (H, W, 3) in [0, 1].
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"corruption: expected one of {', '.join(CORRUPTIONS)}, found {name!r}")
    if severity not in (0,) + SEVERITIES:
        raise ValueError(f"severity: expected an integer from 0 (none) to 5, found {severity!r}")
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3 or image.shape[2] != 3 or image.min() < 0 or image.max() > 1:
        raise ValueError(f"image: expected a float (H, W, 3) array in [0, 1], found shape {image.shape} "
                         f"with values in [{image.min():.3g}, {image.max():.3g}]")
    if severity == 0:
        return image
    return CORRUPTIONS[name](image, severity, rng or np.random.default_rng())


class CorruptedTransform:
    """Dataset transform: RGB, resize to ``size``, corrupt, then the model's own transform.

    Args:
        name: Corruption name (any name, e.g. ``"clean"``, at severity 0).
        severity: 0-5.
        size: The network's input side; the model transform's resize is then a no-op.
        then: The model's evaluation transform, applied to the corrupted [0, 1] tensor.
        seed: Seeds the random parts (noise, occlusion place); with an unshuffled loader and no
            workers, every run corrupts every image the same way.
    """

    def __init__(self, name: str, severity: int, size: int, then: Callable, seed: int = 0) -> None:
        if severity != 0:
            corrupt(np.zeros((2, 2, 3)), name, severity)  # fail now on a bad name or severity
        self.name, self.severity, self.size, self.then = name, severity, size, then
        self.rng = np.random.default_rng(seed)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        rgb = image.convert("RGB").resize((self.size, self.size), Image.Resampling.BILINEAR)
        array = np.asarray(rgb, dtype=np.float64) / 255.0
        if self.severity:
            array = corrupt(array, self.name, self.severity, self.rng)
        return self.then(torch.from_numpy(array).permute(2, 0, 1).float().contiguous())  # (3, H, W)
