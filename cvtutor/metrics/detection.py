"""Object-detection metrics: box IoU, COCO-style matching, precision/recall, 101-point AP, mAP.

Conventions (those of the COCO evaluation, ``pycocotools.cocoeval.COCOeval``):

* boxes are ``[x, y, w, h]`` in pixels (top-left corner, width, height);
* a detection matches a ground truth (GT) of its class when IoU >= t; detections are taken in
  descending score order and each takes the *unmatched* GT it overlaps most (greedy matching);
* a detection that matches no GT but covers a *crowd* GT (``iscrowd=1``) of its class by at least
  t (crowd IoU = intersection / detection area) is ignored: neither a TP nor an FP;
* at most ``max_dets`` detections per image and class are kept (the highest-scoring ones);
  ``tidecv`` keeps the ``max_dets`` best of each image across classes (``max_dets_per="image"``);
* per class, detections from all images are sorted by score, giving the cumulative precision and
  recall (Eq. 1 of TIDE), the precision is made monotone (running max from the right) and AP is
  the mean of that precision at the 101 recalls 0, 0.01, ..., 1;
* a class without GT is left out of the mean (its AP is undefined); mAP averages the classes,
  COCO's AP averages mAP over the IoU thresholds 0.50:0.05:0.95.

The results agree with ``COCOeval`` (``iouType="bbox"``, ``maxDets=[100]``, area range "all");
``tests/test_tide.py`` checks this on random data.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

COCO_IOU_THRESHOLDS = tuple(np.round(np.linspace(0.5, 0.95, 10), 2).tolist())
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
TIDECV_RECALL_POINTS = np.arange(101) / 100
"""The recalls ``x / 100`` at which ``tidecv`` reads precision. They differ from COCO's
``linspace`` by one ulp at some points (0.07, 0.14, ...), so a recall that lands exactly on such a
point is read one detection earlier (TIDE chapter, "Our numbers and tidecv's")."""
GT_COLUMNS = ("id", "image_id", "category_id", "x", "y", "w", "h", "iscrowd")
DET_COLUMNS = ("id", "image_id", "category_id", "x", "y", "w", "h", "score")


# ---------------------------------------------------------------------------------------------
# IoU
# ---------------------------------------------------------------------------------------------
def _as_boxes(boxes: Any, name: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must be an (N, 4) array of [x, y, w, h] boxes, got shape {arr.shape}")
    if np.any(arr[:, 2:] < 0):
        raise ValueError(f"{name} has boxes with negative width or height: {arr[np.any(arr[:, 2:] < 0, 1)][:3]}")
    return arr


def box_area(boxes: Any) -> np.ndarray:
    """Areas ``w * h`` of ``[x, y, w, h]`` boxes."""
    b = _as_boxes(boxes, "boxes")
    return b[:, 2] * b[:, 3]


def box_iou(a: Any, b: Any, crowd: Any = None) -> np.ndarray:
    """The (N, M) IoU matrix of boxes ``a`` (N, 4) and ``b`` (M, 4), both ``[x, y, w, h]``.

    IoU = |a ∩ b| / |a ∪ b|. Where ``crowd[j]`` is true, column j is the *crowd* overlap
    |a ∩ b| / |a| instead (COCO's rule: a detection inside a crowd region is not an error).
    """
    a, b = _as_boxes(a, "a"), _as_boxes(b, "b")
    if crowd is not None:
        crowd = np.asarray(crowd, dtype=bool)
        if crowd.shape != (len(b),):
            raise ValueError(f"crowd must be a ({len(b)},) bool array, got shape {crowd.shape}")
    return _iou(a, b, crowd)


def _iou(a: np.ndarray, b: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """:func:`box_iou` without the checks (for the inner loops)."""
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a, area_b = a[:, 2] * a[:, 3], b[:, 2] * b[:, 3]
    union = area_a[:, None] + area_b[None] - inter
    if crowd is not None and crowd.any():
        union = np.where(crowd[None], area_a[:, None], union)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


# ---------------------------------------------------------------------------------------------
# data: COCO-format ground truth and results as DataFrames
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DetectionSet:
    """Ground truth and detections of one data set, as two DataFrames.

    ``gt``: columns ``id, image_id, category_id, x, y, w, h, iscrowd``;
    ``dets``: columns ``id, image_id, category_id, x, y, w, h, score``;
    ``images``: the image ids of the data set (images without GT count too);
    ``categories``: ``{category_id: name}``.
    """

    gt: pd.DataFrame
    dets: pd.DataFrame
    images: tuple[int, ...]
    categories: Mapping[int, str]

    def with_dets(self, dets: pd.DataFrame) -> "DetectionSet":
        return DetectionSet(self.gt, dets, self.images, self.categories)

    def with_gt(self, gt: pd.DataFrame) -> "DetectionSet":
        return DetectionSet(gt, self.dets, self.images, self.categories)


def _check_frame(df: pd.DataFrame, columns: Sequence[str], name: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} is missing the column(s) {missing}; expected {list(columns)}")
    df = df.loc[:, list(columns)].reset_index(drop=True)
    if len(df) and (df[["w", "h"]].to_numpy() < 0).any():
        bad = df[(df["w"] < 0) | (df["h"] < 0)].iloc[0]
        raise ValueError(f"{name}: box of id {bad['id']} has negative size (w={bad['w']}, h={bad['h']})")
    return df


def make_detection_set(gt: pd.DataFrame, dets: pd.DataFrame, images: Sequence[int] | None = None,
                       categories: Mapping[int, str] | None = None) -> DetectionSet:
    """Check and bundle GT and detection frames (see :class:`DetectionSet` for the columns)."""
    gt = gt.copy()
    if "iscrowd" not in gt.columns:
        gt["iscrowd"] = 0
    if "id" not in gt.columns:
        gt["id"] = np.arange(1, len(gt) + 1)
    dets = dets.copy()
    if "id" not in dets.columns:
        dets["id"] = np.arange(1, len(dets) + 1)
    gt = _check_frame(gt, GT_COLUMNS, "ground truth")
    dets = _check_frame(dets, DET_COLUMNS, "detections")
    images = tuple(sorted(set(gt["image_id"].tolist()) if images is None else set(images)))
    unknown = sorted(set(dets["image_id"].tolist()) - set(images))
    if unknown:
        raise ValueError(f"detections refer to image ids {unknown[:5]} that the ground truth does not have")
    if categories is None:
        categories = {int(c): str(c) for c in sorted(set(gt["category_id"]))}
    unknown_cat = sorted(set(dets["category_id"].tolist()) - set(categories))
    if unknown_cat:
        raise ValueError(f"detections refer to category ids {unknown_cat[:5]} that the ground truth does not define "
                         f"(known: {sorted(categories)[:10]})")
    gt = gt.astype({"id": np.int64, "image_id": np.int64, "category_id": np.int64, "iscrowd": np.int64})
    dets = dets.astype({"id": np.int64, "image_id": np.int64, "category_id": np.int64, "score": np.float64})
    return DetectionSet(gt, dets, images, dict(categories))


# ---------------------------------------------------------------------------------------------
# matching
# ---------------------------------------------------------------------------------------------
def match_greedy(iou: np.ndarray, t: float, crowd: np.ndarray | None = None,
                 strict_crowd: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """COCO matching of detections (rows, already sorted by descending score) to GT (columns).

    Each detection in turn takes the unmatched non-crowd GT with the highest IoU >= t; if none,
    it is *ignored* when it overlaps a crowd GT by >= t (by > t if ``strict_crowd``, ``tidecv``'s
    rule). Returns ``(matched_gt, ignored)``: the column index each detection matched (-1: none)
    and the ignore flags.
    """
    n_det, n_gt = iou.shape
    crowd = np.zeros(n_gt, bool) if crowd is None else np.asarray(crowd, bool)
    matched = np.full(n_det, -1, dtype=np.int64)
    ignored = np.zeros(n_det, dtype=bool)
    taken = np.zeros(n_gt, dtype=bool)
    thr = min(t, 1 - 1e-10)
    for d in range(n_det):
        cand = np.where(~taken & ~crowd, iou[d], -1.0)
        if n_gt and cand.max() >= thr:
            g = int(cand.argmax())
            matched[d], taken[g] = g, True
        elif crowd.any():
            over = np.where(crowd, iou[d], -1.0).max()
            ignored[d] = over > t if strict_crowd else over >= thr
    return matched, ignored


@dataclass(frozen=True)
class ImageMatch:
    """The matching of one (image, class) at one threshold, detections in score order."""

    det_index: np.ndarray   # rows of data.dets, sorted by descending score, truncated to max_dets
    matched_gt: np.ndarray  # row of data.gt each detection matched, -1 if none
    ignored: np.ndarray     # detection ignored (crowd)
    n_gt: int               # non-crowd GT of this class in this image


def _groups(df: pd.DataFrame) -> dict[tuple[int, int], np.ndarray]:
    if len(df) == 0:
        return {}
    return {k: np.asarray(v) for k, v in df.groupby(["image_id", "category_id"], sort=False).indices.items()}


def top_per_image(dets: pd.DataFrame, max_dets: int) -> np.ndarray:
    """Rows of ``dets`` kept when each image keeps its ``max_dets`` highest-scoring detections
    across all classes (``tidecv``'s cap; ties keep the earlier row), in row order."""
    if max_dets < 1:
        raise ValueError(f"max_dets must be >= 1, got {max_dets}")
    image, score = dets["image_id"].to_numpy(), dets["score"].to_numpy()
    order = np.lexsort((np.arange(len(dets)), -score, image))
    first = np.r_[True, image[order][1:] != image[order][:-1]] if len(order) else np.zeros(0, bool)
    start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    return np.sort(order[np.arange(len(order)) - start < max_dets])


def match_all(data: DetectionSet, iou_threshold: float, max_dets: int = 100,
              max_dets_per: str = "class",
              strict_crowd: bool = False) -> dict[tuple[int, int], ImageMatch]:
    """COCO matching of every (image, class) of ``data`` at one IoU threshold.

    ``max_dets_per``: ``"class"`` keeps ``max_dets`` detections per (image, class) (COCO),
    ``"image"`` per image across classes (``tidecv``, :func:`top_per_image`); ``strict_crowd``: see
    :func:`match_greedy`.
    """
    if max_dets_per not in ("class", "image"):
        raise ValueError(f"max_dets_per must be 'class' or 'image', got {max_dets_per!r}")
    dets = data.dets
    rows = top_per_image(dets, max_dets) if max_dets_per == "image" else np.arange(len(dets))
    gt_groups, det_groups = _groups(data.gt), _groups(dets.iloc[rows])
    gt_boxes = data.gt[["x", "y", "w", "h"]].to_numpy(np.float64)
    det_boxes = dets[["x", "y", "w", "h"]].to_numpy(np.float64)
    crowd_all = data.gt["iscrowd"].to_numpy().astype(bool)
    scores = dets["score"].to_numpy()
    out = {}
    for key in set(gt_groups) | set(det_groups):
        g = gt_groups.get(key, np.zeros(0, np.int64))
        d = rows[det_groups[key]] if key in det_groups else np.zeros(0, np.int64)
        d = d[np.argsort(-scores[d], kind="mergesort")][:max_dets]
        crowd = crowd_all[g]
        iou = _iou(det_boxes[d], gt_boxes[g], crowd)
        m, ign = match_greedy(iou, iou_threshold, crowd, strict_crowd)
        matched_rows = np.full(len(d), -1, dtype=np.int64)
        matched_rows[m >= 0] = g[m[m >= 0]]
        out[key] = ImageMatch(d, matched_rows, ign, int((~crowd).sum()))
    return out


# ---------------------------------------------------------------------------------------------
# precision, recall, AP
# ---------------------------------------------------------------------------------------------
def precision_recall(is_tp: Any, n_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative precision and recall (Eq. 1 of TIDE) of detections sorted by descending score.

    ``P_c = TP_c / (TP_c + FP_c)``, ``R_c = TP_c / N_GT``.
    """
    tp = np.asarray(is_tp, dtype=bool)
    if tp.ndim != 1:
        raise ValueError(f"is_tp must be a 1-D array of flags, got shape {tp.shape}")
    if n_gt < 0:
        raise ValueError(f"n_gt must be >= 0, got {n_gt}")
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    recall = ctp / n_gt if n_gt > 0 else np.zeros(len(tp))
    return precision, recall


def interpolated_precision(precision: np.ndarray) -> np.ndarray:
    """The monotone envelope ``P~(r) = max_{r' >= r} P(r')``: a running max from the right."""
    return np.maximum.accumulate(np.asarray(precision, dtype=np.float64)[::-1])[::-1]


def precision_at_recalls(precision: np.ndarray, recall: np.ndarray, points: np.ndarray = RECALL_POINTS) -> np.ndarray:
    """The interpolated precision at each recall point (0 beyond the highest recall reached),
    read as COCO does: the first detection whose recall is >= the point."""
    env = interpolated_precision(precision)
    idx = np.searchsorted(recall, points, side="left")
    out = np.zeros(len(points))
    ok = idx < len(env)
    out[ok] = env[idx[ok]]
    return out


def average_precision(scores: Any, is_tp: Any, n_gt: int, points: np.ndarray = RECALL_POINTS) -> float:
    """101-point AP in [0, 1]: ``AP = (1/101) sum_{r in {0, .01, .., 1}} P~(r)`` (other recall
    ``points``, e.g. KITTI's R11/R40 in :mod:`cvtutor.metrics.kitti`, average over those).

    ``scores`` and ``is_tp`` are the detections of one class (any order; a stable sort by
    descending score is applied). ``n_gt = 0`` gives ``nan`` (AP undefined).
    """
    scores = np.asarray(scores, dtype=np.float64)
    is_tp = np.asarray(is_tp, dtype=bool)
    if scores.shape != is_tp.shape:
        raise ValueError(f"scores {scores.shape} and is_tp {is_tp.shape} must have the same shape")
    if n_gt == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    p, r = precision_recall(is_tp[order], n_gt)
    return float(precision_at_recalls(p, r, points).mean())


def class_points(data: DetectionSet, iou_threshold: float, max_dets: int = 100) -> dict[int, dict[str, Any]]:
    """Per class: the scores and TP flags of its (non-ignored) detections in COCO's order
    (images by id, then by score), the matched GT rows, and ``n_gt``."""
    matches = match_all(data, iou_threshold, max_dets)
    scores = data.dets["score"].to_numpy()
    out: dict[int, dict[str, list]] = {}
    for img in data.images:
        for cat in data.categories:
            m = matches.get((img, cat))
            if m is None:
                continue
            entry = out.setdefault(cat, {"det": [], "gt": [], "n_gt": 0})
            keep = ~m.ignored
            entry["det"].append(m.det_index[keep])
            entry["gt"].append(m.matched_gt[keep])
            entry["n_gt"] += m.n_gt
    result = {}
    for cat, e in out.items():
        det = np.concatenate(e["det"]) if e["det"] else np.zeros(0, np.int64)
        gt = np.concatenate(e["gt"]) if e["gt"] else np.zeros(0, np.int64)
        result[cat] = {"det": det, "score": scores[det], "tp": gt >= 0, "matched_gt": gt, "n_gt": e["n_gt"]}
    return result


def evaluate(data: DetectionSet, iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
             max_dets: int = 100) -> pd.DataFrame:
    """AP (in %) per class and IoU threshold: a long frame ``category_id, iou, ap, n_gt, n_det``.
    Classes without GT get ``ap = nan`` (left out of every mean)."""
    rows = []
    for t in iou_thresholds:
        pts = class_points(data, float(t), max_dets)
        for cat in data.categories:
            e = pts.get(cat)
            if e is None:
                rows.append({"category_id": cat, "iou": float(t), "ap": float("nan"), "n_gt": 0, "n_det": 0})
                continue
            ap = average_precision(e["score"], e["tp"], e["n_gt"])
            rows.append({"category_id": cat, "iou": float(t), "ap": 100.0 * ap, "n_gt": e["n_gt"], "n_det": len(e["tp"])})
    return pd.DataFrame(rows)


def mean_average_precision(data: DetectionSet, iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
                           max_dets: int = 100) -> dict[str, Any]:
    """mAP (in %): the mean over classes with GT of AP, averaged over the IoU thresholds.

    Returns ``{"map": float, "per_iou": {t: mAP_t}, "per_class": DataFrame}``.
    """
    table = evaluate(data, iou_thresholds, max_dets)
    per_iou = table.groupby("iou")["ap"].mean()
    return {"map": float(per_iou.mean()), "per_iou": {float(k): float(v) for k, v in per_iou.items()},
            "per_class": table.pivot(index="category_id", columns="iou", values="ap")}


# ---------------------------------------------------------------------------------------------
# object size bins
# ---------------------------------------------------------------------------------------------
SIZE_BINS: dict[str, tuple[float, float]] = {
    "XS": (0.0, 16.0**2),
    "S": (16.0**2, 32.0**2),
    "M": (32.0**2, 96.0**2),
    "L": (96.0**2, 288.0**2),
    "XL": (288.0**2, float("inf")),
}
"""TIDE's area bins in pixels (Sect. 3.2): XS < 16², S 16²–32², M 32²–96², L 96²–288², XL ≥ 288²."""


def size_bin(area: Any, bins: Mapping[str, tuple[float, float]] = SIZE_BINS) -> np.ndarray:
    """The name of the bin ``lo <= area < hi`` of each area."""
    area = np.atleast_1d(np.asarray(area, dtype=np.float64))
    out = np.full(area.shape, "", dtype=object)
    for name, (lo, hi) in bins.items():
        out[(area >= lo) & (area < hi)] = name
    if (out == "").any():
        raise ValueError(f"areas {area[out == ''][:3]} fall in no bin of {dict(bins)}")
    return out
