"""Retrieval metrics: per-query AP and mAP, CMC, P@K, R@k, Hamming ranking of packed binary codes.

A retrieval run is a distance matrix ``dist`` (Q, G) between Q queries and G gallery (database)
items, smaller = closer, a boolean ``relevant`` (Q, G) (the gallery items that are correct answers)
and an optional boolean ``ignore`` (Q, G) of items taken out of the query's ranking altogether
(neither correct nor wrong). All functions work on torch tensors on any device (numpy arrays are
accepted) and compute every query at once.

Conventions:

* **AP** is the non-interpolated average precision, ``AP = sum_n (R_n - R_{n-1}) P_n`` over the
  distinct distance thresholds, the definition of ``sklearn.metrics.average_precision_score``
  with ``-dist`` as the score. Tied distances form one threshold, so AP does not depend on how
  ties are ordered (Hamming distances tie often). Without ties it is the familiar mean of the
  precision at the rank of each correct item. A query without a correct item has AP ``nan`` and
  is left out of mAP (as in the Market-1501 evaluation).
* **Rankings** (CMC, P@K, R@k) sort by distance, ties by gallery index (a stable sort), after
  removing the ignored items.
* **Re-ID protocol** (Market-1501, Zheng et al. 2015; its evaluation code, also ``eval_market1501``
  of torchreid and reid-strong-baseline's ``R1_mAP``): for each query the gallery images of the
  *same identity seen by the same camera* are removed (finding them is too easy), and so are
  junk images (identity ``-1``, badly detected boxes). Distractors (identity ``0``) stay in the
  gallery as wrong answers. CMC(k) is the share of queries with a correct match within the first
  k, over the queries that have one. Market-1501's own MATLAB code interpolates AP with a
  trapezoid; torchreid and we use the non-interpolated form above.
* **Hamming ranking** (hashing, e.g. ExchNet E12): codes are packed 8 bits a byte
  (:func:`pack_codes`), the distance counts the differing bits with a 256-entry popcount table;
  for ±1 codes ``d_H(u, v) = (q - u·v) / 2``.

The chapter that derives these metrics and checks them against scikit-learn is the 2-D scene
world (``notebooks/eccv2020/world_scenes2d.ipynb``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

JUNK_ID = -1  # Market-1501's badly detected boxes (its distractors, identity 0, need no rule)


def _as_tensor(x: Any, name: str, device: torch.device | None = None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    return t.to(device) if device is not None else t


def _check_run(dist: Any, relevant: Any, ignore: Any = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dist = _as_tensor(dist, "dist")
    if dist.ndim != 2:
        raise ValueError(f"dist must be a (Q, G) matrix of query-gallery distances, got shape "
                         f"{tuple(dist.shape)}")
    dist = dist.double() if dist.dtype == torch.float64 else dist.float()
    if not torch.isfinite(dist).all():
        raise ValueError("dist must be finite (remove items with the ignore mask, not inf/nan)")
    relevant = _as_tensor(relevant, "relevant", dist.device)
    if relevant.shape != dist.shape or relevant.dtype != torch.bool:
        raise ValueError(f"relevant must be a boolean (Q, G) = {tuple(dist.shape)} mask, got "
                         f"{relevant.dtype} of shape {tuple(relevant.shape)}")
    if ignore is None:
        ignore = torch.zeros_like(relevant)
    ignore = _as_tensor(ignore, "ignore", dist.device)
    if ignore.shape != dist.shape or ignore.dtype != torch.bool:
        raise ValueError(f"ignore must be a boolean (Q, G) = {tuple(dist.shape)} mask, got "
                         f"{ignore.dtype} of shape {tuple(ignore.shape)}")
    return dist, relevant & ~ignore, ignore


def _ranked(dist: torch.Tensor, relevant: torch.Tensor, ignore: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distances, relevance and kept-flags in ranking order (ignored items last)."""
    d = dist.masked_fill(ignore, float("inf"))
    d_sorted, order = torch.sort(d, dim=1, stable=True)
    return d_sorted, relevant.gather(1, order), ~ignore.gather(1, order)


def average_precision(dist: Any, relevant: Any, ignore: Any = None) -> torch.Tensor:
    """Per-query average precision (Q,) of the ranking by ``dist`` (Q, G); ``nan`` for a query
    without a relevant (non-ignored) item. Tied distances count as one threshold (module doc)."""
    dist, relevant, ignore = _check_run(dist, relevant, ignore)
    d, rel, kept = _ranked(dist, relevant, ignore)
    rank = kept.cumsum(1).to(dist.dtype)                   # position among the kept items
    hits = rel.cumsum(1).to(dist.dtype)
    # a threshold ends where the next distance differs (ignored items sit at +inf, after all kept)
    end = torch.ones_like(rel)
    end[:, :-1] = d[:, 1:] != d[:, :-1]
    end &= kept
    hits_at_end = torch.where(end, hits, torch.zeros_like(hits))
    before = torch.cummax(hits_at_end, 1).values            # hits at the latest threshold so far
    before = torch.cat([torch.zeros_like(before[:, :1]), before[:, :-1]], 1)
    n_rel = rel.sum(1).to(dist.dtype)
    gain = torch.where(end, (hits - before) * hits / rank.clamp(min=1), torch.zeros_like(hits))
    ap = gain.sum(1) / n_rel
    return torch.where(n_rel > 0, ap, torch.full_like(ap, float("nan")))


