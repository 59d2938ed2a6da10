"""SoftPoolNet: soft pooling and regional convolutions for point-cloud completion.

Wang, Tan, Navab, Tombari. *SoftPoolNet: Shape Descriptor for Point Cloud Completion and
Classification*. ECCV 2020. Chapter: ``notebooks/eccv2020/softpoolnet.ipynb``.

A point-wise MLP ``W_point`` gives each of the ``N`` input points a vector ``f`` of ``N_f``
activations (softmax, so they read as the point's probabilities of belonging to ``N_f`` regions).
*Soft pooling* sorts the points by each activation ``k`` in turn and keeps the top ``N_r``: the
``N_f`` blocks of ``N_r`` rows form ``F*`` (Fig. 2), an ordered matrix that does not depend on the
order of the input points. A *regional convolution* (Eq. 1) slides a kernel of ``N_p`` rows inside
each block only, and with a fractional stride upsamples a coarse cloud to a fine one (Fig. 5).

Equations
---------
(1) P_conv(i, j) = sum_l sum_k F*(i + k, l) W_conv(j, k, l)        (inside one region of F*)
(2) L_complete = Chamfer(P_out, P_gt)
(3) P(f_k, i) = f_k[i] / sum_j f_k[j]
(4) E_r = -1/B sum_b sum_i pbar_i log pbar_i,   pbar_i = 1/N sum_k P(f_k, i)
(5) L_inter = log R - E_r
(6) L_intra = -1/(N B) sum_k sum_b sum_i P(f_k, i) log P(f_k, i)
(7) L_boundary = sum_i sum_{j > i} Chamfer(B_i^j, B_j^i),  B_i^j = {points of region i whose
    activation j exceeds tau}
(8) L_preserve = EMD(F*, F)      (on sampled rows, as N_f-dimensional points)

Readings of the paper (the notebook states each): Eq. (3) is a normalisation, the identity on a
softmax output; Eq. (7) writes ``j >= i`` but ``B_i^i`` is meaningless, so ``j > i``, and pairs with
an empty set are skipped; the boundary sets are rows of ``F*`` and their points the coarse
output points those rows produce; ``W_conv`` is stored as ``Conv1d`` weights ``[j, l, k]``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from cvtutor import report
from cvtutor.data.shapes3d import shapes as S
from cvtutor.data.shapes3d import transforms as T
from cvtutor.metrics.pointsets import chamfer_l1, emd_exact, emd_sinkhorn
from cvtutor.nn.pointnets import PointNet
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import fit, minibatches

#: Table 2 (Chamfer x 10^3, output 2,048) and Table 3 (EMD x 10^2, output 1,024): the categories
#: our world shares with the PCN benchmark (cabinet and sofa have no counterpart), and the average.
CATEGORY_NAMES = {"airplane": "Plane", "car": "Car", "chair": "Chair", "lamp": "Lamp",
                  "table": "Table", "vessel": "Vessel"}
_T2_COLS = ("Plane", "Car", "Chair", "Lamp", "Table", "Vessel", "Avg.")
PAPER = {
    "table2": {  # Table 2, Chamfer x 10^3 at 2,048 output points (Plane, Car, Chair, Lamp, Table,
        # Vessel, and the 8-category average)
        "SoftPoolNet": dict(zip(_T2_COLS, (4.76, 7.63, 11.23, 8.97, 7.13, 6.38, 8.31))),
        "- without L_inter": dict(zip(_T2_COLS, (10.82, 15.21, 20.19, 18.05, 15.65, 8.81, 15.97))),
        "- without L_intra": dict(zip(_T2_COLS, (5.23, 12.49, 14.62, 13.90, 12.96, 5.72, 11.67))),
        "- without L_inter, L_intra": dict(zip(_T2_COLS, (10.91, 15.27, 20.28, 18.16, 15.75, 8.91,
                                                           16.06))),
        "- without L_boundary": dict(zip(_T2_COLS, (5.46, 8.27, 11.95, 9.51, 7.78, 7.40, 9.03))),
        "- without L_preserve": dict(zip(_T2_COLS, (10.29, 14.13, 19.35, 17.88, 15.23, 8.11,
                                                     15.37))),
        "PCN-lite": dict(zip(_T2_COLS, (8.09, 10.53, 19.33, 18.52, 16.34, 10.21, 14.72))),  # PCN
    },
    "table3": {  # Table 3, EMD x 10^2 at 1,024 output points, 8-category average
        "SoftPoolNet": 4.89, "PCN-lite": 6.40, "FoldingNet": 22.80,  # PCN-lite: PCN's row
    },
    "table5": {  # Table 5, linear SVM on unsupervised features, ModelNet40 accuracy (%)
        "SoftPoolNet": 92.28, "- without L_inter": 89.40, "- without L_intra": 83.70,
        "- without L_inter, L_intra": 82.97, "- without L_boundary": 88.26,
        "- without L_preserve": 86.09, "RS-PointNet": 87.31,
    },
    "table6": {  # Table 6, (N_f, N_r) -> (Chamfer x 10^3, L_inter), output 16,384
        (2, 128): (7.80, 0.41), (4, 64): (6.31, 0.67), (8, 32): (5.94, 0.20),
        (16, 16): (6.27, 0.49), (32, 8): (6.75, 1.33),
    },
    "tau": 0.3,   # Sect. 6.2
    "n_p": 32,    # Sect. 4, best kernel size
}

#: The trained variants: which of the four region losses each uses (L_complete always).
VARIANTS = {
    "SoftPoolNet": ("inter", "intra", "boundary", "preserve"),
    "- without L_inter": ("intra", "boundary", "preserve"),
    "- without L_intra": ("inter", "boundary", "preserve"),
    "- without L_inter, L_intra": ("boundary", "preserve"),
    "- without L_boundary": ("inter", "intra", "preserve"),
    "- without L_preserve": ("inter", "intra", "boundary"),
    "PointNet-AE": (),
    "PCN-lite": (),
}


# ---------------------------------------------------------------------------------------------
# soft pooling (Sect. 3, Fig. 2)
# ---------------------------------------------------------------------------------------------
def soft_pool(f: torch.Tensor, n_r: int, rows: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft pooling, Fig. 2: ``F*`` and the indices of the points it keeps.

    ``f (B, N, N_f)``: the activations. For each channel ``k``, sort the points by ``f[:, :, k]``
    in descending order (``F'_k``) and keep the first ``n_r`` rows; stacking the ``N_f`` blocks
    gives ``F* (B, N_f * n_r, C)``, block ``k`` (rows ``k n_r .. (k+1) n_r - 1``) being region
    ``k``. ``rows (B, N, C)``: what each kept row carries (default ``f`` itself, ``C = N_f``).
    Returns ``(F*, index (B, N_f, n_r))`` into the points. With ``n_r = 1`` entry ``k`` of row
    ``k`` is PointNet's max-pool of channel ``k``.
    """
    if f.ndim != 3:
        raise ValueError(f"activations must be (B, N, N_f), got {tuple(f.shape)}")
    B, N, n_f = f.shape
    if not 1 <= n_r <= N:
        raise ValueError(f"N_r must be in [1, N = {N}], got {n_r}")
    rows = f if rows is None else rows
    if rows.shape[:2] != (B, N):
        raise ValueError(f"rows must be (B, N, C) = ({B}, {N}, C), got {tuple(rows.shape)}")
    idx = f.topk(n_r, dim=1, sorted=True).indices.transpose(1, 2)  # (B, N_f, N_r)
    flat = idx.reshape(B, n_f * n_r)
    kept = rows.gather(1, flat[..., None].expand(B, n_f * n_r, rows.shape[2]))
    return kept, idx


