"""E32 crowd_3d_pose_mvg: each equation against OpenCV, scipy, brute force or a hand case."""
import itertools
import json

import cv2
import numpy as np
import pytest
import torch
from scipy.optimize import least_squares

from cvtutor.data import geometry as G
from cvtutor.data.bodies import crowd_readers
from cvtutor.data.bodies.skeleton import N_JOINTS
from cvtutor.metrics import pose
from cvtutor.papers import crowd_3d_pose_mvg as C

D = torch.float64


@pytest.fixture(scope="module")
def rig():
    """Four cameras on a ring 4.5 m high around a floor, float64."""
    cfg = C.Config.fast()
    world = C.make_world(cfg, 6, seed=0, device="cpu")
    return cfg, world, C._cams(world)


@pytest.fixture(scope="module")
def people(rig):
    _, world, _ = rig
    return world.pose(world.draw(2, "test"))["joints"].double()  # (2, 6, 23, 3)


# ---- two-view geometry --------------------------------------------------------------------
def test_fundamental_matrix_against_opencv(rig, people):
    _, _, (K, R, t) = rig
    X = people.reshape(-1, 3)
    uv = G.project(G.world_to_camera(X[None], R, t), K)  # (V, N, 2)
    F = G.fundamental_matrix(K, R[0], t[0], K, R[2], t[2])
    x0, x2 = G.to_homogeneous(uv[0]), G.to_homogeneous(uv[2])
    # x_0ᵀ F x_2 = 0 (to the float32 rounding of the world's rotations)
    assert ((x0 @ F) * x2).sum(-1).abs().max() < 1e-6
    ours = G.epipolar_lines(F, uv[2])  # lines in image 0 of image 2's points
    ref = cv2.computeCorrespondEpilines(uv[2].numpy().reshape(-1, 1, 2), 2, F.T.numpy())
    ref = torch.tensor(ref.reshape(-1, 3))
    sign = torch.sign((ours * ref).sum(-1, keepdim=True))
    assert torch.allclose(ours, sign * ref, atol=1e-9)
    d = G.symmetric_epipolar_distance(F, uv[0], uv[2])
    assert d.max() < 1e-4  # px
    shifted = uv[0] + torch.tensor([0.0, 3.0], dtype=D)
    assert G.symmetric_epipolar_distance(F, shifted, uv[2]).mean() > 0.5
    with pytest.raises(ValueError, match="one shape"):
        G.symmetric_epipolar_distance(F, uv[0], uv[2][:3])
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        G.fundamental_matrix(K[:2], R[0], t[0], K, R[2], t[2])


def test_vanilla_triangulation_round_trip_and_opencv(rig, people):
    _, _, (K, R, t) = rig
    X = people.reshape(-1, N_JOINTS, 3)
    uv = G.project(G.world_to_camera(X[:, None], R, t), K)  # (B, V, 23, 2)
    P = G.projection_matrix(K, R, t)
    present = torch.ones(len(X), 4, dtype=torch.bool)
    assert (C.vanilla_triangulation(P, uv, present) - X).norm(dim=-1).max() < 1e-6
    present[:, 1:3] = False  # two views only: OpenCV's two-view DLT recovers the same points
    h = cv2.triangulatePoints(P[0].numpy(), P[3].numpy(), uv[:, 0].reshape(-1, 2).T.numpy(),
                              uv[:, 3].reshape(-1, 2).T.numpy())
    ref = torch.tensor((h[:3] / h[3]).T)
    ours = C.vanilla_triangulation(P, uv, present).reshape(-1, 3)
    assert (ours - ref).norm(dim=-1).max() < 1e-6 and (ours - X.reshape(-1, 3)).abs().max() < 1e-6


