"""Geometry plots (plotly): point clouds coloured by value or label, with line overlays; meshes;
isosurfaces; grids of 3-D scenes; 2-D point sets and quiver fields.

The 3-D shape world's viewer (``notebooks/eccv2020/world_shapes3d.ipynb``); the hand viewer
(:func:`cvtutor.viz.hands.point_cloud`) is :func:`point_cloud` with the skeleton as line overlays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from cvtutor.viz import CATEGORICAL, SUBPLOT_TITLE_SIZE, TOP_MARGIN, spacing

#: A z-up camera looking at the origin from the front right, slightly above.
Z_UP = dict(up=dict(x=0, y=0, z=1), eye=dict(x=1.4, y=-1.4, z=0.9))


def _np(x) -> np.ndarray:
    return x.detach().cpu().float().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=float)


def _points3(cloud, name: str = "point_cloud") -> np.ndarray:
    c = _np(cloud)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"{name} expects (N, 3) points, got {c.shape}")
    return c


def cloud_traces(
    cloud,
    labels=None,
    names=None,
    values=None,
    colorbar_title: str | None = "z",
    size: float = 2.5,
    showscale: bool = True,
    seen: set | None = None,
) -> list[go.Scatter3d]:
    """The traces of one cloud ``(N, 3)``: one trace coloured by ``values (N,)`` (default: ``z``)
    on a continuous scale, or, with ``labels (N,)`` (``names`` maps ids to names), one trace per
    class with a discrete colour and a legend entry. ``seen``: for several clouds in one figure,
    the names already in the legend (updated here); colours then follow the class id, so a class
    has one colour and one legend entry across the clouds."""
    c = _points3(cloud)
    if labels is None:
        v = c[:, 2] if values is None else _np(values).ravel()
        if v.shape[0] != c.shape[0]:
            raise ValueError(
                f"values must have one entry per point ({c.shape[0]}), got {v.shape[0]}"
            )
        marker = dict(size=size, color=v, colorscale="Viridis")
        if showscale:
            marker["colorbar"] = dict(title=colorbar_title, thickness=12)
        return [
            go.Scatter3d(
                x=c[:, 0],
                y=c[:, 1],
                z=c[:, 2],
                mode="markers",
                name="cloud",
                showlegend=False,
                marker=marker,
            )
        ]
    lab = _np(labels).astype(int).ravel()
    if lab.shape[0] != c.shape[0]:
        raise ValueError(f"labels must have one entry per point ({c.shape[0]}), got {lab.shape[0]}")
    traces = []
    for i, cls in enumerate(np.unique(lab)):
        m = lab == cls
        name = str(names[cls]) if names is not None else str(cls)
        group = {}
        if seen is not None:
            i = int(cls)
            group = dict(legendgroup=name, showlegend=name not in seen)
            seen.add(name)
        traces.append(
            go.Scatter3d(
                x=c[m, 0],
                y=c[m, 1],
                z=c[m, 2],
                mode="markers",
                name=name,
                marker=dict(size=size, color=CATEGORICAL[i % len(CATEGORICAL)]),
                **group,
            )
        )
    return traces


def line_traces(lines, width: float = 5) -> list[go.Scatter3d]:
    """Line overlays: ``lines`` is a sequence of ``(points (K, 3), colour)``, each a polyline."""
    out = []
    for pts, color in lines:
        p = pts if isinstance(pts, np.ndarray) else _np(pts)
        out.append(
            go.Scatter3d(
                x=p[:, 0],
                y=p[:, 1],
                z=p[:, 2],
                mode="lines",
                line=dict(color=color, width=width),
                showlegend=False,
            )
        )
    return out


def point_cloud(
    cloud,
    labels=None,
    names=None,
    values=None,
    lines=None,
    title: str | None = None,
    axis_titles: tuple[str, str, str] = ("x", "y", "z"),
    camera: dict | None = None,
    size: float = 2.5,
    height: int = 420,
) -> go.Figure:
    """A point cloud ``(N, 3)`` coloured by ``values`` (default: depth along the third axis) or by
    ``labels`` (see :func:`cloud_traces`), with optional polyline overlays ``lines`` (e.g. a
    skeleton, see :func:`line_traces`); ``camera``: plotly's scene camera (default :data:`Z_UP`)."""
    fig = go.Figure(cloud_traces(cloud, labels, names, values, axis_titles[2], size))
    if lines is not None:
        fig.add_traces(line_traces(lines))
    fig.update_layout(
        title=title,
        height=height,
        margin=dict(l=0, r=30, t=TOP_MARGIN if title else 10, b=0),
        scene=dict(
            aspectmode="data",
            xaxis_title=axis_titles[0],
            yaxis_title=axis_titles[1],
            zaxis_title=axis_titles[2],
            camera=Z_UP if camera is None else camera,
        ),
    )
    return fig


