"""Plain-English readouts of predicted expressions: "happy", "happy and surprised".

A readout names classes by their adjectives, most probable first, joined as an English list
("sad", "sad and angry", "sad, angry and fearful"). Only adjectives are used, never adverbs
built from them, so every combination reads as English ("angry and surprised", not
"surprisedly angry").

A face's readout names more than one class only on calibrated evidence: a conformal
expression set (:mod:`bayes_fer.conformal`) at a stated coverage. :func:`set_readout` reads
such a set: one class is that class, two are a compound expression ("happy and surprised"),
more say the face is ambiguous among them.
"""
from __future__ import annotations

from collections.abc import Sequence

#: The adjective for each canonical class name.
ADJECTIVES: dict[str, str] = {
    "neutral": "neutral",
    "happiness": "happy",
    "sadness": "sad",
    "surprise": "surprised",
    "fear": "fearful",
    "disgust": "disgusted",
    "anger": "angry",
    "contempt": "contemptuous",
}


def adjective(class_name: str) -> str:
    """The adjective of a canonical class name; any other name is returned unchanged."""
    return ADJECTIVES.get(class_name, class_name)


def readout(class_names_in_order: Sequence[str]) -> str:
    """The readout of one face: the named classes' adjectives, most probable first.

    Args:
        class_names_in_order: one or more class names, the predicted class first (the
            posterior-predictive argmax), then any others the readout should name in
            decreasing probability.

    Returns:
        ``"happy"`` for one class, ``"happy and surprised"`` for two, ``"happy, surprised
        and fearful"`` for three or more.

    Raises:
        ValueError: no class was given, or a class was given twice.
    """
    names = list(class_names_in_order)
    if not names:
        raise ValueError("a readout needs at least one class name, got none")
    if len(set(names)) != len(names):
        raise ValueError(f"a readout names each class once, got {names}")
    words = [adjective(name) for name in names]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def set_readout(class_names_in_order: Sequence[str], num_classes: int | None = None) -> str:
    """The readout of a conformal expression set, its classes most probable first.

    Args:
        class_names_in_order: the classes in the set, in decreasing probability.
        num_classes: how many classes the model has, so that a set of all of them says so.

    Returns:
        ``"happy"`` for one class, ``"happy and surprised"`` for two, ``"ambiguous among happy,
        surprised and fearful"`` for more, ``"ambiguous among all 8 expressions"`` for every
        class, and ``"no expression at this coverage"`` for an empty set (only calibrators
        fitted with ``allow_empty=True`` give those).

    Raises:
        ValueError: a class was given twice.
    """
    names = list(class_names_in_order)
    if not names:
        return "no expression at this coverage"
    if len(names) <= 2:
        return readout(names)
    if num_classes is not None and len(names) == num_classes and len(set(names)) == len(names):
        return f"ambiguous among all {num_classes} expressions"
    return "ambiguous among " + readout(names)
