"""Command line: ``python -m bayes_fer.predict PATHS... --checkpoint CKPT``.

Prints, per face, the readout ("happily surprised"), the top classes with their
posterior-predictive probabilities, and the uncertainty; optionally writes JSON, CSV and
annotated images.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from tqdm.auto import tqdm

EXAMPLES = """examples:
  python -m bayes_fer.predict face.png                       # the packaged FER+ model
  python -m bayes_fer.predict clip.mp4 --smooth --csv clip.csv --plot clip.png
  python -m bayes_fer.predict face.png --checkpoint runs/synthetic-poster_var_tiny/best.pt
  python -m bayes_fer.predict photos/ --checkpoint best.pt --detect-faces --annotate annotated/ --csv out.csv
  python -m bayes_fer.predict face.jpg --checkpoint poster_var_rafdb.pth --dataset rafdb   # reference checkpoint
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bayes_fer.predict", description=__doc__, epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--checkpoint", help="svi_train.py checkpoint, or a POSTER-Var/POSTER++ one "
                   "(default: the FER+ model shipped inside the package)")
    p.add_argument("--dataset", help="label space of a reference checkpoint (e.g. rafdb); ours carry their own")
    p.add_argument("--num-samples", type=int, default=100, help="Monte-Carlo draws of the intensities per face")
    p.add_argument("--batch-size", type=int, default=64, help="faces per network call")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--detect-faces", action="store_true", help="find faces in photos first (needs opencv-python-headless)")
    p.add_argument("--json", help="write all results to this JSON file")
    p.add_argument("--csv", help="write one row per face to this CSV file")
    p.add_argument("--annotate", help="folder for copies of the images with boxes and intensity bars")
    p.add_argument("--top", type=int, default=3, help="classes printed per face")
    from bayes_fer.video import add_arguments

    add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bayes_fer.predictive import Predictor, iter_predictions, open_image

    try:
        if args.checkpoint is None:
            predictor = Predictor.pretrained(device=args.device)
        else:
            predictor = Predictor.from_checkpoint(args.checkpoint, args.device, dataset=args.dataset)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    missing = [p for p in args.paths if not Path(p).exists()]
    for p in missing:
        print(f"error: {p}: no such file or folder", file=sys.stderr)
    from bayes_fer.video import is_video, run as run_videos

    videos = [p for p in args.paths if is_video(p) and Path(p).is_file()]
    records, by_image = run_videos(args, predictor, videos)[0] if videos else [], {}
    stream = iter_predictions(predictor, [p for p in args.paths if Path(p).exists() and p not in videos], args.num_samples,
                              args.batch_size, args.detect_faces)
    for src, result in tqdm(stream, desc="faces", unit="face", disable=None):
        if result is None:
            records.append(dict(src))
            print(f"{src['path']}: {src['error']}")
            continue
        rec = result.to_records()[0]
        records.append(rec)
        values, idx = result.topk(args.top)
        tops = ", ".join(f"{result.class_names[i]} {v:.2f}" for v, i in zip(values[0].tolist(), idx[0].tolist()))
        where = src["path"] + (f" {tuple(src['box'])}" if "box" in src else "")
        print(f"{where}: {rec['readout']}  [{tops}]  entropy {rec['entropy']:.3f}  MI {rec['mutual_information']:.4f}")
        if args.annotate:
            by_image.setdefault(src["path"], []).append((src, result))
    if args.json:
        Path(args.json).write_text(json.dumps({"class_names": predictor.class_names, "faces": records}, indent=2))
    if args.csv:
        fields = list(dict.fromkeys(k for r in records for k in r))
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(records)
    if args.annotate:
        from bayes_fer.annotate import annotate

        out = Path(args.annotate)
        out.mkdir(parents=True, exist_ok=True)
        for path, rows in by_image.items():
            annotate(open_image(path), rows).save(out / (Path(path).stem + "_annotated.png"))
    n_faces = sum(1 for r in records if "error" not in r)
    print(f"{n_faces} face(s) predicted, {len(records) - n_faces} input(s) without a result")
    return 1 if missing or n_faces == 0 else 0


if __name__ == "__main__":
    raise SystemExit(main())
