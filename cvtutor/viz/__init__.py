"""Plotting for the book: plotly defaults, image grids, curves with several runs.

Figures are plotly figures. :func:`use_book_renderer` (called by ``cvtutor.setup``) makes
``fig.show()`` emit both plotly's own JSON (drawn natively by JupyterLab and VS Code) and a
HTML snippet. The built book loads ``plotly.min.js`` from its own ``_static`` folder, so the
HTML draws offline; the snippet never loads anything from outside (no CDN): where the page has
no plotly.js (a classic notebook), the JSON output draws the figure instead.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
# Discrete colours for categorical classes (a legend, never a continuous colour bar): 20 distinct ones.
CATEGORICAL = COLORS + ("#bcbd22", "#7f7f7f", "#aec7e8", "#ff9896", "#98df8a", "#ffbb78", "#c5b0d5", "#c49c94",
                        "#f7b6d2", "#9edae5", "#dbdb8d", "#393b79")
MIN_TILE = 100  # px: the smallest image tile image_grid draws
SUBPLOT_TITLE_SIZE = 11  # px: subplot titles smaller than the figure's title, so neighbours do not collide
TOP_MARGIN = 60  # px above the plot area: the title clears plotly's toolbar (which is vertical, at the right)


def _book_template() -> go.layout.Template:
    t = go.layout.Template(pio.templates["plotly_white"])
    t.layout.modebar = dict(orientation="v")  # the toolbar runs down the right edge, not over the title
    t.layout.margin = dict(t=TOP_MARGIN)
    t.layout.colorway = COLORS
    return t


pio.templates["cvtutor"] = _book_template()
TEMPLATE = "cvtutor"


def spacing(n: int, gap_px: float, total_px: float, most: float = 0.3) -> float:
    """make_subplots spacing (a fraction of the figure) that leaves ``gap_px`` pixels between ``n``
    rows (or columns) of a figure ``total_px`` high (or wide); 0 for a single row."""
    if n <= 1:
        return 0.0
    return float(min(gap_px / max(total_px, 1.0), most, 0.9 / (n - 1)))


def subplots(rows: int, cols: int, titles: Sequence[str] | None = None, height: int = 400, width: int = 752,
             **kwargs) -> go.Figure:
    """``make_subplots`` with the book's spacing: room for a subplot title between rows (from the
    number of rows and the height), small titles, and the height set."""
    from plotly.subplots import make_subplots

    kwargs.setdefault("vertical_spacing", spacing(rows, 36 if titles else 12, height))
    kwargs.setdefault("horizontal_spacing", spacing(cols, 24, width))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles) if titles else None, **kwargs)
    fig.update_annotations(font_size=SUBPLOT_TITLE_SIZE)
    fig.update_layout(height=height)
    return fig


class BookRenderer(MimetypeRenderer):
    """Plotly JSON plus an HTML snippet that draws with the page's ``window.Plotly``."""

    def to_mimebundle(self, fig_dict):
        fig_json = pio.to_json(fig_dict, validate=False, remove_uids=False)
        safe_json = fig_json.replace("</", "<\\/")  # no '</script>' inside the script
        div_id = f"cvtutor-{uuid.uuid4().hex[:12]}"
        height = (fig_dict.get("layout") or {}).get("height") or 450
        snippet = (
            f'<div id="{div_id}" class="cvtutor-plotly" style="width:100%;height:{int(height)}px;"></div>\n'
            "<script type=\"text/javascript\">(function(){"
            f"var fig={safe_json};"
            "if(!window.Plotly){return;}"  # no plotly.js on this page: nothing is fetched from outside
            f"window.Plotly.newPlot(\"{div_id}\",fig.data,fig.layout||{{}},"
            "{responsive:true,displaylogo:false});"
            "})();</script>"
        )
        return {"application/vnd.plotly.v1+json": json.loads(fig_json), "text/html": snippet}


def use_book_renderer() -> None:
    """Register and select the book renderer (Colab keeps plotly's own ``colab`` renderer)."""
    pio.templates.default = TEMPLATE
    try:
        import google.colab  # noqa: F401

        return
    except ImportError:
        pass
    pio.renderers["cvtutor"] = BookRenderer()
    pio.renderers.default = "cvtutor"


def _check_images(images) -> np.ndarray:
    arr = images.detach().cpu().float().numpy() if hasattr(images, "detach") else np.asarray(images, dtype=float)
    if arr.ndim == 3:  # N, H, W grey
        return arr
    if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)  # N, C, H, W -> N, H, W, C
    if arr.ndim == 4 and arr.shape[-1] == 1:
        return arr[..., 0]
    if arr.ndim == 4 and arr.shape[-1] == 3:
        return arr
    raise ValueError(f"images must be (N,H,W), (N,H,W,C) or (N,C,H,W) with C in {{1,3}}; got shape {arr.shape}")


def image_grid(images, ncols: int = 8, titles: Sequence[str] | None = None, title: str | None = None,
               colorscale: str = "gray", cell: int = 110, vmin: float | None = None, vmax: float | None = None) -> go.Figure:
    """A grid of images: grey-scale (N,H,W) or colour (N,H,W,3) / (N,3,H,W), values in [0, 1].

    Each tile is ``cell`` pixels high, at least :data:`MIN_TILE` (smaller requests are raised to it,
    so a 32 px image stays legible)."""
    cell = max(int(cell), MIN_TILE)

    arr = _check_images(images)
    n = len(arr)
    if n == 0:
        raise ValueError("image_grid needs at least one image")
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} images")
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    title_px = 22 if titles else 4
    top = TOP_MARGIN if title else (title_px + 10)
    height = nrows * (cell + title_px) + top + 10
    fig = subplots(nrows, ncols, titles, height=height, vertical_spacing=spacing(nrows, title_px, height - top - 10),
                   horizontal_spacing=spacing(ncols, 6, 752))
    lo = float(np.nanmin(arr)) if vmin is None else vmin
    hi = float(np.nanmax(arr)) if vmax is None else vmax
    for i, img in enumerate(arr):
        r, c = divmod(i, ncols)
        if img.ndim == 2:
            trace = go.Heatmap(z=img[::-1], colorscale=colorscale, zmin=lo, zmax=hi, showscale=False,
                               hoverinfo="skip")
        else:
            trace = go.Image(z=np.clip(img * 255.0, 0, 255).astype(np.uint8), hoverinfo="skip")
        fig.add_trace(trace, row=r + 1, col=c + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor=None)
    fig.update_layout(height=height, width=None, title=title, margin=dict(l=5, r=30, t=top, b=5))
    return fig


