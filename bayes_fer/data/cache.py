"""A data set decoded once: every image as uint8 in one memory-mapped ``.npy`` file.

Decoding PNGs and resizing them with PIL costs more than a training step of a small network
on a GPU, and it is the same work every epoch. :func:`open_cache` decodes a data set once
(in parallel, with a progress bar) into ``<folder>/<name>-<split>-<fingerprint>.npy`` and
memory-maps it afterwards. The images are stored as the data set's own RGB images, at
their common side when every image is the same square size no larger than the training
size (FER+: 48 x 48), else resized to the training size exactly as the PIL pipeline
resizes; one channel when every image is grey (FER+: about 80 MB in all). Augmentation
then runs batched on the training device (:mod:`bayes_fer.data.batch_augment`).

The fingerprint covers what the images and labels come from: every image file's path,
size and modification time, the parsed labels, votes and face boxes, the synthetic
generator's seed and settings, and the stored size. A changed data set therefore gets a
new file, and the stale file of the same data set and split is removed.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.lib.format import open_memmap
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from bayes_fer.data.base import FERDataset, FileImageDataset
from bayes_fer.data.transforms import ResizeSquare, to_rgb

#: Bumped whenever the stored layout changes, so old files are rebuilt.
CACHE_VERSION = 1


@dataclass(frozen=True)
class CachedImages:
    """The decoded images of one data set split, with the samples' labels and extras.

    Attributes:
        images: uint8 tensor (N, C, s, s), C in {1, 3}, backed by the memory-mapped file.
        labels: int64 tensor (N,) of hard labels.
        extras: per-sample float tensors besides image and label (votes, targets, mixtures).
        path: the ``.npy`` file.
        fingerprint: hex digest of the source the file was built from.
    """

    images: torch.Tensor
    labels: torch.Tensor
    extras: dict[str, torch.Tensor]
    path: Path
    fingerprint: str

    def __len__(self) -> int:
        return self.images.shape[0]


def stored_side(dataset: FERDataset, image_size: int) -> int:
    """The side the images are stored at: the data set's own square side when it is no
    larger than ``image_size`` (decoding the first image tells), else ``image_size``."""
    if len(dataset) == 0:
        raise ValueError(f"cannot cache the empty data set {dataset!r}")
    first = _decoder_view(dataset)[0]["image"]
    w, h = first.size
    return w if w == h and w <= image_size else image_size


def fingerprint(dataset: FERDataset, image_size: int) -> str:
    """A hex digest that changes whenever the images or labels of ``dataset`` would.

    Args:
        dataset: a bayes-fer data set (files on disk or synthetic).
        image_size: the training input side (the stored side depends on it).
    """
    h = hashlib.sha256()
    meta = {"version": CACHE_VERSION, "type": type(dataset).__name__, "name": dataset.name, "split": dataset.split,
            "classes": list(dataset.class_names), "image_size": image_size, "n": len(dataset),
            "label_mode": getattr(dataset, "label_mode", None)}
    h.update(json.dumps(meta, sort_keys=True).encode())
    h.update(np.ascontiguousarray(dataset.labels).tobytes())
    if isinstance(dataset, FileImageDataset):
        for path in dataset.paths:
            try:
                st = os.stat(path)
                h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(f"{path}\0missing\n".encode())  # unreadable files are substituted, as when training
        if dataset.boxes is not None:
            h.update(dataset.boxes.tobytes())
        for key in sorted(dataset.arrays):
            h.update(key.encode() + np.ascontiguousarray(dataset.arrays[key]).tobytes())
    else:
        # Generated data sets (synthetic): the generator's settings and per-sample draws decide.
        for attr in ("seed", "image_size", "config", "_stream"):
            h.update(repr(getattr(dataset, attr, None)).encode())
        for attr in ("mixtures", "votes"):
            value = getattr(dataset, attr, None)
            if value is not None:
                h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


def open_cache(dataset: FERDataset, folder: str | os.PathLike, image_size: int, *, workers: int = 0,
               progress: bool = True) -> CachedImages:
    """The cached images of ``dataset`` in ``folder``, decoding them first if needed.

    Args:
        dataset: the data set to cache; its ``transform`` is not applied (the cache holds
            the decoded images, augmentation happens on batches).
        folder: where cache files live (created if absent).
        image_size: the training input side.
        workers: decoding processes (0 decodes in this process).
        progress: show a progress bar while decoding.

    Returns:
        The memory-mapped images with the labels and per-sample extras.

    Raises:
        ValueError: the data set is empty, or a cache file is corrupt (delete it to rebuild).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    digest = fingerprint(dataset, image_size)
    stem = f"{dataset.name}-{dataset.split}"
    path = folder / f"{stem}-{digest[:20]}.npy"
    if not path.exists():
        for stale in folder.glob(f"{stem}-*.npy"):
            if len(stale.stem) == len(path.stem):
                stale.unlink()
        _build(dataset, path, stored_side(dataset, image_size), workers=workers, progress=progress)
    # Copy-on-write mapping: writable for torch, never written back to the file.
    array = np.load(path, mmap_mode="c")
    if array.ndim != 4 or array.dtype != np.uint8 or array.shape[0] != len(dataset) or array.shape[1] not in (1, 3):
        raise ValueError(f"{path} holds a {array.dtype} array of shape {array.shape}, expected uint8 "
                         f"({len(dataset)}, 1 or 3, side, side); delete it and it will be rebuilt")
    return CachedImages(torch.from_numpy(array), torch.as_tensor(dataset.labels, dtype=torch.int64),
                        _extras(dataset), path, digest)