def _scene_grid(n: int, cols: int, titles, height: int | None, cell: int = 260):
    from plotly.subplots import make_subplots

    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    height = height or rows * cell + TOP_MARGIN
    fig = make_subplots(
        rows=rows,
        cols=cols,
        specs=[[{"type": "scene"}] * cols for _ in range(rows)],
        subplot_titles=list(titles) if titles else None,
        horizontal_spacing=spacing(cols, 4, 752),
        vertical_spacing=spacing(rows, 30, height),
    )
    fig.update_annotations(font_size=SUBPLOT_TITLE_SIZE)
    return fig, rows, cols, height


def _grid_layout(fig, n, rows, cols, height, title, camera):
    scene = dict(
        aspectmode="data",
        camera=Z_UP if camera is None else camera,
        xaxis=dict(visible=False),
        yaxis=dict(visible=False),
        zaxis=dict(visible=False),
    )
    fig.update_layout(**{f"scene{'' if i == 0 else i + 1}": scene for i in range(rows * cols)})
    fig.update_layout(title=title, height=height, margin=dict(l=0, r=30, t=TOP_MARGIN, b=0))
    return fig


def cloud_grid(
    clouds: Sequence,
    labels: Sequence | None = None,
    names=None,
    titles=None,
    cols: int = 4,
    title: str | None = None,
    height: int | None = None,
    size: float = 1.8,
    camera: dict | None = None,
) -> go.Figure:
    """Several clouds ``(N_i, 3)`` side by side (one 3-D scene each), coloured by ``labels[i]``
    (``names`` maps ids to names; the legend lists each name once) or by height."""
    n = len(clouds)
    fig, rows, cols, height = _scene_grid(n, cols, titles, height)
    seen = set()
    for i, c in enumerate(clouds):
        lab = None if labels is None else labels[i]
        traces = cloud_traces(c, lab, names, size=size, showscale=False, seen=seen)
        for t in traces:
            fig.add_trace(t, row=i // cols + 1, col=i % cols + 1)
    return _grid_layout(fig, n, rows, cols, height, title, camera)


def mesh_traces(
    verts,
    faces,
    values=None,
    color: str = "#8fb3d9",
    colorscale: str = "Viridis",
    opacity: float = 1.0,
    showscale: bool = False,
) -> go.Mesh3d:
    """A triangle mesh ``verts (V, 3)``, ``faces (F, 3)``; ``values (V,)`` colour its vertices."""
    v, f = _np(verts), np.asarray(faces.cpu() if hasattr(faces, "cpu") else faces, dtype=int)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"mesh expects verts (V, 3) and faces (F, 3), got {v.shape} and {f.shape}")
    kw = dict(
        x=v[:, 0],
        y=v[:, 1],
        z=v[:, 2],
        i=f[:, 0],
        j=f[:, 1],
        k=f[:, 2],
        opacity=opacity,
        flatshading=True,
        lighting=dict(ambient=0.5, diffuse=0.7),
        showscale=showscale,
    )
    if values is not None:
        kw.update(intensity=_np(values).ravel(), colorscale=colorscale)
    else:
        kw.update(color=color)
    return go.Mesh3d(**kw)


def mesh(
    verts,
    faces,
    values=None,
    title: str | None = None,
    camera: dict | None = None,
    height: int = 420,
    colorbar_title: str | None = None,
) -> go.Figure:
    """One mesh (see :func:`mesh_traces`), with a colour bar when ``values`` are given."""
    t = mesh_traces(verts, faces, values, showscale=values is not None)
    if values is not None and colorbar_title:
        t.colorbar = dict(title=colorbar_title, thickness=12)
    fig = go.Figure(t)
    fig.update_layout(
        title=title,
        height=height,
        margin=dict(l=0, r=30, t=TOP_MARGIN if title else 10, b=0),
        scene=dict(aspectmode="data", camera=Z_UP if camera is None else camera),
    )
    return fig


