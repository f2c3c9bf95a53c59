"""MTCNN face detector: three cascaded networks proposing, refining and landmarking faces.

Zhang, Zhang, Li and Qiao, "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks", IEEE Signal Processing Letters 2016. P-Net slides a 12x12 window
over an image pyramid and proposes boxes; R-Net rescores and regresses them from 24x24
crops; O-Net does so again from 48x48 crops and adds five landmarks (both eyes, the nose,
both mouth corners).

The networks are written here in PyTorch; their trained weights are read from the
``mtcnn`` package (``pip install "bayes-fer[faces]"``), which ships them as joblib/lz4
lists of Keras-layout arrays. That package's own code needs TensorFlow and is never
imported: only its asset files are read.
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, roi_align

INSTALL_HINT = 'pip install "bayes-fer[faces]" (the mtcnn package ships the detector\'s weights)'
#: The five O-Net landmarks in output order; left and right as seen in the picture.
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
PNET_CELL, PNET_STRIDE = 12, 2  # P-Net's window and its step on the pyramid level


@dataclass(frozen=True)
class MTCNNConfig:
    """Thresholds and pyramid of the cascade (the paper's values unless noted)."""

    min_face: float = 20.0  # smallest face side searched, in pixels: sets the pyramid's first level
    pyramid_factor: float = 0.709  # each pyramid level is this much smaller (area halves every two levels)
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8)  # face probability each stage needs
    nms_pnet_level: float = 0.5  # IoU merging P-Net windows within one pyramid level
    nms_pnet: float = 0.7  # IoU merging P-Net proposals across levels
    nms_rnet: float = 0.7  # IoU merging R-Net boxes
    nms_onet: float = 0.7  # overlap (over the smaller box) merging O-Net boxes: drops boxes nested in a face


class PNet(nn.Module):
    """Proposal network: fully convolutional, a face probability and box offsets per 12x12 window.

    Input (N, 3, H, W) in [-1, 1]; output (face probability (N, H', W'), offsets (N, 4, H', W')),
    H' = ceil((H - 2) / 2) - 4.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        # Keras' "same" max-pooling pads the end only: PyTorch's ceil mode does the same.
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.box = nn.Conv2d(32, 4, 1)
        self.score = nn.Conv2d(32, 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.score(x).softmax(1)[:, 1], self.box(x)


def _flatten_whc(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, W * H * C): the dense layers were trained on the Caffe original's
    transposed images, so their inputs are ordered width first."""
    return x.permute(0, 3, 2, 1).flatten(1)


class RNet(nn.Module):
    """Refinement network on 24x24 crops: (face probability (N,), box offsets (N, 4))."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.fc4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.box = nn.Linear(128, 4)
        self.score = nn.Linear(128, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))  # (N, 28, 11, 11)
        x = self.pool2(self.prelu2(self.conv2(x)))  # (N, 48, 4, 4)
        x = self.prelu3(self.conv3(x))  # (N, 64, 3, 3)
        x = self.prelu4(self.fc4(_flatten_whc(x)))  # (N, 128)
        return self.score(x).softmax(1)[:, 1], self.box(x)


class ONet(nn.Module):
    """Output network on 48x48 crops: (face probability (N,), box offsets (N, 4), landmarks (N, 10)).

    The landmarks are fractions of the crop: five x values, then five y values, in
    :data:`LANDMARKS` order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.fc5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.box = nn.Linear(256, 4)
        self.landmarks = nn.Linear(256, 10)
        self.score = nn.Linear(256, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))  # (N, 32, 23, 23)
        x = self.pool2(self.prelu2(self.conv2(x)))  # (N, 64, 10, 10)
        x = self.pool3(self.prelu3(self.conv3(x)))  # (N, 64, 4, 4)
        x = self.prelu4(self.conv4(x))  # (N, 128, 3, 3)
        x = self.prelu5(self.fc5(_flatten_whc(x)))  # (N, 256)
        return self.score(x).softmax(1)[:, 1], self.box(x), self.landmarks(x)


