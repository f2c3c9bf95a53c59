"""Batches read from a decoded-once cache (:mod:`bayes_fer.data.cache`) and preprocessed on a device."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import Sampler


class CachedLoader:
    """Batches gathered from a decoded-once cache and preprocessed on ``device``.

    Args:
        cache: the decoded images, labels and extras.
        batches: lists of sample indices, one per batch (a batch sampler).
        device: where the batches go and the preprocessing runs.
        transform: uint8 batch on ``device`` to a normalized float batch (augmentation or
            the evaluation preprocessing).
    """

    def __init__(self, cache, batches: Sampler[list[int]], device: torch.device,
                 transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.cache, self.batches, self.device, self.transform = cache, batches, device, transform
        self.pin = device.type == "cuda"

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[dict]:
        for indices in self.batches:
            idx = torch.as_tensor(indices, dtype=torch.int64)
            images = self.cache.images[idx]  # (B, C, s, s) uint8, gathered from the mapped file
            if self.pin:
                images = images.pin_memory()
            # An asynchronous copy: the host gathers the next batch while the device works.
            # Labels and extras stay on the host, as a DataLoader's do; the loop moves them,
            # from pinned memory as a pinning DataLoader's, so that copy does not wait either.
            host = {"label": self.cache.labels[idx], "index": idx, **{k: v[idx] for k, v in self.cache.extras.items()}}
            if self.pin:
                host = {k: v.pin_memory() for k, v in host.items()}
            yield {"image": self.transform(images.to(self.device, non_blocking=True)), **host}
