"""UniLoss (E17): refactorings against direct metrics, IDW, its gradient, anchors, smoke run."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from cvtutor.data.ring_heads import ring_heads
from cvtutor.nn.hourglass import TinyHourglass
from cvtutor.papers import surrogate_loss as U


def test_refactored_accuracy_equals_argmax_on_100_cases():
    g = torch.Generator().manual_seed(1)
    for _ in range(100):
        s = torch.randn(9, 4, generator=g)
        y = torch.randint(0, 4, (9,), generator=g)
        e = U.accuracy_g(U.accuracy_comparisons(s, y) > 0)
        assert float(e) == pytest.approx(float((s.argmax(1) == y).double().mean()), abs=1e-12)


def test_refactored_ap_equals_sklearn_on_100_cases():
    rng = np.random.default_rng(0)
    for _ in range(100):
        s = rng.normal(size=25)
        y = np.zeros(25, dtype=int)
        y[rng.choice(25, rng.integers(1, 10), replace=False)] = 1
        c = U.ap_comparisons(torch.tensor(s), torch.tensor(y))
        assert float(U.ap_g(c > 0)) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_ap_g_is_one_when_positives_win_and_invariant_to_positive_order():
    b = torch.ones(3, 5, dtype=torch.bool)
    assert float(U.ap_g(b)) == 1.0
    b = torch.rand(4, 6, generator=torch.Generator().manual_seed(0)) > 0.5
    assert float(U.ap_g(b)) == pytest.approx(float(U.ap_g(b[[2, 0, 3, 1]])))


def test_refactored_pck_equals_argmax_pck_on_100_cases():
    g = torch.Generator().manual_seed(2)
    for _ in range(100):
        hm = torch.randn(5, 1, 8, 8, generator=g)
        uv = torch.rand(5, 2, generator=g) * 32
        hs = 4 + 6 * torch.rand(5, generator=g)
        idx, ok = U.positive_pixels(uv, 0.5 * hs, 8, 4.0)
        c, valid = U.pck_comparisons(hm.flatten(1), idx, ok)
        pred = U.decode_argmax(hm, 4.0)
        direct = ((pred - uv).norm(dim=1) <= 0.5 * hs).double().mean()
        assert float(U.pck_g(c > 0, valid)) == pytest.approx(float(direct), abs=1e-12)


def test_positive_pixels_hand_case():
    idx, ok = U.positive_pixels(torch.tensor([[4.0, 4.0]]), torch.tensor([1.0]), 4, 2.0)
    # pixel centres at 1, 3, 5, 7: within 1 px of (4, 4) none; radius sqrt(2) reaches four
    assert int(ok.sum()) == 0
    idx, ok = U.positive_pixels(torch.tensor([[4.0, 4.0]]), torch.tensor([1.5]), 4, 2.0)
    assert sorted(idx[ok].tolist()) == [5, 6, 9, 10]


def test_sigmoid_relaxation_tends_to_step_and_codings():
    c = torch.tensor([-2.0, -0.1, 0.1, 3.0])
    assert torch.equal(U.sigmoid_relaxation(c, "01", temperature=1e-4), (c > 0).float())
    assert torch.allclose(U.sigmoid_relaxation(c, "pm1"), 2 * torch.sigmoid(c) - 1)
    with pytest.raises(ValueError, match="coding"):
        U.sigmoid_relaxation(c, "binary")


def _idw_case(seed=0, t=6, L=5):
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(t, L, generator=g) > 0.5).double()
    v = torch.rand(t, generator=g, dtype=torch.float64)
    u = torch.rand(L, generator=g, dtype=torch.float64)
    return u, a, v


def test_idw_exact_at_anchors_and_bounded():
    u, a, v = _idw_case()
    for i in range(len(a)):
        dup = (a == a[i]).all(1)
        assert float(U.idw(a[i].clone(), a, v)) == pytest.approx(float(v[dup].mean()))
    for s in range(20):
        u, a, v = _idw_case(s)
        e = float(U.idw(u, a, v))
        assert float(v.min()) - 1e-12 <= e <= float(v.max()) + 1e-12


def test_idw_closed_form_two_anchors():
    u = torch.tensor([0.25], dtype=torch.float64)
    a = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    v = torch.tensor([0.0, 1.0], dtype=torch.float64)
    # weights 1/0.25 and 1/0.75: (0 * 4 + 1 * 4/3) / (4 + 4/3) = 0.25
    assert float(U.idw(u, a, v)) == pytest.approx(0.25)


def test_pm1_coding_gives_the_same_value_as_01():
    g = torch.Generator().manual_seed(3)
    c = torch.randn(7, generator=g, dtype=torch.float64)
    a = torch.rand(9, 7, generator=g) > 0.5
    v = torch.rand(9, generator=g, dtype=torch.float64)
    e01 = U.idw(U.sigmoid_relaxation(c, "01"), a.double(), v)
    epm = U.idw(U.sigmoid_relaxation(c, "pm1"), a.double() * 2 - 1, v)
    assert float(e01) == pytest.approx(float(epm), abs=1e-12)


def test_idw_gradcheck_and_hand_gradient():
    for s in range(5):
        u, a, v = _idw_case(s)
        u.requires_grad_(True)
        assert torch.autograd.gradcheck(lambda x: U.idw(x, a, v), (u,))
        assert torch.autograd.gradcheck(lambda x: U.idw_hand(x, a, v), (u,))
        (g_auto,) = torch.autograd.grad(U.idw(u, a, v), u)
        (g_hand,) = torch.autograd.grad(U.idw_hand(u, a, v), u)
        assert torch.allclose(g_auto, g_hand, atol=1e-12)
        mask = torch.tensor([True, False, True, True, False])
        (g_m,) = torch.autograd.grad(U.idw_hand(u, a, v, mask), u)
        (g_ma,) = torch.autograd.grad(U.idw(u, a, v, mask), u)
        assert torch.allclose(g_m, g_ma, atol=1e-12) and float(g_m[~mask].abs().max()) == 0


def test_idw_bad_shapes():
    with pytest.raises(ValueError, match="anchors"):
        U.idw(torch.zeros(3), torch.zeros(2, 4), torch.zeros(2))


def test_anchor_hamming_properties():
    g = torch.Generator().manual_seed(0)
    L = 200
    current = torch.rand(L, generator=g) > 0.3
    best = torch.ones(L, dtype=torch.bool)
    a = U.sample_anchors(current, best, n_good=8, n_bad=50, n_nearby=8, generator=g)
    assert a.shape == (1 + 8 + 50 + 8, L)
    assert torch.equal(a[0], best)
    good, bad, near = a[1:9], a[9:59], a[59:]
    assert ((good != best).sum(1) == 1).all()
    assert abs(float(bad.float().mean()) - 0.5) < 0.03
    assert ((near != current).sum(1) == 1).all()
    hd_now = int((current != best).sum())
    assert ((near != best).sum(1) == hd_now - 1).all()  # one step toward the ground truth
    # only valid bits move
    valid = torch.arange(L) < 50
    a = U.sample_anchors(current, best, valid, generator=g)
    assert torch.equal(a[:, 50:], current[50:].expand(len(a), -1))


def test_anchor_nearby_when_current_is_ground_truth():
    best = torch.ones(10, dtype=torch.bool)
    a = U.sample_anchors(best.clone(), best, n_good=0, n_bad=0, n_nearby=4, gt=False)
    assert ((a != best).sum(1) == 1).all()


def test_anchor_bad_input():
    with pytest.raises(ValueError, match="boolean"):
        U.sample_anchors(torch.zeros(4), torch.ones(4, dtype=torch.bool))


def test_uniloss_hand_case_value_and_gradient_sign():
    """2 examples x 2 classes: the surrogate rises when the true class's score rises."""
    s = torch.tensor([[1.0, 0.0], [0.0, 0.5]], requires_grad=True)
    y = torch.tensor([0, 0])
    e = U.uniloss(U.accuracy_comparisons(s, y), U.accuracy_g, anchors_per_type=2)
    assert 0 <= float(e.detach()) <= 1
    e.backward()
    assert s.grad[1, 0] > 0 and s.grad[1, 1] < 0


def test_comparisons_bad_input():
    with pytest.raises(ValueError, match="scores"):
        U.accuracy_comparisons(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="scores"):
        U.ap_comparisons(torch.zeros(3, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="method"):
        U.train_ap("hinge", {}, U.Config.smoke())


def test_ring_heads_seeded_and_centred():
    a, b = ring_heads(8, seed=3), ring_heads(8, seed=3)
    assert torch.equal(a["x"], b["x"]) and a["x"].shape == (8, 1, 32, 32)
    assert ((a["uv"] > 0) & (a["uv"] < 32)).all() and (a["head_size"] > 5).all()
    with pytest.raises(ValueError, match="size"):
        ring_heads(2, size=8)


def test_hourglass_shapes():
    net = TinyHourglass(1, 1, 8, stride=4)
    assert net(torch.zeros(2, 1, 32, 32)).shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="divisible"):
        net(torch.zeros(2, 1, 30, 30))


def test_run_smoke_has_every_full_key():
    out = U.run(U.Config.smoke())
    assert {"results", "refactoring", "ap", "table1", "table2", "table3", "table4",
            "findings"} <= set(out)
    assert out["findings"].loc[out["findings"].index[0], "holds"]