# The order in which each network's layers appear in the mtcnn package's weight lists: a
# convolution or dense layer holds (kernel, bias), a PReLU its slopes.
KERAS_LAYERS: dict[str, tuple[str, ...]] = {
    "pnet": ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "box", "score"),
    "rnet": ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "fc4", "prelu4", "box", "score"),
    "onet": ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "conv4", "prelu4", "fc5", "prelu5",
             "box", "landmarks", "score"),
}
NETWORKS: dict[str, type[nn.Module]] = {"pnet": PNet, "rnet": RNet, "onet": ONet}


def keras_filter_fn(arrays: list[np.ndarray], model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """The mtcnn package's Keras weight list for network ``name`` as ``model``'s state dict.

    Rules: a conv kernel (kh, kw, in, out) becomes (out, in, kh, kw); a dense kernel
    (in, out) becomes (out, in); PReLU slopes (1, 1, C) or (C,) become (C,). Nothing is
    matched by shape: layers are taken in :data:`KERAS_LAYERS` order.
    """
    arrays = list(arrays)
    state: dict[str, torch.Tensor] = {}
    for layer in KERAS_LAYERS[name]:
        module = getattr(model, layer)
        take = 1 if isinstance(module, nn.PReLU) else 2
        if len(arrays) < take:
            raise ValueError(f"{name}: the weight list ended before layer {layer!r}; is the mtcnn package 1.x?")
        head, arrays = [torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in arrays[:take]], arrays[take:]
        if isinstance(module, nn.PReLU):
            state[f"{layer}.weight"] = head[0].reshape(-1)
        elif isinstance(module, nn.Conv2d):
            state[f"{layer}.weight"], state[f"{layer}.bias"] = head[0].permute(3, 2, 0, 1).contiguous(), head[1]
        else:
            state[f"{layer}.weight"], state[f"{layer}.bias"] = head[0].t().contiguous(), head[1]
    if arrays:
        raise ValueError(f"{name}: {len(arrays)} arrays left over after {KERAS_LAYERS[name][-1]!r}; is the mtcnn "
                         "package 1.x?")
    return state


def weights_dir() -> Path:
    """Folder of the installed mtcnn package's weight files (found without importing it)."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the MTCNN face detector needs its weights, which were not found: {INSTALL_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "assets" / "weights"
    if not all((folder / f"{n}.lz4").is_file() for n in NETWORKS):
        raise ImportError(f"the mtcnn package at {folder.parents[1]} lacks assets/weights/{{pnet,rnet,onet}}.lz4 "
                          f"(mtcnn 1.x ships them): {INSTALL_HINT}")
    return folder


def load_network(name: str, folder: Path | None = None) -> nn.Module:
    """``"pnet"``, ``"rnet"`` or ``"onet"`` with the mtcnn package's weights, in eval mode."""
    try:
        import joblib
    except ImportError as e:
        raise ImportError(f"reading the MTCNN weights needs joblib and lz4: {INSTALL_HINT}") from e
    model = NETWORKS[name]()
    # joblib unpickles: these are the installed package's own files, not user input.
    arrays = joblib.load(str((folder or weights_dir()) / f"{name}.lz4"))
    model.load_state_dict(keras_filter_fn(arrays, model, name), strict=True)
    return model.eval()


@dataclass(frozen=True)
class Detections:
    """Faces found in one image, most confident first.

    Attributes:
        boxes: (K, 4) float (left, top, right, bottom) in pixels.
        scores: (K,) O-Net's face probability.
        points: (K, 5, 2) float (x, y) of the :data:`LANDMARKS`.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    points: torch.Tensor

    def __len__(self) -> int:
        return len(self.scores)


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes grown to squares on the longer side, about the same centres."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]).amax(1, keepdim=True) / 2
    return torch.cat([centre - half, centre + half], 1)


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Corners moved by offsets given in units of the box's width and height."""
    size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    return boxes + offsets * size


def _nms_over_smaller(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Indices kept by greedy NMS whose overlap is the intersection over the smaller box."""
    order = scores.argsort(descending=True)
    boxes = boxes[order]
    area = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(1)
    lo = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    hi = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    overlap = (hi - lo).clamp(min=0).prod(2) / torch.minimum(area[:, None], area[None, :]).clamp(min=1e-6)  # (K, K)
    keep = torch.ones(len(boxes), dtype=torch.bool)
    for i in range(len(boxes)):
        if keep[i]:
            keep[i + 1:] &= overlap[i, i + 1:] <= threshold
    return order[keep]


def _normalise(images: torch.Tensor | np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, H, W, 3) or (H, W, 3) uint8 RGB as the networks' (N, 3, H, W) input in [-1, 1]."""
    if isinstance(images, np.ndarray) and not images.flags.writeable:
        images = images.copy()  # torch will not wrap a read-only array (PIL's, for one)
    x = torch.as_tensor(images, device=device)
    x = x[None] if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected RGB images (N, H, W, 3) or (H, W, 3), got shape {tuple(x.shape)}")
    return (x.permute(0, 3, 1, 2).float() - 127.5) / 128.0


class MTCNN(nn.Module):
    """The three-stage cascade over whole images.

    Args:
        config: thresholds and pyramid (defaults: the paper's).
        folder: where the weight files lie (default: the installed mtcnn package's).
    """

    def __init__(self, config: MTCNNConfig = MTCNNConfig(), folder: Path | None = None) -> None:
        super().__init__()
        self.config = config
        self.pnet, self.rnet, self.onet = (load_network(n, folder) for n in ("pnet", "rnet", "onet"))

    @property
    def device(self) -> torch.device:
        return self.pnet.conv1.weight.device

    def scales(self, height: int, width: int, min_face: float | None = None) -> list[float]:
        """Pyramid levels: the first maps ``min_face`` px onto P-Net's 12 px window, the last
        keeps the shorter side at least 12 px."""
        first = PNET_CELL / (min_face or self.config.min_face)
        count = max(0, math.floor(math.log(PNET_CELL / (min(height, width) * first), self.config.pyramid_factor)) + 1)
        return [first * self.config.pyramid_factor ** k for k in range(count)]

    def propose(self, images: torch.Tensor, min_face: float | None = None) -> torch.Tensor:
        """P-Net proposals over a batch of same-sized images: (K, 6) rows of (image index,
        left, top, right, bottom, probability), squared, in pixels."""
        h, w = images.shape[-2:]
        found = []
        octave, octave_scale = images, 1.0
        for s in self.scales(h, w, min_face):
            # Each level from the image halved as often as leaves it at least the level's size:
            # half the time of resizing the full image each time (and sharper than resizing
            # each level from the one before, which lost faces).
            while s <= octave_scale / 2:
                octave, octave_scale = F.avg_pool2d(octave, 2), octave_scale / 2
            level = F.interpolate(octave, size=(math.ceil(h * s), math.ceil(w * s)), mode="bilinear",
                                  align_corners=False, antialias=True)
            prob, offsets = self.pnet(level)  # (N, H', W'), (N, 4, H', W')
            idx, row, col = torch.nonzero(prob > self.config.thresholds[0], as_tuple=True)
            if len(idx) == 0:
                continue
            corner = torch.stack([col, row], 1).float() * PNET_STRIDE
            windows = torch.cat([corner, corner + PNET_CELL], 1)  # on the level, (K, 4)
            score = prob[idx, row, col]
            keep = batched_nms(windows, score, idx, self.config.nms_pnet_level)
            boxes = _regress(windows[keep], offsets[idx[keep], :, row[keep], col[keep]]) / s
            found.append(torch.cat([idx[keep, None].float(), boxes, score[keep, None]], 1))
        if not found:
            return images.new_zeros((0, 6))
        rows = torch.cat(found)
        rows = rows[batched_nms(rows[:, 1:5], rows[:, 5], rows[:, 0].long(), self.config.nms_pnet)]
        rows[:, 1:5] = _square(rows[:, 1:5])
        return rows

    @staticmethod
    def crops(images: torch.Tensor, rows: torch.Tensor, size: int) -> torch.Tensor:
        """(K, 3, size, size) crops of ``rows``' boxes, each output pixel the mean of 2x2
        bilinear samples (as many as a box's size asks for took six times as long); parts
        outside the image are 0 (mid grey)."""
        return roi_align(images, rows[:, :5].contiguous(), output_size=size, sampling_ratio=2, aligned=True)

    def refine(self, images: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """R-Net's rescored, regressed and merged boxes, squared, as (K, 6) rows."""
        prob, offsets = self.rnet(self.crops(images, rows, 24))
        keep = prob > self.config.thresholds[1]
        rows = torch.cat([rows[keep, :1], _regress(rows[keep, 1:5], offsets[keep]), prob[keep, None]], 1)
        rows = rows[batched_nms(rows[:, 1:5], rows[:, 5], rows[:, 0].long(), self.config.nms_rnet)]
        rows[:, 1:5] = _square(rows[:, 1:5])
        return rows

    def output(self, images: torch.Tensor, rows: torch.Tensor) -> list[Detections]:
        """O-Net's final boxes and landmarks, one :class:`Detections` per image."""
        prob, offsets, marks = self.onet(self.crops(images, rows, 48))
        keep = prob > self.config.thresholds[2]
        rows, prob, offsets, marks = rows[keep], prob[keep], offsets[keep], marks[keep]
        size = rows[:, 3:5] - rows[:, 1:3]  # (K, 2)
        points = rows[:, None, 1:3] + marks.view(-1, 2, 5).transpose(1, 2) * size[:, None]  # (K, 5, 2)
        boxes = _regress(rows[:, 1:5], offsets)
        out = []
        for i in range(len(images)):
            mine = torch.nonzero(rows[:, 0] == i).flatten()
            mine = mine[_nms_over_smaller(boxes[mine], prob[mine], self.config.nms_onet)]
            out.append(Detections(boxes[mine].cpu(), prob[mine].cpu(), points[mine].cpu()))
        return out

    @torch.inference_mode()
    def examine(self, image: torch.Tensor | np.ndarray, centres: torch.Tensor, sides: torch.Tensor,
                angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """O-Net on square crops of one image turned by ``angles``: faces found rolled give
        better landmarks and scores once their crop is upright.

        Args:
            image: (H, W, 3) uint8 RGB.
            centres: (K, 2) crop centres (x, y) in pixels.
            sides: (K,) crop sides in pixels (an MTCNN box's side).
            angles: (K,) each crop's roll in degrees, positive clockwise in the picture (the
                eye line's angle): the crop is turned back by it.

        Returns:
            (face probability (K,), the :data:`LANDMARKS` (K, 5, 2) in the image's pixels).
        """
        x = _normalise(image, self.device)
        if x.shape[0] != 1:
            raise ValueError(f"expected one RGB image (H, W, 3), got shape {tuple(np.shape(image))}")
        h, w = x.shape[-2:]
        c, s, t = (torch.as_tensor(v, dtype=torch.float32, device=self.device) for v in (centres, sides, angles))
        cos, sin = torch.cos(torch.deg2rad(t)), torch.sin(torch.deg2rad(t))
        # Crop axes in the image: x along (cos, sin), y along (-sin, cos); affine_grid maps the
        # crop's [-1, 1] square into the image's [-1, 1] coordinates.
        theta = torch.stack([torch.stack([s / w * cos, -s / w * sin, 2 * c[:, 0] / w - 1], 1),
                             torch.stack([s / h * sin, s / h * cos, 2 * c[:, 1] / h - 1], 1)], 1)  # (K, 2, 3)
        # Sample at twice the size and average down: large faces would alias at 48 px.
        grid = F.affine_grid(theta, [len(s), 3, 96, 96], align_corners=False)
        crops = F.avg_pool2d(F.grid_sample(x.expand(len(s), -1, -1, -1), grid, align_corners=False), 2)
        prob, _, marks = self.onet(crops)
        upright = marks.view(-1, 2, 5).transpose(1, 2) - 0.5  # (K, 5, 2), fractions of the side about the centre
        rot = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # (K, 2, 2)
        points = c[:, None] + torch.einsum("kij,kpj->kpi", rot, upright) * s[:, None, None]
        return prob.cpu(), points.cpu()

    @torch.inference_mode()
    def detect(self, images: torch.Tensor | np.ndarray, min_face: float | None = None) -> list[Detections]:
        """Faces in a batch of same-sized RGB images.

        Args:
            images: (N, H, W, 3) or (H, W, 3) uint8 RGB (a numpy array or tensor).
            min_face: smallest face side searched, in pixels (default: the config's).

        Returns:
            One :class:`Detections` per image.
        """
        x = _normalise(images, self.device)
        return self.output(x, self.refine(x, self.propose(x, min_face)))

