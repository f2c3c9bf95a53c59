"""Training POSTER-Var's VICH head by stochastic variational inference."""
from bayes_fer.training.config import CLASS_PRIORS, DATASETS, LIKELIHOODS, LR_SCHEDULES, TrainConfig, preset
from bayes_fer.training.loop import Trainer, TrainingDiverged, elbo_loss, evaluate, head_output, train

__all__ = [
    "CLASS_PRIORS", "DATASETS", "LIKELIHOODS", "LR_SCHEDULES", "TrainConfig", "Trainer", "TrainingDiverged", "elbo_loss", "evaluate", "head_output",
    "preset", "train",
]
