"""Faces in photos: detection, eye-based alignment and crops framed like the training faces.

Detection runs MTCNN (:mod:`bayes_fer.mtcnn`, Zhang et al. 2016), whose weights come with
the ``mtcnn`` package (``pip install "bayes-fer[faces]"``; nothing is downloaded). Its
networks miss some faces rolled by more than about 20 degrees, so the photo is also
searched rotated by :data:`SEARCH_ANGLES`. Each face found is looked at again by MTCNN's
last network in a crop turned upright by its eye line, twice (:data:`EXAMINE_PASSES`),
which makes its five landmarks (eyes, nose, mouth corners) markedly steadier on rolled
faces and decides whether it is a face (:data:`MIN_SCORE`). The eye line gives the face's
in-plane roll, and :func:`aligned_crop` rotates the face upright and frames it the way
FER2013 frames its faces: eyes :data:`EYE_DISTANCE` of the side apart, their midpoint at
:data:`EYE_HEIGHT` of the side from the top, the mouth :data:`EYE_TO_MOUTH` of the side
below the eyes (measured on FER+ faces). ``Face.box`` is that crop's square in the photo.

Without the ``mtcnn`` package, OpenCV's bundled Haar cascades detect the faces instead
(``detector="haar"``): a frontal cascade at the same search angles, and an eye cascade for
the roll; where it does not find both eyes, the roll is the search angle the face was
detected at and the crop is framed from the cascade's box.
"""
from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from bayes_fer.mtcnn import MTCNN

#: Angles (degrees, counter-clockwise) the photo is searched at. Of 300 FER+ validation faces
#: pasted rolled by up to +-30 degrees, MTCNN finds 0.91 in the upright photo alone and 0.97
#: searching these three angles (a box centred within half the face's side:
#: ``benchmarks/bench_faces.py``); five (every 15 degrees) find one face more, take longer and
#: frame worse (recall at IoU 0.5: 0.893 against 0.897).
SEARCH_ANGLES: tuple[float, ...] = (0.0, -20.0, 20.0)
#: FER2013 framing, medians over FER+ faces. The eye cascade gave the first two on 155 test
#: faces; MTCNN's landmarks agree (0.373 and 0.385 on 300 validation faces) and give the rest.
EYE_DISTANCE = 0.377  # inter-ocular distance / crop side
EYE_HEIGHT = 0.387  # eye midpoint's distance from the top / crop side
EYE_TO_MOUTH = 0.410  # eye midpoint to mouth midpoint, along the face / crop side
LARGER_OF_TWO = 1.04  # the larger of the eye and mouth estimates of the side / the crop side
BOX_TO_CROP = 1.045  # FER crop side / the face cascade's box side on FER faces
MIN_NEIGHBOURS = 4  # the cascade's vote threshold: lower finds more faces and more false ones
# MTCNN's stage thresholds are lower than the paper's (0.6, 0.7, 0.8) so that rolled faces
# reach the upright looks, which decide; chosen on FER+ validation faces and photos
# without faces.
MTCNN_THRESHOLDS = (0.3, 0.3, 0.5)
# Upright looks, each turned by the last one's eye line: with one, 0.984 of the eye lines of
# FER+ validation faces are within 5 degrees of the truth, with two 0.989.
EXAMINE_PASSES = 2
MIN_SCORE = 0.7  # the last upright look's face probability a face needs (a collar scored 0.51)
DETECTORS = ("mtcnn", "haar")


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
        box: (left, top, right, bottom) of the face in the photo, axis-aligned, in pixels:
            the square :func:`aligned_crop` frames, clipped to the photo.
        score: MTCNN: its last network's face probability for the upright face; Haar: how
            many overlapping raw detections the cascade made for it (higher: surer).
        angle: the face's in-plane roll in degrees: the eye line's angle, positive when the
            face is turned clockwise in the picture; :func:`aligned_crop` undoes it.
        left_eye: (x, y) of the eye on the picture's left, or None when the eyes were not found.
        right_eye: (x, y) of the eye on the picture's right, or None.
        landmarks: ``"eyes"`` when the roll and framing come from the landmarks, ``"box"`` when
            they come from the detection alone.
        mouth: (x, y) midway between the mouth corners (MTCNN only), or None.
    """

    box: tuple[int, int, int, int]
    score: float
    angle: float
    left_eye: tuple[float, float] | None = None
    right_eye: tuple[float, float] | None = None
    landmarks: str = "box"
    mouth: tuple[float, float] | None = None

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        d = {"box": list(self.box), "score": round(self.score, 4), "angle": round(self.angle, 2),
             "landmarks": self.landmarks}
        if self.left_eye is not None and self.right_eye is not None:
            d["left_eye"] = [round(v, 1) for v in self.left_eye]
            d["right_eye"] = [round(v, 1) for v in self.right_eye]
        if self.mouth is not None:
            d["mouth"] = [round(v, 1) for v in self.mouth]
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


@lru_cache(maxsize=1)
def _mtcnn() -> MTCNN:
    from bayes_fer.mtcnn import MTCNN, MTCNNConfig

    return MTCNN(MTCNNConfig(thresholds=MTCNN_THRESHOLDS))


@lru_cache(maxsize=1)
def default_detector() -> str:
    """``"mtcnn"`` when its weights are installed, else ``"haar"`` (with a one-line note)."""
    try:
        _mtcnn()
    except ImportError as e:
        print(f"bayes-fer: {e}; finding faces with OpenCV's Haar cascades instead", file=sys.stderr)
        return "haar"
    return "mtcnn"


def _eye_roll(left: Sequence[float], right: Sequence[float]) -> float:
    """The eye line's angle in degrees, positive when the face is turned clockwise."""
    return math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))


