"""RPL (E30): each equation against a brute force, a hand case or an identity; gradients; bad
input; the open-set splits; the smoke profile."""

import numpy as np
import pytest
import torch

from cvtutor.data.imageclass import sets, splits
from cvtutor.papers import rpl_reciprocal_points as R

g = torch.Generator().manual_seed(0)


def _rand(*shape, dtype=torch.float32):
    return torch.randn(*shape, generator=g, dtype=dtype)


@pytest.mark.parametrize("normalise", [False, True])
def test_eq4_equals_a_brute_force_loop(normalise):
    f, P = _rand(5, 3), _rand(4, 2, 3)
    d = R.reciprocal_distance(f, P, normalise)
    brute = torch.zeros(5, 4)
    for b in range(5):
        for k in range(4):
            brute[b, k] = sum(((f[b] - P[k, i]) ** 2).sum() for i in range(2)) / 2
    assert torch.allclose(d, brute / 3 if normalise else brute, atol=1e-5)


def test_eq4_invariant_to_permuting_points_and_m1_is_squared_distance():
    f, P = _rand(6, 4), _rand(3, 5, 4)
    perm = torch.randperm(5, generator=g)
    assert torch.allclose(R.reciprocal_distance(f, P), R.reciprocal_distance(f, P[:, perm]))
    P1 = P[:, :1]
    sq = torch.cdist(f, P1[:, 0]) ** 2
    assert torch.allclose(R.reciprocal_distance(f, P1, normalise=False), sq, atol=1e-4)
    assert torch.allclose(R.reciprocal_distance(f, P1, normalise=True), sq / 4, atol=1e-4)


def test_classifier_picks_the_farthest_reciprocal_point():
    P = torch.tensor([[[0.0, 0.0]], [[3.0, 0.0]], [[0.0, 5.0]]])  # (3 classes, M=1, 2)
    f = torch.tensor([[3.0, 0.1], [0.0, 0.0], [0.2, 5.0]])
    # the farthest point from (3, .1) is class 2's (0, 5); from (0, 0) also class 2's; from (.2, 5)
    # it is class 1's (3, 0)
    assert R.rpl_logits(f, P).argmax(1).tolist() == [2, 2, 1]
    d = R.reciprocal_distance(f, P)
    assert torch.equal(R.rpl_logits(f, P).argmax(1), d.argmax(1))
    # Eq. (11): the known-ness is the largest distance; the code's score is the max softmax
    assert torch.allclose(R.unknown_score(f, P), d.amax(1))
    assert torch.allclose(R.unknown_score(f, P, "softmax", gamma=0.5),
                          (0.5 * d).softmax(1).amax(1))


def test_temperature_is_gamma_inverse_and_normalising_rescales_gamma_lambda_and_r():
    f, P, y = _rand(8, 4, dtype=torch.float64), _rand(3, 2, 4, dtype=torch.float64), \
        torch.randint(0, 3, (8,), generator=g)
    T, dim = 2.0, 4
    code = torch.nn.functional.cross_entropy(R.reciprocal_distance(f, P) / T, y)
    assert torch.allclose(R.classification_loss(R.rpl_logits(f, P, 1 / T), y), code)
    # d/dim with gamma == d with gamma/dim; L_o on d/dim with R == L_o on d with R*dim, / dim^2
    a = R.classification_loss(R.rpl_logits(f, P, 1.0, normalise=True), y)
    b = R.classification_loss(R.rpl_logits(f, P, 1.0 / dim, normalise=False), y)
    assert torch.allclose(a, b)
    r = torch.tensor([0.3, 0.7, 1.1], dtype=torch.float64)
    lo_n = R.open_space_loss(f, y, P, r, normalise=True)
    lo_raw = R.open_space_loss(f, y, P, r * dim, normalise=False)
    assert torch.allclose(lo_n, lo_raw / dim**2)


def test_open_space_loss_zero_at_margin_and_its_gradient_in_r():
    f = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    P = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]], dtype=torch.float64)  # M = 3
    y = torch.tensor([0])
    d = R.point_distances(f, P, normalise=False)[0, 0]  # (M,) = 5, 4, 1
    assert d.tolist() == [5.0, 4.0, 1.0]
    one = P[:, :1]
    r = torch.tensor([5.0], dtype=torch.float64)
    assert float(R.open_space_loss(f, y, one, r, normalise=False)) == 0.0  # d = R
    r = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    lo = R.open_space_loss(f, y, P, r, normalise=False)
    assert float(lo.detach()) == pytest.approx(((d - 2) ** 2).mean().item())
    (grad,) = torch.autograd.grad(lo, r)
    assert float(grad) == pytest.approx(float(-2 * (d - 2).sum() / 3))
    # per-class margins: only the true class's R^y gets a gradient
    rk = torch.tensor([2.0, 9.0], dtype=torch.float64, requires_grad=True)
    P2 = torch.cat([P, P + 1])
    (gk,) = torch.autograd.grad(R.open_space_loss(f, y, P2, rk, normalise=False), rk)
    assert gk[1] == 0 and float(gk[0]) == pytest.approx(float(grad))


