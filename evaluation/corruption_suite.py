"""The corruption suite: a face data set under each corruption and severity, and what each score does.

Predictions of each condition are cached as ``<corruption>_s<severity>.npz`` (``clean_s0.npz``
for the uncorrupted images, passed through the same resize) so the network runs once per
image and condition, and ``--corruption-predictions DIR`` re-scores them without the model.

Keys written to ``metrics.json``, with ``<c>`` a corruption or ``mean`` (the average over
corruptions) and ``<s>`` a severity 0-5 (0 = clean):

* ``corruption/<c>/<s>/accuracy``, ``corruption/<c>/<s>/ece``, ``corruption/<c>/<s>/<score>`` (mean score);
* ``corruption_monotonic/<score>``: 1 when the mean over corruptions rises at every severity step
  (0 to 5), else 0; ``corruption_monotonic/<c>/<score>`` the same per corruption;
* ``corruption_rise/<score>``: mean score at severity 5 minus the clean mean.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.calibration_error import DEFAULT_NUM_BINS, ece
from evaluation.corruptions import CORRUPTIONS, SEVERITIES, CorruptedTransform
from evaluation.metrics import accuracy
from evaluation.ood import load_extra_scores, uncertainty_score_table
from evaluation.predictions import Predictions, load_predictions, save_predictions

CLEAN = "clean"
_FILE = re.compile(r"^(?P<name>[a-z_]+)_s(?P<severity>[0-5])\.npz$")

Condition = tuple[str, int]


def cache_path(directory: str | os.PathLike, name: str, severity: int) -> Path:
    return Path(directory) / f"{name}_s{severity}.npz"


def run_corruption_suite(
    predictor: Any,
    data_root: str | os.PathLike | None,
    split: str,
    cache_dir: str | os.PathLike,
    dataset: str | None = None,
    corruptions: Sequence[str] = tuple(CORRUPTIONS),
    severities: Sequence[int] = SEVERITIES,
    size: int | None = None,
    num_samples: int = 30,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> dict[Condition, Predictions]:
    """Predict ``split`` clean and under every corruption and severity, reusing cached files.

    Args:
        predictor: A :class:`bayes_fer.predictive.Predictor`.
        data_root: The dataset's root folder.
        split: Split to corrupt, e.g. ``"test"``.
        cache_dir: Folder of the per-condition ``.npz`` files (created; existing files are reused,
            so delete it after changing the model, split or size).
        dataset: Dataset name; the checkpoint's by default.
        corruptions: Names from :data:`evaluation.corruptions.CORRUPTIONS`.
        severities: Severities 1-5 to run.
        size: A seeded subset of this many images (all when ``None``), the same in every condition.
        num_samples: Monte-Carlo draws per image.
        batch_size: Images per forward pass.
        seed: Seeds the subset, the corruptions' randomness and the draws.
        progress: Show progress bars.

    Returns:
        ``(name, severity)`` -> predictions, with ``("clean", 0)`` first.
    """
    import torch

    from bayes_fer.data import load_dataset
    from evaluation.inference import collect_predictions

    unknown = [name for name in corruptions if name not in CORRUPTIONS]
    if unknown:
        raise ValueError(f"corruptions: expected names among {', '.join(CORRUPTIONS)}, found {unknown}")
    config = predictor.data_config
    name = dataset or config["dataset"]
    if name is None:
        raise ValueError("the checkpoint does not name its dataset; pass --dataset")
    cache_dir = Path(cache_dir)
    conditions: list[Condition] = [(CLEAN, 0)] + [(c, s) for c in corruptions for s in severities]
    results: dict[Condition, Predictions] = {}
    extra = {} if size is None else {"size": size, "seed": seed}
    for corruption, severity in conditions:
        path = cache_path(cache_dir, corruption, severity)
        if path.is_file():
            results[(corruption, severity)] = load_predictions(path)
            continue
        transform = CorruptedTransform(corruption, severity, predictor.image_size,
                                       predictor.eval_transform, seed=seed)
        data = load_dataset(name, data_root, split, transform=transform, label_mode=config["label_mode"], **extra)
        torch.manual_seed(seed)
        predictions = collect_predictions(predictor, data, num_samples, batch_size, 0, progress,
                                          description=f"{corruption} s{severity}").predictions
        save_predictions(path, predictions)
        results[(corruption, severity)] = predictions
    return results


def load_corruption_predictions(directory: str | os.PathLike) -> dict[Condition, Predictions]:
    """Read every ``<corruption>_s<severity>.npz`` of a cache folder; ``clean_s0.npz`` is required."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"corruption predictions folder not found: {directory}")
    found: dict[Condition, Predictions] = {}
    for path in sorted(directory.iterdir()):
        match = _FILE.match(path.name)
        if match and (match["name"] == CLEAN or match["name"] in CORRUPTIONS):
            found[(match["name"], int(match["severity"]))] = load_predictions(path)
    if (CLEAN, 0) not in found:
        raise ValueError(f"{directory}: expected clean_s0.npz (the uncorrupted predictions) beside the "
                         f"<corruption>_s<severity>.npz files; found {sorted(p.name for p in directory.iterdir())}")
    return found


