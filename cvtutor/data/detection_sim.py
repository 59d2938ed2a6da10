"""Synthetic detection worlds: random scenes of boxes, and a detector simulator with known errors.

:func:`random_scenes` places 1–8 non-overlapping boxes of 5 classes on a 640×480 canvas, with
sizes spanning TIDE's XS–XL bins. :func:`simulate_detector` turns that ground truth into the
output of an imaginary detector that makes each of TIDE's six error types at a rate *we choose*,
and records which error it injected where, so an analysis tool can be checked against the truth:

* each GT gets exactly one outcome: a true positive (box jittered to IoU >= 0.7, right class),
  a classification error (IoU >= 0.6, wrong class), a localisation error (IoU in [0.15, 0.45],
  right class), a "both" error (IoU in [0.15, 0.45], wrong class) or a miss (no detection);
* a true positive gets a duplicate (IoU >= 0.55, same class, lower score) with probability ``dupe``;
* each image gets Poisson(``bkg``) background boxes (IoU < 0.05 with every GT);
* true positives score Beta(5, 2), errors Beta(2, 4) (the digest's choice).

:func:`render_scene` draws a scene as an RGB image (class k is drawn as shape k in colour k).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from cvtutor.metrics.detection import DET_COLUMNS, GT_COLUMNS, box_iou, size_bin

OUTCOMES = ("TP", "Cls", "Loc", "Both", "Miss")
SHAPES = ("square", "disc", "triangle", "diamond", "cross")
COLORS = ((0.90, 0.30, 0.25), (0.20, 0.55, 0.90), (0.25, 0.75, 0.35), (0.95, 0.70, 0.15), (0.65, 0.35, 0.85))


@dataclass(frozen=True)
class ErrorRates:
    """How often the simulated detector makes each error.

    ``cls, loc, both, miss``: probability that a GT gets that outcome (the rest are TPs);
    ``dupe``: probability that a TP also gets a lower-scoring duplicate;
    ``bkg``: mean number of background boxes per image.
    ``tp_score`` and ``err_score``: Beta parameters of the confidence of TPs and of errors.
    """

    cls: float = 0.05
    loc: float = 0.08
    both: float = 0.03
    miss: float = 0.10
    dupe: float = 0.05
    bkg: float = 0.5
    tp_score: tuple[float, float] = (5.0, 2.0)
    err_score: tuple[float, float] = (2.0, 4.0)

    def __post_init__(self) -> None:
        for name in ("cls", "loc", "both", "miss", "dupe"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"ErrorRates.{name} must be a probability in [0, 1], got {v}")
        if self.cls + self.loc + self.both + self.miss > 1.0 + 1e-12:
            raise ValueError("ErrorRates: cls + loc + both + miss must be <= 1 (they are exclusive outcomes of a GT)")
        if self.bkg < 0:
            raise ValueError(f"ErrorRates.bkg (background boxes per image) must be >= 0, got {self.bkg}")

    def replace(self, **changes) -> "ErrorRates":
        return ErrorRates(**{**asdict(self), **changes})

    def outcome_probs(self) -> np.ndarray:
        """Probabilities of the GT outcomes, in the order of :data:`OUTCOMES`."""
        return np.array([1.0 - self.cls - self.loc - self.both - self.miss, self.cls, self.loc, self.both, self.miss])


def random_scenes(n_images: int = 200, n_classes: int = 5, min_objects: int = 1, max_objects: int = 8,
                  width: int = 640, height: int = 480, min_side: float = 8.0, max_side: float = 340.0,
                  seed: int = 0) -> pd.DataFrame:
    """Ground truth of ``n_images`` scenes: disjoint boxes whose side (sqrt of area) is
    log-uniform in [min_side, max_side] and whose aspect ratio is in [1/2, 2].

    Returns the GT frame (columns of :data:`GT_COLUMNS`); image ids are 1..n_images, classes 1..n_classes.
    """
    if n_images < 1 or n_classes < 1:
        raise ValueError(f"need n_images >= 1 and n_classes >= 1, got {n_images}, {n_classes}")
    if not 1 <= min_objects <= max_objects:
        raise ValueError(f"need 1 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
    rng = np.random.default_rng(seed)
    rows = []
    for img in range(1, n_images + 1):
        n = int(rng.integers(min_objects, max_objects + 1))
        placed: list[list[float]] = []
        for _ in range(50 * n):
            if len(placed) == n:
                break
            side = float(np.exp(rng.uniform(np.log(min_side), np.log(max_side))))
            ar = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
            w, h = min(side * np.sqrt(ar), width - 2), min(side / np.sqrt(ar), height - 2)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            box = [x, y, w, h]
            margin = [x - 4, y - 4, w + 8, h + 8]
            if placed and box_iou([margin], placed).max() > 0:
                continue
            placed.append(box)
        for box in placed:
            rows.append([len(rows) + 1, img, int(rng.integers(1, n_classes + 1)), *box, 0])
    return pd.DataFrame(rows, columns=list(GT_COLUMNS))


def _iou_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a[..., 4] and b[..., 4] ([x, y, w, h]), elementwise with broadcasting."""
    iw = np.clip(np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    return inter / (a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter)


def boxes_with_iou(boxes, lo: float, hi: float, rng: np.random.Generator, tries: int = 100) -> np.ndarray:
    """For each box ([x, y, w, h], shape (N, 4)), a random box whose IoU with it lies in [lo, hi]
    (rejection sampling over random shifts and rescalings, 64 candidates per box and round)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.full_like(boxes, np.nan)
    todo = np.arange(len(boxes))
    k = 64
    for _ in range(tries):
        if len(todo) == 0:
            return out
        b = boxes[todo][:, None, :]
        mag = rng.uniform(0, 1.2, size=(len(todo), k, 1))
        shift = rng.uniform(-1, 1, size=(len(todo), k, 2)) * mag
        scale = np.exp(rng.uniform(-1, 1, size=(len(todo), k, 2)) * mag)
        wh = b[..., 2:] * scale
        xy = b[..., :2] + b[..., 2:] / 2 + shift * b[..., 2:] - wh / 2
        cand = np.concatenate([xy, wh], -1)
        iou = _iou_rows(cand, b)
        ok = (iou >= lo) & (iou <= hi)
        first = ok.argmax(1)
        found = ok.any(1)
        out[todo[found]] = cand[found, first[found]]
        todo = todo[~found]
    if len(todo):
        raise RuntimeError(f"could not sample boxes with IoU in [{lo}, {hi}] around {boxes[todo][:3]}")
    return out


def _background_box(gt_boxes: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    for _ in range(100):
        side = np.exp(rng.uniform(np.log(10), np.log(200), 32))
        ar = np.exp(rng.uniform(np.log(0.5), np.log(2.0), 32))
        w, h = side * np.sqrt(ar), side / np.sqrt(ar)
        cand = np.stack([rng.uniform(0, 1, 32) * (width - w), rng.uniform(0, 1, 32) * (height - h), w, h], 1)
        if len(gt_boxes) == 0:
            return cand[0]
        ok = np.flatnonzero(_iou_rows(cand[:, None], gt_boxes[None]).max(1) < 0.05)
        if len(ok):
            return cand[ok[0]]
    raise RuntimeError("could not place a background box; the scene is too crowded")


BOX_IOU_RANGES = {"TP": (0.7, 1.0), "Cls": (0.6, 1.0), "Loc": (0.15, 0.45), "Both": (0.15, 0.45), "Dupe": (0.55, 1.0)}
"""The IoU with its GT that the simulator gives each kind of detection."""


def simulate_detector(gt: pd.DataFrame, rates: ErrorRates = ErrorRates(), n_classes: int | None = None,
                      rates_by_size: Mapping[str, ErrorRates] | None = None, width: int = 640, height: int = 480,
                      seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Detections of an imaginary detector with known errors, and the truth about them.

    ``rates_by_size`` overrides ``rates`` for GT in a size bin (``"XS"``, ``"S"``, ``"M"``,
    ``"L"``, ``"XL"``). Returns ``(dets, injected)``: the detections (columns of
    :data:`DET_COLUMNS`) and one row per detection and per missed GT saying what was injected
    (``kind`` in TP, Cls, Loc, Both, Dupe, Bkg, Miss; ``gt_id`` the GT it came from or -1).
    """
    missing = [c for c in GT_COLUMNS if c not in gt.columns]
    if missing:
        raise ValueError(f"gt is missing the column(s) {missing}; expected {list(GT_COLUMNS)}")
    gt = gt.sort_values(["image_id", "id"], kind="mergesort").reset_index(drop=True)
    n_classes = int(gt["category_id"].max()) if n_classes is None else n_classes
    if n_classes < 2:
        raise ValueError("the simulator needs at least 2 classes to make classification errors")
    rng = np.random.default_rng(seed)
    n = len(gt)
    bins = size_bin(gt["w"].to_numpy() * gt["h"].to_numpy()) if n else np.zeros(0, object)
    per_gt = [rates if rates_by_size is None else rates_by_size.get(b, rates) for b in bins]
    # one outcome per GT, by inverse-CDF sampling of its rates
    cdf = np.array([np.cumsum(r.outcome_probs()) for r in per_gt]).reshape(n, len(OUTCOMES))
    outcome = np.minimum((rng.random((n, 1)) > cdf).sum(1), len(OUTCOMES) - 1)
    kind = np.array(OUTCOMES, dtype=object)[outcome]
    tp_beta = np.array([r.tp_score for r in per_gt]).reshape(n, 2)
    err_beta = np.array([r.err_score for r in per_gt]).reshape(n, 2)
    tp_score, err_score = rng.beta(tp_beta[:, 0], tp_beta[:, 1]), rng.beta(err_beta[:, 0], err_beta[:, 1])
    dupe = (kind == "TP") & (rng.random(n) < np.array([r.dupe for r in per_gt]))
    shift = rng.integers(1, n_classes, n)  # a wrong class: c + shift (mod n_classes)
    cls = gt["category_id"].to_numpy()
    wrong = (cls - 1 + shift) % n_classes + 1
    gt_boxes = gt[["x", "y", "w", "h"]].to_numpy(np.float64)
    frames = []
    for k in ("TP", "Cls", "Loc", "Both", "Dupe"):
        sel = np.flatnonzero(dupe if k == "Dupe" else kind == k)
        lo, hi = BOX_IOU_RANGES[k]
        score = {"TP": tp_score, "Dupe": tp_score * rng.uniform(0.2, 0.95, n)}.get(k, err_score)
        frames.append(pd.DataFrame({
            "image_id": gt["image_id"].to_numpy()[sel],
            "category_id": (wrong if k in ("Cls", "Both") else cls)[sel],
            **dict(zip("xywh", boxes_with_iou(gt_boxes[sel], lo, hi, rng).T)),
            "score": score[sel], "kind": k, "gt_id": gt["id"].to_numpy()[sel]}))
    bkg_rows = []
    by_image = {img: gt_boxes[idx] for img, idx in gt.groupby("image_id").indices.items()}
    for img in sorted(by_image):
        for _ in range(rng.poisson(rates.bkg)):
            bkg_rows.append({"image_id": img, "category_id": int(rng.integers(1, n_classes + 1)),
                             **dict(zip("xywh", _background_box(by_image[img], width, height, rng))),
                             "score": rng.beta(*rates.err_score), "kind": "Bkg", "gt_id": -1})
    frames.append(pd.DataFrame(bkg_rows, columns=frames[0].columns))
    all_dets = pd.concat(frames, ignore_index=True).sort_values(["image_id", "score"], ascending=[True, False],
                                                                kind="mergesort").reset_index(drop=True)
    all_dets["id"] = np.arange(1, len(all_dets) + 1)
    miss = gt.loc[kind == "Miss", ["image_id", "id"]].rename(columns={"id": "gt_id"}).assign(kind="Miss", det_id=-1)
    injected = pd.concat([all_dets[["id", "image_id", "kind", "gt_id"]].rename(columns={"id": "det_id"}), miss],
                         ignore_index=True)
    return all_dets[list(DET_COLUMNS)], injected


def injected_counts(injected: pd.DataFrame) -> pd.Series:
    """How many errors of each type were injected (TP excluded)."""
    kinds = ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss")
    return injected["kind"].value_counts().reindex(kinds, fill_value=0).rename("injected")


def render_scene(gt: pd.DataFrame, width: int = 640, height: int = 480, scale: float = 0.25) -> np.ndarray:
    """An RGB image (H, W, 3) in [0, 1] of one scene: class k drawn as ``SHAPES[k-1]`` in ``COLORS[k-1]``
    filling its box, on a light grey background; ``scale`` shrinks the canvas."""
    H, W = int(round(height * scale)), int(round(width * scale))
    img = np.full((H, W, 3), 0.93)
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    for r in gt.itertuples():
        x0, y0, w, h = r.x * scale, r.y * scale, r.w * scale, r.h * scale
        u, v = (xx - x0) / max(w, 1e-6), (yy - y0) / max(h, 1e-6)  # box coordinates in [0, 1]
        inside = (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
        k = (int(r.category_id) - 1) % len(SHAPES)
        du, dv = u - 0.5, v - 0.5
        shape = {
            0: inside,
            1: du**2 + dv**2 <= 0.25,
            2: inside & (np.abs(du) <= 0.5 * v),
            3: np.abs(du) + np.abs(dv) <= 0.5,
            4: inside & ((np.abs(du) <= 0.17) | (np.abs(dv) <= 0.17)),
        }[k]
        img[shape] = COLORS[k % len(COLORS)]
    return img
