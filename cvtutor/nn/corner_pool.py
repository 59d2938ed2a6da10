"""Corner pooling (CornerNet, Law & Deng, ECCV 2018), by cumulative maxima.

Derived in the Corner Proposal Network chapter (``notebooks/eccv2020/cpnet.ipynb``). A corner lies
outside its object, so a convolution at the corner sees little of it; corner pooling brings the
object's evidence to the corner. For the **top-left** corner at (i, j), with two feature maps f_t
and f_l,

    TL(i, j) = max_{k ≥ i} f_t(k, j) + max_{l ≥ j} f_l(i, l)

(look down the column and right along the row), and for the **bottom-right** corner

    BR(i, j) = max_{k ≤ i} f_b(k, j) + max_{l ≤ j} f_r(i, l).

Each max is a running maximum: ``torch.cummax`` along the axis (bottom-right), or on the flipped
tensor (top-left, a *reverse* cumulative max), O(HW) instead of the O(H·W·(H+W)) double loop.
"""
from __future__ import annotations

import torch
from torch import nn

CORNERS = ("tl", "br")


def reverse_cummax(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``out[..., i, ...] = max_{k ≥ i} x[..., k, ...]`` along ``dim`` (a running max from the end)."""
    return x.flip(dim).cummax(dim).values.flip(dim)


def corner_pool(vertical: torch.Tensor, horizontal: torch.Tensor, corner: str) -> torch.Tensor:
    """Corner pooling of (B, C, H, W) maps: ``corner="tl"`` sums the max of ``vertical`` over rows
    k ≥ i and the max of ``horizontal`` over columns l ≥ j; ``corner="br"`` over k ≤ i and l ≤ j."""
    if corner not in CORNERS:
        raise ValueError(f"corner must be one of {CORNERS}, got {corner!r}")
    if vertical.ndim != 4 or vertical.shape != horizontal.shape:
        raise ValueError(f"need two (B, C, H, W) maps of one shape, got {tuple(vertical.shape)} and "
                         f"{tuple(horizontal.shape)}")
    if corner == "tl":
        return reverse_cummax(vertical, 2) + reverse_cummax(horizontal, 3)
    return vertical.cummax(2).values + horizontal.cummax(3).values


def _conv_bn(c_in: int, c_out: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out))


class CornerPooling(nn.Module):
    """CornerNet's corner pooling module: two 3×3 conv-BN-ReLU branches pooled by
    :func:`corner_pool`, a 3×3 conv-BN of their sum added to a 1×1 conv-BN shortcut, ReLU, then a
    3×3 conv-BN-ReLU. ``(B, width, H, W) -> (B, width, H, W)``."""

    def __init__(self, width: int, corner: str) -> None:
        super().__init__()
        if corner not in CORNERS:
            raise ValueError(f"corner must be one of {CORNERS}, got {corner!r}")
        if width < 8:
            raise ValueError(f"width must be >= 8, got {width}")
        self.corner = corner
        self.p1 = nn.Sequential(_conv_bn(width, width), nn.ReLU(inplace=True))
        self.p2 = nn.Sequential(_conv_bn(width, width), nn.ReLU(inplace=True))
        self.merge = _conv_bn(width, width)
        self.shortcut = _conv_bn(width, width, 1)
        self.out = nn.Sequential(_conv_bn(width, width), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = corner_pool(self.p1(x), self.p2(x), self.corner)
        return self.out(torch.relu(self.merge(pooled) + self.shortcut(x)))
