"""Shared fixtures: deterministic seeds, clean Pyro state and access to ``../shared``."""
from __future__ import annotations

import os
from pathlib import Path

import pyro
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("BAYES_FER_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(autouse=True)
def _seed_and_clear_pyro():
    """Every test starts from the same seed, an empty Pyro parameter store and Pyro's default
    (global) parameters: the library must scope module-local parameters itself."""
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


def require_shared(*parts: str) -> Path:
    """Return ``../shared/<parts>``, skipping the test when it is absent.

    CI sets ``BAYES_FER_REQUIRE_SHARED=1`` so that an absent folder fails the test instead:
    the parity and real-data tests must always run there.
    """
    path = SHARED_DIR.joinpath(*parts)
    if path.exists():
        return path
    reason = (
        f"{path} is absent: these tests need the shared reference data beside the checkout "
        "(set BAYES_FER_SHARED to point elsewhere)"
    )
    if os.environ.get("BAYES_FER_REQUIRE_SHARED") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def shared_dir() -> Path:
    return require_shared()


@pytest.fixture(scope="session", autouse=True)
def _two_threads():
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def synthetic_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """best.pt of tiny synthetic runs of the training script, one per guide."""
    from tests.checkpoints import run_train

    out = {}
    for guide in ("normal", "delta", "lowrank"):
        folder = tmp_path_factory.mktemp(f"run-{guide}")
        run_train(folder, "--guide", guide)
        out[guide] = folder / "best.pt"
    return out
