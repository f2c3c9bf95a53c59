"""Videos: read frames, find and track faces, predict each face in each frame, smooth over time.

    >>> from bayes_fer.predictive import Predictor
    >>> from bayes_fer.video import predict_video
    >>> rows = predict_video(Predictor.pretrained(), "clip.mp4", smooth=True)

Frames are read with OpenCV (its wheels bundle FFmpeg: mp4, avi, mov, mkv, webm, ...).
Faces are detected every ``detect_every`` frames (:func:`bayes_fer.faces.find_faces`) and
followed in between: a track keeps its last aligned face until the next detection, where
detections join the track whose box overlaps theirs most (IoU >= ``TRACK_IOU``). Every
frame gives one row per tracked face: ``frame``, ``time``, ``face`` (the track id), the box,
per-class probabilities, intensity means and spreads; with ``smooth=True`` also the
Kalman/RTS-smoothed intensities with their 90% credible bands (:mod:`bayes_fer.smoothing`)
and the class probabilities under them.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from bayes_fer.faces import Face, aligned_crop, box_iou, find_faces
from bayes_fer.smoothing import DEFAULT_PROCESS_NOISE, rts_smoother

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}
TRACK_IOU = 0.3  # a detection continues a track when their boxes overlap at least this much
MAX_MISSES = 2  # detection rounds a track survives without being seen (the detector blinks)
DEFAULT_DETECT_EVERY = 5
Z90 = 1.6448536269514722  # a 90% central credible band is mean +- Z90 * sd


def is_video(path: str | os.PathLike) -> bool:
    """True for file names with a common video container suffix."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def iter_frames(path: str | os.PathLike) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, time in seconds, RGB uint8 frame (H, W, 3)) for every frame of a video.

    Raises:
        FileNotFoundError: no such file.
        ValueError: OpenCV cannot open it as a video.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"{path}: OpenCV could not open it as a video (is it a video file, and complete?)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and fps > 0 else 30.0  # some containers carry no rate: assume the common one
    try:
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            yield i, i / fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        cap.release()


def video_info(path: str | os.PathLike) -> tuple[int, float]:
    """(frame count as the container states it, frames per second)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), float(cap.get(cv2.CAP_PROP_FPS) or 30.0)
    finally:
        cap.release()


@dataclass
class Track:
    """A face followed across frames."""

    id: int
    face: Face
    misses: int = 0


@dataclass
class IoUTracker:
    """Greedy box association: each detection joins the unclaimed track it overlaps most."""

    min_iou: float = TRACK_IOU
    max_misses: int = MAX_MISSES
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 0

    def update(self, faces: list[Face]) -> list[Track]:
        """Match this round's detections to the tracks; returns the live tracks."""
        pairs = sorted(((box_iou(t.face.box, f.box), ti, fi) for ti, t in enumerate(self.tracks) for fi, f in enumerate(faces)),
                       reverse=True)
        used_t, used_f = set(), set()
        for overlap, ti, fi in pairs:
            if overlap < self.min_iou or ti in used_t or fi in used_f:
                continue
            self.tracks[ti].face, self.tracks[ti].misses = faces[fi], 0
            used_t.add(ti)
            used_f.add(fi)
        for ti, t in enumerate(self.tracks):
            if ti not in used_t:
                t.misses += 1
        self.tracks = [t for t in self.tracks if t.misses <= self.max_misses]
        for fi, f in enumerate(faces):
            if fi not in used_f:
                self.tracks.append(Track(self.next_id, f))
                self.next_id += 1
        return self.tracks


def training_colour(img: Image.Image, dataset: str | None) -> Image.Image:
    """Greyscale for models trained on greyscale faces (FER2013, FER+), else as is."""
    return img.convert("L") if dataset in ("ferplus", "fer2013") else img


def predict_video(predictor, path: str | os.PathLike, num_samples: int = 30, detect_every: int = DEFAULT_DETECT_EVERY,
                  batch_frames: int = 32, smooth: bool = False, process_noise: float = DEFAULT_PROCESS_NOISE,
                  progress: bool = True) -> list[dict]:
    """One row per frame and tracked face (see the module docstring); no row for frames without a face.

    Args:
        predictor: a :class:`~bayes_fer.predictive.Predictor`.
        path: the video file.
        num_samples: Monte-Carlo draws per face.
        detect_every: run the detector on every n-th frame and track in between (1: every frame).
        batch_frames: frames whose faces go through the network together.
        smooth: add Kalman/RTS-smoothed intensities (``smooth_loc/``, ``smooth_lo/``, ``smooth_hi/``,
            ``smooth_prob/`` columns).
        process_noise: the random walk's variance per second (see :mod:`bayes_fer.smoothing`).
        progress: show a progress bar.
    """
    if detect_every < 1:
        raise ValueError(f"detect_every must be >= 1, got {detect_every}")
    dataset = predictor.data_config.get("dataset")
    tracker = IoUTracker()
    rows: list[dict] = []
    pending: list[tuple[torch.Tensor, dict]] = []

    def flush() -> None:
        if not pending:
            return
        result = predictor.predict_batch(torch.stack([x for x, _ in pending]), num_samples)
        for i, (_, row) in enumerate(pending):
            for k, name in enumerate(result.class_names):
                row[f"prob/{name}"] = float(result.probs[i, k])
            for k, name in enumerate(result.class_names):
                row[f"loc/{name}"] = float(result.loc[i, k])
            for k, name in enumerate(result.class_names):
                row[f"scale/{name}"] = float(result.scale[i, k])
            row["prediction"] = result.class_names[int(result.prediction[i])]
            rows.append(row)
        pending.clear()

    total, _ = video_info(path)
    frames = iter_frames(path)
    for index, time, rgb in tqdm(frames, total=total or None, desc="frames", unit="frame", disable=not progress or None):
        img = Image.fromarray(rgb)
        if index % detect_every == 0:
            tracker.update(find_faces(img))
        for track in tracker.tracks:  # a track unseen for up to MAX_MISSES rounds keeps its last face
            crop = training_colour(aligned_crop(img, track.face), dataset)
            x0, y0, x1, y1 = track.face.box
            row = {"frame": index, "time": round(time, 4), "face": track.id, "x0": x0, "y0": y0, "x1": x1, "y1": y1,
                   "landmarks": track.face.landmarks}
            pending.append((predictor.preprocess(crop), row))
        if index % batch_frames == batch_frames - 1:
            flush()
    flush()
    if smooth:
        add_smoothing(rows, predictor.class_names, process_noise, predictor.model.log_prediction_rates.cpu().numpy())
    return rows


