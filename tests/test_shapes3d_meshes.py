"""Meshes: bends are isometries, operators against trimesh and hand cases, geodesics against the
closed form, scipy's Dijkstra and potpourri3d's heat method; gradients flow."""

import math

import numpy as np
import pytest
import torch

from cvtutor.data.shapes3d import meshes as M


def _bent(n=17, seed=0, kmax=4.0):
    sheet = M.grid_sheet(n, n, dtype=torch.float64)
    k = M.random_bends(1, torch.Generator().manual_seed(seed), 3, kmax, dtype=torch.float64)
    return sheet, k, M.bend(sheet["uv"][None], k, 1.0)


def test_bend_is_an_isometry():
    sheet, k, _ = _bent()
    g = torch.Generator().manual_seed(1)
    uv = torch.rand(1, 200, 2, generator=g, dtype=torch.float64) * 0.98 + 0.01
    e = 1e-6
    J = torch.stack(
        [
            (M.bend(uv + e * d, k, 1.0) - M.bend(uv - e * d, k, 1.0)) / (2 * e)
            for d in torch.eye(2, dtype=torch.float64)
        ],
        -1,
    )  # (1, 200, 3, 2)
    JtJ = J.transpose(-1, -2) @ J
    assert torch.allclose(JtJ, torch.eye(2, dtype=torch.float64).expand_as(JtJ), atol=1e-6)
    # zero curvature is the flat sheet; constant curvature κ is an arc of radius 1/κ
    flat = M.bend(sheet["uv"][None], torch.zeros(1, 3, dtype=torch.float64), 1.0)
    assert torch.allclose(flat[0], sheet["uv_3d"])
    arc = M.bend(sheet["uv"][None], torch.full((1, 2), 2.0, dtype=torch.float64), 1.0)[0]
    centre = torch.tensor([0.0, 0.5])  # the circle of radius 1/2 through the origin, tangent to x
    assert torch.allclose(
        torch.stack([arc[:, 0], arc[:, 2]], -1).sub(centre).norm(dim=-1),
        torch.full((len(arc),), 0.5, dtype=torch.float64),
        atol=1e-12,
    )


def test_operators_against_trimesh_and_hand_cases():
    trimesh = pytest.importorskip("trimesh")
    _, _, V = _bent(9)
    sheet = M.grid_sheet(9, 9, dtype=torch.float64)
    F = sheet["faces"]
    tm = trimesh.Trimesh(V[0].numpy(), F.numpy(), process=False)
    assert np.allclose(M.face_areas(V, F)[0].numpy(), tm.area_faces)
    assert np.allclose(M.face_normals(V, F)[0].numpy(), tm.face_normals)
    assert np.allclose(M.mass_lumped(V, F).sum().item(), tm.area)
    assert len(M.edges(F)) == len(tm.edges_unique)
    # flat sheet normals point to +z; the graph Laplacian has zero row sums, degrees on the diagonal
    assert torch.allclose(
        M.vertex_normals(sheet["uv_3d"][None], F)[0, :, 2], torch.ones(81, dtype=torch.float64)
    )
    Lg = M.graph_laplacian(F, 81)
    assert torch.allclose(Lg.sum(1), torch.zeros(81)) and Lg[0, 0] in (2, 3)
    # the cotangent Laplacian is symmetric PSD, kills constants and linear functions on a flat mesh
    L = M.cotangent_laplacian(sheet["uv_3d"][None], F)[0]
    assert torch.allclose(L, L.T) and torch.linalg.eigvalsh(L).min() > -1e-10
    interior = (sheet["row"] > 0) & (sheet["row"] < 8) & (sheet["col"] > 0) & (sheet["col"] < 8)
    lin = 3 * sheet["uv"][:, 0] - 2 * sheet["uv"][:, 1]
    assert (L @ lin)[interior].abs().max() < 1e-12 and (L.sum(1)).abs().max() < 1e-12
    # one equilateral triangle: every cotangent is 1/√3
    tri = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0.5, math.sqrt(3) / 2, 0]]], dtype=torch.float64)
    Lt = M.cotangent_laplacian(tri, torch.tensor([[0, 1, 2]]))[0]
    assert torch.allclose(Lt[0, 1], torch.tensor(-0.5 / math.sqrt(3), dtype=torch.float64))


def test_dijkstra_and_heat_against_closed_form_and_potpourri3d():
    sheet, _, V = _bent(17)
    F = sheet["faces"]
    exact = torch.cdist(sheet["uv"], sheet["uv"][:1])[:, 0]
    far = exact > 0.2
    heat = M.heat_geodesic(V, F, torch.tensor([0]))[0, :, 0]
    assert ((heat - exact).abs()[far] / exact[far]).mean() < 0.03
    flat = M.dijkstra(sheet["uv_3d"], F, [0])[0]
    assert (flat >= exact.numpy() - 1e-9).all()  # on the flat sheet, edge paths are never shorter
    d = M.dijkstra(V[0], F, [0])[
        0
    ]  # bent: edges are chords, shorter than arcs by ≤ κ²h²/24 = 0.26 %
    assert (d >= exact.numpy() * (1 - 16 / 16**2 / 24) - 1e-12).all()
    row0 = (sheet["row"] == 0).numpy()  # along the first row the edge path is the straight line
    assert np.allclose(d[row0], exact.numpy()[row0], rtol=3e-3)
    pp3d = pytest.importorskip("potpourri3d")
    ref = pp3d.MeshHeatMethodDistanceSolver(V[0].numpy(), F.numpy()).compute_distance(0)
    assert np.abs(heat.numpy() - ref).max() < 2e-3


def test_heat_geodesic_is_batched_and_differentiable():
    sheet = M.grid_sheet(6, 6, dtype=torch.float64)
    k = torch.tensor([[1.0, -2.0], [0.5, 0.0]], dtype=torch.float64)
    V = M.bend(sheet["uv"][None].expand(2, -1, -1), k, 1.0).requires_grad_(True)
    D = M.heat_geodesic(V, sheet["faces"], torch.tensor([0, 35]))
    assert (
        D.shape == (2, 36, 2) and D[:, 0, 0].abs().max() < 1e-12 and D[:, 35, 1].abs().max() < 1e-12
    )
    D[..., 0].sum().backward()
    assert torch.isfinite(V.grad).all() and V.grad.abs().sum() > 0
    single = M.heat_geodesic(V[1:].detach(), sheet["faces"], torch.tensor([35]))
    assert torch.allclose(single[0, :, 0], D[1, :, 1].detach())


def test_tube_rows_and_bad_input():
    g = torch.Generator().manual_seed(0)
    t = M.tube(M.torso_radii(2, g, rows=10), height=0.8, cols=12)
    assert t["verts"].shape == (2, 120, 3) and t["faces"].shape == (2 * 9 * 12, 3)
    assert torch.equal(t["row"], torch.arange(10).repeat_interleave(12))
    assert torch.allclose(t["verts"][0, t["row"] == 9, 2], torch.full((12,), 0.8))
    assert (M.face_areas(t["verts"], t["faces"]) > 0).all()
    with pytest.raises(ValueError, match=r"faces must be a \(F, 3\) long"):
        M.face_areas(t["verts"], t["faces"].float())
    with pytest.raises(ValueError, match="at least 2 rows"):
        M.grid_sheet(1, 5)
    with pytest.raises(ValueError, match="index vertices"):
        M.face_areas(t["verts"], t["faces"] + 1000)
