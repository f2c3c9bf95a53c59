import pytest

from bayes_fer.data import load_dataset
from tests.bayes_fer.data.layouts import make_class_folders, read_labels

FER2013 = {"train": {"angry": 2, "happy": 1, "neutral": 1}, "test": {"sad": 1, "surprise": 1, "fear": 1}}


def test_fer2013_folders_map_to_the_fer2013_code_order(tmp_path):
    root = make_class_folders(tmp_path, FER2013)
    train = load_dataset("fer2013", root, "train")
    assert train.class_names == ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
    assert train.labels.tolist() == [0, 0, 3, 6]
    assert read_labels(load_dataset("fer2013", root, "test")) == ["fear", "sadness", "surprise"]
    with pytest.raises(FileNotFoundError, match=r"(?s)valid does not exist.*\(accepted names for the 'valid' folder"):
        load_dataset("fer2013", root, "valid")


def test_numeric_fer2013_folders_are_codes(tmp_path):
    root = make_class_folders(tmp_path, {"train": {"0": 1, "3": 1, "6": 1}})
    assert read_labels(load_dataset("fer2013", root, "train")) == ["anger", "happiness", "neutral"]


def test_generic_folders_share_one_class_order_across_splits(tmp_path):
    root = make_class_folders(tmp_path, {"train": {"joy": 2, "calm": 1, "grumpy": 1}, "val": {"joy": 1}})
    mapping = {"joy": "happiness", "grumpy": "anger"}
    train = load_dataset("folder", root, "train", class_map=mapping)
    valid = load_dataset("folder", root, "valid", class_map=mapping)
    assert train.class_names == valid.class_names == ("neutral", "happiness", "anger")
    assert read_labels(train) == ["neutral", "anger", "happiness", "happiness"]
    assert valid.labels.tolist() == [1]


def test_generic_folders_with_an_explicit_order_and_skips(tmp_path):
    root = make_class_folders(tmp_path, {"train": {"joy": 1, "misc": 2, "sad": 1}})
    ds = load_dataset("folder", root, "train", class_map={"joy": "happiness", "misc": None},
                      classes=("sadness", "happiness"))
    assert ds.class_names == ("sadness", "happiness") and ds.labels.tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"cannot tell which class the folder\(s\) \['misc'\]"):
        load_dataset("folder", root, "train", class_map={"joy": "happiness"})
    with pytest.raises(ValueError, match="label space .* lacks"):
        load_dataset("folder", root, "train", class_map={"joy": "happiness", "misc": None}, classes=("sadness",))


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "train" / "happy").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no images were found"):
        load_dataset("folder", tmp_path, "train")
    with pytest.raises(FileNotFoundError, match=r"(?s)folder: .*absent does not exist.*<root>/train/<class>"):
        load_dataset("folder", tmp_path / "absent", "train")


def test_size_draws_a_seeded_nested_subset(tmp_path):
    root = make_class_folders(tmp_path, {"train": {"happy": 10, "sad": 10}})
    full = load_dataset("folder", root, "train")
    small = load_dataset("folder", root, "train", size=5, seed=3)
    larger = load_dataset("folder", root, "train", size=8, seed=3)
    assert len(small) == 5 and set(small.paths) <= set(larger.paths) <= set(full.paths)
    assert small.paths == load_dataset("folder", root, "train", size=5, seed=3).paths
    assert small.paths != load_dataset("folder", root, "train", size=5, seed=4).paths
