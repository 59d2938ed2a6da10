"""ExchNet (E12): the Hellinger diversity losses, the exchange and anchors, the V step (derived
sign vs printed sign), the hash layer, the shallow baselines, Table 1's harness, the smoke run."""
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial.distance import euclidean
from sklearn.metrics import average_precision_score

from cvtutor.metrics.retrieval import average_precision, hamming_distance, pack_codes
from cvtutor.papers import exchnet as X


def _dist(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)).softmax(-1)


# Eqs. (5)-(7)
def test_hellinger_matches_scipy_and_is_bounded():
    p, q = _dist(20, 9, seed=1).double(), _dist(20, 9, seed=2).double()
    ours = X.hellinger(p, q)
    ref = [euclidean(np.sqrt(a), np.sqrt(b)) / math.sqrt(2) for a, b in zip(p.numpy(), q.numpy())]
    assert np.allclose(ours.numpy(), ref)
    assert float(X.hellinger(p, p).abs().max()) < 1e-12
    e = torch.eye(4, dtype=torch.float64)
    assert torch.allclose(X.hellinger(e[:1], e[1:2]), torch.ones(1, dtype=torch.float64))
    assert bool(((ours >= 0) & (ours <= 1)).all())
    with pytest.raises(ValueError, match="same shape"):
        X.hellinger(p, q[:, :3])


def test_mean_pairwise_is_over_unordered_pairs():
    p = _dist(3, 5, 7, seed=3).double()
    ref = np.mean([[float(X.hellinger(p[b, l], p[b, k])) for l, k in
                    itertools.combinations(range(5), 2)] for b in range(3)], axis=1)
    assert np.allclose(X.mean_pairwise_hellinger(p).numpy(), ref)
    with pytest.raises(ValueError, match="M >= 2"):
        X.mean_pairwise_hellinger(p[:, :1])


def test_spatial_diversity_extremes():
    same = torch.ones(2, 4, 3, 5, 5)
    assert torch.allclose(X.spatial_diversity_loss(same), torch.ones(2))
    # one hot-spot per part at distinct positions: softmax of a huge logit is nearly one-hot
    maps = torch.zeros(1, 4, 1, 5, 5)
    for j in range(4):
        maps[0, j, 0, j, j] = 200.0
    assert float(X.spatial_diversity_loss(maps)) < 1e-6
    with pytest.raises(ValueError, match="B, M, C'"):
        X.spatial_diversity_loss(same[0])


def test_channel_diversity_hinge():
    f = torch.zeros(3, 4, 8)
    assert torch.allclose(X.channel_diversity_loss(f, 0.4), torch.full((3,), 0.4))
    g = torch.full((1, 4, 8), -100.0)
    for j in range(4):
        g[0, j, j] = 100.0
    assert float(X.channel_diversity_loss(g, 0.4)) == 0.0
    with pytest.raises(ValueError, match="t must be"):
        X.channel_diversity_loss(f, 1.5)


def test_diversity_losses_have_gradients():
    x = torch.randn(2, 4, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: X.spatial_diversity_loss(t).sum(), (x,))
    f = torch.randn(2, 4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: X.channel_diversity_loss(t, 0.99).sum(), (f,))


# Eqs. (8), (18)
def test_anchors_equal_groupby_means():
    g = torch.Generator().manual_seed(0)
    f, y = torch.randn(50, 3, 4, generator=g), torch.randint(0, 6, (50,), generator=g)
    anchors = X.class_anchors(f, y, 7)
    df = pd.DataFrame(f.flatten(1).numpy()).assign(y=y.numpy()).groupby("y").mean()
    for c in df.index:
        assert np.allclose(anchors[c].flatten().numpy(), df.loc[c].to_numpy(), atol=1e-6)
    assert float(anchors[6].abs().sum()) == 0.0         # no image of class 6
    with pytest.raises(ValueError, match="labels must lie"):
        X.class_anchors(f, y + 3, 7)


def test_exchange_keep_all_none_and_no_gradient_into_anchors():
    f = torch.randn(5, 4, 3, requires_grad=True)
    anchors = torch.randn(2, 4, 3, requires_grad=True)
    y = torch.tensor([0, 1, 1, 0, 1])
    assert torch.equal(X.exchange(f, anchors, y, torch.ones(5, 4, dtype=torch.bool)), f)
    out = X.exchange(f, anchors, y, torch.zeros(5, 4, dtype=torch.bool))
    assert torch.equal(out, anchors[y])
    out.sum().backward()
    assert anchors.grad is None
    with pytest.raises(ValueError, match="keep must be"):
        X.exchange(f, anchors, y, torch.ones(5, 4))


