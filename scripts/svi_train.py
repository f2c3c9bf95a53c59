#!/usr/bin/env python
"""Train POSTER-Var's VICH head by stochastic variational inference (ELBO = CE + beta * KL).

With no arguments: poster_var_tiny on synthetic compound-expression faces, on the CPU, in
under 5 minutes, printing held-out accuracy, NLL and ECE.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bayes_fer.data.transforms import AUGMENTATIONS  # noqa: E402
from bayes_fer.models import CheckpointError  # noqa: E402
from bayes_fer.training import CLASS_PRIORS, DATASETS, LIKELIHOODS, LR_SCHEDULES, TrainConfig, TrainingDiverged, preset, train  # noqa: E402
from guides import GUIDES  # noqa: E402

EXAMPLES = """examples:
  python scripts/svi_train.py                                   # embedded default (synthetic, CPU)
  python scripts/svi_train.py --dataset ferplus --data-root ../shared/data/ferplus --model poster_var_tiny
  python scripts/svi_train.py --dataset affectnet7 --data-root /data/AffectNet --model poster_var \\
      --ir50 ir50.pth --landmarks mobilefacenet_model_best.pth.tar --device cuda --bf16
  python scripts/svi_train.py --out runs/default --resume          # continue an interrupted run
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--dataset", choices=DATASETS, default="synthetic", help="which data set to train on")
    a("--data-root", help="folder holding the data set in its official layout")
    a("--label-mode", choices=("majority", "probability"), help="FER+ labels: majority vote or vote distribution")
    a("--model", help="network: poster_var, poster_pp or poster_var_tiny (default from the dataset preset)")
    a("--guide", choices=GUIDES, help="variational family: normal (the paper), lowrank, delta (w/o VI)")
    a("--rank", type=int, help="covariance rank of the low-rank guide")
    a("--kl-weight", type=float, help="beta: weight of the KL term in the ELBO")
    a("--prior-scale", type=float, help="standard deviation of the intensity prior (its start with --learn-prior-scale)")
    a("--learn-prior-scale", action="store_true", default=None, help="empirical Bayes: fit the prior scale by the ELBO")
    a("--bayesian-head", action="store_true", default=None,
      help="epistemic uncertainty: the head's linear map as a latent with a Normal prior, fitted by the same SVI")
    a("--head-prior-scale", type=float, help="standard deviation of the Bayesian head's weight prior")
    a("--train-head-only", action="store_true", default=None,
      help="freeze the network but its head (with --init-from: fit a Bayesian head to a trained network)")
    a("--likelihood", choices=LIKELIHOODS,
      help="categorical (one label per face), multinomial or dirmult (annotator vote counts, e.g. FER+'s 10 votes)")
    a("--class-prior", choices=CLASS_PRIORS,
      help="class base rates in the likelihood: uniform, or train (logit-adjusted: balanced intensities)")
    a("--no-layer-embedding", dest="layer_embedding", action="store_false", default=None, help="ablation: no level embeddings")
    a("--epochs", type=int, help="passes over the training set")
    a("--batch-size", type=int, help="examples per step")
    a("--lr", type=float, help="peak learning rate of AdamW")
    a("--weight-decay", type=float, help="AdamW weight decay")
    a("--lr-gamma", type=float, help="ExponentialLR decay per epoch")
    a("--lr-schedule", choices=LR_SCHEDULES, help="per-epoch decay by --lr-gamma (the paper) or cosine to 0")
    a("--warmup-steps", type=int, help="linear learning-rate warm-up steps")
    a("--sam-rho", type=float, help="SAM neighbourhood size (0 disables; the reference used 0.05)")
    a("--grad-clip", type=float, help="max gradient norm (0 disables)")
    a("--freeze-landmarks", action=argparse.BooleanOptionalAction, default=None,
      help="freeze the landmark net (default: frozen only when --landmarks weights are given)")
    a("--device", help="auto, cpu, cuda or cuda:N")
    a("--bf16", action="store_true", default=None, help="bf16 autocast for the network on CUDA")
    a("--compile", action="store_true", default=None, help="torch.compile the network")
    a("--ir50", help="published ir50.pth for the image backbone")
    a("--landmarks", help="published mobilefacenet_model_best.pth.tar for the landmark net")
    a("--init-from", help="POSTER++, POSTER-Var or bayes-fer checkpoint to start from")
    a("--reset-head", action="store_true", default=None, help="with --init-from: start the head afresh")
    a("--out", help="output folder for checkpoints and logs (default runs/<dataset>-<model>)")
    a("--resume", action="store_true", help="continue from <out>/last.pt")
    a("--seed", type=int, help="random seed")
    a("--max-minutes", type=float, help="stop after this many minutes (checkpointed and tested)")
    a("--workers", type=int, help="DataLoader worker processes")
    a("--balanced-per-class", type=int, help="draw this many faces per class each epoch (AffectNet presets: 3000)")
    a("--train-size", type=int, help="synthetic: training faces; others: cap for quick runs")
    a("--valid-size", type=int, help="synthetic: validation/test faces; others: cap")
    a("--augment", choices=tuple(AUGMENTATIONS), help="training augmentation: standard (the paper's), flip or none")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The dataset's preset with every flag given on the command line laid over it."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if v is not None and k in names}
    pretrained = any(given.get(k) for k in ("ir50", "landmarks", "init_from"))
    config = preset(given["dataset"], pretrained).replace(**given)
    return config if "out" in given else config.replace(out=f"runs/{config.dataset}-{config.model}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    if args.resume and not (Path(config.out) / "last.pt").exists():
        print(f"error: --resume needs {Path(config.out) / 'last.pt'}, which does not exist", file=sys.stderr)
        return 2
    try:
        metrics = train(config, resume=args.resume)
    except (FileNotFoundError, ValueError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"error: training diverged: {e}", file=sys.stderr)
        return 3
    print(f"outputs in {config.out}: best.pt, last.pt, metrics.csv, metrics.jsonl, final.json")
    return 0 if metrics else 1


if __name__ == "__main__":
    raise SystemExit(main())
