"""MobileNeXt (E40): Table 1 shapes, closed-form counts against FlopCounterMode, torchvision's
MobileNetV2 count, Eq. (4)'s identity, the linear residual, a wiring identity, INT8 agreement,
gradient confusion against a loop, bad input, the readers on fixtures, the smoke profile."""

import warnings

import pytest
import torch
import torchvision
from fixture_files import write_cifar10
from torch import nn

from cvtutor.nn.flops import conv2d_flops, flop_count
from cvtutor.papers import sandglass_mobilenext as S

g = torch.Generator().manual_seed(0)


def test_table1_shapes_for_m96_t6_s2():
    blk = S.SandglassBlock(96, 96, stride=2, t=6, dw_in=False)
    y = blk(torch.randn(2, 96, 56, 56, generator=g))
    assert y.shape == (2, 96, 28, 28)
    assert blk.hidden == 96 // 6 == 16
    convs = [m for m in blk.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.groups, c.stride[0]) for c in convs] == [
        (96, 16, 1, 1), (16, 96, 1, 1), (96, 96, 96, 2)]
    # N = 144: M / t = 16 < N / 6 = 24, raised to 24 rounded to a multiple of 16
    assert S.SandglassBlock(96, 144, stride=2, t=6, dw_in=False).hidden == 32


def test_hidden_width_rule_of_the_official_code():
    assert S.hidden_width(96, 96, 6) == 16
    # 32 // 6 = 5 < 96 / 6 = 16: raised to ceil(16) rounded to 16
    assert S.hidden_width(32, 96, 6) == 16
    assert S.hidden_width(64, 1280, 6) == S.make_divisible(214, 16) == 208
    with pytest.raises(ValueError, match="t >= 1"):
        S.hidden_width(8, 8, 0)


def test_block_layout_rules():
    assert S.block_layout(32, 96, 2, 2) == {"dw_in": True, "dw_out": True, "identity": False}
    assert S.block_layout(96, 144, 1, 6, True) == {"dw_in": True, "dw_out": True,
                                                   "identity": False}
    assert S.block_layout(144, 192, 2, 6) == {"dw_in": False, "dw_out": True, "identity": False}
    assert S.block_layout(288, 384, 1, 6) == {"dw_in": False, "dw_out": False, "identity": False}
    assert S.block_layout(192, 192, 1, 6)["identity"]
    assert S.block_layout(144, 192, 2, 6, rule="paper")["dw_in"] is False
    with pytest.raises(ValueError, match="rule"):
        S.block_layout(8, 8, 1, 6, rule="x")
    with pytest.raises(ValueError, match="stride"):
        S.block_layout(8, 8, 3, 6)


@pytest.mark.parametrize("m,n,t,d", [(96, 96, 6, 14), (48, 48, 2, 8)])
def test_block_cost_matches_closed_form_and_flop_counter(m, n, t, d):
    blk = S.SandglassBlock(m, n, 1, t)
    cf = S.sandglass_cost(m, n, t, d)
    c = flop_count(blk, torch.zeros(1, m, d, d))
    assert c["madds"] == cf["madds"]
    assert c["params"] == cf["conv_params"] + cf["bn_params"]
    h = m // t
    per_conv = (conv2d_flops(m, m, 3, (d, d), groups=m) + conv2d_flops(m, h, 1, (d, d))
                + conv2d_flops(h, n, 1, (d, d)) + conv2d_flops(n, n, 3, (d, d), groups=n))
    assert 2 * cf["madds"] == per_conv


def test_mobilenetv2_builder_matches_torchvision_and_mobilenext_paper_count():
    ours = S.mobilenet_v2(1.0)
    tv = torchvision.models.mobilenet_v2()
    n = sum(p.numel() for p in ours.parameters())
    assert n == sum(p.numel() for p in tv.parameters()) == S.PAPER[
        "torchvision_mobilenet_v2_params"]
    counts = S.imagenet_counts(widths=(1.0,)).set_index("model")
    assert abs(counts.loc["MobileNeXt-1.00", "params (M)"] / 3.4 - 1) < 0.05
    assert abs(counts.loc["MobileNeXt-1.00", "MAdds (M)"] / 300 - 1) < 0.05
    # torchvision's MAdds through the same counter
    assert abs(counts.loc["MobileNetV2-1.00", "MAdds (M)"]
               - flop_count(tv, torch.zeros(1, 3, 224, 224))["madds"] / 1e6) < 1e-6


def test_partial_identity_eq4():
    phi, f = torch.randn(2, 12, 3, 3, generator=g), torch.randn(2, 12, 3, 3, generator=g)
    assert torch.equal(S.partial_identity(phi, f, 1.0), phi + f)
    assert torch.equal(S.partial_identity(phi, f, 0.0), phi)
    half = S.partial_identity(phi, f, 0.5)
    assert torch.equal(half[:, :6], phi[:, :6] + f[:, :6])
    assert torch.equal(half[:, 6:], phi[:, 6:])
    assert S.n_identity_channels(96, 1 / 6) == 16 and S.n_identity_channels(96, 1 / 3) == 32
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        S.partial_identity(phi, f, 1.5)
    with pytest.raises(ValueError, match="one shape"):
        S.partial_identity(phi, f[:, :6], 0.5)


