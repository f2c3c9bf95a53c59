"""Registered POSTER models and ``create_model``."""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping

import torch

from bayes_fer.models.convert import (
    CheckpointError,
    ir50_filter_fn,
    is_reference_format,
    mobilefacenet_filter_fn,
    poster_checkpoint_filter_fn,
    unwrap_state_dict,
)
from bayes_fer.models.poster import PosterConfig, PosterNet

MODEL_CONFIGS: dict[str, PosterConfig] = {
    # The paper's network.
    "poster_var": PosterConfig(),
    # The POSTER++ baseline: no level embeddings, no embedding GELUs, no fusion norm, linear head.
    "poster_pp": PosterConfig(variational=False, layer_embedding=False, embed_gelu=False, fusion_norm=False),
    # Same classes and code path at ~1/40 of the FLOPs, for CPU work and tests. Never has
    # published weights, so its landmark branch trains with the rest.
    "poster_var_tiny": PosterConfig(
        dims=(16, 32, 64),
        heads=(1, 2, 4),
        ir_depths=(1, 1, 1),
        landmark_width=0.25,
        landmark_blocks=(1, 1, 1),
        embed_dim=128,
        vit_heads=4,
        freeze_landmarks=False,
    ),
}
# POSTER++ at the tiny size: the CPU-scale baseline for the ablations.
MODEL_CONFIGS["poster_pp_tiny"] = dataclasses.replace(
    MODEL_CONFIGS["poster_var_tiny"], variational=False, layer_embedding=False, embed_gelu=False, fusion_norm=False
)


def list_models() -> list[str]:
    return sorted(MODEL_CONFIGS)


def model_config(name: str, num_classes: int = 7, **options) -> PosterConfig:
    """The registered configuration ``name`` with ``num_classes`` and field overrides applied."""
    if name not in MODEL_CONFIGS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    fields = {f.name for f in dataclasses.fields(PosterConfig)}
    bad = sorted(set(options) - fields)
    if bad:
        raise TypeError(f"unknown option(s) {bad} for {name!r}; valid options: {', '.join(sorted(fields))}")
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    return dataclasses.replace(MODEL_CONFIGS[name], num_classes=num_classes, **options)


def _read(source: str | os.PathLike | Mapping, what: str) -> Mapping:
    if isinstance(source, Mapping):
        return source
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} checkpoint {path!r} does not exist")
    return torch.load(path, map_location="cpu", weights_only=True)


def _check_classes(state_dict: Mapping, model: PosterNet) -> None:
    for key in ("head.fc_loc.weight", "head.fc.weight"):
        if key in state_dict and state_dict[key].shape[0] != model.num_classes:
            raise CheckpointError(
                f"the checkpoint's head predicts {state_dict[key].shape[0]} classes but the model was built "
                f"for {model.num_classes}; pass num_classes={state_dict[key].shape[0]} or initialise the "
                "head afresh (svi_train.py --init-from does)"
            )


def load_weights(model: PosterNet, state_dict: Mapping, *, strict: bool = True, prefix: str = "") -> list[str]:
    """Load already-filtered tensors; report every missing and unexpected key.

    Args:
        prefix: only keys under this prefix are expected (for sub-network checkpoints).
        strict: if False, missing keys are allowed and returned (unexpected ones never are).

    Returns:
        The model keys that the checkpoint left at their initial values.
    """
    _check_classes(state_dict, model)
    own = {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}
    unexpected = sorted(set(state_dict) - set(own))
    missing = sorted(set(own) - set(state_dict))
    wrong = sorted(k for k in set(own) & set(state_dict) if tuple(own[k].shape) != tuple(state_dict[k].shape))
    problems = []
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected[:20])}")
    if wrong:
        problems.append(
            "shape mismatch: " + ", ".join(f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:20])
        )
    if missing and strict:
        problems.append(f"missing keys: {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}")
    if problems:
        raise CheckpointError("checkpoint does not fit the model: " + "; ".join(problems))
    model.load_state_dict(dict(state_dict), strict=False)
    return missing


def load_checkpoint(model: PosterNet, checkpoint: str | os.PathLike | Mapping, *, strict: bool = True) -> list[str]:
    """Load a reference POSTER++/POSTER-Var checkpoint or one of ours into ``model``."""
    raw = _read(checkpoint, "model")
    sd = unwrap_state_dict(raw)
    if is_reference_format(sd):
        sd = poster_checkpoint_filter_fn(sd, variational=model.config.variational)
    return load_weights(model, sd, strict=strict)


def create_model(
    name: str,
    num_classes: int = 7,
    checkpoint: str | os.PathLike | Mapping | None = None,
    *,
    ir50: str | os.PathLike | Mapping | None = None,
    landmarks: str | os.PathLike | Mapping | None = None,
    **options,
) -> PosterNet:
    """Build a registered POSTER network, optionally loading weights.

    Args:
        name: one of ``list_models()``: ``poster_var``, ``poster_pp``, ``poster_var_tiny``.
        num_classes: K, the number of expression classes.
        checkpoint: a whole-network checkpoint (path or mapping): reference POSTER-Var or
            POSTER++ state dicts (bare, ``{"state_dict": ...}``, ``module.``-prefixed) or ours.
        ir50: the published ``ir50.pth`` for the image backbone.
        landmarks: the published ``mobilefacenet_model_best.pth.tar`` for the landmark net.
        **options: overrides of ``PosterConfig`` fields, e.g. ``layer_embedding=False``.
    """
    model = PosterNet(model_config(name, num_classes, **options))
    loaders: list[tuple[object, Callable[[Mapping], dict], str]] = [
        (ir50, ir50_filter_fn, "backbone."),
        (landmarks, mobilefacenet_filter_fn, "landmarks."),
    ]
    for source, filter_fn, prefix in loaders:
        if source is not None:
            load_weights(model, filter_fn(_read(source, prefix.rstrip("."))), prefix=prefix)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(all parameters, trainable parameters)."""
    total = sum(p.numel() for p in model.parameters())
    return total, sum(p.numel() for p in model.parameters() if p.requires_grad)
