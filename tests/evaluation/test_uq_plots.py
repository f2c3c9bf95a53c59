"""Figures for conformal sets, OOD detection and corruptions: what they draw."""
from __future__ import annotations

import numpy as np
import pytest

from evaluation import uq_plots
from evaluation.conformal_metrics import ConformalSettings, conformal_metrics
from evaluation.predictions import Predictions


def test_conformal_coverage_plot_draws_a_bar_per_class_and_result():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    probs = rng.dirichlet(np.ones(3), 200)
    split = Predictions(probs=probs, labels=labels)
    _, results = conformal_metrics(split, split, ConformalSettings(alphas=(0.1, 0.2), scores=("aps",)), "abc")
    fig, (ax_cov, ax_size) = uq_plots.conformal_coverage_plot(results, ["a", "b", "c"])
    assert len(ax_cov.patches) == 6 and len(ax_size.patches) == 6
    np.testing.assert_allclose([p.get_height() for p in ax_cov.patches[:3]], results[0].class_coverage)
    assert sorted(round(line.get_ydata()[0], 6) for line in ax_cov.get_lines()) == [0.8, 0.9]
    with pytest.raises(ValueError, match="at least one"):
        uq_plots.conformal_coverage_plot([], ["a"])


def test_class_coverage_plot_shades_each_range_and_marks_each_mean():
    from bayes_fer.conformal import ConformalCalibrator
    from evaluation.class_coverage import class_coverage

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    probs = rng.dirichlet(np.ones(3), 300) * 0.5 + 0.5 * np.eye(3)[labels]
    reports = [class_coverage(ConformalCalibrator(alpha=alpha, score=score, mondrian=True), probs[:150],
                              labels[:150], probs[150:], labels[150:], draws=2)
               for alpha in (0.1, 0.2) for score in ("aps", "raps")]
    fig, axes = uq_plots.class_coverage_plot(reports, ["a", "b", "c"])
    assert len(axes) == 2 and len(axes[0].patches) == 6  # two scores x three classes
    np.testing.assert_allclose([p.get_y() for p in axes[0].patches[:3]], reports[0].range_low)
    np.testing.assert_allclose([p.get_y() + p.get_height() for p in axes[1].patches[3:]], reports[3].range_high)
    assert axes[1].get_title().startswith("alpha = 0.2 (target 0.80")
    assert [t.get_text().split("\n")[1] for t in axes[1].get_xticklabels()] == \
        [f"{n} / {m}" for n, m in zip(reports[0].calibration_count, reports[0].test_count)]
    with pytest.raises(ValueError, match="at least one"):
        uq_plots.class_coverage_plot([], ["a"])


def test_ood_figures_title_each_score_with_its_auroc():
    faces = {"max_prob": np.array([0.1, 0.2, 0.3]), "entropy": np.array([0.5, 0.6, 0.7])}
    other = {"max_prob": np.array([0.4, 0.5]), "entropy": np.array([0.1, 0.2])}
    fig, axes = uq_plots.ood_histogram_plot(faces, other)
    assert [ax.get_title() for ax in axes[:2]] == ["1 - max prob (AUROC 1.000)", "entropy (AUROC 0.000)"]
    fig, ax = uq_plots.ood_roc_plot(faces, other)
    labels = [line.get_label() for line in ax.get_lines()]
    assert "1 - max prob (1.000)" in labels and "entropy (0.000)" in labels


def test_corruption_plot_has_a_panel_per_metric_and_a_line_per_corruption():
    table = {c: {"accuracy": np.linspace(0.9, 0.4, 6), "entropy": np.linspace(0.2, 1.0, 6)}
             for c in ("jpeg", "contrast", "mean")}
    fig, axes = uq_plots.corruption_plot(table)
    assert [ax.get_title() for ax in axes[:2]] == ["accuracy", "entropy"]
    assert len(axes[0].get_lines()) == 3
    np.testing.assert_allclose(axes[1].get_lines()[0].get_ydata(), table["jpeg"]["entropy"])
