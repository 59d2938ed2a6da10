"""RSN (E27): receptive fields (Eq. 1–2, Table 1), the RSB and its baselines, PRM (Eq. 3), the
heatmap pipeline (targets, post-Gaussian filter, quarter offset, flip test), OKS AP, FLOPs, the
crops, and the smoke profile through the CLI."""
import json
import math

import numpy as np
import pytest
import scipy.ndimage
import torch

from cvtutor import cli, report
from cvtutor.data.bodies import load_coco_keypoints, topdown_crops
from cvtutor.data.bodies.pose_crops import FLIP_PAIRS13, SIGMAS13, pose_crops, to_coco17
from cvtutor.metrics.pose import coco_keypoint_ap, oks, pckh
from cvtutor.nn.flops import conv2d_flops, flop_count
from cvtutor.nn.heatmaps import argmax_decode, flip_heatmaps
from cvtutor.papers import rsn_delicate_local as R


# ---- receptive fields ---------------------------------------------------------------------------
def test_eq1_receptive_field_closed_forms():
    assert R.receptive_field([3] * 4) == 9  # Eq. (2): 1 + 2k
    assert R.receptive_field([7, 3, 3], [2, 2, 1]) == 1 + 6 + 2 * 2 + 2 * 4
    with pytest.raises(ValueError, match="positive kernels"):
        R.receptive_field([3, 3], [1])


def test_table1_symbolic_sets():
    assert R.rsb_receptive_fields(4) == [{3}, {5, 7}, {7, 9, 11}, {9, 11, 13, 15}]
    assert R.rsb_receptive_fields(4) == R.PAPER["table1"].values["RSN"]
    assert R.rsb_receptive_fields(4, fusion=False) == [{3}, {5}, {7}, {9}]
    assert R.res2net_receptive_fields(4) == R.PAPER["table1"].values["Res2Net"]
    # a sixth branch continues the pattern: {13, ..., 23}
    assert R.rsb_receptive_fields(6)[-1] == set(range(13, 24, 2))


def _plain(block):
    """All 3×3 kernels ones, BatchNorm the identity (eval, unit stats): steps are pure sums."""
    for m in block.modules():
        if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3):
            torch.nn.init.ones_(m.weight)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_parameters()
            m.eps = 0.0
    return block.eval()


@pytest.mark.parametrize("fusion, widths", [(True, [3, 7, 11, 15]), (False, [3, 5, 7, 9])])
def test_impulse_support_of_each_branch(fusion, widths):
    block = _plain(R.ResidualStepsBlock(8, 1, 4, fusion=fusion))
    x = torch.zeros(1, 1, 41, 41, dtype=torch.float32)
    x[0, 0, 20, 20] = 1.0
    with torch.no_grad():
        ys = block.branches([x] * 4)
    got = [int((y[0, 0, 20] > 0).sum()) for y in ys]
    assert got == widths


def test_baseline1_same_parameters_different_outputs():
    torch.manual_seed(0)
    rsn = R.make_block("rsn", 16, 8)
    b1 = R.make_block("baseline1", 16, 8)
    b1.load_state_dict(rsn.state_dict())
    x = torch.randn(2, 16, 6, 5)
    assert sum(p.numel() for p in rsn.parameters()) == sum(p.numel() for p in b1.parameters())
    assert not torch.allclose(rsn(x), b1(x))
    # parameter count in closed form: 1×1 (C→4w) + 10 steps w→w (3×3) + 1×1 (4w→C), BN 2 per ch
    C, w = 16, 8
    conv = C * 4 * w + 10 * 9 * w * w + 4 * w * C
    bn = 2 * (4 * w + 10 * w + C)
    assert sum(p.numel() for p in rsn.parameters()) == conv + bn
    b2 = R.make_block("baseline2", 16, 8)
    assert [len(s) for s in b2.steps] == [3, 3, 3, 3]


def test_blocks_keep_shape_and_bad_names_raise():
    x = torch.randn(2, 16, 8, 6)
    for kind in R.BLOCKS:
        assert R.make_block(kind, 16, 8)(x).shape == x.shape
    with pytest.raises(ValueError, match="expected one of"):
        R.make_block("densenet", 16, 8)
    with pytest.raises(ValueError, match="expected one of"):
        R.make_attention("nonlocal", 16)
    with pytest.raises(ValueError, match="expected 4 splits"):
        R.ResidualStepsBlock(16, 8).branches([x])


