"""Figures of the body world: a crowd and its camera ring in 3-D, and the views with their
keypoints.

Used by the *People, cameras and geometry* chapter (``notebooks/eccv2020/world_people.ipynb``).
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from cvtutor.data.bodies.skeleton import BONES
from cvtutor.viz import TOP_MARGIN, subplots

PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#ffe119",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#46f0f0",
    "#f032e6",
    "#bcf60c",
    "#fabebe",
)


def _np(x) -> np.ndarray:
    return x.detach().cpu().float().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=float)


def _segments(j: np.ndarray) -> tuple[list, list, list]:
    """Bone segments of one skeleton ``(23, D)`` as coordinate lists separated by None."""
    xs, ys, zs = [], [], []
    for p, c in BONES:
        xs += [j[p, 0], j[c, 0], None]
        ys += [j[p, 1], j[c, 1], None]
        if j.shape[1] > 2:
            zs += [j[p, 2], j[c, 2], None]
    return xs, ys, zs


def crowd_3d(joints, eyes=None, title: str | None = None) -> go.Figure:
    """People ``joints (P, 23, 3)`` (metres, z up) as coloured skeletons and the cameras ``eyes (V,
    3)``."""
    J = _np(joints)
    fig = go.Figure()
    for k, j in enumerate(J):
        xs, ys, zs = _segments(j)
        fig.add_trace(
            go.Scatter3d(
                x=xs,
                y=ys,
                z=zs,
                mode="lines",
                line=dict(color=PALETTE[k % 10], width=5),
                name=f"person {k}",
            )
        )
    if eyes is not None:
        e = _np(eyes)
        fig.add_trace(
            go.Scatter3d(
                x=e[:, 0],
                y=e[:, 1],
                z=e[:, 2],
                mode="markers+text",
                name="cameras",
                text=[f"cam {v}" for v in range(len(e))],
                marker=dict(size=5, color="black", symbol="diamond"),
            )
        )
    fig.update_layout(
        title=title,
        height=480,
        margin=dict(l=0, r=30, t=TOP_MARGIN if title else 10, b=0),
        scene=dict(
            aspectmode="data", xaxis_title="x (m)", yaxis_title="y (m)", zaxis_title="z (m)"
        ),
    )
    return fig


def views_2d(
    images,
    uv,
    visible=None,
    detected=None,
    titles=None,
    title: str | None = None,
    colorscale: str = "gray",
) -> go.Figure:
    """Views side by side: ``images (V, S, S)`` (e.g. depth or instance ids) with every person's 2-D
    skeleton ``uv (V, P, 23, 2)``; hidden joints (``visible`` False) hollow; ``detected`` as
    crosses."""
    img, U = _np(images), _np(uv)
    V, S = img.shape[0], img.shape[-1]
    vis = np.ones(U.shape[:-1], bool) if visible is None else _np(visible).astype(bool)
    fig = subplots(
        1, V, titles or [f"view {v}" for v in range(V)], height=300 if not title else 330
    )
    for v in range(V):
        fig.add_trace(
            go.Heatmap(
                z=img[v], colorscale=colorscale, showscale=False, x0=0.5, y0=0.5, hoverinfo="skip"
            ),
            row=1,
            col=v + 1,
        )
        for k in range(U.shape[1]):
            xs, ys, _ = _segments(U[v, k])
            colour = PALETTE[k % 10]
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines",
                    line=dict(color=colour, width=1.5),
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=1,
                col=v + 1,
            )
            fig.add_trace(
                go.Scatter(
                    x=U[v, k, :, 0],
                    y=U[v, k, :, 1],
                    mode="markers",
                    showlegend=False,
                    marker=dict(
                        size=4,
                        color=[colour if s else "white" for s in vis[v, k]],
                        line=dict(color=colour, width=1),
                    ),
                ),
                row=1,
                col=v + 1,
            )
            if detected is not None:
                d = _np(detected)[v, k]
                fig.add_trace(
                    go.Scatter(
                        x=d[:, 0],
                        y=d[:, 1],
                        mode="markers",
                        showlegend=False,
                        marker=dict(size=4, symbol="x", color="black"),
                    ),
                    row=1,
                    col=v + 1,
                )
        fig.update_xaxes(range=[0, S], visible=False, row=1, col=v + 1)
        fig.update_yaxes(
            range=[S, 0], visible=False, row=1, col=v + 1, scaleanchor=f"x{v + 1 if v else ''}"
        )
    fig.update_layout(title=title, margin=dict(l=5, r=30, t=TOP_MARGIN if title else 40, b=5))
    return fig
