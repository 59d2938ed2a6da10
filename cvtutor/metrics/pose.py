"""Pose metrics. Hands: EPE, PCK and AUC with validity masks (the hand3d ``EvalUtil`` convention).
Bodies (below): MPJPE, PA-MPJPE, ABS-MPJPE, 3DPCK and its AUC, PCP, PCKh, ordinal depth accuracy,
OKS and COCO keypoint AP (pycocotools).

Every hand statistic is computed **per joint first** (over the samples where that joint is valid) and
**then averaged over the joints**, as in hand3d's ``EvalUtil.get_measures`` and the papers that
use it (knowledge-as-priors digest, "Evaluation protocol"). Errors are in the unit of the inputs
(the book uses millimetres); thresholds are in the same unit. The body metrics pool all valid joints,
as the Human3.6M and MuPoTS-3D evaluation scripts do.
"""
from __future__ import annotations

import numpy as np
import torch

from cvtutor.data.geometry.procrustes import apply_similarity, umeyama


def _np(x, name: str) -> np.ndarray:
    if torch.is_tensor(x):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)


def _valid(valid, shape: tuple[int, int]) -> np.ndarray:
    if valid is None:
        return np.ones(shape, dtype=bool)
    v = _np(valid, "valid").astype(bool)
    if v.shape != shape:
        raise ValueError(f"valid must have shape (n, J) = {shape}, got {v.shape}")
    return v


def joint_errors(pred, gt) -> np.ndarray:
    """Euclidean error per sample and joint, ``e_nj = ‖X̂_nj - X_nj‖``: ``(n, J, D)`` inputs → ``(n, J)``."""
    p, g = _np(pred, "pred"), _np(gt, "gt")
    if p.shape != g.shape or p.ndim != 3:
        raise ValueError(f"pred and gt must both be (n, J, D); got {p.shape} and {g.shape}")
    return np.linalg.norm(p - g, axis=-1)


def _per_joint(errors: np.ndarray, valid: np.ndarray, fn) -> np.ndarray:
    out = np.full(errors.shape[1], np.nan)
    for j in range(errors.shape[1]):
        e = errors[valid[:, j], j]
        if e.size:
            out[j] = fn(e)
    return out


def epe_per_joint(pred, gt, valid=None, reduce: str = "mean") -> np.ndarray:
    """Per-joint mean (or median) end-point error over the samples where the joint is valid, ``(J,)``
    (NaN for a joint that is never valid)."""
    if reduce not in ("mean", "median"):
        raise ValueError(f"reduce must be 'mean' or 'median', got {reduce!r}")
    e = joint_errors(pred, gt)
    return _per_joint(e, _valid(valid, e.shape), np.mean if reduce == "mean" else np.median)


def epe(pred, gt, valid=None, reduce: str = "mean") -> float:
    """Mean EPE (hand3d convention): per joint the mean over valid samples, then the mean over joints.
    ``reduce="median"``: per-joint medians, averaged over the joints (hand3d's "median EPE")."""
    return float(np.nanmean(epe_per_joint(pred, gt, valid, reduce)))


def pck_curve(pred, gt, thresholds, valid=None) -> np.ndarray:
    """PCK at each threshold: per joint the fraction of valid samples with ``e ≤ t``, then the mean over
    joints. Returns ``(T,)``."""
    e = joint_errors(pred, gt)
    v = _valid(valid, e.shape)
    t = np.asarray(thresholds, dtype=float).reshape(-1)
    per_joint = np.stack([_per_joint(e, v, lambda x, tt=tt: np.mean(x <= tt)) for tt in t])  # (T, J)
    return np.nanmean(per_joint, axis=1)


def pck(pred, gt, threshold: float, valid=None) -> float:
    """3D (or 2D, for ``(n, J, 2)`` inputs) PCK at one threshold: per joint, then averaged."""
    return float(pck_curve(pred, gt, [threshold], valid)[0])