# ---- PRM ----------------------------------------------------------------------------------------
def test_prm_identity_when_attention_vanishes_and_factor_in_1_2():
    torch.manual_seed(0)
    prm = R.PoseRefineMachine(16).eval()
    f = torch.randn(2, 16, 8, 6)
    k = prm.K(f)
    alpha, beta = prm.attention(k)
    assert alpha.shape == (2, 16, 1, 1) and beta.shape == k.shape
    assert torch.equal(prm.combine(k, torch.zeros_like(alpha), beta), k)
    assert torch.equal(prm.combine(k, alpha, torch.zeros_like(beta)), k)
    factor = 1 + beta * alpha
    assert factor.min() >= 1 and factor.max() <= 2
    assert torch.allclose(prm(f), k * factor)
    for kind in R.ATTENTIONS:
        assert R.make_attention(kind, 16)(f).shape == f.shape


def test_prm_gradients_flow_to_both_paths():
    torch.manual_seed(0)
    prm = R.PoseRefineMachine(8)
    prm(torch.randn(2, 8, 6, 6)).square().sum().backward()
    assert prm.channel[0].weight.grad.abs().sum() > 0
    assert prm.spatial[1].weight.grad.abs().sum() > 0


# ---- heatmaps and decoding ---------------------------------------------------------------------
def test_targets_peak_at_keypoint_and_zero_when_absent():
    uv = torch.tensor([[[5.0, 9.0], [13.0, 21.0]]])
    t = R.heatmap_targets(uv, torch.tensor([[2, 0]]), 32, 24, 1.0)
    assert t.shape == (1, 2, 16, 12)
    # (5, 9) crop px → heatmap (2.5, 4.5) → pixel (row 4, col 2) has the centre exactly
    assert t[0, 0, 4, 2] == pytest.approx(1.0) and t[0, 0].argmax() == 4 * 12 + 2
    assert t[0, 1].abs().sum() == 0
    with pytest.raises(ValueError, match="visible"):
        R.heatmap_targets(uv, torch.ones(2, 2), 32, 24, 1.0)


def test_gaussian_blur_matches_scipy():
    h = torch.rand(2, 3, 16, 12, dtype=torch.float64)
    ours = R.gaussian_blur(h, 1.0).numpy()
    ref = np.stack([[scipy.ndimage.gaussian_filter(h[b, j].numpy(), 1.0, mode="constant")
                     for j in range(3)] for b in range(2)])
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_quarter_offset_beats_argmax_on_subpixel_gaussians():
    g = torch.Generator().manual_seed(0)
    centres = 3 + 8 * torch.rand(200, 1, 2, generator=g, dtype=torch.float64)
    yy, xx = torch.meshgrid(torch.arange(16.0, dtype=torch.float64) + 0.5,
                            torch.arange(14.0, dtype=torch.float64) + 0.5, indexing="ij")
    h = torch.exp(-((xx - centres[..., 0, None, None]) ** 2
                    + (yy - centres[..., 1, None, None]) ** 2) / 2)
    plain, _ = argmax_decode(h, quarter_offset=False)
    quarter, peak = R.quarter_offset_decode(h)
    e_plain = (plain - centres).norm(dim=-1).mean()
    e_quarter = (quarter - centres).norm(dim=-1).mean()
    assert e_quarter < e_plain
    # the offset is exactly a quarter pixel from the arg-max pixel centre
    assert torch.allclose((quarter - plain).norm(dim=-1), torch.full((200, 1), 0.25,
                                                                      dtype=torch.float64))
    assert torch.allclose(peak, h.flatten(2).amax(-1))


def test_flip_with_swap_is_an_involution_and_flip_test_fixes_an_equivariant_model():
    h = torch.rand(3, 13, 16, 12)
    assert torch.equal(flip_heatmaps(flip_heatmaps(h, FLIP_PAIRS13), FLIP_PAIRS13), h)
    torch.manual_seed(0)
    net = R.build(R.Config.smoke(), "rsn", 8).eval()

    def symmetric(x):  # mirror-equivariant: m(mirror(x)) = swap(flip(m(x)))
        return R.flip_average(net, x)

    x = torch.rand(4, 3, 32, 24)
    with torch.no_grad():
        assert torch.allclose(R.flip_average(symmetric, x), symmetric(x), atol=1e-6)
        assert not torch.allclose(R.flip_average(net, x), net(x), atol=1e-6)
    p, s = R.decode(net, x, "quarter+blur+flip")
    assert p.shape == (4, 13, 2) and s.shape == (4, 13)
    with pytest.raises(ValueError, match="expected one of"):
        R.decode(net, x[:1], "soft-argmax")


