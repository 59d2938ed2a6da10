"""Linear (DLT) triangulation of points seen by several calibrated cameras.

Derived in the *People, cameras and geometry* chapter (``notebooks/eccv2020/world_people.ipynb``),
after Hartley & Zisserman §12.2.
"""
from __future__ import annotations

import torch


def triangulate_dlt(
    P: torch.Tensor, uv: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """World points ``(..., 3)`` from projections ``uv (..., V, 2)`` in ``V ≥ 2`` views ``P (..., V,
    3, 4)``.

    Each view gives two rows of ``A·X = 0``: ``u·p₃ᵀ - p₁ᵀ`` and ``v·p₃ᵀ - p₂ᵀ`` (``p_k`` the rows
    of ``P``), each scaled to unit norm; ``X`` is the smallest right singular vector,
    de-homogenised. ``weights (..., V)`` (e.g. visibility or detector confidence) scale the rows; a
    weight of 0 drops a view. Exact on noise-free projections.
    """
    if (
        P.shape[-2:] != (3, 4)
        or uv.shape[-1] != 2
        or P.shape[-3] != uv.shape[-2]
        or uv.shape[-2] < 2
    ):
        raise ValueError(
            f"need P (..., V, 3, 4) and uv (..., V >= 2, 2) with the same V; got "
            f"{tuple(P.shape)} and {tuple(uv.shape)}"
        )
    r1 = uv[..., 0, None] * P[..., 2, :] - P[..., 0, :]
    r2 = uv[..., 1, None] * P[..., 2, :] - P[..., 1, :]
    A = torch.stack([r1, r2], -2)  # (..., V, 2, 4)
    A = A / A.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    if weights is not None:
        A = A * weights[..., None, None]
    A = A.flatten(-3, -2)
    if A.shape[-2] < 4:
        A = torch.cat(
            [A, torch.zeros(*A.shape[:-2], 4 - A.shape[-2], 4, dtype=A.dtype, device=A.device)], -2
        )
    X = torch.linalg.svd(A).Vh[..., -1, :]
    return X[..., :3] / X[..., 3:]
