"""Command line: ``python -m bayes_fer.predict PATHS... --checkpoint CKPT``.

Prints, per face, the predicted class (the argmax of the posterior-predictive
probabilities), its readout, the top classes with their probabilities, and the uncertainty;
optionally writes JSON, CSV and annotated images. With ``--conformal CALIB.json`` each face
also gets its conformal expression set, which holds the true expression with probability at
least 1 - alpha, and the readout reads that set ("happy and surprised" when the set is
exactly those two); without it the readout names the predicted class alone.

Output paths are checked before any inference; each face's CSV row and JSON record is
written as soon as it is predicted, so an interrupted run keeps what was done. Inputs without
a result (unreadable files, photos without a face) are reported on stderr in input order.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

from bayes_fer.predict_outputs import (
    AnnotationNames,
    CsvStream,
    JsonStream,
    OutputPathError,
    check_output_file,
    check_output_folder,
    open_for_writing,
)

EXAMPLES = """examples:
  python -m bayes_fer.predict face.png                       # the packaged FER+ model
  python -m bayes_fer.predict clip.mp4 --smooth --csv clip.csv --plot clip.png
  python -m bayes_fer.predict face.png --checkpoint runs/synthetic-poster_var_tiny/best.pt
  python -m bayes_fer.predict photos/ --checkpoint best.pt --detect-faces --annotate annotated/ --csv out.csv
  python -m bayes_fer.predict face.jpg --checkpoint poster_var_rafdb.pth --dataset rafdb   # reference checkpoint
  python -m bayes_fer.predict photos/ --checkpoint best.pt --conformal calib.json --alpha 0.1 --csv out.csv
      # 90% expression sets; calib.json from python -m evaluation.calibration ... --conformal 0.1 --save-conformal
