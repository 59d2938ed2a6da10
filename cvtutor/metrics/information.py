"""Entropy and total correlation of discrete distributions given as probability tables (nats)."""
from __future__ import annotations

import numpy as np


def _table(p, name: str = "p") -> np.ndarray:
    arr = p.detach().cpu().double().numpy() if hasattr(p, "detach") else np.asarray(p, dtype=float)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if np.any(arr < 0) or not np.isfinite(arr).all():
        raise ValueError(f"{name} must hold finite non-negative probabilities")
    total = arr.sum()
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"{name} must sum to 1, sums to {total:.6g}")
    return arr


def entropy(p) -> float:
    """Shannon entropy ``H = -sum p log p`` of a probability table of any shape (0 log 0 = 0)."""
    arr = _table(p).ravel()
    nz = arr[arr > 0]
    return float(-(nz * np.log(nz)).sum())


def total_correlation(joint) -> float:
    """Total correlation, Eq. (1) of TCGM: ``sum_m H(X^m) - H(X^1, ..., X^M)``.

    ``joint`` is an M-dimensional table, ``joint[x1, ..., xM] = Pr(X^1 = x1, ..., X^M = xM)``.
    Equals the KL divergence of the joint from the product of its marginals (Eq. 2).
    """
    arr = _table(joint, "joint")
    if arr.ndim < 2:
        raise ValueError(f"joint must have one axis per variable (at least 2), got shape {arr.shape}")
    marginals = [arr.sum(axis=tuple(a for a in range(arr.ndim) if a != m)) for m in range(arr.ndim)]
    return sum(entropy(q) for q in marginals) - entropy(arr)
