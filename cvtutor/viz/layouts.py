"""Graphic-design layouts drawn as boxes coloured by category (E29, Neural Design Network).

The chapter is notebooks/eccv2020/neural_design_network.ipynb; the layouts come from
:mod:`cvtutor.data.layouts` in the long form of
:func:`cvtutor.papers.neural_design_network.samples_frame`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from cvtutor.viz import CATEGORICAL, subplots


def layout_grid(
    df: pd.DataFrame,
    rows: Sequence[str],
    row_col: str = "method",
    col: str = "layout",
    categories: Sequence[str] = (),
    title: str | None = None,
    cell_px: int = 150,
) -> go.Figure:
    """One subplot per (``row_col`` value, ``col`` value): each component a rectangle
    ``(x, y, w, h)`` on the unit canvas (y downwards), coloured by ``category``, with a legend."""
    need = {row_col, col, "category", "x", "y", "w", "h"}
    if not need <= set(df.columns):
        raise ValueError(f"layout_grid needs columns {sorted(need)}, got {sorted(df.columns)}")
    cols = sorted(df[col].unique())
    cats = list(categories) or sorted(df["category"].unique())
    titles = [f"{r} · {c}" if len(cols) > 1 else str(r) for r in rows for c in cols]
    fig = subplots(
        len(rows),
        len(cols),
        titles=titles,
        height=60 + int(cell_px * 1.15) * len(rows),
        width=max(752, cell_px * len(cols)),
    )
    seen = set()
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            sub = df[(df[row_col] == r) & (df[col] == c)]
            for _, b in sub.iterrows():
                k = cats.index(b["category"]) if b["category"] in cats else len(cats)
                color = CATEGORICAL[k % len(CATEGORICAL)]
                xs = [b.x, b.x + b.w, b.x + b.w, b.x, b.x]
                ys = [b.y, b.y, b.y + b.h, b.y + b.h, b.y]
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=ys,
                        fill="toself",
                        mode="lines",
                        line=dict(color=color, width=1.5),
                        opacity=0.55,
                        name=b["category"],
                        legendgroup=b["category"],
                        showlegend=b["category"] not in seen,
                        hoverinfo="name",
                    ),
                    row=i + 1,
                    col=j + 1,
                )
                seen.add(b["category"])
            fig.update_xaxes(range=[0, 1], showticklabels=False, row=i + 1, col=j + 1)
            fig.update_yaxes(
                range=[1, 0], showticklabels=False, scaleanchor=None, row=i + 1, col=j + 1
            )
    fig.update_layout(title=title, margin=dict(t=80))
    return fig
