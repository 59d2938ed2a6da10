"""AutoAugment-KD (E36): the top-K KL (Eq. 3), the KD loss (Eq. 2), the destructive augmentation
space (Sec. 4.1), the CIFAR and AutoAugment paths and the smoke run."""
import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fixture_files import write_cifar10

from cvtutor import report
from cvtutor.data.imageclass import augment as A
from cvtutor.papers import autoaugment_kd as K


def _logits(b=6, c=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, generator=g, dtype=torch.float64) * 2, \
        torch.randn(b, c, generator=g, dtype=torch.float64) * 2


# ---------------------------------------------------------------------------------------------
# Eq. (3): the top-K KL
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("temperature", [1.0, 2.0, 10.0])
def test_top_k_kl_with_all_classes_is_torch_kl_div(temperature):
    s, t = _logits()
    ours = K.top_k_kl(s, t, k=10, temperature=temperature).mean()
    ref = F.kl_div(F.log_softmax(s / temperature, 1), F.softmax(t / temperature, 1),
                   reduction="batchmean")
    assert float(ours) == pytest.approx(float(ref), rel=1e-5)


def test_top_k_kl_is_nonnegative_and_zero_at_the_teacher():
    for seed in range(5):
        s, t = _logits(seed=seed)
        assert (K.top_k_kl(s, t, 10, 2.0) >= -1e-7).all()
        for k in (1, 3, 7):
            assert (K.top_k_kl(s, t, k, 2.0, renormalize=True) >= -1e-7).all()
        for k in (1, 3, 10):
            for renorm in (False, True):
                assert K.top_k_kl(t, t, k, 2.0, renorm).abs().max() < 1e-6


def test_top_k_kl_without_renormalisation_can_be_negative_with_minimum_pk_ln_pk():
    t = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    p = t.softmax(1)
    pk = float(p[0, :2].sum())
    # the student that puts all its mass on C_K in the teacher's proportions attains P_K ln P_K
    s = torch.log(torch.cat([p[:, :2] / pk, torch.full((1, 2), 1e-12)], 1))
    assert float(K.top_k_kl(s, t, 2)) == pytest.approx(pk * math.log(pk), abs=1e-6)
    assert float(K.top_k_kl(s, t, 2)) < 0


def test_three_class_hand_value():
    # teacher z = (2, 1, 0), student z = (0, 1, 0), T = 1, K = 2: C_K = {0, 1}
    et = [math.exp(2), math.exp(1), 1.0]
    es = [1.0, math.exp(1), 1.0]
    p = [e / sum(et) for e in et]
    q = [e / sum(es) for e in es]
    hand = p[0] * math.log(p[0] / q[0]) + p[1] * math.log(p[1] / q[1])
    pk, qk = p[0] + p[1], q[0] + q[1]
    hand_renorm = sum(p[c] / pk * math.log((p[c] / pk) / (q[c] / qk)) for c in (0, 1))
    s, t = torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([[2.0, 1.0, 0.0]])
    assert float(K.top_k_kl(s, t, 2)) == pytest.approx(hand, abs=1e-6)
    assert float(K.top_k_kl(s, t, 2, renormalize=True)) == pytest.approx(hand_renorm, abs=1e-6)
    # the paper's printed Eq. (3), sum f^T ln(f^S / f^T), is the negative
    printed = p[0] * math.log(q[0] / p[0]) + p[1] * math.log(q[1] / p[1])
    assert printed == pytest.approx(-hand)


def test_top_k_set_comes_from_the_teacher_only():
    s, t = _logits(b=4, c=8)
    idx = K.top_k_classes(t, 3)
    assert torch.equal(idx, t.topk(3, 1).indices)
    # a student that differs only outside the teacher's top 3: same set, and with
    # renormalisation the same value (the student's outside scores do not enter)
    mask = torch.ones_like(s, dtype=torch.bool).scatter_(1, idx, False)
    s2 = torch.where(mask, s + 5 * torch.randn_like(s), s)
    assert torch.equal(K.top_k_classes(t, 3), idx)
    assert torch.allclose(K.top_k_kl(s, t, 3, 2.0, True), K.top_k_kl(s2, t, 3, 2.0, True))


