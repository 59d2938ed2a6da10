"""Distances between point sets: Chamfer, exact EMD (small sets) and a Sinkhorn EMD for training.

For two sets ``P`` (n points) and ``Q`` (m points) in R^D, batched as ``(B, n, D)`` and ``(B, m, D)``:

(1) Chamfer   CD(P, Q) = 1/|P| Σ_p min_q d(p, q) + 1/|Q| Σ_q min_p d(p, q)
(2) EMD       EMD(P, Q) = min over bijections φ: P → Q of 1/|P| Σ_p d(p, φ(p))      (|P| = |Q|)
(3) Sinkhorn  OT_ε(P, Q) = <T_ε, D>, T_ε = argmin_{T ∈ U(1/n, 1/n)} <T, D> - ε H(T)  →  EMD as ε → 0

with ``d`` the Euclidean distance (``squared=True``: its square). (2) is a linear assignment problem,
solved exactly by the Hungarian algorithm (:func:`scipy.optimize.linear_sum_assignment`, O(n³), no
gradient to speak of); (3) is its entropic relaxation, differentiable and parallel on a GPU, solved
by log-domain Sinkhorn iterations (Cuturi 2013). The transport plan of (3) is held fixed in the
backward pass (the "envelope" gradient), as is usual for an EMD loss.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def _check_sets(a: torch.Tensor, b: torch.Tensor, same_size: bool = False) -> tuple[torch.Tensor, torch.Tensor, bool]:
    if not (torch.is_tensor(a) and torch.is_tensor(b)):
        raise TypeError(f"point sets must be torch tensors, got {type(a).__name__} and {type(b).__name__}")
    batched = a.ndim == 3
    if a.ndim == 2 and b.ndim == 2:
        a, b = a[None], b[None]
    if a.ndim != 3 or b.ndim != 3:
        raise ValueError(f"point sets must both be (n, D) or both (B, n, D); got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ValueError(f"batch size and point dimension must match; got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[1] == 0 or b.shape[1] == 0:
        raise ValueError("point sets must not be empty")
    if same_size and a.shape[1] != b.shape[1]:
        raise ValueError(f"EMD needs sets of the same size (a bijection); got {a.shape[1]} and {b.shape[1]} points")
    return a, b, batched


def pairwise_distances(a: torch.Tensor, b: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """``(B, n, D)``, ``(B, m, D)`` → ``(B, n, m)`` Euclidean (or squared) distances (``torch.cdist``,
    whose backward is finite even at coincident points)."""
    d = torch.cdist(a, b)
    return d ** 2 if squared else d


def chamfer_distance(a: torch.Tensor, b: torch.Tensor, squared: bool = False, reduce: str = "mean") -> torch.Tensor:
    """Symmetric Chamfer distance, Eq. (1): mean nearest-neighbour distance from each set to the other.

    ``a``: ``(n, D)`` or ``(B, n, D)``; ``b``: ``(m, D)`` or ``(B, m, D)``. ``reduce="mean"`` averages
    over the batch, ``"none"`` returns one value per set pair.
    """
    if reduce not in ("mean", "none"):
        raise ValueError(f"reduce must be 'mean' or 'none', got {reduce!r}")
    a, b, batched = _check_sets(a, b)
    d = pairwise_distances(a, b, squared)
    per = d.min(2).values.mean(1) + d.min(1).values.mean(1)
    if reduce == "mean":
        return per.mean()
    return per if batched else per[0]


def emd_exact(a, b, squared: bool = False) -> np.ndarray | float:
    """Exact EMD, Eq. (2), by the Hungarian algorithm on each pair (NumPy/SciPy, no gradient).

    Returns a float for ``(n, D)`` inputs and an array ``(B,)`` for ``(B, n, D)`` inputs. Costs
    O(n³) per pair: for evaluation and tests on small sets, not for a training loss.
    """
    from scipy.optimize import linear_sum_assignment

    ta = torch.as_tensor(a, dtype=torch.float64)
    tb = torch.as_tensor(b, dtype=torch.float64)
    ta, tb, batched = _check_sets(ta, tb, same_size=True)
    cost = pairwise_distances(ta, tb, squared).numpy()
    out = np.empty(len(cost))
    for i, c in enumerate(cost):
        rows, cols = linear_sum_assignment(c)
        out[i] = c[rows, cols].mean()
    return out if batched else float(out[0])


def sinkhorn_plan(cost: torch.Tensor, eps: float, iters: int) -> torch.Tensor:
    """The entropic transport plan of Eq. (3) between uniform weights, by log-domain Sinkhorn.

    ``cost``: ``(B, n, m)``. Returns ``T (B, n, m)`` with row sums → 1/n and column sums = 1/m.
    ``eps`` is relative to the mean cost of each pair, so one value suits any scale.
    """
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    B, n, m = cost.shape
    scale = cost.detach().mean((1, 2), keepdim=True).clamp_min(1e-12)
    k = -cost / (eps * scale)
    log_a = torch.full((B, n, 1), -math.log(n), dtype=cost.dtype, device=cost.device)
    log_b = torch.full((B, 1, m), -math.log(m), dtype=cost.dtype, device=cost.device)
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    for _ in range(iters):
        f = log_a - torch.logsumexp(k + g, dim=2, keepdim=True)
        g = log_b - torch.logsumexp(k + f, dim=1, keepdim=True)
    return torch.exp(k + f + g)


def emd_sinkhorn(a: torch.Tensor, b: torch.Tensor, eps: float = 0.01, iters: int = 50, squared: bool = False,
                 reduce: str = "mean", plan_dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Differentiable approximation of the EMD, Eq. (3): the cost ``<T, D>`` of the Sinkhorn plan (its
    mass is 1, so a permutation plan ``T = P/n`` gives exactly Eq. (2)'s mean matched distance).

    The plan is computed without gradient (envelope theorem: at the optimum, d<T*, D>/dD = T*), so
    the gradient flows through the distances only. As ``eps → 0`` (and ``iters`` grows) the value
    tends to :func:`emd_exact`. ``plan_dtype``: the precision of the (log-domain) Sinkhorn iterations;
    float32 is cheap on a GPU and, in the log domain, close to float64 (tests/test_multimodal_vae.py).
    """
    if reduce not in ("mean", "none"):
        raise ValueError(f"reduce must be 'mean' or 'none', got {reduce!r}")
    a, b, batched = _check_sets(a, b, same_size=True)
    d = pairwise_distances(a, b, squared)
    with torch.no_grad():
        plan = sinkhorn_plan(d.detach().to(plan_dtype), eps, iters).to(d.dtype)
    per = (plan * d).sum((1, 2))
    if reduce == "mean":
        return per.mean()
    return per if batched else per[0]
