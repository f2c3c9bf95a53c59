"""Small worked examples shared by the evaluation tests."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def four_examples() -> tuple[np.ndarray, np.ndarray]:
    """Predictions 0, 1, 2, 0 for labels 0, 1, 1, 1: two right, two wrong, class 2 never true."""
    probs = np.array([
        [0.7, 0.2, 0.1],
        [0.1, 0.6, 0.3],
        [0.3, 0.3, 0.4],
        [0.5, 0.4, 0.1],
    ])
    return probs, np.array([0, 1, 1, 1])


@pytest.fixture
def seven_confidences() -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidences 0.95, 0.9, 0.8, 0.6, 0.55, 0.4, 0.35; right, right, wrong, right, right, wrong, right.

    With 4 equal-width bins: [0.75, 1] holds 0.95, 0.9, 0.8 (acc 2/3, conf 0.88333),
    [0.5, 0.75) holds 0.6, 0.55 (acc 1, conf 0.575), [0.25, 0.5) holds 0.4, 0.35
    (acc 1/2, conf 0.375) and [0, 0.25) is empty.
    """
    probs = np.array([
        [0.95, 0.03, 0.02],
        [0.9, 0.05, 0.05],
        [0.8, 0.1, 0.1],
        [0.2, 0.6, 0.2],
        [0.2, 0.25, 0.55],
        [0.4, 0.3, 0.3],
        [0.35, 0.33, 0.32],
    ])
    return probs, np.array([0, 0, 1, 1, 2, 2, 0])


def synthetic_predictions(seed: int = 0, n: int = 120, k: int = 7, s: int = 6, votes: bool = True,
                          class_names: tuple[str, ...] = ()):
    """Latent-Normal predictions in the VICH form: intensities z ~ N(loc, scale), probs = softmax(z)."""
    from evaluation.predictions import Predictions

    rng = np.random.default_rng(seed)
    loc = rng.normal(size=(n, k)) * 2.0
    scale = rng.uniform(0.1, 1.0, size=(n, k))
    z = loc[None] + scale[None] * rng.normal(size=(s, n, k))  # (S, N, K)
    samples = np.exp(z - z.max(-1, keepdims=True))
    samples /= samples.sum(-1, keepdims=True)
    probs = samples.mean(0)
    labels = np.array([rng.choice(k, p=p) for p in probs])
    return Predictions(
        probs=probs, labels=labels, votes=rng.multinomial(10, probs) if votes else None,
        samples=samples, loc=loc, scale=scale, class_names=class_names,
    )


@pytest.fixture
def make_predictions():
    """The :func:`synthetic_predictions` factory."""
    return synthetic_predictions
