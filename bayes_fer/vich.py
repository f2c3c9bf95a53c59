"""VICH, the variational classification head of POSTER-Var, as an explicit Pyro model.

The network maps a face x to the parameters of an approximate posterior over K latent
expression intensities z (the guide, in ``guides/``). The model below is the prior and the
likelihood; training maximises the ELBO, which for one datum is

    E_q[log p(y | z)] - beta * KL(q(z | x) || p(z))  =  -(CE(sampled z, y) + beta * KL),

so minimising the negative ELBO per datum is the paper's CE + KL objective.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.nn import PyroModule

LATENT = "z"  # latent expression intensities, one event of size K
OBS = "y"  # the observed expression label (or soft label)
PROBS = "probs"  # softmax(z), recorded for posterior-predictive queries
DATA_PLATE = "data"

LOG_VAR_MIN, LOG_VAR_MAX = -10.0, 10.0  # scale in [0.0067, 148]: no 0, inf or NaN from exp


@dataclass
class HeadOutput:
    """What the network computes once per step for the guide to use.

    Attributes:
        loc: (B, K) intensity means.
        log_var: (B, K) log-variances, or None for deterministic heads.
        features: (B, E) the features the heads read (guides with their own heads use them).
    """

    loc: torch.Tensor
    log_var: torch.Tensor | None
    features: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.loc.shape[0]


def kl_weighting(beta: float):
    """Weight a latent site's log-density (and so its analytic KL) by beta; beta = 0 removes it.

    The weight must wrap the latent site in both model and guide: TraceMeanField_ELBO scales
    the analytic KL by the guide site's scale.
    """
    if beta < 0:
        raise ValueError(f"the KL weight must be >= 0, got {beta}")
    return poutine.scale(scale=beta) if beta > 0 else poutine.mask(mask=False)


def data_plate(batch_size: int, subsample: torch.Tensor | None, size: int | None) -> pyro.plate:
    """The plate over the N examples, visiting ``subsample`` (indices of this minibatch)."""
    if subsample is None:
        subsample = torch.arange(batch_size)
    return pyro.plate(DATA_PLATE, size or batch_size, subsample=subsample, dim=-1)


class VICHModel(PyroModule):
    """Prior over per-class expression intensities and a categorical likelihood.

    Generative process, for each example i of the N in the data set (a minibatch of B is
    visited per step, with log-densities scaled by N / B):

        z_i ~ Normal(0, prior_scale * I_K)         latent expression intensities
        y_i ~ Categorical(logits = z_i)            the observed expression

    With soft labels t_i (e.g. FER+ vote distributions) the likelihood term is the
    soft-label cross-entropy sum_k t_ik log softmax(z_i)_k, added as a factor.

    Args:
        num_classes: K.
        prior_scale: standard deviation of the prior over each intensity.
        kl_weight: beta, the weight of the KL term (must equal the guide's).
    """

    def __init__(self, num_classes: int, prior_scale: float = 1.0, kl_weight: float = 1.0) -> None:
        super().__init__()
        if prior_scale <= 0:
            raise ValueError(f"prior_scale must be > 0, got {prior_scale}")
        self.num_classes = num_classes
        self.kl_weight = kl_weight
        # Buffers, so .to(device) moves the prior with the model.
        self.register_buffer("prior_loc", torch.zeros(num_classes))
        self.register_buffer("prior_scale", torch.full((num_classes,), float(prior_scale)))

    def forward(
        self,
        out: HeadOutput,
        labels: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        subsample: torch.Tensor | None = None,
        size: int | None = None,
    ) -> torch.Tensor:
        B = out.batch_size
        with data_plate(B, subsample, size):
            prior = dist.Normal(self.prior_loc, self.prior_scale).expand([B, self.num_classes]).to_event(1)
            with kl_weighting(self.kl_weight):
                z = pyro.sample(LATENT, prior)
            pyro.deterministic(PROBS, z.softmax(-1), event_dim=1)
            if targets is not None:
                pyro.factor(OBS, (targets * F.log_softmax(z, -1)).sum(-1))
            else:
                pyro.sample(OBS, dist.Categorical(logits=z), obs=labels)
        return z
