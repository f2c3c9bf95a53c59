"""VICH's likelihoods for the labels users have, its class base rates and its learned prior."""
from __future__ import annotations

import math

import pyro
import pytest
import torch

from bayes_fer.training import elbo_loss
from bayes_fer.vich import LATENT, OBS, VICHModel, log_class_prior
from guides import DeltaGuide, NormalGuide
from tests.stand_ins import FixedNet

B, K = 4, 5
VOTES = torch.tensor([[7.0, 3, 0, 0, 0], [0, 0, 10, 0, 0], [2, 2, 2, 2, 2], [0, 1, 0, 0, 8]])
LABELS = torch.tensor([0, 2, 4, 4])
FACES = torch.zeros(B, 3, 16, 16)


def _net() -> FixedNet:
    g = torch.Generator().manual_seed(0)
    return FixedNet(torch.randn(B, K, generator=g), torch.randn(B, K, generator=g) - 2)


def _batch(**extra) -> dict:
    return {"image": FACES, "label": LABELS, "index": torch.arange(B), **extra}


def _loss_of_delta(model: VICHModel, batch: dict) -> float:
    """Per-datum loss with z fixed at the mean and no KL: minus the log-likelihood alone."""
    return elbo_loss(model, DeltaGuide(K, _net()), batch, dataset_size=B, kl_weight=0.0).item()


def test_multinomial_scores_the_vote_counts():
    model = VICHModel(K, likelihood="multinomial")
    batch = _batch(votes=VOTES)
    logp = torch.log_softmax(_net().loc, -1)
    n = VOTES.sum(-1)
    by_hand = torch.lgamma(n + 1) - torch.lgamma(VOTES + 1).sum(-1) + (VOTES * logp).sum(-1)
    assert _loss_of_delta(model, batch) == pytest.approx(-by_hand.mean().item(), rel=1e-5)


def test_multinomial_accepts_faces_with_fewer_votes_than_others():
    votes = VOTES.clone()
    votes[1] = torch.tensor([0.0, 0, 4, 0, 0])  # 4 votes beside faces with 10
    model = VICHModel(K, likelihood="multinomial")
    logp = torch.log_softmax(_net().loc, -1)
    by_hand = torch.lgamma(votes.sum(-1) + 1) - torch.lgamma(votes + 1).sum(-1) + (votes * logp).sum(-1)
    with pyro.validation_enabled(True):
        got = _loss_of_delta(model, _batch(votes=votes))
    assert got == pytest.approx(-by_hand.mean().item(), rel=1e-5)


def test_dirichlet_multinomial_scores_votes_with_its_concentration():
    model = VICHModel(K, likelihood="dirmult")
    alpha = model.concentration.detach() * torch.softmax(_net().loc, -1)
    a0, n = alpha.sum(-1), VOTES.sum(-1)
    by_hand = (torch.lgamma(a0) - torch.lgamma(n + a0) + (torch.lgamma(VOTES + alpha) - torch.lgamma(alpha)).sum(-1)
               + torch.lgamma(n + 1) - torch.lgamma(VOTES + 1).sum(-1))
    batch = _batch(votes=VOTES)
    assert _loss_of_delta(model, batch) == pytest.approx(-by_hand.mean().item(), rel=1e-5)
    # The concentration is learned: the loss has a gradient for it.
    loss = elbo_loss(model, DeltaGuide(K, _net()), batch, dataset_size=B, kl_weight=0.0)
    loss.backward()
    assert model.log_concentration.grad is not None and model.log_concentration.grad.abs() > 0


def test_vote_likelihoods_ask_for_votes_by_name():
    model = VICHModel(K, likelihood="multinomial")
    with pytest.raises(ValueError, match="needs annotator vote counts.*--likelihood categorical"):
        elbo_loss(model, NormalGuide(K, _net()), _batch(), B)


