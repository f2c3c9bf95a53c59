"""Procedural face drawing: action-unit geometry on top of a random identity and scene.

A face is built in face-local units (x right, y down, origin at the face centre, half the
face width ~ 1) as a list of filled polygons and strokes, moved into the picture by one
similarity transform (tilt, scale, position), drawn with PIL at ``supersample`` times the
output size and box-filtered down (antialiasing), then lit and made noisy with numpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from bayes_fer.data.synthetic.actions import ACTION_UNITS

Color = tuple[int, int, int]
_DARK = np.array([35.0, 22.0, 20.0])
_T_HEAD = np.linspace(0.0, 2 * np.pi, 36, endpoint=False)
_LOWER = np.sin(_T_HEAD) > 0
_T_CAP = np.linspace(np.pi * 0.98, np.pi * 2.02, 14)
_T_EYE = np.linspace(-1.0, 1.0, 11)
_T_MOUTH = np.linspace(-1.0, 1.0, 13)
_BROW_TAPER = np.linspace(0.6, 0.3, 7)


@dataclass(frozen=True)
class SceneConfig:
    """Nuisance variation of the synthetic faces."""

    tilt: float = 8.0  # head roll, uniform in +-tilt degrees
    scale: tuple[float, float] = (0.94, 1.06)  # face size relative to the default framing
    shift: float = 0.03  # face centre offset, uniform in +-shift of the image side
    light: float = 0.25  # strongest linear lighting gradient across the image (fraction)
    brightness: tuple[float, float] = (0.8, 1.15)  # global exposure factor
    noise: float = 6.0  # largest pixel noise standard deviation (on 0-255)
    occlusion: float = 0.1  # probability of one random occluding blob
    occlusion_size: tuple[float, float] = (0.1, 0.22)  # occluder side, fraction of the image
    supersample: int = 2  # drawing resolution factor (antialiasing)


def _mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return a + (b - a) * min(max(t, 0.0), 1.0)


def _rgb(c: np.ndarray) -> Color:
    r, g, b = (min(max(int(v), 0), 255) for v in c.tolist())
    return r, g, b


@lru_cache(maxsize=None)
def _circle(n: int) -> np.ndarray:
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


@lru_cache(maxsize=None)
def _bezier_basis(n: int) -> np.ndarray:
    # Quadratic Bezier weights of (start, middle point, end) for a curve through the middle point.
    t = np.linspace(0.0, 1.0, n)
    return np.stack([(1 - t) ** 2 - (1 - t) * t, 4 * (1 - t) * t, t**2 - (1 - t) * t], axis=1)


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 16) -> np.ndarray:
    return _circle(n) * (rx, ry) + (cx, cy)


def _bezier(p0: tuple, p1: tuple, p2: tuple, n: int = 7) -> np.ndarray:
    """Quadratic curve from p0 to p2 passing through p1 at its middle: (n, 2)."""
    return _bezier_basis(n) @ np.array((p0, p1, p2), dtype=np.float64)


def _xy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.empty((len(x), 2))
    out[:, 0], out[:, 1] = x, y
    return out


def _band(x: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Polygon between two curves over the same abscissae."""
    n = len(x)
    out = np.empty((2 * n, 2))
    out[:n, 0], out[:n, 1] = x, top
    out[n:, 0], out[n:, 1] = x[::-1], bottom[::-1]
    return out


class _Canvas:
    """Collects face-local shapes, then draws them all through one similarity transform."""

    def __init__(self) -> None:
        self.ops: list[tuple[str, np.ndarray, Color, float]] = []

    def fill(self, pts: np.ndarray, color: np.ndarray) -> None:
        self.ops.append(("fill", pts, _rgb(color), 0.0))

    def stroke(self, pts: np.ndarray, color: np.ndarray, width: float) -> None:
        self.ops.append(("stroke", pts, _rgb(color), width))

    def draw(self, img: Image.Image, center: np.ndarray, unit: float, angle: float) -> None:
        c, s = np.cos(angle), np.sin(angle)
        m = unit * np.array([[c, s], [-s, c]])  # row-vector form of the rotation
        pts = np.concatenate([op[1] for op in self.ops]) @ m + center
        pts_list = pts.ravel().tolist()
        draw = ImageDraw.Draw(img)
        k = 0
        for kind, p, color, width in self.ops:
            flat = pts_list[2 * k : 2 * (k + len(p))]
            k += len(p)
            if kind == "fill":
                draw.polygon(flat, fill=color)
            else:
                draw.line(flat, fill=color, width=max(1, round(width * unit)), joint="curve")


