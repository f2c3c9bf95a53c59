"""Faces in photos: detection, eye-based alignment and crops framed like the training faces.

Detection runs OpenCV's bundled Haar cascades (``pip install "bayes-fer[faces]"``; the
cascade files ship inside the ``opencv-python-headless`` 4.x wheel, nothing is downloaded).
A frontal cascade finds faces within about +-15 degrees of upright, so the photo is also
searched rotated by :data:`SEARCH_ANGLES`; detections of one face at several angles are
merged. Inside each face, an eye cascade locates both eyes; the eye line gives the face's
in-plane roll, and :func:`aligned_crop` rotates the face upright and frames it the way
FER2013 frames its faces (eyes :data:`EYE_DISTANCE` of the side apart, their midpoint at
:data:`EYE_HEIGHT` of the side from the top, measured on FER+ faces). Where the eyes are not
both found, the roll is the search angle the face was detected at and the crop is framed
from the detector's box.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

#: Angles (degrees, counter-clockwise) the photo is searched at: faces rolled up to about
#: +-35 degrees are found.
SEARCH_ANGLES: tuple[float, ...] = (0.0, -20.0, 20.0)
#: FER2013 framing, measured with the eye cascade on 155 FER+ test faces (medians):
EYE_DISTANCE = 0.377  # inter-ocular distance / crop side
EYE_HEIGHT = 0.387  # eye midpoint's distance from the top / crop side
BOX_TO_CROP = 1.045  # FER crop side / the face cascade's box side on FER faces
MIN_NEIGHBOURS = 4  # the cascade's vote threshold: lower finds more faces and more false ones


def _cv2():
    try:
        import cv2
    except ImportError as e:
        raise ImportError(
            'face detection needs OpenCV: pip install "bayes-fer[faces]" (opencv-python-headless<5), '
            "or pass face crops and leave detection off"
        ) from e
    return cv2


@lru_cache(maxsize=4)
def _cascade(name: str):
    cv2 = _cv2()
    path = cv2.data.haarcascades + name
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV's bundled cascade could not be loaded from {path}; OpenCV 5 wheels no longer "
                           'ship the cascades: pip install "opencv-python-headless<5"')
    return cascade


@dataclass(frozen=True)
class Face:
    """One face found in a photo.

    Attributes:
        box: (left, top, right, bottom) of the face in the photo, axis-aligned, in pixels.
        score: how many overlapping raw detections the cascade made for it (higher: surer).
        angle: the face's in-plane roll in degrees: the eye line's angle, positive when the
            face is turned clockwise in the picture; :func:`aligned_crop` undoes it.
        left_eye: (x, y) of the eye on the picture's left, or None when the eyes were not found.
        right_eye: (x, y) of the eye on the picture's right, or None.
        landmarks: ``"eyes"`` when the roll and framing come from both eyes, ``"box"`` when
            they come from the detection alone.
    """

    box: tuple[int, int, int, int]
    score: float
    angle: float
    left_eye: tuple[float, float] | None = None
    right_eye: tuple[float, float] | None = None
    landmarks: str = "box"

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        d = {"box": list(self.box), "score": self.score, "angle": round(self.angle, 2), "landmarks": self.landmarks}
        if self.left_eye is not None and self.right_eye is not None:
            d["left_eye"] = [round(v, 1) for v in self.left_eye]
            d["right_eye"] = [round(v, 1) for v in self.right_eye]
        return d


def _rotation(center: tuple[float, float], angle: float) -> np.ndarray:
    """2x3 affine matrix rotating by ``angle`` degrees counter-clockwise about ``center``."""
    return _cv2().getRotationMatrix2D((float(center[0]), float(center[1])), float(angle), 1.0)


def _apply(M: np.ndarray, x: float, y: float) -> tuple[float, float]:
    return float(M[0, 0] * x + M[0, 1] * y + M[0, 2]), float(M[1, 0] * x + M[1, 1] * y + M[1, 2])


def box_iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _raw_detections(grey: np.ndarray, angles, min_size: int) -> list[tuple[float, float, float, float, float]]:
    """(centre x, centre y, side, search angle, neighbours) per detection, in photo coordinates."""
    cv2 = _cv2()
    h, w = grey.shape
    found = []
    for a in angles:
        M = _rotation((w / 2, h / 2), a)
        img = grey if a == 0 else cv2.warpAffine(grey, M, (w, h), borderMode=cv2.BORDER_REPLICATE)
        inv = cv2.invertAffineTransform(M)
        boxes, neighbours = _cascade("haarcascade_frontalface_default.xml").detectMultiScale2(
            img, scaleFactor=1.1, minNeighbors=MIN_NEIGHBOURS, minSize=(min_size, min_size))
        for (x, y, s, _), n in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(neighbours).reshape(-1)):
            cx, cy = _apply(inv, x + s / 2, y + s / 2)
            found.append((cx, cy, float(s), float(a), float(n)))
    return found


def _find_eyes(grey: np.ndarray, cx: float, cy: float, side: float, angle: float):
    """Both eyes of the face at (cx, cy), searched in the face rotated upright by ``angle``.

    Returns (left eye, right eye) in photo coordinates, or None.
    """
    cv2 = _cv2()
    # Upright patch of the face, scaled so the face is 96 px: the eye cascade's sweet spot.
    scale = 96.0 / side
    M = _rotation((cx, cy), angle)
    M[:, :] *= scale
    M[:, 2] += (48 - cx * scale, 48 - cy * scale)
    patch = cv2.warpAffine(grey, M, (96, 96), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    upper = patch[:60]  # eyes lie in the upper part of a face box
    eyes = _cascade("haarcascade_eye.xml").detectMultiScale(upper, scaleFactor=1.1, minNeighbors=3, minSize=(12, 12))
    eyes = np.asarray(eyes).reshape(-1, 4)
    left = [e for e in eyes if e[0] + e[2] / 2 < 48]
    right = [e for e in eyes if e[0] + e[2] / 2 >= 48]
    if not left or not right:
        return None
    best = None
    for lx, ly, lw, lh in left:
        for rx, ry, rw, rh in right:
            lc = (lx + lw / 2, ly + lh / 2)
            rc = (rx + rw / 2, ry + rh / 2)
            dist = math.hypot(rc[0] - lc[0], rc[1] - lc[1])
            tilt = abs(math.degrees(math.atan2(rc[1] - lc[1], rc[0] - lc[0])))
            # A plausible pair: 25-60% of the face apart, within 20 degrees of level (the
            # search angle is within 10), similar sizes; prefer the largest, most level pair.
            if not (24 <= dist <= 58 and tilt <= 20 and 0.6 <= lw / rw <= 1 / 0.6):
                continue
            key = (lw + rw) - tilt
            if best is None or key > best[0]:
                best = (key, lc, rc)
    if best is None:
        return None
    inv = cv2.invertAffineTransform(M)
    return _apply(inv, *best[1]), _apply(inv, *best[2])


def find_faces(img: Image.Image, min_size: int = 24, angles: tuple[float, ...] = SEARCH_ANGLES,
               find_eyes: bool = True) -> list[Face]:
    """Every face in ``img``, largest first; an empty list means no face was found.

    Args:
        img: the photo (any PIL mode).
        min_size: smallest face side searched, in pixels.
        angles: rotations the photo is searched at (degrees, counter-clockwise).
        find_eyes: locate the eyes for the roll and framing (else the detection angle is used).
    """
    grey = np.asarray(img.convert("L"))
    raw = sorted(_raw_detections(grey, angles, min_size), key=lambda d: -d[4])
    kept: list[tuple[float, float, float, float, float]] = []
    for d in raw:  # one face seen at several search angles: keep its strongest detection
        box = (d[0] - d[2] / 2, d[1] - d[2] / 2, d[0] + d[2] / 2, d[1] + d[2] / 2)
        if all(box_iou(box, (k[0] - k[2] / 2, k[1] - k[2] / 2, k[0] + k[2] / 2, k[1] + k[2] / 2)) < 0.3 for k in kept):
            kept.append(d)
    faces = []
    for cx, cy, side, angle, n in kept:
        # The search rotated the photo counter-clockwise by `angle` to make the face upright,
        # so the face is rolled clockwise by `angle`.
        roll, eyes = angle, _find_eyes(grey, cx, cy, side, angle) if find_eyes else None
        if eyes is not None:
            (lx, ly), (rx, ry) = eyes
            roll = math.degrees(math.atan2(ry - ly, rx - lx))
        box = (int(round(max(0, cx - side / 2))), int(round(max(0, cy - side / 2))),
               int(round(min(img.width, cx + side / 2))), int(round(min(img.height, cy + side / 2))))
        faces.append(Face(box, n, roll, eyes[0] if eyes else None, eyes[1] if eyes else None,
                          "eyes" if eyes else "box"))
    return sorted(faces, key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


def crop_frame(face: Face) -> tuple[tuple[float, float], float]:
    """Centre and side of the FER-style square crop of ``face``, in the upright face's frame."""
    if face.left_eye is not None and face.right_eye is not None:
        (lx, ly), (rx, ry) = face.left_eye, face.right_eye
        side = math.hypot(rx - lx, ry - ly) / EYE_DISTANCE
        mx, my = (lx + rx) / 2, (ly + ry) / 2
        # The crop centre lies (0.5 - EYE_HEIGHT) * side below the eye midpoint, along the
        # face's own downward direction.
        t = math.radians(face.angle)
        down = (0.5 - EYE_HEIGHT) * side
        return (mx - math.sin(t) * down, my + math.cos(t) * down), side
    l, t_, r, b = face.box
    return ((l + r) / 2, (t_ + b) / 2), max(r - l, b - t_) * BOX_TO_CROP


