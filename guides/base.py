"""The interface every amortized VICH guide implements: the encoder q(z | x)."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import pyro
import torch
from pyro.distributions import TorchDistribution
from torch import nn

from bayes_fer.pyro_scope import LocalPyroModule
from bayes_fer.vich import LATENT, LOG_VAR_MAX, LOG_VAR_MIN, HeadOutput, data_plate, kl_weighting

#: The attribute (and state-dict prefix) of the network a guide owns.
ENCODER = "net"


def bounded_scale(log_var: torch.Tensor) -> torch.Tensor:
    """exp(0.5 * log_var) with the log-variance clamped, so no step can produce 0, inf or NaN."""
    return torch.exp(0.5 * log_var.clamp(LOG_VAR_MIN, LOG_VAR_MAX))


class AmortizedGuide(LocalPyroModule):
    """q(z_i | x_i): the network encodes the faces, and z is sampled inside the model's data plate.

    ``guide(x, y)`` takes the model's arguments, runs the network once (:meth:`encode`) and
    samples the intensities from :meth:`posterior`, which subclasses implement: a
    distribution with batch shape (B,) and event shape (K,) built from the network's outputs.

    Args:
        num_classes: K.
        net: the network (``forward_features`` and a ``head`` giving intensity means and
            log-variances); None leaves it to be set later (``Predictor`` does).

    Attributes:
        net: the encoder, a submodule: the guide's ``state_dict`` holds it under ``net.``.
        bf16: run the network's features under bfloat16 autocast on CUDA (the head stays fp32).
        features_fn: a stand-in for ``net.forward_features``, e.g. its ``torch.compile``d form.

    ``bf16`` and ``features_fn`` speed up SVI steps and apply while the guide is in training
    mode; in eval mode (validation, prediction) the network runs as built, in fp32.
    """

    #: Whether the guide has a spread (Delta guides do not).
    stochastic: bool = True

    def __init__(self, num_classes: int, net: nn.Module | None = None) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.add_module(ENCODER, net)
        self.bf16 = False
        self.features_fn: Callable[[torch.Tensor], torch.Tensor] | None = None

    def encode(self, x: torch.Tensor) -> HeadOutput:
        """The one network pass: features (in training, under bf16 autocast if asked), the head in fp32."""
        if self.net is None:
            raise ValueError(f"{type(self).__name__} has no network to encode faces with; build it with "
                             "create_guide(..., net=net) or pass both to Predictor(net, guide, ...)")
        features_fn = self.features_fn if self.training and self.features_fn is not None else self.net.forward_features
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.training and self.bf16 and x.is_cuda):
            features = features_fn(x)
        features = features.float()
        loc, log_var = self.net.head(features)
        return HeadOutput(loc, log_var, features)

    def posterior(self, out: HeadOutput) -> TorchDistribution:
        raise NotImplementedError

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
        """Encode the faces x and sample z ~ q(z | x); the labels are not read (the model's arguments)."""
        out = self.encode(x)
        with data_plate(out.batch_size, subsample, size), kl_weighting(kl_weight):
            return pyro.sample(LATENT, self.posterior(out))

    def mean(self, out: HeadOutput) -> torch.Tensor:
        """The posterior mean of the intensities: the paper's prediction rule uses its argmax."""
        return out.loc

    def marginal_scale(self, out: HeadOutput) -> torch.Tensor:
        """Per-class posterior standard deviation (B, K)."""
        return self.posterior(out).variance.sqrt()

    def state_dict_without_net(self) -> dict[str, torch.Tensor]:
        """The guide's own tensors: checkpoints keep the network's beside them, under ``"model"``."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(f"{ENCODER}.")}

    def load_state_dict_without_net(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load what :meth:`state_dict_without_net` saved, strictly for everything but the network.

        Raises:
            RuntimeError: naming every missing and unexpected key.
        """
        missing, unexpected = self.load_state_dict(state_dict, strict=False)
        missing = [k for k in missing if not k.startswith(f"{ENCODER}.")]
        if missing or unexpected:
            raise RuntimeError(f"the {type(self).__name__} state does not fit: missing {missing}, "
                               f"unexpected {unexpected}")

    def _require_log_var(self, out: HeadOutput) -> torch.Tensor:
        if out.log_var is None:
            raise ValueError(
                f"{type(self).__name__} needs a log-variance from the network, but the model has a "
                "deterministic head (poster_pp); use the Delta guide (--guide delta) or a poster_var model"
            )
        return out.log_var
