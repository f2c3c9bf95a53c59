"""Data-parallel training under ``torchrun``: the process group, DDP, and what one process does alone.

``torchrun --nproc_per_node W scripts/svi_train.py ...`` starts W processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set. Each joins one group (NCCL on GPUs, gloo on CPUs),
takes GPU ``LOCAL_RANK`` when training on CUDA, and trains a replica wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel`.

A run under W processes means what a one-process run at the same global batch means:
``--batch-size`` is the global batch. Every process draws the same epoch order, cuts it into
the same global batches and takes its own slice of each
(:class:`bayes_fer.training.batches.ShardedBatchSampler`). Each process's ELBO keeps the
plate size at the training-set size N, so its loss is the per-datum loss of its slice;
:func:`gradient_weight` scales it by ``W * b / B`` (``b`` faces in the slice, ``B`` in the
global batch), so the gradient DDP averages is the gradient of the per-datum loss over the
global batch, whatever the split. BatchNorm statistics are per process (as in any DDP run
without SyncBatchNorm, which CPUs lack) and the ELBO's draws come from per-process streams,
so a W-process run agrees with a one-process run within noise, not bit for bit.

Rank 0 alone writes checkpoints, logs and messages, validates and tests; the others wait for
it at their next collective and receive the test metrics. Checkpoints hold the unwrapped
modules (no ``module.`` prefix) and rank 0's state.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pyro
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

#: How long a process waits at a collective, e.g. while rank 0 validates or tests alone.
TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the group (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # setup() joined the group (a caller's own group is left to the caller)

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints, logs and messages."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Each of ``values`` summed over the processes (a collective: every process calls it)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def from_main(self, obj):
        """Rank 0's ``obj`` on every process (a collective)."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def setup(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the process group ``torchrun`` describes, if any, and pick this process's device.

    Args:
        device: the device asked for; ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun.

    Returns:
        The process's context and device; without torchrun, ``DistContext()`` and ``device``.

    Raises:
        ValueError: more processes on this machine than GPUs, or an MPS device (no backend).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ValueError(f"process {rank} has LOCAL_RANK {local} but this machine has {torch.cuda.device_count()} "
                             "GPU(s); start at most that many processes per node (--nproc_per_node)")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ValueError(f"torchrun training runs on cuda (NCCL) or cpu (gloo), not {device}; pass --device cuda or cpu")
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return DistContext(rank, world, local, owns), device


def seed_process(ctx: DistContext, seed: int, step: int) -> None:
    """Give each process its own stream of ELBO draws and device augmentation, from (seed, rank, step).

    Called after a checkpoint's RNG state (rank 0's) is restored: without it every process
    would draw the same noise for different faces. One process keeps the restored state, so
    its resumed runs replay exactly.
    """
    if ctx.enabled:
        pyro.set_rng_seed(int(np.random.SeedSequence([seed, ctx.rank, step]).generate_state(1)[0]))


def gradient_weight(ctx: DistContext, faces: int, global_batch: int) -> float:
    """The factor on this process's per-datum loss that makes DDP's average the global batch's gradient.

    DDP averages the processes' gradients; the global batch's per-datum gradient weighs each
    slice by its share ``faces / global_batch``. Hence ``world_size * faces / global_batch``,
    1 when the global batch divides evenly.
    """
    return ctx.world_size * faces / global_batch if ctx.enabled else 1.0


class _LossModule(nn.Module):
    """The modules whose parameters train, with the per-datum loss of a batch as ``forward``."""

    def __init__(self, modules: dict[str, nn.Module], loss_fn: Callable[[dict], torch.Tensor]) -> None:
        super().__init__()
        self.parts = nn.ModuleDict(modules)
        self.loss_fn = loss_fn

    def forward(self, batch: dict) -> torch.Tensor:
        return self.loss_fn(batch)


def wrap(ctx: DistContext, modules: dict[str, nn.Module], loss_fn: Callable[[dict], torch.Tensor],
         device: torch.device) -> DistributedDataParallel | None:
    """``loss_fn`` behind DistributedDataParallel over ``modules``; ``None`` for one process.

    DDP broadcasts rank 0's parameters and buffers at construction (every replica starts
    equal; it is also the point where all processes have opened their data and run folder)
    and averages gradients during ``backward``. ``static_graph``: the parameters that receive
    gradients are the same every step (the delta guide never uses the log-variance head, for
    one), which DDP then handles without searching the graph each step.
    """
    if not ctx.enabled:
        return None
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(_LossModule(modules, loss_fn), device_ids=ids, static_graph=True)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group that :func:`setup` joined (at the end of a run, failed or not)."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["TIMEOUT", "DistContext", "gradient_weight", "seed_process", "setup", "shutdown", "wrap"]
