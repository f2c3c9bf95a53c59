"""Training checkpoints: written atomically, loaded with ``weights_only=True``."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "bayes-fer/1"


def save_atomic(obj: dict, path: str | os.PathLike) -> None:
    """Write ``obj`` to a temporary file beside ``path``, then rename it into place.

    A run killed while writing leaves the previous checkpoint intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a bayes-fer checkpoint, checking that it is one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a bayes-fer training checkpoint (expected format {FORMAT!r}); reference "
            "POSTER++/POSTER-Var checkpoints load with bayes_fer.create_model(name, checkpoint=...)"
        )
    return ckpt
