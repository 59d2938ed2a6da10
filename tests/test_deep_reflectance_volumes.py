"""Deep Reflectance Volumes: compositing closed forms, the BRDF, the lookup, the GT world, COLMAP."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cvtutor.data import reflectance as W
from cvtutor.data.colmap import quaternion_to_matrix, read_colmap_text
from cvtutor.papers import deep_reflectance_volumes as drv


class ConstantField(drv.ReflectanceVolume):
    """A model whose fields are given by a fixed raw volume (the volume argument)."""

    def __init__(self):
        super().__init__("direct", code_dim=4, resolution=4)


def _raw_volume(alpha, r=4, dtype=torch.float64):
    vol = torch.zeros(8, r, r, r, dtype=dtype)
    vol[0] = torch.logit(torch.as_tensor(alpha, dtype=dtype).clamp(1e-12, 1 - 1e-12)) - drv.ALPHA_BIAS
    vol[3] = 10.0  # normal +z
    return vol


def test_constant_alpha_accumulates_to_closed_form():
    a = torch.full((3, 17), 0.2, dtype=torch.float64)
    before, acc = drv.accumulate(a)
    assert torch.allclose(acc, torch.full((3,), 1 - 0.8 ** 17, dtype=torch.float64))
    assert torch.allclose(before[0], 0.8 ** torch.arange(17, dtype=torch.float64))


def test_collocated_geometric_series():
    # constant radiance L: Eq. (6) with α_l = α_c gives Σ_s (1 - α)^{2(s-1)} α L
    alpha, S, L = 0.3, 12, 0.7
    before, _ = drv.accumulate(torch.full((S,), alpha, dtype=torch.float64))
    got = (before * before * alpha * L).sum()
    q = (1 - alpha) ** 2
    assert math.isclose(got.item(), alpha * L * (1 - q ** S) / (1 - q), rel_tol=1e-12)


def test_halving_step_keeps_slab_transmittance():
    alpha = torch.tensor([0.05, 0.4, 0.9], dtype=torch.float64)
    half = drv.alpha_for_step(alpha, 0.5)
    assert torch.allclose(half, 1 - (1 - alpha).sqrt())
    assert torch.allclose((1 - half) ** 2, 1 - alpha)


def _rays(n=5, dtype=torch.float64):
    o = torch.zeros(n, 3, dtype=dtype)
    o[:, 2] = 3.0
    o[:, 0] = torch.linspace(-0.3, 0.3, n, dtype=dtype)
    d = torch.zeros(n, 3, dtype=dtype)
    d[:, 2] = -1.0
    return o, d


def test_empty_volume_is_black_and_transparent():
    m = ConstantField().double()
    o, d = _rays()
    out = drv.ray_march(m, _raw_volume(0.0), o, d, o, 32, 2 / 16, 10.0)
    assert out["rgb"].abs().max() < 1e-9 and out["acc"].abs().max() < 1e-9


def test_opaque_layer_blocks_everything_behind():
    m = ConstantField().double()
    o, d = _rays()
    a = torch.zeros(4, 4, 4, dtype=torch.float64)
    a[3] = 1.0  # the z = +1 face of the cube, the first layer the rays meet
    out = drv.ray_march(m, _raw_volume(a), o, d, o, 64, 2 / 64, 10.0)
    assert torch.allclose(out["acc"], torch.ones(5, dtype=torch.float64))
    w = out["weights"]
    first = (w > 1e-9).int().argmax(1)
    # nothing behind the first fully opaque sample contributes
    idx = torch.arange(64)[None]
    opaque = (w > 0.999 * w.amax(1, keepdim=True)).int().argmax(1)
    assert (w[idx > opaque[:, None]].abs().max() < 1e-9) and (first <= opaque).all()


def test_ray_march_gradcheck_on_a_4cube():
    m = ConstantField().double()
    o, d = _rays(3)
    vol = (0.3 * torch.randn(8, 4, 4, 4, dtype=torch.float64, generator=torch.Generator()
                             .manual_seed(0))).requires_grad_()
    light = o + torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64)

    def f(v):
        return drv.ray_march(m, v, o, d, light, 12, 2 / 12, 5.0, light="none")["rgb"]

    assert torch.autograd.gradcheck(f, (vol,), eps=1e-6, atol=1e-5)


def test_grid_sample_matches_scipy_trilinear():
    from scipy.interpolate import RegularGridInterpolator

    g = torch.Generator().manual_seed(1)
    vol = torch.rand(2, 5, 6, 7, generator=g, dtype=torch.float64)  # (C, D=z, H=y, W=x)
    x = torch.rand(50, 3, generator=g, dtype=torch.float64) * 2 - 1
    got = drv.sample_volume(vol, x)
    axes = [np.linspace(-1, 1, n) for n in (5, 6, 7)]
    for c in range(2):
        ref = RegularGridInterpolator(axes, vol[c].numpy())(x.numpy()[:, ::-1])
        assert np.allclose(got[:, c].numpy(), ref, atol=1e-10)


def test_light_volume_matches_marching_from_the_light():
    m = ConstantField().double()
    vol = _raw_volume(torch.full((4, 4, 4), 0.1, dtype=torch.float64))
    light = torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)
    T = drv.light_transmittance_volume(m, vol, light, 5, 400, 2 / 16)
    # node (0, 0, -1): 2 units of α = 0.1 per step 1/8 inside the cube, minus the last step
    inside = 2 - 2 / 16
    assert math.isclose(T[0, 0, 2, 2].item(), 0.9 ** (inside / (2 / 16)), rel_tol=2e-2)


def test_brdf_reciprocity_and_lambert():
    g = torch.Generator().manual_seed(2)
    n = torch.tensor([[0.0, 0.0, 1.0]]).expand(64, 3)
    wi = W._unit(torch.randn(64, 3, generator=g).abs() * torch.tensor([1, 1, 1.0]))
    wo = W._unit(torch.randn(64, 3, generator=g).abs())
    alb = torch.rand(64, 3, generator=g)
    r = torch.rand(64, 1, generator=g) * 0.9 + 0.1
    assert torch.allclose(W.brdf(wo, wi, n, alb, r), W.brdf(wi, wo, n, alb, r), atol=1e-6)
    # a very rough surface seen at grazing-free angles: diffuse term is albedo/π
    assert torch.allclose(W.brdf(wo, wi, n, alb, r) - W.brdf(wo, wi, n, 0 * alb, r), alb / math.pi)


@pytest.mark.parametrize("roughness", [0.2, 0.5, 0.9])
def test_ggx_ndf_integrates_to_one(roughness):
    theta = np.linspace(0, np.pi / 2, 20001)
    c = torch.tensor(np.cos(theta))
    D = W.ggx_D(c, torch.tensor(roughness, dtype=torch.float64)).numpy()
    integral = 2 * np.pi * np.trapezoid(D * np.cos(theta) * np.sin(theta), theta)
    assert abs(integral - 1) < 1e-3


def test_gt_world_facing_point_and_silhouette():
    scene = W.SphereScene(centres=torch.zeros(1, 3), radii=torch.tensor([0.5]),
                          albedo=torch.ones(1, 3) * 0.5, stripes=torch.zeros(1),
                          roughness=torch.ones(1))
    o = torch.tensor([[0.0, 0.0, 3.0]])
    d = torch.tensor([[0.0, 0.0, -1.0]])
    out = W.render(scene, o, d, o)
    assert torch.allclose(out["normal"], torch.tensor([[0.0, 0.0, 1.0]]))
    t = W.ray_sphere_t(o, d, scene.centres, scene.radii)
    assert math.isclose(t.item(), 2.5, rel_tol=1e-6)
    # a ray just outside the tangent cone misses
    miss = W.ray_sphere_t(o, W._unit(torch.tensor([[0.18, 0.0, -1.0]])), scene.centres,
                          scene.radii)
    assert torch.isinf(miss).all()  # tan θ = 0.18 > 0.5/√(9 - 0.25) ≈ 0.169


def test_views_are_seedless_deterministic_and_shadows_only_when_relit():
    s = W.SphereScene.default()
    a = W.photometric_views(s, 3, 12)
    b = W.photometric_views(s, 3, 12)
    assert torch.equal(a["images"], b["images"]) and not a["shadow"].any()
    assert W.photometric_views(s, 6, 16, light_offset_deg=60)["shadow"].any()


def test_eq12_loss_terms_and_bad_input():
    pred = torch.zeros(4, 3)
    target = torch.ones(4, 3)
    acc = torch.full((4,), 0.5)
    out = drv.drv_loss(pred, target, acc, torch.full((3, 3, 3), 0.5), 1.0, 0.1)
    assert math.isclose(out["photo"].item(), 3.0)
    assert math.isclose(out["beta_prior"].item(), 2 * math.log(0.5), rel_tol=1e-6)
    assert out["grad_sparsity"].item() == 0.0
    with pytest.raises(ValueError, match="acc"):
        drv.drv_loss(pred, target, acc[:2], torch.ones(3, 3, 3), 1.0, 0.1)
    assert drv.beta_schedule(0, 300) == (0.01, 0.01) and drv.beta_schedule(299, 300) == (1.0, 0.1)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="resolution"):
        drv.Decoder(8, 8, 24)
    with pytest.raises(ValueError, match="mode"):
        drv.ReflectanceVolume("mlp")
    with pytest.raises(ValueError, match="points"):
        drv.sample_volume(torch.zeros(8, 4, 4, 4), torch.zeros(3))
    m = ConstantField()
    o, d = _rays(2, torch.float32)
    with pytest.raises(ValueError, match="light_volume"):
        drv.ray_march(m, m.volume(), o, d, o, 4, 0.5, 1.0, light="volume")
    with pytest.raises(ValueError, match="origins"):
        W.render(W.SphereScene.default(), o, d[:1], o)


def test_warp_identity_at_init_and_decoder_shape():
    w = drv.Warp(8, n_basis=4, resolution=4).double()
    x = torch.rand(20, 3, dtype=torch.float64) * 2 - 1
    assert torch.allclose(w(x, torch.randn(8, dtype=torch.float64)), x)
    with torch.no_grad():
        w.global_affine[:, 3] = torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64)
    assert torch.allclose(w(x, torch.zeros(8, dtype=torch.float64)),
                          x + torch.tensor([0.1, 0, 0], dtype=torch.float64))
    assert drv.Decoder(16, 8, 16)(torch.randn(16)).shape == (8, 16, 16, 16)


def _write_colmap(folder, extra_cam=""):
    (folder / "cameras.txt").write_text(
        "# Camera list\n1 PINHOLE 640 480 500 510 320 240\n" + extra_cam)
    (folder / "images.txt").write_text(
        "# Image list\n1 1 0 0 0 0 0 5 1 a.jpg\n100 200 -1\n"
        "2 0.7071067811865476 0 0.7071067811865476 0 1 2 3 1 b.jpg\n\n")
    (folder / "points3D.txt").write_text(
        "# 3D points\n1 2 0 0 255 0 0 0.1\n2 -2 1 4 0 255 0 0.2\n3 0 -1 0 0 0 255 0.3\n")


def test_colmap_reader_on_fixture(tmp_path):
    from scipy.spatial.transform import Rotation

    _write_colmap(tmp_path)
    m = read_colmap_text(tmp_path, margin=1.0)
    assert m["names"] == ["a.jpg", "b.jpg"]
    assert torch.allclose(m["K"][0], torch.tensor([[500, 0, 320], [0, 510, 240], [0, 0, 1.0]],
                                                  dtype=torch.float64))
    q = np.array([0.7071067811865476, 0, 0.7071067811865476, 0])
    ref = Rotation.from_quat(q[[1, 2, 3, 0]]).as_matrix()
    assert np.allclose(m["R"][1].numpy(), ref)
    assert m["points"].abs().max().item() == pytest.approx(1.0)
    # the camera centre maps like a point: C' = (C - c)/s
    C = -(m["R"][0].T @ torch.tensor([0, 0, 5.0], dtype=torch.float64))
    assert torch.allclose(m["centres"][0], (C - m["centre"]) / m["scale"])
    q2 = torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64)
    assert torch.allclose(quaternion_to_matrix(q2)[0], torch.eye(3, dtype=torch.float64))


def test_colmap_reader_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="cameras.txt"):
        read_colmap_text(tmp_path)
    _write_colmap(tmp_path, extra_cam="2 FISHEYE 10 10 1 2\n")
    with pytest.raises(ValueError, match="MODEL"):
        read_colmap_text(tmp_path)


def test_smoke_run_returns_every_full_key():
    full, smoke = drv.Config.full(), drv.Config.smoke()
    assert full.warp and smoke.warp and full.ablation and smoke.ablation
    out = drv.run(smoke)
    for key in ("sweep", "methods", "relight", "edit", "ablation", "curves", "findings"):
        assert key in out and len(out[key]) > 0
    assert set(out["findings"]["kind"]) <= {"paper claim", "sanity check", "construction"}
