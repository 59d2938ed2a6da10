"""Pictures of videos: clips as frame strips, masks as colours, flow as hue (the ``world_video``
chapter)."""

from __future__ import annotations

import numpy as np
import torch

from cvtutor import viz


def _np(x) -> np.ndarray:
    return x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, float)


def flow_to_rgb(flow, max_norm: float | None = None) -> np.ndarray:
    """Optical flow ``(..., 2, H, W)`` as colour ``(..., H, W, 3)``: hue = direction, saturation =
    speed / ``max_norm`` (default: the largest speed), white = still."""
    f = _np(flow)
    if f.ndim < 3 or f.shape[-3] != 2:
        raise ValueError(f"flow must be (..., 2, H, W), got shape {f.shape}")
    dx, dy = f[..., 0, :, :], f[..., 1, :, :]
    mag = np.hypot(dx, dy)
    sat = np.clip(mag / (max_norm or max(float(mag.max()), 1e-6)), 0, 1)
    hue = (np.arctan2(dy, dx) / (2 * np.pi)) % 1.0
    k = np.array([5.0, 3.0, 1.0]).reshape((3,) + (1,) * hue.ndim)  # HSV -> RGB with V = 1
    kk = (k + hue[None] * 6) % 6
    rgb = 1 - sat[None] * np.clip(np.minimum(kk, 4 - kk), 0, 1)
    return np.moveaxis(rgb, 0, -1)


def mask_to_rgb(masks, n_ids: int | None = None) -> np.ndarray:
    """Instance masks ``(..., H, W)`` of integer ids as colours (0 black, id k: book colour k)."""
    m = _np(masks).astype(np.int64)
    pal = np.array(
        [[0, 0, 0]] + [[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)] for c in viz.CATEGORICAL]
    )
    return pal[np.clip(m, 0, len(pal) - 1)]


def clip_strip(frames, rows_titles=None, title: str | None = None, cell: int = 100):
    """Frames ``(R, T, H, W, 3)`` (or ``(R, T, 3, H, W)``) as an R x T grid, a row per clip; the
    first tile of a row is titled with its row title, the others with their frame index."""
    f = _np(frames)
    if f.ndim == 5 and f.shape[2] == 3 and f.shape[-1] != 3:
        f = np.moveaxis(f, 2, -1)
    if f.ndim != 5 or f.shape[-1] != 3:
        raise ValueError(f"frames must be (R, T, H, W, 3) or (R, T, 3, H, W), got shape {f.shape}")
    R, T = f.shape[:2]
    titles = None
    if rows_titles is not None:
        if len(rows_titles) != R:
            raise ValueError(f"got {len(rows_titles)} row titles for {R} clips")
        titles = [rows_titles[r] if t == 0 else f"t={t}" for r in range(R) for t in range(T)]
    return viz.image_grid(
        f.reshape(R * T, *f.shape[2:]), ncols=T, titles=titles, title=title, cell=cell
    )
