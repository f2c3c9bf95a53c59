"""Run a trained model over a dataset split and gather its :class:`Predictions`.

Torch and ``bayes_fer`` are imported inside the functions, so the metrics, plots and
predictions-file mode never load a model stack. The contract with ``bayes_fer``:

* ``Predictor.from_checkpoint(path, device=...)`` with attributes ``class_names``,
  ``data_config`` (``"dataset"``, ``"label_mode"``...) and ``eval_transform``;
* ``predictor.predict_batch(images, num_samples=S, return_samples=True)`` on a normalised
  (B, 3, H, W) batch, returning ``probs``, ``loc``, ``scale`` (B, K) and ``samples``
  (S, B, K) or ``None``, as a mapping or as attributes;
* ``load_dataset(name, root, split, transform=..., label_mode=...[, size=...])`` yielding
  dicts with ``"image"``, ``"label"`` and optionally ``"votes"``, with a ``class_names``
  attribute (``root`` is ``None`` for the synthetic dataset).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evaluation.meter import EvaluationMeter
from evaluation.predictions import Predictions


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
) -> Predictions:
    """Predict every item of ``dataset`` in order.

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
        The :class:`Predictions`, with ``votes``, ``samples``, ``loc`` and ``scale`` when
        the dataset and the predictor provide them.
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    class_names = tuple(predictor.class_names)
    dataset_names = getattr(dataset, "class_names", None)
    if dataset_names is not None and tuple(dataset_names) != class_names:
        raise ValueError(f"the dataset's classes {list(dataset_names)} differ from the checkpoint's "
                         f"{list(class_names)}; evaluate on a dataset with the classes the model was trained on")
    if len(dataset) == 0:
        raise ValueError("the dataset split is empty; check --data-root and --split")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    meter = EvaluationMeter(class_names)
    with torch.no_grad():
        for batch in tqdm(loader, desc=description, disable=not progress, unit="batch"):
            if reference != "votes" and reference not in batch:
                raise ValueError(f"the dataset's samples carry no {reference!r} to compare with; only the synthetic "
                                 f"faces carry their true 'mixture'; use --reference votes")
            result = predictor.predict_batch(batch["image"], num_samples=num_samples, return_samples=True)
            meter.update(
                _field(result, "probs"), batch["label"], votes=batch.get(reference),
                samples=_field(result, "samples"), loc=_field(result, "loc"), scale=_field(result, "scale"),
            )
    return meter.predictions()


def load_predictor(checkpoint: str | os.PathLike, device: str = "auto") -> Any:
    """``bayes_fer.predictive.Predictor.from_checkpoint(checkpoint, device=device)``, after checking the file."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    from bayes_fer.predictive import Predictor

    return Predictor.from_checkpoint(path, device=device)


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
) -> Predictions:
    """Load ``split`` of a dataset with the predictor's evaluation transform and predict it.

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

    Returns:
        The :class:`Predictions` of the split.
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
    extra = {} if size is None else {"size": size}
    data = load_dataset(name, root, split, transform=predictor.eval_transform, label_mode=config["label_mode"], **extra)
    torch.manual_seed(seed)
    return collect_predictions(predictor, data, num_samples, batch_size, num_workers, progress,
                               description=f"{name}/{split}", reference=reference)
