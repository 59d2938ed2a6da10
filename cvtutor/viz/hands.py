"""Hand plots (plotly): 3D skeletons, 2D keypoints over the image, modality grids, point clouds, PCK curves."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cvtutor.data.hands.skeleton import BONES, FINGERS
from cvtutor.viz import SUBPLOT_TITLE_SIZE, TOP_MARGIN, geometry, spacing

FINGER_COLORS = ("#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd")  # thumb .. pinky
PALM_COLOR = "#7f7f7f"
#: The camera's own view (y down, looking along +z), as the hand images are seen.
CAMERA_VIEW = dict(up=dict(x=0, y=-1, z=0), eye=dict(x=0, y=0, z=-2))


def _np(x) -> np.ndarray:
    return x.detach().cpu().float().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=float)


def _bone_color(child: int) -> str:
    return FINGER_COLORS[(child - 1) // 4]


def skeleton_3d(xyz, pred=None, title: str | None = None, unit_scale: float = 1000.0) -> go.Figure:
    """An interactive 3D skeleton ``(21, 3)`` (metres, shown in mm), fingers coloured; ``pred`` dashed."""
    fig = go.Figure()
    for joints, dash, name in ((xyz, "solid", "ground truth"), (pred, "dash", "prediction")):
        if joints is None:
            continue
        j = _np(joints) * unit_scale
        if j.shape != (21, 3):
            raise ValueError(f"skeleton_3d expects (21, 3) joints, got {j.shape}")
        for k, (p, c) in enumerate(BONES):
            fig.add_trace(go.Scatter3d(x=j[[p, c], 0], y=j[[p, c], 1], z=j[[p, c], 2], mode="lines+markers",
                                       line=dict(color=_bone_color(c), width=6, dash=dash), marker=dict(size=3),
                                       name=f"{name}: {FINGERS[(c - 1) // 4]}", legendgroup=name,
                                       showlegend=(k % 4 == 0)))
    fig.update_layout(title=title, height=450, margin=dict(l=0, r=30, t=TOP_MARGIN if title else 10, b=0),
                      scene=dict(aspectmode="data", xaxis_title="x (mm)", yaxis_title="y (mm)", zaxis_title="z (mm)",
                                 camera=dict(up=dict(x=0, y=-1, z=0), eye=dict(x=0, y=0, z=-2))))
    return fig


def keypoints_2d(image, uv, vis=None, title: str | None = None) -> go.Figure:
    """The image ``(3, H, W)`` or ``(H, W)`` with the 2D skeleton ``uv (21, 2)`` (pixels) drawn over it;
    invisible joints hollow."""
    img = _np(image)
    k = _np(uv)
    v = np.ones(21, bool) if vis is None else _np(vis).astype(bool)
    fig = go.Figure()
    if img.ndim == 3:
        fig.add_trace(go.Image(z=np.clip(img.transpose(1, 2, 0) * 255, 0, 255).astype(np.uint8), x0=0.5, y0=0.5))
    else:
        fig.add_trace(go.Heatmap(z=img, colorscale="gray", showscale=False, x0=0.5, y0=0.5))
    for p, c in BONES:
        fig.add_trace(go.Scatter(x=k[[p, c], 0], y=k[[p, c], 1], mode="lines", line=dict(color=_bone_color(c), width=2),
                                 showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=k[:, 0], y=k[:, 1], mode="markers", showlegend=False,
                             marker=dict(size=6, color=["white" if not vis_j else "black" for vis_j in v],
                                         line=dict(color="black", width=1))))
    h, w = img.shape[-2:]
    fig.update_xaxes(range=[0, w], visible=False)
    fig.update_yaxes(range=[h, 0], visible=False, scaleanchor="x")
    fig.update_layout(title=title, height=320, width=340, margin=dict(l=5, r=30, t=TOP_MARGIN if title else 5, b=5))
    return fig


def modality_grid(sample: Mapping, n: int = 6, heatmap_joint: int = 9, title: str | None = None) -> go.Figure:
    """Rows RGB / depth / part mask / heatmap of one joint, for the first ``n`` samples of a ``HandWorld`` batch."""
    rows = ["rgb", "depth", "mask", f"heatmap {heatmap_joint}"]
    n = min(n, len(sample["rgb"]))
    cell, top = 110, (TOP_MARGIN if title else 10)
    height = 4 * cell + 3 * 6 + top + 5
    fig = make_subplots(rows=4, cols=n, row_titles=rows, horizontal_spacing=spacing(n, 4, 752),
                        vertical_spacing=spacing(4, 6, height - top - 5))
    fig.update_annotations(font_size=SUBPLOT_TITLE_SIZE)
    for i in range(n):
        rgb = np.clip(_np(sample["rgb"][i]).transpose(1, 2, 0) * 255, 0, 255).astype(np.uint8)
        fig.add_trace(go.Image(z=rgb, hoverinfo="skip"), row=1, col=i + 1)
        d = _np(sample["depth"][i, 0])
        hand = _np(sample["mask"][i, 0]) > 0
        lo, hi = (d[hand].min(), d[hand].max()) if hand.any() else (d.min(), d.max())
        fig.add_trace(go.Heatmap(z=np.clip(d, lo, hi)[::-1], colorscale="Viridis", showscale=False, hoverinfo="skip"),
                      row=2, col=i + 1)
        fig.add_trace(go.Heatmap(z=_np(sample["mask"][i, 0])[::-1], colorscale="Turbo", zmin=0, zmax=16,
                                 showscale=False, hoverinfo="skip"), row=3, col=i + 1)
        fig.add_trace(go.Heatmap(z=_np(sample["heatmaps"][i, heatmap_joint])[::-1], colorscale="Hot", zmin=0, zmax=1,
                                 showscale=False, hoverinfo="skip"), row=4, col=i + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title, height=height, margin=dict(l=5, r=40, t=top, b=5))
    return fig


def point_cloud(cloud, joints=None, title: str | None = None, labels=None, names=None,
                axis_titles: tuple[str, str, str] = ("x", "y", "z")) -> go.Figure:
    """A point cloud ``(N, 3)`` (with an optional skeleton ``(21, 3)`` in the same frame), coloured by
    depth; with ``labels (N,)`` (e.g. part ids; ``names`` maps ids to names) each class is its own
    trace with a discrete colour and a legend entry instead. The geometry viewer
    (:func:`cvtutor.viz.geometry.point_cloud`) with the bones as overlays, seen from the camera."""
    lines = None
    if joints is not None:
        j = _np(joints)
        lines = [(j[[p, ch]], _bone_color(ch)) for p, ch in BONES]
    return geometry.point_cloud(cloud, labels=labels, names=names, lines=lines, title=title,
                                axis_titles=axis_titles, camera=CAMERA_VIEW)


def pck_curves(df: pd.DataFrame, x: str = "threshold_mm", y: str = "pck", by: str = "model",
               title: str = "3D PCK") -> go.Figure:
    """PCK against the threshold, one curve per ``by`` value (averaged over any other rows, e.g. seeds)."""
    missing = [c for c in (x, y, by) if c not in df.columns]
    if missing:
        raise KeyError(f"columns {missing} not in the frame (it has {list(df.columns)})")
    fig = go.Figure()
    for i, (name, g) in enumerate(df.groupby(by, sort=False)):
        m = g.groupby(x)[y].mean()
        fig.add_trace(go.Scatter(x=m.index, y=m.values, mode="lines", name=str(name),
                                 line=dict(color=FINGER_COLORS[i % len(FINGER_COLORS)])))
    fig.update_layout(title=title, xaxis_title="threshold (mm)", yaxis_title="PCK", yaxis_range=[0, 1], height=380,
                      margin=dict(l=50, r=40, t=TOP_MARGIN, b=40))
    return fig
