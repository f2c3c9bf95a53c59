import numpy as np
import pytest

from bayes_fer.data import LabelError, load_dataset
from tests.bayes_fer.data.layouts import make_class_folders, make_rafdb, read_labels

ENTRIES = [
    ("train_00001.jpg", 1), ("train_00002.jpg", 4), ("train_00003.jpg", 7), ("test_0001.jpg", 5), ("test_0002.jpg", 6)
]


def test_official_layout_maps_codes_through_the_label_file_order(tmp_path):
    root = make_rafdb(tmp_path, ENTRIES)
    train = load_dataset("rafdb", root, "train")
    test = load_dataset("rafdb", root, "test")
    assert (len(train), len(test)) == (3, 2)
    assert read_labels(train) == ["surprise", "happiness", "neutral"]
    assert read_labels(test) == ["sadness", "anger"]
    assert train.labels.dtype == np.int64 and train.labels.tolist() == [0, 3, 6]
    assert train.paths[1].endswith("Image/aligned/train_00002_aligned.jpg")
    item = train[1]
    assert item["image"].shape == (3, 112, 112) and int(item["label"]) == 3 and item["index"] == 1


def test_original_images(tmp_path):
    root = make_rafdb(tmp_path, ENTRIES, original=True)
    ds = load_dataset("rafdb", root, "test", images="original")
    assert ds.paths[0].endswith("Image/original/test_0001.jpg")
    assert ds.load_image(0).size == (40, 30)


def test_label_outside_the_table_names_file_and_line(tmp_path):
    root = make_rafdb(tmp_path, ENTRIES)
    label_file = root / "EmoLabel" / "list_patition_label.txt"
    label_file.write_text("train_00001.jpg 1\ntrain_00002.jpg 8\n")
    with pytest.raises(LabelError, match=r"list_patition_label.txt, line 2: label 8 of train_00002.jpg is outside"):
        load_dataset("rafdb", root, "train")
    label_file.write_text("train_00001.jpg happy\n")
    with pytest.raises(LabelError, match=r"line 1: expected '<image name> <code 1-7>'"):
        load_dataset("rafdb", root, "train")
    label_file.write_text("val_00001.jpg 3\n")
    with pytest.raises(LabelError, match=r"line 1: .*must start with 'train_' or 'test_'"):
        load_dataset("rafdb", root, "train")


def test_missing_pieces_name_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)rafdb: .*nowhere does not exist.*EmoLabel/list_patition_label.txt"):
        load_dataset("rafdb", tmp_path / "nowhere", "train")
    (tmp_path / "Image").mkdir()
    with pytest.raises(FileNotFoundError, match=r"list_patition_label.txt does not exist"):
        load_dataset("rafdb", tmp_path, "train")


def test_rafdb_has_no_validation_split(tmp_path):
    root = make_rafdb(tmp_path, ENTRIES)
    with pytest.raises(ValueError, match="rafdb offers the splits \\['train', 'test'\\]"):
        load_dataset("rafdb", root, "valid")


def test_poster_pp_class_folders(tmp_path):
    # POSTER++ layout: train/ and valid/ (RAF-DB's test set), folders named by label code.
    root = make_class_folders(tmp_path, {"train": {"1": 2, "4": 1, "7": 3}, "valid": {"2": 1, "6": 2}})
    train = load_dataset("rafdb", root, "train")
    test = load_dataset("rafdb", root, "test")
    assert read_labels(train) == ["surprise"] * 2 + ["happiness"] + ["neutral"] * 3
    assert read_labels(test) == ["fear", "anger", "anger"]
    named = make_class_folders(tmp_path / "named", {"train": {"happy": 1, "Surprise": 1}, "test": {"sad": 1}})
    assert read_labels(load_dataset("rafdb", named, "train")) == ["surprise", "happiness"]  # folder order
    assert read_labels(load_dataset("rafdb", named, "test")) == ["sadness"]
