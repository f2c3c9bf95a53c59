"""Photos and clips composed from real FER+ faces, for the face and video tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np

try:
    import cv2
except ImportError:  # the tests that use it skip with a reason
    cv2 = None


SPLIT_FOLDERS = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}
#: Group photos: pasted face sides (px) and in-plane rotations (degrees, counter-clockwise).
GROUP_SCALES = (72, 100, 130)
GROUP_ANGLES = (-30.0, -15.0, 0.0, 15.0, 30.0)


def fer_faces(root: Path, count: int, start: int = 0, split: str = "test") -> list[np.ndarray]:
    """``count`` 48x48 greyscale FER+ faces of ``split`` (uint8), in file order from ``start``."""
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"split must be one of {tuple(SPLIT_FOLDERS)}, got {split!r}")
    files = sorted((root / SPLIT_FOLDERS[split]).glob("*.png"))[start:start + count]
    return [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]


def background(rng: np.random.Generator, height: int = 480, width: int = 640) -> np.ndarray:
    """A smooth random greyscale backdrop."""
    noise = (rng.random((height, width)) * 80 + 90).astype(np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 6)


def paste(scene: np.ndarray, face: np.ndarray, centre: tuple[float, float], side: int, angle: float) -> tuple[float, ...]:
    """Paste ``face`` scaled to ``side`` px, rotated ``angle`` degrees counter-clockwise, at ``centre``.

    Returns the face's true box (left, top, right, bottom): the unrotated square of the face.
    """
    f = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    M = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
    M[:, 2] += (centre[0] - side / 2, centre[1] - side / 2)
    h, w = scene.shape
    warped = cv2.warpAffine(f, M, (w, h))
    mask = cv2.warpAffine(np.full((side, side), 255, np.uint8), M, (w, h))
    scene[:] = np.where(mask > 127, warped, scene)
    return centre[0] - side / 2, centre[1] - side / 2, centre[0] + side / 2, centre[1] + side / 2


def group_photos(faces: list[np.ndarray], seed: int = 0) -> list[tuple[np.ndarray, list[tuple]]]:
    """Photos of three faces each, cycling through :data:`GROUP_SCALES` and :data:`GROUP_ANGLES`.

    Returns (640x480 greyscale photo, [(true box, angle, side, face) per face]) per photo.
    """
    rng = np.random.default_rng(seed)
    photos = []
    for start in range(0, len(faces), 3):
        scene = background(rng)
        truth = []
        for j, face in enumerate(faces[start:start + 3]):
            side = GROUP_SCALES[(start // 3 + j) % len(GROUP_SCALES)]
            angle = GROUP_ANGLES[(start + j) % len(GROUP_ANGLES)]
            centre = (110 + 210 * j + rng.uniform(-15, 15), 240 + rng.uniform(-80, 80))
            truth.append((paste(scene, face, centre, side, angle), angle, side, face))
        photos.append((scene, truth))
    return photos


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def best_match(box, found) -> tuple[object | None, float]:
    """The detected face (anything with a ``.box``) overlapping ``box`` most, and that IoU (0 when none)."""
    match = max(found, key=lambda f: iou(box, f.box), default=None)
    return match, (iou(box, match.box) if match is not None else 0.0)


def native_roll(face: np.ndarray, detector: str) -> float | None:
    """The face's own roll in its FER image, by the same detector and eye finder on the upright face."""
    from PIL import Image

    from bayes_fer.faces import find_faces

    big = Image.fromarray(cv2.resize(face, (192, 192), interpolation=cv2.INTER_CUBIC))
    found = find_faces(big, angles=(0.0,), detector=detector)
    return found[0].angle if found and found[0].landmarks == "eyes" else None


def write_clip(path: Path, faces: list[np.ndarray], seconds: float = 10.0, fps: int = 30, seed: int = 0) -> int:
    """A 640x480 clip of ``faces`` side by side, drifting slowly; returns the frame count."""
    rng = np.random.default_rng(seed)
    bg = background(rng)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    n = int(seconds * fps)
    for i in range(n):
        scene = bg.copy()
        for j, face in enumerate(faces):
            x = 170 + 300 * j + 20 * np.sin(2 * np.pi * i / (fps * 5))
            paste(scene, face, (x, 240.0), 140, 0.0)
        writer.write(cv2.cvtColor(scene, cv2.COLOR_GRAY2BGR))
    writer.release()
    return n
