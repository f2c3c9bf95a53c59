"""RAF-DB (basic emotions), read from its official layout or POSTER++'s class folders.

Official layout: ``EmoLabel/list_patition_label.txt`` holds ``<name> <code>`` lines with
codes 1-7 = surprise, fear, disgust, happiness, sadness, anger, neutral; the split is the
file-name prefix (``train_``/``test_``). Label index = code - 1, so the class order is the
label file's (``LABEL_SPACES["rafdb"]``). RAF-DB has no validation split.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bayes_fer.data.base import FileImageDataset, subset_indices
from bayes_fer.data.errors import LabelError, LayoutError
from bayes_fer.data.files import read_text, safe_relative
from bayes_fer.data.folders import SPLIT_DIRS, load_class_folders
from bayes_fer.data.labels import LABEL_SPACES, RAFDB_CODES

LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"  # sic: the dataset's own spelling

LAYOUT = """\
    <root>/EmoLabel/list_patition_label.txt     lines "train_00001.jpg 5" (codes 1-7)
    <root>/Image/aligned/train_00001_aligned.jpg ...   (images="aligned", the default)
    <root>/Image/original/train_00001.jpg ...          (images="original")
  or the class folders POSTER++ asks for:
    <root>/train/<class>/...   <root>/valid/<class>/...   (valid/ is RAF-DB's test set)
  <class> is a code 1-7 of the label file or a name (surprise, fear, disgust, happy, ...)."""

#: POSTER++'s ``valid/`` folder holds RAF-DB's test set.
_FOLDER_SPLITS = {"train": SPLIT_DIRS["train"], "test": SPLIT_DIRS["test"] + SPLIT_DIRS["valid"]}


def parse_label_file(path: str | os.PathLike) -> list[tuple[str, int, int]]:
    """``(file name, code, line number)`` for every label line; raises :class:`LabelError` on bad lines."""
    rows = []
    for line_no, line in enumerate(read_text(path).split("\n"), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise LabelError(path, line_no, f"expected '<image name> <code 1-7>', found {line.strip()!r}")
        code = int(parts[1])
        if code not in RAFDB_CODES:
            raise LabelError(
                path, line_no, f"label {code} of {parts[0]} is outside RAF-DB's table 1-7 "
                f"({', '.join(f'{k} {v}' for k, v in RAFDB_CODES.items())})"
            )
        rows.append((safe_relative(parts[0], path, line_no), code, line_no))
    return rows


def load_rafdb(
    root, split: str, *, transform=None, size=None, seed=0, images: str = "aligned", layout: str = "auto", class_map=None
) -> FileImageDataset:
    """RAF-DB basic emotions.

    Args:
        images: ``"aligned"`` (100x100 aligned faces, as published results use) or
            ``"original"`` (full images) for the official layout.
        layout: ``"official"``, ``"folders"`` or ``"auto"`` (official when the label file exists).
        class_map: folder name to canonical class, for class folders named otherwise.
    """
    root = Path(root) if root is not None else None
    if root is None or not root.is_dir():
        hint = "pass root= the folder holding EmoLabel/ and Image/"
        raise LayoutError("rafdb", root if root is not None else "<root>", LAYOUT, hint)
    if split == "valid":
        raise ValueError(
            "RAF-DB ships train and test splits only (POSTER++'s valid/ folder is its test set); use split='test'"
        )
    if split not in ("train", "test"):
        raise ValueError(f"RAF-DB splits are 'train' and 'test'; got {split!r}")
    if layout not in ("auto", "official", "folders"):
        raise ValueError(f"layout must be 'auto', 'official' or 'folders', got {layout!r}")
    if layout == "folders" or (layout == "auto" and not (root / LABEL_FILE).exists() and (root / "train").is_dir()):
        return load_class_folders(
            "rafdb", root, split, split_dirs=_FOLDER_SPLITS, class_names=LABEL_SPACES["rafdb"], codes=RAFDB_CODES,
            class_map=class_map, transform=transform, size=size, seed=seed, layout=LAYOUT,
        )
    label_file = root / LABEL_FILE
    if not label_file.exists():
        raise LayoutError("rafdb", label_file, LAYOUT)
    if images not in ("aligned", "original"):
        raise ValueError(f"images must be 'aligned' or 'original', got {images!r}")
    image_dir = root / "Image" / images
    if not image_dir.is_dir():
        raise LayoutError("rafdb", image_dir, LAYOUT)
    paths, labels = [], []
    for name, code, line_no in parse_label_file(label_file):
        prefix = name.split("_", 1)[0]
        if prefix not in ("train", "test"):
            raise LabelError(label_file, line_no, f"image name {name!r} must start with 'train_' or 'test_' (the split)")
        if prefix != split:
            continue
        stem, ext = os.path.splitext(name)
        paths.append(str(image_dir / (f"{stem}_aligned{ext}" if images == "aligned" else name)))
        labels.append(code - 1)
    if not paths:
        raise LabelError(label_file, 0, f"no '{split}_' lines: the file lists no {split} images")
    take = subset_indices(len(paths), size, seed)
    return FileImageDataset(
        "rafdb", split, LABEL_SPACES["rafdb"], [paths[i] for i in take], np.asarray(labels)[take], transform, root=root
    )
