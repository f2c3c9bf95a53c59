"""Accuracy, calibration and uncertainty metrics for facial expression recognition.

Pure functions of NumPy arrays (``probs`` (N, K), ``labels`` (N,), Monte-Carlo ``samples``
(S, N, K), annotator ``votes`` (N, K)), a flat metrics mapping for ``metrics.json``,
temperature scaling, and the ``python -m evaluation.calibration`` command. Figures live in
:mod:`evaluation.plots`, imported on demand so that the metrics do not load matplotlib.
"""
from evaluation.calibration_error import (
    ReliabilityBins,
    average_calibration_error,
    adaptive_ece,
    classwise_ece,
    classwise_ece_per_class,
    ece,
    mce,
    reliability_bins,
)
from evaluation.distribution import (
    intensity_vote_correlation,
    js_divergence,
    kl_divergence,
    total_variation,
    vote_distribution,
    vote_metrics,
)
from evaluation.meter import EvaluationMeter
from evaluation.metrics import (
    PerClassScores,
    accuracy,
    balanced_accuracy,
    brier_score,
    confusion_matrix,
    nll,
    per_class_scores,
)
from evaluation.predictions import Predictions, load_predictions, save_predictions
from evaluation.summary import compute_metrics, temperature_scaled, write_metrics_json
from evaluation.temperature import TemperatureScaler, apply_temperature, fit_temperature
from evaluation.uncertainty import (
    aurc,
    auroc,
    entropy,
    excess_aurc,
    expected_entropy,
    misclassification_auroc,
    mutual_information,
    predictive_entropy,
    risk_coverage_curve,
    select_examples,
    selective_accuracy,
)

__all__ = [
    "EvaluationMeter",
    "PerClassScores",
    "Predictions",
    "ReliabilityBins",
    "TemperatureScaler",
    "accuracy",
    "average_calibration_error",
    "adaptive_ece",
    "apply_temperature",
    "aurc",
    "auroc",
    "balanced_accuracy",
    "brier_score",
    "classwise_ece",
    "classwise_ece_per_class",
    "compute_metrics",
    "confusion_matrix",
    "ece",
    "entropy",
    "excess_aurc",
    "expected_entropy",
    "fit_temperature",
    "intensity_vote_correlation",
    "js_divergence",
    "kl_divergence",
    "load_predictions",
    "mce",
    "misclassification_auroc",
    "mutual_information",
    "nll",
    "per_class_scores",
    "predictive_entropy",
    "reliability_bins",
    "risk_coverage_curve",
    "save_predictions",
    "select_examples",
    "selective_accuracy",
    "temperature_scaled",
    "total_variation",
    "vote_distribution",
    "vote_metrics",
    "write_metrics_json",
]
