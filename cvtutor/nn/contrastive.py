"""Contrastive and metric-learning losses, and the P×K identity sampler that feeds them.

* :func:`info_nce` — InfoNCE (van den Oord et al. 2018) in matrix form: for B pairs
  ``(q_i, k_i)`` the logits are ``s_ij = q_i·k_j / τ`` and the loss is the cross-entropy of
  picking the own key among the B keys of the batch,
  ``L = -1/B Σ_i log( exp(s_ii) / Σ_j exp(s_ij) )`` (the other keys are the negatives).
* :func:`info_nce_negatives` — the same with an explicit set of ``k`` negatives per query (MoCo's
  queue, a memory bank, or sampled negatives): ``s_i+ = q_i·k_i+ / τ``, ``s_ij = q_i·n_ij / τ``,
  ``L = -1/B Σ_i log( exp(s_i+) / (exp(s_i+) + Σ_j exp(s_ij)) )``.
* :func:`batch_hard_triplet` — the batch-hard triplet loss (Hermans et al. 2017), used by re-ID
  (ISP E21, after "Bag of Tricks", Luo et al. 2019): for each anchor, the farthest positive and the
  nearest negative in the batch, ``L = mean_a [m + max_p d(a, p) - min_n d(a, n)]_+``.
* :class:`PKSampler` — batches of P identities × K images each, so every anchor has positives.

The 2-D scene world chapter (``notebooks/eccv2020/world_scenes2d.ipynb``) checks each against a
brute-force loop and ``torch.nn.functional.cross_entropy``.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F


def _check_embeddings(x: torch.Tensor, name: str, ndim: int = 2) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != ndim or not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor with {ndim} dims, got "
                         f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}")


def _normalized(query: torch.Tensor, keys: torch.Tensor, temperature: float,
                normalize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``query`` and ``keys`` (cosine-)normalised when ``normalize``, after checking ``τ > 0``."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if normalize:
        return F.normalize(query, dim=1), F.normalize(keys, dim=-1)
    return query, keys


def info_nce(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.1,
             normalize: bool = True, symmetric: bool = False) -> torch.Tensor:
    """InfoNCE in matrix form (module doc) for ``query`` (B, D) and ``key`` (B, D), row i of each a
    positive pair; the other B-1 keys are each query's negatives. ``normalize`` uses cosine
    similarity; ``symmetric`` averages the query→key and key→query losses (CLIP's form)."""
    _check_embeddings(query, "query")
    _check_embeddings(key, "key")
    if query.shape != key.shape:
        raise ValueError(f"query and key must both be (B, D), got {tuple(query.shape)} and "
                         f"{tuple(key.shape)}")
    query, key = _normalized(query, key, temperature, normalize)
    logits = query @ key.T / temperature
    target = torch.arange(len(query), device=query.device)
    loss = F.cross_entropy(logits, target)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.T, target))
    return loss


def info_nce_negatives(query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor,
                       temperature: float = 0.1, normalize: bool = True) -> torch.Tensor:
    """InfoNCE with explicit negatives (module doc): ``query`` and ``positive`` (B, D);
    ``negatives`` either (B, k, D) (k of its own per query) or (k, D) (one bank shared by all, as
    MoCo's queue)."""
    _check_embeddings(query, "query")
    _check_embeddings(positive, "positive")
    if positive.shape != query.shape:
        raise ValueError(f"positive must be (B, D) = {tuple(query.shape)}, got "
                         f"{tuple(positive.shape)}")
    if not isinstance(negatives, torch.Tensor) or negatives.ndim not in (2, 3) \
            or negatives.shape[-1] != query.shape[1] \
            or (negatives.ndim == 3 and negatives.shape[0] != len(query)):
        raise ValueError(f"negatives must be (B, k, D) or (k, D) with B={len(query)}, "
                         f"D={query.shape[1]}, got {tuple(getattr(negatives, 'shape', ()))}")
    query, negatives = _normalized(query, negatives, temperature, normalize)
    if normalize:
        positive = F.normalize(positive, dim=1)
    pos = (query * positive).sum(1, keepdim=True)                               # (B, 1)
    neg = query @ negatives.T if negatives.ndim == 2 else \
        torch.einsum("bd,bkd->bk", query, negatives)                            # (B, k)
    logits = torch.cat([pos, neg], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(query), dtype=torch.long, device=query.device))


