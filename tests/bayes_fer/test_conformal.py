"""Split-conformal sets: scores and quantiles worked by hand, coverage on exchangeable data."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import betabinom

from bayes_fer.conformal import (
    ConformalCalibrator,
    conformal_quantile,
    top_class_conforms,
    conformity_scores,
    coverage,
    prediction_sets,
    set_sizes,
)

PROBS = np.array([[0.5, 0.3, 0.2],
                  [0.1, 0.6, 0.3]])


def test_lac_scores_by_hand():
    np.testing.assert_allclose(conformity_scores(PROBS, "lac"), [[0.5, 0.7, 0.8], [0.9, 0.4, 0.7]])


def test_aps_scores_by_hand():
    # Mass up to and including each class, in descending order of probability.
    np.testing.assert_allclose(conformity_scores(PROBS, "aps", randomized=False),
                               [[0.5, 0.8, 1.0], [1.0, 0.6, 0.9]])
    # Randomized: mass strictly above plus u times the class's own probability.
    np.testing.assert_allclose(conformity_scores(PROBS, "aps", u=np.array([0.5, 0.25])),
                               [[0.25, 0.65, 0.9], [0.925, 0.15, 0.675]])


def test_raps_scores_by_hand():
    # lam = 0.1 per rank past k_reg = 1: ranks 1, 2, 3 pay 0, 0.1, 0.2.
    np.testing.assert_allclose(conformity_scores(PROBS, "raps", randomized=False, lam=0.1, k_reg=1),
                               [[0.5, 0.9, 1.2], [1.2, 0.6, 1.0]])
    # k_reg = 2 spares the second rank; randomized with u = 0.5 on the first row.
    np.testing.assert_allclose(conformity_scores(PROBS[:1], "raps", lam=0.1, k_reg=2, u=np.array([0.5])),
                               [[0.25, 0.65, 1.0]])


def test_quantile_takes_the_finite_sample_rank():
    scores = np.arange(1, 11) / 10  # 0.1 ... 1.0, n = 10
    assert conformal_quantile(scores, 0.2) == pytest.approx(0.9)  # ceil(11 * 0.8) = 9th
    assert conformal_quantile(scores, 0.1) == pytest.approx(1.0)  # ceil(11 * 0.9) = 10th, not np.quantile's 0.91
    assert conformal_quantile(scores, 0.05) == math.inf  # ceil(11 * 0.95) = 11 > n
    assert conformal_quantile(np.arange(1, 20), 0.05) == 19  # (19 + 1) * 0.95 = 19 exactly
    assert conformal_quantile(scores[::-1], 0.5) == pytest.approx(0.6)  # order does not matter: ceil(5.5) = 6th


def test_hand_worked_calibration_and_sets():
    # True-label APS scores (non-randomized) of four examples: 0.5, 0.8, 0.6, 1.0.
    probs = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.1, 0.6, 0.3]])
    labels = np.array([0, 1, 1, 0])
    calibrator = ConformalCalibrator(randomized=False).fit(probs, labels, alpha=0.4, score="aps")
    assert calibrator.qhat == [0.8] * 3  # ceil(5 * 0.6) = 3rd smallest of 0.5, 0.6, 0.8, 1.0
    np.testing.assert_array_equal(calibrator.predict_sets(PROBS), [[True, True, False], [False, True, False]])


def test_mondrian_thresholds_per_class():
    probs = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.1, 0.6, 0.3]])
    labels = np.array([0, 1, 1, 0])
    calibrator = ConformalCalibrator(randomized=False, score="lac").fit(probs, labels, alpha=0.4, mondrian=True)
    # class 0 scores 0.5, 0.9 -> ceil(3 * 0.6) = 2nd = 0.9; class 1 scores 0.7, 0.4 -> 0.7; class 2 has none.
    assert calibrator.qhat == pytest.approx([0.9, 0.7, math.inf])
    assert calibrator.num_calibration == [2, 2, 0]


def test_sets_never_empty_unless_asked():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(6), size=500)
    scores = conformity_scores(probs, "aps", rng=rng)
    tiny = np.full(6, 1e-3)  # a threshold so low that nearly every set would be empty
    sets = prediction_sets(scores, tiny, probs)
    assert set_sizes(sets).min() == 1
    np.testing.assert_array_equal(np.argmax(sets, axis=1)[set_sizes(sets) == 1][:5],
                                  np.argmax(probs, axis=1)[set_sizes(sets) == 1][:5])
    assert set_sizes(prediction_sets(scores, tiny, allow_empty=True)).min() == 0
    calibrator = ConformalCalibrator(score="raps").fit(probs[:250], rng.integers(0, 6, 250), alpha=0.9)
    assert set_sizes(calibrator.predict_sets(probs[250:])).min() >= 1


def test_top_class_always_conforms():
    pinned = top_class_conforms(conformity_scores(PROBS, "aps", randomized=False), PROBS)
    np.testing.assert_allclose(pinned, [[0.0, 0.8, 1.0], [1.0, 0.0, 0.9]])
    # Even a threshold of 0 keeps the most probable class, so no set is empty.
    calibrator = ConformalCalibrator(randomized=False).fit(PROBS, [0, 1], alpha=0.6)
    assert calibrator.qhat == [0.0] * 3
    np.testing.assert_array_equal(calibrator.predict_sets(PROBS), [[True, False, False], [False, True, False]])


def test_never_empty_sets_cover_at_least_the_accuracy():
    # A model right 95% of the time: at alpha = 0.2 the sets hold the top class alone.
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 4, 2000)
    probs = np.full((2000, 4), 0.05)
    top = np.where(rng.uniform(size=2000) < 0.95, labels, (labels + 1) % 4)
    probs[np.arange(2000), top] = 0.85
    calibrator = ConformalCalibrator().fit(probs[:1000], labels[:1000], alpha=0.2)
    sets = calibrator.predict_sets(probs[1000:])
    assert set_sizes(sets).max() == 1
    assert coverage(sets, labels[1000:]) == pytest.approx(np.mean(top[1000:] == labels[1000:]))


def _exchangeable(rng, n: int, k: int, prior=None):
    """Class probabilities and labels drawn from them: calibration and test pairs are i.i.d."""
    labels = rng.choice(k, size=n, p=prior) if prior is not None else None
    concentration = np.ones(k)
    probs = rng.dirichlet(concentration, size=n)
    if labels is None:
        labels = np.array([rng.choice(k, p=p) for p in probs])
    else:  # tilt each example towards its own class, so the scores depend on the label
        probs = 0.5 * probs + 0.5 * np.eye(k)[labels] * rng.uniform(0.2, 1.0, size=(n, 1))
        probs /= probs.sum(axis=1, keepdims=True)
    return probs, labels


@pytest.mark.parametrize("allow_empty", [True, False])
@pytest.mark.parametrize("score", ["lac", "aps", "raps"])
@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.2])
def test_coverage_within_binomial_tolerance(score, alpha, allow_empty):
    # Top-1 accuracy here is about 0.46, below every 1 - alpha, so even never-empty sets cover exactly.
    rng = np.random.default_rng(1)
    n_cal, n_test, repeats = 300, 300, 200
    rank = math.ceil((n_cal + 1) * (1 - alpha))
    # With continuous scores, the covered test count of one split is BetaBinomial(n_test, rank, n + 1 - rank).
    law = betabinom(n_test, rank, n_cal + 1 - rank)
    low, high = law.ppf(0.005), law.ppf(0.995)
    covered = []
    for _ in range(repeats):
        probs, labels = _exchangeable(rng, n_cal + n_test, 5)
        calibrator = ConformalCalibrator(score=score, allow_empty=allow_empty, seed=int(rng.integers(1 << 30)))
        calibrator.fit(probs[:n_cal], labels[:n_cal], alpha=alpha)
        covered.append(coverage(calibrator.predict_sets(probs[n_cal:]), labels[n_cal:]) * n_test)
    covered = np.array(covered)
    outside = np.mean((covered < low) | (covered > high))
    assert outside <= 0.04, f"{outside:.1%} of splits outside the central 99% interval [{low}, {high}]"
    mean_tolerance = 4 * law.std() / math.sqrt(repeats)
    assert abs(covered.mean() - law.mean()) <= mean_tolerance
    assert covered.mean() / n_test >= 1 - alpha - mean_tolerance / n_test


def test_mondrian_covers_every_class_of_imbalanced_data():
    rng = np.random.default_rng(2)
    prior = np.array([0.6, 0.2, 0.1, 0.07, 0.03])
    alpha, per_class = 0.1, [[] for _ in prior]
    marginal = [[] for _ in prior]
    for _ in range(100):
        probs, labels = _exchangeable(rng, 4000, 5, prior)
        for mondrian, store in ((True, per_class), (False, marginal)):
            calibrator = ConformalCalibrator(score="aps", mondrian=mondrian).fit(probs[:2000], labels[:2000], alpha)
            sets = calibrator.predict_sets(probs[2000:])
            for c in range(5):
                keep = labels[2000:] == c
                store[c].append(coverage(sets[keep], labels[2000:][keep]))
    per_class_mean = np.array([np.mean(c) for c in per_class])
    assert (per_class_mean >= 1 - alpha - 0.01).all(), per_class_mean
    # Marginal calibration lets the rarest class fall short, which Mondrian repairs.
    assert np.mean(marginal[4]) < per_class_mean[4]


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    probs, labels = _exchangeable(rng, 60, 4)
    calibrator = ConformalCalibrator(score="raps", lam=0.2, k_reg=2).fit(probs, labels, alpha=0.1, mondrian=True)
    path = calibrator.save(tmp_path / "conformal.json")
    loaded = ConformalCalibrator.load(path)
    assert loaded == calibrator
    np.testing.assert_array_equal(loaded.predict_sets(probs), calibrator.predict_sets(probs))


def test_infinite_threshold_survives_json(tmp_path):
    calibrator = ConformalCalibrator(randomized=False).fit(PROBS, [0, 1], alpha=0.05)
    assert calibrator.qhat == [math.inf] * 3
    loaded = ConformalCalibrator.load(calibrator.save(tmp_path / "c.json"))
    assert loaded.qhat == [math.inf] * 3
    assert loaded.predict_sets(PROBS).all()


def test_errors_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match=r"alpha: expected a miscoverage level in \(0, 1\)"):
        ConformalCalibrator().fit(PROBS, [0, 1], alpha=1.5)
    with pytest.raises(ValueError, match="score: expected one of lac, aps, raps"):
        ConformalCalibrator().fit(PROBS, [0, 1], alpha=0.1, score="thr")
    with pytest.raises(ValueError, match="not logits"):
        conformity_scores(np.array([[2.0, -1.0]]))
    with pytest.raises(ValueError, match=r"labels: expected indices in \[0, 3\)"):
        ConformalCalibrator().fit(PROBS, [0, 3], alpha=0.1)
    with pytest.raises(RuntimeError, match="not fitted"):
        ConformalCalibrator().predict_sets(PROBS)
    with pytest.raises(ValueError, match="expected K = 3 classes"):
        ConformalCalibrator().fit(PROBS, [0, 1], alpha=0.1).predict_sets(np.full((1, 4), 0.25))
    (tmp_path / "bad.json").write_text('{"format_version": 99}')
    with pytest.raises(ValueError, match="expected format_version 1"):
        ConformalCalibrator.load(tmp_path / "bad.json")


@pytest.mark.parametrize("mondrian", [False, True])
def test_one_calibration_answers_every_level_as_a_fresh_fit_would(mondrian):
    rng = np.random.default_rng(5)
    probs, labels = _exchangeable(rng, 400, 4)
    calibrator = ConformalCalibrator(score="raps", mondrian=mondrian).fit(probs, labels, alpha=0.1)
    for alpha in (0.05, 0.2, 0.5):
        fresh = ConformalCalibrator(score="raps", mondrian=mondrian).fit(probs, labels, alpha=alpha)
        assert calibrator.thresholds(alpha) == fresh.qhat
        np.testing.assert_array_equal(calibrator.predict_sets(probs, alpha=alpha), fresh.predict_sets(probs))
    assert calibrator.thresholds() == calibrator.thresholds(0.1) == calibrator.qhat


def test_levels_outside_the_calibrated_range_are_refused():
    rng = np.random.default_rng(6)
    probs, labels = _exchangeable(rng, 59, 3)
    calibrator = ConformalCalibrator().fit(probs, labels, alpha=0.1)
    assert calibrator.min_alpha == pytest.approx(1 / 60)
    assert math.isfinite(max(calibrator.thresholds(1 / 60)))  # rank ceil(60 * 59 / 60) = 59 = n: finite
    with pytest.raises(ValueError, match=r"0.01 is below the calibrated range \[0.0167, 1\).*59 calibration examples"):
        calibrator.thresholds(0.01)
    for alpha in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match=r"expected a miscoverage level in \(0, 1\)"):
            calibrator.thresholds(alpha)
    mondrian = ConformalCalibrator(mondrian=True).fit(probs, labels, alpha=0.1)
    assert mondrian.min_alpha == pytest.approx(1 / (max(mondrian.num_calibration) + 1))


def test_a_calibrator_saved_without_scores_answers_its_own_level_only(tmp_path):
    state = ConformalCalibrator(randomized=False).fit(PROBS, [0, 1], alpha=0.4).to_dict()
    del state["calibration_scores"], state["class_names"]  # as files written before they were kept
    old = ConformalCalibrator.from_dict(state)
    assert old.thresholds(0.4) == old.qhat
    with pytest.raises(ValueError, match=r"answers only its own level alpha=0.4, not 0.2; .*calibrate again"):
        old.thresholds(0.2)


def test_class_names_are_kept_and_a_different_model_is_refused(tmp_path):
    calibrator = ConformalCalibrator().fit(PROBS, [0, 1], alpha=0.4, class_names=["neutral", "happiness", "surprise"])
    loaded = ConformalCalibrator.load(calibrator.save(tmp_path / "c.json"))
    assert loaded.class_names == ["neutral", "happiness", "surprise"] and loaded == calibrator
    loaded.check_class_names(["neutral", "happiness", "surprise"])
    with pytest.raises(ValueError, match=r"calibrated on the classes \['neutral', 'happiness', 'surprise'\], but the "
                                         r"model has \['happiness', 'neutral', 'surprise'\]"):
        loaded.check_class_names(["happiness", "neutral", "surprise"])
    with pytest.raises(ValueError, match=r"calibrated on K = 3 classes .* but the model has K = 2"):
        loaded.check_class_names(["neutral", "happiness"])
    with pytest.raises(ValueError, match="class_names: expected 3 names"):
        ConformalCalibrator().fit(PROBS, [0, 1], alpha=0.4, class_names=["a", "b"])


def test_uniforms_drawn_per_example_make_a_set_independent_of_its_batch():
    rng = np.random.default_rng(7)
    probs, labels = _exchangeable(rng, 300, 5)
    calibrator = ConformalCalibrator(score="aps").fit(probs[:200], labels[:200], alpha=0.2)
    u = rng.uniform(size=100)
    together = calibrator.predict_sets(probs[200:], u=u)
    alone = np.concatenate([calibrator.predict_sets(probs[200 + i:201 + i], u=u[i:i + 1]) for i in range(100)])
    np.testing.assert_array_equal(together, alone)