def mean_average_precision(dist: Any, relevant: Any, ignore: Any = None) -> float:
    """mAP: the mean of :func:`average_precision` over the queries that have a relevant item."""
    ap = average_precision(dist, relevant, ignore)
    valid = ~torch.isnan(ap)
    if not valid.any():
        raise ValueError("no query has a relevant gallery item: mAP is undefined")
    return float(ap[valid].mean())


def first_hit_rank(dist: Any, relevant: Any, ignore: Any = None) -> torch.Tensor:
    """0-based rank (Q,) of each query's first relevant item among the kept ones; -1 if none."""
    dist, relevant, ignore = _check_run(dist, relevant, ignore)
    _, rel, kept = _ranked(dist, relevant, ignore)
    rank = kept.cumsum(1) - 1
    big = torch.iinfo(rank.dtype).max
    first = torch.where(rel, rank, torch.full_like(rank, big)).min(1).values
    return torch.where(first == big, torch.full_like(first, -1), first)


def cmc(dist: Any, relevant: Any, ignore: Any = None, max_rank: int = 50) -> torch.Tensor:
    """Cumulative matching characteristic (max_rank,): ``cmc[k-1]`` = share of the queries (with a
    relevant item) whose first relevant item is within the first k. Rank-1 is ``cmc[0]``."""
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    first = first_hit_rank(dist, relevant, ignore)
    first = first[first >= 0]
    if first.numel() == 0:
        raise ValueError("no query has a relevant gallery item: CMC is undefined")
    ks = torch.arange(max_rank, device=first.device)
    return (first[:, None] <= ks[None, :]).double().mean(0)


