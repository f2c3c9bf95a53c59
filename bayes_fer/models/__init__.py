"""POSTER++ / POSTER-Var networks and their checkpoint converters."""
from bayes_fer.models.convert import CheckpointError
from bayes_fer.models.poster import NATIVE_SIZE, PosterConfig, PosterNet
from bayes_fer.models.registry import count_parameters, create_model, list_models, load_checkpoint, model_config

__all__ = [
    "NATIVE_SIZE",
    "CheckpointError",
    "PosterConfig",
    "PosterNet",
    "count_parameters",
    "create_model",
    "list_models",
    "load_checkpoint",
    "model_config",
]
