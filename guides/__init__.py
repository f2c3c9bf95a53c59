"""Amortized variational families for VICH's latent expression intensities."""
from __future__ import annotations

from guides.base import AmortizedGuide, bounded_scale
from guides.delta import DeltaGuide
from guides.lowrank import LowRankGuide
from guides.normal import NormalGuide

GUIDES = ("normal", "lowrank", "delta")


def create_guide(name: str, num_classes: int, feature_dim: int, *, rank: int = 2, kl_weight: float = 1.0) -> AmortizedGuide:
    """Build a guide by name: ``normal`` (the paper), ``lowrank`` or ``delta`` (w/o VI)."""
    if name == "normal":
        return NormalGuide(num_classes, kl_weight)
    if name == "lowrank":
        return LowRankGuide(num_classes, feature_dim, rank, kl_weight)
    if name == "delta":
        return DeltaGuide(num_classes, kl_weight)
    raise ValueError(f"unknown guide {name!r}; choose one of {', '.join(GUIDES)}")


__all__ = ["GUIDES", "AmortizedGuide", "DeltaGuide", "LowRankGuide", "NormalGuide", "bounded_scale", "create_guide"]
