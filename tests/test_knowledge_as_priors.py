import math

import numpy as np
import pandas as pd
import pytest
import torch

from cvtutor import report
from cvtutor.papers import knowledge_as_priors as kap


# ---------------------------------------------------------------------------------------------
# Eq. (1)-(4), (8)
# ---------------------------------------------------------------------------------------------
def test_attention_map_hand_computed():
    q = torch.tensor([[[[1.0, 2.0], [0.0, 1.0]], [[1.0, 0.0], [2.0, 1.0]]]])  # (1, C=2, 2, 2)
    a = torch.tensor([2.0, 4.0, 4.0, 2.0])  # Σ_c Q²
    expected = a / math.sqrt(4 + 16 + 16 + 4)
    got = kap.attention_map(q)
    assert torch.allclose(got[0], expected)
    assert torch.allclose(got.norm(dim=1), torch.ones(1))


def test_attention_loss_zero_on_itself_and_scale_invariant():
    g = torch.Generator().manual_seed(0)
    qs = [torch.randn(3, 4, 5, 5, generator=g), torch.randn(3, 8, 2, 2, generator=g)]
    qt = [torch.randn(3, 4, 5, 5, generator=g), torch.randn(3, 8, 2, 2, generator=g)]
    assert kap.L_ATT(qs, qs).item() == pytest.approx(0.0, abs=1e-12)
    base = kap.L_ATT(qs, qt)
    assert kap.L_ATT([2.5 * q for q in qs], qt).item() == pytest.approx(base.item(), rel=1e-5)
    # hand-computed: mean over batch and H·W of the squared difference, summed over pairs
    manual = sum(((kap.attention_map(a) - kap.attention_map(b)) ** 2).mean() for a, b in zip(qs, qt))
    assert torch.allclose(base, manual)
    # unlike L_ATT, L_ACT is not scale invariant
    assert kap.L_ACT(2 * qs[0], qt[0]) != kap.L_ACT(qs[0], qt[0])


def test_losses_hand_computed_and_no_teacher_gradient():
    pred = torch.tensor([[1.0, 2.0, 3.0]])
    y = torch.tensor([[1.0, 0.0, 0.0]])
    assert kap.L_REG(pred, y).item() == pytest.approx((0 + 4 + 9) / 3)
    qs = torch.ones(1, 2, 2, 2, requires_grad=True)
    qt = torch.zeros(1, 2, 2, 2, requires_grad=True)
    act = kap.L_ACT(qs, qt)
    assert act.item() == pytest.approx(1.0)
    act.backward()
    assert qt.grad is None and torch.allclose(qs.grad, torch.full_like(qs, 2 / 8))
    d = kap.L_DIST([qs], [qt + 1], lam=1e3)
    assert d["act"].item() == pytest.approx(0.0) and d["att"].item() == pytest.approx(0.0, abs=1e-9)
    g = kap.G_loss(pred, y, [qs], [qt], lam=10.0)
    assert torch.allclose(g["G"], g["reg"] + g["act"] + g["att"])
    assert kap.G_loss(pred, y, [qs], [qt], use_dist=False)["G"].item() == pytest.approx(13 / 3)


def test_mismatched_maps_raise():
    with pytest.raises(ValueError, match="same shape"):
        kap.L_ACT(torch.zeros(2, 4, 4, 4), torch.zeros(2, 8, 4, 4))
    with pytest.raises(ValueError, match="same non-zero number"):
        kap.L_ATT([torch.zeros(1, 2, 2, 2)], [])
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        kap.attention_map(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="same shape"):
        kap.L_REG(torch.zeros(2, 63), torch.zeros(2, 60))


