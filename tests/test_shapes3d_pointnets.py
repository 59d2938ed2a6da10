"""PointNet and the local-pool PointNet: invariance, scatter-mean and grid sampling by hand."""

import pytest
import torch

from cvtutor.nn import pointnets as pn


def test_pointnet_is_permutation_invariant_and_checks_shapes():
    torch.manual_seed(0)
    m = pn.PointNet(5, (16, 32))
    x = torch.randn(3, 50, 3)
    perm = torch.randperm(50)
    assert torch.allclose(m(x), m(x[:, perm]), atol=1e-6)
    out, h = m(x, per_point=True)
    assert out.shape == (3, 5) and h.shape == (3, 50, 32)
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        m(torch.randn(3, 50, 2))


def test_scatter_mean_by_hand():
    feat = torch.tensor([[[1.0], [3.0], [5.0], [7.0]]])
    idx = torch.tensor([[0, 0, 2, 2]])
    out = pn.scatter_mean(feat, idx, 3)
    assert torch.equal(out[0, :, 0], torch.tensor([2.0, 0.0, 6.0]))


def test_plane_and_grid_sampling_read_the_cells_they_scatter_to():
    R = 8
    g = torch.Generator().manual_seed(0)
    p01 = torch.rand(2, 64, 3, generator=g)
    centres = ((p01 * R).floor() + 0.5) / R
    ii, jj = torch.meshgrid(torch.arange(R.__index__()), torch.arange(R), indexing="ij")
    plane = torch.stack([ii, jj]).float()[None].expand(2, -1, -1, -1)
    for axes in pn.PLANES.values():
        f = pn.sample_plane_features(plane, centres, axes)
        assert torch.allclose(f, (centres[..., list(axes)] * R).floor())
        flat = pn.cell_index(centres, R, axes)
        assert torch.equal(
            flat, ((centres[..., axes[0]] * R).long() * R + (centres[..., axes[1]] * R).long())
        )
    a, b, c = torch.meshgrid(torch.arange(R), torch.arange(R), torch.arange(R), indexing="ij")
    grid = torch.stack([a, b, c]).float()[None].expand(2, -1, -1, -1, -1)
    assert torch.allclose(pn.sample_grid_features(grid, centres), (centres * R).floor())
    # a feature scattered to its cell and sampled at the cell's centre comes back unchanged
    feat = torch.randn(2, 64, 4, generator=g)
    uniq = torch.arange(64)[None].expand(2, 64)  # one point per cell on a 4×4×4 grid
    pts = (
        torch.stack(torch.meshgrid(*[torch.arange(4)] * 3, indexing="ij"), -1)
        .reshape(1, 64, 3)
        .float()
    )
    pts01 = ((pts + 0.5) / 4).expand(2, -1, -1)
    vol = (
        pn.scatter_mean(feat, pn.cell_index(pts01, 4, (0, 1, 2)), 64)
        .transpose(1, 2)
        .reshape(2, 4, 4, 4, 4)
    )
    assert torch.allclose(pn.sample_grid_features(vol, pts01), feat, atol=1e-6)
    del uniq


@pytest.mark.parametrize("grid", [False, True])
def test_local_pool_pointnet_shapes_invariance_and_gradients(grid):
    torch.manual_seed(1)
    enc = pn.LocalPoolPointNet(c_dim=8, hidden=16, resolution=8, grid=grid)
    dec = pn.OccupancyDecoder(c_dim=8, hidden=16)
    x = torch.rand(2, 100, 3) - 0.5
    feats = enc(x)
    want = {"grid": (2, 8, 8, 8, 8)} if grid else {k: (2, 8, 8, 8) for k in ("xy", "xz", "yz")}
    assert {k: tuple(v.shape) for k, v in feats.items()} == want
    perm = torch.randperm(100)
    assert all(torch.allclose(feats[k], enc(x[:, perm])[k], atol=1e-5) for k in feats)
    q = torch.rand(2, 30, 3) - 0.5
    logits = dec(q, enc.sample(feats, q))
    assert logits.shape == (2, 30)
    logits.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())
    with pytest.raises(ValueError, match="planes"):
        pn.LocalPoolPointNet(planes=("ab",))
