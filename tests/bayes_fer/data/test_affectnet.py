import numpy as np
import pytest

from bayes_fer.data import LabelError, load_dataset
from tests.bayes_fer.data.layouts import make_affectnet, make_class_folders, read_labels

BOX = (10, 5, 30, 20)
ROWS = {
    "training.csv": [(f"1/{code:02d}.jpg", BOX, code) for code in range(11)],
    "validation.csv": [("2/a.png", (0, 0, 60, 50), 1), ("2/b.png", BOX, 7), ("2/c.png", BOX, 9)],
}


def test_codes_map_and_unusable_codes_are_dropped(tmp_path):
    root = make_affectnet(tmp_path, ROWS)
    eight = load_dataset("affectnet8", root, "train")
    seven = load_dataset("affectnet7", root, "train")
    assert eight.labels.tolist() == list(range(8)) and len(seven) == 7
    assert read_labels(eight)[:3] == ["neutral", "happiness", "sadness"] and read_labels(eight)[7] == "contempt"
    assert eight.dropped == {"expression codes outside the label space": 3}
    assert seven.dropped == {"expression codes outside the label space": 4}
    assert eight.class_names[-1] == "contempt" and "contempt" not in seven.class_names


def test_validation_set_serves_as_test(tmp_path):
    root = make_affectnet(tmp_path, ROWS)
    test8 = load_dataset("affectnet8", root, "test")
    assert read_labels(test8) == ["happiness", "contempt"]
    assert read_labels(load_dataset("affectnet7", root, "test")) == ["happiness"]
    with pytest.raises(ValueError, match="validation set serves as 'test'"):
        load_dataset("affectnet7", root, "valid")


def test_images_are_cropped_to_the_face_box(tmp_path):
    root = make_affectnet(tmp_path, ROWS)
    ds = load_dataset("affectnet8", root, "train")
    img = ds.load_image(2)
    assert img.size == (30, 20)
    arr = np.asarray(img).astype(int)  # the box is red on a blue picture
    assert arr[10, 15, 0] > 200 and arr[10, 15, 2] < 60 and arr[..., 2].mean() < 60
    uncropped = load_dataset("affectnet8", root, "train", crop=False)
    assert uncropped.load_image(2).size == (60, 50)


def test_bad_csv_rows_name_the_line(tmp_path):
    root = make_affectnet(tmp_path, ROWS)
    path = root / "Manually_Annotated_file_lists" / "training.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(",2,0.1,", ",12,0.1,")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabelError, match=r"training.csv, line 4: expression 12 of 1/02.jpg is outside"):
        load_dataset("affectnet7", root, "train")
    path.write_text("subDirectory_filePath,face_x\n1/a.jpg,3\n")
    with pytest.raises(LabelError, match=r"line 1: header lacks column\(s\) \['face_y'"):
        load_dataset("affectnet7", root, "train")


def test_missing_files_name_the_layout(tmp_path):
    (tmp_path / "Manually_Annotated_file_lists").mkdir()
    with pytest.raises(FileNotFoundError, match=r"(?s)training.csv does not exist.*Manually_Annotated_Images"):
        load_dataset("affectnet8", tmp_path, "train")


def test_class_folder_variant(tmp_path):
    root = make_class_folders(
        tmp_path, {"train": {"0": 1, "1": 2, "7": 1, "8": 1, "10": 1}, "val": {"happy": 1, "contempt": 1}}
    )
    eight = load_dataset("affectnet8", root, "train")
    assert read_labels(eight) == ["neutral", "happiness", "happiness", "contempt"]  # 8 and 10 skipped
    assert read_labels(load_dataset("affectnet7", root, "train")) == ["neutral", "happiness", "happiness"]
    assert read_labels(load_dataset("affectnet7", root, "test")) == ["happiness"]
