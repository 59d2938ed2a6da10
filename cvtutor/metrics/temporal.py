"""Metrics of time: temporal IoU, 1-D NMS, ActivityNet AP and AR@AN, AVVP F-scores, DAVIS J and F.

Derived in the ``world_video`` chapter (the "Video and time" section); used by E09 AherNet
(ActivityNet / THUMOS14 detection), E26 AVVP (segment- and event-level F) and E39 GraphMemVOS
(region similarity J, boundary F, recall and decay).

Conventions:

* a segment is ``[start, end]`` (seconds, frames or normalised time, ``end >= start``);
* **ActivityNet AP** is the *all-point* interpolated AP of the official evaluation
  (``Evaluation/eval_detection.py``: ``compute_average_precision_detection`` and
  ``utils.interpolated_prec_rec``): detections of one class in descending score order, each takes
  the unmatched GT of its video with the highest tIoU >= t, and ``AP = sum_i (r_i - r_{i-1})
  P~(r_i)`` with the monotone envelope ``P~`` (not COCO's 101 recall points). Precision, recall
  and the envelope come from :mod:`cvtutor.metrics.detection`. Ties in score are taken in input
  order (a stable sort; the official code reverses an unstable argsort);
* **AR@AN** is ActivityNet's proposal metric: a GT counts as recalled at threshold t when any of
  its video's top-``AN`` proposals overlaps it by tIoU >= t (no one-to-one matching); AR averages
  that recall over t in 0.5:0.05:0.95; its AUC is the area under AR(AN) over AN in [1, AN_max],
  divided by AN_max (the official code's normalisation);
* **AVVP F** (Tian et al., ECCV 2020, and their ``utils/eval_metrics.py``): per video and class,
  ``F = 2TP / (2TP + FP + FN)`` over the 1-s snippets (segment level) or over events, runs of
  consecutive positive snippets (event level: a predicted event is a TP when it overlaps *some*
  GT event of its class by IoU >= 0.5, a GT event is an FN when no predicted event does); the
  classes with any positive are averaged, a video with none scores 1 (all true negatives);
* **DAVIS J and F** (Perazzi et al. 2016): J is the IoU of the masks (1 when both are empty), F
  the F-measure of the boundary pixels matched within ``ceil(0.008 * diagonal)`` px; per object
  sequence, the mean, the recall (fraction of frames above 0.5) and the decay (mean of the first
  quarter minus mean of the last, DAVIS's bins).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from cvtutor.metrics.detection import interpolated_precision, match_greedy, precision_recall

TIOU_THRESHOLDS = tuple(np.round(np.linspace(0.5, 0.95, 10), 2).tolist())


# ---------------------------------------------------------------------------------------------
# segments
# ---------------------------------------------------------------------------------------------
def _as_segments(seg: Any, name: str) -> np.ndarray:
    arr = np.asarray(seg, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(
            f"{name} must be an (N, 2) array of [start, end] segments, got shape {arr.shape}"
        )
    if np.any(arr[:, 1] < arr[:, 0]):
        raise ValueError(
            f"{name} has segments ending before they start: {arr[arr[:, 1] < arr[:, 0]][:3]}"
        )
    return arr


def tiou(a: Any, b: Any) -> np.ndarray:
    """The (N, M) temporal IoU ``|a ∩ b| / |a ∪ b|`` of segments ``a (N, 2)``, ``b (M, 2)``."""
    a, b = _as_segments(a, "a"), _as_segments(b, "b")
    inter = np.clip(
        np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None
    )
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def nms_1d(segments: Any, scores: Any, threshold: float) -> np.ndarray:
    """Temporal NMS: indices of the kept segments in descending score order.

    A segment is suppressed when it overlaps a kept, higher-scoring one by tIoU > ``threshold``.
    Implemented as ``torchvision.ops.nms`` on the boxes ``[s, 0, e, 1]``, whose IoU is the tIoU.
    """
    from torchvision.ops import nms

    seg = _as_segments(segments, "segments")
    sc = np.asarray(scores, dtype=np.float64)
    if sc.shape != (len(seg),):
        raise ValueError(f"scores must be ({len(seg)},), got shape {sc.shape}")
    boxes = torch.zeros(len(seg), 4, dtype=torch.float64)
    boxes[:, 0], boxes[:, 2], boxes[:, 3] = (
        torch.from_numpy(seg[:, 0]),
        torch.from_numpy(seg[:, 1]),
        1.0,
    )
    return nms(boxes, torch.from_numpy(sc), float(threshold)).numpy()


# ---------------------------------------------------------------------------------------------
# ActivityNet detection AP
# ---------------------------------------------------------------------------------------------
def all_point_ap(precision: Any, recall: Any) -> float:
    """All-point interpolated AP: ``sum_i (r_i - r_{i-1}) P~(r_i)``, ``r_0 = 0`` (VOC 2011+)."""
    p = np.asarray(precision, dtype=np.float64)
    r = np.asarray(recall, dtype=np.float64)
    if p.shape != r.shape or p.ndim != 1:
        raise ValueError(
            f"precision and recall must be 1-D of the same length, got {p.shape}, {r.shape}"
        )
    if len(p) == 0:
        return 0.0
    env = interpolated_precision(p)
    return float(np.sum(np.diff(np.concatenate([[0.0], r])) * env))


def _check_columns(df: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} is missing the column(s) {missing}; expected {list(columns)}")


def detection_tp(
    gt: pd.DataFrame, pred: pd.DataFrame, tiou_thresholds: Sequence[float] = TIOU_THRESHOLDS
) -> tuple[np.ndarray, np.ndarray]:
    """The TP flags ``(len(thresholds), P)`` of one class's predictions in descending score order
    (and that order): greedy matching per video, as :func:`average_precision_detection`."""
    _check_columns(gt, ("video_id", "t_start", "t_end"), "ground truth")
    _check_columns(pred, ("video_id", "t_start", "t_end", "score"), "predictions")
    order = np.argsort(-pred["score"].to_numpy(np.float64), kind="stable")
    p = pred.iloc[order]
    tp = np.zeros((len(tiou_thresholds), len(p)), dtype=bool)
    gt_by_video = {
        v: g[["t_start", "t_end"]].to_numpy() for v, g in gt.groupby("video_id", sort=False)
    }
    rows = np.arange(len(p))
    for vid, idx in p.groupby("video_id", sort=False).indices.items():
        g = gt_by_video.get(vid)
        if g is None:
            continue
        iou = tiou(p[["t_start", "t_end"]].to_numpy()[idx], g)
        for k, t in enumerate(tiou_thresholds):
            matched, _ = match_greedy(iou, t)
            tp[k, rows[idx]] = matched >= 0
    return tp, order


def average_precision_detection(
    gt: pd.DataFrame, pred: pd.DataFrame, tiou_thresholds: Sequence[float] = TIOU_THRESHOLDS
) -> np.ndarray:
    """ActivityNet AP of one class at each tIoU threshold.

    ``gt``: columns ``video_id, t_start, t_end``; ``pred``: ``video_id, t_start, t_end, score``.
    A class with GT but no predictions has AP 0; without GT, AP is ``nan``.
    """
    tp, _ = detection_tp(gt, pred, tiou_thresholds)
    if len(gt) == 0:
        return np.full(len(tiou_thresholds), np.nan)
    out = np.zeros(len(tiou_thresholds))
    for k in range(len(tiou_thresholds)):
        prec, rec = precision_recall(tp[k], len(gt))
        out[k] = all_point_ap(prec, rec)
    return out


def mean_average_precision(
    gt: pd.DataFrame, pred: pd.DataFrame, tiou_thresholds: Sequence[float] = TIOU_THRESHOLDS
) -> dict[str, Any]:
    """AP per class (column ``label``) and threshold, mAP per threshold and their average.

    The classes are those of the ground truth (as ActivityNet's evaluation); predictions of other
    classes are ignored. Returns ``{"ap": DataFrame (label x tIoU), "map": Series, "average_map"}``.
    """
    _check_columns(gt, ("video_id", "label", "t_start", "t_end"), "ground truth")
    _check_columns(pred, ("video_id", "label", "t_start", "t_end", "score"), "predictions")
    rows = {}
    for label, g in gt.groupby("label", sort=True):
        rows[label] = average_precision_detection(g, pred[pred["label"] == label], tiou_thresholds)
    ap = pd.DataFrame.from_dict(rows, orient="index", columns=list(tiou_thresholds))
    ap.index.name, ap.columns.name = "label", "tiou"
    m = ap.mean(axis=0)
    return {"ap": ap, "map": m, "average_map": float(m.mean())}


# ---------------------------------------------------------------------------------------------
# ActivityNet proposals: AR@AN and AUC
# ---------------------------------------------------------------------------------------------
def average_recall_at_an(
    gt: pd.DataFrame,
    proposals: pd.DataFrame,
    an: Sequence[int],
    tiou_thresholds: Sequence[float] = TIOU_THRESHOLDS,
) -> pd.DataFrame:
    """Recall of the GT by each video's top-``AN`` proposals, per AN and threshold, and AR.

    ``gt``: ``video_id, t_start, t_end``; ``proposals``: ``video_id, t_start, t_end, score``.
    Returns a frame indexed by AN with one column per threshold and ``AR`` (their mean).
    """
    _check_columns(gt, ("video_id", "t_start", "t_end"), "ground truth")
    _check_columns(proposals, ("video_id", "t_start", "t_end", "score"), "proposals")
    an = np.asarray(an, dtype=np.int64)
    if an.ndim != 1 or len(an) == 0 or (an < 1).any():
        raise ValueError(f"an must be a non-empty list of positive proposal counts, got {an}")
    if len(gt) == 0:
        raise ValueError("the ground truth is empty: recall is undefined")
    thr = np.asarray(tiou_thresholds)
    hits = np.zeros((len(an), len(thr)))
    props = {
        v: p.sort_values("score", ascending=False, kind="stable")[["t_start", "t_end"]].to_numpy()
        for v, p in proposals.groupby("video_id", sort=False)
    }
    for vid, g in gt.groupby("video_id", sort=False):
        p = props.get(vid)
        if p is None:
            continue
        iou = tiou(g[["t_start", "t_end"]].to_numpy(), p)  # G x P
        best = np.maximum.accumulate(iou, axis=1)  # best of the top-k
        k = np.minimum(an, iou.shape[1]) - 1
        hits += (best[:, k][:, :, None] >= thr[None, None] - 1e-12).sum(0)
    out = pd.DataFrame(hits / len(gt), index=pd.Index(an, name="AN"), columns=list(tiou_thresholds))
    out["AR"] = out.mean(axis=1)
    return out


def ar_auc(ar_table: pd.DataFrame) -> float:
    """Area under AR(AN) (trapezoids over the table's AN values), divided by the largest AN."""
    x = ar_table.index.to_numpy(np.float64)
    y = ar_table["AR"].to_numpy()
    if len(x) == 1:
        return float(y[0])
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2) / x[-1])


