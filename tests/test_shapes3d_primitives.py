"""Primitives and their unions: samples on the zero set, areas against closed forms and trimesh,
volumes (occupancy) against closed forms, normals against the SDF's gradient."""

import math

import numpy as np
import pytest
import torch

from cvtutor.data.shapes3d import primitives as P
from cvtutor.data.shapes3d import shapes as S

ROWS = {
    0: [0.5, 0, 0, 0, 0],
    1: [0.6, 0.4, 0.25, 0, 0],
    2: [0.3, 0.2, 0.4, 0, 0],
    3: [0.3, 0.5, 0, 0, 0],
    4: [0.4, 0.1, 0.3, 0, 0],
    5: [0.5, 0.15, 0, 0, 0],
    6: [0.2, 0.3, 0, 0, 0],
    7: [0.5, 0.4, 0.3, 0.5, 0.7],
}


def _rows(t, m):
    return torch.full((m,), t), torch.tensor(ROWS[t], dtype=torch.float64).expand(m, 5).contiguous()


@pytest.mark.parametrize("t", range(8), ids=P.TYPES)
def test_samples_on_zero_set_with_gradient_normals(t):
    g = torch.Generator().manual_seed(t)
    types, params = _rows(t, 4000)
    pts, nrm, patch = P.sample_surface(types, params, g)
    d = P.sdf(types[:1], params[:1], pts[None])[0]
    assert d.abs().max() < 1e-5
    assert torch.allclose(nrm.norm(dim=-1), torch.ones(len(nrm), dtype=nrm.dtype), atol=1e-9)
    assert patch.max() < P.N_PATCHES[t]
    # the normal is the SDF's gradient away from edges (central differences)
    e = 1e-6
    grad = torch.stack(
        [
            (
                P.sdf(types[:1], params[:1], (pts + e * v)[None])
                - P.sdf(types[:1], params[:1], (pts - e * v)[None])
            )[0]
            / (2 * e)
            for v in torch.eye(3, dtype=torch.float64)
        ],
        -1,
    )
    cos = (grad / grad.norm(dim=-1, keepdim=True) * nrm).sum(-1)
    assert (cos > 0.999).float().mean() > 0.99


def _ellipsoid_area(a, b, c):
    from scipy.special import ellipeinc, ellipkinc

    a, b, c = sorted([a, b, c], reverse=True)
    phi = math.acos(c / a)
    k2 = a * a * (b * b - c * c) / (b * b * (a * a - c * c))
    return 2 * math.pi * c * c + 2 * math.pi * a * b / math.sin(phi) * (
        ellipeinc(phi, k2) * math.sin(phi) ** 2 + ellipkinc(phi, k2) * math.cos(phi) ** 2
    )


@pytest.mark.parametrize("abc", [(0.6, 0.4, 0.25), (1.0, 0.1, 0.05), (0.31, 0.3, 0.2)])
def test_ellipsoid_area_matches_elliptic_integrals(abc):
    ours = P.area(torch.tensor([1]), torch.tensor([[*abc, 0, 0]], dtype=torch.float64)).item()
    assert ours == pytest.approx(_ellipsoid_area(*abc), rel=1e-6)


