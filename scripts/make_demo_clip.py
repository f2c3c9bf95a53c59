"""Make a short demo video from one photo: the camera slowly pans, zooms and rolls.

    python scripts/make_demo_clip.py docs/examples/astronaut.jpg --out clip.mp4

The README's video example runs on the clip this writes from the public-domain NASA
portrait in docs/examples (the same one scikit-image ships as ``astronaut``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="example: python scripts/make_demo_clip.py docs/examples/astronaut.jpg --out clip.mp4")
    p.add_argument("photo", type=Path, help="the photo to film")
    p.add_argument("--out", type=Path, required=True, help="MP4 file to write")
    p.add_argument("--seconds", type=float, default=10.0, help="length (default: %(default)s)")
    p.add_argument("--fps", type=int, default=30, help="frames per second (default: %(default)s)")
    p.add_argument("--max-roll", type=float, default=20.0, help="largest in-plane roll in degrees (default: %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    import cv2

    args = build_parser().parse_args(argv)
    img = cv2.imread(str(args.photo))
    if img is None:
        print(f"error: {args.photo} is not a readable image")
        return 2
    h, w = img.shape[:2]
    writer = cv2.VideoWriter(str(args.out), cv2.VideoWriter_fourcc(*"mp4v"), args.fps, (640, 480))
    n = int(args.seconds * args.fps)
    for i in range(n):
        phase = 2 * np.pi * i / n
        M = cv2.getRotationMatrix2D((w / 2, h / 3), args.max_roll * np.sin(phase), 1.0 + 0.15 * np.sin(phase / 2))
        M[:, 2] += (320 - w / 2 + 40 * np.sin(phase), 200 - h / 3)
        writer.write(cv2.warpAffine(img, M, (640, 480), borderMode=cv2.BORDER_REFLECT))
    writer.release()
    print(f"wrote {args.out}: {n} frames, 640x480, {args.fps} fps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
