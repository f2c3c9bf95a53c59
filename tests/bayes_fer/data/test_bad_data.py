import warnings

import pytest
import torch
from torch.utils.data import DataLoader

from bayes_fer.data import load_dataset
from tests.bayes_fer.data.layouts import make_class_folders, make_rafdb, write_corrupt


def _broken_rafdb(tmp_path):
    entries = [(f"train_{i:05d}.jpg", 1 + i % 7) for i in range(6)]
    root = make_rafdb(tmp_path, entries)
    write_corrupt(root / "Image" / "aligned" / "train_00001_aligned.jpg")
    png = root / "Image" / "aligned" / "train_00003_aligned.jpg"
    png.write_bytes(png.read_bytes()[:40])  # truncated
    (root / "Image" / "aligned" / "train_00004_aligned.jpg").unlink()  # listed but missing
    return root


def test_unreadable_images_are_replaced_by_the_next_readable_one(tmp_path):
    ds = load_dataset("rafdb", _broken_rafdb(tmp_path), "train")
    with pytest.warns(RuntimeWarning, match=r"skipping unreadable image .*train_00001_aligned.jpg"):
        item = ds[1]
    assert item["index"] == 2 and int(item["label"]) == ds.labels[2]
    with pytest.warns(RuntimeWarning) as record:
        assert ds[3]["index"] == 5  # 3 truncated, 4 missing
    assert any("train_00003" in str(w.message) for w in record) and any("train_00004" in str(w.message) for w in record)
    summary = ds.skipped
    assert summary.count == 3 and summary.total == 6
    assert [p.rsplit("/", 1)[-1] for p in summary.files] == [
        "train_00001_aligned.jpg", "train_00003_aligned.jpg", "train_00004_aligned.jpg"
    ]
    assert str(summary).startswith("3 of 6 images skipped as unreadable")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a file already known to be bad is skipped silently
        assert ds[1]["index"] == 2


def test_a_full_epoch_with_workers_never_crashes_and_is_counted(tmp_path):
    ds = load_dataset("rafdb", _broken_rafdb(tmp_path), "train")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = DataLoader(ds, batch_size=2, num_workers=2)
        batches = list(loader)
    assert sum(len(b["label"]) for b in batches) == 6
    assert ds.skipped.count == 3  # recorded by the worker processes, read in the main one


def test_every_image_unreadable_is_an_error_not_a_hang(tmp_path):
    root = make_class_folders(tmp_path, {"train": {"happy": 2}})
    for path in (root / "train" / "happy").iterdir():
        write_corrupt(path)
    ds = load_dataset("folder", root, "train")
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match="consecutive samples .* are unreadable; 2 of 2"):
        ds[0]


def test_index_out_of_range(tmp_path):
    ds = load_dataset("folder", make_class_folders(tmp_path, {"train": {"happy": 2}}), "train")
    assert ds[-1]["index"] == 1
    with pytest.raises(IndexError):
        ds[2]
