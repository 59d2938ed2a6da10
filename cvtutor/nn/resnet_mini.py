"""ResNet-mini: the small residual regressor of the hand papers' fast profiles.

A 3×3 conv stem of width ``w``, three residual stages of ``w, 2w, 4w`` channels (each stride 2),
global average pooling and a linear head (63 = 21 joints × 3 for hand pose). About 21.5k
parameters at ``w = 8`` (knowledge-as-priors digest, "Models"). ``features=True`` also returns the
three stage outputs, which attention transfer and activation matching need.
"""
from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """``relu(x' + F(x'))`` with ``F`` = conv3×3-BN-ReLU-conv3×3-BN; ``x'`` a strided 1×1 projection of x."""

    def __init__(self, c_in: int, c_out: int, stride: int = 2) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.skip(x) + self.body(x))


class ResNetMini(nn.Module):
    """Stem + 3 residual stages + global average pool + linear head."""

    def __init__(self, in_channels: int = 3, out_dim: int = 63, width: int = 8) -> None:
        super().__init__()
        if in_channels < 1 or out_dim < 1 or width < 1:
            raise ValueError(f"in_channels, out_dim and width must be positive, got {in_channels}, {out_dim}, {width}")
        self.in_channels = in_channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))
        self.stages = nn.ModuleList([BasicBlock(width, width), BasicBlock(width, 2 * width),
                                     BasicBlock(2 * width, 4 * width)])
        self.head = nn.Linear(4 * width, out_dim)

    def forward(self, x: torch.Tensor, features: bool = False):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (B, {self.in_channels}, H, W) input, got {tuple(x.shape)}")
        h = self.stem(x)
        feats = []
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        out = self.head(h.mean((2, 3)))
        return (out, feats) if features else out
