"""Amortized variational families for VICH's latent expression intensities.

VICH is an amortized variational information bottleneck on the class intensities; each
guide here is its encoder q(z | x): it owns the network, runs it once per call and samples z.
"""
from __future__ import annotations

from torch import nn

from guides.base import AmortizedGuide, bounded_scale
from guides.bayesian_head import BayesianHeadGuide
from guides.delta import DeltaGuide
from guides.lowrank import LowRankGuide
from guides.normal import NormalGuide

GUIDES = ("normal", "lowrank", "delta")


def create_guide(name: str, num_classes: int, feature_dim: int, *, rank: int = 2, bayesian_head: bool = False,
                 net: nn.Module | None = None) -> AmortizedGuide:
    """Build a guide by name: ``normal`` (the paper), ``lowrank`` or ``delta`` (w/o VI), encoding with ``net``.

    With ``bayesian_head`` the head's weights become a latent too (``normal`` only).
    """
    if bayesian_head:
        if name != "normal":
            raise ValueError(f"the Bayesian head extends the mean-field Normal guide; use --guide normal, not {name!r}")
        return BayesianHeadGuide(num_classes, feature_dim, net=net)
    if name == "normal":
        return NormalGuide(num_classes, net)
    if name == "lowrank":
        return LowRankGuide(num_classes, feature_dim, rank, net)
    if name == "delta":
        return DeltaGuide(num_classes, net)
    raise ValueError(f"unknown guide {name!r}; choose one of {', '.join(GUIDES)}")


__all__ = ["GUIDES", "AmortizedGuide", "BayesianHeadGuide", "DeltaGuide", "LowRankGuide", "NormalGuide", "bounded_scale", "create_guide"]
