"""bayes-fer: probabilistic facial expression recognition with POSTER-Var's VICH head in Pyro.

Importing bayes-fer changes no global Pyro setting: our entry points scope Pyro's
module-local parameters themselves (``bayes_fer.pyro_scope``), so a user's
own Pyro code runs beside ours as it would alone.
"""
from bayes_fer.models import CheckpointError, PosterConfig, PosterNet, create_model, list_models

__all__ = ["CheckpointError", "PosterConfig", "PosterNet", "create_model", "list_models"]
__version__ = "0.1.0"
