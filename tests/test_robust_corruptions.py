"""E04 robust_corruptions: each equation against a closed form, a brute force or scipy."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from cvtutor.data.imageclass import corruptions, readers
from cvtutor.papers import robust_corruptions as R


def _bisect_gamma(x, d, eps, iters=200):
    """Reference for footnote 3: bisection on the monotone clipped norm, per image."""
    lo = torch.zeros(len(x), dtype=torch.float64)
    hi = torch.full((len(x),), 1e6, dtype=torch.float64)
    for _ in range(iters):
        mid = (lo + hi) / 2
        big = R.clipped_sq_norm(x, d, mid) > eps**2
        hi, lo = torch.where(big, mid, hi), torch.where(big, lo, mid)
    return hi


def test_projection_reaches_eps_and_matches_bisection():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 8, 8, generator=g, dtype=torch.float64)
    x[0] = 0.0  # an all-black image: every negative step is clipped at once
    d = torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64)
    d[1, 0, :4] = 0.0  # pixels the direction leaves alone
    for eps in (0.1, 1.0, 2.5):
        gamma = R.project_l2(x, d, eps)
        norm = R.clipped_sq_norm(x, d, gamma).sqrt()
        assert torch.allclose(norm, torch.full_like(norm, eps), rtol=1e-5, atol=0)
        assert torch.allclose(gamma, _bisect_gamma(x, d, eps), rtol=1e-6)
    gammas = torch.stack([R.project_l2(x, d, e) for e in (0.2, 0.5, 1.0, 2.0)])
    assert bool((gammas.diff(dim=0) > 0).all())  # gamma grows with eps


def test_projection_unreachable_and_unclipped_cases():
    x = torch.full((2, 1, 4, 4), 0.5, dtype=torch.float64)
    d = torch.ones_like(x)
    gamma = R.project_l2(x, d, 1.0)  # no clipping: gamma = eps / ||d||
    assert torch.allclose(gamma, torch.full((2,), 1.0 / 4, dtype=torch.float64))
    top = R.project_l2(x, d, 100.0)  # at most every pixel at 1: norm 0.5 * 4 = 2
    two = torch.full((2,), 2.0, dtype=torch.float64)
    assert torch.allclose(R.clipped_sq_norm(x, d, top).sqrt(), two)
    with pytest.raises(ValueError, match="one shape"):
        R.project_l2(x, d[:, :, :2], 1.0)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        R.project_l2(x, d, -1.0)


def test_projection_gradient_keeps_the_norm():
    """The norm after projection is eps for every delta, so its gradient in delta vanishes, and
    gamma's gradient agrees with finite differences."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, 5, 5, generator=g, dtype=torch.float64)
    d = torch.randn(3, 1, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    norm = (R.perturb(x, d, 1.2) - x).flatten(1).norm(dim=1).sum()
    (grad,) = torch.autograd.grad(norm, d)
    assert grad.abs().max() < 1e-9
    assert torch.autograd.gradcheck(lambda dd: R.project_l2(x, dd, 1.2), (d,))


def test_noise_generator_independence_and_init():
    torch.manual_seed(0)
    z = torch.randn(1, 1, 9, 9, requires_grad=True)
    g1, g3 = R.NoiseGenerator(1, 8, 1, init_std=0.5), R.NoiseGenerator(1, 8, 3, init_std=0.5)
    for gen, radius in ((g1, 0), (g3, 1)):
        (jac,) = torch.autograd.grad(gen(z)[0, 0, 4, 4], z)
        support = jac[0, 0].abs() > 0
        rows, cols = torch.nonzero(support, as_tuple=True)
        assert support[4, 4]
        assert int((rows - 4).abs().max()) == radius and int((cols - 4).abs().max()) == radius
    from scipy.stats import kstest

    fresh = R.NoiseGenerator(1, 16, 1)  # small weights: delta ~= z ~ N(0, 1)
    with torch.no_grad():
        out = fresh(torch.randn(1, 1, 64, 64)).flatten().numpy()
    assert kstest(out, "norm").pvalue > 0.01
    with pytest.raises(ValueError, match="kernel must be 1"):
        R.NoiseGenerator(1, 8, 5)
    with pytest.raises(ValueError, match="channels"):
        g1(torch.randn(1, 3, 4, 4))


class _Linear2(nn.Module):
    """Two classes, logit difference ``w . x + b``."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x):
        s = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(s), s], 1)


def test_line_search_matches_linear_closed_form():
    g = torch.Generator().manual_seed(2)
    n = 64
    x = 0.4 + 0.2 * torch.rand(50, 1, 8, 8, generator=g)
    w = torch.randn(n, generator=g)
    b = -0.5 * w.sum()  # the boundary passes through the mid-grey image: small margins
    model = _Linear2(w, b)
    y = model(x).argmax(1)
    d = torch.randn(x.shape, generator=g) * 0.02
    sizes = R.min_perturbation(model, x, y, d, eps_max=2.0, n_grid=32, n_bisect=16)
    margin = x.flatten(1) @ w + b
    t = -margin / (d.flatten(1) @ w)  # crossing x + t d
    size = t * d.flatten(1).norm(dim=1)
    cross = x + t.clamp_min(0).view(-1, 1, 1, 1) * d
    inside = (cross.flatten(1).amin(1) > 0) & (cross.flatten(1).amax(1) < 1)  # no clipping
    reach = (t > 0) & (size < 2.0) & inside
    assert int(reach.sum()) >= 10
    assert torch.allclose(sizes[reach], size[reach], atol=2.0 / 32 / 2**15 + 1e-5)
    assert bool(torch.isinf(sizes[t < 0]).all())  # never flips along +d
    wrong = 1 - y  # misclassified before any noise: size 0
    assert bool((R.min_perturbation(model, x, wrong, d, 0.5, 4, 2) == 0).all())
    with pytest.raises(ValueError, match="direction like x"):
        R.min_perturbation(model, x, y, d[:3], 2.0)


def test_median_eps_counts_never_flipped_as_inf():
    assert R.median_eps(torch.tensor([1.0, 3.0, math.inf])) == 3.0
    assert R.median_eps(torch.tensor([1.0, math.inf, math.inf])) == math.inf
    assert R.median_eps(torch.tensor([4.0, 1.0, 2.0, 3.0])) == 2.0  # the lower median
    with pytest.raises(ValueError, match="non-empty 1-D"):
        R.median_eps(torch.zeros(2, 2))


def test_gnt_batch_eq1():
    x = torch.full((8, 1, 16, 16), 0.5)
    out = R.noisy_half(x, 0.05, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:4], x[:4])  # 50 % clean
    assert abs(float((out[4:] - 0.5).std()) - 0.05) < 0.005
    big = R.noisy_half(x, 3.0)
    assert float(big.min()) >= 0 and float(big.max()) <= 1  # clip to [0, 1]^N
    sp = R.noisy_half(torch.zeros_like(x), 0.5, kind="speckle")
    assert torch.equal(sp, torch.zeros_like(x))  # speckle x * n vanishes on black
    per_image = R.noisy_half(x, torch.linspace(0, 0.1, 8))
    assert torch.equal(per_image[:4], x[:4])
    with pytest.raises(ValueError, match="one per image"):
        R.noisy_half(x, torch.ones(3))
    with pytest.raises(ValueError, match="kind"):
        R.noisy_half(x, 0.1, kind="salt")


def test_ant_batch_mix():
    assert R.ant_batch_sizes(100, True) == (50, 30, 20)
    assert R.ant_batch_sizes(128, True) == (64, 38, 26)
    assert R.ant_batch_sizes(100, False) == (50, 50, 0)
    with pytest.raises(ValueError, match="at least 2"):
        R.ant_batch_sizes(1, True)


def test_corruptions_grow_with_severity_on_digits():
    x = R.make_data(R.Config.smoke())["test"].x[:32]
    for name in R.Config.fast().corruptions:
        mse = [float((corruptions.corrupt(x, name, s) - x).pow(2).mean())
               for s in corruptions.SEVERITIES]
        assert all(a < b for a, b in itertools.pairwise(mse)), name
        c5 = corruptions.corrupt(x, name, 5)
        assert float(c5.min()) >= 0 and float(c5.max()) <= 1


def test_relative_ce_on_a_hand_table():
    rows = []
    for model, errs in (("Vanilla", {"fog": [10, 30], "snow": [20, 20]}),
                        ("GNT", {"fog": [5, 15], "snow": [40, 40]})):
        rows.append({"model": model, "corruption": "clean", "group": "clean", "severity": 0,
                     "accuracy": 99.0})
        for c, e in errs.items():
            for s, v in enumerate(e, 1):
                rows.append({"model": model, "corruption": c, "group": "weather", "severity": s,
                             "accuracy": 100.0 - v})
    summ = R.summarise(pd.DataFrame(rows)).set_index("model")
    assert summ.loc["Vanilla", "relative mCE"] == pytest.approx(1.0, rel=1e-5)
    assert summ.loc["GNT", "relative mCE"] == pytest.approx((20 / 40 + 80 / 40) / 2)
    assert summ.loc["GNT", "C"] == pytest.approx(100 - 25.0)


def test_readers_imagenet_c_and_mnist_c(tmp_path):
    from PIL import Image

    for wnid, v in (("n01", 10), ("n02", 200)):
        p = tmp_path / "inc" / "fog" / "3" / wnid
        p.mkdir(parents=True)
        Image.fromarray(np.full((4, 4, 3), v, np.uint8)).save(p / "a.png")
    s = readers.read_imagenet_c(tmp_path / "inc", "fog", 3)
    assert s.x.shape == (2, 3, 4, 4) and s.classes == ("n01", "n02")
    assert float(s.x[1].max()) == pytest.approx(200 / 255)
    with pytest.raises(readers.DataLayoutError, match=r"corruptions present: \['fog'\]"):
        readers.read_imagenet_c(tmp_path / "inc", "snow", 1)
    with pytest.raises(ValueError, match="severity"):
        readers.read_imagenet_c(tmp_path / "inc", "fog", 6)
    m = tmp_path / "mnist_c" / "shot_noise"
    m.mkdir(parents=True)
    imgs = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1)).astype(np.uint8)
    np.save(m / "test_images.npy", imgs)
    np.save(m / "test_labels.npy", np.array([7, 2, 1]))
    mc = readers.read_mnist_c(tmp_path / "mnist_c", "shot_noise")
    assert mc.x.shape == (3, 1, 28, 28) and mc.y.tolist() == [7, 2, 1]
    assert torch.allclose(mc.x[0, 0] * 255, torch.tensor(imgs[0, ..., 0], dtype=torch.float32))
    with pytest.raises(readers.DataLayoutError, match=r"'fog' not found \(have \['shot_noise'\]\)"):
        readers.read_mnist_c(tmp_path / "mnist_c", "fog")
    np.save(m / "test_labels.npy", np.array([7, 2]))
    with pytest.raises(readers.DataLayoutError, match="labels"):
        readers.read_mnist_c(tmp_path / "mnist_c", "shot_noise")


def test_run_smoke_returns_every_key_of_full():
    res = R.run(R.Config.smoke())
    for key in ("sweep", "summary", "accuracy", "eps_star", "pgd", "history", "snapshots",
                "sigma_star", "compare_table1", "compare_table2", "compare_table3",
                "compare_table3_wo_noise", "compare_table4", "findings"):
        assert key in res, key
    assert set(res["summary"].model) == {"Vanilla", "GNT sigma*", "GNT mult", "Speckle", "ANT1x1",
                                         "ANT1x1 w/o EP", "ANT3x3", "PGD linf"}
    assert set(res["findings"]["kind"]) <= {"paper claim", "sanity check", "construction"}
    snap = res["snapshots"]
    assert set(snap.columns) == {"delta", "density", "step", "seed"}
    for _, d in snap.groupby("step"):  # each state's density integrates to 1
        width = d.delta.iloc[1] - d.delta.iloc[0]
        assert float(d.density.sum() * width) == pytest.approx(1.0, rel=1e-5)
