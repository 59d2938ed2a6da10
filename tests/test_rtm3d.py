"""RTM3D (E38): the 9-point projection (Eq. 9-10), the pose and dimension Jacobians (Eq. 12), the priors
(Eq. 13-14), LM on Eq. (7), KFPN (Eq. 1), the focal loss (Eq. 2), Multi-Bin and r_y = α + atan2(x, z), the
Deep3DBox baseline, 3-D / BEV IoU, KITTI AP (R11/R40), the KITTI readers and the smoke profile."""

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial.transform import Rotation

from cvtutor.data import kitti
from cvtutor.data.geometry import boxes3d
from cvtutor.data.geometry.rotations import hat, se3_exp, se3_log, so3_exp
from cvtutor.metrics.kitti import R11, R40, kitti_average_precision, match_images
from cvtutor.papers import rtm3d as R

DT = torch.float64


def _boxes(n=6, seed=0, size=(1242, 375)):
    cfg = R.Config.fast().replace(n_geometry=n, geometry_size=size)
    return R.geometry_objects(cfg, seed)


def test_template_projects_the_kitti_corners_and_centre():
    obj = _boxes(3)
    Rm = R.yaw_matrix(obj["ry"])
    P = R.box_points(Rm, obj["T"], obj["D"])
    # bottom centre = T, 3-D centre = T - h/2 in y, corners at ±l/2, ±w/2 from it
    assert torch.allclose(P[:, :4].mean(1), obj["T"])
    assert torch.allclose(P[:, 8], obj["T"] - torch.stack([0 * obj["ry"], obj["D"][:, 0] / 2, 0 * obj["ry"]], -1))
    assert torch.allclose((P[:, 0] - P[:, 4]).norm(dim=-1), obj["D"][:, 0])  # height
    assert torch.allclose((P[:, 0] - P[:, 1]).norm(dim=-1), obj["D"][:, 1])  # width
    assert torch.allclose((P[:, 1] - P[:, 2]).norm(dim=-1), obj["D"][:, 2])  # length
    # against the geometry core's corners (z up frame)
    core = boxes3d.box3d_corners(R.to_iou_box(obj["T"], obj["D"], obj["ry"]))
    ours = torch.stack([P[:, :8, 0], P[:, :8, 2], -P[:, :8, 1]], -1)
    d = torch.cdist(ours, core)
    assert d.min(-1).values.max() < 1e-9
    # projection: the centre's keypoint lies inside the 8 corners' bounding box
    kp = R.keypoints(Rm, obj["T"], obj["D"], obj["K"])
    assert ((kp[:, 8] >= kp[:, :8].amin(1)) & (kp[:, 8] <= kp[:, :8].amax(1))).all()


def test_projection_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    obj = _boxes(2)
    Rm = R.yaw_matrix(obj["ry"])
    P = R.box_points(Rm, obj["T"], obj["D"])[0].numpy()
    uv, _ = cv2.projectPoints(P, np.zeros(3), np.zeros(3), obj["K"].numpy(), None)
    assert np.allclose(uv[:, 0], R.keypoints(Rm, obj["T"], obj["D"], obj["K"])[0].numpy(), atol=1e-8)


def test_se3_exp_log_round_trip_and_scipy_rotation():
    g = torch.Generator().manual_seed(0)
    xi = torch.randn(20, 6, generator=g, dtype=DT) * 0.5
    assert torch.allclose(se3_log(se3_exp(xi)), xi, atol=1e-10)
    Rs = Rotation.from_rotvec(xi[:, 3:].numpy()).as_matrix()
    assert np.allclose(se3_exp(xi)[:, :3, :3].numpy(), Rs, atol=1e-12)


def _problem(n=4, seed=0, noise=1.5):
    obj = _boxes(n, seed)
    g = torch.Generator().manual_seed(seed)
    kp = obj["kp"] + noise * torch.randn(n, 9, 2, generator=g, dtype=DT)
    conf = torch.rand(n, 9, generator=g, dtype=DT)
    p = R.BoxProblem(kp, R.keypoint_weights(conf), obj["K"], obj["D_hat"], R.yaw_matrix(obj["ry_hat"]))
    Rm = R.yaw_matrix(obj["ry"]) @ se3_exp(torch.cat([torch.zeros(n, 3, dtype=DT), 0.05 * torch.randn(n, 3, generator=g, dtype=DT)], -1))[:, :3, :3]
    return obj, p, Rm, obj["T"] + 0.3, obj["D"] * 1.1