# ---------------------------------------------------------------------------------------------
# the prior, Eq. (10), and the weight-decay form (supp. Eq. 2)
# ---------------------------------------------------------------------------------------------
def _toy_params(dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    return {"w": torch.randn(3, 2, generator=g, dtype=dtype), "b": torch.randn(2, generator=g, dtype=dtype)}


def test_prior_values_and_errors():
    th = _toy_params()
    prior = kap.LearnedPrior(th, "l2").double()
    with torch.no_grad():
        prior.phi["w"].fill_(0.5)
        prior.phi["b"].copy_(torch.tensor([1.0, -2.0]))
    expected = 0.5 * (th["w"] ** 2).sum() + (th["b"] ** 2 * torch.tensor([1.0, -2.0], dtype=torch.float64)).sum()
    assert torch.allclose(prior(th), expected)
    p1 = kap.LearnedPrior(th, "l1").double()
    with torch.no_grad():
        p1.phi["w"].fill_(2.0)
    assert torch.allclose(p1(th), 2.0 * th["w"].abs().sum())
    assert torch.allclose(kap.default_regularizer(th, 0.1, 2), 0.1 * sum((v ** 2).sum() for v in th.values()))
    assert torch.allclose(kap.default_regularizer(th, 0.1, 1), 0.1 * sum(v.abs().sum() for v in th.values()))
    with pytest.raises(ValueError, match="'l1' or 'l2'"):
        kap.LearnedPrior(th, "l3")
    with pytest.raises(ValueError, match="shape"):
        prior({"w": torch.zeros(2, 2), "b": torch.zeros(2)})
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        kap.default_regularizer(th, 0.1, 3)


def test_one_phi_per_scalar_parameter_of_a_network():
    net = kap.make_network("mini", 3, 4)
    prior = kap.LearnedPrior(net)
    assert prior.flat().numel() == sum(p.numel() for p in net.parameters())


def test_weight_decay_equivalence_supp_eq2():
    th = {k: v.requires_grad_(True) for k, v in _toy_params().items()}
    x = torch.randn(5, 3, dtype=torch.float64)
    y = torch.randn(5, 2, dtype=torch.float64)

    def reg(p):
        return ((x @ p["w"] + p["b"] - y) ** 2).mean()

    prior = kap.LearnedPrior(th).double()
    with torch.no_grad():
        for v in prior.phi.values():
            v.uniform_(-1, 1)
    alpha = 0.1
    grads = torch.autograd.grad(reg(th) + prior(th), list(th.values()))
    sgd = {k: th[k] - alpha * g for k, g in zip(th, grads)}
    g_reg = torch.autograd.grad(reg(th), list(th.values()))
    decay = {k: th[k] * (1 - 2 * alpha * prior.phi[k]) - alpha * g for k, g in zip(th, g_reg)}
    for k in th:
        assert torch.allclose(sgd[k], decay[k], atol=1e-12)
    # and inner_steps (first order, l = 1) is exactly this step
    step = kap.inner_steps({k: v.detach() for k, v in th.items()}, prior, reg, alpha, l=1, first_order=True)
    for k in th:
        assert torch.allclose(step[k], decay[k], atol=1e-12)


# ---------------------------------------------------------------------------------------------
# meta-training: hypergradient
# ---------------------------------------------------------------------------------------------
def _regression_problem():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 3, generator=g, dtype=torch.float64)
    y = torch.randn(8, 2, generator=g, dtype=torch.float64)
    th = {"w": torch.randn(3, 2, generator=g, dtype=torch.float64), "b": torch.randn(2, generator=g, dtype=torch.float64)}

    def reg(p):
        return ((torch.tanh(x @ p["w"]) + p["b"] - y) ** 2).mean()

    def G(p):  # a "teacher" that also wants w small
        return reg(p) + 0.3 * (p["w"] ** 2).sum()

    return th, reg, G


@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_hypergradient_l1_autograd_equals_first_order_and_closed_form(kind):
    th, reg, G = _regression_problem()
    prior = kap.LearnedPrior(th, kind).double()
    with torch.no_grad():
        for v in prior.phi.values():
            v.uniform_(-0.5, 0.5)
    alpha = 0.05
    full, _ = kap.meta_gradient(th, prior, reg, G, alpha, l=1, first_order=False)
    first, _ = kap.meta_gradient(th, prior, reg, G, alpha, l=1, first_order=True)
    hat = kap.inner_steps(th, prior, reg, alpha, 1, True)
    hat = {k: v.detach().requires_grad_(True) for k, v in hat.items()}
    grad_G = dict(zip(hat, torch.autograd.grad(G(hat), list(hat.values()))))
    closed = kap.hypergradient_l1(th, prior, grad_G, alpha)
    for k in th:
        assert torch.allclose(full[k], first[k], atol=1e-12)
        assert torch.allclose(full[k], closed[k], atol=1e-12)


