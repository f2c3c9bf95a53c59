"""A :class:`~bayes_fer.predictive.Predictor` for the command lines, with one clear error per bad file.

``torch.load`` answers an empty, truncated, text or random file with ``EOFError``,
``KeyError: 101``, a zip-reader ``RuntimeError`` or an ``UnpicklingError`` whose message
suggests ``weights_only=False`` (which would run whatever code the file holds). The command
lines call :func:`load_predictor`, which turns each of these into one
:class:`UnreadableCheckpoint` naming the file and what is wrong with it.
"""
from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

#: Devices the command lines accept: auto, cpu, mps, cuda or cuda:N.
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")

# What torch.load and state-dict loading raise for files that are not usable checkpoints.
_UNREADABLE = (EOFError, pickle.UnpicklingError, RuntimeError, KeyError, IndexError, TypeError, AttributeError,
               UnicodeDecodeError, zipfile.BadZipFile, OSError)


class UnreadableCheckpoint(ValueError):
    """A checkpoint file cannot be read or does not describe a network; the message names the file."""


def check_device(name: str) -> str:
    """``name`` if it is a device the command lines accept, else a ``ValueError`` listing them."""
    if not DEVICE_PATTERN.fullmatch(name):
        raise ValueError(f"unknown device {name!r}; expected auto, cpu, mps, cuda or cuda:N (e.g. cuda:0)")
    return name


def describe(path: Path, error: BaseException) -> str:
    """What is wrong with checkpoint ``path``, given what reading it raised; never torch's own advice."""
    if isinstance(error, PermissionError):
        return f"checkpoint {path} cannot be read: permission denied"
    if isinstance(error, OSError) and not isinstance(error, zipfile.BadZipFile):
        return f"checkpoint {path} cannot be read: {error.strerror or type(error).__name__}"
    if isinstance(error, pickle.UnpicklingError) and "Unsupported global" in str(error):
        return (f"checkpoint {path} holds Python objects besides tensors and plain containers, which are not "
                "loaded because loading them could run code from the file; save a state dict instead")
    if isinstance(error, RuntimeError) and ("size mismatch" in str(error) or "Missing key" in str(error)):
        first = str(error).splitlines()[0]
        return f"checkpoint {path} does not fit the network its config describes ({first})"
    if isinstance(error, RuntimeError) and "zip archive" in str(error):
        return (f"checkpoint {path} is truncated or corrupted (its zip archive is incomplete); "
                "copy it again or use another checkpoint such as last.pt")
    return (f"checkpoint {path} is not a PyTorch checkpoint (it may be truncated, a text file or another "
            f"format; reading it raised {type(error).__name__}); pass a best.pt or last.pt written by "
            "svi_train.py, or a POSTER-Var / POSTER++ state dict")


def load_predictor(path: str | os.PathLike, device: str = "auto", dataset: str | None = None) -> Any:
    """``Predictor.from_checkpoint(path, device, dataset=dataset)``, with clear errors.

    Raises:
        FileNotFoundError: no file at ``path``.
        UnreadableCheckpoint: the file is a folder, empty, truncated, not a checkpoint, holds
            objects that are not loaded for safety, or does not fit its network.
        ValueError: an unknown device, or a reference checkpoint without class names.
    """
    from bayes_fer.predictive import Predictor

    path = Path(path)
    check_device(device)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if path.is_dir():
        raise UnreadableCheckpoint(f"checkpoint {path} is a folder; pass the checkpoint file in it (e.g. "
                                   f"{path / 'best.pt'})")
    if path.stat().st_size == 0:
        raise UnreadableCheckpoint(f"checkpoint {path} is empty (0 bytes); it was probably not written completely")
    extra = {} if dataset is None else {"dataset": dataset}
    try:
        return Predictor.from_checkpoint(path, device=device, **extra)
    except FileNotFoundError:
        raise
    except _UNREADABLE as error:
        # ``from None``: the chained torch message would advise weights_only=False.
        raise UnreadableCheckpoint(describe(path, error)) from None
