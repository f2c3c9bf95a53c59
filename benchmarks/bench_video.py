"""Video throughput of the packaged model: frames per second, detection and tracking included.

Composes the tests' 10-second 640x480 30 fps clip from two FER+ faces (or reads --clip) and
times ``bayes_fer.video.predict_video`` over it with the packaged FER+ model on the CPU, then
the face detector alone on the frames it runs on (milliseconds per detection):

    python benchmarks/bench_video.py --data-root ../shared/data/ferplus --threads 2
"""
from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bayes_fer.predictive import Predictor  # noqa: E402
from bayes_fer.video import DEFAULT_DETECT_EVERY, predict_video  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="example: python benchmarks/bench_video.py "
                                "--data-root ../shared/data/ferplus --threads 2")
    p.add_argument("--clip", type=Path, help="video to time (default: compose the tests' clip)")
    p.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data" / "ferplus",
                   help="FER+ root for composing the clip (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads (default: %(default)s)")
    p.add_argument("--detect-every", type=int, default=DEFAULT_DETECT_EVERY,
                   help="detect faces on every n-th frame, track in between (default: %(default)s)")
    p.add_argument("--num-samples", type=int, default=30, help="Monte-Carlo draws per face (default: %(default)s)")
    p.add_argument("--smooth", action="store_true", help="include the Kalman/RTS smoothing")
    return p


def time_detection(clip: Path, every: int, count: int = 20) -> tuple[float, str, tuple[int, int]]:
    """(milliseconds per ``find_faces`` call, the detector, frame size) over the first
    ``count`` frames that ``predict_video`` detects on; the first call is a warm-up."""
    from PIL import Image

    from bayes_fer.faces import default_detector, find_faces
    from bayes_fer.video import iter_frames

    read = itertools.islice(iter_frames(clip), every * count)
    frames = [Image.fromarray(rgb) for i, _, rgb in read if i % every == 0]
    find_faces(frames[0])
    start = time.perf_counter()
    for frame in frames:
        find_faces(frame)
    return (time.perf_counter() - start) / len(frames) * 1000, default_detector(), frames[0].size


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import cv2

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip
        if clip is None:
            from tests.bayes_fer import scenes

            faces = scenes.fer_faces(args.data_root, 2, start=2)
            clip = Path(tmp) / "clip.mp4"
            scenes.write_clip(clip, faces)
        predictor = Predictor.pretrained(device="cpu")
        predict_video(predictor, clip, num_samples=args.num_samples, detect_every=args.detect_every, progress=False,
                      smooth=args.smooth)  # warm-up
        start = time.perf_counter()
        rows = predict_video(predictor, clip, num_samples=args.num_samples, detect_every=args.detect_every,
                             progress=False, smooth=args.smooth)
        seconds = time.perf_counter() - start
        detect_ms, detector, (width, height) = time_detection(clip, args.detect_every)
    frames = len({r["frame"] for r in rows}) if rows else 0
    n_frames = max((r["frame"] for r in rows), default=-1) + 1
    print(f"{clip.name}: {n_frames} frames ({frames} with a face, {len(rows)} face rows, "
          f"{len({r['face'] for r in rows})} tracks) in {seconds:.2f} s: {n_frames / seconds:.1f} frames/s "
          f"({args.threads} threads, detection every {args.detect_every} frames, {args.num_samples} draws/face)")
    print(f"face detection ({detector}): {detect_ms:.0f} ms per {width}x{height} frame, "
          f"{detect_ms / args.detect_every:.0f} ms per frame detecting every {args.detect_every}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
