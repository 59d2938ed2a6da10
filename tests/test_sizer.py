"""SIZER (E01): the garment world, ParserNet's convex layer, losses, metrics, baselines, readers."""

import math
import pickle

import numpy as np
import pytest
import torch

from cvtutor.data.shapes3d import garments as GW
from cvtutor.data.shapes3d import meshes, readers
from cvtutor.papers import sizer as S

trimesh = pytest.importorskip("trimesh")


@pytest.fixture(scope="module")
def world():
    return GW.GarmentWorld()


@pytest.fixture(scope="module")
def data(world):
    return world.sample(6, seed=3)


# ---- the world (Eqs. 1-3) ---------------------------------------------------------------------
def test_sample_is_seeded_and_shaped(world, data):
    again = world.sample(6, seed=3)
    assert torch.equal(data["mesh"], again["mesh"])
    assert not torch.equal(data["mesh"], world.sample(6, seed=4)["mesh"])
    V = world.n_verts
    assert data["mesh"].shape == (6, 4, V, 3) and data["body"].shape == (6, V, 3)
    assert data["garments"]["upper"].shape == (6, 4, len(world.garment_index("upper")), 3)


def test_body_is_linear_in_beta(world):
    """Eq. (2) with θ = 0: T(β) - T̄ is linear in β (B_s is a linear blend-shape basis)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 4, generator=g), torch.randn(2, 4, generator=g)
    T = world.template()
    lhs = world.body(2 * a + 3 * b) - T
    rhs = 2 * (world.body(a) - T) + 3 * (world.body(b) - T)
    assert torch.allclose(lhs, rhs, atol=1e-6)
    assert torch.allclose(world.body(torch.zeros(1, 4))[0], T)


def test_indicator_matches_index(world, data):
    """Eq. (3): T^g = I^g T, the dense indicator and the index vector agree."""
    I = world.indicator("upper")
    assert I.sum(1).eq(1).all() and I.sum() == len(world.garment_index("upper"))
    assert torch.allclose(I @ data["body"][0], data["body"][0, world.garment_index("upper")])


def test_registered_garment_is_a_convex_combination_of_the_input(world, data):
    """Each G_GT vertex lies in the box of its 3x3 input neighbourhood (bilinear in 4 vertices)."""
    idx = world.garment_index("lower")
    nbr = S.neighbourhoods(world.template(), idx, 9)
    clean = data["clean"][:, 2]
    nb = clean[:, nbr]
    G = data["garments"]["lower"][:, 2]
    assert (G >= nb.min(2).values - 1e-6).all() and (G <= nb.max(2).values + 1e-6).all()


def test_loose_sizes_fold_more(world, data):
    fold = data["fold"].mean(-1)
    assert (fold[:, 3] > fold[:, 0]).all()


def test_split_protocol():
    sp = GW.split(100, 40)
    assert sp["test"].sum() == 40 and (sp["train"] ^ sp["test"]).all()
    unseen = sp["test"].all(1)
    assert unseen.sum() == 6 and (sp["test"].sum(1)[~unseen] <= 1).all()
    with pytest.raises(ValueError, match="n_test"):
        GW.split(10, 40)


def test_world_bad_input(world):
    with pytest.raises(ValueError, match="beta must be"):
        world.body(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="garment must be"):
        world.garment_index("hat")
    with pytest.raises(ValueError, match="rows >= 10"):
        GW.GarmentWorld(rows=4)


# ---- Eq. (6): the convex-combination layer ------------------------------------------------------
def test_parsernet_rows_are_convex_and_init_is_near_indicator(world, data):
    idx = world.garment_index("upper")
    nbr = S.neighbourhoods(world.template(), idx, 16)
    assert (nbr[:, 0] == idx).all()
    faces = world.faces()
    M = data["mesh"][:, 1]
    x = S.mesh_features(M, faces, world.template())
    net = S.ParserNet(x.shape[1], nbr, 32, init_index=idx, init_weight=0.9)
    W = net(x)
    assert (W >= 0).all() and torch.allclose(W.sum(-1), torch.ones(W.shape[:2]))
    assert (W[..., 0] > 0.85).all()
    G, _ = net.parse(x, M)
    nb = M[:, nbr]
    assert (G >= nb.min(2).values - 1e-6).all() and (G <= nb.max(2).values + 1e-6).all()


def test_indicator_weights_cut_out_the_garment_exactly(world, data):
    idx = world.garment_index("upper")
    nbr = S.neighbourhoods(world.template(), idx, 16)
    W = S.indicator_weights(nbr, idx).expand(len(data["mesh"]), -1, -1)
    M = data["mesh"][:, 0]
    assert torch.equal(S.convex_combination(W, M, nbr), M[:, idx])


def test_convex_combination_gradients():
    g = torch.Generator().manual_seed(2)
    W = torch.softmax(torch.randn(2, 3, 4, generator=g, dtype=torch.float64), -1).requires_grad_()
    M = torch.randn(2, 6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    nbr = torch.randint(0, 6, (3, 4), generator=g)
    assert torch.autograd.gradcheck(lambda w, m: S.convex_combination(w, m, nbr).double(), (W, M))


def test_convex_combination_hand_case_and_bad_shapes():
    M = torch.tensor([[[0.0, 0, 0], [2, 0, 0], [0, 4, 0]]])
    nbr = torch.tensor([[0, 1, 2]])
    W = torch.tensor([[[0.5, 0.25, 0.25]]])
    assert torch.allclose(S.convex_combination(W, M, nbr), torch.tensor([[[0.5, 1.0, 0.0]]]))
    with pytest.raises(ValueError, match="weights must be"):
        S.convex_combination(W[:, :, :2], M, nbr)
    with pytest.raises(ValueError, match="mesh must be"):
        S.convex_combination(W, M[..., :2], nbr)


# ---- the losses ---------------------------------------------------------------------------------
def _mesh(world, data):
    faces = S.garment_faces(world, "upper")
    return data["garments"]["upper"][:, 1], faces


def test_normal_loss_zero_two_and_trimesh(world, data):
    G, faces = _mesh(world, data)
    assert float(S.normal_loss(G, G, faces)) < 1e-6
    assert abs(float(S.normal_loss(G, G, faces.flip(1), gt_faces=faces)) - 2.0) < 1e-5
    ours = meshes.face_normals(G[:1].double(), faces)[0].numpy()
    ref = trimesh.Trimesh(G[0].double().numpy(), faces.numpy(), process=False).face_normals
    assert np.allclose(ours, ref, atol=1e-8)


def test_normal_loss_hand_value_rotated_triangle():
    tri = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]])
    a = 0.3
    R = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    f = torch.tensor([[0, 1, 2]])
    assert abs(float(S.normal_loss(tri @ R.T, tri, f)) - (1 - math.cos(a))) < 1e-6


def test_graph_laplacian_matches_scipy_and_loss_is_translation_invariant(world, data):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import laplacian

    G, faces = _mesh(world, data)
    m = G.shape[1]
    L = meshes.graph_laplacian(faces, m)
    e = meshes.edges(faces).numpy()
    A = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(m, m))
    assert np.allclose(L.numpy(), laplacian((A + A.T).toarray()))
    P = G + 0.003 * torch.randn(G.shape, generator=torch.Generator().manual_seed(1))
    assert float(S.laplacian_loss(G, G, L)) == 0
    shifted = S.laplacian_loss(P + torch.tensor([0.1, -0.2, 0.3]), G, L)
    assert torch.allclose(shifted, S.laplacian_loss(P, G, L), atol=1e-6)
    with pytest.raises(ValueError, match="lap must be"):
        S.laplacian_loss(G, G, L[:-1, :-1])


def test_interpenetration_hand_cases():
    body = torch.zeros(1, 1, 3)
    normal = torch.tensor([[[0.0, 0, 1]]])
    outside = torch.tensor([[[0.0, 0, 0.05]]])
    inside = torch.tensor([[[0.0, 0, -0.004], [0.0, 0, 0.01]]])
    assert float(S.interpenetration_loss(outside, outside, body, normal, 0.02)) == 0
    # one of m = 2 vertices 4 mm inside: depth / m_g
    val = S.interpenetration_loss(inside, inside, body, normal, 0.02)
    assert abs(float(val) - 0.004 / 2) < 1e-7
    far_gt = inside + torch.tensor([0.0, 0.1, 0])
    assert float(S.interpenetration_loss(inside, far_gt, body, normal, 0.02)) == 0  # gate off
    with pytest.raises(ValueError, match="d_tol"):
        S.interpenetration_loss(inside, inside, body, normal, 0.0)


def test_weight_regulariser_hand_case_and_gradient():
    M = torch.tensor([[[0.0, 0, 0], [3, 0, 0], [0, 4, 0]]])
    nbr = torch.tensor([[0, 1, 2]])
    one_hot = torch.tensor([[[0.0, 1, 0]]])
    assert float(S.weight_regulariser(one_hot, M, nbr)) == 0
    W = torch.tensor([[[0.6, 0.3, 0.1]]], requires_grad=True)
    # k = 0: 0.6 * 0 + 0.3 * 3 + 0.1 * 4
    val = S.weight_regulariser(W, M, nbr)
    assert abs(float(val.detach()) - 1.3) < 1e-6
    val.backward()
    assert torch.allclose(W.grad, torch.tensor([[[0.0, 3, 4]]]))


def test_vertex_losses_and_shape_loss():
    a = torch.zeros(2, 3, 3)
    b = torch.full((2, 3, 3), 0.5)
    assert float(S.vertex_loss(a, b)) == 0.5
    w = torch.tensor([1.0, 0.0, 0.5])
    assert abs(float(S.body_vertex_loss(a, b, w)) - 0.5 * 1.5 / 3) < 1e-7
    beta, sigma = torch.tensor([[1.0, 2.0]]), torch.tensor([2.0, 0.5])
    # Eq. (5): 2 * 1^2 + 0.5 * 2^2 = 4, vertex term 0
    assert abs(float(S.shape_loss(beta, torch.zeros(1, 2), sigma, a[:1], a[:1])) - 4.0) < 1e-6
    with pytest.raises(ValueError, match="same shape"):
        S.vertex_loss(a, b[:, :2])
    with pytest.raises(ValueError, match="sigma"):
        S.shape_loss(beta, torch.zeros(1, 2), sigma[:1], a[:1], a[:1])


def test_row_entropy_bounds():
    K = 5
    assert float(S.row_entropy(torch.eye(K)[None])) < 1e-9
    assert abs(float(S.row_entropy(torch.full((1, 3, K), 1 / K))) - math.log(K)) < 1e-6


def test_geodesic_weights(world):
    w = S.geodesic_weights(world)
    assert w.shape == (len(world.garment_index("skin")),)
    assert torch.allclose(w[: world.cols], torch.full((world.cols,), 0.5))
    assert (w[world.cols :] > 0.5).all()


# ---- metrics ----------------------------------------------------------------------------------
def test_area_matches_trimesh_and_scaling(world, data):
    G, faces = _mesh(world, data)
    ours = float(meshes.face_areas(G[:1].double(), faces).sum())
    assert (
        abs(ours - trimesh.Trimesh(G[0].double().numpy(), faces.numpy(), process=False).area)
        < 1e-10
    )
    s = 1.1
    c = G.mean(1, keepdim=True)
    err = S.area_error(c + s * (G - c), G, faces)
    assert torch.allclose(err, torch.full_like(err, 100 * (s**2 - 1)), atol=1e-3)


def test_vertex_error_in_mm():
    a = torch.zeros(1, 4, 3)
    b = a.clone()
    b[..., 0] = 0.003
    assert torch.allclose(S.vertex_error(a, b), torch.tensor([3.0]))
    with pytest.raises(ValueError, match="pred and gt"):
        S.vertex_error(a, b[:, :2])


# ---- baselines ----------------------------------------------------------------------------------
def test_lasso_recovers_a_fixed_convex_combination():
    g = torch.Generator().manual_seed(0)
    M = torch.rand(60, 10, 3, generator=g)
    nbr = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    W = torch.tensor([[0.5, 0.3, 0.2, 0.0], [0.0, 0.1, 0.0, 0.9]])
    G = torch.einsum("ik,nikc->nic", W, M[:, nbr])
    fit = S.lasso_weights(M, G, nbr, alpha=1e-8)
    assert torch.allclose(fit, W, atol=1e-3)


def test_linear_scaling_scales_about_the_centroid(world, data):
    G, faces = _mesh(world, data)
    out = S.linear_scaling(G, torch.full((len(G),), 1), torch.full((len(G),), 3))
    s = GW.SIZE_SCALE[3] / GW.SIZE_SCALE[1]
    assert torch.allclose(out.mean(1), G.mean(1), atol=1e-6)
    assert torch.allclose(
        S.area_error(out, G, faces), torch.full((len(G),), 100 * (s**2 - 1)), atol=1e-3
    )


def test_size_pairs_are_ordered_and_distinct():
    mask = torch.zeros(2, 4, dtype=torch.bool)
    mask[1, 2] = True
    s, i, o = S.size_pairs(mask)
    assert (s == 1).all() and (o == 2).all() and sorted(i.tolist()) == [0, 1, 3]


def test_sizernet_shapes_and_bad_input():
    net = S.SizerNet(12, 4, hidden=16)
    g = torch.zeros(3, 12, 3)
    out = net(g, torch.zeros(3, 4), torch.tensor([0, 1, 2]), torch.tensor([1, 2, 3]), g)
    assert out.shape == (3, 12, 3)
    with pytest.raises(ValueError, match="g_in must be"):
        net(g[:, :5], torch.zeros(3, 4), torch.tensor([0, 1, 2]), torch.tensor([1, 2, 3]), g[:, :5])


# ---- the run ----------------------------------------------------------------------------------
def test_cli_smoke_run_returns_every_key(tmp_path, monkeypatch):
    """``python -m cvtutor run sizer --profile smoke``: every key of ``full``, kinds of KINDS."""
    import subprocess
    import sys

    from cvtutor import report

    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)
    monkeypatch.setenv("CVTUTOR_DEVICE", "cpu")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cvtutor",
            "run",
            "sizer",
            "--profile",
            "smoke",
            "--out",
            str(tmp_path),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    res, meta = report.load_results(tmp_path / "sizer-smoke-seed0.json")
    assert meta["profile"] == "smoke" and meta["seeds"] == [0, 1]
    for key in (
        "table1",
        "table2",
        "ablations",
        "beta",
        "body_parser",
        "compare_table1",
        "compare_table2_verr",
        "compare_table2_aerr",
        "findings",
        "curves_parser",
        "curves_sizer",
    ):
        assert key in res
    assert set(res["table1"]["method"]) == set(S.PARSE_METHODS)
    assert set(res["table2"]["method"]) == set(S.SIZE_METHODS) and set(res["table2"]["seed"]) == {
        0,
        1,
    }
    assert res["findings"]["kind"].isin(report.KINDS).all()


def test_paper_numbers_match_the_tables():
    assert S.PAPER["table1_per_class"]["Polo"] == (32.21, 17.25, 14.33)
    assert (
        abs(S.PAPER["table2_verr"].values["SizerNet"] - np.mean([16.42, 15.54, 16.71, 19.26]))
        < 1e-9
    )


# ---- readers (fixtures written here) ---------------------------------------------------------
def test_sizer_size_label():
    assert readers.sizer_size_label("10015_polo_XL.obj") == 3
    assert readers.sizer_size_label("size-m") == 1
    with pytest.raises(ValueError, match="exactly one size"):
        readers.sizer_size_label("scan_0001.ply")
    with pytest.raises(ValueError, match="exactly one size"):
        readers.sizer_size_label("S_to_L.ply")


def _slot(n, m, size):
    return {
        "scan_name": [f"scan{i}" for i in range(n)],
        "betas": np.zeros((n, 10)),
        "pose": np.zeros((n, 72)),
        "trans": np.zeros((n, 3)),
        "pose_upper": np.ones((n, m, 3)),
        "size": np.full(n, size),
    }


def test_read_sizer_sizes(tmp_path):
    p = tmp_path / "real_g5_size.pkl"
    p.write_bytes(
        pickle.dumps({"0": _slot(3, 7, 0), "1": _slot(3, 7, 1), "2": _slot(3, 7, 2)}, protocol=2)
    )
    slots = readers.read_sizer_sizes(p)
    assert (
        len(slots) == 3
        and slots[1]["pose_upper"].shape == (3, 7, 3)
        and (slots[2]["size"] == 2).all()
    )
    bad = _slot(3, 7, 0)
    del bad["pose_upper"]
    p.write_bytes(pickle.dumps({"0": bad}))
    with pytest.raises(ValueError, match="pose_upper"):
        readers.read_sizer_sizes(p)
    p.write_bytes(pickle.dumps({"0": _slot(2, 7, 5)}))
    with pytest.raises(ValueError, match="0..3"):
        readers.read_sizer_sizes(p)
    with pytest.raises(FileNotFoundError, match="real_<class>_size.pkl"):
        readers.read_sizer_sizes(tmp_path / "missing.pkl")


def test_read_sizer_sizes_refuses_code(tmp_path):
    from cvtutor.data.safe_pickle import UnsafePickleError

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    p = tmp_path / "real_g1_size.pkl"
    p.write_bytes(pickle.dumps({"0": Evil()}))
    with pytest.raises(UnsafePickleError):
        readers.read_sizer_sizes(p)


def test_read_sizer_scan(tmp_path, world, data):
    folder = tmp_path / "10015_shirt_L"
    folder.mkdir()
    G, faces = _mesh(world, data)
    trimesh.Trimesh(G[0].numpy(), faces.numpy(), process=False).export(folder / "UpperClothes.ply")
    trimesh.Trimesh(data["body"][0].numpy(), world.faces().numpy(), process=False).export(
        folder / "Body.obj"
    )
    np.savez(folder / "smpl.npz", betas=np.zeros(10), pose=np.zeros(72), trans=np.ones(3))
    out = readers.read_sizer_scan(folder)
    assert out["size"] == 2 and set(out["meshes"]) == {"UpperClothes", "Body"}
    v, f = out["meshes"]["UpperClothes"]
    assert torch.allclose(v, G[0], atol=1e-6) and torch.equal(f, faces)
    assert out["smpl"]["trans"].tolist() == [1, 1, 1]
    np.savez(folder / "smpl.npz", betas=np.zeros(10), pose=np.zeros(10), trans=np.ones(3))
    with pytest.raises(ValueError, match="72"):
        readers.read_sizer_scan(folder)
    (folder / "extra.pkl").write_bytes(pickle.dumps({}))
    with pytest.raises(FileNotFoundError, match="one SMPL parameter file"):
        readers.read_sizer_scan(folder)
    with pytest.raises(FileNotFoundError, match="registration folder"):
        readers.read_sizer_scan(tmp_path / "nope")
