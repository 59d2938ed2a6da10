"""Transforms, partial scans (visibility on hand cases), overlaps and voxelisation."""

import math

import pytest
import torch

from cvtutor.data.shapes3d import primitives as P
from cvtutor.data.shapes3d import shapes as S
from cvtutor.data.shapes3d import transforms as T


def _sphere_samples(n, r=0.5, seed=0, centre=(0.0, 0.0, 0.0)):
    g = torch.Generator().manual_seed(seed)
    p, nrm, _ = P.sample_surface(
        torch.zeros(n, dtype=torch.long),
        torch.tensor([r, 0, 0, 0, 0.0]).expand(n, 5).contiguous(),
        g,
    )
    return (p + torch.tensor(centre))[None], nrm[None]


def test_sphere_scanned_from_plus_z_keeps_the_visible_cap():
    r, D = 0.5, 2.0
    p, n = _sphere_samples(20000, r)
    out = T.scan(p, n, torch.tensor([[0.0, 0, D]]), size=128)
    z = p[0, out["visible"][0], 2]
    assert (z > 0).all() and (z > r * r / D - 1e-6).all()
    # the visible cap's area share is (1 - r/D) / 2
    assert out["visible"].float().mean().item() == pytest.approx((1 - r / D) / 2, abs=0.01)


def test_zbuffer_hides_a_sphere_behind_another():
    a, na = _sphere_samples(8000, 0.3, 1, (0, 0, 0.5))
    b, nb = _sphere_samples(8000, 0.3, 2, (0, 0, -0.5))
    out = T.scan(
        torch.cat([a, b], 1), torch.cat([na, nb], 1), torch.tensor([[0.0, 0, 3.0]]), size=96
    )
    vis_b = out["visible"][0, 8000:]
    # the back sphere's facing cap near the axis lies in the front sphere's shadow
    near_axis = b[0, :, :2].norm(dim=-1) < 0.15
    assert not vis_b[near_axis].any()
    assert out["visible"][0, :8000].any()


def test_overlap_and_correspondences_are_exact():
    p, n = _sphere_samples(5000, 0.5, 3)
    va = T.scan(p, n, torch.tensor([[2.0, 0, 0]]))["visible"]
    vb = T.scan(p, n, torch.tensor([[0.0, 2.0, 0]]))["visible"]
    ov = T.overlap(va, vb)
    both = (p[0, :, 0] > 0.125) & (p[0, :, 1] > 0.125)  # facing both cameras (z-buffer aside)
    assert (ov["both"][0] <= both).all()
    assert ov["iou"][0] == pytest.approx(ov["both"].sum().item() / (va | vb).sum().item())
    g = torch.Generator().manual_seed(0)
    _, ia = T.resample(p, 300, g, va)
    _, ib = T.resample(p, 300, g, vb)
    pairs = T.correspondences(va, vb, ia, ib)[0]
    assert len(pairs) > 0 and torch.equal(ia[0, pairs[:, 0]], ib[0, pairs[:, 1]])
    assert ov["both"][0, ia[0, pairs[:, 0]]].all()


def test_rotations_normalize_resample_and_augment():
    g = torch.Generator().manual_seed(0)
    R = T.random_rotation(2000, g)
    eye = torch.eye(3).expand(2000, 3, 3)
    assert torch.allclose(R @ R.transpose(1, 2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(2000), atol=1e-5)
    assert R.mean(0).abs().max() < 0.05  # uniform on SO(3): E[R] = 0
    Rz = T.random_rotation(5, g, mode="up")
    assert torch.allclose(Rz[:, 2], torch.tensor([0, 0, 1.0]).expand(5, 3))
    x = torch.randn(3, 100, 3, generator=g) * 4 + 2
    y, c, s = T.normalize(x)
    assert torch.allclose(y.norm(dim=-1).max(1).values, torch.ones(3)) and torch.allclose(
        y * s[:, None, None] + c[:, None], x, atol=1e-5
    )
    yc, _, _ = T.normalize(x, "cube")
    assert torch.allclose((yc.max(1).values - yc.min(1).values).max(-1).values, torch.ones(3))
    mask = torch.zeros(3, 100, dtype=torch.bool)
    mask[:, :10] = True
    pts, idx = T.resample(x, 40, g, mask)
    assert (idx < 10).all() and torch.equal(pts, x.gather(1, idx[..., None].expand(3, 40, 3)))
    _, idx = T.resample(x, 50, g)
    assert all(len(set(i.tolist())) == 50 for i in idx)  # without replacement when possible
    xs, f = T.anisotropic_scale(x, g)
    assert torch.allclose(xs, x * f[:, None]) and (f >= 2 / 3).all() and (f <= 1.5).all()
    assert (T.jitter(x, g, 0.01, 0.02) - x).abs().max() <= 0.02 + 1e-6
    xd, kept = T.drop_points(x, g)
    assert torch.equal(xd[~kept], x[:, :1].expand_as(x)[~kept])
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        T.normalize(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="mode"):
        T.random_rotation(2, g, mode="euler")


def test_voxelisation():
    g = torch.Generator().manual_seed(0)
    sb = S.make_category("mug", 2, g)
    vox = T.voxelize_occupancy(sb.occupancy, 2, 32)
    assert vox.shape == (2, 32, 32, 32) and vox.any()
    pts = T.grid_points(32)
    assert torch.equal(vox.reshape(2, -1), sb.occupancy(pts.expand(2, -1, 3)))
    # a unit ball: the occupied fraction of the cube [-1, 1]³ tends to π/6
    ball = T.voxelize_occupancy(lambda q: q.norm(dim=-1) < 1, 1, 64, -1, 1)
    assert ball.float().mean().item() == pytest.approx(math.pi / 6, abs=5e-3)
    counts = T.voxelize_points(
        torch.tensor([[[0.01, 0.01, 0.01], [0.02, 0.02, 0.02], [0.9, 0, 0]]]), 4
    )
    assert counts.sum() == 2 and counts[0, 2, 2, 2] == 2


def test_hidden_point_removal_sees_the_near_cap_of_a_sphere():
    r, D = 0.5, 2.0
    p, n = _sphere_samples(3000, r, 4)
    vis = T.hidden_point_removal(p, torch.tensor([[0.0, 0, D]]))[0]
    z = p[0, vis, 2]
    # it keeps the near side (z > 0), about the visible cap (z > r²/D, 37.5 % of the samples)
    assert (z > 0).all() and (z > r * r / D).float().mean() > 0.9
    assert abs(vis.float().mean().item() - (1 - r / D) / 2) < 0.05
    exact = T.scan(p, n, torch.tensor([[0.0, 0, D]]), size=128)["visible"][0]
    assert (vis & exact).sum() / vis.sum() > 0.95  # what HPR keeps, the exact test sees too
    with pytest.raises(ValueError, match="eye"):
        T.hidden_point_removal(p, torch.zeros(2, 3))
