"""A small CNN classifier for the image-classification world's digits and shapes.

Shown in ``notebooks/eccv2020/world_images.ipynb`` (section 5): the world's reference classifier,
trained in seconds on a CPU. Three conv3x3-BN-ReLU layers of ``w, 2w, 4w`` channels (the first two
followed by 2x2 max pooling), global average pooling and a linear head.
"""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """``(B, in_channels, H, W) -> (B, n_classes)`` logits; :meth:`features` gives the ``(B, 4w)``
    pooled features before the head (the embedding open-set methods score)."""

    def __init__(self, in_channels: int = 3, n_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        if in_channels < 1 or n_classes < 1 or width < 1:
            raise ValueError(
                f"in_channels, n_classes and width must be positive, got {in_channels}, "
                f"{n_classes}, {width}"
            )
        self.in_channels = in_channels

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]

        self.body = nn.Sequential(
            *block(in_channels, width),
            nn.MaxPool2d(2),
            *block(width, 2 * width),
            nn.MaxPool2d(2),
            *block(2 * width, 4 * width),
        )
        self.head = nn.Linear(4 * width, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (B, {self.in_channels}, H, W) input, got {tuple(x.shape)}")
        return self.body(x).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
