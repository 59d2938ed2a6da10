"""LIMP: the distance losses against hand cases, the heat geodesics against the closed form and
robust_laplacian, gradients of the geodesics (gradcheck), Eq. (8)'s bound, the CoMA reader on
fixture files, and the smoke run."""

import math

import numpy as np
import pytest
import torch

from cvtutor.data.shapes3d import meshes as M
from cvtutor.data.shapes3d import readers
from cvtutor.papers import limp as L


def _rotation(seed=0):
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed),
                                       dtype=torch.float64))
    return q * torch.sign(torch.det(q))


def test_euclidean_matrix_and_recon_loss_of_a_rigid_copy():
    X = torch.randn(2, 20, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    D = L.euclidean_matrix(X)
    assert torch.allclose(D, torch.cdist(X, X), atol=1e-6)
    Y = X @ _rotation().T + torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    assert float(L.recon_loss(Y, X)) < 1e-20  # Eq. (2) is blind to rigid motion
    assert float(L.recon_loss(2 * X, X)) == pytest.approx(1.0)  # (A - 2A)² / A² = 1
    X.requires_grad_(True)
    L.euclidean_matrix(X).sum().backward()
    assert torch.isfinite(X.grad).all()  # no NaN from the zero diagonal


def test_relative_error_hand_case_excludes_the_diagonal():
    A = torch.tensor([[[0.0, 1.0], [2.0, 0.0]]])
    B = torch.tensor([[[5.0, 2.0], [1.0, 5.0]]])
    # off-diagonal entries: (1-2)²/1 = 1 and (2-1)²/4 = 0.25 → mean 0.625
    assert float(L.relative_error(A, B)) == pytest.approx(0.625)
    with pytest.raises(ValueError, match="B, V, V"):
        L.relative_error(A, B[0])


def test_interpolation_and_latent_parts():
    zi, zj = torch.zeros(3, 5), torch.ones(3, 5)
    a = torch.tensor([0.0, 0.25, 1.0])
    assert torch.allclose(L.interpolate_latent(zi, zj, a, 3)[:, 0], a)
    zint = L.interpolate_latent(zi, zj, a, 3, "int")
    zext = L.interpolate_latent(zi, zj, a, 3, "ext")
    assert torch.equal(zint[:, 3:], zi[:, 3:]) and torch.allclose(zint[:, :3], a[:, None].expand(3, 3))
    assert torch.equal(zext[:, :3], zi[:, :3]) and torch.allclose(zext[:, 3:], a[:, None].expand(3, 2))
    with pytest.raises(ValueError, match="part"):
        L.interpolate_latent(zi, zj, a, 3, "pose")
    # Eq. (3) is 0 at α ∈ {0, 1} for a perfect decoder of the end points
    Di, Dj = L.euclidean_matrix(torch.randn(2, 2, 10, 3).unbind(0)[0]), None
    Dj = L.euclidean_matrix(torch.randn(2, 10, 3))
    Di = Di.expand_as(Dj)
    assert float(L.interp_loss(Di, Di, Dj, torch.zeros(2))) == 0
    assert float(L.interp_loss(Dj, Di, Dj, torch.ones(2))) < 1e-12


def test_eq8_bound_K_alpha_le_alpha_K():
    g = torch.Generator().manual_seed(1)
    dx, dy = torch.rand(50, 50, generator=g), torch.rand(50, 50, generator=g)
    K = L.distortion(dx, dy)
    for a in (0.0, 0.1, 0.5, 0.9, 1.0):
        Ka = L.distortion(dx, L.interpolated_metric(dx, dy, a))
        assert float(Ka) <= a * float(K) + 1e-6


def test_heat_geodesics_on_flat_and_bent_sheets_match_the_closed_form():
    d = L.sheet_shapes(9, 17, (0.6,), (1.3,), ((0.0, 0.0), (2.5, -2.5)))
    D = L.geodesic_matrix(d["verts"].double(), d["faces"])
    exact = d["geodesic"].double()
    far = exact > 0.3
    rel = ((D - exact).abs()[far] / exact[far]).mean()
    assert float(rel) < 0.04
    assert torch.allclose(D, D.transpose(1, 2)) and float(D.diagonal(0, 1, 2).abs().max()) == 0
    cols = L.geodesic_matrix(d["verts"].double(), d["faces"], sources=torch.tensor([0, 5]))
    assert cols.shape == (2, 9 * 17, 2)


def test_cotangent_laplacian_and_mass_against_robust_laplacian_and_trimesh():
    robust_laplacian = pytest.importorskip("robust_laplacian")
    trimesh = pytest.importorskip("trimesh")
    d = L.sheet_shapes(6, 9, (0.6,), (1.0,), ((2.0, -1.0),))
    V, F = d["verts"].double(), d["faces"]
    Lc = M.cotangent_laplacian(V, F)[0].numpy()
    Lr, Mr = robust_laplacian.mesh_laplacian(V[0].numpy(), F.numpy())
    assert np.allclose(Lc, Lr.toarray(), atol=1e-8)  # both positive semi-definite
    mass = M.mass_lumped(V, F)[0]
    assert np.allclose(mass.numpy(), Mr.diagonal(), atol=1e-10)
    area = trimesh.Trimesh(V[0].numpy(), F.numpy(), process=False).area
    assert float(mass.sum()) == pytest.approx(area, rel=1e-10)


def test_gradcheck_of_the_geodesics_wrt_the_vertices():
    d = L.sheet_shapes(3, 4, (0.5,), (1.0,), ((1.0, -1.0),))
    V = d["verts"].double() + 0.01 * torch.randn(1, 12, 3, dtype=torch.float64,
                                                  generator=torch.Generator().manual_seed(0))
    V.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: L.geodesic_matrix(v, d["faces"]), (V,),
                                    eps=1e-6, atol=1e-5)


