"""Class-folder layouts (``<root>/<split>/<class>/<image>``): FER2013, the generic loader,
and the folder variants of RAF-DB and AffectNet.

Folder names reach class indices only through an explicit table: a user's ``class_map``,
the dataset's numeric codes, or :data:`bayes_fer.data.labels.FOLDER_SYNONYMS`. A folder
that none of them resolves is an error, never a guess.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from bayes_fer.data.base import FileImageDataset, subset_indices
from bayes_fer.data.errors import LayoutError
from bayes_fer.data.labels import CANONICAL_CLASSES, FER2013_CODES, LABEL_SPACES, check_class_names, resolve_folder_names

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".pgm", ".ppm"})

#: Folder names accepted for each split, in order of preference.
SPLIT_DIRS: dict[str, tuple[str, ...]] = {
    "train": ("train", "training", "Train", "Training"),
    "valid": ("valid", "val", "validation", "Valid", "Val", "Validation"),
    "test": ("test", "testing", "Test", "Testing"),
}

FOLDER_LAYOUT = """\
    <root>/train/<class>/*.jpg|png|...
    <root>/valid/<class>/...   (or val/, validation/; where the dataset has a validation split)
    <root>/test/<class>/...
  <class> is a class name (angry, happy, neutral, ...) or a numeric code of the dataset."""


def find_split_dir(root: Path, names: Sequence[str]) -> Path | None:
    """The first of ``root/<name>`` that is a directory."""
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def class_folders(split_dir: Path) -> list[str]:
    return sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))


def scan_images(folder: Path) -> list[str]:
    """Image files under ``folder`` (recursively), sorted for a stable sample order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        found += [os.path.join(dirpath, f) for f in filenames if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
    return sorted(found)


def load_class_folders(
    name: str,
    root: str | os.PathLike,
    split: str,
    *,
    split_dirs: Mapping[str, Sequence[str]],
    class_names: Sequence[str] | None,
    codes: Mapping[int, str | None] | None,
    class_map: Mapping[str, str | None] | None,
    transform: Callable | None,
    size: int | None,
    seed: int,
    drop: Sequence[str] = (),
    layout: str = FOLDER_LAYOUT,
) -> FileImageDataset:
    """Read ``root/<split dir>/<class folder>/`` images into a dataset.

    Args:
        split_dirs: accepted folder names per split; a split absent here is not offered.
        class_names: the label space; ``None`` derives it from the class folders of every
            split present (canonical order), so all splits share one class order.
        codes: the dataset's numeric label codes, for folders named by number.
        class_map: user overrides, folder name to canonical class (``None`` skips the folder).
        drop: canonical classes this label space leaves out (their folders are skipped).
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(name, root, layout)
    if split not in split_dirs:
        offered = [s for s in split_dirs]
        raise ValueError(f"{name} offers the splits {offered}; got {split!r}")
    split_dir = find_split_dir(root, split_dirs[split])
    if split_dir is None:
        hint = f"(accepted names for the {split!r} folder: {list(split_dirs[split])})"
        raise LayoutError(name, root / split_dirs[split][0], layout, hint)
    folders = class_folders(split_dir)
    resolved = resolve_folder_names(folders, class_map, codes)
    if class_names is None:
        present: set[str] = set()
        for names in split_dirs.values():
            other = find_split_dir(root, names)
            if other is not None:
                present |= {c for c in resolve_folder_names(class_folders(other), class_map, codes).values() if c}
        class_names = tuple(c for c in CANONICAL_CLASSES if c in present and c not in drop)
    class_names = check_class_names(class_names)
    index = {c: i for i, c in enumerate(class_names)}
    paths: list[str] = []
    labels: list[int] = []
    for folder in folders:
        cls = resolved[folder]
        if cls is None or cls in drop:
            continue
        if cls not in index:
            raise ValueError(
                f"{split_dir / folder} holds class {cls!r}, which the {name} label space {list(class_names)} lacks; "
                f"map the folder to None in class_map to skip it"
            )
        files = scan_images(split_dir / folder)
        paths += files
        labels += [index[cls]] * len(files)
    if not paths:
        hint = f"no images were found in the class folders of {split_dir}"
        raise LayoutError(name, split_dir / "<class>/<image>", layout, hint)
    take = subset_indices(len(paths), size, seed)
    return FileImageDataset(
        name, split, class_names, [paths[i] for i in take], np.asarray(labels, dtype=np.int64)[take], transform, root=root
    )


def load_fer2013(root, split: str, *, transform=None, size=None, seed=0, class_map=None) -> FileImageDataset:
    """FER2013 as class folders (``train/angry/...``, ``test/...``), labels in FER2013 code order."""
    return load_class_folders(
        "fer2013", root, split, split_dirs=SPLIT_DIRS, class_names=LABEL_SPACES["fer2013"], codes=FER2013_CODES,
        class_map=class_map, transform=transform, size=size, seed=seed,
    )


def load_folder(
    root, split: str, *, transform=None, size=None, seed=0, class_map=None, classes: Sequence[str] | None = None
) -> FileImageDataset:
    """A user's own class folders.

    Args:
        class_map: folder name to canonical class name (``None`` skips the folder); folders
            absent from it must be canonical names or common synonyms (``happy``, ``angry``).
        classes: the class order (canonical names); by default the classes found in any
            split, in the canonical order ``neutral, happiness, sadness, surprise, fear,
            disgust, anger, contempt``.
    """
    return load_class_folders(
        "folder", root, split, split_dirs=SPLIT_DIRS, class_names=classes, codes=None,
        class_map=class_map, transform=transform, size=size, seed=seed,
    )
