"""Distances between point sets: Chamfer, exact EMD (small sets) and a Sinkhorn EMD for training.

For two sets ``P`` (n points) and ``Q`` (m points) in R^D, batched as ``(B, n, D)`` and ``(B, m, D)``:

(1) Chamfer   CD(P, Q) = 1/|P| Σ_p min_q d(p, q) + 1/|Q| Σ_q min_p d(p, q)
(2) EMD       EMD(P, Q) = min over bijections φ: P → Q of 1/|P| Σ_p d(p, φ(p))      (|P| = |Q|)
(3) Sinkhorn  OT_ε(P, Q) = <T_ε, D>, T_ε = argmin_{T ∈ U(1/n, 1/n)} <T, D> - ε H(T)  →  EMD as ε → 0

with ``d`` the Euclidean distance (``squared=True``: its square). For surface reconstruction and
generation (the 3-D shape world, ``notebooks/eccv2020/world_shapes3d.ipynb``):

(4) Chamfer-L1  ½ (1/|P| Σ_p min_q ‖p - q‖ + 1/|Q| Σ_q min_p ‖p - q‖)           (ONet's, half of (1))
(5) F-score@τ   precision = |{p : min_q ‖p - q‖ < τ}| / |P|, recall likewise from Q, F = 2PR/(P+R)
(6) normal consistency  ½ (mean_p |n_p · n_{q(p)}| + mean_q |n_q · n_{p(q)}|), nearest neighbours
(7) MMD, COV, 1-NNA between generated and reference sets under a set distance (PointFlow's protocol) (2) is a linear assignment problem,
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
    out, _ = emd_matching(a, b, squared)
    return out if out.ndim else float(out)


def emd_matching(a, b, squared: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Eq. (2) with its optimal bijection: ``(cost, match)`` where ``a[i]`` is matched to
    ``b[match[i]]``; ``cost`` ``(B,)`` and ``match`` ``(B, n)`` for batched input, a 0-d array and
    ``(n,)`` for single sets. Hungarian algorithm per pair (:func:`scipy.optimize.linear_sum_assignment`
    on the Euclidean cost; the tests check it against POT's ``ot.emd2``)."""
    from scipy.optimize import linear_sum_assignment

    ta = torch.as_tensor(a, dtype=torch.float64)
    tb = torch.as_tensor(b, dtype=torch.float64)
    ta, tb, batched = _check_sets(ta.detach().cpu(), tb.detach().cpu(), same_size=True)
    cost = pairwise_distances(ta, tb, squared).numpy()
    out = np.empty(len(cost))
    match = np.empty(cost.shape[:2], dtype=np.int64)
    for i, c in enumerate(cost):
        rows, cols = linear_sum_assignment(c)
        out[i] = c[rows, cols].mean()
        match[i, rows] = cols
    return (out, match) if batched else (np.asarray(out[0]), match[0])


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


