"""SoftPoolNet's pieces against closed forms, hand cases and independent references."""
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import entropy as scipy_entropy

from cvtutor.data.shapes3d import transforms as T
from cvtutor.metrics.pointsets import chamfer_l1
from cvtutor.papers import softpoolnet as M


def _act(B=2, N=30, R=4, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(scale * torch.randn(B, N, R, generator=g, dtype=torch.float64), -1)


# ---------------------------------------------------------------------------------------------
# soft pooling
# ---------------------------------------------------------------------------------------------
def test_soft_pool_is_permutation_invariant_and_keeps_rows_of_f():
    f = _act()
    fs, idx = M.soft_pool(f, 5)
    assert fs.shape == (2, 4 * 5, 4) and idx.shape == (2, 4, 5)
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(1))
    fs_p, _ = M.soft_pool(f[:, perm], 5)
    assert torch.equal(fs, fs_p)
    # every row of F* is a row of F, block k sorted by channel k, descending
    for b in range(2):
        for k in range(4):
            block = fs[b, 5 * k:5 * (k + 1)]
            assert torch.equal(block, f[b, idx[b, k]])
            assert torch.all(block[:-1, k] >= block[1:, k])
            assert torch.allclose(block[:, k], f[b, :, k].sort(descending=True).values[:5])


def test_soft_pool_with_one_row_is_max_pooling():
    f = _act(N=50, R=6)
    fs, _ = M.soft_pool(f, 1)
    assert torch.equal(torch.diagonal(fs, dim1=1, dim2=2), f.max(1).values)


def test_soft_pool_rejects_bad_input():
    with pytest.raises(ValueError, match="N_r"):
        M.soft_pool(_act(N=4), 5)
    with pytest.raises(ValueError, match=r"\(B, N, N_f\)"):
        M.soft_pool(torch.rand(4, 3), 1)
    with pytest.raises(ValueError, match="rows"):
        M.soft_pool(_act(), 2, torch.rand(2, 29, 5))


# ---------------------------------------------------------------------------------------------
# regional convolution
# ---------------------------------------------------------------------------------------------
def test_regional_conv_equals_per_region_conv1d_with_duplicated_padding():
    torch.manual_seed(0)
    R, L, c_in, c_out, n_p = 3, 7, 5, 4, 3
    rc = M.RegionalConv(c_in, c_out, n_p, R).double()
    x = torch.randn(2, R * L, c_in, dtype=torch.float64)
    y = rc(x)
    assert y.shape == (2, R * L, c_out)
    w, bias = rc.conv.weight, rc.conv.bias  # w[j, l, k] = W_conv(j, k, l) of Eq. (1)
    for b, r in itertools.product(range(2), range(R)):
        seq = x[b, r * L:(r + 1) * L]
        padded = torch.cat([seq, seq[-1:].expand(n_p - 1, c_in)])
        ref = F.conv1d(padded.T[None], w, bias)[0].T
        assert torch.allclose(y[b, r * L:(r + 1) * L], ref)
        # Eq. (1) written out for one output row i
        i = 2
        eq1 = bias + sum(padded[i + k] @ w[:, :, k].T for k in range(n_p))
        assert torch.allclose(y[b, r * L + i], eq1)


def test_regional_conv_never_mixes_regions():
    torch.manual_seed(1)
    rc = M.RegionalConv(4, 6, 5, 4)
    x = torch.randn(1, 4 * 8, 4)
    x2 = x.clone()
    x2[0, 8:16] += 1.0  # region 1 only
    diff = (rc(x) - rc(x2)).abs().sum(-1)[0]
    assert diff[8:16].min() > 0
    assert torch.all(diff[:8] == 0) and torch.all(diff[16:] == 0)


def test_fractional_upsample_interpolates_inside_regions():
    x = torch.arange(8.0).reshape(1, 8, 1)  # two regions: 0..3 and 4..7
    up = M.fractional_upsample(x, 2, 2)[0, :, 0]
    assert torch.allclose(up, torch.tensor([0, .5, 1, 1.5, 2, 2.5, 3, 3, 4, 4.5, 5, 5.5, 6, 6.5, 7, 7]))
    with pytest.raises(ValueError, match="regions"):
        M.fractional_upsample(torch.rand(1, 7, 2), 2, 2)
    with pytest.raises(ValueError, match="positive integer"):
        M.fractional_upsample(x, 2, 0)


