"""The sphere-proxy renderer (digest sections E, F, H).

A hand is 69 spheres (:func:`sphere_proxy`): 3 per phalanx at t = 0, 1/3, 2/3 of the bone plus one per
finger tip (50), a 4x4 palm grid (16), two thumb-web spheres and a wrist sphere. Every pixel's ray is
intersected with every sphere analytically (:func:`raycast_spheres`); the nearest hit gives depth,
part id and normal exactly. All of it is batched torch code, chunked over the batch to bound the
``batch × spheres × pixels`` memory, and runs wherever its inputs live (CPU or CUDA).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cvtutor.data.hands.skeleton import FINGER_JOINTS, SPHERE_RADII

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


def pixel_rays(K: torch.Tensor, image_size: int) -> torch.Tensor:
    """Rays ``D = K⁻¹·[u, v, 1] = ((u - c_x)/f_x, (v - c_y)/f_y, 1)`` through the pixel centres
    ``(j + 0.5, i + 0.5)``, row-major ``(S·S, 3)``. A point ``z·D`` on the ray has camera depth ``z``."""
    r = torch.arange(image_size, dtype=K.dtype, device=K.device) + 0.5
    v, u = torch.meshgrid(r, r, indexing="ij")
    x = (u.reshape(-1) - K[0, 2]) / K[0, 0]
    y = (v.reshape(-1) - K[1, 2]) / K[1, 1]
    return torch.stack([x, y, torch.ones_like(x)], -1)


def _near_root(Dc: torch.Tensor, DD: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
    """Depth of the near intersection of ``z·D`` with a sphere: ``‖zD - c‖² = r²`` is the quadratic
    ``‖D‖² z² - 2 (D·c) z + (‖c‖² - r²) = 0``, so ``z = (D·c - √disc)/‖D‖²`` with
    ``disc = (D·c)² - ‖D‖² (‖c‖² - r²)``; ``inf`` where ``disc ≤ 0`` (missed) or ``D·c ≤ 0`` (behind)."""
    disc = Dc.square().sub_(DD * c2)
    miss = (disc <= 0) | (Dc <= 0)
    z = Dc.sub_(disc.clamp_min_(0.0).sqrt_()).div_(DD)
    return z.masked_fill_(miss, float("inf"))


def ray_sphere_depth(rays: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Depth of the first hit of every ray with every sphere (``inf`` if missed), camera outside the spheres.

    rays ``D`` with ``D_z = 1``: ``(P, 3)`` shared or ``(B, P, 3)``; centres ``(B, M, 3)``; radii ``(B, M)``
    → ``(B, M, P)``.
    """
    if rays.ndim == 2:
        Dc = torch.einsum("bmc,pc->bmp", centres, rays)
        DD = (rays * rays).sum(-1)[None, None]
    else:
        Dc = torch.einsum("bmc,bpc->bmp", centres, rays)
        DD = (rays * rays).sum(-1)[:, None]
    c2 = ((centres * centres).sum(-1) - radii * radii)[..., None]
    return _near_root(Dc, DD, c2)