# ---------------------------------------------------------------------------------------------
# regional convolution (Sect. 4, Eq. 1)
# ---------------------------------------------------------------------------------------------
def _regions(x: torch.Tensor, n_regions: int) -> torch.Tensor:
    """``(B, R * L, C)`` → ``(B * R, C, L)``: one 1-D sequence per region."""
    if x.ndim != 3:
        raise ValueError(f"features must be (B, R * L, C), got {tuple(x.shape)}")
    B, M, C = x.shape
    if M % n_regions:
        raise ValueError(f"{M} rows do not split into {n_regions} regions of equal length")
    return x.reshape(B * n_regions, M // n_regions, C).transpose(1, 2)


def _unregions(h: torch.Tensor, batch: int) -> torch.Tensor:
    """``(B * R, C, L)`` → ``(B, R * L, C)``."""
    BR, C, L = h.shape
    return h.transpose(1, 2).reshape(batch, BR // batch * L, C)


def fractional_upsample(x: torch.Tensor, n_regions: int, factor: int) -> torch.Tensor:
    """Stride ``S = 1/factor`` (Sect. 4): inside each region, ``factor - 1`` new rows linearly
    interpolated between two consecutive rows (after the last row, copies of it, the duplicated
    padding of Eq. 1). ``(B, R * L, C)`` → ``(B, R * L * factor, C)``; rows ``factor * t`` are the
    input's rows ``t``."""
    if factor < 1:
        raise ValueError(f"the upsampling factor 1/S must be a positive integer, got {factor}")
    if factor == 1:
        return x
    h = _regions(x, n_regions)
    L = h.shape[2]
    h = F.pad(h, (0, 1), mode="replicate")
    up = F.interpolate(h, size=L * factor + 1, mode="linear", align_corners=True)[..., :-1]
    return _unregions(up, len(x))


class RegionalConv(nn.Module):
    """Eq. (1): a 1-D convolution of ``N_p`` rows that slides inside each region of ``F*`` only.

    Each region (``L`` consecutive rows) is padded at its end with ``N_p - 1`` copies of its last
    row, so the output keeps ``L`` rows per region and no kernel window spans two regions.
    ``W_conv(j, k, l)`` of the paper is ``self.conv.weight[j, l, k]`` (output ``j``, input channel
    ``l``, tap ``k``). ``forward((B, R * L, c_in))`` → ``(B, R * L, c_out)``.
    """

    def __init__(self, c_in: int, c_out: int, n_p: int, n_regions: int) -> None:
        super().__init__()
        if min(c_in, c_out, n_p, n_regions) < 1:
            raise ValueError(f"c_in, c_out, N_p and the number of regions must be positive, got "
                             f"{c_in}, {c_out}, {n_p}, {n_regions}")
        self.n_p, self.n_regions = n_p, n_regions
        self.conv = nn.Conv1d(c_in, c_out, n_p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[2] != self.conv.in_channels:
            raise ValueError(f"expected (B, R * L, {self.conv.in_channels}), got {tuple(x.shape)}")
        h = _regions(x, self.n_regions)
        h = F.pad(h, (0, self.n_p - 1), mode="replicate")
        return _unregions(self.conv(h), len(x))


# ---------------------------------------------------------------------------------------------
# the region losses (Sect. 6)
# ---------------------------------------------------------------------------------------------
def region_probability(f: torch.Tensor) -> torch.Tensor:
    """Eq. (3): ``P(f_k, i) = f_k[i] / sum_j f_k[j]`` for ``f (B, N, N_f) >= 0`` (a normalisation;
    the paper calls it a softmax, and on a softmax output it is the identity)."""
    if f.ndim != 3:
        raise ValueError(f"activations must be (B, N, N_f), got {tuple(f.shape)}")
    return f / f.sum(-1, keepdim=True).clamp_min(1e-12)


def _plogp(p: torch.Tensor) -> torch.Tensor:
    return p * torch.log(p.clamp_min(1e-12))


def regional_entropy(f: torch.Tensor) -> torch.Tensor:
    """Eq. (4): the entropy of the average region assignment of each cloud, averaged over the
    batch (at most ``log R``, reached when the points spread evenly over the ``R`` regions)."""
    pbar = region_probability(f).mean(1)
    return -_plogp(pbar).sum(-1).mean()


def inter_loss(f: torch.Tensor) -> torch.Tensor:
    """Eq. (5): ``L_inter = log R - E_r``; 0 for an even spread, ``log R`` if one region takes all."""
    return math.log(f.shape[-1]) - regional_entropy(f)


def intra_loss(f: torch.Tensor) -> torch.Tensor:
    """Eq. (6): the mean entropy of each point's assignment; 0 for one-hot activations."""
    return -_plogp(region_probability(f)).sum(-1).mean()


def boundary_sets(f: torch.Tensor, tau: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """The sets of Sect. 6.2 for every region pair ``i < j``: ``B_i^j`` = rows assigned to region
    ``i`` (arg-max) whose activation ``j`` exceeds ``tau``, and ``B_j^i`` likewise. ``f (B, M, R)``
    → two masks ``(B, R (R - 1) / 2, M)`` (pairs in ``torch.triu_indices`` order)."""
    if f.ndim != 3:
        raise ValueError(f"activations must be (B, M, R), got {tuple(f.shape)}")
    if not 0 < tau < 1:
        raise ValueError(f"tau must be in (0, 1), got {tau}")
    R = f.shape[-1]
    i, j = torch.triu_indices(R, R, offset=1, device=f.device)
    owner = f.argmax(-1)                                   # (B, M)
    above = (f > tau).transpose(1, 2)                      # (B, R, M)
    b_ij = (owner[:, None] == i[None, :, None]) & above[:, j]
    b_ji = (owner[:, None] == j[None, :, None]) & above[:, i]
    return b_ij, b_ji


def boundary_loss(points: torch.Tensor, f: torch.Tensor, tau: float = 0.3) -> torch.Tensor:
    """Eq. (7) (read with ``j > i``): sum over region pairs of the Chamfer distance (PCN's, as
    :func:`cvtutor.metrics.pointsets.chamfer_l1`) between ``B_i^j`` and ``B_j^i``, pairs with an
    empty set skipped, averaged over the batch. ``points (B, M, 3)`` are the points that the rows
    ``f (B, M, R)`` stand for.

    Computed without a tensor per pair: a row ``r`` of region ``i = owner(r)`` lies in ``B_i^k``
    for every ``k != i`` with ``f[r, k] > tau``, and its nearest neighbour there is sought among the
    rows of region ``k`` with activation ``i`` above ``tau`` (that is ``B_k^i``); the pair's Chamfer
    is half the sum of the two sets' mean nearest-neighbour distances.
    """
    if points.ndim != 3 or points.shape[:2] != f.shape[:2]:
        raise ValueError(f"points must be (B, M, 3) matching f {tuple(f.shape)}, got "
                         f"{tuple(points.shape)}")
    if not 0 < tau < 1:
        raise ValueError(f"tau must be in (0, 1), got {tau}")
    f = f.detach()
    B, M, R = f.shape
    owner = f.argmax(-1)                                            # (B, M)
    own = F.one_hot(owner, R).bool()                                # (B, M, R)
    member = (f > tau) & ~own                                       # r in B_owner(r)^k
    # toward[b, m, r]: row m has activation owner(r) above tau
    toward = f.gather(2, owner[:, None, :].expand(B, M, M)) > tau   # (B, M_m, M_r)
    with torch.no_grad():  # which row is nearest needs no gradient
        d = torch.cdist(points, points)                             # (B, M_r, M_m)
        cand = own.transpose(1, 2)[:, None] & toward.transpose(1, 2)[:, :, None]  # (B, r, k, m)
        big = d.max() + 1.0
        nn_idx = (d[:, :, None] + big * ~cand).argmin(-1)           # (B, M_r, R)
        found = cand.any(-1)
    near = points.gather(1, nn_idx.reshape(B, M * R, 1).expand(B, M * R, 3)).reshape(B, M, R, 3)
    dist = (points[:, :, None] - near).norm(dim=-1)                 # (B, M, R)
    use = member & found                                            # (B, M, R)
    # per ordered pair (i, k): sum and count of the distances of B_i^k's rows
    idx = (owner[..., None] * R + torch.arange(R, device=f.device)).reshape(B, M * R)
    tot = torch.zeros(B, R * R, dtype=dist.dtype, device=f.device).scatter_add(
        1, idx, (dist * use).reshape(B, M * R))
    cnt = torch.zeros(B, R * R, dtype=dist.dtype, device=f.device).scatter_add(
        1, idx, use.reshape(B, M * R).to(dist.dtype))
    mean = (tot / cnt.clamp_min(1)).reshape(B, R, R)
    ok = (cnt > 0).reshape(B, R, R)
    ok = ok & ok.transpose(1, 2)                                    # both sets non-empty
    pair = torch.triu(torch.ones(R, R, dtype=torch.bool, device=f.device), 1)
    term = (mean + mean.transpose(1, 2)) / 2
    return (term * (ok & pair)).sum((1, 2)).mean()


def preserve_loss(f_star: torch.Tensor, f: torch.Tensor, n: int = 256, eps: float = 0.05,
                  iters: int = 20) -> torch.Tensor:
    """Eq. (8): EMD between the rows of ``F* (B, M, N_f)`` and of ``F (B, N, N_f)``, each cut to
    its first ``min(n, M, N)`` rows, as ``N_f``-dimensional points (a Sinkhorn EMD,
    :func:`cvtutor.metrics.pointsets.emd_sinkhorn`). The paper samples 256 rows at random; the
    input points are already in random order (:func:`make_data`), so ``F``'s first rows are such
    a sample, while ``F*`` is cut block-evenly when ``M > n``."""
    m = min(n, f_star.shape[1], f.shape[1])
    keep = torch.linspace(0, f_star.shape[1] - 1, m, device=f.device).round().long()
    return emd_sinkhorn(f_star[:, keep], f[:, :m], eps=eps, iters=iters,
                        plan_dtype=torch.float32)


def completion_loss(out: dict[str, torch.Tensor], gt: torch.Tensor) -> torch.Tensor:
    """Eq. (2), on both stages: ``Chamfer(P_out, P_gt) + Chamfer(P'_out, P_gt)`` (PCN's Chamfer,
    the mean nearest-neighbour distance averaged over both directions)."""
    loss = chamfer_l1(out["fine"], gt)
    if "coarse" in out:
        loss = loss + chamfer_l1(out["coarse"], gt)
    return loss


# ---------------------------------------------------------------------------------------------
# networks (Sect. 5, Fig. 5) and the max-pool baseline
# ---------------------------------------------------------------------------------------------
class PointMLP(nn.Module):
    """``W_point`` (Sect. 3): a shared per-point MLP ``3 → width → width → N_f`` with a softmax on
    its output. ``forward((B, N, 3))`` → ``(f (B, N, N_f), hidden (B, N, width))``."""

    def __init__(self, n_f: int, width: int) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        self.head = nn.Linear(width, n_f)
        # a softmax that starts uniform sits on a saddle of L_intra (its gradient vanishes there):
        # start from spread logits instead
        nn.init.normal_(self.head.weight, std=1.0)

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.hidden(points)
        return torch.softmax(self.head(h), -1), h


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)  # Sect. 7: Leaky ReLU (slope 0.2) after each regional convolution


class SoftPoolNet(nn.Module):
    """Encoder ``W_point`` + soft pooling + the two-stage regional-convolution decoder (Fig. 5).

    ``F*`` has ``N_f * N_r`` rows; each row carries the point's activations ``f`` and its hidden
    feature (our reading: ``N_f = 8`` probabilities alone say little about a point's place once
    ``L_intra`` makes them one-hot). A linear map of the flattened, ordered ``F*`` (a global code,
    layer-normalised,
    our addition: Fig. 5's connections are not in the text) is added to the first regional
    convolution's output so the decoder can place points where the scan saw none. Stage 1 gives
    the coarse ``P'_out`` (one point per row of ``F*``); stage 2 upsamples with stride
    ``1 / up`` and adds regional-convolution offsets to the upsampled coarse points (our reading
    of "patch deforming"), giving ``P_out`` with ``N_f N_r up`` points.
    """

    def __init__(self, n_f: int = 8, n_r: int = 16, n_p: int = 8, up: int = 4, width: int = 64
                 ) -> None:
        super().__init__()
        if min(n_f, n_r, n_p, up, width) < 1:
            raise ValueError("N_f, N_r, N_p, up and width must be positive")
        self.n_f, self.n_r, self.up = n_f, n_r, up
        self.encoder = PointMLP(n_f, width)
        c = n_f + width
        # LayerNorm: with a fan-in of N_f N_r c, one Adam step moves the code by lr * fan-in
        self.glob = nn.Sequential(nn.Linear(n_f * n_r * c, width), nn.LayerNorm(width))
        self.conv1 = RegionalConv(c, width, n_p, n_f)
        self.conv2 = RegionalConv(width, width, n_p, n_f)
        self.to_coarse = RegionalConv(width, 3, n_p, n_f)
        self.conv3 = RegionalConv(width + 3, width, n_p, n_f)
        self.to_fine = RegionalConv(width, 3, n_p, n_f)

    def encode(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        """``f``, ``F*`` (activations and hidden features) and the kept point indices."""
        if points.ndim != 3 or points.shape[2] != 3:
            raise ValueError(f"expected points (B, N, 3), got {tuple(points.shape)}")
        f, h = self.encoder(points)
        f_star, idx = soft_pool(f, self.n_r, torch.cat([f, h], -1))
        return {"f": f, "f_star": f_star, "index": idx}

    def forward(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        enc = self.encode(points)
        fs = enc["f_star"]
        h = _lrelu(self.conv1(fs) + self.glob(fs.flatten(1))[:, None])
        h = _lrelu(self.conv2(h))
        coarse = self.to_coarse(h)
        hu = fractional_upsample(torch.cat([h, coarse], -1), self.n_f, self.up)
        fine = (fractional_upsample(coarse, self.n_f, self.up)
                + self.to_fine(_lrelu(self.conv3(hu))))
        return {**enc, "coarse": coarse, "fine": fine}

    def descriptor(self, points: torch.Tensor) -> torch.Tensor:
        """The shape descriptor for the SVM (Table 5; undefined in the paper): flattened ``F*``."""
        return self.encode(points)["f_star"].flatten(1)


class PointNetAE(nn.Module):
    """The max-pool baseline ("PointNet-AE"): PointNet (:class:`cvtutor.nn.pointnets.PointNet`,
    widths ``width, width, 2 width``) to a code of ``2 width``, and an MLP to ``n_out`` points."""

    def __init__(self, n_out: int, width: int = 64) -> None:
        super().__init__()
        self.n_out = n_out
        self.encoder = PointNet(2 * width, widths=(width, width, 2 * width), head=2 * width)
        self.decoder = nn.Sequential(nn.Linear(2 * width, 4 * width), nn.ReLU(),
                                     nn.Linear(4 * width, 4 * width), nn.ReLU(),
                                     nn.Linear(4 * width, 3 * n_out))

    def forward(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        code = self.encoder(points)
        return {"fine": self.decoder(code).reshape(len(points), self.n_out, 3)}

    def descriptor(self, points: torch.Tensor) -> torch.Tensor:
        return self.encoder(points)


class PCNLite(nn.Module):
    """The PCN-style baseline ("PCN-lite", after Yuan et al., 3DV 2018): PointNet (as in
    :class:`PointNetAE`) to a code, an MLP to ``n_coarse`` coarse points, and a fold of a small
    2-D grid around each coarse point (an MLP of code, grid and coarse point), giving
    ``n_coarse * grid**2`` fine points. ``forward`` returns ``coarse`` and ``fine``."""

    def __init__(self, n_out: int, width: int = 64, grid: int = 2) -> None:
        super().__init__()
        if n_out % (grid * grid):
            raise ValueError(f"n_out = {n_out} must be a multiple of grid**2 = {grid * grid}")
        self.n_coarse, self.g = n_out // (grid * grid), grid
        d = 2 * width
        self.encoder = PointNet(d, widths=(width, width, d), head=d)
        self.to_coarse = nn.Sequential(nn.Linear(d, 4 * width), nn.ReLU(),
                                       nn.Linear(4 * width, 3 * self.n_coarse))
        u = torch.linspace(-0.05, 0.05, grid)
        self.register_buffer("grid", torch.stack(torch.meshgrid(u, u, indexing="ij"), -1)
                             .reshape(-1, 2), persistent=False)
        self.fold = nn.Sequential(nn.Linear(d + 2 + 3, width), nn.ReLU(), nn.Linear(width, width),
                                  nn.ReLU(), nn.Linear(width, 3))

    def forward(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        code = self.encoder(points)
        B, G = len(points), self.g * self.g
        coarse = self.to_coarse(code).reshape(B, self.n_coarse, 3)
        c = coarse[:, :, None].expand(B, self.n_coarse, G, 3)
        grid = self.grid.to(code.dtype).expand(B, self.n_coarse, G, 2)
        z = code[:, None, None].expand(B, self.n_coarse, G, code.shape[1])
        fine = c + self.fold(torch.cat([z, grid, c], -1))
        return {"coarse": coarse, "fine": fine.reshape(B, self.n_coarse * G, 3)}

    def descriptor(self, points: torch.Tensor) -> torch.Tensor:
        return self.encoder(points)


# ---------------------------------------------------------------------------------------------
# configuration and data
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config(ProfileConfig):
    categories: tuple[str, ...] = tuple(CATEGORY_NAMES)
    n_train: int = 50                 # shapes per category (+ n_test)
    n_test: int = 10
    n_complete: int = 256             # ground-truth points (= the fine output)
    n_dense: int = 512                # surface samples the scan sees
    n_in: int = 256                   # partial input points (resampled, duplicated when short)
    scan_size: int = 32               # z-buffer pixels per side
    n_f: int = 8
    n_r: int = 16
    n_p: int = 8
    width: int = 32
    steps: int = 110
    batch_size: int = 16
    lr: float = 2e-3                  # Adam (unstated in the paper)
    tau: float = 0.3
    n_preserve: int = 64              # rows of F and F* in L_preserve's EMD (paper: 256)
    w_inter: float = 0.1              # loss weights: unstated in the paper
    w_intra: float = 0.1
    w_boundary: float = 0.1
    w_preserve: float = 0.1
    variants: tuple[str, ...] = ("SoftPoolNet", "- without L_inter", "PointNet-AE")
    sweep: tuple[tuple[int, int], ...] = ()   # Table 6's (N_f, N_r), same N_f N_r
    n_emd: int = 12                   # test shapes with exact EMD
    emd_points: int = 256             # points per cloud in the EMD (Table 3: 1,024)
    seeds: tuple[int, ...] = (0,)
    device: str | None = None

    @property
    def n_out(self) -> int:
        return self.n_complete

    @property
    def up(self) -> int:
        up, rem = divmod(self.n_complete, self.n_f * self.n_r)
        if rem or up < 1:
            raise ValueError(f"n_complete = {self.n_complete} must be a multiple of N_f N_r = "
                             f"{self.n_f * self.n_r}")
        return up

    @classmethod
    def fast(cls) -> "Config":
        return cls()

    @classmethod
    def full(cls) -> "Config":
        """The paper's sizes at 2,048 output points: N_in 1024, N_r = N_p = 32, the whole
        ablation, Table 6's sweep and three seeds."""
        return cls(n_train=250, n_test=50, n_complete=2048, n_dense=8192, n_in=1024, scan_size=64,
                   n_r=32, n_p=32, width=128, steps=800, batch_size=32, lr=2e-4, n_preserve=256,
                   variants=tuple(VARIANTS), sweep=((2, 128), (4, 64), (8, 32), (16, 16), (32, 8)),
                   n_emd=10, emd_points=1024, seeds=(0, 1, 2))

    @classmethod
    def smoke(cls) -> "Config":
        """``full``'s code paths (every variant, the sweep, two seeds) at toy size."""
        return cls(n_train=6, n_test=3, n_complete=64, n_dense=256, n_in=64, scan_size=16,
                   n_f=4, n_r=8, n_p=4, width=8, steps=3, batch_size=8,
                   variants=tuple(VARIANTS), sweep=((2, 16), (4, 8)), n_emd=4, emd_points=32,
                   seeds=(0, 1))


def make_data(config: Config, seed: int = 0, device=None) -> dict:
    """Completion pairs from the 3-D shape world: for each category ``n_train + n_test`` shapes
    (:func:`cvtutor.data.shapes3d.make_category`, in the unit cube), ``n_dense`` area-uniform
    surface samples, the first ``n_complete`` of them as ground truth; a camera at a random place
    on the sphere of radius 2 (elevation -10..60 degrees) sees them through a ``scan_size²``
    z-buffer (:func:`cvtutor.data.shapes3d.transforms.scan`), and ``n_in`` of the seen samples, in
    random order, duplicated where fewer are seen, are the partial input (Sect. 5).

    Returns ``partial (S, n_in, 3)``, ``complete (S, n_complete, 3)``, ``label (S,)``,
    ``legs (S,)`` (the table legs, 0 for other categories), ``train (S,)`` bool, ``seen (S,)``.
    """
    device = get_device(device)
    g = torch.Generator(device=device).manual_seed(10_007 * seed + 5)
    n = config.n_train + config.n_test
    shapes = S.ShapeBatch.cat([S.make_category(c, n, g, device) for c in config.categories])
    smp = shapes.sample(config.n_dense, g)
    pts, nrm = smp["points"], smp["normals"]
    eye = T.sphere_cameras(len(pts), g, 2.0, device, min_elevation=-10.0, max_elevation=60.0)
    vis = T.scan(pts, nrm, eye, size=config.scan_size)["visible"]
    partial, _ = T.resample(pts, config.n_in, g, mask=vis)
    leg = S.PARTS["table"].index("leg")
    is_table = shapes.label == S.CATEGORIES.index("table")
    legs = ((shapes.part == leg) & shapes.valid).sum(1) * is_table
    label = torch.arange(len(config.categories), device=device).repeat_interleave(n)
    train = (torch.arange(n, device=device) < config.n_train).repeat(len(config.categories))
    return {"partial": partial.float(), "complete": pts[:, :config.n_complete].float(),
            "label": label, "legs": legs, "train": train, "seen": vis.sum(1)}


# ---------------------------------------------------------------------------------------------
# training and evaluation
# ---------------------------------------------------------------------------------------------
def build(variant: str, config: Config, n_f: int | None = None, n_r: int | None = None) -> nn.Module:
    """The network of a variant (``VARIANTS``); ``n_f``, ``n_r`` override the config's."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {tuple(VARIANTS)}")
    if variant == "PointNet-AE":
        return PointNetAE(config.n_out, config.width)
    if variant == "PCN-lite":
        return PCNLite(config.n_out, config.width)
    n_f, n_r = n_f or config.n_f, n_r or config.n_r
    up, rem = divmod(config.n_out, n_f * n_r)
    if rem or up < 1:
        raise ValueError(f"n_complete = {config.n_out} must be a multiple of N_f N_r = {n_f * n_r}")
    return SoftPoolNet(n_f, n_r, min(config.n_p, n_r), up, config.width)


def losses(model: nn.Module, out: dict, gt: torch.Tensor, terms: tuple[str, ...], config: Config
           ) -> dict[str, torch.Tensor]:
    """The named loss terms of a variant; ``"loss"`` is their weighted sum."""
    d = {"complete": completion_loss(out, gt)}
    loss = d["complete"]
    if "f" in out:
        f, fs = out["f"], out["f_star"][..., :out["f"].shape[-1]]
        each = {"inter": lambda: inter_loss(f), "intra": lambda: intra_loss(f),
                "boundary": lambda: boundary_loss(out["coarse"], fs, config.tau),
                "preserve": lambda: preserve_loss(fs, f, config.n_preserve)}
        for t in terms:
            d[t] = each[t]()
            loss = loss + getattr(config, f"w_{t}") * d[t]
    d["loss"] = loss
    return d


def train(variant: str, data: dict, config: Config, seed: int = 0, n_f: int | None = None,
          n_r: int | None = None, progress: bool = False) -> tuple[nn.Module, pd.DataFrame]:
    """Train one variant on the training pairs with Adam; returns ``(model, loss history)``."""
    device = data["partial"].device
    seed_everything(seed)
    model = build(variant, config, n_f, n_r).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    tr = data["train"]
    batches = minibatches(data["partial"][tr], data["complete"][tr],
                          batch_size=min(config.batch_size, int(tr.sum())), seed=seed)
    terms = VARIANTS[variant]

    def loss_fn(models, batch, step):
        x, gt = batch
        return losses(models["model"], models["model"](x), gt, terms, config)

    hist = fit(model, opt, batches, loss_fn, steps=config.steps, progress=progress, desc=variant)
    model.eval()
    return model, hist


@torch.no_grad()
def evaluate(model: nn.Module, data: dict, config: Config, emd: bool = True) -> dict:
    """Per-test-shape Chamfer (PCN's, x 10^3), exact EMD (x 10^2, Hungarian) on ``n_emd`` test
    shapes spread over the categories, at ``emd_points`` points (every ``n_complete / emd_points``
    -th point of output and ground truth), and for SoftPoolNet the region statistics of ``f``
    (L_inter, L_intra on the test inputs, regions in use)."""
    te = ~data["train"]
    x, gt = data["partial"][te], data["complete"][te]
    out = model(x)
    cd = 1e3 * chamfer_l1(out["fine"], gt, reduce="none")
    res = {"chamfer": cd.cpu().numpy(), "emd": np.full(1, np.nan), "out": out}
    if emd:
        k = min(config.n_emd, len(x))
        pick = torch.linspace(0, len(x) - 1, k, device=x.device).round().long()
        step = max(1, config.n_complete // config.emd_points)
        res["emd"] = np.atleast_1d(1e2 * emd_exact(out["fine"][pick, ::step].cpu(),
                                                   gt[pick, ::step].cpu()))
    if "f" in out:
        f = out["f"]
        res["l_inter"] = float(inter_loss(f))
        res["l_intra"] = float(intra_loss(f))
        used = F.one_hot(f.argmax(-1), f.shape[-1]).amax(1)          # (B, R)
        res["regions_used"] = float(used.sum(1).float().mean())
    return res


def count_legs(points: torch.Tensor, eps: float = 0.04, min_samples: int = 4) -> int:
    """Legs of a table cloud ``(n, 3)`` (z up): DBSCAN clusters (scikit-learn) in ``xy`` of the
    points in the lower 70 % of its height, counting clusters of at least 3 % of those points."""
    from sklearn.cluster import DBSCAN

    p = points.detach().cpu().numpy()
    z = p[:, 2]
    low = p[z < z.min() + 0.7 * (z.max() - z.min())][:, :2]
    if len(low) < min_samples:
        return 0
    lab = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(low)
    sizes = np.bincount(lab[lab >= 0]) if (lab >= 0).any() else np.zeros(0)
    return int((sizes >= 0.03 * len(low)).sum())


def svm_accuracy(model: nn.Module, data: dict) -> float:
    """Table 5 in miniature: a linear SVM (scikit-learn ``LinearSVC``) on the frozen descriptor
    of the complete clouds (first ``n_in`` points), trained on the training shapes' labels."""
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    n_in = data["partial"].shape[1]
    with torch.no_grad():
        z = model.descriptor(data["complete"][:, :n_in]).cpu().numpy()
    y, tr = data["label"].cpu().numpy(), data["train"].cpu().numpy()
    sc = StandardScaler().fit(z[tr])
    clf = LinearSVC(C=0.1, max_iter=5000).fit(sc.transform(z[tr]), y[tr])
    return float((clf.predict(sc.transform(z[~tr])) == y[~tr]).mean())


@torch.no_grad()
def shuffle_gap(model: nn.Module, x: torch.Tensor, seed: int = 0) -> float:
    """Fig. 8: the largest change of the fine output when the input points are shuffled."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(x.shape[1], generator=g).to(x.device)
    return float((model(x)["fine"] - model(x[:, perm])["fine"]).abs().max())


def _per_category(values: np.ndarray, label: np.ndarray, config: Config) -> dict[str, float]:
    out = {CATEGORY_NAMES[c]: float(values[label == i].mean())
           for i, c in enumerate(config.categories)}
    out["Avg."] = float(values.mean())
    return out


def run(config: Config, data: dict | None = None, keep: dict | None = None) -> dict:
    """The miniature: train the variants (Table 2, Table 3, Table 5), Table 6's sweep, Fig. 4's
    leg counts and Fig. 8's shuffle test; results as DataFrames and a ``findings`` table.
    ``data``: the first seed's :func:`make_data` output, if already made; ``keep``: a dict that
    receives, by variant, the first seed's ``(model, evaluate(...))`` (for the figures)."""
    device = get_device(config.device)
    rows, hist_all, legs_rows, sweep_rows = [], [], [], []
    kept = {} if keep is None else keep
    data0 = data
    for seed in config.seeds:
        data = data0 if (seed == config.seeds[0] and data0 is not None) else make_data(config, seed,
                                                                                         device)
        if seed == config.seeds[0]:
            data0 = data
        te = ~data["train"]
        label_te = data["label"][te].cpu().numpy()
        for v in config.variants:
            model, hist = train(v, data, config, seed)
            hist_all.append(hist.assign(variant=v, seed=seed))
            ev = evaluate(model, data, config)
            row = {"variant": v, "seed": seed, **_per_category(ev["chamfer"], label_te, config),
                   "EMD": float(ev["emd"].mean()), "SVM acc": svm_accuracy(model, data),
                   "shuffle gap": shuffle_gap(model, data["partial"][te][:8], seed)}
            for k in ("l_inter", "l_intra", "regions_used"):
                row[k] = ev.get(k, np.nan)
            rows.append(row)
            six = torch.nonzero(data["legs"][te] == 6).flatten().tolist()
            legs_rows += [{"variant": v, "seed": seed, "true legs": 6,
                           "legs": count_legs(ev["out"]["fine"][i])} for i in six]
            if seed == config.seeds[0]:
                kept[v] = (model, ev)
        for n_f, n_r in config.sweep:
            model, _ = train("SoftPoolNet", data, config, seed, n_f, n_r)
            ev = evaluate(model, data, config, emd=False)
            sweep_rows.append({"N_f": n_f, "N_r": n_r, "seed": seed,
                               "Chamfer": float(ev["chamfer"].mean()), "L_inter": ev["l_inter"]})
    table = pd.DataFrame(rows)
    history = pd.concat(hist_all, ignore_index=True)
    legs = pd.DataFrame(legs_rows, columns=["variant", "seed", "true legs", "legs"])
    sweep = pd.DataFrame(sweep_rows, columns=["N_f", "N_r", "seed", "Chamfer", "L_inter"])
    return {"table": table, "history": history, "legs": legs, "sweep": sweep,
            **summarise(table, legs, sweep, config)}


def summarise(table: pd.DataFrame, legs: pd.DataFrame, sweep: pd.DataFrame, config: Config) -> dict:
    """Paper-vs-ours tables (mean ± std over seeds) and the ``findings``."""
    num = table.drop(columns=["seed"]).groupby("variant", sort=False)
    mean, std = num.mean(), num.std().fillna(0.0)
    t2 = pd.DataFrame({"paper": {v: PAPER["table2"].get(v, {}).get("Avg.", np.nan)
                                 for v in mean.index},
                       "ours": mean["Avg."], "ours std": std["Avg."]})
    t2.index.name = "method"
    ours = "SoftPoolNet"
    rel = {v: (mean.loc[v, "Avg."] > mean.loc[ours, "Avg."]) for v in mean.index if v != ours}
    t2["holds"] = pd.array([pd.NA if v == ours else bool(rel[v]) for v in mean.index],
                           dtype="boolean")
    t2["claim"] = ["" if v == ours else f"{v} > {ours}" for v in mean.index]
    sv = pd.DataFrame({"paper": {v: PAPER["table5"].get(v, np.nan) / 100 for v in mean.index},
                       "ours": mean["SVM acc"], "ours std": std["SVM acc"]})
    sv.index.name = "method"
    t6 = pd.DataFrame()
    if len(sweep):
        t6 = sweep.groupby(["N_f", "N_r"]).mean().drop(columns="seed").reset_index()
        t6["paper Chamfer"] = [PAPER["table6"].get((a, b), (np.nan, np.nan))[0]
                               for a, b in zip(t6.N_f, t6.N_r)]
        t6["paper L_inter"] = [PAPER["table6"].get((a, b), (np.nan, np.nan))[1]
                               for a, b in zip(t6.N_f, t6.N_r)]
    has = set(mean.index)
    f = {}
    if "PointNet-AE" in has:
        f["Table 2: SoftPoolNet completes better than the max-pool PointNet-AE (Chamfer)"] = (
            "paper claim", bool(mean.loc[ours, "Avg."] < mean.loc["PointNet-AE", "Avg."]),
            f"{mean.loc[ours, 'Avg.']:.2f} vs {mean.loc['PointNet-AE', 'Avg.']:.2f}")
        f["Table 3: SoftPoolNet has the lower EMD than PointNet-AE"] = (
            "paper claim", bool(mean.loc[ours, "EMD"] < mean.loc["PointNet-AE", "EMD"]),
            f"{mean.loc[ours, 'EMD']:.2f} vs {mean.loc['PointNet-AE', 'EMD']:.2f}")
    if "- without L_inter" in has:
        a, b = mean.loc["- without L_inter", "l_inter"], mean.loc[ours, "l_inter"]
        f["without L_inter the regions collapse (L_inter = log R - E_r is larger)"] = (
            "paper claim", bool(a > b), f"L_inter {a:.3f} vs {b:.3f} with it")
    for v in mean.index:
        if v.startswith("- without"):
            f[f"Table 2: {v[2:]} is worse than the full method"] = (
                "paper claim", bool(rel[v]),
                f"{mean.loc[v, 'Avg.']:.2f} vs {mean.loc[ours, 'Avg.']:.2f}")
    gap = float(table.loc[table.variant == ours, "shuffle gap"].max())
    f["Fig. 8: shuffling the input leaves SoftPoolNet's output unchanged (to float rounding)"] = (
        "sanity check", bool(gap < 1e-4), f"max |change| {gap:.1e}")
    lg = legs[legs.variant.isin([ours, "PointNet-AE"])]
    if len(lg) and "PointNet-AE" in has:
        hit = lg.assign(ok=lg["legs"] == lg["true legs"]).groupby("variant")["ok"].mean()
        f["Fig. 4: six-leg tables keep six legs more often with soft pooling than with max pooling"] = (
            "paper claim", bool(hit.get(ours, 0) > hit.get("PointNet-AE", 0)),
            f"{hit.get(ours, 0):.0%} vs {hit.get('PointNet-AE', 0):.0%} of {len(lg) // 2} tables")
    if len(t6) > 1:
        best_cd = t6.loc[t6.Chamfer.idxmin(), "N_f"]
        best_li = t6.loc[t6.L_inter.idxmin(), "N_f"]
        f["Table 6: the same N_f minimises Chamfer and L_inter"] = (
            "paper claim", bool(best_cd == best_li), f"N_f {best_cd} vs {best_li}")
    findings = report.claims_table(f)
    return {"table2": t2, "svm": sv, "table6": t6, "findings": findings,
            "per_category": mean[[c for c in _T2_COLS]]}
