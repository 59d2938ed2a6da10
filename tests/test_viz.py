import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch

from cvtutor import viz


def test_book_renderer_emits_html_and_plotly_json():
    viz.use_book_renderer()
    assert pio.renderers.default == "cvtutor"
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name="</script><b>"))
    bundle = pio.renderers["cvtutor"].to_mimebundle(fig.to_dict())
    html = bundle["text/html"]
    assert 'class="cvtutor-plotly"' in html and "Plotly.newPlot" in html
    assert "</script><b>" not in html  # escaped inside the script
    assert bundle["application/vnd.plotly.v1+json"]["data"][0]["y"] == [3, 4]


@pytest.mark.parametrize("shape", [(4, 8, 8), (4, 1, 8, 8), (4, 3, 8, 8), (4, 8, 8, 3)])
def test_image_grid_shapes(shape):
    fig = viz.image_grid(torch.rand(shape), ncols=2, titles=list("abcd"))
    assert len(fig.data) == 4


def test_image_grid_errors():
    with pytest.raises(ValueError, match="images must be"):
        viz.image_grid(np.zeros((2, 5, 8, 8)))
    with pytest.raises(ValueError, match="titles"):
        viz.image_grid(np.zeros((2, 8, 8)), titles=["a"])


def test_curves_with_runs_draw_mean_and_band():
    df = pd.DataFrame({"x": [0, 1, 0, 1], "y": [1.0, 2.0, 3.0, 4.0], "seed": [0, 0, 1, 1]})
    fig = viz.curves(df, "x", "y", run="seed")
    mean = [t for t in fig.data if t.mode == "lines" and t.showlegend is not False][-1]
    assert list(mean.y) == [2.0, 3.0]
    assert len(fig.data) == 2
    with pytest.raises(KeyError, match="not in the frame"):
        viz.curves(df, "x", "z")


def test_loss_curves_and_bars():
    hist = pd.DataFrame({"step": [1, 2], "loss": [2.0, 1.0]})
    assert len(viz.loss_curves({"a": hist, "b": hist}).data) == 2
    with pytest.raises(KeyError, match="step"):
        viz.loss_curves(pd.DataFrame({"loss": [1.0]}))
    fig = viz.bars(pd.DataFrame({"m": ["a", "b"], "v": [1, 2], "g": ["x", "y"]}), "m", "v", color="g")
    assert len(fig.data) == 2
    json.loads(fig.to_json())
