"""Coverage and size of conformal expression sets, calibrated on one split and measured on another.

Keys written to ``metrics.json`` (``A`` printed with ``%g``, e.g. ``0.1``):

* ``conformal_coverage@A`` and ``conformal_set_size@A``: the first score asked (the primary);
* ``conformal_coverage@A/<score>``, ``conformal_set_size@A/<score>``: every score asked;
* ``conformal_coverage@A/<score>/<class>``, ``conformal_set_size@A/<score>/<class>``: per true class;
* ``conformal_class_gap@A/<score>``: the largest distance of a class's coverage from ``1 - A``;
* ``conformal_threshold@A/<score>``: ``qhat`` (``None`` when infinite; the largest one when Mondrian).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bayes_fer.conformal import ConformalCalibrator
from evaluation.class_coverage import DEFAULT_DRAWS


@dataclass(frozen=True)
class ConformalSettings:
    """How the sets are calibrated; each field maps to a CLI flag."""

    alphas: tuple[float, ...] = ()  # miscoverage levels (--conformal)
    scores: tuple[str, ...] = ("aps",)  # non-conformity scores, the first being the primary (--conformal-score)
    mondrian: bool = False  # one threshold per class (--mondrian)
    randomized: bool = True  # randomized APS / RAPS, exact rather than conservative (--conformal-deterministic)
    lam: float = 0.01  # RAPS penalty per rank past k_reg (--raps-lambda)
    k_reg: int = 1  # RAPS ranks without penalty (--raps-k-reg)
    seed: int = 0  # seeds the uniforms of randomized scores (--seed)
    allow_empty: bool = False  # the papers' scores unchanged, empty sets kept (--conformal-allow-empty)
    class_draws: int = DEFAULT_DRAWS  # Mondrian: draws of the uniforms averaged per class (--conformal-draws)


@dataclass
class ConformalResult:
    """Per (alpha, score): the fitted calibrator and per-class coverage and mean set size on test."""

    alpha: float
    score: str
    calibrator: ConformalCalibrator
    coverage: float
    set_size: float
    class_coverage: np.ndarray  # (K,), NaN for a class absent from test
    class_set_size: np.ndarray  # (K,)
    class_support: np.ndarray  # (K,)


def fit_calibrators(validation, settings: ConformalSettings) -> dict[tuple[float, str], ConformalCalibrator]:
    """One calibrator per (alpha, score), fitted on the validation predictions."""
    calibrators = {}
    for alpha in settings.alphas:
        for score in settings.scores:
            calibrator = ConformalCalibrator(alpha=alpha, score=score, mondrian=settings.mondrian,
                                             randomized=settings.randomized, lam=settings.lam,
                                             k_reg=settings.k_reg, allow_empty=settings.allow_empty,
                                             seed=settings.seed)
            calibrators[(alpha, score)] = calibrator.fit(validation.probs, validation.labels,
                                                         class_names=getattr(validation, "class_names", None))
    return calibrators


def evaluate_sets(calibrator: ConformalCalibrator, probs, labels) -> ConformalResult:
    """Coverage and set size of ``calibrator``'s sets on labelled predictions, overall and per class."""
    sets = calibrator.predict_sets(probs)  # (N, K)
    labels = np.asarray(labels)
    covered = sets[np.arange(labels.shape[0]), labels]
    sizes = sets.sum(axis=1)
    k = sets.shape[1]
    support = np.bincount(labels, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        class_coverage = np.bincount(labels, weights=covered, minlength=k) / support
        class_size = np.bincount(labels, weights=sizes, minlength=k) / support
    return ConformalResult(calibrator.alpha, calibrator.score, calibrator, float(covered.mean()), float(sizes.mean()),
                           class_coverage, class_size, support)


def _alpha_key(alpha: float) -> str:
    return f"{alpha:g}"


def conformal_metrics(
    validation, test, settings: ConformalSettings, class_names: Sequence[str]
) -> tuple[dict[str, float | None], list[ConformalResult]]:
    """Calibrate on ``validation``, measure on ``test``: the keys of the module docstring.

    Args:
        validation: Predictions with ``probs`` and ``labels`` to calibrate on.
        test: Predictions to measure coverage on.
        settings: Levels, scores and options.
        class_names: K class names for the per-class keys.

    Returns:
        ``(metrics, results)``, one result per (alpha, score) in the order asked.
    """
    if validation.probs.shape[1] != test.probs.shape[1]:
        raise ValueError(f"conformal sets: the validation predictions have K = {validation.probs.shape[1]} classes "
                         f"but the evaluated ones K = {test.probs.shape[1]}; calibrate on the same model's outputs")
    metrics: dict[str, float | None] = {"conformal_mondrian": int(settings.mondrian),
                                        "conformal_randomized": int(settings.randomized),
                                        "conformal_allow_empty": int(settings.allow_empty),
                                        "conformal_calibration_examples": int(validation.probs.shape[0])}
    results = []
    for (alpha, score), calibrator in fit_calibrators(validation, settings).items():
        result = evaluate_sets(calibrator, test.probs, test.labels)
        results.append(result)
        a = _alpha_key(alpha)
        if score == settings.scores[0]:
            metrics[f"conformal_coverage@{a}"] = result.coverage
            metrics[f"conformal_set_size@{a}"] = result.set_size
        metrics[f"conformal_coverage@{a}/{score}"] = result.coverage
        metrics[f"conformal_set_size@{a}/{score}"] = result.set_size
        finite = [q for q in calibrator.qhat if not math.isinf(q)]
        metrics[f"conformal_threshold@{a}/{score}"] = max(finite) if len(finite) == len(calibrator.qhat) else None
        present = result.class_support > 0
        metrics[f"conformal_class_gap@{a}/{score}"] = float(np.max(np.abs(result.class_coverage[present] - (1 - alpha))))
        for k, name in enumerate(class_names):
            value = result.class_coverage[k]
            metrics[f"conformal_coverage@{a}/{score}/{name}"] = None if np.isnan(value) else float(value)
            size = result.class_set_size[k]
            metrics[f"conformal_set_size@{a}/{score}/{name}"] = None if np.isnan(size) else float(size)
    return metrics, results


def conformal_markdown(results: Sequence[ConformalResult], class_names: Sequence[str]) -> str:
    """Markdown tables: coverage and mean set size per (alpha, score), then per class."""
    from evaluation.report import markdown_table

    rows = [[f"{r.alpha:g}", r.score, f"{1 - r.alpha:.3f}", f"{r.coverage:.4f}", f"{r.set_size:.3f}"]
            for r in results]
    text = markdown_table(["alpha", "Score", "Target", "Coverage", "Mean set size"], rows)
    header = ["Class", "Support"] + [f"{r.score} @{r.alpha:g}: cov / size" for r in results]
    class_rows = []
    for k, name in enumerate(class_names):
        row = [name, str(int(results[0].class_support[k]))] if results else [name, "0"]
        row += [f"{r.class_coverage[k]:.3f} / {r.class_set_size[k]:.2f}" for r in results]
        class_rows.append(row)
    return text + "\n\nPer class (coverage / mean set size):\n\n" + markdown_table(header, class_rows)