def sphere_pixel_boxes(centres: torch.Tensor, radii: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Conservative pixel bounding boxes ``(B, M, 4)`` = (u0, v0, u1, v1) of spheres in front of the camera:
    the projections of the 8 corners of each sphere's bounding cube (a convex hull of the sphere)."""
    signs = torch.tensor([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], dtype=centres.dtype,
                         device=centres.device)
    corners = centres[..., None, :] + radii[..., None, None] * signs  # (B, M, 8, 3)
    z = corners[..., 2].clamp_min(1e-6)
    u = K[0, 0] * corners[..., 0] / z + K[0, 2]
    v = K[1, 1] * corners[..., 1] / z + K[1, 2]
    return torch.stack([u.amin(-1), v.amin(-1), u.amax(-1), v.amax(-1)], -1)


def raycast_spheres(centres: torch.Tensor, radii: torch.Tensor, K: torch.Tensor, image_size: int,
                    chunk: int | None = None, budget: int = 1 << 22) -> tuple[torch.Tensor, torch.Tensor]:
    """The z-buffer over spheres: depth of the nearest hit per pixel ``(B, S·S)`` (``inf`` = background)
    and the index of that sphere ``(B, S·S)`` (-1 = background).

    Each sphere can only be hit by the pixels of its bounding box, so it is intersected with the
    rays of a ``w × w`` window there (``w`` = the largest box of the batch), and the nearest hit per
    pixel is kept with a scatter-min: the same result as testing every pixel against every sphere
    (:func:`raycast_dense`), at a fraction of the cost. The ray of pixel (i, j) is separable,
    ``D = (x_j, y_i, 1)``, so ``D·c = x_j c_x + y_i c_y + c_z`` is a broadcast sum. The batch is
    processed in chunks (default: ``chunk·M·w² ≤ budget`` elements) to bound memory.
    """
    B, M = radii.shape
    S = image_size
    boxes = sphere_pixel_boxes(centres, radii, K)
    lo = boxes[..., :2].floor().long()
    w = int((boxes[..., 2:].floor().long() - lo).max().clamp(0, S - 1)) + 1
    off = torch.arange(w, device=centres.device)
    chunk = chunk or max(1, budget // (M * w * w))
    depths, index = [], []
    for i in range(0, B, chunk):
        c, r, l0 = centres[i:i + chunk], radii[i:i + chunk], lo[i:i + chunk]
        b = c.shape[0]
        cols = l0[..., 0, None, None] + off[None, None, None, :]  # (b, M, 1, w)
        rows = l0[..., 1, None, None] + off[None, None, :, None]  # (b, M, w, 1)
        xs = (cols + 0.5 - K[0, 2]) / K[0, 0]
        ys = (rows + 0.5 - K[1, 2]) / K[1, 1]
        Dc = xs * c[..., 0, None, None] + ys * c[..., 1, None, None] + c[..., 2, None, None]
        DD = xs * xs + ys * ys + 1.0
        c2 = ((c * c).sum(-1) - r * r)[..., None, None]
        z = _near_root(Dc, DD, c2)
        inside = (cols >= 0) & (cols < S) & (rows >= 0) & (rows < S)
        z = z.masked_fill_(~inside, float("inf")).reshape(b, -1)
        pix = (rows.clamp(0, S - 1) * S + cols.clamp(0, S - 1)).reshape(b, -1)
        zbuf = torch.full((b, S * S), float("inf"), dtype=z.dtype, device=z.device)
        zbuf.scatter_reduce_(1, pix, z, reduce="amin")
        winner = (z == zbuf.gather(1, pix)) & torch.isfinite(z)
        sid = torch.arange(M, device=z.device)[None, :, None].expand(b, M, w * w).reshape(b, -1)
        ibuf = torch.full((b, S * S), -1, dtype=torch.long, device=z.device)
        ibuf.scatter_reduce_(1, pix, torch.where(winner, sid, -1), reduce="amax")
        depths.append(zbuf)
        index.append(ibuf)
    return torch.cat(depths), torch.cat(index)


def raycast_dense(rays: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference z-buffer: every ray against every sphere (``(B, M, P)`` memory; used by the tests)."""
    z = ray_sphere_depth(rays, centres, radii)
    zmin, imin = z.min(dim=1)
    return zmin, torch.where(torch.isfinite(zmin), imin, torch.full_like(imin, -1))


def render_geometry(centres: torch.Tensor, radii: torch.Tensor, K: torch.Tensor, image_size: int,
                    chunk: int | None = None) -> dict[str, torch.Tensor]:
    """Exact depth (camera z, metres; 0 where no hit), sphere index (-1 = background), hit mask and
    unit normals ``(p - c)/r`` of spheres given in the camera frame (metres)."""
    B = centres.shape[0]
    S = image_size
    rays = pixel_rays(K, S)
    z, idx = raycast_spheres(centres, radii, K, S, chunk)
    hit = idx >= 0
    z0 = torch.where(hit, z, torch.zeros_like(z))
    p = z0[..., None] * rays[None]  # (B, P, 3)
    safe = idx.clamp_min(0)
    c = torch.gather(centres, 1, safe[..., None].expand(B, -1, 3))
    r = torch.gather(radii, 1, safe)
    normals = torch.where(hit[..., None], (p - c) / r[..., None], torch.zeros_like(p))
    return {
        "depth": z0.reshape(B, 1, S, S),
        "sphere": idx.reshape(B, 1, S, S),
        "hit": hit.reshape(B, 1, S, S),
        "normals": normals.permute(0, 2, 1).reshape(B, 3, S, S),
    }


def skin_tone(t: torch.Tensor) -> torch.Tensor:
    """``(1 - t)·(0.98, 0.80, 0.69) + t·(0.36, 0.22, 0.15)`` for ``t (...)`` → ``(..., 3)``."""
    light = torch.tensor(SKIN_LIGHT, dtype=t.dtype, device=t.device)
    dark = torch.tensor(SKIN_DARK, dtype=t.dtype, device=t.device)
    return (1 - t[..., None]) * light + t[..., None] * dark


def lambert(albedo: torch.Tensor, normals: torch.Tensor, light: torch.Tensor, ambient: torch.Tensor) -> torch.Tensor:
    """``albedo·(a + (1 - a)·max(0, n·(-l)))``; albedo and normals ``(B, 3, H, W)``, light ``(B, 3)``
    (direction of travel, pointing away from the camera), ambient ``(B,)``."""
    cos = (-(normals * light[:, :, None, None]).sum(1, keepdim=True)).clamp_min(0.0)
    a = ambient[:, None, None, None]
    return albedo * (a + (1 - a) * cos)


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


def gaussian_heatmaps(uv: torch.Tensor, image_size: int, heatmap_size: int, sigma: float) -> torch.Tensor:
    """``H_j(p) = exp(-‖p - uv_j‖² / (2σ²))`` on an ``h × h`` grid (σ in heatmap pixels; heatmap pixel
    centres at ``(j + 0.5)·S/h`` in image pixels), zero for joints outside the crop. uv ``(B, J, 2)``."""
    scale = heatmap_size / image_size
    g = torch.arange(heatmap_size, dtype=uv.dtype, device=uv.device) + 0.5
    u = uv[..., 0, None, None] * scale
    v = uv[..., 1, None, None] * scale
    d2 = (g[None, None, None, :] - u) ** 2 + (g[None, None, :, None] - v) ** 2
    inside = ((uv >= 0) & (uv < image_size)).all(-1)
    return torch.exp(-d2 / (2 * sigma * sigma)) * inside[..., None, None]


def sample_sphere_surface(centres: torch.Tensor, radii: torch.Tensor, m: int, generator: torch.Generator) -> torch.Tensor:
    """``m`` points per hand on the union of sphere surfaces, sphere chosen in proportion to its area.

    Uses ``generator`` on the device of the inputs; returns ``(B, m, 3)`` and the chosen sphere ``(B, m)``."""
    B = centres.shape[0]
    area = radii * radii
    cdf = area.cumsum(1)
    u = torch.rand(B, m, generator=generator, device=centres.device, dtype=centres.dtype) * cdf[:, -1:]
    k = torch.searchsorted(cdf, u).clamp_max(radii.shape[1] - 1)
    dirs = torch.randn(B, m, 3, generator=generator, device=centres.device, dtype=centres.dtype)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    c = torch.gather(centres, 1, k[..., None].expand(B, m, 3))
    r = torch.gather(radii, 1, k)
    return c + r[..., None] * dirs, k


def visible_cloud(centres: torch.Tensor, radii: torch.Tensor, K: torch.Tensor, image_size: int, n_points: int,
                  generator: torch.Generator, oversample: int = 4) -> torch.Tensor:
    """A depth-camera-like partial point cloud ``(B, N, 3)`` (camera frame, metres).

    Sample ``M = oversample·N`` surface points, keep those the camera sees (front-facing, first hit
    of their own ray, inside the image), then resample N of them with replacement.
    """
    B = centres.shape[0]
    pts, _ = sample_sphere_surface(centres, radii, oversample * n_points, generator)
    rays = pts / pts[..., 2:3]
    z = torch.cat([ray_sphere_depth(rays[i:i + 64], centres[i:i + 64], radii[i:i + 64]).min(dim=1).values
                   for i in range(0, B, 64)])  # (B, M): first hit along each point's own ray
    uv = rays[..., :2] * K[0, 0] + K[0, 2]
    inside = ((uv >= 0) & (uv < image_size)).all(-1)
    visible = (z >= pts[..., 2] - 1e-5) & inside
    visible = visible | ~visible.any(1, keepdim=True)  # a hand fully outside the image keeps all points
    w = visible.to(pts.dtype).cumsum(1)
    u = torch.rand(B, n_points, generator=generator, device=pts.device, dtype=pts.dtype) * w[:, -1:]
    k = torch.searchsorted(w, u, right=True).clamp_max(pts.shape[1] - 1)
    return torch.gather(pts, 1, k[..., None].expand(B, n_points, 3))
