"""Small building blocks shared by the POSTER networks."""
from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
    """``bn(conv(x))``; in eval mode as one convolution with the BatchNorm folded into it.

    Folding saves the BatchNorm pass over the output map (a tenth of CPU inference). The
    folded weights are recomputed each call from the current parameters and statistics,
    so nothing goes stale and gradients still reach every parameter; it costs one pass over
    the weights, far less than the map.
    """
    if bn.training or not bn.track_running_stats or bn.running_var is None:
        return bn(conv(x))
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)  # (C_out,)
    weight = conv.weight * scale.view(-1, 1, 1, 1).to(conv.weight.dtype)
    shift = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    # The module's own convolution, so a Winograd layer folds too.
    return conv._conv_forward(x, weight, shift.to(weight.dtype))


class ScratchBuffers(threading.local):
    """Transient buffers of our CPU kernels, one per role, kept between calls.

    A layer's tile or patch tensors are several MB each. glibc serves blocks that size
    with fresh pages, and faulting them in on every call cost more than some of the
    work done in them. Each buffer grows to the largest request of its role and is
    shared by every layer on the thread; ``clear()`` gives the memory back.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, torch.Tensor] = {}

    def get(self, role: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        n = math.prod(shape)
        buf = self.buffers.get(role)
        if buf is None or buf.numel() < n or buf.dtype != dtype:
            # A normal tensor even under inference_mode, so training may write to it later.
            with torch.inference_mode(False):
                buf = self.buffers[role] = torch.empty(n, dtype=dtype)
        return buf[:n].view(shape)

    def clear(self) -> None:
        self.buffers.clear()


def cpu_eager(x: torch.Tensor) -> bool:
    """Whether ``x`` is on the CPU and runs eagerly: not under ``torch.compile``, tracing or
    ONNX export, which must see PyTorch's own operations."""
    return (
        x.device.type == "cpu"
        and not torch.jit.is_tracing()
        and not torch.compiler.is_compiling()
        and not torch.onnx.is_in_onnx_export()
    )