def test_alpha_half_leaves_last_channels_independent_of_the_shortcut():
    blk = S.SandglassBlock(16, 16, 1, 2, alpha=0.5).eval()
    x = torch.randn(1, 16, 6, 6, generator=g, requires_grad=True)
    out = blk(x)
    # gradient of the last 8 outputs w.r.t. x equals that of the residual path alone
    ga = torch.autograd.grad(out[:, 8:].sum(), x)[0]
    gb = torch.autograd.grad(blk.conv(x)[:, 8:].sum(), x)[0]
    assert torch.allclose(ga, gb)
    ga = torch.autograd.grad(blk(x)[:, :8].sum(), x)[0]
    gb = torch.autograd.grad(blk.conv(x)[:, :8].sum(), x)[0]
    assert torch.allclose(ga - gb, torch.cat([torch.ones(1, 8, 6, 6), torch.zeros(1, 8, 6, 6)], 1))


def test_linear_residual_outputs_negatives_and_relu_out_does_not():
    x = torch.randn(4, 16, 8, 8, generator=g)
    assert (S.SandglassBlock(16, 16, 1, 2, identity=False)(x) < 0).any()
    assert (S.InvertedResidual(16, 16, 1, 6)(x) < 0).any()
    assert (S.SandglassBlock(16, 16, 1, 2, identity=False, relu_out=True)(x) >= 0).all()


def test_delta_kernels_reduce_the_block_to_twice_the_input():
    m = 8
    blk = S.SandglassBlock(m, m, 1, t=1).eval()
    for conv in (c for c in blk.modules() if isinstance(c, nn.Conv2d)):
        w = torch.zeros_like(conv.weight)
        if conv.groups > 1:
            w[:, 0, 1, 1] = 1
        else:
            w[:, :, 0, 0] = torch.eye(m)
        conv.weight.data = w
    bns = [b for b in blk.modules() if isinstance(b, nn.BatchNorm2d)]
    x = 6 * torch.rand(2, m, 5, 5, generator=g) * 0.9
    s = (1 + bns[0].eps) ** -0.5
    # four BNs scale by s each; ReLU6 keeps [0, 6) values
    assert torch.allclose(blk(x), x * s**4 + x, atol=1e-5)


def test_bad_input_raises():
    with pytest.raises(ValueError, match=r"\(B, 16, H, W\)"):
        S.SandglassBlock(16, 16)(torch.zeros(1, 8, 4, 4))
    with pytest.raises(ValueError, match="identity needs"):
        S.SandglassBlock(16, 32, identity=True)
    with pytest.raises(ValueError, match="family"):
        S.build("ResNet", 0.35, 10, S.Config.fast())
    with pytest.raises(ValueError, match="ablation"):
        S.build("MobileNeXt", 0.35, 10, S.Config.fast(), "x")
    with pytest.raises(ValueError, match="width"):
        S.mobilenext(0)
    with pytest.raises(ValueError, match=r"\(N, 3, S, S\)"):
        S.quantize_int8(S.mobilenext(0.35, 4), torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="B >= 2"):
        S.gradient_confusion(torch.zeros(1, 5))


def test_quantized_argmax_agrees_with_fp32():
    torch.manual_seed(0)
    cfg = S.Config.fast()
    net = S.build("MobileNeXt", 0.35, 4, cfg).eval()
    with torch.no_grad():  # give BN some spread so the logits differ
        for bn in (b for b in net.modules() if isinstance(b, nn.BatchNorm2d)):
            bn.running_var.uniform_(0.5, 2)
    x = torch.rand(64, 3, 16, 16, generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = S.quantize_int8(net, x)
    with torch.no_grad():
        agree = (q(x).argmax(1) == net(x).argmax(1)).float().mean()
    assert agree > 0.9


def test_per_sample_gradients_match_a_loop_and_confusion_cosines():
    torch.manual_seed(0)
    net = S.mobilenext(0.35, 4, S.CIFAR_NEXT_STAGES, 1).eval()
    x, y = torch.rand(3, 3, 8, 8, generator=g), torch.tensor([0, 1, 3])
    G = S.per_sample_gradients(net, x, y)
    for i in range(3):
        net.zero_grad()
        nn.functional.cross_entropy(net(x[i:i + 1]), y[i:i + 1]).backward()
        ref = torch.cat([p.grad.flatten() for p in net.parameters()])
        assert torch.allclose(G[i], ref, atol=1e-6)
    a = torch.tensor([[1.0, 0], [0, 1], [-1, 0]])
    c = S.gradient_confusion(a)
    assert c["min cosine"] == pytest.approx(-1) and c["mean cosine"] == pytest.approx(-1 / 3)


def test_make_data_reads_the_real_sets_through_the_shared_reader(tmp_path):
    write_cifar10(tmp_path)
    d = S.make_data(S.Config(data="cifar10", root=str(tmp_path)), device="cpu")
    assert d["train"].x.shape == (20, 3, 32, 32) and d["test"].x.shape == (4, 3, 32, 32)
    with pytest.raises(ValueError, match="needs root"):
        S.make_data(S.Config(data="cifar10"), device="cpu")
    with pytest.raises(ValueError, match="data must be"):
        S.make_data(S.Config(data="svhn", root="x"), device="cpu")


def test_smoke_run_returns_every_key_of_full():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = S.run(S.Config.smoke())
    for k in ("counts", "runs", "table3", "compare_table3", "curves", "ablations", "alphas",
              "grad_norms", "confusion", "findings"):
        assert k in res
    assert set(res["ablations"]["variant"]) == set(S.ABLATIONS) | {"MobileNeXt"}
    assert res["alphas"]["alpha"].nunique() == 4
    assert res["findings"]["holds"].notna().sum() >= 6
    assert res["compare_table3"].index.tolist() == [0.35, 0.5]
