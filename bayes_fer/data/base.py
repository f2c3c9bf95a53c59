"""The dataset base class: samples as dicts, unreadable images skipped and counted.

Every dataset returns ``{"image", "label", "index", ...}`` from ``__getitem__``. A file that
cannot be read (missing, truncated, not an image) never stops an epoch: the next readable
sample stands in for it, a warning names the file, and :attr:`FERDataset.skipped`
summarises every file skipped so far. The record of skipped files lives in shared memory,
so reads made inside ``DataLoader`` worker processes are counted too.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from bayes_fer.data.labels import check_class_names
from bayes_fer.data.transforms import to_rgb

#: What PIL and the file system raise for files that are missing, truncated or not images.
UNREADABLE = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)

#: How many following samples are tried before a run of unreadable files is declared fatal.
MAX_SUBSTITUTES = 64


@dataclass(frozen=True)
class SkipSummary:
    """Files skipped so far because they could not be read, or their face box does not fit them."""

    count: int  # number of distinct files skipped
    total: int  # number of samples in the dataset
    files: tuple[str, ...]  # the skipped files, in sample order
    bad_boxes: int = 0  # of ``count``, files skipped because their face box lies outside the image

    def __str__(self) -> str:
        if not self.count:
            return f"0 of {self.total} images skipped"
        shown = ", ".join(self.files[:5]) + (", ..." if self.count > 5 else "")
        unreadable = self.count - self.bad_boxes
        if not self.bad_boxes:
            return f"{self.count} of {self.total} images skipped as unreadable: {shown}"
        reasons = f"{self.bad_boxes} with a bad face box" + (f", {unreadable} unreadable" if unreadable else "")
        return f"{self.count} of {self.total} images skipped ({reasons}): {shown}"


class BadBoxError(ValueError):
    """A sample's face box does not lie within its image (the image itself is readable)."""


#: Skip-mask codes: why a sample was skipped.
_UNREADABLE, _BAD_BOX = 1, 2


