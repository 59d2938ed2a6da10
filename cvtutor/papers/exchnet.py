"""ExchNet: a unified hashing network for large-scale fine-grained image retrieval.

Q. Cui, Q.-Y. Jiang, X.-S. Wei, W.-J. Li, O. Yoshie. *ExchNet: A Unified Hashing Network for
Large-Scale Fine-Grained Image Retrieval*. ECCV 2020.

A backbone gives a feature map E; M attention maps pick M attentive local features, refined by a
shared LFR network into part vectors f^j, and a GFR network gives the global vector. Two Hellinger
diversity losses spread the parts over space and channels; during training half of an image's part
vectors are exchanged with its class's anchors (class means); a tanh hash layer is trained with an
asymmetric (ADSH) loss against discrete database codes V, learnt column by column in closed form.

Equations
---------
(1)    Ê^j = E ⊗ A^j                               attentive local features
(2-3)  F^j = f_LFR(Ê^j),  f^j = GAP(F^j);   (4) F^global = f_GFR(E)
(5)    L_sp = 1 - 1/(√2 C(M,2)) Σ_{l<k} ||√â^l - √â^k||     (printed: Σ_{l,k=1}^M, see below)
(6-7)  p^j = softmax(f^j),  L_cp = [t - 1/(√2 C(M,2)) Σ_{l<k} ||√p^l - √p^k||]_+
(8)    f̂^j = f^j if ξ_j ≥ 0.5 else c_y^j,  ξ_j ~ B(0.5)
(9-12) u = sign(W [Ĝ; f^global]),  û = tanh(W [Ĝ; f^global]),  L = (ûᵀv - q S)^2
(13)   min_{V,Θ,C} Σ_ij L_ij + λ Σ_i L_sp + γ Σ_i L_cp
(15-17) V_{*k} = sign(q Q_{*k} - V_{/k} Ũ_{/k}ᵀ Ũ_{*k}),  Q = Sᵀ Ũ   (printed with the sign flipped)
(18)   c_y^k = mean of f^k over the training images of class y

Readings of the paper's gaps (the notebook declares them): Eq. (5) and (7) sum ordered pairs but
normalise by C(M, 2); we sum l < k so that the mean is a Hellinger distance in [0, 1]. S ∈ {±1}
(so q S is the target inner product), λ = γ = 1, attention maps through a sigmoid, Adam instead of
SGD, a few outer iterations of a couple of epochs over a sampled subset (ADSH's schedule).
"""
from __future__ import annotations

import math
import pickle
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from cvtutor import report
from cvtutor.data.scenes2d.critters import critters, fine_grained_classes
from cvtutor.metrics.retrieval import (
    hamming_distance,
    mean_average_precision,
    pack_codes,
)
from cvtutor.runtime import ProfileConfig, get_device
from cvtutor.train import fit, minibatches