def test_hypergradient_two_steps_differs_by_the_hessian_term():
    # quadratic L_REG = ½ θᵀHθ − bᵀθ with a known Hessian H; G = L_REG
    H = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    b = torch.tensor([1.0, -1.0], dtype=torch.float64)
    th = {"t": torch.tensor([0.7, -0.3], dtype=torch.float64)}

    def reg(p):
        t = p["t"]
        return 0.5 * t @ H @ t - b @ t

    prior = kap.LearnedPrior(th).double()
    with torch.no_grad():
        prior.phi["t"].copy_(torch.tensor([0.2, -0.1]))
    alpha = 0.1
    full, _ = kap.meta_gradient(th, prior, reg, reg, alpha, l=2, first_order=False)
    first, _ = kap.meta_gradient(th, prior, reg, reg, alpha, l=2, first_order=True)
    # by hand: θ1 = θ0 − α(Hθ0 − b + 2φθ0); θ2 = θ1 − α(Hθ1 − b + 2φθ1)
    phi, t0 = prior.phi["t"].detach(), th["t"]
    D = torch.diag(2 * phi)
    t1 = t0 - alpha * (H @ t0 - b + 2 * phi * t0)
    t2 = t1 - alpha * (H @ t1 - b + 2 * phi * t1)
    dt1 = -2 * alpha * torch.diag(t0)                                   # ∂θ1/∂φ
    I = torch.eye(2, dtype=torch.float64)
    dt2_full = (I - alpha * H - alpha * D) @ dt1 - 2 * alpha * torch.diag(t1)
    dt2_first = (I - alpha * D) @ dt1 - 2 * alpha * torch.diag(t1)     # the Hessian term −αH·∂θ1/∂φ dropped
    gG = H @ t2 - b
    assert torch.allclose(full["t"], dt2_full.T @ gG, atol=1e-12)
    assert torch.allclose(first["t"], dt2_first.T @ gG, atol=1e-12)
    assert torch.allclose(full["t"] - first["t"], (-alpha * H @ dt1).T @ gG, atol=1e-12)
    assert not torch.allclose(full["t"], first["t"])


def test_meta_step_sign_teacher_that_wants_a_weight_small():
    # G = L_REG + c‖θ_1‖²: one meta step increases φ_1; φ of a parameter with zero ∇G stays put
    th = {"a": torch.tensor([1.0], dtype=torch.float64), "z": torch.tensor([0.5], dtype=torch.float64)}

    def reg(p):
        return (p["a"] - 1.0).pow(2).sum() + 0 * p["z"].sum()

    def G(p):
        return reg(p) + 2.0 * p["a"].pow(2).sum()

    prior = kap.LearnedPrior(th).double()
    grads, _ = kap.meta_gradient(th, prior, reg, G, alpha=0.1)
    beta = 1.0
    assert (-beta * grads["a"]).item() > 0  # φ_a increases under φ ← φ − β∇φ
    assert grads["z"].item() == 0.0


def test_inner_steps_rejects_bad_l():
    th, reg, _ = _regression_problem()
    with pytest.raises(ValueError, match="positive int"):
        kap.inner_steps(th, kap.LearnedPrior(th).double(), reg, 0.1, l=0)


def test_shuffled_prior_keeps_values_per_tensor():
    th = _toy_params()
    prior = kap.LearnedPrior(th)
    with torch.no_grad():
        prior.phi["w"].copy_(torch.arange(6.0).reshape(3, 2))
    sh = kap.shuffled_prior(prior, seed=0)
    assert sorted(sh.phi["w"].flatten().tolist()) == list(range(6))
    assert not torch.equal(sh.phi["w"], prior.phi["w"])


