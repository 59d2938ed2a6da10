"""PointMixup (E20): the EMD assignment, OA interpolation and its three properties against
closed forms, hand cases and independent solvers (POT, SciPy); the baselines; the manifold mix;
the readers the chapter adds; the smoke run."""

import math

import numpy as np
import ot
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import wasserstein_distance

from cvtutor.data.shapes3d import meshes as M
from cvtutor.data.shapes3d import readers as R
from cvtutor.data.shapes3d import transforms as T
from cvtutor.nn.pointnets import PointNet
from cvtutor.papers import pointmixup as P


def _pair(B=4, N=24, D=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, D, generator=g, dtype=torch.float64)
    y = torch.randn(B, N, D, generator=g, dtype=torch.float64) + 0.5
    return x, y


def _sorted_rows(a: torch.Tensor) -> np.ndarray:
    a = a.detach().numpy()
    return a[np.lexsort(a.T[::-1])]


# ---------------------------------------------------------------------------------------------
# Eqs. (3)-(4): the assignment and the EMD
# ---------------------------------------------------------------------------------------------
def test_hand_case_two_points_in_1d():
    x = torch.tensor([[[0.0], [1.0]]], dtype=torch.float64)
    y = torch.tensor([[[11.0], [10.0]]], dtype=torch.float64)
    a, d = P.optimal_assignment(x, y)
    assert a.index.tolist() == [[1, 0]]  # 0 -> 10, 1 -> 11
    assert float(d) == pytest.approx(10.0)
    u = P.oa_interpolate(x, y, 0.5, a)
    assert u[0, :, 0].tolist() == [5.0, 6.0]


def test_emd_against_pot_and_scipy():
    x, y = _pair()
    ours = P.emd(x, y)
    for b in range(len(x)):
        M_ = ot.dist(x[b].numpy(), y[b].numpy(), metric="euclidean")
        w = np.full(x.shape[1], 1 / x.shape[1])
        assert float(ours[b]) == pytest.approx(ot.emd2(w, w, M_), abs=1e-9)
    # in 1-D the EMD is the Wasserstein-1 distance of the two empirical measures
    x1, y1 = _pair(B=1, N=31, D=1, seed=3)
    assert float(P.emd(x1, y1)[0]) == pytest.approx(
        wasserstein_distance(x1.ravel(), y1.ravel()), abs=1e-9
    )


def test_assignment_is_a_bijection_with_the_optimal_cost():
    x, y = _pair(B=3, N=17)
    a, d = P.optimal_assignment(x, y)
    for b in range(3):
        assert sorted(a.index[b].tolist()) == list(range(17))
        c = torch.cdist(x[b], y[b]).numpy()
        r, k = linear_sum_assignment(c)
        assert float(d[b]) == pytest.approx(c[r, k].mean(), abs=1e-12)
    assert torch.allclose(P.assignment_cost(x, y, a), d)


# ---------------------------------------------------------------------------------------------
# Eqs. (5)-(7) and Properties 1-3
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lam", [0.1, 0.37, 0.5, 0.9])
def test_property1_shortest_path_and_ra_violates_it(lam):
    x, y = _pair(B=6, N=20, seed=1)
    a, d12 = P.optimal_assignment(x, y)
    s = P.oa_interpolate(x, y, lam, a)
    assert torch.allclose(P.emd(x, s) + P.emd(s, y), d12, atol=1e-6)
    # and each part is exactly its share of the path
    assert torch.allclose(P.emd(x, s), lam * d12, atol=1e-6)
    ra = P.random_assignment(6, 20, torch.Generator().manual_seed(0))
    s_ra = P.oa_interpolate(x, y, lam, ra)
    assert bool((P.emd(x, s_ra) + P.emd(s_ra, y) > d12 + 1e-6).all())


def test_property2_identity_is_optimal_between_interpolants():
    x, y = _pair(B=5, N=22, seed=2)
    a, _ = P.optimal_assignment(x, y)
    s1, s2 = P.oa_interpolate(x, y, 0.2, a), P.oa_interpolate(x, y, 0.7, a)
    ident = P.Assignment(index=torch.arange(22).expand(5, -1))
    assert torch.allclose(P.assignment_cost(s1, s2, ident), P.emd(s1, s2), atol=1e-9)


