"""The mean-field Normal guide (the paper's) and the Delta guide (its "w/o VI" ablation)."""
from __future__ import annotations

import pyro
import torch

from guides import DeltaGuide, NormalGuide, bounded_scale
from tests.stand_ins import FixedNet

B, K = 4, 6
FACES = torch.zeros(B, 3, 16, 16)


def _net() -> FixedNet:
    g = torch.Generator().manual_seed(0)
    return FixedNet(torch.randn(B, K, generator=g), torch.randn(B, K, generator=g))


def test_normal_samples_have_the_head_mean_and_spread():
    guide = NormalGuide(K, _net())
    out = guide.encode(FACES)
    pyro.set_rng_seed(0)
    with pyro.plate("draws", 100_000, dim=-2):
        z = guide(FACES)  # (n, B, K)
    scale = torch.exp(0.5 * out.log_var)
    assert torch.allclose(z.mean(0), out.loc, atol=0.03)
    assert torch.allclose(z.std(0), scale, rtol=0.02)
    assert torch.allclose(guide.marginal_scale(out), scale, rtol=1e-5)
    assert (z.std(0)[:, 0] > 0).all()


def test_bounded_scale_clamps_extreme_log_variances():
    s = bounded_scale(torch.tensor([-1e4, 0.0, 1e4]))
    assert torch.isfinite(s).all() and (s > 0).all()
    assert torch.allclose(s[1], torch.tensor(1.0))


def test_delta_has_zero_spread_and_samples_its_mean():
    guide = DeltaGuide(K, _net())
    out = guide.encode(FACES)
    with pyro.plate("draws", 5, dim=-2):
        z = guide(FACES)
    assert torch.equal(z, out.loc.expand(5, B, K))
    assert torch.equal(guide.marginal_scale(out), torch.zeros(B, K))
    assert not guide.stochastic
