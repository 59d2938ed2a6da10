"""Homographies: the normalised direct linear transform (4 or N points) and the floor homography.

Derived in the *People, cameras and geometry* chapter (``notebooks/eccv2020/world_people.ipynb``),
after Hartley & Zisserman, *Multiple View Geometry*, Alg. 4.2. ``x' ~ H·x`` in homogeneous pixels.
"""
from __future__ import annotations

import torch


def to_homogeneous(x: torch.Tensor) -> torch.Tensor:
    """``(..., D)`` → ``(..., D + 1)`` with a trailing 1."""
    return torch.cat([x, torch.ones_like(x[..., :1])], -1)


def apply_homography(H: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``x' = π(H·[x, 1])``: ``H (..., 3, 3)``, points ``(..., N, 2)`` → ``(..., N, 2)``."""
    if H.shape[-2:] != (3, 3) or x.shape[-1] != 2:
        raise ValueError(
            f"need H (..., 3, 3) and x (..., N, 2); got {tuple(H.shape)}, {tuple(x.shape)}"
        )
    p = to_homogeneous(x) @ H.transpose(-1, -2)
    return p[..., :2] / p[..., 2:3]


def hartley_normalisation(x: torch.Tensor) -> torch.Tensor:
    """Similarity ``T (..., 3, 3)`` moving points ``(..., N, 2)`` to zero centroid and mean distance
    √2."""
    c = x.mean(-2)
    d = (x - c[..., None, :]).norm(dim=-1).mean(-1).clamp_min(1e-12)
    s = 2**0.5 / d
    T = torch.zeros(*x.shape[:-2], 3, 3, dtype=x.dtype, device=x.device)
    T[..., 0, 0] = s
    T[..., 1, 1] = s
    T[..., 0, 2] = -s * c[..., 0]
    T[..., 1, 2] = -s * c[..., 1]
    T[..., 2, 2] = 1
    return T


def homography_dlt(
    src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """``H`` with ``dst ~ H·src`` from ``N ≥ 4`` correspondences ``(..., N, 2)`` (normalised DLT).

    Each pair gives two rows of ``A·h = 0``: ``[-x, -y, -1, 0, 0, 0, u x, u y, u]`` and ``[0, 0, 0,
    -x, -y, -1, v x, v y, v]``; ``h`` is the right singular vector of the smallest singular value,
    computed on Hartley-normalised points and de-normalised, ``H = T'⁻¹·Ĥ·T``, scaled so ``H₃₃ =
    1``. Four points in general position give the exact homography; ``weights (..., N)`` weight the
    rows (0 drops a pair).
    """
    if src.shape != dst.shape or src.shape[-1] != 2 or src.shape[-2] < 4:
        raise ValueError(
            f"src and dst must both be (..., N >= 4, 2); got {tuple(src.shape)}, {tuple(dst.shape)}"
        )
    Ts, Td = hartley_normalisation(src), hartley_normalisation(dst)
    s = apply_homography(Ts, src)
    d = apply_homography(Td, dst)
    x, y = s[..., 0], s[..., 1]
    u, v = d[..., 0], d[..., 1]
    o, z = torch.ones_like(x), torch.zeros_like(x)
    r1 = torch.stack([-x, -y, -o, z, z, z, u * x, u * y, u], -1)
    r2 = torch.stack([z, z, z, -x, -y, -o, v * x, v * y, v], -1)
    if weights is not None:
        r1, r2 = r1 * weights[..., None], r2 * weights[..., None]
    A = torch.cat([r1, r2], -2)  # (..., 2N, 9)
    if A.shape[-2] < 9:  # pad to a square system so the SVD returns the null vector
        A = torch.cat(
            [A, torch.zeros(*A.shape[:-2], 9 - A.shape[-2], 9, dtype=A.dtype, device=A.device)], -2
        )
    h = torch.linalg.svd(A).Vh[..., -1, :]
    Hn = h.reshape(*h.shape[:-1], 3, 3)
    H = torch.linalg.solve(Td, Hn @ Ts)
    return H / H[..., 2:3, 2:3]


def ground_plane_homography(K: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The homography ``H = K·[r₁ r₂ t]`` from the world plane ``Z = 0`` (points ``(X, Y)``) to
    pixels, for the world→camera pose ``X_c = R·X_w + t``; ``(..., 3, 3)``."""
    return K @ torch.stack([R[..., :, 0], R[..., :, 1], t], -1)