# ---------------------------------------------------------------------------------------------
# Hellinger diversity losses (Sect. 3.1)
# ---------------------------------------------------------------------------------------------
def hellinger(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Hellinger distance ``||√p - √q||_2 / √2`` between distributions on the last axis
    (..., D) -> (...), in [0, 1]; the building block of Eqs. (5) and (7)."""
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and "
                         f"{tuple(q.shape)}")
    return (p.clamp_min(0).sqrt() - q.clamp_min(0).sqrt()).norm(dim=-1) / math.sqrt(2.0)


def mean_pairwise_hellinger(p: torch.Tensor) -> torch.Tensor:
    """Mean Hellinger distance over the C(M, 2) unordered pairs l < k of M distributions
    (B, M, D) -> (B,): the normalised sum of Eqs. (5) and (7) read with l < k."""
    if p.ndim != 3 or p.shape[1] < 2:
        raise ValueError(f"p must be (B, M, D) with M >= 2 distributions, got {tuple(p.shape)}")
    l, k = torch.triu_indices(p.shape[1], p.shape[1], 1, device=p.device)
    return hellinger(p[:, l], p[:, k]).mean(1)


def aggregation_maps(local_maps: torch.Tensor) -> torch.Tensor:
    """The flattened aggregation maps â^j of Eq. (5): the channel sum of each refined local map
    F^j, a softmax over the H'W' positions; (B, M, C', H', W') -> (B, M, H'W')."""
    if local_maps.ndim != 5:
        raise ValueError(f"local_maps must be (B, M, C', H', W'), got {tuple(local_maps.shape)}")
    return local_maps.sum(2).flatten(2).softmax(-1)


def spatial_diversity_loss(local_maps: torch.Tensor) -> torch.Tensor:
    """L_sp of Eq. (5) per image, (B, M, C', H', W') -> (B,): one minus the mean pairwise
    Hellinger distance of the parts' aggregation maps (0 = disjoint maps, 1 = identical)."""
    return 1.0 - mean_pairwise_hellinger(aggregation_maps(local_maps))


def channel_diversity_loss(local_features: torch.Tensor, t: float = 0.4) -> torch.Tensor:
    """L_cp of Eqs. (6-7) per image, (B, M, C') -> (B,): the hinge ``[t - mean pairwise
    Hellinger distance of softmax(f^j)]_+``, ``t`` in [0, 1]."""
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be in [0, 1], got {t}")
    if local_features.ndim != 3:
        raise ValueError(f"local_features must be (B, M, C'), got {tuple(local_features.shape)}")
    return F.relu(t - mean_pairwise_hellinger(local_features.softmax(-1)))


# ---------------------------------------------------------------------------------------------
# feature exchange with class anchors (Sect. 3.2, Eqs. 8 and 18)
# ---------------------------------------------------------------------------------------------
def class_anchors(features: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Anchors c_y^k of Eq. (18): the mean part features of each class, (N, M, C') with labels
    (N,) -> (n_classes, M, C') (zeros for a class without images); no gradient."""
    if features.ndim != 3 or labels.shape != features.shape[:1]:
        raise ValueError(f"features must be (N, M, C') and labels (N,), got "
                         f"{tuple(features.shape)} and {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    f = features.detach()
    total = f.new_zeros(n_classes, *f.shape[1:]).index_add_(0, labels, f)
    count = torch.bincount(labels, minlength=n_classes).clamp_min(1).to(f.dtype)
    return total / count[:, None, None]


def exchange(features: torch.Tensor, anchors: torch.Tensor, labels: torch.Tensor,
             keep: torch.Tensor) -> torch.Tensor:
    """Feature exchange, Eq. (8): part j of image i keeps f_i^j where ``keep[i, j]`` (ξ_j ≥ 0.5)
    and takes its class anchor c_{y_i}^j (detached) otherwise. features (B, M, C'), anchors
    (K, M, C'), labels (B,), keep (B, M) bool -> (B, M, C')."""
    if keep.shape != features.shape[:2] or keep.dtype != torch.bool:
        raise ValueError(f"keep must be a bool (B, M) = {tuple(features.shape[:2])} mask, got "
                         f"{keep.dtype} {tuple(keep.shape)}")
    if anchors.shape[1:] != features.shape[1:]:
        raise ValueError(f"anchors must be (K, M, C') with (M, C') = {tuple(features.shape[1:])}"
                         f", got {tuple(anchors.shape)}")
    return torch.where(keep[..., None], features, anchors.detach()[labels])


# ---------------------------------------------------------------------------------------------
# asymmetric hashing (Sect. 3.3-3.4)
# ---------------------------------------------------------------------------------------------
def similarity(labels_a: torch.Tensor, labels_b: torch.Tensor, negative: float | None = 1.0
               ) -> torch.Tensor:
    """Pairwise labels S (A, B): +1 for the same class, ``-negative`` otherwise (the paper does
    not give S's values). ``negative = 1`` is S in {±1}; ``None`` is ADSH's released code's
    balance, ``negative = r`` = (#similar pairs) / (#dissimilar pairs), so that the many
    dissimilar pairs of a fine-grained set (26 of 27 here) do not pull every code together."""
    same = labels_a[:, None] == labels_b[None, :]
    if negative is None:
        negative = same.sum() / (~same).sum().clamp_min(1)
    return torch.where(same, 1.0, -negative * torch.ones((), device=same.device))


def asymmetric_loss(u_relaxed: torch.Tensor, v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Eq. (12) averaged over the pairs (i, j) and divided by q², ``mean (ûᵢᵀv_j - q S_ij)² / q²``
    (the scale keeps the loss ~1 at every code length and set size). û (B, q), V (n, q),
    S (B, n) -> scalar."""
    q = u_relaxed.shape[1]
    if v.shape[1] != q or s.shape != (len(u_relaxed), len(v)):
        raise ValueError(f"need û (B, q), V (n, q), S (B, n); got {tuple(u_relaxed.shape)}, "
                         f"{tuple(v.shape)}, {tuple(s.shape)}")
    return ((u_relaxed @ v.T - q * s) ** 2).mean() / q ** 2


def v_step_objective(u: torch.Tensor, v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Eq. (15): ``||Ũ Vᵀ - q S||_F²`` for Ũ (m, q), V (n, q), S (m, n)."""
    return ((u @ v.to(u.dtype).T - u.shape[1] * s.to(u.dtype)) ** 2).sum()


def v_column(u: torch.Tensor, v: torch.Tensor, s: torch.Tensor, k: int,
             printed_sign: bool = False) -> torch.Tensor:
    """The closed-form k-th column of V given the others, Eq. (17) derived from Eq. (16):
    ``sign(q Q_{*k} - V_{/k} Ũ_{/k}ᵀ Ũ_{*k})`` with Q = Sᵀ Ũ, (n,) in {±1} (a zero argument goes
    to +1). ``printed_sign=True`` gives the paper's printed form, the argument negated."""
    q, s, v = u.shape[1], s.to(u.dtype), v.to(u.dtype)
    rest = [j for j in range(q) if j != k]
    arg = q * (s.T @ u[:, k]) - v[:, rest] @ (u[:, rest].T @ u[:, k])
    if printed_sign:
        arg = -arg
    return torch.where(arg >= 0, 1.0, -1.0).to(u.dtype)


def v_step(u: torch.Tensor, v: torch.Tensor, s: torch.Tensor, sweeps: int = 1) -> torch.Tensor:
    """The V step of Sect. 3.4: ``sweeps`` passes of column-wise closed-form updates (Eq. 17),
    each of which cannot increase Eq. (15). Ũ (m, q), V (n, q), S (m, n) -> new V (n, q)."""
    if u.ndim != 2 or v.ndim != 2 or u.shape[1] != v.shape[1] or s.shape != (len(u), len(v)):
        raise ValueError(f"need Ũ (m, q), V (n, q), S (m, n); got {tuple(u.shape)}, "
                         f"{tuple(v.shape)}, {tuple(s.shape)}")
    v = v.clone()
    for _ in range(sweeps):
        for k in range(v.shape[1]):
            v[:, k] = v_column(u, v, s, k)
    return v


def binarize(x: torch.Tensor) -> torch.Tensor:
    """sign with sign(0) = +1: the codes of Eqs. (9) and Sect. 3.5, in {±1}."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


# ---------------------------------------------------------------------------------------------
# the network (Sect. 3.1, 3.3)
# ---------------------------------------------------------------------------------------------
def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


def refinement(c_in: int, width: int) -> nn.Sequential:
    """The LFR/GFR architecture (Eqs. 2 and 4), a two-block stand-in for ResNet-50's stage 4:
    (B, c_in, H, W) -> (B, width, H/2, W/2)."""
    return nn.Sequential(_block(c_in, width, 2), _block(width, width, 1))


class ExchNet(nn.Module):
    """ExchNet's representation and hash layer. Backbone: 32 px (B, 3, H, W) -> E (B, C, H/4,
    W/4); attention: a 1x1 convolution and a sigmoid -> A (B, M, H/4, W/4); one shared LFR over
    the M attentive features (Eqs. 1-3), a separate GFR (Eq. 4), each C' = ``width`` channels;
    hash layer W^(g): ((M+1) C') -> q, no bias (Eqs. 9-12). ``parts = 0`` is the ADSH baseline
    (global feature only)."""

    def __init__(self, bits: int, parts: int = 4, channels: int = 32, width: int = 64) -> None:
        super().__init__()
        if bits < 1 or parts < 0 or parts == 1:
            raise ValueError(f"need bits >= 1 and parts = 0 (ADSH) or >= 2, got {bits}, {parts}")
        self.bits, self.parts = bits, parts
        self.backbone = nn.Sequential(_block(3, channels // 2, 2), _block(channels // 2,
                                                                           channels, 2))
        self.gfr = refinement(channels, width)
        if parts:
            self.attention = nn.Conv2d(channels, parts, 1)
            self.lfr = refinement(channels, width)
        self.hash = nn.Linear((parts + 1) * width, bits, bias=False)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``E``, ``A``, the refined local maps ``F_local`` (B, M, C', H', W'), the part vectors
        ``f_local`` (B, M, C') and ``f_global`` (B, C')."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be (B, 3, H, W) images, got {tuple(x.shape)}")
        e = self.backbone(x)
        out = {"E": e, "f_global": self.gfr(e).mean((2, 3))}
        if self.parts:
            a = torch.sigmoid(self.attention(e))                                  # (B, M, h, w)
            local = (e[:, None] * a[:, :, None]).flatten(0, 1)                    # Eq. (1)
            maps = self.lfr(local)
            maps = maps.view(len(x), self.parts, *maps.shape[1:])                 # Eq. (2)
            out.update(A=a, F_local=maps, f_local=maps.mean((3, 4)))              # Eq. (3)
        return out

    def relaxed_code(self, f_local: torch.Tensor | None, f_global: torch.Tensor) -> torch.Tensor:
        """û = tanh(W^(g) [Ĝ; f^global]) (Eq. 12), (B, q)."""
        z = f_global if f_local is None else torch.cat([f_local.flatten(1), f_global], 1)
        return torch.tanh(self.hash(z))

    @torch.no_grad()
    def encode(self, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """Out-of-sample codes u = sign(W^(g) [G; f^global]) (Sect. 3.5, no exchange), (N, q)."""
        was = self.training
        self.eval()
        out = torch.cat([binarize(self.relaxed_code(**_parts(self.features(x[i:i + batch]))))
                         for i in range(0, len(x), batch)])
        self.train(was)
        return out


def _parts(feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | None]:
    return {"f_local": feats.get("f_local"), "f_global": feats["f_global"]}


# ---------------------------------------------------------------------------------------------
# shallow baselines: LSH and ITQ
# ---------------------------------------------------------------------------------------------
def lsh(train: torch.Tensor, bits: int, seed: int = 0):
    """LSH (random hyperplanes through the training mean): returns ``encode(x) -> (N, bits)``."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    w = torch.randn(train.shape[1], bits, generator=g).to(train)
    mean = train.mean(0)
    return lambda x: binarize((x - mean) @ w)


def itq(train: torch.Tensor, bits: int, iters: int = 50, seed: int = 0):
    """ITQ (Gong & Lazebnik 2011): PCA to ``bits`` dims, then the rotation R minimising
    ``||B - V R||_F`` by alternating B = sign(V R) and orthogonal Procrustes; ``encode(x)``."""
    if bits > min(train.shape):
        raise ValueError(f"ITQ needs bits <= min(N, D) = {min(train.shape)}, got {bits}")
    mean = train.mean(0)
    x = (train - mean).double()
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    pca = vh[:bits].T
    z = x @ pca
    g = torch.Generator(device="cpu").manual_seed(seed)
    r, _ = torch.linalg.qr(torch.randn(bits, bits, generator=g, dtype=torch.float64).to(x.device))
    for _ in range(iters):
        b = binarize(z @ r)
        u, _, wt = torch.linalg.svd(b.T @ z)
        r = (u @ wt).T
    proj = (pca @ r).to(train.dtype)
    return lambda x: binarize((x - mean) @ proj)


# ---------------------------------------------------------------------------------------------
# PAPER, Config, data
# ---------------------------------------------------------------------------------------------
TABLE2_METHODS = ("LSH", "ITQ", "ADSH", "Ours")
PAPER = {
    "table2_cub": report.PaperTable(
        "Table 2", "MAP (%), CUB-200-2011",
        {f"{m} {b} bits": v for b, row in zip((12, 24, 32, 48), (
            (2.26, 6.80, 20.03, 25.14), (3.59, 9.42, 50.33, 58.98), (5.01, 11.19, 61.68, 67.74),
            (6.16, 12.45, 65.43, 71.05))) for m, v in zip(TABLE2_METHODS, row)},
        better="higher", note="Ours = ExchNet; the other baselines of Table 2 are left out"),
    "table1_512": report.PaperTable(
        "Table 1", "Food101, 512-d triplet features: P@10 (%), speed-up (x), memory (bytes)",
        {"Linear P@10": 80.05, "BallTree P@10": 77.22, "KDTree P@10": 77.42, "PQ P@10": 77.12,
         "Ours P@10": 77.69, "BallTree speed-up": 40.13, "KDTree speed-up": 135.13,
         "PQ speed-up": 217.99, "Ours speed-up": 233.85, "Linear memory": 207.2e6,
         "BallTree memory": 28.1e6, "KDTree memory": 28.8e6, "PQ memory": 524.5e3,
         "Ours memory": 404.0e3},
        note="time units not stated; Ours = 32-bit codes for the coarse ranking + re-ranking"),
}


@dataclass(frozen=True)
class Config(ProfileConfig):
    """World: fine-grained critters, ``n_base`` base looks x 9 ear variants (27 classes),
    ``per_class`` images each of which ``query_per_class`` are queries and the rest the database
    (= training set), ``size`` px. Model: ``parts`` M, ``bits`` q, ``width`` C'. Training:
    ``outer`` iterations of (Θ step: ``epochs`` over ``sample`` database images in batches of
    ``batch``; V step; anchors), exchange from outer iteration ``warmup``, Adam at ``lr``,
    ``lam``/``gamma`` weights of L_sp/L_cp, hinge ``t``, ``s_negative`` the dissimilar pairs' S
    (:func:`similarity`; None = ADSH's balance). Table 1: ``ann_n`` x ``ann_dim``
    embeddings in ``ann_classes`` clusters, ``ann_queries`` queries, coarse top ``ann_top``.
    ``fig6_parts``: M values of Fig. 6 (empty to skip); ``seeds``."""

    n_base: int = 3
    per_class: int = 40
    query_per_class: int = 10
    size: int = 32
    parts: int = 4
    bits: tuple[int, ...] = (24,)
    width: int = 64
    outer: int = 8
    epochs: int = 2
    sample: int = 400
    batch: int = 64
    warmup: int = 2
    lr: float = 2e-3
    lam: float = 1.0
    gamma: float = 1.0
    t: float = 0.4
    s_negative: float | None = None
    ann_n: int = 20_000
    ann_dim: int = 128
    ann_classes: int = 100
    ann_queries: int = 50
    ann_top: int = 500
    fig6_parts: tuple[int, ...] = ()
    seeds: tuple[int, ...] = (0,)
    device: str | None = None

    @classmethod
    def fast(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        return cls(per_class=200, query_per_class=50, size=64, bits=(12, 24, 32, 48), outer=20,
                   epochs=2, sample=2000, warmup=4, ann_n=100_000, ann_dim=512,
                   ann_queries=500, ann_top=1000, fig6_parts=(2, 4, 6), seeds=(0, 1, 2))

    @classmethod
    def smoke(cls) -> Config:
        return cls.full().replace(per_class=6, query_per_class=2, size=32, bits=(12, 24),
                                  outer=2, epochs=1, sample=64, batch=32, warmup=1, width=16,
                                  ann_n=2000, ann_dim=32, ann_classes=20, ann_queries=20,
                                  ann_top=50, fig6_parts=(2,), seeds=(0, 1))


@dataclass(frozen=True)
class Split:
    """Query and database images (N, 3, H, W) and labels (N,)."""

    query: torch.Tensor
    query_label: torch.Tensor
    db: torch.Tensor
    db_label: torch.Tensor
    n_classes: int


def make_data(config: Config, seed: int = 0, device=None) -> Split:
    """The fine-grained critters (27 classes differing only in the ear, the world's
    :func:`~cvtutor.data.scenes2d.critters.fine_grained_classes`), split per class into the
    first ``query_per_class`` images as queries and the rest as the database."""
    device = get_device(device)
    classes, _ = fine_grained_classes(config.n_base, seed=seed, device=device)
    data = critters(classes, config.per_class, size=config.size, seed=seed + 1, device=device)
    slot = torch.arange(len(data.label), device=device) % config.per_class
    q = slot < config.query_per_class
    return Split(data.image[q], data.label[q], data.image[~q], data.label[~q], len(classes))


# ---------------------------------------------------------------------------------------------
# the alternating learning algorithm (Sect. 3.4)
# ---------------------------------------------------------------------------------------------
def train_hashing(data: Split, config: Config, bits: int, variant: str = "exchnet",
                  parts: int | None = None, seed: int = 0, progress: bool = False
                  ) -> tuple[ExchNet, torch.Tensor, pd.DataFrame]:
    """Alternating minimisation of Eq. (13): per outer iteration a Θ step (``config.epochs``
    epochs of back-prop over ``config.sample`` sampled database images against the fixed V,
    Eq. 14), the closed-form V step (Eqs. 15-17) and the anchor step (Eq. 18). ``variant``:
    ``"exchnet"``, ``"no_exchange"`` (same network, Eq. 8 off) or ``"adsh"`` (global feature
    only, no diversity losses). Returns the network, database codes V (n, q) and the history."""
    if variant not in ("exchnet", "no_exchange", "adsh"):
        raise ValueError(f"variant must be 'exchnet', 'no_exchange' or 'adsh', got {variant!r}")
    dev = data.db.device
    torch.manual_seed(seed)
    m = 0 if variant == "adsh" else (config.parts if parts is None else parts)
    net = ExchNet(bits, m, width=config.width).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=1e-4)
    n = len(data.db)
    g = torch.Generator(device="cpu").manual_seed(seed)
    v = binarize(torch.randn(n, bits, generator=g)).to(dev)
    anchors = torch.zeros(data.n_classes, max(m, 1), config.width, device=dev)
    m_sample = min(config.sample, n)
    steps = max(1, config.epochs * m_sample // config.batch)
    hist = []
    for it in range(config.outer):
        idx = torch.randperm(n, generator=g)[:m_sample].to(dev)
        s = similarity(data.db_label[idx], data.db_label, config.s_negative)      # (m, n)
        swap = variant == "exchnet" and it >= config.warmup
        gx = torch.Generator(device=dev).manual_seed(seed * 1000 + it)

        seen: list[tuple[torch.Tensor, torch.Tensor]] = []   # this epoch's parts, for Eq. (18)

        def loss_fn(models, batch, step, v=v, s=s, swap=swap, anchors=anchors, gx=gx, seen=seen,
                    idx=idx):
            (j,) = batch
            feats = models["model"].features(data.db[idx[j]])
            f_local = feats.get("f_local")
            terms = {}
            if f_local is not None:
                terms["L_sp"] = config.lam * spatial_diversity_loss(feats["F_local"]).mean()
                terms["L_cp"] = config.gamma * channel_diversity_loss(f_local, config.t).mean()
                seen.append((f_local.detach(), data.db_label[idx[j]]))
                if swap:
                    keep = torch.rand(f_local.shape[:2], generator=gx, device=dev) >= 0.5
                    f_local = exchange(f_local, anchors, data.db_label[idx[j]], keep)
            u = models["model"].relaxed_code(f_local, feats["f_global"])
            terms["L_sq"] = asymmetric_loss(u, v, s[j])
            terms["loss"] = sum(terms.values())
            return terms

        batches = minibatches(torch.arange(m_sample, device=dev), batch_size=min(
            config.batch, m_sample), seed=seed * 1000 + it)
        h = fit(net, opt, batches, loss_fn, steps=steps, progress=progress,
                desc=f"{variant} q={bits} iter {it + 1}/{config.outer}")
        hist.append(h.assign(outer=it, step=h["step"] + it * steps))
        with torch.no_grad():                                        # V step and anchor step
            if m:      # anchors: class means of the parts the Θ step saw (train-mode features)
                anchors = class_anchors(torch.cat([f for f, _ in seen]),
                                        torch.cat([y for _, y in seen]), data.n_classes)
            net.eval()
            feats = [net.features(data.db[idx[i:i + 256]]) for i in range(0, m_sample, 256)]
            net.train()
            f_local = torch.cat([f["f_local"] for f in feats]) if m else None
            f_global = torch.cat([f["f_global"] for f in feats])
            u = net.relaxed_code(f_local, f_global)
            v = v_step(u, v, s)
    return net, v, pd.concat(hist, ignore_index=True)


def hashing_map(query_codes: torch.Tensor, query_label: torch.Tensor, db_codes: torch.Tensor,
                db_label: torch.Tensor) -> float:
    """MAP (%) of the Hamming ranking of the database codes for each query code (±1)."""
    d = hamming_distance(pack_codes(query_codes), pack_codes(db_codes)).float()
    return 100.0 * mean_average_precision(d, query_label[:, None] == db_label[None, :])


def table2(config: Config, seed: int = 0, device=None, progress: bool = False
           ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Table 2 and Fig. 5 in miniature for one seed: MAP of LSH, ITQ (on pixels), ADSH, ExchNet
    w/o exchange and ExchNet at each code length; the histories and the last ExchNet model."""
    data = make_data(config, seed, device)
    pix_db, pix_q = data.db.flatten(1), data.query.flatten(1)
    rows, hists, models = [], [], {}
    for bits in config.bits:
        for name, make in (("LSH", lsh), ("ITQ", itq)):
            enc = make(pix_db, bits, seed=seed)
            rows.append((name, bits, hashing_map(enc(pix_q), data.query_label, enc(pix_db),
                                                 data.db_label)))
        for name, variant in (("ADSH", "adsh"), ("Ours w/o exchange", "no_exchange"),
                              ("Ours", "exchnet")):
            net, v, h = train_hashing(data, config, bits, variant, seed=seed, progress=progress)
            rows.append((name, bits, hashing_map(net.encode(data.query), data.query_label, v,
                                                 data.db_label)))
            hists.append(h.assign(method=name, bits=bits))
            models[name] = net
    df = pd.DataFrame(rows, columns=["method", "bits", "MAP"]).assign(seed=seed)
    return df, pd.concat(hists, ignore_index=True), {"models": models, "data": data}


def fig6(config: Config, seed: int = 0, device=None) -> pd.DataFrame:
    """Fig. 6 in miniature: ExchNet's MAP at the first code length for each M in
    ``config.fig6_parts``."""
    data = make_data(config, seed, device)
    bits = config.bits[0]
    rows = []
    for m in config.fig6_parts:
        net, v, _ = train_hashing(data, config, bits, "exchnet", parts=m, seed=seed)
        rows.append((m, bits, hashing_map(net.encode(data.query), data.query_label, v,
                                          data.db_label), seed))
    return pd.DataFrame(rows, columns=["M", "bits", "MAP", "seed"])


# ---------------------------------------------------------------------------------------------
# Table 1: approximate nearest neighbour search on embeddings
# ---------------------------------------------------------------------------------------------
def clustered_embeddings(n: int, dim: int, n_classes: int, n_queries: int, seed: int = 0,
                         spread: float = 1.6) -> dict[str, np.ndarray]:
    """Stand-in for learnt triplet embeddings: unit class centres plus Gaussian noise of total
    norm ``spread`` (so classes overlap), L2-normalised, float32; database and queries."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_classes, dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)

    def draw(k: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, n_classes, k)
        x = centers[y] + spread * rng.standard_normal((k, dim)) / math.sqrt(dim)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y

    xb, yb = draw(n)
    xq, yq = draw(n_queries)
    return {"db": xb, "db_label": yb, "query": xq, "query_label": yq}


class ProductQuantizer:
    """PQ (Jégou et al. 2011): ``subspaces`` sub-vectors, each quantised by k-means to
    ``centroids`` codes (one byte each); asymmetric distances through per-query lookup tables."""

    def __init__(self, subspaces: int = 8, centroids: int = 256, seed: int = 0) -> None:
        self.subspaces, self.centroids, self.seed = subspaces, centroids, seed

    def fit(self, x: np.ndarray) -> ProductQuantizer:
        from sklearn.cluster import KMeans
        if x.shape[1] % self.subspaces:
            raise ValueError(f"dim {x.shape[1]} is not divisible by {self.subspaces} subspaces")
        parts = np.split(x, self.subspaces, axis=1)
        k = min(self.centroids, len(x))
        self.codebooks = [KMeans(k, n_init=1, max_iter=15, random_state=self.seed).fit(p)
                          .cluster_centers_.astype(np.float32) for p in parts]
        self.codes = np.stack([self._assign(p, c) for p, c in zip(parts, self.codebooks)], 1
                              ).astype(np.uint8)
        return self

    @staticmethod
    def _assign(x: np.ndarray, c: np.ndarray) -> np.ndarray:
        return ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        tables = [((p[:, None, :] - c[None]) ** 2).sum(-1)
                  for p, c in zip(np.split(q, self.subspaces, axis=1), self.codebooks)]
        d = sum(t[:, self.codes[:, s]] for s, t in enumerate(tables))
        return np.argsort(d, axis=1, kind="stable")[:, :k]

    def nbytes(self) -> int:
        return self.codes.nbytes + sum(c.nbytes for c in self.codebooks)


def table1(config: Config, seed: int = 0, k: int = 10, bits: int = 32) -> pd.DataFrame:
    """Table 1 in miniature: exact linear scan, BallTree, KDTree, PQ and Hamming coarse ranking
    with ``bits``-bit ITQ codes (top ``config.ann_top``) re-ranked by the float embeddings. P@10
    (%), wall-clock seconds for all queries, speed-up over linear, index memory in bytes."""
    from sklearn.neighbors import BallTree, KDTree
    e = clustered_embeddings(config.ann_n, config.ann_dim, config.ann_classes,
                             config.ann_queries, seed)
    xb, xq = e["db"], e["query"]
    rel = e["query_label"][:, None] == e["db_label"][None, :]

    def p_at_k(nn_idx: np.ndarray) -> float:
        return 100.0 * float(np.take_along_axis(rel, nn_idx[:, :k], 1).mean())

    def timed(f):
        t0 = time.perf_counter()
        out = f()
        return out, time.perf_counter() - t0

    rows = []
    tb, tq = torch.from_numpy(xb), torch.from_numpy(xq)
    lin, t_lin = timed(lambda: torch.topk(tq @ tb.T, k, dim=1).indices.numpy())
    rows.append(("Linear", p_at_k(lin), t_lin, xb.nbytes))
    for name, cls in (("BallTree", BallTree), ("KDTree", KDTree)):
        tree = cls(xb, leaf_size=40)
        idx, t = timed(lambda tree=tree: tree.query(xq, k=k, return_distance=False))
        rows.append((name, p_at_k(idx), t, len(pickle.dumps(tree)) - xb.nbytes))
    pq = ProductQuantizer(8, min(256, config.ann_n), seed).fit(xb)
    idx, t = timed(lambda: pq.search(xq, k))
    rows.append(("PQ", p_at_k(idx), t, pq.nbytes()))
    enc = itq(tb, bits, seed=seed)
    db_packed = pack_codes(enc(tb))

    def hashing_search():
        d = hamming_distance(pack_codes(enc(tq)), db_packed)
        cand = torch.topk(-d.float(), config.ann_top, dim=1).indices             # coarse ranking
        sims = torch.einsum("qd,qnd->qn", tq, tb[cand])                           # re-ranking
        return cand.gather(1, sims.topk(k, dim=1).indices).numpy()

    idx, t = timed(hashing_search)
    rows.append(("Ours", p_at_k(idx), t, db_packed.numel()))
    df = pd.DataFrame(rows, columns=["method", "P@10", "seconds", "memory (bytes)"])
    df["speed-up"] = t_lin / df["seconds"]
    return df.assign(n=config.ann_n, dim=config.ann_dim, seed=seed)


# ---------------------------------------------------------------------------------------------
# the whole miniature
# ---------------------------------------------------------------------------------------------
def _mean_sd(df: pd.DataFrame, by: list[str], col: str) -> pd.DataFrame:
    return df.groupby(by, sort=False)[col].agg(["mean", "std"]).fillna(0.0).reset_index()


def run(config: Config, keep_models: bool = False) -> dict:
    """Table 2 (LSH, ITQ, ADSH, w/o exchange, ExchNet at each code length), Fig. 5 (the
    exchange ablation), Fig. 6 (M), Table 1 (ANN search) over ``config.seeds``; the findings.
    ``keep_models`` adds ``"example"``: the first seed's trained networks and data (not data
    one can save, for the notebook's figures)."""
    device = get_device(config.device)
    t2, hists, fig = [], [], []
    example = None
    for s in config.seeds:
        df, h, ex = table2(config, s, device)
        t2.append(df)
        hists.append(h.assign(seed=s))
        example = example or ex
        if config.fig6_parts:
            fig.append(fig6(config, s, device))
    t2 = pd.concat(t2, ignore_index=True)
    summary = _mean_sd(t2, ["method", "bits"], "MAP")
    t1 = table1(config, config.seeds[0])
    compare_t1 = report.compare(
        PAPER["table1_512"],
        {f"{m} {c}": float(t1.loc[t1.method == m, col].iloc[0])
         for m in ("Linear", "BallTree", "KDTree", "PQ", "Ours")
         for c, col in (("P@10", "P@10"), ("speed-up", "speed-up"), ("memory", "memory (bytes)"))
         if not (m == "Linear" and c == "speed-up")},
        claims=["Ours memory < PQ memory", "Ours memory < BallTree memory",
                "Ours speed-up > BallTree speed-up"]).drop(columns="diff")
    q0 = 24 if 24 in config.bits else config.bits[0]
    ours2 = {f"{m} {q0} bits": float(summary.query("method == @m and bits == @q0")["mean"].iloc[0])
             for m in TABLE2_METHODS}
    compare_t2 = report.compare(
        PAPER["table2_cub"], ours2,
        claims=[f"Ours {q0} bits > ADSH {q0} bits", f"ADSH {q0} bits > ITQ {q0} bits",
                f"ADSH {q0} bits > LSH {q0} bits"]).drop(columns="diff")
    fig6_df = pd.concat(fig, ignore_index=True) if fig else pd.DataFrame(
        columns=["M", "bits", "MAP", "seed"])
    return {"table2": t2, "table2_summary": summary, "compare_table2": compare_t2,
            "table1": t1, "compare_table1": compare_t1, "fig6": fig6_df,
            "history": pd.concat(hists, ignore_index=True),
            "findings": _findings(summary, t1, config), **({"example": example} if keep_models
                                                            else {})}


def _findings(summary: pd.DataFrame, t1: pd.DataFrame, config: Config) -> pd.DataFrame:
    mean = {(r.method, r.bits): r.mean for r in summary.itertuples()}
    sd = {(r.method, r.bits): r.std for r in summary.itertuples()}
    bits = config.bits
    deep = min(mean[(m, b)] for m in ("ADSH", "Ours w/o exchange", "Ours") for b in bits)
    shallow = max(mean[(m, b)] for m in ("LSH", "ITQ") for b in bits)
    gain_adsh = [mean[("Ours", b)] - mean[("ADSH", b)] for b in bits]
    gain_ex = [mean[("Ours", b)] - mean[("Ours w/o exchange", b)] for b in bits]
    noise = max(sd[("Ours", b)] for b in bits)
    n_seeds = len(config.seeds)
    t = t1.set_index("method")
    small_mem = bool(t["memory (bytes)"].drop("Ours").min() > t.loc["Ours", "memory (bytes)"])
    loss = float(t.loc["Linear", "P@10"] - t.loc["Ours", "P@10"])
    chance = 100.0 / (9 * config.n_base)
    rows = {
        "deep supervised hashing beats LSH and ITQ by a wide margin (every code length)":
            ("paper claim", bool(deep > 2 * shallow),
             f"worst deep {deep:.1f} vs best shallow {shallow:.1f} MAP %"),
        "ExchNet >= ADSH at every code length":
            ("paper claim", bool(min(gain_adsh) >= 0),
             ", ".join(f"{b} bits {g:+.1f}" for b, g in zip(bits, gain_adsh))
             + f" (sd {noise:.1f}, {n_seeds} seed{'s' * (n_seeds > 1)})"),
        "the exchange adds MAP over the same network without it (Fig. 5)":
            ("paper claim", bool(min(gain_ex) > 0),
             ", ".join(f"{b} bits {g:+.1f}" for b, g in zip(bits, gain_ex))),
        "hash codes take the least memory of all indexes (Table 1)":
            ("paper claim", small_mem, f"{int(t.loc['Ours', 'memory (bytes)'])} bytes"),
        "hashing + re-ranking is faster than linear scan at a P@10 loss under 5 points":
            ("paper claim", bool(t.loc["Ours", "seconds"] < t.loc["Linear", "seconds"]
                                 and loss < 5),
             f"speed-up {t.loc['Ours', 'speed-up']:.1f}x, P@10 loss {loss:.1f}"),
        "the exact trees return the linear scan's P@10":
            ("sanity check", bool(np.allclose(t.loc[["BallTree", "KDTree"], "P@10"],
                                              t.loc["Linear", "P@10"])),
             "exact neighbours"),
        "sub-classes differ only in the ear, so a pixel-level hash ranks near chance":
            ("construction", bool(shallow < chance + 10),
             f"best shallow {shallow:.1f} %, chance ≈ {chance:.1f} %"),
    }
    return report.claims_table(rows)
