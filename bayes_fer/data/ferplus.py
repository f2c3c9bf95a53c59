"""FER+ (FER2013 faces with 10 crowd votes each), read from the official FERPlus layout.

Vote columns, in file order: neutral, happiness, surprise, sadness, anger, disgust, fear,
contempt, unknown, NF (not a face). The two label modes follow the FERPlus reference reader
(Barsoum et al. 2016, ``ferplus.py``), restated here as rules:

1. Outlier removal: every count of 0 or 1 is set to 0. Let ``total`` be the sum left.
2. ``"majority"``: the face is kept iff the largest count is more than ``total / 2`` and
   belongs to one of the 8 emotions; its label is that emotion. (Faces whose votes were
   all single votes, with an unknown or not-a-face majority, or with no majority, are left out.)
3. ``"probability"``: classes are taken greedily: repeatedly, every class whose count
   equals the largest count not yet taken (in column order), while the taken counts sum to
   less than ``0.75 * total`` and fewer than 3 classes are taken. Taking ``unknown`` or
   ``NF`` ends the walk, and that column is put back unless nothing else was taken. The
   face is left out if the taken counts sum to at most ``total / 2``, if more than 3
   classes were taken (ties), or if the first column holding the largest taken count is
   unknown or NF. The soft target is the taken emotion counts normalized to sum to 1; the
   label is its argmax (the first column on ties).

Votes come from each split folder's ``label.csv``, as in the reference reader, or from
``fer2013new.csv`` where no split has a ``label.csv`` (one source for all splits). The ``label.csv`` files kept in the
FERPlus repository predate its current ``fer2013new.csv`` and differ from it on about 4%
of the faces, so the two sources give slightly different label sets.

Every sample also carries ``"votes"``: its 8 raw emotion counts before outlier removal, for
distribution-level evaluation; ``dataset.raw_votes`` holds all 10 columns.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bayes_fer.data.base import FileImageDataset, subset_indices
from bayes_fer.data.errors import LabelError, LayoutError
from bayes_fer.data.files import read_text, safe_relative
from bayes_fer.data.labels import FERPLUS_COLUMNS, LABEL_SPACES

SPLIT_FOLDERS = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}
USAGE = {"Training": "train", "PublicTest": "valid", "PrivateTest": "test"}  # fer2013new.csv's Usage
NUM_EMOTIONS = 8

LAYOUT = """\
    <root>/FER2013Train/fer0000000.png ... label.csv   (split="train")
    <root>/FER2013Valid/... label.csv                  (split="valid")
    <root>/FER2013Test/... label.csv                   (split="test")
        label.csv rows: file name, "(x, y, w, h)" face box, 10 vote counts
        (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF)
        (or rows of file name and 10 vote counts, as generate_training_data.py writes them)
    <root>/fer2013new.csv   (Usage, Image name, the same 10 columns), used when no split has a label.csv
  The PNGs are those the FERPlus project's generate_training_data.py writes."""


def remove_outliers(votes: np.ndarray) -> np.ndarray:
    """Rule 1: counts of 0 or 1 set to 0 (works on (10,) or (N, 10))."""
    votes = np.asarray(votes, dtype=np.float64)
    return np.where(votes > 1.0, votes, 0.0)


def majority_label(votes: Sequence[float]) -> int | None:
    """Rule 2: the emotion index of a face's 10 votes, or ``None`` if the face is left out."""
    v = remove_outliers(votes)
    top = int(np.argmax(v))
    if v[top] > 0.5 * v.sum() and top < NUM_EMOTIONS:
        return top
    return None


def probability_target(votes: Sequence[float]) -> np.ndarray | None:
    """Rule 3: the 8-emotion soft target of a face's 10 votes, or ``None`` if it is left out."""
    v = remove_outliers(votes).tolist()
    total = sum(v)
    taken = [0.0] * len(v)
    covered, count = 0.0, 0
    walking = True
    while walking and covered < 0.75 * total and count < 3:
        top = max(v)
        for i, value in enumerate(v):
            if value != top:
                continue
            taken[i], v[i] = top, 0.0
            covered += top
            count += 1
            if i >= NUM_EMOTIONS:  # unknown or not-a-face: stop here
                walking = False
                if sum(taken) > top:  # other classes came first: keep those only
                    taken[i] = 0.0
                    count -= 1
                break
    if sum(taken) <= 0.5 * total or count > 3 or int(np.argmax(taken)) >= NUM_EMOTIONS:
        return None
    emotions = np.asarray(taken[:NUM_EMOTIONS])
    return emotions / emotions.sum()


def _parse_votes(fields: Sequence[str], path: Path, line_no: int) -> np.ndarray:
    try:
        votes = np.array([float(x) for x in fields], dtype=np.float64)
    except ValueError:
        raise LabelError(path, line_no, f"vote counts must be numbers, found {list(fields)}") from None
    if len(votes) != len(FERPLUS_COLUMNS) or (votes < 0).any() or not np.isfinite(votes).all():
        raise LabelError(
            path, line_no, f"expected {len(FERPLUS_COLUMNS)} non-negative vote counts ({', '.join(FERPLUS_COLUMNS)}), "
            f"found {list(fields)}"
        )
    return votes


