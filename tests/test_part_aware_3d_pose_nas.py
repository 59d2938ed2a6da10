"""Part-aware 3-D pose NAS (E42): Eqs. (1)-(6), the fusion cell, integral regression, the shuffle,
the metrics, the stick-figure world, the readers and the smoke profile."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.io import savemat
from scipy.linalg import orthogonal_procrustes

from cvtutor.data.bodies import load_h36m_npz, load_mupots_annot
from cvtutor.metrics import pose
from cvtutor.papers import part_aware_3d_pose_nas as P


# ---- Eq. 6 and the macro-architecture ----------------------------------------------------------
def test_eq6_reduction_positions():
    assert P.reduction_positions(10, 5, 3) == [2, 3, 4, 5, 6]
    assert P.reduction_positions(15, 5, 3) == [3, 5, 7, 9, 11]  # floor(12/6) = 2
    assert P.reduction_positions(20, 5, 3) == [3, 5, 7, 9, 11]  # floor(17/6) = 2
    assert P.cell_types(10, 5, 3) == ["normal"] + ["reduction"] * 5 + ["normal"] + ["fusion"] * 3
    with pytest.raises(ValueError, match="N_r \\+ N_f"):
        P.reduction_positions(4, 3, 3)


def test_paper_shapes_256_to_8_to_64():
    """Fig. 3: 5 reductions take 256 → 8 (after the stride-2 stem: 128 → 4 here, as our stem halves
    first), and 3 fusions upsample ×8; a scaled net follows the same schedule."""
    net = P.PartAwareNet(8, 10, 5, 3, 1, 2, depth=8, image_size=64,
                         primitives=("identity", "avg_pool_3x3"))
    sizes = [c.size for c in net.cells]
    assert sizes == [32, 16, 8, 4, 2, 1, 1, 2, 4, 8]
    out = net(torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, 17, 8, 8, 8)


# ---- Eq. 2 and the operations --------------------------------------------------------------------
def test_mixed_op_with_one_hot_alpha_is_the_chosen_op():
    torch.manual_seed(0)
    m = P.MixedOp(8, P.OPS_FAST).eval()
    x = torch.randn(2, 8, 6, 6)
    for k, name in enumerate(P.OPS_FAST):
        w = torch.softmax(torch.full((len(P.OPS_FAST),), -1e9).index_fill(0, torch.tensor([k]), 0),
                          -1)
        torch.testing.assert_close(m(x, w), m.ops[k](x))
    assert m.ops[0](x).abs().sum() == 0 and m.ops[0](x).shape == x.shape
    assert sum(p.numel() for p in m.parameters()) == sum(
        sum(p.numel() for p in op.parameters()) for op in m.ops)
    with pytest.raises(ValueError, match="weights"):
        m(x, torch.ones(3))
    with pytest.raises(ValueError, match="unknown operation"):
        P.make_op("conv_7x7", 8)


def test_cell_eq1_is_a_sum_over_predecessors():
    """A search cell with all α on identity: node j = Σ_{i<j} x^(i), so node 0 = s0' + s1', node 1
    = 2(s0' + s1'), node 2 = 4(s0' + s1')."""
    ops = ("zero", "identity")
    cell = P.Cell("normal", 8, 8, 8, 4, 3, ops).eval()
    s0, s1 = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)
    w = torch.tensor([[0.0, 1.0]] * P.n_edges(3))
    out = cell(s0, s1, w)
    base = cell.pre0(s0) + cell.pre1(s1)
    torch.testing.assert_close(out, torch.cat([base, 2 * base, 4 * base], 1))


def test_fusion_cell_upsamples_and_outputs_part_groups():
    cell = P.Cell("fusion", 16, 16, 8, 8, 2, P.OPS_FAST, part_channels=(9 * 4, 8 * 4))
    out = cell(torch.randn(2, 16, 4, 4), torch.randn(2, 16, 4, 4),
               torch.softmax(torch.zeros(P.n_edges(2), 5), -1))
    assert out.shape == (2, 17 * 4, 8, 8)


# ---- discretisation ----------------------------------------------------------------------------
def test_genotype_from_a_hand_alpha():
    ops = P.OPS_FAST  # zero, identity, avg, sep, dil
    a = torch.zeros(P.n_edges(2), 5)
    a[0, 3] = 5.0  # node 0 from input 0: sep
    a[1, 0] = 9.0  # node 0 from input 1: zero strongest, then identity
    a[1, 1] = 2.0
    a[2, 4] = 1.0  # node 1 from input 0: dil (weak)
    a[3, 2] = 4.0  # node 1 from input 1: avg
    a[4, 3] = 6.0  # node 1 from node 0: sep (strongest)
    g = P.derive_genotype(a, 2, ops)
    assert g == [[("sep_conv_3x3", 0), ("identity", 1)], [("avg_pool_3x3", 1), ("sep_conv_3x3", 2)]]
    with pytest.raises(ValueError, match="alpha must be"):
        P.derive_genotype(torch.zeros(4, 5), 2, ops)


def test_part_groups_and_torso_first():
    g2 = P.part_groups(2)
    assert [len(g) for g in g2] == [9, 8] and sorted(sum(g2, ())) == list(range(17))
    assert {P.PART_NAMES[j] for j in g2[1]} >= {"l_wrist", "r_wrist", "l_ankle", "r_ankle"}
    assert P.part_groups(1) == [P.TORSO_FIRST]
    with pytest.raises(ValueError, match="n_groups"):
        P.part_groups(0)


# ---- the shuffle --------------------------------------------------------------------------------
def test_channel_shuffle_hand_case_and_inverse():
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert P.channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    y = P.channel_shuffle(P.channel_shuffle(x, 2), 3)  # (2, 3) then (3, 2): the inverse
    torch.testing.assert_close(y, x)
    with pytest.raises(ValueError, match="divisible"):
        P.channel_shuffle(torch.zeros(1, 17, 1, 1), 2)
    perm = P.shuffled_order(1)
    assert sorted(perm) == list(range(17)) and perm != P.TORSO_FIRST
    inv = P.invert(perm)
    assert [perm[i] for i in inv] == list(range(17))


def test_shuffled_order_routes_parts_to_other_nodes():
    net = P.PartAwareNet(8, 6, 2, 1, 2, 2, depth=8, image_size=32,
                         primitives=("identity", "avg_pool_3x3")).eval()
    x = torch.randn(1, 3, 32, 32)
    a, b = net(x), net(x, P.shuffled_order(1))
    # the same channels, another assignment: b's part order[k] is a's part of channel k
    perm = P.shuffled_order(1)
    ch = torch.cat([a[:, [j]] for j in net.order], 1)  # channel order of a
    torch.testing.assert_close(b[:, list(perm)], ch)


# ---- integral regression ------------------------------------------------------------------------
def test_soft_argmax_on_a_delta_and_a_symmetric_gaussian():
    D = 8
    h = torch.full((1, 1, D, D, D), -1e4, dtype=torch.float64)
    h[0, 0, 5, 2, 6] = 0.0  # z, y, x
    got = P.volumetric_soft_argmax(h, extent=1.0)[0, 0]
    centre = lambda k: -1 + (k + 0.5) * 2 / D
    torch.testing.assert_close(got, torch.tensor([centre(6), centre(2), centre(5)],
                                                 dtype=torch.float64))
    g = torch.arange(D, dtype=torch.float64)
    zz, yy, xx = torch.meshgrid(g, g, g, indexing="ij")
    blob = -((xx - 3) ** 2 + (yy - 4) ** 2 + (zz - 3.5) ** 2) / 2.0  # log of a Gaussian
    got = P.volumetric_soft_argmax(blob[None, None], 1.0)[0, 0]
    # symmetric about (3, 4, 3.5) away from the borders → the centre (tolerance: border mass)
    torch.testing.assert_close(got, torch.tensor([centre(3), centre(4), centre(3.5)],
                                                 dtype=torch.float64), atol=2e-2, rtol=0)
    with pytest.raises(ValueError, match="cubic"):
        P.volumetric_soft_argmax(torch.zeros(1, 1, 4, 4, 5))


def test_soft_argmax_gradcheck_and_l1_loss():
    h = torch.randn(1, 2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: P.volumetric_soft_argmax(v, 1.0), (h,))
    t = torch.zeros(1, 2, 3, dtype=torch.float64)
    loss = P.integral_l1_loss(h, t)
    torch.testing.assert_close(loss, P.volumetric_soft_argmax(h).abs().mean())
    with pytest.raises(ValueError, match="target"):
        P.integral_l1_loss(h, torch.zeros(1, 3, 3))


# ---- Eq. 5 -------------------------------------------------------------------------------------
def _toy():
    w = [torch.tensor([0.3, -0.7], dtype=torch.float64, requires_grad=True)]
    a = [torch.tensor([0.5, 1.2], dtype=torch.float64, requires_grad=True)]
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)

    def ltrain():
        return ((w[0] * a[0]).sin() * x).sum() + (w[0] ** 2 * a[0].exp()).sum()

    def lval():
        return ((w[0] + a[0]) ** 3).sum() * 0.1 + (w[0] * x).cos().sum()
    return w, a, ltrain, lval


def test_finite_difference_hvp_matches_double_backward():
    w, a, ltrain, _ = _toy()
    v = [torch.tensor([0.4, -1.1], dtype=torch.float64)]
    fd = P.hessian_vector_product(ltrain, w, a, v, r=1e-4)[0]
    gw = torch.autograd.grad(ltrain(), w, create_graph=True)[0]
    exact = torch.autograd.grad((gw * v[0]).sum(), a)[0]
    torch.testing.assert_close(fd, exact, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(w[0].detach(), torch.tensor([0.3, -0.7], dtype=torch.float64))


def test_unrolled_gradient_matches_autograd_through_the_step():
    w, a, ltrain, lval = _toy()
    xi = 0.05
    got = P.unrolled_alpha_grad(ltrain, lval, w, a, xi)[0]
    # exact: differentiate L_val(w − ξ∇_w L_train(w, α), α) wrt α through the step
    gw = torch.autograd.grad(ltrain(), w, create_graph=True)[0]
    w1 = w[0] - xi * gw
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    lv = ((w1 + a[0]) ** 3).sum() * 0.1 + (w1 * x).cos().sum()
    exact = torch.autograd.grad(lv, a)[0]
    torch.testing.assert_close(got, exact, rtol=1e-4, atol=1e-6)
    first = P.unrolled_alpha_grad(ltrain, lval, w, a, 0.0)[0]
    torch.testing.assert_close(first, torch.autograd.grad(lval(), a)[0])
    assert not torch.allclose(first, got)


# ---- metrics ------------------------------------------------------------------------------------
def test_pa_mpjpe_zero_for_a_similarity_copy_and_procrustes_rotation():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(3, 17, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    pred = 1.7 * gt @ q.T + np.array([0.3, -2.0, 5.0])
    assert pose.pa_mpjpe(pred, gt) < 1e-6
    assert pose.mpjpe(gt + 3.0, gt) < 1e-9  # a translated copy after root alignment
    # our similarity's rotation is scipy's orthogonal Procrustes on the centred points
    a, b = pred[0] - pred[0].mean(0), gt[0] - gt[0].mean(0)
    R, _ = orthogonal_procrustes(a, b)
    np.testing.assert_allclose(a @ R / 1.7, b, atol=1e-8)
    noisy = gt + rng.normal(scale=0.1, size=gt.shape)
    assert pose.pck3d(noisy, gt, 0.0) == pytest.approx(1 / 17)  # only the aligned root
    assert pose.pck3d(noisy, gt, np.inf) == 1.0


def test_per_part_mpjpe_hand_case():
    gt = np.zeros((2, 17, 3))
    pred = gt.copy()
    pred[:, 13, 0] = 0.1  # the left wrist 100 mm off
    e = P.per_part_mpjpe(pred, gt)
    assert e[13] == pytest.approx(100.0) and np.delete(e, 13).max() == 0


# ---- the world ----------------------------------------------------------------------------------
def test_stick_figures_splits_are_disjoint_and_seeded():
    a = P.stick_figures(16, split="train", seed=0)
    b = P.stick_figures(16, split="train", seed=0)
    t = P.stick_figures(16, split="test", seed=0)
    torch.testing.assert_close(a["image"], b["image"])
    assert a["image"].shape == (16, 3, 32, 32) and a["joints"].shape == (16, 17, 3)
    assert not set(a["subject"].tolist()) & set(t["subject"].tolist())
    assert a["joints"][:, 0].abs().max() == 0  # root-relative
    assert a["joints"].abs().max() < 1.0  # inside the ±1 m volume
    with pytest.raises(ValueError, match="split"):
        P.stick_figures(4, split="S9")


def test_limb_ends_move_more_than_the_torso():
    d = P.stick_figures(400, split="train", seed=1)["joints"]
    spread = (d - d.mean(0)).norm(dim=-1).mean(0)
    names = P.PART_NAMES
    assert spread[names.index("l_wrist")] > 2 * spread[names.index("torso")]
    assert spread[names.index("r_ankle")] > 2 * spread[names.index("r_hip")]


def test_render_sticks_side_channels_and_bad_input():
    d = P.stick_figures(2, split="val", seed=0)
    assert d["image"].shape[1] == 3
    with pytest.raises(ValueError, match="uv"):
        P.render_sticks(torch.zeros(1, 17, 2), torch.zeros(1, 17), 16)


def test_net_rejects_mismatched_volume():
    with pytest.raises(ValueError, match="volume depth"):
        P.PartAwareNet(8, 6, 2, 1, 2, 2, depth=16, image_size=32)
    with pytest.raises(ValueError, match="head"):
        P.PartAwareNet(8, 6, 2, 1, 2, 2, depth=8, image_size=32, head="mlp")


# ---- readers ------------------------------------------------------------------------------------
def test_moon_json_reader(tmp_path):
    joints = np.arange(2 * 17 * 3, dtype=float).reshape(2, 17, 3)
    data = {"2": {"1": {"1": joints[1].tolist(), "0": joints[0].tolist()}}}
    path = tmp_path / "Human36M_subject9_joint_3d.json"
    path.write_text(json.dumps(data))
    out = P.load_h36m_joint_json(path)
    np.testing.assert_array_equal(out[(2, 1)], joints)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"2": {"1": {"0": [[0, 0, 0]] * 16}}}))
    with pytest.raises(ValueError, match="17×3"):
        P.load_h36m_joint_json(bad)
    with pytest.raises(FileNotFoundError, match="3DMPPE"):
        P.load_h36m_joint_json(tmp_path / "missing.json")


def test_videopose3d_npz_reader(tmp_path):
    pos = np.random.default_rng(0).normal(size=(2, 32, 3))
    arr = np.empty((), dtype=object)
    arr[()] = {"S9": {"Walking": pos}}
    path = tmp_path / "data_3d_h36m.npz"
    np.savez(path, positions_3d=arr)
    out = load_h36m_npz(path)
    assert out["S9"]["Walking"].shape == (2, 17, 3)
    np.testing.assert_array_equal(out["S9"]["Walking"][:, 0], pos[:, 0])


def test_mupots_annot_reader(tmp_path):
    rng = np.random.default_rng(0)
    ann = np.empty((1, 1), dtype=object)
    ann[0, 0] = {"annot2": rng.normal(size=(2, 17)), "annot3": rng.normal(size=(3, 17)),
                 "univ_annot3": rng.normal(size=(3, 17)), "isValidFrame": np.array([[1]])}
    path = tmp_path / "annot.mat"
    savemat(path, {"annotations": ann})
    out = load_mupots_annot(path)
    assert out["xyz"].shape == (1, 1, 17, 3) and out["valid"].all()


# ---- the profiles ------------------------------------------------------------------------------
def test_smoke_profile_runs_every_full_path():
    full, smoke = P.Config.full(), P.Config.smoke()
    assert smoke.primitives == full.primitives and smoke.xi > 0 and len(smoke.seeds) >= 2
    assert len(smoke.fusion_nodes) >= 2 and len(smoke.shuffles) >= 2
    res = P.run(smoke)
    assert set(res) >= {"results", "summary", "parts", "history", "genotype", "findings",
                        "compare_table1", "compare_table2", "compare_table3"}
    assert set(res["results"]["seed"]) == set(smoke.seeds)
    assert set(res["results"]["model"]) >= {"N_i=1", "N_i=2", "original", "shuffled 1", "WS",
                                            "BS", "ResNet"}
    assert res["findings"].loc["the pelvis (root) error is 0 after root alignment (Table 2)",
                               "holds"]


def test_cli_smoke(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "cvtutor", "run", "part_aware_3d_pose_nas", "--profile", "smoke",
         "--out", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]


def test_architecture_weights_do_not_depend_on_the_hash_seed():
    """α is initialised in the order the cell kinds first appear; drawn in a set's order it would
    change with PYTHONHASHSEED, and with it every number between processes."""
    import os
    code = ("import torch; from cvtutor.papers import part_aware_3d_pose_nas as P; "
            "torch.manual_seed(0); n = P.PartAwareNet(8, 6, 2, 1, 2, 2, depth=8, image_size=32); "
            "print([round(float(a[0, 0]) * 1e6, 3) for a in n.alphas.values()])")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": h}).stdout for h in ("1", "2", "3")}
    assert len(outs) == 1, outs
