"""Networks with the POSTER interface for the guides to encode with, and a real
:class:`~bayes_fer.predictive.Predictor` around one small enough for many faces.

Both keep the interface (``forward_features`` then a VICH ``head`` giving intensity means
and log-variances). :class:`PixelNet` reads only 4x4 average-pooled pixels, so a thousand
faces take a second, and its random weights give varied, uncertain predictions;
:class:`FixedNet` returns given outputs whatever the faces, for values worked out by hand.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from bayes_fer.predictive import Predictor
from guides import DeltaGuide, NormalGuide

FERPLUS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")


class PixelNet(nn.Module):
    """4x4 pooled pixels (48 features) into linear heads for the K intensity means and log-variances."""

    def __init__(self, num_classes: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.num_classes = num_classes
        self.loc_head = nn.Linear(48, num_classes)
        self.log_var_head = nn.Linear(48, num_classes)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(images, 4).flatten(1)  # (B, 48)

    def head(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return 3 * self.loc_head(features), self.log_var_head(features)


class FixedNet(nn.Module):
    """A network whose outputs for a batch are given: intensity means, log-variances, features."""

    def __init__(self, loc: torch.Tensor, log_var: torch.Tensor | None, features: torch.Tensor | None = None) -> None:
        super().__init__()
        self.num_classes = loc.shape[1]
        self.loc, self.log_var = loc, log_var
        self.features = features if features is not None else torch.zeros(loc.shape[0], 1)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.features

    def head(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.loc, self.log_var


def pixel_predictor(class_names: Sequence[str] = FERPLUS, guide: str = "normal", seed: int = 0) -> Predictor:
    """A CPU predictor over ``class_names`` with a mean-field Normal or a Delta guide."""
    K = len(class_names)
    family = NormalGuide(K) if guide == "normal" else DeltaGuide(K)
    return Predictor(PixelNet(K, seed), family, class_names, image_size=16, device="cpu")


def write_faces(folder: Path, names: Sequence[str], seed: int = 0, size: int = 8) -> list[Path]:
    """Small random RGB pictures at ``folder/<name>`` (sub-folders created); their paths, in order."""
    rng = np.random.default_rng(seed)
    paths = []
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths
