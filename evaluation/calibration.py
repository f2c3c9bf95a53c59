"""Evaluate accuracy, calibration and uncertainty of a model or of saved predictions.

Writes ``metrics.json``, ``report.md`` and the figures (PNG and PDF) into ``--out`` and
prints the summary table. Run ``python -m evaluation.calibration --help`` for the flags.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from evaluation import plots, shift
from evaluation.calibration_error import DEFAULT_NUM_BINS
from evaluation.predictions import Predictions, load_predictions, save_predictions
from evaluation.report import markdown_report, summary_table
from evaluation.summary import DEFAULT_COVERAGES, Metrics, compute_metrics, temperature_scaled, write_metrics_json
from evaluation.uncertainty import select_examples

DESCRIPTION = __doc__.split("\n\n")[0] + """

examples:
  # a trained checkpoint on the FER+ test split, temperature fitted on the validation split
  python -m evaluation.calibration --checkpoint runs/ferplus/best.pt --dataset ferplus \\
      --data-root data/FERPlus --split test --calibrate-split valid --out runs/ferplus/eval

  # saved predictions (probs, labels; optionally votes, samples, loc, scale, class_names)
  python -m evaluation.calibration --predictions test.npz --calibrate-on valid.npz --out eval/
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evaluation.calibration", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="trained checkpoint to run over a dataset split")
    source.add_argument("--predictions", type=Path,
                        help="saved predictions .npz with probs (N, K) and labels (N,), optionally votes (N, K), "
                             "samples (S, N, K), loc and scale (N, K) and class_names (K,)")
    parser.add_argument("--out", type=Path, required=True, help="folder for metrics.json, report.md and figures")
    parser.add_argument("--dataset", help="dataset name (checkpoint mode; default: the checkpoint's dataset)")
    parser.add_argument("--data-root", type=Path,
                        help="dataset root folder (checkpoint mode; not needed for the synthetic dataset)")
    parser.add_argument("--split", default="test", help="split to evaluate (checkpoint mode; default: %(default)s)")
    parser.add_argument("--num-samples", type=int, default=30,
                        help="Monte-Carlo draws per image (checkpoint mode; default: %(default)s)")
    parser.add_argument("--size", type=int, help="checkpoint mode: evaluate a seeded subset of this many images "
                                                  "(default: the whole split)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: %(default)s)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="torch device for the model (default: %(default)s)")
    parser.add_argument("--reference", choices=["votes", "mixture"], default="votes",
                        help="checkpoint mode: compare the predicted distributions with the annotator votes, or with "
                             "the true mixtures of the synthetic faces (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the Monte-Carlo draws (default: %(default)s)")
    calibrate = parser.add_mutually_exclusive_group()
    calibrate.add_argument("--calibrate-split",
                           help="checkpoint mode: fit a temperature on this split (e.g. valid) and report "
                                "metrics before and after")
    calibrate.add_argument("--calibrate-on", type=Path,
                           help="fit a temperature on these saved validation predictions (.npz) and report "
                                "metrics before and after")
    parser.add_argument("--num-bins", type=int, default=DEFAULT_NUM_BINS,
                        help="bins for ECE, MCE, ACE and the reliability diagram (default: %(default)s)")
    parser.add_argument("--coverages", type=float, nargs="+", default=list(DEFAULT_COVERAGES),
                        help="coverages for selective accuracy (default: %(default)s)")
    parser.add_argument("--formats", nargs="+", default=["png", "pdf"], choices=["png", "pdf", "svg"],
                        help="figure file formats, the first linked from report.md (default: %(default)s)")
    parser.add_argument("--title", default="Evaluation report", help="heading of report.md (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    shift.add_arguments(parser)
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.predictions is not None:
        given = [flag for flag, value in (("--dataset", args.dataset), ("--data-root", args.data_root),
                                          ("--calibrate-split", args.calibrate_split), ("--size", args.size))
                 if value is not None]
        if given:
            parser.error(f"{', '.join(given)} only apply with --checkpoint; --predictions already holds the outputs")
    if args.num_bins < 1 or args.num_samples < 1 or args.batch_size < 1 or (args.size is not None and args.size < 1):
        parser.error("--num-bins, --num-samples, --batch-size and --size must be positive integers")
    bad = [c for c in args.coverages if not 0.0 < c <= 1.0]
    if bad:
        parser.error(f"--coverages must lie in (0, 1], found {bad}")
    shift.check_arguments(parser, args)


def _gather(args: argparse.Namespace) -> tuple[Predictions, Predictions | None]:
    """The predictions to evaluate and those to fit the temperature on (or ``None``)."""
    validation = load_predictions(args.calibrate_on) if args.calibrate_on is not None else None
    if args.predictions is not None:
        return load_predictions(args.predictions), validation
    from evaluation.inference import load_predictor, predict_split

    predictor = load_predictor(args.checkpoint, args.device)
    options = dict(dataset=args.dataset, num_samples=args.num_samples, batch_size=args.batch_size,
                   num_workers=args.num_workers, seed=args.seed, size=args.size, progress=not args.no_progress,
                   reference=args.reference)
    test = predict_split(predictor, args.data_root, args.split, **options)
    save_predictions(args.out / "predictions.npz", test)
    if args.calibrate_split is not None:
        validation = predict_split(predictor, args.data_root, args.calibrate_split, **options)
        save_predictions(args.out / f"predictions_{args.calibrate_split}.npz", validation)
    return test, validation


def evaluate(
    predictions: Predictions,
    out: Path,
    validation: Predictions | None = None,
    num_bins: int = DEFAULT_NUM_BINS,
    coverages: Sequence[float] = DEFAULT_COVERAGES,
    formats: Sequence[str] = ("png", "pdf"),
    title: str = "Evaluation report",
    reference: str = "votes",
    shift_inputs: shift.ShiftInputs | None = None,
) -> Metrics:
    """Score ``predictions``, write metrics.json, report.md and the figures into ``out``.

    Args:
        predictions: What to evaluate.
        out: Output folder (created).
        validation: Predictions to fit a temperature on; adds the ``calibrated/`` metrics.
        num_bins: Bins for the calibration errors and the reliability diagram.
        coverages: Coverages for selective accuracy.
        formats: Figure formats.
        title: The report's heading.
        reference: What ``predictions.votes`` holds: ``"votes"`` or the synthetic ``"mixture"``.
        shift_inputs: Conformal levels, OOD and corruption predictions (:mod:`evaluation.shift`).

    Returns:
        The metrics written to ``metrics.json``.
    """
    out.mkdir(parents=True, exist_ok=True)
    coverages = tuple(coverages)
    metrics = compute_metrics(predictions, num_bins, coverages)
    calibrated = None
    if validation is not None:
        scaled, calibrated = temperature_scaled(validation, predictions, num_bins, coverages)
        metrics.update(scaled)
    extra = None if shift_inputs is None or shift_inputs.empty else shift.evaluate_shift(predictions, validation,
                                                                                         shift_inputs)
    if extra is not None:
        metrics.update(extra.metrics)
    write_metrics_json(out / "metrics.json", metrics)

    probs, labels, names = predictions.probs, predictions.labels, predictions.class_names
    figures: dict[str, str] = {}
    notes: list[str] = []

    def save(fig, stem: str, caption: str) -> None:
        plots.save_figure(fig, out, stem, formats)
        figures[caption] = f"{stem}.{formats[0]}"

    save(plots.reliability_diagram(probs, labels, num_bins)[0], "reliability_diagram", "Reliability diagram")
    if calibrated is not None:
        fig, _ = plots.reliability_diagram(calibrated.probs, labels, num_bins,
                                           title=f"After temperature scaling (T = {metrics['temperature']:.3f})")
        save(fig, "reliability_diagram_calibrated", "Reliability diagram after temperature scaling")
    save(plots.confusion_matrix_plot(probs, labels, names)[0], "confusion_matrix", "Confusion matrix")
    save(plots.risk_coverage_plot(probs, labels)[0], "risk_coverage", "Risk-coverage curve")
    if predictions.loc is not None:
        examples = select_examples(probs, labels)
        fig, _ = plots.intensity_distributions_plot(predictions.loc, predictions.scale, names, examples,
                                                    probs=probs, labels=labels)
        save(fig, "intensity_distributions", "Latent intensity distributions of selected images")
        chosen = ", ".join(f"{name.replace('_', ' ')} #{index}" for name, index in examples.items())
        notes.append(f"Selected images (index): {chosen}")
    else:
        notes.append("No intensity distributions: the predictions hold no loc / scale arrays.")
    if predictions.samples is None:
        notes.append("No Monte-Carlo samples: mutual information is not available.")
    if predictions.votes is None:
        notes.append("No annotator votes: distribution-level metrics are not available.")
    elif reference == "mixture":
        notes.append("The 'votes' metrics compare with the true emotion mixtures of the synthetic faces.")
    for fig, stem, caption in extra.figures if extra is not None else ():
        save(fig, stem, caption)
    report = markdown_report(metrics, names, figures, notes, title) + (extra.markdown if extra is not None else "")
    (out / "report.md").write_text(report)
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    try:
        predictions, validation = _gather(args)
        shift_inputs = shift.gather(args)
    except (FileNotFoundError, ValueError, TypeError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    metrics = evaluate(predictions, args.out, validation, args.num_bins, args.coverages, args.formats, args.title,
                       reference=args.reference if args.checkpoint is not None else "votes", shift_inputs=shift_inputs)
    print(summary_table(metrics))
    print(f"\nwrote {args.out / 'metrics.json'}, {args.out / 'report.md'} and figures to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
