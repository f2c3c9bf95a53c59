"""Winograd F(4x4, 3x3) convolution: the IR-50 backbone's training convolutions on the CPU.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016.

A 3x3 convolution at stride 1 computes each 4x4 block of outputs from a 6x6 tile of the
input. Transformed into the Winograd domain, tile and filter meet by an elementwise product
per channel pair: 36 matrix products of (tiles, C_in) x (C_in, C_out), 4x fewer
multiplications than the direct convolution. On two AVX-512 cores the direct kernels
already run at the cores' peak, so fewer multiplications is the only way left to a faster
training step; gradients are Winograd convolutions too (the transposed transforms), so the
backward pass, two thirds of the cost, gains the most.

The transforms are small matrices applied as one matrix product over all tiles. In float32
the result differs from the direct convolution by ~1e-5 of its scale (the direct kernels
differ from float64 by ~1e-6), well inside what stochastic training tolerates; inference
with it stays within the reference parity bounds (logits within 1e-6). The filters'
transform costs the same for any batch, so small batches (under ``MIN_TILES`` tiles) keep
the direct kernels.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from bayes_fer.models.layers import SCRATCH, cpu_float32_eager, padded_nhwc, unpadded_nchw

#: Output block side: F(4x4, 3x3) reads 6x6 input tiles.
BLOCK = 4
TILE = BLOCK + 2

# Interpolation points 0, 1, -1, 2, -2 and infinity (Lavin & Gray, F(4, 3)).
_INPUT_T = [  # B^T (6, 6)
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
]
_FILTER = [  # G (6, 3)
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1],
]
_OUTPUT_T = [  # A^T (4, 6)
    [1, 1, 1, 1, 1, 0],
    [0, 1, -1, 2, -2, 0],
    [0, 1, 1, 4, 4, 0],
    [0, 1, -1, 8, -8, 1],
]


def _tile_grid(H: int, W: int) -> tuple[int, int]:
    """4x4 output blocks down and across an H x W map, the last ones partial."""
    return -(-H // BLOCK), -(-W // BLOCK)


@functools.lru_cache(maxsize=None)
def _transforms(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 2-D transforms as Kronecker products: input (36, 36), filter (36, 9), output (16, 36)."""
    as64 = functools.partial(torch.tensor, dtype=torch.float64)
    bt, g, at = as64(_INPUT_T), as64(_FILTER), as64(_OUTPUT_T)
    return tuple(torch.kron(a, a).to(dtype) for a in (bt, g, at))  # type: ignore[return-value]


def _input_transform(x: torch.Tensor, tiles_h: int, tiles_w: int, out: torch.Tensor) -> torch.Tensor:
    """Winograd-domain tiles of a channels-last (B, C, H, W) map: (36, B * tiles_h * tiles_w, C)."""
    B, C, H, W = x.shape
    Hp, Wp = BLOCK * tiles_h + 2, BLOCK * tiles_w + 2
    padded = padded_nhwc(x, Hp, Wp)
    row, col = Wp * C, C
    # 6x6 tiles at stride 4, gathered position-major: (6, 6, B, tiles_h, tiles_w, C).
    view = padded.as_strided((TILE, TILE, B, tiles_h, tiles_w, C), (row, col, Hp * row, BLOCK * row, BLOCK * col, 1))
    T = B * tiles_h * tiles_w
    tiles = SCRATCH.get("tiles", (TILE * TILE, T * C), x.dtype)
    tiles.view(view.shape).copy_(view)
    in_t = _transforms(x.dtype)[0]
    return torch.mm(in_t, tiles, out=out.view(TILE * TILE, T * C)).view(TILE * TILE, T, C)


def _filter_transform(weight: torch.Tensor) -> torch.Tensor:
    """Winograd-domain filters (Co, 36, C), in a scratch buffer."""
    Co, C = weight.shape[:2]
    # Channels-last filters are (Co, 3, 3, C) in memory: transform them without a copy.
    w = weight.permute(0, 2, 3, 1).reshape(Co, 9, C)
    u = SCRATCH.get("filters", (Co, TILE * TILE, C), weight.dtype)
    return torch.matmul(_transforms(weight.dtype)[1], w, out=u)


