"""Similarity alignment (Umeyama 1991): the scale, rotation and translation that best map one point
set onto another in least squares; the alignment behind PA-MPJPE.

Derived in the *People, cameras and geometry* chapter (``notebooks/eccv2020/world_people.ipynb``).
"""
from __future__ import annotations

import torch


def umeyama(src: torch.Tensor, dst: torch.Tensor, scale: bool = True
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(s, R, t)`` minimising ``Σ_i ‖dst_i - (s·R·src_i + t)‖²`` for ``(..., N, D)`` point sets.

    With centred sets ``X, Y`` and ``Σ = Yᵀ X / N = U D Vᵀ``: ``R = U·S·Vᵀ`` with ``S = diag(1, …,
    1, det(U Vᵀ))`` (a proper rotation, never a reflection), ``s = tr(D S)/σ²_X`` (or 1 with
    ``scale=False``) and ``t = μ_Y - s·R·μ_X``. Returns ``s (...)``, ``R (..., D, D)``, ``t (...,
    D)``.
    """
    if src.shape != dst.shape or src.ndim < 2:
        raise ValueError(
            f"src and dst must both be (..., N, D); got {tuple(src.shape)} and {tuple(dst.shape)}"
        )
    mu_x, mu_y = src.mean(-2), dst.mean(-2)
    X, Y = src - mu_x[..., None, :], dst - mu_y[..., None, :]
    cov = Y.transpose(-1, -2) @ X / src.shape[-2]
    U, D, Vh = torch.linalg.svd(cov)
    d = torch.ones_like(D)
    d[..., -1] = torch.sign(torch.linalg.det(U @ Vh))
    d[..., -1] = torch.where(d[..., -1] == 0, torch.ones_like(d[..., -1]), d[..., -1])
    R = U @ (d[..., :, None] * Vh)
    var_x = X.square().sum((-1, -2)) / src.shape[-2]
    s = (D * d).sum(-1) / var_x.clamp_min(1e-12) if scale else torch.ones_like(var_x)
    t = mu_y - s[..., None] * (R @ mu_x[..., None])[..., 0]
    return s, R, t


def apply_similarity(
    s: torch.Tensor, R: torch.Tensor, t: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """``s·R·x + t`` for points ``x (..., N, D)``."""
    return s[..., None, None] * (x @ R.transpose(-1, -2)) + t[..., None, :]
