"""Which uncertainty score to trust: scores of a :class:`Predictions` and how well they rank.

Every score is (N,) with higher meaning more uncertain:

* ``max_prob``: ``1 - max_k p_k``;
* ``entropy``: entropy of the predictive probabilities (total uncertainty, nats);
* ``mutual_information``: entropy minus the mean entropy of the Monte-Carlo draws;
* ``aleatoric``: the mean entropy of the draws, or an ``aleatoric`` array the predictions carry;
* ``epistemic_mi``: an ``epistemic_mi`` array the predictions carry (a Bayesian head's share);
* ``spread``: the latent intensity's standard deviation for the predicted class;
* ``set_size``: the size of the conformal set, when a calibrator is given.

Scores missing from a predictions object are left out, never faked. The metrics: AUROC and
AURC at ranking mistakes; AUROC and FPR at 95% TPR at telling out-of-distribution inputs
(positive) from in-distribution ones.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evaluation._checks import as_finite_array
from evaluation.uncertainty import aurc, auroc, entropy, expected_entropy, misclassification_auroc, mutual_information

#: Score names in the order tables list them.
SCORE_NAMES = ("max_prob", "entropy", "mutual_information", "aleatoric", "epistemic_mi", "spread", "set_size")

#: Optional per-example arrays a predictions object or file may carry under these names.
EXTRA_SCORE_ARRAYS = ("aleatoric", "epistemic_mi")


def uncertainty_score_table(
    predictions: Any,
    extra: Mapping[str, np.ndarray] | None = None,
    calibrator: Any | None = None,
) -> dict[str, np.ndarray]:
    """Every score the predictions allow, each (N,), higher meaning more uncertain.

    Args:
        predictions: A :class:`~evaluation.predictions.Predictions` (or anything with
            ``probs`` and optionally ``samples``, ``scale``, ``aleatoric``, ``epistemic_mi``).
        extra: Further named score arrays (N,), e.g. read by :func:`load_extra_scores`; they
            replace computed scores of the same name.
        calibrator: A fitted :class:`bayes_fer.conformal.ConformalCalibrator` for ``set_size``.

    Returns:
        Name -> scores, in the order of :data:`SCORE_NAMES` (then any other extra names).
    """
    probs = np.asarray(predictions.probs, dtype=np.float64)
    n = probs.shape[0]
    samples = getattr(predictions, "samples", None)
    scale = getattr(predictions, "scale", None)
    scores: dict[str, np.ndarray] = {"max_prob": 1.0 - probs.max(axis=1), "entropy": entropy(probs)}
    if samples is not None:
        scores["mutual_information"] = mutual_information(samples)
        scores["aleatoric"] = expected_entropy(samples)
    given = {name: getattr(predictions, name) for name in EXTRA_SCORE_ARRAYS
             if getattr(predictions, name, None) is not None}
    given.update(extra or {})
    for name, values in given.items():
        values = as_finite_array(values, name, 1, "(N,)")
        if values.shape[0] != n:
            raise ValueError(f"{name}: expected {n} scores to match probs (N = {n}), found {values.shape[0]}")
        scores[name] = values
    if scale is not None and np.asarray(scale).any():  # an all-zero scale is a deterministic head: no score
        scores["spread"] = np.asarray(scale)[np.arange(n), np.argmax(probs, axis=1)]
    if calibrator is not None:
        scores["set_size"] = calibrator.predict_sets(probs).sum(axis=1).astype(np.float64)
    order = {name: i for i, name in enumerate(SCORE_NAMES)}
    return dict(sorted(scores.items(), key=lambda item: order.get(item[0], len(order))))


def load_extra_scores(path: str | os.PathLike, names: Sequence[str] = EXTRA_SCORE_ARRAYS) -> dict[str, np.ndarray]:
    """The optional score arrays ``names`` found in a predictions ``.npz`` (absent ones left out)."""
    with np.load(Path(path), allow_pickle=False) as data:
        return {name: np.asarray(data[name]) for name in names if name in data.files}


def misclassification_aurc(uncertainty, probs, labels) -> float:
    """AURC when the least uncertain examples are kept first (lower is better)."""
    return aurc(probs, labels, confidence=-as_finite_array(uncertainty, "uncertainty", 1, "(N,)"))


def ood_auroc(in_scores, out_scores) -> float:
    """AUROC of a score at flagging out-of-distribution inputs (positives) among in-distribution ones.

    Args:
        in_scores: Scores (N_in,) on in-distribution inputs.
        out_scores: Scores (N_out,) on out-of-distribution inputs; higher should mean OOD.

    Returns:
        AUROC in [0, 1], ties counting one half; 0.5 is chance.
    """
    in_scores = as_finite_array(in_scores, "in_scores", 1, "(N_in,)")
    out_scores = as_finite_array(out_scores, "out_scores", 1, "(N_out,)")
    return auroc(np.concatenate([in_scores, out_scores]),
                 np.r_[np.zeros(in_scores.shape[0], bool), np.ones(out_scores.shape[0], bool)])


def fpr_at_tpr(in_scores, out_scores, tpr: float = 0.95) -> float:
    """Fraction of OOD inputs accepted when a threshold keeps ``tpr`` of the in-distribution ones.

    The in-distribution inputs are the positives (Hendrycks & Gimpel's convention): the
    threshold ``t`` is the smallest score with ``mean(in_scores <= t) >= tpr``, every input
    scoring ``<= t`` is accepted, and the result is ``mean(out_scores <= t)``.

    Args:
        in_scores: Scores (N_in,) on in-distribution inputs.
        out_scores: Scores (N_out,) on out-of-distribution inputs.
        tpr: Fraction of in-distribution inputs to accept, in (0, 1].

    Returns:
        The false positive rate in [0, 1]; lower is better.
    """
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr: expected a fraction in (0, 1], found {tpr!r}")
    in_scores = np.sort(as_finite_array(in_scores, "in_scores", 1, "(N_in,)"))
    out_scores = as_finite_array(out_scores, "out_scores", 1, "(N_out,)")
    rank = int(np.ceil(tpr * in_scores.shape[0] - 1e-9))
    threshold = in_scores[max(rank, 1) - 1]
    return float(np.mean(out_scores <= threshold))


def misclassification_metrics(scores: Mapping[str, np.ndarray], probs, labels) -> dict[str, float | None]:
    """``auroc_misclassification/<score>`` and ``aurc/<score>`` for each score (``None`` when undefined)."""
    out: dict[str, float | None] = {}
    for name, values in scores.items():
        try:
            out[f"auroc_misclassification/{name}"] = misclassification_auroc(values, probs, labels)
        except ValueError:  # every example right, or every one wrong
            out[f"auroc_misclassification/{name}"] = None
        out[f"aurc/{name}"] = misclassification_aurc(values, probs, labels)
    return out


def ood_metrics(in_scores: Mapping[str, np.ndarray], out_scores: Mapping[str, np.ndarray]) -> dict[str, float]:
    """``auroc_ood/<score>`` and ``fpr95_ood/<score>`` for each score present in both mappings."""
    out: dict[str, float] = {}
    for name in in_scores:
        if name in out_scores:
            out[f"auroc_ood/{name}"] = ood_auroc(in_scores[name], out_scores[name])
            out[f"fpr95_ood/{name}"] = fpr_at_tpr(in_scores[name], out_scores[name], 0.95)
    return out


def roc_curve(in_scores, out_scores) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` of flagging inputs scoring ``>= t`` as OOD, over every distinct threshold.

    Both start at 0 (no threshold passed) and end at 1 (every input flagged).
    """
    in_scores = as_finite_array(in_scores, "in_scores", 1, "(N_in,)")
    out_scores = as_finite_array(out_scores, "out_scores", 1, "(N_out,)")
    thresholds = np.unique(np.concatenate([in_scores, out_scores]))[::-1]
    fpr = (in_scores[None, :] >= thresholds[:, None]).mean(axis=1)
    tpr = (out_scores[None, :] >= thresholds[:, None]).mean(axis=1)
    return np.r_[0.0, fpr], np.r_[0.0, tpr]
