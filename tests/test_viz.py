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


# ---- the book's figure defaults (issue 15) ----------------------------------------------------
def test_no_cdn_in_the_book_snippet():
    import plotly.graph_objects as go

    from cvtutor.viz import BookRenderer

    bundle = BookRenderer().to_mimebundle(go.Figure(go.Scatter(x=[1], y=[2])).to_dict())
    html = bundle["text/html"]
    assert "cdn" not in html.lower() and "https://" not in html and "createElement('script')" not in html


def test_image_grid_spacing_tiles_and_margins():
    import numpy as np

    from cvtutor import viz

    fig = viz.image_grid(np.zeros((12, 8, 8)), ncols=6, titles=[str(i) for i in range(12)], title="T", cell=50)
    assert fig.layout.height >= 2 * viz.MIN_TILE  # tiles raised to >= 100 px
    assert fig.layout.margin.t >= viz.TOP_MARGIN
    sizes = {a.font.size for a in fig.layout.annotations}
    assert sizes == {viz.SUBPLOT_TITLE_SIZE}
    # the gap between the two rows leaves room for a subplot title (>= 20 px)
    y0, y1 = fig.layout.yaxis.domain, fig.layout.yaxis7.domain
    plot_px = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    assert (y0[0] - y1[1]) * plot_px >= 20


def test_spacing_hand_cases():
    from cvtutor import viz

    assert viz.spacing(1, 30, 300) == 0.0
    assert viz.spacing(3, 30, 300) == pytest.approx(0.1)
    assert viz.spacing(20, 300, 300) == pytest.approx(0.9 / 19)  # never more than the rows allow


def test_categorical_mode_uses_a_legend():
    import numpy as np

    from cvtutor import viz
    from cvtutor.viz import hands as hviz

    fig = viz.scatter([0, 1, 2, 3], [0, 1, 0, 1], labels=[0, 1, 0, 2], names=["a", "b", "c"])
    assert [t.name for t in fig.data] == ["a", "b", "c"]
    assert len({t.marker.color for t in fig.data}) == 3 and all(t.marker.colorscale is None for t in fig.data)
    cloud = hviz.point_cloud(np.random.rand(10, 3), labels=np.arange(10) % 2)
    assert len(cloud.data) == 2 and cloud.layout.scene.xaxis.title.text == "x"
    with pytest.raises(ValueError, match="one entry per point"):
        viz.scatter([0, 1], [0, 1], labels=[0])


def test_the_template_keeps_the_toolbar_off_the_title():
    import plotly.io as pio

    from cvtutor import viz

    assert pio.templates[viz.TEMPLATE].layout.modebar.orientation == "v"
