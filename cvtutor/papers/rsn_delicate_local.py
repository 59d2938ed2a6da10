"""Learning Delicate Local Representations for Multi-person Pose Estimation (RSN), ECCV 2020.

Cai, Wang, Li, Zhou, Sun, Zhang, Yu, Sun. The **Residual Steps Block** (RSB, Fig. 2c) splits the
features of a 1×1 convolution into branches; branch ``i`` runs ``i`` 3×3 steps, and step ``j`` of
branch ``i`` also receives (a sum, not a concatenation) step ``j`` of branch ``i − 1``: features of
neighbouring receptive fields are fused *inside* one level (Eq. 1–2, Table 1). The **Pose Refine
Machine** (PRM, Fig. 3) reweights the last stage's features, ``f_out = K(f)⊙(1 + β⊙α)`` (Eq. 3).

Here, in miniature: single-person top-down crops of the body world
(:func:`cvtutor.data.bodies.pose_crops.pose_crops`), a single- or multi-stage encoder-decoder
whose blocks are ResNet bottlenecks, Res2Net blocks, Baseline1/2 or RSBs at matched FLOPs
(:mod:`cvtutor.nn.flops`), Gaussian heatmaps with an MSE loss, the paper's test-time decoding
(post-Gaussian filter, flip averaging, quarter offset towards the second-highest response) and
COCO's OKS AP (pycocotools through :func:`cvtutor.metrics.pose.coco_keypoint_ap`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from cvtutor import report
from cvtutor.data.bodies.pose_crops import (
    FLIP_PAIRS13, KEYPOINTS13, SIGMAS13, mirror, pose_crops, to_coco17,
)
from cvtutor.metrics.pose import coco_keypoint_ap, oks
from cvtutor.nn.flops import flop_count
from cvtutor.nn.heatmaps import argmax_decode, flip_heatmaps, gaussian_heatmaps
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import fit, minibatches

BLOCKS = ("resnet", "res2net", "baseline1", "baseline2", "rsn")
ATTENTIONS = ("none", "se", "cbam", "prm")
DECODERS = ("argmax", "quarter", "quarter+blur", "quarter+blur+flip")


# ---- receptive fields (Eq. 1–2, Table 1) -------------------------------------------------------
def receptive_field(kernels: Sequence[int], strides: Sequence[int] | None = None) -> int:
    """Eq. (1): ``l_k = l_{k−1} + (f_k − 1)·∏_{i<k} s_i`` with ``l_0 = 1``; for 3×3 stride-1 steps
    this is Eq. (2), ``l_k = l_{k−1} + 2``."""
    strides = [1] * len(kernels) if strides is None else list(strides)
    if len(strides) != len(kernels) or any(f < 1 for f in kernels) or any(s < 1 for s in strides):
        raise ValueError(f"need positive kernels and strides of one length; got {kernels}, {strides}")
    rf, jump = 1, 1
    for f, s in zip(kernels, strides):
        rf += (f - 1) * jump
        jump *= s
    return rf


def rsb_receptive_fields(n_branches: int = 4, fusion: bool = True) -> list[set[int]]:
    """Table 1: the set of receptive fields in each output ``y_i`` of an RSB (after the first 1×1,
    whose field is 1). A 3×3 step adds 2 to every field of its input (Eq. 2); a sum of two inputs
    takes the union of their sets. RSN: ``{3}, {5, 7}, {7, 9, 11}, {9, …, 15}``; without the sums
    (Baseline1) one field per branch, ``3, 5, 7, 9``."""
    if n_branches < 1:
        raise ValueError(f"n_branches must be ≥ 1, got {n_branches}")
    prev: list[set[int]] = []
    outs = []
    for i in range(n_branches):
        steps, x = [], {1}
        for j in range(i + 1):
            inp = x | (prev[j] if fusion and j < len(prev) else set())
            x = {r + 2 for r in inp}
            steps.append(x)
        prev = steps
        outs.append(steps[-1])
    return outs


def res2net_receptive_fields(scales: int = 4) -> list[set[int]]:
    """Table 1's Res2Net row: ``y_1 = x_1`` (field 1), ``y_2 = K(x_2)``, ``y_i = K(x_i + y_{i−1})``:
    ``{1}, {3}, {3, 5}, {3, 5, 7}``."""
    outs = [{1}]
    for i in range(1, scales):
        inp = {1} | (outs[-1] if i > 1 else set())
        outs.append({r + 2 for r in inp})
    return outs


# ---- blocks --------------------------------------------------------------------------------------
def conv_bn(c_in: int, c_out: int, k: int = 3, stride: int = 1, relu: bool = True,
            groups: int = 1) -> nn.Sequential:
    """Conv ``k×k`` (no bias) + BatchNorm (+ ReLU)."""
    layers = [nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False, groups=groups),
              nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """ResNet bottleneck ``1×1 (C→m) → 3×3 (m→m) → 1×1 (m→C)`` + identity, ReLU."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, width, 1), conv_bn(width, width, 3),
                                  conv_bn(width, channels, 1, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class Res2NetBlock(nn.Module):
    """Res2Net: 1×1 to ``scales·w`` channels, split; ``y_1 = x_1``, ``y_2 = K_2(x_2)``,
    ``y_i = K_i(x_i + y_{i−1})``; concatenate, 1×1 back to ``C``, identity, ReLU."""

    def __init__(self, channels: int, width: int, scales: int = 4) -> None:
        super().__init__()
        self.width, self.scales = width, scales
        self.reduce = conv_bn(channels, width * scales, 1)
        self.convs = nn.ModuleList(conv_bn(width, width, 3) for _ in range(scales - 1))
        self.expand = conv_bn(width * scales, channels, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = self.reduce(x).split(self.width, 1)
        ys = [xs[0]]
        for i, conv in enumerate(self.convs, start=1):
            ys.append(conv(xs[i] + ys[-1] if i > 1 else xs[i]))
        return F.relu(x + self.expand(torch.cat(ys, 1)))


class ResidualStepsBlock(nn.Module):
    """The RSB (Fig. 2c). A 1×1 convolution, split into ``n_branches`` parts ``f_i`` of ``width``
    channels (one 1×1 then a split, as the official code; the text's "a conv1×1 separately" per
    split is the same map with a block-diagonal weight). Branch ``i`` (1-based) has ``i`` 3×3 steps;
    step ``j`` takes the previous step's output (``f_i`` for ``j = 1``) plus, with ``fusion``, step
    ``j`` of branch ``i − 1``. The last outputs ``y_i`` are concatenated, a 1×1 maps them back to
    ``C``, identity, ReLU.

    ``fusion=False`` is Baseline1 (no vertical sums); ``depth=d`` gives every branch ``d`` steps
    (Baseline2: ``d = 3``, "four f3's", without sums)."""

    def __init__(self, channels: int, width: int, n_branches: int = 4, fusion: bool = True,
                 depth: int | None = None) -> None:
        super().__init__()
        if n_branches < 1 or width < 1:
            raise ValueError(f"need n_branches ≥ 1 and width ≥ 1, got {n_branches}, {width}")
        self.width, self.fusion = width, fusion
        self.depths = [depth or i + 1 for i in range(n_branches)]
        self.reduce = conv_bn(channels, width * n_branches, 1)
        self.steps = nn.ModuleList(
            nn.ModuleList(conv_bn(width, width, 3) for _ in range(d)) for d in self.depths)
        self.expand = conv_bn(width * n_branches, channels, 1, relu=False)

    def branches(self, splits: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The outputs ``y_i`` of the branches for the splits ``f_i`` (each ``(B, width, H, W)``)."""
        if len(splits) != len(self.depths):
            raise ValueError(f"expected {len(self.depths)} splits, got {len(splits)}")
        prev: list[torch.Tensor] = []
        ys = []
        for f, convs in zip(splits, self.steps):
            outs, x = [], f
            for j, conv in enumerate(convs):
                inp = x + prev[j] if self.fusion and j < len(prev) else x
                x = conv(inp)
                outs.append(x)
            prev = outs
            ys.append(x)
        return ys

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys = self.branches(self.reduce(x).split(self.width, 1))
        return F.relu(x + self.expand(torch.cat(ys, 1)))


def make_block(kind: str, channels: int, width: int, n_branches: int = 4) -> nn.Module:
    """One block of ``kind`` in :data:`BLOCKS` with ``channels`` in and out and inner ``width``."""
    if kind == "resnet":
        return Bottleneck(channels, width)
    if kind == "res2net":
        return Res2NetBlock(channels, width, n_branches)
    if kind == "baseline1":
        return ResidualStepsBlock(channels, width, n_branches, fusion=False)
    if kind == "baseline2":
        return ResidualStepsBlock(channels, width, n_branches, fusion=False, depth=3)
    if kind == "rsn":
        return ResidualStepsBlock(channels, width, n_branches, fusion=True)
    raise ValueError(f"unknown block {kind!r}; expected one of {BLOCKS}")


# ---- attention on the last stage's output (Table 4) --------------------------------------------
class SE(nn.Module):
    """Squeeze-and-excitation: ``f·σ(W_2 δ(W_1 GAP(f))))``."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        mid = max(channels // reduction, 8)
        self.fc = nn.Sequential(nn.Conv2d(channels, mid, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(mid, channels, 1))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f * torch.sigmoid(self.fc(f.mean((2, 3), keepdim=True)))


class CBAM(nn.Module):
    """CBAM: channel attention from average and max pooling through one MLP, then spatial
    attention from a 7×7 convolution of the channel-wise mean and max."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        mid = max(channels // reduction, 8)
        self.mlp = nn.Sequential(nn.Conv2d(channels, mid, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(mid, channels, 1))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        a = self.mlp(f.mean((2, 3), keepdim=True)) + self.mlp(f.amax((2, 3), keepdim=True))
        f = f * torch.sigmoid(a)
        s = torch.cat([f.mean(1, keepdim=True), f.amax(1, keepdim=True)], 1)
        return f * torch.sigmoid(self.spatial(s))


class PoseRefineMachine(nn.Module):
    """PRM, Eq. (3): ``f_out = K(f_in)⊙(1 + β⊙α)`` with ``K`` a 3×3 conv-BN-ReLU, the channel
    attention ``α = σ(W_2 δ(W_1 GAP(K(f))))`` ``(B, C, 1, 1)`` and the spatial attention
    ``β = σ(DW_{9×9}(Conv_{1×1}(K(f))))`` ``(B, C, H, W)`` (the text leaves the channel counts open;
    here β keeps C channels, as the official code). The factor lies in ``[1, 2]``: the identity
    term keeps the local features, the attention can only amplify them."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        mid = max(channels // reduction, 8)
        self.K = conv_bn(channels, channels, 3)
        self.channel = nn.Sequential(nn.Conv2d(channels, mid, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(mid, channels, 1))
        self.spatial = nn.Sequential(conv_bn(channels, channels, 1),
                                     nn.Conv2d(channels, channels, 9, padding=4, groups=channels))

    def attention(self, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(α, β)`` of the features ``k = K(f)``."""
        alpha = torch.sigmoid(self.channel(k.mean((2, 3), keepdim=True)))
        return alpha, torch.sigmoid(self.spatial(k))

    @staticmethod
    def combine(k: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Eq. (3)'s product ``k⊙(1 + β⊙α)``."""
        return k * (1 + beta * alpha)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        k = self.K(f)
        return self.combine(k, *self.attention(k))


def make_attention(kind: str, channels: int) -> nn.Module:
    """``none`` (identity), ``se``, ``cbam`` or ``prm`` (:data:`ATTENTIONS`)."""
    table = {"none": lambda c: nn.Identity(), "se": SE, "cbam": CBAM, "prm": PoseRefineMachine}
    if kind not in table:
        raise ValueError(f"unknown attention {kind!r}; expected one of {ATTENTIONS}")
    return table[kind](channels)


# ---- the network: a (multi-stage) encoder-decoder over levels ---------------------------------
class SingleStage(nn.Module):
    """One encoder-decoder (Fig. 2a, one stage): ``levels`` resolutions (strides 1, 2, 4, … of the
    stem's output), ``channels·2^l`` channels and ``blocks`` blocks per level, stride-2 3×3 convs
    between levels; the decoder upsamples (bilinear) and adds 1×1 laterals, top-down, as MSPN/CPN.
    Returns the decoder's finest features ``(B, channels, h, w)``."""

    def __init__(self, block: str, channels: int, width: int, levels: int = 3, blocks: int = 1,
                 n_branches: int = 4) -> None:
        super().__init__()
        cs = [channels * 2 ** level for level in range(levels)]
        ws = [width * 2 ** level for level in range(levels)]
        self.down = nn.ModuleList(conv_bn(cs[i - 1], cs[i], 3, 2) for i in range(1, levels))
        self.enc = nn.ModuleList(
            nn.Sequential(*(make_block(block, c, w, n_branches) for _ in range(blocks)))
            for c, w in zip(cs, ws))
        self.lateral = nn.ModuleList(conv_bn(c, channels, 1, relu=False) for c in cs)
        self.smooth = conv_bn(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        for level, enc in enumerate(self.enc):
            x = enc(x if level == 0 else self.down[level - 1](x))
            feats.append(x)
        u = self.lateral[-1](feats[-1])
        for level in range(len(feats) - 2, -1, -1):
            u = F.interpolate(u, size=feats[level].shape[-2:], mode="bilinear",
                              align_corners=False) + self.lateral[level](feats[level])
        return self.smooth(F.relu(u))


class PoseNet(nn.Module):
    """A stem (3×3 stride 1, 3×3 stride 2: heatmaps at half the crop's size), ``stages`` cascaded
    :class:`SingleStage` encoder-decoders (stage ``s + 1`` sees the stem's features plus 1×1
    projections of stage ``s``'s features and heatmaps, the cross-stage connections of MSPN), the
    attention module on the last stage's output, and a 1×1 head per stage to ``joints`` heatmaps.
    ``forward`` returns the last stage's heatmaps; :meth:`all_stages` the list of every stage's
    (for intermediate supervision)."""

    def __init__(self, block: str = "rsn", channels: int = 16, width: int = 8, joints: int = 13,
                 levels: int = 3, blocks: int = 1, stages: int = 1, attention: str = "none",
                 n_branches: int = 4) -> None:
        super().__init__()
        if stages < 1:
            raise ValueError(f"stages must be ≥ 1, got {stages}")
        self.stem = nn.Sequential(conv_bn(3, channels, 3), conv_bn(channels, channels, 3, 2))
        self.stages = nn.ModuleList(SingleStage(block, channels, width, levels, blocks, n_branches)
                                    for _ in range(stages))
        self.cross = nn.ModuleList(
            nn.ModuleList([nn.Conv2d(channels, channels, 1), nn.Conv2d(joints, channels, 1)])
            for _ in range(stages - 1))
        self.attention = make_attention(attention, channels)
        self.heads = nn.ModuleList(nn.Conv2d(channels, joints, 1) for _ in range(stages))

    def all_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        s = self.stem(x)
        inp, out = s, []
        for i, stage in enumerate(self.stages):
            f = stage(inp)
            if i == len(self.stages) - 1:
                f = self.attention(f)
            h = self.heads[i](f)
            out.append(h)
            if i < len(self.stages) - 1:
                inp = s + self.cross[i][0](f) + self.cross[i][1](h)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.all_stages(x)[-1]


def model_flops(model: nn.Module, height: int, width: int) -> int:
    """FLOPs of one ``3 × H × W`` crop (``FlopCounterMode``, 2 per multiply-add)."""
    p = next(model.parameters())
    return flop_count(model, torch.zeros(1, 3, height, width, device=p.device))["flops"]


def matched_width(block: str, target: float, config: "Config", attention: str = "none",
                  stages: int = 1, n_branches: int = 4) -> tuple[int, int]:
    """The inner width (≥ 8, the CPU's smallest safe conv width) whose :class:`PoseNet` has FLOPs
    closest to ``target`` ("we keep the same GFLOPs … by adapting channels"); ``(width, flops)``."""
    def flops(w: int) -> int:
        net = PoseNet(block, config.channels, w, 13, config.levels, config.blocks, stages,
                      attention, n_branches)
        return model_flops(net, config.height, config.width)

    lo, hi = 8, 8 * config.channels  # FLOPs grow with the width: bisect for the first ≥ target
    if flops(lo) >= target:
        return lo, flops(lo)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if flops(mid) < target else (lo, mid)
    return min(((w, flops(w)) for w in (lo, hi)), key=lambda t: abs(t[1] - target))


# ---- heatmaps, loss and decoding ---------------------------------------------------------------
def heatmap_targets(uv: torch.Tensor, visible: torch.Tensor, height: int, width: int,
                    sigma: float) -> torch.Tensor:
    """Gaussian targets ``H_j(p) = exp(−‖p − μ_j‖²/2σ²)`` ``(B, J, H/2, W/2)`` (σ in heatmap
    pixels) of crop keypoints ``uv (B, J, 2)``, zero for joints with ``v = 0``."""
    if uv.ndim != 3 or uv.shape[-1] != 2 or visible.shape != uv.shape[:2]:
        raise ValueError(f"uv must be (B, J, 2) and visible (B, J); got {tuple(uv.shape)}, "
                         f"{tuple(visible.shape)}")
    shift = torch.tensor([(height - width) / 2, 0.0], dtype=uv.dtype, device=uv.device)
    h = gaussian_heatmaps(uv + shift, height, height // 2, sigma)  # on the square, then the columns
    off = (height - width) // 4
    return h[..., off:off + width // 2] * (visible > 0)[..., None, None]


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the labelled joints (``v > 0``); the paper does not state its loss,
    this is the L2 heatmap loss of MSPN/CPN without online hard keypoint mining."""
    w = (visible > 0).to(pred.dtype)[..., None, None]
    return ((pred - target) ** 2 * w).sum() / (w.sum() * pred.shape[-1] * pred.shape[-2]).clamp_min(1)


def gaussian_blur(heatmaps: torch.Tensor, sigma: float = 1.0, truncate: float = 4.0
                  ) -> torch.Tensor:
    """The post-Gaussian filter of the test details: a separable Gaussian of σ pixels, radius
    ``⌊truncate·σ + ½⌋``, zero padding (``scipy.ndimage.gaussian_filter(mode="constant")``)."""
    r = int(truncate * sigma + 0.5)
    x = torch.arange(-r, r + 1, dtype=heatmaps.dtype, device=heatmaps.device)
    k = torch.exp(-x ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    B, J, H, W = heatmaps.shape
    h = heatmaps.reshape(B * J, 1, H, W)
    h = F.conv2d(h, k.view(1, 1, 1, -1), padding=(0, r))
    h = F.conv2d(h, k.view(1, 1, -1, 1), padding=(r, 0))
    return h.reshape(B, J, H, W)


def quarter_offset_decode(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """"A quarter offset from the highest response to the second highest one": ``p̂ = p_max +
    ¼·(p_2nd − p_max)/‖p_2nd − p_max‖``, heatmaps ``(B, J, H, W)`` → ``(B, J, 2)`` (heatmap units,
    pixel centres at ``k + ½``) and the peak values ``(B, J)``."""
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (B, J, H, W), got {tuple(heatmaps.shape)}")
    B, J, H, W = heatmaps.shape
    flat = heatmaps.flatten(2)
    peak, i1 = flat.max(-1)
    second = flat.scatter(2, i1[..., None], float("-inf")).argmax(-1)

    def xy(i):
        return torch.stack([i % W, i // W], -1).to(heatmaps.dtype) + 0.5

    p1, p2 = xy(i1), xy(second)
    d = p2 - p1
    return p1 + 0.25 * d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12), peak


def flip_average(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The flip test, "average the predicted heatmaps of the original image with the results of
    the corresponding flipped image": ``½(f(x) + swap(flip(f(mirror(x)))))``, with the world's
    :func:`~cvtutor.data.bodies.pose_crops.mirror` (flip and red/blue swap) for the image and
    the left/right channel swap for the heatmaps."""
    return 0.5 * (model(images) + flip_heatmaps(model(mirror(images)), FLIP_PAIRS13))


def decode(model: nn.Module, images: torch.Tensor, method: str, blur_sigma: float = 1.0,
           batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoints ``(B, 13, 2)`` in crop pixels and peak scores ``(B, 13)`` with one of
    :data:`DECODERS`: plain arg-max, the quarter offset, after the post-Gaussian filter, after the
    flip test (average with the flipped crop's heatmaps, left/right swapped)."""
    if method not in DECODERS:
        raise ValueError(f"unknown decoder {method!r}; expected one of {DECODERS}")
    outs, scores = [], []
    model.eval()
    with torch.no_grad():
        for x in images.split(batch):
            h = flip_average(model, x) if method.endswith("flip") else model(x)
            if "blur" in method:
                h = gaussian_blur(h, blur_sigma)
            if method == "argmax":
                p, s = argmax_decode(h, quarter_offset=False)
            else:
                p, s = quarter_offset_decode(h)
            outs.append(p * (images.shape[-1] / h.shape[-1]))
            scores.append(s)
    return torch.cat(outs), torch.cat(scores)


def keypoint_ap(pred_uv: torch.Tensor, scores: torch.Tensor, test: dict) -> dict[str, float]:
    """COCO OKS AP of crop predictions (one person per crop image, the 13 joints with COCO's σ;
    the pose score is the mean keypoint peak, the box score 1)."""
    gt, v = to_coco17(test["uv"], test["visible"])
    pr, _ = to_coco17(pred_uv)
    n = len(gt)
    ids = np.arange(n)
    return coco_keypoint_ap(gt, v, ids, test["area"].cpu().numpy(), pr,
                            scores.mean(1).cpu().numpy(), ids)


def per_joint_oks(pred_uv: torch.Tensor, test: dict) -> pd.Series:
    """Mean per-joint OKS term ``exp(−d²/2s²k²)`` over the labelled joints, by joint name."""
    d2 = (pred_uv - test["uv"]).square().sum(-1).cpu().numpy()
    k2 = (2 * SIGMAS13) ** 2
    e = np.exp(-d2 / k2 / (2 * test["area"].cpu().numpy()[:, None]))
    v = test["visible"].cpu().numpy() > 0
    return pd.Series([e[v[:, j], j].mean() for j in range(13)], index=list(KEYPOINTS13))


# ---- the paper's numbers -----------------------------------------------------------------------
@dataclass(frozen=True)
class _Rows:
    ref: str
    values: dict


PAPER = {
    "table1": _Rows("Table 1 (receptive fields of each branch's output)", {
        "ResNet": [{3}, {3}, {3}, {3}],
        "Res2Net": [{1}, {3}, {3, 5}, {3, 5, 7}],
        "RSN": [{3}, {5, 7}, {7, 9, 11}, {9, 11, 13, 15}]}),
    # Table 2 is garbled in the extraction; rows reconstructed (digest). RSN-101's Δ printed 2.5
    "table2": report.PaperTable("Table 2 (COCO val, 256×192, no PRM)", "AP", {
        "ResNet-18": 70.7, "Res2Net-18": 71.3, "Baseline1-18": 72.9, "Baseline2-18": 72.1,
        "RSN-18": 73.6, "ResNet-50": 72.2, "Res2Net-50": 72.8, "Baseline1-50": 73.7,
        "Baseline2-50": 72.7, "RSN-50": 74.7, "ResNet-101": 73.2, "Res2Net-101": 73.9,
        "RSN-101": 75.8, "4×ResNet-50": 76.8, "4×Res2Net-50": 77.0, "4×RSN-50": 78.6},
        better="higher", note="RSN-101's gain is printed +2.5; 75.8 − 73.2 = 2.6"),
    "table2_gflops": {"ResNet-18": 2.3, "Res2Net-18": 2.2, "Baseline1-18": 2.5,
                      "Baseline2-18": 2.5, "RSN-18": 2.5, "ResNet-50": 4.6, "Res2Net-50": 4.5,
                      "Baseline1-50": 6.4, "Baseline2-50": 6.4, "RSN-50": 6.4},
    "table3": report.PaperTable("Table 3 (branch number, RSN-18, COCO val)", "AP", {
        "2": 73.1, "3": 73.0, "4": 73.6, "5": 73.2, "6": 72.9}, better="higher"),
    "table3_rsn50": {"2": 73.9, "3": 74.2, "4": 74.7, "5": 74.3, "6": 74.0},
    "table4": report.PaperTable("Table 4 (attention on ResNet-18, COCO minival)", "AP", {
        "none": 70.7, "se": 70.5, "cbam": 69.9, "prm": 72.2}, better="higher"),
    "table4_4xrsn50": {"none": 78.6, "se": 78.6, "cbam": 78.0, "prm": 79.0},
    "table5_4xrsn50_384": 78.6,  # COCO test-dev AP, single model (Table 5)
    "table7_mpii_mean": 93.0,  # MPII test PCKh@0.5, 4×RSN-50 (Table 7)
}


# ---- experiments -------------------------------------------------------------------------------
@dataclass
class Config(ProfileConfig):
    height: int = 32                  # crop 32×24, heatmaps 16×12
    width: int = 24
    image_size: int = 64              # the rendered view the crops come from
    n_train: int = 1200
    n_test: int = 300
    channels: int = 16                # decoder / level-1 channels (×2 per level)
    levels: int = 3
    blocks: int = 1                   # blocks per level
    rsn_width: int = 8                # RSB branch width at level 1; the others are FLOP-matched
    sigma: float = 2.0                # heatmap σ (heatmap pixels)
    steps: int = 150
    batch_size: int = 16
    lr: float = 1e-2                  # Adam, decayed linearly to 0 (paper: 5e-4 at batch 384)
    weight_decay: float = 1e-5
    blocks_compared: tuple[str, ...] = ("resnet", "baseline1", "rsn")
    seeds: tuple[int, ...] = (0,)
    branches: tuple[int, ...] = ()    # Table 3 sweep (full)
    attentions: tuple[str, ...] = ()  # Table 4 (full)
    stages: tuple[int, ...] = ()      # cascade (full)
    curve_widths: tuple[int, ...] = ()  # Fig. 4 AP vs FLOPs (full)
    device: str | None = None

    @classmethod
    def fast(cls) -> "Config":
        return cls()

    @classmethod
    def full(cls) -> "Config":
        """128×96 crops from 192-px views, 4k crops, five block types × 3 seeds, branch sweep 2–6,
        None/SE/CBAM/PRM, 1-, 2- and 4-stage cascades, AP vs FLOPs at two more widths: about 80
        single-stage trainings' worth of 800 steps, all with three seeds."""
        return cls(height=128, width=96, image_size=192, n_train=4000, n_test=500, channels=32,
                   levels=4, blocks=2, rsn_width=16, sigma=2.0, steps=800, batch_size=64,
                   lr=2e-3,
                   blocks_compared=BLOCKS, seeds=(0, 1, 2), branches=(2, 3, 4, 5, 6),
                   attentions=ATTENTIONS, stages=(1, 2, 4), curve_widths=(8, 24))

    @classmethod
    def smoke(cls) -> "Config":
        """``full``'s code paths at toy size."""
        return cls(height=32, width=24, image_size=48, n_train=64, n_test=24, channels=8,
                   levels=2, steps=3, batch_size=16, blocks_compared=BLOCKS, seeds=(0, 1),
                   branches=(2, 4), attentions=ATTENTIONS, stages=(1, 2), curve_widths=(8,),
                   rsn_width=10)


def make_data(config: Config, device: torch.device) -> tuple[dict, dict]:
    """Train and test crops (disjoint subject pools) with their heatmap targets."""
    kw = dict(height=config.height, width=config.width, image_size=config.image_size,
              device=device)
    train = pose_crops(config.n_train, split="train", seed=0, **kw)
    test = pose_crops(config.n_test, split="test", seed=1, **kw)
    train["target"] = heatmap_targets(train["uv"], train["visible"], config.height, config.width,
                                      config.sigma)
    return train, test


def train_model(model: PoseNet, train: dict, config: Config, seed: int,
                progress: bool = False) -> pd.DataFrame:
    """Adam with the learning rate decayed linearly to 0 (the paper's schedule), the heatmap MSE
    of every stage (intermediate supervision), through :func:`cvtutor.train.fit`."""
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / config.steps)
    batches = minibatches(train["image"], train["target"], train["visible"],
                          batch_size=min(config.batch_size, len(train["image"])), seed=seed)

    def loss_fn(models, batch, step):
        x, t, v = batch
        return {"loss": sum(heatmap_loss(h, t, v) for h in models["model"].all_stages(x))}

    return fit(model, opt, batches, loss_fn, steps=config.steps, schedulers=sched,
               progress=progress, desc=getattr(model, "name", None))


def build(config: Config, block: str, width: int, attention: str = "none", stages: int = 1,
          n_branches: int = 4, seed: int = 0, device=None) -> PoseNet:
    """A seeded :class:`PoseNet` of ``config``'s sizes on ``device``."""
    seed_everything(seed)
    net = PoseNet(block, config.channels, width, 13, config.levels, config.blocks, stages,
                  attention, n_branches)
    net.name = f"{block}-w{width}"
    return net.to(device or "cpu")


def evaluate(model: PoseNet, test: dict, method: str = "quarter+blur+flip") -> dict[str, float]:
    """OKS AP (and AP50, AP75, AR) on the test crops with one decoder."""
    p, s = decode(model, test["image"], method)
    return keypoint_ap(p, s, test)


def block_table(config: Config, train: dict, test: dict, device, progress: bool = False
                ) -> tuple[pd.DataFrame, dict]:
    """Table 2 in miniature: every block of ``blocks_compared`` FLOP-matched to the RSN of
    ``rsn_width``, trained with every seed; AP, FLOPs, parameters. Also returns the first seed's
    models and loss histories."""
    target = model_flops(build(config, "rsn", config.rsn_width), config.height, config.width)
    rows, models, curves = [], {}, []
    for block in config.blocks_compared:
        w, fl = (config.rsn_width, target) if block == "rsn" else matched_width(block, target,
                                                                                 config)
        for seed in config.seeds:
            net = build(config, block, w, seed=seed, device=device)
            hist = train_model(net, train, config, seed, progress)
            ap = evaluate(net, test)
            rows.append({"block": block, "seed": seed, "width": w, "MFLOPs": fl / 1e6,
                         "params": sum(p.numel() for p in net.parameters()), "AP": 100 * ap["AP"],
                         "AR": 100 * ap["AR"]})
            curves.append(hist.assign(block=block, seed=seed))
            if seed == config.seeds[0]:
                models[block] = net
    return pd.DataFrame(rows), {"models": models, "history": pd.concat(curves, ignore_index=True)}


def decoding_table(model: PoseNet, test: dict) -> pd.DataFrame:
    """The test-time ablation: AP of each of :data:`DECODERS` on one trained model."""
    return pd.DataFrame([{"decoder": m, "AP": 100 * evaluate(model, test, m)["AP"]}
                         for m in DECODERS])


def _sweep(config: Config, train: dict, test: dict, device, variants: dict) -> pd.DataFrame:
    """Train each variant ``name -> (block, attention, stages, n_branches)`` at RSN's width for
    every seed; AP and FLOPs per row."""
    rows = []
    for name, (block, att, stages, nb) in variants.items():
        for seed in config.seeds:
            net = build(config, block, config.rsn_width, att, stages, nb, seed, device)
            train_model(net, train, config, seed)
            rows.append({"setting": str(name), "seed": seed, "AP": 100 * evaluate(net, test)["AP"],
                         "MFLOPs": model_flops(net, config.height, config.width) / 1e6})
    return pd.DataFrame(rows, columns=["setting", "seed", "AP", "MFLOPs"])


def curve_table(config: Config, train: dict, test: dict, device) -> pd.DataFrame:
    """Fig. 4 in miniature: AP against FLOPs of ResNet, Res2Net and RSN at several widths (the
    ResNet and Res2Net widths FLOP-matched to the RSN of each width)."""
    rows = []
    for w in config.curve_widths:
        target = model_flops(build(config, "rsn", w), config.height, config.width)
        for block in ("resnet", "res2net", "rsn"):
            bw, fl = (w, target) if block == "rsn" else matched_width(block, target, config)
            for seed in config.seeds:
                net = build(config, block, bw, seed=seed, device=device)
                train_model(net, train, config, seed)
                rows.append({"block": block, "rsn_width": w, "seed": seed, "MFLOPs": fl / 1e6,
                             "AP": 100 * evaluate(net, test)["AP"]})
    return pd.DataFrame(rows, columns=["block", "rsn_width", "seed", "MFLOPs", "AP"])


def mean_std(df: pd.DataFrame, key: str, value: str = "AP") -> pd.DataFrame:
    """Mean ± std of ``value`` over seeds per ``key``, in the order the keys first appear."""
    g = df.groupby(key, sort=False)[value]
    return pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=0), "n_seeds": g.size()})


def _sets(sets: Sequence[set[int]]) -> list[str]:
    return ["{" + ", ".join(map(str, sorted(s))) + "}" for s in sets]


def experiment(config: Config, progress: bool = False) -> tuple[dict, dict]:
    """The whole miniature: Table 1 (exact), Table 2 (blocks at matched FLOPs, seeds), the
    decoding ablation, per-joint difficulty; with ``full``'s settings also Table 3 (branches),
    Table 4 (attention), the cascade and Fig. 4 (AP vs FLOPs). Returns the results (data only)
    and the artefacts (the first seed's trained models by block, the test crops)."""
    device = get_device(config.device)
    rf = rsb_receptive_fields(4)
    table1 = pd.DataFrame({
        "branch": [f"y{i + 1}" for i in range(4)],
        "RSN (ours)": _sets(rf),
        "RSN (paper)": _sets(PAPER["table1"].values["RSN"]),
        "Res2Net (ours)": _sets(res2net_receptive_fields(4)),
        "Res2Net (paper)": _sets(PAPER["table1"].values["Res2Net"]),
        "Baseline1 (ours)": _sets(rsb_receptive_fields(4, fusion=False))})
    train, test = make_data(config, device)
    blocks, extra = block_table(config, train, test, device, progress)
    t2 = mean_std(blocks, "block")
    ref = "rsn" if "rsn" in extra["models"] else next(iter(extra["models"]))
    dec = decoding_table(extra["models"][ref], test)
    p, _ = decode(extra["models"][ref], test["image"], DECODERS[-1])
    joints = per_joint_oks(p, test).rename("OKS term").to_frame()
    branches = _sweep(config, train, test, device,
                      {b: ("rsn", "none", 1, b) for b in config.branches})
    attention = _sweep(config, train, test, device,
                       {a: ("resnet", a, 1, 4) for a in config.attentions})
    cascade = _sweep(config, train, test, device, {s: ("rsn", "none", s, 4) for s in config.stages})
    curve = curve_table(config, train, test, device)
    ap = t2["mean"]
    d = dec.set_index("decoder")["AP"]
    fl = blocks.groupby("block")["MFLOPs"].first()
    flop_gap = float((fl / fl.get("rsn", fl.iloc[0]) - 1).abs().max())
    limb = joints.loc[["l_wrist", "r_wrist", "l_ankle", "r_ankle"], "OKS term"].mean()
    torso = joints.loc[["l_shoulder", "r_shoulder", "l_hip", "r_hip"], "OKS term"].mean()
    claims = {
        "Table 1: the RSB's receptive-field sets are {3}, {5,7}, {7,9,11}, {9..15}":
            ("paper claim", rf == PAPER["table1"].values["RSN"]),
        "the compared blocks are FLOP-matched to RSN within 15 %": ("construction", flop_gap <= .15),
        "quarter offset beats plain arg-max decoding (AP)":
            ("paper claim", bool(d["quarter"] > d["argmax"])),
        "flip test does not lower AP": ("paper claim", bool(d[DECODERS[-1]] >= d[DECODERS[-2]])),
        "limb ends (wrists, ankles) have lower OKS terms than shoulders and hips":
            ("sanity check", bool(limb < torso)),
    }
    if {"rsn", "baseline1"} <= set(ap.index):
        claims["Table 2: RSN ≥ Baseline1 at matched FLOPs (intra-level fusion helps)"] = (
            "paper claim", bool(ap["rsn"] >= ap["baseline1"]))
    if {"rsn", "resnet"} <= set(ap.index):
        claims["Table 2: RSN ≥ ResNet at matched FLOPs"] = (
            "paper claim", bool(ap["rsn"] >= ap["resnet"]))
    if {"rsn", "res2net"} <= set(ap.index):
        claims["Table 2: RSN ≥ Res2Net at matched FLOPs"] = (
            "paper claim", bool(ap["rsn"] >= ap["res2net"]))
    if {"baseline1", "baseline2"} <= set(ap.index):
        claims["Table 2: Baseline1 ≥ Baseline2"] = (
            "paper claim", bool(ap["baseline1"] >= ap["baseline2"]))
    if len(branches):
        b = mean_std(branches, "setting")["mean"]
        claims["Table 3: four branches is the best branch number"] = (
            "paper claim", bool(b.idxmax() == "4"))
    if len(attention):
        a = mean_std(attention, "setting")["mean"]
        claims["Table 4: PRM ≥ no attention"] = ("paper claim", bool(a["prm"] >= a["none"]))
        claims["Table 4: SE and CBAM do not beat no attention"] = (
            "paper claim", bool(max(a["se"], a["cbam"]) <= a["none"]))
    if len(cascade):
        c = mean_std(cascade, "setting")["mean"]
        claims["more stages give higher AP (Table 2: 4×RSN-50 > RSN-50)"] = (
            "paper claim", bool(c.iloc[-1] >= c.iloc[0]))
    findings = report.claims_table(claims)
    results = {"table1": table1, "blocks": blocks, "table2": t2, "decoding": dec,
               "per_joint": joints, "branches": branches, "attention": attention,
               "cascade": cascade, "curve": curve, "history": extra["history"],
               "findings": findings}
    return results, {"models": extra["models"], "test": test, "train": train}


def run(config: Config) -> dict:
    """:func:`experiment`'s results (DataFrames only)."""
    return experiment(config)[0]
