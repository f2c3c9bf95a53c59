"""Markdown tables and the report."""
from __future__ import annotations

from evaluation.report import format_value, markdown_report, markdown_table, per_class_table, summary_table


def test_format_value():
    assert [format_value(v) for v in (None, 3, 0.123456)] == ["n/a", "3", "0.1235"]


def test_markdown_table():
    assert markdown_table(["A", "B"], [["x", "1"]]) == "| A | B |\n| :-- | --: |\n| x | 1 |"


def test_summary_table_with_and_without_temperature():
    metrics = {"accuracy": 0.5, "ece": 0.25, "mutual_information_mean": None}
    assert summary_table(metrics).splitlines()[2:] == [
        "| Accuracy | 0.5000 |", "| ECE | 0.2500 |", "| Mean mutual information (nats) | n/a |"]
    metrics.update({"temperature": 1.5, "calibrated/accuracy": 0.5, "calibrated/ece": 0.05})
    lines = summary_table(metrics).splitlines()
    assert lines[0] == "| Metric | Before | After temperature scaling (T = 1.500) |"
    assert lines[3] == "| ECE | 0.2500 | 0.0500 |"
    assert lines[4] == "| Mean mutual information (nats) | n/a | n/a |"


def test_per_class_table():
    metrics = {"precision/happiness": 0.9, "recall/happiness": 0.8, "f1/happiness": 0.85, "support/happiness": 10,
               "ece_classwise/happiness": 0.01}
    row = per_class_table(metrics, ["happiness"]).splitlines()[2]
    assert row == "| happiness | 0.9000 | 0.8000 | 0.8500 | 10 | 0.0100 |"


def test_report_sections():
    metrics = {"num_examples": 4, "num_classes": 2, "num_mc_samples": None, "accuracy": 0.5,
               "selective_accuracy/0.50": 1.0, "auroc_misclassification/max_prob": 0.75, "votes/kl": 0.1}
    text = markdown_report(metrics, ["a", "b"], {"Reliability diagram": "reliability_diagram.png"}, ["a note"])
    assert text.startswith("# Evaluation report\n\n4 examples, 2 classes.")
    assert "| 50% | 1.0000 |" in text
    assert "| 1 - max probability | 0.7500 |" in text
    assert "## Agreement with annotator votes" in text and "| KL(votes ‖ prediction) (nats) | 0.1000 |" in text
    assert "![Reliability diagram](reliability_diagram.png)" in text
    assert text.endswith("## Notes\n\n- a note\n")