# ---------------------------------------------------------------------------------------------
# networks and the pipeline on a tiny problem
# ---------------------------------------------------------------------------------------------
def test_pose_resnet_features_and_input_check():
    net = kap.PoseResNet("resnet18", in_channels=1)
    out, feats = net(torch.zeros(2, 1, 16, 16), features=True)
    assert out.shape == (2, 63) and [f.shape[1] for f in feats] == [64, 128, 256, 512]
    assert feats[-1].shape[-1] == 2
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        net(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match="arch"):
        kap.PoseResNet("vgg")


def tiny_config():
    return kap.Config.fast().replace(image_size=16, n_source=64, n_source_test=32, n_target=64, n_target_test=32,
                                     width=8, batch_size=16, teacher_steps=30, student_steps=10, distill_steps=6,
                                     target_steps=6, beta=50.0, controls=("shuffled", "positive"))


def test_meta_training_changes_phi_and_keeps_it_finite_and_meta_test_runs():
    cfg = tiny_config()
    src = kap.make_source(cfg, 0, "cpu")
    assert src["train"]["x"].shape == (64, 3, 16, 16) and src["train"]["x_t"].shape == (64, 1, 16, 16)
    s = kap.source_experiment(cfg, src, 0, progress=False)
    phi = s["priors"]["l2"].flat()
    assert torch.isfinite(phi).all() and phi.abs().max() > 0
    assert (phi > 0).any() and (phi < 0).any()
    hist = s["history"]["KD L_ACT, L_ATT"]
    assert {"reg", "act", "att", "G_at_theta_hat", "phi_abs_mean"} <= set(hist.columns)
    tgt = kap.make_target(cfg, "stb", 0, "cpu")
    assert "x_t" in tgt["train"]  # generated but hidden from every target method
    r = kap.target_experiment(cfg, tgt, s["priors"], s["theta0"], 0, progress=False)
    assert set(r["metrics"]) == set(kap.table2_rows(cfg))
    # the R row starts from θ_0 and feels the prior
    assert r["history"]["R, l2"]["R"].abs().sum() > 0
    with pytest.raises(ValueError, match="needs the meta-learned prior"):
        kap.meta_test(cfg, tgt["train"], "R")


def test_run_tiny_is_json_storable(tmp_path):
    cfg = tiny_config().replace(controls=(), l2_sigmas=(1e-5,), table3_targets=("frei_A", "stb"))
    res = kap.run(cfg)
    assert set(res["table2"]["setting"]) == {"no prior", "l2, sigma=1e-5", "R, l2"}
    assert set(res["table3_gains"]["target"]) == {"frei_A", "stb"}
    assert "holds" in res["compare_table1_act_att"].columns
    report.save_results(res, tmp_path / "r.json", report.run_metadata("knowledge_as_priors", "fast", "cpu", 0))
    back, _ = report.load_results(tmp_path / "r.json")
    assert len(back["table1"]) == len(res["table1"])


def test_delta_auc_hand_computed():
    t = np.linspace(20, 50, 4)
    assert kap.delta_auc(np.zeros(4), np.full(4, 0.5), t) == pytest.approx(0.5)
    assert kap.delta_auc(np.array([0, 0, 0, 0.0]), np.array([0, 0, 0, 0.3]), t) == pytest.approx(0.05)