def aligned_crop(img: Image.Image, face: Face, size: int | None = None) -> Image.Image:
    """The face rotated upright (eyes level) and cropped as FER2013 frames its faces.

    Args:
        img: the photo ``face`` was found in.
        face: from :func:`find_faces`.
        size: side of the returned square in pixels (default: the face's own size in the photo).
    """
    cv2 = _cv2()
    (cx, cy), side = crop_frame(face)
    out = int(size or max(8, round(side)))
    scale = out / side
    M = _rotation((cx, cy), face.angle)
    M[:, :] *= scale
    M[:, 2] += (out / 2 - cx * scale, out / 2 - cy * scale)
    arr = np.asarray(img.convert("RGB"))
    warped = cv2.warpAffine(arr, M, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return Image.fromarray(warped)


def detect_faces(img: Image.Image, margin: float = 0.2, min_size: int = 24) -> list[tuple[int, int, int, int]]:
    """Face boxes (left, top, right, bottom), each enlarged by ``margin`` of its side and
    clipped to the image, largest first. An empty list means no face was found."""
    boxes = []
    for f in find_faces(img, min_size=min_size, find_eyes=False):
        x0, y0, x1, y1 = f.box
        dx, dy = int((x1 - x0) * margin), int((y1 - y0) * margin)
        boxes.append((max(0, x0 - dx), max(0, y0 - dy), min(img.width, x1 + dx), min(img.height, y1 + dy)))
    return boxes
