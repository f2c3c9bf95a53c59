"""Label lists name files inside the data set, in UTF-8 with or without a BOM; bad boxes are named as such."""
from __future__ import annotations

import pytest

from bayes_fer.data import BadBoxError, LabelError, load_dataset
from tests.bayes_fer.data.layouts import make_affectnet, make_ferplus, make_rafdb

VOTES = [[0, 10, 0, 0, 0, 0, 0, 0, 0, 0], [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]]


@pytest.mark.parametrize("name", ["/etc/passwd", "../../secret.png", "sub/../../x.png", "C:\\faces\\x.png"])
def test_absolute_or_climbing_names_in_ferplus_labels_are_refused(tmp_path, name):
    root = make_ferplus(tmp_path, {"train": VOTES})
    label = root / "FER2013Train" / "label.csv"
    lines = label.read_text().splitlines()
    lines[1] = f"\"{name}\"" + lines[1][lines[1].index(","):]
    label.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabelError, match=r"FER2013Train/label.csv, line 2: image name .*(absolute path|leads out)"):
        load_dataset("ferplus", root, "train")


def test_climbing_names_in_rafdb_and_affectnet_lists_are_refused(tmp_path):
    root = make_rafdb(tmp_path / "r", [("train_00001.jpg", 1)])
    (root / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 1\ntrain_../../../etc/x.jpg 2\n")
    with pytest.raises(LabelError, match=r"list_patition_label.txt, line 2: image name .* leads out"):
        load_dataset("rafdb", root, "train")
    root = make_affectnet(tmp_path / "a", {"training.csv": [("1/a.jpg", (0, 0, 10, 10), 1)]})
    csv_path = root / "Manually_Annotated_file_lists" / "training.csv"
    csv_path.write_text(csv_path.read_text() + "/abs/b.jpg,0,0,10,10,1;2,1,0.1,0.2\n")
    with pytest.raises(LabelError, match=r"training.csv, line 3: image name '/abs/b.jpg' is an absolute path"):
        load_dataset("affectnet7", root, "train")


def test_a_utf8_bom_does_not_corrupt_the_first_ferplus_name(tmp_path):
    root = make_ferplus(tmp_path, {"train": VOTES})
    label = root / "FER2013Train" / "label.csv"
    label.write_bytes(b"\xef\xbb\xbf" + label.read_bytes())
    ds = load_dataset("ferplus", root, "train")
    assert ds.paths[0].endswith("FER2013Train/fer0000000.png")
    assert ds[0]["index"] == 0 and ds.skipped.count == 0


def test_bad_affectnet_boxes_are_reported_as_bad_boxes_not_unreadable_images(tmp_path):
    root = make_affectnet(tmp_path, {"training.csv": [("1/a.jpg", (0, 0, 10, 10), 1), ("1/b.jpg", (5, 5, 10, 10), 2)]})
    csv_path = root / "Manually_Annotated_file_lists" / "training.csv"
    text = csv_path.read_text().replace("1/a.jpg,0,0,10,10", "1/a.jpg,500,500,10,10")
    csv_path.write_text(text)
    ds = load_dataset("affectnet7", root, "train")
    with pytest.warns(RuntimeWarning, match=r"skipping .*1/a.jpg: face box \(500.0, 500.0, 10.0, 10.0\) lies outside "
                                            r"the 60x50 image"):
        assert ds[0]["index"] == 1
    assert ds.skipped.bad_boxes == 1
    assert str(ds.skipped).startswith("1 of 2 images skipped (1 with a bad face box)")
    from bayes_fer.data.base import crop_box
    from PIL import Image

    with pytest.raises(BadBoxError, match="positive width and height"):
        crop_box(Image.new("RGB", (4, 4)), (0, 0, float("nan"), 2))
