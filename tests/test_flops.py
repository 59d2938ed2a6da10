"""FLOP counting against the closed form; ResNetMini's stages and the small CNN."""

import pytest
import torch
from torch import nn

from cvtutor.nn import flops
from cvtutor.nn.resnet_mini import ResNetMini
from cvtutor.nn.small_cnn import SmallCNN


@pytest.mark.parametrize(
    "c_in,c_out,groups,stride", [(16, 32, 1, 1), (16, 32, 4, 2), (24, 24, 24, 1), (24, 48, 24, 1)]
)
def test_conv_flops_match_the_closed_form_for_grouped_and_depthwise(c_in, c_out, groups, stride):
    conv = nn.Conv2d(c_in, c_out, 3, stride, 1, groups=groups)
    x = torch.zeros(2, c_in, 16, 16)
    out = 16 // stride
    got = flops.flop_count(conv, x)
    assert got["flops"] == flops.conv2d_flops(c_in, c_out, 3, (out, out), groups, batch=2)
    assert got["madds"] * 2 == got["flops"]
    assert got["params"] == c_out * (c_in // groups) * 9 + c_out
    with pytest.raises(ValueError, match="must divide"):
        flops.conv2d_flops(10, 12, 3, (4, 4), groups=4)


def test_depthwise_separable_costs_what_mobilenet_says():
    # MobileNet: a depthwise 3x3 + pointwise 1x1 costs 1/C_out + 1/9 of the standard 3x3 convolution
    c, h = 32, 8
    std = flops.conv2d_flops(c, 64, 3, (h, h))
    sep = flops.conv2d_flops(c, c, 3, (h, h), groups=c) + flops.conv2d_flops(c, 64, 1, (h, h))
    assert sep / std == pytest.approx(1 / 64 + 1 / 9)
    m = nn.Sequential(
        nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False), nn.Conv2d(c, 64, 1, bias=False)
    )
    assert flops.flop_count(m, torch.zeros(1, c, h, h))["flops"] == sep


def test_linear_and_module_breakdown():
    m = nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 2))
    got = flops.flop_count(m, torch.zeros(3, 10))
    assert got["flops"] == 2 * 3 * (10 * 5 + 5 * 2) and got["params"] == 55 + 12
    assert sum(v for k, v in got["by_module"].items() if k.count(".") == 1) == got["flops"]


def test_resnet_mini_stages_cifar_resnets():
    r20 = ResNetMini(3, 10, 16, blocks=(3, 3, 3), strides=(1, 2, 2))
    assert (
        0.26e6 < flops.count_parameters(r20) < 0.28e6
    )  # He et al.: ResNet-20 has 0.27M parameters
    out, feats = r20(torch.zeros(2, 3, 32, 32), features=True)
    assert out.shape == (2, 10) and [f.shape[1:] for f in feats] == [
        (16, 32, 32),
        (32, 16, 16),
        (64, 8, 8),
    ]
    # 6n + 2 layers with weights: stem + 2 per block + head (projection skips are not counted)
    n_conv3 = sum(
        1 for mod in r20.modules() if isinstance(mod, nn.Conv2d) and mod.kernel_size == (3, 3)
    )
    assert n_conv3 + 1 == 20
    # ResNet-20's ~41M multiply-adds per 32x32 image
    assert 39e6 < flops.flop_count(r20, torch.zeros(1, 3, 32, 32))["madds"] < 43e6
    with pytest.raises(ValueError, match="blocks and strides"):
        ResNetMini(3, 10, 16, blocks=(1, 1))


def test_resnet_mini_defaults_unchanged_in_structure():
    m = ResNetMini(3, 63, 8)
    assert all(not isinstance(s, nn.Sequential) for s in m.stages)  # one block a stage, as before
    assert all(isinstance(s.skip, nn.Sequential) for s in m.stages)  # all projection skips


def test_small_cnn_shapes_and_bad_input():
    m = SmallCNN(1, 10, 8)
    assert m(torch.zeros(2, 1, 16, 16)).shape == (2, 10) and m.features(
        torch.zeros(2, 1, 16, 16)
    ).shape == (2, 32)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        m(torch.zeros(2, 3, 16, 16))
