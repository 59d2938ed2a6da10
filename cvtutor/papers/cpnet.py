"""Corner Proposal Network (CPN): anchor-free, two-stage object detection (Duan et al., ECCV 2020).

Stage 1 finds objects as corner pairs: per class a top-left (TL) and a bottom-right (BR) heatmap
(CornerNet's focal loss, α = 2, β = 4, on Gaussian targets of radius :func:`gaussian_radius`) with
sub-cell offsets; the top-K corners of each type; **every valid pair** (same class, x_tl < x_br,
y_tl < y_br) is a proposal (:func:`valid_pairs`), no embedding grouping. Stage 2 classifies each
proposal from RoIAlign features (7×7): a light **binary** classifier on the box feature map (Eq. 1,
:func:`proposal_loss`) removes most proposals (threshold 0.2 at test time), then a **multi-class**
classifier on the category feature map (Eq. 2, :func:`class_loss`) rescores the survivors; the
training loss is Eq. 3 (:func:`cpn_loss`). A survivor gets up to two labels (the corners' class and
the regional class), each scored by the fusion ``(s1 + 0.5)(s2 + 0.5) / 2.25`` (:func:`fuse_scores`),
then soft-NMS (:func:`soft_nms`) keeps the top 100.

The miniature: shape scenes of :mod:`cvtutor.data.shape_scenes` (the scene world's detection
renderer, TIDE's data) with boxes of aspect ratio 1:1 to 8:1 in either orientation that may
overlap (:func:`cpn_scenes`); a tiny hourglass (:class:`cvtutor.nn.hourglass.TinyHourglass`) with
corner pooling (:mod:`cvtutor.nn.corner_pool`); baselines are CornerNet's associative-embedding
grouping (:func:`embedding_loss`, :func:`group_by_embedding`) on the same backbone, and a fixed
anchor set (ratios {1/2, 1, 2} × 3 scales, :func:`anchor_set`) whose *oracle* recall (the best
anchor per object, no regression) bounds any anchor-based proposer; its closed form is
:func:`anchor_iou_bound`. Evaluation is pycocotools' ``COCOeval``: AP, and the paper's average
false discovery rate AF = 1 - ÃP over IoU thresholds 0.05:0.05:0.5 (:func:`coco_metrics`).
"""
from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou, roi_align

from cvtutor import report
from cvtutor.data.coco import read_coco, to_coco_json
from cvtutor.data.shape_scenes import ShapeScenes, gt_frame, random_colors
from cvtutor.metrics.detection import make_detection_set
from cvtutor.nn.centernet import focal_loss
from cvtutor.nn.corner_pool import CornerPooling
from cvtutor.nn.hourglass import TinyHourglass
from cvtutor.runtime import ProfileConfig, get_device
from cvtutor.train import fit, minibatches

CLASS_NAMES = ("box", "ellipse", "triangle", "diamond")
"""The four classes: the shape inscribed in the box (:func:`cvtutor.data.shape_scenes.shape_primitives`)."""

ASPECT_BINS = ((1.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, 8.01))
"""Long/short side bins of the Table 1 miniature (the paper: 5:1, 6:1, 7:1, 8:1 on COCO)."""

PRIOR = 0.1
"""Prior probability π of the classifier biases: b = -log((1 - π)/π) ≈ -2.197 (Sect. 3.2)."""

# ---------------------------------------------------------------------------------------------
# the paper's numbers (the only hard-coded results)
# ---------------------------------------------------------------------------------------------
PAPER = {
    "table1": report.PaperTable(
        "Table 1 (COCO val, ≤ 1000 proposals)", "AR (%) at aspect ratio 8:1",
        {"Faster R-CNN": 23.2, "FCOS": 23.4, "CornerNet": 36.5, "CenterNet": 32.3, "CPN": 35.4},
        better="higher", note="AR_5:1 / 6:1 / 7:1: Faster R-CNN 43.8 / 43.0 / 34.3, CPN 54.4 / 50.6 / 46.2."),
    "table1_ar": report.PaperTable(
        "Table 1", "AR (%) over all objects",
        {"Faster R-CNN": 57.6, "FCOS": 64.9, "CornerNet": 66.8, "CenterNet": 66.8, "CPN": 68.8},
        better="higher"),
    "table2": report.PaperTable(
        "Table 2 (CornerNet HG-52, COCO val)", "AP (%)",
        {"original": 37.6, "refined": 53.8, "correct": 60.3}, better="higher",
        note="refined: non-object detections removed with the GT; correct: the GT class assigned."),
    "table4": report.PaperTable(
        "Table 4 (CPN HG-52, COCO val)", "AP (%)",
        {"neither": 38.6, "B only": 42.0, "M only": 42.4, "both": 43.8}, better="higher"),
    "table4_ar": report.PaperTable(
        "Table 4", "AR100 (%)", {"neither": 57.4, "B only": 60.5, "M only": 59.0, "both": 60.9},
        better="higher"),
    "table5": report.PaperTable(
        "Table 5 (HG-52, COCO val)", "AF (%), lower is better",
        {"CornerNet": 40.4, "CenterNet": 35.1, "CPN": 33.4}, better="lower"),
    "table6": report.PaperTable(
        "Table 6 (CornerNet HG-52)", "AP (%)", {"embedding": 38.3, "B-classifier": 42.3},
        better="higher"),
    "proposals_per_image": 2500,   # Sect. 3.2, K = 70
    "survival_fraction": 0.2,      # Sect. 3.3, threshold 0.2
}


# ---------------------------------------------------------------------------------------------
# the data: overlapping shapes of aspect ratio 1:1 to 8:1
# ---------------------------------------------------------------------------------------------
def cpn_scenes(n_images: int, size: int = 48, n_classes: int = 4, min_objects: int = 1,
               max_objects: int = 6, max_aspect: float = 8.0, min_short: float | None = None,
               max_overlap: float = 0.3, seed: int = 0, device: torch.device | str = "cpu") -> ShapeScenes:
    """``n_images`` scenes of ``min_objects..max_objects`` shapes whose long/short side ratio is
    log-uniform in [1, ``max_aspect``] (either orientation), long side log-uniform in
    [max(``size``/5, ``min_short``·ratio), ``size`` - 4] (``min_short`` default: 4 px, less if a
    ``max_aspect`` box would not fit); a candidate is accepted when its IoU with
    every accepted box is <= ``max_overlap`` (later objects are painted over earlier ones)."""
    if n_images < 1 or not 1 <= n_classes <= len(CLASS_NAMES):
        raise ValueError(f"need n_images >= 1 and 1 <= n_classes <= {len(CLASS_NAMES)}, got {n_images}, {n_classes}")
    if not 1 <= min_objects <= max_objects or max_aspect < 1 or size < 16:
        raise ValueError(f"need 1 <= min_objects <= max_objects, max_aspect >= 1, size >= 16; got "
                         f"{min_objects}, {max_objects}, {max_aspect}, {size}")
    min_short = min(4.0, (size - 4) / max_aspect) if min_short is None else min_short
    if min_short * max_aspect > size - 4:
        raise ValueError(f"a {max_aspect}:1 box with short side {min_short} does not fit in {size} px")
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(seed)

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=g, device=device)

    n, m, k = n_images, max_objects, 12 * max_objects
    wanted = torch.randint(min_objects, max_objects + 1, (n,), generator=g, device=device)
    ratio = (uniform(n, k) * math.log(max_aspect)).exp()
    lo = torch.clamp(min_short * ratio, min=size / 5).log()
    long = (lo + uniform(n, k) * (math.log(size - 4) - lo)).exp()
    short = long / ratio
    wide = uniform(n, k) < 0.5
    w, h = torch.where(wide, long, short), torch.where(wide, short, long)
    cand = torch.stack([uniform(n, k) * (size - w), uniform(n, k) * (size - h), w, h], -1)
    cand_labels = torch.randint(0, n_classes, (n, k), generator=g, device=device)
    boxes = torch.zeros(n, m, 4, device=device)
    labels = torch.zeros(n, m, dtype=torch.long, device=device)
    valid = torch.zeros(n, m, dtype=torch.bool, device=device)
    count = torch.zeros(n, dtype=torch.long, device=device)
    rows = torch.arange(n, device=device)
    for j in range(k):
        c = cand[:, j]
        iou = batched_iou_xywh(c[:, None], boxes)[:, 0]                       # (n, m)
        ok = ~((iou > max_overlap) & valid).any(1) & (count < wanted)
        r, slot = rows[ok], count[ok]
        boxes[r, slot], labels[r, slot], valid[r, slot] = c[ok], cand_labels[ok, j], True
        count += ok.long()
    background = 0.6 + 0.35 * uniform(n)
    colors = random_colors(uniform(n, m), 0.25 + 0.3 * uniform(n, m))
    return ShapeScenes(boxes, labels, valid, colors, background, gt_frame(boxes, labels, valid), size,
                       n_classes, 0.04, seed)


