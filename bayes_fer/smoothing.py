"""Temporal smoothing of latent expression intensities as Bayesian filtering.

Each class intensity of one tracked face is a scalar state z_t with a Gaussian random-walk
prior, and each frame's guide output (mean m_t, variance v_t) is a Gaussian observation:

    z_1 ~ Normal(m_1, v_1)                          (the first frame sets the start)
    z_t | z_{t-1} ~ Normal(z_{t-1}, q * dt_t)        random walk, q = process noise per second
    m_t | z_t ~ Normal(z_t, v_t)                     the network's read-out of frame t

The Kalman filter gives p(z_t | m_1..m_t); the Rauch-Tung-Striebel smoother gives
p(z_t | m_1..m_T). Classes are independent, so everything is elementwise over a (T, K) array.
"""
from __future__ import annotations

import numpy as np

DEFAULT_PROCESS_NOISE = 1.0  # variance of the intensity random walk per second


def _check(means: np.ndarray, variances: np.ndarray, times: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = np.asarray(means, dtype=np.float64)
    v = np.asarray(variances, dtype=np.float64)
    if m.ndim == 1:
        m, v = m[:, None], v.reshape(-1, 1)
    if m.shape != v.shape or m.ndim != 2:
        raise ValueError(f"means and variances must both be (T,) or (T, K) arrays, got {m.shape} and {v.shape}")
    if (v <= 0).any() or not np.isfinite(v).all() or not np.isfinite(m).all():
        raise ValueError("observation variances must be finite and > 0 and means finite")
    t = np.arange(len(m), dtype=np.float64) if times is None else np.asarray(times, dtype=np.float64)
    if t.shape != (len(m),) or (np.diff(t) < 0).any():
        raise ValueError(f"times must be {len(m)} non-decreasing numbers (seconds), got shape {t.shape}")
    return m, v, t


def kalman_filter(means: np.ndarray, variances: np.ndarray, times: np.ndarray | None = None,
                  process_noise: float = DEFAULT_PROCESS_NOISE) -> tuple[np.ndarray, np.ndarray]:
    """Filtered means and variances of z_t given the frames up to t.

    Args:
        means: (T,) or (T, K) per-frame intensity means from the guide.
        variances: the matching per-frame variances (the guide's scale squared).
        times: (T,) frame times in seconds (default 0, 1, 2, ...).
        process_noise: q, the random walk's variance per second (> 0; small: smoother).

    Returns:
        (T, K) filtered means and (T, K) filtered variances.
    """
    if not process_noise > 0:
        raise ValueError(f"process_noise must be > 0, got {process_noise}")
    m, v, t = _check(means, variances, times)
    mean, var = np.empty_like(m), np.empty_like(v)
    mean[0], var[0] = m[0], v[0]
    for i in range(1, len(m)):
        prior_var = var[i - 1] + process_noise * (t[i] - t[i - 1])
        gain = prior_var / (prior_var + v[i])
        mean[i] = mean[i - 1] + gain * (m[i] - mean[i - 1])
        var[i] = (1 - gain) * prior_var
    return mean, var


def rts_smoother(means: np.ndarray, variances: np.ndarray, times: np.ndarray | None = None,
                 process_noise: float = DEFAULT_PROCESS_NOISE) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed means and variances of z_t given all frames (Kalman filter, then RTS pass).

    Same arguments and shapes as :func:`kalman_filter`.
    """
    m, v, t = _check(means, variances, times)
    f_mean, f_var = kalman_filter(m, v, t, process_noise)
    s_mean, s_var = f_mean.copy(), f_var.copy()
    for i in range(len(m) - 2, -1, -1):
        prior_var = f_var[i] + process_noise * (t[i + 1] - t[i])
        gain = f_var[i] / prior_var
        s_mean[i] = f_mean[i] + gain * (s_mean[i + 1] - f_mean[i])
        s_var[i] = f_var[i] + gain ** 2 * (s_var[i + 1] - prior_var)
    return s_mean, s_var
