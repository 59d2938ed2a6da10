"""A tiny single-stack hourglass (Newell et al., ECCV 2016) for keypoint heatmaps.

Used by the UniLoss chapter (``notebooks/eccv2020/surrogate_loss.ipynb``) in place of the paper's
single-stack Stacked Hourglass. A stride-2 stem, then ``depth`` times (conv, 2x2 max pool) down
and nearest-neighbour upsampling back, each level adding a skip branch; a 1x1 head gives one
heatmap per joint at 1/2 or 1/4 of the input resolution (the Stacked Hourglass: 64 x 64 from 256).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class _Level(nn.Module):
    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.skip = _conv(width, width)
        self.down = _conv(width, width)
        self.inner = _Level(width, depth - 1) if depth > 1 else _conv(width, width)
        self.up = _conv(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.up(self.inner(self.down(F.max_pool2d(x, 2))))
        return self.skip(x) + F.interpolate(low, scale_factor=2, mode="nearest")


class TinyHourglass(nn.Module):
    """``(B, in_channels, S, S) -> (B, joints, S/stride, S/stride)`` heatmap scores; ``S``
    divisible by ``stride * 2^depth``."""

    def __init__(self, in_channels: int = 1, joints: int = 1, width: int = 16,
                 depth: int = 2, stride: int = 2) -> None:
        super().__init__()
        if width < 8 or depth < 1 or stride not in (2, 4):
            raise ValueError(f"need width >= 8, depth >= 1, stride 2 or 4, got {width}, {depth}, "
                             f"{stride}")
        self.in_channels, self.stride, self.factor = in_channels, stride, stride * 2 ** depth
        stem = [nn.Conv2d(in_channels, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width),
                nn.ReLU(inplace=True)]
        if stride == 4:
            stem += [_conv(width, width), nn.MaxPool2d(2)]
        self.stem = nn.Sequential(*stem)
        self.body = _Level(width, depth)
        self.head = nn.Conv2d(width, joints, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[-1] % self.factor \
                or x.shape[-2] % self.factor:
            raise ValueError(f"expected (B, {self.in_channels}, H, W) with H, W divisible by "
                             f"{self.factor}, got {tuple(x.shape)}")
        return self.head(self.body(self.stem(x)))