def _identity(rng: np.random.Generator) -> dict:
    """Face shape, colours and feature placement of one random person."""
    u = rng.uniform
    skin = _mix(np.array([242.0, 214.0, 190.0]), np.array([92.0, 60.0, 44.0]), u(0.0, 0.65)) + rng.normal(0, 6, 3)
    hair = [np.array([25.0, 20.0, 18.0]), np.array([105.0, 70.0, 42.0]), np.array([205.0, 175.0, 115.0]),
            np.array([150.0, 150.0, 150.0])][rng.choice(4, p=[0.5, 0.3, 0.1, 0.1])]
    return dict(
        fw=u(0.92, 1.06), fh=u(1.22, 1.36), jaw=u(0.12, 0.32), skin=skin, hair=hair + rng.normal(0, 8, 3),
        hair_style=rng.choice(3, p=[0.1, 0.55, 0.35]), hairline=u(-0.95, -0.72),
        # Muted backgrounds and clothes: strongly coloured ones slow learning more than they teach.
        bg=u(70, 190) + rng.normal(0, 6, 3), clothes=u(50, 170) + rng.normal(0, 10, 3),
        eye_dx=u(0.37, 0.45), eye_y=u(-0.2, -0.1), eye_w=u(0.2, 0.24), eye_h=u(0.085, 0.105),
        iris=_mix(np.array([30.0, 20.0, 15.0]), np.array([70.0, 110.0, 150.0]), u() ** 3), gaze=u(-0.04, 0.04),
        brow_gap=u(0.2, 0.27), brow_th=u(0.08, 0.11), nose_y=u(0.28, 0.35), nose_w=u(0.1, 0.13),
        mouth_y=u(0.6, 0.68), mouth_w=u(0.3, 0.36), lip_up=u(0.05, 0.07), lip_low=u(0.06, 0.085),
        lip=_mix(skin, np.array([175.0, 55.0, 70.0]), u(0.45, 0.7)),
    )


def _head(cv: _Canvas, p: dict, a: dict[str, float]) -> None:
    fw, fh, skin = p["fw"], p["fh"], p["skin"]
    cv.fill(np.array([[-2.2, 3.5], [-1.9, 1.55], [1.9, 1.55], [2.2, 3.5]]), p["clothes"])
    cv.fill(np.array([[-0.42, 0.6], [0.42, 0.6], [0.48, 1.8], [-0.48, 1.8]]), skin * 0.82)
    if p["hair_style"] == 2:  # long hair falls behind the face
        cv.fill(_ellipse(0.0, 0.0, 1.2 * fw, 1.55 * fh, 20), p["hair"])
    for sgn in (-1, 1):
        cv.fill(_ellipse(sgn * fw * 0.97, p["eye_y"] + 0.12, 0.13, 0.22, 10), skin * 0.9)
    t, lower = _T_HEAD, _LOWER
    x = fw * np.cos(t) * np.where(lower, 1 - p["jaw"] * np.sin(t) ** 2, 1.0)
    y = fh * np.sin(t) * np.where(lower, 1 + 0.14 * a["AU26"], 1.0)
    cv.fill(_xy(x, y), skin)
    if p["hair_style"] > 0:
        cap = _xy(1.07 * fw * np.cos(_T_CAP), 1.1 * fh * np.sin(_T_CAP) - 0.03)
        line = _bezier((fw * 1.02, p["eye_y"] - 0.2), (0.0, p["hairline"]), (-fw * 1.02, p["eye_y"] - 0.2), 9)
        cv.fill(np.concatenate([cap, line]), p["hair"])


