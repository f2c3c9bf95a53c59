import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from bayes_fer.data import LabelError, load_dataset
from bayes_fer.data.ferplus import majority_label, probability_target, remove_outliers
from tests.bayes_fer.data.layouts import make_ferplus
from tests.conftest import require_shared

N, H, S, SAD, ANG, DIS, FEA, CON = range(8)

# (10 votes: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF),
# majority label or None, probability target as {class: share} or None; worked out by hand.
CASES = [
    # single votes removed: 4 0 0 0 3 2 -> total 9; 4 is no majority; walk takes 4, then 3 (7 >= 6.75)
    ([4, 0, 0, 1, 3, 2, 0, 0, 0, 0], None, {N: 4 / 7, ANG: 3 / 7}),
    # 6 of 8 left after removal; the walk stops at 6 >= 0.75 * 8
    ([6, 0, 1, 1, 0, 0, 0, 0, 2, 0], N, {N: 1.0}),
    ([0, 10, 0, 0, 0, 0, 0, 0, 0, 0], H, {H: 1.0}),
    ([0, 0, 0, 0, 0, 0, 0, 0, 0, 10], None, None),  # not a face
    ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], None, None),  # only single votes: nothing left
    ([3, 3, 3, 0, 0, 0, 0, 0, 1, 0], None, {N: 1 / 3, H: 1 / 3, S: 1 / 3}),  # a three-way tie is kept
    ([2, 2, 2, 2, 2, 0, 0, 0, 0, 0], None, None),  # a five-way tie takes > 3 classes
    ([0, 0, 0, 0, 0, 0, 0, 0, 5, 5], None, None),  # unknown first: taken alone, only half the votes
    ([4, 0, 0, 0, 0, 0, 0, 0, 4, 2], None, None),  # unknown tied with neutral is put back: 4 <= 5
    ([6, 0, 0, 0, 0, 0, 0, 0, 3, 0], N, {N: 1.0}),  # unknown second: put back, 6 > 4.5 kept
    ([0, 4, 0, 0, 0, 0, 0, 3, 2, 0], None, {H: 4 / 7, CON: 3 / 7}),
    ([0, 0, 0, 2, 0, 0, 6, 0, 0, 0], FEA, {FEA: 1.0}),  # 6 covers 0.75 of 8
    ([0, 0, 0, 0, 0, 0, 0, 0, 7, 3], None, None),  # unknown majority
]


@pytest.mark.parametrize("votes, majority, target", CASES)
def test_vote_rules_by_hand(votes, majority, target):
    assert majority_label(votes) == majority
    got = probability_target(votes)
    if target is None:
        assert got is None
    else:
        want = np.zeros(8)
        for k, share in target.items():
            want[k] = share
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_outlier_removal_drops_zero_and_one_votes_only():
    assert remove_outliers([0, 1, 2, 3, 1, 0, 0, 0, 0, 9]).tolist() == [0, 0, 2, 3, 0, 0, 0, 0, 0, 9]


def _fixture(tmp_path, **kwargs):
    votes = [c[0] for c in CASES]
    return make_ferplus(tmp_path, {"train": votes, "valid": votes[:4], "test": votes[4:]}, **kwargs)


def test_majority_dataset(tmp_path):
    root = _fixture(tmp_path)
    ds = load_dataset("ferplus", root, "train", label_mode="majority")
    kept = [i for i, c in enumerate(CASES) if c[1] is not None]
    assert len(ds) == len(kept) and ds.labels.tolist() == [CASES[i][1] for i in kept]
    assert ds.dropped == {"left out by the majority rule": len(CASES) - len(kept)}
    item = ds[0]
    assert set(item) == {"image", "label", "index", "votes"}
    assert item["image"].shape == (3, 112, 112)
    assert item["votes"].tolist() == CASES[kept[0]][0][:8]  # raw counts, single votes included
    assert ds.raw_votes.shape == (len(kept), 10)
    assert ds.class_names[ds.labels[0]] == "neutral"


def test_probability_dataset(tmp_path):
    root = _fixture(tmp_path)
    ds = load_dataset("ferplus", root, "train", label_mode="probability")
    kept = [c for c in CASES if c[2] is not None]
    assert len(ds) == len(kept)
    batch = default_collate([ds[i] for i in range(len(ds))])
    assert batch["target"].shape == (len(kept), 8) and batch["votes"].shape == (len(kept), 8)
    torch.testing.assert_close(batch["target"].sum(1), torch.ones(len(kept)))
    assert torch.equal(batch["label"], batch["target"].argmax(1))
    np.testing.assert_allclose(batch["target"][0].numpy()[[N, ANG]], [4 / 7, 3 / 7], rtol=1e-6)


def test_label_csv_without_boxes_and_fer2013new_fallback(tmp_path):
    a = load_dataset("ferplus", _fixture(tmp_path / "a", boxes=False), "valid")
    b = load_dataset("ferplus", _fixture(tmp_path / "b", label_csv=False), "valid")
    c = load_dataset("ferplus", _fixture(tmp_path / "c"), "valid")
    assert a.labels.tolist() == b.labels.tolist() == c.labels.tolist() == [None or 0, 1][: len(a)]
    assert b.boxes is None and c.boxes is not None


def test_fer2013new_duplicates_keep_the_last_row(tmp_path):
    root = make_ferplus(tmp_path, {"train": [[0, 10, 0, 0, 0, 0, 0, 0, 0, 0]]}, label_csv=False)
    with open(root / "fer2013new.csv", "a") as f:
        f.write("Training,fer0000000.png,0,0,0,0,0,0,0,0,0,10\nTraining,,9,0,0,0,0,0,0,0,1,0\n")
    ds = load_dataset("ferplus", root, "train", label_mode="probability")
    assert len(ds) == 0 or ds.raw_votes[0][-1] == 10
    assert ds.dropped["earlier rows of duplicated image names"] == 1


def test_bad_ferplus_label_files(tmp_path):
    root = _fixture(tmp_path)
    label = root / "FER2013Valid" / "label.csv"
    lines = label.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ",-3"
    label.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabelError, match=r"FER2013Valid/label.csv, line 3: expected 10 non-negative"):
        load_dataset("ferplus", root, "valid")
    lines[2] = "fer.png,(0, 0, 48, 48),1,2"
    label.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabelError, match=r"line 3: expected 12 fields"):
        load_dataset("ferplus", root, "valid")
    (root / "FER2013Test" / "label.csv").unlink()
    (root / "fer2013new.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"(?s)FER2013Test/label.csv does not exist.*FER2013Train/fer0000000.png"):
        load_dataset("ferplus", root, "test")


@pytest.fixture(scope="module")
def ferplus_root():
    return require_shared("data", "ferplus")


@pytest.mark.parametrize(
    "split, majority, probability",
    # The counts the FERPlus reference reader keeps from the label.csv files.
    [("train", 25045, 27947), ("valid", 3191, 3508), ("test", 3137, 3507)],
)
def test_real_ferplus_sizes(ferplus_root, split, majority, probability):
    m = load_dataset("ferplus", ferplus_root, split, label_mode="majority")
    p = load_dataset("ferplus", ferplus_root, split, label_mode="probability")
    assert (len(m), len(p)) == (majority, probability)
    item = p[len(p) // 2]
    assert item["image"].shape == (3, 112, 112) and item["target"].shape == (8,)
    assert p.skipped.count == 0
