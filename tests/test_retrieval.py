"""cvtutor.metrics.retrieval against scikit-learn and brute force; cvtutor.nn.contrastive against
brute-force loops and torch's cross_entropy."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score

from cvtutor.metrics import retrieval as R
from cvtutor.nn import contrastive as C


def random_run(q=7, g=30, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    dist = rng.integers(0, 6, (q, g)).astype(float) if ties else rng.random((q, g))
    relevant = rng.random((q, g)) < 0.3
    relevant[:, 0] = True  # every query has a relevant item
    return dist, relevant


@pytest.mark.parametrize("ties", [False, True])
def test_ap_equals_sklearn(ties):
    dist, rel = random_run(ties=ties)
    ap = R.average_precision(torch.tensor(dist), torch.tensor(rel)).numpy()
    ref = [average_precision_score(rel[i], -dist[i]) for i in range(len(dist))]
    np.testing.assert_allclose(ap, ref, rtol=1e-12)
    assert R.mean_average_precision(dist, rel) == pytest.approx(np.mean(ref))


def test_ap_with_ignored_items_equals_sklearn_on_the_rest():
    dist, rel = random_run(seed=1, ties=True)
    ignore = np.random.default_rng(2).random(dist.shape) < 0.25
    ignore[:, 0] = False
    ap = R.average_precision(dist, rel, ignore).numpy()
    ref = [average_precision_score(rel[i][~ignore[i]], -dist[i][~ignore[i]])
           for i in range(len(dist))]
    np.testing.assert_allclose(ap, ref, rtol=1e-12)


def test_ap_hand_cases():
    # ranking: hit, miss, hit -> AP = (1/1 + 2/3) / 2
    ap = R.average_precision([[0.1, 0.2, 0.3]], [[True, False, True]])
    assert float(ap[0]) == pytest.approx(5 / 6)
    assert float(R.average_precision([[0.0, 1.0]], [[True, True]])[0]) == 1.0
    assert torch.isnan(R.average_precision([[0.0, 1.0]], [[False, False]])[0])
    # a tie of a hit and a miss at the top: precision 1/2 at recall 1, whatever the order
    assert float(R.average_precision([[0.0, 0.0]], [[False, True]])[0]) == 0.5
    assert float(R.average_precision([[0.0, 0.0]], [[True, False]])[0]) == 0.5


def brute_ranks(dist, rel, ignore):
    """First-hit rank, P@k and R@k with python loops over the stable order of the kept items."""
    out = []
    for i in range(len(dist)):
        kept = [j for j in np.argsort(dist[i], kind="stable") if not ignore[i, j]]
        hits = [bool(rel[i, j]) for j in kept]
        out.append(hits)
    return out


def test_cmc_precision_recall_against_brute_force():
    dist, rel = random_run(q=9, g=25, seed=3, ties=True)
    ignore = np.random.default_rng(4).random(dist.shape) < 0.2
    rel[3] = False  # a query without any match: out of CMC, R@k(fraction) nan
    hits = brute_ranks(dist, rel, ignore)
    first = [h.index(True) if True in h else -1 for h in hits]
    assert R.first_hit_rank(dist, rel, ignore).tolist() == first
    curve = R.cmc(dist, rel, ignore, max_rank=10).numpy()
    valid = [f for f in first if f >= 0]
    np.testing.assert_allclose(curve, [np.mean([f <= k for f in valid]) for k in range(10)])
    assert np.all(np.diff(curve) >= 0)
    for k in (1, 3, 5):
        p = R.precision_at_k(dist, rel, k, ignore).numpy()
        np.testing.assert_allclose(p, [sum(h[:k]) / k for h in hits])
        r_hit = R.recall_at_k(dist, rel, k, ignore).numpy()
        np.testing.assert_allclose(r_hit, [float(any(h[:k])) for h in hits])
        r_frac = R.recall_at_k(dist, rel, k, ignore, fraction=True).numpy()
        ref = [sum(h[:k]) / sum(h) if sum(h) else np.nan for h in hits]
        np.testing.assert_allclose(r_frac, ref)
    # CMC(k) is the mean hit R@k over the valid queries
    r5 = R.recall_at_k(dist, rel, 5, ignore).numpy()
    assert curve[4] == pytest.approx(np.mean([r5[i] for i in range(len(first)) if first[i] >= 0]))


def test_reid_protocol_hand_case():
    # query: id 1 camera 1. gallery: same id same cam (removed), junk -1 (removed), distractor 0
    # (a wrong answer), other id, same id other cam
    g_ids, g_cams = [1, -1, 0, 2, 1], [1, 2, 3, 2, 2]
    dist = [[0.0, 0.1, 0.2, 0.3, 0.4]]
    rel, ignore = R.reid_masks([1], g_ids, [1], g_cams)
    assert rel.tolist() == [[False, False, False, False, True]]
    assert ignore.tolist() == [[True, True, False, False, False]]
    out = R.evaluate_reid(dist, [1], g_ids, [1], g_cams, max_rank=3)
    # the true match comes third after the distractor and id 2: rank-3, AP = 1/3
    assert out["cmc"].tolist() == [0.0, 0.0, 1.0] and out["mAP"] == pytest.approx(1 / 3)
    assert out["n_valid"] == 1
    # with no junk rule the -1 image is an ordinary wrong answer (first), the match comes fourth
    kept = R.evaluate_reid(dist, [1], g_ids, [1], g_cams, max_rank=4, junk_ids=())
    assert kept["cmc"].tolist() == [0.0, 0.0, 0.0, 1.0] and kept["mAP"] == pytest.approx(1 / 4)


def test_reid_evaluation_matches_a_brute_force_market_loop():
    rng = np.random.default_rng(5)
    q_ids, q_cams = rng.integers(1, 6, 12), rng.integers(1, 4, 12)
    g_ids, g_cams = rng.integers(-1, 6, 60), rng.integers(1, 4, 60)
    dist = rng.random((12, 60))
    out = R.evaluate_reid(dist, q_ids, g_ids, q_cams, g_cams, max_rank=5)
    aps, firsts = [], []
    for i in range(12):  # the torchreid eval_market1501 loop, with junk -1 removed
        order = np.argsort(dist[i], kind="stable")
        keep = ~(((g_ids[order] == q_ids[i]) & (g_cams[order] == q_cams[i])) | (g_ids[order] == -1))
        match = (g_ids[order] == q_ids[i])[keep]
        if not match.any():
            continue
        firsts.append(np.argmax(match))
        prec = np.cumsum(match) / np.arange(1, len(match) + 1)
        aps.append((prec * match).sum() / match.sum())
    assert out["n_valid"] == len(aps)
    assert out["mAP"] == pytest.approx(np.mean(aps))
    ref = [np.mean(np.array(firsts) <= k) for k in range(5)]
    np.testing.assert_allclose(out["cmc"].numpy(), ref)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"\(Q, G\)"):
        R.average_precision(np.zeros(3), np.zeros(3, bool))
    with pytest.raises(ValueError, match="relevant must be a boolean"):
        R.average_precision(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"relevant must be a boolean \(Q, G\) = \(2, 3\)"):
        R.average_precision(np.zeros((2, 3)), np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match=r"ignore must be a boolean \(Q, G\) = \(2, 3\)"):
        R.average_precision(np.zeros((2, 3)), np.ones((2, 3), bool), np.zeros((3, 2), bool))
    with pytest.raises(ValueError, match="ignore must be a boolean"):
        R.average_precision(np.zeros((2, 3)), np.ones((2, 3), bool), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="max_rank must be >= 1"):
        R.cmc(np.zeros((1, 2)), np.ones((1, 2), bool), max_rank=0)
    assert R.cmc(np.zeros((1, 2)), np.ones((1, 2), bool), max_rank=1).tolist() == [1.0]
    for fn in (R.precision_at_k, R.recall_at_k):
        with pytest.raises(ValueError, match="k must be >= 1"):
            fn(np.zeros((1, 2)), np.ones((1, 2), bool), 0)
    with pytest.raises(ValueError, match="different lengths"):
        R.hamming_distance(R.pack_codes(torch.ones(2, 9)), R.pack_codes(torch.ones(2, 8)))
    with pytest.raises(ValueError, match="uint8 tensor from pack_codes"):
        R.hamming_distance(torch.ones(2, 1), R.pack_codes(torch.ones(2, 8)))
    with pytest.raises(ValueError, match="finite"):
        R.average_precision(np.full((1, 2), np.inf), np.ones((1, 2), bool))
    with pytest.raises(ValueError, match="undefined"):
        R.cmc(np.zeros((1, 2)), np.zeros((1, 2), bool))
    with pytest.raises(ValueError, match="match the query"):
        R.evaluate_reid(np.zeros((2, 2)), [1], [1, 2], [1], [1, 2])
    with pytest.raises(ValueError, match="1-D"):
        R.reid_masks([1, 2], [1], [1], [1])
    with pytest.raises(ValueError, match=r"\{-1, \+1\}"):
        R.pack_codes(torch.tensor([[0.5, 1.0]]))


# ---------------------------------------------------------------------------------------------
# Hamming ranking
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("q", [12, 32, 48, 5])
def test_packed_hamming_equals_naive_count_and_inner_product_identity(q):
    g = torch.Generator().manual_seed(q)
    u = torch.randint(0, 2, (9, q), generator=g) * 2 - 1
    v = torch.randint(0, 2, (40, q), generator=g) * 2 - 1
    pu, pv = R.pack_codes(u), R.pack_codes(v)
    assert pu.shape == (9, (q + 7) // 8) and pu.dtype == torch.uint8
    np.testing.assert_array_equal(pu.numpy(), np.packbits((u > 0).numpy(), axis=1))
    assert torch.equal(R.pack_codes(u > 0), pu) and torch.equal(R.pack_codes((u > 0).int()), pu)
    d = R.hamming_distance(pu, pv)
    naive = (u[:, None, :] != v[None, :, :]).sum(2)
    assert torch.equal(d, naive.int())
    assert torch.equal(d, ((q - u @ v.T) // 2).int())  # d_H = (q - u.v) / 2
    order, dsorted = R.hamming_rank(pu, pv, top=10)
    assert torch.equal(dsorted, torch.sort(naive, dim=1, stable=True).values[:, :10].int())
    assert torch.equal(order, torch.sort(naive, dim=1, stable=True).indices[:, :10])


def test_hamming_map_matches_sklearn_with_ties():
    g = torch.Generator().manual_seed(0)
    labels_q = torch.randint(0, 4, (10,), generator=g)
    labels_db = torch.randint(0, 4, (50,), generator=g)
    proto = torch.randint(0, 2, (4, 16), generator=g).bool()
    flip = torch.rand(60, 16, generator=g) < 0.2
    codes = proto[torch.cat([labels_q, labels_db])] ^ flip
    d = R.hamming_distance(R.pack_codes(codes[:10]), R.pack_codes(codes[10:])).double()
    rel = labels_q[:, None] == labels_db[None, :]
    ap = R.average_precision(d, rel).numpy()
    ref = [average_precision_score(rel[i].numpy(), -d[i].numpy()) if rel[i].any() else np.nan
           for i in range(10)]
    np.testing.assert_allclose(ap, ref, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------
def test_info_nce_matrix_form_against_loop_and_cross_entropy():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    tau = 0.2
    loss = C.info_nce(q, k, tau)
    qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
    brute = 0.0
    for i in range(6):
        s = torch.stack([qn[i] @ kn[j] / tau for j in range(6)])
        brute += -(s[i] - torch.logsumexp(s, 0)) / 6
    assert loss.item() == pytest.approx(brute.item(), rel=1e-6)
    ce = F.cross_entropy(qn @ kn.T / tau, torch.arange(6))
    assert loss.item() == pytest.approx(ce.item(), rel=1e-6)
    sym = C.info_nce(q, k, tau, symmetric=True)
    assert sym.item() == pytest.approx(0.5 * (loss + C.info_nce(k, q, tau)).item(), rel=1e-6)
    raw = C.info_nce(q, k, tau, normalize=False)
    ce = F.cross_entropy(q @ k.T / tau, torch.arange(6))
    assert raw.item() == pytest.approx(ce.item(), rel=1e-6)


@pytest.mark.parametrize("shared", [False, True])
def test_info_nce_with_k_negatives_against_loop(shared):
    g = torch.Generator().manual_seed(1)
    q, pos = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    neg = torch.randn(7, 3, generator=g) if shared else torch.randn(4, 7, 3, generator=g)
    loss = C.info_nce_negatives(q, pos, neg, temperature=0.5, normalize=False)
    brute = 0.0
    for i in range(4):
        negs = neg if shared else neg[i]
        s = torch.stack([q[i] @ pos[i]] + [q[i] @ n for n in negs]) / 0.5
        brute += -torch.log(torch.exp(s[0]) / torch.exp(s).sum()) / 4
    assert loss.item() == pytest.approx(brute.item(), rel=1e-6)
    # with the other keys of the batch as the negatives it is the matrix form
    bank = torch.stack([torch.cat([pos[:i], pos[i + 1:]]) for i in range(4)])
    matrix = C.info_nce(q, pos, 0.1).item()
    assert C.info_nce_negatives(q, pos, bank, 0.1).item() == pytest.approx(matrix, rel=1e-6)


@pytest.mark.parametrize("metric,margin",
                         [("euclidean", 0.3), ("cosine", 0.1), ("euclidean", None)])
def test_batch_hard_triplet_against_brute_force(metric, margin):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(12, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 4])  # id 3 has no positive: left out
    loss = C.batch_hard_triplet(x, y, margin, metric)

    def d(a, b):
        return (a - b).norm() if metric == "euclidean" else 1 - F.cosine_similarity(a, b, dim=0)

    terms = []
    for a in range(12):
        pos = [d(x[a], x[p]) for p in range(12) if p != a and y[p] == y[a]]
        neg = [d(x[a], x[n]) for n in range(12) if y[n] != y[a]]
        if pos and neg:
            gap = max(pos) - min(neg)
            terms.append(F.softplus(gap) if margin is None else torch.relu(gap + margin))
    assert loss.item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-9)
    # finite gradients, also through the zero self-distances
    x.requires_grad_(True)
    C.batch_hard_triplet(x, y, margin, metric).backward()
    assert torch.isfinite(x.grad).all()


def test_triplet_refuses_a_batch_without_positives():
    with pytest.raises(ValueError, match="PKSampler"):
        C.batch_hard_triplet(torch.randn(3, 2), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="metric"):
        C.batch_hard_triplet(torch.randn(4, 2), torch.tensor([0, 0, 1, 1]), metric="l1")


def test_pk_sampler_counts_and_determinism():
    labels = torch.tensor([5] * 6 + [7] * 2 + [9] * 4 + [11] * 3 + [13] * 5)
    s = C.PKSampler(labels, p=3, k=4, n_batches=20, seed=3)
    batches = list(s)
    assert len(batches) == len(s) == 20
    for b in batches:
        ids = labels[b].view(3, 4)
        assert (ids == ids[:, :1]).all() and len(set(ids[:, 0].tolist())) == 3  # P ids x K images
        for row, idx in zip(ids[:, 0].tolist(), torch.tensor(b).view(3, 4)):
            if (labels == row).sum() >= 4:
                assert len(set(idx.tolist())) == 4  # without replacement when the id has >= K
    assert batches == list(C.PKSampler(labels, p=3, k=4, n_batches=20, seed=3))
    s.set_epoch(1)
    assert list(s) != batches
    # every identity and every image appears over many batches
    many = torch.cat([C.PKSampler(labels, 3, 4, seed=0).batch(b) for b in range(200)])
    assert set(many.tolist()) == set(range(len(labels)))
    with pytest.raises(ValueError, match="identities"):
        C.PKSampler(labels, p=6, k=2)
    # as a DataLoader's batch_sampler
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(labels), batch_sampler=C.PKSampler(labels, 2, 3, 4, seed=1))
    assert [tuple(b[0].shape) for b in loader] == [(6,)] * 4
