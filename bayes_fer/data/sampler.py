"""Class-balanced sampling, as AffectNet training needs (its classes span 1:50 in size)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


class ClassBalancedSampler(Sampler[int]):
    """Each epoch, ``per_class`` indices of every class present, drawn afresh and shuffled.

    A class with at least ``per_class`` samples is drawn without replacement, a smaller
    one with replacement. The draw is a pure function of ``(seed, epoch)``. The sampler
    runs in the main process, so persistent DataLoader workers see each epoch's new draw.
    Each iteration draws epoch ``self.epoch`` and then advances it, so a plain loop gets a
    new draw every epoch; :meth:`set_epoch` (as with ``DistributedSampler``) pins the epoch
    of the next iteration, e.g. when resuming.

    Args:
        labels: hard label of every sample (e.g. ``dataset.labels``).
        per_class: samples of each class per epoch.
        seed: base seed of the draws.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray | torch.Tensor, per_class: int, seed: int = 0) -> None:
        labels = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if labels.ndim != 1 or len(labels) == 0:
            raise ValueError(f"labels must be a non-empty 1-D sequence of class indices, got shape {labels.shape}")
        if per_class <= 0:
            raise ValueError(f"per_class must be a positive number of samples, got {per_class}")
        self.per_class = int(per_class)
        self.seed = int(seed)
        self.epoch = 0  # the epoch the next iteration draws
        classes, inverse = np.unique(labels, return_inverse=True)
        self.classes = classes
        self._members = [np.flatnonzero(inverse == k) for k in range(len(classes))]

    def __len__(self) -> int:
        return self.per_class * len(self._members)

    def set_epoch(self, epoch: int) -> None:
        """Draw the indices of ``epoch`` at the next iteration."""
        self.epoch = int(epoch)

    def indices(self, epoch: int) -> np.ndarray:
        """The indices of ``epoch``, in iteration order."""
        rng = np.random.default_rng([self.seed, epoch])
        draws = [rng.choice(m, self.per_class, replace=len(m) < self.per_class) for m in self._members]
        return rng.permutation(np.concatenate(draws))

    def __iter__(self) -> Iterator[int]:
        order = self.indices(self.epoch)
        self.epoch += 1
        return iter(order.tolist())
