"""Figures: reliability diagram, confusion matrix, risk-coverage curve, intensity distributions.

The only module of the package that imports matplotlib. Figures are built with the
object-oriented API on the Agg canvas (no pyplot, no global figure state, nothing shown);
every function returns ``(fig, ax)`` and :func:`save_figure` writes PNG and PDF.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.stats import norm

from evaluation.calibration_error import DEFAULT_NUM_BINS, reliability_bins, top_label
from evaluation.metrics import confusion_matrix
from evaluation.uncertainty import optimal_aurc, risk_coverage_curve

_GAP_COLOR = "#d62728"
_BAR_COLOR = "#1f77b4"


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def reliability_diagram(
    probs, labels, num_bins: int = DEFAULT_NUM_BINS, title: str | None = None
) -> tuple[Figure, tuple[Axes, Axes]]:
    """Reliability diagram of the top-label confidence, with the confidence histogram below.

    Bars show each bin's accuracy, hatched bars the gap to its mean confidence; the legend
    gives the ECE. The histogram marks the overall accuracy and the mean confidence.

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).
        num_bins: Number of equal-width bins.
        title: Optional title.

    Returns:
        ``(fig, (ax_reliability, ax_histogram))``.
    """
    bins = reliability_bins(probs, labels, num_bins)
    centers = (bins.edges[:-1] + bins.edges[1:]) / 2
    width = 1.0 / num_bins
    filled = bins.counts > 0
    fig = _figure(5.0, 6.0)
    ax, ax_hist = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})

    ax.plot([0, 1], [0, 1], linestyle="--", color="0.4", label="Perfect calibration")
    ax.bar(centers[filled], bins.accuracy[filled], width=width, color=_BAR_COLOR, edgecolor="black",
           linewidth=0.6, label="Accuracy")
    # Hatched outlines drawn on top, so a gap is readable whether it lies above or inside the bar.
    ax.bar(centers[filled], (bins.confidence - bins.accuracy)[filled], bottom=bins.accuracy[filled], width=width,
           facecolor=(1.0, 0.85, 0.85, 0.6), edgecolor=_GAP_COLOR, hatch="///", linewidth=0.8, zorder=3,
           label="Gap to confidence")
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="Accuracy", title=title or "Reliability diagram")
    ax.set_aspect("auto")
    ax.legend(loc="upper left", title=f"ECE = {bins.expected_error():.4f}")
    ax.grid(alpha=0.3)

    accuracy = float(np.sum(bins.accuracy * bins.counts) / bins.num_examples)
    mean_confidence = float(np.sum(bins.confidence * bins.counts) / bins.num_examples)
    ax_hist.bar(centers, bins.counts, width=width, color="0.6", edgecolor="black", linewidth=0.6)
    ax_hist.axvline(accuracy, color=_BAR_COLOR, linestyle="-", label=f"Accuracy {accuracy:.3f}")
    ax_hist.axvline(mean_confidence, color=_GAP_COLOR, linestyle="--", label=f"Avg. confidence {mean_confidence:.3f}")
    ax_hist.set(xlabel="Confidence", ylabel="Count", xlim=(0, 1))
    ax_hist.legend(loc="best", fontsize="small")
    return fig, (ax, ax_hist)


def confusion_matrix_plot(
    probs, labels, class_names: Sequence[str], normalize: bool = True, title: str | None = None
) -> tuple[Figure, Axes]:
    """Confusion matrix heat map, true classes as rows (the paper's Fig. 4).

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).
        class_names: K names for the ticks.
        normalize: Show each row as fractions of its class (recall on the diagonal) rather than counts.
        title: Optional title.

    Returns:
        ``(fig, ax)``.
    """
    matrix = confusion_matrix(probs, labels, normalize="true" if normalize else None)
    k = matrix.shape[0]
    if len(class_names) != k:
        raise ValueError(f"class_names: expected {k} names to match probs (K = {k}), found {len(class_names)}")
    fig = _figure(1.0 + 0.75 * k, 0.6 + 0.7 * k)
    ax = fig.add_subplot()
    top = 1.0 if normalize else max(float(matrix.max()), 1.0)
    image = ax.imshow(matrix, cmap="Blues", vmin=0.0, vmax=top)
    fig.colorbar(image, ax=ax, shrink=0.8, label="Fraction of true class" if normalize else "Count")
    for i in range(k):
        for j in range(k):
            text = f"{matrix[i, j]:.2f}" if normalize else f"{int(matrix[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize="small",
                    color="white" if matrix[i, j] > top / 2 else "black")
    ax.set_xticks(range(k), labels=list(class_names), rotation=45, ha="right")
    ax.set_yticks(range(k), labels=list(class_names))
    ax.set(xlabel="Predicted", ylabel="True", title=title or "Confusion matrix")
    return fig, ax


def risk_coverage_plot(
    probs, labels, confidences: Mapping[str, np.ndarray] | None = None, title: str | None = None
) -> tuple[Figure, Axes]:
    """Risk-coverage curves: the error rate among the most confident examples at each coverage.

    Args:
        probs: Class probabilities (N, K).
        labels: Class indices (N,).
        confidences: Named confidence scores (N,), higher meaning more confident; by default
            the maximum probability alone.
        title: Optional title.

    Returns:
        ``(fig, ax)``; the legend gives each curve's AURC, and the dotted curve is the best
        attainable ranking.
    """
    max_prob, correct = top_label(probs, labels)
    confidences = {"max prob": max_prob} if confidences is None else confidences
    fig = _figure(5.0, 4.0)
    ax = fig.add_subplot()
    for name, confidence in confidences.items():
        coverage, risk = risk_coverage_curve(probs, labels, confidence)
        ax.plot(coverage, risk, label=f"{name} (AURC {np.mean(risk):.4f})")
    coverage, risk = risk_coverage_curve(probs, labels, correct)
    ax.plot(coverage, risk, linestyle=":", color="0.3", label=f"optimal (AURC {optimal_aurc(probs, labels):.4f})")
    ax.set(xlabel="Coverage", ylabel="Risk (error rate)", xlim=(0, 1), ylim=(0, None),
           title=title or "Risk-coverage curve")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return fig, ax


def intensity_distributions_plot(
    loc,
    scale,
    class_names: Sequence[str],
    examples: Mapping[str, int],
    probs=None,
    labels=None,
) -> tuple[Figure, np.ndarray]:
    """Per-class Normal densities of the latent expression intensity for chosen images (the paper's Fig. 5).

    Args:
        loc: Intensity means (N, K).
        scale: Intensity standard deviations (N, K); a class with scale 0 is drawn as a
            vertical line at its mean.
        class_names: K names for the legend.
        examples: Panel title -> example index, e.g. from
            :func:`evaluation.uncertainty.select_examples`.
        probs: Optional class probabilities (N, K), for the predicted class in each title.
        labels: Optional class indices (N,), for the true class in each title.

    Returns:
        ``(fig, axes)`` with one axis per example.
    """
    loc, scale = np.asarray(loc, dtype=float), np.asarray(scale, dtype=float)
    if loc.shape != scale.shape or loc.ndim != 2:
        raise ValueError(f"loc and scale: expected equal shapes (N, K), found {loc.shape} and {scale.shape}")
    if not examples:
        raise ValueError("examples: expected at least one (title -> index) entry, found none")
    colors = [f"C{k % 10}" for k in range(loc.shape[1])]
    fig = _figure(4.2 * len(examples), 3.6)
    axes = np.atleast_1d(fig.subplots(1, len(examples), squeeze=False)[0])
    for ax, (name, index) in zip(axes, examples.items()):
        mu, sigma = loc[index], scale[index]
        spread = np.where(sigma > 0, 4 * sigma, 0.5)
        grid = np.linspace(np.min(mu - spread), np.max(mu + spread), 400)
        for k, class_name in enumerate(class_names):
            if sigma[k] > 0:
                ax.plot(grid, norm.pdf(grid, mu[k], sigma[k]), color=colors[k], label=class_name)
            else:
                ax.axvline(mu[k], color=colors[k], label=class_name)
        parts = [name.replace("_", " ")]
        if labels is not None:
            parts.append(f"true: {class_names[int(np.asarray(labels)[index])]}")
        if probs is not None:
            row = np.asarray(probs)[index]
            parts.append(f"pred: {class_names[int(np.argmax(row))]} ({row.max():.2f})")
        ax.set(title=f"#{index} " + "\n".join(parts), xlabel="Latent intensity", ylabel="Density")
        ax.grid(alpha=0.3)
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
    return fig, axes


def save_figure(fig: Figure, directory: str | os.PathLike, stem: str,
                formats: Sequence[str] = ("png", "pdf"), dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``directory/stem.<format>`` for each format; returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{stem}.{fmt}" for fmt in formats]
    for path in paths:
        fig.savefig(path, dpi=dpi)
    return paths


def vote_ppc_plot(ppc: Mapping[str, object]) -> tuple[Figure, np.ndarray]:
    """Posterior-predictive check of the votes (:func:`evaluation.ppc.vote_ppc`): the replicated
    mean vote entropy against the real one, and per-face real against simulated vote entropy.

    Returns:
        ``(fig, axes)`` with two axes.
    """
    replicated = np.asarray(ppc["replicated_entropy"], dtype=float)  # (R, N)
    observed = np.asarray(ppc["observed_entropy"], dtype=float)  # (N,)
    fig = _figure(9.0, 3.6)
    left, right = fig.subplots(1, 2)
    left.hist(replicated.mean(1), bins=30, color="C0", alpha=0.7, label="simulated from the model")
    left.axvline(observed.mean(), color="C3", linewidth=2, label="real votes")
    left.set(title=f"Mean vote entropy (p = {ppc['p_value/vote_entropy']:.2f})", xlabel="Mean vote entropy (nats)",
             ylabel="Simulated vote sets")
    left.legend(fontsize="small")
    bins = np.linspace(0.0, max(observed.max(), replicated.max()) + 1e-9, 25)
    right.hist(replicated.ravel(), bins=bins, density=True, color="C0", alpha=0.6, label="simulated")
    right.hist(observed, bins=bins, density=True, histtype="step", color="C3", linewidth=2, label="real")
    right.set(title=f"Per-face vote entropy ({ppc['face_coverage_90']:.0%} of faces inside their 90% band)",
              xlabel="Vote entropy (nats)", ylabel="Density")
    right.legend(fontsize="small")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return fig, np.array([left, right])
