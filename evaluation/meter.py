"""A thin stateful wrapper that gathers batches and scores them with the pure functions.

For validation loops::

    meter = EvaluationMeter(class_names)
    for batch in loader:
        meter.update(result["probs"], batch["label"], votes=batch.get("votes"))
    metrics = meter.compute()

Tensors are accepted (moved to the CPU and detached); nothing is computed until
:meth:`EvaluationMeter.compute`, which concatenates the batches and calls
:func:`evaluation.summary.compute_metrics`.
"""
from __future__ import annotations

import numpy as np

from evaluation.calibration_error import DEFAULT_NUM_BINS
from evaluation.predictions import Predictions
from evaluation.summary import DEFAULT_COVERAGES, Metrics, compute_metrics

_FIELDS = ("probs", "labels", "votes", "samples", "loc", "scale", "epistemic_mi")
# Axis along which batches of each field are concatenated: samples are (S, B, K).
_BATCH_AXIS = {"samples": 1}


def to_numpy(value) -> np.ndarray:
    """A NumPy array from an array, a list or a (possibly CUDA, possibly grad-tracking) tensor."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


class EvaluationMeter:
    """Accumulates predictions over batches; :meth:`compute` returns the metrics mapping.

    Args:
        class_names: K class names for the per-class entries (``class_<k>`` when empty).
        num_bins: Bins for the calibration errors.
        coverages: Coverages for selective accuracy.
    """

    def __init__(self, class_names: tuple[str, ...] | list[str] = (), num_bins: int = DEFAULT_NUM_BINS,
                 coverages: tuple[float, ...] = DEFAULT_COVERAGES) -> None:
        self.class_names = tuple(class_names)
        self.num_bins = num_bins
        self.coverages = coverages
        self.reset()

    def reset(self) -> None:
        """Forget every batch."""
        self._batches: dict[str, list[np.ndarray]] = {name: [] for name in _FIELDS}

    def update(self, probs, labels, votes=None, samples=None, loc=None, scale=None, epistemic_mi=None) -> None:
        """Add one batch: ``probs`` (B, K), ``labels`` (B,), optional ``votes``/``loc``/``scale``
        (B, K), ``samples`` (S, B, K) and ``epistemic_mi`` (B,). An optional field must be given for
        every batch or none."""
        given = {"probs": probs, "labels": labels, "votes": votes, "samples": samples, "loc": loc, "scale": scale,
                 "epistemic_mi": epistemic_mi}
        if self._batches["probs"]:
            for name, value in given.items():
                if (value is None) != (not self._batches[name]):
                    raise ValueError(f"{name}: given for some batches but not others; pass it for every batch or none")
        for name, value in given.items():
            if value is not None:
                self._batches[name].append(to_numpy(value))

    def predictions(self) -> Predictions:
        """All batches so far as validated :class:`Predictions`."""
        if not self._batches["probs"]:
            raise ValueError("no batches: call update() before compute()")
        arrays = {name: np.concatenate(parts, axis=_BATCH_AXIS.get(name, 0))
                  for name, parts in self._batches.items() if parts}
        return Predictions(**arrays, class_names=self.class_names)

    def compute(self) -> Metrics:
        """The metrics of all batches so far (see :func:`evaluation.summary.compute_metrics`)."""
        return compute_metrics(self.predictions(), self.num_bins, self.coverages)
