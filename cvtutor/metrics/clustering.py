"""Clustering accuracy with Hungarian matching.

A clustering names its groups arbitrarily, so it is scored after relabelling: the one-to-one map
from cluster ids to class ids that maximises the number of agreements (a linear assignment on the
confusion matrix, solved by the Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``).
"""
from __future__ import annotations

import numpy as np


def _as_labels(a, name: str) -> np.ndarray:
    arr = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of integer labels, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must hold non-negative labels, got minimum {arr.min()}")
    return arr.astype(np.int64)


def confusion(y_true, y_pred, n_true: int | None = None, n_pred: int | None = None) -> np.ndarray:
    """Counts ``C[k, c]`` of samples in cluster ``k`` (rows) and class ``c`` (columns)."""
    t, p = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {t.shape} and {p.shape}")
    if t.size == 0:
        raise ValueError("y_true and y_pred are empty")
    n_true = int(max(t.max() + 1, n_true or 0))
    n_pred = int(max(p.max() + 1, n_pred or 0))
    out = np.zeros((n_pred, n_true), dtype=np.int64)
    np.add.at(out, (p, t), 1)
    return out


def hungarian_match(y_true, y_pred) -> dict[int, int]:
    """The map ``cluster id -> class id`` that maximises agreements (one-to-one)."""
    from scipy.optimize import linear_sum_assignment

    counts = confusion(y_true, y_pred)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return {int(r): int(c) for r, c in zip(rows, cols)}


def clustering_accuracy(y_true, y_pred) -> float:
    """Fraction of samples whose cluster, relabelled by :func:`hungarian_match`, is their class.

    Clusters left unmatched (more clusters than classes) count as errors. Equals plain accuracy
    when ``y_pred`` already uses the class ids and the identity is the best map.
    """
    counts = confusion(y_true, y_pred)
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / counts.sum())
