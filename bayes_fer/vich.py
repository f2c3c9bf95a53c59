"""VICH, the variational classification head of POSTER-Var, as an explicit Pyro model.

As a probabilistic program VICH is an amortized variational information bottleneck on the
class intensities: ``model(x, y)`` below draws K latent expression intensities z from a
fixed prior and scores the labels given z; ``guide(x, y)`` (in ``guides/``) is the encoder
q(z | x), which owns the network, runs it once and samples z. The KL weight beta is a
temperature on the KL term. Training maximises, for one datum,

    E_q[log p(y | z)] - beta * KL(q(z | x) || p(z))  =  -(CE(sampled z, y) + beta * KL),

so minimising the negative ELBO per datum is the paper's CE + KL objective.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from torch import nn

from bayes_fer.pyro_scope import LocalPyroModule

LATENT = "z"  # latent expression intensities, one event of size K
OBS = "y"  # the observed expression label (or soft label)
PROBS = "probs"  # softmax(z), recorded for posterior-predictive queries
DATA_PLATE = "data"
HEAD_WEIGHTS = "head_weights"  # the Bayesian head's linear map, a global latent (--bayesian-head)

LOG_VAR_MIN, LOG_VAR_MAX = -10.0, 10.0  # scale in [0.0067, 148]: no 0, inf or NaN from exp

LIKELIHOODS = ("categorical", "multinomial", "dirmult")  # what the labels are: one label, or annotator votes
CLASS_PRIORS = ("uniform", "train")  # base rates the likelihood adds to the intensities


def log_class_prior(counts: Sequence[float] | torch.Tensor | None, num_classes: int, power: float = 1.0) -> torch.Tensor:
    """``power * log`` of class frequencies from counts (add-one smoothed), or zeros for ``None``.

    ``power`` interpolates between no base rates (0) and the counted ones (1).
    """
    if counts is None:
        return torch.zeros(num_classes)
    c = torch.as_tensor(counts, dtype=torch.float64).flatten()
    if c.shape != (num_classes,) or not torch.isfinite(c).all() or (c < 0).any():
        raise ValueError(f"class counts must be {num_classes} finite non-negative numbers, got {c.tolist()}")
    freq = (c + 1.0) / (c.sum() + num_classes)  # add-one: a class absent from training keeps a finite offset
    return (power * freq.log()).float()


@dataclass
class HeadOutput:
    """What the guide's encoder computes in its one network pass.

    Attributes:
        loc: (B, K) intensity means.
        log_var: (B, K) log-variances, or None for deterministic heads.
        features: (B, E) the features the heads read (guides with their own heads use them).
    """

    loc: torch.Tensor
    log_var: torch.Tensor | None
    features: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.loc.shape[0]


def kl_weighting(beta: float):
    """Weight a latent site's log-density (and so its analytic KL) by beta; beta = 0 removes it.

    The weight must wrap the latent site in both model and guide: TraceMeanField_ELBO scales
    the analytic KL by the guide site's scale, and scores a Delta guide by the model site's
    log-density. Both take beta as the same call argument, ``kl_weight``, so the caller holds
    its one value (as pyro's DMM example passes its ``annealing_factor``).
    """
    if not (beta >= 0 and math.isfinite(beta)):
        raise ValueError(f"kl_weight must be a finite number >= 0, got {beta}")
    return poutine.scale(scale=beta) if beta > 0 else poutine.mask(mask=False)


def data_plate(batch_size: int, subsample: torch.Tensor | None, size: int | None) -> pyro.plate:
    """The plate over the N examples, visiting ``subsample`` (indices of this minibatch)."""
    if subsample is None:
        subsample = torch.arange(batch_size)
    return pyro.plate(DATA_PLATE, size or batch_size, subsample=subsample, dim=-1)


class VICHModel(LocalPyroModule):
    """The prior over per-class expression intensities and the likelihood of the labels.

    ``model(x, y)`` reads only the batch size from the faces x: the prior does not depend on
    them, so the network runs once per step, in the guide. Generative process, for each face
    i of the N in the data set (a minibatch of B is visited per step, its log-densities
    scaled by N / B):

        [W ~ Normal(0, head_prior_scale^2)                     the Bayesian head's weights, when used]
        z_i ~ Normal(0, prior_scale^2 I_K)                     latent expression intensities
        logits_i = z_i + log pi                                 pi: class base rates (uniform: 0)
        y_i ~ Categorical(logits_i)                             likelihood="categorical", or
        v_i ~ Multinomial(n_i, softmax(logits_i))               "multinomial": the n_i annotator votes, or
        v_i ~ DirichletMultinomial(n_i, alpha softmax(logits_i))  "dirmult": votes with extra disagreement

    With soft labels t_i (FER+ vote distributions) and the categorical likelihood, the term
    is the soft-label cross-entropy sum_k t_ik log softmax(logits_i)_k, added as a factor.

    With ``class_counts`` (``--class-prior train``) the base rates live in the likelihood,
    so z learns class-balanced intensities (logit adjustment: the same model as a prior with
    mean log pi over z + log pi); predictions can then be made under any stated class prior.

    Args:
        num_classes: K.
        prior_scale: standard deviation of the prior over each intensity (its start when learned).
        likelihood: one of ``LIKELIHOODS``.
        class_counts: training counts per class for the base rates, or None for uniform.
        learn_prior_scale: optimise the prior scale by the same ELBO (empirical Bayes).
        head_shape: (K, E + 1) when the guide's head weights are a latent (Bayesian head):
            the model then holds their prior, W ~ Normal(0, head_prior_scale^2), a global site.
        head_prior_scale: standard deviation of that prior.
    """

    def __init__(self, num_classes: int, prior_scale: float = 1.0, *, likelihood: str = "categorical",
                 class_counts: Sequence[float] | torch.Tensor | None = None, learn_prior_scale: bool = False,
                 head_shape: tuple[int, int] | None = None, head_prior_scale: float = 1.0) -> None:
        super().__init__()
        if not (prior_scale > 0 and math.isfinite(prior_scale)):
            raise ValueError(f"prior_scale must be a finite number > 0, got {prior_scale}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")
        self.num_classes = num_classes
        self.likelihood = likelihood
        # Buffers, so .to(device) moves the prior with the model and checkpoints keep it.
        self.register_buffer("prior_loc", torch.zeros(num_classes))
        log_scale = torch.full((num_classes,), math.log(prior_scale))
        if learn_prior_scale:
            # A plain Parameter (not a PyroParam): it behaves the same whatever Pyro's global setting.
            self.log_prior_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_prior_scale", log_scale)
        self.register_buffer("log_base_rates", log_class_prior(class_counts, num_classes))
        # The base rates predictions are made under; set_prediction_prior changes them.
        self.register_buffer("log_prediction_rates", self.log_base_rates.clone())
        self.head_shape = tuple(head_shape) if head_shape is not None else None
        self.head_prior_scale = float(head_prior_scale)
        if likelihood == "dirmult":
            # Total concentration alpha of the annotators' Dirichlet: small = much disagreement.
            self.log_concentration = nn.Parameter(torch.tensor(math.log(10.0)))

    @property
    def prior_scale(self) -> torch.Tensor:
        return self.log_prior_scale.exp()

    @property
    def concentration(self) -> torch.Tensor | None:
        return self.log_concentration.exp() if self.likelihood == "dirmult" else None

    def set_prediction_prior(self, prior: str | float | Sequence[float]) -> None:
        """Predict under ``"train"`` base rates, ``"uniform"`` ones, a power in [-1, 1] of the
        training rates, or K explicit class probabilities."""
        if isinstance(prior, str):
            if prior not in CLASS_PRIORS:
                raise ValueError(f"unknown class prior {prior!r}; choose {' or '.join(CLASS_PRIORS)}, a power in "
                                 "[-1, 1] of the training base rates, or K probabilities")
            rates = self.log_base_rates if prior == "train" else torch.zeros_like(self.log_base_rates)
        elif isinstance(prior, (int, float)):
            if not -1.0 <= float(prior) <= 1.0:
                raise ValueError(f"a class-prior power must lie in [-1, 1], got {prior}")
            rates = float(prior) * self.log_base_rates
        else:
            p = torch.as_tensor(prior, dtype=torch.float64).flatten()
            if p.shape != (self.num_classes,) or (p <= 0).any() or not torch.isfinite(p).all():
                raise ValueError(f"expected {self.num_classes} positive class probabilities, got {p.tolist()}")
            rates = (p / p.sum()).log().float().to(self.log_base_rates.device)
        self.log_prediction_rates.copy_(rates)

    def predictive_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Class logits of intensities ``z`` under the prediction prior (a softmax gives probabilities)."""
        return z + self.log_prediction_rates

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        targets: torch.Tensor | None = None,
        votes: torch.Tensor | None = None,
        subsample: torch.Tensor | None = None,
        size: int | None = None,
        kl_weight: float = 1.0,
    ) -> torch.Tensor:
        """Run the generative process on a minibatch; observed sites are conditioned on what is given.

        Args:
            x: (B, ...) the faces; only their number is read.
            y: (B,) class labels, or None (prediction, or when ``targets``/``votes`` are given).
            targets: (B, K) soft labels for the categorical likelihood.
            votes: (B, K) annotator vote counts for the vote likelihoods.
            subsample: (B,) indices of the minibatch among the N faces (default: all of them).
            size: N, the data set size the plate scales to (default: B).
            kl_weight: beta, the weight of the KL term; the guide must be called with the same.

        Returns:
            (B, K) the intensities z.
        """
        B = x.shape[0]
        if self.head_shape is not None:
            zeros = self.prior_loc.new_zeros(self.head_shape)
            pyro.sample(HEAD_WEIGHTS, dist.Normal(zeros, self.head_prior_scale).to_event(2))
        with data_plate(B, subsample, size):
            prior = dist.Normal(self.prior_loc, self.prior_scale).expand([B, self.num_classes]).to_event(1)
            with kl_weighting(kl_weight):
                z = pyro.sample(LATENT, prior)
            pyro.deterministic(PROBS, self.predictive_logits(z).softmax(-1), event_dim=1)
            logits = z + self.log_base_rates
            if self.likelihood != "categorical":
                if votes is None:
                    if y is None and targets is None:
                        return z  # a prior-predictive or test-time call: nothing observed
                    raise ValueError(f"the {self.likelihood} likelihood needs annotator vote counts (batch['votes']); "
                                     "this data set gives none: use --likelihood categorical")
                n = votes.sum(-1)
                if self.likelihood == "multinomial":
                    # torch's Multinomial scores counts summing to any n <= total_count exactly.
                    total = max(1, int(n.max()))
                    pyro.sample(OBS, dist.Multinomial(total, logits=logits), obs=votes)
                else:
                    alpha = self.concentration * logits.softmax(-1)
                    pyro.sample(OBS, dist.DirichletMultinomial(alpha, total_count=n), obs=votes)
            elif targets is not None:
                pyro.factor(OBS, (targets * F.log_softmax(logits, -1)).sum(-1))
            else:
                pyro.sample(OBS, dist.Categorical(logits=logits), obs=y)
        return z
