"""Small building blocks shared by the POSTER networks."""
from __future__ import annotations

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
    return F.conv2d(x, weight, shift.to(weight.dtype), conv.stride, conv.padding, conv.dilation, conv.groups)


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