def test_training_base_rates_enter_the_likelihood_as_log_frequencies():
    counts = torch.tensor([50.0, 20, 10, 5, 0])
    model = VICHModel(K, class_counts=counts)
    expected_rates = torch.log((counts + 1) / (counts.sum() + K))
    assert torch.allclose(model.log_base_rates, expected_rates)
    logits = _net().loc + expected_rates
    ce = torch.nn.functional.cross_entropy(logits, LABELS)
    assert _loss_of_delta(model, _batch()) == pytest.approx(ce.item(), rel=1e-5)


def test_prediction_prior_choices():
    counts = torch.tensor([50.0, 20, 10, 5, 0])
    model = VICHModel(K, class_counts=counts)
    z = torch.zeros(1, K)
    assert torch.allclose(model.predictive_logits(z), model.log_base_rates)  # training rates by default
    model.set_prediction_prior("uniform")
    assert torch.equal(model.predictive_logits(z), z)
    model.set_prediction_prior(0.5)
    assert torch.allclose(model.predictive_logits(z), 0.5 * model.log_base_rates)
    model.set_prediction_prior([0.1, 0.1, 0.1, 0.1, 0.6])
    assert torch.allclose(model.predictive_logits(z).softmax(-1), torch.tensor([[0.1, 0.1, 0.1, 0.1, 0.6]]))
    model.set_prediction_prior(-0.5)  # rare classes favoured beyond uniform
    assert torch.allclose(model.predictive_logits(z), -0.5 * model.log_base_rates)
    for bad in (1.5, -1.5, math.nan):
        with pytest.raises(ValueError, match="must lie in \\[-1, 1\\]"):
            model.set_prediction_prior(bad)
    with pytest.raises(ValueError, match="unknown class prior 'balanced'"):
        model.set_prediction_prior("balanced")
    with pytest.raises(ValueError, match="expected 5 positive class probabilities"):
        model.set_prediction_prior([0.5, 0.5])


def test_class_counts_are_checked():
    with pytest.raises(ValueError, match="3 finite non-negative numbers"):
        log_class_prior([1.0, -2.0, 3.0], 3)
    assert torch.equal(log_class_prior(None, 3), torch.zeros(3))


def test_learned_prior_scale_reaches_its_empirical_bayes_optimum():
    # With q fixed, the ELBO's optimal prior variance per class is the mean of mu^2 + sigma^2.
    net = _net()
    model = VICHModel(K, prior_scale=1.0, learn_prior_scale=True)
    guide = NormalGuide(K, net)
    optimizer = torch.optim.Adam([model.log_prior_scale], lr=0.05)
    for _ in range(400):
        elbo_loss(model, guide, _batch(), dataset_size=B, kl_weight=1.0).backward()
        optimizer.step()
        optimizer.zero_grad()
    optimum = (net.loc.square() + net.log_var.exp()).mean(0).sqrt()
    assert torch.allclose(model.prior_scale.detach(), optimum, rtol=0.02)


@pytest.mark.parametrize("beta", [0.3, 0.0])
def test_one_kl_weight_weighs_the_latent_site_of_model_and_guide_alike(beta):
    # The objective passes beta to both calls: TraceMeanField_ELBO reads the guide site's
    # scale for the analytic KL and the model site's for a Delta guide's prior density.
    model, guide = VICHModel(K), NormalGuide(K, _net())
    args, kwargs = (FACES, LABELS), {"subsample": torch.arange(B), "size": 20, "kl_weight": beta}
    guide_trace = pyro.poutine.trace(guide).get_trace(*args, **kwargs)
    model_trace = pyro.poutine.trace(pyro.poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    for trace in (guide_trace, model_trace):
        site = trace.nodes[LATENT]
        if beta > 0:
            assert site["scale"] == pytest.approx(beta * 20 / B) and site["mask"] is None
        else:
            assert site["mask"] is False
    assert model_trace.nodes[OBS]["scale"] == pytest.approx(20 / B), "the likelihood is not weighted"


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_prior_scale_must_be_positive_and_finite(bad):
    with pytest.raises(ValueError, match="prior_scale must be a finite number > 0"):
        VICHModel(K, prior_scale=bad)

