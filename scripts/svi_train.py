#!/usr/bin/env python
"""Train POSTER-Var's VICH head by stochastic variational inference (ELBO = CE + beta * KL).

With no arguments: poster_var_tiny on synthetic compound-expression faces, on the CPU, in
under 5 minutes, printing held-out accuracy, NLL and ECE.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bayes_fer import checkpoint as ckpt_io  # noqa: E402
from bayes_fer.data.transforms import AUGMENTATIONS  # noqa: E402
from bayes_fer.models import CheckpointError  # noqa: E402
from bayes_fer.training import (  # noqa: E402
    CLASS_PRIORS,
    DATASETS,
    LIKELIHOODS,
    LR_SCHEDULES,
    OutputError,
    TrainConfig,
    TrainingDiverged,
    preset,
    train,
)
from bayes_fer.training.batches import DEFAULT_CACHE_DIR  # noqa: E402
from bayes_fer.training.checks import arg_type, cache_dir_type, device_type  # noqa: E402
from bayes_fer.training.resume import resume_config  # noqa: E402
from guides import GUIDES  # noqa: E402

EXAMPLES = """examples:
  python scripts/svi_train.py                                   # embedded default (synthetic, CPU)
  python scripts/svi_train.py --dataset ferplus --data-root ../shared/data/ferplus --model poster_var_tiny
  python scripts/svi_train.py --dataset affectnet7 --data-root /data/AffectNet --model poster_var \\
      --ir50 ir50.pth --landmarks mobilefacenet_model_best.pth.tar --device cuda --bf16
  python scripts/svi_train.py --out runs/default --resume          # continue an interrupted run
  python scripts/svi_train.py --out runs/default --resume --epochs 6   # ... and train it longer
  python scripts/svi_train.py --dataset ferplus --data-root ../shared/data/ferplus --data-cache   # decode once
  torchrun --nproc_per_node 4 scripts/svi_train.py --dataset ferplus --data-root DIR --device cuda --batch-size 512
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--dataset", choices=DATASETS, help="which data set to train on (default synthetic)")
    a("--data-root", help="folder holding the data set in its official layout")
    a("--label-mode", choices=("majority", "probability"), help="FER+ labels: majority vote or vote distribution")
    a("--model", help="network: poster_var, poster_pp or poster_var_tiny (default from the dataset preset)")
    a("--guide", choices=GUIDES, help="variational family: normal (the paper), lowrank, delta (w/o VI)")
    a("--rank", type=arg_type("rank"), help="covariance rank of the low-rank guide (>= 1)")
    a("--kl-weight", type=arg_type("kl_weight"), help="beta: weight of the KL term in the ELBO (>= 0)")
    a("--prior-scale", type=arg_type("prior_scale"),
      help="standard deviation of the intensity prior, > 0 (its start with --learn-prior-scale)")
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
    a("--epochs", type=arg_type("epochs"), help="passes over the training set (>= 1)")
    a("--batch-size", type=arg_type("batch_size"), help="examples per step (>= 1); under torchrun the global batch")
    a("--lr", type=arg_type("lr"), help="peak learning rate of AdamW (> 0)")
    a("--weight-decay", type=arg_type("weight_decay"), help="AdamW weight decay (>= 0)")
    a("--lr-gamma", type=arg_type("lr_gamma"), help="ExponentialLR decay per epoch, in (0, 1]")
    a("--lr-schedule", choices=LR_SCHEDULES, help="per-epoch decay by --lr-gamma (the paper) or cosine to 0")
    a("--warmup-steps", type=arg_type("warmup_steps"), help="linear learning-rate warm-up steps (>= 0)")
    a("--sam-rho", type=arg_type("sam_rho"), help="SAM neighbourhood size (0 disables; the reference used 0.05)")
    a("--grad-clip", type=arg_type("grad_clip"), help="max gradient norm (0 disables)")
    a("--freeze-landmarks", action=argparse.BooleanOptionalAction, default=None,
      help="freeze the landmark net (default: frozen only when --landmarks weights are given)")
    a("--device", type=device_type, help="auto, cpu, cuda, cuda:N or mps")
    a("--bf16", action="store_true", default=None, help="bf16 autocast for the network on CUDA")
    a("--compile", action="store_true", default=None, help="torch.compile the network")
    a("--ir50", help="published ir50.pth for the image backbone")
    a("--landmarks", help="published mobilefacenet_model_best.pth.tar for the landmark net")
    a("--init-from", help="POSTER++, POSTER-Var or bayes-fer checkpoint to start from (its head is put in this "
                          "data's class order by name)")
    a("--reset-head", action="store_true", default=None, help="with --init-from: start the head afresh")
    a("--out", help="output folder for checkpoints and logs (default runs/<dataset>-<model>); it must not hold "
                    "another run unless --resume or --overwrite is given")
    a("--resume", action="store_true", help="continue the run in --out from its last.pt; only --epochs, --max-minutes, "
                                            "--max-steps, --workers, --device and --compile may differ from that run")
    a("--overwrite", action="store_true", help="replace the run already in --out (its checkpoints and logs)")
    a("--seed", type=arg_type("seed"), help="random seed")
    a("--max-minutes", type=arg_type("max_minutes"),
      help="stop after this many minutes, mid-epoch if need be (checkpointed and tested; --resume continues)")
    a("--max-steps", type=arg_type("max_steps"),
      help="stop once this many optimizer steps are done in all (checkpointed and tested; --resume continues)")
    a("--workers", type=arg_type("workers"), help="DataLoader worker processes")
    a("--balanced-per-class", type=arg_type("balanced_per_class"),
      help="draw this many faces per class each epoch (AffectNet presets: 3000)")
    a("--train-size", type=arg_type("train_size"), help="synthetic: training faces; others: cap for quick runs (>= 1)")
    a("--valid-size", type=arg_type("valid_size"), help="synthetic: validation/test faces; others: cap (>= 1)")
    a("--image-size", type=arg_type("image_size"),
      help="network input side: 112 (native; 224 is subsampled to it) or a multiple of 16 such as 64, "
           "which builds the network at that side (FER+ faces are 48x48)")
    a("--augment", choices=tuple(AUGMENTATIONS), help="training augmentation: standard (the paper's), flip or none")
    a("--data-cache", nargs="?", const=DEFAULT_CACHE_DIR, type=cache_dir_type, metavar="DIR",
      help=f"decode the data set once into the folder DIR (default {DEFAULT_CACHE_DIR}) and augment each batch on "
           "the training device; --workers then decode the cache")
    return p


def given_flags(args: argparse.Namespace) -> dict:
    """The configuration fields set on the command line."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in vars(args).items() if v is not None and k in names}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The dataset's preset with every flag given on the command line laid over it."""
    given = given_flags(args)
    pretrained = any(given.get(k) for k in ("ir50", "landmarks", "init_from"))
    config = preset(given.get("dataset", "synthetic"), pretrained).replace(**given)
    return config if "out" in given else config.replace(out=f"runs/{config.dataset}-{config.model}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        last = Path(config.out) / "last.pt"
        if args.resume and last.is_file():
            # The run's own settings, with what the command line changes: the trainer refuses
            # any change beyond run control, listing each.
            config = resume_config(ckpt_io.load(last)["config"], {**given_flags(args), "out": config.out})
        metrics = train(config, resume=args.resume, overwrite=args.overwrite)
    except (FileNotFoundError, ValueError, CheckpointError, OutputError, ckpt_io.CheckpointWriteError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"error: training diverged: {e}", file=sys.stderr)
        return 3
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 alone writes the outputs
        print(f"outputs in {config.out}: best.pt, last.pt, metrics.csv, metrics.jsonl, final.json")
    return 0 if metrics else 1


if __name__ == "__main__":
    raise SystemExit(main())
