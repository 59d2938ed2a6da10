"""Classification metrics against scikit-learn and hand cases; the world's class splits."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from cvtutor.data.imageclass import splits
from cvtutor.metrics import classification as M


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_and_aupr_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    known = rng.integers(0, 6, 70).astype(float)  # integer scores: many ties
    unknown = rng.integers(0, 4, 40).astype(float)
    y = np.r_[np.ones(70), np.zeros(40)]
    s = np.r_[known, unknown]
    assert M.open_set_auroc(known, unknown) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert M.aupr_in(known, unknown) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert M.aupr_out(known, unknown) == pytest.approx(
        average_precision_score(1 - y, -s), abs=1e-12
    )
    cont = rng.normal(size=110)
    assert M.roc_auc(y, cont) == pytest.approx(roc_auc_score(y, cont), abs=1e-12)
    assert M.average_precision(y, cont) == pytest.approx(
        average_precision_score(y, cont), abs=1e-12
    )


def test_auroc_hand_cases_and_bad_input():
    assert M.open_set_auroc([2.0, 3.0], [0.0, 1.0]) == 1.0
    assert M.open_set_auroc([0.0, 1.0], [2.0, 3.0]) == 0.0
    assert M.open_set_auroc([1.0], [1.0]) == 0.5  # a tie counts half
    assert M.aupr_in([1.0, 0.5], [0.0]) == 1.0
    with pytest.raises(ValueError, match="both classes present"):
        M.roc_auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="same length"):
        M.roc_auc([1, 0], [0.2])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        M.open_set_auroc([], [1.0])


@pytest.mark.parametrize("seed", [0, 1])
def test_open_set_f1_is_sklearn_macro_over_k_plus_one(seed):
    rng = np.random.default_rng(seed)
    k = 6
    t = rng.integers(0, 10, 300)  # classes 6..9 are unknown
    p = np.where(rng.random(300) < 0.6, t, rng.integers(0, 8, 300))
    ref = f1_score(
        np.minimum(t, k),
        np.minimum(p, k),
        labels=list(range(k + 1)),
        average="macro",
        zero_division=0,
    )
    assert M.open_set_f1(t, p, k) == pytest.approx(ref, abs=1e-12)
    assert M.open_set_f1(t, t, k) == 1.0
    # never predicting "unknown" costs the unknown class its whole F1 share
    # (class 0: precision 1/2, recall 1, F1 2/3; class 1: F1 1; unknown: F1 0)
    assert M.open_set_f1([0, 1, 2], [0, 1, 0], 2) == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_openness_matches_the_papers_numbers():
    # E07 Sec. 4.1: 6 of 10 -> 22.54 %, CIFAR+10 (4 of 14) 46.54 %, CIFAR+50 (4 of 54) 72.78 %,
    # TinyImageNet (20 of 200) 68.37 % (the paper truncates to two decimals)
    for (a, b), paper in {(6, 10): 22.54, (4, 14): 46.54, (4, 54): 72.78, (20, 200): 68.37}.items():
        assert math.floor(1e4 * M.openness(a, b)) / 100 == paper
    assert M.openness(6, 10, n_target=6) == pytest.approx(1 - math.sqrt(12 / 16))  # Scheirer's form
    assert M.openness(5, 5) == 0.0
    with pytest.raises(ValueError, match="n_train <= n_test"):
        M.openness(11, 10)


def test_corruption_errors_hand_case():
    err = {"fog": [0.2, 0.3, 0.5], "snow": [0.1, 0.1, 0.1]}
    base = {"fog": [0.4, 0.6, 1.0], "snow": [0.2, 0.2, 0.2]}
    assert M.corruption_errors(err, base) == pytest.approx({"fog": 0.5, "snow": 0.5})
    assert M.mean_corruption_error(err, base) == pytest.approx(0.5)
    # relative: (sum E - 3 * 0.1) / (sum E_base - 3 * 0.2)
    rel = M.corruption_errors(
        {"fog": err["fog"]}, {"fog": base["fog"]}, clean=0.1, baseline_clean=0.2
    )
    assert rel["fog"] == pytest.approx((1.0 - 0.3) / (2.0 - 0.6))
    with pytest.raises(
        ValueError, match="snow: .* cannot normalise"
    ):  # the baseline never degrades
        M.corruption_errors(err, base, clean=0.1, baseline_clean=0.2)
    with pytest.raises(ValueError, match="same corruptions"):
        M.corruption_errors({"fog": [0.1]}, {"snow": [0.1]})


class _Linear(torch.nn.Module):
    """Two-class logits (0, w.x + b): the cross-entropy for y = 1 falls with the margin w.x + b."""

    def __init__(self, w, b=0.0):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x):
        m = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(m), m], 1)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_reaches_the_closed_form_worst_case_on_a_linear_model(norm):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(48, generator=g)
    model = _Linear(w)
    x = torch.full((4, 3, 4, 4), 0.5)  # the box 0..1 does not bind at eps = 0.1
    y = torch.ones(4, dtype=torch.long)
    eps = 0.1
    adv = M.pgd_attack(model, x, y, eps, steps=20, norm=norm, random_start=False)
    drop = x.flatten(1) @ w - adv.flatten(1) @ w
    closed = eps * (w.abs().sum() if norm == "linf" else w.norm())  # eps ||w||_1 or eps ||w||_2
    assert torch.allclose(drop, closed.expand(4), rtol=1e-4)
    d = (adv - x).flatten(1)
    assert (
        (d.abs().amax(1) <= eps + 1e-6).all()
        if norm == "linf"
        else (d.norm(dim=1) <= eps + 1e-5).all()
    )
    # a random start stays in the ball and the box, and the result is seeded
    adv2 = M.pgd_attack(model, x, y, eps, steps=20, norm=norm, seed=3)
    assert torch.equal(adv2, M.pgd_attack(model, x, y, eps, steps=20, norm=norm, seed=3))
    assert adv2.min() >= 0 and adv2.max() <= 1
    with pytest.raises(ValueError, match="norm must be"):
        M.pgd_attack(model, x, y, eps, norm="l1")


def test_accuracy():
    assert M.accuracy(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])) == 0.5
    with pytest.raises(ValueError, match=r"logits \(N, K\)"):
        M.accuracy(torch.zeros(3), torch.zeros(3))


def test_open_set_splits_distinct_seeded_and_relabelled():
    s = splits.open_set_splits(10, 6, 5, seed=0)
    assert len(s) == 5 and len(set(s)) == 5 and all(len(k) == 6 for k in s)
    assert s == splits.open_set_splits(10, 6, 5, seed=0) and s != splits.open_set_splits(
        10, 6, 5, seed=1
    )
    y = torch.arange(10)
    r = splits.relabel_known(y, s[0])
    assert (
        sorted(r[list(s[0])].tolist()) == list(range(6))
        and (r[[c for c in range(10) if c not in s[0]]] == 6).all()
    )
    with pytest.raises(ValueError, match="n_splits must be in"):
        splits.open_set_splits(4, 2, 7)  # only C(4, 2) = 6 partitions


def test_incremental_tasks_and_label_fraction():
    tasks = splits.class_incremental_tasks(10, 5, seed=0)
    assert sorted(c for t in tasks for c in t) == list(range(10)) and all(
        len(t) == 2 for t in tasks
    )
    assert splits.class_incremental_tasks(4, 2) == [(0, 1), (2, 3)]
    assert splits.task_of_class(tasks, torch.tensor(tasks[3])).tolist() == [3, 3]
    with pytest.raises(ValueError, match="must divide"):
        splits.class_incremental_tasks(10, 3)
    y = torch.arange(100) % 4
    idx = splits.label_fraction(y, 0.1, seed=0)
    assert torch.equal(y[idx].bincount(), torch.full((4,), 2)) or torch.equal(
        y[idx].bincount(), torch.full((4,), 3)
    )
    assert torch.equal(idx, splits.label_fraction(y, 0.1, seed=0)) and len(
        torch.unique(idx)
    ) == len(idx)
    with pytest.raises(ValueError, match="fraction must be in"):
        splits.label_fraction(y, 0.0)