# ---------------------------------------------------------------------------------------------
# AVVP: segment- and event-level F
# ---------------------------------------------------------------------------------------------
def _binary(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 3:
        raise ValueError(
            f"{name} must be (videos, classes, snippets) binary labels, got shape {arr.shape}"
        )
    if not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name} must hold 0/1 (or bool) labels")
    return arr.astype(bool)


def segment_counts(pred: Any, gt: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per video and class, the snippet-level ``TP, FP, FN`` ``(N, C)`` of ``(N, C, T)`` labels."""
    p, g = _binary(pred, "pred"), _binary(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred {p.shape} and gt {g.shape} must have the same shape")
    return (p & g).sum(-1), (p & ~g).sum(-1), (~p & g).sum(-1)


def extract_events(seq: Any) -> list[tuple[int, int]]:
    """The events of one class: runs of consecutive positive snippets as ``[start, end)``."""
    s = np.concatenate([[0], np.asarray(seq, dtype=np.int8), [0]])
    d = np.diff(s)
    return list(zip(np.nonzero(d == 1)[0].tolist(), np.nonzero(d == -1)[0].tolist()))


def event_counts(
    pred: Any, gt: Any, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per video and class, the event-level ``TP, FP, FN`` ``(N, C)`` (AVVP's matching rule)."""
    p, g = _binary(pred, "pred"), _binary(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred {p.shape} and gt {g.shape} must have the same shape")
    tp, fp, fn = (np.zeros(p.shape[:2], dtype=np.int64) for _ in range(3))
    for i, c in zip(*np.nonzero(p.any(-1) | g.any(-1))):
        ep, eg = extract_events(p[i, c]), extract_events(g[i, c])
        iou = tiou(np.asarray(ep, float).reshape(-1, 2), np.asarray(eg, float).reshape(-1, 2))
        ok = iou >= threshold - 1e-12
        tp[i, c] = ok.any(1).sum()
        fp[i, c] = len(ep) - tp[i, c]
        fn[i, c] = (~ok.any(0)).sum()
    return tp, fp, fn


def f_score(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Per video ``(N,)``: the mean over classes with any positive of ``2TP/(2TP+FP+FN)``; 1 for a
    video with no positive at all (AVVP's convention). Pass summed counts for Event@AV."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    den = 2 * tp + fp + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(den > 0, 2 * tp / den, np.nan)
    has = (den > 0).any(-1)
    out = np.ones(len(f))
    out[has] = np.nanmean(f[has], axis=-1)
    return out


AVVP_TYPES = ("audio", "visual", "audio-visual", "Type@AV", "Event@AV")


def avvp_scores(
    pred_audio: Any, pred_visual: Any, gt_audio: Any, gt_visual: Any
) -> dict[tuple[str, str], float]:
    """AVVP's ten numbers (Tian et al. 2020, Tables 1-2; ``main_avvp.py``'s evaluation), in [0, 1].

    Inputs are ``(N, C, T)`` binary labels per modality; the audio-visual labels are their AND.
    Keys ``(level, type)``: level ``"segment"`` or ``"event"``, type one of :data:`AVVP_TYPES`.
    Audio, visual, audio-visual: the mean over videos of :func:`f_score`; Type@AV the mean of the
    three; Event@AV the mean over videos of the F of the audio and visual counts summed.
    """
    pa, pv = _binary(pred_audio, "pred_audio"), _binary(pred_visual, "pred_visual")
    ga, gv = _binary(gt_audio, "gt_audio"), _binary(gt_visual, "gt_visual")
    if not pa.shape == pv.shape == ga.shape == gv.shape:
        raise ValueError(
            f"all four label arrays must have one shape (N, C, T), got {pa.shape}, {pv.shape}, "
            f"{ga.shape}, {gv.shape}"
        )
    out: dict[tuple[str, str], float] = {}
    for level, counts in (("segment", segment_counts), ("event", event_counts)):
        ca, cv, cav = counts(pa, ga), counts(pv, gv), counts(pa & pv, ga & gv)
        f = {k: float(f_score(*c).mean()) for k, c in zip(AVVP_TYPES[:3], (ca, cv, cav))}
        f["Type@AV"] = (f["audio"] + f["visual"] + f["audio-visual"]) / 3
        f["Event@AV"] = float(f_score(*(a + v for a, v in zip(ca, cv))).mean())
        out.update({(level, k): v for k, v in f.items()})
    return out


# ---------------------------------------------------------------------------------------------
# VOS: region similarity J, boundary F, recall and decay
# ---------------------------------------------------------------------------------------------
def _masks(x: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3:
        raise ValueError(
            f"{name} must be (H, W) or (N, H, W) binary masks, got shape {tuple(t.shape)}"
        )
    return t.bool()


def region_similarity(pred: Any, gt: Any) -> torch.Tensor:
    """J: the IoU of each pair of binary masks ``(N, H, W)``; 1 where both are empty."""
    p, g = _masks(pred, "pred"), _masks(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred {tuple(p.shape)} and gt {tuple(g.shape)} must have the same shape")
    inter = (p & g).flatten(1).sum(1).double()
    union = (p | g).flatten(1).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def boundary_map(masks: Any) -> torch.Tensor:
    """DAVIS's ``seg2bmap`` at the mask's resolution: a pixel is on the boundary when it is in the
    mask and its right, lower or lower-right neighbour is not (or vice versa)."""
    m = _masks(masks, "masks")
    e = F.pad(m, (0, 1, 0, 0))[:, :, 1:]
    s = F.pad(m, (0, 0, 0, 1))[:, 1:, :]
    se = F.pad(m, (0, 1, 0, 1))[:, 1:, 1:]
    b = (m ^ e) | (m ^ s) | (m ^ se)
    b[:, -1, :] = m[:, -1, :] ^ e[:, -1, :]
    b[:, :, -1] = m[:, :, -1] ^ s[:, :, -1]
    b[:, -1, -1] = False
    return b


def _dilate(b: torch.Tensor, radius: int) -> torch.Tensor:
    r = torch.arange(-radius, radius + 1)
    disk = ((r[:, None] ** 2 + r[None] ** 2) <= radius**2).double()[None, None]
    return F.conv2d(b.double()[:, None], disk, padding=radius)[:, 0] > 0


def boundary_f(pred: Any, gt: Any, bound_th: float = 0.008) -> torch.Tensor:
    """F: the boundary F-measure of each pair ``(N, H, W)``; a boundary pixel counts as matched
    when the other boundary lies within ``ceil(bound_th * diagonal)`` px (a disk; ``bound_th >= 1``
    is a radius in pixels). Both boundaries empty: 1; one empty: 0."""
    p, g = _masks(pred, "pred"), _masks(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred {tuple(p.shape)} and gt {tuple(g.shape)} must have the same shape")
    H, W = p.shape[-2:]
    radius = int(bound_th) if bound_th >= 1 else int(math.ceil(bound_th * math.hypot(H, W)))
    bp, bg = boundary_map(p), boundary_map(g)
    n_p, n_g = bp.flatten(1).sum(1).double(), bg.flatten(1).sum(1).double()
    prec = (bp & _dilate(bg, radius)).flatten(1).sum(1) / n_p.clamp_min(1)
    rec = (bg & _dilate(bp, radius)).flatten(1).sum(1) / n_g.clamp_min(1)
    f = torch.where(
        prec + rec > 0, 2 * prec * rec / (prec + rec).clamp_min(1e-12), torch.zeros_like(prec)
    )
    f = torch.where((n_p == 0) & (n_g == 0), torch.ones_like(f), f)
    return torch.where((n_p == 0) ^ (n_g == 0), torch.zeros_like(f), f)


def sequence_statistics(per_frame: Any) -> dict[str, float]:
    """DAVIS's statistics of one object's per-frame J (or F) values: ``mean``, ``recall`` (frames
    > 0.5) and ``decay`` (mean of the first of four bins minus the last, DAVIS's binning)."""
    x = np.asarray(per_frame, dtype=np.float64)
    if x.ndim != 1 or len(x) < 1:
        raise ValueError(f"per_frame must be a non-empty 1-D sequence, got shape {x.shape}")
    ids = (np.round(np.linspace(1, len(x), 5) + 1e-10) - 1).astype(np.int64)
    bins = [x[ids[i] : ids[i + 1] + 1] for i in range(4)]
    return {
        "mean": float(np.nanmean(x)),
        "recall": float(np.nanmean(x > 0.5)),
        "decay": float(np.nanmean(bins[0]) - np.nanmean(bins[3])),
    }
