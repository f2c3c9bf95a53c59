"""Optional face detection for raw photos, with OpenCV's bundled Haar cascade.

The cascade ships inside the ``opencv-python-headless`` wheel (``pip install
"bayes-fer[faces]"``); nothing is downloaded at run time.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image


@lru_cache(maxsize=1)
def _cascade():
    try:
        import cv2
    except ImportError as e:
        raise ImportError(
            'face detection needs OpenCV: pip install "bayes-fer[faces]" (opencv-python-headless), '
            "or pass face crops and leave detection off"
        ) from e
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV's bundled face cascade could not be loaded from {path}")
    return cascade


def detect_faces(img: Image.Image, margin: float = 0.2, min_size: int = 24) -> list[tuple[int, int, int, int]]:
    """Face boxes (left, top, right, bottom), each enlarged by ``margin`` of its side and
    clipped to the image, largest first. An empty list means no face was found."""
    grey = np.asarray(img.convert("L"))
    found = _cascade().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    boxes = []
    for x, y, w, h in sorted((tuple(int(v) for v in f) for f in found), key=lambda f: -f[2] * f[3]):
        dx, dy = int(w * margin), int(h * margin)
        boxes.append((max(0, x - dx), max(0, y - dy), min(img.width, x + w + dx), min(img.height, y + h + dy)))
    return boxes
