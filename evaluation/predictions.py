"""A model's predictions on a split, validated once, and their ``.npz`` file format.

The file holds ``probs`` (N, K) and ``labels`` (N,), and optionally ``votes`` (N, K),
``samples`` (S, N, K) Monte-Carlo class probabilities, ``loc`` and ``scale`` (N, K) of the
latent intensities, ``epistemic_mi`` (N,) (the Bayesian head's share of the mutual
information) and ``class_names`` (K,) strings. Analyses can then be re-run without the model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evaluation._checks import (
    as_finite_array,
    check_labels,
    check_probs,
    check_same_shape,
    check_samples,
    check_votes,
)

REQUIRED_ARRAYS = ("probs", "labels")
OPTIONAL_ARRAYS = ("votes", "samples", "loc", "scale", "epistemic_mi", "class_names")


def default_class_names(num_classes: int) -> tuple[str, ...]:
    return tuple(f"class_{k}" for k in range(num_classes))


@dataclass(frozen=True)
class Predictions:
    """Validated predictions for N examples over K classes.

    Attributes:
        probs: Predictive class probabilities (N, K).
        labels: True class indices (N,).
        votes: Annotator vote counts (N, K), e.g. FER+.
        samples: Class probabilities per Monte-Carlo draw (S, N, K).
        loc: Means of the latent intensities (N, K).
        scale: Standard deviations of the latent intensities (N, K); zeros for a deterministic head.
        epistemic_mi: The share of the mutual information from a Bayesian head's weights (N,),
            nats; only models with a Bayesian head have one, since point-estimate weights carry
            no epistemic uncertainty.
        class_names: K names; ``class_0``... when not given.
    """

    probs: np.ndarray
    labels: np.ndarray
    votes: np.ndarray | None = None
    samples: np.ndarray | None = None
    loc: np.ndarray | None = None
    scale: np.ndarray | None = None
    epistemic_mi: np.ndarray | None = None
    class_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        probs = check_probs(self.probs)
        n, k = probs.shape
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "probs", probs)
        set_(self, "labels", check_labels(self.labels, k, n))
        if self.votes is not None:
            set_(self, "votes", check_votes(self.votes, n, k))
        if self.samples is not None:
            samples = check_samples(self.samples)
            check_same_shape(samples, (None, n, k), "samples")
            set_(self, "samples", samples)
        for name in ("loc", "scale"):
            value = getattr(self, name)
            if value is not None:
                array = as_finite_array(value, name, 2, "(N, K)")
                check_same_shape(array, (n, k), name)
                set_(self, name, array)
        if self.epistemic_mi is not None:
            mi = as_finite_array(self.epistemic_mi, "epistemic_mi", 1, "(N,)")
            check_same_shape(mi, (n,), "epistemic_mi")
            if (mi < 0).any():
                raise ValueError(f"epistemic_mi: expected mutual information >= 0 nats, found {mi.min():.4g}")
            set_(self, "epistemic_mi", mi)
        if self.scale is not None and (self.scale < 0).any():
            raise ValueError(f"scale: expected standard deviations >= 0, found {self.scale.min():.4g}")
        if (self.loc is None) != (self.scale is None):
            raise ValueError("loc and scale: expected both or neither, found only "
                             f"{'loc' if self.scale is None else 'scale'}")
        names = tuple(str(c) for c in self.class_names) or default_class_names(k)
        if len(names) != k:
            raise ValueError(f"class_names: expected {k} names to match probs (K = {k}), found {len(names)}")
        if len(set(names)) != k:
            raise ValueError(f"class_names: expected distinct names, found {list(names)}")
        set_(self, "class_names", names)

    @property
    def num_examples(self) -> int:
        return int(self.probs.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.probs.shape[1])


def save_predictions(path: str | os.PathLike, predictions: Predictions) -> Path:
    """Write ``predictions`` to an uncompressed ``.npz`` file readable by :func:`load_predictions`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"probs": predictions.probs, "labels": predictions.labels,
              "class_names": np.asarray(predictions.class_names, dtype=str)}
    for name in ("votes", "samples", "loc", "scale", "epistemic_mi"):
        if getattr(predictions, name) is not None:
            arrays[name] = getattr(predictions, name)
    np.savez(path, **arrays)
    return path


def load_predictions(path: str | os.PathLike) -> Predictions:
    """Read and validate a predictions ``.npz`` file.

    Args:
        path: The file, holding at least ``probs`` (N, K) and ``labels`` (N,).

    Returns:
        The validated :class:`Predictions`.

    Raises:
        FileNotFoundError: No file at ``path``.
        ValueError: A required array is missing, or an array fails validation.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file not found: {path}")
    with np.load(path, allow_pickle=False) as data:
        found = sorted(data.files)
        missing = [name for name in REQUIRED_ARRAYS if name not in found]
        if missing:
            raise ValueError(
                f"{path}: missing array(s) {', '.join(missing)}; found {', '.join(found) or 'none'}. "
                "Expected probs (N, K) and labels (N,), optionally votes, samples, loc, scale, epistemic_mi, "
                "class_names"
            )
        arrays = {name: data[name] for name in REQUIRED_ARRAYS + OPTIONAL_ARRAYS if name in found}
    names = arrays.pop("class_names", None)
    try:
        return Predictions(**arrays, class_names=() if names is None else tuple(np.atleast_1d(names).tolist()))
    except (ValueError, TypeError) as error:
        raise type(error)(f"{path}: {error}") from error
