"""Run a trained model over a dataset split and gather its :class:`Predictions`.

Torch and ``bayes_fer`` are imported inside the functions, so the metrics, plots and
predictions-file mode never load a model stack. The contract with ``bayes_fer``:

* ``Predictor.from_checkpoint(path, device=...)`` with attributes ``class_names``,
  ``data_config`` (``"dataset"``, ``"label_mode"``...) and ``eval_transform``;
* ``predictor.predict_batch(images, num_samples=S, return_samples=True)`` on a normalised
  (B, 3, H, W) batch, returning ``probs``, ``loc``, ``scale`` (B, K), ``samples`` (S, B, K)
  or ``None``, and optionally ``epistemic_mi`` (B,) (models with a Bayesian head), as a
  mapping or as attributes;
* ``load_dataset(name, root, split, transform=..., label_mode=...[, size=...][, class_map=...])``
  yielding dicts with ``"image"``, ``"label"``, ``"index"`` and optionally ``"votes"``, with
  a ``class_names`` attribute (``root`` is ``None`` for the synthetic dataset).

Evaluation never substitutes: bayes-fer's datasets answer an unreadable image with the next
readable one (so that training epochs keep going); here a sample whose ``"index"`` is not
the one asked for is such a stand-in, and it is left out and its file named instead.

A data set whose classes differ from the model's is matched by name (synonyms such as
``happy`` understood, :func:`bayes_fer.data.labels.match_classes`): labels are re-indexed
into the model's classes, examples of classes the model lacks are left out and counted.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.cross_dataset import EvaluationScope
from evaluation.meter import EvaluationMeter
from evaluation.predictions import Predictions

#: The largest --num-samples evaluation takes: it keeps every draw (S x N x K values) for the
#: mutual information and the uncertainty metrics.
MAX_EVALUATION_SAMPLES = 1000


@dataclass(frozen=True)
class SplitPredictions:
    """A split's predictions, in the model's class order, and what the evaluation covered."""

    predictions: Predictions
    scope: EvaluationScope


class _NoStandIns:
    """A dataset view that marks stand-ins for unreadable images instead of returning them."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        sample = self.dataset[index]
        if "index" in sample and int(sample["index"]) != index:
            return {"unreadable": index}
        return sample


def _collate(samples: list[dict]) -> dict:
    from torch.utils.data import default_collate

    kept = [s for s in samples if "unreadable" not in s]
    batch = default_collate(kept) if kept else {}
    batch["unreadable"] = [s["unreadable"] for s in samples if "unreadable" in s]
    return batch


def _field(result: Any, name: str):
    """``result[name]`` for a mapping, ``result.name`` otherwise; ``None`` when absent."""
    if isinstance(result, Mapping):
        return result.get(name)
    return getattr(result, name, None)


