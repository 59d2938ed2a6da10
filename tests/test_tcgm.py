import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy as scipy_entropy

from cvtutor.data.digits import load_digits, multimodal_digits
from cvtutor.data.multimodal import DiscreteCIWorld, GaussianModalities, label_mask
from cvtutor.metrics.clustering import clustering_accuracy, hungarian_match
from cvtutor.metrics.information import entropy, total_correlation
from cvtutor.papers import tcgm as T


@pytest.fixture(scope="module")
def world():
    return DiscreteCIWorld.random(n_classes=3, sizes=(4, 3, 5), seed=1)


def _log(tables):
    return [torch.log(torch.as_tensor(t, dtype=torch.float64)) for t in tables]


# ---------------------------------------------------------------------------------------------
# information-theoretic identities on an exact discrete world
# ---------------------------------------------------------------------------------------------
def test_expected_gain_at_bayes_posteriors_equals_total_correlation(world):
    h_star = [world.posterior(m) for m in range(3)]
    tc = total_correlation(world.joint())
    assert tc > 0.05
    assert T.expected_tc_gain(world, h_star, world.prior) == pytest.approx(tc, abs=1e-10)


def test_constant_classifier_scores_zero(world):
    const = [np.tile(world.prior, (len(world.marginal(m)), 1)) for m in range(3)]
    assert T.expected_tc_gain(world, const, world.prior) == pytest.approx(0.0, abs=1e-12)
    # the finite-sample gain of Eq. (6) is exactly 0 too
    log_h = [torch.log(torch.tensor(world.prior)).expand(7, -1) for _ in range(3)]
    assert float(T.tc_gain(log_h, torch.log(torch.tensor(world.prior)))) == pytest.approx(0.0, abs=1e-6)


def test_other_classifiers_score_below_tc_and_permutation_is_free(world):
    rng = np.random.default_rng(0)
    tc = total_correlation(world.joint())
    h_star = [world.posterior(m) for m in range(3)]
    for _ in range(5):
        h = [rng.dirichlet(np.ones(3), size=len(world.marginal(m))) for m in range(3)]
        assert T.expected_tc_gain(world, h, rng.dirichlet(np.ones(3))) < tc
    perm = [2, 0, 1]
    permuted = T.expected_tc_gain(world, [t[:, perm] for t in h_star], np.asarray(world.prior)[perm])
    assert permuted == pytest.approx(tc, abs=1e-10)


def test_lemma2_ratio_from_posteriors(world):
    joint = world.joint()
    marg = [world.marginal(m) for m in range(3)]
    ratio = joint / (marg[0][:, None, None] * marg[1][None, :, None] * marg[2][None, None, :])
    post = [world.posterior(m) for m in range(3)]
    lemma = np.einsum("ic,jc,kc->ijk", post[0], post[1], post[2] / np.asarray(world.prior) ** 2)
    np.testing.assert_allclose(lemma, ratio, rtol=1e-10)


