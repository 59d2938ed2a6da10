"""2-D point sets: arc-length resampling by hand, digit and glyph outlines."""

import numpy as np
import pytest
import torch

from cvtutor.data.shapes3d import points2d as P2


def test_resampling_a_square_is_equally_spaced_on_its_outline():
    sq = np.array([[0, 0], [1, 0], [1, 1], [0, 1.0]])
    p = P2.resample_polyline(sq, 8)
    assert np.allclose(p, [[0, 0], [0.5, 0], [1, 0], [1, 0.5], [1, 1], [0.5, 1], [0, 1], [0, 0.5]])
    # two outlines: points in proportion to length (4 vs 2 -> 8 of 12 and 4 of 12)
    small = sq * 0.5 + 3
    both = P2.resample_polylines([sq, small], 12)
    assert (both[:, 0] >= 3).sum() == 4
    with pytest.raises(ValueError, match="polyline"):
        P2.resample_polyline(np.zeros((1, 2)), 4)


def test_digit_contours():
    pts, labels = P2.digit_contours(128, count=20)
    assert pts.shape == (20, 128, 2) and torch.equal(
        labels,
        torch.tensor(
            __import__("sklearn.datasets", fromlist=["load_digits"]).load_digits().target[:20]
        ),
    )
    assert torch.allclose(pts.abs().amax((1, 2)), torch.ones(20))  # longer side spans [-1, 1]
    # a '0' has an inner and an outer outline: its points are far from the centre on average
    zero = pts[labels == 0][0]
    assert zero.norm(dim=-1).min() > 0.1


def test_glyph_outlines():
    from skimage.measure import points_in_poly

    pts = P2.glyph_outline("OI", 200)
    assert pts.shape == (2, 200, 2) and torch.isfinite(pts).all()
    # 'O' is a ring: no point near its centre; 'I' is a bar: all x within a narrow band
    assert pts[0].norm(dim=-1).min() > 0.3
    assert pts[1, :, 0].abs().max() < 0.5
    # every 'O' point lies on the glyph boundary: neither strictly inside the inner hole's square
    assert not points_in_poly(
        pts[0].numpy(), np.array([[-0.2, -0.2], [0.2, -0.2], [0.2, 0.2], [-0.2, 0.2]])
    ).any()
    with pytest.raises(ValueError, match="empty"):
        P2.glyph_outline("")
