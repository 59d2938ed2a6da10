"""Confidence intervals for proportions and their ratios (vectorised over numpy arrays).

Derived in chapter ``revise`` (REVISE, E43), which plots the lower bound of a binomial
proportion's interval so that a country with few images is not shown as extreme:

* :func:`wilson_interval`: the Wilson score interval of ``k`` successes in ``n`` trials;
* :func:`ratio_interval`: the Katz log interval of a ratio of two proportions
  ``(k1 / n1) / (k2 / n2)``.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm


def _counts(k, n) -> tuple[np.ndarray, np.ndarray]:
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    if np.any(n <= 0) or np.any(k < 0) or np.any(k > n):
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    return k, n


def wilson_interval(k, n, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) Wilson score interval of the proportion ``k / n`` (arrays broadcast):

    ``(p + z^2 / 2n -+ z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2 / n)``,
    ``z`` the two-sided normal quantile of ``confidence``."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    k, n = _counts(k, n)
    z = norm.ppf(0.5 + confidence / 2)
    p = k / n
    centre = p + z**2 / (2 * n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    denom = 1 + z**2 / n
    lower = np.where(k == 0, 0.0, np.clip((centre - half) / denom, 0, 1))  # exact at the ends
    upper = np.where(k == n, 1.0, np.clip((centre + half) / denom, 0, 1))
    return lower, upper


def ratio_interval(k1, n1, k2, n2, confidence: float = 0.95):
    """(ratio, lower, upper): ``r = (k1 / n1) / (k2 / n2)`` and the Katz interval
    ``r exp(-+ z sqrt(1/k1 - 1/n1 + 1/k2 - 1/n2))`` (needs k1, k2 > 0)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    k1, n1 = _counts(k1, n1)
    k2, n2 = _counts(k2, n2)
    if np.any(k1 == 0) or np.any(k2 == 0):
        raise ValueError("ratio_interval needs k1 > 0 and k2 > 0 (the log interval is undefined)")
    z = norm.ppf(0.5 + confidence / 2)
    r = (k1 / n1) / (k2 / n2)
    se = np.sqrt(1 / k1 - 1 / n1 + 1 / k2 - 1 / n2)
    return r, r * np.exp(-z * se), r * np.exp(z * se)
