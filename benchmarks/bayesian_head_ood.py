#!/usr/bin/env python
"""Does epistemic uncertainty tell non-faces from faces? FER+ test faces against generated
non-face images (noise, stripes, checkerboards, Perlin noise, crops of sample photographs),
scored by each uncertainty of one or more checkpoints.

    python benchmarks/bayesian_head_ood.py --data-root ../shared/data/ferplus \\
        --checkpoints runs/ferplus-la/best.pt runs/ferplus-la-bh/best.pt --out runs/bayesian_head_ood.json

Non-face images are turned grey like the FER+ faces, so colour alone gives nothing away.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from bayes_fer.data import load_dataset  # noqa: E402
from bayes_fer.predictive import Predictor  # noqa: E402
from evaluation.ood import fpr_at_tpr, ood_auroc  # noqa: E402
from evaluation.ood_sets import synthetic_ood_set  # noqa: E402


def scores_of(result) -> dict[str, np.ndarray]:
    """Uncertainty scores of one batch's result, higher meaning less sure."""
    out = {"max_prob": 1 - result.probs.max(-1).values, "entropy": result.entropy,
           "mutual_information": result.mutual_information}
    if result.epistemic_mi is not None:
        out["epistemic_mi"] = result.epistemic_mi
        out["aleatoric_mi"] = result.aleatoric_mi
    return {k: v.numpy() for k, v in out.items()}


def collect(predictor: Predictor, batches, num_samples: int, desc: str) -> dict[str, np.ndarray]:
    parts: dict[str, list] = {}
    for images in tqdm(batches, desc=desc, unit="batch"):
        for k, v in scores_of(predictor.predict_batch(images, num_samples)).items():
            parts.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True, help="FER+ in its official layout")
    p.add_argument("--checkpoints", nargs="+", required=True, help="bayes-fer checkpoints to compare")
    p.add_argument("--faces", type=int, default=1000, help="FER+ test faces (a seeded subset)")
    p.add_argument("--non-faces", type=int, default=600, help="generated non-face images")
    p.add_argument("--num-samples", type=int, default=64, help="Monte-Carlo draws per image")
    p.add_argument("--out", type=Path, help="write the table as JSON here")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    results = {}
    for ckpt in args.checkpoints:
        predictor = Predictor.from_checkpoint(ckpt, device="cpu")
        faces = load_dataset("ferplus", args.data_root, "test", size=args.faces, seed=0,
                             image_size=predictor.image_size)
        face_batches = (b["image"] for b in DataLoader(faces, batch_size=128))
        raw, _ = synthetic_ood_set(args.non_faces, size=112, seed=0)
        grey = [Image.fromarray(x).convert("L").convert("RGB") for x in raw]
        ood = torch.stack([predictor.preprocess(im) for im in grey])
        in_scores = collect(predictor, face_batches, args.num_samples, f"{Path(ckpt).parent.name}: faces")
        out_scores = collect(predictor, ood.split(128), args.num_samples, f"{Path(ckpt).parent.name}: non-faces")
        table = {name: {"auroc_ood": ood_auroc(in_scores[name], out_scores[name]),
                        "fpr95_ood": fpr_at_tpr(in_scores[name], out_scores[name]),
                        "mean_faces": float(in_scores[name].mean()), "mean_non_faces": float(out_scores[name].mean())}
                 for name in in_scores}
        results[str(ckpt)] = table
        print(f"\n{ckpt}")
        print("| score | OOD AUROC | FPR at 95% TPR | mean on faces | mean on non-faces |")
        print("|---|---:|---:|---:|---:|")
        for name, row in table.items():
            print(f"| {name} | {row['auroc_ood']:.3f} | {row['fpr95_ood']:.3f} | {row['mean_faces']:.4f} | "
                  f"{row['mean_non_faces']:.4f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