def pairwise_distance(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distances (B, B) between the rows of ``x`` (B, D), with a gradient-safe square
    root (the diagonal is 0 with a finite gradient)."""
    sq = (x * x).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp(min=0.0)
    return (d2 + eps).sqrt() - eps ** 0.5


def batch_hard_triplet(embeddings: torch.Tensor, labels: torch.Tensor, margin: float | None = 0.3,
                       metric: str = "euclidean") -> torch.Tensor:
    """Batch-hard triplet loss (module doc) of ``embeddings`` (B, D) with identity ``labels`` (B,).
    ``metric``: ``"euclidean"`` or ``"cosine"`` (1 - cosine similarity); ``margin=None`` uses the
    soft margin ``log(1 + exp(d_ap - d_an))``. Anchors without a positive or a negative in the
    batch are left out; a batch with no valid anchor raises."""
    _check_embeddings(embeddings, "embeddings")
    if not isinstance(labels, torch.Tensor) or labels.shape != (len(embeddings),):
        raise ValueError(f"labels must be a ({len(embeddings)},) tensor, got "
                         f"{tuple(getattr(labels, 'shape', ()))}")
    if metric == "euclidean":
        d = pairwise_distance(embeddings)
    elif metric == "cosine":
        e = F.normalize(embeddings, dim=1)
        d = 1.0 - e @ e.T
    else:
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    labels = labels.to(embeddings.device)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos, neg = same & ~eye, ~same
    valid = pos.any(1) & neg.any(1)
    if not valid.any():
        raise ValueError("batch_hard_triplet needs an anchor with both a positive (same label) "
                         "and a negative in the batch; sample batches with PKSampler (K >= 2, "
                         "P >= 2)")
    hardest_pos = d.masked_fill(~pos, float("-inf")).max(1).values
    hardest_neg = d.masked_fill(~neg, float("inf")).min(1).values
    gap = (hardest_pos - hardest_neg)[valid]
    return F.softplus(gap).mean() if margin is None else F.relu(gap + margin).mean()


class PKSampler:
    """Batches of ``p`` distinct identities × ``k`` images each (``p·k`` indices, grouped by
    identity), for ``torch.utils.data.DataLoader(batch_sampler=...)`` or direct indexing.

    Identities are drawn uniformly without replacement within a batch; an identity's ``k`` images
    without replacement, or with replacement if it has fewer than ``k`` (as reid-strong-baseline's
    ``RandomIdentitySampler`` does). ``n_batches`` per epoch (default ``n_ids // p``); batch ``b``
    of epoch ``e`` is a function of ``(seed, e, b)`` only (:meth:`set_epoch`).
    """

    def __init__(self, labels: Any, p: int, k: int, n_batches: int | None = None,
                 seed: int = 0) -> None:
        labels = torch.as_tensor(labels).long().cpu()
        if labels.ndim != 1:
            raise ValueError(f"labels must be a 1-D vector of identities, got "
                             f"{tuple(labels.shape)}")
        self.ids, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
        if p < 1 or k < 1:
            raise ValueError(f"p and k must be >= 1, got p={p}, k={k}")
        if len(self.ids) < p:
            raise ValueError(f"p={p} identities per batch, but the labels hold only "
                             f"{len(self.ids)}")
        self.p, self.k, self.seed, self.epoch = p, k, seed, 0
        self.n_batches = n_batches if n_batches is not None else len(self.ids) // p
        self.counts = counts
        # members[i] = indices of identity i, padded with -1: (n_ids, max_count)
        order = torch.argsort(inverse, stable=True)
        start = torch.repeat_interleave(counts.cumsum(0) - counts, counts)
        slot = torch.arange(len(labels)) - start
        self.members = torch.full((len(self.ids), int(counts.max())), -1, dtype=torch.long)
        self.members[inverse[order], slot] = order

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n_batches

    def batch(self, b: int) -> torch.Tensor:
        """Indices (p·k,) of batch ``b`` of the current epoch, identity-major."""
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_003 + b)
        chosen = torch.randperm(len(self.ids), generator=g)[: self.p]
        counts = self.counts[chosen]
        # k images per identity: the first k of a random order of its images (without
        # replacement), or k uniform draws (with replacement) when it has fewer than k
        keys = torch.rand(self.p, self.members.shape[1], generator=g)
        keys = keys.masked_fill(self.members[chosen] < 0, 2.0)
        without = torch.argsort(keys, dim=1)[:, : self.k] if self.members.shape[1] >= self.k \
            else torch.zeros(self.p, self.k, dtype=torch.long)
        draws = (torch.rand(self.p, self.k, generator=g) * counts[:, None]).long()
        slots = torch.where((counts >= self.k)[:, None], without, draws)
        return self.members[chosen[:, None], slots].reshape(-1)

    def __iter__(self) -> Iterator[list[int]]:
        for b in range(self.n_batches):
            yield self.batch(b).tolist()
