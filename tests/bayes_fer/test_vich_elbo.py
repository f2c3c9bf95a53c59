"""The negative ELBO per datum and the posterior predictive, worked out by formula on a fixed
network, batch and seed: beta, the N / B plate scaling, the base rates and the prediction prior.

The noise a guide draws after ``pyro.set_rng_seed(s)`` is the noise ``torch.randn`` draws
after the same seed, in the order the guide samples its sites, so each expected value below
rebuilds the sampled latents from the network's outputs and scores them by hand.
"""
from __future__ import annotations

import math

import pyro
import pytest
import torch
import torch.nn.functional as F

from bayes_fer.predictive import Predictor
from bayes_fer.training import elbo_loss
from bayes_fer.vich import VICHModel
from guides import BayesianHeadGuide, DeltaGuide, LowRankGuide, NormalGuide
from tests.stand_ins import PixelNet

B, K, E, N, SEED = 5, 4, 48, 40, 11
COUNTS = torch.tensor([30.0, 12, 5, 0])
LOG_PI = torch.log((COUNTS + 1) / (COUNTS.sum() + K))  # add-one smoothed base rates
PRIOR_SCALE = 1.5


def _batch(kind: str = "label") -> dict:
    g = torch.Generator().manual_seed(2)
    batch = {"image": torch.rand(B, 3, 16, 16, generator=g), "label": torch.tensor([0, 3, 1, 1, 2]),
             "index": torch.tensor([3, 17, 5, 30, 11])}  # five of the N = 40 faces
    if kind == "target":
        batch["target"] = torch.rand(B, K, generator=g).softmax(-1)
    if kind == "votes":
        batch["votes"] = torch.tensor([[6.0, 2, 1, 1], [0, 0, 3, 7], [2, 5, 3, 0], [0, 9, 1, 0], [1, 1, 4, 4]])
    return batch


def _network(net: PixelNet, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loc, scale, features) straight from the network, the scale from the clamped log-variance."""
    features = net.forward_features(images)
    loc, log_var = net.head(features)
    return loc, torch.exp(0.5 * log_var.clamp(-10, 10)), features


def _normal_kl(m: torch.Tensor, s: torch.Tensor, p: float) -> torch.Tensor:
    """KL(Normal(m, s^2) || Normal(0, p^2)), summed over the last axis."""
    return (math.log(p) - s.log() + (s.square() + m.square()) / (2 * p * p) - 0.5).sum(-1)


def _nll(logits: torch.Tensor, batch: dict, likelihood: str) -> torch.Tensor:
    """Minus the log-likelihood of each face's observation (B,)."""
    if likelihood == "multinomial":
        v = batch["votes"]
        return -(torch.lgamma(v.sum(-1) + 1) - torch.lgamma(v + 1).sum(-1) + (v * logits.log_softmax(-1)).sum(-1))
    if likelihood == "dirmult":
        v, alpha = batch["votes"], 10.0 * logits.softmax(-1)  # the concentration starts at 10
        a0, n = alpha.sum(-1), v.sum(-1)
        return -(torch.lgamma(a0) - torch.lgamma(n + a0) + (torch.lgamma(v + alpha) - torch.lgamma(alpha)).sum(-1)
                 + torch.lgamma(n + 1) - torch.lgamma(v + 1).sum(-1))
    if "target" in batch:
        return -(batch["target"] * logits.log_softmax(-1)).sum(-1)
    return F.cross_entropy(logits, batch["label"], reduction="none")


def _per_datum(nll: torch.Tensor, kl: torch.Tensor, beta: float) -> torch.Tensor:
    """The plate scales the B faces' terms by N / B; dividing the sum by N leaves their mean."""
    return (N / B) * (nll + beta * kl).sum() / N


def _loss(model: VICHModel, guide, batch: dict, beta: float) -> torch.Tensor:
    """The negative ELBO per datum as the library computes it, on the seeded noise."""
    pyro.set_rng_seed(SEED)
    return elbo_loss(model, guide, batch, N, kl_weight=beta)


@pytest.mark.parametrize(("kind", "likelihood", "beta"), [
    ("label", "categorical", 0.3), ("target", "categorical", 0.3), ("votes", "multinomial", 1.0),
    ("votes", "dirmult", 0.7), ("label", "categorical", 0.0)])