def pck_2d(pred_uv, gt_uv, threshold_px: float, valid=None) -> float:
    """2D PCK in pixels: the fraction of valid keypoints within ``threshold_px``, per joint then averaged."""
    if _np(pred_uv, "pred_uv").shape[-1] != 2:
        raise ValueError("pck_2d expects (n, J, 2) keypoints in pixels")
    return pck(pred_uv, gt_uv, threshold_px, valid)


def thresholds(t_min: float = 20.0, t_max: float = 50.0, steps: int = 31) -> np.ndarray:
    """``np.linspace(t_min, t_max, steps)`` (the step count differs between papers' scripts: report it)."""
    if not t_max > t_min:
        raise ValueError(f"need t_max > t_min, got [{t_min}, {t_max}]")
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    return np.linspace(t_min, t_max, steps)


def auc(pred, gt, t_min: float = 20.0, t_max: float = 50.0, steps: int = 31, valid=None) -> float:
    """Area under the PCK curve over ``[t_min, t_max]``, normalised to [0, 1]:
    ``AUC = trapz(PCK_j(t), t)/(t_max - t_min)`` per joint, then averaged over the joints (hand3d
    ``get_measures``). Default range 20-50 mm, the STB/RHD convention; never mix ranges in one table."""
    t = thresholds(t_min, t_max, steps)
    e = joint_errors(pred, gt)
    v = _valid(valid, e.shape)
    per_joint = np.stack([_per_joint(e, v, lambda x, tt=tt: np.mean(x <= tt)) for tt in t])  # (T, J)
    areas = np.trapezoid(per_joint, t, axis=0) / (t_max - t_min)
    return float(np.nanmean(areas))


def evaluate_3d(pred, gt, valid=None, t_min: float = 20.0, t_max: float = 50.0, steps: int = 31) -> dict:
    """All the 3D numbers a hand-pose table reports: mean and median EPE, AUC (with its range and step
    count) and the PCK curve."""
    t = thresholds(t_min, t_max, steps)
    return {"epe_mean": epe(pred, gt, valid), "epe_median": epe(pred, gt, valid, "median"),
            "auc": auc(pred, gt, t_min, t_max, steps, valid), "auc_range": (t_min, t_max), "steps": steps,
            "thresholds": t, "pck": pck_curve(pred, gt, t, valid)}


# ---- 3-D human pose (MPJPE family, MuPoTS 3DPCK) ------------------------------------------------
# Derived in the People, cameras and geometry chapter (notebooks/eccv2020/world_people.ipynb).
def _root_relative(x: np.ndarray, root: int | None) -> np.ndarray:
    return x if root is None else x - x[:, root:root + 1]


def mpjpe(pred, gt, root: int | None = 0, valid=None) -> float:
    """Mean per-joint position error after aligning the roots (Human3.6M protocol #1):
    ``mean_{n,j} ‖(X̂_nj - X̂_n,root) - (X_nj - X_n,root)‖`` over valid joints; ``root=None`` skips
    the alignment (see :func:`abs_mpjpe`)."""
    p, g = _np(pred, "pred"), _np(gt, "gt")
    e = joint_errors(_root_relative(p, root), _root_relative(g, root))
    return float(e[_valid(valid, e.shape)].mean())


def abs_mpjpe(pred, gt, valid=None) -> float:
    """Absolute MPJPE: no alignment at all, so the root's depth error counts (multi-person 3-D
    pose)."""
    return mpjpe(pred, gt, root=None, valid=valid)


def pa_mpjpe(pred, gt) -> float:
    """Procrustes-aligned MPJPE (protocol #2): each prediction is mapped by the similarity
    ``(s, R, t)`` that best fits it to the ground truth (:func:`cvtutor.data.geometry.umeyama`),
    then
    MPJPE without root alignment; 0 for any similarity copy of the ground truth."""
    p = torch.as_tensor(_np(pred, "pred"))
    g = torch.as_tensor(_np(gt, "gt"))
    if p.shape != g.shape or p.ndim != 3:
        raise ValueError(
            f"pred and gt must both be (n, J, 3); got {tuple(p.shape)} and {tuple(g.shape)}"
        )
    s, R, t = umeyama(p, g)
    return mpjpe(apply_similarity(s, R, t, p), g, root=None)