"""

#: CSV columns before the per-class ones.
FIELDS = ("path", "box", "score", "angle", "error", "prediction", "readout", "set", "entropy", "mutual_information",
          "spread")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _device(text: str) -> str:
    from bayes_fer.loading import check_device

    try:
        return check_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bayes_fer.predict", description=__doc__, epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--checkpoint", help="svi_train.py checkpoint, or a POSTER-Var/POSTER++ one "
                   "(default: the FER+ model shipped inside the package)")
    p.add_argument("--dataset", help="label space of a reference checkpoint (e.g. rafdb); ours carry their own")
    p.add_argument("--num-samples", type=_positive_int, default=100,
                   help="Monte-Carlo draws of the intensities per face (any number: draws are taken in chunks of "
                        "at most 2^22 draw-class values, so memory stays bounded)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="faces per network call")
    p.add_argument("--device", type=_device, default="auto", help="auto, cpu, mps, cuda or cuda:N")
    p.add_argument("--detect-faces", action="store_true",
                   help='find faces in photos first (needs pip install "bayes-fer[faces]")')
    p.add_argument("--json", help="write the results to this JSON file, face by face as they are predicted")
    p.add_argument("--csv", help="write one row per face to this CSV file, as each face is predicted")
    p.add_argument("--annotate", help="folder for copies of the images with boxes and intensity bars "
                                      "(named by their path relative to the folder given)")
    p.add_argument("--top", type=_positive_int, default=3, help="classes printed per face")
    p.add_argument("--conformal", metavar="CALIB.json",
                   help="conformal calibrator fitted on this model's validation outputs (python -m "
                        "evaluation.calibration ... --conformal 0.1 --save-conformal CALIB.json): adds each face's "
                        "expression set (CSV column 'set', classes joined by '|') and reads the readout from it; "
                        "images only, video rows carry no set")
    p.add_argument("--alpha", type=float,
                   help="miscoverage level of the sets, e.g. 0.1 for sets that hold the true expression 90%% of the "
                        "time (default: the level the calibrator was fitted at)")
    from bayes_fer.video import add_arguments

    add_arguments(p)
    return p


def expand_inputs(paths: list[str]) -> Iterator[tuple[Path, Path]]:
    """(image file, its path relative to the argument it came from) for each file, in order."""
    from bayes_fer.predictive import iter_image_files

    for arg in paths:
        root = Path(arg)
        if root.is_dir():
            for file in iter_image_files(root):
                yield file, file.relative_to(root)
        else:
            yield root, Path(root.name)


def _check_outputs(args: argparse.Namespace) -> None:
    if args.json:
        check_output_file(args.json, "--json")
    if args.csv:
        check_output_file(args.csv, "--csv")
    if args.annotate:
        check_output_folder(args.annotate, "--annotate")
    named = [(flag, Path(p).absolute()) for flag, p in (("--json", args.json), ("--csv", args.csv)) if p]
    if len(named) == 2 and named[0][1] == named[1][1]:
        raise OutputPathError(f"--json and --csv both name {args.json}; give them different files")


def _attach_conformal(args: argparse.Namespace, predictor) -> None:
    """Attach ``--conformal`` and check ``--alpha`` against it, before any inference."""
    if args.conformal is None:
        if args.alpha is not None:
            raise ValueError("--alpha sets the level of the conformal sets, which need a calibrator: add "
                             "--conformal CALIB.json")
        return
    try:
        predictor.conformal = args.conformal
    except ValueError as error:
        raise ValueError(f"--conformal {args.conformal}: {error}") from None
    try:
        predictor.conformal.thresholds(args.alpha if args.alpha is not None else predictor.conformal.alpha)
    except ValueError as error:
        raise ValueError(f"--alpha: {str(error).removeprefix('alpha: ')}") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bayes_fer.loading import load_predictor

    try:
        _check_outputs(args)
        if args.checkpoint is None:
            from bayes_fer.predictive import Predictor

            predictor = Predictor.pretrained(device=args.device)
        else:
            predictor = load_predictor(args.checkpoint, args.device, dataset=args.dataset)
        _attach_conformal(args, predictor)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    missing = [p for p in args.paths if not Path(p).exists()]
    for p in missing:
        print(f"error: {p}: no such file or folder", file=sys.stderr)
    from bayes_fer.video import is_video, run as run_videos

    videos = [p for p in args.paths if p not in missing and is_video(p) and Path(p).is_file()]
    video_rows = run_videos(args, predictor, videos)[0] if videos else []
    streams = []
    try:
        if args.csv:
            fields = list(dict.fromkeys([*FIELDS, *(k for r in video_rows for k in r)]))
            fields += [f"{kind}/{name}" for kind in ("prob", "loc", "scale") for name in predictor.class_names
                       if f"{kind}/{name}" not in fields]
            streams.append(CsvStream(open_for_writing(Path(args.csv), "--csv"), fields))
        if args.json:
            header = {}
            if predictor.conformal is not None:
                from bayes_fer.results import conformal_summary

                header["conformal"] = conformal_summary(predictor.conformal, args.alpha)
            streams.append(JsonStream(open_for_writing(Path(args.json), "--json"), predictor.class_names, header))
        if args.annotate:
            Path(args.annotate).mkdir(parents=True, exist_ok=True)
    except (OutputPathError, OSError) as e:
        for stream in streams:
            stream.close(complete=False)
        print(f"error: {e}", file=sys.stderr)
        return 2
    names = AnnotationNames(Path(args.annotate)) if args.annotate else None
    counts = {"faces": 0, "errors": 0}
    complete = False
    for row in video_rows:
        counts["errors" if "error" in row else "faces"] += 1
        for out in streams:
            out.write(row)
    try:
        _predict(args, predictor, [p for p in args.paths if p not in missing and p not in videos], streams, names,
                 counts)
        complete = True
    except KeyboardInterrupt:
        done = [p for p in (args.csv, args.json) if p]
        print(f"\ninterrupted after {counts['faces']} face(s)" + (f"; results so far are in {', '.join(done)}"
                                                                   if done else ""), file=sys.stderr)
        return 130
    finally:
        for stream in streams:
            stream.close(complete=complete)
    print(f"{counts['faces']} face(s) predicted, {counts['errors']} input(s) without a result")
    return 1 if missing or counts["faces"] == 0 else 0


def _predict(args, predictor, paths: list[str], streams: list, names: AnnotationNames | None, counts: dict) -> None:
    """Stream the predictions: print each face, write its rows, annotate each image once its faces are done."""
    from bayes_fer.predictive import iter_predictions, open_image

    relative: dict[str, Path] = {}

    def files() -> Iterator[Path]:
        for file, rel in expand_inputs(paths):
            relative.setdefault(str(file), rel)
            yield file

    pending: list = []  # (source, result) of the faces of the image being read

    def annotate_pending() -> None:
        if names is None or not pending:
            return
        from bayes_fer.annotate import annotate

        path = pending[0][0]["path"]
        target = names.name_for(path, relative.get(path, Path(Path(path).name)))
        target.parent.mkdir(parents=True, exist_ok=True)
        annotate(open_image(path), pending, args.alpha).save(target)
        pending.clear()

    stream = iter_predictions(predictor, files(), args.num_samples, args.batch_size, args.detect_faces)
    for src, result in tqdm(stream, desc="faces", unit="face", disable=None):
        if pending and pending[0][0]["path"] != src["path"]:
            annotate_pending()
        if result is None:
            counts["errors"] += 1
            message = src["error"] if src["error"].startswith(src["path"]) else f"{src['path']}: {src['error']}"
            print(message, file=sys.stderr, flush=True)
            record = dict(src)
        else:
            counts["faces"] += 1
            record = result.to_records(args.alpha)[0]
            values, idx = result.topk(args.top)
            tops = ", ".join(f"{result.class_names[i]} {v:.2f}" for v, i in zip(values[0].tolist(), idx[0].tolist()))
            where = src["path"] + (f" {tuple(src['box'])}" if "box" in src else "")
            expression_set = ""
            if "set" in record:
                level = args.alpha if args.alpha is not None else predictor.conformal.alpha
                expression_set = f"  {1 - level:.0%} set {{{', '.join(record['set'])}}}"
            print(f"{where}: {record['prediction']} ({record['readout']})  [{tops}]{expression_set}  "
                  f"entropy {record['entropy']:.3f}  MI {record['mutual_information']:.4f}", flush=True)
            if names is not None:
                pending.append((src, result))
        for out in streams:
            out.write(record)
    annotate_pending()


if __name__ == "__main__":
    raise SystemExit(main())