# ---- homographies and feet ----------------------------------------------------------------
def test_floor_homographies_and_view_homography(rig):
    _, _, (K, R, t) = rig
    g = torch.Generator().manual_seed(1)
    ground = (torch.rand(50, 2, generator=g, dtype=D) - 0.5) * 6
    H = G.ground_plane_homography(K, R, t)
    pts = torch.cat([ground, torch.zeros(50, 1, dtype=D)], -1)
    uv = G.project(G.world_to_camera(pts[None], R, t), K)
    assert (G.apply_homography(H, ground.expand(4, -1, 2)) - uv).abs().max() < 1e-8
    markers = torch.tensor([[-3.0, -3], [3, -3], [3, 3], [-3, 3]], dtype=D)
    H4 = C.floor_homographies(K, R, t, markers)  # exact 4-point DLT
    assert torch.allclose(H4, H / H[:, 2:3, 2:3], atol=1e-8, rtol=1e-8)
    ref, _ = cv2.findHomography(markers.numpy(), G.apply_homography(H[1], markers).numpy())
    assert np.allclose(H4[1].numpy(), ref, atol=1e-6, rtol=1e-6)
    H02 = C.view_homography(H[0], H[2])  # view 2's floor pixels → view 0's
    assert (G.apply_homography(H02, uv[2]) - uv[0]).abs().max() < 1e-7
    noisy = C.floor_homographies(K, R, t, markers, 1.0, torch.Generator().manual_seed(0))
    assert 0 < (G.apply_homography(noisy[0], ground) - uv[0]).abs().max() < 20
    with pytest.raises(ValueError, match="M >= 4"):
        C.floor_homographies(K, R, t, markers[:3])


def test_feet_pairs_and_edge_cost_hand_cases():
    uv = torch.zeros(2, N_JOINTS, 2, dtype=D)
    uv[:, list(C.LEFT_FOOT)] = torch.tensor([0.0, 0.0], dtype=D)
    uv[:, list(C.RIGHT_FOOT)] = torch.tensor([0.3, 0.4], dtype=D)  # a 0.5 m stride
    p, v = C.rectify_feet(uv, torch.eye(3, dtype=D))
    assert torch.allclose(p, torch.tensor([[0.15, 0.2]] * 2, dtype=D))
    assert torch.allclose(v.norm(dim=-1), torch.full((2,), 0.5, dtype=D))
    c = C.edge_cost(p, v, p, v, k=(1.0, 2.0, 3.0))
    assert torch.allclose(c, torch.zeros(2, 2, dtype=D))  # identical feet cost nothing
    assert torch.allclose(C.edge_cost(p, v, p, -v), c)  # a left/right label swap costs nothing
    q = p + torch.tensor([0.3, 0.4], dtype=D)  # 0.5 m away, stride 1 m long at 90°
    w = torch.tensor([[-0.8, 0.6]], dtype=D).expand(2, 2)
    got = C.edge_cost(p[:1], v[:1], q[:1], w[:1], k=(1.0, 2.0, 3.0))
    assert float(got) == pytest.approx(1 * 0.5 + 2 * 0.5 + 3 * 1.0)
    with pytest.raises(ValueError, match=r"\(a, 2\)"):
        C.edge_cost(p[0], v, p, v)
    with pytest.raises(ValueError, match="23, 2"):
        C.feet_pairs(uv[:, :17])


# ---- the assignment (Eq. 3) and the multi-view resolution ---------------------------------
@pytest.mark.parametrize("a,b", [(1, 1), (3, 3), (5, 4), (4, 6), (7, 7)])
def test_assignment_equals_brute_force(a, b):
    g = np.random.default_rng(a * 10 + b)
    cost = g.random((a, b))
    got = C.assign(cost, max_cost=10.0)
    assert len(got) == min(a, b)  # with a huge gate everything that can be matched is
    best = min(sum(cost[i, j] for i, j in zip(rows, perm))
               for rows in itertools.combinations(range(a), min(a, b))
               for perm in itertools.permutations(range(b), min(a, b)))
    assert sum(c for _, _, c in got) == pytest.approx(best)
    assert len({l for l, _, _ in got}) == len(got) == len({m for _, m, _ in got})


