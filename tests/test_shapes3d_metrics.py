"""The shape world's metrics against independent references (POT, scipy's cKDTree) and hand
cases."""

import numpy as np
import pytest
import torch

from cvtutor.metrics import pointsets as ps


def test_emd_matches_pot_and_returns_a_bijection():
    ot = pytest.importorskip("ot")
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(4, 64, 3, generator=g, dtype=torch.float64), torch.rand(
        4, 64, 3, generator=g, dtype=torch.float64
    )
    cost, match = ps.emd_matching(a, b)
    for i in range(4):
        M = ot.dist(a[i].numpy(), b[i].numpy(), metric="euclidean")
        w = np.full(64, 1 / 64)
        assert cost[i] == pytest.approx(ot.emd2(w, w, M), rel=1e-9)
        assert sorted(match[i]) == list(range(64))
    assert np.allclose(ps.emd_exact(a, b), cost)
    single_cost, single_match = ps.emd_matching(a[0], b[0])
    assert single_cost == pytest.approx(cost[0]) and np.array_equal(single_match, match[0])
    assert isinstance(ps.emd_exact(a[0], b[0]), float)


def test_chamfer_fscore_and_nearest_against_ckdtree():
    from scipy.spatial import cKDTree

    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 500, 3, generator=g, dtype=torch.float64), torch.rand(
        2, 400, 3, generator=g, dtype=torch.float64
    )
    cd = ps.chamfer_l1(a, b, reduce="none")
    f = ps.fscore(a, b, 0.05)
    for i in range(2):
        dab, _ = cKDTree(b[i].numpy()).query(a[i].numpy())
        dba, _ = cKDTree(a[i].numpy()).query(b[i].numpy())
        assert cd[i].item() == pytest.approx(0.5 * (dab.mean() + dba.mean()), rel=1e-9)
        p, r = (dab < 0.05).mean(), (dba < 0.05).mean()
        assert f["fscore"][i].item() == pytest.approx(2 * p * r / (p + r), rel=1e-9)
        assert f["precision"][i].item() == pytest.approx(p)


def test_hand_cases():
    a = torch.tensor([[0.0, 0, 0], [1, 0, 0]])
    b = torch.tensor([[0.0, 0, 0], [1, 0.5, 0]])
    f = ps.fscore(a, b, 0.1)
    assert f["precision"] == 0.5 and f["recall"] == 0.5 and f["fscore"] == 0.5
    assert ps.chamfer_l1(a, b).item() == pytest.approx(0.25)
    na = torch.tensor([[0.0, 0, 1], [0, 0, 2]])
    nb = torch.tensor([[0.0, 0, -1], [0, 1, 0]])  # opposite (|cos| = 1) and perpendicular (0)
    assert ps.normal_consistency(a, na, b, nb).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="tau"):
        ps.fscore(a, b, 0)
    with pytest.raises(ValueError, match="metric"):
        ps.set_distance_matrix(a[None], b[None], "hausdorff")


def test_generation_metrics_hand_cases():
    # references at 0, 10, 20; generated sets near 0: MMD = mean(0, 9.5, 19.5), COV = 1/3
    ref = torch.tensor([0.0, 10, 20])
    gen = torch.tensor([0.0, 0.3, 0.5])
    d_gr = (gen[:, None] - ref[None]).abs()
    m = ps.generation_metrics(d_gr, (gen[:, None] - gen).abs(), (ref[:, None] - ref).abs())
    assert m["mmd"] == pytest.approx((0 + 9.5 + 19.5) / 3) and m["cov"] == pytest.approx(1 / 3)
    # 1-NNA: gens 0.3 and 0.5 find each other, gen 0 and ref 0 find each other (wrong), ref 10
    # finds gen 0.5 (wrong), ref 20 finds ref 10: 3 of 6 correct
    assert m["1nna"] == pytest.approx(3 / 6)
    g = torch.Generator().manual_seed(2)
    sets = torch.rand(5, 32, 3, generator=g)
    d = ps.set_distance_matrix(sets, sets, "cd")
    assert d.diagonal().abs().max() < 1e-6 and torch.allclose(d, d.T, atol=1e-6)
    de = ps.set_distance_matrix(sets[:2], sets[:3], "emd")
    assert de.shape == (2, 3) and de[0, 0] == 0
