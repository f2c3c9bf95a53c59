"""Figures have the expected axes and content, and matplotlib stays inside evaluation.plots."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation import plots
from evaluation.calibration_error import reliability_bins

PACKAGE = Path(__file__).resolve().parents[2] / "evaluation"


def test_reliability_diagram(seven_confidences):
    fig, (ax, ax_hist) = plots.reliability_diagram(*seven_confidences, num_bins=4)
    assert ax.get_ylabel() == "Accuracy"
    assert ax_hist.get_xlabel() == "Confidence" and ax_hist.get_ylabel() == "Count"
    assert ax.get_legend().get_title().get_text() == "ECE = 0.2500"
    accuracy_bars, gap_bars = ax.containers
    # Three non-empty bins: accuracy bars at 1/2, 1, 2/3; gaps reach the mean confidences.
    np.testing.assert_allclose([bar.get_height() for bar in accuracy_bars], [0.5, 1.0, 2 / 3])
    tops = [bar.get_y() + bar.get_height() for bar in gap_bars]
    np.testing.assert_allclose(tops, [0.375, 0.575, 2.65 / 3])
    (histogram,) = ax_hist.containers
    np.testing.assert_array_equal([bar.get_height() for bar in histogram], [0, 2, 2, 3])
    assert {line.get_label() for line in ax_hist.get_lines()} == {"Accuracy 0.714", "Avg. confidence 0.650"}


def test_confusion_matrix_plot(four_examples):
    fig, ax = plots.confusion_matrix_plot(*four_examples, class_names=["neutral", "happiness", "surprise"])
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Predicted", "True")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["neutral", "happiness", "surprise"]
    np.testing.assert_allclose(ax.images[0].get_array(), [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0, 0, 0]])
    _, counts_ax = plots.confusion_matrix_plot(*four_examples, class_names=["a", "b", "c"], normalize=False)
    assert "1" in [t.get_text() for t in counts_ax.texts]
    with pytest.raises(ValueError, match=r"class_names: expected 3 names to match probs \(K = 3\), found 2"):
        plots.confusion_matrix_plot(*four_examples, class_names=["a", "b"])


def test_risk_coverage_plot():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 1])
    fig, ax = plots.risk_coverage_plot(probs, labels)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Coverage", "Risk (error rate)")
    curve, optimal = ax.get_lines()
    np.testing.assert_allclose(curve.get_ydata(), [0, 1 / 2, 1 / 3, 1 / 2])
    assert curve.get_label() == "max prob (AURC 0.3333)"
    assert optimal.get_label() == "optimal (AURC 0.2083)"


def test_intensity_distributions_plot():
    loc = np.array([[2.0, 0.0, -1.0], [0.5, 0.4, 0.3]])
    scale = np.array([[0.5, 1.0, 0.0], [0.2, 0.2, 0.2]])
    fig, axes = plots.intensity_distributions_plot(
        loc, scale, ["a", "b", "c"], {"most_confident": 0, "most_uncertain": 1},
        probs=np.array([[0.8, 0.15, 0.05], [0.4, 0.3, 0.3]]), labels=np.array([0, 1]),
    )
    assert len(axes) == 2
    assert all(ax.get_xlabel() == "Latent intensity" and ax.get_ylabel() == "Density" for ax in axes)
    assert axes[0].get_title() == "#0 most confident\ntrue: a\npred: a (0.80)"
    lines = axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["a", "b", "c"]
    # Density of class a peaks at its mean with height 1 / (0.5 sqrt(2 pi)); class c (scale 0) is a vertical line.
    assert lines[0].get_ydata().max() == pytest.approx(1 / (0.5 * np.sqrt(2 * np.pi)), rel=1e-3)
    np.testing.assert_array_equal(lines[2].get_xdata(), [-1.0, -1.0])
    with pytest.raises(ValueError, match="examples: expected at least one"):
        plots.intensity_distributions_plot(loc, scale, ["a", "b", "c"], {})


def test_save_figure_writes_png_and_pdf(tmp_path, seven_confidences):
    fig, _ = plots.reliability_diagram(*seven_confidences)
    paths = plots.save_figure(fig, tmp_path / "figs", "reliability")
    assert [p.name for p in paths] == ["reliability.png", "reliability.pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"


def test_only_plots_imports_matplotlib():
    pattern = re.compile(r"^\s*(import|from)\s+matplotlib", re.MULTILINE)
    importers = sorted(p.name for p in PACKAGE.glob("*.py") if pattern.search(p.read_text()))
    assert all(name.endswith("plots.py") for name in importers), importers  # plotting modules only
    code = "import sys, evaluation, evaluation.calibration_error; assert 'matplotlib' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_reliability_bins_feed_the_diagram(seven_confidences):
    # The diagram draws exactly the non-empty bins of reliability_bins.
    bins = reliability_bins(*seven_confidences, num_bins=15)
    _, (ax, _) = plots.reliability_diagram(*seven_confidences, num_bins=15)
    assert len(ax.containers[0]) == int((bins.counts > 0).sum())
