"""Choosing the class base rates to predict under, on a validation split.

A model trained with the training base rates in its likelihood (``--class-prior train``)
learns class-balanced intensities z; predicting with z + tau * log pi moves between the
balanced rule (tau = 0: best mean recall of a perfectly fitted model) and the base-rate rule
(tau = 1: best accuracy on data with the training frequencies). A network that has fitted
the rare classes less well than the common ones (short training, few examples) can do
better still below 0, favouring the rare classes beyond uniform: the post-hoc logit
adjustment of Menon et al. (ICLR 2021) tunes its strength for this reason. The grid
therefore spans [-1, 1]; the choice is made on validation data.
"""
from __future__ import annotations

import numpy as np

from evaluation import metrics as cm

#: The powers tried: from rare classes favoured (-1) through balanced (0) to the training base rates (1).
POWER_GRID = tuple(np.round(np.linspace(-1.0, 1.0, 41), 2))


def select_prior_power(loc, labels, log_base_rates, grid=POWER_GRID) -> tuple[float, list[dict]]:
    """The power tau of the training base rates that maximises the mean of accuracy and
    balanced accuracy of ``argmax(loc + tau * log_base_rates)``; ties go to the larger tau.

    Args:
        loc: (N, K) posterior means of the intensities on a validation split.
        labels: (N,) class indices.
        log_base_rates: (K,) log class base rates of training.
        grid: powers to try, each in [-1, 1].

    Returns:
        ``(tau, table)``: the chosen power and, per power, its accuracy and balanced accuracy.
    """
    loc, labels = np.asarray(loc, dtype=np.float64), np.asarray(labels)
    rates = np.asarray(log_base_rates, dtype=np.float64)
    if loc.ndim != 2 or rates.shape != (loc.shape[1],) or labels.shape != (loc.shape[0],):
        raise ValueError(f"expected loc (N, K), labels (N,) and log_base_rates (K,), got {loc.shape}, "
                         f"{labels.shape} and {rates.shape}")
    table, best, best_score = [], None, -np.inf
    for tau in grid:
        if not -1.0 <= tau <= 1.0:
            raise ValueError(f"powers must lie in [-1, 1], got {tau}")
        pred = np.argmax(loc + tau * rates, axis=1)
        one_hot = np.eye(loc.shape[1])[pred]
        acc = float(np.mean(pred == labels))
        bal = cm.balanced_accuracy(one_hot, labels)
        table.append({"power": float(tau), "accuracy": acc, "balanced_accuracy": bal})
        if (acc + bal) / 2 >= best_score:
            best, best_score = float(tau), (acc + bal) / 2
    return best, table
