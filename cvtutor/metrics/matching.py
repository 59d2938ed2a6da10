"""Keypoint-matching metrics: mean matching accuracy (HPatches) and mutual nearest neighbours.

Derived in the S2DNet chapter (``notebooks/eccv2020/s2dnet.ipynb``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def matching_errors(H: torch.Tensor, xy_a: torch.Tensor, xy_b: torch.Tensor) -> torch.Tensor:
    """Reprojection errors ``‖H·p_A − p_B‖`` in pixels: ``H (n, 3, 3)``, points ``(n, K, 2)`` →
    ``(n, K)``."""
    from cvtutor.data.geometry import apply_homography

    if xy_a.shape != xy_b.shape or xy_a.ndim != 3 or H.shape != (xy_a.shape[0], 3, 3):
        raise ValueError(
            f"need H (n, 3, 3) and xy_a, xy_b (n, K, 2); got {tuple(H.shape)}, "
            f"{tuple(xy_a.shape)}, {tuple(xy_b.shape)}"
        )
    return (apply_homography(H, xy_a) - xy_b).norm(dim=-1)


def mean_matching_accuracy(
    errors: torch.Tensor, keep: torch.Tensor, thresholds: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """MMA(t) = mean over pairs of the fraction of kept matches with error ``<= t`` (D2-Net's
    HPatches protocol). ``errors``, ``keep`` ``(n, K)``; a pair with no kept match is left out of
    the mean (it has no fraction). Returns ``mma (len(thresholds),)`` and matches per pair ``(n,)``.
    """
    if errors.shape != keep.shape or errors.ndim != 2:
        raise ValueError(
            f"errors and keep must both be (n, K), got {tuple(errors.shape)}, {tuple(keep.shape)}"
        )
    t = torch.as_tensor(thresholds, dtype=errors.dtype, device=errors.device)
    n_match = keep.sum(1)
    has = n_match > 0
    correct = ((errors[..., None] <= t) & keep[..., None]).sum(1).to(errors.dtype)  # (n, T)
    frac = correct[has] / n_match[has, None]
    mma = frac.mean(0) if has.any() else torch.full_like(t, float("nan"))
    return mma, n_match


def mutual_nearest_neighbours(
    scores: torch.Tensor, valid_a: torch.Tensor | None = None, valid_b: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mutual NN on a similarity matrix ``scores (n, K_A, K_B)`` (higher is more similar): for each
    ``a`` its best ``b``, kept where ``a`` is also ``b``'s best. Returns ``match (n, K_A)`` indices
    into B and ``mutual (n, K_A)`` bool; invalid rows/columns never match."""
    if scores.ndim != 3:
        raise ValueError(f"scores must be (n, K_A, K_B), got {tuple(scores.shape)}")
    s = scores
    if valid_a is not None:
        s = s.masked_fill(~valid_a[:, :, None], -torch.inf)
    if valid_b is not None:
        s = s.masked_fill(~valid_b[:, None, :], -torch.inf)
    ab = s.argmax(2)
    ba = s.argmax(1)
    back = ba.gather(1, ab)
    ok = back == torch.arange(s.shape[1], device=s.device)[None]
    ok &= torch.isfinite(s.gather(2, ab[..., None])[..., 0])
    return ab, ok
