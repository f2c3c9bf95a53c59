"""Markdown tables and the evaluation report, built from the flat metrics mapping.

The summary table (also printed by the CLI), the per-class table (the paper's Table 4),
selective accuracy, misclassification detection and the vote metrics, followed by the figures.
When the data set lacks some of the model's classes, a "Shared classes" section scores the
classes both have (the ``shared/`` entries).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from evaluation.summary import Metrics

#: (key, row label) for the summary table, in order.
SUMMARY_ROWS: tuple[tuple[str, str], ...] = (
    ("accuracy", "Accuracy"),
    ("accuracy_argmax_loc", "Accuracy (argmax of intensity means)"),
    ("balanced_accuracy", "Balanced accuracy"),
    ("macro_f1", "Macro F1"),
    ("nll", "NLL"),
    ("brier", "Brier score"),
    ("ece", "ECE"),
    ("mce", "MCE"),
    ("average_calibration_error", "Average calibration error (netcal ACE: equal-width bins weighted equally)"),
    ("adaptive_ece", "Adaptive ECE (equal-mass bins)"),
    ("classwise_ece", "Class-wise ECE"),
    ("aurc", "AURC"),
    ("eaurc", "E-AURC"),
    ("entropy_mean", "Mean predictive entropy (nats)"),
    ("mutual_information_mean", "Mean mutual information (nats)"),
)

VOTE_ROWS: tuple[tuple[str, str], ...] = (
    ("votes/kl", "KL(votes ‖ prediction) (nats)"),
    ("votes/js", "Jensen-Shannon divergence (nats)"),
    ("votes/total_variation", "Total variation"),
    ("votes/probability_correlation", "Correlation: probabilities vs vote shares"),
    ("votes/entropy_correlation", "Correlation: predicted vs vote entropy"),
    ("votes/intensity_correlation", "Correlation: intensity means vs vote shares"),
    ("votes/intensity_correlation_per_image", "Correlation per image: intensity means vs vote shares"),
)


def format_value(value: float | int | None) -> str:
    """Four decimals for floats, integers as they are, ``n/a`` for undefined values."""
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; the first column left-aligned, the rest right-aligned."""
    align = [":--"] + ["--:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _rows(metrics: Metrics, spec: Sequence[tuple[str, str]], calibrated: bool) -> list[list[str]]:
    rows = []
    for key, label in spec:
        if key not in metrics:
            continue
        row = [label, format_value(metrics[key])]
        if calibrated:
            row.append(format_value(metrics.get(f"calibrated/{key}")))
        rows.append(row)
    return rows


def _has_calibrated(metrics: Metrics) -> bool:
    return "temperature" in metrics


def summary_table(metrics: Metrics) -> str:
    """The headline metrics; with a second column after temperature scaling when it was fitted."""
    calibrated = _has_calibrated(metrics)
    header = ["Metric", "Value"]
    if calibrated:
        header = ["Metric", "Before", f"After temperature scaling (T = {metrics['temperature']:.3f})"]
    return markdown_table(header, _rows(metrics, SUMMARY_ROWS, calibrated))


def shared_summary_table(metrics: Metrics) -> str:
    """The headline metrics over the shared classes only (the ``shared/<key>`` entries)."""
    shared = {key[len("shared/"):]: value for key, value in metrics.items() if key.startswith("shared/")}
    return markdown_table(["Metric", "Value"], _rows(shared, SUMMARY_ROWS, calibrated=False))


def per_class_table(metrics: Metrics, class_names: Sequence[str]) -> str:
    """Precision, recall, F1, support and class-wise ECE per class (the paper's Table 4)."""
    fields = ("precision", "recall", "f1", "support", "ece_classwise")
    rows = [[name] + [format_value(metrics.get(f"{field}/{name}")) for field in fields] for name in class_names]
    return markdown_table(["Class", "Precision", "Recall", "F1", "Support", "Class-wise ECE"], rows)


def selective_table(metrics: Metrics) -> str:
    """Selective accuracy at each reported coverage."""
    calibrated = _has_calibrated(metrics)
    keys = [key for key in metrics if key.startswith("selective_accuracy/")]
    spec = [(key, f"{float(key.split('/', 1)[1]):.0%}") for key in keys]
    header = ["Coverage", "Selective accuracy"] + (["After temperature scaling"] if calibrated else [])
    return markdown_table(header, _rows(metrics, spec, calibrated))


def misclassification_table(metrics: Metrics) -> str:
    """AUROC of each uncertainty score at flagging misclassified examples."""
    calibrated = _has_calibrated(metrics)
    names = {"max_prob": "1 - max probability", "entropy": "Predictive entropy",
             "mutual_information": "Mutual information"}
    spec = [(f"auroc_misclassification/{key}", label) for key, label in names.items()]
    header = ["Score", "AUROC"] + (["After temperature scaling"] if calibrated else [])
    return markdown_table(header, _rows(metrics, spec, calibrated))


def votes_table(metrics: Metrics) -> str:
    """Distribution-level agreement with annotator votes."""
    calibrated = _has_calibrated(metrics)
    header = ["Metric", "Value"] + (["After temperature scaling"] if calibrated else [])
    return markdown_table(header, _rows(metrics, VOTE_ROWS, calibrated))


def markdown_report(
    metrics: Metrics,
    class_names: Sequence[str],
    figures: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    title: str = "Evaluation report",
    scope_notes: Sequence[str] = (),
    shared_classes: Sequence[str] = (),
) -> str:
    """The full report.

    Args:
        metrics: The flat metrics mapping.
        class_names: K class names.
        figures: Caption -> image path relative to the report.
        notes: Lines listed under "Notes" (e.g. what was skipped and why).
        title: The top heading.
        scope_notes: Sentences on what was evaluated (images left out, how the data set's
            classes match the model's), shown right after the introduction.
        shared_classes: The classes of the ``shared/`` metrics, when there are any.

    Returns:
        Markdown text.
    """
    n, k, s = metrics.get("num_examples"), metrics.get("num_classes"), metrics.get("num_mc_samples")
    intro = f"{n} examples, {k} classes" + (f", {s} Monte-Carlo samples" if s else "") + "."
    sections = [f"# {title}", intro]
    if scope_notes:
        sections += ["## What was evaluated", "\n".join(f"- {note}" for note in scope_notes)]
    sections += ["## Summary", summary_table(metrics),
                "## Per class", per_class_table(metrics, class_names),
                "## Selective prediction", selective_table(metrics),
                "## Misclassification detection", misclassification_table(metrics)]
    if shared_classes and "shared/accuracy" in metrics:
        shared = {key[len("shared/"):]: value for key, value in metrics.items() if key.startswith("shared/")}
        sections += [f"## Shared classes ({len(shared_classes)}: {', '.join(shared_classes)})",
                     f"{shared.get('num_examples')} examples; probabilities restricted to these classes and "
                     "renormalised to sum to 1.",
                     shared_summary_table(metrics), per_class_table(shared, shared_classes)]
    if any(key.startswith("votes/") for key in metrics):
        sections += ["## Agreement with annotator votes", votes_table(metrics)]
    if figures:
        sections.append("## Figures")
        sections += [f"**{caption}**\n\n![{caption}]({path})" for caption, path in figures.items()]
    unavailable = metrics.get("unavailable") or {}
    notes = list(notes) + [f"{key} is not reported: {why}" for key, why in unavailable.items()]
    if notes:
        sections += ["## Notes", "\n".join(f"- {note}" for note in notes)]
    return "\n\n".join(sections) + "\n"