def add_smoothing(rows: list[dict], class_names: list[str], process_noise: float = DEFAULT_PROCESS_NOISE,
                  log_rates: np.ndarray | None = None, num_samples: int = 200, seed: int = 0) -> None:
    """Add smoothed intensities, 90% bands and probabilities to ``rows`` in place, per track."""
    rng = np.random.default_rng(seed)
    log_rates = np.zeros(len(class_names)) if log_rates is None else np.asarray(log_rates, dtype=np.float64)
    for face in sorted({r["face"] for r in rows}):
        track = [r for r in rows if r["face"] == face]  # rows are in frame order
        times = np.array([r["time"] for r in track])
        loc = np.array([[r[f"loc/{c}"] for c in class_names] for r in track])
        var = np.array([[r[f"scale/{c}"] for c in class_names] for r in track]) ** 2
        var = np.maximum(var, 1e-8)  # deterministic heads report zero spread
        mean, s_var = rts_smoother(loc, var, times, process_noise)
        sd = np.sqrt(s_var)
        z = mean[None] + sd[None] * rng.standard_normal((num_samples, *mean.shape))  # (S, T, K)
        logits = z + log_rates
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs = (probs / probs.sum(-1, keepdims=True)).mean(0)  # (T, K)
        for t, r in enumerate(track):
            for k, c in enumerate(class_names):
                r[f"smooth_loc/{c}"] = float(mean[t, k])
                r[f"smooth_lo/{c}"] = float(mean[t, k] - Z90 * sd[t, k])
                r[f"smooth_hi/{c}"] = float(mean[t, k] + Z90 * sd[t, k])
            for k, c in enumerate(class_names):
                r[f"smooth_prob/{c}"] = float(probs[t, k])


# -- command line (python -m bayes_fer.predict clip.mp4 ...) -----------------------------------
def add_arguments(parser) -> None:
    """The video flags of ``python -m bayes_fer.predict``."""
    parser.add_argument("--smooth", action="store_true",
                        help="videos: add Kalman/RTS-smoothed intensities with 90%% credible bands (off by default)")
    parser.add_argument("--process-noise", type=float, default=DEFAULT_PROCESS_NOISE,
                        help="videos: variance per second of the intensities' random walk; smaller is smoother "
                             "(default: %(default)s)")
    parser.add_argument("--detect-every", type=int, default=DEFAULT_DETECT_EVERY,
                        help="videos: detect faces on every n-th frame and track them in between (default: %(default)s)")
    parser.add_argument("--plot", help="videos: write a PNG of the intensities over time of the most-seen face")


def run(args, predictor, videos: list[str]) -> tuple[list[dict], int]:
    """Predict ``videos`` for the command line: prints a summary per video; returns (rows, faces seen)."""
    all_rows: list[dict] = []
    for path in videos:
        try:
            rows = predict_video(predictor, path, num_samples=min(args.num_samples, 30), detect_every=args.detect_every,
                                 smooth=args.smooth, process_noise=args.process_noise)
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}")
            all_rows.append({"path": str(path), "error": str(e)})
            continue
        if not rows:
            print(f"{path}: no face found")
            all_rows.append({"path": str(path), "error": "no face found"})
            continue
        for r in rows:
            r["path"] = str(path)
        faces = sorted({r["face"] for r in rows})
        frames = len({r["frame"] for r in rows})
        print(f"{path}: {len(rows)} rows, {frames} frames with a face, {len(faces)} track(s)")
        for f in faces:
            track = [r for r in rows if r["face"] == f]
            mean = {c: np.mean([r[f"prob/{c}"] for r in track]) for c in predictor.class_names}
            best = sorted(mean, key=lambda c: -mean[c])[:3]
            print(f"  face {f}: {track[0]['time']:.2f}-{track[-1]['time']:.2f} s, mean probabilities "
                  + ", ".join(f"{c} {mean[c]:.2f}" for c in best))
        if args.plot and not any("error" not in r for r in all_rows):
            from bayes_fer.plots import intensity_timeline

            fig, _ = intensity_timeline(rows, predictor.class_names)
            fig.savefig(args.plot, dpi=110)
            print(f"plot written to {args.plot}")
        all_rows.extend(rows)
    return all_rows, sum(1 for r in all_rows if "error" not in r)
