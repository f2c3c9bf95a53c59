"""Readouts read as English for every class, every pair and every set size, and follow the prediction rule:
a second class is named only when the face's conformal set holds it."""
from __future__ import annotations

import itertools

import pytest
import torch

from bayes_fer.conformal import ConformalCalibrator
from bayes_fer.data.labels import CANONICAL_CLASSES
from bayes_fer.predictive import PredictionResult
from bayes_fer.readout import ADJECTIVES, readout, set_readout
from bayes_fer.results import NoCalibratorError

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


def _lac(threshold: float) -> ConformalCalibrator:
    """A LAC calibrator whose sets hold every class of probability at least ``threshold``."""
    K = len(CANONICAL_CLASSES)
    return ConformalCalibrator(alpha=0.1, score="lac", randomized=False, qhat=[1 - threshold] * K,
                               num_calibration=[100] * K, class_names=list(CANONICAL_CLASSES))


def _result(probs: list[float], conformal: ConformalCalibrator | None = None) -> PredictionResult:
    p = torch.tensor([probs])
    p = p / p.sum()
    zeros = torch.zeros(1)
    return PredictionResult(list(CANONICAL_CLASSES), p, torch.zeros_like(p), torch.zeros_like(p), p.argmax(-1),
                            zeros, zeros, conformal=conformal)


def _pair(i: int, j: int) -> list[float]:
    probs = [0.02] * len(CANONICAL_CLASSES)
    probs[i], probs[j] = 0.45, 0.43
    return probs


def test_every_two_class_set_gives_the_pair_readout_with_the_predicted_class_first():
    for i, j in itertools.permutations(range(len(CANONICAL_CLASSES)), 2):
        result = _result(_pair(i, j), _lac(0.3))
        assert result.prediction_set() == [[CANONICAL_CLASSES[i], CANONICAL_CLASSES[j]]]
        assert result.compound() == [f"{ADJECTIVES[CANONICAL_CLASSES[i]]} and {ADJECTIVES[CANONICAL_CLASSES[j]]}"]
        record = result.to_records()[0]
        assert record["prediction"] == CANONICAL_CLASSES[i] and record["readout"] == result.compound()[0]
        assert record["set"] == [CANONICAL_CLASSES[i], CANONICAL_CLASSES[j]]


def test_without_a_calibrator_a_close_runner_up_is_not_named():
    # The runner-up 0.02 behind the top class: no calibrated evidence for it, so one class only.
    for i, j in itertools.permutations(range(len(CANONICAL_CLASSES)), 2):
        result = _result(_pair(i, j))
        assert result.compound() == [ADJECTIVES[CANONICAL_CLASSES[i]]]
        assert "set" not in result.to_records()[0]


def test_one_class_sets_read_as_that_class_and_larger_sets_as_ambiguous():
    happy_surprised_fearful = [0.02, 0.35, 0.02, 0.30, 0.25, 0.02, 0.02, 0.02]  # canonical order
    assert _result(happy_surprised_fearful, _lac(0.5)).compound() == ["happy"]
    assert _result(happy_surprised_fearful, _lac(0.28)).compound() == ["happy and surprised"]
    assert _result(happy_surprised_fearful, _lac(0.2)).compound() == ["ambiguous among happy, surprised and fearful"]
    assert _result(happy_surprised_fearful, _lac(0.01)).compound() == ["ambiguous among all 8 expressions"]
    assert _result([0.05, 0.10, 0.02, 0.73, 0.03, 0.03, 0.02, 0.02]).compound() == ["surprised"]
    assert readout(["sadness", "anger", "fear"]) == "sad, angry and fearful"
    assert readout(["class_3"]) == "class_3"
    assert set_readout([]) == "no expression at this coverage"
    assert set_readout(["sadness", "anger"], 8) == "sad and angry"


def test_sets_and_set_readouts_without_a_calibrator_say_how_to_get_one():
    result = _result(_pair(1, 3))
    for ask in (result.prediction_set, result.prediction_set_indices, lambda: result.compound(alpha=0.1)):
        with pytest.raises(NoCalibratorError, match=r"without a conformal calibrator.*calibrate_conformal.*"
                                                    r"--save-conformal calib.json"):
            ask()


def test_a_readout_needs_distinct_classes():
    with pytest.raises(ValueError, match="at least one class name"):
        readout([])
    with pytest.raises(ValueError, match="names each class once"):
        readout(["anger", "anger"])