def pck3d(pred, gt, threshold: float = 150.0, root: int | None = 0, valid=None) -> float:
    """3DPCK (MuPoTS-3D): the fraction of valid joints within ``threshold`` (150 mm) after root
    alignment, over all joints of all samples."""
    p, g = _np(pred, "pred"), _np(gt, "gt")
    e = joint_errors(_root_relative(p, root), _root_relative(g, root))
    return float((e[_valid(valid, e.shape)] <= threshold).mean())


def auc3d(
    pred, gt, t_max: float = 150.0, steps: int = 31, root: int | None = 0, valid=None
) -> float:
    """Area under the 3DPCK curve over ``[0, t_max]`` (MuPoTS-3D: 0-150 mm), normalised to [0,
    1]."""
    t = np.linspace(0.0, t_max, steps)
    curve = np.array([pck3d(pred, gt, tt, root, valid) for tt in t])
    return float(np.trapezoid(curve, t) / t_max)


def pcp(pred, gt, bones, alpha: float = 0.5) -> float:
    """Percentage of correct parts (strict PCP): a bone ``(a, b)`` is correct when both predicted
    endpoints lie within ``α·‖X_a - X_b‖`` of their ground truth; the mean over bones and
    samples."""
    p, g = _np(pred, "pred"), _np(gt, "gt")
    e = joint_errors(p, g)
    a = np.array([i for i, _ in bones])
    b = np.array([j for _, j in bones])
    length = np.linalg.norm(g[:, a] - g[:, b], axis=-1)
    ok = (e[:, a] <= alpha * length) & (e[:, b] <= alpha * length)
    return float(ok.mean())


def pckh(pred_uv, gt_uv, head_size, alpha: float = 0.5, valid=None) -> float:
    """PCKh@α (MPII): the fraction of valid keypoints within ``α·head_size`` (per sample ``(n,)``,
    the head segment's length) of the ground truth."""
    e = joint_errors(pred_uv, gt_uv)
    h = _np(head_size, "head_size").reshape(-1, 1)
    if h.shape[0] != e.shape[0]:
        raise ValueError(
            f"head_size must have one entry per sample ({e.shape[0]}), got {h.shape[0]}"
        )
    return float((e <= alpha * h)[_valid(valid, e.shape)].mean())


def depth_order_accuracy(pred_z, gt_z, valid=None, min_gap: float = 0.0) -> float:
    """Ordinal depth accuracy (HMOR): over all pairs ``i < j`` of people (or joints) in a sample,
    ``(n, P)``, the fraction where ``sign(ẑ_i - ẑ_j) = sign(z_i - z_j)``; pairs whose true gap is at
    most ``min_gap`` (ties) are skipped."""
    p, g = _np(pred_z, "pred_z"), _np(gt_z, "gt_z")
    if p.shape != g.shape or p.ndim != 2:
        raise ValueError(f"pred_z and gt_z must both be (n, P); got {p.shape} and {g.shape}")
    v = _valid(valid, g.shape)
    i, j = np.triu_indices(g.shape[1], 1)
    dg, dp = g[:, i] - g[:, j], p[:, i] - p[:, j]
    use = v[:, i] & v[:, j] & (np.abs(dg) > min_gap)
    if not use.any():
        return float("nan")
    return float((np.sign(dg) == np.sign(dp))[use].mean())


# ---- COCO keypoints: OKS and AP (pycocotools is the reference) ---------------------------------
# per-keypoint falloffs σ_j of COCO's OKS (cocoapi), in COCO-17 order
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87,
                        .89, .89]) / 10


