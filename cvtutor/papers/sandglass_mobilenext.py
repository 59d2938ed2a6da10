"""MobileNeXt: the sandglass block, a bottleneck whose shortcut joins the wide representations.

Zhou, Hou, Chen, Feng, Yan. *Rethinking Bottleneck Structure for Efficient Mobile Network Design*.
ECCV 2020, LNCS 12348, pp. 680-697. Derived in ``notebooks/eccv2020/sandglass_mobilenext.ipynb``.

MobileNetV2's inverted residual puts the identity between thin linear bottlenecks. The sandglass
block flips it back: reduce then expand inside the residual path, shortcut on the ``M`` wide
channels, depthwise 3x3 convolutions at both wide ends, linear residual.

Equations
---------
(1)    G = phi_e(phi_r(F)) + F                                 (reduction first, then expansion)
(2-3)  G^ = phi_{1,p} phi_{1,d}(F),  G = phi_{2,d} phi_{2,p}(G^) + F          (Table 1)
(4)    G_{1:aM} = phi(F)_{1:aM} + F_{1:aM},  G_{aM:M} = phi(F)_{aM:M}   (identity multiplier a)
cost   MAdds = D^2 (9M + M^2/t + MN/t + 9N),  params = 9M + M^2/t + MN/t + 9N (+ BN), stride 1

Hidden widths and the stage exceptions follow the official code (``mobilenext/codebase/models/
mnext.py``), which the paper does not state: see :func:`hidden_width` and :func:`block_layout`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from cvtutor import report
from cvtutor.data.imageclass import readers, sets
from cvtutor.nn.flops import count_parameters, flop_count
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import fit, minibatches

# ---------------------------------------------------------------------------------------------
# the paper's numbers
# ---------------------------------------------------------------------------------------------
WIDTHS = (1.4, 1.0, 0.75, 0.5, 0.35)
_T3 = {  # (params M, MAdds M, top-1 %) per family and width, Table 3
    "MobileNetV2": {1.4: (6.9, 690, 74.9), 1.0: (3.5, 300, 72.3), 0.75: (2.6, 150, 69.9),
                    0.5: (2.0, 97, 65.4), 0.35: (1.7, 59, 60.3)},
    "MobileNeXt": {1.4: (6.1, 590, 76.1), 1.0: (3.4, 300, 74.0), 0.75: (2.5, 210, 72.0),
                   0.5: (2.1, 110, 67.7), 0.35: (1.8, 80, 64.7)},
}
PAPER = {
    "table3": _T3,
    "table3_top1": report.PaperTable(
        "Table 3 (ImageNet, 224 x 224)", "top-1 accuracy (%)",
        {f"{f}-{w:.2f}": v[2] for f, d in _T3.items() for w, v in d.items()}, better="higher"),
    "table4": report.PaperTable(
        "Table 4 (post-training quantization, ImageNet)", "top-1 accuracy (%)",
        {"MobileNetV2 INT8": 65.07, "MobileNeXt INT8": 68.62, "MobileNetV2 FP32": 72.25,
         "MobileNeXt FP32": 74.02}, better="higher"),
    "table5": report.PaperTable(
        "Table 5 (two depthwise convs per block)", "top-1 accuracy (%)",
        {"MobileNetV2 + middle dw": 73.02, "MobileNeXt": 74.02}, better="higher",
        note="params 3.6M / 3.5M, MAdds 340M / 300M"),
    "table7": report.PaperTable(
        "Table 7 (identity tensor multiplier)", "top-1 accuracy (%)",
        {"alpha=1": 74.02, "alpha=1/2": 74.09, "alpha=1/3": 73.91, "alpha=1/6": 73.68},
        better="higher", note="latency on a Pixel 4XL: 211, 196, 195, 188 ms"),
    "table7_latency_ms": {"alpha=1": 211, "alpha=1/2": 196, "alpha=1/3": 195, "alpha=1/6": 188},
    "ablation_drop": {"shortcut on the bottleneck": 1.0, "ReLU6 on the output": 1.0},  # Sec. 4.4
    "torchvision_mobilenet_v2_params": 3_504_872,  # torchvision's count, not the paper's
}

# ---------------------------------------------------------------------------------------------
# the blocks
# ---------------------------------------------------------------------------------------------
def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """The MobileNet channel rounding: nearest multiple of ``divisor``, never below ``min_value``
    (default ``divisor``) nor more than 10 % below ``v``."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def hidden_width(m: int, n: int, t: int) -> int:
    """The bottleneck width ``M / t`` of Table 1, as the official code computes it: ``M // t``,
    raised to ``ceil(N / 6)`` rounded to a multiple of 16 when smaller (not in the paper)."""
    if m < 1 or n < 1 or t < 1:
        raise ValueError(f"need M, N, t >= 1, got {m}, {n}, {t}")
    h = m // t
    if h < n / 6:
        h = make_divisible(math.ceil(n / 6), 16)
    return h


