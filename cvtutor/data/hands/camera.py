"""Global pose and the hand's derived frames: canonical pose, viewpoint, view correction.

The pinhole camera (``intrinsics``, ``project``, ``backproject``, ``disc_radius_px``) and
``random_rotation`` live in :mod:`cvtutor.data.geometry` and are imported here under their old names.

Camera frame: x right, y down, z forward (metres). Pixel ``(row i, column j)`` covers
``u ∈ [j, j+1), v ∈ [i, i+1)``; its centre is ``(j + 0.5, i + 0.5)``. With ``c_x = c_y = S/2`` the
principal point is the centre of the image.
"""
from __future__ import annotations

import torch

from cvtutor.data.geometry.cameras import backproject, disc_radius_px, intrinsics, project  # noqa: F401
from cvtutor.data.geometry.rotations import random_rotation  # noqa: F401
from cvtutor.data.hands.skeleton import ROOT, SCALE_BONE, rot_x, rot_y, rot_z

PALM_FACING = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))  # B: palm normal to the camera, fingers up


def palm_facing_rotation(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """``R_g = Rz(roll)·Ry(yaw)·Rx(pitch)·B`` with ``B = diag(1, -1, -1)`` (degrees)."""
    B = torch.tensor(PALM_FACING, dtype=yaw.dtype, device=yaw.device)
    return rot_z(roll) @ rot_y(yaw) @ rot_x(pitch) @ B


def normalize_pose(xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Root-relative, scale-normalised joints (digest section I).

    ``x_rel = X - X_root``, ``s = ‖X_9 - X_10‖`` (middle MCP-PIP), ``x_norm = x_rel / s``.
    Returns ``(xyz_norm (..., 21, 3), root (..., 3), scale (...))``.
    """
    if xyz.shape[-2:] != (21, 3):
        raise ValueError(f"xyz must be (..., 21, 3), got {tuple(xyz.shape)}")
    root = xyz[..., ROOT, :]
    scale = (xyz[..., SCALE_BONE[0], :] - xyz[..., SCALE_BONE[1], :]).norm(dim=-1)
    return (xyz - root[..., None, :]) / scale[..., None, None], root, scale


def denormalize_pose(xyz_norm: torch.Tensor, root: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize_pose`: ``X = x_norm·s + X_root``."""
    return xyz_norm * scale[..., None, None] + root[..., None, :]


def canonical_transform(xyz_rel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Canonical pose and viewpoint (after Zimmermann & Brox 2017, digest section H).

    The unique rotation ``R_v`` that puts the middle MCP (joint 9) on the -y axis and the pinky MCP
    (joint 17) in the plane z = 0 with x > 0. Rows of ``R_v``: ``e_y = -x_9/‖x_9‖``, ``e_x`` = the part of
    ``x_17`` orthogonal to ``e_y``, normalised, ``e_z = e_x × e_y``. Returns ``(cpose = R_v·x_rel, R_v)``,
    so ``x_rel = R_vᵀ·cpose``.
    """
    if xyz_rel.shape[-2:] != (21, 3):
        raise ValueError(f"xyz_rel must be (..., 21, 3), got {tuple(xyz_rel.shape)}")
    ey = -xyz_rel[..., 9, :]
    ey = ey / ey.norm(dim=-1, keepdim=True)
    p = xyz_rel[..., 17, :]
    ex = p - (p * ey).sum(-1, keepdim=True) * ey
    ex = ex / ex.norm(dim=-1, keepdim=True)
    ez = torch.linalg.cross(ex, ey, dim=-1)
    R = torch.stack([ex, ey, ez], -2)
    return xyz_rel @ R.transpose(-1, -2), R


def view_correction(uv_centre: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """View-correction rotation for an off-centre hand (thesis Eq. 4.1-4.4).

    ``α_y = atan2(u_c - o_x, f)`` (4.1), ``c̃ = R_y(-α_y)·[u_c - o_x, v_c - o_y, f]`` (4.2),
    ``α_x = atan2(c̃_2, c̃_3)`` (4.3). The thesis writes ``R_vc = R_y(-α_y)·R_x(α_x)`` (4.4); the rotation
    that actually maps the ray through the hand centre onto the optical axis applies ``R_y(-α_y)``
    first, i.e. ``R_vc = R_x(α_x)·R_y(-α_y)`` for column vectors, which is what we return (``R_vc·c ∥ e_z``).
    """
    du = uv_centre[..., 0] - K[..., 0, 2]
    dv = uv_centre[..., 1] - K[..., 1, 2]
    f = K[..., 0, 0].expand_as(du)
    ay = torch.atan2(du, f)
    c = torch.stack([du, dv, f], -1)
    c_t = (rot_y(-torch.rad2deg(ay)) @ c[..., None])[..., 0]
    ax = torch.atan2(c_t[..., 1], c_t[..., 2])
    return rot_x(torch.rad2deg(ax)) @ rot_y(-torch.rad2deg(ay))


def focal_for_crop(image_size: int, mean_depth: float, span: float = 0.75, hand_size_m: float = 0.2) -> float:
    """``f = span·S·Z̄/0.2 m``: a 20 cm hand spans ``span`` of the crop at the mean depth (digest section D)."""
    return span * image_size * mean_depth / hand_size_m
