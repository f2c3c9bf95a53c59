"""Facial expression data: official layouts read directly, one class-order table, transforms.

    >>> from bayes_fer.data import load_dataset
    >>> ds = load_dataset("synthetic", split="valid", size=8)
    >>> ds.class_names[:3], len(ds), ds[0]["image"].shape
    (('neutral', 'happiness', 'sadness'), 8, torch.Size([3, 112, 112]))
"""
from bayes_fer.data.base import BadBoxError, FERDataset, FileImageDataset, SkipSummary
from bayes_fer.data.errors import LabelError, LayoutError
from bayes_fer.data.ferplus import majority_label, probability_target
from bayes_fer.data.labels import (
    CANONICAL_CLASSES,
    LABEL_SPACES,
    label_map,
    label_space,
    remap_labels,
    remap_probabilities,
)
from bayes_fer.data.registry import DATASETS, list_datasets, load_dataset, validation_split
from bayes_fer.data.sampler import ClassBalancedSampler
from bayes_fer.data.synthetic import SceneConfig, SyntheticConfig, SyntheticFaces
from bayes_fer.data.transforms import (
    AUGMENTATIONS,
    MEAN,
    STD,
    AugmentConfig,
    denormalize,
    eval_transform,
    to_rgb,
    train_transform,
)

__all__ = [
    "CANONICAL_CLASSES",
    "DATASETS",
    "LABEL_SPACES",
    "MEAN",
    "STD",
    "AugmentConfig",
    "BadBoxError",
    "ClassBalancedSampler",
    "FERDataset",
    "FileImageDataset",
    "LabelError",
    "LayoutError",
    "SceneConfig",
    "SkipSummary",
    "SyntheticConfig",
    "SyntheticFaces",
    "denormalize",
    "eval_transform",
    "label_map",
    "label_space",
    "list_datasets",
    "load_dataset",
    "majority_label",
    "probability_target",
    "remap_labels",
    "remap_probabilities",
    "to_rgb",
    "train_transform",
    "validation_split",
    "AUGMENTATIONS",
]