def test_paper_numbers_and_claims():
    p = kap.PAPER
    for key, kd in (("table1_act", 1.27), ("table1_act_att", 2.49), ("table1_act_att_A", 2.18),
                    ("table1_act_att_A_r50", 2.68)):
        v = p[key].values
        assert v["RGB"] - v["KD"] == pytest.approx(kd, abs=1e-6)
    t2 = p["table2_epe"].values
    assert t2["no prior"] - t2["R, l2"] == pytest.approx(7.49, abs=1e-6)
    e3, g3 = p["table3_epe"].values, p["table3"].values
    for dom in ("frei_G", "frei_H", "frei_S", "frei_A", "stb"):
        assert e3[f"{dom}, none"] - e3[f"{dom}, l2"] == pytest.approx(g3[f"{dom}, l2"], abs=1e-6)
        assert e3[f"{dom}, none"] - e3[f"{dom}, R"] == pytest.approx(g3[f"{dom}, R"], abs=1e-6)
    report.compare(p["table1_act_att"], {"KD": 1.0}, claims=["Depth < KD", "KD < RGB"])
    report.compare(p["table2_epe"], {"R, l2": 1.0}, claims=["R, l2 < no prior", "R, l2 < l2, sigma=1e-3"])


def test_table3_default_l2_is_table2_sigma_1e5_row():
    """Table 3's STB "default ℓ2" entry (12.02) is Table 2's σ = 1e-5 row: our column must be that row too."""
    full = kap.Config.full()
    none, l2, r = kap.table3_rows(full)
    assert (none, l2, r) == ("no prior", "l2, sigma=1e-5", "R, l2")
    assert l2 in kap.table2_rows(full)
    assert kap.PAPER["table2_epe"].values[l2] == kap.PAPER["table3_epe"].values["stb, l2"]
    with pytest.raises(ValueError, match="table3_l2_sigma"):
        kap.Config.fast().replace(table3_targets=("stb",))  # fast runs only σ = 1e-3


def test_table3_pearson_against_scipy_and_degenerate_cases():
    import scipy.stats

    g = pd.DataFrame({"gain_l2": [0.1, 0.5, 0.9, 1.0, 3.6], "gain_R": [0.1, 0.7, 1.5, 2.0, 7.5]})
    assert kap.table3_pearson(g) == pytest.approx(scipy.stats.pearsonr(g.gain_l2, g.gain_R)[0])
    assert np.isnan(kap.table3_pearson(g.iloc[:2]))
    assert np.isnan(kap.table3_pearson(g.assign(gain_R=1.0)))
    pv = kap.PAPER["table3"].values
    doms = ("frei_G", "frei_H", "frei_S", "frei_A", "stb")
    paper = pd.DataFrame({"gain_l2": [pv[f"{d}, l2"] for d in doms], "gain_R": [pv[f"{d}, R"] for d in doms]})
    assert kap.table3_pearson(paper) > kap.TABLE3_MIN_R  # the claim holds on the paper's own numbers


def test_smoke_runs_every_full_code_path():
    """run(Config.smoke()) covers what full switches on: both priors and every control (the notebook's
    former KeyError), Table 1 rows 3-4, every Table 2 row, Table 3 on every target with a judged claim."""
    full, smoke = kap.Config.full(), kap.Config.smoke()
    assert len(smoke.seeds) >= 2 and smoke.extra_priors() == full.extra_priors() == ("l1", "no_teacher")
    res = kap.run(smoke)
    assert {"table1", "table2", "table3", "pck", "phi", "compare_table1_act", "compare_table1_act_att",
            "compare_table1_gain", "compare_fig4", "compare_table2_epe", "compare_table2_auc", "table2_summary",
            "table3_gains", "compare_table3", "table3_pearson_r", "table3_claims"} <= set(res)
    assert set(res["table2"]["setting"]) == set(kap.table2_rows(full))
    assert set(res["table1"]["row"]) == {"L_ACT / L_ACT, L_ATT", "L_ACT, L_ATT, A", f"L_ACT, L_ATT, A, {smoke.big_backbone}"}
    assert set(res["table3_gains"]["target"]) == set(full.table3_targets)
    assert set(res["table1"]["seed"]) == set(smoke.seeds)
    c3 = res["compare_table3"]
    assert c3["holds"].notna().sum() == len(full.table3_targets)
    r = res["table3_pearson_r"]
    verdict = res["table3_claims"]["holds"].iloc[0]
    assert (pd.isna(verdict) and np.isnan(r)) or bool(verdict) == (r > kap.TABLE3_MIN_R)
