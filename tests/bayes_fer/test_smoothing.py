"""Kalman filter and RTS smoother over latent intensities: hand-worked values and behaviour."""
from __future__ import annotations

import numpy as np
import pytest

from bayes_fer.smoothing import DEFAULT_PROCESS_NOISE, kalman_filter, rts_smoother


def test_one_kalman_update_by_hand():
    # z1 ~ N(0, 1); random walk adds q * dt = 0.5 * 2 = 1 -> prior N(0, 2); observation 3 with
    # variance 2: gain 2 / 4 = 0.5, mean 1.5, variance (1 - 0.5) * 2 = 1.
    mean, var = kalman_filter(np.array([0.0, 3.0]), np.array([1.0, 2.0]), times=np.array([0.0, 2.0]), process_noise=0.5)
    assert mean[:, 0].tolist() == pytest.approx([0.0, 1.5])
    assert var[:, 0].tolist() == pytest.approx([1.0, 1.0])


def test_one_rts_step_by_hand():
    # Continuing the filter above: smoother gain 1 / 2 at t = 0; the smoothed t = 1 is the
    # filtered one, so mean 0 + 0.5 * 1.5 = 0.75 and variance 1 + 0.25 * (1 - 2) = 0.75.
    mean, var = rts_smoother(np.array([0.0, 3.0]), np.array([1.0, 2.0]), times=np.array([0.0, 2.0]), process_noise=0.5)
    assert mean[:, 0].tolist() == pytest.approx([0.75, 1.5])
    assert var[:, 0].tolist() == pytest.approx([0.75, 1.0])


def test_static_sequence_smooths_to_the_precision_weighted_mean():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(12, 3))
    v = rng.uniform(0.2, 2.0, size=(12, 3))
    # No time passes between frames: the random walk never moves, z is one constant.
    mean, var = rts_smoother(m, v, times=np.zeros(12))
    precision = (1 / v).sum(0)
    np.testing.assert_allclose(mean, np.broadcast_to((m / v).sum(0) / precision, m.shape), rtol=1e-10)
    np.testing.assert_allclose(var, np.broadcast_to(1 / precision, m.shape), rtol=1e-10)


FPS, SECONDS, NOISE_SD = 30, 10, 0.5


def test_smoothing_cuts_jitter_on_a_static_face_fivefold():
    rng = np.random.default_rng(1)
    t = np.arange(FPS * SECONDS) / FPS
    m = 1.0 + NOISE_SD * rng.standard_normal(len(t))
    mean, _ = rts_smoother(m, np.full(len(t), NOISE_SD ** 2), t, DEFAULT_PROCESS_NOISE)
    jitter_raw, jitter_smooth = np.std(np.diff(m)), np.std(np.diff(mean[:, 0]))
    assert jitter_raw / jitter_smooth >= 5, (jitter_raw, jitter_smooth)


def test_smoothing_follows_a_step_within_half_a_second():
    rng = np.random.default_rng(2)
    t = np.arange(FPS * SECONDS) / FPS
    truth = np.where(t < 5.0, 0.0, 2.0)
    m = truth + NOISE_SD * rng.standard_normal(len(t))
    mean, _ = rts_smoother(m, np.full(len(t), NOISE_SD ** 2), t, DEFAULT_PROCESS_NOISE)
    # Within 25% of the step size everywhere from 0.5 s after the change (and before it).
    far = np.abs(mean[:, 0] - truth) > 0.5
    assert not far[t >= 5.5].any() and not far[t < 4.5].any()


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="variances must be finite and > 0"):
        kalman_filter(np.zeros(3), np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="both be"):
        kalman_filter(np.zeros((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match="non-decreasing"):
        rts_smoother(np.zeros(3), np.ones(3), times=np.array([0.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="process_noise must be > 0"):
        kalman_filter(np.zeros(3), np.ones(3), process_noise=0.0)