# Eqs. (15)-(17)
def _v_problem(seed=0, m=6, n=5, q=3):
    g = torch.Generator().manual_seed(seed)
    u = torch.tanh(torch.randn(m, q, generator=g, dtype=torch.float64) * 2)
    v = X.binarize(torch.randn(n, q, generator=g, dtype=torch.float64))
    s = X.similarity(torch.randint(0, 2, (m,), generator=g), torch.randint(0, 2, (n,), generator=g))
    return u, v, s


def test_v_column_attains_the_brute_force_optimum_and_the_printed_sign_does_not():
    printed_worse = 0
    for seed in range(10):
        u, v, s = _v_problem(seed)
        for k in range(3):
            best = min(float(X.v_step_objective(u, torch.cat(
                [v[:, :k], torch.tensor(c, dtype=u.dtype)[:, None], v[:, k + 1:]], 1), s))
                for c in itertools.product((-1.0, 1.0), repeat=5))
            for printed in (False, True):
                w = v.clone()
                w[:, k] = X.v_column(u, v, s, k, printed_sign=printed)
                obj = float(X.v_step_objective(u, w, s))
                if printed:
                    printed_worse += obj > best + 1e-9
                else:
                    assert math.isclose(obj, best, rel_tol=1e-12, abs_tol=1e-9)
    assert printed_worse > 0


def test_v_step_never_increases_the_objective():
    u, v, s = _v_problem(3, m=20, n=15, q=8)
    objs = [float(X.v_step_objective(u, v, s))]
    for _ in range(4):
        v = X.v_step(u, v, s)
        objs.append(float(X.v_step_objective(u, v, s)))
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(objs))
    with pytest.raises(ValueError, match="S \\(m, n\\)"):
        X.v_step(u, v, s[:, :3])


def test_similarity_codings():
    y = torch.tensor([0, 0, 1, 2])
    s = X.similarity(y, y)
    assert set(s.unique().tolist()) == {-1.0, 1.0}
    b = X.similarity(y, y, None)
    r = 6 / 10
    assert torch.allclose(b[0, 2], torch.tensor(-r)) and float(b[0, 1]) == 1.0


# Hamming, MAP
def test_hamming_identity_and_popcount():
    g = torch.Generator().manual_seed(1)
    for q in (12, 24, 32, 48):
        a = X.binarize(torch.randn(7, q, generator=g))
        b = X.binarize(torch.randn(9, q, generator=g))
        d = hamming_distance(pack_codes(a), pack_codes(b))
        assert torch.equal(d.float(), (q - a @ b.T) / 2)
        assert torch.equal(d, (a[:, None] != b[None]).sum(-1).int())


def test_map_matches_sklearn_per_query():
    g = torch.Generator().manual_seed(2)
    q = X.binarize(torch.randn(6, 16, generator=g))
    db = X.binarize(torch.randn(40, 16, generator=g))
    yq, yd = torch.randint(0, 3, (6,), generator=g), torch.randint(0, 3, (40,), generator=g)
    d = hamming_distance(pack_codes(q), pack_codes(db)).float()
    rel = yq[:, None] == yd[None]
    ap = average_precision(d, rel)
    ref = [average_precision_score(rel[i].numpy(), -d[i].numpy()) for i in range(6)]
    assert np.allclose(ap.numpy(), ref)
    assert math.isclose(X.hashing_map(q, yq, db, yd), 100 * float(np.mean(ref)), rel_tol=1e-6)


# network and baselines
def test_network_shapes_and_codes():
    net = X.ExchNet(12, parts=4, width=16)
    feats = net.features(torch.rand(3, 3, 32, 32))
    assert feats["E"].shape == (3, 32, 8, 8) and feats["A"].shape == (3, 4, 8, 8)
    assert feats["F_local"].shape == (3, 4, 16, 4, 4) and feats["f_local"].shape == (3, 4, 16)
    codes = net.encode(torch.rand(5, 3, 32, 32))
    assert codes.shape == (5, 12) and bool(((codes == 1) | (codes == -1)).all())
    assert X.ExchNet(12, parts=0, width=16).hash.in_features == 16
    with pytest.raises(ValueError, match="parts"):
        X.ExchNet(12, parts=1)
    with pytest.raises(ValueError, match="B, 3, H, W"):
        net.features(torch.rand(3, 32, 32))


def test_itq_lowers_quantisation_error_and_lsh_is_seeded():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 20, generator=g) @ torch.randn(20, 20, generator=g)
    enc = X.itq(x, 8, iters=30)
    assert enc(x).shape == (300, 8)
    assert torch.equal(X.lsh(x, 8, seed=1)(x), X.lsh(x, 8, seed=1)(x))
    with pytest.raises(ValueError, match="bits"):
        X.itq(x[:5], 8)


