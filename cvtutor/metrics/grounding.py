"""Phrase grounding metrics: Recall@k at IoU >= 0.5 and pointing accuracy.

Chapter ``info_ground`` (Sect. 3.1 of Gupta et al., ECCV 2020). A phrase has ``G`` ground-truth
boxes (``gt_valid`` marks the real ones: every object the phrase denotes, as Flickr30K Entities
merges the boxes of one entity) and a model scores the image's ``m`` candidate regions:

* **Recall@k**: 1 when some ground-truth box has IoU >= ``iou`` (0.5) with one of the ``k``
  best-scored regions;
* **pointing accuracy**: 1 when the centre of the best-scored region lies inside a ground-truth
  box, edges included (``x <= cx <= x + w``).

Boxes are ``[x, y, w, h]``; ties in the scores go to the lower region index (a stable sort).
"""
from __future__ import annotations

import torch

from cvtutor.data.scenes2d.generate import box_iou


def _check(scores: torch.Tensor, boxes: torch.Tensor, gt_boxes: torch.Tensor,
           gt_valid: torch.Tensor) -> None:
    if scores.ndim != 2:
        raise ValueError(f"scores must be (N, m) region scores per phrase, got "
                         f"{tuple(scores.shape)}")
    n, m = scores.shape
    if boxes.shape != (n, m, 4):
        raise ValueError(f"boxes must be (N, m, 4) = ({n}, {m}, 4), got {tuple(boxes.shape)}")
    if gt_boxes.ndim != 3 or gt_boxes.shape[0] != n or gt_boxes.shape[2] != 4:
        raise ValueError(f"gt_boxes must be (N, G, 4) with N = {n}, got {tuple(gt_boxes.shape)}")
    if gt_valid.shape != gt_boxes.shape[:2] or gt_valid.dtype != torch.bool:
        raise ValueError(f"gt_valid must be a bool (N, G) = {tuple(gt_boxes.shape[:2])} mask, "
                         f"got {gt_valid.dtype} {tuple(gt_valid.shape)}")


def top_regions(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (N, k) of the ``k`` best regions of each phrase, ties by index."""
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k must be in [1, {scores.shape[1]}], got {k}")
    return torch.sort(-scores, dim=1, stable=True).indices[:, :k]


def recall_at_k(scores: torch.Tensor, boxes: torch.Tensor, gt_boxes: torch.Tensor,
                gt_valid: torch.Tensor, k: int, iou: float = 0.5) -> torch.Tensor:
    """(N,) float 0/1: a ground-truth box has IoU >= ``iou`` with one of the top-``k`` regions."""
    _check(scores, boxes, gt_boxes, gt_valid)
    top = top_regions(scores, k)
    chosen = boxes.gather(1, top[..., None].expand(-1, -1, 4))  # (N, k, 4)
    hit = (box_iou(chosen, gt_boxes) >= iou - 1e-9) & gt_valid[:, None, :]
    return hit.flatten(1).any(1).float()


def pointing_accuracy(scores: torch.Tensor, boxes: torch.Tensor, gt_boxes: torch.Tensor,
                      gt_valid: torch.Tensor) -> torch.Tensor:
    """(N,) float 0/1: the centre of the best region is inside a ground-truth box (edges in)."""
    _check(scores, boxes, gt_boxes, gt_valid)
    best = boxes.gather(1, top_regions(scores, 1)[..., None].expand(-1, -1, 4))[:, 0]  # (N, 4)
    c = best[:, None, :2] + best[:, None, 2:] / 2
    inside = (c >= gt_boxes[..., :2]) & (c <= gt_boxes[..., :2] + gt_boxes[..., 2:])
    return (inside.all(-1) & gt_valid).any(1).float()