def test_property3_linearity():
    x, y = _pair(B=4, N=19, seed=4)
    a, d12 = P.optimal_assignment(x, y)
    for l1, l2 in ((0.0, 0.3), (0.25, 0.75), (0.6, 1.0)):
        d = P.emd(P.oa_interpolate(x, y, l1, a), P.oa_interpolate(x, y, l2, a))
        assert torch.allclose(d, (l2 - l1) * d12, atol=1e-6)


def test_endpoints_permutation_invariance_and_per_cloud_lambda():
    x, y = _pair(B=2, N=15, seed=5)
    a, _ = P.optimal_assignment(x, y)
    assert torch.equal(P.oa_interpolate(x, y, 0.0, a), x)
    np.testing.assert_allclose(_sorted_rows(P.oa_interpolate(x, y, 1.0, a)[0]), _sorted_rows(y[0]))
    # shuffling S2 leaves the interpolant unchanged as a set
    shuffled = y[:, torch.randperm(15, generator=torch.Generator().manual_seed(1))]
    a2, _ = P.optimal_assignment(x, shuffled)
    np.testing.assert_allclose(
        _sorted_rows(P.oa_interpolate(x, shuffled, 0.4, a2)[1]),
        _sorted_rows(P.oa_interpolate(x, y, 0.4, a)[1]),
        atol=1e-12,
    )
    lam = torch.tensor([0.0, 1.0], dtype=torch.float64)
    u = P.oa_interpolate(x, y, lam, a)
    assert torch.equal(u[0], x[0]) and torch.allclose(u[1], a.partner(y)[1])


def test_interpolation_gradient():
    x, y = _pair(B=2, N=6)
    x.requires_grad_(True)
    a, _ = P.optimal_assignment(x.detach(), y)
    P.oa_interpolate(x, y, 0.3, a).sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 0.7))


def test_sinkhorn_partner_tends_to_the_exact_one():
    # S2 = a shuffled, translated copy of S1: by the triangle inequality the optimum pairs each
    # point with its own copy (cost N |t|), and generically no other bijection comes close
    x, _ = _pair(B=2, N=16, seed=6)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    y = x[:, perm] + torch.tensor([0.3, 0.0, 0.0], dtype=torch.float64)
    exact, d = P.optimal_assignment(x, y)
    assert torch.allclose(d, torch.full((2,), 0.3, dtype=torch.float64))
    assert torch.equal(exact.index[0], perm.argsort())
    errs = [
        float((P.sinkhorn_assignment(x, y, eps, 3000).partner(y) - exact.partner(y)).abs().max())
        for eps in (0.2, 0.01, 0.001)
    ]
    assert errs[0] > 0.05 > errs[1] > errs[2] and errs[2] < 1e-3
    plan = P.sinkhorn_assignment(x, y, 0.01, 200).plan
    assert torch.allclose(plan.sum(2), torch.ones(2, 16, dtype=plan.dtype), atol=1e-5)
    assert torch.allclose(plan.sum(1), torch.ones(2, 16, dtype=plan.dtype), atol=1e-2)


# ---------------------------------------------------------------------------------------------
# baselines, labels, loss, alignment
# ---------------------------------------------------------------------------------------------
def test_point_sampling_takes_floor_lambda_n_points_of_s2():
    x, y = _pair(B=3, N=10, seed=7)
    lam = torch.tensor([0.0, 0.35, 1.0])
    draws = P.point_sampling_indices(3, 10, lam, torch.Generator().manual_seed(0))
    s = P.point_sampling(x, y, draws)
    assert s.shape == x.shape
    for b, k in enumerate((0, 3, 10)):
        from_y = [bool((torch.cdist(p[None], y[b]) == 0).any()) for p in s[b]]
        from_x = [bool((torch.cdist(p[None], x[b]) == 0).any()) for p in s[b]]
        assert sum(from_y) == k and sum(from_x) == 10 - k
        assert len(np.unique(s[b].numpy(), axis=0)) == 10  # drawn without replacement


