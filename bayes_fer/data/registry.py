"""``load_dataset``: one entry point for every dataset, by name."""
from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bayes_fer.data.affectnet import LAYOUT as AFFECTNET_LAYOUT
from bayes_fer.data.affectnet import load_affectnet
from bayes_fer.data.base import FERDataset
from bayes_fer.data.errors import LayoutError
from bayes_fer.data.ferplus import LAYOUT as FERPLUS_LAYOUT
from bayes_fer.data.ferplus import load_ferplus
from bayes_fer.data.folders import FOLDER_LAYOUT, SPLIT_DIRS, find_split_dir, load_fer2013, load_folder
from bayes_fer.data.labels import LABEL_SPACES
from bayes_fer.data.rafdb import LAYOUT as RAFDB_LAYOUT
from bayes_fer.data.rafdb import load_rafdb
from bayes_fer.data.synthetic import SyntheticConfig, SyntheticFaces
from bayes_fer.data.transforms import eval_transform, train_transform

LABEL_MODES = ("majority", "probability")


@dataclass(frozen=True)
class DatasetSpec:
    """What ``load_dataset`` knows about one dataset name."""

    loader: Callable[..., FERDataset]  # loader(root, split, transform=, size=, seed=, **options)
    splits: tuple[str, ...]  # split names the dataset offers
    layout: str  # the expected on-disk layout, for error messages
    label_space: str | None  # key of LABEL_SPACES; None when the user's folders decide
    has_votes: bool = False  # whether label_mode="probability" is available
    # Whether the data set ships a validation split: False for RAF-DB and AffectNet (training
    # validates on test, as the paper does), None where the user's class folders decide.
    ships_valid: bool | None = True


DATASETS: dict[str, DatasetSpec] = {
    "synthetic": DatasetSpec(SyntheticFaces, ("train", "valid", "test"), "(none: drawn on the fly)", "synthetic", True),
    "rafdb": DatasetSpec(load_rafdb, ("train", "test"), RAFDB_LAYOUT, "rafdb", ships_valid=False),
    "affectnet7": DatasetSpec(partial(load_affectnet, num_classes=7), ("train", "test"), AFFECTNET_LAYOUT, "affectnet7",
                              ships_valid=False),
    "affectnet8": DatasetSpec(partial(load_affectnet, num_classes=8), ("train", "test"), AFFECTNET_LAYOUT, "affectnet8",
                              ships_valid=False),
    "ferplus": DatasetSpec(load_ferplus, ("train", "valid", "test"), FERPLUS_LAYOUT, "ferplus", True),
    # Kaggle's FER2013 folders hold train/ and test/ only; a valid/ folder is used when present.
    "fer2013": DatasetSpec(load_fer2013, ("train", "valid", "test"), FOLDER_LAYOUT, "fer2013", ships_valid=None),
    "folder": DatasetSpec(load_folder, ("train", "valid", "test"), FOLDER_LAYOUT, None, ships_valid=None),
}


def list_datasets() -> list[str]:
    return list(DATASETS)


def validation_split(name: str, root: str | os.PathLike | None = None) -> str:
    """The split that model selection uses: ``"valid"``, or ``"test"`` for data sets shipping none.

    RAF-DB and AffectNet ship no validation split, so (as in the paper) training validates on
    test. For class folders (``fer2013``, ``folder``) a ``valid/`` (or ``val/``, ...) folder
    under ``root`` decides. A declared split is never swapped for another because it failed
    to load: its errors reach the caller.

    Raises:
        ValueError: unknown dataset name.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available datasets: {', '.join(DATASETS)}")
    ships = DATASETS[name].ships_valid
    if ships is None:
        ships = root is not None and find_split_dir(Path(root), SPLIT_DIRS["valid"]) is not None
    return "valid" if ships else "test"


def _options_of(loader: Callable) -> set[str]:
    fixed = {"root", "split", "transform", "size", "seed", "label_mode", "num_classes", "image_size", "config"}
    target = loader.func if isinstance(loader, partial) else loader
    return set(inspect.signature(target).parameters) - fixed


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    split: str = "train",
    *,
    transform: Callable | None = None,
    image_size: int = 112,
    label_mode: str = "majority",
    seed: int = 0,
    size: int | None = None,
    **options,
) -> FERDataset:
    """Load dataset ``name`` from its official layout under ``root``.

    Args:
        name: ``synthetic``, ``rafdb``, ``affectnet7``, ``affectnet8``, ``ferplus``,
            ``fer2013`` or ``folder`` (a user's class folders).
        root: the dataset folder as its authors ship it; unused for ``synthetic``.
        split: ``"train"``, ``"valid"`` (FER+, FER2013, folders, synthetic) or ``"test"``.
        transform: image transform; by default ``train_transform(image_size)`` for the
            train split and ``eval_transform(image_size)`` otherwise.
        image_size: side of the square network input (112 is POSTER-Var's native size).
        label_mode: ``"majority"`` (hard labels) or ``"probability"`` (adds a soft
            ``"target"``; FER+ and synthetic only).
        seed: synthetic draws, and the subset drawn when ``size`` is given.
        size: synthetic: number of faces (default 20000 train, 2000 valid, 2000 test);
            other datasets: a seeded random subset of this many samples (default all).
        **options: dataset-specific: rafdb ``images``, ``layout``, ``class_map``; affectnet
            ``crop``, ``layout``, ``class_map``; fer2013 ``class_map``; folder
            ``class_map``, ``classes``; synthetic any field of ``SyntheticConfig`` or
            ``SceneConfig``.

    Returns:
        A dataset with ``class_names``, ``labels``, ``name``, ``split`` and ``len()``
        whose items are dicts (see :class:`bayes_fer.data.base.FERDataset`).

    Raises:
        ValueError: unknown name, split or label mode.
        FileNotFoundError: the root or a label file is missing (the message shows the layout).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available datasets: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    if split not in spec.splits:
        hint = " (its validation set serves as 'test')" if name.startswith("affectnet") else ""
        raise ValueError(f"{name} offers the splits {list(spec.splits)}{hint}; got {split!r}")
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {label_mode!r}")
    if label_mode == "probability" and not spec.has_votes:
        raise ValueError(
            f"label_mode='probability' needs annotator votes, which {name} lacks; use it with "
            f"{', '.join(n for n, s in DATASETS.items() if s.has_votes)}, or label_mode='majority'"
        )
    if transform is None:
        transform = train_transform(image_size) if split == "train" else eval_transform(image_size)
    if name == "synthetic":
        config = SyntheticConfig.from_options(**options)
        return SyntheticFaces(split, size, seed=seed, image_size=image_size, transform=transform,
                              label_mode=label_mode, config=config)
    if root is None:
        raise LayoutError(name, "<root>", spec.layout, f"pass root= the folder holding the {name} files")
    valid = _options_of(spec.loader)
    unknown = sorted(set(options) - valid)
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for {name}; valid options: {', '.join(sorted(valid)) or 'none'}")
    if spec.has_votes:
        options["label_mode"] = label_mode
    ds = spec.loader(root, split, transform=transform, size=size, seed=seed, **options)
    expected = LABEL_SPACES.get(spec.label_space) if spec.label_space else None
    assert expected is None or ds.class_names == expected, f"{name} returned classes {ds.class_names}, not {expected}"
    return ds
