"""Unit quaternions ``q = (w, x, y, z)``: products, rotation matrices and the geodesic angle.

Derived in the Mask2CAD chapter (``notebooks/eccv2020/mask2cad.ipynb``), where rotations are
classified into quaternion bins and refined by a delta quaternion. ``q`` and ``-q`` are the same
rotation (the double cover of SO(3)); :func:`quat_geodesic` is blind to the sign.
"""
from __future__ import annotations

import torch


def _check_quat(q: torch.Tensor, name: str = "q") -> None:
    if not torch.is_tensor(q) or q.ndim < 1 or q.shape[-1] != 4:
        shape = tuple(q.shape) if torch.is_tensor(q) else type(q).__name__
        raise ValueError(f"{name} must be a tensor of quaternions shaped (..., 4), got {shape}")


def quat_normalize(q: torch.Tensor) -> torch.Tensor:
    """``q/‖q‖`` with the sign chosen so that ``w ≥ 0`` (a canonical representative)."""
    _check_quat(q)
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.where(q[..., :1] < 0, -q, q)


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``a ⊗ b`` (``(..., 4)`` each): the rotation ``b`` followed by ``a``, i.e.
    ``R(a ⊗ b) = R(a)·R(b)``."""
    _check_quat(a, "a")
    _check_quat(b, "b")
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw], -1)


def quat_conj(q: torch.Tensor) -> torch.Tensor:
    """``q* = (w, -x, -y, -z)``, the inverse of a unit quaternion."""
    _check_quat(q)
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` of (not necessarily unit) quaternions ``(..., 4)``."""
    _check_quat(q)
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1).reshape(
            *q.shape[:-1], 3, 3)


def matrix_to_quat(R: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(..., 4)`` (``w ≥ 0``) of rotation matrices ``(..., 3, 3)``: Shepperd's
    method, taking the largest of ``4w², 4x², 4y², 4z²`` for a stable square root."""
    if not torch.is_tensor(R) or R.ndim < 2 or R.shape[-2:] != (3, 3):
        raise ValueError(f"R must be rotation matrices shaped (..., 3, 3), got {getattr(R, 'shape', R)}")
    m = R
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    cands = torch.stack([
        torch.stack([1 + tr, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                     m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                     m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0],
                     1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 1, 2] + m[..., 2, 1]], -1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0],
                     m[..., 1, 2] + m[..., 2, 1], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1),
    ], -2)  # (..., 4, 4): row i is 4·q_i·q
    diag = torch.stack([1 + tr, 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                        1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
                        1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1)
    best = diag.argmax(-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    return quat_normalize(q)


def quat_geodesic(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Geodesic angle ``θ(a, b) = 2·arccos|⟨a, b⟩|`` in radians, in ``[0, π]``, for unit
    quaternions; broadcasts over the leading dimensions (``a (N, 1, 4)`` vs ``b (1, M, 4)`` gives
    the ``(N, M)`` distance matrix)."""
    _check_quat(a, "a")
    _check_quat(b, "b")
    dot = (a * b).sum(-1).abs().clamp(max=1.0)
    return 2 * torch.acos(dot)
