"""HMOR (E15): the equations against closed forms and hand cases, and the miniature's run."""
import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.spatial.transform import Rotation

from cvtutor.data import geometry as G
from cvtutor.metrics import pose
from cvtutor.papers import hmor as H

Z = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)


# ---- Eq. 4 and Eqs. 12, 14-17 ---------------------------------------------------------------
def test_back_projection_inverts_projection():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(5, 17, 3, generator=g, dtype=torch.float64) * 0.5
    X[..., 2] += 5.0
    K = G.pinhole(300.0, 280.0, 128.0, 120.0, dtype=torch.float64)
    uv = G.project(X, K)
    z_root = X[:, 0, 2]
    back = H.back_project(uv, X[..., 2] - z_root[:, None], z_root, K)
    assert torch.allclose(back, X, atol=1e-9)
    with pytest.raises(ValueError, match="z_rel"):
        H.back_project(uv, X[..., 2], z_root[:2], K)


def test_depth_normalisation_round_trips_and_scales_with_the_box():
    K = G.pinhole(300.0, 200.0, 0.0, 0.0, dtype=torch.float64)
    z = torch.tensor([2.0, 5.0, 9.0], dtype=torch.float64)
    area = torch.tensor([900.0, 400.0, 2500.0], dtype=torch.float64)
    zn = H.normalised_depth(z, K)
    assert torch.allclose(zn, z / math.sqrt(300.0 * 200.0))
    zeq = H.equivalent_depth(zn, area, 64.0 ** 2)
    assert torch.allclose(H.absolute_depth(zeq, area, 64.0 ** 2, K), z)
    s = 1.7  # the box's side scaled by s: its area by s², z^eq by s
    assert torch.allclose(H.equivalent_depth(zn, area * s * s, 64.0 ** 2), s * zeq)
    with pytest.raises(ValueError, match="areas"):
        H.equivalent_depth(zn, -area, 64.0 ** 2)
    with pytest.raises(ValueError, match="areas"):
        H.absolute_depth(zeq, area, 0.0, K)


def test_equivalent_depth_of_a_person_is_invariant_to_distance():
    """A person twice as far is half as big in the image: z^eq does not change (Eq. 14)."""
    K = G.intrinsics(256, 300.0, dtype=torch.float64)
    z = torch.tensor([3.0, 6.0], dtype=torch.float64)
    side = 300.0 * 1.7 / z  # a 1.7 m person
    zeq = H.equivalent_depth(H.normalised_depth(z, K), side * side, 64.0 ** 2)
    assert torch.allclose(zeq[0], zeq[1])


# ---- Eqs. 5 and 8 ---------------------------------------------------------------------------
def test_err_ins_is_zero_for_the_right_order_and_symmetric_under_a_swap():
    g1, g2 = torch.tensor([0.0, 0.0, 3.0]), torch.tensor([0.5, 0.0, 5.0])
    n = Z.float()
    right = H.err_ins(torch.tensor([0.0, 0.0, 4.0]), torch.tensor([0.0, 0.0, 4.5]), g1, g2, n)
    assert right == 0
    p1, p2 = torch.tensor([0.0, 0.0, 5.0]), torch.tensor([0.0, 0.0, 4.0])  # wrong by 1 m
    wrong = H.err_ins(p1, p2, g1, g2, n)
    assert torch.isclose(wrong, torch.log1p(torch.tensor(1.0)))
    assert torch.isclose(H.err_ins(p2, p1, g2, g1, n), wrong)  # the swap flips R and the gap
    worse = H.err_ins(torch.tensor([0.0, 0.0, 6.0]), p2, g1, g2, n)
    assert worse > wrong  # increasing with the violation
    shift = torch.tensor([0.3, -0.2, 0.0])  # orthogonal to n: nothing changes
    assert torch.isclose(H.err_ins(p1 + shift, p2, g1, g2, n), wrong)
    assert H.err_jt(p1, p2, g1, g1, n) == 0  # a tie: R = 0


