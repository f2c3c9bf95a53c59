"""The interface every amortized VICH guide implements."""
from __future__ import annotations

import pyro
import torch
from pyro.distributions import TorchDistribution

from bayes_fer.pyro_scope import LocalPyroModule
from bayes_fer.vich import LATENT, LOG_VAR_MAX, LOG_VAR_MIN, HeadOutput, data_plate, kl_weighting


def bounded_scale(log_var: torch.Tensor) -> torch.Tensor:
    """exp(0.5 * log_var) with the log-variance clamped, so no step can produce 0, inf or NaN."""
    return torch.exp(0.5 * log_var.clamp(LOG_VAR_MIN, LOG_VAR_MAX))


class AmortizedGuide(LocalPyroModule):
    """q(z_i | x_i) from the network's outputs, sampled inside the same plate as the model.

    Subclasses implement ``posterior(out)``: a distribution with batch shape (B,) and event
    shape (K,). The network runs once per step outside the guide; guide and model take the
    same arguments.

    Args:
        num_classes: K.
        kl_weight: beta, the KL weight (must equal the model's).
    """

    #: Whether the guide has a spread (Delta guides do not).
    stochastic: bool = True

    def __init__(self, num_classes: int, kl_weight: float = 1.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.kl_weight = kl_weight

    def posterior(self, out: HeadOutput) -> TorchDistribution:
        raise NotImplementedError

    def forward(
        self,
        out: HeadOutput,
        labels: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        subsample: torch.Tensor | None = None,
        size: int | None = None,
        votes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q = self.posterior(out)
        with data_plate(out.batch_size, subsample, size), kl_weighting(self.kl_weight):
            return pyro.sample(LATENT, q)

    def mean(self, out: HeadOutput) -> torch.Tensor:
        """The posterior mean of the intensities: the paper's prediction rule uses its argmax."""
        return out.loc

    def marginal_scale(self, out: HeadOutput) -> torch.Tensor:
        """Per-class posterior standard deviation (B, K)."""
        return self.posterior(out).variance.sqrt()

    def _require_log_var(self, out: HeadOutput) -> torch.Tensor:
        if out.log_var is None:
            raise ValueError(
                f"{type(self).__name__} needs a log-variance from the network, but the model has a "
                "deterministic head (poster_pp); use the Delta guide (--guide delta) or a poster_var model"
            )
        return out.log_var