def _square_box(face: Face, width: int, height: int) -> tuple[int, int, int, int]:
    (cx, cy), side = crop_frame(face)
    return (int(round(max(0, cx - side / 2))), int(round(max(0, cy - side / 2))),
            int(round(min(width, cx + side / 2))), int(round(min(height, cy + side / 2))))


def _mtcnn_faces(img: Image.Image, min_size: int, angles: tuple[float, ...]) -> list[Face]:
    cv2 = _cv2()
    detector = _mtcnn()
    rgb = np.array(img.convert("RGB"))
    h, w = rgb.shape[:2]
    turns = [_rotation((w / 2, h / 2), a) for a in angles]
    batch = np.stack([rgb if a == 0 else cv2.warpAffine(rgb, M, (w, h), borderMode=cv2.BORDER_REPLICATE)
                      for a, M in zip(angles, turns)])  # (A, H, W, 3)
    centres, sides, rolls = [], [], []
    for M, found in zip(turns, detector.detect(batch, min_face=min_size)):
        inv = cv2.invertAffineTransform(M)
        for box, points in zip(found.boxes.numpy(), found.points.numpy()):
            centres.append(inv[:, :2] @ ((box[:2] + box[2:]) / 2) + inv[:, 2])
            sides.append(max(box[2] - box[0], box[3] - box[1]))
            left, right = points[:2] @ inv[:, :2].T + inv[:, 2]
            rolls.append(_eye_roll(left, right))
    if not centres:
        return []
    for _ in range(EXAMINE_PASSES):
        scores, points = detector.examine(rgb, np.array(centres), np.array(sides), np.array(rolls))
        rolls = [_eye_roll(left, right) for left, right in points[:, :2].tolist()]
    faces = []
    for score, (left, right, _, mouth_left, mouth_right) in zip(scores.tolist(), points.tolist()):
        if score < MIN_SCORE:
            continue
        mouth = ((mouth_left[0] + mouth_right[0]) / 2, (mouth_left[1] + mouth_right[1]) / 2)
        face = Face((0, 0, 0, 0), score, _eye_roll(left, right), tuple(left), tuple(right), "eyes", mouth)
        faces.append(replace(face, box=_square_box(face, w, h)))
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: -f.score):  # one face seen at several search angles
        if all(box_iou(face.box, k.box) < 0.3 for k in kept):
            kept.append(face)
    return kept


def _haar_faces(img: Image.Image, min_size: int, angles: tuple[float, ...], find_eyes: bool) -> list[Face]:
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
            roll = _eye_roll(*eyes)
        box = (int(round(max(0, cx - side / 2))), int(round(max(0, cy - side / 2))),
               int(round(min(img.width, cx + side / 2))), int(round(min(img.height, cy + side / 2))))
        faces.append(Face(box, n, roll, eyes[0] if eyes else None, eyes[1] if eyes else None,
                          "eyes" if eyes else "box"))
    return faces


def find_faces(img: Image.Image, min_size: int = 24, angles: tuple[float, ...] = SEARCH_ANGLES,
               find_eyes: bool = True, detector: str | None = None) -> list[Face]:
    """Every face in ``img``, largest first; an empty list means no face was found.

    Args:
        img: the photo (any PIL mode).
        min_size: smallest face side searched, in pixels.
        angles: rotations the photo is searched at (degrees, counter-clockwise).
        find_eyes: Haar only: locate the eyes for the roll and framing (else the detection
            angle is used); MTCNN always gives its landmarks.
        detector: ``"mtcnn"``, ``"haar"``, or None for :func:`default_detector`.
    """
    kind = detector or default_detector()
    if kind == "mtcnn":
        faces = _mtcnn_faces(img, min_size, angles)
    elif kind == "haar":
        faces = _haar_faces(img, min_size, angles, find_eyes)
    else:
        raise ValueError(f"detector must be one of {DETECTORS} or None, got {detector!r}")
    return sorted(faces, key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


def crop_frame(face: Face) -> tuple[tuple[float, float], float]:
    """Centre and side of the FER-style square crop of ``face``, in the upright face's frame."""
    if face.left_eye is not None and face.right_eye is not None:
        (lx, ly), (rx, ry) = face.left_eye, face.right_eye
        mx, my = (lx + rx) / 2, (ly + ry) / 2
        t = math.radians(face.angle)
        down = (-math.sin(t), math.cos(t))  # the face's own downward direction
        side = math.hypot(rx - lx, ry - ly) / EYE_DISTANCE
        if face.mouth is not None:
            # Turning the head sideways brings the eyes closer, nodding brings the mouth closer
            # to them: neither distance grows, so the larger estimate is the surer.
            below = (face.mouth[0] - mx) * down[0] + (face.mouth[1] - my) * down[1]
            side = max(side, below / EYE_TO_MOUTH) / LARGER_OF_TWO
        # The crop centre lies (0.5 - EYE_HEIGHT) * side below the eye midpoint.
        shift = (0.5 - EYE_HEIGHT) * side
        return (mx + down[0] * shift, my + down[1] * shift), side
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