def block_layout(m: int, n: int, stride: int, t: int, single_stride1_stage: bool = False,
                 rule: str = "official") -> dict:
    """Which depthwise convs and whether the identity a sandglass block has.

    ``rule="paper"`` (Sect. 3.2): the first dw is dropped at stride 2; the shortcut only when
    ``M = N`` and stride 1. ``rule="official"`` (``mnext.py``): the ``t = 2`` stage keeps both dw
    even at stride 2; channel-changing stride-1 blocks have the two pointwise convs only, unless
    they form a single-block stride-1 stage (both dw, no identity). Returns ``{"dw_in", "dw_out",
    "identity"}``.
    """
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride}")
    same = m == n and stride == 1
    if rule == "paper":
        return {"dw_in": stride == 1, "dw_out": True, "identity": same}
    if rule != "official":
        raise ValueError(f"rule must be 'official' or 'paper', got {rule!r}")
    if t == 2:
        return {"dw_in": True, "dw_out": True, "identity": False}
    if m != n and not single_stride1_stage:
        return {"dw_in": False, "dw_out": stride == 2, "identity": False}
    return {"dw_in": True, "dw_out": True, "identity": not single_stride1_stage and same}


def conv_bn(c_in: int, c_out: int, k: int = 1, stride: int = 1, groups: int = 1,
            act: bool = False) -> nn.Sequential:
    """``k x k`` conv (no bias) + BN (+ ReLU6): the layers of Table 1 ("BN everywhere")."""
    layers = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, nn.ReLU6()) if act else nn.Sequential(*layers)


def n_identity_channels(m: int, alpha: float) -> int:
    """``alpha M`` of Eq. (4), rounded down (``alpha in [0, 1]``)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"the identity tensor multiplier alpha must be in [0, 1], got {alpha}")
    return math.floor(alpha * m + 1e-6)


def partial_identity(phi_f: torch.Tensor, f: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. (4): the first ``alpha M`` channels get the shortcut, the rest are ``phi(F)`` alone.
    ``phi_f, f (B, M, H, W)``; ``alpha = 1`` is Eq. (1)'s full residual, ``alpha = 0`` none."""
    if phi_f.shape != f.shape:
        raise ValueError(f"phi(F) and F must have one shape, got {tuple(phi_f.shape)}, "
                         f"{tuple(f.shape)}")
    return _add_identity(phi_f, f, n_identity_channels(f.shape[1], alpha), f.shape[1])


def _add_identity(phi_f: torch.Tensor, f: torch.Tensor, k: int, m: int) -> torch.Tensor:
    """``phi(F) + F`` on the first ``k`` of ``m`` channels (plain Python ints, so that the block
    traces for FX quantization)."""
    if k == m:
        return phi_f + f
    if k == 0:
        return phi_f
    return torch.cat([phi_f[:, :k] + f[:, :k], phi_f[:, k:]], 1)


def _check_input(x: torch.Tensor, c: int) -> None:
    """``x`` must be ``(B, c, H, W)`` (skipped while FX traces the module for quantization)."""
    if torch.fx._symbolic_trace.is_fx_symbolic_tracing():
        return
    if x.ndim != 4 or x.shape[1] != c:
        raise ValueError(f"expected (B, {c}, H, W), got {tuple(x.shape)}")


class SandglassBlock(nn.Module):
    """The sandglass block, Eqs. (2)-(3) and Table 1: ``(B, M, D, D) -> (B, N, D/s, D/s)``.

    dw 3x3 + ReLU6 (``phi_{1,d}``), 1x1 linear ``M -> M/t`` (``phi_{1,p}``, the linear bottleneck),
    1x1 + ReLU6 ``M/t -> N`` (``phi_{2,p}``), dw 3x3 linear with stride ``s`` (``phi_{2,d}``), BN
    after each; the identity (Eq. 4 with ``alpha``) on the wide ``M = N`` channels.

    Sect. 4.4 ablations: ``relu_out`` adds ReLU6 after the last conv (a non-linear residual);
    ``dw_in_bottleneck`` moves the spatial conv into the ``M/t`` bottleneck (Fig. 3a: 1x1 linear
    reduce, dw 3x3 + ReLU6 with stride ``s``, 1x1 linear expand).
    """

    def __init__(self, m: int, n: int, stride: int = 1, t: int = 6, alpha: float = 1.0,
                 dw_in: bool = True, dw_out: bool = True, identity: bool | None = None,
                 relu_out: bool = False, dw_in_bottleneck: bool = False) -> None:
        super().__init__()
        if stride == 2 and not (dw_out or dw_in_bottleneck):
            raise ValueError("a stride-2 block needs its strided depthwise conv (dw_out=True)")
        h = hidden_width(m, n, t)
        self.m, self.n, self.hidden, self.stride, self.alpha = m, n, h, stride, alpha
        self.k = n_identity_channels(m, alpha)
        self.identity = (m == n and stride == 1) if identity is None else identity
        if self.identity and (m != n or stride != 1):
            raise ValueError(f"an identity needs M = N and stride 1, got {m}, {n}, {stride}")
        if dw_in_bottleneck:
            layers = [conv_bn(m, h), conv_bn(h, h, 3, stride, groups=h, act=True), conv_bn(h, n)]
        else:
            layers = [conv_bn(m, m, 3, groups=m, act=True)] if dw_in else []
            layers += [conv_bn(m, h), conv_bn(h, n, act=True)]
            if dw_out:
                layers.append(conv_bn(n, n, 3, stride, groups=n))
        if relu_out:
            layers.append(nn.ReLU6())
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.m)
        out = self.conv(x)
        return _add_identity(out, x, self.k, self.m) if self.identity else out