def oks(pred_uv, gt_uv, visible, area, sigmas=COCO_SIGMAS) -> np.ndarray:
    """Object keypoint similarity per instance ``(n,)``: ``Σ_j v_j exp(-d_j²/(2 s² k_j²)) / Σ_j
    v_j``
    with ``s² = area`` and ``k_j = 2σ_j`` (COCO's definition, as ``COCOeval.computeOks``)."""
    d2 = joint_errors(pred_uv, gt_uv) ** 2
    v = _np(visible, "visible") > 0
    k2 = (2 * np.asarray(sigmas)) ** 2
    e = d2 / k2 / (2 * (_np(area, "area").reshape(-1, 1) + np.spacing(1)))
    sim = np.exp(-e) * v
    return sim.sum(1) / np.maximum(v.sum(1), 1)


def coco_keypoint_ap(
    gt_uv, gt_visible, gt_image, gt_area, pred_uv, pred_score, pred_image, gt_boxes=None
) -> dict[str, float]:
    """Keypoint AP through pycocotools' ``COCOeval(iouType="keypoints")``.

    Ground truth: ``gt_uv (N, 17, 2)``, ``gt_visible (N, 17)`` (COCO ``v``: 0 absent, 1 hidden,
    2 visible), ``gt_image (N,)`` image ids, ``gt_area (N,)`` (segment area in px²), optional
    ``gt_boxes (N, 4)`` (x, y, w, h; default: the keypoints' box). Detections: ``pred_uv (M, 17,
    2)``,
    ``pred_score (M,)``, ``pred_image (M,)``. Returns AP, AP50, AP75, APm, APl, AR.
    """
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    g, v = _np(gt_uv, "gt_uv"), _np(gt_visible, "gt_visible").astype(int)
    if g.ndim != 3 or g.shape[1:] != (17, 2) or v.shape != g.shape[:2]:
        raise ValueError(
            f"gt_uv must be (N, 17, 2) and gt_visible (N, 17); got {g.shape}, {v.shape}"
        )
    p = _np(pred_uv, "pred_uv")
    images = sorted(
        {int(i) for i in np.asarray(gt_image)} | {int(i) for i in np.asarray(pred_image)}
    )
    anns = []
    for k in range(len(g)):
        if gt_boxes is None:
            lab = g[k][v[k] > 0] if (v[k] > 0).any() else g[k]
            x0, y0 = lab.min(0)
            box = [float(x0), float(y0), float(lab[:, 0].max() - x0), float(lab[:, 1].max() - y0)]
        else:
            box = [float(b) for b in np.asarray(gt_boxes)[k]]
        kp = np.concatenate([g[k], v[k][:, None]], 1).reshape(-1)
        anns.append(
            {
                "id": k + 1,
                "image_id": int(np.asarray(gt_image)[k]),
                "category_id": 1,
                "iscrowd": 0,
                "area": float(np.asarray(gt_area)[k]),
                "bbox": box,
                "keypoints": kp.tolist(),
                "num_keypoints": int((v[k] > 0).sum()),
            }
        )
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {
            "images": [{"id": i} for i in images],
            "annotations": anns,
            "categories": [{"id": 1, "name": "person"}],
        }
        coco.createIndex()
        dets = [
            {
                "image_id": int(np.asarray(pred_image)[m]),
                "category_id": 1,
                "score": float(np.asarray(pred_score)[m]),
                "keypoints": np.concatenate([p[m], np.ones((17, 1))], 1).reshape(-1).tolist(),
            }
            for m in range(len(p))
        ]
        if not dets:
            return {k: 0.0 for k in ("AP", "AP50", "AP75", "APm", "APl", "AR")}
        ev = COCOeval(coco, coco.loadRes(dets), iouType="keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(
        zip(
            ("AP", "AP50", "AP75", "APm", "APl", "AR"),
            (float(x) for x in ev.stats[[0, 1, 2, 3, 4, 5]]),
        )
    )
