"""bayes-fer must leave Pyro's global settings alone: a user's own Pyro program runs beside it."""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule, PyroParam
from torch import nn


class Regression(PyroModule):
    """y = w x + b + noise with a latent slope and a constrained noise scale, as in Pyro's tutorials."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = PyroModule[nn.Linear](1, 1)
        self.sigma = PyroParam(torch.tensor(1.0), constraint=dist.constraints.positive)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        w = pyro.sample("w", dist.Normal(0.0, 10.0))
        mean = w * x + self.bias(x[:, None]).squeeze(-1) - self.bias.weight.squeeze() * x
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("obs", dist.Normal(mean, self.sigma), obs=y)


def _fit_plain_pyro_regression() -> float:
    torch.manual_seed(0)
    x = torch.linspace(-2, 2, 200)
    y = 2.0 * x + 0.5 + 0.1 * torch.randn(200)
    model = Regression()
    guide = AutoNormal(model)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(400):
        svi.step(x, y)
    return guide.median()["w"].item()


def test_import_leaves_module_local_params_off():
    import bayes_fer  # noqa: F401
    import evaluation  # noqa: F401
    import guides  # noqa: F401

    assert pyro.settings.get("module_local_params") is False


def test_plain_pyro_program_trains_after_our_imports_and_calls():
    import evaluation  # noqa: F401
    import guides  # noqa: F401
    from bayes_fer.training.builder import build_vich
    from bayes_fer.training.config import TrainConfig
    from bayes_fer.training.loop import elbo_loss
    from bayes_fer import create_model

    # Run our own SVI loss first: its scope must end with the call.
    net = create_model("poster_var_tiny", num_classes=3)
    model, guide = build_vich(TrainConfig(), net)
    batch = {"image": torch.randn(2, 3, 112, 112), "label": torch.tensor([0, 2]), "index": torch.arange(2)}
    assert torch.isfinite(elbo_loss(model, guide, batch, 10))
    assert pyro.settings.get("module_local_params") is False
    assert abs(_fit_plain_pyro_regression() - 2.0) < 0.1
