"""The pinhole camera: intrinsics, projection, back-projection, look-at rigs (rings, hemispheres).

Derived in the *People, cameras and geometry* chapter (``notebooks/eccv2020/world_people.ipynb``).
Camera frame: x right, y down, z forward. A world point maps to the camera by ``X_c = R·X_w + t``
and to the image by ``uv = π(K·X_c)``. Pixel ``(row i, column j)`` covers ``u ∈ [j, j+1)``, ``v ∈
[i, i+1)``; its centre is ``(j + 0.5, i + 0.5)``.
"""
from __future__ import annotations

import math

import torch


def intrinsics(image_size: int, focal: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """``K = [[f, 0, S/2], [0, f, S/2], [0, 0, 1]]``: square pixels, principal point at the
    centre."""
    return torch.tensor(
        [[focal, 0.0, image_size / 2], [0.0, focal, image_size / 2], [0.0, 0.0, 1.0]],
        dtype=dtype,
        device=device,
    )


def pinhole(
    fx: float, fy: float, cx: float, cy: float, dtype=torch.float32, device=None
) -> torch.Tensor:
    """``K = [[f_x, 0, c_x], [0, f_y, c_y], [0, 0, 1]]``."""
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def project(xyz: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Pinhole projection ``uv = π(K·X)``: ``(..., J, 3)`` camera points, ``K (..., 3, 3)`` →
    ``(..., J, 2)`` pixels."""
    p = xyz @ K.transpose(-1, -2)
    return p[..., :2] / p[..., 2:3]


def backproject(uv: torch.Tensor, z: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`project` given the depth: ``X = (u - c_x)·Z/f_x``, ``Y = (v -
    c_y)·Z/f_y``."""
    fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]
    cx, cy = K[..., 0, 2, None], K[..., 1, 2, None]
    x = (uv[..., 0] - cx) * z / fx
    y = (uv[..., 1] - cy) * z / fy
    return torch.stack([x, y, z], -1)


def disc_radius_px(focal: float, radius: float, depth: float) -> float:
    """Image radius of a sphere of radius ``r`` centred on the optical axis at depth ``Z``:
    ``f·r/√(Z² - r²)``."""
    return focal * radius / math.sqrt(depth * depth - radius * radius)


def world_to_camera(x: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``X_c = R·X_w + t``: points ``(..., N, 3)``, ``R (..., 3, 3)``, ``t (..., 3)``."""
    return x @ R.transpose(-1, -2) + t[..., None, :]


def projection_matrix(K: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``P = K·[R | t]``, ``(..., 3, 4)``."""
    return K @ torch.cat([R, t[..., None]], -1)


def look_at(
    eye: torch.Tensor, target: torch.Tensor, up=(0.0, 0.0, 1.0)
) -> tuple[torch.Tensor, torch.Tensor]:
    """World→camera ``(R, t)`` of cameras at ``eye (..., 3)`` looking at ``target (..., 3)``.

    Rows of ``R``: ``z = (target - eye)/‖·‖`` (forward), ``x = z × up/‖·‖`` (right), ``y = z × x``
    (down, for the world's ``up``); ``t = -R·eye`` so that the eye maps to the camera origin.
    """
    if eye.shape[-1] != 3:
        raise ValueError(f"eye must be (..., 3), got {tuple(eye.shape)}")
    target = torch.as_tensor(target, dtype=eye.dtype, device=eye.device).expand_as(eye)
    up_t = torch.as_tensor(up, dtype=eye.dtype, device=eye.device).expand_as(eye)
    z = target - eye
    z = z / z.norm(dim=-1, keepdim=True)
    x = torch.linalg.cross(z, up_t, dim=-1)
    if (x.norm(dim=-1) < 1e-9).any():
        raise ValueError(
            "look_at: the viewing direction is parallel to `up`; choose another up vector"
        )
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.linalg.cross(z, x, dim=-1)
    R = torch.stack([x, y, z], -2)
    return R, -(R @ eye[..., None])[..., 0]


def camera_ring(
    n: int,
    radius: float,
    height: float,
    target=(0.0, 0.0, 0.0),
    phase: float = 0.0,
    dtype=torch.float32,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` cameras evenly spaced on a horizontal circle (world z up) looking at ``target``.

    Eye ``k`` at angle ``φ_k = phase + 2πk/n``: ``(r cos φ_k, r sin φ_k, height)`` plus the target's
    x, y. Returns ``(R (n, 3, 3), t (n, 3), eyes (n, 3))``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    tgt = torch.as_tensor(target, dtype=dtype, device=device)
    phi = phase + 2 * math.pi * torch.arange(n, dtype=dtype, device=device) / n
    eyes = torch.stack(
        [radius * torch.cos(phi), radius * torch.sin(phi), torch.full_like(phi, height)], -1
    ) + tgt * torch.tensor([1.0, 1.0, 0.0], dtype=dtype, device=device)
    R, t = look_at(eyes, tgt)
    return R, t, eyes


def camera_hemisphere(
    n: int,
    radius: float,
    target=(0.0, 0.0, 0.0),
    min_elevation_deg: float = 10.0,
    dtype=torch.float32,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` cameras on a Fibonacci spiral over the upper hemisphere (elevation ≥
    ``min_elevation``), all looking at ``target``: near-uniform directions without a Python loop.
    Returns ``(R, t, eyes)``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    tgt = torch.as_tensor(target, dtype=dtype, device=device)
    k = torch.arange(n, dtype=dtype, device=device) + 0.5
    z_lo = math.sin(math.radians(min_elevation_deg))
    z = z_lo + (1 - z_lo) * k / n * 0.98  # stop short of the pole, where `up` is degenerate
    phi = k * math.pi * (3 - math.sqrt(5))
    rxy = (1 - z * z).sqrt()
    eyes = radius * torch.stack([rxy * torch.cos(phi), rxy * torch.sin(phi), z], -1) + tgt
    R, t = look_at(eyes, tgt)
    return R, t, eyes
