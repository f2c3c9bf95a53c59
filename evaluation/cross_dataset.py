"""Evaluating a model on a data set with other classes: what was scored, over which classes.

A data set may have only some of a model's classes (class folders of posed faces without
contempt, say). Its examples are then scored twice: over the model's own K classes (the
probabilities as predicted), and over the classes both share, with the probabilities (and
each Monte-Carlo draw) restricted to those classes and renormalised, as if the model had
been asked to choose among them only. :class:`EvaluationScope` records which classes those
were, which the data set lacks, and which examples were left out and why, for
``metrics.json`` and the report.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from evaluation.predictions import Predictions

#: How the shared-class metrics are obtained, as stated in metrics.json and the report.
RESTRICTION_RULE = "probabilities restricted to the shared classes and renormalised to sum to 1"


@dataclass(frozen=True)
class EvaluationScope:
    """What an evaluation covered, beyond the predictions themselves.

    Attributes:
        data_classes: the data set's classes (names as the data set gives them), or empty
            when they are the model's.
        shared: the model's classes the data set has, in the model's order.
        missing_from_data: the model's classes the data set lacks.
        unknown_to_model: the data set's classes the model lacks.
        unknown_examples: examples of those classes, left out (they cannot be scored).
        unreadable: files that could not be read, left out (never replaced by others).
        listed: examples the split lists, before anything was left out (None if unknown).
    """

    data_classes: tuple[str, ...] = ()
    shared: tuple[str, ...] = ()
    missing_from_data: tuple[str, ...] = ()
    unknown_to_model: tuple[str, ...] = ()
    unknown_examples: int = 0
    unreadable: tuple[str, ...] = field(default=())
    listed: int | None = None

    @property
    def restricted(self) -> bool:
        """Whether the data set lacks some of the model's classes (so shared-class metrics apply)."""
        return bool(self.missing_from_data)

    def to_json(self) -> dict:
        """The entries of metrics.json that describe the scope."""
        out: dict = {"excluded/unreadable": len(self.unreadable), "excluded/unreadable_files": list(self.unreadable)}
        if self.listed is not None:
            out["num_listed"] = self.listed
        if self.data_classes:
            out.update({
                "classes/data": list(self.data_classes),
                "classes/shared": list(self.shared),
                "classes/missing_from_data": list(self.missing_from_data),
                "classes/unknown_to_model": list(self.unknown_to_model),
                "excluded/unknown_to_model": self.unknown_examples,
            })
        if self.restricted:
            out["shared/rule"] = RESTRICTION_RULE
        return out

    def notes(self, num_model_classes: int) -> list[str]:
        """Sentences for the report."""
        lines = []
        if self.unreadable:
            shown = ", ".join(self.unreadable[:20]) + (", ..." if len(self.unreadable) > 20 else "")
            lines.append(f"{len(self.unreadable)} unreadable image(s) were left out (never replaced by other "
                         f"images): {shown}")
        if self.data_classes:
            lines.append(f"The data set's classes {list(self.data_classes)} were matched to the model's by name.")
        if self.unknown_to_model:
            lines.append(f"The model has no class for {', '.join(self.unknown_to_model)}: "
                         f"{self.unknown_examples} example(s) of those classes were left out.")
        if self.restricted:
            lines.append(f"The data set lacks the model's class(es) {', '.join(self.missing_from_data)}. The summary "
                         f"scores all {num_model_classes} of the model's classes; 'Shared classes' scores the "
                         f"{len(self.shared)} classes both have, with {RESTRICTION_RULE}.")
        return lines


def restrict(predictions: Predictions, classes: Sequence[str]) -> tuple[Predictions, int]:
    """``predictions`` over ``classes`` only: columns kept in the predictions' order, each row
    (and each Monte-Carlo draw) renormalised, labels re-indexed.

    Args:
        predictions: predictions over K classes.
        classes: a subset of ``predictions.class_names``.

    Returns:
        The restricted predictions, and how many examples were left out because their label
        is not among ``classes``.

    Raises:
        ValueError: a class is not among the predictions' classes, fewer than two classes
            remain, or no example has a label among them.
    """
    names = list(predictions.class_names)
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise ValueError(f"classes {unknown} are not among the predictions' classes {names}")
    columns = np.array([k for k, name in enumerate(names) if name in set(classes)])
    if len(columns) < 2:
        raise ValueError(f"scoring over the shared classes needs at least 2 of them, found {[names[k] for k in columns]}")
    new_index = np.full(len(names), -1)
    new_index[columns] = np.arange(len(columns))
    labels = new_index[predictions.labels]
    keep = labels >= 0
    if not keep.any():
        raise ValueError(f"no example is labelled with one of the classes {[names[k] for k in columns]}")

    def renormalised(p: np.ndarray) -> np.ndarray:
        part = p[..., columns]
        # A row with no mass on the kept classes (possible only in float underflow) becomes uniform.
        total = part.sum(-1, keepdims=True)
        return np.where(total > 0, part / np.where(total > 0, total, 1.0), 1.0 / len(columns))

    votes = None
    if predictions.votes is not None:
        votes = predictions.votes[keep][:, columns]
        if (votes.sum(1) <= 0).any():
            votes = None  # some faces were voted only into classes left out: no distribution to compare with
    samples = None if predictions.samples is None else renormalised(predictions.samples[:, keep])
    loc = None if predictions.loc is None else predictions.loc[keep][:, columns]
    scale = None if predictions.scale is None else predictions.scale[keep][:, columns]
    restricted = Predictions(probs=renormalised(predictions.probs[keep]), labels=labels[keep], votes=votes,
                             samples=samples, loc=loc, scale=scale, class_names=tuple(names[k] for k in columns))
    return restricted, int((~keep).sum())


def restriction_scope(class_names: Sequence[str], restrict_to: Sequence[str]) -> EvaluationScope:
    """The scope of scoring predictions over ``class_names`` against a data set with the classes
    ``restrict_to`` (names or synonyms), as in predictions mode's ``--restrict-to``."""
    from bayes_fer.data.labels import match_classes

    match = match_classes(restrict_to, class_names)
    if match.unknown_to_model:
        raise ValueError(f"--restrict-to names {list(match.unknown_to_model)}, which the predictions' classes "
                         f"{list(class_names)} do not include (synonyms such as 'happy' are understood)")
    return EvaluationScope(data_classes=tuple(restrict_to), shared=match.shared,
                           missing_from_data=match.missing_from_data)
