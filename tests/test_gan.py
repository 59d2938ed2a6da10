"""GAN losses on hand cases, spectral norm's top singular value, discriminator and generator
block shapes and identities, AdaIN statistics, the generator EMA, the 2-D/3-D U-Net."""
import math

import pytest
import torch
from torch import nn

from cvtutor.nn import gan
from cvtutor.nn.unet import UNet, pad_to_multiple


def test_losses_closed_forms():
    r, f = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 0.5])
    sp = lambda t: math.log1p(math.exp(t))                                      # softplus
    assert gan.discriminator_loss("nsgan", r, f).item() == pytest.approx(
        (sp(-2) + sp(0)) / 2 + (sp(-1) + sp(0.5)) / 2)
    assert gan.generator_loss("nsgan", f).item() == pytest.approx((sp(1) + sp(-0.5)) / 2)
    assert gan.discriminator_loss("lsgan", r, f).item() == pytest.approx(
        0.5 * (1 + 1) / 2 + 0.5 * (1 + 0.25) / 2)
    assert gan.generator_loss("lsgan", f).item() == pytest.approx(0.5 * (4 + 0.25) / 2)
    assert gan.discriminator_loss("hinge", r, f).item() == pytest.approx((0 + 1) / 2 + (0 + 1.5) / 2)
    assert gan.generator_loss("hinge", f).item() == pytest.approx(0.25)
    # at the optimum of the ideal discriminator sigma(D) = 1/2 the nsgan D loss is 2 log 2
    z = torch.zeros(3)
    assert gan.discriminator_loss("nsgan", z, z).item() == pytest.approx(2 * math.log(2))
    with pytest.raises(ValueError, match="lsgan"):
        gan.generator_loss("wgan", f)


def test_gradient_penalty_zero_for_unit_gradient_critic():
    # a critic that is 1-Lipschitz with unit gradient everywhere has zero penalty
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 1, bias=False))
    with torch.no_grad():
        lin[1].weight.fill_(0.25)  # ||w|| = 1
    assert gan.gradient_penalty(lin, torch.rand(5, 1, 4, 4), torch.rand(5, 1, 4, 4)).item() \
        == pytest.approx(0, abs=1e-10)
    with torch.no_grad():
        lin[1].weight.fill_(0.5)   # ||w|| = 2: penalty (2 - 1)^2
    assert gan.gradient_penalty(lin, torch.rand(5, 1, 4, 4), torch.rand(5, 1, 4, 4)).item() \
        == pytest.approx(1.0, rel=1e-6)


def test_spectral_norm_top_singular_value_is_one():
    torch.manual_seed(0)
    d = gan.PatchGAN(3, 8, n_layers=2)
    d.train()
    x = torch.rand(2, 3, 32, 32)
    for _ in range(200):                                    # power iterations run in train mode
        d(x)
    d.eval()
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    for m in convs:
        s = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item()
        assert s == pytest.approx(1.0, abs=1e-3)


def test_discriminator_shapes():
    x = torch.rand(2, 3, 64, 64)
    assert gan.PatchGAN(3, 8, 3)(x).shape == (2, 1, 6, 6)
    outs = gan.MultiScaleDiscriminator(3, n_scales=3, width=8, n_layers=2)(x)
    assert [o.shape[-1] for o in outs] == [14, 6, 2]
    pd = gan.ProjectionDiscriminator(3, n_classes=4, width=8, spectral=False)
    y = torch.tensor([0, 3])
    out = pd(x, y)
    assert out.shape == (2,)
    # the projection term: changing the class changes D by <embed(y') - embed(y), phi(x)>
    h = pd.phi(x).sum((2, 3))
    diff = pd(x, torch.tensor([1, 1])) - out
    want = ((pd.embed(torch.tensor([1, 1])) - pd.embed(y)) * h).sum(1)
    torch.testing.assert_close(diff, want)
    with pytest.raises(ValueError, match=r"\(B,\)"):
        pd(x, torch.tensor([0]))
    with pytest.raises(ValueError, match="n_scales"):
        gan.MultiScaleDiscriminator(3, n_scales=0)


