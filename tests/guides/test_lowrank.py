"""The low-rank Normal guide: its samples, its closed-form KL and its effect on the loss."""
from __future__ import annotations

import pyro
import pytest
import torch
from pyro import poutine
from torch.distributions import Independent, Normal, kl_divergence

from bayes_fer.training import elbo_loss
from bayes_fer.vich import LATENT, HeadOutput, VICHModel
from guides import LowRankGuide
from tests.stand_ins import FixedNet

B, K, E, R = 3, 7, 10, 2
FACES = torch.zeros(B, 3, 16, 16)


def _guide_and_out(factor_scale: float = 0.5) -> tuple[LowRankGuide, HeadOutput]:
    """The guide over a network with fixed outputs, and those outputs."""
    g = torch.Generator().manual_seed(0)
    weight = factor_scale * torch.randn(K * R, E, generator=g)
    net = FixedNet(torch.randn(B, K, generator=g), torch.randn(B, K, generator=g) - 1, torch.randn(B, E, generator=g))
    guide = LowRankGuide(K, E, rank=R, net=net)
    with torch.no_grad():
        guide.factor.weight.copy_(weight)
    return guide, guide.encode(FACES)


def _dense_kl64(loc, W, d, m, s) -> torch.Tensor:
    """KL of two Gaussians from dense float64 matrices, the textbook formula."""
    loc, W, d, m, s2 = loc.double(), W.double(), d.double(), m.double(), s.double().square()
    cov = W @ W.mT + torch.diag_embed(d)
    S_inv = torch.diag_embed(1 / s2)
    diff = (loc - m).unsqueeze(-1)
    return 0.5 * ((S_inv @ cov).diagonal(dim1=-2, dim2=-1).sum(-1) + (diff.mT @ S_inv @ diff).squeeze((-1, -2))
                  - loc.shape[-1] + s2.log().sum(-1) - torch.logdet(cov))


def test_samples_reproduce_mean_and_low_rank_plus_diagonal_covariance():
    guide, out = _guide_and_out()
    q = guide.posterior(out)
    W, d = guide.cov_factor(out), q.cov_diag
    pyro.set_rng_seed(1)
    n = 200_000
    with pyro.plate("draws", n, dim=-2):
        z = guide(FACES)  # (n, B, K)
    expected_cov = W @ W.mT + torch.diag_embed(d)
    centred = z - z.mean(0)
    cov = torch.einsum("nbi,nbj->bij", centred, centred) / (n - 1)  # (B, K, K)
    # Monte-Carlo error of a mean is sd / sqrt(n) ~ 0.003 here; of a covariance entry ~ 3x that.
    assert torch.allclose(z.mean(0), out.loc, atol=0.02)
    assert torch.allclose(cov, expected_cov, atol=0.03 * expected_cov.abs().max().item())
    assert (cov - torch.diag_embed(cov.diagonal(dim1=-2, dim2=-1))).abs().max() > 0.05, "samples must be correlated"


@pytest.mark.parametrize("factor_scale", [0.0, 0.5, 3.0])
def test_closed_form_kl_equals_float64_and_monte_carlo(factor_scale):
    guide, out = _guide_and_out(factor_scale)
    q = guide.posterior(out)
    p = Independent(Normal(torch.full((K,), 0.3), torch.full((K,), 1.7)), 1)
    closed = kl_divergence(q, p)
    dense = _dense_kl64(q.loc, q.cov_factor, q.cov_diag, p.base_dist.loc, p.base_dist.scale)
    assert torch.allclose(closed.double(), dense, rtol=1e-5, atol=1e-5)
    torch.manual_seed(2)
    z = q.sample((400_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    assert torch.allclose(closed, mc, rtol=0.02, atol=0.02)


def test_kl_with_large_factor_over_tiny_diagonal_is_finite_and_exact_in_fp32():
    # |W| ~ 30 over a diagonal at the clamp floor: the dense Cholesky failed here in fp32.
    K8, failures = 8, 0
    p = Independent(Normal(torch.zeros(K8), torch.ones(K8)), 1)
    for seed in range(50):
        g = torch.Generator().manual_seed(seed)
        W = torch.randn(4, K8, R, generator=g)
        W = 30 * W / W.flatten(1).norm(dim=1)[:, None, None]
        d = torch.full((4, K8), 4.5e-5)
        q = torch.distributions.LowRankMultivariateNormal(torch.randn(4, K8, generator=g), W, d)
        closed = kl_divergence(q, p)
        exact = _dense_kl64(q.loc, W, d, p.base_dist.loc, p.base_dist.scale)
        assert closed.dtype == torch.float32 and torch.isfinite(closed).all()
        failures += int(not torch.allclose(closed.double(), exact, rtol=1e-3))
    assert failures == 0


def test_the_covariance_factor_changes_the_loss():
    guide, _ = _guide_and_out(0.0)
    model = VICHModel(K)
    batch = {"image": FACES, "label": torch.tensor([0, 3, 6]), "index": torch.arange(B)}
    elbo = pyro.infer.TraceMeanField_ELBO(num_particles=2000, vectorize_particles=True, max_plate_nesting=1)
    pyro.set_rng_seed(3)
    flat = elbo_loss(model, guide, batch, 10, elbo=elbo)
    with torch.no_grad():
        guide.factor.weight.normal_(0, 1.0)
    pyro.set_rng_seed(3)
    correlated = elbo_loss(model, guide, batch, 10, elbo=elbo)
    assert (correlated - flat).abs() > 0.05


def test_guide_samples_at_the_latent_site_inside_the_data_plate():
    guide, _ = _guide_and_out()
    trace = poutine.trace(guide).get_trace(FACES)
    site = trace.nodes[LATENT]
    assert site["value"].shape == (B, K)
    assert [f.name for f in site["cond_indep_stack"]] == ["data"]