def _topk_hits(dist: Any, relevant: Any, ignore: Any, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    dist, relevant, ignore = _check_run(dist, relevant, ignore)
    _, rel, kept = _ranked(dist, relevant, ignore)
    in_top = kept & (kept.cumsum(1) <= k)
    return (rel & in_top).sum(1), rel.sum(1)


def precision_at_k(dist: Any, relevant: Any, k: int, ignore: Any = None) -> torch.Tensor:
    """P@K per query (Q,): the share of relevant items among the first ``k`` returned (the
    denominator is ``k`` even when fewer items are kept, as in ExchNet's P@10)."""
    hits, _ = _topk_hits(dist, relevant, ignore, k)
    return hits.double() / k


def recall_at_k(dist: Any, relevant: Any, k: int, ignore: Any = None, *,
                fraction: bool = False) -> torch.Tensor:
    """R@k per query (Q,). By default the metric-learning / cross-modal retrieval reading (Song et
    al. 2016): 1 if a relevant item is among the first ``k``, else 0 (its mean is CMC(k)). With
    ``fraction=True``, the information-retrieval reading: the share of the query's relevant items
    found in the first ``k`` (``nan`` for a query without relevant items)."""
    hits, n_rel = _topk_hits(dist, relevant, ignore, k)
    if not fraction:
        return (hits > 0).double()
    out = hits.double() / n_rel.double()
    return torch.where(n_rel > 0, out, torch.full_like(out, float("nan")))


# ---------------------------------------------------------------------------------------------
# Person re-identification protocol
# ---------------------------------------------------------------------------------------------
def reid_masks(query_ids: Any, gallery_ids: Any, query_cams: Any, gallery_cams: Any,
               junk_ids: Sequence[int] = (JUNK_ID,)) -> tuple[torch.Tensor, torch.Tensor]:
    """``relevant`` and ``ignore`` (Q, G) masks of the Market-1501 protocol (module doc): relevant =
    same identity, other camera; ignored = same identity and same camera, or a junk gallery id."""
    q_ids = _as_tensor(query_ids, "query_ids").long()
    g_ids = _as_tensor(gallery_ids, "gallery_ids").long()
    q_cams = _as_tensor(query_cams, "query_cams").long()
    g_cams = _as_tensor(gallery_cams, "gallery_cams").long()
    for name, t, ref in (("query_ids", q_ids, None), ("query_cams", q_cams, q_ids),
                         ("gallery_ids", g_ids, None), ("gallery_cams", g_cams, g_ids)):
        if t.ndim != 1 or (ref is not None and t.shape != ref.shape):
            raise ValueError(f"{name} must be a 1-D vector (one entry per image, cameras "
                             f"matching ids), got shape {tuple(t.shape)}")
    g_ids, g_cams, q_cams = g_ids.to(q_ids.device), g_cams.to(q_ids.device), q_cams.to(q_ids.device)
    same_id = q_ids[:, None] == g_ids[None, :]
    same_cam = q_cams[:, None] == g_cams[None, :]
    junk = torch.isin(g_ids, torch.as_tensor(list(junk_ids), device=g_ids.device, dtype=torch.long))
    ignore = (same_id & same_cam) | junk[None, :]
    return same_id & ~ignore, ignore


def evaluate_reid(dist: Any, query_ids: Any, gallery_ids: Any, query_cams: Any, gallery_cams: Any,
                  max_rank: int = 50, junk_ids: Sequence[int] = (JUNK_ID,)) -> dict[str, Any]:
    """The standard re-ID evaluation of ``dist`` (Q, G): ``cmc`` (max_rank,) (``cmc[0]`` = Rank-1),
    ``mAP``, per-query ``ap`` (Q,) (``nan`` where no valid match) and ``n_valid`` queries."""
    dist_t = _as_tensor(dist, "dist")
    relevant, ignore = reid_masks(query_ids, gallery_ids, query_cams, gallery_cams, junk_ids)
    if dist_t.ndim != 2 or dist_t.shape != relevant.shape:
        raise ValueError(f"dist must be (Q, G) = ({len(relevant)}, {relevant.shape[1]}) to match "
                         f"the query and gallery labels, got {tuple(dist_t.shape)}")
    relevant, ignore = relevant.to(dist_t.device), ignore.to(dist_t.device)
    ap = average_precision(dist_t, relevant, ignore)
    valid = ~torch.isnan(ap)
    return {"cmc": cmc(dist_t, relevant, ignore, max_rank), "mAP": float(ap[valid].mean()),
            "ap": ap, "n_valid": int(valid.sum())}


# ---------------------------------------------------------------------------------------------
# Hamming ranking of binary codes
# ---------------------------------------------------------------------------------------------
_POPCOUNT = torch.tensor([bin(i).count("1") for i in range(256)], dtype=torch.uint8)
_BIT_WEIGHTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def pack_codes(codes: Any) -> torch.Tensor:
    """Pack binary codes (N, q), either ±1 (e.g. ``sign`` of a hash layer) or bool / {0, 1}, into
    (N, ceil(q/8)) uint8, bit ``j`` of the code as bit ``7 - j % 8`` of byte ``j // 8`` (numpy's
    ``packbits`` order); +1 and True are the 1 bits; padding bits are 0."""
    c = _as_tensor(codes, "codes")
    if c.ndim != 2:
        raise ValueError(f"codes must be (N, q) binary codes, got shape {tuple(c.shape)}")
    if c.dtype == torch.bool:
        bits = c
    else:
        if c.numel() and not (((c == 1) | (c == -1)).all() or ((c == 0) | (c == 1)).all()):
            raise ValueError("codes must be bool, {0, 1} or {-1, +1} valued")
        bits = c > 0
    n, q = bits.shape
    pad = (-q) % 8
    bits = torch.cat([bits, bits.new_zeros(n, pad)], 1).view(n, -1, 8).to(torch.uint8)
    return (bits * _BIT_WEIGHTS.to(bits.device)).sum(2, dtype=torch.uint8)


def hamming_distance(packed_a: torch.Tensor, packed_b: torch.Tensor) -> torch.Tensor:
    """Hamming distances (A, B) int32 between packed codes (A, n_bytes) and (B, n_bytes) uint8:
    the popcount of ``a XOR b``, summed byte by byte over blocks of at most 2^24 pairs."""
    for name, p in (("packed_a", packed_a), ("packed_b", packed_b)):
        if not isinstance(p, torch.Tensor) or p.dtype != torch.uint8 or p.ndim != 2:
            raise ValueError(f"{name} must be a (N, n_bytes) uint8 tensor from pack_codes")
    if packed_a.shape[1] != packed_b.shape[1]:
        raise ValueError(f"codes of different lengths: {packed_a.shape[1]} vs "
                         f"{packed_b.shape[1]} bytes")
    table = _POPCOUNT.to(packed_a.device, torch.int32)
    b = packed_b.to(packed_a.device)
    out = torch.zeros(len(packed_a), len(b), dtype=torch.int32, device=b.device)
    rows = max(1, (1 << 24) // max(1, len(b)))
    for start in range(0, len(packed_a), rows):
        a = packed_a[start:start + rows]
        for j in range(b.shape[1]):
            out[start:start + rows] += table[(a[:, j, None] ^ b[None, :, j]).long()]
    return out


def hamming_rank(packed_query: torch.Tensor, packed_db: torch.Tensor, top: int | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Database indices ranked by Hamming distance for each query, ties by index: ``(order, dist)``
    both (Q, top) (all G if ``top`` is None); the coarse ranking of hashing-based retrieval."""
    d = hamming_distance(packed_query, packed_db)
    d_sorted, order = torch.sort(d, dim=1, stable=True)
    if top is not None:
        d_sorted, order = d_sorted[:, :top], order[:, :top]
    return order, d_sorted
