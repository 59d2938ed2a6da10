"""Semantic segmentation metrics: confusion matrix, pixel accuracy, mean IoU, boundary F-score.

Used by the image-translation world (chapter ``world_translation``: the layout mIoU of a
translated image against the scene's true label map) and by segmentation chapters. Label maps are
integer tensors of one shape, e.g. (B, H, W), with classes ``0 .. K-1``; pixels whose target is
``ignore_index`` (default 255, the Cityscapes convention) are left out. All torch, on the device
of the inputs; checked against scikit-learn's ``confusion_matrix`` and ``jaccard_score``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, n_classes: int,
                     ignore_index: int | None = 255) -> torch.Tensor:
    """(K, K) long counts, rows the true class, columns the predicted one (sklearn's layout)."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have one shape, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    p, t = pred.reshape(-1).long(), target.reshape(-1).long()
    keep = t != ignore_index if ignore_index is not None else torch.ones_like(t, dtype=torch.bool)
    p, t = p[keep], t[keep]
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n_classes
                      or int(p.min()) < 0 or int(p.max()) >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1} (or be ignore_index "
                         f"{ignore_index} in the target)")
    return torch.bincount(t * n_classes + p, minlength=n_classes ** 2).reshape(n_classes, n_classes)


def pixel_accuracy(conf: torch.Tensor) -> float:
    """Fraction of (non-ignored) pixels labelled correctly: ``trace(C) / sum(C)``."""
    return float(conf.diagonal().sum() / conf.sum().clamp_min(1))


def iou_per_class(conf: torch.Tensor) -> torch.Tensor:
    """(K,) ``TP / (TP + FP + FN)``; NaN for a class absent from both prediction and target."""
    tp = conf.diagonal().double()
    union = conf.sum(0).double() + conf.sum(1).double() - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))


def mean_iou(conf: torch.Tensor) -> float:
    """Mean IoU over the classes present in prediction or target (NaNs skipped)."""
    return float(torch.nanmean(iou_per_class(conf)))


def boundaries(labels: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool: pixels whose right or lower 4-neighbour has another label."""
    if labels.ndim != 3:
        raise ValueError(f"labels must be (B, H, W), got {tuple(labels.shape)}")
    edge = torch.zeros_like(labels, dtype=torch.bool)
    edge[:, :, :-1] |= labels[:, :, 1:] != labels[:, :, :-1]
    edge[:, :-1, :] |= labels[:, 1:, :] != labels[:, :-1, :]
    return edge


def _dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, H, W) bool dilated by a (2r+1) square (Chebyshev distance <= r)."""
    if radius == 0:
        return mask
    return F.max_pool2d(mask[:, None].float(), 2 * radius + 1, 1, radius)[:, 0] > 0


def boundary_f(pred: torch.Tensor, target: torch.Tensor, tolerance: int = 2) -> torch.Tensor:
    """Boundary F-score per image (B,) (Csurka et al. 2013; DAVIS's F): precision = fraction of
    predicted boundary pixels within ``tolerance`` pixels (Chebyshev) of a true boundary pixel,
    recall the converse, F their harmonic mean (1 when both maps have no boundary)."""
    if pred.shape != target.shape or pred.ndim != 3:
        raise ValueError(f"pred and target must be (B, H, W) of one shape, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
    bp, bt = boundaries(pred), boundaries(target)
    n_p, n_t = bp.flatten(1).sum(1).double(), bt.flatten(1).sum(1).double()
    prec = (bp & _dilate(bt, tolerance)).flatten(1).sum(1) / n_p.clamp_min(1)
    rec = (bt & _dilate(bp, tolerance)).flatten(1).sum(1) / n_t.clamp_min(1)
    f = 2 * prec * rec / (prec + rec).clamp_min(1e-12)
    both_empty = (n_p == 0) & (n_t == 0)
    return torch.where(both_empty, torch.ones_like(f), f)
