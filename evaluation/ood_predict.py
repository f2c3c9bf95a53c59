"""A model's outputs on unlabelled (out-of-distribution) images, and their ``.npz`` file.

The file holds ``probs`` (N, K), and optionally ``samples`` (S, N, K), ``loc`` and ``scale``
(N, K), ``kind`` (N,) strings naming each image's source, and the score arrays of
:data:`evaluation.ood.EXTRA_SCORE_ARRAYS`. No labels: nothing in it is a face.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evaluation._checks import check_probs
from evaluation.ood import EXTRA_SCORE_ARRAYS

_OPTIONAL = ("samples", "loc", "scale") + EXTRA_SCORE_ARRAYS


@dataclass
class UnlabelledPredictions:
    """Outputs on N unlabelled images; fields as in :class:`evaluation.predictions.Predictions`.

    Attributes:
        probs: Class probabilities (N, K).
        samples: Monte-Carlo class probabilities (S, N, K).
        loc: Latent intensity means (N, K).
        scale: Latent intensity standard deviations (N, K).
        kind: The source of each image (N,), e.g. ``"perlin"`` or a folder name.
        extra: Named score arrays (N,), e.g. ``epistemic_mi``.
    """

    probs: np.ndarray
    samples: np.ndarray | None = None
    loc: np.ndarray | None = None
    scale: np.ndarray | None = None
    kind: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.probs = check_probs(self.probs)
        n = self.probs.shape[0]
        for name in ("loc", "scale"):
            value = getattr(self, name)
            if value is not None and np.shape(value) != self.probs.shape:
                raise ValueError(f"{name}: expected shape {self.probs.shape} to match probs, found {np.shape(value)}")
        if self.samples is not None and np.shape(self.samples)[1:] != self.probs.shape:
            raise ValueError(f"samples: expected shape (S, {n}, {self.probs.shape[1]}), found {np.shape(self.samples)}")
        self.kind = np.full(n, "ood") if self.kind is None else np.asarray(self.kind, dtype=str)
        if self.kind.shape != (n,):
            raise ValueError(f"kind: expected {n} names, found shape {self.kind.shape}")


def save_unlabelled(path: str | os.PathLike, predictions: UnlabelledPredictions) -> Path:
    """Write ``predictions`` as ``.npz`` readable by :func:`load_unlabelled`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"probs": predictions.probs, "kind": predictions.kind, **predictions.extra}
    for name in ("samples", "loc", "scale"):
        if getattr(predictions, name) is not None:
            arrays[name] = getattr(predictions, name)
    np.savez(path, **arrays)
    return path


def load_unlabelled(path: str | os.PathLike) -> UnlabelledPredictions:
    """Read a ``.npz`` with at least ``probs``; a labelled predictions file works too (labels unused)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"OOD predictions file not found: {path}")
    with np.load(path, allow_pickle=False) as data:
        if "probs" not in data.files:
            raise ValueError(f"{path}: expected an array 'probs' (N, K); found {', '.join(sorted(data.files))}")
        arrays = {name: data[name] for name in ("probs", "kind") + _OPTIONAL if name in data.files}
    extra = {name: arrays.pop(name) for name in EXTRA_SCORE_ARRAYS if name in arrays}
    try:
        return UnlabelledPredictions(**arrays, extra=extra)
    except (ValueError, TypeError) as error:
        raise type(error)(f"{path}: {error}") from error


def predict_images(
    predictor: Any,
    images: np.ndarray,
    kind: np.ndarray | None = None,
    num_samples: int = 30,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> UnlabelledPredictions:
    """Run ``predictor`` over uint8 images (N, H, W, 3) with its own evaluation transform.

    Args:
        predictor: A :class:`bayes_fer.predictive.Predictor`.
        images: The images.
        kind: Source name per image.
        num_samples: Monte-Carlo draws per image.
        batch_size: Images per forward pass.
        seed: Seeds the draws.
        progress: Show a progress bar.
    """
    import torch
    from tqdm import tqdm

    torch.manual_seed(seed)
    fields: dict[str, list] = {name: [] for name in ("probs", "samples", "loc", "scale") + EXTRA_SCORE_ARRAYS}
    starts = range(0, images.shape[0], batch_size)
    for start in tqdm(starts, desc="ood", disable=not progress, unit="batch"):
        chunk = torch.from_numpy(images[start:start + batch_size]).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
        batch = torch.stack([predictor.preprocess(image) for image in chunk])
        result = predictor.predict_batch(batch, num_samples=num_samples, return_samples=True)
        for name in fields:
            value = getattr(result, name, None)
            if value is not None:
                fields[name].append(value.detach().cpu().numpy())
    merged = {name: np.concatenate(parts, axis=1 if name == "samples" else 0) for name, parts in fields.items() if parts}
    extra = {name: merged.pop(name) for name in EXTRA_SCORE_ARRAYS if name in merged}
    return UnlabelledPredictions(**merged, kind=kind, extra=extra)