def test_assignment_padding_leaves_a_costly_pair_unmatched():
    cost = np.array([[0.1, 5.0], [5.0, 3.0]])
    assert C.assign(cost, max_cost=1.0) == [(0, 0, 0.1)]  # (1, 1) costs more than two dummies
    assert C.assign(np.zeros((0, 3)), 1.0) == []
    with pytest.raises(ValueError, match="matrix"):
        C.assign(np.zeros(3), 1.0)


def test_resolve_views_drops_the_conflicting_edge():
    # views 0, 1, 2 with two people each; the 0-2 match of detection 1 contradicts the chain
    matches = {(0, 1): [(0, 0, 0.1), (1, 1, 0.1)], (1, 2): [(0, 0, 0.2), (1, 1, 0.2)],
               (0, 2): [(0, 1, 0.9), (1, 0, 0.9)]}
    groups = C.resolve_views(matches, [2, 2, 2])
    assert sorted(sorted(g.items()) for g in groups) == [[(0, 0), (1, 0), (2, 0)],
                                                         [(0, 1), (1, 1), (2, 1)]]


def test_feet_matching_is_exact_on_a_noise_free_sparse_crowd(rig):
    cfg, _, (K, R, t) = rig
    world = C.make_world(cfg, 5, seed=3, device="cpu")
    s = world.sample(3, "test")
    H_inv = torch.linalg.inv(G.ground_plane_homography(K, R, t))
    for n in range(3):
        dets = [{"uv": s["uv"][n, v].double(), "person": torch.arange(5)} for v in range(4)]
        order = [torch.randperm(5, generator=torch.Generator().manual_seed(v)) for v in range(4)]
        dets = [{"uv": d["uv"][o], "person": o} for d, o in zip(dets, order)]
        groups = C.match_feet(dets, H_inv, cfg.k, cfg.feet_gate)
        correct, predicted, truth = C.pair_counts(groups, dets, torch.ones(4, 5, dtype=torch.bool))
        assert correct == predicted == truth == 5 * 6


def test_detections_are_shuffled_and_gated(rig):
    cfg, world, _ = rig
    s = world.sample(2, "test")
    dets = C.detections(s, cfg.min_visible, seed=0)
    ids = torch.cat([d["person"] for scene in dets for d in scene])
    assert len(dets) == 2 and len(dets[0]) == cfg.n_views
    present = s["visible"].float().mean(-1) >= cfg.min_visible
    assert len(ids) == int(present.sum())
    assert any(not torch.equal(d["person"], d["person"].sort().values)
               for scene in dets for d in scene)


# ---- MLE and MAP (Eqs. 5-7) ---------------------------------------------------------------
def _problem(rig, people, outlier: float = 0.0, seed: int = 0):
    _, world, cams = rig
    K, R, t = cams
    X = people.reshape(-1, N_JOINTS, 3)
    g = torch.Generator().manual_seed(seed)
    uv = G.project(G.world_to_camera(X[:, None], R, t), K)
    uv = uv + 0.5 * torch.randn(uv.shape, generator=g, dtype=D)
    inv = torch.ones(uv.shape[:3], dtype=D)
    if outlier:
        uv[:, 1, 5:9] += outlier  # a block of joints snapped elsewhere in view 1
    return X, uv, inv, cams, world


def test_map_jacobian_equals_autograd(rig, people):
    X, uv, inv, cams, world = _problem(rig, people)
    X, uv, inv = X[:3], uv[:3], inv[:3]
    b_ref, sigma_l = C.bone_prior(world, 4)
    x = (X + 0.01).reshape(len(X), -1)
    for prior in ((), (b_ref, sigma_l)):
        auto = G.autograd_jacobian(lambda z, pr=prior: C.map_residuals(z, uv, inv, cams, *pr), x)
        assert torch.allclose(C.map_jacobian(x, uv, inv, cams, *prior), auto, atol=1e-9)


