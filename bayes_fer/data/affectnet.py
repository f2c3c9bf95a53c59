"""AffectNet (manually annotated part), 7 or 8 classes, from its official CSVs or class folders.

``expression`` codes: 0 neutral, 1 happy, 2 sad, 3 surprise, 4 fear, 5 disgust, 6 anger,
7 contempt, 8 none, 9 uncertain, 10 no-face. ``affectnet8`` keeps codes 0-7 and
``affectnet7`` codes 0-6; the label index is the code. The official validation set serves
as the test split, as in the paper; AffectNet has no separate validation split.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from bayes_fer.data.base import FileImageDataset, subset_indices
from bayes_fer.data.errors import LabelError, LayoutError
from bayes_fer.data.files import read_text, safe_relative
from bayes_fer.data.folders import SPLIT_DIRS, load_class_folders
from bayes_fer.data.labels import AFFECTNET_CODES, LABEL_SPACES

CSV_FILES = {"train": "training.csv", "test": "validation.csv"}
REQUIRED_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "expression")

LAYOUT = """\
    <root>/Manually_Annotated_file_lists/training.csv     (split="train")
    <root>/Manually_Annotated_file_lists/validation.csv   (split="test": the validation set serves as test)
        columns subDirectory_filePath, face_x, face_y, face_width, face_height,
                facial_landmarks, expression, valence, arousal
    <root>/Manually_Annotated_Images/<subDirectory_filePath>
  or class folders:
    <root>/train/<class>/...   <root>/val/<class>/... (or valid/, validation/, test/)
  <class> is an expression code 0-10 or a name (neutral, happy, sad, ...)."""

_FOLDER_SPLITS = {"train": SPLIT_DIRS["train"], "test": SPLIT_DIRS["test"] + SPLIT_DIRS["valid"]}


def read_affectnet_csv(path: Path, keep: int) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """``(relative paths, codes, face boxes, rows dropped)`` of rows with codes below ``keep``."""
    rel, codes, boxes, dropped = [], [], [], 0
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    header = next(reader, None)
    missing = [c for c in REQUIRED_COLUMNS if header is None or c not in header]
    if missing:
        raise LabelError(path, 1, f"header lacks column(s) {missing}; expected {', '.join(REQUIRED_COLUMNS)}")
    col = [header.index(c) for c in REQUIRED_COLUMNS]
    for line_no, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            file_path, x, y, w, h, expr = (row[i] for i in col)
            code = int(expr)
            box = (float(x), float(y), float(w), float(h))
        except (IndexError, ValueError):
            raise LabelError(path, line_no, f"malformed row {row[:7]!r}") from None
        if code not in AFFECTNET_CODES:
            raise LabelError(path, line_no, f"expression {code} of {file_path} is outside AffectNet's table 0-10")
        if code >= keep:
            dropped += 1
            continue
        rel.append(safe_relative(file_path, path, line_no))
        codes.append(code)
        boxes.append(box)
    return rel, np.asarray(codes, dtype=np.int64), np.asarray(boxes, dtype=np.float64).reshape(-1, 4), dropped


def load_affectnet(
    root, split: str, *, num_classes: int, transform=None, size=None, seed=0, crop: bool = True,
    layout: str = "auto", class_map=None,
) -> FileImageDataset:
    """AffectNet with ``num_classes`` 7 or 8.

    Args:
        crop: crop each image to its CSV face box (official layout).
        layout: ``"official"``, ``"folders"`` or ``"auto"`` (official when the CSVs exist).
        class_map: folder name to canonical class, for class folders named otherwise.
    """
    name = f"affectnet{num_classes}"
    root = Path(root) if root is not None else None
    if root is None or not root.is_dir():
        hint = "pass root= the folder holding the AffectNet files"
        raise LayoutError(name, root if root is not None else "<root>", LAYOUT, hint)
    if split == "valid":
        raise ValueError("AffectNet has train and validation sets only, and the validation set serves as split='test'")
    if split not in CSV_FILES:
        raise ValueError(f"AffectNet splits are 'train' and 'test'; got {split!r}")
    if layout not in ("auto", "official", "folders"):
        raise ValueError(f"layout must be 'auto', 'official' or 'folders', got {layout!r}")
    lists = root / "Manually_Annotated_file_lists"
    if layout == "folders" or (layout == "auto" and not lists.is_dir() and (root / "train").is_dir()):
        return load_class_folders(
            name, root, split, split_dirs=_FOLDER_SPLITS, class_names=LABEL_SPACES[name], codes=AFFECTNET_CODES,
            class_map=class_map, transform=transform, size=size, seed=seed,
            drop=() if num_classes == 8 else ("contempt",), layout=LAYOUT,
        )
    csv_path = lists / CSV_FILES[split]
    if not csv_path.exists():
        raise LayoutError(name, csv_path, LAYOUT)
    image_dir = root / "Manually_Annotated_Images"
    if not image_dir.is_dir():
        raise LayoutError(name, image_dir, LAYOUT)
    rel, codes, boxes, dropped = read_affectnet_csv(csv_path, keep=num_classes)
    take = subset_indices(len(rel), size, seed)
    ds = FileImageDataset(
        name, split, LABEL_SPACES[name], [str(image_dir / rel[i]) for i in take], codes[take], transform,
        boxes=boxes[take] if crop else None, root=root,
    )
    ds.dropped = {"expression codes outside the label space": dropped}
    return ds