def test_aggregator_of_bayes_posteriors_is_the_joint_posterior(world):
    full = world.joint_with_label()  # (C, K1, K2, K3)
    exact = full / full.sum(0, keepdims=True)
    idx = np.array(list(itertools.product(range(4), range(3), range(5))))
    log_h = [torch.log(torch.tensor(world.posterior(m)[idx[:, m]])) for m in range(3)]
    agg = T.aggregator(log_h, torch.log(torch.tensor(world.prior))).exp().numpy()
    np.testing.assert_allclose(agg, exact[:, idx[:, 0], idx[:, 1], idx[:, 2]].T, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Eq. (6) implementation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("M", [2, 3, 4])
def test_distinct_tuple_sum_equals_brute_force(M):
    g = torch.Generator().manual_seed(M)
    h = [torch.rand(6, 3, generator=g, dtype=torch.float64) for _ in range(M)]
    brute = torch.zeros(3, dtype=torch.float64)
    for tup in itertools.permutations(range(6), M):
        brute += torch.stack([h[m][i] for m, i in enumerate(tup)]).prod(0)
    torch.testing.assert_close(T.distinct_tuple_sum(h), brute)
    assert sum(1 for _ in T.set_partitions(range(M))) == {2: 2, 3: 5, 4: 15}[M]  # Bell numbers


def test_tc_gain_two_views_is_the_max_mig_form():
    g = torch.Generator().manual_seed(0)
    log_h = [torch.log_softmax(torch.randn(9, 4, generator=g, dtype=torch.float64), 1) for _ in range(2)]
    log_p = torch.log_softmax(torch.randn(4, generator=g, dtype=torch.float64), 0)
    h1, h2, p = log_h[0].exp(), log_h[1].exp(), log_p.exp()
    pair = (h1 / p) @ h2.T  # sum_c h1_c h2_c / p_c for every (i, j)
    off = ~torch.eye(9, dtype=torch.bool)
    direct = 1 + torch.log(pair.diag()).mean() - pair[off].mean()
    torch.testing.assert_close(T.tc_gain(log_h, log_p).double(), direct, atol=1e-6, rtol=1e-6)


def test_tc_gain_at_bayes_posteriors_estimates_tc_on_gaussians():
    w = GaussianModalities.default()
    tc, se = w.total_correlation(n=100_000)
    d = w.sample(40_000, seed=3)
    log_h = [w.log_posterior(m, x.double()) for m, x in enumerate(d["x"])]
    est = float(T.tc_gain(log_h, w.log_prior().double()))
    assert est == pytest.approx(tc, abs=0.03)
    # and the exact log-ratio is R_* - 1 of Lemma 3
    torch.testing.assert_close(T.tc_reward(log_h, w.log_prior().double()) - 1,
                               w.log_ratio([x.double() for x in d["x"]]), atol=1e-5, rtol=1e-5)


def test_tc_gain_gradcheck():
    g = torch.Generator().manual_seed(0)
    logits = [torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    prior = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)

    def f(a, b, c, p):
        return T.tc_gain([torch.log_softmax(a, 1), torch.log_softmax(b, 1), torch.log_softmax(c, 1)],
                         torch.log_softmax(p, 0)).double()

    assert torch.autograd.gradcheck(f, (*logits, prior))


def test_tc_gain_errors():
    lh = [torch.log_softmax(torch.randn(4, 3), 1) for _ in range(3)]
    lp = torch.log(torch.full((3,), 1 / 3))
    with pytest.raises(ValueError, match="log-probabilities"):
        T.tc_gain([torch.randn(4, 3)] * 3, lp)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        T.tc_gain([lh[0], lh[1][:3], lh[2]], lp)
    with pytest.raises(ValueError, match="log-prior"):
        T.tc_gain(lh, lp[:2])
    with pytest.raises(ValueError, match="at least M"):
        T.tc_gain([x[:2] for x in lh], lp)
    with pytest.raises(TypeError, match="list of M >= 2"):
        T.tc_gain(lh[0], lp)


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------
def test_hungarian_accuracy_on_permuted_labels_is_one():
    y = torch.randint(0, 5, (200,), generator=torch.Generator().manual_seed(0))
    perm = torch.tensor([3, 0, 4, 1, 2])
    assert clustering_accuracy(y, perm[y]) == 1.0
    assert hungarian_match(y, perm[y]) == {int(perm[c]): c for c in range(5)}


def test_hungarian_accuracy_equals_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(5):
        y, p = rng.integers(0, 4, 60), rng.integers(0, 4, 60)
        brute = max(np.mean(np.asarray(perm)[p] == y) for perm in itertools.permutations(range(4)))
        assert clustering_accuracy(y, p) == pytest.approx(brute)


def test_hungarian_errors():
    with pytest.raises(ValueError, match="same length"):
        clustering_accuracy([0, 1], [0])
    with pytest.raises(TypeError, match="integer labels"):
        clustering_accuracy(np.array([0.5, 1.0]), np.array([0, 1]))
    with pytest.raises(ValueError, match="1-D"):
        clustering_accuracy(np.zeros((2, 2), dtype=int), np.zeros((2, 2), dtype=int))


def test_total_correlation_independent_is_zero_and_identical_is_entropy():
    rng = np.random.default_rng(0)
    a, b, c = rng.dirichlet(np.ones(3)), rng.dirichlet(np.ones(4)), rng.dirichlet(np.ones(2))
    assert total_correlation(np.einsum("i,j,k->ijk", a, b, c)) == pytest.approx(0.0, abs=1e-12)
    # two identical copies: TC = I(X; X) = H(X); M identical copies: (M - 1) H(X)
    assert total_correlation(np.diag(a)) == pytest.approx(scipy_entropy(a), abs=1e-12)
    triple = np.zeros((3, 3, 3))
    triple[range(3), range(3), range(3)] = a
    assert total_correlation(triple) == pytest.approx(2 * scipy_entropy(a), abs=1e-12)


def test_total_correlation_is_kl_to_product_of_marginals(world):
    joint = world.joint()
    prod = np.einsum("i,j,k->ijk", *[world.marginal(m) for m in range(3)])
    assert total_correlation(joint) == pytest.approx(scipy_entropy(joint.ravel(), prod.ravel()), abs=1e-12)
    assert entropy(joint) == pytest.approx(scipy_entropy(joint.ravel()), abs=1e-12)
    with pytest.raises(ValueError, match="sum to 1"):
        total_correlation(joint * 2)


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def test_gaussian_world_shapes_and_exact_posteriors():
    w = GaussianModalities.default(n_classes=4)
    d = w.sample(500, seed=0)
    assert [tuple(x.shape) for x in d["x"]] == [(500, 2)] * 3 and d["y"].shape == (500,)
    assert torch.equal(w.sample(500, seed=0)["x"][1], d["x"][1])  # seeded
    post = w.joint_log_posterior(d["x"]).exp()
    torch.testing.assert_close(post.sum(1), torch.ones(500))
    # joint posterior by brute force: prior times product of mixture densities
    dens = [torch.stack([sum(torch.exp(-((x - torch.tensor(mu[c, k], dtype=torch.float32)) ** 2).sum(1)
                                       / (2 * s * s)) for k in range(2)) for c in range(4)], 1)
            for x, mu, s in zip(d["x"], w.centres, w.sigmas)]
    brute = torch.tensor(w.prior) * dens[0] * dens[1] * dens[2]
    torch.testing.assert_close(post, brute / brute.sum(1, keepdim=True), atol=1e-5, rtol=1e-4)
    acc = w.bayes_accuracy(n=20_000)
    assert all(acc["all"] > acc[w.name(m)] for m in range(3))


def test_gaussian_world_with_uninformative_modalities_has_zero_tc():
    same = np.zeros((3, 1, 2))
    w = GaussianModalities((0.5, 0.3, 0.2), (same, same, same), (1.0, 1.0, 1.0))
    tc, se = w.total_correlation(n=2000)
    assert abs(tc) < 1e-6 and se < 1e-6


def test_gaussian_world_errors():
    with pytest.raises(ValueError, match="prior"):
        GaussianModalities.default(prior=(0.5, 0.6, 0.1, 0.1))
    w = GaussianModalities.default()
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        w.log_likelihood(0, torch.zeros(3, 5))
    with pytest.raises(ValueError, match="modality index"):
        w.log_likelihood(7, torch.zeros(3, 2))


def test_label_mask_is_stratified():
    y = torch.arange(4).repeat_interleave(torch.tensor([500, 300, 150, 50]))
    mask = label_mask(y, 0.01, seed=0)
    assert torch.bincount(y[mask]).tolist() == [5, 3, 2, 1]  # rounded, at least one per class
    with pytest.raises(ValueError, match="label rate"):
        label_mask(y, 0.0)
    with pytest.raises(TypeError, match="integer tensor"):
        label_mask(y.float(), 0.1)


def test_multimodal_digits_draws_images_of_the_labelled_class():
    d = multimodal_digits(n_train=200, n_test=50, n_classes=5, seed=0)
    assert [tuple(x.shape) for x in d["x_train"]] == [(200, 64), (200, 64), (200, 16)]
    assert [tuple(x.shape) for x in d["x_test"]] == [(50, 64), (50, 64), (50, 16)]
    assert int(d["y_train"].max()) < 5
    split = load_digits(seed=0)
    dist = torch.cdist(d["x_train"][0], split["x_train"])
    nearest = dist.argmin(1)
    assert torch.all(dist.min(1).values < 1e-6)  # the clean modality is a training image...
    assert torch.equal(split["y_train"][nearest], d["y_train"])  # ...of the sample's class
    with pytest.raises(ValueError, match="n_classes"):
        multimodal_digits(n_classes=11)


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
def test_train_and_predict_shapes():
    cfg = T.Config.fast().replace(n_train=300, n_test=100, steps=5, hidden=16)
    w, tr, te = T.gaussian_data(cfg)
    mask = label_mask(tr["y"], 0.05)
    model, hist = T.train("tcgm", tr["x"], tr["y"], mask, cfg, steps=5)
    assert list(hist.columns) == ["step", "ce", "tcg"] and len(hist) == 5
    preds = T.predict(model, te["x"])
    assert set(preds) == {"m1", "m2", "m3", "all"} and all(v.shape == (100, 4) for v in preds.values())
    hgr, hist = T.train("hgr", tr["x"], tr["y"], mask, cfg, steps=3)
    assert set(T.predict(hgr, te["x"])) == {"all"} and "soft_hgr" in hist
    res = T.evaluate(model, te["x"], te["y"], None, w)
    assert 0 <= res["acc_all"] <= 1 and res["kl_m1"] >= 0
    with pytest.raises(ValueError, match="unknown method"):
        T.train("vat", tr["x"], tr["y"], mask, cfg)
    with pytest.raises(ValueError, match="boolean mask"):
        T.train("ce", tr["x"], tr["y"], mask.long(), cfg)


def test_soft_hgr_rewards_correlated_features():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(256, 3, generator=g)
    noise = torch.randn(256, 3, generator=g)
    assert float(T.soft_hgr([z, z])) > float(T.soft_hgr([z, noise]))
    with pytest.raises(ValueError, match="at least 2 modalities"):
        T.soft_hgr([z])


def test_paper_numbers_are_consistent():
    for key in ("news_m2_10", "news_m5_10", "news_m10_10"):
        v = T.PAPER[key].values
        assert all(v[f"TCGM {c}"] > v[f"CE {c}"] for c in ("m1", "m2", "m3", "All"))
    assert math.isclose(T.PAPER["adni_10"].values["TCGM All"], 65.17)


def test_run_returns_storable_results(tmp_path):
    from cvtutor import report

    cfg = T.Config.fast().replace(steps=5, clustering_steps=5, digits_steps=5, n_train=300, n_test=200,
                                  digits_train=200, hidden=16, spectral_max=200)
    res = T.run(cfg)
    path = report.save_results(res, tmp_path / "tcgm.json", report.run_metadata("tcgm", "fast", "cpu", 0))
    loaded, _ = report.load_results(path)
    assert set(loaded["table"]["method"]) == {"CE", "HGR", "TCGM"}
    assert loaded["compare_low_rate"]["holds"].notna().sum() == 4  # the four TCGM rows carry the claims


def test_log_prob_check_is_skipped_only_where_it_would_sync():
    bad = [torch.randn(4, 3)] * 3
    lp = torch.log(torch.full((3,), 1 / 3))
    T._check_log_h(bad, lp, values=False)  # shapes only: no value read
    with pytest.raises(ValueError, match="log-probabilities"):
        T._check_log_h(bad, lp, values=True)
    with pytest.raises(ValueError, match="log-probabilities"):
        T._check_log_h(bad, lp)  # on the CPU the default checks the values


def test_label_log_prior_is_add_one_smoothed():
    lp = T.label_log_prior(torch.tensor([0, 0, 1]), 3)
    assert torch.allclose(lp.exp(), torch.tensor([3 / 6, 2 / 6, 1 / 6]))  # (2+1, 1+1, 0+1) / 6: no class at 0


def test_tcgm_beats_ce_on_a_tiny_fixed_problem():
    """With 12 labels on the Gaussian world, the unlabelled TC term must lift the aggregator's accuracy
    clearly above cross-entropy on the labels alone (fixed seeds; fails if the TC step does nothing)."""
    cfg = T.Config.fast().replace(n_train=1500, n_test=1000, steps=150, hidden=32)
    w, tr, te = T.gaussian_data(cfg, seed=0)
    mask = label_mask(tr["y"], 0.008, 0)
    log_p = T.label_log_prior(tr["y"][mask], w.n_classes)
    acc = {}
    for method in ("ce", "tcgm"):
        model, _ = T.train(method, tr["x"], tr["y"], mask, cfg, seed=0)
        acc[method] = T.evaluate(model, te["x"], te["y"], log_p)["acc_all"]
    assert acc["tcgm"] > acc["ce"] + 0.05, acc


def test_smoke_profile_runs_every_full_path():
    full, smoke = T.Config.full(), T.Config.smoke()
    assert len(smoke.seeds) >= 2 and smoke.digits_classes == full.digits_classes
    res = T.run(smoke)
    assert set(res["sweep"]["seed"]) == set(smoke.seeds) and set(res["table"]["seed"]) == set(smoke.seeds)
    assert "diff" not in res["compare_low_rate"] and "diff" not in res["compare_gain"]
    assert set(res["findings"]["kind"]) <= {"paper claim", "sanity check", "construction"}
