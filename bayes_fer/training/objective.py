"""The training objective (the negative ELBO per datum) and the learning-rate schedules."""
from __future__ import annotations

import math

import torch
from pyro.infer import TraceMeanField_ELBO

from bayes_fer.training.config import TrainConfig
from bayes_fer.vich import VICHModel
from guides import AmortizedGuide


def elbo_loss(
    model: VICHModel,
    guide: AmortizedGuide,
    batch: dict,
    dataset_size: int,
    *,
    kl_weight: float = 1.0,
    elbo: TraceMeanField_ELBO | None = None,
) -> torch.Tensor:
    """Negative ELBO per datum: mean over the batch of CE(sampled z) + beta * KL.

    ``model`` and ``guide`` get the same arguments: the faces and labels of ``batch``, where
    the minibatch lies among the N = ``dataset_size`` faces, and beta = ``kl_weight``. The
    guide runs the network once; the plate scales the minibatch's log-densities by N / B, so
    dividing by N gives the per-datum value whatever the batch size.
    """
    elbo = elbo or TraceMeanField_ELBO()
    loss = elbo.differentiable_loss(model, guide, batch["image"], batch["label"], targets=batch.get("target"),
                                    votes=batch.get("votes"), subsample=batch["index"], size=dataset_size,
                                    kl_weight=kl_weight)
    return loss / dataset_size


def make_schedules(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
                   ) -> tuple[torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.LRScheduler]:
    """The per-step schedule (warm-up, or warm-up and cosine annealing) and the per-epoch one (the paper's decay)."""
    warm = max(1, cfg.warmup_steps)
    if cfg.lr_schedule == "exponential":
        per_step = torch.optim.lr_scheduler.LinearLR(optimizer, 0.01, 1.0, total_iters=warm)
        return per_step, torch.optim.lr_scheduler.ExponentialLR(optimizer, cfg.lr_gamma)
    total = max(1, cfg.epochs * steps_per_epoch)

    def factor(step: int) -> float:
        ramp = min(1.0, 0.01 + 0.99 * step / warm)
        return ramp * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))

    per_step = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    # A constant per-epoch scheduler keeps one checkpoint layout for both schedules.
    return per_step, torch.optim.lr_scheduler.ExponentialLR(optimizer, 1.0)
