"""K-medoids clustering on a precomputed distance matrix.

Derived in the Mask2CAD chapter (``notebooks/eccv2020/mask2cad.ipynb``), where it picks canonical
views and rotation bins under the geodesic metric on quaternions (a metric with no mean, so
k-means does not apply but k-medoids does).
"""
from __future__ import annotations

import torch


def k_medoids(D: torch.Tensor, k: int, iters: int = 50, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """K-medoids (Voronoi iteration) on a distance matrix ``D (n, n)``.

    Start from ``k`` distinct random points; alternate (i) assign every point to its nearest
    medoid, (ii) move each medoid to the member of its cluster with the least summed distance to
    the other members. Neither step raises the cost ``Σ_i D[i, medoid(i)]``. Returns ``(medoids
    (k,) indices into D, labels (n,), cost per iteration)``.
    """
    if not torch.is_tensor(D) or D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError(f"D must be a square distance matrix (n, n), got {getattr(D, 'shape', D)}")
    n = D.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, n={n}], got {k}")
    g = generator or torch.Generator().manual_seed(0)
    med = torch.randperm(n, generator=g)[:k].to(D.device)
    rows = torch.arange(n, device=D.device)
    costs: list[float] = []
    for _ in range(iters):
        labels = D[:, med].argmin(1)
        costs.append(float(D[rows, med[labels]].sum()))
        member = torch.nn.functional.one_hot(labels, k).to(D.dtype)  # (n, k)
        within = D @ member  # (n, k): summed distance of point i to the members of cluster c
        within = torch.where(member.bool(), within, torch.full_like(within, float("inf")))
        new = within.argmin(0)
        if torch.equal(new, med):
            break
        med = new
    labels = D[:, med].argmin(1)
    costs.append(float(D[rows, med[labels]].sum()))
    return med, labels, costs
