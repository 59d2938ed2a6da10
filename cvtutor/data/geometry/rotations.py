"""Rotations: axis rotations, SO(3) and SE(3) exponential and logarithm maps, random rotations.

Derived in the *People, cameras and geometry* chapter (``notebooks/eccv2020/world_people.ipynb``). A
rotation vector ``ω ∈ R³`` (axis · angle, radians) maps to ``R = exp([ω]_×)`` by Rodrigues' formula;
a twist ``ξ = (ρ, ω) ∈ R⁶`` (translation part first) maps to ``T = [[R, V·ρ], [0, 1]]``. All
functions are batched over leading dimensions and differentiable.
"""
from __future__ import annotations

import torch


def rot_x(deg: torch.Tensor) -> torch.Tensor:
    """``Rx(θ) = [[1,0,0],[0,c,-s],[0,s,c]]`` for angles in degrees, shape ``(..., 3, 3)``."""
    t = torch.deg2rad(deg)
    c, s, o, z = torch.cos(t), torch.sin(t), torch.ones_like(t), torch.zeros_like(t)
    return torch.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(*t.shape, 3, 3)


def rot_y(deg: torch.Tensor) -> torch.Tensor:
    """``Ry(θ) = [[c,0,s],[0,1,0],[-s,0,c]]`` for angles in degrees."""
    t = torch.deg2rad(deg)
    c, s, o, z = torch.cos(t), torch.sin(t), torch.ones_like(t), torch.zeros_like(t)
    return torch.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(*t.shape, 3, 3)


def rot_z(deg: torch.Tensor) -> torch.Tensor:
    """``Rz(θ) = [[c,-s,0],[s,c,0],[0,0,1]]`` for angles in degrees."""
    t = torch.deg2rad(deg)
    c, s, o, z = torch.cos(t), torch.sin(t), torch.ones_like(t), torch.zeros_like(t)
    return torch.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*t.shape, 3, 3)


def random_rotation(n: int, generator: torch.Generator, device=None) -> torch.Tensor:
    """``(n, 3, 3)`` rotations uniform on SO(3), from uniformly random unit quaternions, on
    ``device`` (default: the generator's)."""
    q = torch.randn(n, 4, generator=generator, device=device or generator.device)
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.unbind(1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], 1).reshape(n, 3, 3)


def _check_last(x: torch.Tensor, size: int, name: str) -> None:
    if x.shape[-1] != size:
        raise ValueError(f"{name} must be (..., {size}), got {tuple(x.shape)}")


def _check_mat(x: torch.Tensor, size: int, name: str) -> None:
    if x.ndim < 2 or x.shape[-2:] != (size, size):
        raise ValueError(f"{name} must be (..., {size}, {size}), got {tuple(x.shape)}")


def hat(w: torch.Tensor) -> torch.Tensor:
    """The cross-product matrix ``[ω]_×`` with ``[ω]_× v = ω × v``: ``(..., 3)`` → ``(..., 3,
    3)``."""
    _check_last(w, 3, "w")
    x, y, z = w.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*w.shape[:-1], 3, 3)


