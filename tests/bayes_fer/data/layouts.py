"""Tiny on-disk fixtures in each dataset's official layout."""
from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

FERPLUS_FOLDERS = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}
AFFECTNET_HEADER = [
    "subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
    "facial_landmarks", "expression", "valence", "arousal",
]


def write_image(path: Path, size: tuple[int, int] = (20, 16), color=(120, 60, 30), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode == "RGB" else color[0]).save(path)
    return path


def write_corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not an image" * 10)
    return path


def make_rafdb(root: Path, entries: Sequence[tuple[str, int]], *, original: bool = False) -> Path:
    """``entries``: (file name like train_00001.jpg, code 1-7); image colour encodes the code."""
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    lines = [f"{name} {code}" for name, code in entries]
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    for name, code in entries:
        stem = name.rsplit(".", 1)[0]
        write_image(root / "Image" / "aligned" / f"{stem}_aligned.jpg", color=(code * 30, 0, 0))
        if original:
            write_image(root / "Image" / "original" / name, size=(40, 30), color=(code * 30, 0, 0))
    return root


def make_affectnet(root: Path, rows: Mapping[str, Sequence[tuple[str, tuple[int, int, int, int], int]]]) -> Path:
    """``rows[split_file]``: (relative path, face box x, y, w, h, expression code)."""
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True, exist_ok=True)
    for csv_name, entries in rows.items():
        with open(lists / csv_name, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(AFFECTNET_HEADER)
            for rel, (x, y, bw, bh), code in entries:
                w.writerow([rel, x, y, bw, bh, "1.0;2.0;3.0;4.0", code, 0.1, -0.2])
                img = Image.new("RGB", (60, 50), (0, 0, 255))
                img.paste((255, 0, 0), (x, y, x + bw, y + bh))  # the face box in red
                (root / "Manually_Annotated_Images" / rel).parent.mkdir(parents=True, exist_ok=True)
                img.save(root / "Manually_Annotated_Images" / rel)
    return root


def make_ferplus(
    root: Path, votes: Mapping[str, Sequence[Sequence[int]]], *, boxes: bool = True, label_csv: bool = True
) -> Path:
    """One 48x48 greyscale PNG per vote row, per split; fer2013new.csv always written too."""
    rows_new = []
    k = 0
    for split, rows in votes.items():
        folder = root / FERPLUS_FOLDERS[split]
        folder.mkdir(parents=True, exist_ok=True)
        label_rows = []
        for v in rows:
            name = f"fer{k:07d}.png"
            k += 1
            Image.fromarray(np.full((48, 48), 10 * (k % 20), np.uint8), "L").save(folder / name)
            label_rows.append([name, "(0, 0, 48, 48)", *v] if boxes else [name, *v])
            rows_new.append([{"train": "Training", "valid": "PublicTest", "test": "PrivateTest"}[split], name, *v])
        if label_csv:
            with open(folder / "label.csv", "w", newline="") as f:
                csv.writer(f).writerows(label_rows)
    with open(root / "fer2013new.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger", "disgust",
                    "fear", "contempt", "unknown", "NF"])
        w.writerows(rows_new)
    return root


def make_class_folders(root: Path, counts: Mapping[str, Mapping[str, int]], ext: str = ".png") -> Path:
    """``counts[split_dir][class_dir]`` images, each coloured by its class folder."""
    for split_dir, classes in counts.items():
        for j, (cls, n) in enumerate(sorted(classes.items())):
            for i in range(n):
                write_image(root / split_dir / cls / f"img{i:03d}{ext}", color=(10 * j, 100, 100))
    return root


def read_labels(ds) -> list[str]:
    return [ds.class_names[int(k)] for k in ds.labels]


def all_samples(ds) -> Iterable[dict]:
    return (ds[i] for i in range(len(ds)))
