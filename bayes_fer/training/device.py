"""The device a run asks for, checked before anything is built."""
from __future__ import annotations

import torch

from bayes_fer.training.checks import DEVICE_PATTERN


def resolve_device(name: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` as a torch device that is present.

    Raises:
        ValueError: an unknown name, or an accelerator that this machine lacks.
    """
    if not DEVICE_PATTERN.fullmatch(str(name)):
        raise ValueError(f"unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name} was asked for but CUDA is not available; use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"numbered from 0")
        torch.backends.cudnn.benchmark = True  # training batches have one shape: let cuDNN pick its fastest kernels
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name} was asked for but MPS is not available; use --device cpu or auto")
    return device