@pytest.mark.parametrize("normalise", [False, True])
def test_gradcheck_full_loss(normalise):
    f = _rand(4, 3, dtype=torch.float64).requires_grad_()
    P = _rand(2, 2, 3, dtype=torch.float64).requires_grad_()
    r = torch.tensor([0.5, 1.5], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 1, 0])
    fn = lambda f, P, r: R.rpl_loss(f, y, P, r, lam=0.1, gamma=0.7, normalise=normalise)["loss"]
    assert torch.autograd.gradcheck(fn, (f, P, r))


def test_prototype_pieces_and_msp():
    from cvtutor.metrics.classification import msp

    f, C = _rand(5, 3), _rand(4, 3)
    d = R.prototype_distance(f, C, normalise=False)
    assert torch.allclose(d, torch.cdist(f, C) ** 2, atol=1e-4)
    y = torch.tensor([0, 1, 2, 3, 0])
    assert torch.allclose(R.prototype_loss(f, y, C, normalise=False), d[torch.arange(5), y].mean())
    logits = _rand(5, 4)
    assert torch.allclose(msp(logits), logits.softmax(1).max(1).values)


def test_bad_input_raises_clear_errors():
    f, P = _rand(3, 4), _rand(2, 1, 4)
    with pytest.raises(ValueError, match=r"points must be \(N classes, M points, dim=4\)"):
        R.point_distances(f, _rand(2, 4))
    with pytest.raises(ValueError, match=r"f must be \(B, dim\)"):
        R.reciprocal_distance(_rand(3, 4, 1), P)
    with pytest.raises(ValueError, match=r"radius must be \(2,\) per class or \(1,\) shared"):
        R.open_space_loss(f, torch.zeros(3, dtype=torch.long), P, torch.zeros(3))
    with pytest.raises(ValueError, match="gamma must be positive"):
        R.rpl_logits(f, P, gamma=0)
    with pytest.raises(ValueError, match="score must be one of"):
        R.unknown_score(f, P, "energy")
    with pytest.raises(ValueError, match="method must be one of"):
        R.OpenSetNet("openmax", torch.nn.Identity(), 2, 4)
    with pytest.raises(ValueError, match="model must be 'small' or 'wrn16'"):
        R.embedding_net("vit", 1, 4, 8)


def test_metrics_agree_with_sklearn():
    k, u = _rand(50) + 1, _rand(70)
    u[:5] = k[:5]  # ties across the two sets
    assert R.sklearn_check(k, u) < 1e-12


def test_splits_disjoint_reproducible_and_split_data_keeps_the_known_only():
    a = splits.open_set_splits(10, 6, 5, seed=3)
    assert a == splits.open_set_splits(10, 6, 5, seed=3) and len(set(a)) == 5
    digits = sets.digits16(16)
    data = R.split_data(digits, a[0])
    unknown = sorted(set(range(10)) - set(a[0]))
    assert set(a[0]).isdisjoint(unknown)
    assert data["y_train"].max() == 5 and data["y_known"].max() == 5
    n_unknown = sum(int((digits[p].y == c).sum()) for p in ("train", "test") for c in unknown)
    assert len(data["x_unknown"]) == n_unknown
    assert len(data["x_train"]) == sum(int((digits["train"].y == c).sum()) for c in a[0])


def test_without_open_space_loss_points_drift_to_the_centre():
    """The Fig. 4b collapse on a toy: 4 Gaussian clusters in R^10, an MLP embedding to d = 2.
    Without L_o the reciprocal points end nearer the feature mean (relative to the spread)."""
    torch.manual_seed(0)
    centres = 3 * _rand(4, 10)
    y = torch.arange(400) % 4
    x = centres[y] + _rand(400, 10)
    data = {"x_known": x, "y_known": y, "x_unknown": _rand(100, 10)}
    cfg = R.Config(epochs=30, batch_size=50, lr=1e-2)
    rel = {}
    for lam in (0.0, 1.0):
        torch.manual_seed(0)
        emb = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
        net = R.OpenSetNet("rpl", emb, 4, 2, lam=lam)
        R.train_net(net, x, y, cfg, seed=0)
        rel[lam] = R.evaluate(net, data)["points_to_centre"]
    assert rel[0.0] < rel[1.0]


def test_smoke_run_returns_every_key():
    cfg = R.Config.smoke().replace(device="cpu")
    res = R.run(cfg)
    assert set(res) == {"table", "table2", "compare_table1", "compare_table2", "sweeps",
                        "fig4_features", "fig4_centres", "fig4_scores", "fig4_auroc",
                        "sklearn_gap", "openness", "findings"}
    assert set(res["table"]["setting"]) >= {"Softmax", "GCPL", "RPL++", "RPL lambda=0",
                                             "RPL lambda=0.01", "RPL lambda=0.1", "RPL lambda=1"}
    assert set(res["sweeps"]["sweep"]) == {"M", "known", "variant"}
    assert res["openness"] == pytest.approx(1 - np.sqrt(0.6))
    assert res["findings"]["kind"].isin(["paper claim", "sanity check", "construction"]).all()
