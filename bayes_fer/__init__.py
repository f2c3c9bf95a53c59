"""bayes-fer: probabilistic facial expression recognition with POSTER-Var's VICH head in Pyro."""
import pyro

# Parameters live on their modules, not in Pyro's global store (netcal's calibrators clear it).
pyro.settings.set(module_local_params=True)

from bayes_fer.models import CheckpointError, PosterConfig, PosterNet, create_model, list_models  # noqa: E402

__all__ = ["CheckpointError", "PosterConfig", "PosterNet", "create_model", "list_models"]
__version__ = "0.1.0"
