import pytest
import torch

from bayes_fer.data import DATASETS, LABEL_SPACES, list_datasets, load_dataset
from tests.bayes_fer.data.layouts import make_class_folders


def test_all_names_are_registered():
    assert list_datasets() == ["synthetic", "rafdb", "affectnet7", "affectnet8", "ferplus", "fer2013", "folder"]
    for name, spec in DATASETS.items():
        assert spec.label_space is None or spec.label_space in LABEL_SPACES, name


def test_unknown_name_lists_the_names():
    with pytest.raises(ValueError, match="unknown dataset 'raf-db'; available datasets: synthetic, rafdb, affectnet7"):
        load_dataset("raf-db", "/data")


@pytest.mark.parametrize("name", ["rafdb", "affectnet7", "affectnet8", "ferplus", "fer2013", "folder"])
def test_missing_root_names_the_expected_layout(name, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"(?s){name}: .*does not exist. Expected this layout"):
        load_dataset(name, tmp_path / "absent", "train")
    with pytest.raises(FileNotFoundError, match="pass root="):
        load_dataset(name, None, "train")


def test_label_mode_and_split_are_checked(tmp_path):
    with pytest.raises(ValueError, match="label_mode='probability' needs annotator votes, which rafdb lacks"):
        load_dataset("rafdb", tmp_path, "train", label_mode="probability")
    with pytest.raises(ValueError, match="label_mode must be one of"):
        load_dataset("synthetic", label_mode="soft")
    with pytest.raises(ValueError, match=r"ferplus offers the splits \['train', 'valid', 'test'\]; got 'val'"):
        load_dataset("ferplus", tmp_path, "val")


def test_unknown_options_are_named(tmp_path):
    expected = r"unknown option\(s\) \['crop'\] for rafdb; valid options: class_map, images, layout"
    with pytest.raises(TypeError, match=expected):
        load_dataset("rafdb", tmp_path, "train", crop=True)


def test_default_transforms_follow_the_split(tmp_path):
    root = make_class_folders(tmp_path, {"train": {"happy": 1}, "test": {"happy": 1}})
    train = load_dataset("folder", root, "train", image_size=224)
    test = load_dataset("folder", root, "test")
    torch.manual_seed(0)
    draws = [train[0]["image"] for _ in range(3)]
    assert draws[0].shape == (3, 224, 224) and not torch.equal(draws[0], draws[1])  # augmented
    assert torch.equal(test[0]["image"], test[0]["image"]) and test[0]["image"].shape == (3, 112, 112)
    raw = load_dataset("folder", root, "test", transform=lambda img: img.size)
    assert raw[0]["image"] == (20, 16)
