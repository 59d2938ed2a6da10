"""Hand-crafted appearance features, batched on the device: HOG and colour histograms.

Chapter ``revise`` (REVISE, E43) uses them as its fast stand-in for the pretrained feature nets
of the paper (a CIFAR ResNet-110 for instances, AlexNet-Places for scenes): a 32 x 32 crop
becomes ``[hog(crop), colour_histogram(crop)]``.

* :func:`hog`: histograms of oriented gradients (Dalal and Triggs), the same numbers as
  ``skimage.feature.hog(..., block_norm="L2")`` (tested), for a whole batch at once;
* :func:`colour_histogram`: per-channel intensity histograms, each summing to 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _check_images(x: torch.Tensor, name: str = "images") -> None:
    if x.ndim != 4:
        raise ValueError(f"{name} must be (B, C, H, W), got shape {tuple(x.shape)}")


def hog(
    images: torch.Tensor,
    orientations: int = 9,
    cell: int = 8,
    block: int = 2,
    eps: float = 1e-5,
) -> torch.Tensor:
    """HOG features (B, n_by * n_bx * block^2 * orientations) of ``images`` (B, C, H, W).

    Gradients are central differences (``x[i+1] - x[i-1]``, zero on the border rows/columns); on
    colour images each pixel keeps the channel of largest gradient magnitude. Each pixel votes its
    magnitude into one of ``orientations`` unsigned-orientation bins of width 180 / orientations
    degrees; a cell's histogram is the mean vote over its ``cell`` x ``cell`` pixels; blocks of
    ``block`` x ``block`` cells (stride one cell) are L2-normalised, ``v / sqrt(|v|^2 + eps^2)``.
    The layout is skimage's: (block row, block column, cell row, cell column, orientation)."""
    _check_images(images)
    b, c, h, w = images.shape
    n_cy, n_cx = h // cell, w // cell
    if n_cy < block or n_cx < block:
        raise ValueError(
            f"images of {h} x {w} px hold fewer than {block} x {block} cells of {cell} px")
    x = images.float()
    gy = torch.zeros_like(x)
    gx = torch.zeros_like(x)
    gy[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
    gx[:, :, :, 1:-1] = x[:, :, :, 2:] - x[:, :, :, :-2]
    mag = torch.hypot(gx, gy)
    if c > 1:
        pick = mag.argmax(1, keepdim=True)
        mag, gx, gy = (t.gather(1, pick) for t in (mag, gx, gy))
    angle = torch.rad2deg(torch.atan2(gy, gx)) % 180.0  # (B, 1, H, W)
    bins = (angle / (180.0 / orientations)).floor().long().clamp_max(orientations - 1)
    votes = torch.zeros(b, orientations, h, w, device=x.device)
    votes.scatter_(1, bins, mag)
    cells = F.avg_pool2d(votes[:, :, : n_cy * cell, : n_cx * cell], cell)  # (B, O, n_cy, n_cx)
    blocks = cells.unfold(2, block, 1).unfold(3, block, 1)  # (B, O, n_by, n_bx, block, block)
    blocks = blocks.permute(0, 2, 3, 4, 5, 1).reshape(b, n_cy - block + 1, n_cx - block + 1, -1)
    blocks = blocks / torch.sqrt((blocks**2).sum(-1, keepdim=True) + eps**2)
    return blocks.reshape(b, -1)


def colour_histogram(images: torch.Tensor, bins: int = 8) -> torch.Tensor:
    """(B, C * bins) per-channel histograms of ``images`` (B, C, H, W) with values in [0, 1],
    ``bins`` equal bins per channel (1.0 falls in the last), each channel's histogram summing
    to 1."""
    _check_images(images)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    b, c, h, w = images.shape
    idx = (images.float().clamp(0, 1) * bins).long().clamp_max(bins - 1).reshape(b, c, -1)
    hist = torch.zeros(b, c, bins, device=images.device)
    hist.scatter_add_(2, idx, torch.ones_like(idx, dtype=hist.dtype))
    return (hist / (h * w)).reshape(b, -1)


def appearance_features(images: torch.Tensor, colour_weight: float = 1.0) -> torch.Tensor:
    """``[hog(images), colour_weight * sqrt(colour_histogram(images))]`` (B, D): shape and
    colour in one vector (the square root makes Euclidean distance the Hellinger distance on the
    histograms, of the same order as the unit-norm HOG blocks')."""
    return torch.cat(
        [hog(images), colour_weight * math.sqrt(2.0) * colour_histogram(images).sqrt()], 1
    )