def test_labels_loss_and_its_gradient():
    c1 = torch.nn.functional.one_hot(torch.tensor([0, 2]), 3).double()
    c2 = torch.nn.functional.one_hot(torch.tensor([1, 2]), 3).double()
    mix = P.mix_labels(c1, c2, 0.3)
    assert torch.allclose(mix.sum(1), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(mix[0], torch.tensor([0.7, 0.3, 0.0], dtype=torch.float64))
    logits = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert float(P.soft_cross_entropy(logits.detach(), c1)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits.float(), torch.tensor([0, 2]))), rel=1e-5
    )
    P.soft_cross_entropy(logits, mix).backward()
    expected = (torch.softmax(logits.detach().float(), 1) - mix.float()) / 2
    assert torch.allclose(logits.grad.float(), expected, atol=1e-6)


def test_alignment_undoes_a_turn_about_the_up_axis():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 200, 3, generator=g, dtype=torch.float64) * torch.tensor(
        [1.0, 0.3, 0.5], dtype=torch.float64
    )
    x[..., 0] += x[..., 1] ** 2  # no symmetry that would make the opposite turn just as good
    turned = T.rotate(x, T.random_rotation(3, g, mode="up").double())
    back = P.principal_axis_align(x, turned)
    assert torch.allclose(back, x, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# Manifold PointMixup
# ---------------------------------------------------------------------------------------------
def test_mixed_forward_reduces_to_the_plain_forward_and_to_input_mixing():
    torch.manual_seed(0)
    net = PointNet(5, (8, 16, 16), head=8)
    x, _ = _pair(B=4, N=12)
    x = x.float()
    assert torch.allclose(P.mixed_forward(net, x), net(x), atol=1e-6)
    g = torch.Generator().manual_seed(0)
    perm, lam = torch.tensor([1, 2, 3, 0]), torch.tensor([0.2, 0.5, 0.7, 0.9])
    mixer = P.Mixer("oa", x, perm, lam, g)
    a, _ = P.optimal_assignment(x, x[perm])
    u = P.oa_interpolate(x, x[perm], lam, a)
    assert torch.allclose(P.mixed_forward(net, x, mixer, layer=0), net(u), atol=1e-6)
    # features = coordinates: the manifold mix is the input mix
    assert torch.allclose(mixer.mix(x, x[perm]), u)
    with pytest.raises(ValueError, match="layer must be in"):
        P.mixed_forward(net, x, mixer, layer=4)
    # a latent mix: features of partner points paired by the coordinates' assignment
    h = torch.relu(net.shared[0](x))
    hm = (1 - lam[:, None, None]) * h + lam[:, None, None] * a.partner(h[perm])
    ref = net.head(torch.relu(net.shared[4](torch.relu(net.shared[2](hm)))).max(1).values)
    assert torch.allclose(P.mixed_forward(net, x, mixer, layer=1), ref, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
def test_bad_input_raises_clear_errors():
    x, y = _pair(B=2, N=5)
    with pytest.raises(ValueError, match="same shape"):
        P.optimal_assignment(x, y[:, :4])
    a, _ = P.optimal_assignment(x, y)
    with pytest.raises(ValueError, match=r"lam must lie in \[0, 1\]"):
        P.oa_interpolate(x, y, 1.5, a)
    with pytest.raises(ValueError, match="lam must be a float or a"):
        P.oa_interpolate(x, y, torch.ones(3) / 2, a)
    with pytest.raises(ValueError, match="unknown column"):
        P.parse_column("OA+XX")
    with pytest.raises(ValueError, match="unknown perturbation"):
        P.perturb(x.float(), "blur", torch.Generator())
    with pytest.raises(ValueError, match="method must be one of"):
        P.Mixer("none", x, torch.arange(2), torch.ones(2) / 2, torch.Generator())
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        P.soft_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 4))


