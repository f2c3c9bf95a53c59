"""The Bayesian head: latent head weights, their KL in the ELBO, and the epistemic share of MI."""
from __future__ import annotations

import math

import pyro
import pytest
import torch
from torch import nn
from torch.distributions import kl_divergence

from bayes_fer.predictive import Predictor
from bayes_fer.training import elbo_loss
from bayes_fer.vich import HEAD_WEIGHTS, LATENT, VICHModel
from guides import BayesianHeadGuide, create_guide
from tests.stand_ins import FixedNet

B, K, E = 6, 4, 5
FACES = torch.zeros(B, 3, 16, 16)


def _net() -> FixedNet:
    """Features to map; the network's own intensity means (zeros) go unused."""
    g = torch.Generator().manual_seed(0)
    return FixedNet(torch.zeros(B, K), torch.full((B, K), -4.0), torch.randn(B, E, generator=g))


def _guide(weight_scale: float) -> BayesianHeadGuide:
    guide = BayesianHeadGuide(K, E, net=_net())
    with torch.no_grad():
        guide.weight_log_scale.fill_(math.log(weight_scale))
    return guide


def test_intensity_means_are_the_head_map_of_the_features():
    guide = _guide(0.1)
    out = guide.encode(FACES)
    linear = nn.Linear(E, K)
    guide.init_from_linear(linear)
    assert torch.allclose(guide.mean(out), linear(out.features), atol=1e-6)
    draws = guide.sample_weights(3)  # (3, K, E+1)
    per_draw = guide.intensity_mean(out, draws)
    assert per_draw.shape == (3, B, K)
    assert torch.allclose(per_draw[1], out.features @ draws[1, :, :-1].T + draws[1, :, -1], atol=1e-6)


def test_elbo_adds_the_weights_kl_once_per_data_set():
    N = 50
    batch = {"image": FACES, "label": torch.tensor([0, 1, 2, 3, 0, 1]), "index": torch.arange(B)}
    guide = _guide(0.3)
    out = guide.encode(FACES)
    model = VICHModel(K, head_shape=(K, E + 1), head_prior_scale=2.0)
    pyro.set_rng_seed(5)
    loss = elbo_loss(model, guide, batch, N, kl_weight=1.0)
    pyro.set_rng_seed(5)  # the ELBO runs the guide first: replaying it gives the same draws
    trace = pyro.poutine.trace(guide).get_trace(FACES, batch["label"], subsample=batch["index"], size=N)
    w, z = trace.nodes[HEAD_WEIGHTS]["value"], trace.nodes[LATENT]["value"]
    kl_w = kl_divergence(guide.weight_posterior(), pyro.distributions.Normal(torch.zeros(K, E + 1), 2.0).to_event(2))
    p_z = pyro.distributions.Normal(torch.zeros(K), 1.0).expand([B, K]).to_event(1)
    kl_z = kl_divergence(guide.posterior(out, w), p_z).sum() * N / B  # the plate scales the minibatch by N / B
    ce = torch.nn.functional.cross_entropy(z, batch["label"], reduction="sum") * N / B
    assert kl_w > 0
    assert loss.item() == pytest.approx(((ce + kl_z + kl_w) / N).item(), rel=1e-4)


def test_mutual_information_splits_into_aleatoric_and_epistemic():
    from bayes_fer import create_model

    net = create_model("poster_var_tiny", num_classes=K).eval()
    images = torch.rand(3, 3, 112, 112)
    shares = {}
    for scale in (1e-4, 1.0):
        guide = BayesianHeadGuide(K, net.config.embed_dim)
        with torch.no_grad():
            guide.weight_log_scale.fill_(math.log(scale))
        predictor = Predictor(net, guide, [f"c{k}" for k in range(K)], device="cpu",
                              model=VICHModel(K, head_shape=(K, net.config.embed_dim + 1)))
        pyro.set_rng_seed(0)
        r = predictor(images, num_samples=1024)
        assert torch.allclose(r.aleatoric_mi + r.epistemic_mi, r.mutual_information, atol=1e-5)
        shares[scale] = r.epistemic_mi
    # With 32 draws of z per draw of W the estimate keeps a small upward bias (~0.01 nats).
    assert (shares[1e-4] < 0.02).all(), "weights with no spread carry (almost) no epistemic uncertainty"
    assert (shares[1.0] > 0.2).all(), shares[1.0]


def test_point_estimate_guides_report_no_epistemic_share():
    from bayes_fer import create_model

    net = create_model("poster_var_tiny", num_classes=K).eval()
    predictor = Predictor(net, create_guide("normal", K, net.config.embed_dim), [f"c{k}" for k in range(K)], device="cpu")
    r = predictor(torch.rand(2, 3, 112, 112), num_samples=16)
    assert r.epistemic_mi is None
    assert torch.equal(r.aleatoric_mi, r.mutual_information)


def test_bayesian_head_needs_the_normal_guide():
    with pytest.raises(ValueError, match="use --guide normal, not 'lowrank'"):
        create_guide("lowrank", K, E, bayesian_head=True)
