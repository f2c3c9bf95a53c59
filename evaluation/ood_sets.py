"""Out-of-distribution image sets made on the spot, without downloads: nothing here is a face.

Kinds (each an ``(N, H, W, 3)`` uint8 array): Gaussian and uniform pixel noise, stripes at
random angles and frequencies, checkerboards, Perlin-like value noise (smoothed random
lattices summed over octaves), and random crops of the two natural photographs scikit-learn
ships (``china.jpg``, a temple, and ``flower.jpg``; neither shows a face). A user folder of
images is read by :func:`folder_images`.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import zoom

#: Kinds :func:`synthetic_ood_set` mixes by default.
KINDS = ("gaussian_noise", "uniform_noise", "stripes", "checkerboard", "perlin", "photo_crop")


def _to_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)


def gaussian_noise(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Pixels ~ N(0.5, 0.25^2), clipped to [0, 1]: (n, size, size, 3) uint8."""
    return _to_uint8(rng.normal(0.5, 0.25, size=(n, size, size, 3)))


def uniform_noise(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Pixels ~ U(0, 1): (n, size, size, 3) uint8."""
    return _to_uint8(rng.uniform(size=(n, size, size, 3)))


def stripes(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sinusoidal stripes, random angle, 2-16 periods per side and two random colours."""
    y, x = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size, 3))
    for i in range(n):
        angle, periods, phase = rng.uniform(0, np.pi), rng.uniform(2, 16), rng.uniform(0, 2 * np.pi)
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * periods * (x * np.cos(angle) + y * np.sin(angle)) + phase)
        low, high = rng.uniform(size=3), rng.uniform(size=3)
        out[i] = low + wave[..., None] * (high - low)
    return _to_uint8(out)


def checkerboard(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Checkerboards of 2-12 squares per side in two random colours."""
    y, x = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size, 3))
    for i in range(n):
        squares = rng.integers(2, 13)
        board = ((np.floor(x * squares) + np.floor(y * squares)) % 2)[..., None]
        low, high = rng.uniform(size=3), rng.uniform(size=3)
        out[i] = low + board * (high - low)
    return _to_uint8(out)


def perlin(n: int, size: int, rng: np.random.Generator, octaves: int = 4) -> np.ndarray:
    """Value noise: random lattices upsampled by cubic splines, amplitudes halving per octave."""
    out = np.zeros((n, size, size, 3))
    for i in range(n):
        image = np.zeros((size, size, 3))
        for octave in range(octaves):
            cells = 2 ** (octave + 2)
            lattice = rng.uniform(size=(cells, cells, 3))
            factor = size / cells
            image += 0.5 ** octave * zoom(lattice, (factor, factor, 1), order=3, mode="reflect")[:size, :size]
        image -= image.min()
        out[i] = image / max(image.max(), 1e-12)
    return _to_uint8(out)


def sample_photographs() -> list[np.ndarray]:
    """scikit-learn's sample photographs (no faces), as (H, W, 3) uint8 arrays; shipped, not downloaded."""
    from sklearn.datasets import load_sample_images

    return [np.asarray(image) for image in load_sample_images().images]


def photo_crop(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Random square crops (1/8 to 1/2 of the shorter side) of the sample photographs, resized."""
    photos = sample_photographs()
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        photo = photos[rng.integers(len(photos))]
        height, width = photo.shape[:2]
        side = int(rng.uniform(0.125, 0.5) * min(height, width))
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        crop = Image.fromarray(photo[top:top + side, left:left + side])
        out[i] = np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR))
    return out


GENERATORS: dict[str, Callable[[int, int, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": gaussian_noise, "uniform_noise": uniform_noise, "stripes": stripes,
    "checkerboard": checkerboard, "perlin": perlin, "photo_crop": photo_crop,
}


def synthetic_ood_set(
    n: int, size: int = 112, seed: int = 0, kinds: Sequence[str] = KINDS
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` non-face images split as evenly as possible over ``kinds``.

    Args:
        n: Number of images.
        size: Side of the square images.
        seed: Seeds every generator.
        kinds: Names from :data:`KINDS`.

    Returns:
        ``(images, kind)``: uint8 (n, size, size, 3) and the kind name of each image (n,).
    """
    unknown = [kind for kind in kinds if kind not in GENERATORS]
    if unknown or not kinds:
        raise ValueError(f"kinds: expected names among {', '.join(KINDS)}, found {list(kinds)}")
    if n < 1 or size < 8:
        raise ValueError(f"expected n >= 1 images of size >= 8, found n={n}, size={size}")
    rng = np.random.default_rng(seed)
    counts = np.full(len(kinds), n // len(kinds))
    counts[: n % len(kinds)] += 1
    images, names = [], []
    for kind, count in zip(kinds, counts):
        if count:
            images.append(GENERATORS[kind](int(count), size, rng))
            names += [kind] * int(count)
    return np.concatenate(images), np.array(names)


def folder_images(folder: str | os.PathLike, size: int = 112, limit: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Every image under ``folder`` (recursively, sorted), resized to ``size`` x ``size`` RGB.

    Returns:
        ``(images, paths)``: uint8 (N, size, size, 3) and each file's path.

    Raises:
        FileNotFoundError: ``folder`` is not a directory.
        ValueError: It holds no readable image.
    """
    from bayes_fer.predictive import iter_image_files, open_image

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"OOD folder not found: {folder}; pass a directory of non-face images")
    images, paths = [], []
    for path in iter_image_files(folder):
        if limit is not None and len(images) >= limit:
            break
        image = open_image(path).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        images.append(np.asarray(image))
        paths.append(str(path))
    if not images:
        raise ValueError(f"OOD folder {folder} holds no images (looked for .jpg, .png, ...); add some or use "
                         "--ood-synthetic N")
    return np.stack(images), paths
