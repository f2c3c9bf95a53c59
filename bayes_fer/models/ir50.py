"""IR-50 image backbone (ArcFace's improved residual network) as POSTER++ uses it.

Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019.
POSTER++ keeps the first three stages only and taps each: from a 112x112 face they give
64x56x56, 128x28x28 and 256x14x14 maps. The embedding head of the original network is
never used, so it is not built.
"""
from __future__ import annotations

import torch
from torch import nn

from bayes_fer.models.layers import PReLU, conv_bn
from bayes_fer.models.winograd import WinogradConv2d


class IRUnit(nn.Module):
    """Pre-activation residual unit: BN, conv3x3, PReLU, conv3x3 (strided), BN, plus shortcut.

    With ``fast``, its stride-1 convolutions train by Winograd on the CPU
    (``bayes_fer.models.winograd``) and its PReLU by ``layers.PReLU``.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, fast: bool = True) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = WinogradConv2d(in_ch, out_ch, fast)
        self.prelu = PReLU(out_ch, fast)
        if stride == 1:
            self.conv2: nn.Conv2d = WinogradConv2d(out_ch, out_ch, fast)
        else:
            self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        if in_ch == out_ch:
            # A 1x1 max-pool with stride s is plain subsampling: no parameters.
            self.shortcut: nn.Module = nn.Identity() if stride == 1 else nn.MaxPool2d(1, stride)
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # bn1 precedes a zero-padded conv, so it does not fold exactly; bn2 and the shortcut's BN do.
        res = conv_bn(self.prelu(self.conv1(self.bn1(x))), self.conv2, self.bn2)
        if isinstance(self.shortcut, nn.Sequential):
            short = conv_bn(x, self.shortcut[0], self.shortcut[1])
        else:
            short = self.shortcut(x)
        # In place: neither BatchNorm nor the convolution keeps its output for the backward
        # pass, and a fresh map per unit costs the CPU a page fault per 4 kB.
        return res.add_(short)


class IR50(nn.Module):
    """Three-stage IR backbone returning one feature map per stage.

    Args:
        widths: output channels of the stem and the three stages' units.
        depths: units per stage (IR-50 uses 3, 4, 14).
        stem_width: channels of the stem (64 in IR-50).
        fast: train by the CPU kernels of ``winograd`` and ``layers.PReLU``.
    """

    def __init__(
        self,
        widths: tuple[int, int, int] = (64, 128, 256),
        depths: tuple[int, int, int] = (3, 4, 14),
        stem_width: int = 64,
        fast: bool = True,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem_width, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_width), PReLU(stem_width, fast)
        )
        stages = []
        in_ch = stem_width
        for width, depth in zip(widths, depths):
            units = [IRUnit(in_ch, width, 2, fast)] + [IRUnit(width, width, 1, fast) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*units))
            in_ch = width
        self.stages = nn.ModuleList(stages)
        self.widths = tuple(widths)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem[2](conv_bn(x, self.stem[0], self.stem[1]))
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