def vee(W: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hat` on the antisymmetric part: ``(..., 3, 3)`` → ``(..., 3)``."""
    _check_mat(W, 3, "W")
    return 0.5 * torch.stack(
        [W[..., 2, 1] - W[..., 1, 2], W[..., 0, 2] - W[..., 2, 0], W[..., 1, 0] - W[..., 0, 1]], -1
    )


def _coefficients(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``A = sin θ/θ``, ``B = (1 - cos θ)/θ²``, ``C = (θ - sin θ)/θ³`` with Taylor series near 0."""
    small = theta < 1e-3
    t = torch.where(small, torch.ones_like(theta), theta)
    t2 = theta * theta
    A = torch.where(small, 1 - t2 / 6 + t2 * t2 / 120, torch.sin(t) / t)
    B = torch.where(small, 0.5 - t2 / 24 + t2 * t2 / 720, (1 - torch.cos(t)) / (t * t))
    C = torch.where(small, 1 / 6 - t2 / 120 + t2 * t2 / 5040, (t - torch.sin(t)) / (t * t * t))
    return A, B, C


def so3_exp(w: torch.Tensor) -> torch.Tensor:
    """Rodrigues: ``R = I + A·[ω]_× + B·[ω]_×²`` with ``θ = ‖ω‖``; ``(..., 3)`` → ``(..., 3,
    3)``."""
    W = hat(w)
    A, B, _ = _coefficients(w.norm(dim=-1))
    eye = torch.eye(3, dtype=w.dtype, device=w.device)
    return eye + A[..., None, None] * W + B[..., None, None] * (W @ W)


def so3_log(R: torch.Tensor) -> torch.Tensor:
    """Rotation vector of ``R`` with angle in ``[0, π]``: ``cos θ = (tr R - 1)/2``, ``ω = θ/(2 sin
    θ)·vee(R - Rᵀ)``; for ``θ > 3`` the axis ``a`` is read from the symmetric part."""
    _check_mat(R, 3, "R")
    cos = ((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1.0, 1.0)
    v = vee(R)  # = sin θ · axis
    theta = torch.atan2(v.norm(dim=-1), cos)  # better conditioned than arccos near 0 and π
    A, _, _ = _coefficients(theta)
    w_regular = v / A[..., None]
    # near π, sin θ ≈ 0 loses the axis; the symmetric part gives it: (R + Rᵀ)/2 = cos θ·I + (1 -
    # cos θ)·a aᵀ
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    S = ((R + R.transpose(-1, -2)) / 2 - cos[..., None, None] * eye) / (1 - cos).clamp_min(1e-12)[
        ..., None, None
    ]
    k = S.diagonal(dim1=-2, dim2=-1).argmax(-1)
    col = torch.gather(S, -1, k[..., None, None].expand(*S.shape[:-1], 1))[..., 0]
    axis = col / col.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    sign = torch.where((axis * v).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(R.dtype)
    w_pi = sign * axis * theta[..., None]
    return torch.where((theta > 3.0)[..., None], w_pi, w_regular)


def se3_exp(xi: torch.Tensor) -> torch.Tensor:
    """Twist ``ξ = (ρ, ω)`` ``(..., 6)`` → ``(..., 4, 4)`` with ``t = V·ρ``, ``V = I + B·[ω]_× +
    C·[ω]_×²``."""
    _check_last(xi, 6, "xi")
    rho, w = xi[..., :3], xi[..., 3:]
    W = hat(w)
    A, B, C = _coefficients(w.norm(dim=-1))
    eye = torch.eye(3, dtype=xi.dtype, device=xi.device)
    W2 = W @ W
    R = eye + A[..., None, None] * W + B[..., None, None] * W2
    V = eye + B[..., None, None] * W + C[..., None, None] * W2
    return make_se3(R, (V @ rho[..., None])[..., 0])


def se3_log(T: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`se3_exp`: ``ω = log R``, ``ρ = V⁻¹·t``; ``(..., 4, 4)`` → ``(..., 6)``."""
    _check_mat(T, 4, "T")
    w = so3_log(T[..., :3, :3])
    W = hat(w)
    A, B, C = _coefficients(w.norm(dim=-1))
    eye = torch.eye(3, dtype=T.dtype, device=T.device)
    V = eye + B[..., None, None] * W + C[..., None, None] * (W @ W)
    rho = torch.linalg.solve(V, T[..., :3, 3:])[..., 0]
    return torch.cat([rho, w], -1)


def make_se3(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``[[R, t], [0, 1]]``: ``R (..., 3, 3)``, ``t (..., 3)`` → ``(..., 4, 4)``."""
    _check_mat(R, 3, "R")
    _check_last(t, 3, "t")
    top = torch.cat([R, t[..., None]], -1)
    bottom = torch.zeros(*top.shape[:-2], 1, 4, dtype=R.dtype, device=R.device)
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], -2)


def transform(T: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply ``X' = R·X + t`` of ``T (..., 4, 4)`` to points ``x (..., N, 3)``."""
    _check_mat(T, 4, "T")
    _check_last(x, 3, "x")
    return x @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]