def collect_predictions(
    predictor: Any,
    dataset: Any,
    num_samples: int,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
    description: str = "predict",
    reference: str = "votes",
) -> SplitPredictions:
    """Predict every readable item of ``dataset`` in order, in the model's class order.

    Args:
        predictor: Has ``class_names`` and ``predict_batch`` as in the module docstring.
        dataset: A map-style dataset of dicts with ``"image"``, ``"label"`` and optionally ``"votes"``.
        num_samples: Monte-Carlo draws per image.
        batch_size: Images per forward pass.
        num_workers: DataLoader worker processes.
        progress: Show a tqdm progress bar on stderr.
        description: The progress bar's label.
        reference: The sample field the distribution-level metrics compare with: ``"votes"``
            (annotator counts) or ``"mixture"`` (the synthetic faces' true emotion mixtures).

    Returns:
        The :class:`Predictions` over the model's classes, with ``votes``, ``samples``,
        ``loc``, ``scale`` and ``epistemic_mi`` when the dataset and the predictor provide
        them, and the :class:`EvaluationScope`: unreadable files left out, and how the
        dataset's classes were matched to the model's.

    Raises:
        ValueError: the split is empty, no example is left to score, or the samples lack
            the ``reference`` field.
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    class_names = tuple(predictor.class_names)
    dataset_names = tuple(getattr(dataset, "class_names", None) or class_names)
    if len(dataset) == 0:
        raise ValueError("the dataset split is empty; check --data-root and --split")
    to_model, scope = _match(dataset_names, class_names)
    loader = DataLoader(_NoStandIns(dataset), batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=_collate)
    meter = EvaluationMeter(class_names)
    unreadable: list[int] = []
    unknown = scored = 0
    drop_votes = bool(scope.unknown_to_model)  # votes for classes the model lacks have nowhere to go
    with torch.no_grad():
        for batch in tqdm(loader, desc=description, disable=not progress, unit="batch"):
            unreadable += batch["unreadable"]
            if "image" not in batch:
                continue
            if reference != "votes" and reference not in batch:
                raise ValueError(f"the dataset's samples carry no {reference!r} to compare with; only the synthetic "
                                 f"faces carry their true 'mixture'; use --reference votes")
            labels = torch.as_tensor(to_model)[batch["label"]]
            keep = labels >= 0
            unknown += int((~keep).sum())
            if not keep.any():
                continue
            votes = None if drop_votes else batch.get(reference)
            if votes is not None:
                # (B, K_data) -> (B, K_model): every data class has a model column here
                votes = votes.new_zeros(len(votes), len(class_names)).index_copy_(1, torch.as_tensor(to_model), votes)
            scored += int(keep.sum())
            result = predictor.predict_batch(batch["image"][keep], num_samples=num_samples, return_samples=True)
            meter.update(
                _field(result, "probs"), labels[keep], votes=None if votes is None else votes[keep],
                samples=_field(result, "samples"), loc=_field(result, "loc"), scale=_field(result, "scale"),
                epistemic_mi=_field(result, "epistemic_mi"),
            )
    files = tuple(_source(dataset, i) for i in sorted(unreadable))
    scope = EvaluationScope(scope.data_classes, scope.shared, scope.missing_from_data, scope.unknown_to_model,
                            unknown, files, len(dataset))
    if not scored:
        raise ValueError(f"no example of {description} could be scored: {len(files)} unreadable, {unknown} of "
                         f"classes the model lacks ({', '.join(scope.unknown_to_model) or 'none'})")
    return SplitPredictions(meter.predictions(), scope)


def _source(dataset: Any, index: int) -> str:
    source = getattr(dataset, "source", None)
    return str(source(index)) if callable(source) else f"sample {index}"


def _match(dataset_names: Sequence[str], class_names: Sequence[str]) -> tuple[np.ndarray, EvaluationScope]:
    """Index map from the dataset's labels to the model's classes (-1: the model lacks it), and the scope."""
    if tuple(dataset_names) == tuple(class_names):
        return np.arange(len(class_names)), EvaluationScope()
    from bayes_fer.data.labels import match_classes

    match = match_classes(dataset_names, class_names)
    if not match.shared:
        raise ValueError(f"the dataset's classes {list(dataset_names)} share none with the model's "
                         f"{list(class_names)}; check --dataset and --class-map")
    scope = EvaluationScope(data_classes=tuple(dataset_names), shared=match.shared,
                            missing_from_data=match.missing_from_data, unknown_to_model=match.unknown_to_model)
    return np.asarray(match.data_to_model), scope


def load_predictor(checkpoint: str | os.PathLike, device: str = "auto") -> Any:
    """``bayes_fer.predictive.Predictor.from_checkpoint(checkpoint, device=device)``, after checking the file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is empty, truncated, not a checkpoint or does not fit its
            network (one message naming the file, from :mod:`bayes_fer.loading`).
    """
    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    from bayes_fer.loading import load_predictor as load

    return load(path, device)


def predict_split(
    predictor: Any,
    data_root: str | os.PathLike | None,
    split: str,
    dataset: str | None = None,
    num_samples: int = 30,
    batch_size: int = 64,
    num_workers: int = 0,
    seed: int = 0,
    size: int | None = None,
    progress: bool = True,
    reference: str = "votes",
    class_map: Mapping[str, str | None] | None = None,
) -> SplitPredictions:
    """Load ``split`` of a dataset with the predictor's evaluation transform and predict it.

    The dataset may have other classes than the model: they are matched by name (see the
    module docstring).

    Args:
        predictor: From :func:`load_predictor`.
        data_root: The dataset's root folder (``None`` for the synthetic dataset).
        split: ``"train"``, ``"valid"`` or ``"test"``.
        dataset: Dataset name; the checkpoint's ``data_config["dataset"]`` when ``None``.
        num_samples: Monte-Carlo draws per image.
        batch_size: Images per forward pass.
        num_workers: DataLoader worker processes.
        seed: Seeds the Monte-Carlo draws.
        size: Evaluate a seeded subset of this many examples (all when ``None``).
        progress: Show a progress bar.
        reference: ``"votes"`` or ``"mixture"``, as in :func:`collect_predictions`.
        class_map: Folder name to class name (``None`` skips the folder), for class-folder
            datasets whose folder names are not class names or common synonyms.

    Returns:
        The :class:`SplitPredictions` of the split.
    """
    import torch

    from bayes_fer.data import load_dataset

    root = None if data_root is None else Path(data_root)
    if root is not None and not root.exists():
        raise FileNotFoundError(f"data root not found: {root}")
    config = predictor.data_config
    name = dataset or config["dataset"]
    if name is None:
        raise ValueError("the checkpoint does not name its dataset; pass --dataset")
    extra: dict[str, Any] = {} if size is None else {"size": size}
    if class_map:
        extra["class_map"] = dict(class_map)
    # Another dataset than training's may lack the votes a "probability" label mode needs; labels are what is scored.
    label_mode = config["label_mode"] if name == config.get("dataset") else "majority"
    data = load_dataset(name, root, split, transform=predictor.eval_transform, label_mode=label_mode, **extra)
    torch.manual_seed(seed)
    return collect_predictions(predictor, data, num_samples, batch_size, num_workers, progress,
                               description=f"{name}/{split}", reference=reference)
