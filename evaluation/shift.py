"""Conformal sets, out-of-distribution detection and the corruption suite in ``python -m evaluation.calibration``.

This module holds the flags, gathers what they ask for (running the model where the
checkpoint mode needs it) and scores it; :mod:`evaluation.calibration` calls
:func:`add_arguments`, :func:`check_arguments`, :func:`gather` and :func:`evaluate_shift`.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bayes_fer.conformal import SCORES
from evaluation.class_coverage import DEFAULT_DRAWS, class_coverage, class_coverage_markdown, class_coverage_metrics
from evaluation.conformal_metrics import ConformalSettings, conformal_markdown, conformal_metrics
from evaluation.corruption_suite import (
    corruption_metrics,
    corruption_table,
    load_condition_extras,
    load_corruption_predictions,
    run_corruption_suite,
)
from evaluation.corruptions import CORRUPTIONS
from evaluation.ood import load_extra_scores, misclassification_metrics, ood_metrics, uncertainty_score_table
from evaluation.ood_predict import UnlabelledPredictions, load_unlabelled, predict_images, save_unlabelled
from evaluation.ood_sets import folder_images, synthetic_ood_set


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the conformal, OOD and corruption flags to the evaluation parser."""
    group = parser.add_argument_group("conformal sets, out-of-distribution inputs and corruptions")
    group.add_argument("--conformal", type=float, nargs="+", metavar="ALPHA", default=[],
                       help="calibrate conformal sets on the validation predictions (--calibrate-split or "
                            "--calibrate-on) at these miscoverage levels, e.g. 0.05 0.1 0.2, and report coverage "
                            "and set size")
    group.add_argument("--conformal-score", nargs="+", choices=SCORES, default=["aps"],
                       help="non-conformity scores; the first is the primary one (default: %(default)s)")
    group.add_argument("--mondrian", action="store_true",
                       help="class-conditional conformal thresholds: every class covered at 1 - alpha; adds a "
                            "per-class report of coverage over --conformal-draws draws against its exact 95%% "
                            "sampling range")
    group.add_argument("--conformal-allow-empty", action="store_true",
                       help="keep the papers' APS / RAPS / LAC scores unchanged, so a set may be empty, instead of "
                            "always holding the most probable class (needed for exact per-class coverage when the "
                            "model's recall of a class exceeds 1 - alpha)")
    group.add_argument("--conformal-draws", type=int, default=DEFAULT_DRAWS,
                       help="with --mondrian: draws of the randomized scores' uniforms that per-class coverage is "
                            "averaged over (default: %(default)s)")
    group.add_argument("--conformal-deterministic", action="store_true",
                       help="non-randomized APS / RAPS (conservative sets) instead of the randomized ones")
    group.add_argument("--raps-lambda", type=float, default=0.01,
                       help="RAPS penalty per rank past --raps-k-reg (default: %(default)s)")
    group.add_argument("--raps-k-reg", type=int, default=1,
                       help="RAPS: ranks up to this one carry no penalty (default: %(default)s)")
    group.add_argument("--save-conformal", type=Path, metavar="CALIB.json",
                       help="write the calibrator of the first --conformal level and --conformal-score as JSON, for "
                            "python -m bayes_fer.predict --conformal CALIB.json (it answers any level from the "
                            "calibration scores it keeps)")
    ood = group.add_mutually_exclusive_group()
    ood.add_argument("--ood-folder", type=Path,
                     help="checkpoint mode: a folder of non-face images to score as out-of-distribution")
    ood.add_argument("--ood-synthetic", type=int, metavar="N",
                     help="checkpoint mode: N generated non-face images (noise, stripes, checkerboards, Perlin "
                          "noise, crops of face-free sample photos)")
    ood.add_argument("--ood-predictions", type=Path,
                     help="saved outputs on out-of-distribution images (.npz with probs, optionally samples, "
                          "loc, scale, kind), e.g. predictions_ood.npz of an earlier run")
    corrupt = group.add_mutually_exclusive_group()
    corrupt.add_argument("--corruptions", action="store_true",
                         help="checkpoint mode: run the corruption suite on --split (Gaussian noise, blur, JPEG, "
                              "contrast, occlusion at severities 1-5); outputs are cached in OUT/corruptions")
    corrupt.add_argument("--corruption-predictions", type=Path, metavar="DIR",
                         help="score a cached corruption suite (DIR/<corruption>_s<severity>.npz and clean_s0.npz)")
    group.add_argument("--corruption-names", nargs="+", choices=list(CORRUPTIONS), default=list(CORRUPTIONS),
                       help="corruptions to run (default: all)")
    group.add_argument("--corruption-size", type=int,
                       help="run the corruption suite on a seeded subset of this many images (default: the split)")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject flag combinations that cannot work, before any model runs."""
    bad = [a for a in args.conformal if not 0.0 < a < 1.0]
    if bad:
        parser.error(f"--conformal levels must lie in (0, 1), e.g. 0.1 for 90% sets; found {bad}")
    if args.conformal and args.calibrate_split is None and args.calibrate_on is None:
        parser.error("--conformal needs validation predictions to calibrate on: add --calibrate-split valid "
                     "(checkpoint mode) or --calibrate-on valid.npz")
    if args.save_conformal is not None and not args.conformal:
        parser.error("--save-conformal writes a fitted calibrator: add --conformal ALPHA (e.g. 0.1) and "
                     "validation predictions (--calibrate-split valid or --calibrate-on valid.npz)")
    if args.conformal_draws < 1:
        parser.error(f"--conformal-draws must be a positive number of draws, got {args.conformal_draws}")
    if args.conformal_allow_empty and not args.conformal:
        parser.error("--conformal-allow-empty changes conformal sets: add --conformal ALPHA (e.g. 0.1)")
    if args.raps_lambda < 0 or args.raps_k_reg < 0:
        parser.error("--raps-lambda and --raps-k-reg must be >= 0")
    if args.checkpoint is None:
        given = [flag for flag, value in (("--ood-folder", args.ood_folder), ("--ood-synthetic", args.ood_synthetic),
                                          ("--corruptions", args.corruptions or None)) if value is not None]
        if given:
            parser.error(f"{', '.join(given)} run the model, so they need --checkpoint; with --predictions use "
                         "--ood-predictions and --corruption-predictions")
    if (args.ood_synthetic is not None and args.ood_synthetic < 1) or \
            (args.corruption_size is not None and args.corruption_size < 1):
        parser.error("--ood-synthetic and --corruption-size must be positive integers")


@dataclass
class ShiftInputs:
    """What the flags asked for, gathered: settings, OOD outputs and corruption predictions."""

    settings: ConformalSettings
    ood: UnlabelledPredictions | None = None
    ood_source: str = ""
    corruptions: dict | None = None
    corruption_extras: dict = field(default_factory=dict)
    test_extra: dict[str, np.ndarray] = field(default_factory=dict)
    save_conformal: Path | None = None

    @property
    def empty(self) -> bool:
        return not self.settings.alphas and self.ood is None and self.corruptions is None


def gather(args: argparse.Namespace) -> ShiftInputs:
    """Load or compute the OOD and corruption predictions the flags ask for."""
    settings = ConformalSettings(tuple(args.conformal), tuple(args.conformal_score), args.mondrian,
                                 not args.conformal_deterministic, args.raps_lambda, args.raps_k_reg, args.seed,
                                 args.conformal_allow_empty, args.conformal_draws)
    inputs = ShiftInputs(settings, save_conformal=args.save_conformal)
    if args.predictions is not None:
        inputs.test_extra = load_extra_scores(args.predictions)
    if args.ood_predictions is not None:
        inputs.ood, inputs.ood_source = load_unlabelled(args.ood_predictions), str(args.ood_predictions)
    if args.corruption_predictions is not None:
        inputs.corruptions = load_corruption_predictions(args.corruption_predictions)
        inputs.corruption_extras = load_condition_extras(args.corruption_predictions, list(inputs.corruptions))
    if args.checkpoint is None or not (args.ood_folder or args.ood_synthetic or args.corruptions):
        return inputs

    from evaluation.inference import load_predictor

    predictor = load_predictor(args.checkpoint, args.device)
    size = predictor.image_size
    options = dict(num_samples=args.num_samples, batch_size=args.batch_size, seed=args.seed,
                   progress=not args.no_progress)
    if args.ood_folder is not None or args.ood_synthetic is not None:
        if args.ood_folder is not None:
            images, paths = folder_images(args.ood_folder, size)
            kind, inputs.ood_source = np.array([Path(p).parent.name for p in paths]), str(args.ood_folder)
        else:
            images, kind = synthetic_ood_set(args.ood_synthetic, size, args.seed)
            inputs.ood_source = f"{args.ood_synthetic} generated non-face images"
        inputs.ood = predict_images(predictor, images, kind, **options)
        save_unlabelled(args.out / "predictions_ood.npz", inputs.ood)
    if args.corruptions:
        cache = args.out / "corruptions"
        inputs.corruptions = run_corruption_suite(predictor, args.data_root, args.split, cache, args.dataset,
                                                  args.corruption_names, size=args.corruption_size, **options)
        inputs.corruption_extras = load_condition_extras(cache, list(inputs.corruptions))
    return inputs


@dataclass
class ShiftReport:
    """Metrics for ``metrics.json``, figures ``(fig, stem, caption)`` and a Markdown section."""

    metrics: dict[str, Any]
    figures: list[tuple[Any, str, str]]
    markdown: str


def _score_rows(metrics: dict[str, Any], names: list[str]) -> list[list[str]]:
    from evaluation.report import format_value

    rows = []
    for name in names:
        monotonic = metrics.get(f"corruption_monotonic/{name}")
        rows.append([name] + [format_value(metrics.get(f"{key}/{name}")) for key in
                              ("auroc_misclassification", "aurc", "auroc_ood", "fpr95_ood", "corruption_rise")]
                    + ["n/a" if monotonic is None else ("yes" if monotonic else "no")])
    return rows


def evaluate_shift(predictions: Any, validation: Any | None, inputs: ShiftInputs) -> ShiftReport:
    """Score the conformal sets, every uncertainty score, the OOD set and the corruption suite.

    Args:
        predictions: The evaluated (test) :class:`~evaluation.predictions.Predictions`.
        validation: Validation predictions to calibrate the sets on (needed when levels are asked).
        inputs: From :func:`gather`.

    Returns:
        The metrics, figures and report section.
    """
    from evaluation import uq_plots
    from evaluation.report import markdown_table

    names = predictions.class_names
    metrics: dict[str, Any] = {}
    figures: list[tuple[Any, str, str]] = []
    sections: list[str] = []
    calibrator = None
    settings = inputs.settings
    if settings.alphas:
        if validation is None:
            raise ValueError("conformal sets need validation predictions; pass --calibrate-split or --calibrate-on")
        conformal, results = conformal_metrics(validation, predictions, settings, names)
        metrics.update(conformal)
        calibrator = results[0].calibrator  # the first level and score asked: the set-size score
        if inputs.save_conformal is not None:
            calibrator.save(inputs.save_conformal)
        figures.append((uq_plots.conformal_coverage_plot(results, names)[0], "conformal_coverage",
                        "Conformal coverage and set size per class"))
        kind = "class-conditional (Mondrian)" if settings.mondrian else "marginal"
        empty = "empty sets allowed" if settings.allow_empty else "never-empty sets"
        sections.append(f"## Conformal sets\n\n{kind} thresholds, "
                        f"{'randomized' if settings.randomized else 'non-randomized'} scores, {empty}, calibrated on "
                        f"{validation.num_examples} validation examples.\n\n" + conformal_markdown(results, names))
        if settings.mondrian:
            # LAC and non-randomized APS / RAPS draw nothing: their sets are the same every time.
            reports = [class_coverage(r.calibrator, validation.probs, validation.labels, predictions.probs,
                                      predictions.labels, seed=settings.seed,
                                      draws=settings.class_draws if settings.randomized and r.score != "lac" else 1)
                       for r in results]
            metrics.update(class_coverage_metrics(reports, names))
            figures.append((uq_plots.class_coverage_plot(reports, names)[0], "conformal_class_coverage",
                            "Per-class coverage of Mondrian sets with its 95% range under exchangeability"))
            sections.append("## Per-class coverage against its sampling range\n\n"
                            "Coverage averaged over draws of the randomized scores; the range is the central 95% of "
                            "the coverage of a correct calibration with these n and m (Beta-Binomial). "
                            + ("With never-empty sets, coverage above the range is over-coverage by construction "
                               "(the class's top-1 recall exceeds 1 - alpha). " if not settings.allow_empty else "")
                            + "\n\n" + class_coverage_markdown(reports, names))

    scores = uncertainty_score_table(predictions, inputs.test_extra, calibrator)
    metrics.update(misclassification_metrics(scores, predictions.probs, predictions.labels))
    if inputs.ood is not None:
        out_scores = uncertainty_score_table(inputs.ood, inputs.ood.extra, calibrator)
        metrics.update(ood_metrics(scores, out_scores))
        metrics["ood_examples"] = int(inputs.ood.probs.shape[0])
        kinds = sorted(set(inputs.ood.kind.tolist()))
        if len(kinds) > 1:
            for kind in kinds:
                keep = inputs.ood.kind == kind
                subset = {name: values[keep] for name, values in out_scores.items()}
                metrics.update({f"{key.split('/')[0]}/{kind}/{key.split('/')[1]}": value
                                for key, value in ood_metrics(scores, subset).items()})
        figures.append((uq_plots.ood_histogram_plot(scores, out_scores)[0], "ood_histograms",
                        "Scores on faces and non-face images"))
        figures.append((uq_plots.ood_roc_plot(scores, out_scores)[0], "ood_roc", "Out-of-distribution ROC curves"))
    if inputs.corruptions is not None:
        table = corruption_table(inputs.corruptions, calibrator, extra_scores=inputs.corruption_extras)
        metrics.update(corruption_metrics(table))
        if table:
            figures.append((uq_plots.corruption_plot(table)[0], "corruptions", "Corruption suite"))
            rows = [[c] + [f"{v:.3f}" for v in table[c]["accuracy"]] for c in table]
            sections.append("## Corruption suite: accuracy per severity (0 = clean)\n\n"
                            + markdown_table(["Corruption"] + [str(s) for s in range(6)], rows))

    header = ["Score", "Misclassification AUROC", "AURC", "OOD AUROC", "FPR at 95% TPR", "Rise at severity 5",
              "Rises at every severity"]
    intro = "## Which uncertainty score to trust\n\n"
    if inputs.ood is not None:
        intro += f"Out-of-distribution set: {inputs.ood_source} ({inputs.ood.probs.shape[0]} images).\n\n"
    sections.insert(0, intro + markdown_table(header, _score_rows(metrics, list(scores))))
    return ShiftReport(metrics, figures, "\n\n" + "\n\n".join(sections) + "\n")
