"""DSA pruning (E35): the expectation condition's bisection, the implicit gradient (Eq. 5) against
finite differences, Eq. 6 against an exact 16-mask enumeration, inexactness, the budget model
against FlopCounterMode on physically pruned nets, grouping, the z-step, bad input, the readers on
fixtures and the smoke profile."""

import itertools
import warnings

import pytest
import torch
from fixture_files import write_cifar10

from cvtutor.nn.flops import flop_count
from cvtutor.papers import dsa_pruning as D


def _b(c=12, seed=0):
    return torch.rand(c, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.05


@pytest.mark.parametrize("beta2", [0.05, 1.0, 20.0])
def test_bisection_meets_the_expectation_condition_and_is_monotone(beta2):
    b = _b()
    prev = None
    for alpha in (0.1, 0.3, 0.5, 0.7, 0.9):
        beta1 = D.solve_beta1(b, alpha, beta2)
        assert abs(float(D.sigmoid_log(b, beta1, beta2).mean()) - alpha) < 1e-6
        if prev is not None:
            assert float(beta1) < prev  # a larger keep ratio needs a lower threshold
        prev = float(beta1)


def test_batched_bisection_equals_per_group():
    b1, b2 = _b(5, 1), _b(9, 2)
    b = torch.nn.utils.rnn.pad_sequence([b1, b2], batch_first=True, padding_value=1.0)
    valid = torch.arange(9)[None] < torch.tensor([5, 9])[:, None]
    alpha = torch.tensor([0.3, 0.6], dtype=torch.float64)
    p = D.keep_probabilities(alpha, b, 2.0, valid)
    for g, bg in enumerate((b1, b2)):
        ref = D.keep_probabilities(alpha[g], bg, 2.0)
        torch.testing.assert_close(p[g, :len(bg)], ref)
    assert float(p[0, 5:].abs().sum()) == 0


def test_sigmoid_log_is_the_paper_formula():
    b = _b()
    p = D.sigmoid_log(b, 0.4, 3.0)
    torch.testing.assert_close(p, 1 / (1 + (b / 0.4) ** -3.0))


def test_implicit_gradient_eq5_matches_central_differences():
    b, beta2, alpha, h = _b(16, 3), 2.5, 0.4, 1e-5
    beta1 = D.solve_beta1(b, alpha, beta2)
    fd = (D.solve_beta1(b, alpha + h, beta2) - D.solve_beta1(b, alpha - h, beta2)) / (2 * h)
    eq5 = D.dbeta1_dalpha(b, beta1, beta2)
    assert abs(float(eq5 / fd) - 1) < 1e-3
    # f' is the derivative of f in beta1
    fp = D.f_prime(b, beta1, beta2)
    num = (D.sigmoid_log(b, beta1 + h, beta2) - D.sigmoid_log(b, beta1 - h, beta2)) / (2 * h)
    torch.testing.assert_close(fp, num, rtol=1e-5, atol=1e-8)


def test_eq6_equals_the_derivative_of_the_exact_expected_loss():
    """C = 4: E[L] = sum over the 16 masks of prod p^m (1-p)^(1-m) L(m); dE[L]/dp_i is exact, and
    Eq. 6 with those dE/dp_i equals d E[L] / d alpha by central differences of the bisection."""
    torch.manual_seed(0)
    b = torch.tensor([0.2, 0.5, 0.9, 1.4], dtype=torch.float64)
    w = torch.randn(4, dtype=torch.float64)
    masks = torch.tensor(list(itertools.product([0, 1], repeat=4)), dtype=torch.float64)
    losses = torch.tanh(masks @ w) ** 2 + 0.3 * masks.sum(1)  # a fixed non-linear downstream loss

    def expected(p):
        prob = (p ** masks * (1 - p) ** (1 - masks)).prod(1)
        return (prob * losses).sum()

    beta2, alpha, h = 1.7, 0.55, 1e-6
    a = torch.tensor(alpha, dtype=torch.float64, requires_grad=True)
    p = D.keep_probabilities(a, b, beta2)
    pe = p.detach().requires_grad_(True)
    (dl_dp,) = torch.autograd.grad(expected(pe), pe)  # exact dE[L]/dp_i
    (eq6,) = torch.autograd.grad(p, a, dl_dp)
    fd = (expected(D.sigmoid_log(b, D.solve_beta1(b, alpha + h, beta2), beta2))
          - expected(D.sigmoid_log(b, D.solve_beta1(b, alpha - h, beta2), beta2))) / (2 * h)
    assert abs(float(eq6) / float(fd) - 1) < 1e-4
    # and dE/dp_i = E[L | m_i = 1] - E[L | m_i = 0] (multilinearity)
    for i in range(4):
        q1, q0 = pe.detach().clone(), pe.detach().clone()
        q1[i], q0[i] = 1.0, 0.0
        assert abs(float(expected(q1) - expected(q0) - dl_dp[i])) < 1e-10


def test_straight_through_bernoulli_passes_the_gradient():
    p = torch.full((1000,), 0.3, requires_grad=True)
    m = D.bernoulli_st(p, torch.Generator().manual_seed(0))
    assert set(m.detach().unique().tolist()) <= {0.0, 1.0}
    assert abs(float(m.detach().mean()) - 0.3) < 0.05
    (g,) = torch.autograd.grad((m * torch.arange(1000.0)).sum(), p)
    torch.testing.assert_close(g, torch.arange(1000.0))


def test_inexactness_is_the_variance_and_vanishes_with_beta2():
    b = _b(32, 4)
    p = D.keep_probabilities(torch.tensor(0.5, dtype=torch.float64), b, 1.0)
    g = torch.Generator().manual_seed(1)
    draws = torch.bernoulli(p.expand(40000, -1), generator=g).sum(1)
    assert abs(float(((draws - 16) ** 2).mean()) / float(D.inexactness(p)) - 1) < 0.05
    values = [float(D.inexactness(D.keep_probabilities(torch.tensor(0.5, dtype=torch.float64),
                                                        b, beta2))) for beta2 in (1, 10, 1000)]
    assert values[0] > values[1] > values[2] and values[2] < 1e-3
    p = D.keep_probabilities(torch.tensor(0.5, dtype=torch.float64), b, 1e4)
    beta1 = D.solve_beta1(b, 0.5, 1e4)
    torch.testing.assert_close(p.round(), (b > beta1).double())  # a hard threshold
    assert D.beta2_schedule(2, 0.05, 1.1) == pytest.approx(0.05 * 1.21)


def test_grouping_of_resnet8_shares_residual_groups():
    g = D.topological_groups(D.resnet(8))
    assert g["stem"] == g["s1b1.conv2"]  # identity shortcut
    assert g["s2b1.conv2"] == g["s2b1.proj"] != g["stem"]
    assert g["s3b1.conv2"] == g["s3b1.proj"]
    assert len({g["s1b1.conv1"], g["s2b1.conv1"], g["s3b1.conv1"], g["stem"]}) == 4
    assert max(g.values()) + 1 == 6  # 3 inner convs + 3 stage groups
    g20 = D.topological_groups(D.resnet(20))
    assert max(g20.values()) + 1 == 12  # 9 inner convs + 3 stage groups
    assert len(set(D.topological_groups(D.plain_cnn()).values())) == 5


@pytest.mark.parametrize("spec_fn,hw,seed", [(lambda: D.plain_cnn(), 16, 0),
                                             (lambda: D.resnet(8, in_channels=3), 16, 1),
                                             (lambda: D.resnet(8, in_channels=3), 32, 2)])
def test_budget_model_equals_flop_counter_on_the_physically_pruned_net(spec_fn, hw, seed):
    spec = spec_fn()
    torch.manual_seed(seed)
    net = D.PrunableNet(spec).eval()
    for bn in net.bns.values():
        bn.weight.data.uniform_(0.1, 1.0)
        bn.running_mean.data.normal_()
        bn.running_var.data.uniform_(0.5, 2)
    fa, fb = D.budget_model(spec, hw)
    x = torch.rand(2, spec.in_channels, hw, hw)
    assert float(fa.sum() + fb.sum()) == flop_count(net, x[:1])["flops"]
    g = torch.Generator().manual_seed(seed)
    keep = [int(torch.randint(1, c + 1, (1,), generator=g)) for c in net.group_channels]
    small = D.prune_physically(net, keep)
    a = torch.tensor([k / c for k, c in zip(keep, net.group_channels)], dtype=torch.float64)
    assert abs(float(D.budget(a, fa, fb)) - flop_count(small, x[:1])["flops"]) < 0.5
    with torch.no_grad():  # the pruned net computes what the hard masks compute
        torch.testing.assert_close(small(x), net(x, D.hard_masks(net, keep)), rtol=1e-4,
                                   atol=1e-5)


def test_plain_cnn_has_about_3_6_mflops():
    fa, fb = D.budget_model(D.plain_cnn(), 16)
    assert 3.5e6 < float(fa.sum() + fb.sum()) < 3.7e6


def test_uniform_and_scaled_allocations_meet_the_budget():
    fa, fb = D.budget_model(D.resnet(20), 32)
    f0 = float(fa.sum() + fb.sum())
    fa, fb = fa / f0, fb / f0
    a = D.uniform_ratio(fa, fb, 0.5)
    assert abs(float(D.budget(torch.full((12,), a, dtype=torch.float64), fa, fb)) - 0.5) < 1e-12
    w = torch.rand(12, dtype=torch.float64) + 0.2
    assert abs(float(D.budget(D.scaled_allocation(w, fa, fb, 0.5), fa, fb)) - 0.5) < 1e-6


def test_z_step_is_feasible_and_admm_stops_at_the_budget():
    fa, fb = D.budget_model(D.plain_cnn(), 16)
    f0 = float(fa.sum() + fb.sum())
    fa, fb = fa / f0, fb / f0
    cfg = D.Config.fast()
    theta = torch.full((5,), 5.0, dtype=torch.float64)
    z, u1 = theta.clone(), torch.zeros((), dtype=torch.float64)
    u2 = torch.zeros(5, dtype=torch.float64)
    for _ in range(30):
        z, u1 = D.z_step(theta, z, u1, u2, fa, fb, 0.5, cfg.rho1, cfg.rho2, cfg.lr_z, 50)
    assert float(D.budget(torch.sigmoid(z), fa, fb)) <= 0.5 + 1e-3
    st = D.AdmmState.init(5, 5.0, "cpu")
    for _ in range(150):
        st = D.admm_update(st, torch.zeros(5, dtype=torch.float64), fa, fb, 0.5, cfg)
    ratio = float(D.budget(st.alpha, fa, fb))
    assert 0.45 < ratio <= 0.5  # stopped just after reaching the budget
    before = st.theta.clone()
    st = D.admm_update(st, -torch.ones(5, dtype=torch.float64), fa, fb, 0.5, cfg)
    torch.testing.assert_close(st.theta, before)  # the loop has ended: A is frozen


def test_theta_gradient_is_projected_non_negative():
    fa, fb = D.budget_model(D.plain_cnn(), 16)
    f0 = float(fa.sum() + fb.sum())
    st = D.AdmmState.init(5, 5.0, "cpu")
    st2 = D.admm_update(st, -100 * torch.ones(5, dtype=torch.float64), fa / f0, fb / f0, 0.5,
                        D.Config.fast())
    assert bool((st2.theta <= st.theta).all())  # a loss that wants more channels cannot grow A


def test_pruned_resnet8_runs_and_dsa_masks_have_group_shapes():
    net = D.PrunableNet(D.resnet(8, in_channels=3, n_classes=4))
    keep = [max(1, c // 3) for c in net.group_channels]
    small = D.prune_physically(net, keep)
    assert small(torch.rand(2, 3, 16, 16)).shape == (2, 4)
    masks, ps = D.group_masks(net, torch.full((net.n_groups,), 0.5), 1.0)
    assert [len(m) for m in masks.values()] == net.group_channels
    assert all(abs(float(p.mean()) - 0.5) < 1e-4 for p in ps)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="alpha must be in"):
        D.solve_beta1(_b(), 1.5, 1.0)
    with pytest.raises(ValueError, match="non-empty"):
        D.solve_beta1(torch.ones(2, 2, 2), 0.5, 1.0)
    with pytest.raises(ValueError, match="alpha must have shape"):
        D.keep_probabilities(torch.ones(3), _b(), 1.0)
    with pytest.raises(ValueError, match="depth must be"):
        D.resnet(10)
    with pytest.raises(ValueError, match="channels"):
        D.topological_groups(D.NetSpec(1, (D.Conv("a", "input", 8), D.Conv("b", "a", 16),
                                           D.Add("c", "a", "b")), 2))
    with pytest.raises(ValueError, match="unknown input"):
        D.NetSpec(1, (D.Conv("a", "x", 8),), 2).channels()
    net = D.PrunableNet(D.plain_cnn())
    with pytest.raises(ValueError, match="expected x"):
        net(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="keep counts"):
        D.prune_physically(net, [0, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="alpha must have shape"):
        D.budget(torch.ones(3), *D.budget_model(D.plain_cnn(), 16))
    with pytest.raises(ValueError, match="model must be"):
        D.Config(model="vgg").spec(1, 10)
    with pytest.raises(ValueError, match="budgets must be"):
        D.run(D.Config.smoke().replace(budgets=("10%",)))
    with pytest.raises(ValueError, match="val_fraction"):
        D.split_validation(D.make_data(D.Config(), device="cpu")["test"], 1.5, 0)


def test_make_data_reads_the_real_sets_through_the_shared_reader(tmp_path):
    write_cifar10(tmp_path)
    d = D.make_data(D.Config(data="cifar10", root=str(tmp_path)), device="cpu")
    assert d["train"].x.shape == (20, 3, 32, 32) and d["test"].x.shape == (4, 3, 32, 32)
    with pytest.raises(ValueError, match="needs root"):
        D.make_data(D.Config(data="cifar10"), device="cpu")
    with pytest.raises(ValueError, match="data must be"):
        D.make_data(D.Config(data="svhn", root="x"), device="cpu")


def test_smoke_run_returns_every_key_of_full():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = D.run(D.Config.smoke())
    for k in ("runs", "table2", "compare_table2", "allocation", "history", "dense_history",
              "keep_probabilities", "fig5", "grouping", "findings"):
        assert k in res
    assert set(res["runs"]["method"]) == set(D.METHODS) | {"unpruned"}
    assert res["compare_table2"]["budget"].tolist() == ["75%", "33%"]
    assert res["runs"]["model matches count"].all()
    assert res["findings"]["holds"].notna().sum() >= 5