def scatter(x, y, labels=None, names: Sequence[str] | None = None, title: str | None = None,
            xaxis_title: str | None = None, yaxis_title: str | None = None, size: float = 5) -> go.Figure:
    """A 2-D scatter; with ``labels`` (class ids or names) every class is its own trace with a
    discrete colour and a legend entry (categorical classes never go on a continuous colour bar).
    ``names`` maps integer ids to class names."""
    xs, ys = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if xs.shape != ys.shape:
        raise ValueError(f"x and y must have the same length, got {xs.shape} and {ys.shape}")
    fig = go.Figure()
    if labels is None:
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", marker=dict(size=size, color=COLORS[0]), showlegend=False))
    else:
        lab = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels).ravel()
        if lab.shape != xs.shape:
            raise ValueError(f"labels must have one entry per point ({xs.shape[0]}), got {lab.shape}")
        for i, cls in enumerate(pd.unique(lab)):
            name = names[int(cls)] if names is not None else str(cls)
            m = lab == cls
            fig.add_trace(go.Scatter(x=xs[m], y=ys[m], mode="markers", name=name,
                                     marker=dict(size=size, color=CATEGORICAL[i % len(CATEGORICAL)])))
    fig.update_layout(title=title, xaxis_title=xaxis_title, yaxis_title=yaxis_title, height=420,
                      legend=dict(itemsizing="constant"), margin=dict(l=50, r=40, t=TOP_MARGIN if title else 20, b=40))
    return fig


def curves(df: pd.DataFrame, x: str, y: str | Sequence[str], run: str | None = None, title: str | None = None,
           log_y: bool = False, band: bool = True) -> go.Figure:
    """Line curves of ``y`` against ``x``; with ``run`` (e.g. a seed column), the mean of the
    runs is drawn with a ±1 std band."""
    ys = [y] if isinstance(y, str) else list(y)
    missing = [c for c in [x, *ys, *([run] if run else [])] if c not in df.columns]
    if missing:
        raise KeyError(f"columns {missing} not in the frame (it has {list(df.columns)})")
    fig = go.Figure()
    for i, col in enumerate(ys):
        color = COLORS[i % len(COLORS)]
        if run is None:
            fig.add_trace(go.Scatter(x=df[x], y=df[col], mode="lines", name=col, line=dict(color=color)))
            continue
        g = df.groupby(x)[col]
        mean, std = g.mean(), g.std().fillna(0.0)
        label = f"{col} (mean of {df[run].nunique()})"
        if band and df[run].nunique() > 1:
            fig.add_trace(go.Scatter(x=list(mean.index) + list(mean.index[::-1]),
                                     y=list(mean + std) + list((mean - std)[::-1]), fill="toself",
                                     line=dict(width=0), fillcolor=color, opacity=0.2, hoverinfo="skip",
                                     showlegend=False))
        fig.add_trace(go.Scatter(x=mean.index, y=mean, mode="lines", name=label, line=dict(color=color)))
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=ys[0] if len(ys) == 1 else None, height=380,
                      margin=dict(l=50, r=40, t=TOP_MARGIN if title else 20, b=40))
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def loss_curves(history: pd.DataFrame | Mapping[str, pd.DataFrame], terms: Sequence[str] | None = None,
                title: str = "Training loss", log_y: bool = False) -> go.Figure:
    """The loss history of :func:`cvtutor.train.fit` (or several, by name) against the step."""
    runs = {"": history} if isinstance(history, pd.DataFrame) else dict(history)
    fig = go.Figure()
    i = 0
    for name, df in runs.items():
        if "step" not in df.columns:
            raise KeyError("a loss history needs a 'step' column (as returned by cvtutor.train.fit)")
        cols = list(terms) if terms is not None else [c for c in df.columns if c != "step"]
        for col in cols:
            label = f"{name}: {col}" if name else col
            fig.add_trace(go.Scatter(x=df["step"], y=df[col], mode="lines", name=label,
                                     line=dict(color=COLORS[i % len(COLORS)])))
            i += 1
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss", height=380,
                      margin=dict(l=50, r=40, t=TOP_MARGIN, b=40))
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def bars(df: pd.DataFrame, x: str, y: str, color: str | None = None, error: str | None = None,
         title: str | None = None) -> go.Figure:
    """Grouped bars of ``y`` by ``x`` (and ``color``), with optional error bars."""
    fig = go.Figure()
    groups = [(None, df)] if color is None else list(df.groupby(color, sort=False))
    for i, (name, g) in enumerate(groups):
        fig.add_trace(go.Bar(x=g[x], y=g[y], name=str(name) if name is not None else y,
                             marker_color=COLORS[i % len(COLORS)],
                             error_y=dict(type="data", array=g[error]) if error else None))
    fig.update_layout(barmode="group", title=title, xaxis_title=x, yaxis_title=y, height=380,
                      margin=dict(l=50, r=40, t=TOP_MARGIN if title else 20, b=40))
    return fig
