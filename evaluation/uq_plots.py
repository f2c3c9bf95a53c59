"""Figures for conformal sets, out-of-distribution detection and the corruption suite.

Like :mod:`evaluation.plots`, built on the Agg canvas with no global state; every function
returns ``(fig, ax)`` (``ax`` an array when there are several panels) and shows nothing.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from evaluation.class_coverage import ClassCoverage
from evaluation.conformal_metrics import ConformalResult
from evaluation.ood import ood_auroc, roc_curve
from evaluation.plots import _figure

#: Readable names of the scores for legends.
SCORE_LABELS = {"max_prob": "1 - max prob", "entropy": "entropy", "mutual_information": "mutual information",
                "aleatoric": "aleatoric (expected entropy)", "epistemic_mi": "epistemic MI",
                "spread": "spread of predicted class", "set_size": "conformal set size"}


def _label(name: str) -> str:
    return SCORE_LABELS.get(name, name)


def conformal_coverage_plot(results: Sequence[ConformalResult], class_names: Sequence[str],
                            title: str | None = None) -> tuple[Figure, np.ndarray]:
    """Coverage (top) and mean set size (bottom) per true class, one bar group per (alpha, score).

    Dashed lines mark each target ``1 - alpha``; the legend gives the overall coverage.

    Returns:
        ``(fig, (ax_coverage, ax_set_size))``.
    """
    if not results:
        raise ValueError("results: expected at least one (alpha, score) result, found none")
    k = len(class_names)
    fig = _figure(max(6.0, 0.9 * k + 2) + 3.0, 6.5)
    ax_cov, ax_size = fig.subplots(2, 1, sharex=True)
    width = 0.8 / len(results)
    x = np.arange(k)
    for i, result in enumerate(results):
        offset = (i - (len(results) - 1) / 2) * width
        color = f"C{i % 10}"
        ax_cov.bar(x + offset, result.class_coverage, width, color=color,
                   label=f"{result.score} α={result.alpha:g} (overall {result.coverage:.3f})")
        ax_size.bar(x + offset, result.class_set_size, width, color=color)
    for alpha in sorted({r.alpha for r in results}):
        ax_cov.axhline(1 - alpha, color="0.3", linestyle="--", linewidth=0.8)
        ax_cov.annotate(f"1 - {alpha:g}", (1.0, 1 - alpha), xycoords=("axes fraction", "data"), fontsize="small",
                        xytext=(2, 0), textcoords="offset points", va="center")
    low = min(float(np.nanmin(r.class_coverage)) for r in results)
    ax_cov.set(ylabel="Coverage", ylim=(max(0.0, min(low, min(1 - r.alpha for r in results)) - 0.05), 1.0),
               title=title or "Conformal sets per true class")
    ax_cov.legend(loc="upper left", bbox_to_anchor=(1.08, 1.0), fontsize="small")
    ax_cov.grid(axis="y", alpha=0.3)
    ax_size.set(ylabel="Mean set size")
    ax_size.set_xticks(x, labels=list(class_names), rotation=45, ha="right")
    ax_size.grid(axis="y", alpha=0.3)
    return fig, np.array([ax_cov, ax_size])


def class_coverage_plot(reports: Sequence[ClassCoverage], class_names: Sequence[str],
                        title: str | None = None) -> tuple[Figure, np.ndarray]:
    """Per-class coverage of Mondrian sets against its sampling range, one panel per alpha.

    For each class and score: a shaded bar spans the central range of the coverage under
    exchangeability, a marker gives the mean coverage over the draws (whiskers: its SD); the
    dashed line is ``1 - alpha`` and the dotted lines the tolerance around it.

    Returns:
        ``(fig, axes)``, one axis per alpha.
    """
    if not reports:
        raise ValueError("reports: expected at least one (alpha, score) class-coverage report, found none")
    alphas = sorted({r.alpha for r in reports})
    scores = list(dict.fromkeys(r.score for r in reports))
    k = len(class_names)
    fig = _figure(max(6.0, 0.9 * k + 2.5), 2.8 * len(alphas) + 0.6)
    axes = np.atleast_1d(fig.subplots(len(alphas), 1, sharex=True, squeeze=False).ravel())
    x = np.arange(k)
    width = 0.7 / len(scores)
    first = reports[0]
    for ax, alpha in zip(axes, alphas):
        for report in (r for r in reports if r.alpha == alpha):
            i = scores.index(report.score)
            offset = (i - (len(scores) - 1) / 2) * width
            color = f"C{i % 10}"
            ax.bar(x + offset, report.range_high - report.range_low, width * 0.9, bottom=report.range_low,
                   color=color, alpha=0.25, label=f"{report.score}: {report.level:.0%} range")
            ax.errorbar(x + offset, report.coverage_mean, yerr=report.coverage_sd, fmt="o", color=color,
                        markersize=4, capsize=2, label=f"{report.score}: coverage")
        target = 1 - alpha
        ax.axhline(target, color="0.2", linestyle="--", linewidth=0.9)
        for edge in (target - first.tolerance, min(1.0, target + first.tolerance)):
            ax.axhline(edge, color="0.5", linestyle=":", linewidth=0.8)
        ax.set(ylabel="Coverage",
               title=f"alpha = {alpha:g} (target {target:.2f}, ±{first.tolerance * 100:g} pts dotted)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    labels = [f"{name}\n{int(n)} / {int(m)}" for name, n, m in zip(class_names, first.calibration_count,
                                                                    first.test_count)]
    axes[-1].set_xticks(x, labels=labels, rotation=45, ha="right")
    axes[-1].set_xlabel("Class (calibration / test examples)")
    if title:
        fig.suptitle(title)
    return fig, axes


def ood_histogram_plot(in_scores: Mapping[str, np.ndarray], out_scores: Mapping[str, np.ndarray],
                       in_label: str = "faces", out_label: str = "non-faces") -> tuple[Figure, np.ndarray]:
    """One histogram panel per score shared by both sets, titled with its OOD AUROC."""
    names = [name for name in in_scores if name in out_scores]
    if not names:
        raise ValueError("expected at least one score present in both in_scores and out_scores, found none")
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig = _figure(4.0 * cols, 3.0 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax, name in zip(axes, names):
        both = np.concatenate([in_scores[name], out_scores[name]])
        bins = np.linspace(both.min(), both.max() + 1e-12, 40)
        ax.hist(in_scores[name], bins, density=True, alpha=0.6, label=in_label)
        ax.hist(out_scores[name], bins, density=True, alpha=0.6, label=out_label)
        ax.set(title=f"{_label(name)} (AUROC {ood_auroc(in_scores[name], out_scores[name]):.3f})",
               ylabel="Density")
    for ax in axes[len(names):]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small")
    return fig, axes


def ood_roc_plot(in_scores: Mapping[str, np.ndarray], out_scores: Mapping[str, np.ndarray],
                 title: str | None = None) -> tuple[Figure, Axes]:
    """ROC curves of each score flagging OOD inputs, with its AUROC in the legend."""
    fig = _figure(5.0, 4.5)
    ax = fig.add_subplot()
    for name in in_scores:
        if name in out_scores:
            fpr, tpr = roc_curve(in_scores[name], out_scores[name])
            ax.plot(fpr, tpr, label=f"{_label(name)} ({ood_auroc(in_scores[name], out_scores[name]):.3f})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="0.4")
    ax.axhline(0.95, color="0.6", linewidth=0.6)
    ax.set(xlabel="False positive rate (faces flagged)", ylabel="True positive rate (non-faces flagged)",
           xlim=(0, 1), ylim=(0, 1.01), title=title or "Out-of-distribution detection")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3)
    return fig, ax


def corruption_plot(table: Mapping[str, Mapping[str, np.ndarray]], title: str | None = None
                    ) -> tuple[Figure, np.ndarray]:
    """Accuracy, ECE and each score's mean against severity (0 = clean), one line per corruption."""
    if not table:
        raise ValueError("table: expected at least one corruption, found none")
    metrics = list(next(iter(table.values())))
    cols = min(3, len(metrics))
    rows = -(-len(metrics) // cols)
    fig = _figure(4.0 * cols, 3.0 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    severities = np.arange(len(next(iter(next(iter(table.values())).values()))))
    for ax, metric in zip(axes, metrics):
        for i, (corruption, values) in enumerate(table.items()):
            mean = corruption == "mean"
            ax.plot(severities, values[metric], marker="o", markersize=3,
                    color="black" if mean else f"C{i % 10}", linewidth=2.0 if mean else 1.0,
                    linestyle="--" if mean else "-", label=corruption.replace("_", " "))
        ax.set(title=_label(metric), xlabel="Severity (0 = clean)", xticks=severities)
        ax.grid(alpha=0.3)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig, axes