# ---------------------------------------------------------------------------------------------
# region losses
# ---------------------------------------------------------------------------------------------
def test_region_probability_normalises_and_is_identity_on_softmax():
    f = torch.rand(2, 5, 3)
    assert torch.allclose(M.region_probability(f).sum(-1), torch.ones(2, 5))
    s = _act()
    assert torch.allclose(M.region_probability(s), s)


def test_inter_loss_zero_when_uniform_and_log_r_when_collapsed():
    R = 8
    uniform = torch.eye(R, dtype=torch.float64).repeat(1, 4, 1)  # (1, 32, 8): 4 points per region
    assert float(M.inter_loss(uniform)) == pytest.approx(0.0, abs=1e-12)
    collapsed = torch.zeros(1, 32, R, dtype=torch.float64)
    collapsed[..., 3] = 1.0
    assert float(M.inter_loss(collapsed)) == pytest.approx(math.log(R), abs=1e-9)
    f = _act(B=3, N=20, R=5)
    ref = np.mean([scipy_entropy(f[b].mean(0).numpy()) for b in range(3)])
    assert float(M.regional_entropy(f)) == pytest.approx(ref, rel=1e-10)


def test_intra_loss_zero_for_one_hot_log_nf_for_uniform_and_scipy():
    one_hot = torch.eye(4, dtype=torch.float64)[None].repeat(2, 3, 1)
    assert float(M.intra_loss(one_hot)) == pytest.approx(0.0, abs=1e-9)
    assert float(M.intra_loss(torch.full((2, 6, 4), 0.25))) == pytest.approx(math.log(4), rel=1e-6)
    f = _act(B=2, N=10, R=4)
    ref = np.mean([scipy_entropy(p) for p in f.reshape(-1, 4).numpy()])
    assert float(M.intra_loss(f)) == pytest.approx(ref, rel=1e-10)
    # E_r - L_intra is the mutual information of point and region: non-negative
    assert float(M.regional_entropy(f) - M.intra_loss(f)) >= 0


def test_boundary_sets_on_a_hand_case():
    f = torch.tensor([[[0.6, 0.4, 0.0],    # region 0, activation 1 above tau -> B_0^1
                       [0.9, 0.1, 0.0],    # region 0, inside
                       [0.35, 0.65, 0.0],  # region 1, activation 0 above tau -> B_1^0
                       [0.0, 0.2, 0.8],    # region 2, inside
                       [0.0, 0.6, 0.4]]])  # region 1, activation 2 above -> B_1^2, but B_2^1 empty
    a, b = M.boundary_sets(f, 0.3)  # pairs (0,1), (0,2), (1,2)
    assert a[0].nonzero().tolist() == [[0, 0], [2, 4]]
    assert b[0].nonzero().tolist() == [[0, 2]]
    pts = torch.tensor([[[0.0, 0, 0], [5, 5, 5], [1, 0, 0], [9, 9, 9], [0, 3, 0]]])
    # only the pair (0, 1) has both sets non-empty: Chamfer({p0}, {p2}) = 1
    assert float(M.boundary_loss(pts, f, 0.3)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="tau"):
        M.boundary_sets(f, 1.5)


def test_boundary_loss_matches_brute_force_chamfer_and_has_gradients():
    f = _act(B=3, N=40, R=5, seed=3).float()
    pts = torch.randn(3, 40, 3, generator=torch.Generator().manual_seed(4), requires_grad=True)
    ref = 0.0
    for bi in range(3):
        own = f[bi].argmax(-1)
        for i, j in itertools.combinations(range(5), 2):
            A = pts[bi][(own == i) & (f[bi][:, j] > 0.3)]
            B = pts[bi][(own == j) & (f[bi][:, i] > 0.3)]
            if len(A) and len(B):
                ref = ref + chamfer_l1(A, B)
    loss = M.boundary_loss(pts, f, 0.3)
    assert float(loss.detach()) == pytest.approx(float(ref.detach()) / 3, rel=1e-5)
    loss.backward()
    assert pts.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="matching"):
        M.boundary_loss(pts[:, :10], f, 0.3)


