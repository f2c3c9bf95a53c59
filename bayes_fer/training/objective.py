"""The training objective (the negative ELBO per datum) and the learning-rate schedules."""
from __future__ import annotations

import math

import torch
from pyro.infer import TraceMeanField_ELBO

from bayes_fer.training.config import TrainConfig
from bayes_fer.vich import HeadOutput, VICHModel
from guides import AmortizedGuide


def elbo_loss(
    model: VICHModel,
    guide: AmortizedGuide,
    out: HeadOutput,
    batch: dict,
    dataset_size: int,
    elbo: TraceMeanField_ELBO | None = None,
) -> torch.Tensor:
    """Negative ELBO per datum: mean over the batch of CE(sampled z) + beta * KL.

    The plate scales the minibatch's log-densities by N / B, so dividing by N gives the
    per-datum value whatever the batch size.
    """
    if model.kl_weight != guide.kl_weight:
        raise ValueError(f"model and guide disagree on the KL weight ({model.kl_weight} against {guide.kl_weight}); "
                         "build both with training.builder.build_vich")
    elbo = elbo or TraceMeanField_ELBO()
    args = (out, batch["label"], batch.get("target"), batch["index"], dataset_size, batch.get("votes"))
    return elbo.differentiable_loss(model, guide, *args) / dataset_size


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