def batched_iou_xywh(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of ``[x, y, w, h]`` boxes ``a`` (B, P, 4) and ``b`` (B, Q, 4) -> (B, P, Q)."""
    lo = torch.maximum(a[:, :, None, :2], b[:, None, :, :2])
    hi = torch.minimum(a[:, :, None, :2] + a[:, :, None, 2:], b[:, None, :, :2] + b[:, None, :, 2:])
    inter = (hi - lo).clamp_min(0).prod(-1)
    union = a[..., 2:].prod(-1)[:, :, None] + b[..., 2:].prod(-1)[:, None, :] - inter
    return inter / union.clamp_min(1e-9)


def aspect_ratio(w: Any, h: Any) -> np.ndarray:
    """Long side over short side."""
    w, h = np.asarray(w, float), np.asarray(h, float)
    return np.maximum(w, h) / np.maximum(np.minimum(w, h), 1e-9)


# ---------------------------------------------------------------------------------------------
# stage 1 targets: CornerNet's Gaussian corners (and the COCO reader)
# ---------------------------------------------------------------------------------------------
def gaussian_radius(height: Any, width: Any, min_overlap: float = 0.3) -> Any:
    """CornerNet's corner radius r: moving the corners by up to r keeps IoU >= ``min_overlap``
    with the box, for the three worst cases (both corners moved together, both inwards, both
    outwards); the smallest root of each quadratic (CornerNet's code takes the larger root of the
    first two, a known slip; we take the root that makes the statement true). Tensors or floats."""
    if not 0 < min_overlap < 1:
        raise ValueError(f"min_overlap must be in (0, 1), got {min_overlap}")
    h = torch.as_tensor(height, dtype=torch.float64)
    w = torch.as_tensor(width, dtype=torch.float64)
    t = min_overlap
    b1, c1 = h + w, w * h * (1 - t) / (1 + t)
    r1 = (b1 - torch.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2, c2 = 2 * (h + w), (1 - t) * w * h
    r2 = (b2 - torch.sqrt(b2 ** 2 - 16 * c2)) / 8
    b3, c3 = -2 * t * (h + w), (t - 1) * w * h
    r3 = (b3 + torch.sqrt(b3 ** 2 - 16 * t * c3)) / (8 * t)
    r = torch.minimum(torch.minimum(r1, r2), r3).clamp_min(0)
    return float(r) if r.ndim == 0 and not isinstance(height, torch.Tensor) else r


def corner_targets(boxes: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, n_classes: int,
                   out_hw: tuple[int, int], stride: int = 4, min_overlap: float = 0.3) -> dict[str, torch.Tensor]:
    """CornerNet's targets for padded GT ``boxes`` (B, M, 4) ``[x, y, w, h]`` (input pixels),
    ``labels`` (B, M) in 0..C-1, ``valid`` (B, M).

    Each corner p (TL = (x, y), BR = (x + w, y + h)) falls in the cell ⌊p / stride⌋ (clamped to the
    map); its heatmap target is exp(-d² / 2σ²) within the radius r = ⌊gaussian_radius⌋ (of the box
    in output cells), σ = (2r + 1)/6, the max over objects, exactly 1 at the corner; its offset
    target is p / stride - ⌊p / stride⌋. Returns ``tl_heat``, ``br_heat`` (B, C, h, w),
    ``tl_index``, ``br_index`` (B, M) (flat cells), ``tl_offset``, ``br_offset`` (B, M, 2), ``valid``."""
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or labels.shape != boxes.shape[:2] or valid.shape != boxes.shape[:2]:
        raise ValueError(f"need boxes (B, M, 4), labels (B, M), valid (B, M); got {tuple(boxes.shape)}, "
                         f"{tuple(labels.shape)}, {tuple(valid.shape)}")
    h, w = out_hw
    boxes = boxes.float()
    dev = boxes.device
    radius = gaussian_radius(boxes[..., 3] / stride, boxes[..., 2] / stride, min_overlap).floor().float()
    sigma = ((2 * radius + 1) / 6).to(dev)                                       # (B, M)
    xs = torch.arange(w, device=dev, dtype=torch.float32)
    ys = torch.arange(h, device=dev, dtype=torch.float32)
    onehot = F.one_hot(labels.clamp(0, n_classes - 1), n_classes).float() * valid[..., None]
    hi = torch.tensor([w - 1.0, h - 1.0], device=dev)
    out: dict[str, torch.Tensor] = {"valid": valid}
    for name, point in (("tl", boxes[..., :2]), ("br", boxes[..., :2] + boxes[..., 2:])):
        p = point / stride
        cell = p.floor().clamp(min=torch.zeros(2, device=dev), max=hi)
        dx = xs[None, None] - cell[..., 0, None]                                  # (B, M, w)
        dy = ys[None, None] - cell[..., 1, None]                                  # (B, M, h)
        d2 = dy[..., :, None] ** 2 + dx[..., None, :] ** 2                         # (B, M, h, w)
        r = radius.to(dev)[..., None, None]
        inside = (dx.abs()[..., None, :] <= r) & (dy.abs()[..., :, None] <= r)
        gauss = torch.exp(-d2 / (2 * sigma[..., None, None] ** 2)) * inside * valid[..., None, None]
        heat = (onehot[..., None, None] * gauss[:, :, None]).amax(1) if boxes.shape[1] else \
            torch.zeros(boxes.shape[0], n_classes, h, w, device=dev)
        out[f"{name}_heat"] = heat
        out[f"{name}_index"] = (cell[..., 1] * w + cell[..., 0]).long()
        out[f"{name}_offset"] = p - cell
    return out


def coco_corner_targets(source: Any, image_id: int, stride: int = 4, min_overlap: float = 0.3,
                        categories: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
    """CornerNet corner targets (:func:`corner_targets`) of one image of a COCO instances file
    (``images`` with ``width``/``height``, ``annotations`` with ``bbox = [x, y, w, h]``,
    ``category_id``, ``categories``), at output stride ``stride``; crowd boxes are left out. The
    class index is the position of the category id in ``categories`` (default: the file's sorted
    category ids). Raises ``FileNotFoundError``/``ValueError`` naming what is missing."""
    data = read_coco(source)
    images = data.images.set_index("id")
    if int(image_id) not in images.index:
        raise ValueError(f"image id {image_id} is not in the COCO file (has {list(images.index[:5])}...)")
    im = images.loc[int(image_id)]
    if "width" not in im or "height" not in im or pd.isna(im.get("width")) or pd.isna(im.get("height")):
        raise ValueError(f"COCO image {image_id} needs 'width' and 'height' to size the heatmaps")
    cats = sorted(data.categories["id"].astype(int)) if categories is None else [int(c) for c in categories]
    anns = data.annotations[data.annotations["image_id"] == int(image_id)]
    if "iscrowd" in anns:
        anns = anns[anns["iscrowd"].fillna(0).astype(int) == 0]
    unknown = sorted(set(anns["category_id"].astype(int)) - set(cats))
    if unknown:
        raise ValueError(f"annotations use category ids {unknown} not in categories {cats}")
    boxes = torch.tensor(anns[["x", "y", "w", "h"]].to_numpy(np.float32))[None].reshape(1, -1, 4)
    labels = torch.tensor([cats.index(int(c)) for c in anns["category_id"]], dtype=torch.long)[None]
    out_hw = (math.ceil(int(im["height"]) / stride), math.ceil(int(im["width"]) / stride))
    t = corner_targets(boxes, labels, torch.ones_like(labels, dtype=torch.bool), len(cats), out_hw, stride, min_overlap)
    return {k: v[0] for k, v in t.items()}


# ---------------------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------------------
def prior_bias(prior: float = PRIOR) -> float:
    """The bias b = -log((1 - π)/π) that starts a sigmoid at π (RetinaNet; -2.197 for π = 0.1)."""
    if not 0 < prior < 1:
        raise ValueError(f"prior must be in (0, 1), got {prior}")
    return -math.log((1 - prior) / prior)


class CornerHead(nn.Module):
    """One corner type: corner pooling, then the heatmap (C, bias at the prior), the offset (2) and
    CornerNet's 1-D embedding (the baseline's grouping, unused by CPN's proposals)."""

    def __init__(self, width: int, n_classes: int, corner: str) -> None:
        super().__init__()
        self.pool = CornerPooling(width, corner)

        def head(c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(width, c_out, 1))

        self.heat, self.offset, self.embed = head(n_classes), head(2), head(1)
        nn.init.constant_(self.heat[-1].bias, prior_bias())

    def forward(self, f: torch.Tensor) -> dict[str, torch.Tensor]:
        p = self.pool(f)
        return {"heat": self.heat(p), "offset": self.offset(p), "embed": self.embed(p)}


class CornerProposalNet(nn.Module):
    """CPN on a tiny hourglass: ``forward(images)`` gives the stage-1 maps ``tl_heat``, ``br_heat``
    (logits, B × C × h × w), ``tl_offset``, ``br_offset``, ``tl_embed``, ``br_embed``, and the
    **box feature map** and **category feature map** that stage 2 reads with RoIAlign.

    Stage 2: :meth:`objectness` (the binary classifier, Eq. 1) and :meth:`classify` (the C-way
    classifier, Eq. 2), each a linear map of the 7×7 RoIAlign features: the paper's "32×7×7" and
    "256×7×7 convolution layer", a 7×7 convolution on a 7×7 input, i.e. a fully connected layer."""

    def __init__(self, n_classes: int = 4, width: int = 24, depth: int = 2, box_channels: int = 16,
                 class_channels: int = 32, stride: int = 4, roi: int = 7) -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        self.n_classes, self.stride, self.roi = n_classes, stride, roi
        self.backbone = TinyHourglass(3, joints=width, width=width, depth=depth, stride=stride)
        self.tl, self.br = CornerHead(width, n_classes, "tl"), CornerHead(width, n_classes, "br")
        self.box_map = nn.Sequential(nn.ReLU(), nn.Conv2d(width, box_channels, 3, padding=1), nn.ReLU())
        self.class_map = nn.Sequential(nn.ReLU(), nn.Conv2d(width, class_channels, 3, padding=1), nn.ReLU())
        self.binary = nn.Linear(box_channels * roi * roi, 1)
        self.multi = nn.Linear(class_channels * roi * roi, n_classes)
        nn.init.constant_(self.binary.bias, prior_bias())
        nn.init.constant_(self.multi.bias, prior_bias())

    @property
    def factor(self) -> int:
        return self.backbone.factor

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.backbone(images)
        out = {f"tl_{k}": v for k, v in self.tl(f).items()}
        out.update({f"br_{k}": v for k, v in self.br(f).items()})
        out["box_map"], out["class_map"] = self.box_map(f), self.class_map(f)
        return out

    def objectness(self, box_map: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """Logits of p_m (P,) for ``rois`` (P, 5) ``[batch, x1, y1, x2, y2]`` in input pixels."""
        return self.binary(roi_features(box_map, rois, self.stride, self.roi).flatten(1))[:, 0]

    def classify(self, class_map: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """Logits of q_{m,c} (P, C)."""
        return self.multi(roi_features(class_map, rois, self.stride, self.roi).flatten(1))


def roi_features(fmap: torch.Tensor, rois: torch.Tensor, stride: int = 4, size: int = 7) -> torch.Tensor:
    """RoIAlign (Mask R-CNN) ``size``×``size`` features of ``rois`` (P, 5) ``[batch, x1, y1, x2, y2]``
    (input pixels) on a stride-``stride`` map: (P, C, size, size), 2×2 samples per bin, aligned."""
    if rois.ndim != 2 or rois.shape[1] != 5:
        raise ValueError(f"rois must be (P, 5) [batch, x1, y1, x2, y2], got {tuple(rois.shape)}")
    return roi_align(fmap, rois.to(fmap.dtype), (size, size), spatial_scale=1.0 / stride, sampling_ratio=2,
                     aligned=True)


# ---------------------------------------------------------------------------------------------
# stage 1: corners and their pairs
# ---------------------------------------------------------------------------------------------
def _gather(maps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """maps (B, K, h, w), flat cells index (B, M) -> (B, M, K)."""
    b, k = maps.shape[:2]
    return maps.reshape(b, k, -1).gather(2, index[:, None, :].expand(-1, k, -1)).transpose(1, 2)


@torch.no_grad()
def top_corners(heat_logits: torch.Tensor, offset: torch.Tensor, k: int, stride: int = 4) -> dict[str, torch.Tensor]:
    """The top ``k`` corners over all classes of one corner type: cells that are the max of their
    3×3 neighbourhood in their class channel (CornerNet's max-pool NMS). Returns ``score`` (B, k),
    ``cls`` (B, k), ``cell`` (B, k) flat cells, ``xy`` (B, k, 2) in input pixels with the offset."""
    heat = torch.sigmoid(heat_logits.float())
    b, c, h, w = heat.shape
    heat = heat * (F.max_pool2d(heat, 3, 1, 1) == heat)
    k = min(k, c * h * w)
    score, flat = heat.reshape(b, -1).topk(k)
    cls, cell = flat // (h * w), flat % (h * w)
    xy = (torch.stack([cell % w, cell // w], -1).float() + _gather(offset.float(), cell)) * stride
    return {"score": score, "cls": cls, "cell": cell, "xy": xy}


def valid_pairs(tl_cls: torch.Tensor, tl_xy: torch.Tensor, br_cls: torch.Tensor, br_xy: torch.Tensor) -> torch.Tensor:
    """(B, K_tl, K_br) bool: pair (i, j) is valid when both corners have one class and the TL lies
    strictly above-left of the BR, x_tl < x_br and y_tl < y_br (Sect. 3.2, stage 1)."""
    if tl_xy.shape[-1] != 2 or br_xy.shape[-1] != 2 or tl_cls.shape != tl_xy.shape[:2] or br_cls.shape != br_xy.shape[:2]:
        raise ValueError(f"need cls (B, K) and xy (B, K, 2) per corner type, got {tuple(tl_cls.shape)}, "
                         f"{tuple(tl_xy.shape)}, {tuple(br_cls.shape)}, {tuple(br_xy.shape)}")
    same = tl_cls[:, :, None] == br_cls[:, None, :]
    left = tl_xy[:, :, None, 0] < br_xy[:, None, :, 0]
    above = tl_xy[:, :, None, 1] < br_xy[:, None, :, 1]
    return same & left & above


@torch.no_grad()
def corner_proposals(out: Mapping[str, torch.Tensor], k: int, stride: int = 4) -> dict[str, torch.Tensor]:
    """Every valid pair of the top-``k`` TL and BR corners, flattened over the batch: ``rois`` (P, 5)
    ``[batch, x1, y1, x2, y2]``, ``cls`` (P,), ``s1`` (P,) the mean of the two corner scores,
    ``tl``/``br`` (P,) the corners' slots, ``tl_cell``/``br_cell`` (P,), ``emb_gap`` (P,) =
    |e_tl - e_br| (CornerNet's grouping distance) and ``n_per_image`` (B,)."""
    tl = top_corners(out["tl_heat"], out["tl_offset"], k, stride)
    br = top_corners(out["br_heat"], out["br_offset"], k, stride)
    ok = valid_pairs(tl["cls"], tl["xy"], br["cls"], br["xy"])
    b, i, j = ok.nonzero(as_tuple=True)
    e_tl = _gather(out["tl_embed"].float(), tl["cell"])[..., 0]
    e_br = _gather(out["br_embed"].float(), br["cell"])[..., 0]
    rois = torch.cat([b[:, None].float(), tl["xy"][b, i], br["xy"][b, j]], 1)
    return {"rois": rois, "cls": tl["cls"][b, i], "s1": (tl["score"][b, i] + br["score"][b, j]) / 2,
            "tl": i, "br": j, "tl_cell": tl["cell"][b, i], "br_cell": br["cell"][b, j],
            "emb_gap": (e_tl[b, i] - e_br[b, j]).abs(), "n_per_image": ok.flatten(1).sum(1)}


def group_by_embedding(gap: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """CornerNet's grouping: a valid pair is an object when its embeddings are closer than 0.5."""
    return gap < threshold


# ---------------------------------------------------------------------------------------------
# losses: CornerNet's (stage 1), Eq. 1 and Eq. 2 (stage 2), Eq. 3 (total)
# ---------------------------------------------------------------------------------------------
def offset_loss(pred: torch.Tensor, index: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """CornerNet's L_off: smooth-L1 between the predicted and true offsets at the true corners,
    averaged over objects. ``pred`` (B, 2, h, w), ``index`` (B, M), ``target`` (B, M, 2)."""
    err = F.smooth_l1_loss(_gather(pred.float(), index), target, reduction="none").sum(-1)
    return (err * valid).sum() / valid.sum().clamp_min(1)


def embedding_loss(tl_embed: torch.Tensor, br_embed: torch.Tensor, t: Mapping[str, torch.Tensor],
                   margin: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """CornerNet's associative embedding (the baseline): L_pull = 1/N Σ (e_tl - ē)² + (e_br - ē)²,
    L_push = 1/(N(N-1)) Σ_{j≠k} max(0, Δ - |ē_k - ē_j|), per image, Δ = ``margin``."""
    valid = t["valid"].float()
    e_tl = _gather(tl_embed.float(), t["tl_index"])[..., 0]
    e_br = _gather(br_embed.float(), t["br_index"])[..., 0]
    mean = (e_tl + e_br) / 2
    n = valid.sum(1)                                                           # (B,)
    pull = (((e_tl - mean) ** 2 + (e_br - mean) ** 2) * valid).sum(1) / n.clamp_min(1)
    pairs = valid[:, :, None] * valid[:, None, :] * (1 - torch.eye(valid.shape[1], device=valid.device))
    gap = F.relu(margin - (mean[:, :, None] - mean[:, None, :]).abs())
    push = (gap * pairs).sum((1, 2)) / (n * (n - 1)).clamp_min(1)
    return pull.mean(), push.mean()


def _focal_terms(logits: torch.Tensor, positive: torch.Tensor, gamma: float) -> torch.Tensor:
    """Element-wise (1 - p)^γ log p (positives) or p^γ log(1 - p) (negatives), negated."""
    logits = logits if logits.dtype == torch.float64 else logits.float()
    p = torch.sigmoid(logits)
    pos = (1 - p) ** gamma * F.logsigmoid(logits)
    neg = p ** gamma * F.logsigmoid(-logits)
    return -torch.where(positive, pos, neg)


def proposal_loss(logits: torch.Tensor, iou: torch.Tensor, tau: float = 0.7, alpha: float = 2.0) -> torch.Tensor:
    """Eq. 1, the binary classifier:

        L_prop = -1/N Σ_m { (1 - p_m)^α log p_m        if IoU_m >= τ,
                            p_m^α log(1 - p_m)          otherwise },

    ``logits`` (M,) of p_m, ``iou`` (M,) the max IoU of each proposal with any GT box, N the number
    of positives (at least 1), α = 2, τ = 0.7."""
    if logits.shape != iou.shape or logits.ndim != 1:
        raise ValueError(f"logits and iou must be (M,) each, got {tuple(logits.shape)} and {tuple(iou.shape)}")
    positive = iou >= tau
    return _focal_terms(logits, positive, alpha).sum() / positive.sum().clamp_min(1)


def class_loss(logits: torch.Tensor, iou: torch.Tensor, tau: float = 0.7, beta: float = 2.0) -> torch.Tensor:
    """Eq. 2, the multi-class classifier:

        L_class = -1/N̂ Σ_m Σ_c { (1 - q_mc)^β log q_mc     if IoU_mc >= τ,
                                 q_mc^β log(1 - q_mc)       otherwise },

    ``logits`` (M̂, C) of q_{m,c}, ``iou`` (M̂, C) the max IoU of proposal m with the GT boxes of
    class c, N̂ the number of positive (m, c) (at least 1), β = 2."""
    if logits.shape != iou.shape or logits.ndim != 2:
        raise ValueError(f"logits and iou must be (M, C) each, got {tuple(logits.shape)} and {tuple(iou.shape)}")
    positive = iou >= tau
    return _focal_terms(logits, positive, beta).sum() / positive.sum().clamp_min(1)


def proposal_ious(rois: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor,
                  n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU_m (P,) (max over the image's GT) and IoU_{m,c} (P, C) (max over its GT of class c) of
    ``rois`` (P, 5) against padded GT ``boxes`` (B, M, 4) ``[x, y, w, h]`` (torchvision ``box_iou``)."""
    p = rois.shape[0]
    iou_c = torch.zeros(p, n_classes, device=rois.device)
    gt = torch.cat([boxes[..., :2], boxes[..., :2] + boxes[..., 2:]], -1)
    for b in rois[:, 0].long().unique().tolist():
        sel = rois[:, 0].long() == b
        v = valid[b]
        if not v.any():
            continue
        iou = box_iou(rois[sel, 1:], gt[b][v])                                  # (P_b, G)
        onehot = F.one_hot(labels[b][v], n_classes).bool()                     # (G, C)
        iou_c[sel] = torch.where(onehot[None], iou[:, :, None], torch.zeros(())).amax(1)
    return iou_c.amax(1), iou_c


def jitter_boxes(boxes: torch.Tensor, valid: torch.Tensor, n: int, scale: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` copies of each valid GT box with each side moved by N(0, (``scale``·size)²): the
    "augmented positive training data" of Sect. 3.3. Returns rois (P, 5)."""
    b, m = valid.nonzero(as_tuple=True)
    gt = boxes[b, m].repeat(n, 1)
    wh = gt[:, 2:].repeat(1, 2)
    xyxy = torch.cat([gt[:, :2], gt[:, :2] + gt[:, 2:]], 1)
    noise = torch.randn(xyxy.shape, generator=generator, device=boxes.device) * scale * wh
    xyxy = xyxy + noise
    xyxy = torch.cat([torch.minimum(xyxy[:, :2], xyxy[:, 2:] - 1), torch.maximum(xyxy[:, 2:], xyxy[:, :2] + 1)], 1)
    return torch.cat([b.repeat(n)[:, None].float(), xyxy], 1)


def cpn_loss(model: CornerProposalNet, out: Mapping[str, torch.Tensor], boxes: torch.Tensor, labels: torch.Tensor,
             valid: torch.Tensor, config: Config, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Eq. 3, L = L_det^corner + L_off^corner + L_prop + L_class, plus the baseline's embedding terms
    (weight ``config.embed_weight``; CornerNet's 0.1) that only the CornerNet comparison reads.

    Stage-2 training proposals: the valid pairs of the current top-``k_train`` corners (at most
    ``max_train_proposals`` per batch, a random subset), which L_prop sees; L_class sees the step-1
    survivors (p >= ``threshold``) and ``n_jitter`` jittered copies of each GT box (early in
    training nothing survives; the copies are our reading of the paper's "augmented positive
    training data", kept out of L_prop so that its positives stay as rare as at test time)."""
    c = model.n_classes
    hw = tuple(out["tl_heat"].shape[-2:])
    t = corner_targets(boxes, labels, valid, c, hw, model.stride, config.min_overlap)
    det = focal_loss(out["tl_heat"], t["tl_heat"]) + focal_loss(out["br_heat"], t["br_heat"])
    off = offset_loss(out["tl_offset"], t["tl_index"], t["tl_offset"], valid) + \
        offset_loss(out["br_offset"], t["br_index"], t["br_offset"], valid)
    pull, push = embedding_loss(out["tl_embed"], out["br_embed"], t)
    props = corner_proposals(out, config.k_train, model.stride)["rois"]
    if len(props) > config.max_train_proposals:
        keep = torch.randperm(len(props), generator=generator, device=props.device)[:config.max_train_proposals]
        props = props[keep]
    aug = jitter_boxes(boxes, valid, config.n_jitter, config.jitter, generator)
    iou, iou_c = proposal_ious(props, boxes, labels, valid, c)
    p_logits = model.objectness(out["box_map"], props)
    prop = proposal_loss(p_logits, iou, config.tau, config.alpha)
    survive = torch.sigmoid(p_logits.detach()) >= config.threshold
    rois = torch.cat([props[survive], aug])
    iou_aug = proposal_ious(aug, boxes, labels, valid, c)[1]
    q_logits = model.classify(out["class_map"], rois)
    cls = class_loss(q_logits, torch.cat([iou_c[survive], iou_aug]), config.tau, config.beta)
    loss = det + off + prop + cls + config.embed_weight * (pull + push)
    return {"loss": loss, "corner": det, "offset": off, "prop": prop, "class": cls, "pull": pull, "push": push,
            "positives": (iou >= config.tau).float().mean()}


# ---------------------------------------------------------------------------------------------
# inference: fusion, soft-NMS
# ---------------------------------------------------------------------------------------------
def fuse_scores(s1: Any, s2: Any) -> Any:
    """The final score s_c = (s1 + 0.5)(s2 + 0.5), rescaled into [0, 1] by its maximum 2.25 (the
    paper says "normalization" without the formula: dividing by the maximum is our reading)."""
    return (s1 + 0.5) * (s2 + 0.5) / 2.25


def soft_nms(boxes: np.ndarray, scores: np.ndarray, method: str = "gaussian", sigma: float = 0.5,
             iou_threshold: float = 0.5, score_threshold: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Soft-NMS (Bodla et al. 2017) of ``boxes`` (N, 4) ``[x1, y1, x2, y2]``: repeatedly keep the
    best box and decay the others' scores by exp(-IoU²/σ) (``"gaussian"``), by (1 - IoU) where
    IoU > ``iou_threshold`` (``"linear"``), or to 0 there (``"hard"``: plain NMS). Returns the kept
    indices (in order of selection) and their decayed scores, dropping scores < ``score_threshold``."""
    if method not in ("gaussian", "linear", "hard"):
        raise ValueError(f"method must be 'gaussian', 'linear' or 'hard', got {method!r}")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    s = np.asarray(scores, np.float64).copy()
    if len(s) != len(boxes):
        raise ValueError(f"need one score per box, got {len(s)} scores for {len(boxes)} boxes")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    alive = np.ones(len(s), bool)
    keep, kept_scores = [], []
    while alive.any():
        i = int(np.flatnonzero(alive)[np.argmax(s[alive])])
        if s[i] < score_threshold:
            break
        keep.append(i)
        kept_scores.append(s[i])
        alive[i] = False
        rest = np.flatnonzero(alive)
        if not len(rest):
            break
        lo = np.maximum(boxes[i, :2], boxes[rest, :2])
        hi = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.clip(hi - lo, 0, None).prod(1)
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-12)
        if method == "gaussian":
            s[rest] *= np.exp(-iou ** 2 / sigma)
        elif method == "linear":
            s[rest] *= np.where(iou > iou_threshold, 1 - iou, 1.0)
        else:
            s[rest] *= np.where(iou > iou_threshold, 0.0, 1.0)
    return np.asarray(keep, np.int64), np.asarray(kept_scores)


VARIANTS = ("embedding", "neither", "B only", "M only", "both")
"""Scoring variants: CornerNet's embedding grouping; CPN with neither / one / both classifiers."""


@torch.no_grad()
def detect(model: CornerProposalNet, images: torch.Tensor, config: Config, variants: Sequence[str] = VARIANTS,
           image_offset: int = 1) -> dict[str, Any]:
    """Detections of every variant on ``images`` (B, 3, S, S), as frames (image ids from
    ``image_offset``, category ids 1..C), plus the raw corner proposals of Table 1.

    ``embedding``: valid pairs with |e_tl - e_br| < 0.5, score s1, the corners' class (CornerNet).
    ``neither``: every valid pair, score s1, the corners' class. ``B only``: the pairs with
    p >= ``threshold``, score s1, the corners' class (the B-classifier as the objectness test).
    ``M only`` (every pair) and ``both`` (the survivors): up to two labels per pair, the corners'
    class and the regional argmax, each scored by :func:`fuse_scores` of s1 (the two corners'
    heatmap values for that class, averaged) and s2 = q_c. Then per class soft-NMS, top
    ``max_dets`` per image."""
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}; expected some of {VARIANTS}")
    was = model.training
    model.eval()
    out = model(images)
    pr = corner_proposals(out, config.k, model.stride)
    rois, cls, s1 = pr["rois"], pr["cls"], pr["s1"]
    p = torch.sigmoid(model.objectness(out["box_map"], rois)) if len(rois) else torch.zeros(0)
    q = torch.sigmoid(model.classify(out["class_map"], rois)) if len(rois) else torch.zeros(0, model.n_classes)
    b = rois[:, 0].long()
    tl_h = torch.sigmoid(out["tl_heat"].float()).flatten(2)                     # (B, C, hw)
    br_h = torch.sigmoid(out["br_heat"].float()).flatten(2)
    corner_c = (tl_h[b, :, pr["tl_cell"]] + br_h[b, :, pr["br_cell"]]) / 2        # (P, C)
    survive = p >= config.threshold
    model.train(was)
    rows = {}
    for v in variants:
        if v in ("embedding", "neither", "B only"):
            keep = {"embedding": group_by_embedding(pr["emb_gap"]), "neither": torch.ones_like(survive),
                    "B only": survive}[v]
            idx, lab, score = keep.nonzero()[:, 0], cls[keep], s1[keep]
        else:
            base = survive if v == "both" else torch.ones_like(survive)
            idx0 = base.nonzero()[:, 0]
            reg = q[idx0].argmax(1)
            idx = torch.cat([idx0, idx0[reg != cls[idx0]]])
            lab = torch.cat([cls[idx0], reg[reg != cls[idx0]]])
            score = fuse_scores(corner_c[idx, lab], q[idx, lab])
        rows[v] = _nms_frame(rois[idx].cpu().numpy(), lab.cpu().numpy(), score.cpu().numpy(), config, image_offset)
    raw = rois.cpu().numpy()
    proposals = pd.DataFrame({"image_id": raw[:, 0].astype(int) + image_offset, "x": raw[:, 1], "y": raw[:, 2],
                              "w": raw[:, 3] - raw[:, 1], "h": raw[:, 4] - raw[:, 2],
                              "score": s1.cpu().numpy(), "p": p.cpu().numpy()})
    return {"dets": rows, "proposals": proposals, "n_proposals": pr["n_per_image"].cpu().numpy(),
            "survival": float(survive.float().mean()) if len(survive) else float("nan")}


def _nms_frame(rois: np.ndarray, labels: np.ndarray, scores: np.ndarray, config: Config, offset: int) -> pd.DataFrame:
    """Per image and class soft-NMS, then the top ``max_dets`` of each image, as a detection frame."""
    img = rois[:, 0].astype(int)
    ks, ss, cs, ims = [], [], [], []
    for i in np.unique(img):
        k_i, s_i, c_i = [], [], []
        for c in np.unique(labels[img == i]):
            sel = np.flatnonzero((img == i) & (labels == c))
            keep, s = soft_nms(rois[sel, 1:], scores[sel], config.nms, config.nms_sigma)
            k_i.append(sel[keep])
            s_i.append(s)
            c_i.append(np.full(len(keep), c + 1))
        k_i, s_i, c_i = np.concatenate(k_i), np.concatenate(s_i), np.concatenate(c_i)
        top = np.argsort(-s_i, kind="stable")[:config.max_dets]
        ks.append(k_i[top])
        ss.append(s_i[top])
        cs.append(c_i[top])
        ims.append(np.full(len(top), i + offset))
    if not ks:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in ("image_id", "category_id", "x", "y", "w", "h", "score")})
    k = np.concatenate(ks)
    r = rois[k]
    return pd.DataFrame({"image_id": np.concatenate(ims), "category_id": np.concatenate(cs), "x": r[:, 1],
                         "y": r[:, 2], "w": r[:, 3] - r[:, 1], "h": r[:, 4] - r[:, 2], "score": np.concatenate(ss)})


# ---------------------------------------------------------------------------------------------
# metrics: COCO AP / AR and the average false discovery rate AF
# ---------------------------------------------------------------------------------------------
AF_IOUS = np.round(np.arange(0.05, 0.501, 0.05), 2)
"""IoU thresholds of ÃP (footnote 1): 0.05, 0.10, ..., 0.50."""


def coco_metrics(gt: pd.DataFrame, dets: pd.DataFrame, n_images: int, n_classes: int) -> dict[str, float]:
    """pycocotools ``COCOeval`` (bbox, ≤ 100 detections) of a detection frame against the GT frame:
    AP, AP50, AP75, AR100 (all in %), and AF = 1 - ÃP with ÃP over IoU 0.05:0.05:0.5, AF5, AF25,
    AF50 at single thresholds (%, lower is better)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    data = make_detection_set(gt, dets, images=range(1, n_images + 1),
                              categories={c + 1: CLASS_NAMES[c] for c in range(n_classes)})
    gt_json, res = to_coco_json(data)
    out: dict[str, float] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt_json
        coco.createIndex()
        if not res:
            return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "AR100": 0.0, "AF": 100.0, "AF5": 100.0,
                    "AF25": 100.0, "AF50": 100.0}
        dt = coco.loadRes(res)
        for name, thrs in (("coco", None), ("af", AF_IOUS)):
            ev = COCOeval(coco, dt, "bbox")
            if thrs is not None:
                ev.params.iouThrs = thrs
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            if thrs is None:
                out.update(AP=100 * ev.stats[0], AP50=100 * ev.stats[1], AP75=100 * ev.stats[2],
                           AR100=100 * ev.stats[8])
            else:
                prec = ev.eval["precision"][:, :, :, 0, -1]                  # (T, R, K) area all, 100 dets

                def ap(sel: Any, prec: np.ndarray = prec) -> float:
                    v = prec[sel]
                    return float(v[v > -1].mean()) if (v > -1).any() else 0.0

                out["AF"] = 100 * (1 - ap(slice(None)))
                for t in (5, 25, 50):
                    out[f"AF{t}"] = 100 * (1 - ap(np.isclose(thrs, t / 100)))
    return out


def refine_and_correct(gt: pd.DataFrame, dets: pd.DataFrame, iou_threshold: float = 0.5) -> dict[str, pd.DataFrame]:
    """Table 2's oracles: ``refined`` drops the detections whose IoU with every GT box of their
    image is below ``iou_threshold`` (non-objects removed with the GT); ``correct`` also gives each
    survivor the class of its best-overlapping GT box."""
    keep, label = np.zeros(len(dets), bool), dets["category_id"].to_numpy().copy()
    d = dets.reset_index(drop=True)
    for img, rows in d.groupby("image_id").groups.items():
        g = gt[gt["image_id"] == img]
        if not len(g):
            continue
        a = torch.tensor(d.loc[rows, ["x", "y", "w", "h"]].to_numpy(np.float32))
        bx = torch.tensor(g[["x", "y", "w", "h"]].to_numpy(np.float32))
        iou = box_iou(torch.cat([a[:, :2], a[:, :2] + a[:, 2:]], 1), torch.cat([bx[:, :2], bx[:, :2] + bx[:, 2:]], 1))
        best, arg = iou.max(1)
        keep[np.asarray(rows)] = (best >= iou_threshold).numpy()
        label[np.asarray(rows)] = g["category_id"].to_numpy()[arg.numpy()]
    refined = d[keep]
    return {"original": d, "refined": refined, "correct": refined.assign(category_id=label[keep])}


# ---------------------------------------------------------------------------------------------
# the anchor baseline: a fixed anchor set, its oracle recall and its closed-form bound
# ---------------------------------------------------------------------------------------------
def anchor_set(size: int, stride: int, scales: Sequence[float], ratios: Sequence[float] = (0.5, 1.0, 2.0)) -> torch.Tensor:
    """Faster R-CNN's anchors: at the centre of every stride cell, one box per scale (√area, input
    pixels) and ratio (w/h). Returns (A, 4) ``[x1, y1, x2, y2]``."""
    if not scales or not ratios or min(scales) <= 0 or min(ratios) <= 0:
        raise ValueError(f"need positive scales and ratios, got {scales}, {ratios}")
    c = (torch.arange(0, size, stride, dtype=torch.float32) + stride / 2)
    cy, cx = torch.meshgrid(c, c, indexing="ij")
    wh = torch.tensor([[s * math.sqrt(r), s / math.sqrt(r)] for s in scales for r in ratios])
    ctr = torch.stack([cx.ravel(), cy.ravel()], -1)
    half = wh[None] / 2
    return torch.cat([ctr[:, None] - half, ctr[:, None] + half], -1).reshape(-1, 4)


def anchor_iou_bound(box_aspect: Any, anchor_aspects: Sequence[float] = (0.5, 1.0, 2.0)) -> np.ndarray:
    """The best IoU any anchor of the given aspects (w/h), at any scale and position, can reach with
    a box of aspect r = ``box_aspect`` (long/short, either orientation): for the nearest anchor
    aspect a <= r (long/short), s/(2 - s) with s = √(a/r) (a centred anchor of width s·w, the box's
    height... derived in the notebook), 1 when r is an anchor aspect."""
    r = np.asarray(box_aspect, float)
    long_aspects = np.array(sorted({max(a, 1 / a) for a in anchor_aspects}))
    best = np.zeros_like(r)
    for a in long_aspects:
        s = np.sqrt(np.minimum(a, r) / np.maximum(a, r))
        best = np.maximum(best, s / (2 - s))
    return best


def oracle_recall(gt: pd.DataFrame, proposals: pd.DataFrame | torch.Tensor, ious: Sequence[float] = tuple(
        np.round(np.arange(0.5, 0.951, 0.05), 2)), top: int | None = None) -> pd.DataFrame:
    """Per GT object the best IoU with its image's proposals (a frame with ``image_id, x, y, w, h``
    and ``score``: the top ``top`` by score; or one (A, 4) xyxy tensor shared by every image, e.g.
    the anchors), class-agnostic, and the recall at each IoU threshold. Returns the GT frame with
    ``best_iou``, ``aspect`` and ``recall`` (the mean over ``ious`` of best_iou >= t, COCO's AR)."""
    g = gt.reset_index(drop=True).copy()
    gxy = torch.tensor(g[["x", "y", "w", "h"]].to_numpy(np.float32))
    gxy = torch.cat([gxy[:, :2], gxy[:, :2] + gxy[:, 2:]], 1)
    best = np.zeros(len(g))
    if isinstance(proposals, torch.Tensor):
        if len(g):
            best = box_iou(gxy, proposals.float()).max(1).values.numpy()
    else:
        p = proposals
        for img, rows in g.groupby("image_id").groups.items():
            pi = p[p["image_id"] == img]
            if top is not None:
                pi = pi.nlargest(top, "score")
            if not len(pi):
                continue
            b = torch.tensor(pi[["x", "y", "w", "h"]].to_numpy(np.float32))
            b = torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], 1)
            best[np.asarray(rows)] = box_iou(gxy[np.asarray(rows)], b).max(1).values.numpy()
    g["best_iou"] = best
    g["aspect"] = aspect_ratio(g["w"], g["h"])
    g["recall"] = np.mean([best >= t - 1e-9 for t in ious], 0)
    return g


def recall_by_aspect(frames: Mapping[str, pd.DataFrame], bins: Sequence[tuple[float, float]] = ASPECT_BINS) -> pd.DataFrame:
    """Table 1 in miniature: AR (%) per method (rows) and aspect bin (columns), plus "all"."""
    rows = {}
    for name, g in frames.items():
        row = {"all": 100 * g["recall"].mean()}
        for lo, hi in bins:
            sel = (g["aspect"] >= lo) & (g["aspect"] < hi)
            row[f"{lo:g}-{min(hi, 8):g}:1"] = 100 * g.loc[sel, "recall"].mean() if sel.any() else float("nan")
        rows[name] = row
    return pd.DataFrame(rows).T


# ---------------------------------------------------------------------------------------------
# configuration, training, experiments
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config(ProfileConfig):
    size: int = 48
    n_classes: int = 4
    max_objects: int = 6
    n_train: int = 512
    n_test: int = 100
    width: int = 24
    depth: int = 2
    box_channels: int = 16
    class_channels: int = 32
    k: int = 12               # top-K corners at test time (the paper: 70)
    k_train: int = 12
    max_train_proposals: int = 256
    n_jitter: int = 1
    jitter: float = 0.08
    min_overlap: float = 0.3  # CornerNet's Gaussian radius
    tau: float = 0.7
    alpha: float = 2.0
    beta: float = 2.0
    threshold: float = 0.2    # step-1 survival at test time
    embed_weight: float = 0.1
    nms: str = "gaussian"
    nms_sigma: float = 0.5
    max_dets: int = 100
    anchor_scales: tuple = (8.0, 16.0, 32.0)
    steps: int = 200
    batch: int = 32
    lr: float = 2e-3
    seeds: tuple = (0,)
    device: str | None = None

    @classmethod
    def fast(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        return cls(size=128, n_train=6000, n_test=300, width=64, depth=3, box_channels=32, class_channels=64,
                   k=40, k_train=40, max_train_proposals=2048, anchor_scales=(16.0, 40.0, 100.0), steps=1500,
                   batch=32, lr=1e-3, seeds=(0, 1, 2))

    @classmethod
    def smoke(cls) -> Config:
        """``full``'s code paths (depth-3 hourglass, three seeds' loop shortened to two) at toy size."""
        return cls.full().replace(size=32, n_train=16, n_test=4, width=8, box_channels=8, class_channels=8, k=8,
                                  k_train=8, max_train_proposals=64, anchor_scales=(4.0, 8.0, 16.0), steps=3,
                                  batch=4, seeds=(0, 1))


def make_model(config: Config) -> CornerProposalNet:
    return CornerProposalNet(config.n_classes, config.width, config.depth, config.box_channels,
                             config.class_channels)


def scenes(config: Config, split: str, seed: int = 0, device: torch.device | str = "cpu") -> ShapeScenes:
    """Training or test scenes (different seeds)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    n = config.n_train if split == "train" else config.n_test
    return cpn_scenes(n, config.size, config.n_classes, max_objects=config.max_objects,
                      min_short=min(4.0, (config.size - 4) / 8), seed=2 * seed + (split == "test") + 24_000,
                      device=device)


def train(config: Config, seed: int = 0, device: torch.device | str | None = None,
          progress: bool = True) -> tuple[CornerProposalNet, pd.DataFrame]:
    """Train CPN end to end on Eq. 3 with Adam (the paper's optimiser; cosine decay here) via
    :func:`cvtutor.train.fit`; the training images are rendered once, each batch gets fresh noise."""
    device = get_device(config.device) if device is None else torch.device(device)
    torch.manual_seed(seed)
    model = make_model(config).to(device)
    tr = scenes(config, "train", seed, device)
    clean = torch.cat([tr.render(torch.arange(i, min(i + 256, len(tr)), device=device))
                       for i in range(0, len(tr), 256)])
    pick = minibatches(torch.arange(len(tr), device=device), batch_size=config.batch, seed=seed)
    g = torch.Generator(device=device).manual_seed(seed)

    def batch(step: int):
        (idx,) = pick(step)
        noise = torch.randn(clean[idx].shape, generator=torch.Generator(device=device).manual_seed(step),
                            device=device) * tr.noise
        return (clean[idx] + noise).clamp(0, 1), tr.boxes[idx], tr.labels[idx], tr.valid[idx]

    def loss(models, b, step):
        images, boxes, labels, valid = b
        return cpn_loss(models["model"], models["model"](images), boxes, labels, valid, config, g)

    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, config.steps) / config.steps)))
    history = fit(model, opt, batch, loss, steps=config.steps, schedulers=sched, grad_clip=10.0,
                  progress=progress, desc=f"CPN seed {seed}")
    return model, history


def test_images(te: ShapeScenes) -> torch.Tensor:
    """The test images with their (fixed) pixel noise."""
    return torch.cat([te.render(torch.arange(i, min(i + 256, len(te)), device=te.boxes.device), step=10_000 + i)
                      for i in range(0, len(te), 256)])


def evaluate(model: CornerProposalNet, config: Config, seed: int = 0) -> dict[str, Any]:
    """Every table of one trained model on the test scenes of ``seed``."""
    device = next(model.parameters()).device
    te = scenes(config, "test", seed, device)
    images = test_images(te)
    frames = {v: [] for v in VARIANTS}
    props, n_props, surv = [], [], []
    t0 = time.perf_counter()
    for i in range(0, len(te), 50):
        d = detect(model, images[i:i + 50], config, image_offset=i + 1)
        for v in VARIANTS:
            frames[v].append(d["dets"][v])
        props.append(d["proposals"])
        n_props.append(d["n_proposals"])
        surv.append(d["survival"])
    seconds = time.perf_counter() - t0
    dets = {v: pd.concat(f, ignore_index=True) for v, f in frames.items()}
    proposals = pd.concat(props, ignore_index=True)
    gt, n, c = te.gt, len(te), config.n_classes
    metrics = pd.DataFrame({v: coco_metrics(gt, d, n, c) for v, d in dets.items()}).T
    t2 = refine_and_correct(gt, dets["embedding"])
    table2 = pd.DataFrame({k: coco_metrics(gt, d, n, c) for k, d in t2.items()}).T[["AP", "AR100"]]
    anchors = anchor_set(config.size, 4, config.anchor_scales)
    recall = {"anchors (oracle)": oracle_recall(gt, anchors),
              "corner pairs (top 100)": oracle_recall(gt, proposals, top=100),
              "CPN detections": oracle_recall(gt, dets["both"].assign(
                  category_id=1), top=config.max_dets)}
    table1 = recall_by_aspect(recall)
    bound = anchor_iou_bound(recall["anchors (oracle)"]["aspect"].to_numpy())
    n_props = np.concatenate(n_props)
    return {"metrics": metrics, "table2": table2, "table1": table1, "recall": recall,
            "anchor_bound_ok": bool((recall["anchors (oracle)"]["best_iou"].to_numpy() <= bound + 1e-5).all()),
            "proposals_per_image": float(n_props.mean()), "survival": float(np.nanmean(surv)) if np.isfinite(surv).any() else float("nan"),
            "seconds_per_image": seconds / n, "dets": dets, "test": te, "images": images, "proposals": proposals}


@torch.no_grad()
def example_images(model: CornerProposalNet, ev: Mapping[str, Any], config: Config, n: int = 3) -> dict[str, Any]:
    """What the notebook's figures show of the first ``n`` test images, as storable data: the images
    (n, S, S, 3), the TL/BR heatmaps (max over classes, n × h × w), the GT, every corner proposal
    with its objectness p, and the CornerNet / CPN detections."""
    images = ev["images"][:n]
    was = model.training
    out = model.eval()(images)
    model.train(was)
    ids = set(range(1, n + 1))

    def first(df: pd.DataFrame) -> pd.DataFrame:
        return df[df["image_id"].isin(ids)].reset_index(drop=True)

    heat = {k: torch.sigmoid(out[f"{k}_heat"]).amax(1).cpu().numpy().round(3) for k in ("tl", "br")}
    return {"images": images.permute(0, 2, 3, 1).cpu().numpy().round(3), "tl_heat": heat["tl"],
            "br_heat": heat["br"], "gt": first(ev["test"].gt),
            "proposals": first(ev["proposals"]), "cornernet": first(ev["dets"]["embedding"]),
            "cpn": first(ev["dets"]["both"])}


def run(config: Config, progress: bool = True) -> dict:
    """Train CPN per seed, evaluate every variant, build Tables 1, 2, 4, 5, 6 and the findings."""
    device = get_device(config.device)
    hist, per_seed, example = [], [], None
    for seed in config.seeds:
        model, h = train(config, seed, device, progress)
        ev = evaluate(model, config, seed)
        hist.append(h.assign(seed=seed))
        per_seed.append(ev)
        if example is None:
            example = example_images(model, ev, config)
    metrics = pd.concat([e["metrics"].assign(seed=s) for e, s in zip(per_seed, config.seeds)])
    m = metrics.groupby(level=0).mean(numeric_only=True).drop(columns="seed")
    table1 = pd.concat([e["table1"] for e in per_seed]).groupby(level=0).mean()
    table1 = table1.loc[list(per_seed[0]["table1"].index)]
    table2 = pd.concat([e["table2"] for e in per_seed]).groupby(level=0).mean().loc[["original", "refined", "correct"]]

    def seeds_of(variant: str, col: str) -> np.ndarray:
        return np.atleast_1d(np.asarray(metrics.loc[variant, col], float))

    t4 = m.loc[["neither", "B only", "M only", "both"], ["AP", "AP50", "AP75", "AR100"]]
    t5 = m.loc[["embedding", "both"], ["AF", "AF5", "AF25", "AF50"]].rename(index={"embedding": "CornerNet",
                                                                                     "both": "CPN"})
    t6 = m.loc[["embedding", "B only"], ["AP", "AP50", "AP75", "AR100"]].rename(
        index={"embedding": "embedding", "B only": "B-classifier"})
    hi_bin = table1.columns[-1]
    anchor_hi, corner_hi = table1.loc["anchors (oracle)", hi_bin], table1.loc["corner pairs (top 100)", hi_bin]
    anchors_all = pd.concat([e["recall"]["anchors (oracle)"] for e in per_seed])
    extreme = anchors_all[anchors_all["aspect"] >= 5]
    prop_per_img = np.mean([e["proposals_per_image"] for e in per_seed])
    survival = float(np.nanmean([e["survival"] for e in per_seed])) if any(
        np.isfinite(e["survival"]) for e in per_seed) else float("nan")
    ap = {v: seeds_of(v, "AP") for v in VARIANTS}
    af = {v: seeds_of(v, "AF") for v in VARIANTS}
    findings = report.claims_table({
        "no anchor beats the closed-form IoU bound s/(2 - s) (Table 1's mechanism)": (
            "sanity check", all(e["anchor_bound_ok"] for e in per_seed),
            f"{len(anchors_all)} objects checked"),
        "anchors reach IoU 0.5 with no object of aspect >= 5:1 (bound 0.46 at 5:1)": (
            "construction", bool(len(extreme) > 0 and (extreme["best_iou"] < 0.5).all()),
            f"{len(extreme)} objects, best anchor IoU max {extreme['best_iou'].max():.2f}" if len(extreme) else
            "no such object"),
        f"corner proposals recall more {hi_bin} objects than the anchor oracle (Table 1)": (
            "paper claim", bool(corner_hi > anchor_hi), f"AR {corner_hi:.1f} vs {anchor_hi:.1f}"),
        "CPN with both classifiers beats neither (Table 4)": (
            "paper claim", bool(ap["both"].mean() > ap["neither"].mean()),
            f"AP {report.mean_std(ap['both'])} vs {report.mean_std(ap['neither'])}"),
        "the B-classifier alone beats neither (Table 4)": (
            "paper claim", bool(ap["B only"].mean() > ap["neither"].mean()),
            f"AP {report.mean_std(ap['B only'])} vs {report.mean_std(ap['neither'])}"),
        "the M-classifier alone beats neither (Table 4)": (
            "paper claim", bool(ap["M only"].mean() > ap["neither"].mean()),
            f"AP {report.mean_std(ap['M only'])} vs {report.mean_std(ap['neither'])}"),
        "both classifiers beat either alone (Table 4, complementary)": (
            "paper claim", bool(ap["both"].mean() > max(ap["B only"].mean(), ap["M only"].mean())),
            f"AP {report.mean_std(ap['both'])} vs {report.mean_std(ap['B only'])} / {report.mean_std(ap['M only'])}"),
        "the B-classifier is a better objectness test than embedding grouping (Table 6)": (
            "paper claim", bool(ap["B only"].mean() > ap["embedding"].mean()),
            f"AP {report.mean_std(ap['B only'])} vs {report.mean_std(ap['embedding'])}"),
        "CPN has a lower AF than CornerNet grouping (Table 5)": (
            "paper claim", bool(af["both"].mean() < af["embedding"].mean()),
            f"AF {report.mean_std(af['both'])} vs {report.mean_std(af['embedding'])}"),
        "removing non-objects, then relabelling, raises CornerNet's AP (Table 2)": (
            "paper claim", bool(table2.loc["correct", "AP"] >= table2.loc["refined", "AP"] > table2.loc["original", "AP"]),
            " → ".join(f"{v:.1f}" for v in table2["AP"])),
        "step 1 removes most proposals at threshold 0.2 (Sect. 3.3: about 80 %)": (
            "paper claim", bool(survival < 0.5) if np.isfinite(survival) else None,
            f"{100 * survival:.0f} % survive"),
    })
    compare4 = report.compare(PAPER["table4"], {k: float(t4.loc[k, "AP"]) for k in t4.index},
                              claims=["both > B only", "both > M only", "B only > neither", "M only > neither"],
                              ).drop(columns="diff")
    compare5 = report.compare(PAPER["table5"], {k: float(t5.loc[k, "AF"]) for k in t5.index},
                              claims=["CPN < CornerNet"]).drop(columns="diff")
    compare6 = report.compare(PAPER["table6"], {k: float(t6.loc[k, "AP"]) for k in t6.index},
                              claims=["B-classifier > embedding"]).drop(columns="diff")
    compare2 = report.compare(PAPER["table2"], {k: float(table2.loc[k, "AP"]) for k in table2.index},
                              claims=["refined > original", "correct > refined"]).drop(columns="diff")
    return {"history": pd.concat(hist, ignore_index=True), "metrics": metrics.reset_index(names="variant"),
            "table1": table1, "table2": table2, "table4": t4, "table5": t5, "table6": t6,
            "compare_table2": compare2, "compare_table4": compare4, "compare_table5": compare5,
            "compare_table6": compare6, "proposals_per_image": float(prop_per_img), "survival": float(survival),
            "seconds_per_image": float(np.mean([e["seconds_per_image"] for e in per_seed])),
            "example": example, "findings": findings}
