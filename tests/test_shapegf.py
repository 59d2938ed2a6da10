"""Tests of the ShapeGF chapter (cvtutor/papers/shapegf.py): closed forms, limits, Langevin, the
implicit surface, the losses' gradients, the generation metrics, bad input and the smoke run."""

import math

import numpy as np
import pytest
import torch

from cvtutor.data.shapes3d import readers as R
from cvtutor.data.shapes3d import transforms as T
from cvtutor.metrics import pointsets as ps
from cvtutor.papers import shapegf as P


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_closed_form_score_is_autograd_of_gmm_log_density():
    g = _gen()
    pts = torch.randn(2, 17, 3, generator=g, dtype=torch.float64)
    x = torch.randn(2, 9, 3, generator=g, dtype=torch.float64, requires_grad=True)
    sigma = torch.tensor([0.4, 1.3], dtype=torch.float64)
    (auto,) = torch.autograd.grad(P.log_smoothed_density(x, pts, sigma).sum(), x)
    assert torch.allclose(auto, P.smoothed_score(x.detach(), pts, sigma), atol=1e-10)
    w = P.gmm_weights(x.detach(), pts, sigma)
    assert torch.allclose(w.sum(-1), torch.ones(2, 9, dtype=torch.float64))


def test_log_density_matches_scipy_mixture():
    from scipy.stats import multivariate_normal

    g = _gen(1)
    pts = torch.randn(1, 5, 2, generator=g, dtype=torch.float64)
    x = torch.randn(1, 4, 2, generator=g, dtype=torch.float64)
    ref = np.log(np.mean([multivariate_normal(p, 0.49 * np.eye(2)).pdf(x[0].numpy())
                          for p in pts[0].numpy()], axis=0))
    assert np.allclose(P.log_smoothed_density(x, pts, 0.7)[0].numpy(), ref)


def test_sigma_limits():
    g = _gen(2)
    pts = torch.randn(1, 20, 2, generator=g, dtype=torch.float64)
    x = torch.randn(1, 7, 2, generator=g, dtype=torch.float64)
    big = P.smoothed_score(x, pts, 1e4) * 1e8
    assert torch.allclose(big, pts.mean(1, keepdim=True) - x, atol=1e-5)
    near = pts[0][torch.cdist(x, pts)[0].argmin(1)][None]
    assert torch.allclose(P.smoothed_score(x, pts, 0.01) * 1e-4, near - x, atol=1e-8)


def test_dsm_target_is_gradient_of_gaussian_log_likelihood():
    g = _gen(3)
    x = torch.randn(2, 5, 2, generator=g, dtype=torch.float64)
    xt = (x + 0.3 * torch.randn(2, 5, 2, generator=g, dtype=torch.float64)).requires_grad_(True)
    logq = -((xt - x) ** 2).sum() / (2 * 0.3**2)
    (grad,) = torch.autograd.grad(logq, xt)
    assert torch.allclose(P.dsm_target(x, xt.detach(), 0.3), grad)


def test_dsm_loss_is_weighted_eq6_and_has_the_right_gradient():
    g = _gen(4)
    x = torch.randn(3, 6, 2, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64)
    xt = x + torch.randn(3, 6, 2, generator=g, dtype=torch.float64) * sigma[:, None, None]
    score = torch.randn(3, 6, 2, generator=g, dtype=torch.float64, requires_grad=True)
    h = score * sigma[:, None, None] ** 2
    loss = P.dsm_loss(h, x, xt, sigma)
    tgt = P.dsm_target(x, xt, sigma)
    eq6 = ((score - tgt) ** 2).sum(-1).mean(1)  # Eq. (6) per shape
    assert torch.allclose(loss, (0.5 * sigma**3 * eq6).mean())
    assert torch.autograd.gradcheck(lambda s: P.dsm_loss(s * sigma[:, None, None] ** 2, x, xt,
                                                         sigma), (score,))


def test_sigma_ladder_is_geometric():
    s = P.sigma_ladder(1, 0.01, 10)
    assert s[0] == pytest.approx(1) and s[-1] == pytest.approx(0.01)
    r = s[1:] / s[:-1]
    assert torch.allclose(r, r[0].expand_as(r))
    with pytest.raises(ValueError, match="begin, end"):
        P.sigma_ladder(0, 0.01, 10)


def test_langevin_recovers_gaussian_and_annealed_concentrates_on_modes():
    g = _gen(5)
    mu, s = torch.tensor([1.0, -2.0], dtype=torch.float64), 0.5
    x = P.langevin(lambda v: -(v - mu) / s**2, torch.zeros(5000, 1, 2, dtype=torch.float64),
                   0.005, 2000, g)
    assert torch.allclose(x.mean((0, 1)), mu, atol=0.03)
    assert torch.allclose(x.reshape(-1, 2).var(0), torch.full((2,), s**2, dtype=torch.float64),
                          rtol=0.08)
    modes = torch.tensor([[[-1.0, 0.0], [1.0, 0.0]]], dtype=torch.float64)
    x0 = torch.rand(1, 400, 2, generator=g, dtype=torch.float64) * 4 - 2
    xs = P.annealed_langevin(lambda v, sg: P.smoothed_score(v, modes, sg), x0,
                             P.sigma_ladder(1, 0.01, 10), 10, g)
    assert torch.cdist(xs, modes).min(2).values.median() < 0.03


