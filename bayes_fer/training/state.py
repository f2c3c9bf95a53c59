"""What a training checkpoint carries, and how a trainer is put back from it.

Besides the weights and the optimizer, the random-number generators' states, so that a
resumed run replays exactly.
"""
from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from bayes_fer import checkpoint as ckpt_io
from bayes_fer.models import CheckpointError

if TYPE_CHECKING:
    from bayes_fer.training.loop import Trainer


def get_rng_state() -> dict:
    """Python, NumPy and torch generator states, as types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_tuplify(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


def trainer_state(trainer: "Trainer") -> dict:
    """Everything a run needs to resume, and what evaluation and prediction read."""
    net = trainer.guide.net
    return {
        "format": ckpt_io.FORMAT,
        # The network's tensors under "model", as before the guide owned it: old checkpoints still load.
        "model": net.state_dict(),
        "guide": trainer.guide.state_dict_without_net(),
        "vich": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "warmup": trainer.warmup.state_dict(),
        "decay": trainer.decay.state_dict(),
        "rng": get_rng_state(),
        "config": dataclasses.asdict(trainer.config),
        "model_config": _plain(dataclasses.asdict(net.config)),
        "class_names": list(trainer.class_names),
        "data": {"dataset": trainer.config.dataset, "label_mode": trainer.config.label_mode,
                 "image_size": trainer.config.image_size},
        "epoch": trainer.epoch,
        "step": trainer.step,
        "epoch_step": trainer.epoch_step,
        "steps_per_epoch": trainer.steps_per_epoch,
        "epoch_tally": list(trainer.tally),
        "epoch_validated": trainer.epoch_validated,
        "best_metric": trainer.best,
        "best_metric_name": "valid/accuracy",
    }


def restore_trainer(trainer: "Trainer", state: dict, path: Path) -> None:
    """Put ``trainer`` back where the run that wrote ``state`` (read from ``path``) stopped.

    Raises:
        ValueError: the checkpoint's classes or steps per epoch differ from this data's.
        CheckpointError: its tensors do not fit this configuration's network, guide or model.
    """
    if list(state["class_names"]) != list(trainer.class_names):
        raise ValueError(f"{path} was trained for classes {state['class_names']}, this data has {list(trainer.class_names)}")
    if state.get("steps_per_epoch", trainer.steps_per_epoch) != trainer.steps_per_epoch:
        raise ValueError(f"{path} was made with {state['steps_per_epoch']} steps per epoch, this data gives "
                         f"{trainer.steps_per_epoch}: the training split changed since that run")
    try:
        trainer.guide.net.load_state_dict(state["model"])
        trainer.guide.load_state_dict_without_net(state["guide"])
        trainer.model.load_state_dict(state["vich"])
        trainer.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        what = " ".join(str(e).split())[:600] or type(e).__name__
        raise CheckpointError(f"{path} does not fit the network, guide and model of this configuration: {what}") from None
    trainer.warmup.load_state_dict(state["warmup"])
    trainer.decay.load_state_dict(state["decay"])
    set_rng_state(state["rng"])
    trainer.epoch, trainer.step, trainer.best = state["epoch"], state["step"], state["best_metric"]
    trainer.epoch_step = state.get("epoch_step", 0)
    trainer.tally = tuple(state.get("epoch_tally", (0.0, 0, 0.0)))
    trainer.epoch_validated = state.get("epoch_validated", True)
    where = f", step {trainer.epoch_step} of {trainer.steps_per_epoch} in epoch {trainer.epoch + 1}" if trainer.epoch_step else ""
    if trainer.main:
        print(f"resumed from {path}: epoch {trainer.epoch}{where}, step {trainer.step}, best valid accuracy {trainer.best:.4f}")


def _plain(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items() if k != "extra"}
