"""Metrics of generative models: the Frechet distance between feature sets (FID without Inception).

Derived in the TopoGAN chapter (notebooks/eccv2020/topogan.ipynb, Sect. 3.4), used there on the
features of a mask-counting net and in E29 (Neural Design Network) on a layout classifier's.
"""
from __future__ import annotations

import numpy as np


def frechet_distance(f1: np.ndarray, f2: np.ndarray, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}) between Gaussians fitted to two feature sets.

    ``eps * I`` is added to both covariances (dead ReLU features make them singular), as FID code does.
    """
    from scipy import linalg

    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"features must be (n1, d) and (n2, d), got {f1.shape} and {f2.shape}")
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1 = np.cov(f1, rowvar=False) + eps * np.eye(f1.shape[1])
    s2 = np.cov(f2, rowvar=False) + eps * np.eye(f2.shape[1])
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))
