"""What a posterior-predictive query answers for a batch of faces, and how it reads.

One prediction rule serves every consumer: a face's predicted class is the argmax of its
posterior-predictive probabilities ``probs``; ``prediction``, ``topk``, the readout and the
records all follow it. A second class is named only on calibrated evidence: when a conformal
calibrator is attached (``Predictor(..., conformal=...)``), ``prediction_set(alpha)`` gives
each face's expression set, which covers the true expression with probability at least
``1 - alpha`` on faces like the calibration ones, and the readout reads that set.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from bayes_fer.conformal import ConformalCalibrator
from bayes_fer.readout import readout, set_readout

#: What to do when sets are asked of predictions without a calibrator.
HOW_TO_CALIBRATE = (
    "calibrate on labelled validation faces with predictor.calibrate_conformal(valid_data, alpha=0.1) (a dataset, "
    "a DataLoader or an evaluation predictions .npz), or load a saved calibrator with Predictor.from_checkpoint(..., "
    "conformal='calib.json') or predictor.conformal = 'calib.json' (python -m evaluation.calibration ... "
    "--conformal 0.1 --save-conformal calib.json writes one); then predict again"
)

# Per-face fields: sliced and concatenated along their face axis (dim 1 for samples).
_PER_FACE = ("probs", "loc", "scale", "prediction", "entropy", "mutual_information", "cov_factor", "samples",
             "aleatoric_mi", "epistemic_mi", "set_uniforms")


class NoCalibratorError(RuntimeError):
    """Expression sets were asked of predictions made without a conformal calibrator."""


@dataclass
class PredictionResult:
    """Posterior-predictive summary of a batch of B faces over K classes (all tensors on CPU).

    Attributes:
        class_names: the K class names, in column order.
        probs: (B, K) Monte-Carlo posterior-predictive class probabilities E_q[softmax(z)].
        loc: (B, K) posterior means of the latent intensities.
        scale: (B, K) posterior standard deviations (zeros for deterministic heads).
        prediction: (B,) argmax of ``probs``: the one prediction rule, which the readout,
            ``topk`` and the records follow too.
        entropy: (B,) entropy of ``probs`` (nats): total uncertainty.
        mutual_information: (B,) entropy minus the mean entropy of the draws: how much the
            latent draws disagree; zero for deterministic heads.
        aleatoric_mi: (B,) the share of ``mutual_information`` from the intensities given the
            weights (how mixed or ambiguous the expression is).
        epistemic_mi: (B,) the share from the Bayesian head's weights (what the model has not
            learned); None unless the guide has a Bayesian head, since point-estimate weights
            carry no epistemic uncertainty.
        cov_factor: (B, K, r) low-rank covariance factor, for the low-rank guide.
        samples: (S, B, K) class probabilities per draw, when asked for.
        stochastic: False when the head or guide has no spread.
        sources: the input each row came from (path, or index), and a face box when detected.
        conformal: the calibrator of the predictor that made these predictions, if it had one.
        set_uniforms: (B,) the uniforms of randomized conformal scores, drawn once per face when
            predicted, so a face's set depends neither on its batch nor on how often it is asked.
    """

    class_names: list[str]
    probs: torch.Tensor
    loc: torch.Tensor
    scale: torch.Tensor
    prediction: torch.Tensor
    entropy: torch.Tensor
    mutual_information: torch.Tensor
    cov_factor: torch.Tensor | None = None
    samples: torch.Tensor | None = None
    stochastic: bool = True
    aleatoric_mi: torch.Tensor | None = None
    epistemic_mi: torch.Tensor | None = None
    sources: list[dict] = field(default_factory=list)
    conformal: ConformalCalibrator | None = field(default=None, repr=False)
    set_uniforms: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.probs.shape[0]

    def topk(self, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
        """(values, indices), each (B, k), of the highest posterior-predictive probabilities."""
        return self.probs.topk(min(k, self.probs.shape[1]), dim=1)

    # -- conformal expression sets ------------------------------------------------------------
    def _calibrator(self) -> ConformalCalibrator:
        if self.conformal is None:
            raise NoCalibratorError(f"these predictions were made without a conformal calibrator, so they have no "
                                    f"expression sets; {HOW_TO_CALIBRATE}")
        return self.conformal

    def prediction_set_indices(self, alpha: float | None = None) -> list[list[int]]:
        """Per face, the class indices of its conformal expression set, most probable first.

        Args:
            alpha: Miscoverage level: the set holds the true expression with probability at
                least ``1 - alpha``. The level the calibrator was fitted at when ``None``; any
                level in its calibrated range otherwise (see
                :meth:`~bayes_fer.conformal.ConformalCalibrator.thresholds`).

        Raises:
            NoCalibratorError: no calibrator is attached (the message says how to attach one).
            ValueError: ``alpha`` is not in (0, 1) or outside the calibrated range.
        """
        calibrator = self._calibrator()
        u = None if self.set_uniforms is None else self.set_uniforms.numpy().astype(np.float64)
        probs = self.probs.double()
        probs = probs / probs.sum(-1, keepdim=True)  # float32 rows can sum 1e-7 away from 1
        sets = calibrator.predict_sets(probs.numpy(), alpha=alpha, u=u)  # (B, K)
        order = torch.argsort(-self.probs, dim=1, stable=True).tolist()  # (B, K)
        return [[k for k in row if sets[i, k]] for i, row in enumerate(order)]

    def prediction_set(self, alpha: float | None = None) -> list[list[str]]:
        """Per face, the class names of its conformal expression set, most probable first.

        ``[["happiness", "surprise"], ["sadness"]]``: the first face is happy or surprised, or
        both, at the stated coverage; see :meth:`prediction_set_indices` for ``alpha`` and errors.
        """
        return [[self.class_names[k] for k in row] for row in self.prediction_set_indices(alpha)]

    def compound(self, alpha: float | None = None) -> list[str]:
        """Per face, the plain-English readout.

        With a conformal calibrator attached, the readout reads the face's expression set at
        level ``alpha`` (:func:`~bayes_fer.readout.set_readout`): "happy and surprised" when the
        set is exactly those two classes, "happy" for one class, "ambiguous among ..." for more.
        Without one it names the predicted class (the argmax of ``probs``) only: the gap between
        the two most probable classes carries no calibrated evidence that the face shows the
        second, so no second class is named on it.

        Raises:
            NoCalibratorError: ``alpha`` is given but no calibrator is attached.
        """
        if self.conformal is None and alpha is None:
            return [readout([self.class_names[int(k)]]) for k in self.prediction]
        return [set_readout(names, len(self.class_names)) for names in self.prediction_set(alpha)]

    # -- records --------------------------------------------------------------------------------
    def to_records(self, alpha: float | None = None) -> list[dict]:
        """One flat dict per face, for CSV: source, prediction, readout, the expression set (when
        a calibrator is attached, at level ``alpha``) and per-class columns."""
        sets = None if self.conformal is None and alpha is None else self.prediction_set(alpha)
        readouts = self.compound() if sets is None else [set_readout(s, len(self.class_names)) for s in sets]
        records = []
        for i in range(len(self)):
            rec = dict(self.sources[i]) if i < len(self.sources) else {"index": i}
            rec.update(prediction=self.class_names[int(self.prediction[i])], readout=readouts[i])
            if sets is not None:
                rec["set"] = sets[i]
            rec.update(entropy=float(self.entropy[i]), mutual_information=float(self.mutual_information[i]),
                       spread="zero (deterministic head)" if not self.stochastic else "posterior")
            if self.epistemic_mi is not None:
                rec.update(aleatoric_mi=float(self.aleatoric_mi[i]), epistemic_mi=float(self.epistemic_mi[i]))
            for k, name in enumerate(self.class_names):
                rec[f"prob/{name}"] = float(self.probs[i, k])
                rec[f"loc/{name}"] = float(self.loc[i, k])
                rec[f"scale/{name}"] = float(self.scale[i, k])
            records.append(rec)
        return records

    def to_dict(self, alpha: float | None = None) -> dict:
        """JSON-ready nested lists; with a calibrator, ``conformal`` states the sets' level and score."""
        d = {
            "class_names": list(self.class_names),
            "stochastic": self.stochastic,
            "faces": self.to_records(alpha),
        }
        if self.conformal is not None:
            d["conformal"] = conformal_summary(self.conformal, alpha)
        if self.samples is not None:
            d["samples"] = self.samples.tolist()
        if self.cov_factor is not None:
            d["cov_factor"] = self.cov_factor.tolist()
        return d


def conformal_summary(calibrator: ConformalCalibrator, alpha: float | None = None) -> dict:
    """How the sets were made: level, coverage, score, Mondrian, calibration examples."""
    alpha = calibrator.alpha if alpha is None else alpha
    return {"alpha": alpha, "coverage": 1 - alpha, "score": calibrator.score, "mondrian": calibrator.mondrian,
            "randomized": calibrator.randomized, "calibration_examples": sum(calibrator.num_calibration or [])}


def concat_results(results: list[PredictionResult]) -> PredictionResult:
    """The results of consecutive batches as one (sources left empty)."""
    first = results[0]
    merged = {name: None if getattr(first, name) is None else
              torch.cat([getattr(r, name) for r in results], 1 if name == "samples" else 0) for name in _PER_FACE}
    return dataclasses.replace(first, **merged, sources=[])


def result_row(result: PredictionResult, i: int, src: dict) -> PredictionResult:
    """Face ``i`` of ``result`` as a one-face result from ``src`` (without its Monte-Carlo draws)."""
    take = {name: None if getattr(result, name) is None else getattr(result, name)[i:i + 1] for name in _PER_FACE}
    return dataclasses.replace(result, **{**take, "samples": None}, sources=[src])