def test_resnet_blocks_shapes_and_dilation():
    x = torch.rand(2, 8, 16, 16)
    for d in (1, 2, 4):
        assert gan.ResnetBlock(8, dilation=d)(x).shape == x.shape
    # receptive field: a dilated block sees 2 * 2d pixels away, the plain one 2
    blk = gan.ResnetBlock(1, dilation=3, norm="none")
    x = torch.zeros(1, 1, 32, 32, requires_grad=True)
    blk(x)[0, 0, 16, 16].backward()
    reach = x.grad[0, 0].abs().sum(0).nonzero()[:, 0]
    assert int(reach.max() - 16) == 6
    with pytest.raises(ValueError, match="norm"):
        gan.ResnetBlock(8, norm="layer")


def test_adain_matches_style_statistics():
    g = torch.Generator().manual_seed(0)
    content = torch.randn(3, 4, 10, 10, generator=g) * 5 + 2
    style = torch.rand(3, 4, 12, 8, generator=g) * 3 - 1
    sm, ss = gan.channel_stats(style)
    out = gan.adain(content, sm, ss)
    om, os_ = gan.channel_stats(out)
    torch.testing.assert_close(om, sm, atol=1e-5, rtol=0)
    torch.testing.assert_close(os_, ss, atol=1e-4, rtol=1e-4)
    mod = gan.AdaIN(4, style_dim=6)                      # starts as plain instance norm
    torch.testing.assert_close(mod(content, torch.randn(3, 6)),
                               nn.functional.instance_norm(content, eps=1e-5), atol=1e-4,
                               rtol=1e-4)


def test_conditional_bn_and_spade_fade():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 8, 8)
    cbn = gan.ConditionalBatchNorm2d(3, n_classes=2)
    with torch.no_grad():
        cbn.gamma.weight[1] = 2.0
        cbn.beta.weight[1] = -1.0
    y = torch.tensor([0, 1, 0, 1])
    out, plain = cbn(x, y), nn.functional.batch_norm(x, None, None, training=True)
    torch.testing.assert_close(out[0], plain[0])
    torch.testing.assert_close(out[1], 2 * plain[1] - 1)
    seg = torch.zeros(4, 2, 4, 4)
    seg[:, 0, :, :2] = 1
    seg[:, 1, :, 2:] = 1
    for mod, cond in ((gan.SPADE(3, 2, hidden=8), seg), (gan.FADE(3, 5), torch.randn(4, 5, 4, 4))):
        assert mod(x, cond).shape == x.shape
        for conv in (mod.gamma, mod.beta):               # a zero head: the plain normalisation
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        torch.testing.assert_close(mod(x, cond), plain, atol=1e-5, rtol=1e-5)
    spade = gan.SPADE(3, 2, hidden=8)
    with pytest.raises(ValueError, match=r"\(B, K, h, w\)"):
        spade(x, seg[:2])


def test_generator_ema_closed_form():
    net = nn.Linear(1, 1, bias=False)
    ema = gan.generator_ema(net, decay=0.5)
    for v in (4.0, 0.0, 2.0):
        with torch.no_grad():
            net.weight.fill_(v)
        ema.update_parameters(net)
    # first update copies (4), then 0.5 * 4 + 0.5 * 0 = 2, then 0.5 * 2 + 0.5 * 2 = 2
    assert ema.module.weight.item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="decay"):
        gan.generator_ema(net, decay=1.0)


@pytest.mark.parametrize("dims,shape", [(2, (2, 3, 32, 24)), (3, (1, 2, 8, 16, 8))])
def test_unet_shapes(dims, shape):
    net = UNet(shape[1], 5, dims=dims, width=4, depth=3, out_activation="sigmoid")
    out = net(torch.rand(shape))
    assert out.shape == (shape[0], 5, *shape[2:]) and 0 <= out.min() and out.max() <= 1


def test_unet_rejects_odd_sizes_and_pads():
    net = UNet(1, 1, width=4, depth=2)
    x = torch.rand(1, 1, 30, 33)
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth = 4"):
        net(x)
    xp = pad_to_multiple(x, 4)
    assert xp.shape == (1, 1, 32, 36) and net(xp).shape == xp.shape
    with pytest.raises(ValueError, match="dims"):
        UNet(1, 1, dims=1)
    with pytest.raises(ValueError, match=r"expects \(B, C, 2 sides\)"):
        net(torch.rand(1, 1, 4, 4, 4))
