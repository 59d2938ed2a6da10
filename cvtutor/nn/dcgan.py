"""A DCGAN-style generator used as a decoder: latent vector → image-like maps (heatmaps, masks).

Radford et al. (ICLR 2016): a linear layer to a ``(c, 4, 4)`` block, then transposed convolutions
(kernel 4, stride 2, padding 1) each doubling the resolution, with batch norm and ReLU between
them and no activation on the last one (a loss on logits or on raw maps picks its own).
"""
from __future__ import annotations

import torch
from torch import nn


class DCGANDecoder(nn.Module):
    """``z (B, d)`` → ``(B, out_channels, out_size, out_size)``; ``out_size`` must be ``4·2^k`` (k ≥ 1).

    The channel width halves at every upsampling, from ``width·2^(k-1)`` at 4×4 down to ``width``.
    """

    def __init__(self, latent_dim: int, out_channels: int, out_size: int = 16, width: int = 16) -> None:
        super().__init__()
        k = 0
        while 4 * 2 ** k < out_size:
            k += 1
        if out_size < 8 or 4 * 2 ** k != out_size:
            raise ValueError(f"out_size must be 4·2^k with k >= 1 (8, 16, 32, 64...), got {out_size}")
        if latent_dim < 1 or out_channels < 1 or width < 1:
            raise ValueError(f"latent_dim, out_channels and width must be positive, got {latent_dim}, "
                             f"{out_channels}, {width}")
        self.latent_dim, self.out_channels, self.out_size = latent_dim, out_channels, out_size
        c = width * 2 ** (k - 1)
        self.c0 = c
        self.fc = nn.Sequential(nn.Linear(latent_dim, c * 16), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        for i in range(k):
            last = i == k - 1
            c_out = out_channels if last else c // 2
            layers.append(nn.ConvTranspose2d(c, c_out, 4, 2, 1, bias=last))
            if not last:
                layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c = c_out
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected a latent of shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        return self.net(self.fc(z).reshape(len(z), self.c0, 4, 4))