def _decoder_view(dataset: FERDataset) -> FERDataset:
    """A shallow copy without the transform: items hold the decoded RGB PIL image."""
    view = copy.copy(dataset)
    view.transform = None
    return view


class _Decoded(Dataset):
    """Items as uint8 arrays (3, s, s): decoded, RGB, resized to the stored side if needed."""

    def __init__(self, dataset: FERDataset, side: int) -> None:
        self.view = _decoder_view(dataset)
        self.resize = ResizeSquare(side)

    def __len__(self) -> int:
        return len(self.view)

    def __getitem__(self, index: int) -> np.ndarray:
        img: Image.Image = self.resize(to_rgb(self.view[index]["image"]))
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def _stack(items: list[np.ndarray]) -> np.ndarray:
    return np.stack(items)


def _build(dataset: FERDataset, path: Path, side: int, *, workers: int, progress: bool) -> None:
    """Decode every image into ``path`` through a temporary file renamed into place."""
    n = len(dataset)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    rgb = open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 3, side, side))
    loader = DataLoader(_Decoded(dataset, side), batch_size=256, num_workers=workers, collate_fn=_stack)
    grey, row = True, 0
    try:
        for chunk in tqdm(loader, desc=f"decoding {dataset.name} {dataset.split} once", unit="batch",
                          disable=not progress, leave=False):
            rgb[row: row + len(chunk)] = chunk
            grey = grey and bool((chunk[:, 0] == chunk[:, 1]).all() and (chunk[:, 0] == chunk[:, 2]).all())
            row += len(chunk)
        assert row == n, f"decoded {row} images of {n}"
        rgb.flush()
        if grey:
            out = open_memmap(path.with_name(path.name + ".grey.tmp.npy"), mode="w+", dtype=np.uint8,
                              shape=(n, 1, side, side))
            for start in range(0, n, 4096):
                out[start: start + 4096] = rgb[start: start + 4096, :1]
            out.flush()
            del out
            os.replace(path.with_name(path.name + ".grey.tmp.npy"), path)
            del rgb
        else:
            del rgb
            os.replace(tmp, path)
    finally:
        for leftover in (tmp, path.with_name(path.name + ".grey.tmp.npy")):
            if leftover.exists():
                leftover.unlink()


def _extras(dataset: FERDataset) -> dict[str, torch.Tensor]:
    """Per-sample extras of every sample, stacked once: (N, ...) tensors by key."""
    if len(dataset) == 0:
        return {}
    rows = [dataset.sample_extras(i) for i in range(len(dataset))]
    return {key: torch.stack([r[key] for r in rows]) for key in rows[0]}


def cache_summary(cache: CachedImages) -> dict:
    """Plain facts about a cache, for logs."""
    n, c, s, _ = cache.images.shape
    return {"path": str(cache.path), "images": n, "channels": c, "side": s,
            "megabytes": round(cache.path.stat().st_size / 2**20, 1), "fingerprint": cache.fingerprint[:20]}


__all__ = ["CACHE_VERSION", "CachedImages", "cache_summary", "fingerprint", "open_cache", "stored_side"]
