"""Point-set metrics (Chamfer, exact EMD, Sinkhorn EMD) and the shared point/image decoders."""
import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from scipy.spatial import cKDTree

from cvtutor.metrics import pointsets as ps
from cvtutor.nn.dcgan import DCGANDecoder
from cvtutor.nn.pointnets import FoldingNetDecoder, PermEquivariant, ResPELEncoder, folding_grid


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_chamfer_brute_force_and_kdtree():
    a, b = _rand(7, 3, seed=1), _rand(5, 3, seed=2)
    an, bn = a.numpy(), b.numpy()
    brute = np.mean([min(np.linalg.norm(p - q) for q in bn) for p in an]) + \
        np.mean([min(np.linalg.norm(p - q) for p in an) for q in bn])
    kd = cKDTree(bn).query(an)[0].mean() + cKDTree(an).query(bn)[0].mean()
    got = ps.chamfer_distance(a, b).item()
    assert got == pytest.approx(brute, rel=1e-10) and got == pytest.approx(kd, rel=1e-10)
    sq = np.mean(cKDTree(bn).query(an)[0] ** 2) + np.mean(cKDTree(an).query(bn)[0] ** 2)
    assert ps.chamfer_distance(a, b, squared=True).item() == pytest.approx(sq, rel=1e-10)


def test_chamfer_zero_symmetric_batched():
    a, b = _rand(3, 10, 3, seed=3), _rand(3, 12, 3, seed=4)
    assert ps.chamfer_distance(a, a).item() == pytest.approx(0.0, abs=1e-5)
    assert ps.chamfer_distance(a, b).item() == pytest.approx(ps.chamfer_distance(b, a).item())
    per = ps.chamfer_distance(a, b, reduce="none")
    assert per.shape == (3,) and torch.allclose(per[1], ps.chamfer_distance(a[1], b[1]))
    # a permutation of the points changes nothing
    assert ps.chamfer_distance(a[:, torch.randperm(10)], b).item() == pytest.approx(ps.chamfer_distance(a, b).item())


def test_emd_exact_against_brute_force_permutations():
    a, b = _rand(6, 2, seed=5), _rand(6, 2, seed=6)
    d = np.linalg.norm(a.numpy()[:, None] - b.numpy()[None], axis=-1)
    brute = min(d[np.arange(6), list(p)].mean() for p in itertools.permutations(range(6)))
    assert ps.emd_exact(a, b) == pytest.approx(brute, rel=1e-12)


def test_emd_exact_against_linear_programme():
    """An independent solver: the transport LP with uniform weights (scipy's HiGHS), whose optimum is a
    permutation (Birkhoff) so its value is the EMD."""
    n = 8
    a, b = _rand(n, 3, seed=7), _rand(n, 3, seed=8)
    c = np.linalg.norm(a.numpy()[:, None] - b.numpy()[None], axis=-1)
    rows = np.kron(np.eye(n), np.ones(n))
    cols = np.kron(np.ones(n), np.eye(n))
    lp = linprog(c.ravel(), A_eq=np.vstack([rows, cols]), b_eq=np.full(2 * n, 1.0 / n), bounds=(0, None),
                 method="highs")
    assert lp.status == 0
    assert ps.emd_exact(a, b) == pytest.approx(lp.fun, rel=1e-8)


def test_emd_bounds_and_batch():
    a, b = _rand(4, 9, 3, seed=9), _rand(4, 9, 3, seed=10)
    emd = ps.emd_exact(a, b)
    assert emd.shape == (4,)
    cd = ps.chamfer_distance(a, b, reduce="none").numpy()
    # each direction of the Chamfer distance is a lower bound of the EMD
    assert np.all(emd >= cd / 2 - 1e-12)
    assert ps.emd_exact(a[0], a[0][torch.randperm(9)]) == pytest.approx(0.0, abs=1e-6)


def test_sinkhorn_tends_to_exact_emd():
    a, b = _rand(2, 16, 3, seed=11), _rand(2, 16, 3, seed=12)
    exact = ps.emd_exact(a, b)
    errs = [abs(ps.emd_sinkhorn(a, b, eps=eps, iters=it, reduce="none").numpy() - exact).max()
            for eps, it in ((0.3, 100), (0.03, 400), (0.003, 3000))]
    assert errs[2] < errs[0] and errs[2] < 0.01 * exact.min()
    # its value is never below the exact optimum (it is the cost of a feasible plan, up to marginal error)
    assert np.all(ps.emd_sinkhorn(a, b, eps=0.05, iters=300, reduce="none").numpy() >= exact - 1e-3)


def test_sinkhorn_plan_marginals_and_gradient():
    cost = _rand(1, 5, 5, seed=13).abs()
    T = ps.sinkhorn_plan(cost, eps=0.1, iters=200)
    assert torch.allclose(T.sum(1), torch.full((1, 5), 0.2, dtype=T.dtype), atol=1e-10)
    assert torch.allclose(T.sum(2), torch.full((1, 5), 0.2, dtype=T.dtype), atol=1e-6)
    a = _rand(3, 10, 3, seed=14).requires_grad_(True)
    b = _rand(3, 10, 3, seed=15)
    ps.emd_sinkhorn(a, b).backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_pointset_errors():
    with pytest.raises(ValueError, match="same size"):
        ps.emd_exact(torch.zeros(4, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"\(B, n, D\)"):
        ps.chamfer_distance(torch.zeros(4, 3), torch.zeros(1, 4, 3))
    with pytest.raises(ValueError, match="batch size and point dimension"):
        ps.chamfer_distance(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(TypeError, match="torch tensors"):
        ps.chamfer_distance(np.zeros((4, 3)), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="eps must be positive"):
        ps.emd_sinkhorn(torch.zeros(4, 3), torch.ones(4, 3), eps=0.0)


def test_respel_invariance_and_equivariance():
    torch.manual_seed(0)
    x = torch.randn(2, 20, 3)
    perm = torch.randperm(20)
    layer = PermEquivariant(3, 5)
    assert torch.allclose(layer(x)[:, perm], layer(x[:, perm]), atol=1e-6)
    enc = ResPELEncoder(8, width=16, blocks=2)
    assert enc(x).shape == (2, 8)
    assert torch.allclose(enc(x), enc(x[:, perm]), atol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        enc(torch.zeros(2, 20, 2))


def test_foldingnet_and_dcgan_shapes():
    g = folding_grid(4, 3)
    assert g.shape == (12, 2) and g.min() == -1 and g.max() == 1
    dec = FoldingNetDecoder(6, grid=(8, 4), hidden=16)
    assert dec(torch.zeros(5, 6)).shape == (5, 32, 3) and dec.n_points == 32
    hm = DCGANDecoder(6, 21, out_size=16, width=8)
    assert hm(torch.zeros(3, 6)).shape == (3, 21, 16, 16)
    assert DCGANDecoder(6, 1, out_size=32, width=4)(torch.zeros(2, 6)).shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="4·2\\^k"):
        DCGANDecoder(6, 21, out_size=20)
    with pytest.raises(ValueError, match=r"\(B, 6\)"):
        dec(torch.zeros(5, 7))