def test_gradients_on_the_student_and_none_on_the_teacher():
    s, t = _logits(b=5, c=6)
    s.requires_grad_(True)
    t.requires_grad_(True)
    T = 2.0
    K.top_k_kl(s, t, 6, T).sum().backward()
    p, q = F.softmax(t.detach() / T, 1), F.softmax(s.detach() / T, 1)
    assert torch.allclose(s.grad, (q - p) / T, atol=1e-10)  # full KL: (f^S - f^T) / T
    assert t.grad is None  # the teacher is detached
    s.grad = None
    K.top_k_kl(s, t, 2, T).sum().backward()
    idx = t.detach().topk(2, 1).indices
    in_k = torch.zeros_like(p).scatter_(1, idx, 1.0)
    pk = (p * in_k).sum(1, keepdim=True)
    # top-K, no renormalisation: (P_K f^S_j - [j in C_K] f^T_j) / T, non-zero outside C_K
    assert torch.allclose(s.grad, (pk * q - in_k * p) / T, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Eq. (2): the KD loss
# ---------------------------------------------------------------------------------------------
def test_kd_loss_terms_and_printed_sign():
    s, t = _logits(b=8, c=5)
    y = torch.arange(8) % 5
    out = K.kd_loss(s, t, y, lam=0.7, k=3, temperature=2.0)
    ce = F.cross_entropy(s.float(), y)
    kl = K.top_k_kl(s, t, 3, 2.0).mean()
    assert torch.allclose(out["ce"], ce) and torch.allclose(out["kl"], kl.float())
    assert torch.allclose(out["loss"], ce + 0.7 * kl.float())
    sq = K.kd_loss(s, t, y, lam=0.7, k=3, temperature=2.0, t_squared=True)
    assert torch.allclose(sq["loss"], ce + 0.7 * 4 * kl.float())
    assert torch.equal(K.kd_loss(s, None, y)["loss"], ce)
    assert torch.equal(K.kd_loss(s, t, y, lam=0.0)["loss"], ce)
    printed = K.printed_eq2(s, t, y, lam=0.7, k=3, temperature=2.0)
    assert float(printed) == pytest.approx(-float(out["loss"]), rel=1e-5)


def test_a_kd_step_lowers_the_top_k_kl():
    torch.manual_seed(0)
    net = torch.nn.Linear(12, 5)
    x, t = torch.randn(32, 12), torch.randn(32, 5) * 3
    y = torch.randint(0, 5, (32,))
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    with torch.no_grad():
        before = float(K.top_k_kl(net(x), t, 3, 2.0).mean())
    opt.zero_grad()
    K.kd_loss(net(x), t, y, lam=50.0, k=3, temperature=2.0)["loss"].backward()
    opt.step()
    with torch.no_grad():
        assert float(K.top_k_kl(net(x), t, 3, 2.0).mean()) < before


def test_bad_input_raises_clear_errors():
    s, t = _logits(b=4, c=5)
    with pytest.raises(ValueError, match=r"both be \(B, C\)"):
        K.top_k_kl(s, t[:, :4], 2)
    with pytest.raises(ValueError, match="k must be in 1..5"):
        K.top_k_kl(s, t, 6)
    with pytest.raises(ValueError, match="temperature must be positive"):
        K.top_k_kl(s, t, 2, temperature=0)
    with pytest.raises(ValueError, match=r"y must be \(B,\)"):
        K.kd_loss(s, t, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="model must be one of"):
        K.make_model("vit", 1, 10, 8, 16)
    with pytest.raises(ValueError, match="data must be one of"):
        K.make_data(K.Config(data="imagenet"))
    with pytest.raises(ValueError, match="sweep_magnitude 4 must be one of"):
        K.run(K.Config.smoke().replace(sweep_magnitude=4))


# ---------------------------------------------------------------------------------------------
# the destructive space (Sec. 4.1, Fig. 3)
# ---------------------------------------------------------------------------------------------
def _single(op: str, b: int, magnitude: int, sign=1, where=(0.0, 0.0)) -> A.Tau:
    i = A.DESTRUCTIVE_OPS.index(op)
    return A.Tau(torch.full((1, b), i), torch.full((1, b), sign),
                 torch.tensor(where).expand(1, b, 2), magnitude)


def test_magnitude_zero_is_the_exact_identity():
    x = torch.rand(16, 3, 12, 12)
    assert torch.equal(A.destructive_rand_augment(x, 2, 0, seed=3), x)
    for op in A.DESTRUCTIVE_OPS:
        assert torch.equal(A.destructive_augment(x, _single(op, 16, 0)), x)


@pytest.mark.parametrize("op", ["translate_x", "translate_y", "cutout"])
def test_magnitude_ten_removes_the_whole_image(op):
    x = torch.rand(8, 1, 16, 16) + 0.1
    for sign in (-1, 1):
        out = A.destructive_augment(x, _single(op, 8, 10, sign, (0.3, 0.8)), fill=0.0)
        assert out.abs().max() == 0


def test_translation_closed_form_and_cutout_hand_case():
    img = torch.rand(4, 1, 10, 10)
    out = A.destructive_augment(img, _single("translate_x", 4, 3, sign=1))  # 30 %: 3 pixels
    shifted = torch.zeros_like(img)
    shifted[..., :7] = img[..., 3:]
    assert (out - shifted).abs().max() < 1e-5
    cut = A.destructive_augment(img, _single("cutout", 4, 5, where=(0.0, 0.0)), fill=0.5)
    hand = img.clone()
    hand[..., :5, :5] = 0.5  # side 5 px, pushed to the top-left corner
    assert torch.equal(cut, hand)


def test_ops_compose_in_order():
    img = torch.rand(3, 1, 10, 10)
    cut = _single("cutout", 3, 5)
    shift = _single("translate_x", 3, 3)
    both = A.Tau(torch.cat([cut.ops, shift.ops]), torch.cat([cut.sign, shift.sign]),
                 torch.cat([cut.where, shift.where]), 3)
    one_by_one = A.destructive_augment(A.destructive_augment(img, A.Tau(
        cut.ops, cut.sign, cut.where, 3)), shift)
    assert (A.destructive_augment(img, both) - one_by_one).abs().max() < 1e-5


def test_rand_augment_draws_exactly_n_ops_per_image_seeded():
    tau = A.sample_tau(64, 2, 4, seed=1)
    assert tau.ops.shape == (2, 64)
    v = tau.vector()
    assert v.shape == (64, 5) and ((v > 0).sum(1) <= 2).all() and ((v > 0).sum(1) >= 1).all()
    assert set(v.unique().tolist()) <= {0.0, 4.0}
    x = torch.rand(1, 1, 16, 16).expand(64, -1, -1, -1)
    a = A.destructive_rand_augment(x, 2, 4, seed=1)
    assert torch.equal(a, A.destructive_rand_augment(x, 2, 4, seed=1))
    assert not torch.equal(a, A.destructive_rand_augment(x, 2, 4, seed=2))
    assert len({o.numpy().tobytes() for o in a}) > 32  # drawn per image


def test_coordinates_are_not_rounded_under_autocast():
    x = torch.rand(32, 1, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a = A.destructive_rand_augment(x, 2, 5, seed=3)
    assert a.dtype == torch.float32 and torch.equal(a, A.destructive_rand_augment(x, 2, 5, seed=3))


def test_damage_grows_with_the_magnitude():
    x = torch.rand(256, 1, 16, 16)
    kept = [float(A.destructive_rand_augment(x, 2, m, seed=0).sum() / x.sum()) for m in range(11)]
    assert all(a > b for a, b in itertools.pairwise(kept))


def test_tau_and_augment_reject_bad_shapes():
    with pytest.raises(ValueError, match="magnitude"):
        A.Tau(torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3), torch.zeros(2, 3, 2), 11)
    with pytest.raises(ValueError, match="ops and sign"):
        A.Tau(torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 4), torch.zeros(2, 3, 2), 3)
    with pytest.raises(ValueError, match="tau for B images"):
        A.destructive_augment(torch.rand(4, 1, 8, 8), A.sample_tau(5))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        A.destructive_rand_augment(torch.rand(1, 8, 8))


