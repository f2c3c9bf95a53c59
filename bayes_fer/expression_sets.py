"""Conformal expression sets for predictors: calibrate on labelled faces, or load a saved calibrator.

    >>> from bayes_fer.data import load_dataset
    >>> predictor = Predictor.pretrained()
    >>> valid = load_dataset("ferplus", "data/FERPlus", "valid", transform=predictor.eval_transform)
    >>> predictor.calibrate_conformal(valid, alpha=0.1).save("calib.json")
    >>> predictor(["face.png"]).prediction_set()        # [["happiness", "surprise"]]
    >>> Predictor.pretrained(conformal="calib.json")   # later, without calibrating again

Calibration data is a dataset of ``{"image", "label"}`` dicts (images already through the
predictor's ``eval_transform``), a loader of such batches or of ``(images, labels)`` pairs, or
the ``.npz`` predictions ``python -m evaluation.calibration`` writes (``probs``, ``labels``,
``class_names``). The calibration faces must be exchangeable with the faces the sets are asked
of (same population, same preprocessing, same ``class_prior`` and about the same number of
Monte-Carlo draws), and must not have been trained on; the coverage guarantee rests on that.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from bayes_fer.conformal import ConformalCalibrator

if TYPE_CHECKING:
    from bayes_fer.results import PredictionResult


def as_calibrator(conformal: ConformalCalibrator | str | os.PathLike | None,
                  class_names: Sequence[str]) -> ConformalCalibrator | None:
    """``conformal`` itself, or the calibrator saved at that path, checked against the model's classes.

    Raises:
        FileNotFoundError: no file at the path.
        ValueError: the file is not a calibrator, or it was calibrated on other classes.
        TypeError: ``conformal`` is neither a calibrator, a path nor ``None``.
    """
    if conformal is None:
        return None
    if isinstance(conformal, (str, os.PathLike)):
        conformal = ConformalCalibrator.load(conformal)
    if not isinstance(conformal, ConformalCalibrator):
        raise TypeError(f"conformal: expected a ConformalCalibrator or the path of one saved as JSON, found "
                        f"{type(conformal).__name__}")
    conformal.check_class_names(class_names)
    return conformal


def _split_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, dict) and "image" in batch and "label" in batch:
        return batch["image"], torch.as_tensor(batch["label"])
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], torch.as_tensor(batch[1])
    raise TypeError(f"calibration data: expected batches of {{'image', 'label'}} dicts or (images, labels) pairs, "
                    f"found {type(batch).__name__}")


def _check_data_classes(data: Any, class_names: Sequence[str]) -> None:
    names = getattr(data, "class_names", None) or getattr(getattr(data, "dataset", None), "class_names", None)
    if names is not None and list(names) != list(class_names):
        raise ValueError(f"calibration data: its classes {list(names)} are not the model's {list(class_names)} in "
                         "the same order; calibrate on a split of the data set the model was trained on")


def _saved_outputs(path: Path, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    if path.suffix == ".json":
        raise ValueError(f"{path} is a saved calibrator, not validation data; attach it with "
                         f"Predictor(..., conformal={str(path)!r}) or predictor.conformal = {str(path)!r}")
    if not path.is_file():
        raise FileNotFoundError(f"calibration predictions file not found: {path}")
    with np.load(path, allow_pickle=False) as saved:
        missing = [name for name in ("probs", "labels") if name not in saved.files]
        if missing:
            raise ValueError(f"{path}: missing array(s) {', '.join(missing)}; expected the probs (N, K) and labels "
                             "(N,) of a labelled validation split, as python -m evaluation.calibration writes them")
        probs, labels = saved["probs"], saved["labels"]
        names = saved["class_names"].tolist() if "class_names" in saved.files else None
    if names is not None and list(names) != list(class_names):
        raise ValueError(f"{path}: predictions over the classes {names}, but the model has {list(class_names)}; "
                         "calibrate on this model's predictions")
    return probs, labels


def labelled_outputs(predictor: Any, data: Any, num_samples: int = 100,
                     batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Predicted probabilities (N, K) and true labels (N,) of labelled calibration faces.

    Args:
        predictor: Has ``class_names`` and ``predict_batch(images, num_samples)``.
        data: A dataset, a loader (any iterable of batches), or the path of a predictions ``.npz``.
        num_samples: Monte-Carlo draws per face, as at prediction time.
        batch_size: Faces per network call, for a dataset.
    """
    if isinstance(data, (str, os.PathLike)):
        return _saved_outputs(Path(data), predictor.class_names)
    _check_data_classes(data, predictor.class_names)
    if not isinstance(data, Iterable):  # a map-style dataset of single faces; loaders and lists are batches
        from torch.utils.data import DataLoader

        data = DataLoader(data, batch_size=batch_size, shuffle=False)
    probs, labels = [], []
    for batch in data:
        images, y = _split_batch(batch)
        probs.append(predictor.predict_batch(images, num_samples).probs.double().numpy())
        labels.append(y.numpy())
    if not probs:
        raise ValueError("calibration data: no faces; pass a labelled validation split")
    return np.concatenate(probs), np.concatenate(labels)


class ConformalSets:
    """Conformal expression sets for a predictor with ``class_names`` and ``predict_batch``.

    The calibrator attached (``conformal``) travels with every result the predictor returns,
    which then answers ``prediction_set(alpha)`` and reads its readout from the set.
    """

    _conformal: ConformalCalibrator | None = None

    @property
    def conformal(self) -> ConformalCalibrator | None:
        """The attached calibrator; assign a :class:`ConformalCalibrator`, the path of a saved one, or ``None``."""
        return self._conformal

    @conformal.setter
    def conformal(self, value: ConformalCalibrator | str | os.PathLike | None) -> None:
        self._conformal = as_calibrator(value, self.class_names)

    def calibrate_conformal(self, data: Any, alpha: float = 0.1, score: str = "lac", mondrian: bool = False,
                            randomized: bool = False, num_samples: int = 100, batch_size: int = 64,
                            seed: int = 0) -> ConformalCalibrator:
        """Fit a split-conformal calibrator on labelled validation faces and attach it.

        Args:
            data: A dataset, a loader or a predictions ``.npz`` (see the module docstring).
            alpha: Default miscoverage level of the sets (any level in the calibrated range can
                be asked later).
            score: ``"lac"`` (the default: a class is in the set when its probability passes one
                calibrated threshold, the smallest sets on average), ``"aps"`` or ``"raps"``.
            mondrian: One threshold per class, so that rare expressions are covered too.
            randomized: Randomized APS / RAPS, exact rather than conservative coverage, at the
                price of a face's set depending on a draw; off so that a face keeps its set.
            num_samples: Monte-Carlo draws per face; use the number you will predict with.
            batch_size: Faces per network call.
            seed: Seeds the calibrator's uniforms.

        Returns:
            The fitted calibrator (``.save("calib.json")`` keeps it for later runs).
        """
        probs, labels = labelled_outputs(self, data, num_samples, batch_size)
        calibrator = ConformalCalibrator(alpha=alpha, score=score, mondrian=mondrian, randomized=randomized, seed=seed)
        self._conformal = calibrator.fit(probs, labels, class_names=self.class_names)
        return self._conformal

    def _with_sets(self, result: PredictionResult) -> PredictionResult:
        """``result`` carrying the calibrator, and one uniform per face for randomized scores."""
        calibrator = self._conformal
        if calibrator is not None:
            result.conformal = calibrator
            if calibrator.randomized and calibrator.score != "lac":
                result.set_uniforms = torch.rand(len(result))
        return result
