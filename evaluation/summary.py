"""Every metric of a :class:`Predictions` as one flat mapping, the content of ``metrics.json``.

Keys are plain names (``accuracy``, ``ece``...), ``group/member`` for families
(``precision/happiness``, ``selective_accuracy/0.90``, ``votes/kl``) and ``calibrated/...``
for the same metrics after temperature scaling. Values are floats, ints or ``None`` where a
metric is undefined (e.g. misclassification AUROC when every example is right), so the
mapping serialises to strict JSON.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from evaluation import calibration_error as ce
from evaluation import metrics as cm
from evaluation import uncertainty as unc
from evaluation.distribution import vote_metrics
from evaluation.predictions import Predictions
from evaluation.temperature import TemperatureScaler

#: Coverages at which selective accuracy is reported.
DEFAULT_COVERAGES = (0.5, 0.8, 0.9, 0.95)

Metrics = dict[str, float | int | None]


def compute_metrics(
    predictions: Predictions,
    num_bins: int = ce.DEFAULT_NUM_BINS,
    coverages: tuple[float, ...] = DEFAULT_COVERAGES,
    per_class: bool = True,
) -> Metrics:
    """All metrics of ``predictions`` as a flat mapping.

    Args:
        predictions: The validated predictions.
        num_bins: Bins for ECE, MCE, ACE, adaptive and class-wise ECE.
        coverages: Coverages for ``selective_accuracy/<coverage>``.
        per_class: Include the ``precision/<class>``... entries.

    Returns:
        The mapping described in the module docstring; Monte-Carlo and vote entries are
        ``None`` or absent when the predictions lack samples or votes.
    """
    probs, labels, samples = predictions.probs, predictions.labels, predictions.samples
    out: Metrics = {
        "num_examples": predictions.num_examples,
        "num_classes": predictions.num_classes,
        "num_mc_samples": None if samples is None else int(samples.shape[0]),
        "accuracy": cm.accuracy(probs, labels),
        "balanced_accuracy": cm.balanced_accuracy(probs, labels),
    }
    if predictions.loc is not None:
        # The paper predicts argmax of the intensity means; argmax of probs can differ near ties.
        out["accuracy_argmax_loc"] = float(np.mean(np.argmax(predictions.loc, axis=1) == labels))
    scores = cm.per_class_scores(probs, labels)
    out["macro_f1"] = scores.macro_f1
    out["nll"] = cm.nll(probs, labels)
    out["brier"] = cm.brier_score(probs, labels)
    out["ece"] = ce.ece(probs, labels, num_bins)
    out["mce"] = ce.mce(probs, labels, num_bins)
    out["average_calibration_error"] = ce.average_calibration_error(probs, labels, num_bins)
    out["adaptive_ece"] = ce.adaptive_ece(probs, labels, num_bins)
    classwise = ce.classwise_ece_per_class(probs, labels, num_bins)
    out["classwise_ece"] = float(classwise.mean())
    out["aurc"] = unc.aurc(probs, labels)
    out["eaurc"] = unc.excess_aurc(probs, labels)
    for coverage in coverages:
        out[f"selective_accuracy/{coverage:.2f}"] = unc.selective_accuracy(probs, labels, coverage)

    uncertainty = unc.uncertainty_scores(probs, samples)
    out["entropy_mean"] = float(uncertainty["entropy"].mean())
    out["expected_entropy_mean"] = None if samples is None else float(unc.expected_entropy(samples).mean())
    out["mutual_information_mean"] = (
        float(uncertainty["mutual_information"].mean()) if "mutual_information" in uncertainty else None
    )
    unavailable: dict[str, str] = {}
    if samples is None:
        for key in ("expected_entropy_mean", "mutual_information_mean"):
            unavailable[key] = "no Monte-Carlo draws were given (deterministic head, or predictions without samples)"
    for name in ("max_prob", "entropy", "mutual_information"):
        key, value = f"auroc_misclassification/{name}", None
        if name not in uncertainty:
            unavailable[key] = "no Monte-Carlo draws were given, so there is no mutual information"
        else:
            try:
                value = unc.misclassification_auroc(uncertainty[name], probs, labels)
            except ValueError as e:  # every example right, or every one wrong
                unavailable[key] = str(e)
        out[key] = value
    if predictions.epistemic_mi is not None:  # a Bayesian head's share of the mutual information
        out["epistemic_mi_mean"] = float(predictions.epistemic_mi.mean())
        try:
            out["auroc_misclassification/epistemic_mi"] = unc.misclassification_auroc(predictions.epistemic_mi,
                                                                                       probs, labels)
        except ValueError as e:  # every example right, or every one wrong
            out["auroc_misclassification/epistemic_mi"] = None
            unavailable["auroc_misclassification/epistemic_mi"] = str(e)
    if predictions.scale is not None:
        out.update(_spread_scores(probs, labels, predictions.scale, unavailable))
    # A metric reported as None says why here, in metrics.json and the report.
    out["unavailable"] = unavailable

    if predictions.votes is not None:
        for key, value in vote_metrics(predictions.votes, probs, predictions.loc).items():
            out[f"votes/{key}"] = value

    if per_class:
        for k, name in enumerate(predictions.class_names):
            out[f"precision/{name}"] = float(scores.precision[k])
            out[f"recall/{name}"] = float(scores.recall[k])
            out[f"f1/{name}"] = float(scores.f1[k])
            out[f"support/{name}"] = int(scores.support[k])
            out[f"ece_classwise/{name}"] = float(classwise[k])
    return out


def _spread_scores(probs: np.ndarray, labels: np.ndarray, scale: np.ndarray, unavailable: dict[str, str]) -> Metrics:
    """What the intensity spread of the predicted class says about correctness.

    ``spread_correctness_spearman`` is Spearman's rho between that spread and being right
    (negative: wider spread, more mistakes, as a trustworthy spread should be);
    ``auroc_misclassification/spread`` its AUROC at flagging mistakes.
    """
    predicted = np.argmax(probs, axis=1)
    spread = np.asarray(scale, dtype=np.float64)[np.arange(len(predicted)), predicted]
    correct = (predicted == labels).astype(np.float64)
    out: Metrics = {"spread_correctness_spearman": None, "auroc_misclassification/spread": None}
    if np.ptp(spread) == 0:
        why = "the intensity spread is the same for every face (a Delta guide or deterministic head has none)"
        unavailable.update({key: why for key in out})
        return out
    if np.ptp(correct) == 0:
        why = "every face is classified right, or every one wrong"
        unavailable.update({key: why for key in out})
        return out
    out["spread_correctness_spearman"] = float(spearmanr(spread, correct).statistic)
    out["auroc_misclassification/spread"] = unc.misclassification_auroc(spread, probs, labels)
    return out


def temperature_scaled(
    validation: Predictions,
    test: Predictions,
    num_bins: int = ce.DEFAULT_NUM_BINS,
    coverages: tuple[float, ...] = DEFAULT_COVERAGES,
) -> tuple[Metrics, Predictions]:
    """Fit a temperature on ``validation`` and score ``test`` after rescaling.

    Monte-Carlo samples and intensities are not rescaled, so the calibrated metrics leave out
    mutual information and intensity correlations; per-class precision and recall cannot
    change and are left out too.

    Args:
        validation: Predictions on the split the temperature is fitted on.
        test: Predictions to rescale and score.
        num_bins: Bins for the calibration errors.
        coverages: Coverages for selective accuracy.

    Returns:
        ``(metrics, calibrated)``: ``temperature``, the validation NLL before and after, and
        ``calibrated/<key>`` for each metric; and the rescaled test predictions.
    """
    if validation.num_classes != test.num_classes:
        raise ValueError(f"validation predictions have K = {validation.num_classes} classes but the evaluated "
                         f"ones have K = {test.num_classes}; fit the temperature on the same model's outputs")
    scaler = TemperatureScaler().fit(validation.probs, validation.labels)
    calibrated = Predictions(probs=scaler.transform(test.probs), labels=test.labels, votes=test.votes,
                             class_names=test.class_names)
    out: Metrics = {
        "temperature": scaler.temperature,
        "temperature_valid_examples": validation.num_examples,
        "temperature_valid_nll_before": scaler.nll_before,
        "temperature_valid_nll_after": scaler.nll_after,
    }
    scored = compute_metrics(calibrated, num_bins, coverages, per_class=False)
    skip = {"num_examples", "num_classes", "num_mc_samples", "expected_entropy_mean", "mutual_information_mean",
            "auroc_misclassification/mutual_information"}
    out.update({f"calibrated/{key}": value for key, value in scored.items() if key not in skip})
    return out, calibrated


def jsonable(metrics: Metrics) -> Metrics:
    """``metrics`` with NumPy scalars made Python numbers and NaN or infinity made ``None``."""
    clean: Metrics = {}
    for key, value in metrics.items():
        if isinstance(value, (np.integer, np.floating)):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        clean[key] = value
    return clean


def write_metrics_json(path: str | os.PathLike, metrics: Metrics) -> Path:
    """Write ``metrics`` as strict JSON (no NaN), one key per line."""
    path = Path(path)
    path.write_text(json.dumps(jsonable(metrics), indent=2, allow_nan=False) + "\n")
    return path
