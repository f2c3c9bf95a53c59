"""MobileFaceNet landmark network, used by POSTER++ as a frozen facial-landmark feature extractor.

Chen et al., "MobileFaceNets: Efficient CNNs for Accurate Real-Time Face Verification", 2018;
the landmark variant regresses 68 points from a 112x112 face. POSTER++ reads three
intermediate maps (64x28x28, 128x14x14, 512x7x7). The 136-value regression head is never
read, so it is not built.
"""
from __future__ import annotations

import torch
from torch import nn

from bayes_fer.models.layers import conv_bn


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm, with an optional per-channel PReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.prelu = nn.PReLU(out_ch) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(conv_bn(x, self.conv, self.bn))


class InvertedBottleneck(nn.Module):
    """Expand (1x1), depthwise 3x3, project (1x1, linear); residual when shapes allow."""

    def __init__(self, in_ch: int, out_ch: int, hidden: int, stride: int, residual: bool) -> None:
        super().__init__()
        self.expand = ConvBN(in_ch, hidden)
        self.depthwise = ConvBN(hidden, hidden, 3, stride, groups=hidden)
        self.project = ConvBN(hidden, out_ch, act=False)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


def _stage(in_ch: int, out_ch: int, hidden: int, blocks: int, down_hidden: int) -> nn.Sequential:
    layers = [InvertedBottleneck(in_ch, out_ch, down_hidden, 2, residual=False)]
    layers += [InvertedBottleneck(out_ch, out_ch, hidden, 1, residual=True) for _ in range(blocks)]
    return nn.Sequential(*layers)


class MobileFaceNet(nn.Module):
    """Landmark feature extractor returning the 1/4, 1/8 and 1/16 resolution maps.

    Args:
        width_mult: scales every channel count (1.0 is the published network).
        blocks: residual blocks in the three stages after each downsampling (4, 6, 2).
    """

    def __init__(self, width_mult: float = 1.0, blocks: tuple[int, int, int] = (4, 6, 2)) -> None:
        super().__init__()
        c = lambda n: max(1, int(round(n * width_mult)))  # noqa: E731
        self.stem = nn.Sequential(ConvBN(3, c(64), 3, 2), ConvBN(c(64), c(64), 3, 1, groups=c(64)))
        # Channel plan of the published network: (in, out, expansion in the strided block, expansion after).
        self.stage1 = _stage(c(64), c(64), c(128), blocks[0], c(128))
        self.stage2 = _stage(c(64), c(128), c(256), blocks[1], c(256))
        self.stage3 = _stage(c(128), c(128), c(256), blocks[2], c(512))
        self.head = ConvBN(c(128), c(512))
        self.widths = (c(64), c(128), c(512))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.stage1(self.stem(x))  # (B, 64, H/4, W/4)
        f2 = self.stage2(f1)  # (B, 128, H/8, W/8)
        f3 = self.head(self.stage3(f2))  # (B, 512, H/16, W/16)
        return [f1, f2, f3]
