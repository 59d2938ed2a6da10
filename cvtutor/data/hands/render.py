"""The hand's sphere proxy, skin and backgrounds (digest sections E, F, H).

A hand is 69 spheres (:func:`sphere_proxy`): 3 per phalanx at t = 0, 1/3, 2/3 of the bone plus one per
finger tip (50), a 4x4 palm grid (16), two thumb-web spheres and a wrist sphere. Every pixel's ray is
intersected with every sphere analytically by the shared ray caster (:mod:`cvtutor.data.render3d`:
``raycast_spheres``, ``render_geometry``, ...); the nearest hit gives depth, part id and normal
exactly. Those functions and the 2-D heatmap targets (:mod:`cvtutor.nn.heatmaps`) are imported here
under their old names, so ``render.raycast_spheres`` keeps working in the hand chapters.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cvtutor.data.hands.skeleton import FINGER_JOINTS, SPHERE_RADII
from cvtutor.data.render3d import (lambert, pixel_rays, ray_sphere_depth, raycast_dense,  # noqa: F401
                                   raycast_spheres, render_geometry, sample_sphere_surface, sphere_pixel_boxes,
                                   visible_cloud)
from cvtutor.nn.heatmaps import gaussian_heatmaps  # noqa: F401

N_SPHERES = 69
PALM_PART = 16
N_PARTS = 17  # 0 background, 1..15 phalanges (1 + 3·finger + bone), 16 palm
SKIN_LIGHT = (0.98, 0.80, 0.69)
SKIN_DARK = (0.36, 0.22, 0.15)
GREEN_SCREEN = (0.2, 0.75, 0.25)


def sphere_part_ids(device=None) -> torch.Tensor:
    """``(69,)`` part id of every sphere: 1 + 3·finger + bone for phalanges (tips: distal), 16 palm."""
    ids = [1 + 3 * f + b for f in range(5) for b in range(3) for _ in range(3)]
    ids += [1 + 3 * f + 2 for f in range(5)]
    ids += [PALM_PART] * (16 + 2 + 1)
    return torch.tensor(ids, dtype=torch.long, device=device)


def joint_sphere_index() -> tuple[int, ...]:
    """For each canonical joint, the sphere centred on it (wrist: the wrist sphere)."""
    idx = [68]
    for f in range(5):
        idx += [f * 9 + b * 3 for b in range(3)] + [45 + f]
    return tuple(idx)


def sphere_proxy(joints: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sphere centres ``(n, 69, 3)`` and radii ``(n, 69)`` (mm, palm frame) for joints ``(n, 21, 3)``
    of hands of global scale ``s (n,)``."""
    n = joints.shape[0]
    radii_f = torch.tensor(SPHERE_RADII, dtype=joints.dtype, device=joints.device)  # (5, 3)
    ts = torch.tensor([0.0, 1 / 3, 2 / 3], dtype=joints.dtype, device=joints.device)
    chains = joints[:, [j for f in FINGER_JOINTS for j in f], :].reshape(n, 5, 4, 3)
    start, end = chains[:, :, :3], chains[:, :, 1:]
    bones = start[:, :, :, None] + ts[:, None] * (end - start)[:, :, :, None]  # (n,5,3 bones,3 t,3)
    finger_c = bones.reshape(n, 45, 3)
    finger_r = radii_f[:, :, None].expand(5, 3, 3).reshape(45)
    tip_c = chains[:, :, 3]
    tip_r = 0.9 * radii_f[:, 2]
    wrist = joints[:, 0]
    mcps = joints[:, [5, 9, 13, 17]]  # (n,4,3)
    wrist_row = wrist[:, None] + torch.tensor([[18.0, 12, 0], [6, 12, 0], [-6, 12, 0], [-18, 12, 0]],
                                              dtype=joints.dtype, device=joints.device) * s[:, None, None]
    fr = torch.linspace(0, 1, 4, dtype=joints.dtype, device=joints.device)
    palm_c = (wrist_row[:, None] + fr[None, :, None, None] * (mcps - wrist_row)[:, None]).reshape(n, 16, 3)
    web_c = torch.stack([0.5 * (joints[:, 1] + joints[:, 5]), (2 * joints[:, 2] + joints[:, 5]) / 3], 1)
    centres = torch.cat([finger_c, tip_c, palm_c, web_c, wrist[:, None]], 1)
    base_r = torch.cat([finger_r, tip_r, torch.tensor([14.0] * 16 + [12.0] * 2 + [18.0], dtype=joints.dtype,
                                                       device=joints.device)])
    return centres, base_r[None] * s[:, None]


def skin_tone(t: torch.Tensor) -> torch.Tensor:
    """``(1 - t)·(0.98, 0.80, 0.69) + t·(0.36, 0.22, 0.15)`` for ``t (...)`` → ``(..., 3)``."""
    light = torch.tensor(SKIN_LIGHT, dtype=t.dtype, device=t.device)
    dark = torch.tensor(SKIN_DARK, dtype=t.dtype, device=t.device)
    return (1 - t[..., None]) * light + t[..., None] * dark


def clutter(colors: torch.Tensor, rects: torch.Tensor, rect_colors: torch.Tensor, image_size: int) -> torch.Tensor:
    """``clutter`` backgrounds ``(B, 3, S, S)``: a 4x4 colour field ``colors (B, 3, 4, 4)`` bilinearly
    upsampled, plus rectangles ``rects (B, R, 4)`` = (x0, y0, x1, y1) in [0, 1] painted ``rect_colors (B, R, 3)``."""
    img = F.interpolate(colors, size=(image_size, image_size), mode="bilinear", align_corners=True)
    r = (torch.arange(image_size, dtype=colors.dtype, device=colors.device) + 0.5) / image_size
    for k in range(rects.shape[1]):
        x0, y0, x1, y1 = (rects[:, k, i, None, None] for i in range(4))
        inside = (r[None, None, :] >= x0) & (r[None, None, :] < x1) & (r[None, :, None] >= y0) & (r[None, :, None] < y1)
        img = torch.where(inside[:, None], rect_colors[:, k, :, None, None], img)
    return img