def test_ordinal_relation_convention_and_errors():
    n = Z.float()
    a, b = torch.tensor([0.0, 0.0, 2.0]), torch.tensor([0.0, 0.0, 3.0])
    assert H.ordinal_relation(a, b, n) == 1 and H.ordinal_relation(b, a, n) == -1
    assert H.ordinal_relation(a, a + 0.01, n, tie=0.05) == 0
    with pytest.raises(ValueError, match="view direction"):
        H.ordinal_relation(a, b, torch.ones(2))
    with pytest.raises(ValueError, match="R"):
        H.depth_ordinal_error(a, b, torch.ones(3), n)


# ---- Eqs. 6-7 -------------------------------------------------------------------------------
def _vec(angle, length=1.0, z=0.0):
    return torch.tensor([length * math.cos(angle), length * math.sin(angle), z],
                        dtype=torch.float64)


def test_plane_projection_is_orthogonal_to_n_and_idempotent():
    g = torch.Generator().manual_seed(1)
    t = torch.randn(20, 3, generator=g, dtype=torch.float64)
    n = torch.nn.functional.normalize(torch.randn(20, 3, generator=g, dtype=torch.float64), dim=-1)
    tp = H.plane_projection(t, n)
    assert torch.allclose((tp * n).sum(-1), torch.zeros(20, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(H.plane_projection(tp, n), tp)


@pytest.mark.parametrize("a1,a2", [(0.3, 1.2), (2.5, -2.5), (-3.0, 3.0), (1.0, -0.5)])
def test_cross_product_is_the_sine_of_the_argument_gap(a1, a2):
    t1, t2 = _vec(a1, 2.0, 0.7), _vec(a2, 0.5, -0.3)  # the z parts are projected away
    cross = (torch.linalg.cross(t1, t2) * Z).sum()
    assert torch.isclose(cross, torch.tensor(2.0 * 0.5 * math.sin(a2 - a1), dtype=torch.float64))
    arg1, arg2 = H.principal_arg(t1, Z), H.principal_arg(t2, Z)
    assert math.isclose(float(arg1), a1) and math.isclose(float(arg2), a2)
    literal = H.part_relation(t1, t2, Z, literal=True)
    ours = H.part_relation(t1, t2, Z)
    if abs(a1 - a2) < math.pi:  # the two readings agree, and the truth has no error
        assert literal == ours
        assert H.err_part(t1, t2, literal, Z) == 0
    else:  # beyond π the paper's Arg ordering penalises the ground truth itself
        assert literal == -ours
        assert H.err_part(t1, t2, literal, Z) > 0
        assert H.err_part(t1, t2, ours, Z) == 0


def test_err_part_penalises_the_wrong_rotation():
    g1, g2 = _vec(1.0), _vec(0.2)  # Arg 1 > Arg 2
    R = H.part_relation(g1, g2, Z)
    assert R == 1
    assert H.err_part(_vec(0.9), _vec(0.1), R, Z) == 0
    bad = H.err_part(_vec(0.1), _vec(0.9), R, Z)
    assert torch.isclose(bad, torch.tensor(math.sin(0.8), dtype=torch.float64))
    with pytest.raises(ValueError, match="err_part"):
        H.err_part(g1, g2[:2], R, Z)


def test_view_basis_is_right_handed_and_the_image_axes_on_the_camera_axis():
    e1, e2 = H.view_basis(Z)
    assert torch.allclose(e1, torch.tensor([1.0, 0, 0], dtype=torch.float64))
    assert torch.allclose(e2, torch.tensor([0.0, 1, 0], dtype=torch.float64))
    n = H.sample_views(50, torch.Generator().manual_seed(3), dtype=torch.float64)
    e1, e2 = H.view_basis(n)
    assert torch.allclose(torch.linalg.cross(e1, e2, dim=-1), n, atol=1e-12)
    with pytest.raises(ValueError, match="parallel"):
        H.view_basis(torch.tensor([1.0, 0.0, 0.0]))


# ---- Eq. 10 ---------------------------------------------------------------------------------
def test_views_are_unit_with_uniform_height_on_the_hemisphere():
    n = H.sample_views(4000, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(n.norm(dim=-1), torch.ones(4000, dtype=torch.float64))
    assert stats.kstest(n[:, 2].numpy(), "uniform").pvalue > 0.01  # z ~ U[0, 1]
    assert torch.allclose(n.mean(0), torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64),
                          atol=0.03)
    lon = torch.atan2(n[:, 1], n[:, 0]).numpy()
    assert stats.kstest(lon, "uniform", args=(-math.pi, 2 * math.pi)).pvalue > 0.01
    with pytest.raises(ValueError, match="positive int"):
        H.sample_views(0)


# ---- Eq. 9 ----------------------------------------------------------------------------------
def _scene(B=3, P=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    gt = torch.randn(B, P, 17, 3, generator=g, dtype=torch.float64) * 0.3
    gt[..., 2] += torch.arange(P, dtype=torch.float64)[:, None] * 2.0 + 4.0
    return gt, torch.ones(B, P, dtype=torch.bool)


def test_hmor_loss_is_zero_at_the_truth_and_positive_for_a_swapped_crowd():
    gt, valid = _scene()
    n = Z.expand(3, 3)
    at_truth = H.hmor_loss(gt, gt, valid, n)
    assert set(at_truth) == {"ins", "part", "jt"}
    assert all(float(v) == 0 for v in at_truth.values())
    swapped = gt.flip(1)
    out = H.hmor_loss(swapped, gt, valid, n)
    assert out["ins"] > 0 and out["jt"] > 0
    # the instance level by hand: mean over the 3 pairs of log(1 + gap) for each violated pair
    p, g = swapped.mean(2), gt.mean(2)
    want = []
    for i, j in ((0, 1), (0, 2), (1, 2)):
        d = p[:, i, 2] - p[:, j, 2]
        r = -torch.sign(g[:, i, 2] - g[:, j, 2])
        want.append(torch.log1p(torch.relu(r * d)))
    assert torch.isclose(out["ins"], torch.stack(want).mean())


def test_hmor_loss_ignores_absent_people_and_has_gradients():
    gt, valid = _scene()
    valid[:, 2] = False
    pred = gt.clone()
    pred[:, 2] = pred[:, 2].flip(-1) - 10.0  # anything for the absent person
    out = H.hmor_loss(pred, gt, valid, Z.expand(3, 3))
    assert all(float(v) == 0 for v in out.values())
    pred = gt.flip(1).clone().requires_grad_(True)
    loss = sum(H.hmor_loss(pred, gt, torch.ones(3, 3, dtype=torch.bool), Z.expand(3, 3)).values())
    loss.backward()
    assert pred.grad.abs().sum() > 0 and torch.isfinite(pred.grad).all()
    with pytest.raises(ValueError, match="levels"):
        H.hmor_loss(gt, gt, valid, Z.expand(3, 3), levels=("pose",))
    with pytest.raises(ValueError, match="valid"):
        H.hmor_loss(gt, gt, valid[:, :2], Z.expand(3, 3))


def test_err_functions_gradcheck():
    g = torch.Generator().manual_seed(2)
    p1 = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    p2 = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    R = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    n = Z.expand(6, 3)
    assert torch.autograd.gradcheck(lambda a, b: H.depth_ordinal_error(a, b, R, n) + 1e-3,
                                    (p1, p2))
    assert torch.autograd.gradcheck(lambda a, b: H.err_part(a, b, R, n), (p1, p2))


# ---- metrics of the chapter -----------------------------------------------------------------
def test_pa_mpjpe_is_zero_for_a_similarity_copy():
    g = np.random.default_rng(0)
    X = g.normal(size=(4, 17, 3))
    R = Rotation.random(4, random_state=1).as_matrix()
    Y = 1.7 * np.einsum("nij,nkj->nki", R, X) + g.normal(size=(4, 1, 3))
    assert pose.pa_mpjpe(Y, X) < 1e-8
    assert pose.mpjpe(Y, X) > 0.1


# ---- the miniature --------------------------------------------------------------------------
def test_scenes_are_seeded_and_consistent():
    cfg = H.Config.smoke()
    a, b = H.make_scenes(cfg, 8, "train", 0), H.make_scenes(cfg, 8, "train", 0)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["joints"], H.make_scenes(cfg, 8, "test", 0)["joints"])
    assert torch.allclose(G.project(a["joints"], a["K"]), a["uv"], atol=1e-3)
    counts = a["valid"].sum(1)
    assert (counts >= cfg.min_people).all() and (counts <= cfg.max_people).all()
    assert (a["joints"][..., 2] > 0).all()


def test_predict_recovers_the_truth_from_true_outputs():
    """Feeding Eq. 4/17 the true z^rel and z^eq gives back the camera-space joints."""
    cfg = H.Config.smoke().replace(keypoint_sigma=0.0)
    sc = H.make_scenes(cfg, 4, "train", 0)
    z_eq = H.target_equivalent_depth(sc, cfg)
    z_root = H.absolute_depth(z_eq, H.box_area(sc["boxes"]), cfg.roi_area, sc["K"])
    z_rel = sc["joints"][..., 2] - sc["joints"][..., :1, 2]
    X = H.back_project(sc["uv"], z_rel, z_root, sc["K"])
    assert torch.allclose(X, sc["joints"], atol=1e-4)


def test_train_variant_rejects_an_unknown_setting():
    cfg = H.Config.smoke()
    sc = H.make_scenes(cfg, 16, "train", 0)
    with pytest.raises(ValueError, match="setting"):
        H.train_variant(cfg, sc, "+ everything", 0, 0.01)
    with pytest.raises(ValueError, match="ladder"):
        H.run(cfg.replace(ladder=("+ jt",)))


def test_paper_numbers():
    t4 = H.PAPER["table4"]
    assert t4["ABS-MPJPE"].values["baseline"] == 169.3
    assert t4["MPJPE"].values["+ all + sample views (Final)"] == 87.7
    assert H.PAPER["table1"].values["HMOR PCK_abs"] == 43.8
    assert set(H.LADDER) <= set(t4["MPJPE"].values)


def test_smoke_run_returns_every_key_of_full():
    cfg = H.Config.smoke()
    assert cfg.ladder == H.Config.full().ladder and len(cfg.seeds) > 1
    out = H.run(cfg)
    keys = {"table4_seeds", "table4", "compare_table4_mpjpe", "compare_table4_pa_mpjpe",
            "compare_table4_abs_mpjpe", "compare_table1", "history", "findings"}
    assert keys == set(out)
    assert set(out["table4_seeds"]["seed"]) == set(cfg.seeds)
    assert "w/o refine depth" in set(out["table4"]["setting"])
    assert "MPJPE ± std" in out["table4"].columns
    assert out["findings"]["kind"].isin(["paper claim", "sanity check", "construction"]).all()


def test_cli_runs_the_smoke_profile(tmp_path, monkeypatch):
    from cvtutor import cli, report, runtime

    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)
    monkeypatch.setenv("CVTUTOR_DEVICE", "cpu")
    try:
        assert cli.main(["run", "hmor", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    finally:
        runtime.set_deterministic(False)
    results, meta = report.load_results(tmp_path / "hmor-smoke-seed0.json")
    assert meta["profile"] == "smoke" and "findings" in results


def test_tie_margin_drops_near_pairs():
    n = Z.float()
    g1, g2 = torch.tensor([0.0, 0.0, 4.0]), torch.tensor([0.0, 0.0, 4.2])
    p1, p2 = torch.tensor([0.0, 0.0, 5.0]), torch.tensor([0.0, 0.0, 4.0])  # wrong order
    assert H.err_ins(p1, p2, g1, g2, n) > 0
    assert H.err_ins(p1, p2, g1, g2, n, tie=0.3) == 0
    gt, valid = _scene()
    out = H.hmor_loss(gt.flip(1), gt, valid, Z.expand(3, 3), tie=10.0)
    assert float(out["ins"]) == 0 and float(out["jt"]) == 0