def test_perturbations():
    x = T.normalize(torch.randn(2, 50, 3, generator=torch.Generator().manual_seed(0)))[0]
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert torch.allclose(P.perturb(x, "scale 2.0", g()), 2 * x)
    r = P.perturb(x, "rot x ±30°", g())
    assert torch.allclose(r.norm(dim=-1), x.norm(dim=-1), atol=1e-5) and torch.allclose(
        r[..., 0], x[..., 0]
    )
    noise = P.perturb(x, "noise 0.1", g()) - x
    assert 0.08 < float(noise.std()) < 0.12
    d = P.perturb(x, "drop 0.2", g())
    assert d.shape == x.shape and bool((d[:, :, None] == x[:, None]).all(-1).any(-1).all())


# ---------------------------------------------------------------------------------------------
# the readers the chapter adds, on fixture files
# ---------------------------------------------------------------------------------------------
def test_read_modelnet40_normal_resampled(tmp_path):
    (tmp_path / "modelnet40_shape_names.txt").write_text("airplane\nbathtub\nnight_stand\n")
    (tmp_path / "modelnet40_train.txt").write_text("night_stand_0001\nairplane_0003\n")
    rng = np.random.default_rng(0)
    rows = {}
    for cls, sid in (("night_stand", "night_stand_0001"), ("airplane", "airplane_0003")):
        (tmp_path / cls).mkdir()
        rows[sid] = rng.normal(size=(7, 6))
        np.savetxt(tmp_path / cls / f"{sid}.txt", rows[sid], delimiter=",", fmt="%.6f")
    out = R.read_modelnet40_normal(tmp_path, "train")
    assert out["label"].tolist() == [2, 0] and out["names"][2] == "night_stand"
    np.testing.assert_allclose(out["points"][0].numpy(), rows["night_stand_0001"][:, :3], atol=1e-6)
    np.testing.assert_allclose(out["normals"][1].numpy(), rows["airplane_0003"][:, 3:], atol=1e-6)
    assert R.read_modelnet40_normal(tmp_path, "train", n_points=4)["points"].shape == (2, 4, 3)
    with pytest.raises(FileNotFoundError, match="modelnet40_shape_names.txt"):
        R.read_modelnet40_normal(tmp_path, "test")
    np.savetxt(tmp_path / "airplane" / "airplane_0003.txt", rng.normal(size=(7, 3)), delimiter=",")
    with pytest.raises(ValueError, match="6 comma-separated values"):
        R.read_modelnet40_normal(tmp_path, "train")


def test_off_mesh_area_sampling(tmp_path):
    # a unit square (area 1) and a 1 x 3 rectangle (area 3), disjoint, as one OFF file
    v = [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0], [5, 0, 0], [5, 1, 0], [2, 1, 0]]
    f = [[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]]
    (tmp_path / "m.off").write_text(
        "OFF\n8 4 0\n"
        + "".join(" ".join(map(str, p)) + "\n" for p in v)
        + "".join("3 " + " ".join(map(str, t)) + "\n" for t in f)
    )
    verts, faces = R.read_mesh(tmp_path / "m.off")
    pts, face = M.sample_mesh_surface(
        verts[None].double(), faces, 40_000, torch.Generator().manual_seed(0)
    )
    assert pts.shape == (1, 40_000, 3) and bool((pts[..., 2] == 0).all())
    assert torch.equal(face[0] >= 2, pts[0, :, 0] >= 2)  # faces 2, 3 make the rectangle
    share = float((pts[0, :, 0] > 1.5).double().mean())
    assert share == pytest.approx(0.75, abs=0.01)  # area-weighted: 3 / (1 + 3)
    sq = pts[0][pts[0, :, 0] < 1.5]
    assert float(sq[:, 0].mean()) == pytest.approx(0.5, abs=0.01)  # uniform inside the square
    assert float(sq[:, 1].mean()) == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="n must be positive"):
        M.sample_mesh_surface(verts[None], faces, 0, torch.Generator())


