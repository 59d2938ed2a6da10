"""A configurable U-Net (Ronneberger et al. 2015) in 2-D or 3-D.

Encoder: ``depth`` levels of two 3x3(x3) conv-norm-ReLU layers, each followed by 2x max pooling
(channels ``width, 2 width, ...``); a bottleneck; a decoder that upsamples 2x (transposed conv),
concatenates the skip connection of the same level and applies two convs; a 1x1 head. Used by
the image-translation world (``world_translation``: pix2pix's generator is a U-Net) and by
segmentation and occupancy chapters. Input (B, C, H, W) or (B, C, D, H, W); every spatial side
must be divisible by ``2**depth`` (a clear error otherwise; pad first, e.g. with
:func:`pad_to_multiple`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _layers(dims: int):
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    if dims == 2:
        return nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.BatchNorm2d, nn.InstanceNorm2d
    return nn.Conv3d, nn.ConvTranspose3d, nn.MaxPool3d, nn.BatchNorm3d, nn.InstanceNorm3d


class UNet(nn.Module):
    """``(B, in_channels, *S) -> (B, out_channels, *S)`` for ``S`` of ``dims`` sides.

    ``norm``: "batch", "instance" or "none"; ``out_activation``: None, "sigmoid" or "tanh"."""

    def __init__(self, in_channels: int, out_channels: int, dims: int = 2, width: int = 16,
                 depth: int = 3, norm: str = "batch", out_activation: str | None = None) -> None:
        super().__init__()
        conv, up, pool, bn, inorm = _layers(dims)
        norms = {"batch": bn, "instance": inorm, "none": lambda c: nn.Identity()}
        if norm not in norms:
            raise ValueError(f"norm must be one of {tuple(norms)}, got {norm!r}")
        acts = {None: nn.Identity(), "sigmoid": nn.Sigmoid(), "tanh": nn.Tanh()}
        if out_activation not in acts:
            raise ValueError(f"out_activation must be one of {tuple(acts)}, got {out_activation!r}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(conv(c_in, c_out, 3, padding=1), norms[norm](c_out), nn.ReLU(),
                                 conv(c_out, c_out, 3, padding=1), norms[norm](c_out), nn.ReLU())

        chs = [width * 2 ** i for i in range(depth + 1)]
        self.dims, self.depth = dims, depth
        self.down = nn.ModuleList(block(c_in, c) for c_in, c in zip([in_channels] + chs, chs[:-1]))
        self.pool = pool(2)
        self.bottom = block(chs[-2], chs[-1])
        self.up = nn.ModuleList(up(chs[i + 1], chs[i], 2, stride=2) for i in reversed(range(depth)))
        self.dec = nn.ModuleList(block(2 * chs[i], chs[i]) for i in reversed(range(depth)))
        self.head = nn.Sequential(conv(width, out_channels, 1), acts[out_activation])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.dims + 2:
            raise ValueError(f"UNet(dims={self.dims}) expects (B, C, {self.dims} sides), "
                             f"got {tuple(x.shape)}")
        m = 2 ** self.depth
        if any(s % m for s in x.shape[2:]):
            raise ValueError(f"every spatial side must be divisible by 2**depth = {m}, got "
                             f"{tuple(x.shape[2:])}; pad with pad_to_multiple(x, {m})")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([up(x), skip], 1))
        return self.head(x)


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "replicate") -> torch.Tensor:
    """Pad the spatial sides of (B, C, *S) at their far ends up to multiples of ``multiple``."""
    pad: list[int] = []
    for s in reversed(x.shape[2:]):
        pad += [0, (-s) % multiple]
    return F.pad(x, pad, mode=mode)