def test_pose_and_dimension_jacobians_match_autograd_and_finite_differences():
    _, p, Rm, T, D = _problem()
    J = R.box_jacobian(p, Rm, T, D)

    def f(delta):
        return R.box_residual(p, *R.retract(Rm, T, D, delta))

    zero = torch.zeros(len(T), 9, dtype=DT)
    Ja = torch.func.jacrev(lambda d: f(d).sum(0))(zero).permute(1, 0, 2)
    assert torch.allclose(J, Ja, atol=1e-8, rtol=1e-7)
    eps = 1e-6
    for k in range(9):
        e = zero.clone()
        e[:, k] = eps
        fd = (f(e) - f(-e)) / (2 * eps)
        assert torch.allclose(J[:, :, k], fd, atol=1e-5, rtol=1e-5), k
    # Eq. 12's pose block alone: -J_π [I, -P'^]
    Pc = R.box_points(Rm, T, D)
    Jp = R.pose_jacobian(Pc, p.K)
    assert torch.allclose(Jp[..., :3], -R.projection_jacobian(Pc, p.K))
    # the printed ∂e/∂D (a mean over the 9 points) is not any point's Jacobian
    Jd, Jm = R.dimension_jacobian(Rm, Pc, p.K), R.dimension_jacobian_as_printed(Rm, Pc, p.K)
    assert torch.allclose(Jm, Jd.mean(-3)) and (Jd - Jm[:, None]).abs().max() > 1.0


def test_rotation_prior_and_its_left_jacobian_inverse():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(5, 3, generator=g, dtype=DT) * 0.7
    Rh = so3_exp(w)
    eye = torch.eye(3, dtype=DT).expand(5, 3, 3)
    assert torch.allclose(R.rotation_prior_residual(eye, Rh), w, atol=1e-10)
    assert R.rotation_prior_residual(Rh, Rh).abs().max() < 1e-7
    assert torch.allclose(R.dimension_prior_residual(torch.ones(2, 3), torch.full((2, 3), 3.0)), torch.full((2, 3), 2.0))
    # J_l^{-1} inverts the closed-form left Jacobian J_l = I + (1-cos)/θ² φ^ + (θ - sin)/θ³ φ^²
    th = w.norm(dim=-1)[:, None, None]
    W = hat(w)
    Jl = torch.eye(3, dtype=DT) + (1 - torch.cos(th)) / th**2 * W + (th - torch.sin(th)) / th**3 * (W @ W)
    assert torch.allclose(R.so3_left_jacobian_inv(w) @ Jl, eye, atol=1e-10)
    assert torch.allclose(R.so3_left_jacobian_inv(torch.zeros(1, 3, dtype=DT)), torch.eye(3, dtype=DT)[None])


def test_noise_free_lm_recovers_the_box():
    obj = _boxes(8, 3)
    n = 8
    p = R.BoxProblem(obj["kp"], R.keypoint_weights(torch.ones(n, 9, dtype=DT)), obj["K"], obj["D"],
                     R.yaw_matrix(obj["ry"]))
    R0, T0 = R.initial_pose(obj["kp"][:, 8], obj["T"][:, 2] * 1.2, obj["D"] * 0.85, obj["ry"] + 0.2, obj["K"])
    s = R.solve_box(p, R0, T0, obj["D"] * 0.85, iters=60)
    assert (s["T"] - obj["T"]).abs().max() < 1e-5
    assert (s["D"] - obj["D"]).abs().max() < 1e-5
    assert (R._wrap(s["ry"] - obj["ry"])).abs().max() < 1e-5
    assert (s["history"][1:] <= s["history"][:-1] + 1e-12).all()  # LM never raises the energy
    # the same optimum from the shared generic LM on (rotation vector, T, D) with autograd Jacobians
    from cvtutor.data.geometry.optim import levenberg_marquardt

    def res(x):
        return R.box_residual(p, so3_exp(x[:, :3]), x[:, 3:6], x[:, 6:])

    x0 = torch.cat([R.so3_log(R0), T0, obj["D"] * 0.85], -1)
    g = levenberg_marquardt(res, x0, iters=60)
    assert torch.allclose(g["x"][:, 3:6], s["T"], atol=1e-5)


