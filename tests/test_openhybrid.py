"""E07 OpenHybrid: the residual flow's pieces against closed forms, slogdet and sampling."""
import math

import numpy as np
import pytest
import torch

from cvtutor.data.imageclass import splits
from cvtutor.metrics import classification as cm
from cvtutor.papers import openhybrid as O


def test_openness_reproduces_the_papers_truncated_values():
    got = [cm.openness(a, b) for a, b in ((6, 10), (4, 14), (4, 54), (20, 200))]
    assert [math.floor(1e4 * v) / 100 for v in got] == list(O.PAPER["openness"].values())


def test_logit_transform_logdet_matches_autograd_jacobian():
    x = torch.rand(3, 5, dtype=torch.float64) * 0.9 + 0.05
    y, ld = O.logit_transform(x, 0.01)
    for i in range(3):
        j = torch.autograd.functional.jacobian(lambda v: O.logit_transform(v[None], 0.01)[0][0],
                                               x[i])
        assert torch.allclose(ld[i], torch.linalg.slogdet(j)[1])
    with pytest.raises(ValueError, match="alpha"):
        O.logit_transform(x, 0.5)
    with pytest.raises(ValueError, match=r"\(B, d\)"):
        O.logit_transform(x[0], 0.01)


def test_actnorm_initialises_to_unit_variance_and_logdet_is_sum_log_scale():
    a = O.ActNorm(4)
    x = 3 + 2 * torch.randn(256, 4)
    y, ld = a(x)
    assert torch.allclose(y.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(y.std(0), torch.ones(4), atol=1e-3)
    assert torch.allclose(ld, a.log_scale.sum().expand(256))
    assert torch.allclose(a.inverse(y), x, atol=1e-5)


def test_spectral_linear_has_lipschitz_below_coeff_and_lipswish_slope_below_one():
    torch.manual_seed(0)
    lin = O.SpectralLinear(12, 20, coeff=0.9, n_power=50)
    lin.weight.data *= 10
    w = lin.normalised_weight()
    assert torch.linalg.matrix_norm(w, 2) <= 0.9 + 1e-4
    act = O.LipSwish()
    act.raw_beta.data.fill_(3.0)
    x = torch.linspace(-10, 10, 2001, requires_grad=True)
    (g,) = torch.autograd.grad(act(x).sum(), x)
    assert g.abs().max() < 1
    with pytest.raises(ValueError, match="coeff"):
        O.SpectralLinear(3, 3, coeff=1.0)


def _block(d=6, logdet="exact"):
    torch.manual_seed(1)
    b = O.ResidualBlock(d, 16, 0.9, logdet, n_power=20)
    return b.eval()


def test_exact_logdet_equals_slogdet_and_inverse_round_trips():
    b = _block()
    x = torch.randn(7, 6)
    y, ld = b(x)
    j = torch.autograd.functional.jacobian(lambda v: v + b.g(v), x[2])
    assert torch.allclose(ld[2], torch.linalg.slogdet(j)[1], atol=1e-5)
    assert (b.inverse(y) - x).abs().max() < 1e-5


def test_roulette_estimator_is_unbiased_within_monte_carlo_error():
    b = _block()
    x = torch.randn(3, 6)
    exact = b(x)[1].detach()
    w = [lin.normalised_weight() for lin in b.linears]
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([O.power_series_logdet(lambda z: b.g(z, w), x.clone(), generator=g)
                         for _ in range(3000)])
    se = draws.std(0) / math.sqrt(len(draws))
    assert ((draws.mean(0) - exact).abs() < 4 * se + 1e-4).all()


def test_flow_round_trips_and_gives_a_gaussian_its_entropy():
    torch.manual_seed(0)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.5]])
    mvn = torch.distributions.MultivariateNormal(torch.tensor([0.5, -1.0]), cov)
    flow = O.ResidualFlow(2, n_blocks=3, hidden=32, logit=False)
    x, x_test = mvn.sample((2048,)), mvn.sample((2048,))
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    flow.train()
    for i in range(400):
        xb = x[torch.randint(0, 2048, (256,))]
        loss = -flow.log_prob(xb).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    flow.eval()
    ll = flow.log_prob(x_test).mean().item()
    assert abs(ll + mvn.entropy().item()) < 0.1
    z, _ = flow(x_test[:50])
    assert (flow.inverse(z) - x_test[:50]).abs().max() < 1e-4


def test_flow_logdet_gradient_reaches_the_encoder():
    flow = O.ResidualFlow(4, 2, 8)
    u = torch.rand(5, 4, requires_grad=True)
    flow.train()
    flow.log_prob(u).sum().backward()
    assert u.grad is not None and torch.isfinite(u.grad).all() and u.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        flow(torch.rand(5, 3))


def test_threshold_and_the_k_plus_one_rule_on_a_hand_case():
    log_p_train = torch.tensor([-3.0, -1.0, 0.0])
    tau = O.threshold(log_p_train, 0.5)
    assert tau == -2.5
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 0.0]])
    pred = O.open_set_predict(logits, torch.tensor([-1.0, -2.0, -4.0]), tau)
    assert pred.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="log_p"):
        O.open_set_predict(logits, torch.zeros(2), tau)
    with pytest.raises(ValueError, match="non-empty"):
        O.threshold(torch.zeros(0), 1.0)


def test_f_score_and_auroc_match_scikit_learn():
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    assert abs(cm.open_set_f1(t, p, 3) - f1_score(t, p, average="macro")) < 1e-12
    k, u = rng.normal(1, 1, 50), rng.normal(0, 1, 40)
    assert abs(cm.open_set_auroc(k, u) - roc_auc_score(np.r_[np.ones(50), np.zeros(40)],
                                                       np.r_[k, u])) < 1e-12


def test_open_set_data_is_shared_with_rpl_and_keeps_the_known_only():
    from cvtutor.data.imageclass import sets
    from cvtutor.papers import rpl_reciprocal_points as R

    digits = sets.digits16(16)
    known = splits.open_set_splits(10, 6, 2, 0)[0]
    data = splits.open_set_data(digits, known)
    assert R.split_data is splits.open_set_data
    assert int(data["y_train"].max()) == 5 and len(data["x_unknown"]) > 0


def test_bad_method_and_logdet_raise():
    with pytest.raises(ValueError, match="logdet"):
        O.ResidualBlock(4, 8, logdet="hutch")
    with pytest.raises(ValueError, match="method"):
        O.train_method("openmax", {}, O.Config.smoke(), 0, 6)


def test_smoke_run_returns_every_key_and_finite_densities():
    r = O.run(O.Config.smoke())
    for key in ("table", "summary", "history", "compare_table1", "compare_table2",
                "compare_table4", "sweeps", "fig4", "openness", "findings"):
        assert key in r
    assert len(r["sweeps"]) == 4
    assert r["table"]["finite"].all()
    assert set(r["table"]["method"]) == set(O.LABELS.values())
