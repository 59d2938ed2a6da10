"""Two-view epipolar geometry of calibrated cameras: the fundamental matrix, epipolar lines and the
symmetric point-to-epipolar-line distance (the cue of epipolar-constraint matching).

Derived in the crowd pose chapter (``notebooks/eccv2020/crowd_3d_pose_mvg.ipynb``), after Hartley &
Zisserman, *Multiple View Geometry*, §9.2. Pixels ``x_a`` in camera ``a`` and ``x_b`` in camera
``b`` of one world point satisfy ``x̃_aᵀ·F_ab·x̃_b = 0``; ``F_ab·x̃_b`` is the line in image ``a``.
"""
from __future__ import annotations

import torch

from cvtutor.data.geometry.homography import to_homogeneous
from cvtutor.data.geometry.rotations import hat


def fundamental_matrix(
    K_a: torch.Tensor, R_a: torch.Tensor, t_a: torch.Tensor,
    K_b: torch.Tensor, R_b: torch.Tensor, t_b: torch.Tensor,
) -> torch.Tensor:
    """``F_ab (..., 3, 3)`` with ``x̃_aᵀ F_ab x̃_b = 0`` for world→camera poses ``X_c = R·X + t``.

    The relative pose from ``b`` to ``a`` is ``R = R_a R_bᵀ``, ``t = t_a - R t_b``; the essential
    matrix is ``E = [t]_× R`` and ``F_ab = K_a⁻ᵀ E K_b⁻¹``, scaled to unit Frobenius norm.
    """
    for name, m in (("R_a", R_a), ("R_b", R_b), ("K_a", K_a), ("K_b", K_b)):
        if m.shape[-2:] != (3, 3):
            raise ValueError(f"{name} must be (..., 3, 3), got {tuple(m.shape)}")
    R = R_a @ R_b.transpose(-1, -2)
    t = t_a - (R @ t_b[..., None])[..., 0]
    F = torch.linalg.inv(K_a).transpose(-1, -2) @ hat(t) @ R @ torch.linalg.inv(K_b)
    return F / F.flatten(-2).norm(dim=-1)[..., None, None]


def epipolar_lines(F: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Lines ``l = F·x̃`` ``(..., N, 3)`` for points ``x (..., N, 2)``, scaled so ``a² + b² = 1``
    (then ``l·x̃`` is a signed distance in pixels), as OpenCV's ``computeCorrespondEpilines``."""
    if F.shape[-2:] != (3, 3) or x.shape[-1] != 2:
        raise ValueError(f"need F (..., 3, 3) and x (..., N, 2); got {tuple(F.shape)}, "
                         f"{tuple(x.shape)}")
    lines = to_homogeneous(x) @ F.transpose(-1, -2)
    return lines / lines[..., :2].norm(dim=-1, keepdim=True).clamp_min(1e-12)


def symmetric_epipolar_distance(F: torch.Tensor, x_a: torch.Tensor, x_b: torch.Tensor
                                ) -> torch.Tensor:
    """``½(d(x_a, F x̃_b) + d(x_b, Fᵀ x̃_a))`` in pixels for corresponding ``x_a, x_b (..., N,
    2)``: 0 exactly when the pair satisfies the epipolar constraint."""
    if x_a.shape != x_b.shape:
        raise ValueError(f"x_a and x_b must have one shape, got {tuple(x_a.shape)}, "
                         f"{tuple(x_b.shape)}")
    d_a = (epipolar_lines(F, x_b) * to_homogeneous(x_a)).sum(-1).abs()
    d_b = (epipolar_lines(F.transpose(-1, -2), x_a) * to_homogeneous(x_b)).sum(-1).abs()
    return 0.5 * (d_a + d_b)
