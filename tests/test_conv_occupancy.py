"""Convolutional Occupancy Networks (E31): the pieces against closed forms, hand cases and
scikit-learn / scipy / scikit-image; the readers on fixtures written here; the smoke run."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from sklearn.metrics import jaccard_score

from cvtutor.data.shapes3d import onet_formats as OF
from cvtutor.metrics import pointsets as ps
from cvtutor.nn import pointnets as pn
from cvtutor.nn.unet import UNet
from cvtutor.papers import conv_occupancy as P


def _small(**kw) -> P.Config:
    return P.Config.smoke().replace(**kw)


def test_scatter_mean_equals_a_per_cell_loop_and_empty_cells_are_zero():
    g = torch.Generator().manual_seed(1)
    feat = torch.randn(2, 40, 3, generator=g)
    idx = torch.randint(0, 10, (2, 40), generator=g)
    out = pn.scatter_mean(feat, idx, 12)
    for b in range(2):
        for u in range(12):
            m = idx[b] == u
            want = feat[b][m].mean(0) if m.any() else torch.zeros(3)
            assert torch.allclose(out[b, u], want, atol=1e-6)
    assert torch.equal(out[:, 10:], torch.zeros(2, 2, 3))
    assert P.closed_form_checks()["scatter_mean_err"] < 1e-6


def test_bilinear_query_exact_at_centres_and_on_a_ramp_and_matches_hand_interpolation():
    R = 8
    g = torch.Generator().manual_seed(2)
    plane = torch.randn(1, 2, R, R, generator=g)
    i, j = torch.randint(0, R, (2, 30), generator=g)
    centres = torch.stack([(i + 0.5) / R, (j + 0.5) / R, torch.rand(30, generator=g)], -1)[None]
    f = pn.sample_plane_features(plane, centres, (0, 1))[0]
    assert torch.allclose(f, plane[0][:, i, j].T, atol=1e-6)
    assert P.closed_form_checks()["ramp_err"] < 1e-4
    # hand-written bilinear weights w_c = Π (1 - |p - c|) in cell units
    p = 0.5 / R + torch.rand(1, 50, 3, generator=g) * (R - 1) / R
    u, v = p[0, :, 0] * R - 0.5, p[0, :, 1] * R - 0.5
    i0, j0 = u.floor().long().clamp(max=R - 2), v.floor().long().clamp(max=R - 2)
    hand = 0
    for di in (0, 1):
        for dj in (0, 1):
            w = (1 - (u - i0 - di).abs()) * (1 - (v - j0 - dj).abs())
            hand = hand + w[:, None] * plane[0][:, i0 + di, j0 + dj].T
    assert torch.allclose(pn.sample_plane_features(plane, p, (0, 1))[0], hand, atol=1e-5)


def test_nearest_query_reads_the_cell_of_the_point():
    R = 4
    plane = torch.arange(R * R, dtype=torch.float32).reshape(1, 1, R, R)
    p01 = torch.tensor([[[0.1, 0.9, 0.5], [0.6, 0.3, 0.0]]])
    got = P.query_nearest({"xy": plane}, p01)[0, :, 0]
    assert got.tolist() == [0 * R + 3, 2 * R + 1]
    # at cell centres nearest and bilinear agree
    c = torch.tensor([[[(2 + 0.5) / R, (1 + 0.5) / R, 0.2]]])
    assert torch.allclose(P.query_nearest({"xy": plane}, c), pn.sample_plane_features(plane, c, (0, 1)))


def test_whole_cell_shifts_shift_the_scatter_and_the_unet_in_the_interior():
    R = 16
    g = torch.Generator().manual_seed(3)
    cells = torch.randint(4, 12, (1, 300, 3), generator=g)
    p01 = (cells + 0.1 + 0.8 * torch.rand(1, 300, 3, generator=g)) / R  # off the cell edges
    feat = torch.randn(1, 300, 4, generator=g)
    grid = lambda p: pn.scatter_mean(feat, pn.cell_index(p, R, (0, 1, 2)), R ** 3)  # noqa: E731
    a = grid(p01).transpose(1, 2).reshape(1, 4, R, R, R)
    b = grid(p01 + torch.tensor([1.0 / R, 0, 0])).transpose(1, 2).reshape(1, 4, R, R, R)
    assert torch.equal(b, a.roll(1, 2))  # a one-cell shift of the input moves every cell
    torch.manual_seed(0)
    unet = UNet(4, 4, dims=3, width=8, depth=1, norm="none").eval()
    F0 = torch.zeros(1, 4, 32, 32, 32)
    F0[..., 12:20, 12:20, 12:20] = torch.randn(1, 4, 8, 8, 8, generator=g)
    inner = (Ellipsis, slice(11, 21), slice(11, 21), slice(11, 21))
    with torch.no_grad():
        d2 = (unet(F0.roll(2, 2)) - unet(F0).roll(2, 2))[inner].abs().max()
        d1 = (unet(F0.roll(1, 2)) - unet(F0).roll(1, 2))[inner].abs().max()
    assert d2 < 1e-5 < d1  # stride-2 pooling: equivariant to shifts by 2**depth cells only
    # the features the decoder reads at the shifted query are the shifted ones (interior)
    vol = torch.randn(1, 4, R, R, R, generator=g)
    q = (torch.randint(4, 10, (1, 20, 3), generator=g) + 0.5) / R
    f0 = pn.sample_grid_features(vol, q)
    f1 = pn.sample_grid_features(vol.roll(2, 2), q + torch.tensor([2.0 / R, 0, 0]))
    assert torch.allclose(f0, f1, atol=1e-6)


def test_occupancy_loss_is_bce_and_has_the_closed_form_gradient():
    logits = torch.tensor([[0.3, -1.2, 2.0]], requires_grad=True)
    occ = torch.tensor([[1.0, 0.0, 0.0]])
    loss = P.occupancy_loss(logits, occ)
    p = torch.sigmoid(logits.detach())
    want = -(occ * p.log() + (1 - occ) * (1 - p).log()).mean()
    assert torch.allclose(loss, want)
    loss.backward()
    assert torch.allclose(logits.grad, (p - occ) / 3)
    with pytest.raises(ValueError, match="same shape"):
        P.occupancy_loss(logits, occ[:, :2])


def test_models_forward_and_gradients_reach_every_piece():
    cfg = _small()
    x, q = torch.randn(2, 32, 3) * 0.3, torch.rand(2, 16, 3) - 0.5
    for v in cfg.variants:
        m = P.build(v, cfg)
        out = m(x, q)
        assert out.shape == (2, 16)
        out.sum().backward()
        missing = [n for n, p in m.named_parameters() if p.grad is None]
        assert not missing, (v.name, missing)
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        P.build(cfg.variants[1], cfg)(x[..., :2], q)
    with pytest.raises(ValueError, match="same batch"):
        P.build(cfg.variants[0], cfg)(x, q[:1])


def test_bad_variants_and_configs_raise_clear_errors():
    with pytest.raises(ValueError, match="kind"):
        P.Variant("x", "mlp", "ONet")
    with pytest.raises(ValueError, match="divisible"):
        P.Variant("x", "planes", "r", resolution=12, depth=3)
    with pytest.raises(ValueError, match="interpolation"):
        P.Variant("x", "planes", "r", interpolation="cubic")
    with pytest.raises(ValueError, match="ONet"):
        P.Config(variants=P.Config().variants[1:])
    with pytest.raises(ValueError, match="rooms"):
        P.make_shapes("cars", 2, torch.Generator(), "cpu")


def test_volumetric_iou_matches_sklearn():
    g = torch.Generator().manual_seed(4)
    a, b = torch.rand(3, 500, generator=g) > 0.6, torch.rand(3, 500, generator=g) > 0.5
    ours = P.volumetric_iou(a, b)
    for k in range(3):
        assert math.isclose(float(ours[k]), jaccard_score(b[k].numpy(), a[k].numpy()), rel_tol=1e-9)
    with pytest.raises(ValueError, match="shape"):
        P.volumetric_iou(a, b[:, :10])


def test_marching_cubes_sphere_area_and_iou():
    assert P.closed_form_checks()["sphere_area_rel_err"] < 0.02


def test_chamfer_and_fscore_identities_against_ckdtree():
    g = torch.Generator().manual_seed(5)
    a, b = torch.rand(1, 300, 3, generator=g), torch.rand(1, 200, 3, generator=g)
    d_ab, _ = cKDTree(b[0].numpy()).query(a[0].numpy())
    d_ba, _ = cKDTree(a[0].numpy()).query(b[0].numpy())
    assert math.isclose(float(ps.chamfer_l1(a, b)), 0.5 * (d_ab.mean() + d_ba.mean()), rel_tol=1e-5)
    tau = 0.05
    prec, rec = (d_ab < tau).mean(), (d_ba < tau).mean()
    assert math.isclose(float(ps.fscore(a, b, tau)["fscore"]), 2 * prec * rec / (prec + rec),
                        rel_tol=1e-6)
    assert float(ps.chamfer_l1(a, a)) < 1e-4 and float(ps.fscore(a, a, tau)["fscore"]) == 1


def test_mesh_metrics_of_a_perfect_sphere_prediction():
    class Sphere(torch.nn.Module):  # logit > 0 inside a sphere of radius 0.3
        def forward(self, x, q):
            return 50 * (0.3 - q.norm(dim=-1))

    from cvtutor.data.shapes3d import ShapeBatch
    from cvtutor.data.shapes3d import primitives as prim
    shape = ShapeBatch(types=torch.tensor([[prim.TYPE_ID["sphere"]]]),
                       params=torch.tensor([[[0.3, 0, 0, 0, 0]]]), rot=torch.eye(3)[None, None],
                       trans=torch.zeros(1, 1, 3), part=torch.zeros(1, 1, dtype=torch.long),
                       valid=torch.ones(1, 1, dtype=torch.bool),
                       label=torch.zeros(1, dtype=torch.long),
                       instance=torch.zeros(1, 1, dtype=torch.long))
    g = torch.Generator().manual_seed(6)
    meshes = P.extract_meshes(Sphere(), torch.zeros(1, 4, 3), 48, threshold=0.5)
    mm = P.mesh_metrics(meshes, shape, 2000, 0.05, g)
    # the floor is the sampling gap of two independent 2000-point samples of the same sphere
    floor = float(ps.chamfer_l1(shape.sample(2000, g)["points"], shape.sample(2000, g)["points"]))
    assert mm.loc[0, "chamfer"] < 1.2 * floor and mm.loc[0, "nc"] > 0.98
    assert mm.loc[0, "fscore"] > 0.98 and not mm.loc[0, "empty"]
    # a prediction that never crosses the threshold has no mesh
    assert P.extract_meshes(Sphere(), torch.zeros(1, 4, 3), 8, threshold=1.5) == [None]


def test_data_is_seeded_and_labels_are_exact():
    cfg = _small()
    d1 = P.make_data("rooms", 3, cfg, torch.Generator().manual_seed(0), "cpu")
    d2 = P.make_data("rooms", 3, cfg, torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(d1["inputs"], d2["inputs"]) and torch.equal(d1["occupancy"], d2["occupancy"])
    assert torch.equal(d1["occupancy"], d1["shapes"].occupancy(d1["queries"]))
    assert d1["inputs"].abs().max() < P.HALF and d1["queries"].abs().max() <= P.HALF
    v = P.make_data("objects", 3, cfg, torch.Generator().manual_seed(0), "cpu", voxels=True)
    R = cfg.voxel_resolution  # voxel inputs sit at occupied voxel centres
    assert torch.allclose(((v["inputs"] + 0.5) * R - 0.5).round(), (v["inputs"] + 0.5) * R - 0.5,
                          atol=1e-4)


# ---------------------------------------------------------------------------------------------
# readers on fixtures
# ---------------------------------------------------------------------------------------------
def _write_binvox(path, vox: np.ndarray) -> None:
    flat = vox.transpose(0, 2, 1).reshape(-1).astype(np.uint8)  # [x, y, z] → stored x, z, y
    runs, i = [], 0
    while i < len(flat):
        j = i
        while j < len(flat) and flat[j] == flat[i] and j - i < 255:
            j += 1
        runs += [flat[i], j - i]
        i = j
    d = vox.shape[0]
    head = f"#binvox 1\ndim {d} {d} {d}\ntranslate -0.5 -0.5 -0.5\nscale 1.0\ndata\n".encode()
    path.write_bytes(head + bytes(runs))


def test_binvox_round_trip_and_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    vox = rng.random((8, 8, 8)) > 0.7
    vox[:, :, :] |= np.arange(8)[None, :, None] == 0  # an asymmetric layer: catches axis swaps
    _write_binvox(tmp_path / "model.binvox", vox)
    out = OF.read_binvox(tmp_path / "model.binvox")
    assert np.array_equal(out["voxels"].numpy(), vox)
    assert out["scale"] == 1.0 and out["translate"].tolist() == [-0.5, -0.5, -0.5]
    (tmp_path / "bad.binvox").write_bytes(b"hello\ndata\n\x01")
    with pytest.raises(ValueError, match="binvox"):
        OF.read_binvox(tmp_path / "bad.binvox")
    with pytest.raises(FileNotFoundError, match="binvox"):
        OF.read_binvox(tmp_path / "none.binvox")


def _write_onet_object(d, g):
    d.mkdir(parents=True)
    pts = np.random.default_rng(g).random((100, 3)).astype(np.float16) - 0.5
    occ = np.linalg.norm(pts.astype(np.float32), axis=1) < 0.3
    np.savez(d / "points.npz", points=pts, occupancies=np.packbits(occ))
    surf = np.random.default_rng(g + 1).normal(size=(50, 3)).astype(np.float32)
    np.savez(d / "pointcloud.npz", points=surf, normals=surf)
    return pts, occ


def test_onet_shapenet_layout_and_packbits_round_trip(tmp_path):
    pts, occ = _write_onet_object(tmp_path / "03001627" / "m1", 0)
    _write_onet_object(tmp_path / "03001627" / "m2", 2)
    _write_binvox(tmp_path / "03001627" / "m1" / "model.binvox", np.zeros((4, 4, 4), bool))
    (tmp_path / "03001627" / "test.lst").write_text("m1\n\n")
    items = OF.read_onet_shapenet(tmp_path, ["03001627"], "test", voxels=True)
    assert [i["model"] for i in items] == ["m1"]
    assert np.array_equal(items[0]["points"]["occupancies"].numpy(), occ)
    assert np.allclose(items[0]["points"]["points"].numpy(), pts.astype(np.float32))
    assert items[0]["voxels"].shape == (4, 4, 4)
    with pytest.raises(FileNotFoundError, match="split file"):
        OF.read_onet_shapenet(tmp_path, ["03001627"], "train")
    with pytest.raises(FileNotFoundError, match="synset"):
        OF.read_onet_shapenet(tmp_path / "nowhere", ["03001627"])


def test_synthetic_room_multi_files(tmp_path):
    scene = tmp_path / "rooms_04" / "00000001"
    for sub in ("pointcloud", "points_iou"):
        (scene / sub).mkdir(parents=True)
    for k in range(2):
        p = np.full((10, 3), k, np.float32)
        np.savez(scene / "pointcloud" / f"pointcloud_{k:02d}.npz", points=p, normals=p)
        np.savez(scene / "points_iou" / f"points_iou_{k:02d}.npz", points=p.astype(np.float16),
                 occupancies=np.packbits(np.arange(10) % 2 == k))
    out = OF.read_synthetic_room(scene, 1)
    assert float(out["pointcloud"]["points"][0, 0]) == 1
    assert out["points"]["occupancies"].tolist() == [i % 2 == 1 for i in range(10)]
    with pytest.raises(FileNotFoundError, match="pointcloud_XX"):
        OF.read_synthetic_room(scene, 5)


def test_scan_points_on_a_ply_fixture(tmp_path):
    import trimesh
    box = trimesh.creation.box(extents=(2.0, 1.0, 1.0))
    box.export(tmp_path / "scene0000_00_vh_clean_2.ply")
    out = OF.read_scan_points(tmp_path / "scene0000_00_vh_clean_2.ply", 500,
                              torch.Generator().manual_seed(0))
    p = out["points"]
    on_face = ((p.abs() - torch.tensor([1.0, 0.5, 0.5])).abs() < 1e-5).any(1)
    assert p.shape == (500, 3) and bool(on_face.all())
    assert torch.allclose(out["normals"].norm(dim=1), torch.ones(500), atol=1e-5)


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------
def test_smoke_run_returns_every_key_full_would():
    out = P.run(P.Config.smoke())
    for key in ("table3", "table3_vs_paper", "table4b", "table4b_vs_paper", "table2",
                "table2_vs_paper", "generalisation", "curves", "history", "example", "findings",
                "per_seed"):
        assert key in out, key
    assert set(out["table3"].index) == {v.name for v in P.Config.smoke().variants}
    assert out["findings"]["kind"].isin(("paper claim", "sanity check", "construction")).all()
    assert out["findings"].loc[out["findings"]["kind"] == "sanity check", "holds"].all()


def test_same_seed_same_numbers():
    cfg = P.Config.smoke().replace(seeds=(0,), objects=False, nearest=False, gen_objects=None)
    a, b = P.run(cfg), P.run(cfg)
    assert a["table3"]["iou"].equals(b["table3"]["iou"])


def test_cli_smoke(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cvtutor", "run", "conv_occupancy", "--profile",
                        "smoke", "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
