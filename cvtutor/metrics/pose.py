"""3D/2D hand pose metrics: EPE, PCK and AUC with validity masks (the hand3d ``EvalUtil`` convention).

Every statistic is computed **per joint first** (over the samples where that joint is valid) and
**then averaged over the joints**, as in hand3d's ``EvalUtil.get_measures`` and the papers that
use it (knowledge-as-priors digest, "Evaluation protocol"). Errors are in the unit of the inputs
(the book uses millimetres); thresholds are in the same unit.
"""
from __future__ import annotations

import numpy as np
import torch


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