def test_keypoint_weights_eq8():
    conf = torch.tensor([[0.9] * 8 + [0.1]], dtype=DT)
    w = R.keypoint_weights(conf)
    assert torch.allclose(w.sum(-1), torch.ones(1, dtype=DT))
    assert torch.allclose(w, torch.softmax(conf, -1))
    vis = torch.ones(1, 9, dtype=torch.bool)
    vis[0, 0] = False
    wv = R.keypoint_weights(conf, vis)
    assert wv[0, 0] == 0 and torch.isclose(wv.sum(), torch.tensor(1.0, dtype=DT))


def test_deep3dbox_recovers_translation_from_an_exact_box():
    obj = _boxes(6, 2)
    d = R.deep3dbox_translation(obj["box2d"], obj["D"], obj["ry"], obj["K"])
    assert (d["T"] - obj["T"]).abs().max() < 1e-6 and d["box_error"].max() < 1e-6


def test_kfpn_is_a_convex_combination_over_scales():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(2, 3, 4, 6, generator=g)
    fused, w = R.KFPN.fuse([f, f, f])
    assert torch.allclose(w.sum(0), torch.ones_like(f)) and torch.allclose(w, torch.full_like(w, 1 / 3))
    assert torch.allclose(fused, f, atol=1e-6)
    small = torch.randn(2, 3, 2, 3, generator=g)
    fused, w = R.KFPN.fuse([small, f])
    up = torch.nn.functional.interpolate(small, size=(4, 6), mode="bilinear", align_corners=False)
    ref = (torch.stack([up, f]) * torch.softmax(torch.stack([up, f]), 0)).sum(0)
    assert torch.allclose(fused, ref, atol=1e-6)


def test_focal_loss_hand_case_and_gaussian_targets():
    target = torch.tensor([[[[0.0, 0.5, 0.0], [0.5, 1.0, 0.5], [0.0, 0.5, 0.0]]]])
    logits = torch.full_like(target, math.log(0.2 / 0.8))  # p = 0.2 everywhere
    p = 0.2
    pos = (1 - p) ** 2 * math.log(p)
    neg = 4 * p**2 * math.log(1 - p) + 4 * (0.5**4) * p**2 * math.log(1 - p)
    assert math.isclose(float(R.focal_loss(logits, target)), -(pos + neg), rel_tol=1e-5)
    one_hot = torch.where(target >= 1, 20.0, -20.0)
    assert float(R.focal_loss(one_hot, (target >= 1).float())) < 1e-6
    h = torch.zeros(7, 9)
    R.splat(h, torch.tensor([4.0, 3.0]), torch.tensor(2.0))
    assert h[3, 4] == 1 and h.max() == 1 and math.isclose(float(h[3, 5]), math.exp(-1 / 4), rel_tol=1e-6)
    s = R.gaussian_variance(torch.tensor([0.0, 10.0, 50.0, 100.0, 500.0]), 10.0, 100.0, 3.0, 19.0)
    assert s[0] == 3 and s[-1] == 19 and (s.diff() >= 0).all()


def test_multibin_and_alpha_round_trips():
    a = torch.linspace(-math.pi + 1e-3, math.pi, 41, dtype=DT)
    assert R._wrap(R.multibin_decode(R.multibin_target(a)) - a).abs().max() < 1e-6  # (π and -π are one angle)
    x, z = torch.linspace(-20, 20, 41, dtype=DT), torch.linspace(5, 45, 41, dtype=DT)
    ry = R.ry_from_alpha(a, x, z)
    assert torch.allclose(R._wrap(R.alpha_from_ry(ry, x, z) - a), torch.zeros_like(a), atol=1e-12)
    assert torch.allclose(R.ry_from_alpha(torch.zeros(1), torch.zeros(1), torch.ones(1)), torch.zeros(1))
    O = R.multibin_target(a).float().requires_grad_(True)
    loss = R.multibin_loss(O, a.float())
    loss.backward()
    assert loss < 1e-3 and O.grad is not None


