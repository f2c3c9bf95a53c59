"""Readouts read as English for every class and every pair, and follow the prediction rule."""
from __future__ import annotations

import itertools

import pytest
import torch

from bayes_fer.data.labels import CANONICAL_CLASSES
from bayes_fer.predictive import PredictionResult
from bayes_fer.readout import ADJECTIVES, readout

ENGLISH_ADJECTIVES = {"neutral", "happy", "sad", "surprised", "fearful", "disgusted", "angry", "contemptuous"}


def test_every_class_has_an_english_adjective():
    assert {readout([name]) for name in CANONICAL_CLASSES} == ENGLISH_ADJECTIVES


@pytest.mark.parametrize("first, second", list(itertools.permutations(CANONICAL_CLASSES, 2)))
def test_every_class_pair_reads_as_two_adjectives_joined_by_and(first, second):
    text = readout([first, second])
    left, right = text.split(" and ")
    assert left == ADJECTIVES[first] and right == ADJECTIVES[second]
    assert left in ENGLISH_ADJECTIVES and right in ENGLISH_ADJECTIVES
    assert not any(word.endswith("ly") for word in text.split())  # no "surprisedly angry"


def _result(probs: list[float]) -> PredictionResult:
    p = torch.tensor([probs])
    zeros = torch.zeros(1)
    return PredictionResult(list(CANONICAL_CLASSES), p, torch.zeros_like(p), torch.zeros_like(p), p.argmax(-1),
                            zeros, zeros)


def test_every_close_pair_gives_the_pair_readout_with_the_predicted_class_first():
    K = len(CANONICAL_CLASSES)
    for i, j in itertools.permutations(range(K), 2):
        probs = [0.02] * K
        probs[i], probs[j] = 0.45, 0.43
        probs = [p / sum(probs) for p in probs]
        result = _result(probs)
        assert result.compound() == [f"{ADJECTIVES[CANONICAL_CLASSES[i]]} and {ADJECTIVES[CANONICAL_CLASSES[j]]}"]
        assert result.to_records()[0]["prediction"] == CANONICAL_CLASSES[i]


def test_a_clear_winner_reads_as_one_adjective_and_longer_lists_read_as_english():
    assert _result([0.05, 0.10, 0.02, 0.73, 0.03, 0.03, 0.02, 0.02]).compound() == ["surprised"]
    assert readout(["sadness", "anger", "fear"]) == "sad, angry and fearful"
    assert readout(["class_3"]) == "class_3"


def test_a_readout_needs_distinct_classes():
    with pytest.raises(ValueError, match="at least one class name"):
        readout([])
    with pytest.raises(ValueError, match="names each class once"):
        readout(["anger", "anger"])