def test_mean_field_normal(kind, likelihood, beta):
    net, batch = PixelNet(K), _batch(kind)
    model = VICHModel(K, PRIOR_SCALE, likelihood=likelihood, class_counts=COUNTS)
    loss = _loss(model, NormalGuide(K, net), batch, beta)
    with torch.no_grad():
        loc, scale, _ = _network(net, batch["image"])
        pyro.set_rng_seed(SEED)
        z = loc + scale * torch.randn(B, K)
        expected = _per_datum(_nll(z + LOG_PI, batch, likelihood), _normal_kl(loc, scale, PRIOR_SCALE), beta)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_low_rank():
    beta, rank = 0.3, 2
    net, batch = PixelNet(K), _batch()
    guide = LowRankGuide(K, E, rank, net)
    with torch.no_grad():
        guide.factor.weight.normal_(0, 0.2, generator=torch.Generator().manual_seed(4))
    loss = _loss(VICHModel(K, PRIOR_SCALE, class_counts=COUNTS), guide, batch, beta)
    with torch.no_grad():
        loc, scale, features = _network(net, batch["image"])
        W = (features @ guide.factor.weight.T + guide.factor.bias).view(B, K, rank)  # (B, K, r)
        pyro.set_rng_seed(SEED)
        eps_w, eps_d = torch.randn(B, rank), torch.randn(B, K)
        z = loc + (W @ eps_w[..., None]).squeeze(-1) + scale * eps_d
        # KL of N(loc, W W^T + diag(scale^2)) from N(0, p^2 I), from the dense float64 covariance.
        cov = (W @ W.mT + torch.diag_embed(scale.square())).double()
        p2 = PRIOR_SCALE**2
        kl = 0.5 * (cov.diagonal(dim1=-2, dim2=-1).sum(-1) / p2 + loc.double().square().sum(-1) / p2 - K
                    + K * math.log(p2) - torch.logdet(cov))
        expected = _per_datum(_nll(z + LOG_PI, batch, "categorical"), kl.float(), beta)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("beta", [0.5, 0.0])
def test_delta_scores_the_prior_density_of_its_point(beta):
    net, batch = PixelNet(K), _batch("votes")
    model = VICHModel(K, PRIOR_SCALE, likelihood="multinomial", class_counts=COUNTS)
    loss = _loss(model, DeltaGuide(K, net), batch, beta)
    with torch.no_grad():
        loc, _, _ = _network(net, batch["image"])
        minus_log_prior = -torch.distributions.Normal(0.0, PRIOR_SCALE).log_prob(loc).sum(-1)
        expected = _per_datum(_nll(loc + LOG_PI, batch, "multinomial"), minus_log_prior, beta)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_bayesian_head_counts_the_weights_kl_once_per_data_set():
    beta, head_prior = 0.3, 2.0
    net, batch = PixelNet(K), _batch()
    guide = BayesianHeadGuide(K, E, net=net)
    with torch.no_grad():
        guide.weight_log_scale.fill_(math.log(0.3))
    model = VICHModel(K, PRIOR_SCALE, class_counts=COUNTS, head_shape=(K, E + 1), head_prior_scale=head_prior)
    loss = _loss(model, guide, batch, beta)
    with torch.no_grad():
        _, scale, features = _network(net, batch["image"])
        M, S = guide.weight_loc, guide.weight_log_scale.exp()
        pyro.set_rng_seed(SEED)
        W = M + S * torch.randn(K, E + 1)  # the guide draws the weights first
        loc = features @ W[:, :-1].T + W[:, -1]
        z = loc + scale * torch.randn(B, K)
        kl_weights = _normal_kl(M.flatten(), S.flatten(), head_prior)
        expected = (_per_datum(_nll(z + LOG_PI, batch, "categorical"), _normal_kl(loc, scale, PRIOR_SCALE), beta)
                    + kl_weights / N)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("prior", ["train", "uniform", 0.5])
def test_posterior_predictive_is_softmax_under_the_prediction_prior(prior):
    net, batch = PixelNet(K), _batch()
    rates = {"train": LOG_PI, "uniform": torch.zeros(K), 0.5: 0.5 * LOG_PI}[prior]
    names = [f"c{k}" for k in range(K)]
    with torch.no_grad():
        loc, scale, _ = _network(net, batch["image"])
    # A point-estimate guide: every draw is softmax(loc + log rates).
    point = Predictor(net, DeltaGuide(K), names, image_size=16, device="cpu", model=VICHModel(K, class_counts=COUNTS),
                      class_prior=prior).predict_batch(batch["image"], num_samples=3)
    torch.testing.assert_close(point.probs, (loc + rates).softmax(-1))
    # The mean-field guide: E[softmax(loc + scale * eps + log rates)], within three standard errors
    # of S draws (the reference's own error is fifteen times smaller).
    S = 2000
    spread = Predictor(net, NormalGuide(K), names, image_size=16, device="cpu",
                       model=VICHModel(K, class_counts=COUNTS), class_prior=prior).predict_batch(batch["image"], S)
    torch.testing.assert_close(spread.loc, loc)
    torch.testing.assert_close(spread.scale, scale)
    eps = torch.randn(50_000, B, K, generator=torch.Generator().manual_seed(5))
    expected = (loc + scale * eps + rates).softmax(-1).mean(0)
    assert torch.allclose(spread.probs, expected, atol=3 * 0.5 / math.sqrt(S))
