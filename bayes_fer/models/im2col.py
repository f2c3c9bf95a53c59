"""Strided 3x3 convolutions as one matrix product (im2col): the token embeddings on the CPU.

POSTER's token embeddings widen each stage's map to 768 channels with stride-2 3x3
convolutions at 7x7 or 14x14 outputs. There the direct CPU kernels run their backward pass
at about half the cores' peak (167 GFLOP/s against ~300 on two AVX-512 cores for the
768 -> 768 one), while a single matrix product over the gathered 3x3 patches runs near
peak: that layer's forward and backward at batch 8 take 55 ms instead of 81. The patches
are gathered from the channels-last map into a scratch buffer, again in the backward pass
for the weight gradient rather than kept (9x the map).
"""
from __future__ import annotations

import torch
from torch import nn

from bayes_fer.models.layers import SCRATCH, cpu_float32_training, padded_nhwc, unpadded_nchw

#: Output channels from which the patch product beats the direct kernels (forward and
#: backward at batch 8: 1.46x for 768 -> 768 at 14x14, 1.25x for 128 -> 768; 0.88x for
#: 256 -> 256 at 28x28, where the direct kernels already run near peak).
MIN_OUT_CHANNELS = 512


def _patches(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """The zero-padded 3x3 patches at stride 2 of a (B, C, H, W) map: (B * out_h * out_w, 9 * C), in scratch."""
    B, C, H, W = x.shape
    Hp, Wp = 2 * out_h + 1, 2 * out_w + 1
    padded = padded_nhwc(x, Hp, Wp)
    row = Wp * C
    view = padded.as_strided((B, out_h, out_w, 3, 3, C), (Hp * row, 2 * row, 2 * C, row, C, 1))
    cols = SCRATCH.get("patches", (B * out_h * out_w, 9 * C), x.dtype)
    cols.view(view.shape).copy_(view)
    return cols


class _PatchConv3x3s2(torch.autograd.Function):
    """conv2d(x, weight, bias, stride=2, padding=1) as patches @ weight^T."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        B, C, H, W = x.shape
        Co = weight.shape[0]
        out_h, out_w = (H + 1) // 2, (W + 1) // 2
        cols = _patches(x, out_h, out_w)
        # Channels-last filters are (Co, 3, 3, C) in memory, the patches' column order.
        w = weight.permute(0, 2, 3, 1).reshape(Co, 9 * C)
        y = cols @ w.t() if bias is None else torch.addmm(bias, cols, w.t())  # (B * out_h * out_w, Co)
        ctx.save_for_backward(x, weight)
        ctx.geometry = (B, C, H, W, out_h, out_w)
        ctx.has_bias = bias is not None
        # The channels-last (B, Co, out_h, out_w) view of the NHWC result.
        return y.view(B, out_h, out_w, Co).permute(0, 3, 1, 2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        B, C, H, W, out_h, out_w = ctx.geometry
        Co = weight.shape[0]
        g = grad_y.permute(0, 2, 3, 1).reshape(B * out_h * out_w, Co)
        grad_w = grad_b = grad_x = None
        if ctx.needs_input_grad[1]:
            cols = _patches(x, out_h, out_w)
            # (Co, 9 C) in (Co, 3, 3, C) order: the filters' channels-last layout.
            grad_w = (g.t() @ cols).view(Co, 3, 3, C).permute(0, 3, 1, 2)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g.sum(0)
        if ctx.needs_input_grad[0]:
            w = weight.permute(0, 2, 3, 1).reshape(Co, 9 * C)
            grad_cols = torch.mm(g, w, out=SCRATCH.get("patches", (B * out_h * out_w, 9 * C), w.dtype))
            grad_cols = grad_cols.view(B, out_h, out_w, 3, 3, C)
            padded = SCRATCH.get("padded", (B, 2 * out_h + 1, 2 * out_w + 1, C), w.dtype).zero_()
            for i in range(3):
                for j in range(3):
                    padded[:, i : i + 2 * out_h : 2, j : j + 2 * out_w : 2] += grad_cols[:, :, :, i, j]
            grad_x = unpadded_nchw(padded, H, W)
        return grad_x, grad_w, grad_b


class PatchConv2d(nn.Conv2d):
    """A 3x3, stride-2, padding-1 ``nn.Conv2d`` that trains by one patch product on the CPU.

    Weights, state-dict keys and inference are those of ``nn.Conv2d``. The patch product
    runs when a gradient is wanted on a float32 CPU map, ``out_channels`` is at least
    ``MIN_OUT_CHANNELS`` and ``fast`` is set; GPUs, ``torch.compile``, tracing and ONNX
    export keep the direct kernels.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, fast: bool = True) -> None:
        super().__init__(in_channels, out_channels, 3, 2, 1, bias=bias)
        self.fast = fast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast and self.out_channels >= MIN_OUT_CHANNELS and cpu_float32_training(x, self.weight):
            x = x.contiguous(memory_format=torch.channels_last)
            return _PatchConv3x3s2.apply(x, self.weight, self.bias)
        return super().forward(x)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", fast={self.fast}"
