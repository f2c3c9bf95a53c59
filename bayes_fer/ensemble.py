"""A deep ensemble of trained checkpoints: the strong baseline for epistemic uncertainty.

Members are runs of the same recipe with different seeds. The ensemble's predictive is the
average of the members' posterior predictives; its mutual information splits into the
members' disagreement (epistemic: H[mean_m p_m] - mean_m H[p_m]) and the average of the
members' own intensity uncertainty (aleatoric).
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from bayes_fer.conformal import ConformalCalibrator
from bayes_fer.expression_sets import ConformalSets
from bayes_fer.predictive import PredictionResult, Predictor, _entropy


class EnsemblePredictor(ConformalSets):
    """Posterior-predictive queries averaged over several trained predictors.

    Args:
        members: predictors with the same class names in the same order.
        conformal: a calibrator fitted on the ensemble's own outputs (or the path of one), as
            for :class:`~bayes_fer.predictive.Predictor`; a member's calibrator does not carry
            over, since averaging changes the probabilities.
    """

    def __init__(self, members: Sequence[Predictor],
                 conformal: ConformalCalibrator | str | os.PathLike | None = None) -> None:
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        names = [list(m.class_names) for m in members]
        if any(n != names[0] for n in names):
            raise ValueError(f"ensemble members must share their class names and order, got {names}")
        self.members = list(members)
        self.class_names = names[0]
        self.conformal = conformal

    @classmethod
    def from_checkpoints(cls, paths: Sequence[str | os.PathLike], device: str = "auto", **kwargs) -> "EnsemblePredictor":
        """Load each checkpoint with :meth:`Predictor.from_checkpoint` (``kwargs`` go to each)."""
        return cls([Predictor.from_checkpoint(p, device, **kwargs) for p in paths])

    @torch.no_grad()
    def predict_batch(self, images: torch.Tensor, num_samples: int = 100, return_samples: bool = False) -> PredictionResult:
        """Query a normalized batch; each member draws ``ceil(num_samples / M)`` samples."""
        per_member = max(1, -(-num_samples // len(self.members)))
        results = [m.predict_batch(images, per_member, return_samples=True) for m in self.members]
        member_probs = torch.stack([r.probs for r in results])  # (M, B, K)
        probs = member_probs.mean(0)
        entropy = _entropy(probs)
        epistemic = (entropy - _entropy(member_probs).mean(0)).clamp_min(0.0)
        aleatoric = torch.stack([r.mutual_information for r in results]).mean(0)
        loc = torch.stack([r.loc for r in results]).mean(0)
        # Spread of the mixture of the members' intensity posteriors, per class.
        second = torch.stack([r.scale.square() + r.loc.square() for r in results]).mean(0)
        scale = (second - loc.square()).clamp_min(0.0).sqrt()
        samples = torch.cat([r.samples for r in results]) if return_samples else None
        return self._with_sets(PredictionResult(
            class_names=self.class_names, probs=probs, loc=loc, scale=scale, prediction=probs.argmax(-1),
            entropy=entropy, mutual_information=aleatoric + epistemic, samples=samples,
            stochastic=True, aleatoric_mi=aleatoric, epistemic_mi=epistemic,
        ))

    def __call__(self, images, num_samples: int = 100, return_samples: bool = False,
                 batch_size: int = 64) -> PredictionResult:
        """Query raw images as :meth:`Predictor.__call__` takes them."""
        return self.members[0].predict_images(self.predict_batch, images, num_samples, return_samples, batch_size)
