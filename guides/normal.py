"""Mean-field Normal guide: the paper's VICH posterior."""
from __future__ import annotations

import pyro.distributions as dist

from bayes_fer.vich import HeadOutput
from guides.base import AmortizedGuide, bounded_scale


class NormalGuide(AmortizedGuide):
    """q(z | x) = prod_k Normal(mu_k(x), sigma_k(x)^2), sigma = exp(0.5 log_var)."""

    def posterior(self, out: HeadOutput) -> dist.TorchDistribution:
        scale = bounded_scale(self._require_log_var(out))
        return dist.Normal(out.loc, scale).to_event(1)