class FERDataset(Dataset):
    """Base class of every bayes-fer dataset.

    Attributes:
        name: the dataset name given to :func:`bayes_fer.data.load_dataset`.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        class_names: class order of ``label`` (a label space of ``bayes_fer.data.labels``).
        labels: int64 array (N,) of hard labels, for samplers and class counts.
        transform: callable from a PIL image to a normalized (3, S, S) tensor.
        dropped: how many listed samples the dataset's label rules left out, by reason.
    """

    def __init__(
        self,
        name: str,
        split: str,
        class_names: Sequence[str],
        labels: np.ndarray,
        transform: Callable | None,
    ) -> None:
        self.name = name
        self.split = split
        self.class_names = check_class_names(class_names)
        self.labels = np.asarray(labels, dtype=np.int64)
        if self.labels.ndim != 1:
            raise ValueError(f"labels must be 1-D, got shape {self.labels.shape}")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError(
                f"labels must lie in [0, {len(self.class_names)}), got {self.labels.min()}..{self.labels.max()}"
            )
        self.transform = transform
        self.dropped: dict[str, int] = {}  # samples the label rules left out, by reason
        # Shared so that DataLoader workers (forked or spawned) record into the same mask.
        self._skip_mask = torch.zeros(max(len(self.labels), 1), dtype=torch.int8).share_memory_()

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"classes={len(self.class_names)})"
        )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> np.ndarray:
        """Samples per class, in ``class_names`` order."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def load_image(self, index: int) -> Image.Image:
        """The RGB PIL image of sample ``index``; raises one of :data:`UNREADABLE` if it cannot."""
        raise NotImplementedError

    def sample_extras(self, index: int) -> dict[str, torch.Tensor]:
        """Per-sample tensors besides image and label (votes, targets, mixtures)."""
        return {}

    def source(self, index: int) -> str:
        """Where sample ``index`` comes from (a file path), for messages."""
        return f"sample {index}"

    @property
    def skipped(self) -> SkipSummary:
        """Summary of the files skipped so far, in this process and its DataLoader workers."""
        mask = self._skip_mask[: len(self)]
        idx = torch.nonzero(mask).flatten().tolist()
        return SkipSummary(len(idx), len(self), tuple(self.source(i) for i in idx), int((mask == _BAD_BOX).sum()))

    def _read(self, index: int) -> Image.Image | None:
        try:
            return self.load_image(index)
        except BadBoxError as err:
            if not self._skip_mask[index]:
                self._skip_mask[index] = _BAD_BOX
                warnings.warn(f"skipping {self.source(index)}: {err}", RuntimeWarning, stacklevel=3)
            return None
        except UNREADABLE as err:
            if not self._skip_mask[index]:
                self._skip_mask[index] = _UNREADABLE
                warnings.warn(f"skipping unreadable image {self.source(index)}: {err}", RuntimeWarning, stacklevel=3)
            return None

    def __getitem__(self, index: int) -> dict:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {self!r}")
        index %= n
        for step in range(min(n, MAX_SUBSTITUTES)):
            j = (index + step) % n
            if self._skip_mask[j]:
                continue
            image = self._read(j)
            if image is not None:
                break
        else:
            raise RuntimeError(
                f"{min(n, MAX_SUBSTITUTES)} consecutive samples from index {index} are unreadable; "
                f"{self.skipped}. Check the dataset files."
            )
        sample = {
            "image": self.transform(image) if self.transform is not None else image,
            "label": torch.tensor(self.labels[j], dtype=torch.int64),
            "index": j,
        }
        sample.update(self.sample_extras(j))
        return sample


class FileImageDataset(FERDataset):
    """Images listed as files, with optional face boxes and per-sample float arrays.

    Args:
        paths: one image file per sample.
        boxes: optional (N, 4) face boxes ``x, y, width, height`` in pixels; the image is
            cropped to the box (clamped to the image) before the transform.
        arrays: per-sample float arrays returned under their keys (e.g. ``"votes"``).
    """

    def __init__(
        self,
        name: str,
        split: str,
        class_names: Sequence[str],
        paths: Sequence[str],
        labels: np.ndarray,
        transform: Callable | None,
        *,
        boxes: np.ndarray | None = None,
        arrays: Mapping[str, np.ndarray] | None = None,
        root: str | os.PathLike | None = None,
    ) -> None:
        super().__init__(name, split, class_names, labels, transform)
        self.paths = list(paths)
        self.root = None if root is None else os.fspath(root)
        self.boxes = None if boxes is None else np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        self.arrays = {k: np.asarray(v, dtype=np.float32) for k, v in (arrays or {}).items()}
        for key, value in [("paths", self.paths), ("boxes", self.boxes), *self.arrays.items()]:
            if value is not None and len(value) != len(self.labels):
                raise ValueError(f"{key} has {len(value)} rows but there are {len(self.labels)} labels")

    def source(self, index: int) -> str:
        return self.paths[index]

    def load_image(self, index: int) -> Image.Image:
        with Image.open(self.paths[index]) as img:
            img.load()
            if self.boxes is not None:
                img = crop_box(img, self.boxes[index])
            return to_rgb(img)

    def sample_extras(self, index: int) -> dict[str, torch.Tensor]:
        return {key: torch.from_numpy(value[index].copy()) for key, value in self.arrays.items()}


def crop_box(img: Image.Image, box: Sequence[float]) -> Image.Image:
    """Crop ``img`` to ``box = (x, y, width, height)``, clamped to the image bounds.

    Raises:
        BadBoxError: the box is not finite, has no area, or lies outside the image.
    """
    x, y, w, h = (float(v) for v in box)
    if not all(np.isfinite((x, y, w, h))) or w <= 0 or h <= 0:
        raise BadBoxError(f"face box {(x, y, w, h)} needs finite values and a positive width and height")
    left, top = max(0, round(x)), max(0, round(y))
    right, bottom = min(img.width, round(x + w)), min(img.height, round(y + h))
    if right <= left or bottom <= top:
        raise BadBoxError(f"face box {(x, y, w, h)} lies outside the {img.width}x{img.height} image")
    if (left, top, right, bottom) == (0, 0, img.width, img.height):
        return img
    return img.crop((left, top, right, bottom))


def subset_indices(n: int, size: int | None, seed: int) -> np.ndarray:
    """Indices of a seeded random subset of ``size`` of ``n`` samples (all, in order, if None).

    The subset keeps the original order so that subsets of one seed are nested.
    """
    if size is None or size >= n:
        return np.arange(n)
    if size <= 0:
        raise ValueError(f"size must be a positive number of samples, got {size}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:size])