def _upper_face(cv: _Canvas, p: dict, a: dict[str, float]) -> None:
    skin, ey, ew = p["skin"], p["eye_y"], p["eye_w"]
    dark = _mix(p["hair"], _DARK, 0.75)
    raise_ = (a["AU1"] + a["AU2"]) / 2
    if raise_ > 0.15:  # forehead wrinkles of raised brows
        for k in range(3):
            yk = ey - p["brow_gap"] - 0.2 - 0.09 * k
            cv.stroke(_bezier((-0.4, yk + 0.02), (0.0, yk), (0.4, yk + 0.02), 5), _mix(skin, _DARK, 0.5 * raise_), 0.025)
    hu = p["eye_h"] * (1 + 1.5 * a["AU5"]) * (1 - 0.5 * a["AU7"]) * (1 - 0.5 * a["AU43"])
    hl = p["eye_h"] * 0.8 * max(0.15, 1 - 0.5 * a["AU6"] - 0.4 * a["AU7"])
    t = _T_EYE
    for sgn in (-1, 1):
        cx = sgn * p["eye_dx"]
        if a["AU6"] > 0.15:  # raised cheeks: flush, lower-lid crease, crow's feet
            flush = _mix(skin, np.array([215.0, 95.0, 95.0]), 0.3 * a["AU6"])
            cv.fill(_ellipse(sgn * 0.52, ey + 0.36, 0.17, 0.1, 12), flush)
            crease = _mix(skin, _DARK, 0.6 * a["AU6"])
            cv.stroke(_bezier((cx - ew, ey + hl + 0.02), (cx, ey + hl + 0.09), (cx + ew, ey + hl + 0.02), 5), crease, 0.022)
            for dy in (-0.05, 0.0, 0.05):
                foot = np.array([[cx + sgn * (ew + 0.03), ey + dy * 0.5], [cx + sgn * (ew + 0.13), ey + dy * 1.6]])
                cv.stroke(foot, crease, 0.02)
        x = cx + ew * t
        up = ey - hu * (1 - t**2) ** 0.7
        lo = ey + hl * (1 - t**2) ** 0.9
        cv.fill(_band(x, up, lo), np.array([238.0, 236.0, 230.0]))
        iris = _ellipse(cx + p["gaze"], ey + 0.2 * (hl - hu), 0.095, 0.095, 14)
        ix = np.clip(iris[:, 0], cx - ew, cx + ew)
        tt = (ix - cx) / ew
        iy = np.clip(iris[:, 1], ey - hu * (1 - tt**2) ** 0.7, ey + hl * (1 - tt**2) ** 0.9)
        cv.fill(_xy(ix, iy), p["iris"])
        cv.stroke(_xy(x, up), _DARK, 0.035)
        # Brows: inner end raised by AU1 and lowered and drawn in by AU4, outer end raised by AU2.
        inner = (sgn * (0.15 - 0.05 * a["AU4"]), ey - p["brow_gap"] - 0.26 * a["AU1"] + 0.16 * a["AU4"])
        outer = (sgn * (p["eye_dx"] + ew + 0.06), ey - 0.85 * p["brow_gap"] - 0.22 * a["AU2"] + 0.04 * a["AU4"])
        arch = 0.05 + 0.07 * a["AU2"] - 0.04 * a["AU4"]
        mid = (sgn * p["eye_dx"], (inner[1] + outer[1]) / 2 - arch)
        curve = _bezier(inner, mid, outer, 7)
        half = p["brow_th"] * _BROW_TAPER
        cv.fill(_band(curve[:, 0], curve[:, 1] - half, curve[:, 1] + half), dark)
    if a["AU4"] > 0.15:  # vertical furrows between lowered brows
        for sgn in (-1, 1):
            y0 = ey - p["brow_gap"] + 0.16 * a["AU4"]
            furrow = np.array([[sgn * 0.05, y0 - 0.02], [sgn * 0.04, y0 + 0.12]])
            cv.stroke(furrow, _mix(skin, _DARK, 0.65 * a["AU4"]), 0.025)


