"""VICH's likelihoods for the labels users have, its class base rates and its learned prior."""
from __future__ import annotations

import math

import pyro
import pytest
import torch

from bayes_fer.training import elbo_loss
from bayes_fer.vich import HeadOutput, VICHModel, log_class_prior
from guides import DeltaGuide, NormalGuide, create_guide

B, K = 4, 5
VOTES = torch.tensor([[7.0, 3, 0, 0, 0], [0, 0, 10, 0, 0], [2, 2, 2, 2, 2], [0, 1, 0, 0, 8]])
LABELS = torch.tensor([0, 2, 4, 4])


def _out() -> HeadOutput:
    g = torch.Generator().manual_seed(0)
    return HeadOutput(torch.randn(B, K, generator=g), torch.randn(B, K, generator=g) - 2, None)


def _loss_of_delta(model: VICHModel, batch: dict) -> float:
    """Per-datum loss with z fixed at the mean and no KL: minus the log-likelihood alone."""
    return elbo_loss(model, DeltaGuide(K, model.kl_weight), _out(), batch, dataset_size=B).item()


def test_multinomial_scores_the_vote_counts():
    model = VICHModel(K, kl_weight=0.0, likelihood="multinomial")
    batch = {"label": LABELS, "index": torch.arange(B), "votes": VOTES}
    logp = torch.log_softmax(_out().loc, -1)
    n = VOTES.sum(-1)
    by_hand = torch.lgamma(n + 1) - torch.lgamma(VOTES + 1).sum(-1) + (VOTES * logp).sum(-1)
    assert _loss_of_delta(model, batch) == pytest.approx(-by_hand.mean().item(), rel=1e-5)


def test_multinomial_accepts_faces_with_fewer_votes_than_others():
    votes = VOTES.clone()
    votes[1] = torch.tensor([0.0, 0, 4, 0, 0])  # 4 votes beside faces with 10
    model = VICHModel(K, kl_weight=0.0, likelihood="multinomial")
    logp = torch.log_softmax(_out().loc, -1)
    by_hand = torch.lgamma(votes.sum(-1) + 1) - torch.lgamma(votes + 1).sum(-1) + (votes * logp).sum(-1)
    with pyro.validation_enabled(True):
        got = _loss_of_delta(model, {"label": LABELS, "index": torch.arange(B), "votes": votes})
    assert got == pytest.approx(-by_hand.mean().item(), rel=1e-5)


def test_dirichlet_multinomial_scores_votes_with_its_concentration():
    model = VICHModel(K, kl_weight=0.0, likelihood="dirmult")
    alpha = model.concentration.detach() * torch.softmax(_out().loc, -1)
    a0, n = alpha.sum(-1), VOTES.sum(-1)
    by_hand = (torch.lgamma(a0) - torch.lgamma(n + a0) + (torch.lgamma(VOTES + alpha) - torch.lgamma(alpha)).sum(-1)
               + torch.lgamma(n + 1) - torch.lgamma(VOTES + 1).sum(-1))
    batch = {"label": LABELS, "index": torch.arange(B), "votes": VOTES}
    assert _loss_of_delta(model, batch) == pytest.approx(-by_hand.mean().item(), rel=1e-5)
    # The concentration is learned: the loss has a gradient for it.
    loss = elbo_loss(model, DeltaGuide(K, 0.0), _out(), batch, dataset_size=B)
    loss.backward()
    assert model.log_concentration.grad is not None and model.log_concentration.grad.abs() > 0


def test_vote_likelihoods_ask_for_votes_by_name():
    model = VICHModel(K, likelihood="multinomial")
    with pytest.raises(ValueError, match="needs annotator vote counts.*--likelihood categorical"):
        elbo_loss(model, NormalGuide(K), _out(), {"label": LABELS, "index": torch.arange(B)}, B)


def test_training_base_rates_enter_the_likelihood_as_log_frequencies():
    counts = torch.tensor([50.0, 20, 10, 5, 0])
    model = VICHModel(K, kl_weight=0.0, class_counts=counts)
    expected_rates = torch.log((counts + 1) / (counts.sum() + K))
    assert torch.allclose(model.log_base_rates, expected_rates)
    logits = _out().loc + expected_rates
    ce = torch.nn.functional.cross_entropy(logits, LABELS)
    assert _loss_of_delta(model, {"label": LABELS, "index": torch.arange(B)}) == pytest.approx(ce.item(), rel=1e-5)


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
    out = _out()
    model = VICHModel(K, prior_scale=1.0, kl_weight=1.0, learn_prior_scale=True)
    guide = create_guide("normal", K, 1)
    optimizer = torch.optim.Adam([model.log_prior_scale], lr=0.05)
    batch = {"label": LABELS, "index": torch.arange(B)}
    for _ in range(400):
        elbo_loss(model, guide, out, batch, dataset_size=B).backward()
        optimizer.step()
        optimizer.zero_grad()
    optimum = (out.loc.square() + out.log_var.exp()).mean(0).sqrt()
    assert torch.allclose(model.prior_scale.detach(), optimum, rtol=0.02)


def test_model_and_guide_must_share_the_kl_weight():
    with pytest.raises(ValueError, match="disagree on the KL weight"):
        elbo_loss(VICHModel(K, kl_weight=1.0), NormalGuide(K, kl_weight=0.5), _out(),
                  {"label": LABELS, "index": torch.arange(B)}, B)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_prior_scale_must_be_positive_and_finite(bad):
    with pytest.raises(ValueError, match="prior_scale must be a finite number > 0"):
        VICHModel(K, prior_scale=bad)


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_kl_weight_must_be_finite_and_non_negative(bad):
    with pytest.raises(ValueError, match="kl_weight must be a finite number >= 0"):
        VICHModel(K, kl_weight=bad)
