"""Build the network, the VICH model and the guide for a training configuration."""
from __future__ import annotations

import dataclasses

from collections.abc import Sequence

import torch

from bayes_fer import checkpoint as ckpt_io
from bayes_fer.models import CheckpointError, PosterNet, create_model, load_checkpoint
from bayes_fer.models.poster import NATIVE_SIZE
from bayes_fer.models.convert import is_reference_format, poster_checkpoint_filter_fn, unwrap_state_dict
from bayes_fer.training.config import TrainConfig
from bayes_fer.vich import VICHModel
from guides import AmortizedGuide, create_guide


def build_network(config: TrainConfig, num_classes: int, *, load_weights: bool = True,
                  class_names: Sequence[str] | None = None) -> PosterNet:
    """The network of ``config``; published sub-checkpoints and ``init_from`` loaded if asked.

    Args:
        class_names: the data's class order; an ``init_from`` checkpoint that records its own
            class names has its head's rows put in this order (or is refused when the two
            lists hold different classes).

    Raises:
        CheckpointReadError: a weight file cannot be read.
        CheckpointError: its tensors do not fit the network, or its classes differ.
    """
    freeze = config.freeze_landmarks
    if freeze is None:
        freeze = config.landmarks is not None  # frozen random landmark features would carry nothing
    net = create_model(
        config.model,
        num_classes,
        ir50=ckpt_io.read(config.ir50) if load_weights and config.ir50 else None,
        landmarks=ckpt_io.read(config.landmarks) if load_weights and config.landmarks else None,
        layer_embedding=config.layer_embedding,
        freeze_landmarks=freeze,
        **network_size(config.image_size),
    )
    if load_weights and config.init_from:
        raw = ckpt_io.read(config.init_from)
        sd = unwrap_state_dict(raw)
        if is_reference_format(sd):
            sd = poster_checkpoint_filter_fn(sd, variational=net.config.variational)
        if config.reset_head:
            sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
        elif class_names is not None and raw.get("class_names") is not None:
            sd = map_head_classes(sd, list(raw["class_names"]), list(class_names), config.init_from)
        missing = load_checkpoint(net, sd, strict=False)
        if missing:
            print(f"init-from {config.init_from}: {len(missing)} tensors start afresh: {', '.join(missing[:8])}")
    return net


def network_size(image_size: int) -> dict:
    """Model options for an input side: multiples of 112 are subsampled to the native 112;
    any other side (e.g. 64 for 48x48 FER+ faces) builds the network at that side."""
    return {} if image_size % NATIVE_SIZE == 0 else {"input_size": image_size}


def map_head_classes(state_dict: dict, source: Sequence[str], target: Sequence[str], path: str) -> dict:
    """Put the head's rows (one per class) of ``state_dict`` from ``source`` into ``target`` class order.

    Raises:
        CheckpointError: the two class lists hold different classes.
    """
    if list(source) == list(target):
        return state_dict
    if sorted(source) != sorted(target):
        raise CheckpointError(
            f"--init-from {path} was trained for the classes {list(source)}, this data has {list(target)}; "
            "they are not the same classes, so its head cannot be mapped. Pass --reset-head to start the head afresh"
        )
    perm = torch.tensor([list(source).index(name) for name in target])  # target row k <- source row perm[k]
    out = dict(state_dict)
    for key, value in state_dict.items():
        if key.startswith("head.") and value.ndim >= 1 and value.shape[0] == len(source):
            out[key] = value[perm]
    print(f"init-from {path}: head rows reordered from {list(source)} to {list(target)}")
    return out


def build_vich(config: TrainConfig, net: PosterNet, class_counts=None) -> tuple[VICHModel, AmortizedGuide]:
    """The Pyro model and the guide that encodes faces with ``net``.

    ``class_counts`` (training faces per class) set the base rates when ``config.class_prior``
    is ``"train"``; a checkpoint's model state restores them otherwise. The KL weight is no
    part of either: the objective passes ``config.kl_weight`` to both calls.
    """
    if not net.config.variational and config.guide != "delta":
        raise ValueError(
            f"model {config.model!r} has a deterministic head; train it with --guide delta "
            f"(got --guide {config.guide})"
        )
    if config.class_prior == "train" and class_counts is None:
        class_counts = torch.ones(net.num_classes)  # a placeholder: load_state_dict restores the real rates
    K, E = net.num_classes, net.config.embed_dim
    model = VICHModel(K, config.prior_scale, likelihood=config.likelihood,
                      class_counts=class_counts if config.class_prior == "train" else None,
                      learn_prior_scale=config.learn_prior_scale,
                      head_shape=(K, E + 1) if config.bayesian_head else None, head_prior_scale=config.head_prior_scale)
    guide = create_guide(config.guide, K, E, rank=config.rank, bayesian_head=config.bayesian_head, net=net)
    if config.bayesian_head:
        guide.init_from_linear(net.head.fc_loc)  # from init_from's trained head, when there is one
    return model, guide


def config_from_dict(d: dict) -> TrainConfig:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in d.items() if k in fields})