# ---------------------------------------------------------------------------------------------
# the experiment
# ---------------------------------------------------------------------------------------------
def test_property_checks_and_smoke_run():
    cfg = P.Config.smoke()
    res = P.run(cfg)
    assert {
        "properties",
        "accuracy",
        "table1",
        "robustness",
        "findings",
        "fewshot",
        "table4 few-shot",
    } <= set(res)
    assert set(res["fewshot"].mixup) == {False, True} and set(res["fewshot"].seed) == set(cfg.seeds)
    assert {"semi_supervised", "table4 semi-supervised"} <= set(res)
    assert set(res["semi_supervised"].ict) == {False, True}
    assert set(res["accuracy"].column) == set(P.TABLE1_COLUMNS)
    assert set(res["accuracy"].setting) == {
        "reduced, pre-aligned",
        "reduced, unaligned",
        "full, pre-aligned",
        "full, unaligned",
    }
    assert {f"table1 {s}" for s in res["accuracy"].setting} | {
        "table2 noise 0.05",
        "table2 scale 2.0",
    } <= set(res)
    f = res["findings"]
    props = f[f.index.str.startswith("Property")]
    assert len(props) == 3 and bool(props["holds"].all())
    assert set(P.Config.full().columns) == set(cfg.columns)
    assert math.isfinite(res["accuracy"]["final loss"].sum())


def test_same_seed_same_mix():
    x = torch.randn(4, 10, 3, generator=torch.Generator().manual_seed(0))
    outs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(3)
        m = P.Mixer("ps", x, torch.tensor([1, 0, 3, 2]), torch.full((4,), 0.4), g)
        outs.append(m.mix(x, x[m.perm]))
    assert torch.equal(*outs)


def test_protonet_logits_and_episodes():
    support = torch.tensor(
        [[[0.0, 0.0], [2.0, 0.0]], [[0.0, 4.0], [0.0, 6.0]]]
    )  # prototypes (1,0), (0,5)
    query = torch.tensor([[1.0, 1.0]])
    assert torch.allclose(P.proto_logits(support, query), torch.tensor([[-1.0, -17.0]]))
    with pytest.raises(ValueError, match=r"support \(W, K, d\)"):
        P.proto_logits(support[0], query)
    x = torch.arange(3 * 6, dtype=torch.float32).reshape(3, 6, 1, 1).expand(3, 6, 4, 3)
    sup, qry = P.episode(x, 2, 3, torch.Generator().manual_seed(0))
    assert sup.shape == (3, 2, 4, 3) and qry.shape == (3, 3, 4, 3)
    for w in range(3):  # drawn within the class, support and query disjoint
        ids = torch.cat([sup[w, :, 0, 0], qry[w, :, 0, 0]]).long().tolist()
        assert len(set(ids)) == 5 and all(6 * w <= i < 6 * w + 6 for i in ids)
    with pytest.raises(ValueError, match="shots \\+ query"):
        P.episode(x, 4, 3, torch.Generator())


def test_ict_consistency_and_labelled_mask():
    t_a = torch.tensor([[2.0, 0.0, -1.0]])
    t_b = torch.tensor([[0.0, 1.0, 0.5]])
    lam = torch.tensor([0.25])
    target = 0.75 * torch.softmax(t_a, 1) + 0.25 * torch.softmax(t_b, 1)
    assert float(P.ict_consistency(torch.log(target), t_a, t_b, lam)) == pytest.approx(
        0.0, abs=1e-12
    )
    s = torch.zeros(1, 3)
    assert float(P.ict_consistency(s, t_a, t_b, lam)) == pytest.approx(
        float(((1 / 3 - target) ** 2).sum())
    )
    y = torch.tensor([2, 0, 0, 1, 2, 2, 0, 1, 0, 2, 1])
    for k in (1, 2, 3):
        m = P.labelled_mask(y, k, torch.Generator().manual_seed(k))
        assert [int(m[y == c].sum()) for c in range(3)] == [k, k, k]
    assert bool(P.labelled_mask(y, 9, torch.Generator()).all())
    with pytest.raises(ValueError, match="k must be positive"):
        P.labelled_mask(y, 0, torch.Generator())
