"""Models that ship inside the package: load one with no file of your own and no network.

    >>> from bayes_fer.pretrained import load_pretrained
    >>> predictor = load_pretrained("ferplus")        # or Predictor.pretrained()
    >>> predictor(["face.png"]).probs

Each packaged model is a training checkpoint (format ``bayes-fer/1``) less its optimizer,
scheduler and random-number state, with the network and guide weights stored in float16
(half the size; the model card's metrics are measured on exactly these weights) and
restored to float32 on load. ``manifest.json`` beside the weights holds each file's SHA-256;
a file that does not match it is refused, since a truncated or altered file would otherwise
give wrong answers without any error. ``scripts/package_model.py`` writes both.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bayes_fer import checkpoint as ckpt_io

if TYPE_CHECKING:  # predictive imports the networks and guides: keep this module light to import
    from bayes_fer.predictive import Predictor

WEIGHTS_PACKAGE = "bayes_fer.weights"
MANIFEST = "manifest.json"
DEFAULT_MODEL = "ferplus"
#: Parts of a training checkpoint that only resuming needs; a packaged model drops them.
TRAINING_ONLY = ("optimizer", "warmup", "decay", "rng")
#: State dicts whose floating-point tensors are stored in float16.
HALF_PRECISION = ("model", "guide")
FP16_MAX = 65504.0


class ChecksumError(RuntimeError):
    """A packaged weight file does not match the checksum in the manifest."""


def weights_dir() -> Path:
    """The folder holding the packaged weights and their manifest."""
    return Path(str(resources.files(WEIGHTS_PACKAGE)))


def manifest(folder: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """Name -> entry (``file``, ``sha256``, ``source``, ...) of every packaged model."""
    path = Path(folder or weights_dir()) / MANIFEST
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def available_models(folder: str | os.PathLike | None = None) -> list[str]:
    """Names :func:`load_pretrained` accepts."""
    return sorted(manifest(folder))


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pretrained_path(name: str = DEFAULT_MODEL, folder: str | os.PathLike | None = None) -> Path:
    """Path of the packaged checkpoint ``name``, after checking its SHA-256 against the manifest.

    Raises:
        ValueError: ``name`` is not a packaged model.
        FileNotFoundError: the manifest names a file that is absent.
        ChecksumError: the file's SHA-256 differs from the manifest's.
    """
    folder = Path(folder or weights_dir())
    entries = manifest(folder)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none (this installation ships no weights)"
        raise ValueError(f"no packaged model named {name!r}; packaged models: {known}. "
                         "Load your own with Predictor.from_checkpoint(path)")
    entry = entries[name]
    path = folder / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"packaged model {name!r}: {path} is missing; reinstall bayes-fer "
                                "or rebuild it with scripts/package_model.py")
    found = sha256(path)
    if found != entry["sha256"]:
        raise ChecksumError(f"packaged model {name!r}: {path} has SHA-256 {found}, the manifest expects "
                            f"{entry['sha256']}; the file is damaged or was replaced: reinstall bayes-fer "
                            "or rebuild it with scripts/package_model.py")
    return path


def load_pretrained(name: str = DEFAULT_MODEL, device: str | torch.device = "auto",
                    folder: str | os.PathLike | None = None) -> "Predictor":
    """A :class:`~bayes_fer.predictive.Predictor` for the packaged model ``name``.

    Args:
        name: a name from :func:`available_models` (``"ferplus"``: poster_var_tiny on FER+,
            see ``docs/model_card_ferplus.md``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or a torch device.
        folder: where the weights and manifest lie (default: inside the package).
    """
    from bayes_fer.predictive import Predictor

    path = pretrained_path(name, folder)
    # The float16 tensors are copied into the float32 modules by load_state_dict.
    predictor = Predictor.from_checkpoint(path, device if isinstance(device, str) else str(device))
    weights = [p for p in predictor.guide.state_dict().values() if p.is_floating_point()]  # the network's too
    assert all(w.dtype == torch.float32 for w in weights), "packaged weights must be restored to float32"
    return predictor


def strip_for_packaging(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """A training checkpoint less its resume-only state, network and guide weights in float16.

    Raises:
        ValueError: not a bayes-fer checkpoint, or a weight outside float16's range.
    """
    if ckpt.get("format") != ckpt_io.FORMAT:
        raise ValueError(f"expected a bayes-fer training checkpoint (format {ckpt_io.FORMAT!r}), "
                         f"got format {ckpt.get('format')!r}")
    out = {k: v for k, v in ckpt.items() if k not in TRAINING_ONLY}
    for part in HALF_PRECISION:
        half = {}
        for key, t in ckpt[part].items():
            if t.is_floating_point():
                if t.numel() and float(t.abs().max()) > FP16_MAX:
                    raise ValueError(f"{part}.{key} holds values beyond float16's range (max |x| "
                                     f"{float(t.abs().max()):.3g} > {FP16_MAX}); package it in float32")
                t = t.half()
            half[key] = t.clone()
        out[part] = half
    return out
