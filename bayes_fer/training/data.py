"""The data of a training run: every split opened up front, and an epoch order that can resume mid-way."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from bayes_fer.training.config import TrainConfig


@dataclass
class Splits:
    """The three splits of a run; ``valid_split`` says which split model selection uses."""

    train: Dataset
    valid: Dataset
    test: Dataset
    valid_split: str  # "valid", or "test" for data sets that ship no validation split


def load_splits(config: TrainConfig, transform) -> Splits:
    """Open and check train, the validation split and test before any training.

    Raises:
        FileNotFoundError, ValueError: a split is missing or broken (the message names the file);
            the splits disagree on the classes.
    """
    from bayes_fer.data import load_dataset, validation_split  # noqa: PLC0415 - light imports

    kw = dict(root=config.data_root, image_size=config.image_size, label_mode=config.label_mode, seed=config.seed)
    train = load_dataset(config.dataset, split="train", size=config.train_size, transform=transform, **kw)
    which = validation_split(config.dataset, config.data_root)
    test = load_dataset(config.dataset, split="test", size=config.valid_size, **kw)
    valid = test if which == "test" else load_dataset(config.dataset, split="valid", size=config.valid_size, **kw)
    for name, ds in (("valid", valid), ("test", test)):
        if tuple(ds.class_names) != tuple(train.class_names):
            raise ValueError(
                f"{config.dataset}: the {name} split has classes {list(ds.class_names)} but train has "
                f"{list(train.class_names)}; every split needs the same class folders (or the same classes= order)"
            )
    return Splits(train, valid, test, which)


class EpochOrder(Sampler):
    """One epoch's sample order, from position ``start`` on, each index with its own seed.

    The order is a pure function of ``(seed, epoch)``, so a run resumed mid-epoch draws the
    same order and skips the batches already taken. Each sample carries a seed of
    ``(seed, epoch, position)`` so its augmentation does not depend on the number of DataLoader
    workers or on where the run was resumed.
    """

    def __init__(self, order: np.ndarray, seed: int, epoch: int, start: int = 0) -> None:
        self.order = np.asarray(order, dtype=np.int64)
        self.seed, self.epoch, self.start = int(seed), int(epoch), int(start)

    def __len__(self) -> int:
        return max(0, len(self.order) - self.start)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        base = (self.seed * 1_000_003 + self.epoch) * 10_000_019
        for position in range(self.start, len(self.order)):
            yield int(self.order[position]), (base + position) % 2**63


def epoch_order(config: TrainConfig, labels: np.ndarray, epoch: int) -> np.ndarray:
    """The sample order of ``epoch``: a seeded permutation, or a class-balanced draw."""
    if config.balanced_per_class:
        from bayes_fer.data import ClassBalancedSampler  # noqa: PLC0415

        return ClassBalancedSampler(labels, config.balanced_per_class, seed=config.seed).indices(epoch)
    g = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    return torch.randperm(len(labels), generator=g).numpy()


class SeededSamples(Dataset):
    """A dataset indexed by ``(index, seed)``: each sample's augmentation draws from its own seed.

    The global generator is restored after each sample, so the ELBO's noise in the main
    process does not depend on how images are loaded.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]
