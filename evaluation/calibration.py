"""Evaluate accuracy, calibration and uncertainty of a model or of saved predictions.

Writes ``metrics.json``, ``report.md`` and the figures (PNG and PDF) into ``--out`` and
prints the summary table. Run ``python -m evaluation.calibration --help`` for the flags.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evaluation import plots, shift
from evaluation.calibration_error import DEFAULT_NUM_BINS
from evaluation.cross_dataset import EvaluationScope, restrict, restriction_scope
from evaluation.ppc import vote_ppc
from evaluation.predictions import Predictions, load_predictions, save_predictions
from evaluation.report import markdown_report, shared_summary_table, summary_table
from evaluation.summary import DEFAULT_COVERAGES, Metrics, compute_metrics, temperature_scaled, write_metrics_json
from evaluation.uncertainty import select_examples

DESCRIPTION = __doc__.split("\n\n")[0] + """

examples:
  # a trained checkpoint on the FER+ test split, temperature fitted on the validation split
  python -m evaluation.calibration --checkpoint runs/ferplus/best.pt --dataset ferplus \\
      --data-root data/FERPlus --split test --calibrate-split valid --out runs/ferplus/eval

  # 90% conformal expression sets, their calibrator saved for python -m bayes_fer.predict --conformal
  python -m evaluation.calibration --checkpoint runs/ferplus/best.pt --dataset ferplus --data-root data/FERPlus \\
      --split test --calibrate-split valid --conformal 0.1 --conformal-score lac --save-conformal calib.json \\
      --out runs/ferplus/eval

  # saved predictions (probs, labels; optionally votes, samples, loc, scale, class_names)
  python -m evaluation.calibration --predictions test.npz --calibrate-on valid.npz --out eval/

  # a FER+ model on your own class folders (happy/, angry/, ...: any of its classes, matched by name)
  python -m evaluation.calibration --checkpoint runs/ferplus/best.pt --dataset folder --data-root faces \
      --split test --out eval-faces/
  # the same predictions, scored also over the six classes that data set has
  python -m evaluation.calibration --predictions eval-faces/predictions.npz \
      --restrict-to neutral happy sad surprised angry disgusted --out eval-faces-again/
