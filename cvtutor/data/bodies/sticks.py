"""Stick-figure crops of the body world: top-down person crops with every person of the view drawn
as soft line segments, and heatmap targets for the person of the crop and for the others in it.

Used by the crowd pose chapter (``notebooks/eccv2020/crowd_3d_pose_mvg.ipynb``) to train a small
heatmap regressor with its foot-weighted loss (Eq. 1); the bodies come from
:class:`cvtutor.data.bodies.BodyWorld`.
"""
from __future__ import annotations

import torch

from cvtutor.data.bodies.skeleton import BONES, N_JOINTS
from cvtutor.data.bodies.world import person_boxes, to_crop
from cvtutor.nn.heatmaps import gaussian_heatmaps


def bone_segments(uv: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For skeletons ``uv (..., 23, 2)`` (pixels) and every pixel centre of a ``size``² image: the
    squared distance ``d²`` to each bone's segment and the position ``t`` in [0, 1] of the nearest
    point along it, both ``(..., 22, size²)`` (pixels in row-major order). Shared by the stick
    renderers of E32 (:func:`draw_sticks`) and E42 (``part_aware_3d_pose_nas.render_sticks``)."""
    g = torch.arange(size, dtype=uv.dtype, device=uv.device) + 0.5
    pix = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)  # (S², 2) as (u, v)
    pa = torch.tensor([a for a, _ in BONES], device=uv.device)
    pb = torch.tensor([b for _, b in BONES], device=uv.device)
    a, b = uv[..., pa, None, :], uv[..., pb, None, :]  # (..., 22, 1, 2)
    ab = b - a
    ap = pix - a
    t = ((ap * ab).sum(-1) / ab.square().sum(-1).clamp_min(1e-9)).clamp(0, 1)
    d2 = (ap - t[..., None] * ab).square().sum(-1)  # (..., 22, S²)
    return d2, t


def draw_sticks(uv: torch.Tensor, size: int, width: float = 0.7, chunk: int = 128
                ) -> torch.Tensor:
    """Images ``(B, size, size)`` in [0, 1] of ``Q`` skeletons per image, ``uv (B, Q, 23, 2)``
    (pixels): every bone a segment with intensity ``exp(-d²/(2w²))`` at distance ``d`` from a pixel
    centre, the brightest segment winning; batched over ``chunk`` images at a time."""
    if uv.ndim != 4 or uv.shape[-2:] != (N_JOINTS, 2):
        raise ValueError(f"uv must be (B, Q, {N_JOINTS}, 2), got {tuple(uv.shape)}")
    out = []
    for part in uv.split(chunk):
        d2, _ = bone_segments(part, size)  # (c, Q, 22, S²)
        out.append(torch.exp(-d2.amin((1, 2)) / (2 * width ** 2)))
    return torch.cat(out).reshape(-1, size, size)


def stick_crops(uv: torch.Tensor, size: int, sigma: float = 1.0) -> dict[str, torch.Tensor]:
    """One top-down crop per person of each view: ``uv (n, V, P, 23, 2)`` projections → ``image (B,
    1, size, size)``, ``target (B, 23, size, size)`` (the person's own Gaussian heatmaps),
    ``others (B, 23, size, size)`` (the same joints of the other people inside the crop, the ``C``
    of Eq. 1, max over people) and ``uv (B, 23, 2)`` (the person's joints in crop pixels), ``B =
    n·V·P``. The crop is the person's box (10 % margin) made square."""
    n, V, P = uv.shape[:3]
    flat = uv.reshape(n * V, P, N_JOINTS, 2)
    boxes = person_boxes(flat)  # (nV, P, 4)
    B = n * V * P
    box = boxes.reshape(B, 4)
    scene = flat[:, None].expand(n * V, P, P, N_JOINTS, 2).reshape(B, P * N_JOINTS, 2)
    crop_uv = to_crop(scene, box, size).reshape(B, P, N_JOINTS, 2)
    own = torch.arange(P, device=uv.device).repeat(n * V)
    image = draw_sticks(crop_uv, size)[:, None]
    target = gaussian_heatmaps(crop_uv[torch.arange(B), own], size, size, sigma)
    others = torch.zeros_like(target)
    for q in range(P):
        h = gaussian_heatmaps(crop_uv[:, q], size, size, sigma)
        others = torch.where((own != q)[:, None, None, None], torch.maximum(others, h), others)
    return {"image": image, "target": target, "others": others,
            "uv": crop_uv[torch.arange(B), own]}

