"""The one table of class orders: every loader maps its on-disk labels through it.

A *label space* is an ordered tuple of canonical class names; a model's output index ``k``
means ``LABEL_SPACES[name][k]``. Each dataset maps its own codes (label-file numbers, CSV
codes, folder names) to canonical names through an explicit table below, then to indices
of its label space, so a class can never be silently re-ordered.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: The canonical class names. Every label space is an ordering of some of them.
CANONICAL_CLASSES: tuple[str, ...] = (
    "neutral",
    "happiness",
    "sadness",
    "surprise",
    "fear",
    "disgust",
    "anger",
    "contempt",
)

LABEL_SPACES: dict[str, tuple[str, ...]] = {
    # RAF-DB basic: the order of EmoLabel/list_patition_label.txt (codes 1-7).
    "rafdb": ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"),
    # AffectNet: the order of the ``expression`` codes 0-6 (0-7 with contempt).
    "affectnet7": ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger"),
    "affectnet8": ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt"),
    # FER+: the emotion columns of fer2013new.csv and label.csv, in file order.
    "ferplus": ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"),
    # FER2013: the original codes 0-6 (Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral).
    "fer2013": ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"),
    # The embedded synthetic faces.
    "synthetic": ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger"),
}

#: RAF-DB label-file codes (1-based) to canonical names.
RAFDB_CODES: dict[int, str] = {i + 1: name for i, name in enumerate(LABEL_SPACES["rafdb"])}

#: AffectNet ``expression`` codes. 8 None, 9 Uncertain and 10 No-Face are valid codes that
#: no label space contains: loaders drop those rows (and 7 Contempt for 7 classes).
AFFECTNET_CODES: dict[int, str | None] = {
    **{i: name for i, name in enumerate(LABEL_SPACES["affectnet8"])},
    8: None,
    9: None,
    10: None,
}

#: The 10 vote columns of FER+ (label.csv and fer2013new.csv), in file order.
FERPLUS_COLUMNS: tuple[str, ...] = LABEL_SPACES["ferplus"] + ("unknown", "NF")

#: FER2013 codes 0-6 to canonical names.
FER2013_CODES: dict[int, str] = {i: name for i, name in enumerate(LABEL_SPACES["fer2013"])}

#: Folder names that the published class-folder layouts use, lower-cased, to canonical names.
#: Numeric folder names are dataset codes and are resolved per dataset, never here.
FOLDER_SYNONYMS: dict[str, str] = {
    **{name: name for name in CANONICAL_CLASSES},
    "happy": "happiness",
    "sad": "sadness",
    "surprised": "surprise",
    "fearful": "fear",
    "afraid": "fear",
    "disgusted": "disgust",
    "angry": "anger",
    "contemptuous": "contempt",
    "calm": "neutral",
}


def label_space(name: str) -> tuple[str, ...]:
    """The class order of label space ``name``.

    Raises:
        ValueError: ``name`` is not a label space; the message lists the valid ones.
    """
    if name not in LABEL_SPACES:
        raise ValueError(f"unknown label space {name!r}; expected one of {', '.join(LABEL_SPACES)}")
    return LABEL_SPACES[name]


def check_class_names(class_names: Sequence[str]) -> tuple[str, ...]:
    """Validate a class order: canonical names only, no duplicates. Returns it as a tuple."""
    names = tuple(class_names)
    unknown = [n for n in names if n not in CANONICAL_CLASSES]
    if unknown:
        raise ValueError(
            f"class names {unknown} are not canonical; expected names among {', '.join(CANONICAL_CLASSES)} "
            "(map dataset-specific names such as 'happy' to canonical ones first)"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"class names {list(names)} contain duplicates")
    return names


def label_map(source: Sequence[str], target: Sequence[str]) -> np.ndarray:
    """Index map from one class order to another: ``target_index = m[source_index]``.

    Classes of ``source`` absent from ``target`` map to -1, so callers must decide what to do
    with them (drop, or fail) instead of having them land on a wrong class.

    Args:
        source: class names in the order of the labels being converted.
        target: class names in the order wanted.

    Returns:
        int64 array of length ``len(source)``.
    """
    source, target = check_class_names(source), check_class_names(target)
    where = {name: i for i, name in enumerate(target)}
    return np.array([where.get(name, -1) for name in source], dtype=np.int64)


def remap_labels(labels: Sequence[int] | np.ndarray, source: Sequence[str], target: Sequence[str]) -> np.ndarray:
    """Convert hard labels between class orders; fails if one has no class in ``target``.

    Example:
        >>> remap_labels([3, 6], LABEL_SPACES["rafdb"], LABEL_SPACES["affectnet7"])
        array([1, 0])
    """
    mapping = label_map(source, target)
    labels = np.asarray(labels, dtype=np.int64)
    out = mapping[labels]
    if (out < 0).any():
        missing = sorted({source[i] for i in labels[out < 0]})
        raise ValueError(
            f"labels of class(es) {missing} have no index in the target order {list(target)}; "
            "drop those samples first or choose a target label space that contains them"
        )
    return out


def remap_probabilities(probs: np.ndarray, source: Sequence[str], target: Sequence[str]) -> np.ndarray:
    """Re-order the last axis of class probabilities (or votes) from ``source`` to ``target``.

    Target classes absent from ``source`` get 0; source classes absent from ``target`` must
    carry no mass (their mass would otherwise vanish silently).
    """
    mapping = label_map(source, target)
    probs = np.asarray(probs)
    dropped = mapping < 0
    if dropped.any() and np.any(probs[..., dropped] != 0):
        raise ValueError(
            f"classes {[source[i] for i in np.flatnonzero(dropped)]} carry mass but are absent from "
            f"the target order {list(target)}"
        )
    out = np.zeros(probs.shape[:-1] + (len(target),), dtype=probs.dtype)
    out[..., mapping[~dropped]] = probs[..., ~dropped]
    return out


def resolve_folder_names(
    folders: Sequence[str],
    class_map: Mapping[str, str | None] | None,
    codes: Mapping[int, str | None] | None = None,
) -> dict[str, str | None]:
    """Map class-folder names to canonical names; ``None`` means "skip this folder".

    Resolution order for each folder: ``class_map`` (exact name), then ``codes`` for numeric
    names (the dataset's own label codes), then :data:`FOLDER_SYNONYMS` (case-insensitive).

    Raises:
        ValueError: a folder resolves to nothing, naming it and how to fix it.
    """
    resolved: dict[str, str | None] = {}
    unresolved = []
    for folder in folders:
        if class_map is not None and folder in class_map:
            name = class_map[folder]
        elif codes is not None and folder.isdigit():
            if int(folder) not in codes:
                unresolved.append(folder)
                continue
            name = codes[int(folder)]
        elif folder.lower() in FOLDER_SYNONYMS:
            name = FOLDER_SYNONYMS[folder.lower()]
        else:
            unresolved.append(folder)
            continue
        if name is not None and name not in CANONICAL_CLASSES:
            raise ValueError(
                f"class_map sends folder {folder!r} to {name!r}, which is not a canonical class; "
                f"expected one of {', '.join(CANONICAL_CLASSES)} or None to skip the folder"
            )
        resolved[folder] = name
    if unresolved:
        raise ValueError(
            f"cannot tell which class the folder(s) {unresolved} hold; pass class_map={{folder: class}} "
            f"with classes among {', '.join(CANONICAL_CLASSES)} (None skips a folder)"
        )
    return resolved


def canonical_class(name: str) -> str:
    """The canonical name of a class name or common synonym (``"happy"`` -> ``"happiness"``,
    ``"Angry"`` -> ``"anger"``); a name that is neither is returned unchanged."""
    return FOLDER_SYNONYMS.get(str(name).strip().lower(), str(name))


@dataclass(frozen=True)
class ClassMatch:
    """Which classes of a data set are which classes of a model, matched by name and synonym.

    Attributes:
        data_classes: the data set's class names, in its label order, as given.
        model_classes: the model's class names, in its output order.
        data_to_model: for each data-set class, the model's index of it, or -1 when the
            model has no such class.
    """

    data_classes: tuple[str, ...]
    model_classes: tuple[str, ...]
    data_to_model: tuple[int, ...]

    @property
    def shared(self) -> tuple[str, ...]:
        """The model's classes that the data set has, in the model's order."""
        present = set(i for i in self.data_to_model if i >= 0)
        return tuple(name for k, name in enumerate(self.model_classes) if k in present)

    @property
    def missing_from_data(self) -> tuple[str, ...]:
        """The model's classes that the data set lacks."""
        present = set(self.data_to_model)
        return tuple(name for k, name in enumerate(self.model_classes) if k not in present)

    @property
    def unknown_to_model(self) -> tuple[str, ...]:
        """The data set's classes that the model lacks (their examples cannot be scored)."""
        return tuple(name for name, k in zip(self.data_classes, self.data_to_model) if k < 0)

    @property
    def identical(self) -> bool:
        """Whether the data set's labels are the model's outputs, class for class, in order."""
        return self.data_to_model == tuple(range(len(self.model_classes)))


def match_classes(data_classes: Sequence[str], model_classes: Sequence[str]) -> ClassMatch:
    """Match a data set's classes to a model's by canonical name (synonyms allowed on both sides).

    Example:
        >>> match_classes(["angry", "happy", "neutral"], LABEL_SPACES["ferplus"]).data_to_model
        (4, 1, 0)

    Raises:
        ValueError: two names of one side mean the same class.
    """
    data, model = tuple(str(c) for c in data_classes), tuple(str(c) for c in model_classes)
    for side, names in (("data set", data), ("model", model)):
        canon = [canonical_class(n) for n in names]
        if len(set(canon)) != len(canon):
            twins = sorted({n for n, c in zip(names, canon) if canon.count(c) > 1})
            raise ValueError(f"the {side}'s classes {list(names)} name one class twice ({twins} are synonyms); "
                             "give each class once")
    where = {canonical_class(name): k for k, name in enumerate(model)}
    return ClassMatch(data, model, tuple(where.get(canonical_class(name), -1) for name in data))