def test_iou_identical_disjoint_axis_aligned_and_shapely():
    pytest.importorskip("shapely")
    from shapely.geometry import Polygon

    b = torch.tensor([[1.0, 2.0, 0.5, 4.0, 2.0, 1.5, 0.3]], dtype=DT)
    assert torch.isclose(boxes3d.iou_3d(b, b), torch.ones(1, dtype=DT))
    far = b.clone()
    far[0, 0] += 10
    assert boxes3d.iou_3d(b, far) == 0
    a = torch.tensor([[0.0, 0, 0, 4, 2, 2, 0]], dtype=DT)
    c = torch.tensor([[1.0, 0.5, 0.5, 4, 2, 2, 0]], dtype=DT)
    inter = 3 * 1.5 * 1.5
    assert torch.isclose(boxes3d.iou_3d(a, c), torch.tensor(inter / (32 - inter), dtype=DT))
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        x = torch.cat([torch.rand(2, 2, generator=g, dtype=DT) * 2, torch.zeros(2, 1, dtype=DT),
                       1 + 3 * torch.rand(2, 3, generator=g, dtype=DT), 6 * torch.rand(2, 1, generator=g, dtype=DT)], -1)
        pa, pb = (Polygon(boxes3d.bev_corners(x[i]).numpy()) for i in range(2))
        ref = pa.intersection(pb).area / pa.union(pb).area
        assert math.isclose(float(boxes3d.bev_iou(x[0], x[1])), ref, abs_tol=1e-9)


def test_kitti_ap_r11_r40_hand_curve():
    # 4 GT; detections by score: TP, FP, TP, TP → precision 1, .5, .667, .75 at recall .25, .25, .5, .75
    scores, tp = [0.9, 0.8, 0.7, 0.6], [True, False, True, True]
    env = {0.25: 1.0, 0.5: 0.75, 0.75: 0.75}
    r11 = np.mean([1.0 if r <= 0.25 else (0.75 if r <= 0.75 else 0.0) for r in R11])
    r40 = np.mean([1.0 if r <= 0.25 else (0.75 if r <= 0.75 else 0.0) for r in R40])
    assert env and math.isclose(kitti_average_precision(scores, tp, 4, "R11"), r11)
    assert math.isclose(kitti_average_precision(scores, tp, 4, "R40"), r40)
    assert math.isclose(r11, (3 * 1.0 + 5 * 0.75) / 11) and math.isclose(r40, (10 * 1.0 + 20 * 0.75) / 40)
    with pytest.raises(ValueError, match="R11"):
        kitti_average_precision(scores, tp, 4, "R101")


def test_match_images_with_dont_care():
    def iou(a, b):
        return (np.abs(a[:, None, 0] - b[None, :, 0]) < 0.5).astype(float)

    dets = [(np.array([[0.0], [5.0], [9.0]]), np.array([0.9, 0.8, 0.7]))]
    gts = [(np.array([[0.0], [5.0]]), np.array([False, True]))]  # the second GT is "don't care"
    s, tp, n = match_images(dets, gts, iou, 0.5)
    assert n == 1 and list(tp) == [True, False] and list(s) == [0.9, 0.7]


def test_kitti_label_calib_split_round_trip(tmp_path):
    root = tmp_path / "kitti" / "training"
    (root / "label_2").mkdir(parents=True)
    (root / "calib").mkdir()
    (root / "image_2").mkdir()
    line = "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59"
    (root / "label_2" / "000001.txt").write_text(line + "\nDontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10\n")
    P2 = "7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03"
    calib = "\n".join([f"P{i}: {P2}" for i in range(4)] + ["R0_rect: 1 0 0 0 1 0 0 0 1",
                                                          f"Tr_velo_to_cam: {P2}", f"Tr_imu_to_velo: {P2}"])
    (root / "calib" / "000001.txt").write_text(calib + "\n")
    from PIL import Image
    Image.fromarray(np.zeros((8, 12, 3), np.uint8)).save(root / "image_2" / "000001.png")
    (tmp_path / "kitti" / "ImageSets").mkdir()
    (tmp_path / "kitti" / "ImageSets" / "val.txt").write_text("000001\n000003\n")
    lab = kitti.read_label(root / "label_2" / "000001.txt")
    assert list(lab.columns) == list(kitti.LABEL_FIELDS) and len(lab) == 2
    assert lab.loc[0, "type"] == "Car" and lab.loc[0, "z"] == 46.70 and lab.loc[0, "h"] == 1.65
    out = kitti.write_label(tmp_path / "res" / "000001.txt", lab.assign(score=[0.9, 0.1]))
    back = kitti.read_label(out)
    assert np.allclose(back[list(kitti.LABEL_FIELDS[1:])].to_numpy(float), lab[list(kitti.LABEL_FIELDS[1:])].to_numpy(float))
    assert list(back["score"]) == [0.9, 0.1] and list(back["type"]) == ["Car", "DontCare"]
    s = kitti.read_sample(tmp_path / "kitti", "000001")
    assert s["image"].shape == (8, 12, 3) and s["calib"]["R0_rect"].shape == (3, 3)
    assert s["K"][0, 0] == pytest.approx(721.5377) and s["calib"]["P2"].shape == (3, 4)
    assert kitti.read_split(tmp_path / "kitti" / "ImageSets" / "val.txt") == ["000001", "000003"]


