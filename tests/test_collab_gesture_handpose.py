"""Tests of the collaborative gesture / hand-pose miniature (E45): the motion orders of Eqs. (2) and (4)
on known signals, the slow/fast weights, the hand-hierarchy relation module, Eq. (5)'s masking, shapes
and errors."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from cvtutor.papers import collab_gesture_handpose as M

def _signal(values):
    """A (B=1, T, N=2, C=1, H=1, W=1) feature whose joint 0 follows ``values`` and joint 1 twice that."""
    v = torch.tensor(values, dtype=torch.float64)
    return torch.stack([v, 2 * v], -1)[None, :, :, None, None, None]


# ---- Eqs. (2) and (4) on constant, linear and quadratic signals ---------------------------------
def test_constant_signal_has_no_motion():
    z = _signal([3.0] * 6)
    assert torch.equal(M.first_order(z), torch.zeros_like(z))
    assert torch.equal(M.second_order(z), torch.zeros_like(z))


def test_linear_signal_constant_velocity_zero_acceleration():
    z = _signal([1 + 2.0 * t for t in range(1, 7)])  # Zo_t = 1 + 2t
    fo = M.first_order(z)[0, :, :, 0, 0, 0]
    assert torch.equal(fo, torch.tensor([[2.0, 4.0]] * 6, dtype=torch.float64))
    assert torch.equal(M.second_order(z), torch.zeros_like(z))


def test_quadratic_signal_hand_values():
    a = 0.5
    z = _signal([a * t * t for t in range(1, 6)])  # 0.5, 2, 4.5, 8, 12.5
    fo = M.first_order(z)[0, :, 0, 0, 0, 0]
    # Fo_t = a(2t - 1) for t >= 2: 1.5, 2.5, 3.5, 4.5; Fo_1 copies Fo_2
    assert torch.allclose(fo, torch.tensor([1.5, 1.5, 2.5, 3.5, 4.5], dtype=torch.float64))
    so = M.second_order(z)[0, :, :, 0, 0, 0]
    assert torch.allclose(so, torch.tensor([[2 * a, 4 * a]] * 5, dtype=torch.float64))  # So = 2a everywhere
    # Eq. (4): So_t = Fo_{t+1} - Fo_t where both are defined
    fo_all = M.first_order(z)
    assert torch.allclose(M.second_order(z)[:, 1:-1], fo_all[:, 2:] - fo_all[:, 1:-1])


def test_orders_need_enough_frames():
    with pytest.raises(ValueError, match="T >= 3"):
        M.second_order(torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="T >= 2"):
        M.first_order(torch.zeros(1, 1, 4))
    with pytest.raises(TypeError, match="tensor"):
        M.first_order([[1.0, 2.0]])


# ---- slow/fast weights ----------------------------------------------------------------------------
def test_slow_fast_weights_hand_values():
    fd = torch.tensor([[0.0, 1.5, 3.0]])  # sigma = 1
    slow, fast = M.slow_fast_weights(fd)
    assert torch.allclose(slow, torch.tensor([[1.0, math.exp(-1.125), math.exp(-4.5)]]))
    assert torch.allclose(fast, torch.tensor([[math.exp(-4.5), math.exp(-1.125), 1.0]]))
    assert float(slow.min()) > 0 and float(slow.max()) <= 1


def test_slow_fast_degenerate_all_ones_and_scale_free():
    slow, fast = M.slow_fast_weights(torch.full((2, 5), 0.7))
    assert torch.equal(slow, torch.ones(2, 5)) and torch.equal(fast, torch.ones(2, 5))
    fd = torch.rand(3, 21)
    s1, f1 = M.slow_fast_weights(fd)
    s2, f2 = M.slow_fast_weights(10 * fd + 4)  # affine changes of FD do not change the weights
    assert torch.allclose(s1, s2, atol=1e-5) and torch.allclose(f1, f2, atol=1e-5)
    with pytest.raises(ValueError, match="N >= 2"):
        M.slow_fast_weights(torch.ones(3, 1))


def test_motion_magnitude_is_per_joint_l2():
    x = torch.zeros(1, 1, 2, 2, 1, 2)
    x[0, 0, 1] = torch.tensor([[[3.0, 0.0]], [[0.0, 4.0]]])
    assert torch.allclose(M.motion_magnitude(x), torch.tensor([[[0.0, 5.0]]]))
    with pytest.raises(ValueError, match=r"\(B, T, N, C, H, W\)"):
        M.motion_magnitude(torch.zeros(2, 3))


def test_streams_reweight_rows_of_zero_order():
    torch.manual_seed(0)
    zo = torch.randn(2, 5, 21, 2, 3, 3)
    streams, weights = M.multi_order_streams(zo)
    assert len(streams) == 5 and list(weights) == ["first_slow", "first_fast", "second_slow", "second_fast"]
    assert torch.equal(streams[0], zo)
    slow, _ = M.slow_fast_weights(M.motion_magnitude(M.first_order(zo)))
    assert torch.allclose(streams[1], slow[..., None, None, None] * zo)
    # the joint that moves least keeps its features in the slow stream
    i = M.motion_magnitude(M.first_order(zo))[0, 0].argmin()
    assert torch.allclose(streams[1][0, 0, i], zo[0, 0, i])
    only, w = M.multi_order_streams(zo, orders=("second",), modes=("fast",))
    assert len(only) == 2 and list(w) == ["second_fast"]
    assert len(M.multi_order_streams(zo, orders=())[0]) == 1
    with pytest.raises(ValueError, match="unknown orders"):
        M.multi_order_streams(zo, orders=("third",))


# ---- hand hierarchy -------------------------------------------------------------------------------
def test_level2_groups_partition_the_joints():
    members = sorted(j for g in M.LEVEL2_GROUPS for j in g)
    assert members == list(range(21)) and len(M.LEVEL2_GROUPS) == 6


def test_structure_pooling_equals_weighted_average_and_upsampling_inverts_constants():
    x = torch.randn(3, 21, 4)
    hand = M.structure_pool(x).mean(1)
    w = torch.zeros(21)
    for g in M.LEVEL2_GROUPS:
        w[list(g)] = 1 / (6 * len(g))
    assert torch.allclose(hand, torch.einsum("n,bnc->bc", w, x), atol=1e-6)
    c = torch.randn(3, 1, 4).expand(3, 21, 4)
    assert torch.allclose(M.node_upsample(M.structure_pool(c)), c)
    with pytest.raises(ValueError, match="21 nodes"):
        M.structure_pool(torch.zeros(2, 20, 3))


def _perm_within_hierarchy():
    """A joint permutation that maps the hierarchy onto itself: swap the index and middle fingers
    (with their palm bases) and reverse the joints inside the ring finger."""
    p = list(range(21))
    for a, b in ((5, 9), (6, 10), (7, 11), (8, 12), (14, 16)):
        p[a], p[b] = b, a
    return torch.tensor(p)


def test_relation_matrix_rows_sum_to_one_and_equivariant():
    torch.manual_seed(1)
    rel = M.RelationMatrix(2)
    x = torch.randn(3, 21, 2, 4, 4)
    a = rel.matrix(x)
    assert a.shape == (3, 21, 21) and torch.allclose(a.sum(-1), torch.ones(3, 21), atol=1e-6)
    p = torch.randperm(21)
    assert torch.allclose(rel.matrix(x[:, p]), a[:, p][:, :, p], atol=1e-6)


def test_multiscale_relation_is_permutation_consistent_with_the_hierarchy():
    torch.manual_seed(2)
    msr = M.MultiScaleRelation(2)
    for level in msr.levels:  # non-zero refinement, so every level acts
        torch.nn.init.normal_(level.w.weight)
    x = torch.randn(2, 21, 2, 2, 2)
    out, level3, mats = msr(x)
    p = _perm_within_hierarchy()
    out_p, level3_p, mats_p = msr(x[:, p])
    assert torch.allclose(out_p, out[:, p], atol=1e-5)
    assert torch.allclose(level3_p, level3, atol=1e-5)
    assert torch.allclose(mats_p["level1"], mats["level1"][:, p][:, :, p], atol=1e-6)
    q = torch.tensor([0, 1, 3, 2, 4, 5])  # level 2: index and middle swapped
    assert torch.allclose(mats_p["level2"], mats["level2"][:, q][:, :, q], atol=1e-6)
    # a permutation that breaks the hierarchy (thumb tip <-> pinky base) changes the result
    bad = torch.arange(21)
    bad[4], bad[17] = 17, 4
    out_b, _, _ = msr(x[:, bad])
    assert not torch.allclose(out_b, out[:, bad], atol=1e-3)


def test_relation_starts_as_identity_and_baseline_is_identity():
    x = torch.randn(2, 21, 2, 2, 2)
    out, level3, _ = M.MultiScaleRelation(2, relation=False)(x)
    assert torch.equal(out, x)
    assert torch.allclose(level3, M.structure_pool(x).mean(1))
    msr = M.MultiScaleRelation(2)  # W = 0 at the start: r_k = x_k, so out = x + up(pooled) + up(hand)
    out, _, _ = msr(x)
    pooled = M.structure_pool(x)
    assert torch.allclose(out, x + M.node_upsample(pooled + pooled.mean(1, keepdim=True)), atol=1e-6)


# ---- Eq. (5) and weak supervision -----------------------------------------------------------------
def _tiny_batch(b=4, t=3, hw=4):
    torch.manual_seed(3)
    return (torch.randn(b, t, 42, hw, hw), torch.rand(b, t, 21, hw, hw), torch.randn(b, t, 21),
            torch.randint(0, 9, (b,)))


def test_masking_drops_exactly_the_masked_losses():
    j, hm, d, y = _tiny_batch()
    net = M.CollaborativeNet(42, 4, 9, iterations=2, hidden=8)
    outs = net(j)
    pm = torch.tensor([True, False, True, False])
    gm = torch.tensor([False, True, True, True])
    full = M.collaborative_loss(outs, hm, d, y, pm, gm)
    keep = pm.nonzero()[:, 0]
    sub = [{k: v[keep] for k, v in o.items() if k in ("heatmaps", "depth")} for o in outs]
    ref = M.collaborative_loss(sub, hm[keep], d[keep])
    assert torch.allclose(full["L_2d"], ref["L_2d"]) and torch.allclose(full["L_3d"], ref["L_3d"])
    keep = gm.nonzero()[:, 0]
    ref_c = M.collaborative_loss([{"logits": o["logits"][keep]} for o in outs], label=y[keep])
    assert torch.allclose(full["L_c"], ref_c["L_c"])
    # gradients: the masked clips' pose outputs get none from the pose terms, the unlabelled clip's
    # logits none from the classification term
    h = outs[-1]["heatmaps"]
    g_h, = torch.autograd.grad(full["L_2d"], h, retain_graph=True)
    assert torch.all(g_h[~pm] == 0) and torch.any(g_h[pm] != 0)
    g_y, = torch.autograd.grad(full["L_c"], outs[-1]["logits"], retain_graph=True)
    assert torch.all(g_y[~gm] == 0) and torch.any(g_y[gm] != 0)


def test_loss_terms_hand_values():
    hm = torch.zeros(1, 2, 21, 2, 2)
    d = torch.zeros(1, 2, 21)
    out = {"heatmaps": hm + 0.5, "depth": d + 2.0, "logits": torch.zeros(1, 9)}
    t = M.collaborative_loss([out], hm, d, torch.tensor([3]), lambdas=(1.0, 0.5, 2.0))
    assert math.isclose(float(t["L_2d"]), 21 * 4 * 0.25, rel_tol=1e-6)  # Σ_n ‖H_n - Ĥ_n‖², mean over frames
    assert math.isclose(float(t["L_3d"]), 21 * 4.0, rel_tol=1e-6)
    assert math.isclose(float(t["L_c"]), math.log(9), rel_tol=1e-6)
    assert math.isclose(float(t["loss"]), 21.0 + 0.5 * 84 + 2 * math.log(9), rel_tol=1e-6)


def test_loss_errors():
    j, hm, d, y = _tiny_batch()
    outs = M.CollaborativeNet(42, 4, 9, iterations=1, hidden=8)(j)
    with pytest.raises(ValueError, match="heatmaps and depth"):
        M.collaborative_loss(outs, label=y)
    with pytest.raises(ValueError, match="do not match"):
        M.collaborative_loss(outs, hm[:, :2], d[:, :2], y)
    with pytest.raises(ValueError, match="label must be"):
        M.collaborative_loss(outs, hm, d, y[:2])
    with pytest.raises(ValueError, match="empty"):
        M.collaborative_loss([], hm, d, y)


# ---- networks: shapes and errors ------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["baseline", "full", "zero-order 3-itr", "pose-only", "gesture-only"])
def test_collaborative_net_shapes(variant):
    cfg = M.Config.fast().replace(hidden=8)
    net = M.build(variant, cfg, 42, 4)
    j, *_ = _tiny_batch()
    outs = net(j)
    assert len(outs) == M.VARIANTS[variant]["iterations"]
    for o in outs:
        if "pose" in net.tasks:
            assert o["heatmaps"].shape == (4, 3, 21, 4, 4) and o["depth"].shape == (4, 3, 21)
        if "gesture" in net.tasks:
            assert o["logits"].shape == (4, len(cfg.classes))
    if variant == "full":
        ex = outs[0]["extra"]
        assert ex["weights"]["first_slow"].shape == (4, 3, 21)
        assert ex["relations"]["level1"].shape == (4, 3, 21, 21) and ex["relations"]["level2"].shape == (4, 3, 6, 6)


def test_gesture_feedback_reaches_pose():
    """In two iterations the second pose sub-network reads G: the first gesture network's weights get a
    gradient from the pose loss of iteration 2 alone."""
    j, hm, d, y = _tiny_batch()
    net = M.CollaborativeNet(42, 4, 9, iterations=2, hidden=8)
    outs = net(j)
    l2 = (outs[1]["heatmaps"] - hm).square().sum()
    grads = torch.autograd.grad(l2, list(net.gesture[0].analysis.parameters()))
    assert any(g.abs().sum() > 0 for g in grads)


def test_network_errors():
    with pytest.raises(ValueError, match="iterations"):
        M.CollaborativeNet(42, 4, 9, iterations=0)
    with pytest.raises(ValueError, match="tasks"):
        M.CollaborativeNet(42, 4, 9, tasks=("depth",))
    with pytest.raises(ValueError, match="single-task"):
        M.CollaborativeNet(42, 4, 9, iterations=2, tasks=("pose",))
    with pytest.raises(ValueError, match="N·C channels"):
        M.CollaborativeNet(40, 4, 9)
    net = M.CollaborativeNet(42, 4, 9, iterations=1, hidden=8)
    with pytest.raises(ValueError, match=r"expected J \(B, T, 42, 4, 4\)"):
        net(torch.zeros(2, 3, 42, 8, 8))
    with pytest.raises(ValueError, match="unknown variant"):
        M.build("nope", M.Config.fast(), 42, 4)
    with pytest.raises(ValueError, match="RGB images"):
        M.Backbone()(torch.zeros(1, 1, 32, 32))


# ---- decoding and the evaluation helpers ----------------------------------------------------------
def test_decode_heatmaps_recovers_peaks():
    from cvtutor.data.hands.render import gaussian_heatmaps

    uv = torch.tensor([[[10.0, 18.0], [14.0, 6.0]]])  # image px in a 32 px image -> heatmap 8: (2, 4), (3, 1)
    h = gaussian_heatmaps(uv, 32, 8, 1.0)
    xy = M.decode_heatmaps(h)
    assert torch.allclose((xy + 0.5) * 4, uv, atol=1e-5)  # symmetric blobs at pixel centres: exact
    off = torch.tensor([[[11.0, 17.0]]])  # off-centre: within a quarter of a heatmap pixel
    assert ((M.decode_heatmaps(gaussian_heatmaps(off, 32, 8, 1.0)) + 0.5) * 4 - off).abs().max() < 1.0


def test_lift_3d_inverts_projection():
    from cvtutor.data.hands import intrinsics, project
    from cvtutor.data.hands.render import gaussian_heatmaps

    K = intrinsics(32, 60.0)
    xyz = torch.tensor([[0.0, 0.0, 0.5], [0.02, -0.01, 0.48]])[None]
    uv = project(xyz, K)
    # put the joints exactly at heatmap-pixel centres so decoding is exact
    uv = ((uv / 4).floor() + 0.5) * 4
    from cvtutor.data.hands import backproject
    xyz = backproject(uv, xyz[..., 2], K)
    h = gaussian_heatmaps(uv, 32, 8, 1.0)
    d = (xyz[..., 2] - xyz[..., :1, 2]) * 10
    out = M.lift_3d(h, d, xyz[:, 0, 2], K[None], 32)
    assert torch.allclose(out, xyz, atol=1e-6)


def test_paired_noise_and_label_mask():
    diff, se = M.paired_noise(np.array([1, 1, 0, 1.0]), np.array([1, 0, 0, 0.0]))
    assert math.isclose(diff, 0.5) and math.isclose(se, np.std([0, 1, 0, 1], ddof=1) / 2)
    with pytest.raises(ValueError, match="equal length"):
        M.paired_noise(np.ones(3), np.ones(4))
    m = M.label_mask(100, 0.15, 0)
    assert m.sum() == 15 and torch.equal(m, M.label_mask(100, 0.15, 0))
    assert not M.label_mask(10, 0.0, 0).any()  # ratio 0: the task's labels withheld (Fig. 4's same-net runs)
    with pytest.raises(ValueError, match="ratio"):
        M.label_mask(10, 1.5, 0)


def test_paper_claims_hold_on_paper_numbers():
    t1 = M.PAPER["table1"].values
    assert list(t1.values()) == sorted(t1.values())
    t4 = M.PAPER["table4"].values
    assert max(t4, key=t4.get) == "+ first & second slow-fast"
    assert math.isclose(t4["+ first & second slow-fast"] - t4["zero-order"], 4.35, abs_tol=1e-9)


def test_stream_pointwise_matches_einsum():
    """The matmul form of the per-stream 1×1×1 conv equals the einsum it replaces, gradients included."""
    torch.manual_seed(0)
    layer = M.StreamPointwise(3, 2, 5)
    torch.nn.init.normal_(layer.bias)
    x = torch.randn(3, 4, 21, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    layer = layer.double()
    ref = torch.einsum("sbnchw,soc->sbnohw", x, layer.weight) + layer.bias[:, None, None, :, None, None]
    out = layer(x)
    assert out.shape == (3, 4, 21, 5, 3, 3)
    assert torch.allclose(out, ref)
    g_ref = torch.autograd.grad(ref.square().sum(), (x, layer.weight))
    g_out = torch.autograd.grad(out.square().sum(), (x, layer.weight))
    assert all(torch.allclose(a, b) for a, b in zip(g_out, g_ref))


def test_experiment_variants_by_profile():
    fast, full = M.Config.fast(), M.Config.full()
    names = [v for v, pr, gr in M.experiment_variants(fast)]
    assert names == ["baseline", "full", "pose-only"]
    names_full = {v for v, pr, gr in M.experiment_variants(full)}
    assert {"+ multi-scale", "+ multi-scale + multi-order", "zero-order 2-itr", "zero-order 3-itr",
            "+ first & second fast", "gesture-only"} <= names_full
    assert set(fast.classes) < set(M.SEQUENCE_CLASSES) and full.classes == M.SEQUENCE_CLASSES


# ---- the cached hierarchy index (issue 14) equals the old per-call loops -------------------------
def _membership_loop(groups, n):
    m = torch.zeros(len(groups), n)
    for g, members in enumerate(groups):
        m[g, list(members)] = 1.0 / len(members)
    return m


def _upsample_loop(y, groups, dim=1):
    parent = torch.empty(sum(len(g) for g in groups), dtype=torch.long)
    for g, members in enumerate(groups):
        parent[list(members)] = g
    return y.index_select(dim, parent)


@pytest.mark.parametrize("groups", [M.LEVEL2_GROUPS, ((2, 0), (1,), (3, 5, 4))])
def test_vectorised_membership_and_upsample_equal_the_loops(groups):
    n = sum(len(g) for g in groups)
    assert torch.equal(M._membership(groups, n), _membership_loop(groups, n))
    y = torch.randn(2, 3, len(groups), 4)
    assert torch.equal(M.node_upsample(y, groups, dim=2), _upsample_loop(y, groups, dim=2))
    # the index lives in a cache: a second call reuses the same tensor (no host-to-device copy)
    assert M._group_index(groups, y.device)[0] is M._group_index(groups, y.device)[0]
    with pytest.raises(ValueError, match="partition"):
        M._membership(((0, 1), (1, 2)), 4)


def test_pose_output_reads_j():
    """P = 1x1(concat(J, H, D)) (Sect. 3.1): P changes with the J passed, even for the same input x."""
    torch.manual_seed(0)
    net = M.PoseSubNetwork(42).eval()
    x, j = torch.randn(2, 42, 4, 4), torch.randn(2, 42, 4, 4)
    h1, d1, p1 = net(x, j)
    h2, d2, p2 = net(x, 2 * j)
    assert torch.equal(h1, h2) and torch.equal(d1, d2) and not torch.allclose(p1, p2)
    assert net.to_p.in_channels == 42 + 2 * 21
    assert torch.equal(net(x)[2], net(x, x)[2])


# ---- the verdict machinery on fake runs of known numbers ------------------------------------------
def _fake_per_clip(keys, n=10):
    """Per-clip scores where the model named first in each key list is right on more clips."""
    rng = np.random.default_rng(0)
    out = {}
    for i, k in enumerate(keys):
        correct = np.zeros(n)
        correct[:i + 1] = 1.0
        out[k] = {"correct": correct, "clip_pck30": rng.uniform(size=n)}
    return out


def test_noise_table_gain_and_se_by_hand():
    cfg = M.Config.fast()
    a = {"correct": np.array([1, 1, 1, 0, 1.0]), "clip_pck30": np.array([0.5, 0.6, 0.7, 0.8, 0.9])}
    b = {"correct": np.array([1, 0, 0, 0, 1.0]), "clip_pck30": np.array([0.5, 0.7, 0.7, 0.6, 0.9])}
    t = M.noise_table({("full", 1.0, 1.0): a, ("baseline", 1.0, 1.0): b, ("pose-only", 1.0, 1.0): b}, cfg)
    row = t[(t.table == "Table 1") & (t["worse (paper)"] == "baseline")].iloc[0]
    d = np.array([0, 1, 1, 0, 0.0])  # gain 0.4, SE = std(d, ddof=1)/sqrt(5) = sqrt(0.3)/sqrt(5)
    assert math.isclose(row.gain, 40.0) and math.isclose(row.se, 100 * math.sqrt(0.3 / 5))
    assert bool(row.holds) and bool(row["inside noise"])  # 0.4 < 2 * 0.245
    row = t[t.table == "Table 2"].iloc[0]
    assert math.isclose(row.gain, 100 * 0.02, abs_tol=1e-9) and row.metric == "pck30"
    assert set(t.table) == {"Table 1", "Table 2"}  # comparisons without both runs are left out


def test_paper_tables_verdicts_from_known_numbers():
    cfg = M.Config.full()
    acc = {"baseline": 50.0, "+ multi-scale": 60.0, "+ multi-scale + multi-order": 55.0, "full": 70.0,
           "zero-order 2-itr": 65.0, "zero-order 3-itr": 66.0, "+ first-order slow-fast": 64.0,
           "+ second-order slow-fast": 67.0, "+ first & second slow": 68.0, "+ first & second fast": 71.0}
    rows = [{"variant": v, "pose_ratio": 1.0, "gesture_ratio": 1.0, "seed": s, "accuracy": a + s,
             "pck20": 10.0, "pck25": 20.0, "pck30": a / 2, "epe": 5.0} for v, a in acc.items() for s in (0, 1)]
    rows += [{"variant": "pose-only", "pose_ratio": 1.0, "gesture_ratio": 1.0, "seed": 0, "pck30": 1.0}]
    for r in cfg.weak_ratios:  # weak > same net > single-task on pose; weak < same net on gestures
        rows += [{"variant": "full", "pose_ratio": r, "gesture_ratio": 1.0, "seed": 0, "pck30": 30.0},
                 {"variant": "full", "pose_ratio": r, "gesture_ratio": 0.0, "seed": 0, "pck30": 20.0},
                 {"variant": "pose-only", "pose_ratio": r, "gesture_ratio": 1.0, "seed": 0, "pck30": 10.0},
                 {"variant": "full", "pose_ratio": 1.0, "gesture_ratio": r, "seed": 0, "accuracy": 40.0},
                 {"variant": "full", "pose_ratio": 0.0, "gesture_ratio": r, "seed": 0, "accuracy": 45.0},
                 {"variant": "gesture-only", "pose_ratio": 1.0, "gesture_ratio": r, "seed": 0, "accuracy": 35.0}]
    t = M.paper_tables(__import__("pandas").DataFrame(rows), cfg)
    t1 = t["table1"]
    assert math.isclose(t1.loc["baseline", "ours"], 50.5)  # mean over the two seeds
    assert not t1["holds"].all()  # + multi-order (55) < + multi-scale (60): the ranking breaks
    t3 = t["table3_acc"]
    assert math.isclose(t3.loc["2-itr", "ours"], 65.5) and math.isclose(t3.loc["1-itr", "ours"], 60.5)
    t4 = t["table4"]
    assert math.isclose(t4.loc["+ first & second slow-fast", "ours"], 70.5)
    assert math.isclose(t["table2_pose_only"].loc["pose-only", "PCK@30"], 1.0)
    f4 = t["fig4"]
    pose, gest = f4[f4.panel.str.startswith("pose")], f4[f4.panel.str.startswith("gesture")]
    assert len(pose) == len(gest) == len(cfg.weak_ratios)
    assert pose["holds (same net)"].all() and pose["holds (single-task)"].all()
    assert not gest["holds (same net)"].any() and gest["holds (single-task)"].all()
    assert "confound" in f4.attrs["ref"].lower() and "stills" in f4.attrs["ref"]


def test_run_seed_wires_scores_to_rows_and_noise(monkeypatch):
    """run_seed with the training replaced by fakes of known scores: every run of
    experiment_variants becomes one row with its own numbers, and the noise table follows them."""
    cfg = M.Config.smoke().replace(seeds=(0,))
    runs = M.experiment_variants(cfg)
    known = {k: 10.0 * i for i, k in enumerate(runs)}
    fake_data = {"label": torch.zeros(4, dtype=torch.long)}
    monkeypatch.setattr(M, "make_data", lambda c, s, d, p: (fake_data, fake_data, None,
                                                             __import__("pandas").DataFrame({"step": [0]})))
    monkeypatch.setattr(M, "train_variant", lambda v, tr, c, s, pr, gr, p: (
        (v, pr, gr), __import__("pandas").DataFrame({"step": [0], "loss": [1.0]})))
    monkeypatch.setattr(M, "predict", lambda model, data: {"key": model})

    def fake_scores(pred, data):
        a = known[pred["key"]]
        return {"correct": np.r_[np.ones(int(a // 10)), np.zeros(len(runs))][:len(runs)],
                "clip_pck30": np.full(len(runs), a / 100), "accuracy": a, "pck30": a, "pck20": a, "pck25": a,
                "epe": a, "curve": np.full(len(M.PCK_THRESHOLDS), a)}

    monkeypatch.setattr(M, "scores", fake_scores)
    out = M.run_seed(cfg, 0)
    assert len(out["runs"]) == len(runs) == len(set(runs))
    for _, r in out["runs"].iterrows():
        assert r.accuracy == known[(r.variant, r.pose_ratio, r.gesture_ratio)]
    assert len(out["curves"]) == len(runs) * len(M.PCK_THRESHOLDS)
    nz = out["noise"]
    row = nz[(nz.table == "Table 1") & (nz["worse (paper)"] == "baseline") & (nz["better (paper)"] == "full")].iloc[0]
    ia, ib = runs.index(("full", 1.0, 1.0)), runs.index(("baseline", 1.0, 1.0))
    assert math.isclose(row.gain, 100 * (min(ia, len(runs)) - min(ib, len(runs))) / len(runs))
    assert bool(row.holds) == (ia > ib)
    assert nz.table.str.contains("same net").any()  # Fig. 4's unconfounded rows are there


def test_smoke_runs_every_table_of_full():
    import time
    t0 = time.process_time()
    out = M.run(M.Config.smoke())
    cpu = time.process_time() - t0
    keys_full = {"runs", "curves", "history", "noise", "table1", "table3_acc", "table3_pck", "table4", "table2",
                 "table2_pose_only", "fig4", "findings"}
    assert keys_full <= set(out)
    # the findings a full result file carries for the scoreboard are the notebook's
    pd.testing.assert_frame_equal(out["findings"], M.findings(out["noise"]))
    assert set(out["runs"].seed) == {0, 1}
    assert len(out["runs"]) == 2 * len(M.experiment_variants(M.Config.smoke()))
    assert out["fig4"]["same net"].notna().all()
    assert cpu < 60, f"smoke run took {cpu:.0f} s CPU"


def test_findings_verdicts():
    import pandas as pd
    noise = pd.DataFrame([
        {"table": "T", "better (paper)": "a", "worse (paper)": "b", "metric": "accuracy", "gain": 5.0, "se": 1.0},
        {"table": "T", "better (paper)": "a", "worse (paper)": "b", "metric": "accuracy", "gain": 3.0, "se": 1.0},
        {"table": "T", "better (paper)": "c", "worse (paper)": "b", "metric": "pck30", "gain": -5.0, "se": 1.0},
        {"table": "T", "better (paper)": "d", "worse (paper)": "b", "metric": "accuracy", "gain": 1.0, "se": 1.0},
        {"table": "T", "better (paper)": "e", "worse (paper)": "b", "metric": "accuracy", "gain": 0.0, "se": 0.0}])
    f = M.findings(noise)
    assert list(f["holds"].astype(object).where(f["holds"].notna(), None)) == [True, False, None, None]
    assert f["detail"].iloc[0] == "+4.0 points, SE 1.0" and (f["kind"] == "paper claim").all()
    assert "PCK@30" in f.index[1]
