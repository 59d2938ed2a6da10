"""ResNet-mini: the small residual regressor of the hand papers' fast profiles.

A 3×3 conv stem of width ``w``, three residual stages of ``w, 2w, 4w`` channels (each stride 2),
global average pooling and a linear head (63 = 21 joints × 3 for hand pose). About 21.5k
parameters at ``w = 8`` (knowledge-as-priors digest, "Models"). ``features=True`` also returns the
three stage outputs, which attention transfer and activation matching need.

The image-classification world (``notebooks/eccv2020/world_images.ipynb``) adds ``blocks`` per
stage and per-stage ``strides``: the CIFAR ResNets are ``ResNetMini(3, 10, 16, blocks=(n, n, n),
strides=(1, 2, 2))`` with depth ``6n + 2`` (ResNet-8: ``n = 1``, ResNet-20: ``n = 3``). The
defaults (one block a stage, stride 2 each) keep the hand papers' network bit for bit.
"""
from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """``relu(x' + F(x))`` with ``F`` = conv3×3-BN-ReLU-conv3×3-BN; ``x'`` a strided 1×1
    projection of x (``projection=True``, always used by the defaults) or ``x`` itself when the
    shape is kept."""

    def __init__(self, c_in: int, c_out: int, stride: int = 2, projection: bool = True) -> None:
        super().__init__()
        if not projection and (c_in != c_out or stride != 1):
            raise ValueError(f"an identity skip needs c_in == c_out and stride 1, "
                             f"got {c_in}, {c_out}, {stride}")
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        if projection:
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        else:
            self.skip = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.skip(x) + self.body(x))


def _stage(c_in: int, c_out: int, blocks: int, stride: int) -> nn.Module:
    """One stage: a block that changes the shape (projection skip if it does), then ``blocks - 1``
    shape-keeping blocks with identity skips. A one-block stage is the block itself, as before."""
    first = BasicBlock(c_in, c_out, stride, projection=stride != 1 or c_in != c_out)
    if blocks == 1:
        return first
    rest = (BasicBlock(c_out, c_out, 1, projection=False) for _ in range(blocks - 1))
    return nn.Sequential(first, *rest)


class ResNetMini(nn.Module):
    """Stem + 3 residual stages (``blocks[i]`` blocks, first stride ``strides[i]``) + global
    average pool + linear head: ``(B, in_channels, H, W) -> (B, out_dim)``."""

    def __init__(self, in_channels: int = 3, out_dim: int = 63, width: int = 8,
                 blocks: tuple[int, int, int] = (1, 1, 1),
                 strides: tuple[int, int, int] = (2, 2, 2)) -> None:
        super().__init__()
        if in_channels < 1 or out_dim < 1 or width < 1:
            raise ValueError(f"in_channels, out_dim and width must be positive, got {in_channels}, {out_dim}, {width}")
        if len(blocks) != 3 or len(strides) != 3 or min(blocks) < 1 or min(strides) < 1:
            raise ValueError(f"blocks and strides must be 3 positive integers each, "
                             f"got {blocks}, {strides}")
        self.in_channels = in_channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))
        widths = (width, width, 2 * width, 4 * width)
        self.stages = nn.ModuleList([_stage(widths[i], widths[i + 1], blocks[i], strides[i])
                                     for i in range(3)])
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
