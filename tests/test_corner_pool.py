"""Corner pooling (cvtutor.nn.corner_pool, derived in the CPN chapter): against a double loop,
its gradient, bad input."""

import itertools

import pytest
import torch

from cvtutor.nn.corner_pool import CornerPooling, corner_pool, reverse_cummax


def test_corner_pool_equals_double_loop():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 3, 5, 6, generator=g), torch.randn(2, 3, 5, 6, generator=g)
    tl, br = corner_pool(a, b, "tl"), corner_pool(a, b, "br")
    H, W = 5, 6
    for i, j in itertools.product(range(H), range(W)):
        ref_tl = a[..., i:, j].amax(-1) + b[..., i, j:].amax(-1)
        ref_br = a[..., :i + 1, j].amax(-1) + b[..., i, :j + 1].amax(-1)
        assert torch.allclose(tl[..., i, j], ref_tl) and torch.allclose(br[..., i, j], ref_br)


def test_reverse_cummax_and_gradient_reaches_the_max_only():
    x = torch.tensor([[1.0, 3.0, 2.0, 0.0]], requires_grad=True)
    y = reverse_cummax(x, 1)
    assert y.tolist() == [[3.0, 3.0, 2.0, 0.0]]
    y.sum().backward()
    assert x.grad.tolist() == [[0.0, 2.0, 1.0, 1.0]]


def test_corner_pool_bad_input():
    with pytest.raises(ValueError, match="corner must be"):
        corner_pool(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), "tr")
    with pytest.raises(ValueError, match="one shape"):
        corner_pool(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3), "tl")
    assert CornerPooling(8, "br")(torch.randn(2, 8, 6, 6)).shape == (2, 8, 6, 6)