def _trimesh_of(t, params, n=400):
    """A fine trimesh of a primitive from trimesh's own constructors (or a parametric grid)."""
    trimesh = pytest.importorskip("trimesh")
    c = params
    if t == 0:
        return trimesh.creation.icosphere(subdivisions=6, radius=c[0])
    if t == 2:
        return trimesh.creation.box(extents=[2 * c[0], 2 * c[1], 2 * c[2]])
    if t == 3:
        return trimesh.creation.cylinder(radius=c[0], height=2 * c[1], sections=2048)
    if t == 5:
        return trimesh.creation.torus(
            major_radius=c[0], minor_radius=c[1], major_sections=512, minor_sections=512
        )
    if t == 6:
        return trimesh.creation.capsule(height=2 * c[1], radius=c[0], count=[512, 512])
    # ellipsoid / superquadric / cone: parametric grids
    eta = np.linspace(-np.pi / 2, np.pi / 2, n)
    om = np.linspace(-np.pi, np.pi, 2 * n)
    E, O = np.meshgrid(eta, om, indexing="ij")

    def f(w, e):
        return np.sign(w) * np.abs(w) ** e

    if t in (1, 7):
        a1, a2, a3, e1, e2 = c if t == 7 else (*c[:3], 1.0, 1.0)
        X = np.stack(
            [
                a1 * f(np.cos(E), e1) * f(np.cos(O), e2),
                a2 * f(np.cos(E), e1) * f(np.sin(O), e2),
                a3 * f(np.sin(E), e1),
            ],
            -1,
        )
        idx = np.arange(n * 2 * n).reshape(n, 2 * n)
        F = np.concatenate(
            [
                np.stack([idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()], 1),
                np.stack([idx[:-1, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()], 1),
            ]
        )
        return trimesh.Trimesh(X.reshape(-1, 3), F, process=False)
    r1, r2, h = c[:3]  # frustum: the revolution of its profile
    prof = np.array([[0, -h], [r1, -h], [r2, h], [0, h]])
    return trimesh.creation.revolve(prof, sections=2048)


@pytest.mark.parametrize("t", range(8), ids=P.TYPES)
def test_area_and_volume_match_trimesh(t):
    params = torch.tensor([ROWS[t]], dtype=torch.float64)
    mesh = _trimesh_of(t, ROWS[t])
    a = P.area(torch.tensor([t]), params).item()
    v = P.volume(torch.tensor([t]), params).item()
    assert a == pytest.approx(mesh.area, rel=2e-3)
    assert v == pytest.approx(abs(mesh.volume), rel=2e-3)


@pytest.mark.parametrize("t", range(8), ids=P.TYPES)
def test_occupancy_volume_and_sign(t):
    g = torch.Generator().manual_seed(10 + t)
    types, params = _rows(t, 1)
    q = torch.rand(1, 400_000, 3, generator=g, dtype=torch.float64) * 2 - 1
    occ = P.occupancy(types, params, q)
    est = occ.double().mean().item() * 8
    assert est == pytest.approx(P.volume(types, params).item(), abs=4 * math.sqrt(est * 8 / 4e5))
    # exact sign: the implicit inside test agrees for the ellipsoid and the superquadric
    if t in (1, 7):
        a = params[0, :3]
        e1, e2 = (1.0, 1.0) if t == 1 else params[0, 3:].tolist()
        assert torch.equal(occ[0], P.superquadric_F(q[0], a, e1, e2) < 1)


def test_sdf_hand_cases():
    box = torch.tensor([2]), torch.tensor([[1.0, 1, 1, 0, 0]])
    p = torch.tensor([[[2.0, 0, 0], [2, 2, 0], [0, 0, 0], [0.5, 0, 0]]])
    assert torch.allclose(P.sdf(*box, p)[0], torch.tensor([1, math.sqrt(2), -1, -0.5]))
    ell = torch.tensor([1]), torch.tensor([[2.0, 1, 0.5, 0, 0]], dtype=torch.float64)
    p = torch.tensor([[[3.0, 0, 0], [0, 0, 0], [0, 0, 2]]], dtype=torch.float64)
    assert torch.allclose(P.sdf(*ell, p)[0], torch.tensor([1.0, -0.5, 1.5], dtype=torch.float64))
    tor = torch.tensor([5]), torch.tensor([[1.0, 0.25, 0, 0, 0]])
    assert torch.allclose(
        P.sdf(*tor, torch.tensor([[[1.0, 0, 0], [0, 0, 0]]]))[0], torch.tensor([-0.25, 0.75])
    )


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"params \(\.\.\., 5\)"):
        P.sdf(torch.tensor([0]), torch.zeros(1, 4), torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="type ids"):
        P.area(torch.tensor([9]), torch.ones(1, 5))
    with pytest.raises(KeyError, match="unknown category"):
        S.make_category("unicorn", 2, torch.Generator())


@pytest.mark.parametrize("name", S.CATEGORIES)
def test_category_union_samples_are_exact_and_in_the_unit_cube(name):
    g = torch.Generator().manual_seed(1)
    sb = S.make_category(name, 6, g)
    out = sb.sample(512, g)
    assert sb.sdf(out["points"]).abs().max() < 1e-5
    assert out["points"].abs().max() <= 0.5 + 1e-5
    # no sample lies inside the union (it would be buried in a joint)
    inner = out["points"] - 1e-4 * out["normals"]
    outer = out["points"] + 1e-4 * out["normals"]
    assert (
        sb.occupancy(inner).float().mean() > 0.98 and (~sb.occupancy(outer)).float().mean() > 0.98
    )
    assert set(out["part"].unique().tolist()) <= set(range(len(S.PARTS[name])))
    assert (sb.label == S.CATEGORIES.index(name)).all()