def test_table1_exact_methods_agree_and_pq_memory():
    cfg = X.Config.smoke()
    t = X.table1(cfg).set_index("method")
    assert t.loc["BallTree", "P@10"] == t.loc["KDTree", "P@10"] == t.loc["Linear", "P@10"]
    assert t.loc["Ours", "memory (bytes)"] == cfg.ann_n * 4
    assert t.loc["PQ", "memory (bytes)"] < t.loc["Linear", "memory (bytes)"]


def test_bad_variant():
    cfg = X.Config.smoke()
    with pytest.raises(ValueError, match="variant"):
        X.train_hashing(X.make_data(cfg, device="cpu"), cfg, 12, "dpsh")


def test_world_split_and_determinism():
    cfg = X.Config.smoke()
    a, b = X.make_data(cfg, device="cpu"), X.make_data(cfg, device="cpu")
    assert torch.equal(a.db, b.db) and a.n_classes == 27
    assert len(a.query) == 27 * cfg.query_per_class
    assert len(a.db) == 27 * (cfg.per_class - cfg.query_per_class)


def test_cli_smoke_run_returns_every_key(tmp_path, monkeypatch):
    """``python -m cvtutor run exchnet --profile smoke`` (in process): every key of ``full``."""
    from cvtutor import cli, report, runtime

    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)
    monkeypatch.setenv("CVTUTOR_DEVICE", "cpu")
    try:
        assert cli.main(["run", "exchnet", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    finally:
        runtime.set_deterministic(False)
    res, meta = report.load_results(tmp_path / "exchnet-smoke-seed0.json")
    assert meta["profile"] == "smoke"
    assert {"table2", "table2_summary", "compare_table2", "table1", "compare_table1", "fig6",
            "history", "findings"} <= set(res)
    assert set(res["table2"]["seed"]) == {0, 1} and len(res["fig6"])
    assert set(res["table2"]["method"]) == {"LSH", "ITQ", "ADSH", "Ours w/o exchange", "Ours"}


# readers of the real sets (fixture files written here)
def test_aircraft_reader(tmp_path):
    from cvtutor.data.finegrained import load_aircraft
    (tmp_path / "variants.txt").write_text("707-320\nA300B4\nF/A-18\n")
    (tmp_path / "images_variant_test.txt").write_text("0056978 F/A-18\n1025794 707-320\n")
    f = load_aircraft(tmp_path, "test")
    assert f["class_id"].tolist() == [2, 0] and f["path"][1] == "images/1025794.jpg"
    with pytest.raises(ValueError, match="split"):
        load_aircraft(tmp_path, "dev")
    with pytest.raises(FileNotFoundError, match="images_variant_train"):
        load_aircraft(tmp_path, "train")


def test_nabirds_reader(tmp_path):
    from cvtutor.data.finegrained import load_nabirds
    a, b = "0000139e-21dc-4d0c-bfe1-4cae3c85c829", "0000d9fc-4e02-4c06-a0af-a55cfb16b12b"
    (tmp_path / "images.txt").write_text(f"{a} 0817/a.jpg\n{b} 0860/b.jpg\n")
    (tmp_path / "image_class_labels.txt").write_text(f"{a} 817\n{b} 860\n")
    (tmp_path / "train_test_split.txt").write_text(f"{a} 0\n{b} 1\n")
    (tmp_path / "classes.txt").write_text("817 Oak Titmouse\n860 Ovenbird\n")
    f = load_nabirds(tmp_path)
    assert f["class_id"].tolist() == [0, 1] and f["class_name"][0] == "Oak Titmouse"
    assert load_nabirds(tmp_path, "train")["image_id"].tolist() == [b]
    (tmp_path / "train_test_split.txt").write_text(f"{a} 0\n")
    with pytest.raises(ValueError, match="different ids"):
        load_nabirds(tmp_path)


def test_food101_reader(tmp_path):
    from cvtutor.data.finegrained import load_food101
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "classes.txt").write_text("apple_pie\nbaby_back_ribs\n")
    (tmp_path / "meta" / "train.txt").write_text("baby_back_ribs/1005649\napple_pie/134\n")
    f = load_food101(tmp_path)
    assert f["class_id"].tolist() == [1, 0]
    assert f["path"][0] == "images/baby_back_ribs/1005649.jpg"
    (tmp_path / "meta" / "train.txt").write_text("sushi/1\n")
    with pytest.raises(ValueError, match="class list"):
        load_food101(tmp_path)
