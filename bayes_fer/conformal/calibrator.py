"""The split-conformal calibrator: fitted once on validation predictions, read at any level.

The scores, the quantile rule and the empty-set rule are in :mod:`bayes_fer.conformal.scores`.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bayes_fer.conformal.scores import (
    _check_alpha,
    _check_labels,
    _check_probs,
    _check_score,
    conformal_quantile,
    conformity_scores,
    prediction_sets,
    top_class_conforms,
)

#: Bumped whenever the saved fields change meaning.
FORMAT_VERSION = 1


@dataclass
class ConformalCalibrator:
    """Split-conformal calibrator: fit on validation predictions, then predict sets.

        >>> calibrator = ConformalCalibrator().fit(valid_probs, valid_labels, alpha=0.1, score="raps")
        >>> sets = calibrator.predict_sets(test_probs)  # (B, K) booleans

    Attributes:
        alpha: Miscoverage level; sets cover with probability >= ``1 - alpha``.
        score: ``"lac"``, ``"aps"`` or ``"raps"``.
        mondrian: One threshold per class (class-conditional coverage).
        randomized: Randomized APS / RAPS (exact coverage) rather than ``u = 1`` (conservative).
        lam: RAPS penalty per rank beyond ``k_reg``.
        k_reg: RAPS ranks without penalty.
        allow_empty: Use the papers' scores unchanged and keep empty sets, rather than letting
            the most probable class always conform (see the module docstring).
        seed: Seeds the uniforms of randomized scores at prediction time.
        qhat: Fitted thresholds at ``alpha``, one per class (all equal unless Mondrian); ``None``
            before fitting.
        num_calibration: Calibration examples per class.
        class_names: The K class names of the model whose outputs were calibrated; ``None`` when
            not given (then only the number of classes can be checked).
        calibration_scores: Per class, the sorted scores of the calibration examples of that true
            class, from which :meth:`thresholds` answers any level; ``None`` in files saved
            before they were kept (such a calibrator answers its own ``alpha`` only).
    """

    alpha: float = 0.1
    score: str = "aps"
    mondrian: bool = False
    randomized: bool = True
    lam: float = 0.01
    k_reg: int = 1
    allow_empty: bool = False
    seed: int = 0
    qhat: list[float] | None = None
    num_calibration: list[int] | None = None
    class_names: list[str] | None = None
    calibration_scores: list[list[float]] | None = None

    def _scores(self, probs: np.ndarray, rng: np.random.Generator, u=None) -> np.ndarray:
        scores = conformity_scores(probs, self.score, self.randomized, self.lam, self.k_reg, u=u, rng=rng)
        return scores if self.allow_empty else top_class_conforms(scores, probs)

    def fit(
        self,
        probs,
        labels,
        alpha: float | None = None,
        score: str | None = None,
        mondrian: bool | None = None,
        rng: np.random.Generator | None = None,
        class_names: Sequence[str] | None = None,
    ) -> "ConformalCalibrator":
        """Fit the thresholds on held-out predictions; arguments given override the fields.

        Args:
            probs: Validation class probabilities (n, K).
            labels: Validation labels (n,).
            alpha: Miscoverage level.
            score: Score name.
            mondrian: Class-conditional thresholds. A class with too few calibration examples
                ``n_y`` for its quantile (``ceil((n_y + 1)(1 - alpha)) > n_y``, e.g. ``n_y < 9``
                at ``alpha = 0.1``) gets an infinite threshold, so every set holds it: the only
                choice that keeps its coverage.
            rng: Generator for the calibration uniforms (seeded from ``seed`` by default).
            class_names: The K class names of the columns of ``probs``, checked whenever the
                calibrator meets a model (see :meth:`check_class_names`).

        Returns:
            ``self``.
        """
        self.alpha = _check_alpha(self.alpha if alpha is None else alpha)
        self.score = _check_score(self.score if score is None else score)
        self.mondrian = self.mondrian if mondrian is None else bool(mondrian)
        probs = _check_probs(probs)
        labels = _check_labels(labels, *probs.shape)
        if class_names is not None:
            if len(class_names) != probs.shape[1]:
                raise ValueError(f"class_names: expected {probs.shape[1]} names, one per column of probs, "
                                 f"found {len(class_names)}")
            self.class_names = [str(name) for name in class_names]
        rng = rng or np.random.default_rng(self.seed)
        scores = self._scores(probs, rng)
        true_scores = scores[np.arange(labels.shape[0]), labels]  # (n,)
        k = probs.shape[1]
        counts = np.bincount(labels, minlength=k)
        if self.mondrian:
            self.qhat = [conformal_quantile(true_scores[labels == c], self.alpha) if counts[c] else float("inf")
                         for c in range(k)]
        else:
            self.qhat = [conformal_quantile(true_scores, self.alpha)] * k
        self.num_calibration = counts.tolist()
        self.calibration_scores = [np.sort(true_scores[labels == c]).tolist() for c in range(k)]
        return self

    @property
    def num_classes(self) -> int:
        self._check_fitted()
        return len(self.qhat)

    def _check_fitted(self) -> None:
        if self.qhat is None:
            raise RuntimeError("this ConformalCalibrator is not fitted; call fit(probs, labels, alpha) on "
                               "validation predictions first, or load a saved one")

    @property
    def min_alpha(self) -> float:
        """The smallest level :meth:`thresholds` answers: ``1 / (n + 1)``, below which no threshold is finite.

        ``n`` is the number of calibration examples, or the largest class's count when Mondrian.
        """
        self._check_fitted()
        counts = self.num_calibration or [0]
        n = max(counts) if self.mondrian else sum(counts)
        return 1.0 / (n + 1)

    def thresholds(self, alpha: float | None = None) -> list[float]:
        """``qhat`` per class at level ``alpha`` (the fitted ``alpha`` when ``None``).

        Raises:
            ValueError: ``alpha`` is not in (0, 1), lies below :attr:`min_alpha`, or differs from
                the fitted level of a calibrator that keeps no calibration scores.
        """
        self._check_fitted()
        if alpha is None:
            return list(self.qhat)
        alpha = _check_alpha(alpha)
        if self.calibration_scores is None:
            if math.isclose(alpha, self.alpha):
                return list(self.qhat)
            raise ValueError(f"alpha: this calibrator was saved without its calibration scores and answers only its "
                             f"own level alpha={self.alpha:g}, not {alpha:g}; ask for {self.alpha:g} or calibrate "
                             "again with this version of bayes-fer")
        if alpha < self.min_alpha - 1e-12:
            examples = "the largest class's" if self.mondrian else "the"
            raise ValueError(f"alpha: {alpha:g} is below the calibrated range [{self.min_alpha:.3g}, 1): with "
                             f"{examples} {round(1 / self.min_alpha) - 1} calibration examples no threshold is "
                             f"finite below 1 / (n + 1), and every set would hold every class; ask for a larger "
                             "alpha or calibrate on more examples")
        if self.mondrian:
            return [conformal_quantile(scores, alpha) if scores else float("inf")
                    for scores in self.calibration_scores]
        pooled = [score for scores in self.calibration_scores for score in scores]
        return [conformal_quantile(pooled, alpha)] * len(self.calibration_scores)

    def check_class_names(self, class_names: Sequence[str]) -> None:
        """Refuse a model whose classes are not the ones calibrated, in the same order.

        Raises:
            ValueError: the number of classes differs, or the names or their order do.
        """
        self._check_fitted()
        names = [str(name) for name in class_names]
        if len(names) != self.num_classes:
            raise ValueError(f"conformal calibrator: calibrated on K = {self.num_classes} classes"
                             f"{'' if self.class_names is None else ' ' + str(self.class_names)}, but the model has "
                             f"K = {len(names)} {names}; calibrate on this model's validation predictions")
        if self.class_names is not None and names != self.class_names:
            raise ValueError(f"conformal calibrator: calibrated on the classes {self.class_names}, but the model has "
                             f"{names}; sets would name the wrong classes. Calibrate on this model's validation "
                             "predictions")

    def predict_sets(self, probs, rng: np.random.Generator | None = None, alpha: float | None = None,
                     u=None) -> np.ndarray:
        """Prediction sets for new examples.

        Args:
            probs: Class probabilities (B, K).
            rng: Generator for the uniforms of randomized scores (seeded from ``seed + 1`` by default,
                so repeated calls give the same sets).
            alpha: Level of the sets (see :meth:`thresholds`); the fitted ``alpha`` when ``None``.
            u: Uniforms (B,) of randomized scores to use instead of drawing them, e.g. drawn once
                per face at prediction time so that a face's set does not depend on its batch.

        Returns:
            Booleans (B, K): ``sets[i, y]`` is True when label ``y`` is in example i's set.
        """
        self._check_fitted()
        probs = _check_probs(probs)
        if probs.shape[1] != self.num_classes:
            raise ValueError(f"probs: expected K = {self.num_classes} classes as at calibration, "
                             f"found {probs.shape[1]}")
        qhat = self.thresholds(alpha)
        scores = self._scores(probs, rng or np.random.default_rng(self.seed + 1), u)
        return prediction_sets(scores, qhat, probs, self.allow_empty)

    # -- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-able fields, infinite thresholds as ``None``."""
        self._check_fitted()
        state = asdict(self)
        state["qhat"] = [None if math.isinf(q) else q for q in self.qhat]
        state["format_version"] = FORMAT_VERSION
        return state

    @classmethod
    def from_dict(cls, state: dict) -> "ConformalCalibrator":
        """Rebuild a fitted calibrator from :meth:`to_dict`."""
        state = dict(state)
        version = state.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise ValueError(f"conformal calibrator: expected format_version {FORMAT_VERSION}, found {version!r}; "
                             "refit it with this version of bayes-fer")
        fields = set(cls.__dataclass_fields__)
        unknown = sorted(set(state) - fields)
        if unknown:
            raise ValueError(f"conformal calibrator: unknown field(s) {unknown}; expected a subset of {sorted(fields)}")
        if state.get("qhat") is None:
            raise ValueError("conformal calibrator: no fitted thresholds (qhat); save a fitted calibrator")
        state["qhat"] = [float("inf") if q is None else float(q) for q in state["qhat"]]
        calibrator = cls(**state)
        _check_alpha(calibrator.alpha)
        _check_score(calibrator.score)
        k = len(calibrator.qhat)
        if calibrator.class_names is not None and len(calibrator.class_names) != k:
            raise ValueError(f"conformal calibrator: {len(calibrator.class_names)} class names for {k} thresholds")
        if calibrator.calibration_scores is not None and \
                [len(scores) for scores in calibrator.calibration_scores] != calibrator.num_calibration:
            raise ValueError("conformal calibrator: the calibration scores do not match num_calibration per class; "
                             "the file was altered, save the calibrator again")
        return calibrator

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted calibrator as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ConformalCalibrator":
        """Read a calibrator written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"conformal calibrator file not found: {path}")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}: {error}") from error
