"""KITTI-style average precision: 11-point (R11) and 40-point (R40) interpolation, greedy matching of
detections to ground truth under any box IoU (3-D or bird's-eye), and "don't care" ground truth
(RTM3D chapter, ``notebooks/eccv2020/rtm3d.ipynb``).

KITTI's devkit reads the interpolated precision ``P~(r) = max_{r' >= r} P(r')`` at the recalls
``{0, 0.1, .., 1}`` (R11, the papers of 2020 and before) or ``{1/40, 2/40, .., 1}`` (R40, the devkit since
2019, which drops the recall 0 that R11 scores for free) and averages them.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from cvtutor.metrics.detection import (
    average_precision,
    match_greedy,
)

R11 = np.linspace(0.0, 1.0, 11)
R40 = np.linspace(1.0 / 40, 1.0, 40)
POINTS = {"R11": R11, "R40": R40}


def kitti_average_precision(scores, is_tp, n_gt: int, points: str = "R40") -> float:
    """AP in [0, 1] of one class's detections (``is_tp`` flags, any order) against ``n_gt`` objects."""
    if points not in POINTS:
        raise ValueError(f"points must be 'R11' or 'R40', got {points!r}")
    return average_precision(scores, is_tp, n_gt, POINTS[points])


def match_images(dets: Sequence[tuple[np.ndarray, np.ndarray]], gts: Sequence[tuple[np.ndarray, np.ndarray]],
                 iou: Callable[[np.ndarray, np.ndarray], np.ndarray], threshold: float
                 ) -> tuple[np.ndarray, np.ndarray, int]:
    """Per image ``dets[i] = (boxes, scores)``, ``gts[i] = (boxes, ignore)``; ``iou(a, b) -> (len a, len b)``.

    Detections in descending score take the unmatched GT of highest IoU >= ``threshold``; one matched to an
    ignored ("don't care") GT, or unmatched but overlapping one, counts neither way (KITTI's rule).
    Returns the scores and TP flags of the counted detections and the number of counted GT.
    """
    if len(dets) != len(gts):
        raise ValueError(f"dets and gts must list the same images, got {len(dets)} and {len(gts)}")
    all_s, all_tp, n_gt = [], [], 0
    for (db, ds), (gb, ign) in zip(dets, gts):
        ds, ign = np.asarray(ds, float), np.asarray(ign, bool)
        n_gt += int((~ign).sum())
        if len(ds) == 0:
            continue
        order = np.argsort(-ds, kind="mergesort")
        m = iou(np.asarray(db)[order], np.asarray(gb)) if len(gb) else np.zeros((len(ds), 0))
        matched, ignored = match_greedy(m, threshold, crowd=ign)
        hit_ign = (matched >= 0) & ign[np.maximum(matched, 0)] if len(gb) else np.zeros(len(ds), bool)
        keep = ~ignored & ~hit_ign
        all_s.append(ds[order][keep])
        all_tp.append((matched >= 0)[keep])
    s = np.concatenate(all_s) if all_s else np.zeros(0)
    tp = np.concatenate(all_tp) if all_tp else np.zeros(0, bool)
    return s, tp, n_gt