def mesh_grid(
    meshes: Sequence,
    titles=None,
    cols: int = 4,
    title: str | None = None,
    height: int | None = None,
    camera: dict | None = None,
) -> go.Figure:
    """Several meshes side by side: ``meshes`` holds ``(verts, faces)`` or
    ``(verts, faces, values)``."""
    fig, rows, cols, height = _scene_grid(len(meshes), cols, titles, height)
    for i, m in enumerate(meshes):
        fig.add_trace(mesh_traces(*m), row=i // cols + 1, col=i % cols + 1)
    return _grid_layout(fig, len(meshes), rows, cols, height, title, camera)


def isosurface_mesh(values, lo: float = -0.5, hi: float = 0.5, level: float = 0.0):
    """Marching cubes (scikit-image) on a grid ``values (R, R, R)`` sampled at the voxel centres
    of ``[lo, hi]³`` (``(i, j, k)`` ↔ ``(x, y, z)``): ``(verts (V, 3), faces (F, 3))``."""
    from skimage.measure import marching_cubes

    v = _np(values)
    if v.ndim != 3:
        raise ValueError(f"isosurface expects a (R, R, R) grid, got {v.shape}")
    step = (hi - lo) / v.shape[0]
    verts, faces, _, _ = marching_cubes(v, level=level, spacing=(step, step, step))
    return verts + lo + step / 2, faces


def isosurface(
    values,
    lo: float = -0.5,
    hi: float = 0.5,
    level: float = 0.0,
    title: str | None = None,
    camera: dict | None = None,
) -> go.Figure:
    """The ``level`` set of a grid of values (e.g. an SDF or an occupancy probability)."""
    verts, faces = isosurface_mesh(values, lo, hi, level)
    return mesh(verts, faces, title=title, camera=camera)


def point_sets_2d(
    sets, titles=None, cols: int = 6, title: str | None = None, size: float = 3, cell: int = 130
) -> go.Figure:
    """2-D point sets ``(n, N, 2)`` (or a list of ``(N_i, 2)``) in a grid, equal axes, y up."""
    from cvtutor.viz import subplots

    n = len(sets)
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    height = rows * cell + TOP_MARGIN + 10
    fig = subplots(rows, cols, titles, height=height)
    for i, s in enumerate(sets):
        p = _np(s)
        fig.add_trace(
            go.Scatter(
                x=p[:, 0],
                y=p[:, 1],
                mode="markers",
                showlegend=False,
                marker=dict(size=size, color=CATEGORICAL[0]),
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    for i in range(n):
        fig.update_yaxes(
            scaleanchor=f"x{'' if i == 0 else i + 1}", row=i // cols + 1, col=i % cols + 1
        )
    fig.update_layout(title=title, margin=dict(l=5, r=30, t=TOP_MARGIN, b=5))
    return fig


def quiver_2d(
    points,
    vectors,
    scale: float = 1.0,
    background=None,
    title: str | None = None,
    height: int = 420,
) -> go.Figure:
    """A 2-D vector field: an arrow (a segment with a dot at its tail) from each ``points (N, 2)``
    along ``scale · vectors (N, 2)``; ``background (M, 2)``, e.g. the data, drawn in grey."""
    p, v = _np(points), _np(vectors) * scale
    if p.shape != v.shape or p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points and vectors must both be (N, 2), got {p.shape} and {v.shape}")
    seg = np.full((len(p) * 3, 2), np.nan)
    seg[0::3], seg[1::3] = p, p + v
    fig = go.Figure()
    if background is not None:
        b = _np(background)
        fig.add_trace(
            go.Scatter(
                x=b[:, 0],
                y=b[:, 1],
                mode="markers",
                name="data",
                marker=dict(size=3, color="#7f7f7f"),
            )
        )
    fig.add_trace(
        go.Scatter(
            x=seg[:, 0],
            y=seg[:, 1],
            mode="lines",
            name="field",
            line=dict(color=CATEGORICAL[0], width=1),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=p[:, 0],
            y=p[:, 1],
            mode="markers",
            showlegend=False,
            marker=dict(size=2, color=CATEGORICAL[0]),
        )
    )
    fig.update_yaxes(scaleanchor="x")
    fig.update_layout(
        title=title, height=height, margin=dict(l=40, r=30, t=TOP_MARGIN if title else 20, b=40)
    )
    return fig
