"""The VICH model with its guides: the ELBO is CE + beta * KL, and SVI trains it."""
from __future__ import annotations

import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine

from bayes_fer import create_model
from bayes_fer.training import elbo_loss, head_output
from bayes_fer.vich import LATENT, HeadOutput, VICHModel
from guides import GUIDES, create_guide

B, K, E = 5, 7, 12


def _out(scale_logvar: float = 1.0) -> HeadOutput:
    g = torch.Generator().manual_seed(1)
    return HeadOutput(torch.randn(B, K, generator=g), scale_logvar * torch.randn(B, K, generator=g), torch.randn(B, E, generator=g))


def _batch(labels=None, targets=None):
    batch = {"label": labels if labels is not None else torch.tensor([0, 3, 6, 2, 2]), "index": torch.arange(B)}
    if targets is not None:
        batch["target"] = targets
    return batch


@pytest.mark.parametrize("beta", [1.0, 0.3])
@pytest.mark.parametrize("prior_scale", [1.0, 2.5])
def test_loss_is_cross_entropy_of_sampled_z_plus_weighted_kl(beta, prior_scale):
    out, batch = _out(), _batch()
    model, guide = VICHModel(K, prior_scale, beta), create_guide("normal", K, E, kl_weight=beta)
    pyro.set_rng_seed(7)
    loss = elbo_loss(model, guide, out, batch, dataset_size=1000)
    pyro.set_rng_seed(7)  # the ELBO runs the guide first: replaying it gives the same noise
    z = poutine.trace(guide).get_trace(out, batch["label"], None, batch["index"], 1000).nodes[LATENT]["value"]
    mu, var, p2 = out.loc, out.log_var.exp(), prior_scale**2
    kl = 0.5 * (var / p2 + mu.square() / p2 - 1 - torch.log(var / p2)).sum(-1)
    expected = (F.cross_entropy(z, batch["label"], reduction="none") + beta * kl).mean()
    assert torch.allclose(loss, expected, atol=1e-5), (loss, expected)


def test_delta_guide_without_kl_is_plain_cross_entropy():
    out, batch = _out(), _batch()
    loss = elbo_loss(VICHModel(K, 1.0, 0.0), create_guide("delta", K, E, kl_weight=0.0), out, batch, dataset_size=321)
    assert torch.allclose(loss, F.cross_entropy(out.loc, batch["label"]), atol=1e-6)


def test_delta_guide_with_kl_adds_the_gaussian_prior_penalty():
    out, batch = _out(), _batch()
    loss = elbo_loss(VICHModel(K, 2.0, 0.5), create_guide("delta", K, E, kl_weight=0.5), out, batch, dataset_size=50)
    log_prior = torch.distributions.Normal(0.0, 2.0).log_prob(out.loc).sum(-1)
    assert torch.allclose(loss, (F.cross_entropy(out.loc, batch["label"], reduction="none") - 0.5 * log_prior).mean(), atol=1e-5)


def test_soft_labels_with_one_hot_targets_equal_hard_labels():
    out, batch = _out(), _batch()
    model, guide = VICHModel(K, 1.0, 1.0), create_guide("normal", K, E)
    pyro.set_rng_seed(3)
    hard = elbo_loss(model, guide, out, batch, 10)
    pyro.set_rng_seed(3)
    soft = elbo_loss(model, guide, out, _batch(targets=F.one_hot(batch["label"], K).float()), 10)
    assert torch.allclose(hard, soft, atol=1e-6)


def test_lowrank_kl_is_analytic_and_exact():
    out = _out()
    guide = create_guide("lowrank", K, E, rank=3)
    torch.nn.init.normal_(guide.factor.weight, std=0.3)
    q = guide.posterior(out)
    p = pyro.distributions.Normal(torch.zeros(K), 1.7 * torch.ones(K)).to_event(1)
    exact = torch.distributions.kl_divergence(
        torch.distributions.MultivariateNormal(q.loc, q.covariance_matrix),
        torch.distributions.MultivariateNormal(torch.zeros(K), 1.7**2 * torch.eye(K)),
    )
    assert torch.allclose(torch.distributions.kl_divergence(q, p), exact, atol=1e-4)


def test_extreme_log_variance_cannot_make_the_loss_nan():
    out = HeadOutput(torch.randn(B, K), torch.full((B, K), 1e4), torch.randn(B, E))
    for name in ("normal", "lowrank"):
        loss = elbo_loss(VICHModel(K), create_guide(name, K, E), out, _batch(), 10)
        assert torch.isfinite(loss), name
    out = HeadOutput(torch.randn(B, K), torch.full((B, K), -1e4), torch.randn(B, E))
    assert torch.isfinite(elbo_loss(VICHModel(K), create_guide("normal", K, E), out, _batch(), 10))


def test_deterministic_head_needs_the_delta_guide():
    out = HeadOutput(torch.randn(B, K), None, torch.randn(B, E))
    with pytest.raises(ValueError, match="deterministic head.*--guide delta"):
        elbo_loss(VICHModel(K), create_guide("normal", K, E), out, _batch(), 10)


def _net_and_batch():
    net = create_model("poster_var_tiny", num_classes=K)
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.randn(8, 3, 112, 112, generator=g), "label": torch.randint(0, K, (8,), generator=g),
             "index": torch.arange(8)}
    return net, batch


@pytest.mark.parametrize("name", GUIDES)
def test_three_svi_steps_per_guide(name):
    net, batch = _net_and_batch()
    model, guide = VICHModel(K), create_guide(name, K, net.config.embed_dim)
    params = list(net.parameters()) + list(guide.parameters())
    before = [p.detach().clone() for p in params]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    for _ in range(3):
        loss = elbo_loss(model, guide, head_output(net, batch["image"]), batch, dataset_size=100)
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert any(not torch.equal(a, b) for a, b in zip(before, params))
    assert len(pyro.get_param_store()) == 0, "parameters must live on modules, not in the global store"


def test_loss_decreases_on_a_fixed_batch():
    net, batch = _net_and_batch()
    net.eval()  # no dropped branches: the same function every step
    # A light KL weight: with eight examples the prior would otherwise dominate the optimum.
    model, guide = VICHModel(K, kl_weight=0.1), create_guide("normal", K, net.config.embed_dim, kl_weight=0.1)
    # At 3e-3 one seed in eight (and thread-order noise) stalled near the start; at 1e-3 eight
    # seeds all end at 0.31-0.36 of the starting loss.
    optimizer = torch.optim.AdamW(list(net.parameters()) + list(guide.parameters()), lr=1e-3)
    many = pyro.infer.TraceMeanField_ELBO(num_particles=64, vectorize_particles=True, max_plate_nesting=1)

    def averaged_loss():
        with torch.no_grad():
            return elbo_loss(model, guide, head_output(net, batch["image"]), batch, 8, many).item()

    before = averaged_loss()
    for _ in range(80):
        elbo_loss(model, guide, head_output(net, batch["image"]), batch, dataset_size=8).backward()
        optimizer.step()
        optimizer.zero_grad()
    after = averaged_loss()
    assert after < 0.6 * before, (before, after)