"""

#: Devices accepted by --device (checked again, for availability, when the model is loaded).
DEVICES = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


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
                        help="Monte-Carlo draws per image, at most 1000: every draw is kept for the mutual "
                             "information (checkpoint mode; default: %(default)s)")
    parser.add_argument("--size", type=int, help="checkpoint mode: evaluate a seeded subset of this many images "
                                                  "(default: the whole split)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: %(default)s)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (default: %(default)s)")
    parser.add_argument("--device", default="auto",
                        help="torch device for the model: auto, cpu, mps, cuda or cuda:N (default: %(default)s)")
    parser.add_argument("--class-map", nargs="+", metavar="FOLDER=CLASS",
                        help="checkpoint mode, class-folder datasets: the class each folder holds, when its name is "
                             "not a class name or synonym (e.g. joy=happiness; FOLDER=none skips the folder)")
    parser.add_argument("--restrict-to", nargs="+", metavar="CLASS",
                        help="predictions mode: the classes the data set has (names or synonyms such as happy); "
                             "metrics are also reported over these classes with the probabilities restricted to them "
                             "and renormalised. Checkpoint mode does this by itself when the dataset lacks classes")
    parser.add_argument("--reference", choices=["votes", "mixture"], default="votes",
                        help="checkpoint mode: compare the predicted distributions with the annotator votes, or with "
                             "the true mixtures of the synthetic faces (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the Monte-Carlo draws (default: %(default)s)")
    parser.add_argument("--class-prior", default="train", type=_class_prior,
                        help="checkpoint mode: class base rates to predict under: train (those of the training data), "
                             "uniform, a power in [-1, 1] of the training rates (below 0: rarer classes favoured beyond uniform), or 'select' to choose that power on "
                             "--calibrate-split by the mean of accuracy and balanced accuracy (default: %(default)s)")
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


def _class_prior(text: str) -> str | float:
    if text in ("train", "uniform", "select"):
        return text
    try:
        power = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected train, uniform, select or a power in [-1, 1], got {text!r}") from None
    if not -1.0 <= power <= 1.0:
        raise argparse.ArgumentTypeError(f"a class-prior power must lie in [-1, 1], got {power}")
    return power


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.class_prior == "select" and args.calibrate_split is None:
        parser.error("--class-prior select chooses the prior on a validation split: add --calibrate-split valid")
    if args.predictions is not None:
        given = [flag for flag, value in (("--dataset", args.dataset), ("--data-root", args.data_root),
                                          ("--calibrate-split", args.calibrate_split), ("--size", args.size),
                                          ("--class-map", args.class_map))
                 if value is not None]
        if given:
            parser.error(f"{', '.join(given)} only apply with --checkpoint; --predictions already holds the outputs")
    elif args.restrict_to is not None:
        parser.error("--restrict-to applies with --predictions; with --checkpoint the dataset's classes are matched "
                     "to the model's by themselves")
    if args.num_bins < 1 or args.num_samples < 1 or args.batch_size < 1 or (args.size is not None and args.size < 1):
        parser.error("--num-bins, --num-samples, --batch-size and --size must be positive integers")
    from evaluation.inference import MAX_EVALUATION_SAMPLES

    if args.num_samples > MAX_EVALUATION_SAMPLES:
        parser.error(f"--num-samples must be at most {MAX_EVALUATION_SAMPLES} (every draw of every image is kept, "
                     f"S x N x K values), got {args.num_samples}")
    if args.num_workers < 0:
        parser.error(f"--num-workers must be 0 or more, got {args.num_workers}")
    if not DEVICES.fullmatch(args.device):
        parser.error(f"--device: unknown device {args.device!r}; expected auto, cpu, mps, cuda or cuda:N")
    if args.class_map is not None:
        bad = [item for item in args.class_map if item.count("=") != 1 or not all(item.split("="))]
        if bad:
            parser.error(f"--class-map expects FOLDER=CLASS pairs (e.g. joy=happiness), got {bad}")
    bad = [c for c in args.coverages if not 0.0 < c <= 1.0]
    if bad:
        parser.error(f"--coverages must lie in (0, 1], found {bad}")
    shift.check_arguments(parser, args)


def _check_same_classes(validation: Predictions | None, num_classes: int, what: str, path: Path | None) -> None:
    if validation is not None and validation.num_classes != num_classes:
        raise ValueError(f"--calibrate-on {path} holds K = {validation.num_classes} classes but {what} has "
                         f"K = {num_classes}; fit the temperature on predictions of the same model")


def _gather(args: argparse.Namespace) -> tuple[Predictions, Predictions | None, EvaluationScope]:
    """The predictions to evaluate, those to fit the temperature on (or ``None``), and what was covered."""
    validation = load_predictions(args.calibrate_on) if args.calibrate_on is not None else None
    if args.predictions is not None:
        test = load_predictions(args.predictions)
        _check_same_classes(validation, test.num_classes, f"--predictions {args.predictions}", args.calibrate_on)
        scope = EvaluationScope()
        if args.restrict_to is not None:
            scope = restriction_scope(test.class_names, args.restrict_to)
        return test, validation, scope
    from evaluation.inference import load_predictor, predict_split

    predictor = load_predictor(args.checkpoint, args.device)
    _check_same_classes(validation, len(predictor.class_names), f"the checkpoint {args.checkpoint}", args.calibrate_on)
    concentration = getattr(getattr(predictor, "model", None), "concentration", None)
    args.concentration = None if concentration is None else float(concentration)
    class_map = None
    if args.class_map is not None:
        class_map = {k: (None if v.lower() == "none" else v) for k, v in (item.split("=") for item in args.class_map)}
    options = dict(dataset=args.dataset, num_samples=args.num_samples, batch_size=args.batch_size,
                   num_workers=args.num_workers, seed=args.seed, size=args.size, progress=not args.no_progress,
                   reference=args.reference, class_map=class_map)
    prior = args.class_prior
    if prior == "select":
        from evaluation.priors import select_prior_power

        chosen = predict_split(predictor, args.data_root, args.calibrate_split, **{**options, "num_samples": 1}).predictions
        prior, table = select_prior_power(chosen.loc, chosen.labels, predictor.model.log_base_rates.cpu().numpy())
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "class_prior_selection.json").write_text(json.dumps({"chosen_power": prior, "split": args.calibrate_split,
                                                                        "grid": table}, indent=2))
        print(f"class prior: training base rates to the power {prior:.2f}, chosen on {args.calibrate_split}")
    model = getattr(predictor, "model", None)
    if model is not None:
        model.set_prediction_prior(prior)
    elif prior != "train":
        raise ValueError(f"--class-prior {prior} needs a bayes-fer checkpoint, whose model holds class base rates")
    test = predict_split(predictor, args.data_root, args.split, **options)
    save_predictions(args.out / "predictions.npz", test.predictions)
    if args.calibrate_split is not None:
        split = predict_split(predictor, args.data_root, args.calibrate_split, **options)
        validation = split.predictions
        save_predictions(args.out / f"predictions_{args.calibrate_split}.npz", validation)
    return test.predictions, validation, test.scope


def evaluate(
    predictions: Predictions,
    out: Path,
    validation: Predictions | None = None,
    num_bins: int = DEFAULT_NUM_BINS,
    coverages: Sequence[float] = DEFAULT_COVERAGES,
    formats: Sequence[str] = ("png", "pdf"),
    title: str = "Evaluation report",
    reference: str = "votes",
    concentration: float | None = None,
    scope: EvaluationScope | None = None,
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
        concentration: alpha of a Dirichlet-multinomial model, for its vote check (None: multinomial).
        scope: What was left out and how the data set's classes match the model's; when the
            data set lacks some of the model's classes, ``shared/<metric>`` entries score the
            shared classes with the probabilities restricted to them and renormalised.
        shift_inputs: Conformal levels, OOD and corruption predictions (:mod:`evaluation.shift`).

    Returns:
        The metrics written to ``metrics.json`` (besides the scope's own entries).
    """
    scope = scope or EvaluationScope()
    out.mkdir(parents=True, exist_ok=True)
    coverages = tuple(coverages)
    metrics = compute_metrics(predictions, num_bins, coverages)
    calibrated = None
    if validation is not None:
        scaled, calibrated = temperature_scaled(validation, predictions, num_bins, coverages)
        metrics.update(scaled)
    scope_notes = scope.notes(predictions.num_classes)
    if scope.restricted:
        shared, outside = restrict(predictions, scope.shared)
        metrics.update({f"shared/{key}": value for key, value in compute_metrics(shared, num_bins, coverages).items()})
        metrics["shared/excluded_outside"] = outside
        if outside:
            scope_notes.append(f"{outside} example(s) labelled with classes outside {list(scope.shared)} are left "
                               "out of the shared-class metrics.")
    extra = None if shift_inputs is None or shift_inputs.empty else shift.evaluate_shift(predictions, validation,
                                                                                         shift_inputs)
    if extra is not None:
        metrics.update(extra.metrics)
    write_metrics_json(out / "metrics.json", {**metrics, **scope.to_json()})

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
    else:
        ppc = vote_ppc(probs, predictions.votes, concentration=concentration)
        metrics.update({f"ppc/{k}": v for k, v in ppc.items() if not isinstance(v, np.ndarray)})
        write_metrics_json(out / "metrics.json", {**metrics, **scope.to_json()})
        save(plots.vote_ppc_plot(ppc)[0], "vote_ppc", "Posterior-predictive check of the annotator votes")
        notes.append(f"Vote check: {'Dirichlet-multinomial' if concentration else 'multinomial'} votes simulated from "
                     f"the predicted probabilities; mean vote entropy {ppc['observed/vote_entropy']:.3f} real against "
                     f"{ppc['replicated/vote_entropy']:.3f} simulated (p = {ppc['p_value/vote_entropy']:.2f}).")
    for fig, stem, caption in extra.figures if extra is not None else ():
        save(fig, stem, caption)
    shared_names = scope.shared if scope.restricted else ()
    report = markdown_report(metrics, names, figures, notes, title, scope_notes, shared_names)
    (out / "report.md").write_text(report + (extra.markdown if extra is not None else ""))
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    try:
        predictions, validation, scope = _gather(args)
        shift_inputs = shift.gather(args)
        metrics = evaluate(predictions, args.out, validation, args.num_bins, args.coverages, args.formats, args.title,
                           reference=args.reference if args.checkpoint is not None else "votes", scope=scope,
                           concentration=getattr(args, "concentration", None), shift_inputs=shift_inputs)
    except (FileNotFoundError, ValueError, TypeError, RuntimeError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    for note in scope.notes(predictions.num_classes):
        print(note)
    print(summary_table(metrics))
    if "shared/accuracy" in metrics:
        print(f"\nOver the {len(scope.shared)} shared classes ({', '.join(scope.shared)}):")
        print(shared_summary_table(metrics))
    print(f"\nwrote {args.out / 'metrics.json'}, {args.out / 'report.md'} and figures to {args.out}")
    if args.save_conformal is not None:
        print(f"wrote the conformal calibrator to {args.save_conformal}: python -m bayes_fer.predict FACES "
              f"--conformal {args.save_conformal} --alpha {args.conformal[0]:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