def _parse_box(text: str, path: Path, line_no: int) -> tuple[float, ...]:
    try:
        box = tuple(float(v) for v in text.strip().strip("()").split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or box[2] <= 0 or box[3] <= 0:
        raise LabelError(path, line_no, f"face box must read '(x, y, w, h)' with positive w, h, found {text!r}")
    return box


def read_label_csv(path: Path) -> tuple[list[str], np.ndarray | None, np.ndarray]:
    """``(file names, boxes (N, 4) or None, votes (N, 10))`` of a FERPlus ``label.csv``.

    Rows are ``name, "(x, y, w, h)", 10 votes`` (the label files the FERPlus repository
    ships) or ``name, 10 votes`` (as its current ``generate_training_data.py`` writes them).
    """
    names, boxes, votes = [], [], []
    width = None
    for line_no, row in enumerate(csv.reader(io.StringIO(read_text(path), newline="")), start=1):
        if not row:
            continue
        if width is None:
            width = len(row)
        if len(row) != width or width not in (1 + len(FERPLUS_COLUMNS), 2 + len(FERPLUS_COLUMNS)):
            raise LabelError(
                path, line_no, f"expected 12 fields (name, face box, 10 votes) or 11 (name, 10 votes) on every "
                f"row, found {len(row)}: {row}"
            )
        names.append(safe_relative(row[0], path, line_no))
        if width == 2 + len(FERPLUS_COLUMNS):
            boxes.append(_parse_box(row[1], path, line_no))
        votes.append(_parse_votes(row[width - len(FERPLUS_COLUMNS):], path, line_no))
    box_array = np.asarray(boxes).reshape(-1, 4) if boxes else None
    return names, box_array, np.asarray(votes).reshape(-1, len(FERPLUS_COLUMNS))


def read_fer2013new(path: Path, split: str) -> tuple[list[str], np.ndarray, int]:
    """``(image names, votes (N, 10), duplicates)`` of one split of ``fer2013new.csv``.

    Rows without an image name (non-faces, never written as PNG) are skipped. A few names
    occur twice; the PNG on disk is the one written last, so the last row is kept and the
    number of earlier rows dropped is returned.
    """
    rows: dict[str, np.ndarray] = {}
    duplicates = 0
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    header = next(reader, None)
    if header is None or header[:2] != ["Usage", "Image name"]:
        raise LabelError(path, 1, f"expected the header 'Usage,Image name,{','.join(FERPLUS_COLUMNS)}', found {header}")
    for line_no, row in enumerate(reader, start=2):
        if not row:
            continue
        if row[0] not in USAGE:
            raise LabelError(path, line_no, f"Usage {row[0]!r} is none of {', '.join(USAGE)}")
        name = row[1].strip() if len(row) > 1 else ""
        if USAGE[row[0]] != split or not name:
            continue
        safe_relative(name, path, line_no)
        votes = _parse_votes(row[2:], path, line_no)
        if name in rows:
            duplicates += 1
            del rows[name]  # re-insert: keep the last row, at its own position
        rows[name] = votes
    return list(rows), np.asarray(list(rows.values())).reshape(-1, len(FERPLUS_COLUMNS)), duplicates


def load_ferplus(root, split: str, *, label_mode: str = "majority", transform=None, size=None, seed=0) -> FileImageDataset:
    """FER+ in ``label_mode`` ``"majority"`` or ``"probability"`` (see the module docstring)."""
    root = Path(root) if root is not None else None
    if root is None or not root.is_dir():
        hint = "pass root= the folder holding FER2013Train/"
        raise LayoutError("ferplus", root if root is not None else "<root>", LAYOUT, hint)
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"FER+ splits are {', '.join(SPLIT_FOLDERS)}; got {split!r}")
    if label_mode not in ("majority", "probability"):
        raise ValueError(f"FER+ label_mode must be 'majority' or 'probability', got {label_mode!r}")
    folder = root / SPLIT_FOLDERS[split]
    if not folder.is_dir():
        raise LayoutError("ferplus", folder, LAYOUT)
    duplicates = 0
    # One label source for all splits: the label.csv files and fer2013new.csv disagree on
    # about 4% of the faces, so a split missing its label.csv never falls back silently.
    with_csv = [f for f in SPLIT_FOLDERS.values() if (root / f / "label.csv").is_file()]
    if (folder / "label.csv").exists():
        names, boxes, votes = read_label_csv(folder / "label.csv")
    elif with_csv:
        raise LayoutError("ferplus", folder / "label.csv", LAYOUT,
                          f"({', '.join(with_csv)} have their label.csv, so this split needs its own; the labels of "
                          "fer2013new.csv differ from those files on about 4% of the faces)")
    elif (root / "fer2013new.csv").exists():
        names, votes, duplicates = read_fer2013new(root / "fer2013new.csv", split)
        boxes = None
    else:
        raise LayoutError("ferplus", folder / "label.csv", LAYOUT, f"(nor is there a {root / 'fer2013new.csv'})")
    keep, labels, targets = [], [], []
    for i, v in enumerate(votes):
        if label_mode == "majority":
            label = majority_label(v)
            target = None
        else:
            target = probability_target(v)
            label = None if target is None else int(np.argmax(target))
        if label is None:
            continue
        keep.append(i)
        labels.append(label)
        targets.append(target)
    keep_arr = np.asarray(keep, dtype=np.int64)
    take = subset_indices(len(keep_arr), size, seed)
    rows = keep_arr[take]
    arrays = {"votes": votes[rows, :NUM_EMOTIONS]}
    if label_mode == "probability":
        arrays["target"] = np.stack([targets[i] for i in take]) if len(take) else np.zeros((0, NUM_EMOTIONS))
    ds = FileImageDataset(
        "ferplus", split, LABEL_SPACES["ferplus"], [str(folder / names[i]) for i in rows],
        np.asarray(labels, dtype=np.int64)[take], transform, boxes=None if boxes is None else boxes[rows],
        arrays=arrays, root=root,
    )
    ds.raw_votes = votes[rows]
    ds.label_mode = label_mode
    ds.dropped = {f"left out by the {label_mode} rule": len(votes) - len(keep_arr)}
    if duplicates:
        ds.dropped["earlier rows of duplicated image names"] = duplicates
    return ds