def cpu_float32_eager(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """``cpu_eager`` on float32 tensors: where our CPU kernels apply (GPUs keep PyTorch's)."""
    return x.dtype == torch.float32 == weight.dtype and cpu_eager(x)


def cpu_float32_training(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """``cpu_float32_eager``, in a pass that autograd will differentiate."""
    return cpu_float32_eager(x, weight) and torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)


#: The scratch buffers of our CPU kernels (``SCRATCH.clear()`` frees them).
SCRATCH = ScratchBuffers()


def padded_nhwc(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A channels-last map as (B, height, width, C) in scratch: one zero row and column
    before it, zeros after it."""
    B, C, H, W = x.shape
    padded = SCRATCH.get("padded", (B, height, width, C), x.dtype)
    padded[:, :1].zero_()
    padded[:, H + 1 :].zero_()
    padded[:, :, :1].zero_()
    padded[:, :, W + 1 :].zero_()
    padded[:, 1 : H + 1, 1 : W + 1].copy_(x.permute(0, 2, 3, 1))
    return padded


def unpadded_nchw(padded: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """The inverse of ``padded_nhwc``: a new channels-last (B, C, H, W) map of its interior."""
    return padded[:, 1 : H + 1, 1 : W + 1].contiguous().permute(0, 3, 1, 2)


class _PReLU(torch.autograd.Function):
    """PReLU with a backward pass built from the CPU's fast elementwise kernels.

    PyTorch's PReLU backward and ``torch.where`` take 20x the forward pass on a
    channels-last CPU map (1.3 ms against 0.06 ms at 256 x 14 x 14, batch 8); a sign, a
    clamp, in-place products and a column sum do the same work (forward and backward at
    64 x 112 x 112: 15.4 ms against 27.8).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return F.prelu(x, weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        x, weight = ctx.saved_tensors
        B, C, H, W = x.shape
        # (B*H*W, C) views of channels-last maps: per-channel broadcasts and sums along rows
        # run vectorized there, and far slower on the 4-D tensors.
        x2 = x.permute(0, 2, 3, 1).reshape(-1, C)
        g2 = grad_y.permute(0, 2, 3, 1).reshape(-1, C)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            # 1 where x > 0, else the slope (x = 0 included, as PyTorch does).
            g = torch.sign(x2).clamp_(min=0).mul_(1 - weight).add_(weight).mul_(g2)
            grad_x = g.view(B, H, W, C).permute(0, 3, 1, 2)
        if ctx.needs_input_grad[1]:
            negative = torch.clamp(x2, max=0, out=SCRATCH.get("prelu", x2.shape, x2.dtype))
            grad_w = negative.mul_(g2).sum(0)
        return grad_x, grad_w


class PReLU(nn.PReLU):
    """``nn.PReLU`` with one slope per channel whose CPU training backward pass is ``_PReLU``'s.

    Args:
        channels: slopes, one per channel.
        fast: use ``_PReLU`` where ``cpu_float32_training`` holds.
    """

    def __init__(self, channels: int, fast: bool = True) -> None:
        super().__init__(channels)
        self.fast = fast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast and x.ndim == 4 and self.num_parameters == x.shape[1] and cpu_float32_training(x, self.weight):
            return _PReLU.apply(x.contiguous(memory_format=torch.channels_last), self.weight)
        return super().forward(x)


#: Scores recomputed at once in the attention backward pass (8 MB of float32).
SCORES_PER_CHUNK = 1 << 21


class _BiasedAttention(torch.autograd.Function):
    """softmax(q k^T / sqrt(d) + bias) v with a gradient for the bias, without storing the scores.

    No fused CPU kernel differentiates an additive mask, so autograd would fall back to the
    unfused path, which keeps (B, h, N, N) scores and probabilities (39 MB each at POSTER's
    first stage, N = 784). Here the forward pass runs the fused kernel, and the backward pass
    recomputes the probabilities a few images at a time (flash-attention style).
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        # Detached, or the kernel choice sees inputs that require grad and avoids the fused kernel.
        out = F.scaled_dot_product_attention(q.detach(), k.detach(), v.detach(), attn_mask=bias.detach().unsqueeze(0))
        ctx.save_for_backward(q, k, v, bias, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, ...]:
        q, k, v, bias, out = ctx.saved_tensors
        B, h, N, d = q.shape
        scale = d**-0.5
        chunk = max(1, SCORES_PER_CHUNK // (h * N * N))
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        dbias = torch.zeros_like(bias)
        for start in range(0, B, chunk):
            b = slice(start, start + chunk)
            p = torch.matmul(q[b], k[b].transpose(-2, -1)).mul_(scale).add_(bias).softmax(-1)  # (c, h, N, N)
            g = grad_out[b]
            dv[b] = torch.matmul(p.transpose(-2, -1), g)
            # Softmax backward: dS = P * (dP - rowsum(dP * P)), and rowsum(dP * P) = rowsum(dO * O).
            ds = torch.matmul(g, v[b].transpose(-2, -1)).sub_((g * out[b]).sum(-1, keepdim=True)).mul_(p)
            dbias += ds.sum(0)
            dq[b] = torch.matmul(ds, k[b]).mul_(scale)
            dk[b] = torch.matmul(ds.transpose(-2, -1), q[b]).mul_(scale)
        return dq, dk, dv, dbias


def biased_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Multi-head attention with an additive, learned bias shared by the batch.

    Args:
        q, k, v: (B, h, N, d).
        bias: (h, N, N), added to the scaled scores.

    Returns:
        (B, h, N, d).
    """
    if bias.requires_grad and torch.is_grad_enabled() and q.device.type == "cpu":
        return _BiasedAttention.apply(q, k, v, bias)
    # A 4-D mask: with a 3-D one the CPU falls back from its fused kernel to the unfused math path.
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(0))


class DropPath(nn.Module):
    """Stochastic depth: drops a whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    """Two linear layers with a GELU between them (the transformer feed-forward)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SelfAttention(nn.Module):
    """Multi-head self-attention on fused kernels; ``query_len`` limits the queries computed."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, query_len: int | None = None) -> torch.Tensor:
        B, N, C = x.shape
        h = self.num_heads
        if query_len is None:
            qkv = self.qkv(x).view(B, N, 3, h, C // h).permute(2, 0, 3, 1, 4)  # (3, B, h, N, d)
            q, k, v = qkv.unbind(0)
        else:
            # Only the first query_len tokens are read downstream: project queries for them alone.
            w_q, w_kv = self.qkv.weight.split([C, 2 * C])
            b_q, b_kv = self.qkv.bias.split([C, 2 * C])
            q = F.linear(x[:, :query_len], w_q, b_q).view(B, query_len, h, C // h).transpose(1, 2)
            kv = F.linear(x, w_kv, b_kv).view(B, N, 2, h, C // h).permute(2, 0, 3, 1, 4)
            k, v = kv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, h, Nq, d)
        return self.proj(out.transpose(1, 2).flatten(2))


class TransformerBlock(nn.Module):
    """Pre-norm ViT block (LayerNorm eps 1e-6, as in the reference ViT)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, query_len: int | None = None) -> torch.Tensor:
        y = self.attn(self.norm1(x), query_len)
        x = (x if query_len is None else x[:, :query_len]) + y
        return x + self.mlp(self.norm2(x))


class SqueezeExcite(nn.Module):
    """Full-rank squeeze-excitation gate on a feature vector: x * sigmoid(W2 relu(W1 x))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, dim)
        self.linear2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.linear2(F.relu(self.linear1(x))))