# ---- OKS AP -------------------------------------------------------------------------------------
def test_oks_closed_form_and_ap_one_on_ground_truth():
    gt = np.random.default_rng(0).uniform(0, 30, (5, 13, 2))
    v = np.full((5, 13), 2)
    g17, v17 = to_coco17(gt, v)
    area = np.full(5, 150.0)
    d = 1.5
    shifted = g17.copy()
    shifted[..., 0] += d
    got = oks(shifted, g17, v17, area)
    k = 2 * SIGMAS13
    np.testing.assert_allclose(got, np.mean(np.exp(-d ** 2 / (2 * 150.0 * k ** 2))), rtol=1e-9)
    ap = coco_keypoint_ap(g17, v17, np.arange(5), area, g17, np.ones(5), np.arange(5))
    assert ap["AP"] == pytest.approx(1.0)
    res = R.keypoint_ap(torch.tensor(gt), torch.ones(5, 13),
                        {"uv": torch.tensor(gt), "visible": torch.tensor(v),
                         "area": torch.tensor(area)})
    assert res["AP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"\(n, 13, 2\)"):
        to_coco17(np.zeros((2, 17, 2)))


def test_pckh_hand_case():
    gt = np.zeros((1, 3, 2))
    pred = np.array([[[1.0, 0], [0, 2.0], [4.0, 0]]])
    assert pckh(pred, gt, np.array([6.0])) == pytest.approx(2 / 3)  # threshold 3 px


# ---- FLOPs --------------------------------------------------------------------------------------
def test_one_conv_flops_closed_form_and_matched_widths():
    conv = torch.nn.Conv2d(8, 16, 3, padding=1, bias=False)
    got = flop_count(conv, torch.zeros(1, 8, 12, 10))["flops"]
    assert got == conv2d_flops(8, 16, 3, (12, 10)) == 2 * 12 * 10 * 8 * 16 * 9
    cfg = R.Config.fast()
    target = R.model_flops(R.build(cfg, "rsn", cfg.rsn_width), cfg.height, cfg.width)
    w, fl = R.matched_width("resnet", target, cfg)
    assert w >= 8 and abs(fl / target - 1) < 0.1


# ---- the crops and the top-down reader ---------------------------------------------------------
def test_pose_crops_shapes_flags_and_seed():
    a = pose_crops(12, seed=3)
    b = pose_crops(12, seed=3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["image"].shape == (12, 3, 32, 24) and a["uv"].shape == (12, 13, 2)
    inside = ((a["uv"] >= 0) & (a["uv"] < torch.tensor([24.0, 32.0]))).all(-1)
    assert torch.equal(a["visible"] > 0, inside)
    assert set(a["visible"].unique().tolist()) <= {0, 1, 2}
    assert (a["area"] == a["mask"].sum((1, 2))).all()
    with pytest.raises(ValueError, match="positive int"):
        pose_crops(0)
    with pytest.raises(ValueError, match="even height"):
        pose_crops(4, height=24, width=32)


def test_coco_fixture_topdown_crop_and_targets(tmp_path):
    """A COCO keypoints file written here → top-down crop → targets peak at the keypoints."""
    kp = np.zeros((17, 3))
    kp[5] = [40.0, 30.0, 2]
    kp[11] = [52.0, 70.0, 1]
    doc = {"images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 100}],
           "annotations": [{"id": 1, "image_id": 7, "bbox": [30.0, 20.0, 40.0, 60.0],
                            "keypoints": kp.reshape(-1).tolist(), "num_keypoints": 2,
                            "area": 1200.0, "iscrowd": 0, "category_id": 1}],
           "categories": [{"id": 1, "name": "person"}]}
    path = tmp_path / "person_keypoints_val2017.json"
    path.write_text(json.dumps(doc))
    coco = load_coco_keypoints(path)
    crops, uv = topdown_crops(torch.rand(3, 100, 100), torch.tensor(coco["bbox"]).float(),
                              torch.tensor(coco["keypoints"]).float(), 32)
    assert crops.shape == (1, 3, 32, 32)
    t = R.heatmap_targets(uv[:, [5, 11], :2], uv[:, [5, 11], 2], 32, 32, 1.0)
    peak = torch.stack([t[0].flatten(1).argmax(-1) % 16, t[0].flatten(1).argmax(-1) // 16], -1)
    assert torch.equal(peak, (uv[0, [5, 11], :2] / 2).floor().long())
    with pytest.raises(FileNotFoundError, match="person_keypoints"):
        load_coco_keypoints(tmp_path / "missing.json")


# ---- the network and the smoke profile ---------------------------------------------------------
def test_posenet_shapes_and_stages():
    cfg = R.Config.smoke()
    net = R.build(cfg, "rsn", 8, attention="prm", stages=2)
    hs = net.all_stages(torch.rand(2, 3, 32, 24))
    assert len(hs) == 2 and all(h.shape == (2, 13, 16, 12) for h in hs)
    with pytest.raises(ValueError, match="stages"):
        R.PoseNet(stages=0)


def test_smoke_profile_through_the_cli(tmp_path):
    """``python -m cvtutor run rsn_delicate_local --profile smoke``: full's settings and keys."""
    full, smoke = R.Config.full(), R.Config.smoke()
    assert smoke.blocks_compared == full.blocks_compared and smoke.attentions == full.attentions
    assert len(smoke.seeds) >= 2
    assert cli.main(["run", "rsn_delicate_local", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    res, _ = report.load_results(next(tmp_path.glob("*.json")))
    for key in ("table1", "blocks", "table2", "decoding", "per_joint", "branches", "attention",
                "cascade", "curve", "history", "findings"):
        assert key in res
    assert set(res["blocks"]["seed"]) == set(smoke.seeds)
    assert set(res["attention"]["setting"]) == set(R.ATTENTIONS)
    assert set(res["findings"]["kind"]) <= set(report.KINDS)
    assert math.isfinite(res["history"]["loss"].iloc[-1])


def test_mpii_hrnet_json_and_pckh_on_fixtures(tmp_path):
    """HRNet's MPII ``valid.json`` and ``gt_valid.mat`` written here → PCKh@0.5 of a hand case."""
    import scipy.io

    from cvtutor.data.bodies.readers import load_mpii_head_sizes, load_mpii_hrnet_json

    joints = np.zeros((2, 16, 2))
    joints[1] += 10.0
    recs = [{"image": f"{i:09d}.jpg", "center": [50.0, 60.0], "scale": 1.5,
             "joints": joints[i].tolist(), "joints_vis": [1] * 15 + [0]} for i in range(2)]
    (tmp_path / "valid.json").write_text(json.dumps(recs))
    boxes = np.zeros((2, 2, 2))
    boxes[1] = 10.0 / 0.6 / np.sqrt(2)  # head box diagonal → head size 10 px
    scipy.io.savemat(tmp_path / "gt_valid.mat", {"headboxes_src": boxes})
    mpii = load_mpii_hrnet_json(tmp_path / "valid.json")
    head = load_mpii_head_sizes(tmp_path / "gt_valid.mat")
    assert mpii["joints"].shape == (2, 16, 2) and mpii["visible"][:, -1].sum() == 0
    np.testing.assert_allclose(head, [10.0, 10.0])
    pred = mpii["joints"].copy()
    pred[0, :5, 0] += 6.0  # 5 of 15 visible joints of person 0 beyond 0.5 x 10 px
    assert pckh(pred, mpii["joints"], head, valid=mpii["visible"]) == pytest.approx(25 / 30)
    (tmp_path / "bad.json").write_text(json.dumps([{"image": "a.jpg"}]))
    with pytest.raises(ValueError, match="joints_vis"):
        load_mpii_hrnet_json(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="annot"):
        load_mpii_hrnet_json(tmp_path / "missing.json")


def test_world_mirror_swaps_left_and_right_colours():
    from cvtutor.data.bodies.pose_crops import mirror, part_albedo
    from cvtutor.data.bodies.skeleton import JOINT_NAMES

    alb = part_albedo()
    for j, name in enumerate(JOINT_NAMES):
        if name.startswith("l_"):
            twin = JOINT_NAMES.index("r_" + name[2:])
            assert torch.equal(alb[j + 1][[2, 1, 0]], alb[twin + 1])
    x = torch.rand(2, 3, 8, 6)
    assert torch.equal(mirror(mirror(x)), x)
    assert torch.equal(mirror(x)[:, 0, :, 0], x[:, 2, :, -1])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        mirror(torch.rand(2, 1, 8, 6))