def test_union_sampling_is_area_uniform():
    """Two overlapping spheres: the fraction of samples on each visible cap is its area share."""
    g = torch.Generator().manual_seed(2)
    types = torch.zeros(1, 2, dtype=torch.long)
    params = torch.tensor([[[0.5, 0, 0, 0, 0], [0.3, 0, 0, 0, 0]]], dtype=torch.float64)
    trans = torch.tensor([[[0.0, 0, 0], [0.6, 0, 0]]], dtype=torch.float64)
    sb = S.ShapeBatch(
        types,
        params,
        torch.eye(3, dtype=torch.float64).expand(1, 2, 3, 3),
        trans,
        torch.tensor([[0, 1]]),
        torch.ones(1, 2, dtype=torch.bool),
        torch.zeros(1, dtype=torch.long),
        torch.zeros(1, 2, dtype=torch.long),
    )
    out = sb.sample(40_000, g)
    # cap areas: plane of intersection x0 = (d² + R² - r²) / 2d; cap area 2πR·height
    R, r, d = 0.5, 0.3, 0.6
    x0 = (d * d + R * R - r * r) / (2 * d)
    big = 2 * math.pi * R * (R + x0)
    small = 2 * math.pi * r * (r + (d - x0))
    frac = (out["part"] == 1).double().mean().item()
    assert frac == pytest.approx(small / (big + small), abs=0.01)
    assert sb.sdf(out["points"]).abs().max() < 1e-6


def test_transform_keeps_distances_exact_and_seeds_repeat():
    g = torch.Generator().manual_seed(3)
    sb = S.make_category("chair", 3, g)
    q = torch.rand(3, 100, 3, generator=g) - 0.5
    R = S.axis_rotation(torch.tensor([0.3, 1.0, -2.0]), "z") @ S.axis_rotation(
        torch.tensor([0.5, 0, 1]), "x"
    )
    t, s = torch.randn(3, 3, generator=g), torch.tensor([0.5, 2.0, 1.5])
    moved = sb.transform(R, t, s)
    q2 = s[:, None, None] * torch.einsum("bij,bqj->bqi", R, q) + t[:, None]
    assert torch.allclose(moved.sdf(q2), s[:, None] * sb.sdf(q), atol=1e-5)
    a = S.make_classes(2, torch.Generator().manual_seed(7)).sample(
        64, torch.Generator().manual_seed(8)
    )
    b = S.make_classes(2, torch.Generator().manual_seed(7)).sample(
        64, torch.Generator().manual_seed(8)
    )
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cad_library_is_fixed_and_rooms_are_exact():
    lib1, lib2 = S.cad_library(2), S.cad_library(2)
    assert torch.equal(lib1.params, lib2.params) and len(lib1) == 2 * len(S.CATEGORIES)
    g = torch.Generator().manual_seed(4)
    rooms = S.make_rooms(3, g, n_objects=(3, 5))
    n_obj = torch.tensor([rooms.instance[i][rooms.valid[i]].unique().numel() - 5 for i in range(3)])
    assert ((n_obj >= 3) & (n_obj <= 5)).all()
    out = rooms.sample(2000, g)
    assert rooms.sdf(out["points"]).abs().max() < 1e-5
    assert out["part"].max() < len(S.ROOM_SEMANTICS)
    lo, hi = rooms.bbox()
    assert (lo[:, 2] > -0.2).all() and (hi[:, 2] < 1.5).all()


def test_shape_batch_helpers_and_errors():
    g = torch.Generator().manual_seed(5)
    sb = S.make_category("table", 4, g)
    out = sb.sample(256, g)
    assert torch.equal(sb.nearest_part(out["points"]), out["part"])  # a sample's own part is nearest
    c = sb.compact()
    assert c.types.shape[1] == int(sb.valid.sum(1).max())
    q = torch.rand(4, 64, 3, generator=g) - 0.5
    assert torch.equal(c.sdf(q), sb.sdf(q))
    with pytest.raises(ValueError, match=r"ShapeBatch.params must be"):
        S.ShapeBatch(sb.types, sb.params[..., :4], sb.rot, sb.trans, sb.part, sb.valid, sb.label,
                     sb.instance)
    with pytest.raises(ValueError, match=r"points must be \(4, Q, 3\)"):
        sb.sdf(torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="n_objects"):
        S.make_rooms(1, g, n_objects=(0, 3))
    with pytest.raises(ValueError, match="scale must be positive"):
        sb.transform(scale=torch.zeros(4))