# ------------------------------------------------------------------------------------------------
# Reconstruction and generation metrics, Eqs. (4)-(7)
# ------------------------------------------------------------------------------------------------
def nearest(a: torch.Tensor, b: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """For each point of ``a (B, n, D)`` its nearest point in ``b (B, m, D)``: Euclidean distance
    ``(B, n)`` and index ``(B, n)`` (computed in chunks of ``a``'s points)."""
    a, b, _ = _check_sets(a, b)
    ds, ix = [], []
    for i in range(0, a.shape[1], chunk):
        d = torch.cdist(a[:, i:i + chunk], b).min(2)
        ds.append(d.values)
        ix.append(d.indices)
    return torch.cat(ds, 1), torch.cat(ix, 1)


def chamfer_l1(a: torch.Tensor, b: torch.Tensor, reduce: str = "mean") -> torch.Tensor:
    """Eq. (4): ONet's Chamfer-L1, half the symmetric mean nearest-neighbour distance of Eq. (1)."""
    return 0.5 * chamfer_distance(a, b, squared=False, reduce=reduce)


def fscore(pred: torch.Tensor, gt: torch.Tensor, tau: float) -> dict[str, torch.Tensor]:
    """Eq. (5): ``precision``, ``recall`` and ``fscore`` at threshold ``tau``, each ``(B,)`` (or 0-d
    for single sets); F is 0 where precision and recall are both 0."""
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    batched = pred.ndim == 3
    d_pg, _ = nearest(pred, gt)
    d_gp, _ = nearest(gt, pred)
    p = (d_pg < tau).double().mean(1)
    r = (d_gp < tau).double().mean(1)
    f = torch.where(p + r > 0, 2 * p * r / (p + r).clamp_min(1e-30), 0.0)
    out = {"precision": p, "recall": r, "fscore": f}
    return out if batched else {k: v[0] for k, v in out.items()}


def normal_consistency(pred: torch.Tensor, pred_normals: torch.Tensor, gt: torch.Tensor,
                       gt_normals: torch.Tensor) -> torch.Tensor:
    """Eq. (6): mean absolute cosine between each point's normal and its nearest neighbour's in the
    other set, averaged over both directions (ONet); ``(B,)`` for batched sets. Normals need not be
    unit length."""
    batched = pred.ndim == 3
    pred, gt, _ = _check_sets(pred, gt)
    pn, gn, _ = _check_sets(pred_normals, gt_normals)
    if pn.shape != pred.shape or gn.shape != gt.shape:
        raise ValueError("normals must have the shapes of their points")
    pn = pn / pn.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    gn = gn / gn.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    _, i_pg = nearest(pred, gt)
    _, i_gp = nearest(gt, pred)
    c1 = (pn * gn.gather(1, i_pg[..., None].expand_as(pn))).sum(-1).abs().mean(1)
    c2 = (gn * pn.gather(1, i_gp[..., None].expand_as(gn))).sum(-1).abs().mean(1)
    out = 0.5 * (c1 + c2)
    return out if batched else out[0]


def set_distance_matrix(sets_a: torch.Tensor, sets_b: torch.Tensor, metric: str = "cd") -> torch.Tensor:
    """``(n, m)`` distances between every set of ``sets_a (n, N, D)`` and of ``sets_b (m, N, D)``:
    ``"cd"`` the Chamfer distance of Eq. (1) (squared, as PointFlow reports it), ``"emd"`` the
    exact EMD of Eq. (2)."""
    if metric not in ("cd", "emd"):
        raise ValueError(f"metric must be 'cd' or 'emd', got {metric!r}")
    n, m = len(sets_a), len(sets_b)
    ia = torch.arange(n, device=sets_a.device).repeat_interleave(m)
    ib = torch.arange(m, device=sets_a.device).repeat(n)
    if metric == "cd":
        d = torch.cat([chamfer_distance(sets_a[ia[i:i + 256]], sets_b[ib[i:i + 256]], squared=True,
                                        reduce="none") for i in range(0, n * m, 256)])
    else:
        d = torch.as_tensor(emd_exact(sets_a[ia], sets_b[ib]), dtype=sets_a.dtype, device=sets_a.device)
    return d.reshape(n, m)


def generation_metrics(d_gr: torch.Tensor, d_gg: torch.Tensor, d_rr: torch.Tensor) -> dict[str, float]:
    """Eq. (7) from set-distance matrices (generated × reference ``d_gr (n_g, n_r)``, ``d_gg``,
    ``d_rr``): ``mmd`` = mean over references of the distance to the nearest generated set;
    ``cov`` = share of references that are the nearest reference of some generated set;
    ``1nna`` = leave-one-out accuracy of the 1-nearest-neighbour classifier on generated ∪
    reference (0.5 is ideal: the two sets cannot be told apart)."""
    ng, nr = d_gr.shape
    if d_gg.shape != (ng, ng) or d_rr.shape != (nr, nr):
        raise ValueError(f"expected d_gg ({ng}, {ng}) and d_rr ({nr}, {nr}), got "
                         f"{tuple(d_gg.shape)} and {tuple(d_rr.shape)}")
    mmd = d_gr.min(0).values.mean()
    cov = d_gr.argmin(1).unique().numel() / nr
    full = torch.cat([torch.cat([d_gg, d_gr], 1), torch.cat([d_gr.T, d_rr], 1)], 0).double()
    full.fill_diagonal_(math.inf)
    labels = torch.cat([torch.zeros(ng), torch.ones(nr)]).to(full.device)
    acc = (labels[full.argmin(1)] == labels).double().mean()
    return {"mmd": float(mmd), "cov": float(cov), "1nna": float(acc)}
