"""Keypoint heatmaps: Gaussian targets (2-D and 3-D), soft-argmax (integral regression), argmax with
the quarter-pixel offset, and the horizontal flip test with the left/right swap.

Derived in the hand world chapter (``notebooks/hands/hand_world.ipynb``, the 2-D targets) and the
*People, cameras and geometry* chapter (``notebooks/eccv2020/world_people.ipynb``). Convention:
heatmap pixel ``j`` has its centre at ``j + 0.5`` in heatmap units; an image of side ``S`` maps to a
heatmap of side ``h`` by ``x_h = x·h/S``. Decoders return heatmap units.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

def gaussian_heatmaps(
    uv: torch.Tensor, image_size: int, heatmap_size: int, sigma: float
) -> torch.Tensor:
    """``H_j(p) = exp(-‖p - uv_j‖² / (2σ²))`` on an ``h × h`` grid (σ in heatmap pixels; heatmap
    pixel centres at ``(j + 0.5)·S/h`` in image pixels), zero for joints outside the crop. uv ``(B,
    J, 2)``."""
    scale = heatmap_size / image_size
    g = torch.arange(heatmap_size, dtype=uv.dtype, device=uv.device) + 0.5
    u = uv[..., 0, None, None] * scale
    v = uv[..., 1, None, None] * scale
    d2 = (g[None, None, None, :] - u) ** 2 + (g[None, None, :, None] - v) ** 2
    inside = ((uv >= 0) & (uv < image_size)).all(-1)
    return torch.exp(-d2 / (2 * sigma * sigma)) * inside[..., None, None]


def gaussian_heatmaps_3d(
    xyz: torch.Tensor, size: tuple[int, int, int], sigma: float
) -> torch.Tensor:
    """Volumetric targets ``H_j(p) = exp(-‖p - x_j‖²/(2σ²))`` on a ``D × H × W`` grid of voxel
    centres ``(k + 0.5)``: ``xyz (B, J, 3)`` = (x, y, z) in voxel units → ``(B, J, D, H, W)``."""
    if xyz.shape[-1] != 3:
        raise ValueError(f"xyz must be (B, J, 3) in voxel units, got {tuple(xyz.shape)}")
    D, H, W = size
    axes = [torch.arange(n, dtype=xyz.dtype, device=xyz.device) + 0.5 for n in (W, H, D)]
    dx = (axes[0] - xyz[..., 0, None]) ** 2
    dy = (axes[1] - xyz[..., 1, None]) ** 2
    dz = (axes[2] - xyz[..., 2, None]) ** 2
    d2 = dz[..., :, None, None] + dy[..., None, :, None] + dx[..., None, None, :]
    return torch.exp(-d2 / (2 * sigma * sigma))


def soft_argmax(logits: torch.Tensor, dims: int = 2, beta: float = 1.0) -> torch.Tensor:
    """Integral regression (Sun et al. 2018): ``x̂ = Σ_p softmax(β·H)_p · p`` over the last ``dims``
    axes, differentiable. ``(B, J, H, W)`` → ``(B, J, 2)`` = (x, y); ``(B, J, D, H, W)`` with
    ``dims=3`` → ``(B, J, 3)`` = (x, y, z); in heatmap units with pixel centres at ``k + 0.5``."""
    if dims not in (2, 3) or logits.ndim < dims + 1:
        raise ValueError(
            f"soft_argmax: need dims in (2, 3) and (..., {'D, ' if dims == 3 else ''}H, W) "
            f"logits; got dims={dims}, shape {tuple(logits.shape)}"
        )
    spatial = logits.shape[-dims:]
    p = torch.softmax(beta * logits.flatten(-dims), -1).reshape(logits.shape)
    coords = []
    for k, n in enumerate(reversed(spatial)):  # x (last axis), y, z
        axis = logits.ndim - 1 - k
        marginal = p.sum(dim=[a for a in range(logits.ndim - dims, logits.ndim) if a != axis])
        grid = torch.arange(n, dtype=logits.dtype, device=logits.device) + 0.5
        coords.append((marginal * grid).sum(-1))
    return torch.stack(coords, -1)


def argmax_decode(
    heatmaps: torch.Tensor, quarter_offset: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The classic decoder (SimpleBaseline / HRNet): the arg-max pixel, moved a quarter pixel
    towards its higher neighbour on each axis, ``x̂ = j + 0.5 + 0.25·sign(H[j+1] - H[j-1])``. ``(B,
    J, H, W)`` → coordinates ``(B, J, 2)`` (heatmap units) and the peak values ``(B, J)``."""
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (B, J, H, W), got {tuple(heatmaps.shape)}")
    B, J, H, W = heatmaps.shape
    flat = heatmaps.flatten(2)
    peak, idx = flat.max(-1)
    y, x = idx // W, idx % W
    xy = torch.stack([x, y], -1).to(heatmaps.dtype) + 0.5
    if quarter_offset:

        def at(yy, xx):
            inside = (xx >= 0) & (xx < W) & (yy >= 0) & (yy < H)
            v = torch.gather(flat, 2, (yy.clamp(0, H - 1) * W + xx.clamp(0, W - 1))[..., None])[
                ..., 0
            ]
            return torch.where(inside, v, peak)  # a border peak gets no offset on that side

        dx = at(y, x + 1) - at(y, x - 1)
        dy = at(y + 1, x) - at(y - 1, x)
        xy = xy + 0.25 * torch.stack([torch.sign(dx), torch.sign(dy)], -1)
    return xy, peak


def flip_pairs_permutation(n_joints: int, flip_pairs: Sequence[tuple[int, int]]) -> list[int]:
    """The joint permutation of a left/right mirror: joint ``i`` of the mirrored image is joint
    ``perm[i]`` of the original (pairs swapped, centre joints fixed)."""
    perm = list(range(n_joints))
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return perm


def flip_heatmaps(heatmaps: torch.Tensor, flip_pairs: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Mirror heatmaps ``(B, J, H, W)`` horizontally and swap the left/right channels. With pixel
    centres at ``k + 0.5`` the mirror ``x ↦ W - x`` maps pixel ``k`` to ``W - 1 - k`` exactly, so no
    one-pixel shift is needed."""
    perm = flip_pairs_permutation(heatmaps.shape[1], flip_pairs)
    return heatmaps.flip(-1)[:, perm]


def flip_test(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    flip_pairs: Sequence[tuple[int, int]],
) -> torch.Tensor:
    """Test-time flip augmentation: ``½·(f(x) + flip(f(flip(x))))`` for images ``(B, C, H, W)`` and
    a model returning heatmaps ``(B, J, h, w)``."""
    return 0.5 * (model(images) + flip_heatmaps(model(images.flip(-1)), flip_pairs))