class InvertedResidual(nn.Module):
    """MobileNetV2's inverted residual block: 1x1 + ReLU6 ``M -> tM`` (none when ``t = 1``),
    dw 3x3 + ReLU6 with stride ``s``, 1x1 linear ``tM -> N``; identity on the thin ``M = N``
    bottleneck at stride 1. ``extra_dw`` inserts a second dw 3x3 + ReLU6 in the middle (Table 5).
    """

    def __init__(self, m: int, n: int, stride: int = 1, t: int = 6, extra_dw: bool = False,
                 alpha: float = 1.0) -> None:
        super().__init__()
        if stride not in (1, 2) or t < 1:
            raise ValueError(f"need stride 1 or 2 and t >= 1, got {stride}, {t}")
        h = round(m * t)
        self.m, self.n, self.alpha = m, n, alpha
        self.k = n_identity_channels(m, alpha)
        self.identity = m == n and stride == 1
        layers = [conv_bn(m, h, act=True)] if t != 1 else []
        layers.append(conv_bn(h, h, 3, stride, groups=h, act=True))
        if extra_dw:
            layers.append(conv_bn(h, h, 3, 1, groups=h, act=True))
        layers.append(conv_bn(h, n))
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.m)
        out = self.conv(x)
        return _add_identity(out, x, self.k, self.m) if self.identity else out


# ---------------------------------------------------------------------------------------------
# the networks (Table 2 and MobileNetV2)
# ---------------------------------------------------------------------------------------------
MOBILENEXT_STAGES = ((2, 96, 1, 2), (6, 144, 1, 1), (6, 192, 3, 2), (6, 288, 3, 2),
                     (6, 384, 4, 1), (6, 576, 4, 2), (6, 960, 3, 1), (6, 1280, 1, 1))
"""Table 2's rows 2-9 as ``(t, output channels, b repeats, s stride of the first)``."""
MOBILENETV2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                      (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
"""MobileNetV2's inverted-residual rows (Sandler et al., Table 2), same form."""
CIFAR_NEXT_STAGES = ((2, 64, 1, 1), (6, 96, 2, 2), (6, 192, 2, 2))
CIFAR_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2))
"""The fast profile's three-stage nets (stride 4 in all, for 32 px images)."""


class MobileNet(nn.Module):
    """A stem conv 3x3 + ReLU6, the blocks, (V2: a 1x1 + ReLU6 to ``last``), global average
    pooling, Dropout, Linear to ``n_classes``: ``(B, 3, S, S) -> (B, n_classes)``."""

    def __init__(self, stem: nn.Module, blocks: list[nn.Module], head: nn.Module | None,
                 features: int, n_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.stem, self.blocks = stem, nn.Sequential(*blocks)
        self.head = head if head is not None else nn.Identity()
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, 3)
        h = self.head(self.blocks(self.stem(x)))
        return self.classifier(h.mean((2, 3)))


def mobilenext(width: float = 1.0, n_classes: int = 1000, stages=MOBILENEXT_STAGES,
               stem_stride: int = 2, alpha: float = 1.0, rule: str = "official",
               relu_out: bool = False, dw_in_bottleneck: bool = False,
               keep_last: bool = True) -> MobileNet:
    """MobileNeXt of Table 2 at a width multiplier: stem of ``32 w`` channels, the sandglass rows
    of ``stages`` (``c w`` channels, rounded to 8), pooling, Dropout 0.2 + Linear. With
    ``keep_last`` (the official code) the 1280-channel last row is not narrowed below 1.0."""
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    c = make_divisible(32 * width)
    stem = conv_bn(3, c, 3, stem_stride, act=True)
    blocks, last_c = [], stages[-1][1]
    for t, ch, b, s in stages:
        out = make_divisible(ch * width)
        if keep_last and ch == last_c and width < 1 and ch == 1280:
            out = ch
        for i in range(b):
            stride = s if i == 0 else 1
            lay = block_layout(c, out, stride, t, single_stride1_stage=(b == 1 and s == 1),
                               rule=rule)
            blocks.append(SandglassBlock(c, out, stride, t, alpha, relu_out=relu_out,
                                         dw_in_bottleneck=dw_in_bottleneck, **lay))
            c = out
    return MobileNet(stem, blocks, None, c, n_classes)


