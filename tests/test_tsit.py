import pytest
import torch
from torch import nn

from cvtutor.nn.gan import FADE, MultiScaleDiscriminator
from cvtutor.papers import tsit as T


def _z(seed=0, shape=(4, 5, 6, 7)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 3 + 1


def test_batch_statistics_are_eqs_2_3():
    z = _z()
    mu, sigma = T.batch_statistics(z, eps=0.0)
    assert torch.allclose(mu.flatten(), z.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(sigma.flatten(), z.var((0, 2, 3), unbiased=False).sqrt(), atol=1e-4)


def test_fade_with_unit_gamma_is_batchnorm_in_train_mode():
    z = _z(1)
    bn = nn.BatchNorm2d(5, affine=False).train()
    out = T.fade(z, torch.ones_like(z), torch.zeros_like(z))
    assert torch.allclose(out, bn(z), atol=1e-5)
    beta = torch.randn_like(z)
    assert torch.allclose(T.fade(z, 2 * torch.ones_like(z), beta), 2 * bn(z) + beta, atol=1e-4)


def test_fade_module_with_zero_heads_is_batchnorm():
    z, cond = _z(2), torch.randn(4, 3, 3, 3)
    m = FADE(5, 3).train()
    for conv in (m.gamma, m.beta):
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    assert torch.allclose(m(z, cond), nn.BatchNorm2d(5, affine=False)(z), atol=1e-5)


def test_fade_rejects_wrong_shapes():
    z = _z()
    with pytest.raises(ValueError, match="gamma and beta"):
        T.fade(z, torch.ones(4, 5, 3, 3), torch.zeros_like(z))
    with pytest.raises(ValueError, match=r"\(N, L, H, W\)"):
        T.batch_statistics(torch.ones(3, 4))


def test_fadain_matches_style_statistics_and_is_identity_on_itself():
    z, f = _z(3), _z(4, (4, 5, 3, 9)) * 0.5 - 2
    out = T.fadain(z, f, eps=0.0)
    assert torch.allclose(out.mean((2, 3)), f.mean((2, 3)), atol=1e-4)
    assert torch.allclose(out.std((2, 3), unbiased=False), f.std((2, 3), unbiased=False),
                          atol=1e-4)
    assert torch.allclose(T.fadain(z, z, eps=0.0), z, atol=1e-4)
    assert torch.allclose(T.fadain(2.5 * z + 7, f, eps=0.0), out, atol=1e-4)
    assert torch.allclose(T.fadain(z, f, alpha=0.0), z)
    with pytest.raises(ValueError, match="same B, C"):
        T.fadain(z, torch.ones(4, 6, 3, 3))


def test_hinge_losses_on_hand_values():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # relu(1 - D(x^s)): 0 and 0.5 -> mean 0.25; relu(1 + D(g)): 0 and 1 -> mean 0.5
    assert T.hinge_d_loss(real, fake).item() == pytest.approx(0.75)
    assert T.hinge_g_loss(fake).item() == pytest.approx(1.0)


def test_spectral_norm_of_discriminator_weights_is_about_one():
    d = MultiScaleDiscriminator(3, 2, 8, 2)
    x = torch.randn(4, 3, 32, 32)
    for _ in range(30):                       # power iterations run in train-mode forwards
        d(x)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    for m in convs:
        w = m.weight.detach().flatten(1)
        assert torch.linalg.matrix_norm(w, 2).item() == pytest.approx(1.0, abs=0.05)


def test_discriminator_features_end_with_the_logits():
    d = MultiScaleDiscriminator(3, 2, 8, 2).eval()
    x = torch.randn(2, 3, 32, 32)
    feats = T.discriminator_features(d, x)
    for f, logits in zip(feats, d(x)):
        assert torch.allclose(f[-1], logits, atol=1e-6)
        assert len(f) == 4
    assert T.feature_matching_loss(feats, feats).item() == 0.0


def test_feature_matching_and_perceptual_losses_have_gradients():
    from cvtutor.metrics.generative import FeatureNet
    net = FeatureNet(3, 4, width=8)
    g = torch.rand(2, 3, 16, 16, requires_grad=True)
    x = torch.rand(2, 3, 16, 16)
    loss = T.perceptual_loss(net, g, x)
    loss.backward()
    assert loss.item() > 0 and g.grad.abs().sum() > 0
    assert T.perceptual_loss(net, x, x).item() == 0.0
    with pytest.raises(ValueError, match="weights"):
        T.perceptual_loss(net, g, x, weights=(1.0,))


@pytest.mark.parametrize("variant", T.VARIANTS)
def test_generator_shapes_and_style_dependence(variant):
    torch.manual_seed(0)
    g = T.TSITGenerator(32, (8, 16, 32), variant)
    if variant == "SPADE-style":
        assert g.content is None
    else:
        feats = g.content(torch.zeros(2, 3, 32, 32))
        assert [f.shape[-1] for f in feats] == [4, 8, 16]
    x_c, x_s = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    a = T.translate(g.eval(), x_c, x_s)
    b = T.translate(g, x_c, 1 - x_s)
    assert a.shape == (2, 3, 32, 32) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, T.translate(g, x_c, x_s))
    assert torch.equal(a, b) == (variant == "w/o SS")


def test_generator_rejects_bad_input():
    with pytest.raises(ValueError, match="variant"):
        T.TSITGenerator(variant="SPADE")
    with pytest.raises(ValueError, match="multiple"):
        T.TSITGenerator(size=36)
    g = T.TSITGenerator(32, (8, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        g(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16))
    g6 = T.TSITGenerator(32, (8, 8, 8), content_channels=6)
    with pytest.raises(ValueError, match=r"x_c must be \(B, 6, 32, 32\)"):
        g6(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32))


def test_spade_style_blocks_are_spade_on_the_resized_input():
    from cvtutor.nn.gan import SPADE
    torch.manual_seed(0)
    g = T.TSITGenerator(32, (8, 16, 32), "SPADE-style", content_channels=6).train()
    norms = [m for m in g.modules() if isinstance(m, SPADE)]
    assert norms and all(type(m) is SPADE and m.gamma.in_channels == 8 for m in norms)
    # one block by hand: SPADE conditions on the mask resized (nearest) to the block's scale
    block, z = g.blocks[0], torch.randn(2, 32, 4, 4)
    mask = T.one_hot_mask(torch.randint(0, 6, (2, 32, 32)))
    n1 = block.n1
    small = torch.nn.functional.interpolate(mask, size=(4, 4), mode="nearest")
    h = n1.shared(small)
    ref = nn.BatchNorm2d(32, affine=False)(z) * (1 + n1.gamma(h)) + n1.beta(h)
    assert torch.allclose(n1(z, mask), ref, atol=1e-5)
    # the layout reaches the output: changing the mask changes the image
    x_s = torch.rand(2, 3, 32, 32)
    a = T.synthesize(g.eval(), mask, x_s)
    b = T.synthesize(g, T.one_hot_mask(torch.zeros(2, 32, 32, dtype=torch.long)), x_s)
    assert a.shape == (2, 3, 32, 32) and not torch.allclose(a, b)


def test_one_hot_mask():
    label = torch.tensor([[[0, 5], [2, 2]]])
    m = T.one_hot_mask(label)
    assert m.shape == (1, 6, 2, 2) and torch.equal(m.sum(1), torch.ones(1, 2, 2))
    assert torch.equal(m.argmax(1), label) and m[0, 5, 0, 1] == 1
    with pytest.raises(ValueError, match="0..5"):
        T.one_hot_mask(torch.tensor([[[0, 6]]]))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        T.one_hot_mask(torch.zeros(2, 2, dtype=torch.long))


def test_pix2pix_generator_is_a_unet_with_gradients():
    torch.manual_seed(0)
    g = T.Pix2PixGenerator(32, (8, 16, 32))
    mask = T.one_hot_mask(torch.randint(0, 6, (2, 32, 32)))
    out = g(mask)
    assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1
    out.mean().backward()
    assert g.net.down[0][0].weight.grad.abs().sum() > 0
    assert torch.equal(T.synthesize(g.eval(), mask, torch.rand(2, 3, 32, 32)),
                       T.synthesize(g, mask, torch.zeros(2, 3, 32, 32)))   # no style input
    with pytest.raises(ValueError, match=r"\(B, 6, 32, 32\)"):
        g(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="method"):
        T.make_semantic_generator(T.Config.fast(), "CRN")


def test_make_semantic_data_is_paired_and_seeded():
    cfg = T.Config.fast()
    data = T.make_semantic_data(cfg, 5, 0)
    assert data["mask"].shape == (5, 6, 32, 32) and data["image"].shape == (5, 3, 32, 32)
    assert torch.equal(data["mask"].argmax(1), data["label"])
    assert not torch.equal(data["x_s"], data["image"])
    assert torch.equal(T.make_semantic_data(cfg, 5, 0)["image"], data["image"])


def test_judges_are_deterministic():
    cfg = T.Config.fast().replace(n_judge=8, steps_seg=3, steps_nets=1)
    a, b = T.train_judges(cfg), T.train_judges(cfg)
    for name in ("segmenter", "domain", "percept"):
        for p, q in zip(a[name].parameters(), b[name].parameters()):
            assert torch.equal(p, q)


def test_run_rejects_bad_variants():
    with pytest.raises(ValueError, match="config.variants"):
        T.run(T.Config.smoke().replace(variants=("TSIT", "AdaIN-only")))


def test_make_data_pairs_styles_with_the_same_scene():
    data = T.make_data(T.Config.fast(), 6, 0)
    assert data["styled"].shape == (2, 6, 3, 32, 32)
    assert torch.equal(data["style"], torch.tensor([0, 1, 0, 1, 0, 1]))
    idx = torch.arange(6)
    assert torch.equal(data["x_s"], data["styled"][data["style"], idx])
    again = T.make_data(T.Config.fast(), 6, 0)
    assert torch.equal(again["x_c"], data["x_c"])


def test_smoke_returns_every_key_and_seed():
    cfg = T.Config.smoke()
    out = T.run(cfg, samples=True)
    assert {"table1", "per_seed", "history", "judge_history", "samples", "findings"} <= set(out)
    assert out["samples"]["TSIT"].shape == (2, 6, 3, 64, 64)
    assert set(out["per_seed"].seed) == set(cfg.seeds) and len(cfg.seeds) >= 2
    assert list(out["table1"].method) == list(T.VARIANTS)
    assert out["table1"].set_index("method").loc["w/o SS", "style accuracy"] == 0.5
    assert list(out["table2"].method) == list(T.SEMANTIC_METHODS)
    assert set(out["per_seed_table2"].seed) == set(cfg.seeds)
    assert out["samples_table2"]["TSIT"].shape == (6, 3, 64, 64)
    assert len(out["findings"]) == 8
    c2 = out["compare_table2_miou"]
    assert list(c2.index) == ["pix2pixHD", "SPADE", "TSIT"] and c2["paper"].tolist() == [58.3, 62.3, 65.9]
    assert c2.loc["TSIT", "ours"] == pytest.approx(
        100 * out["table2"].set_index("method").loc["TSIT", "mIoU"])
    assert {"compare_table1", "compare_table2_accu", "compare_table2_fid"} <= set(out)
    assert set(out["findings"]["kind"]) == {"paper claim", "construction", "sanity check"}


def test_cli_runs_smoke(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "cvtutor", "run", "tsit", "--profile", "smoke",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
