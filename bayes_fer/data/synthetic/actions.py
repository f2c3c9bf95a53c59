"""Emotion mixtures and the action units (AUs) they drive.

The generative story of one synthetic face:

    kind      ~ Categorical(1 - p_compound, p_compound)        dominant or compound face
    focus     ~ one emotion (dominant) or two emotions (compound), uniformly
    mixture   ~ Dirichlet(alpha), alpha = base everywhere, raised on the focus emotion(s)
    label     = argmax(mixture)
    votes     ~ Multinomial(num_votes, mixture)                 simulated annotators, as FER+
    au        = intensity * mixture @ EMOTION_AU + Normal(0, au_noise), clipped to [0, 1.2]

``EMOTION_AU`` follows the EMFACS prototypes of Ekman & Friesen (e.g. happiness = AU6 + AU12,
surprise = AU1 + AU2 + AU5 + AU26), with lips parted (AU25) where the mouth opens.
"""
from __future__ import annotations

import numpy as np

from bayes_fer.data.labels import LABEL_SPACES

EMOTIONS: tuple[str, ...] = LABEL_SPACES["synthetic"]

#: The simulated action units, in the column order of ``EMOTION_AU``.
ACTION_UNITS: tuple[str, ...] = (
    "AU1",  # inner brow raiser
    "AU2",  # outer brow raiser
    "AU4",  # brow lowerer
    "AU5",  # upper lid raiser
    "AU6",  # cheek raiser
    "AU7",  # lid tightener
    "AU9",  # nose wrinkler
    "AU10",  # upper lip raiser
    "AU12",  # lip corner puller
    "AU15",  # lip corner depressor
    "AU17",  # chin raiser
    "AU20",  # lip stretcher
    "AU23",  # lip tightener
    "AU24",  # lip presser
    "AU25",  # lips part
    "AU26",  # jaw drop
    "AU43",  # eyes closing (droop)
)
AU = {name: i for i, name in enumerate(ACTION_UNITS)}

_PROTOTYPES: dict[str, dict[str, float]] = {
    "neutral": {},
    "happiness": {"AU6": 0.9, "AU12": 1.0, "AU25": 0.8},
    "sadness": {"AU1": 1.0, "AU4": 0.6, "AU15": 1.0, "AU17": 0.7, "AU43": 0.6},
    "surprise": {"AU1": 1.0, "AU2": 1.0, "AU5": 1.0, "AU25": 1.0, "AU26": 1.0},
    "fear": {"AU1": 1.0, "AU2": 0.4, "AU4": 0.8, "AU5": 1.0, "AU7": 0.3, "AU20": 1.0, "AU25": 1.0, "AU26": 0.35},
    "disgust": {"AU4": 0.5, "AU9": 1.0, "AU10": 1.0, "AU15": 0.5, "AU17": 0.5, "AU25": 0.3},
    "anger": {"AU4": 1.0, "AU5": 0.5, "AU7": 1.0, "AU23": 0.9, "AU24": 1.0},
}

#: (7 emotions, 17 AUs): the AU intensities of each emotion at full strength.
EMOTION_AU: np.ndarray = np.array(
    [[_PROTOTYPES[e].get(au, 0.0) for au in ACTION_UNITS] for e in EMOTIONS], dtype=np.float64
)


def sample_mixtures(
    rng: np.random.Generator,
    n: int,
    *,
    p_compound: float,
    dominant_alpha: float,
    compound_alpha: float,
    base_alpha: float,
) -> np.ndarray:
    """Draw ``n`` emotion mixtures (n, 7); each row sums to 1 (see the module docstring)."""
    k = len(EMOTIONS)
    alpha = np.full((n, k), base_alpha)
    rows = np.arange(n)
    first = rng.integers(0, k, n)
    compound = rng.random(n) < p_compound
    second = (first + rng.integers(1, k, n)) % k  # a different emotion
    alpha[rows, first] = np.where(compound, compound_alpha, dominant_alpha)
    alpha[rows[compound], second[compound]] = compound_alpha
    # Dirichlet through normalized Gammas, vectorized over rows with different alphas.
    g = rng.gamma(alpha)
    g = np.maximum(g, 1e-12)
    return g / g.sum(axis=1, keepdims=True)


def sample_votes(rng: np.random.Generator, mixtures: np.ndarray, num_votes: int) -> np.ndarray:
    """``num_votes`` simulated annotator votes per face, drawn from its mixture: (n, 7)."""
    if num_votes <= 0:
        return np.zeros_like(mixtures)
    cum = np.cumsum(mixtures, axis=1)
    cum[:, -1] = 1.0
    u = rng.random((len(mixtures), num_votes))
    picks = (u[:, :, None] > cum[:, None, :]).sum(axis=2)  # (n, num_votes) class indices
    votes = np.zeros_like(mixtures)
    np.add.at(votes, (np.repeat(np.arange(len(mixtures)), num_votes), picks.ravel()), 1.0)
    return votes


def action_units(
    rng: np.random.Generator, mixture: np.ndarray, *, intensity: tuple[float, float], au_noise: float
) -> np.ndarray:
    """AU intensities (17,) of one face: the mixture's AU profile with person-level variation."""
    scale = rng.uniform(*intensity)
    au = scale * (mixture @ EMOTION_AU) + rng.normal(0.0, au_noise, len(ACTION_UNITS))
    return np.clip(au, 0.0, 1.2)
