"""Training POSTER-Var's VICH head by stochastic variational inference."""
from bayes_fer.training.config import CLASS_PRIORS, DATASETS, LIKELIHOODS, LR_SCHEDULES, TrainConfig, preset
from bayes_fer.training.loop import Trainer, TrainingDiverged, elbo_loss, evaluate, train
from bayes_fer.training.resume import RUN_CONTROL_FIELDS, ResumeMismatch
from bayes_fer.training.rundir import OutputError, RunDirectoryError

__all__ = [
    "CLASS_PRIORS", "DATASETS", "LIKELIHOODS", "LR_SCHEDULES", "RUN_CONTROL_FIELDS", "OutputError", "ResumeMismatch",
    "RunDirectoryError", "TrainConfig", "Trainer", "TrainingDiverged", "elbo_loss", "evaluate", "preset", "train",
]
