import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from bayes_fer.data import ClassBalancedSampler

LABELS = np.array([0] * 50 + [1] * 5 + [2] * 20)


def test_each_epoch_draws_per_class_samples_of_every_class():
    sampler = ClassBalancedSampler(LABELS, per_class=10, seed=1)
    idx = np.array(list(sampler))
    assert len(idx) == len(sampler) == 30
    assert np.bincount(LABELS[idx]).tolist() == [10, 10, 10]
    big = idx[LABELS[idx] == 0]
    assert len(set(big.tolist())) == 10  # drawn without replacement where the class is large enough


def test_draws_are_deterministic_per_seed_and_epoch_and_change_every_epoch():
    a, b = ClassBalancedSampler(LABELS, 10, seed=1), ClassBalancedSampler(LABELS, 10, seed=1)
    first, second = list(a), list(a)  # two plain epochs
    assert first != second
    assert list(b) == first and list(b) == second
    b.set_epoch(0)
    assert list(b) == first
    assert list(ClassBalancedSampler(LABELS, 10, seed=2)) != first
    np.testing.assert_array_equal(a.indices(7), b.indices(7))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="per_class must be a positive"):
        ClassBalancedSampler(LABELS, 0)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        ClassBalancedSampler(np.zeros((2, 2)), 3)
    assert len(ClassBalancedSampler(torch.tensor([3, 3, 5]), 2)) == 4


class _Indices(Dataset):
    def __len__(self):
        return len(LABELS)

    def __getitem__(self, i):
        return i


def test_persistent_workers_see_a_new_draw_every_epoch():
    sampler = ClassBalancedSampler(LABELS, 5, seed=0)
    loader = DataLoader(_Indices(), batch_size=5, sampler=sampler, num_workers=1, persistent_workers=True)
    epochs = [torch.cat(list(loader)).tolist() for _ in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]
    assert epochs == [sampler.indices(e).tolist() for e in range(3)]
