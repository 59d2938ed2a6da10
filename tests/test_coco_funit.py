"""COCO-FUNIT (E23): Eqs. (2)-(4), AdaIN, projection D, hinge, EMA, Fig. 5, run(smoke), CLI."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from cvtutor.metrics.generative import frechet_distance
from cvtutor.nn.gan import AdaIN, ProjectionDiscriminator, generator_ema
from cvtutor.papers import coco_funit as C


def _x(b=2, s=16, seed=0):
    return torch.rand(b, 3, s, s, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_adain_output_stats_are_beta_gamma():
    a = AdaIN(8, 4)
    with torch.no_grad():
        a.affine.weight.normal_()
    x, w = torch.randn(3, 8, 10, 10), torch.randn(3, 4)
    y = a(x, w)
    gamma, beta = a.affine(w).chunk(2, 1)
    assert torch.allclose(y.mean((2, 3)), beta, atol=1e-4)
    assert torch.allclose(y.std((2, 3), unbiased=False), gamma.abs(), atol=1e-2)


def test_coco_fc_input_is_style_plus_csb_and_content_changes_code():
    g = C.Generator("COCO-FUNIT", width=8, style_dim=8, csb_dim=24)
    assert g.style.fc_in == g.style.features.out_channels + 24
    assert C.Generator("w/o CSB", 8, 8, 24).style.fc_in == g.style.features.out_channels
    xs, xc = _x(), _x(seed=1)
    z1, z2 = g.style_code(xs, xc), g.style_code(xs, _x(seed=2))
    assert not torch.allclose(z1, z2)
    funit = C.Generator("FUNIT", 8, 8)
    assert torch.allclose(funit.style_code(xs, xc), funit.style_code(xs, _x(seed=2)))
    wocc = C.Generator("w/o CC", 8, 8, 24)
    assert torch.allclose(wocc.style_code(xs, xc), wocc.style.zeta_s(xs))


def test_coco_is_product_and_gradients_reach_csb_and_content_encoder():
    g = C.Generator("COCO-FUNIT", 8, 8, 16)
    xs, xc = _x(), _x(seed=1)
    z = g.style_code(xs, xc)
    assert torch.allclose(z, g.style.zeta_c(xc, g.content) * g.style.zeta_s(xs))
    z.sum().backward()
    assert g.style.csb.grad.abs().sum() > 0
    assert g.content.net[0].weight.grad.abs().sum() > 0


def test_k_shot_average_and_identical_shots():
    g = C.Generator("FUNIT", 8, 8)
    xs = _x()
    k3 = xs[:, None].expand(-1, 3, -1, -1, -1)
    assert torch.allclose(g.style_code(k3, xs), g.style_code(xs, xs), atol=1e-6)
    two = torch.stack([xs, _x(seed=5)], 1)
    mean = (g.style_code(xs, xs) + g.style_code(_x(seed=5), xs)) / 2
    assert torch.allclose(g.style_code(two, xs), mean, atol=1e-6)


def test_generator_shapes_and_bad_input():
    g = C.Generator("COCO-FUNIT", 8, 8, 16)
    assert g(_x(), _x(seed=1)).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="x_s must be"):
        g(_x(), torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="model must be one of"):
        C.Generator("MUNIT")
    with pytest.raises(ValueError, match="batch size"):
        g.style_code(_x(2), _x(3))


def test_projection_discriminator_by_hand():
    d = ProjectionDiscriminator(3, 4, width=8, n_layers=1, spectral=False)
    x, y = _x(3), torch.tensor([0, 2, 3])
    h = d.phi(x).sum((2, 3))
    hand = h @ d.psi.weight[0] + d.psi.bias + (d.embed.weight[y] * h).sum(1)
    assert torch.allclose(d(x, y), hand, atol=1e-5)
    assert torch.allclose(C.projection_logits(d, C.projection_features(d, x), y), hand, atol=1e-5)


def test_spectral_norm_unit_sigma():
    d = ProjectionDiscriminator(3, 4, width=8, n_layers=2)
    for _ in range(20):
        d(_x(), torch.tensor([0, 1]))
    w = d.phi[0].weight.detach().flatten(1)
    assert abs(float(torch.linalg.svdvals(w)[0]) - 1) < 0.1


def test_hinge_and_feature_matching():
    assert float(C.hinge_d_loss(torch.full((4,), 2.0), torch.full((4,), -2.0))) == 0.0
    assert float(C.hinge_d_loss(torch.zeros(4), torch.zeros(4))) == 2.0
    h = torch.randn(5, 7)
    assert float(C.feature_matching_loss(h, h.clone())) == 0.0
    with pytest.raises(ValueError, match="share a shape"):
        C.feature_matching_loss(h, h[:, :3])


def test_reconstruction_loss_is_l1_of_self_translation():
    g = C.Generator("FUNIT", 8, 8)
    x = _x()
    assert torch.isclose(C.reconstruction_loss(g, x), (g(x, x) - x).abs().mean())


def test_ema_update_exact():
    m = torch.nn.Linear(3, 2)
    ema = generator_ema(m, 0.999)
    ema.update_parameters(m)
    old = ema.module.weight.detach().clone()
    with torch.no_grad():
        m.weight.add_(1.0)
    ema.update_parameters(m)
    assert torch.allclose(ema.module.weight, 0.999 * old + 0.001 * m.weight, atol=1e-6)


def test_frechet_closed_form_two_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (20000, 2))
    b = rng.normal(0, 2, (20000, 2)) + np.array([3.0, 0.0])
    # ||mu||^2 + tr(I + 4I - 2 * 2I) = 9 + 2
    assert abs(frechet_distance(a, b) - 11.0) < 0.3


def test_crop_deviation_zero_for_constant_code_and_crops_shape():
    x = _x(2, 16)
    crops = C.random_crops(x, 5, seed=0)
    assert crops.shape == (2, 5, 3, 16, 16)
    full = C.random_crops(x, 2, frac=1.0)
    assert torch.allclose(full[:, 0], x, atol=1e-6)
    g = C.Generator("COCO-FUNIT", 8, 8, 16)
    with torch.no_grad():             # a code that ignores the style image: deviation 0
        for p in g.style.features.parameters():
            p.zero_()
    dev = C.crop_deviation(g, x, x, x, x, n_crops=4)
    assert dev.shape == (2,) and np.allclose(dev, 0, atol=1e-6)
    with pytest.raises(ValueError, match="frac"):
        C.random_crops(x, 2, frac=0)


def test_csb_sweep_and_interpolation():
    g = C.Generator("COCO-FUNIT", 8, 8, 16).eval()
    xc, xs = _x(), _x(seed=1)
    table, out = C.csb_sweep(g, xc, xs, (0.0, 1.0, 3.0))
    assert out.shape == (3, 2, 3, 16, 16) and table["mean |change|"][1] == 0
    assert g.style.csb_scale == 1.0
    with pytest.raises(ValueError, match="CSB"):
        C.csb_sweep(C.Generator("FUNIT", 8, 8), xc, xs, (1.0,))
    strip = C.interpolate_styles(g, xc, xs, _x(seed=2), alphas=(0.0, 1.0))
    with torch.no_grad():
        assert torch.allclose(strip[1], g(xc, _x(seed=2)), atol=1e-5)


def test_run_smoke():
    cfg = C.Config.smoke()
    assert cfg.models == C.Config.full().models and len(cfg.seeds) >= 2
    res = C.run(cfg)
    assert set(res) >= {"table1", "fig5", "fig10", "findings", "compare_table2_pacc"}
    assert len(res["per_seed"]) == len(cfg.seeds) * len(cfg.models)
    assert np.isfinite(res["table1"][["mFD", "PAcc", "mIoU"]].to_numpy()).all()
    with pytest.raises(ValueError, match="config.models"):
        C.run(cfg.replace(models=("FUNIT",)))


def test_cli_smoke(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cvtutor", "run", "coco_funit", "--profile",
                        "smoke"], check=False, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
