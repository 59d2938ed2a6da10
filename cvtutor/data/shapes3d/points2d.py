"""2-D point sets for cheap chapters: contours of the bundled digits and of font glyphs.

Derived in the chapter ``notebooks/eccv2020/world_shapes3d.ipynb`` (section 3). A shape is the
union of its closed outlines; ``n`` points are spread over the outlines in proportion to their
lengths and placed at equal arc-length steps along each (:func:`resample_polylines`), so the set is
a uniform sample of the outline's length measure, like surface samples in 3-D. Sets are centred
on their bounding box and scaled so the longer side spans ``[-1, 1]``, y up.

Sources ship with the packages: scikit-learn's 8×8 digits (upsampled bilinearly, contoured at half
intensity by :func:`skimage.measure.find_contours`) and matplotlib's DejaVu Sans glyphs
(:class:`matplotlib.textpath.TextPath`, outlines flattened to polygons).
"""

from __future__ import annotations

import numpy as np
import torch


def resample_polyline(
    poly: np.ndarray, n: int, closed: bool = True, offset: float = 0.0
) -> np.ndarray:
    """``n`` points at equal arc-length steps along a polyline ``(K, 2)`` (closed: back to its first
    vertex), starting ``offset`` (a fraction of a step) after its first vertex."""
    p = np.asarray(poly, dtype=float)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < 2:
        raise ValueError(f"a polyline must be (K >= 2, 2), got {p.shape}")
    if closed and not np.allclose(p[0], p[-1]):
        p = np.vstack([p, p[:1]])
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0:
        raise ValueError("the polyline has zero length")
    steps = n if closed else max(n - 1, 1)
    t = (np.arange(n) + offset) * s[-1] / steps
    t = np.clip(t, 0, s[-1])
    return np.stack([np.interp(t, s, p[:, 0]), np.interp(t, s, p[:, 1])], -1)


def resample_polylines(polys: list[np.ndarray], n: int) -> np.ndarray:
    """``n`` points over several closed outlines, in proportion to their lengths (largest
    remainders), each resampled by :func:`resample_polyline`: ``(n, 2)``."""
    polys = [np.vstack([p, p[:1]]) for p in polys if len(p) >= 2]
    if not polys:
        raise ValueError("no outline with at least two vertices")
    lengths = np.array([np.linalg.norm(np.diff(p, axis=0), axis=1).sum() for p in polys])
    share = lengths / lengths.sum() * n
    counts = np.floor(share).astype(int)
    counts[np.argsort(counts - share)[: n - counts.sum()]] += 1
    return np.concatenate([resample_polyline(p, c) for p, c in zip(polys, counts) if c > 0])


def normalize_2d(points: np.ndarray) -> np.ndarray:
    """Centre on the bounding box and scale the longer side to ``[-1, 1]``."""
    lo, hi = points.min(0), points.max(0)
    return (points - (lo + hi) / 2) / max((hi - lo).max() / 2, 1e-12)


def digit_contours(
    n_points: int = 256, count: int | None = None, upsample: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Outlines of scikit-learn's digits as point sets: ``(points (count, n_points, 2), labels)``
    for the first ``count`` digits (all 1,797 by default)."""
    from scipy.ndimage import zoom
    from skimage.measure import find_contours
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = bunch.images, bunch.target
    if count is not None:
        images, labels = images[:count], labels[:count]
    out = []
    for img in images:
        big = np.pad(zoom(img / 16.0, upsample, order=1), 1)  # padded: every contour closes
        contours = find_contours(big, 0.5)
        polys = [np.stack([c[:, 1], -c[:, 0]], -1) for c in contours]  # (row, col) -> (x, y up)
        out.append(normalize_2d(resample_polylines(polys, n_points)))
    return torch.tensor(np.stack(out), dtype=torch.float32), torch.tensor(labels, dtype=torch.long)


def glyph_outline(chars: str, n_points: int = 256, family: str = "DejaVu Sans") -> torch.Tensor:
    """Outlines of font glyphs (matplotlib ships DejaVu Sans) as point sets
    ``(len(chars), n, 2)``."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    if not chars:
        raise ValueError("chars must not be empty")
    prop = FontProperties(family=family)
    out = []
    for ch in chars:
        polys = TextPath((0, 0), ch, size=1.0, prop=prop).to_polygons(closed_only=True)
        if not polys:
            raise ValueError(f"the glyph {ch!r} has no outline")
        out.append(normalize_2d(resample_polylines([np.asarray(p) for p in polys], n_points)))
    return torch.tensor(np.stack(out), dtype=torch.float32)