def mobilenet_v2(width: float = 1.0, n_classes: int = 1000, stages=MOBILENETV2_STAGES,
                 stem_stride: int = 2, last: int = 1280, extra_dw: bool = False) -> MobileNet:
    """MobileNetV2 (torchvision's layout: same parameter count) at a width multiplier; the last
    1x1 conv has ``last * max(1, w)`` channels; ``extra_dw`` is Table 5's variant."""
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    c = make_divisible(32 * width)
    stem = conv_bn(3, c, 3, stem_stride, act=True)
    blocks = []
    for t, ch, b, s in stages:
        out = make_divisible(ch * width)
        for i in range(b):
            blocks.append(InvertedResidual(c, out, s if i == 0 else 1, t, extra_dw))
            c = out
    last_c = make_divisible(last * max(1.0, width))
    return MobileNet(stem, blocks, conv_bn(c, last_c, act=True), last_c, n_classes)


def sandglass_cost(m: int, n: int, t: int, d: int) -> dict:
    """Closed form of a stride-1 sandglass block with both dw convs and hidden width ``M / t``:
    ``MAdds = D^2 (9M + M^2/t + MN/t + 9N)``, conv params ``9M + M^2/t + MN/t + 9N``, and the BN
    params, 2 per channel of each of the four BNs: ``2 (M + M/t + 2N)``."""
    if m % t:
        raise ValueError(f"the closed form needs t ({t}) to divide M ({m})")
    h = m // t
    conv = 9 * m + m * h + h * n + 9 * n
    return {"madds": d * d * conv, "conv_params": conv, "bn_params": 2 * (m + h + 2 * n)}


def meta_count(model: nn.Module, size: int = 224) -> dict:
    """Parameters and MAdds of one ``size x size`` image, counted on the meta device (no memory,
    no arithmetic) with :func:`cvtutor.nn.flops.flop_count`."""
    with torch.device("meta"):
        x = torch.empty(1, 3, size, size)
        m = model.to("meta")
    out = flop_count(m, x)
    return {"params": out["params"], "madds": out["madds"]}


def imagenet_counts(widths=WIDTHS, size: int = 224) -> pd.DataFrame:
    """Table 3's parameter and MAdd columns recounted from our builders (no training), beside
    the paper's: one row per family and width."""
    rows = []
    for fam, build in (("MobileNetV2", mobilenet_v2), ("MobileNeXt", mobilenext)):
        for w in widths:
            with torch.device("meta"):
                model = build(w)
            c = meta_count(model, size)
            p = _T3[fam].get(w, (float("nan"),) * 3)
            rows.append({"model": f"{fam}-{w:.2f}", "family": fam, "width": w,
                         "params (M)": c["params"] / 1e6, "paper params (M)": p[0],
                         "MAdds (M)": c["madds"] / 1e6, "paper MAdds (M)": p[1]})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
DATASETS = ("shapes", "cifar10", "imagefolder")


