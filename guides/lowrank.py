"""Low-rank multivariate Normal guide: correlated intensities (fear with surprise, ...)."""
from __future__ import annotations

import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn
from torch.distributions import Independent, LowRankMultivariateNormal, Normal, kl

from bayes_fer.vich import HeadOutput
from guides.base import AmortizedGuide, bounded_scale


class LowRankGuide(AmortizedGuide):
    """q(z | x) = N(mu(x), W(x) W(x)^T + diag(sigma(x)^2)) with W of rank r.

    The diagonal and the mean come from the network's VICH head; W comes from a linear map of
    the same pass's features, initialised at zero so training starts from the mean-field guide.

    Args:
        num_classes: K.
        feature_dim: width of the features the network's head reads.
        rank: r, the rank of the covariance factor.
        net: the network, as for :class:`AmortizedGuide`.
    """

    def __init__(self, num_classes: int, feature_dim: int, rank: int = 2, net: nn.Module | None = None) -> None:
        super().__init__(num_classes, net)
        if not 1 <= rank <= num_classes:
            raise ValueError(f"rank must be between 1 and K={num_classes}, got {rank}")
        self.rank = rank
        self.factor = PyroModule[nn.Linear](feature_dim, num_classes * rank)
        nn.init.zeros_(self.factor.weight)
        nn.init.zeros_(self.factor.bias)

    def cov_factor(self, out: HeadOutput) -> torch.Tensor:
        if out.features is None:
            raise ValueError("LowRankGuide needs the network's features (HeadOutput.features)")
        return self.factor(out.features).view(-1, self.num_classes, self.rank)  # (B, K, r)

    def posterior(self, out: HeadOutput) -> dist.TorchDistribution:
        cov_diag = bounded_scale(self._require_log_var(out)).square()
        return dist.LowRankMultivariateNormal(out.loc, self.cov_factor(out), cov_diag)


@kl.register_kl(LowRankMultivariateNormal, Independent)
def _kl_lowrank_diagonal_normal(q: LowRankMultivariateNormal, p: Independent) -> torch.Tensor:
    """KL(N(mu, W W^T + D) || N(m, diag(s^2))) in closed form, so the ELBO need not sample it.

    log|W W^T + D| comes from the matrix determinant lemma, log|D| + log|I_r + W^T D^-1 W|:
    the r x r capacitance matrix has eigenvalues >= 1, so no dense K x K Cholesky is taken
    (in fp32 that failed for large factors over a small diagonal). The terms are summed in
    float64, where W^T D^-1 W stays finite for any finite fp32 factor, and returned in q's dtype.
    """
    if not (isinstance(p.base_dist, Normal) and p.reinterpreted_batch_ndims == 1):
        raise NotImplementedError
    loc, W, d = q.loc.double(), q.cov_factor.double(), q.cov_diag.double()
    m, s2 = p.base_dist.loc.double(), p.base_dist.scale.double().square()
    K, r = loc.shape[-1], W.shape[-1]
    trace = ((d + W.square().sum(-1)) / s2).sum(-1)
    mahalanobis = ((loc - m).square() / s2).sum(-1)
    capacitance = torch.eye(r, dtype=W.dtype, device=W.device) + (W.mT / d.unsqueeze(-2)) @ W  # (..., r, r)
    logdet_q = d.log().sum(-1) + torch.linalg.slogdet(capacitance).logabsdet
    kl_value = 0.5 * (trace + mahalanobis - K + s2.log().sum(-1) - logdet_q)
    return kl_value.to(q.loc.dtype)