def _blocks_to_map(blocks: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """A new (B, H, W, C) map from its (B, th, 4, tw, 4, C) output blocks (a strided view)."""
    B, th, _, tw, _, C = blocks.shape
    out = blocks.new_empty(B, H, W, C)
    if th * BLOCK == H and tw * BLOCK == W:
        out.view(blocks.shape).copy_(blocks)
        return out
    whole = SCRATCH.get("whole_blocks", (B, th * BLOCK, tw * BLOCK, C), blocks.dtype)
    whole.view(blocks.shape).copy_(blocks)
    return out.copy_(whole[:, :H, :W])


def _map_to_blocks(x: torch.Tensor, blocks: torch.Tensor) -> None:
    """Write a (B, H, W, C) map into (B, th, 4, tw, 4, C) blocks, zero past its edges."""
    B, H, W, C = x.shape
    th, tw = blocks.shape[1], blocks.shape[3]
    if th * BLOCK == H and tw * BLOCK == W:
        blocks.copy_(x.reshape(blocks.shape))  # a view when x is channels-last
        return
    whole = SCRATCH.get("whole_blocks", (B, th * BLOCK, tw * BLOCK, C), x.dtype)
    whole[:, H:].zero_()
    whole[:, :H, W:].zero_()
    whole[:, :H, :W].copy_(x)
    blocks.copy_(whole.view(blocks.shape))


class _Winograd3x3(torch.autograd.Function):
    """conv2d(x, weight, padding=1) for channels-last float input; see the module docstring."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        out_t = _transforms(x.dtype)[2]
        B, C, H, W = x.shape
        Co = weight.shape[0]
        th, tw = _tile_grid(H, W)
        T = B * th * tw
        v = _input_transform(x, th, tw, SCRATCH.get("v", (TILE * TILE, T, C), x.dtype))
        u = _filter_transform(weight)
        m = torch.bmm(v, u.permute(1, 2, 0), out=SCRATCH.get("products", (TILE * TILE, T, Co), x.dtype))
        blocks = SCRATCH.get("blocks", (BLOCK * BLOCK, T * Co), x.dtype)
        torch.mm(out_t, m.view(TILE * TILE, T * Co), out=blocks)
        y = _blocks_to_map(blocks.view(BLOCK, BLOCK, B, th, tw, Co).permute(2, 3, 0, 4, 1, 5), H, W)
        if bias is not None:
            y += bias
        ctx.has_bias = bias is not None
        # Both transforms are recomputed in the backward pass: keeping them costs fresh pages,
        # which measured slower than transforming again into the scratch buffers.
        ctx.save_for_backward(x, weight)
        ctx.geometry = (B, C, H, W, Co)
        # The channels-last (B, Co, H, W) view of the NHWC result, as the direct kernels return.
        return y.permute(0, 3, 1, 2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        in_t, filter_t, out_t = _transforms(weight.dtype)
        B, C, H, W, Co = ctx.geometry
        th, tw = _tile_grid(H, W)
        T = B * th * tw
        dtype = weight.dtype
        g = SCRATCH.get("grad_blocks", (BLOCK, BLOCK, B, th, tw, Co), dtype)
        _map_to_blocks(grad_y.permute(0, 2, 3, 1), g.permute(2, 3, 0, 4, 1, 5))
        gm = SCRATCH.get("grad_products", (TILE * TILE, T, Co), dtype)
        torch.mm(out_t.t(), g.view(BLOCK * BLOCK, T * Co), out=gm.view(TILE * TILE, T * Co))
        v = _input_transform(x, th, tw, SCRATCH.get("v", (TILE * TILE, T, C), dtype))
        grad_w = None
        if ctx.needs_input_grad[1]:
            gu = torch.bmm(gm.transpose(1, 2), v, out=SCRATCH.get("grad_filters", (TILE * TILE, Co, C), dtype))
            grad_w = torch.matmul(filter_t.t(), gu.transpose(0, 1))  # (Co, 9, C)
            # The (Co, C, 3, 3) view of a channels-last gradient, the layout of the filters.
            grad_w = grad_w.view(Co, 3, 3, C).permute(0, 3, 1, 2)
        grad_x = None
        if ctx.needs_input_grad[0]:
            u = _filter_transform(weight)
            gv = torch.bmm(gm, u.transpose(0, 1), out=SCRATCH.get("grad_v", (TILE * TILE, T, C), dtype))
            tiles = SCRATCH.get("tiles", (TILE * TILE, T * C), dtype)
            torch.mm(in_t.t(), gv.view(TILE * TILE, T * C), out=tiles)
            tiles = tiles.view(TILE, TILE, B, th, tw, C).permute(2, 3, 0, 4, 1, 5)  # (B, th, 6, tw, 6, C)
            # Tiles overlap their neighbours by two rows and two columns: add the overlaps.
            acc = SCRATCH.get("padded", (B, th + 1, BLOCK, tw + 1, BLOCK, C), dtype)
            acc[:, :th, :, :tw] = tiles[:, :, :BLOCK, :, :BLOCK]
            acc[:, th:].zero_()
            acc[:, :th, :, tw:].zero_()
            acc[:, :th, :, 1:, :2] += tiles[:, :, :BLOCK, :, BLOCK:]
            acc[:, 1:, :2, :tw] += tiles[:, :, BLOCK:, :, :BLOCK]
            acc[:, 1:, :2, 1:, :2] += tiles[:, :, BLOCK:, :, BLOCK:]
            grad_x = unpadded_nchw(acc.view(B, (th + 1) * BLOCK, (tw + 1) * BLOCK, C), H, W)
        grad_b = grad_y.sum((0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def winograd_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=1)`` by Winograd F(4x4, 3x3) on the CPU, differentiable.

    Args:
        x: (B, C_in, H, W) floating-point CPU map; channels-last memory avoids two copies.
        weight: (C_out, C_in, 3, 3) filters.
        bias: (C_out,) or None.
    """
    if x.device.type != "cpu" or weight.device.type != "cpu":
        raise ValueError(
            f"winograd_conv3x3 runs on the CPU, got tensors on {x.device} and {weight.device}; "
            "use F.conv2d elsewhere"
        )
    if x.ndim != 4 or weight.shape[1:] != (x.shape[1], 3, 3):
        raise ValueError(
            f"expected a (B, C, H, W) map and (C_out, C, 3, 3) filters, got {tuple(x.shape)} and "
            f"{tuple(weight.shape)}"
        )
    return _Winograd3x3.apply(x.contiguous(memory_format=torch.channels_last), weight, bias)


#: Input channels from which Winograd beats the direct kernels on two AVX-512 cores
#: (forward + backward at batch 8: 1.35x at 256 x 14 x 14, 1.37x at 128 x 28 x 28; at
#: 64 channels the transforms cost more than the products save: 0.7x at 64 x 56 x 56).
MIN_CHANNELS = 128
#: Tiles (4x4 output blocks over the batch) from which it pays: the filters' transform costs
#: the same for any batch. Forward at 256 x 14 x 14: 0.56x for one image (16 tiles), 1.0x
#: at 64 tiles, 1.16x at 128; at 128 x 28 x 28, 0.91x at 98 tiles and 1.11x at 147.
MIN_TILES = 128


class WinogradConv2d(nn.Conv2d):
    """A 3x3, stride-1, padding-1 ``nn.Conv2d`` that trains by Winograd F(4x4, 3x3) on the CPU.

    Weights and state-dict keys are those of ``nn.Conv2d``. The Winograd path runs, for
    training and inference (BatchNorm-folded or not), when ``fast`` is set, the map has at
    least ``MIN_CHANNELS`` channels, the batch gives at least ``MIN_TILES`` tiles and
    ``layers.cpu_float32_eager`` holds; on GPUs cuDNN picks its own algorithms.
    """

    def __init__(self, in_channels: int, out_channels: int, fast: bool = True) -> None:
        super().__init__(in_channels, out_channels, 3, 1, 1, bias=False)
        self.fast = fast

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        B, C, H, W = x.shape
        th, tw = _tile_grid(H, W)
        if self.fast and C >= MIN_CHANNELS and B * th * tw >= MIN_TILES and cpu_float32_eager(x, weight):
            return winograd_conv3x3(x, weight, bias)
        return super()._conv_forward(x, weight, bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", fast={self.fast}"
