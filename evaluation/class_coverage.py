"""Per-class coverage of class-conditional (Mondrian) conformal sets, against its exact sampling range.

With ``n`` calibration examples of class ``y`` and tie-free scores, the Mondrian threshold is
the ``r``-th smallest of the class's scores, ``r = ceil((n + 1)(1 - alpha))``. Under
exchangeability the coverage given the calibration set is then ``Beta(r, n + 1 - r)``
(Vovk 2012; Angelopoulos & Bates 2021, section 3.2), so the number of the class's ``m`` test
examples that are covered is ``BetaBinomial(m, r, n + 1 - r)``. Its central 95% range is the
band a correct calibration lands in 95% of the time: with ``m = 15`` test faces it is about
20 points wide either side, however well the model is calibrated.

The range is exact for randomized APS / RAPS with empty sets allowed, whose scores have no
ties. With the default never-empty sets the most probable class's score is pinned to 0, so
ties at 0 make coverage larger (for a class whose top-1 recall exceeds ``1 - alpha`` the
coverage is that recall): there the range's low end still holds, and coverage above its high
end is over-coverage by construction, not a failure.

A class with ``r > n`` gets an infinite threshold, every set holds it, and its coverage is
exactly 1 (range ``[m, m]``).

Coverage is averaged over repeated draws of the uniforms of the randomized scores (fresh
draws for calibration and test each time), which removes the noise of one draw but not that
of the data; the spread over draws is reported beside the mean.

Keys written to ``metrics.json`` (``A`` printed with ``%g``; ``<score>`` e.g. ``aps``):

* ``conformal_class_calibration_count/<class>``, ``conformal_class_test_count/<class>``: n and m;
* ``conformal_class_coverage_mean@A/<score>/<class>``, ``conformal_class_coverage_sd@A/<score>/<class>``:
  coverage over the draws;
* ``conformal_class_set_size_mean@A/<score>/<class>``: mean set size of the class's test examples;
* ``conformal_class_range_low@A/<score>/<class>``, ``conformal_class_range_high@A/<score>/<class>``:
  the central 95% range of the coverage under exchangeability;
* ``conformal_class_in_range@A/<score>/<class>``, ``conformal_class_within_tolerance@A/<score>/<class>``:
  1 or 0 (``None`` for a class absent from test);
* ``conformal_classes_in_range@A/<score>``, ``conformal_classes_within_tolerance@A/<score>``: how many
  classes present in test are;
* ``conformal_class_draws``, ``conformal_class_range_level``, ``conformal_class_tolerance``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bayes_fer.conformal import ConformalCalibrator, conformal_rank

#: Probability mass of the reported sampling range of a class's coverage.
RANGE_LEVEL = 0.95
#: Distance from ``1 - alpha`` within which a class counts as covered as asked (issue 14: 5 points).
CLASS_TOLERANCE = 0.05
#: Draws of the randomized scores' uniforms averaged over by default.
DEFAULT_DRAWS = 50


def covered_count_range(n: int, m: int, alpha: float, level: float = RANGE_LEVEL) -> tuple[int, int]:
    """Central ``level`` range of the covered count among ``m`` test examples of one class.

    The count is ``BetaBinomial(m, r, n + 1 - r)`` with ``r`` from :func:`bayes_fer.conformal.conformal_rank`; the
    range is ``[ppf((1 - level) / 2), ppf((1 + level) / 2)]``, which holds at least ``level``
    of the mass (the distribution is discrete).

    Args:
        n: Calibration examples of the class.
        m: Test examples of the class (>= 1).
        alpha: Miscoverage level in (0, 1).
        level: Mass of the range, in (0, 1).

    Returns:
        ``(low, high)`` counts; ``(m, m)`` when ``r > n`` (infinite threshold, always covered).
    """
    from scipy.stats import betabinom

    if m < 1:
        raise ValueError(f"covered_count_range: expected m >= 1 test examples of the class, got {m}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"covered_count_range: level must lie in (0, 1), e.g. 0.95, got {level}")
    r = conformal_rank(n, alpha)
    if r > n:
        return m, m
    counts = betabinom(m, r, n + 1 - r)
    return int(counts.ppf((1.0 - level) / 2)), int(counts.ppf((1.0 + level) / 2))


@dataclass
class ClassCoverage:
    """Per class, for one (alpha, score): what the sets did over the draws and the range they should land in."""

    alpha: float
    score: str
    calibration_count: np.ndarray  # (K,) n per class
    test_count: np.ndarray  # (K,) m per class
    coverage_mean: np.ndarray  # (K,) NaN for a class absent from test
    coverage_sd: np.ndarray  # (K,) over the draws
    set_size_mean: np.ndarray  # (K,)
    range_low: np.ndarray  # (K,) coverage, NaN when m = 0
    range_high: np.ndarray  # (K,)
    draws: int
    level: float = RANGE_LEVEL
    tolerance: float = CLASS_TOLERANCE

    @property
    def present(self) -> np.ndarray:
        return self.test_count > 0

    @property
    def in_range(self) -> np.ndarray:
        """(K,) whether the mean coverage lies in the sampling range (False where absent)."""
        eps = 1e-9  # a mean equal to a range end is inside
        inside = (self.coverage_mean >= self.range_low - eps) & (self.coverage_mean <= self.range_high + eps)
        return self.present & inside

    @property
    def within_tolerance(self) -> np.ndarray:
        """(K,) whether the mean coverage is within ``tolerance`` of ``1 - alpha`` (False where absent)."""
        return self.present & (np.abs(self.coverage_mean - (1.0 - self.alpha)) <= self.tolerance + 1e-9)


def class_coverage(
    calibrator: ConformalCalibrator,
    validation_probs,
    validation_labels,
    test_probs,
    test_labels,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    level: float = RANGE_LEVEL,
    tolerance: float = CLASS_TOLERANCE,
) -> ClassCoverage:
    """Refit a Mondrian calibrator over ``draws`` draws of the uniforms and score each class's coverage.

    Args:
        calibrator: Its settings (alpha, score, randomized, lam, k_reg, allow_empty) are used; it
            must be Mondrian. It is copied, never refitted in place.
        validation_probs: Calibration probabilities (n, K).
        validation_labels: Calibration labels (n,).
        test_probs: Test probabilities (N, K).
        test_labels: Test labels (N,).
        draws: Draws of the uniforms (calibration and test alike); 1 for a non-randomized score.
        seed: Seeds the draws.
        level: Mass of the sampling range.
        tolerance: Distance from ``1 - alpha`` counted as within tolerance.

    Returns:
        The :class:`ClassCoverage` of every class.
    """
    if not calibrator.mondrian:
        raise ValueError("class_coverage: the sampling range holds for class-conditional thresholds only; pass a "
                         "calibrator with mondrian=True (--mondrian)")
    if draws < 1:
        raise ValueError(f"class_coverage: draws must be a positive number of draws, got {draws}")
    test_probs = np.asarray(test_probs, dtype=np.float64)
    test_labels = np.asarray(test_labels)
    validation_labels = np.asarray(validation_labels)
    k, k_calibration = test_probs.shape[1], np.asarray(validation_probs).shape[1]
    if k_calibration != k:
        raise ValueError(f"class_coverage: the calibration probabilities have K = {k_calibration} classes but the test "
                         f"ones K = {k}; calibrate on the same model's outputs")
    m = np.bincount(test_labels, minlength=k)
    covered = np.zeros((draws, k))
    sizes = np.zeros((draws, k))
    settings = {name: getattr(calibrator, name) for name in ("alpha", "score", "randomized", "lam", "k_reg",
                                                             "allow_empty")}
    for d in range(draws):
        fitted = ConformalCalibrator(mondrian=True, **settings).fit(
            validation_probs, validation_labels, rng=np.random.default_rng([seed, d, 0]))
        sets = fitted.predict_sets(test_probs, rng=np.random.default_rng([seed, d, 1]))  # (N, K)
        hit = sets[np.arange(test_labels.shape[0]), test_labels]
        covered[d] = np.bincount(test_labels, weights=hit, minlength=k)
        sizes[d] = np.bincount(test_labels, weights=sets.sum(axis=1), minlength=k)
    n = np.asarray(fitted.num_calibration)
    low, high = np.full(k, np.nan), np.full(k, np.nan)
    for c in np.flatnonzero(m):
        lo, hi = covered_count_range(int(n[c]), int(m[c]), calibrator.alpha, level)
        low[c], high[c] = lo / m[c], hi / m[c]
    with np.errstate(invalid="ignore", divide="ignore"):
        coverage = covered / m  # (D, K)
        size = sizes / m
    return ClassCoverage(calibrator.alpha, calibrator.score, n, m, coverage.mean(axis=0),
                         coverage.std(axis=0), size.mean(axis=0), low, high, draws, level, tolerance)


def _value(x) -> float | None:
    return None if np.isnan(x) else float(x)


def class_coverage_metrics(reports: Sequence[ClassCoverage], class_names: Sequence[str]) -> dict[str, float | None]:
    """The ``metrics.json`` keys of the module docstring."""
    if not reports:
        return {}
    first = reports[0]
    metrics: dict[str, float | None] = {"conformal_class_draws": first.draws,
                                        "conformal_class_range_level": first.level,
                                        "conformal_class_tolerance": first.tolerance}
    for c, name in enumerate(class_names):
        metrics[f"conformal_class_calibration_count/{name}"] = int(first.calibration_count[c])
        metrics[f"conformal_class_test_count/{name}"] = int(first.test_count[c])
    for report in reports:
        key = f"{report.alpha:g}/{report.score}"
        metrics[f"conformal_classes_in_range@{key}"] = int(report.in_range.sum())
        metrics[f"conformal_classes_within_tolerance@{key}"] = int(report.within_tolerance.sum())
        for c, name in enumerate(class_names):
            present = bool(report.present[c])
            metrics[f"conformal_class_coverage_mean@{key}/{name}"] = _value(report.coverage_mean[c])
            metrics[f"conformal_class_coverage_sd@{key}/{name}"] = _value(report.coverage_sd[c])
            metrics[f"conformal_class_set_size_mean@{key}/{name}"] = _value(report.set_size_mean[c])
            metrics[f"conformal_class_range_low@{key}/{name}"] = _value(report.range_low[c])
            metrics[f"conformal_class_range_high@{key}/{name}"] = _value(report.range_high[c])
            metrics[f"conformal_class_in_range@{key}/{name}"] = int(report.in_range[c]) if present else None
            metrics[f"conformal_class_within_tolerance@{key}/{name}"] = (int(report.within_tolerance[c]) if present
                                                                         else None)
    return metrics


def class_coverage_markdown(reports: Sequence[ClassCoverage], class_names: Sequence[str]) -> str:
    """One Markdown table per (alpha, score): n, m, coverage, set size, the range and both checks."""
    from evaluation.report import markdown_table

    parts = []
    for report in reports:
        rows = []
        for c, name in enumerate(class_names):
            if not report.present[c]:
                rows.append([name, str(int(report.calibration_count[c])), "0"] + ["n/a"] * 5)
                continue
            rows.append([name, str(int(report.calibration_count[c])), str(int(report.test_count[c])),
                         f"{report.coverage_mean[c]:.3f} ± {report.coverage_sd[c]:.3f}",
                         f"{report.set_size_mean[c]:.2f}",
                         f"{report.range_low[c]:.3f}-{report.range_high[c]:.3f}",
                         "yes" if report.in_range[c] else "no", "yes" if report.within_tolerance[c] else "no"])
        header = ["Class", "n (calibration)", "m (test)", "Coverage (mean ± SD)", "Mean set size",
                  f"{report.level:.0%} range", "In range", f"Within {report.tolerance * 100:g} pts"]
        parts.append(f"**{report.score}, alpha {report.alpha:g}** (target {1 - report.alpha:.3f}; "
                     f"{report.draws} draws)\n\n" + markdown_table(header, rows))
    return "\n\n".join(parts)