def test_mle_reaches_scipy_trust_region_minimum(rig, people):
    X, uv, inv, cams, _ = _problem(rig, people)
    P = G.projection_matrix(*cams)
    X0 = C.vanilla_triangulation(P, uv, torch.ones(len(X), 4, dtype=torch.bool)) + 0.02
    ours = C.map_estimate(X0, uv, inv, cams, iters=20)
    b = 0
    ref = least_squares(
        lambda z: C.map_residuals(torch.tensor(z)[None], uv[b:b + 1], inv[b:b + 1], cams)[0]
        .numpy(), X0[b].reshape(-1).numpy(), method="trf")
    assert float(ours["cost"][b]) == pytest.approx(ref.cost, rel=1e-6)
    assert np.abs(ours["X"][b].reshape(-1).numpy() - ref.x).max() < 1e-6


def test_map_with_a_flat_prior_is_the_mle_and_equal_sigmas_are_least_squares(rig, people):
    X, uv, inv, cams, world = _problem(rig, people)
    b_ref, _ = C.bone_prior(world, 4)
    X0 = X + 0.01
    mle = C.map_estimate(X0, uv, inv, cams, iters=15)["X"]
    flat = C.map_estimate(X0, uv, inv, cams, b_ref, torch.full_like(b_ref, 1e8), 15)["X"]
    assert (mle - flat).abs().max() < 1e-8
    scaled = C.map_estimate(X0, uv, 3.0 * inv, cams, iters=15)["X"]  # σ equal everywhere
    assert (mle - scaled).abs().max() < 1e-8


def test_map_beats_vanilla_triangulation_with_outliers(rig, people):
    wins = []
    for seed in range(3):
        X, uv, inv, cams, world = _problem(rig, people, outlier=25.0, seed=seed)
        inv[:, 1, 5:9] = 0.3  # the snapped joints come with a low heatmap score
        P = G.projection_matrix(*cams)
        X0 = C.vanilla_triangulation(P, uv, torch.ones(len(X), 4, dtype=torch.bool))
        mp = C.map_estimate(X0, uv, inv, cams, *C.bone_prior(world, 16), iters=15)["X"]
        wins.append(float((mp - X).norm(dim=-1).mean()) < float((X0 - X).norm(dim=-1).mean()))
    assert all(wins)


def test_map_bad_input(rig, people):
    X, uv, inv, cams, _ = _problem(rig, people)
    with pytest.raises(ValueError, match="X0 must be"):
        C.map_estimate(X.reshape(len(X), -1), uv, inv, cams)
    with pytest.raises(ValueError, match="both b_ref and sigma_l"):
        C.map_estimate(X, uv, inv, cams, b_ref=torch.ones(22, dtype=D))


# ---- Eq. 1 ----------------------------------------------------------------------------------
def test_foot_weighted_heatmap_loss():
    g = torch.Generator().manual_seed(0)
    T, Cc = torch.rand(2, 23, 8, 8, generator=g), torch.rand(2, 23, 8, 8, generator=g)
    P = T + 0.5 * Cc + 0.1  # every joint off by 0.1: the loss is 0.01 for any λ (normaliser I+6λ)
    for lam in (1.0, 3.0):
        assert float(C.foot_weighted_heatmap_loss(P, T, Cc, lam=lam)) == pytest.approx(0.01)
    P2 = torch.rand(2, 23, 8, 8, generator=g, requires_grad=True)
    plain = (P2 - (T + 0.5 * Cc)).square().mean()
    assert torch.allclose(C.foot_weighted_heatmap_loss(P2, T, Cc, lam=1.0), plain)
    feet_only = P2.detach().clone()
    feet_only[:, 17:] += 0.2
    hi = C.foot_weighted_heatmap_loss(T + 0.5 * Cc + (feet_only - P2.detach()), T, Cc, lam=3.0)
    lo = C.foot_weighted_heatmap_loss(T + 0.5 * Cc + (feet_only - P2.detach()), T, Cc, lam=1.0)
    assert float(hi) > float(lo)  # λ > 1 weighs a foot error more
    C.foot_weighted_heatmap_loss(P2, T, Cc).backward()
    assert torch.isfinite(P2.grad).all() and P2.grad[:, 17:].abs().sum() > 0
    with pytest.raises(ValueError, match="I \\+ 6"):
        C.foot_weighted_heatmap_loss(P2[:, :20], T[:, :20], Cc[:, :20])


