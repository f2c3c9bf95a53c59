"""Face detection on the tests' group photos: recall at IoU 0.5, where the misses come from, eye lines.

Composes group photos the way ``tests/bayes_fer/test_faces.py`` does (FER+ faces pasted into
640x480 scenes at 72-130 px, rolled by up to +-30 degrees) from any FER+ split, runs
``bayes_fer.faces.find_faces`` on them and reports:

- recall at IoU 0.5 against the pasted square (the FER crop, unrotated: the framing the
  model was trained on), by roll angle and by pasted size;
- each miss as *not found* (no reported box's centre within half the side of the
  square's centre) or *framed* (found, IoU < 0.5), with the ratio of our box's side to the
  square's side and the centre offset in sides;
- extra boxes: reported boxes whose centre lies in no pasted square (false faces);
- the eye-line error of the aligned crops (the test's check, degrees);
- milliseconds per photo.

Choose settings on ``--split valid``; the test split is for the final figure only:

    python benchmarks/bench_faces.py --data-root ../shared/data/ferplus --split valid --count 300
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bayes_fer.faces import DETECTORS, find_faces  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="example: python benchmarks/bench_faces.py --data-root ../shared/data/ferplus "
                                       "--split valid --count 300")
    p.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data" / "ferplus",
                   help="FER+ root (default: %(default)s)")
    p.add_argument("--split", choices=("train", "valid", "test"), default="valid",
                   help="FER+ split the faces come from (default: %(default)s)")
    p.add_argument("--count", type=int, default=300, help="faces, three per photo (default: %(default)s)")
    p.add_argument("--start", type=int, default=0, help="first face, in file order (default: %(default)s)")
    p.add_argument("--detector", choices=DETECTORS, default="mtcnn", help="face detector (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads (default: %(default)s)")
    p.add_argument("--no-eyes", action="store_true", help="skip the eye-line check (it detects each face again)")
    p.add_argument("--list-misses", action="store_true", help="print every miss")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import cv2
    from PIL import Image

    from tests.bayes_fer import scenes

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    photos = scenes.group_photos(scenes.fer_faces(args.data_root, args.count, args.start, args.split))
    find_faces(Image.fromarray(photos[0][0]), detector=args.detector)  # warm-up
    hits: dict[str, list[bool]] = defaultdict(list)
    misses, eye_errors, seconds, extra = [], [], 0.0, 0
    for p, (scene, truth) in enumerate(photos):
        photo = Image.fromarray(scene)
        start = time.perf_counter()
        found = find_faces(photo, detector=args.detector)
        seconds += time.perf_counter() - start
        extra += sum(not any(b[0] <= (f.box[0] + f.box[2]) / 2 <= b[2] and b[1] <= (f.box[1] + f.box[3]) / 2 <= b[3]
                             for b, *_ in truth) for f in found)
        for box, angle, side, face in truth:
            match, score = scenes.best_match(box, found)
            hit = score >= 0.5
            for key in ("all", f"angle {angle:+.0f}", f"side {side}"):
                hits[key].append(hit)
            if hit:
                if not args.no_eyes and match.landmarks == "eyes":
                    roll = scenes.native_roll(face, args.detector)
                    if roll is not None:
                        eye_errors.append(abs(match.angle - (roll - angle)))
                continue
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2

            def offset(f) -> float:
                return math.hypot((f.box[0] + f.box[2]) / 2 - cx, (f.box[1] + f.box[3]) / 2 - cy) / side

            near = min(found, key=offset, default=None)
            if near is None or offset(near) > 0.5:
                misses.append((p, angle, side, "not found", score, float("nan"), float("nan")))
            else:
                ratio = max(near.box[2] - near.box[0], near.box[3] - near.box[1]) / side
                misses.append((p, angle, side, "framed", scenes.iou(box, near.box), ratio, offset(near)))
    total = len(hits["all"])
    print(f"{args.split} faces {args.start}-{args.start + total - 1}, {len(photos)} photos, {args.detector}: "
          f"recall {np.mean(hits['all']):.3f} ({sum(hits['all'])} of {total}) at IoU 0.5; "
          f"{seconds / len(photos) * 1000:.0f} ms per photo; {extra} extra boxes")
    for key in sorted(k for k in hits if k != "all"):
        print(f"  {key:>10}: {np.mean(hits[key]):.3f} of {len(hits[key])}")
    kinds = defaultdict(list)
    for m in misses:
        kinds[m[3]].append(m)
    for kind, rows in kinds.items():
        print(f"  {kind}: {len(rows)} ({len(rows) / total:.3f})", end="")
        if kind == "framed":
            ratios = np.array([r[5] for r in rows])
            print(f"; our side / true side: {np.sum(ratios < 1)} smaller (min {ratios.min():.2f}), "
                  f"{np.sum(ratios >= 1)} larger (max {ratios.max():.2f}); centre offset median "
                  f"{np.median([r[6] for r in rows]):.2f} sides", end="")
        print()
    if args.list_misses:
        for p, angle, side, kind, score, ratio, off in misses:
            print(f"    photo {p:3d} angle {angle:+4.0f} side {side:3d} {kind:9s} IoU {score:.2f} "
                  f"ratio {ratio:.2f} offset {off:.2f}")
    if eye_errors:
        errors = np.array(eye_errors)
        print(f"eye lines within 5 degrees of level: {np.mean(errors <= 5):.3f} ({np.sum(errors <= 5)} of "
              f"{len(errors)}), median error {np.median(errors):.2f} degrees")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
