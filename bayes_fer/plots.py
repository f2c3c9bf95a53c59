"""Figures of predictions over time: the only bayes_fer module that imports matplotlib.

Built on the Agg canvas with the object-oriented API (no pyplot, nothing shown); each
function returns ``(fig, ax)``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def intensity_timeline(rows: Sequence[dict], class_names: Sequence[str], face: int | None = None,
                       classes: Sequence[str] | None = None, top: int = 4) -> tuple[Figure, Axes]:
    """Latent intensities of one tracked face over time, per class.

    Per-frame means are drawn as faint dots; smoothed means as lines with their 90% credible
    bands when the rows carry them (``predict_video(..., smooth=True)``).

    Args:
        rows: rows from :func:`bayes_fer.video.predict_video`.
        class_names: the model's classes.
        face: the track id to draw (default: the track with the most rows).
        classes: classes to draw (default: the ``top`` with the highest mean intensity).
        top: how many classes to draw when ``classes`` is not given.
    """
    if not rows:
        raise ValueError("no rows to plot: the video gave no face")
    ids = [r["face"] for r in rows]
    face = max(set(ids), key=ids.count) if face is None else face
    track = [r for r in rows if r["face"] == face]
    if not track:
        raise ValueError(f"no rows for face {face}; faces present: {sorted(set(ids))}")
    t = np.array([r["time"] for r in track])
    if classes is None:
        means = {c: np.mean([r[f"loc/{c}"] for r in track]) for c in class_names}
        classes = sorted(class_names, key=lambda c: -means[c])[:top]
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    smoothed = f"smooth_loc/{classes[0]}" in track[0]
    for i, c in enumerate(classes):
        colour = f"C{i}"
        ax.plot(t, [r[f"loc/{c}"] for r in track], ".", ms=2, alpha=0.35 if smoothed else 0.9, color=colour,
                label=None if smoothed else c)
        if smoothed:
            ax.plot(t, [r[f"smooth_loc/{c}"] for r in track], color=colour, lw=1.5, label=c)
            ax.fill_between(t, [r[f"smooth_lo/{c}"] for r in track], [r[f"smooth_hi/{c}"] for r in track],
                            color=colour, alpha=0.2, lw=0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("latent intensity z")
    ax.set_title(f"face {face}: per-frame means" + (" (dots), smoothed with 90% bands" if smoothed else ""))
    ax.legend(loc="upper right", fontsize=8, ncols=len(classes))
    return fig, ax