# ---- metrics on the chapter's world ---------------------------------------------------------
def test_keypoint_ap_of_the_ground_truth_is_one(rig):
    _, world, _ = rig
    s = world.sample(2, "test")
    X = s["joints"].double().reshape(-1, N_JOINTS, 3)
    scene_of = torch.arange(2).repeat_interleave(6)
    ap = C._keypoint_ap(s, X, scene_of, torch.ones(len(X), 4, N_JOINTS, dtype=D), world)
    assert ap["AP"] == pytest.approx(1.0) and ap["AR"] == pytest.approx(1.0)


def test_parts_and_groups_name_real_joints_and_pcp_hand_case():
    from cvtutor.data.bodies.skeleton import JOINT_NAMES
    for joints in C.JOINT_GROUPS.values():
        assert set(joints) <= set(JOINT_NAMES)
    for bones in C.PARTS.values():
        assert {j for b in bones for j in b} <= set(JOINT_NAMES)
    gt = torch.zeros(1, 2, 3, dtype=D)
    gt[0, 1, 2] = 1.0  # a 1 m bone
    pred = gt.clone()
    pred[0, 1, 0] = 0.4  # endpoint off by 0.4 m ≤ 0.5 m: correct
    assert pose.pcp(pred, gt, [(0, 1)]) == 1.0
    pred[0, 1, 0] = 0.6
    assert pose.pcp(pred, gt, [(0, 1)]) == 0.0
    assert pose.joint_errors(pred, gt)[0, 1] == pytest.approx(0.6)


# ---- readers on fixture files ---------------------------------------------------------------
def test_wildtrack_calibration_reader(tmp_path):
    K = np.array([[1743.4, 0, 934.5], [0, 1735.1, 444.4], [0, 0, 1]])
    dist = np.array([[-0.43, 0.19, 0.001, -0.002, 0.0]])
    fs = cv2.FileStorage(str(tmp_path / "intr_CVLab1.xml"), cv2.FILE_STORAGE_WRITE)
    fs.write("camera_matrix", K)
    fs.write("distortion_coefficients", dist)
    fs.release()
    rvec = np.array([1.759, 0.467, -0.331])
    (tmp_path / "extr_CVLab1.xml").write_text(
        '<?xml version="1.0"?>\n<opencv_storage>\n<rvec>1.759 0.467 -0.331</rvec>\n'
        "<tvec>-525.9 45.4 986.7</tvec>\n</opencv_storage>\n")
    cam = crowd_readers.load_wildtrack_calibration(tmp_path / "intr_CVLab1.xml",
                                                   tmp_path / "extr_CVLab1.xml")
    assert np.allclose(cam["K"], K) and np.allclose(cam["dist"], dist.reshape(-1))
    assert np.allclose(cam["R"], cv2.Rodrigues(rvec)[0], atol=1e-12)
    assert np.allclose(cam["t"], [-525.9, 45.4, 986.7])
    (tmp_path / "bad.xml").write_text(
        "<opencv_storage><rvec>1 2</rvec><tvec>1 2 3</tvec></opencv_storage>")
    with pytest.raises(ValueError, match="camera_matrix"):
        crowd_readers.load_wildtrack_calibration(tmp_path / "bad.xml", tmp_path / "bad.xml")
    with pytest.raises(ValueError, match="3 numbers"):
        crowd_readers.load_wildtrack_calibration(tmp_path / "intr_CVLab1.xml",
                                                 tmp_path / "bad.xml")
    with pytest.raises(FileNotFoundError, match="intrinsic_zero"):
        crowd_readers.load_wildtrack_calibration(tmp_path / "nope.xml", tmp_path / "bad.xml")
    (tmp_path / "junk.xml").write_text("not xml <")
    with pytest.raises(ValueError, match="not an XML file"):
        crowd_readers.load_wildtrack_calibration(tmp_path / "junk.xml", tmp_path / "bad.xml")