@dataclass(frozen=True)
class Config(ProfileConfig):
    data: str = "shapes"  # shapes (ShapesTextures-16), cifar10 or imagefolder
    root: str | None = None  # the real data's folder for cifar10 / imagefolder
    size: int = 32
    n_train: int = 1600
    n_test: int = 1000
    stages: str = "cifar3"  # cifar3 (3 stages) or table2 (8 stages, stem stride 1)
    widths: tuple[float, ...] = (0.35,)
    epochs: int = 3
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    seeds: tuple[int, ...] = (0,)
    ablations: tuple[str, ...] = ()  # of ABLATIONS, at widths[0]
    alphas: tuple[float, ...] = ()  # Table 7 sweep at widths[0] (1 is the plain run)
    calib: int = 256  # PTQ calibration images
    int8_test: int = 1000  # test images the INT8 nets are scored on (CPU inference)
    latency_batch: int = 16
    latency_reps: int = 3
    confusion_samples: int = 32
    device: str | None = None

    @classmethod
    def fast(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        """Four widths of the 8-stage Table 2 nets (stem stride 1 for 32 px), three seeds, the
        ablations, Table 5 and the alpha sweep."""
        return cls(n_train=10000, n_test=4000, stages="table2", widths=(0.35, 0.5, 0.75, 1.0),
                   epochs=10, batch_size=128, seeds=(0, 1, 2), ablations=ABLATIONS,
                   alphas=(0.5, 1 / 3, 1 / 6), calib=256, latency_reps=10,
                   confusion_samples=64)

    @classmethod
    def smoke(cls) -> Config:
        """``full``'s code paths at toy size."""
        return cls.full().replace(n_train=32, n_test=32, widths=(0.35, 0.5), epochs=1,
                                  batch_size=16, seeds=(0,), calib=16, latency_batch=4,
                                  latency_reps=1, confusion_samples=4, size=16)


ABLATIONS = ("v2 + middle dw", "shortcut on the bottleneck", "ReLU6 on the output",
             "dw in the bottleneck")


def make_data(config: Config, seed: int = 0, device=None) -> dict[str, sets.ImageSet]:
    """``{"train", "test"}``: ShapesTextures-16 drawn per seed on the device, or CIFAR-10 (the
    Python pickles) / an ImageNet-style ``root/<class>/<image>`` folder read from ``root``
    (``root/train``, ``root/val``). No download."""
    device = device or get_device(config.device)
    if config.data == "shapes":
        return {"train": sets.shapes_textures(config.n_train, config.size, seed=2 * seed,
                                              device=device),
                "test": sets.shapes_textures(config.n_test, config.size, seed=2 * seed + 1,
                                             device=device)}
    if config.data not in DATASETS:
        raise ValueError(f"data must be one of {DATASETS}, got {config.data!r}")
    return readers.read_train_test(config.data, config.root, device)


def build(family: str, width: float, n_classes: int, config: Config,
          ablation: str | None = None, alpha: float = 1.0) -> MobileNet:
    """The net of a run: ``family`` MobileNeXt or MobileNetV2 at ``width`` with the config's
    stages (``cifar3``: :data:`CIFAR_NEXT_STAGES` / :data:`CIFAR_V2_STAGES`, a 256-channel V2
    head; ``table2``: the ImageNet rows with stem and first-row stride 1), an ablation of
    :data:`ABLATIONS` and the identity multiplier ``alpha``."""
    if config.stages == "cifar3":
        nx, v2, last = CIFAR_NEXT_STAGES, CIFAR_V2_STAGES, 256
    elif config.stages == "table2":
        nx = ((2, 96, 1, 1),) + MOBILENEXT_STAGES[1:]
        v2 = ((1, 16, 1, 1), (6, 24, 2, 1)) + MOBILENETV2_STAGES[2:]
        last = 1280
    else:
        raise ValueError(f"stages must be 'cifar3' or 'table2', got {config.stages!r}")
    if ablation is not None and ablation not in ABLATIONS:
        raise ValueError(f"ablation must be one of {ABLATIONS}, got {ablation!r}")
    if family == "MobileNetV2" or ablation in ("v2 + middle dw", "shortcut on the bottleneck"):
        if ablation == "shortcut on the bottleneck":
            # the sandglass's layers rotated to start at its bottleneck: an inverted residual
            # with the two dw convs in the middle, the sandglass's stages and widths
            return mobilenet_v2(width, n_classes, tuple((t, c // t, b, s) for t, c, b, s in nx),
                                1, last, extra_dw=True)
        return mobilenet_v2(width, n_classes, v2, 1, last, extra_dw=ablation == "v2 + middle dw")
    if family != "MobileNeXt":
        raise ValueError(f"family must be 'MobileNeXt' or 'MobileNetV2', got {family!r}")
    return mobilenext(width, n_classes, nx, 1, alpha, relu_out=ablation == "ReLU6 on the output",
                      dw_in_bottleneck=ablation == "dw in the bottleneck")


def train_model(model: nn.Module, data: sets.ImageSet, config: Config, seed: int,
                desc: str | None = None) -> tuple[nn.Module, pd.DataFrame]:
    """SGD (momentum 0.9, weight decay 4e-5 on all weights) with a cosine schedule from lr 0.05
    (Sect. 4.1; no warm-up at this length), cross-entropy, through :func:`cvtutor.train.fit`."""
    seed_everything(seed)
    model = model.to(data.x.device)
    batches = minibatches(data.x, data.y, batch_size=min(config.batch_size, len(data)), seed=seed)
    steps = batches.steps_per_epoch * config.epochs
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)

    def loss_fn(models, batch, step):
        x, y = batch
        return {"loss": F.cross_entropy(models["model"](x).float(), y)}

    hist = fit(model, opt, batches, loss_fn, steps=steps, schedulers=sched, progress=False,
               desc=desc)
    model.eval()
    return model, hist


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Logits ``(N, C)`` in eval mode, in batches."""
    model.eval()
    return torch.cat([model(x[i:i + batch]).float() for i in range(0, len(x), batch)])


def accuracy(model: nn.Module, data: sets.ImageSet) -> float:
    """Top-1 accuracy in percent."""
    return 100.0 * float((predict(model, data.x).argmax(1) == data.y).float().mean())


# ---------------------------------------------------------------------------------------------
# INT8 post-training quantization (Table 4) and latency (Table 7)
# ---------------------------------------------------------------------------------------------
def quantize_int8(model: nn.Module, calib: torch.Tensor, backend: str = "x86") -> nn.Module:
    """Post-training static INT8 quantization of weights and activations (Table 4; the paper
    follows TensorRT's calibration [28], we use PyTorch's FX graph mode with its default
    observers: per-channel weights, histogram activations), calibrated on ``calib (N, 3, S, S)``;
    conv + BN (+ ReLU6) are fused first. CPU only."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if calib.ndim != 4 or calib.shape[1] != 3:
        raise ValueError(f"calibration images must be (N, 3, S, S), got {tuple(calib.shape)}")
    torch.backends.quantized.engine = backend
    m = _cpu_copy(model).eval()
    prepared = prepare_fx(m, get_default_qconfig_mapping(backend), (calib[:1].cpu(),))
    with torch.no_grad():
        for i in range(0, len(calib), 64):
            prepared(calib[i:i + 64].cpu())
    return convert_fx(prepared)


def _cpu_copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).cpu()


@torch.no_grad()
def latency_ms(model: nn.Module, x: torch.Tensor, reps: int = 3) -> float:
    """Median wall time (ms) of ``reps`` forward passes on ``x`` on the CPU, after one warm-up
    (a desktop CPU, one thread here: not the paper's Pixel 4XL)."""
    m, x = _cpu_copy(model).eval(), x.cpu()
    m(x)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        m(x)
        times.append(time.perf_counter() - t0)
    return 1000.0 * sorted(times)[len(times) // 2]


# ---------------------------------------------------------------------------------------------
# gradient confusion (the motivation, Sankararaman et al.)
# ---------------------------------------------------------------------------------------------
def per_sample_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Flattened per-sample gradients ``(B, P)`` of the cross-entropy, ``torch.func.vmap`` of
    ``grad`` over the batch (BN in eval mode, so each sample's loss is its own)."""
    from torch.func import functional_call, grad, vmap

    model = model.eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def loss(p, xi, yi):
        out = functional_call(model, (p, buffers), (xi[None],))
        return F.cross_entropy(out.float(), yi[None])

    g = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    return torch.cat([v.flatten(1) for v in g.values()], 1)


def gradient_confusion(grads: torch.Tensor) -> dict:
    """Pairwise cosines ``<g_i, g_j> / (|g_i| |g_j|)``, ``i != j``, of per-sample gradients
    ``(B, P)``: their minimum and mean (SGD's confusion bound is ``-min <g_i, g_j>``; more
    negative = more confusion)."""
    if grads.ndim != 2 or len(grads) < 2:
        raise ValueError(f"expected per-sample gradients (B >= 2, P), got {tuple(grads.shape)}")
    u = F.normalize(grads.double(), dim=1)
    c = u @ u.T
    off = c[~torch.eye(len(c), dtype=torch.bool, device=c.device)]
    return {"min cosine": float(off.min()), "mean cosine": float(off.mean())}


def layer_gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> pd.DataFrame:
    """The gradient norm of each block's parameters (one batch, train mode): the per-layer
    curves of the mechanistic cell."""
    model.train()
    model.zero_grad()
    F.cross_entropy(model(x).float(), y).backward()
    rows = [{"block": i, "grad norm": float(torch.sqrt(sum(p.grad.pow(2).sum()
                                                           for p in b.parameters())))}
            for i, b in enumerate(model.blocks)]
    model.zero_grad()
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# experiments
# ---------------------------------------------------------------------------------------------
def _fmt(v: pd.Series) -> str:
    return f"{v.mean():+.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v.mean():+.2f}"


def _alpha_name(a: float) -> str:
    return {1.0: "alpha=1", 0.5: "alpha=1/2"}.get(a, f"alpha=1/{round(1 / a)}" if a else "0")


def run(config: Config) -> dict:
    """The whole miniature: Table 3's counts at 224 px (no training); the family x width x seed
    runs (Table 3 / Fig. 1) with FP32 and INT8 accuracy (Table 4) and latency; at ``widths[0]``
    the ablations (Sect. 4.4, Table 5) and the alpha sweep (Table 7); per-layer gradient norms and
    gradient confusion at initialization. Returns DataFrames and the ``findings``."""
    device = get_device(config.device)
    counts = imagenet_counts()
    runs, curves, abl_rows, alpha_rows, grads, conf = [], [], [], [], [], []
    w0 = config.widths[0]
    for seed in config.seeds:
        data = make_data(config, seed, device)
        train, test = data["train"], data["test"]
        k = train.n_classes
        lat_x = test.x[:config.latency_batch]
        for fam in ("MobileNetV2", "MobileNeXt"):
            for w in config.widths:
                seed_everything(seed)
                net = build(fam, w, k, config)
                if seed == config.seeds[0] and w == w0:
                    xb, yb = train.x[:config.batch_size].to(device), train.y[:config.batch_size]
                    net.to(device)
                    grads.append(layer_gradient_norms(net, xb, yb).assign(family=fam))
                    n = config.confusion_samples
                    conf.append({"family": fam, **gradient_confusion(
                        per_sample_gradients(net, train.x[:n], train.y[:n]))})
                c = flop_count(_cpu_copy(net).eval(), test.x[:1].cpu())
                net, hist = train_model(net, train, config, seed, desc=f"{fam}-{w}")
                q = quantize_int8(net, train.x[:config.calib])
                fp = predict(net, test.x).argmax(1).cpu()
                yt, nq = test.y.cpu(), min(config.int8_test, len(test))
                qp = predict(q, test.x[:nq].cpu()).argmax(1)
                runs.append({"family": fam, "width": w, "seed": seed, "params": c["params"],
                             "MAdds": c["madds"],
                             "accuracy": 100.0 * float((fp == yt).float().mean()),
                             "fp32 accuracy (int8 subset)": 100.0 * float(
                                 (fp[:nq] == yt[:nq]).float().mean()),
                             "int8 accuracy": 100.0 * float((qp == yt[:nq]).float().mean()),
                             "int8 agreement": 100.0 * float((qp == fp[:nq]).float().mean()),
                             "latency (ms)": latency_ms(net, lat_x, config.latency_reps)})
                if seed == config.seeds[0]:
                    curves.append(hist.assign(model=f"{fam}-{w:.2f}"))
        for ab in config.ablations:
            seed_everything(seed)
            net, _ = train_model(build("MobileNeXt", w0, k, config, ab), train, config, seed)
            abl_rows.append({"variant": ab, "seed": seed, "params": count_parameters(net),
                             "accuracy": accuracy(net, test)})
        for a in config.alphas:
            seed_everything(seed)
            net, _ = train_model(build("MobileNeXt", w0, k, config, alpha=a), train, config, seed)
            alpha_rows.append({"alpha": _alpha_name(a), "seed": seed, "accuracy":
                               accuracy(net, test),
                               "latency (ms)": latency_ms(net, lat_x, config.latency_reps)})
    runs = pd.DataFrame(runs)
    base = runs[runs.width == w0]
    for _, r in base.iterrows():
        if r.family == "MobileNeXt":
            alpha_rows.append({"alpha": "alpha=1", "seed": r.seed, "accuracy": r.accuracy,
                               "latency (ms)": r["latency (ms)"]})
            abl_rows.append({"variant": "MobileNeXt", "seed": r.seed, "params": r.params,
                             "accuracy": r.accuracy})
    out = {
        "counts": counts,
        "runs": runs,
        "table3": table3_summary(runs),
        "curves": pd.concat(curves, ignore_index=True),
        "ablations": pd.DataFrame(abl_rows, columns=["variant", "seed", "params", "accuracy"]),
        "alphas": pd.DataFrame(alpha_rows, columns=["alpha", "seed", "accuracy", "latency (ms)"]),
        "grad_norms": pd.concat(grads, ignore_index=True),
        "confusion": pd.DataFrame(conf),
    }
    out["compare_table3"] = compare_table3(out["table3"])
    out["findings"] = findings(out, config)
    return out


def compare_table3(t3: pd.DataFrame) -> pd.DataFrame:
    """Table 3's top-1 beside our accuracy per width (means over seeds); ``holds``: MobileNeXt is
    more accurate than MobileNetV2 at that width, as in every row of the paper."""
    ours = t3.pivot_table(index="width", columns="family", values="accuracy")
    rows = []
    for w, r in ours.iterrows():
        paper = {f: _T3[f].get(w, (float("nan"),) * 3)[2] for f in _T3}
        rows.append({"width": w, "paper V2": paper["MobileNetV2"],
                     "paper NeXt": paper["MobileNeXt"], "ours V2": r["MobileNetV2"],
                     "ours NeXt": r["MobileNeXt"],
                     "holds": bool(r["MobileNeXt"] > r["MobileNetV2"])})
    df = pd.DataFrame(rows).set_index("width")
    df["holds"] = df["holds"].astype("boolean")
    df.attrs.update(ref="Table 3", metric="top-1 (%), paper on ImageNet, ours on ShapesTextures")
    return df


def table3_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per family and width: params, MAdds (32 px), mean and std over seeds of the FP32 and INT8
    accuracy and the INT8 agreement."""
    g = runs.groupby(["family", "width"])
    return pd.DataFrame({
        "params (k)": g["params"].first() / 1e3, "MAdds (M)": g["MAdds"].first() / 1e6,
        "accuracy": g["accuracy"].mean(), "accuracy std": g["accuracy"].std(ddof=1),
        "fp32 accuracy (int8 subset)": g["fp32 accuracy (int8 subset)"].mean(),
        "int8 accuracy": g["int8 accuracy"].mean(), "int8 agreement": g["int8 agreement"].mean(),
        "seeds": g["accuracy"].count()}).reset_index()


def _gap(runs: pd.DataFrame, col: str, width: float) -> pd.Series:
    r = runs[runs.width == width].pivot_table(index="seed", columns="family", values=col)
    return r["MobileNeXt"] - r["MobileNetV2"]


def findings(res: dict, config: Config) -> pd.DataFrame:
    """The chapter's findings, each with its kind and a computed verdict."""
    counts, runs = res["counts"], res["runs"]
    c = counts.set_index("model")
    nx1, v21 = c.loc["MobileNeXt-1.00"], c.loc["MobileNetV2-1.00"]
    n = len(config.seeds)
    w0 = config.widths[0]
    gaps = {w: _gap(runs, "accuracy", w) for w in config.widths}
    drop = runs.assign(drop=runs["fp32 accuracy (int8 subset)"] - runs["int8 accuracy"])
    qgap = _gap(drop, "drop", w0)
    claims = {
        "Table 3: MobileNeXt-1.0 has 3.4M parameters (ours within 5 %)": (
            "paper claim", bool(abs(nx1["params (M)"] / 3.4 - 1) < 0.05),
            f"ours {nx1['params (M)']:.3f}M, {nx1['MAdds (M)']:.0f}M MAdds (paper 300M)"),
        "our MobileNetV2-1.0 builder has torchvision's 3,504,872 parameters": (
            "sanity check", bool(round(v21["params (M)"] * 1e6) == 3_504_872),
            f"{v21['params (M)'] * 1e6:,.0f}"),
        "Table 3: MobileNeXt has MAdds comparable to MobileNetV2 at every width (within 10 %)": (
            "paper claim",
            bool(all(abs(c.loc[f"MobileNeXt-{w:.2f}", "MAdds (M)"]
                         / c.loc[f"MobileNetV2-{w:.2f}", "MAdds (M)"] - 1) < 0.10
                     for w in WIDTHS)),
            ", ".join(f"{w}: {c.loc[f'MobileNeXt-{w:.2f}', 'MAdds (M)']:.0f} vs "
                      f"{c.loc[f'MobileNetV2-{w:.2f}', 'MAdds (M)']:.0f}" for w in WIDTHS)),
        f"Table 3: MobileNeXt is more accurate than MobileNetV2 at every width run "
        f"({n} seed(s); fragile)": (
            "paper claim", bool(all(g.mean() > 0 for g in gaps.values())),
            "; ".join(f"w={w}: {_fmt(g)} points" for w, g in gaps.items())),
        "Table 4: INT8 post-training quantization costs MobileNeXt less accuracy than "
        f"MobileNetV2 (w={w0}; fragile)": (
            "paper claim", bool(qgap.mean() < 0),
            f"drop of NeXt minus drop of V2: {_fmt(qgap)} points"),
        "INT8 and FP32 predictions agree on more than 90 % of the test images": (
            "sanity check", bool(runs["int8 agreement"].min() > 90),
            f"lowest agreement {runs['int8 agreement'].min():.1f} %"),
    }
    ab = res["ablations"]
    if ab["variant"].nunique() > 1:
        m = ab.groupby("variant")["accuracy"].mean()
        nx = m["MobileNeXt"]
        texts = {
            "v2 + middle dw": "Table 5: MobileNeXt beats MobileNetV2 with a second middle "
            "depthwise conv",
            "shortcut on the bottleneck": "Sect. 4.4: moving the shortcut to the bottleneck "
            "lowers the accuracy",
            "ReLU6 on the output": "Sect. 4.4: a ReLU6 on the output (non-linear residual) "
            "lowers the accuracy",
            "dw in the bottleneck": "Sect. 4.4 / Fig. 3a: the depthwise conv inside the "
            "bottleneck lowers the accuracy",
        }
        for v, text in texts.items():
            claims[f"{text} (fragile)"] = ("paper claim", bool(nx > m[v]),
                                           f"MobileNeXt {nx:.1f} vs {m[v]:.1f} %")
    else:
        claims["Table 5 and Sect. 4.4 ablations"] = ("paper claim", None,
                                                     "run in the full profile only")
    al = res["alphas"]
    if al["alpha"].nunique() > 1:
        m = al.groupby("alpha")[["accuracy", "latency (ms)"]].mean()
        claims["Table 7: alpha = 1/2 costs no more than 0.5 points of accuracy (fragile)"] = (
            "paper claim", bool(m.loc["alpha=1/2", "accuracy"] > m.loc["alpha=1", "accuracy"] - 0.5)
            if "alpha=1/2" in m.index else None,
            ", ".join(f"{a}: {v:.1f} %" for a, v in m["accuracy"].items()))
        claims["Table 7: a smaller alpha is faster on our CPU (fragile: not a phone)"] = (
            "paper claim", bool(m["latency (ms)"].min() < m.loc["alpha=1", "latency (ms)"]),
            ", ".join(f"{a}: {v:.2f} ms" for a, v in m["latency (ms)"].items()))
    else:
        claims["Table 7: the identity tensor multiplier sweep"] = (
            "paper claim", None, "run in the full profile only")
    cf = res["confusion"].set_index("family")
    claims["motivation: at initialization MobileNeXt's per-sample gradients are less confused "
           "(higher mean pairwise cosine) than MobileNetV2's"] = (
        "paper claim", bool(cf.loc["MobileNeXt", "mean cosine"] > cf.loc["MobileNetV2",
                                                                          "mean cosine"]),
        ", ".join(f"{f}: mean {r['mean cosine']:+.3f}, min {r['min cosine']:+.3f}"
                  for f, r in cf.iterrows()))
    return report.claims_table(claims)