def rises_monotonically(values: Sequence[float]) -> bool:
    """True when every value is strictly larger than the one before."""
    values = np.asarray(values, dtype=np.float64)
    return bool(values.shape[0] > 1 and np.all(np.diff(values) > 0))


def corruption_table(
    results: dict[Condition, Predictions],
    calibrator: Any | None = None,
    num_bins: int = DEFAULT_NUM_BINS,
    extra_scores: dict[Condition, dict[str, np.ndarray]] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Accuracy, ECE and the mean of each score per corruption and severity (clean at severity 0).

    Args:
        results: ``(name, severity)`` -> predictions, holding ``("clean", 0)``.
        calibrator: A fitted conformal calibrator, for the ``set_size`` score.
        num_bins: ECE bins.
        extra_scores: Optional score arrays per condition (see :func:`evaluation.ood.uncertainty_score_table`).

    Returns:
        corruption -> metric -> values (6,) over severities 0-5 (NaN where not run), plus the
        ``"mean"`` corruption averaging the others.
    """
    if (CLEAN, 0) not in results:
        raise ValueError("corruption results: expected the clean predictions under ('clean', 0)")

    def summary(condition: Condition) -> dict[str, float]:
        predictions = results[condition]
        scores = uncertainty_score_table(predictions, (extra_scores or {}).get(condition), calibrator)
        row = {"accuracy": accuracy(predictions.probs, predictions.labels),
               "ece": ece(predictions.probs, predictions.labels, num_bins)}
        row.update({name: float(values.mean()) for name, values in scores.items()})
        return row

    clean = summary((CLEAN, 0))
    names = sorted({name for name, _ in results if name != CLEAN}, key=list(CORRUPTIONS).index)
    table: dict[str, dict[str, np.ndarray]] = {}
    for corruption in names:
        rows = {metric: np.full(len(SEVERITIES) + 1, np.nan) for metric in clean}
        for metric, value in clean.items():
            rows[metric][0] = value
        for severity in SEVERITIES:
            if (corruption, severity) in results:
                for metric, value in summary((corruption, severity)).items():
                    if metric in rows:
                        rows[metric][severity] = value
        table[corruption] = rows
    if table:
        table["mean"] = {metric: np.mean([table[c][metric] for c in names], axis=0) for metric in clean}
    return table


def corruption_metrics(table: dict[str, dict[str, np.ndarray]]) -> dict[str, float | int | None]:
    """The ``metrics.json`` keys of the module docstring, from :func:`corruption_table`."""
    out: dict[str, float | int | None] = {}
    for corruption, rows in table.items():
        for metric, values in rows.items():
            for severity, value in enumerate(values):
                out[f"corruption/{corruption}/{severity}/{metric}"] = None if np.isnan(value) else float(value)
            if metric in ("accuracy", "ece"):
                continue
            complete = not np.isnan(values).any()
            key = f"corruption_monotonic/{metric}" if corruption == "mean" else \
                f"corruption_monotonic/{corruption}/{metric}"
            out[key] = int(rises_monotonically(values)) if complete else None
            if corruption == "mean":
                out[f"corruption_rise/{metric}"] = float(values[-1] - values[0]) if complete else None
    return out


def load_condition_extras(directory: str | os.PathLike,
                          conditions: Sequence[Condition]) -> dict[Condition, dict[str, np.ndarray]]:
    """Optional score arrays (e.g. ``epistemic_mi``) stored in each condition's cache file."""
    return {c: load_extra_scores(cache_path(directory, *c)) for c in conditions
            if cache_path(directory, *c).is_file()}
