"""Bayesian head: the linear map to the intensity means as a latent variable (epistemic uncertainty).

The network's weights are point estimates, so the intensity posterior q(z | x) alone says
nothing about what the model has not learned. Here the last linear map W (K x (E + 1),
bias in the last column) becomes a global latent with a Normal prior in the model and a
mean-field Normal posterior q(W) in this guide:

    W ~ q(W) = Normal(M, diag(S^2))                          global, one draw per step
    z_i ~ q(z_i | x_i, W) = Normal(W [f(x_i); 1], sigma(x_i)^2)   per face, as the paper's guide

where f(x_i) are the network's features and sigma(x_i) its VICH head's spread, from the one
network pass the guide runs (the network's own intensity means go unused).

Predictions then vary with W (epistemic) and with z given W (aleatoric: how mixed the
expression is), and the predictive mutual information splits into those two parts.
"""
from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from bayes_fer.vich import HEAD_WEIGHTS, LATENT, HeadOutput, data_plate, kl_weighting
from guides.base import bounded_scale
from guides.normal import NormalGuide


class BayesianHeadGuide(NormalGuide):
    """q(W) q(z | x, W) with a mean-field Normal over the head's weights.

    Args:
        num_classes: K.
        feature_dim: E, the width of the features the head reads.
        init_scale: starting posterior standard deviation of every weight.
        net: the network, as for :class:`~guides.base.AmortizedGuide`.

    The KL weight beta the guide is called with weighs the intensities' KL; the weights' KL
    always counts fully, once per data set.
    """

    def __init__(self, num_classes: int, feature_dim: int, init_scale: float = 1e-2, net: nn.Module | None = None) -> None:
        super().__init__(num_classes, net)
        if not (init_scale > 0 and math.isfinite(init_scale)):
            raise ValueError(f"init_scale must be a finite number > 0, got {init_scale}")
        self.feature_dim = feature_dim
        self.weight_loc = nn.Parameter(torch.zeros(num_classes, feature_dim + 1))
        nn.init.normal_(self.weight_loc[:, :feature_dim], std=feature_dim ** -0.5)
        self.weight_log_scale = nn.Parameter(torch.full((num_classes, feature_dim + 1), math.log(init_scale)))

    @torch.no_grad()
    def init_from_linear(self, linear: nn.Linear) -> None:
        """Start q(W)'s mean at a trained deterministic head (e.g. the network's ``head.fc_loc``)."""
        if linear.weight.shape != (self.num_classes, self.feature_dim):
            raise ValueError(f"expected a {self.feature_dim} -> {self.num_classes} linear map, got weight "
                             f"{tuple(linear.weight.shape)}")
        self.weight_loc[:, :-1].copy_(linear.weight)
        self.weight_loc[:, -1].copy_(linear.bias)

    def weight_posterior(self) -> dist.TorchDistribution:
        return dist.Normal(self.weight_loc, self.weight_log_scale.exp()).to_event(2)

    def intensity_mean(self, out: HeadOutput, weights: torch.Tensor) -> torch.Tensor:
        """W [f; 1] for one weight draw (K, E+1) -> (B, K), or for draws (S, [1,] K, E+1) -> (S, B, K)."""
        if out.features is None:
            raise ValueError("BayesianHeadGuide needs the network's features (HeadOutput.features)")
        f = out.features.to(weights.dtype)
        if weights.dim() == 2:
            return f @ weights[:, :-1].T + weights[:, -1]
        w = weights.reshape(-1, self.num_classes, self.feature_dim + 1)  # (S, K, E+1): drop particle-plate dims
        return torch.einsum("be,ske->sbk", f, w[..., :-1]) + w[:, None, :, -1]

    def posterior(self, out: HeadOutput, weights: torch.Tensor | None = None) -> dist.TorchDistribution:
        """q(z | x, W); at the posterior mean of W when no draw is given."""
        loc = self.intensity_mean(out, self.weight_loc if weights is None else weights)
        return dist.Normal(loc, bounded_scale(self._require_log_var(out))).to_event(1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, *, targets: torch.Tensor | None = None,
                votes: torch.Tensor | None = None, subsample: torch.Tensor | None = None, size: int | None = None,
                kl_weight: float = 1.0) -> torch.Tensor:
        """Draw W ~ q(W), encode the faces x, and sample z ~ q(z | x, W) inside the data plate."""
        weights = pyro.sample(HEAD_WEIGHTS, self.weight_posterior())
        out = self.encode(x)
        with data_plate(out.batch_size, subsample, size), kl_weighting(kl_weight):
            return pyro.sample(LATENT, self.posterior(out, weights))

    def mean(self, out: HeadOutput) -> torch.Tensor:
        return self.intensity_mean(out, self.weight_loc)

    def marginal_scale(self, out: HeadOutput) -> torch.Tensor:
        """sd of z_k with W integrated out: sqrt(sigma_k(x)^2 + sum_e f_e^2 S_ke^2 + S_k,bias^2)."""
        f1 = torch.cat([out.features, torch.ones_like(out.features[:, :1])], dim=1)  # (B, E+1)
        weight_var = f1.square() @ self.weight_log_scale.exp().square().T  # (B, K)
        return (bounded_scale(self._require_log_var(out)).square() + weight_var).sqrt()

    def sample_weights(self, num_draws: int) -> torch.Tensor:
        """``num_draws`` draws of W from q(W): (S, K, E+1)."""
        return self.weight_posterior().sample((num_draws,))

