"""Split-conformal expression sets: "this face is {happiness, surprise}" with a stated coverage.

- :mod:`bayes_fer.conformal.scores`: the LAC, APS and RAPS scores, the finite-sample
  quantile, sets from thresholds, and coverage (the maths is in its docstring).
- :mod:`bayes_fer.conformal.calibrator`: :class:`ConformalCalibrator`, fitted on validation
  predictions (marginal or class-conditional), saved and loaded as JSON.
"""
from bayes_fer.conformal.calibrator import FORMAT_VERSION, ConformalCalibrator
from bayes_fer.conformal.scores import (
    SCORES,
    conformal_quantile,
    conformal_rank,
    conformity_scores,
    coverage,
    prediction_sets,
    set_sizes,
    top_class_conforms,
)

__all__ = [
    "FORMAT_VERSION",
    "SCORES",
    "ConformalCalibrator",
    "conformal_quantile",
    "conformal_rank",
    "conformity_scores",
    "coverage",
    "prediction_sets",
    "set_sizes",
    "top_class_conforms",
]
