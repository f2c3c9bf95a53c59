"""The batches of a run: each epoch's global batches, cut across processes, from the image files or a cache.

Two pipelines give the same batches (dicts with ``image``, ``label``, ``index`` and the data
set's extras), in the same order:

- from the image files, a ``DataLoader`` decodes and augments each face with PIL in worker
  processes, each face with its own seed of (seed, epoch, position)
  (:class:`bayes_fer.training.data.SeededSamples`);
- with ``data_cache`` set, the faces come from a memory-mapped uint8 file decoded once
  (:mod:`bayes_fer.data.cache`), are gathered in the main process and augmented as a batch
  on the training device (:mod:`bayes_fer.data.batch_augment`) at ``image_size``, with draws
  from the device's generator, which checkpoints carry. Nothing is read back to the host.

The order is the epoch's (:func:`bayes_fer.training.data.epoch_order`), from a position on
when a run resumes mid-epoch, cut into global batches of ``batch_size``; under torchrun each
process takes its slice of each global batch (:class:`ShardedBatchSampler`).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from functools import partial

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler

from bayes_fer.training.config import TrainConfig
from bayes_fer.training.data import EpochOrder, SeededSamples, epoch_order
from bayes_fer.training.distributed import DistContext

#: Where a bare ``--data-cache`` keeps the decoded data sets (beside the runs).
DEFAULT_CACHE_DIR = "runs/data-cache"


def global_batch_size(config: TrainConfig, epoch_size: int) -> int:
    """Faces in every global batch of an epoch of ``epoch_size`` faces.

    An epoch longer than a batch drops its last, smaller batch, so every batch is full; a
    shorter one is a single batch of all its faces.
    """
    return min(config.batch_size, epoch_size)


def check_shares(smallest: int, ctx: DistContext) -> None:
    """Refuse global batches of fewer faces than processes: a process without a face cannot step.

    Raises:
        ValueError: naming the batch and the number of processes.
    """
    if smallest < ctx.world_size:
        raise ValueError(f"a global batch of {smallest} faces cannot be shared by {ctx.world_size} processes: "
                         f"use --batch-size (and a training set) of at least {ctx.world_size}")


class ShardedBatchSampler(Sampler[list]):
    """Global batches of ``order``, each cut into ``world_size`` contiguous slices; yields this process's.

    With one process it is a plain batch sampler. Slices differ in size by at most one face
    when the global batch does not divide evenly
    (:func:`bayes_fer.training.distributed.gradient_weight` evens out their gradients).

    Args:
        order: the epoch's items (from the resume position on), the same on every process.
        batch_size: the global batch.
        drop_last: drop a last, smaller global batch.
        ctx: this process's place in the group.

    Raises:
        ValueError: a global batch would leave a process without a face.
    """

    def __init__(self, order: Sampler | Sized, batch_size: int, drop_last: bool, ctx: DistContext) -> None:
        full, rest = divmod(len(order), batch_size)
        sizes = ([batch_size] if full else []) + ([rest] if rest and not drop_last else [])
        if sizes:
            check_shares(min(sizes), ctx)
        self.order, self.batch_size, self.drop_last, self.ctx = order, batch_size, drop_last, ctx

    def __len__(self) -> int:
        n = len(self.order)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list]:
        batch = []
        for item in self.order:
            batch.append(item)
            if len(batch) == self.batch_size:
                yield self._slice(batch)
                batch = []
        if batch and not self.drop_last:
            yield self._slice(batch)

    def _slice(self, batch: list) -> list:
        share, extra = divmod(len(batch), self.ctx.world_size)
        start = self.ctx.rank * share + min(self.ctx.rank, extra)
        return batch[start: start + share + (self.ctx.rank < extra)]


class _Indices(Sampler[list[int]]):
    """The data-set indices of (index, seed) batches: the cached path draws augmentation on the device."""

    def __init__(self, batches: ShardedBatchSampler) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            yield [index for index, _ in batch]


class Batches:
    """Every loader of one run: an epoch's training batches from any step on, and the evaluation batches.

    Args:
        config: the run's settings (batch size, sampler, workers, augmentation, cache, image size).
        splits: the ``train``, ``valid`` and ``test`` data sets.
        device: the training device (the cached path preprocesses there).
        ctx: this process's place in a torchrun group. Rank 0 decodes a missing cache while the
            others wait; the others open the training split's only (they never evaluate).
    """

    def __init__(self, config: TrainConfig, splits: dict[str, Dataset], device: torch.device,
                 ctx: DistContext = DistContext()) -> None:
        self.config, self.splits, self.device, self.ctx = config, splits, device, ctx
        #: Faces per epoch, and per global batch (every process takes its slice of each).
        self.epoch_size = len(epoch_order(config, splits["train"].labels, 0))
        self.global_batch = global_batch_size(config, self.epoch_size)
        check_shares(self.global_batch, ctx)
        self.caches = self._open_caches() if config.data_cache else None
        self._augment = None

    def train(self, epoch: int, step: int = 0) -> Iterable[dict]:
        """This process's batches of epoch ``epoch`` (from 0) from global step ``step`` of it on."""
        cfg = self.config
        dataset = self.splits["train"]
        order = epoch_order(cfg, dataset.labels, epoch)
        items = EpochOrder(order, cfg.seed, epoch, start=step * cfg.batch_size)
        batches = ShardedBatchSampler(items, cfg.batch_size, len(order) > cfg.batch_size, self.ctx)
        if self.caches is not None:
            return self._cached("train", _Indices(batches), self.augment)
        return DataLoader(SeededSamples(dataset), batch_sampler=batches, num_workers=cfg.workers,
                          pin_memory=self.device.type == "cuda",
                          generator=torch.Generator().manual_seed(cfg.seed + epoch))

    def eval(self, split: str) -> Iterable[dict]:
        """The batches of ``split`` (``valid`` or ``test``) in file order, preprocessed for evaluation."""
        cfg = self.config
        dataset, bs = self.splits[split], max(cfg.batch_size, 128)
        if self.caches is not None:
            batches = BatchSampler(SequentialSampler(range(len(dataset))), bs, drop_last=False)
            from bayes_fer.data.batch_augment import eval_batch  # noqa: PLC0415 - light imports

            return self._cached(split, batches, partial(eval_batch, image_size=cfg.image_size))
        return DataLoader(dataset, batch_size=bs, num_workers=cfg.workers, pin_memory=self.device.type == "cuda",
                          generator=torch.Generator().manual_seed(cfg.seed))

    @property
    def augment(self) -> torch.nn.Module:
        """The training augmentation of the cached path, drawn per face on the device."""
        if self._augment is None:
            from bayes_fer.data.batch_augment import BatchAugment  # noqa: PLC0415
            from bayes_fer.data.transforms import AUGMENTATIONS, AugmentConfig  # noqa: PLC0415

            self._augment = BatchAugment(self.config.image_size, AugmentConfig(**AUGMENTATIONS[self.config.augment]))
        return self._augment

    def _cached(self, split: str, batches: Sampler[list[int]], transform) -> Iterable[dict]:
        from bayes_fer.data.cached_loader import CachedLoader  # noqa: PLC0415

        return CachedLoader(self.caches[split], batches, self.device, transform)

    def _open_caches(self) -> dict:
        from bayes_fer.data.cache import cache_summary, open_cache  # noqa: PLC0415

        cfg = self.config
        caches: dict = {}
        names = ("train", "valid", "test") if self.ctx.is_main else ("train",)
        if not self.ctx.is_main:
            self.ctx.barrier()  # rank 0 decodes first; the others then map the same file
        for name in names:
            dataset = self.splits[name]
            shared = next((k for k in caches if self.splits[k] is dataset), None)
            if shared is not None:  # a data set that validates on its test split
                caches[name] = caches[shared]
                continue
            # Decoding draws from the global generators (a DataLoader's base seed): a run that
            # decodes must draw the same initialisation and noise as one that finds the cache.
            with torch.random.fork_rng(devices=[]):
                caches[name] = open_cache(dataset, cfg.data_cache, cfg.image_size, workers=cfg.workers,
                                          progress=self.ctx.is_main)
            if self.ctx.is_main:
                summary = cache_summary(caches[name])
                print(f"data cache, {name}: {summary['images']} images of {summary['channels']} x {summary['side']} x "
                      f"{summary['side']} in {summary['path']} ({summary['megabytes']} MB)")
        if self.ctx.is_main:
            self.ctx.barrier()
        return caches


__all__ = ["DEFAULT_CACHE_DIR", "Batches", "ShardedBatchSampler", "check_shares", "global_batch_size"]