def test_coco_foot_reader(tmp_path):
    kp = np.arange(69, dtype=float)
    data = {"images": [{"id": 7, "file_name": "000007.jpg", "width": 640, "height": 480}],
            "annotations": [{"image_id": 7, "bbox": [1, 2, 30, 60], "keypoints": kp.tolist(),
                             "area": 900.0, "iscrowd": 0}], "categories": []}
    path = tmp_path / "person_keypoints_val2017_foot_v1.json"
    path.write_text(json.dumps(data))
    out = crowd_readers.load_coco_foot_keypoints(path)
    assert out["keypoints"].shape == (1, 23, 3)
    assert np.allclose(out["keypoints"][0, 17], kp[51:54])  # the left big toe follows the body
    assert out["images"][7] == ("000007.jpg", 640, 480)
    data["annotations"][0]["keypoints"] = kp[:51].tolist()
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="69 numbers"):
        crowd_readers.load_coco_foot_keypoints(path)
    path.write_text(json.dumps({"annotations": []}))
    with pytest.raises(ValueError, match="images"):
        crowd_readers.load_coco_foot_keypoints(path)


# ---- the miniature --------------------------------------------------------------------------
def test_smoke_run_returns_every_key_of_full():
    cfg = C.Config.smoke()
    full = C.Config.full()
    assert cfg.crowd_sizes == full.crowd_sizes and len(cfg.seeds) > 1
    out = C.run(cfg)
    keys = {"matching", "table1", "table3", "table4", "table5", "reprojection", "findings",
            "compare_table1", "compare_table3", "compare_table4", "compare_table5",
            "compare_table7", "heatmap", "heatmap_history"}
    assert keys == set(out)
    assert set(out["heatmap"]["λ"]) == set(full.lambdas)
    assert set(out["matching"]["N"]) == set(full.crowd_sizes)
    assert set(out["table3"]["seed"]) == set(cfg.seeds)
    assert out["findings"]["kind"].isin(["paper claim", "sanity check", "construction"]).all()
    with pytest.raises(ValueError, match="table_people"):
        C.run(cfg.replace(table_people=7))


def test_cli_runs_the_smoke_profile(tmp_path, monkeypatch):
    from cvtutor import cli, report, runtime

    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)
    monkeypatch.setenv("CVTUTOR_DEVICE", "cpu")
    try:
        assert cli.main(["run", "crowd_3d_pose_mvg", "--profile", "smoke", "--out",
                         str(tmp_path)]) == 0
    finally:
        runtime.set_deterministic(False)
    results, meta = report.load_results(tmp_path / "crowd_3d_pose_mvg-smoke-seed0.json")
    assert meta["profile"] == "smoke" and "findings" in results


def test_stick_crops_and_their_targets():
    from cvtutor.data.bodies.sticks import draw_sticks, stick_crops

    uv = torch.zeros(1, 1, N_JOINTS, 2)
    uv[..., 0] = 4.5  # every joint on the column u = 4.5, from v = 0 down
    uv[..., 1] = torch.linspace(0, 7.5, N_JOINTS)
    img = draw_sticks(uv, 8, width=0.5)[0]
    assert img[:, 4].min() > 0.6 and img[:, 0].max() < 1e-3  # drawn on its column, not elsewhere
    cfg = C.Config.fast()
    s = C.make_world(cfg, 3, seed=0, device="cpu").sample(1, "test")
    crops = stick_crops(s["uv"], 32)
    assert crops["image"].shape == (1 * 4 * 3, 1, 32, 32)
    peak = crops["target"].flatten(2).argmax(-1)  # own heatmaps peak at the own joints
    own = crops["uv"].floor().long().clamp(0, 31)
    inside = ((crops["uv"] >= 0) & (crops["uv"] < 32)).all(-1)
    assert (peak == own[..., 1] * 32 + own[..., 0])[inside].float().mean() == 1.0
    assert (crops["others"] <= 1).all() and crops["others"].sum() > 0
    with pytest.raises(ValueError, match="Q, 23, 2"):
        draw_sticks(uv[0], 8)