def _lower_face(cv: _Canvas, p: dict, a: dict[str, float]) -> None:
    skin = p["skin"]
    ny = p["nose_y"] - 0.04 * a["AU9"] - 0.03 * a["AU10"]
    nw = p["nose_w"] * (1 + 0.3 * a["AU9"])
    mw = p["mouth_w"] * max(0.55, 1 + 0.25 * a["AU12"] + 0.35 * a["AU20"] - 0.18 * a["AU23"]
                            - 0.1 * a["AU24"] - 0.22 * a["AU26"])
    my = p["mouth_y"]
    corner = -0.24 * a["AU12"] + 0.2 * a["AU15"] + 0.02 * a["AU20"]
    fold = _mix(skin, _DARK, 0.12 + 0.45 * max(a["AU12"], a["AU10"], 0.6 * a["AU9"]))
    for sgn in (-1, 1):
        cv.stroke(_bezier((sgn * (nw + 0.03), ny - 0.03), (sgn * (mw + 0.11), (ny + my) / 2 + 0.02),
                          (sgn * (mw + 0.05), my + corner + 0.04), 6), fold, 0.03)
        cv.stroke(np.array([[sgn * 0.06, p["eye_y"] + 0.05], [sgn * nw * 0.9, ny - 0.05]]), skin * 0.82, 0.025)
        cv.fill(_ellipse(sgn * nw * 0.5, ny, 0.035 * (1 + 0.4 * a["AU9"]), 0.02, 8), skin * 0.35)
    cv.stroke(_bezier((-nw, ny - 0.02), (0.0, ny + 0.04), (nw, ny - 0.02), 5), skin * 0.7, 0.03)
    if a["AU9"] > 0.15:  # nose wrinkles
        for k in range(3):
            yk = p["eye_y"] + 0.06 + 0.05 * k
            cv.stroke(np.array([[-0.08, yk], [0.0, yk - 0.015], [0.08, yk]]), _mix(skin, _DARK, 0.65 * a["AU9"]), 0.022)
    gap = 0.04 * a["AU25"] + 0.36 * a["AU26"] + (0.05 * a["AU20"] + 0.08 * a["AU12"]) * a["AU25"]
    open_up = 0.3 * gap + 0.07 * a["AU10"]
    open_lo = 0.7 * gap - 0.02 * a["AU17"]
    t = _T_MOUTH
    bump = 1 - t**2
    x = mw * t
    mid = my + corner * t**2
    ui, li = mid - open_up * bump, mid + max(open_lo, 0.0) * bump
    tu = p["lip_up"] * max(0.15, 1 - 0.7 * a["AU24"] - 0.3 * a["AU23"])
    tl = p["lip_low"] * max(0.15, 1 - 0.6 * a["AU24"] - 0.3 * a["AU23"]) + 0.025 * a["AU17"]  # pout
    uo, lo = ui - tu * (0.35 + 0.65 * bump), li + tl * (0.35 + 0.65 * bump)
    if open_up + open_lo > 0.015:
        cv.fill(_band(x, ui, li), np.array([45.0, 12.0, 18.0]))
        teeth = np.minimum(ui + min(0.07, 0.5 * (open_up + open_lo)) * bump, li)
        xt = 0.85 * x
        cv.fill(_band(xt, ui, teeth), np.array([240.0, 238.0, 228.0]))
    cv.fill(_band(x, uo, ui), p["lip"])
    cv.fill(_band(x, li, lo), p["lip"] * 1.08)
    cv.stroke(_xy(x, (ui + li) / 2 if open_up + open_lo <= 0.015 else ui), p["lip"] * 0.55, 0.02)
    if a["AU17"] > 0.15:  # chin boss pushed up
        yc = lo[6] + 0.12
        cv.stroke(_bezier((-0.15, yc + 0.04), (0.0, yc), (0.15, yc + 0.04), 5), _mix(skin, _DARK, 0.65 * a["AU17"]), 0.03)


@lru_cache(maxsize=4)
def _noise_bank(size: int) -> np.ndarray:
    return np.random.default_rng(20260101).standard_normal((2 * size, 2 * size)).astype(np.float32)


def render_face(
    au: np.ndarray, rng: np.random.Generator, size: int = 112, scene: SceneConfig = SceneConfig()
) -> Image.Image:
    """Draw one face showing action units ``au`` (see ``actions.ACTION_UNITS``) as an RGB image.

    Identity (face shape, colours, feature placement) and scene (tilt, scale, position,
    lighting, noise, occlusion) are drawn from ``rng``; the same generator state gives the
    same picture.
    """
    p = _identity(rng)
    a = dict(zip(ACTION_UNITS, np.asarray(au, dtype=np.float64).tolist()))
    cv = _Canvas()
    _head(cv, p, a)
    _upper_face(cv, p, a)
    _lower_face(cv, p, a)
    ss = scene.supersample
    big = size * ss
    img = Image.new("RGB", (big, big), _rgb(p["bg"]))
    center = np.array([0.5, 0.47]) * big + rng.uniform(-scene.shift, scene.shift, 2) * big
    unit = 0.4 * big * rng.uniform(*scene.scale)
    cv.draw(img, center, unit, np.deg2rad(rng.uniform(-scene.tilt, scene.tilt)))
    if rng.random() < scene.occlusion:
        side = rng.uniform(*scene.occlusion_size, 2) * big
        x0, y0 = rng.uniform(0, big - side[0]), rng.uniform(0, big - side[1])
        shape = ImageDraw.Draw(img).ellipse if rng.random() < 0.5 else ImageDraw.Draw(img).rectangle
        shape([x0, y0, x0 + side[0], y0 + side[1]], fill=_rgb(rng.uniform(0, 255, 3)))
    if ss > 1:
        img = img.reduce(ss)
    # Lighting: exposure times a linear gradient in a random direction; then sensor noise.
    phi = rng.uniform(0, 2 * np.pi)
    grid = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    gain = rng.uniform(*scene.brightness) * (
        1 + rng.uniform(0, scene.light) * (np.cos(phi) * grid[None, :] + np.sin(phi) * grid[:, None])
    )
    ox, oy = rng.integers(0, size, 2)
    noise = _noise_bank(size)[oy : oy + size, ox : ox + size] * rng.uniform(0, scene.noise)
    arr = np.asarray(img, dtype=np.float32) * gain[:, :, None] + noise[:, :, None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