def test_kitti_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="label_2"):
        kitti.read_label(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError, match="training"):
        kitti.read_sample(tmp_path, "000000")
    (tmp_path / "bad.txt").write_text("Car 0 0 1 2 3\n")
    with pytest.raises(ValueError, match="15 fields"):
        kitti.read_label(tmp_path / "bad.txt")
    (tmp_path / "calib.txt").write_text("P2: 1 2 3\n")
    with pytest.raises(ValueError, match="P2 needs 12"):
        kitti.read_calib(tmp_path / "calib.txt")
    (tmp_path / "split.txt").write_text("abc\n")
    with pytest.raises(ValueError, match="digits"):
        kitti.read_split(tmp_path / "split.txt")
    with pytest.raises(ValueError, match="KITTI fields"):
        kitti.write_label(tmp_path / "x.txt", pd.DataFrame({"type": ["Car"]}))


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"\(B, 9\)"):
        R.keypoint_weights(torch.ones(2, 8))
    with pytest.raises(ValueError, match="h, w, l"):
        R.box_points(torch.eye(3)[None], torch.zeros(1, 3), torch.ones(1, 2))
    with pytest.raises(ValueError, match="Multi-Bin"):
        R.multibin_loss(torch.zeros(3, 6), torch.zeros(3))
    with pytest.raises(ValueError, match="backbone"):
        R.RTM3DNet("vgg")
    with pytest.raises(ValueError, match="kp must be"):
        _, p, Rm, T, D = _problem(2)
        R.solve_box(R.BoxProblem(p.kp[:, :8], p.sigma, p.K, p.D_hat, p.R_hat), Rm, T, D)


def test_world_labels_are_consistent():
    d = R.render_scenes(6, 96, 32, seed=3)
    assert d["image"].shape == (6, 3, 32, 96) and 0 <= d["image"].min() and d["image"].max() <= 1
    v = d["valid"]
    Rm = R.yaw_matrix(d["ry"][v].double())
    kp = R.keypoints(Rm, d["T"][v].double(), d["dims"][v].double(), d["K"])
    assert torch.allclose(kp.float(), d["kp"][v], atol=1e-3)
    assert ((d["truncation"][v] >= 0) & (d["truncation"][v] <= 1)).all()
    assert torch.equal(R.render_scenes(6, 96, 32, seed=3)["image"], d["image"])


def test_network_heads_and_loss_gradients():
    d = R.render_scenes(4, 96, 32, seed=0)
    t = R.rtm3d_targets(d, 4, (8, 24), 0.6, 3.0)
    for kf in (True, False):
        net = R.RTM3DNet("tiny", 8, 16, kf)
        out = net(d["image"])
        assert {k: tuple(v.shape[1:]) for k, v in out.items()} == {k: (c, 8, 24) for k, c in R.HEADS.items()}
        L = R.rtm3d_loss(out, t)
        assert torch.isfinite(L["loss"])
        L["loss"].backward()
        assert all(p.grad is not None for p in net.heads.parameters())
    assert math.isclose(float(L["loss"]), sum(R.LOSS_WEIGHTS[k] * float(L[k]) for k in R.LOSS_WEIGHTS), rel_tol=1e-5)


def test_paper_numbers():
    assert R.PAPER["table5"].values["dim+ori+dist+off"] == 41.90
    assert R.PAPER["table6"].values["w/ KFPN"] > R.PAPER["table6"].values["w/o KFPN"]
    assert R.PAPER["table2_r18"].values["IoU 0.5 moderate"] == 33.86


def test_smoke_profile_runs_every_full_path():
    full, smoke = R.Config.full(), R.Config.smoke()
    assert smoke.backbone == full.backbone == "resnet18" and smoke.kfpn == full.kfpn and len(smoke.seeds) >= 2
    res = R.run(smoke)
    assert set(res) >= {"noise", "ablation", "ap", "pck", "history", "compare_table5", "findings"}
    assert set(res["ap"]["kfpn"]) == {True, False} and set(res["ap"]["seed"]) == set(smoke.seeds)
    assert res["findings"]["holds"].notna().sum() >= 5


def test_cli_smoke(tmp_path):
    out = subprocess.run([sys.executable, "-m", "cvtutor", "run", "rtm3d", "--profile", "smoke", "--out", str(tmp_path)],
                         check=False, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