def test_losses_vanish_where_the_construction_says():
    d = L.make_data(L.Config.smoke())
    X = d["verts"][d["train_index"]]
    i = d["pairs_iso"][:, 0]
    assert float(L.intrinsic_loss(X[i], X[i])) == 0  # Eq. (5) for a decoder ignoring z^int
    # Eq. (6): a bent copy of X_i keeps its geodesics (an isometry), up to the heat method
    j = d["pairs_iso"][:, 1]
    Dg = d["geodesic"][d["train_index"][i]]
    assert float(L.extrinsic_loss(X[j], Dg, d["faces"])) < 0.05
    assert float(L.extrinsic_loss(2 * X[j], Dg, d["faces"])) > 0.5


def test_world_split_and_pairs():
    cfg = L.Config.fast()
    d = L.make_data(cfg)
    assert d["verts"].shape == (24, 128, 3) and int(d["train"].sum()) == 12
    st, po = d["style"][d["train_index"]], d["pose"][d["train_index"]]
    p = d["pairs_iso"]
    assert bool((st[p[:, 0]] == st[p[:, 1]]).all()) and len(p) == 12
    q = d["pairs_noniso"]
    assert bool((st[q[:, 0]] != st[q[:, 1]]).all())
    assert torch.allclose(d["verts"].mean(1), torch.zeros(24, 3), atol=1e-6)


def test_model_shapes_and_bad_input():
    m = L.LIMPVAE(12, 3, 1, widths=(8,), head=8, dec_widths=(16,))
    mu, lv = m.encode(torch.randn(2, 12, 3))
    assert mu.shape == lv.shape == (2, 4) and m.decode(mu).shape == (2, 12, 3)
    with pytest.raises(ValueError, match=r"\(B, 12, 3\)"):
        m.encode(torch.randn(2, 11, 3))
    with pytest.raises(ValueError, match="model must be"):
        L.train_model(L.Config.smoke(), L.make_data(L.Config.smoke()), "AE")


def test_stage_schedule():
    cfg = L.Config.fast()
    assert [L.stage(s, cfg) for s in (0, 149, 150, 274, 275, 499)] == [
        "recon", "recon", "euclid", "euclid", "geo", "geo"]


def test_read_coma_on_fixture_files(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    faces = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]])
    for subj in ("FaceTalk_A", "FaceTalk_B"):
        for expr in ("bareteeth", "mouth_up"):
            (tmp_path / subj / expr).mkdir(parents=True)
            for fr in ("000001", "000002"):
                trimesh.Trimesh(verts + len(subj), faces, process=False).export(
                    tmp_path / subj / expr / f"{expr}.{fr}.ply")
    out = readers.read_coma(tmp_path)
    assert out["verts"].shape == (8, 4, 3) and out["faces"].tolist() == faces.tolist()
    assert out["subject"][0] == "FaceTalk_A" and out["expression"][2] == "mouth_up"
    assert out["frame"][:2] == ["000001", "000002"]
    assert readers.read_coma(tmp_path, "FaceTalk_B")["verts"].shape == (4, 4, 3)
    with pytest.raises(FileNotFoundError, match="CoMA"):
        readers.read_coma(tmp_path, "nobody")
    with pytest.raises(FileNotFoundError):
        readers.read_coma(tmp_path / "missing")


def test_smoke_run_returns_every_key():
    res = L.run(L.Config.smoke())
    for k in ("table1", "table1_means", "compare_interp", "compare_disent", "separation",
              "curves_vae", "curves_euc", "curves_geo", "findings"):
        assert k in res
    assert set(res["table1"]["model"]) == set(L.MODELS) and res["table1"]["seed"].nunique() == 2
    assert np.isfinite(res["table1"][["interpolation error", "disentanglement error"]]).all().all()


def test_same_seed_same_numbers():
    cfg = L.Config.smoke().replace(seeds=(0,))
    a, b = L.run(cfg)["table1"], L.run(cfg)["table1"]
    assert a.equals(b)
    assert math.isfinite(float(a["interpolation error"].iloc[0]))