def test_preserve_loss_is_small_for_identical_rows_and_grows_with_a_shift():
    f = _act(B=2, N=64, R=4).float()
    same = M.preserve_loss(f, f, n=64)
    shifted = M.preserve_loss(f + 0.3, f, n=64)
    assert float(same) < 0.05 and float(shifted) > float(same) + 0.2


# ---------------------------------------------------------------------------------------------
# networks and data
# ---------------------------------------------------------------------------------------------
def test_softpoolnet_shapes_shuffle_invariance_and_gradients():
    torch.manual_seed(0)
    net = M.SoftPoolNet(n_f=4, n_r=8, n_p=4, up=2, width=8)
    x = torch.randn(3, 40, 3)
    out = net(x)
    assert out["coarse"].shape == (3, 32, 3) and out["fine"].shape == (3, 64, 3)
    assert out["f_star"].shape == (3, 32, 4 + 8)
    perm = torch.randperm(40)
    assert torch.allclose(net(x[:, perm])["fine"], out["fine"], atol=1e-6)
    cfg = M.Config.smoke()
    loss = M.losses(net, out, torch.randn(3, 64, 3), M.VARIANTS["SoftPoolNet"], cfg)["loss"]
    loss.backward()
    assert net.encoder.head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        net(torch.randn(3, 40, 2))


def test_zbuffer_scan_of_a_sphere_from_plus_z_keeps_its_upper_side():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(1, 4000, 3, generator=g)
    p = 0.5 * p / p.norm(dim=-1, keepdim=True)
    vis = T.scan(p, p.clone(), torch.tensor([[0.0, 0.0, 2.0]]), size=32)["visible"]
    assert vis.sum() > 500
    assert torch.all(p[vis][:, 2] > 0)


def test_make_data_is_seeded_and_partial_scans_lie_on_the_surface():
    cfg = M.Config.smoke()
    a, b = M.make_data(cfg, 0), M.make_data(cfg, 0)
    assert torch.equal(a["partial"], b["partial"]) and torch.equal(a["complete"], b["complete"])
    n = cfg.n_train + cfg.n_test
    assert a["partial"].shape == (len(cfg.categories) * n, cfg.n_in, 3)
    assert int(a["train"].sum()) == len(cfg.categories) * cfg.n_train
    assert (a["seen"] > 0).all()
    # the tables' leg counts come from the world's construction: 3, 4 or 6
    legs = a["legs"][a["label"] == cfg.categories.index("table")]
    assert set(legs.tolist()) <= {3, 4, 6}


def test_count_legs_on_synthetic_tables():
    g = np.random.default_rng(0)
    top = np.c_[g.uniform(-0.4, 0.4, (300, 2)), np.full(300, 0.3)]
    for k in (4, 6):
        xy = np.array([[-0.35 + 0.7 * (i % 2), -0.2 + 0.4 * (i // 2) / max(1, k // 2 - 1)]
                       for i in range(k)])
        legs = np.concatenate([np.c_[c + 0.005 * g.standard_normal((40, 2)),
                                     g.uniform(-0.3, 0.25, 40)] for c in xy])
        cloud = torch.tensor(np.r_[top, legs], dtype=torch.float32)
        assert M.count_legs(cloud) == k


def test_unknown_variant_and_bad_sizes_raise():
    with pytest.raises(ValueError, match="unknown variant"):
        M.build("AtlasNet", M.Config.smoke())
    with pytest.raises(ValueError, match="multiple"):
        M.build("SoftPoolNet", M.Config.smoke(), n_f=3, n_r=7)


def test_run_smoke_returns_every_key_of_full():
    res = M.run(M.Config.smoke())
    for key in ("table", "history", "legs", "sweep", "table2", "svm", "table6", "findings",
                "per_category"):
        assert key in res
    assert set(res["table"].variant) == set(M.VARIANTS)
    assert len(res["table6"]) == len(M.Config.smoke().sweep)
    assert res["findings"]["holds"].notna().any()


def test_pcn_lite_folds_a_grid_around_each_coarse_point():
    torch.manual_seed(0)
    net = M.PCNLite(64, width=8)
    out = net(torch.randn(2, 30, 3))
    assert out["coarse"].shape == (2, 16, 3) and out["fine"].shape == (2, 64, 3)
    with pytest.raises(ValueError, match="multiple"):
        M.PCNLite(63, width=8)
