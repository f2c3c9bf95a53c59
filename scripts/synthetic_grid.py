"""Draw a grid of synthetic faces, each titled with its largest true mixture weights.

Regenerates the picture in the README, and with ``--save-faces`` the faces themselves:

    .venv/bin/python scripts/synthetic_grid.py --out docs/synthetic_grid.png
    .venv/bin/python scripts/synthetic_grid.py --out faces/grid.png --split test --save-faces faces
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bayes_fer.data import load_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHORT = {"neutral": "neu", "happiness": "hap", "sadness": "sad", "surprise": "sur", "fear": "fea",
         "disgust": "dis", "anger": "ang", "contempt": "con"}


def pick_samples(mixtures: np.ndarray, count: int) -> list[int]:
    """Faces to show: one clear face per emotion first, then compound faces, then the rest in order."""
    labels = mixtures.argmax(axis=1)
    top2 = np.sort(mixtures, axis=1)[:, -2]
    chosen: list[int] = []
    for k in range(mixtures.shape[1]):
        clear = np.flatnonzero((labels == k) & (mixtures.max(axis=1) > 0.7))
        if len(clear):
            chosen.append(int(clear[0]))
    chosen += [int(i) for i in np.flatnonzero(top2 > 0.3) if i not in chosen]
    chosen += [i for i in range(len(mixtures)) if i not in chosen]
    return chosen[:count]


def title(mixture: np.ndarray, names: tuple[str, ...], top: int = 2) -> str:
    order = np.argsort(mixture)[::-1][:top]
    return "\n".join(f"{SHORT.get(names[k], names[k])} {mixture[k]:.2f}" for k in order)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="example: .venv/bin/python scripts/synthetic_grid.py --out docs/synthetic_grid.png",
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "synthetic_grid.png", help="PNG file to write")
    parser.add_argument("--rows", type=int, default=4, help="rows of faces (default: 4)")
    parser.add_argument("--cols", type=int, default=7, help="columns of faces (default: 7)")
    parser.add_argument("--split", default="valid", choices=["train", "valid", "test"], help="synthetic split to draw from")
    parser.add_argument("--seed", type=int, default=0, help="synthetic dataset seed (default: 0)")
    parser.add_argument("--dpi", type=int, default=80, help="resolution of the PNG (default: 80)")
    parser.add_argument("--save-faces", type=Path, metavar="DIR",
                        help="also write each face shown as DIR/<n>_<top two emotions>.png (inputs for the predictor)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ds = load_dataset("synthetic", split=args.split, seed=args.seed, size=500)
    count = args.rows * args.cols
    picks = pick_samples(ds.mixtures, count)
    fig, axes = plt.subplots(args.rows, args.cols, figsize=(1.6 * args.cols, 1.95 * args.rows), squeeze=False,
                             dpi=args.dpi)
    if args.save_faces:
        args.save_faces.mkdir(parents=True, exist_ok=True)
    for n, (ax, i) in enumerate(zip(axes.flat, picks)):
        face = ds.load_image(i)
        if args.save_faces:
            top = np.argsort(ds.mixtures[i])[::-1][:2]
            tag = "_".join(f"{SHORT.get(ds.class_names[k], ds.class_names[k])}{ds.mixtures[i][k]:.2f}" for k in top)
            face.save(args.save_faces / f"{n:02d}_{tag}.png")
        ax.imshow(face)
        ax.set_title(title(ds.mixtures[i], ds.class_names), fontsize=8, linespacing=1.1)
        ax.axis("off")
    for ax in axes.flat[len(picks):]:
        ax.axis("off")
    fig.suptitle("Synthetic faces and their true emotion mixtures (top two weights)", fontsize=10)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    plt.close(fig)
    # A 256-colour palette keeps the noisy faces small enough to live in the repository.
    Image.fromarray(rgba[..., :3]).quantize(256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