def test_annealed_langevin_step_matches_eqs_9_10():
    """With ratio 1 one step is x + √2 σ ε, then + σ² g (α = 2σ_k²)."""
    x0 = torch.zeros(1, 3, 2, dtype=torch.float64)
    g1, g2 = _gen(6), _gen(6)
    out = P.annealed_langevin(lambda v, s: -v / s**2 * 0.5, x0, [0.3], 1, g1)
    eps = torch.randn(x0.shape, generator=g2, dtype=torch.float64)
    xp = x0 + math.sqrt(2) * 0.3 * eps
    assert torch.allclose(out, xp + 0.09 * (-xp / 0.09 * 0.5))


def test_implicit_surface_of_a_circle():
    t = torch.linspace(0, 2 * math.pi, 3001, dtype=torch.float64)[:-1]
    circle = (0.6 * torch.stack([t.cos(), t.sin()], -1))[None]
    grid = P.grid_2d(81).double()
    d = P.field_distance(P.smoothed_score(grid[None], circle, 0.02), 0.02)[0]
    r0 = grid.norm(dim=1)
    far = ((r0 - 0.6).abs() > 0.05) & (r0 > 0.2)  # off the shape and off the medial axis (0)
    assert torch.allclose(d[far], (grid.norm(dim=1) - 0.6).abs()[far], atol=2e-3)
    lines = P.implicit_contours(d.reshape(81, 81).numpy(), 0.02)
    r = np.linalg.norm(np.concatenate(lines), axis=1)
    # the δ-level set is two rings at distance δ around the circle, plus a small loop around the
    # centre, where the argmin of Eq. (11) is not unique (the paper's medial-axis caveat)
    ring = r > 0.2
    assert np.all(np.abs(np.abs(r[ring] - 0.6) - 0.02) < 0.01)
    assert np.all(r[~ring] < 0.1)
    with pytest.raises(ValueError, match="square"):
        P.implicit_contours(np.zeros((3, 4)), 0.1)


def test_decoder_conditioning_and_bad_input():
    dec = P.ScoreDecoder(2, 4, hidden=8, blocks=2)
    x, z = torch.randn(3, 5, 2), torch.randn(3, 4)
    h = dec(x, z, torch.full((3,), 0.5))
    assert h.shape == (3, 5, 2)
    assert torch.allclose(dec.score(x, z, 0.5), h / 0.25)
    # per-point: the field at one point does not depend on the other points
    assert torch.allclose(dec(x[:, :2], z, torch.full((3,), 0.5)), h[:, :2], atol=1e-6)
    with pytest.raises(ValueError, match="z"):
        dec(x, torch.randn(3, 5), torch.full((3,), 0.5))
    with pytest.raises(ValueError, match="positive"):
        dec(x, z, torch.zeros(3))
    with pytest.raises(ValueError, match=r"\(B, n, D\)"):
        P.gmm_weights(torch.randn(5, 2), torch.randn(1, 5, 2), 0.1)
    with pytest.raises(ValueError, match="prior"):
        P.prior("cube", 1, 2, 2, _gen())


def test_shapegf_training_reduces_the_loss():
    cfg = P.Config.smoke().replace(steps=60, hidden=32)
    x = torch.stack([P.grid_2d(6)[:32] * 0.5] * 8)
    m, hist = P.train_ae(cfg, x, P.sigma_ladder(1, 0.01, 10), 0, cfg.steps)
    assert hist["loss"].tail(10).mean() < hist["loss"].head(10).mean()


def test_generation_metrics_on_hand_built_sets():
    g = _gen(7)
    a = torch.rand(6, 16, 2, generator=g, dtype=torch.float64)
    same = P.generation_scores(a, a)
    assert same["COV-CD"] == 100 and same["MMD-CD"] == pytest.approx(0)
    far = P.generation_scores(a, a[:, :, :] * 0 + torch.linspace(0, 1, 16,
                                                                 dtype=torch.float64)[None, :, None]
                              * torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert far["1-NNA-CD"] == 100


def test_pointflow_normalisation_and_pc15k_fixture(tmp_path):
    d = tmp_path / "pc" / "02691156" / "test"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        np.save(d / f"m{i}.npy", rng.normal(size=(15000, 3)) * (i + 1) + 3)
    pts = R.read_pc15k(tmp_path / "pc", ["02691156"], "test", n_points=2048)["points"]
    n, mean, std = T.pointflow_normalize(pts)
    assert torch.allclose(n * std + mean, pts, atol=1e-5)
    assert torch.allclose(n.reshape(2, -1).std(1), torch.ones(2), atol=1e-4)
    ng, _, sg = T.pointflow_normalize(pts, per_shape=False)
    assert sg.shape == (1, 1, 1) and ng.reshape(-1).std() == pytest.approx(1, abs=1e-4)
    with pytest.raises(ValueError, match="B, N, 3"):
        T.pointflow_normalize(pts[0])


def test_cd_emd_units_follow_pointflow():
    a = torch.zeros(1, 4, 2, dtype=torch.float64)
    b = a + torch.tensor([0.1, 0.0], dtype=torch.float64)
    out = P.cd_emd(a, b)
    assert out["CD"] == pytest.approx(2 * 0.01 * 1e4)
    assert out["EMD"] == pytest.approx(0.1 * 1e2)
    assert ps.emd_exact(a[0], b[0]) == pytest.approx(0.1)


def test_smoke_run_returns_every_full_key():
    r = P.run(P.Config.smoke())
    for k in ("checks", "autoencoding", "histories", "surface", "sparse", "generation",
              "findings", "table1 CD", "table1 EMD", "table4 CD", "table4 EMD", "table2 CD",
              "table2 EMD", "table3"):
        assert k in r, k
    assert r["checks"].holds.all()
    assert set(r["findings"].kind) <= {"paper claim", "sanity check", "construction"}