# ---------------------------------------------------------------------------------------------
# real data (CIFAR pickles), the full AutoAugment space, the smoke run
# ---------------------------------------------------------------------------------------------
def test_cifar_pickles_and_the_autoaugment_space(tmp_path):
    write_cifar10(tmp_path, n=8)
    cfg = K.Config(data="cifar10", cifar_root=str(tmp_path), space="autoaugment", epochs=1,
                   batch_size=8, device="cpu")
    data = K.make_data(cfg)
    assert data["train"].x.shape == (40, 3, 32, 32) and len(data["test"]) == 8
    _, hist = K.train_model(data["train"], cfg, 0, 0, teacher=None)
    assert len(hist) == 5 and np.isfinite(hist["loss"]).all()
    with pytest.raises(ValueError, match="needs cifar_root"):
        K.make_data(K.Config(data="cifar10"))
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        K.make_data(K.Config(data="cifar10", cifar_root=str(tmp_path / "nope")))


def test_cli_smoke_run_returns_every_key(tmp_path, monkeypatch):
    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)
    monkeypatch.setenv("CVTUTOR_DEVICE", "cpu")
    proc = subprocess.run([sys.executable, "-m", "cvtutor", "run", "autoaugment_kd", "--profile",
                           "smoke", "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    res, meta = report.load_results(tmp_path / "autoaugment_kd-smoke-seed0.json")
    assert meta["profile"] == "smoke"
    assert set(res) == {"teachers", "table1_runs", "table1", "curves", "confidence",
                        "confidence_summary", "sweeps", "weak_teacher", "compare_table1",
                        "findings"}
    assert len(res["sweeps"]) and len(res["weak_teacher"])  # full's paths ran
    findings = res["findings"]
    assert findings["holds"].notna().sum() >= 5
