"""AherNet: learning to localise actions from moments.

Long, Yao, Qiu, Tian, Luo, Mei. *Learning to Localize Actions from Moments*. ECCV 2020.

A one-stage 1-D anchor localiser is trained for classes that come only with trimmed *moments*
(set B, Kinetics in the paper), helped by fully annotated untrimmed videos of other classes (set
A, ActivityNet / THUMOS14). Two bridges: a category-agnostic **weight transfer** ``T`` maps a
class's segment-classification weights to its anchor-classification weights (learned on A, applied
to B), and two **context generators** hallucinate the background around each moment, made
indistinguishable from real background cells by a discriminator.

Equations
---------
(1) W^j_clsa,c = T(W^j_regv,c; θ^j)                         weight transfer (2 FC + ELU)
(2) f~_m = A(G1(f_m), f_m, G2(f_m))                          temporal concatenation
(3) m_c = (t + 1/2) / T^j,  m_w = r_d / T^j,  r_d ∈ {2^0, 2^(1/3), 2^(2/3)}   default anchors
(4) L_reg = -Σ_n I[n = c] log p^j_n                          segment-level classification
(5) φ_c = m_c + α1 m_w Δc,  φ_w = m_w exp(α2 Δw)             offset decoding
(6) L_of = S_L1(φ_c - g_c) + S_L1(φ_w - g_w)                 on foreground anchors
(7) L_ov = (y_ov - g_iou)^2                                   overlap regression
(8) L_ad_D = -E log D(b_u) - E log(1 - D(b_m)),  L_ad_G = -E log D(b_m)
Inference: s_f = max(p) · y_ov, then 1-D NMS.

Readings where the paper is silent or ambiguous (the notebook flags each): anchor-conv kernel 1,
so T maps R^W to one weight vector per anchor ratio (R^{R·W}); a background class with its own
(untransferred) weights; the context length is whatever fills the synthetic video to T snippets;
Smooth-L1 on the *decoded* φ (Eq. 6 as printed, not on the encoded offsets); besides g_iou > 0.8,
each ground truth's best anchor is foreground (SSD's rule; at 0.8 most instances would otherwise
have none); the discriminator's loss trains D only (the ConvNet is not pushed to separate the
two backgrounds).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from cvtutor import report
from cvtutor.data.temporal import UntrimmedFeatures
from cvtutor.metrics import temporal as tm
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import fit

# ---------------------------------------------------------------------------------------------
# the paper's numbers
# ---------------------------------------------------------------------------------------------
PAPER = {
    "table2_anet": report.PaperTable(
        "Table 2, ANet-UN → ANet-AM",
        "average mAP@[.5:.95] (%)",
        {"AherNet⁰": 10.2, "AherNet⁻": 12.8, "AherNet_M": 13.2, "AherNet_A": 14.7,
         "AherNet": 17.2, "AherNet*": 22.6},
        better="higher",
    ),
    "table2_anet_auc": report.PaperTable(
        "Table 2, ANet-UN → ANet-AM",
        "AUC of AR@AN (%)",
        {"AherNet⁰": 41.8, "AherNet⁻": 52.6, "AherNet_M": 53.5, "AherNet_A": 54.6,
         "AherNet": 58.3, "AherNet*": 61.1},
        better="higher",
    ),
    "table2_th14": report.PaperTable(
        "Table 2, TH14 → ANet-FG",
        "average mAP@[.5:.95] (%)",
        {"AherNet⁰": 9.3, "AherNet⁻": 10.4, "AherNet_M": 17.3, "AherNet_A": 19.1,
         "AherNet": 24.3, "AherNet*": 28.9},
        better="higher",
    ),
    "table4": report.PaperTable(
        "Table 4, ANet → K600",
        "average mAP@[.5:.95] (%)",
        {"AherNet⁰": 14.18, "AherNet⁻": 15.96, "AherNet_M": 19.05, "AherNet_A": 21.68,
         "AherNet": 24.43},
        better="higher",
    ),
    "table1": report.PaperTable(
        "Table 1 (row labels lost in the text; only 2fc + ELU is named)",
        "average mAP@[.5:.95] (%), ANet-UN → ANet-AM",
        {"lowest variant": 16.1, "2fc + ELU": 17.2},
        better="higher",
        note="The seven middle rows' mapping to the 1fc/2fc × activation variants cannot be read.",
    ),
    "alpha": (1.0, 1.0),  # α1, α2 (Sect. 3.4, cross-validated)
    "fg_bg": (0.8, 0.3),  # g_iou thresholds (Sect. 3.4)
    "nms": 0.90,  # Sect. 3.5
    "ratios": (1.0, 2 ** (1 / 3), 2 ** (2 / 3)),  # Eq. (3)
}
MODELS = ("AherNet⁰", "AherNet⁻", "AherNet_M", "AherNet_A", "AherNet", "AherNet*")
TRANSFERS = ("1fc", "1fc + ReLU", "2fc + ReLU", "2fc + LeakyReLU", "2fc + ELU")


# ---------------------------------------------------------------------------------------------
# anchors, offsets, overlaps (Eqs. 3, 5-7)
# ---------------------------------------------------------------------------------------------
def default_anchors(length: int, ratios: Sequence[float] = PAPER["ratios"]) -> torch.Tensor:
    """Eq. (3): the ``(length, R, 2)`` anchors ``(m_c, m_w)`` of a map of ``T^j = length`` cells,
    ``m_c = (t + 1/2)/T^j``, ``m_w = r_d/T^j``, in normalised time."""
    if length < 1 or len(ratios) < 1:
        raise ValueError(f"need a map length >= 1 and >= 1 ratio, got {length}, {ratios}")
    t = torch.arange(length, dtype=torch.float32)
    c = ((t + 0.5) / length)[:, None].expand(length, len(ratios))
    w = torch.tensor(ratios, dtype=torch.float32)[None].expand(length, -1) / length
    return torch.stack([c, w], -1)


def decode_offsets(anchors: torch.Tensor, offsets: torch.Tensor, alpha=PAPER["alpha"]) -> torch.Tensor:
    """Eq. (5): ``φ_c = m_c + α1 m_w Δc``, ``φ_w = m_w exp(α2 Δw)``; ``(..., 2)`` centre-width."""
    if anchors.shape[-1] != 2 or offsets.shape[-1] != 2:
        raise ValueError(f"anchors and offsets must end in 2 (centre, width), got "
                         f"{tuple(anchors.shape)}, {tuple(offsets.shape)}")
    mc, mw = anchors[..., 0], anchors[..., 1]
    return torch.stack([mc + alpha[0] * mw * offsets[..., 0], mw * torch.exp(alpha[1] * offsets[..., 1])], -1)


def encode_offsets(anchors: torch.Tensor, target: torch.Tensor, alpha=PAPER["alpha"]) -> torch.Tensor:
    """The inverse of Eq. (5): ``Δc = (g_c - m_c)/(α1 m_w)``, ``Δw = log(g_w/m_w)/α2``."""
    if (target[..., 1] <= 0).any():
        raise ValueError("target widths must be > 0 to encode log(g_w / m_w)")
    mc, mw = anchors[..., 0], anchors[..., 1]
    return torch.stack([(target[..., 0] - mc) / (alpha[0] * mw),
                        torch.log(target[..., 1] / mw) / alpha[1]], -1)


def cw_to_se(cw: torch.Tensor) -> torch.Tensor:
    """Centre-width ``(..., 2)`` to start-end."""
    return torch.stack([cw[..., 0] - cw[..., 1] / 2, cw[..., 0] + cw[..., 1] / 2], -1)


def se_to_cw(se: torch.Tensor) -> torch.Tensor:
    """Start-end ``(..., 2)`` to centre-width."""
    return torch.stack([(se[..., 0] + se[..., 1]) / 2, se[..., 1] - se[..., 0]], -1)


def tiou_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Temporal IoU of start-end segments ``a (..., N, 2)`` and ``b (..., M, 2)``: ``(..., N, M)``
    (torch twin of :func:`cvtutor.metrics.temporal.tiou`, batched for anchor labelling)."""
    inter = (torch.minimum(a[..., :, None, 1], b[..., None, :, 1])
             - torch.maximum(a[..., :, None, 0], b[..., None, :, 0])).clamp_min(0)
    union = (a[..., 1] - a[..., 0])[..., :, None] + (b[..., 1] - b[..., 0])[..., None, :] - inter
    return torch.where(union > 0, inter / union.clamp_min(1e-12), torch.zeros_like(inter))


def label_anchors(anchors_se: torch.Tensor, gt_se: torch.Tensor, gt_valid: torch.Tensor,
                  thresholds=PAPER["fg_bg"]) -> dict[str, torch.Tensor]:
    """Anchor labels (Sect. 3.4): ``g_iou`` (IoU with the closest GT), the matched GT's start-end,
    ``fg`` (g_iou > 0.8, or the best anchor of a GT) and ``bg`` (g_iou < 0.3).

    ``anchors_se (A, 2)``, ``gt_se (B, M, 2)``, ``gt_valid (B, M)``; outputs ``(B, A)`` (and
    ``(B, A, 2)`` for the matched segments)."""
    if gt_se.ndim != 3 or gt_se.shape[-1] != 2 or gt_valid.shape != gt_se.shape[:2]:
        raise ValueError(f"gt_se must be (B, M, 2) with gt_valid (B, M), got "
                         f"{tuple(gt_se.shape)}, {tuple(gt_valid.shape)}")
    iou = tiou_matrix(anchors_se[None].expand(len(gt_se), -1, -1), gt_se)  # B A M
    iou = torch.where(gt_valid[:, None], iou, torch.full_like(iou, -1.0))
    g_iou, idx = iou.max(-1)
    best = iou.argmax(1)  # B M: each GT's best anchor
    is_best = torch.zeros_like(g_iou, dtype=torch.bool)
    bi = torch.arange(len(gt_se))[:, None].expand_as(best)
    is_best[bi[gt_valid], best[gt_valid]] = True
    g_iou = g_iou.clamp_min(0)
    fg = (g_iou > thresholds[0]) | (is_best & (g_iou > 0))
    bg = (g_iou < thresholds[1]) & ~fg
    matched = torch.gather(gt_se, 1, idx[..., None].expand(-1, -1, 2))
    return {"g_iou": g_iou, "fg": fg, "bg": bg, "matched": matched, "gt_index": idx}


def offset_loss(phi_cw: torch.Tensor, g_cw: torch.Tensor, fg: torch.Tensor) -> torch.Tensor:
    """Eq. (6): ``S_L1(φ_c - g_c) + S_L1(φ_w - g_w)`` on the *decoded* φ, mean over foreground
    anchors (β = 1; zero without foreground)."""
    if not fg.any():
        return phi_cw.sum() * 0
    d = F.smooth_l1_loss(phi_cw[fg], g_cw[fg], reduction="none", beta=1.0)
    return d.sum(-1).mean()


def overlap_loss(y_ov: torch.Tensor, g_iou: torch.Tensor) -> torch.Tensor:
    """Eq. (7): ``(y_ov - g_iou)^2``, mean over anchors."""
    return ((y_ov - g_iou) ** 2).mean()


# ---------------------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------------------
class WeightTransfer(nn.Module):
    """Eq. (1): ``W_clsa,c = T(W_regv,c; θ)``, shared by all classes: ``(C, W) -> (C, R, W)``.

    ``kind``: ``"1fc"``, ``"1fc + ReLU"``, or ``"2fc + <act>"`` with act ReLU, LeakyReLU or ELU
    (the paper's best: 2 FC + ELU)."""

    def __init__(self, width: int, n_ratios: int, kind: str = "2fc + ELU"):
        super().__init__()
        if kind not in TRANSFERS:
            raise ValueError(f"kind must be one of {TRANSFERS}, got {kind!r}")
        acts = {"ReLU": nn.ReLU(), "LeakyReLU": nn.LeakyReLU(0.2), "ELU": nn.ELU()}
        out = width * n_ratios
        if kind == "1fc":
            layers = [nn.Linear(width, out)]
        elif kind == "1fc + ReLU":
            layers = [nn.Linear(width, out), nn.ReLU()]
        else:
            layers = [nn.Linear(width, width), acts[kind.split("+ ")[1]], nn.Linear(width, out)]
        self.net = nn.Sequential(*layers)
        self.width, self.n_ratios = width, n_ratios

    def forward(self, w_regv: torch.Tensor) -> torch.Tensor:
        if w_regv.ndim != 2 or w_regv.shape[1] != self.width:
            raise ValueError(f"W_regv must be (C, {self.width}), got {tuple(w_regv.shape)}")
        return self.net(w_regv).view(len(w_regv), self.n_ratios, self.width)


class Localizer1D(nn.Module):
    """The weight-sharing 1-D ConvNet (Sect. 3.1): a base conv, then ``n_maps`` stride-2 anchor
    layers; ``forward(x (B, D, T))`` returns the maps ``[(B, W, T/2^j)]``, and the heads give, per
    anchor, offsets ``(Δc, Δw)`` and the overlap ``y_ov`` (Sect. 3.4)."""

    def __init__(self, dim: int, width: int, n_maps: int, n_ratios: int):
        super().__init__()
        self.base = nn.Conv1d(dim, width, 3, padding=1)
        self.layers = nn.ModuleList(nn.Conv1d(width, width, 3, stride=2, padding=1)
                                    for _ in range(n_maps))
        self.offset = nn.ModuleList(nn.Conv1d(width, 2 * n_ratios, 3, padding=1) for _ in range(n_maps))
        self.overlap = nn.ModuleList(nn.Conv1d(width, n_ratios, 3, padding=1) for _ in range(n_maps))
        self.n_ratios = n_ratios

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = F.relu(self.base(x))
        maps = []
        for layer in self.layers:
            h = F.relu(layer(h))
            maps.append(h)
        return maps

    def heads(self, maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Offsets ``(B, A, 2)`` and overlaps ``(B, A)`` over all maps' anchors (map-major)."""
        offs, ovs = [], []
        for j, h in enumerate(maps):
            B, _, L = h.shape
            offs.append(self.offset[j](h).view(B, self.n_ratios, 2, L).permute(0, 3, 1, 2).reshape(B, -1, 2))
            ovs.append(torch.sigmoid(self.overlap[j](h)).permute(0, 2, 1).reshape(B, -1))
        return torch.cat(offs, 1), torch.cat(ovs, 1)


class ContextGenerator(nn.Module):
    """G1 or G2 (Sect. 3.3): two 1-D conv layers that turn a moment ``f_m (B, D, L)`` and noise into
    ``length`` context cells ``(B, D, length)``: the moment's mean conditions every cell."""

    def __init__(self, dim: int, width: int, noise: int = 8):
        super().__init__()
        self.c1 = nn.Conv1d(dim + noise, width, 3, padding=1)
        self.c2 = nn.Conv1d(width, dim, 3, padding=1)
        self.noise = noise

    def forward(self, f_m: torch.Tensor, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
        B = f_m.shape[0]
        z = torch.randn(B, self.noise, max(length, 1), generator=generator, device=f_m.device)
        cond = f_m.mean(-1, keepdim=True).expand(-1, -1, z.shape[-1])
        out = self.c2(F.elu(self.c1(torch.cat([cond, z], 1))))
        return out[..., :length]


def context_concat(g1: torch.Tensor, f_m: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """Eq. (2): ``f~_m = A(G1(f_m), f_m, G2(f_m))``, the temporal concatenation ``(B, D, L1+L+L2)``."""
    if not (g1.shape[:2] == f_m.shape[:2] == g2.shape[:2]):
        raise ValueError(f"G1, f_m, G2 must share (B, D), got {tuple(g1.shape)}, "
                         f"{tuple(f_m.shape)}, {tuple(g2.shape)}")
    return torch.cat([g1, f_m, g2], -1)


class Discriminator(nn.Module):
    """D of Eq. (8): a per-cell MLP per feature map, ``(B, W, L) -> (B, L)`` logits."""

    def __init__(self, width: int, n_maps: int, hidden: int = 32):
        super().__init__()
        self.nets = nn.ModuleList(nn.Sequential(nn.Linear(width, hidden), nn.LeakyReLU(0.2),
                                                nn.Linear(hidden, 1)) for _ in range(n_maps))

    def forward(self, h: torch.Tensor, j: int) -> torch.Tensor:
        return self.nets[j](h.transpose(1, 2)).squeeze(-1)


def adversarial_losses(d_real: torch.Tensor, d_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (8) on logits: ``L_ad_D = -E log D(b_u) - E log(1 - D(b_m))``, ``L_ad_G = -E log D(b_m)``
    (non-saturating); an empty set of cells contributes 0."""
    if d_real.numel() == 0 or d_fake.numel() == 0:
        z = d_fake.sum() * 0 + d_real.sum() * 0
        return z, z
    ld = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
          + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    lg = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    return ld, lg


class AherNet(nn.Module):
    """The localiser M, the two sets' segment classifiers ``W_regv`` (Eq. 4), the transfer T (Eq. 1)
    per map, a background class, the generators G1, G2 and the discriminator D."""

    def __init__(self, dim: int, width: int, n_maps: int, n_a: int, n_b: int,
                 transfer: str = "2fc + ELU", ratios: Sequence[float] = PAPER["ratios"]):
        super().__init__()
        R = len(ratios)
        self.ratios, self.n_maps, self.width = tuple(ratios), n_maps, width
        self.M = Localizer1D(dim, width, n_maps, R)
        self.w_regv = nn.ParameterDict({
            "A": nn.Parameter(0.1 * torch.randn(n_maps, n_a, width)),
            "B": nn.Parameter(0.1 * torch.randn(n_maps, n_b, width)),
        })
        self.b_regv = nn.ParameterDict({"A": nn.Parameter(torch.zeros(n_maps, n_a)),
                                        "B": nn.Parameter(torch.zeros(n_maps, n_b))})
        self.T = nn.ModuleList(WeightTransfer(width, R, transfer) for _ in range(n_maps))
        self.w_bg = nn.Parameter(0.1 * torch.randn(n_maps, R, width))
        self.b_bg = nn.Parameter(torch.zeros(n_maps, R))
        self.G1, self.G2 = ContextGenerator(dim, width), ContextGenerator(dim, width)
        self.D = Discriminator(width, n_maps)

    def convnet_parameters(self) -> list[nn.Parameter]:
        """The 1-D ConvNet of Algorithm 1: the localiser's layers and heads, T and the background."""
        return [*self.M.parameters(), *self.T.parameters(), self.w_bg, self.b_bg]

    def anchors(self, length: int) -> torch.Tensor:
        """All maps' anchors ``(A, 2)`` centre-width, map-major, for an input of ``length`` cells."""
        out, L = [], length
        for _ in range(self.n_maps):
            L = (L + 1) // 2
            out.append(default_anchors(L, self.ratios).reshape(-1, 2))
        return torch.cat(out)

    def segment_logits(self, maps: list[torch.Tensor], which: str) -> torch.Tensor:
        """Eq. (4)'s logits per map: ``W^j_regv f^j_p`` of the globally pooled maps, ``(J, B, C)``."""
        return torch.stack([h.mean(-1) @ self.w_regv[which][j].T + self.b_regv[which][j]
                            for j, h in enumerate(maps)])

    def w_clsa(self, which: str, transfer: bool = True) -> list[torch.Tensor]:
        """Eq. (1) per map: ``(C, R, W)``; ``transfer=False`` tiles W_regv itself (AherNet⁻)."""
        w = self.w_regv[which]
        if transfer:
            return [self.T[j](w[j]) for j in range(self.n_maps)]
        return [w[j][:, None].expand(-1, len(self.ratios), -1) for j in range(self.n_maps)]

    def anchor_logits(self, maps: list[torch.Tensor], w_clsa: list[torch.Tensor]) -> torch.Tensor:
        """Anchor classification ``(B, A, 1 + C)`` (background first): the kernel-1 conv whose class
        weights are W_clsa; every anchor ratio has its own weight vector."""
        out = []
        for j, h in enumerate(maps):
            w = torch.cat([self.w_bg[j][None], w_clsa[j]], 0)  # (1+C) R W
            b = torch.cat([self.b_bg[j][None], torch.zeros(len(w) - 1, w.shape[1], device=h.device)])
            lg = torch.einsum("bwl,crw->blrc", h, w) + b.T[None, None]
            out.append(lg.reshape(h.shape[0], -1, w.shape[0]))
        return torch.cat(out, 1)


@contextmanager
def frozen(*groups: Sequence[nn.Parameter] | nn.Module):
    """Algorithm 1's freezing: ``requires_grad = False`` on the given parameters inside the block."""
    params = [p for g in groups for p in (g.parameters() if isinstance(g, nn.Module) else g)]
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, r in zip(params, before):
            p.requires_grad_(r)


# ---------------------------------------------------------------------------------------------
# losses of one pass
# ---------------------------------------------------------------------------------------------
def localization_losses(net: AherNet, x: torch.Tensor, gt_se: torch.Tensor, gt_valid: torch.Tensor,
                        gt_label: torch.Tensor, w_clsa: list[torch.Tensor]) -> dict:
    """L_cls (Eq. 4's form over background + classes, on fg and bg anchors) and L_prop = L_of +
    L_ov (Eqs. 6-7) of a batch ``x (B, D, T)`` with normalised GT ``gt_se (B, M, 2)``."""
    maps = net.M(x)
    anchors = net.anchors(x.shape[-1]).to(x.device)
    lab = label_anchors(cw_to_se(anchors), gt_se, gt_valid)
    logits = net.anchor_logits(maps, w_clsa)
    offs, y_ov = net.M.heads(maps)
    target = torch.where(lab["fg"], gt_label[:, None] + 1, torch.zeros_like(lab["fg"], dtype=torch.long))
    use = lab["fg"] | lab["bg"]
    l_cls = F.cross_entropy(logits[use], target[use])
    phi = decode_offsets(anchors[None].expand_as(offs), offs)
    l_of = offset_loss(phi, se_to_cw(lab["matched"]), lab["fg"])
    l_ov = overlap_loss(y_ov, lab["g_iou"])
    return {"cls": l_cls, "of": l_of, "ov": l_ov, "maps": maps, "bg": lab["bg"], "logits": logits}


def background_cells(bg_anchors: torch.Tensor, maps: list[torch.Tensor], n_ratios: int) -> list[torch.Tensor]:
    """Per map, the ``(B, L)`` mask of cells all of whose anchors are background."""
    out, k = [], 0
    for h in maps:
        L = h.shape[-1]
        out.append(bg_anchors[:, k:k + L * n_ratios].view(-1, L, n_ratios).all(-1))
        k += L * n_ratios
    return out


def discriminator_logits(net: AherNet, maps, masks) -> torch.Tensor:
    """D's logits on the background cells of every map, concatenated."""
    vals = [net.D(h, j)[m] for j, (h, m) in enumerate(zip(maps, masks))]
    return torch.cat(vals) if vals else torch.zeros(0)


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config(ProfileConfig):
    dim: int = 32
    length: int = 64
    classes_a: int = 8
    classes_b: int = 12
    videos_a: int = 300
    moments_b: int = 600
    videos_b_train: int = 300  # only AherNet* (the oracle) sees them
    videos_test: int = 200
    moment_length: int = 16
    min_duration: int = 6
    max_duration: int = 28
    max_instances: int = 2
    n_maps: int = 4
    width: int = 64
    batch: int = 16
    steps: int = 180
    pretrain_steps: int = 50
    lr: float = 2e-3
    walk: float = 0.05
    noise: float = 0.7
    context_weight: float = 1.0
    nms: float = PAPER["nms"]
    max_proposals: int = 100
    transfer: str = "2fc + ELU"
    models: tuple = ("AherNet⁰", "AherNet⁻", "AherNet", "AherNet*")
    transfers: tuple = ()  # Table 1 variants (full)
    ratios_annotated: tuple = ()  # Fig. 6 fractions (full)
    seeds: tuple = (0,)
    device: str | None = None

    @classmethod
    def fast(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        # host-bound on a GPU (~60 ms an iteration by benchmarks/_gpu_model.py at these sizes):
        # 3 seeds x 12 trainings x 240 iterations fit the 10-min budget; batch 64 costs no more
        return cls(dim=128, length=128, videos_a=2000, moments_b=4000, videos_b_train=2000,
                   videos_test=400, max_duration=56, n_maps=6, width=256, batch=64, steps=200,
                   pretrain_steps=40, models=MODELS, transfers=TRANSFERS,
                   ratios_annotated=(0.1, 0.25, 0.5, 1.0), seeds=(0, 1, 2))

    @classmethod
    def smoke(cls) -> Config:
        """``full``'s code paths (six models, Table 1 variants, Fig. 6 fractions, three seeds) at toy size."""
        return cls.full().replace(dim=8, length=32, videos_a=16, moments_b=24, videos_b_train=16,
                                  videos_test=8, min_duration=3, max_duration=12, n_maps=3, width=8,
                                  batch=4, steps=3, pretrain_steps=2, transfers=("1fc", "2fc + ELU"),
                                  ratios_annotated=(0.5, 1.0), seeds=(0, 1))

    def replace(self, **changes) -> Config:
        import dataclasses

        return dataclasses.replace(self, **changes)


def worlds(config: Config) -> dict[str, UntrimmedFeatures]:
    """Set A (annotated untrimmed videos) and set B (moments only): disjoint classes, one world
    each (other prototypes), the same background statistics."""
    kw = {"dim": config.dim, "length": config.length, "max_instances": config.max_instances,
              "min_duration": config.min_duration, "max_duration": config.max_duration,
              "walk": config.walk, "noise": config.noise, "context_weight": config.context_weight,
              "device": get_device(config.device)}
    return {"A": UntrimmedFeatures(n_classes=config.classes_a, prototype_seed=11, **kw),
            "B": UntrimmedFeatures(n_classes=config.classes_b, prototype_seed=23, **kw)}


def resample(x: torch.Tensor, length: int) -> torch.Tensor:
    """Linear resampling of ``(B, D, L)`` to ``(B, D, length)`` (moments to a chosen duration)."""
    return F.interpolate(x, size=length, mode="linear", align_corners=False)


def foreground_segments(batch: dict, length: int) -> dict[str, torch.Tensor]:
    """The foreground segments of untrimmed videos as moments (Sect. 3.2): ``features (N, D, length)``."""
    f = batch["features"]
    seg = batch["segments"]
    out = [resample(f[r.video_id, r.start:r.end].T[None], length)[0] for r in seg.itertuples()]
    label = torch.as_tensor(seg["label"].to_numpy().copy(), device=f.device)
    return {"features": torch.stack(out), "label": label}


def make_data(config: Config, seed: int) -> dict:
    """Training and test data of one seed: A videos and their foreground moments, B moments, B
    training videos (oracle only) and B test videos."""
    W = worlds(config)
    a = W["A"].sample(config.videos_a, seed=1000 + seed)
    mb = W["B"].trimmed_moments(config.moments_b, length=config.moment_length, seed=2000 + seed)
    return {
        "A": a,
        "A_moments": foreground_segments(a, config.moment_length),
        "B_moments": {"features": mb["features"].transpose(1, 2), "label": mb["label"]},
        "B_train": W["B"].sample(config.videos_b_train, seed=3000 + seed),
        "B_test": W["B"].sample(config.videos_test, seed=4000 + seed),
    }


def _gt(batch: dict, idx: torch.Tensor, T: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    se = torch.stack([batch["start"][idx], batch["end"][idx]], -1).float() / T
    return se, batch["valid"][idx], batch["label"][idx]


# ---------------------------------------------------------------------------------------------
# Algorithm 1 and the baselines
# ---------------------------------------------------------------------------------------------
def synthetic_moments(net: AherNet, f_m: torch.Tensor, T: int, g: torch.Generator, use_context: bool = True):
    """A synthetic untrimmed video of ``T`` cells per moment (Eq. 2): the moment resampled to a
    random duration L at a random start s, G1's context before it, G2's after. Without context
    (AherNet_M) the moment is stretched over the whole video. Returns ``x``, GT ``se (B, 1, 2)``."""
    B = f_m.shape[0]
    if not use_context:
        return resample(f_m, T), torch.tensor([[[0.0, 1.0]]], device=f_m.device).expand(B, 1, 2)
    lo, hi = net.dur_range
    L = int(torch.randint(lo, hi + 1, (1,), generator=g))
    s = int(torch.randint(0, T - L + 1, (1,), generator=g))
    x = context_concat(net.G1(f_m, s, g), resample(f_m, L), net.G2(f_m, T - L - s, g))
    se = torch.tensor([s / T, (s + L) / T], device=f_m.device).expand(B, 1, 2)
    return x, se


def _batch_idx(n: int, k: int, g: torch.Generator, dev) -> torch.Tensor:
    return torch.randint(n, (k,), generator=g).to(dev)


def _no_batches(step: int) -> None:
    """Algorithm 1 draws its own batches (from the generator ``g`` of :func:`train_ahernet`)."""
    return None


def train_ahernet(config: Config, data: dict, seed: int, variant: str = "AherNet",
                  transfer: str | None = None, fraction: float = 1.0) -> tuple[AherNet, pd.DataFrame]:
    """Train one model of Tables 1-2.

    ``AherNet``: Algorithm 1 (pre-train M on A; then per iteration: (1) L_reg on A's foregrounds and
    B's moments; (2) W_regv fixed, L_cls + L_prop on A's videos (learns θ); (3) W_clsa = T(W_regv^B);
    (4) ConvNet fixed, G1/G2 by L_ad_G + L_cls + L_prop on synthetic moments; then G fixed, D by
    L_ad_D and the ConvNet by L_cls + L_prop). ``AherNet_A``: the generators pre-trained on A with
    an L2 loss, then fixed, no adversary. ``AherNet_M``: no context (moments as whole videos).
    ``AherNet⁻``: steps (1)-(2) only, with W_clsa = W_regv (no T; nothing learns from B moments'
    localisation). ``AherNet*``: the oracle, steps (1)-(2) on B's own untrimmed videos (``fraction``
    of them).
    """
    dev = get_device(config.device)
    seed_everything(seed)
    T = config.length
    net = AherNet(config.dim, config.width, config.n_maps, config.classes_a, config.classes_b,
                  transfer or config.transfer).to(dev)
    net.dur_range = (config.min_duration, config.max_duration)
    g = torch.Generator().manual_seed(seed + 77)
    oracle = variant == "AherNet*"
    if oracle:
        vids, set_ = data["B_train"], "B"
        n_keep = max(1, round(fraction * len(vids["label"])))
    else:
        vids, set_ = data["A"], "A"
        n_keep = len(vids["label"])
    mom = data["B_moments"] if oracle else data["A_moments"]
    mom_set = "B" if oracle else "A"
    opt_conv = torch.optim.Adam(net.convnet_parameters(), config.lr, foreach=True)
    opt_reg = torch.optim.Adam([*net.M.parameters(), *net.w_regv.parameters(), *net.b_regv.parameters()], config.lr, foreach=True)
    opt_g = torch.optim.Adam([*net.G1.parameters(), *net.G2.parameters()], config.lr, betas=(0.5, 0.999), foreach=True)
    opt_d = torch.optim.Adam(net.D.parameters(), config.lr, betas=(0.5, 0.999), foreach=True)
    bs = config.batch

    def untrimmed_pass(transfer_on=True):
        idx = _batch_idx(n_keep, bs, g, dev)
        se, valid, lab = _gt(vids, idx, T)
        w = net.w_clsa(set_, transfer=transfer_on)
        return localization_losses(net, vids["features"][idx].transpose(1, 2), se, valid, lab, w)

    def step_reg():
        ia = _batch_idx(len(mom["label"]), bs, g, dev)
        ib = _batch_idx(len(data["B_moments"]["label"]), bs, g, dev)
        maps = net.M(torch.cat([mom["features"][ia], data["B_moments"]["features"][ib]]))
        la = F.cross_entropy(net.segment_logits([h[:bs] for h in maps], mom_set).flatten(0, 1),
                             mom["label"][ia].repeat(config.n_maps))
        lb = F.cross_entropy(net.segment_logits([h[bs:] for h in maps], "B").flatten(0, 1),
                             data["B_moments"]["label"][ib].repeat(config.n_maps))
        loss = la + lb
        opt_reg.zero_grad(set_to_none=True)
        loss.backward()
        opt_reg.step()
        return loss.detach()

    def step_untrimmed(transfer_on=True):
        with frozen([*net.w_regv.parameters(), *net.b_regv.parameters()] if transfer_on else []):
            out = untrimmed_pass(transfer_on)
            loss = out["cls"] + out["of"] + out["ov"]
            opt_conv.zero_grad(set_to_none=True)
            if not transfer_on:
                opt_reg.zero_grad(set_to_none=True)
            loss.backward()
            opt_conv.step()
            if not transfer_on:
                opt_reg.step()
        return out

    optimizers = {"convnet": opt_conv, "reg": opt_reg, "G": opt_g, "D": opt_d}

    # pre-train M on the untrimmed set (Algorithm 1, line 1)
    def pretrain_step(models, batch, step):
        out = step_untrimmed(transfer_on=variant != "AherNet⁻")
        return {"L_cls": out["cls"].detach(), "L_prop": (out["of"] + out["ov"]).detach()}

    if config.pretrain_steps:
        fit({"net": net}, optimizers, _no_batches, pretrain_step, steps=config.pretrain_steps, manual=True,
            device=dev, progress=False, desc=f"{variant}: pre-train")
    if variant == "AherNet_A":
        pretrain_generators_l2(config, net, data["A"], g)
    adversarial = variant == "AherNet"

    def iteration(models, batch, it):
        """One iteration of Algorithm 1 (its optimizers stepped here); the terms are logged by fit."""
        rec = {"L_reg": step_reg()}
        out = step_untrimmed(transfer_on=variant != "AherNet⁻")
        if oracle:  # as many ConvNet updates per iteration as AherNet's (2a and 4b)
            out = step_untrimmed()
        rec.update(L_cls=out["cls"].detach(), L_prop=(out["of"] + out["ov"]).detach())
        if variant in ("AherNet", "AherNet_A", "AherNet_M"):
            ib = _batch_idx(len(data["B_moments"]["label"]), bs, g, dev)
            f_m, lab_b = data["B_moments"]["features"][ib], data["B_moments"]["label"][ib]
            valid1 = torch.ones(bs, 1, dtype=torch.bool, device=dev)
            # (4a) ConvNet and W_regv fixed: the generators learn L_ad_G + L_cls + L_prop
            if adversarial:
                with frozen(net.convnet_parameters(), [*net.w_regv.parameters(), *net.b_regv.parameters()], net.D):
                    x, se = synthetic_moments(net, f_m, T, g)
                    o = localization_losses(net, x, se, valid1, lab_b, net.w_clsa("B"))
                    fake = discriminator_logits(net, o["maps"], background_cells(o["bg"], o["maps"], len(net.ratios)))
                    _, l_g = adversarial_losses(fake.detach(), fake)
                    loss_g = l_g + o["cls"] + o["of"] + o["ov"]
                    opt_g.zero_grad(set_to_none=True)
                    loss_g.backward()
                    opt_g.step()
                rec["L_ad_G"] = l_g.detach()
            # (4b) generators fixed: D by L_ad_D, the ConvNet by L_cls + L_prop on synthetic moments
            with frozen(net.G1, net.G2, [*net.w_regv.parameters(), *net.b_regv.parameters()]):
                with torch.no_grad():
                    x, se = synthetic_moments(net, f_m, T, g, use_context=variant != "AherNet_M")
                nb = se.shape[1]
                o = localization_losses(net, x, se, torch.ones(bs, nb, dtype=torch.bool, device=dev),
                                        lab_b, net.w_clsa("B"))
                loss_c = o["cls"] + o["of"] + o["ov"]
                opt_conv.zero_grad(set_to_none=True)
                loss_c.backward()
                opt_conv.step()
                rec["L_cls_B"] = o["cls"].detach()
                if adversarial:
                    real_masks = background_cells_of(net, out)
                    real = discriminator_logits(net, [h.detach() for h in out["maps"]], real_masks)
                    fake = discriminator_logits(net, [h.detach() for h in o["maps"]],
                                                background_cells(o["bg"], o["maps"], len(net.ratios)))
                    l_d, _ = adversarial_losses(real, fake)
                    opt_d.zero_grad(set_to_none=True)
                    l_d.backward()
                    opt_d.step()
                    rec["L_ad_D"] = l_d.detach()
        return rec

    hist = fit({"net": net}, optimizers, _no_batches, iteration, steps=config.steps, manual=True, device=dev,
               progress=False, desc=f"{variant}: Algorithm 1")
    return net.eval(), hist.assign(step=hist["step"] - 1)  # iterations numbered from 0


def background_cells_of(net: AherNet, out: dict) -> list[torch.Tensor]:
    """The background-cell masks of a pass's output (real untrimmed videos: b_u of Eq. 8)."""
    return background_cells(out["bg"], out["maps"], len(net.ratios))


def pretrain_generators_l2(config: Config, net: AherNet, vids: dict, g: torch.Generator) -> list[float]:
    """AherNet_A's generators: G1 / G2 regress (L2) the real features before / after a foreground
    segment of an A video, from the segment (one instance per video: its first)."""
    T, dev = config.length, next(net.parameters()).device
    opt = torch.optim.Adam([*net.G1.parameters(), *net.G2.parameters()], config.lr, foreach=True)
    losses = []
    for _ in range(config.steps):
        idx = _batch_idx(len(vids["label"]), config.batch, g, dev)
        s, e = vids["start"][idx, 0], vids["end"][idx, 0]
        x = vids["features"][idx].transpose(1, 2)
        f_m = torch.stack([resample(x[i:i + 1, :, s[i]:e[i]], config.moment_length)[0] for i in range(len(idx))])
        c1, c2 = net.G1(f_m, T, g), net.G2(f_m, T, g)
        k = torch.arange(T, device=dev)[None]
        before = (k < s[:, None]).float()  # G1's cell k sits at time k
        after = (k < (T - e)[:, None]).float()  # G2's cell k sits at time e + k
        shifted = torch.gather(x, 2, (e[:, None] + k).clamp(max=T - 1)[:, None].expand_as(x))
        loss = ((((c1 - x) ** 2).mean(1) * before).sum() / before.sum().clamp_min(1)
                + (((c2 - shifted) ** 2).mean(1) * after).sum() / after.sum().clamp_min(1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


# ---------------------------------------------------------------------------------------------
# inference (Sect. 3.5) and the snippet baseline AherNet⁰
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def detect(net: AherNet, x: torch.Tensor, transfer: bool = True, nms: float = PAPER["nms"],
           max_proposals: int = 100) -> pd.DataFrame:
    """Detections of set B's classes in videos ``x (N, T, D)``: per anchor ``s_f = max(p) · y_ov``
    (p over the action classes of the softmax with background), the decoded ``(φ_c, φ_w)`` clipped
    to the video, 1-D NMS per video at ``nms``, the top ``max_proposals``. Times in snippets."""
    if x.ndim != 3:
        raise ValueError(f"x must be (N, T, D) videos, got {tuple(x.shape)}")
    T = x.shape[1]
    maps = net.M(x.transpose(1, 2))
    anchors = net.anchors(T).to(x.device)
    prob = net.anchor_logits(maps, net.w_clsa("B", transfer)).softmax(-1)[..., 1:]
    offs, y_ov = net.M.heads(maps)
    se = cw_to_se(decode_offsets(anchors[None].expand_as(offs), offs)).clamp(0, 1) * T
    pmax, label = prob.max(-1)
    score = (pmax * y_ov).cpu().numpy()
    se, label = se.cpu().numpy(), label.cpu().numpy()
    rows = []
    for v in range(len(x)):
        ok = se[v, :, 1] - se[v, :, 0] > 1e-6
        idx = np.flatnonzero(ok)
        keep = idx[tm.nms_1d(se[v, idx], score[v, idx], nms)][:max_proposals]
        rows.append(pd.DataFrame({"video_id": v, "label": label[v, keep], "t_start": se[v, keep, 0],
                                  "t_end": se[v, keep, 1], "score": score[v, keep]}))
    return pd.concat(rows, ignore_index=True)


def snippet_baseline(moments: dict, x: torch.Tensor, thresholds: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
                     nms: float = PAPER["nms"], max_proposals: int = 100) -> pd.DataFrame:
    """AherNet⁰ (Sect. 4.3): a snippet classifier without a trained network and multi-threshold
    grouping. The classifier is Gaussian with a shared isotropic variance σ^2, both estimated from
    the moments' snippets, plus a background option for outliers (a squared Mahalanobis distance
    beyond the χ^2_D 95% quantile ``q``): logits ``-||x - μ_c||^2 / (2 σ^2)`` and ``-q / 2``. Runs
    of snippets whose top class stays the same with ``p_c >= θ`` become segments, scored by their
    mean ``p_c``; NMS over all thresholds' segments."""
    from scipy.stats import chi2

    f, lab = moments["features"], moments["label"]
    C, D = int(lab.max()) + 1, f.shape[1]
    mu = torch.stack([f[lab == c].mean((0, 2)) for c in range(C)])
    var = ((f - mu[lab][..., None]) ** 2).mean()  # pooled within-class variance per dimension
    d2 = ((x[:, :, None] - mu[None, None]) ** 2).sum(-1) / var  # N T C
    bg = torch.full_like(d2[..., :1], -0.5 * float(chi2.ppf(0.95, D)))
    p = torch.cat([bg, -0.5 * d2], -1).softmax(-1)[..., 1:]
    pmax, arg = (t.cpu().numpy() for t in p.max(-1))
    rows = []
    for v in range(len(x)):
        segs, scores, labels = [], [], []
        for th in thresholds:
            on = pmax[v] >= th
            t = 0
            while t < len(on):
                if not on[t]:
                    t += 1
                    continue
                u = t
                while u + 1 < len(on) and on[u + 1] and arg[v, u + 1] == arg[v, t]:
                    u += 1
                segs.append((t, u + 1))
                scores.append(pmax[v, t:u + 1].mean())
                labels.append(arg[v, t])
                t = u + 1
        if not segs:
            continue
        segs, scores, labels = np.array(segs, float), np.array(scores), np.array(labels)
        keep = tm.nms_1d(segs, scores, nms)[:max_proposals]
        rows.append(pd.DataFrame({"video_id": v, "label": labels[keep], "t_start": segs[keep, 0],
                                  "t_end": segs[keep, 1], "score": scores[keep]}))
    cols = ["video_id", "label", "t_start", "t_end", "score"]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=cols)


def evaluate(detections: pd.DataFrame, videos: dict, an: Sequence[int] = tuple(range(1, 101))) -> dict:
    """ActivityNet average mAP@[.5:.95] (and at 0.5 / 0.75 / 0.95) and the AUC of AR@AN of
    ``detections`` on ``videos``' ground truth, in %."""
    gt = videos["segments"].rename(columns={"t_start": "sec_s", "t_end": "sec_e"})
    gt = gt.assign(t_start=gt["start"].astype(float), t_end=gt["end"].astype(float))
    res = tm.mean_average_precision(gt, detections)
    ar = tm.average_recall_at_an(gt, detections, an)
    m = res["map"]
    return {"mAP": 100 * res["average_map"], "mAP@0.5": 100 * float(m.iloc[0]),
            "mAP@0.75": 100 * float(m.iloc[5]), "mAP@0.95": 100 * float(m.iloc[9]),
            "AUC": 100 * tm.ar_auc(ar)}


@torch.no_grad()
def per_map_accuracy(net: AherNet, data: dict, transfer: bool = True) -> pd.DataFrame:
    """Fig. 4's analogue: anchor classification accuracy per anchor layer on set B's test videos
    (foreground anchors, the true class among the action classes)."""
    v = data["B_test"]
    x = v["features"].transpose(1, 2)
    T = x.shape[-1]
    maps = net.M(x)
    anchors = net.anchors(T).to(x.device)
    se = torch.stack([v["start"], v["end"]], -1).float() / T
    lab = label_anchors(cw_to_se(anchors), se, v["valid"])
    pred = net.anchor_logits(maps, net.w_clsa("B", transfer))[..., 1:].argmax(-1)
    ok = pred == v["label"][:, None]
    rows, k = [], 0
    for j, h in enumerate(maps):
        n = h.shape[-1] * len(net.ratios)
        fg = lab["fg"][:, k:k + n]
        rows.append({"layer": j + 1, "cells": h.shape[-1],
                     "accuracy": float(ok[:, k:k + n][fg].float().mean()) if fg.any() else float("nan")})
        k += n
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# the experiment
# ---------------------------------------------------------------------------------------------
def run_model(config: Config, data: dict, name: str, seed: int, **kw) -> tuple[dict, AherNet | None, pd.DataFrame]:
    """Train (where the model trains) and evaluate one row of Table 2."""
    x = data["B_test"]["features"]
    if name == "AherNet⁰":
        det = snippet_baseline(data["B_moments"], x, nms=config.nms, max_proposals=config.max_proposals)
        return evaluate(det, data["B_test"]), None, pd.DataFrame()
    net, hist = train_ahernet(config, data, seed, name, **kw)
    det = detect(net, x, transfer=name != "AherNet⁻", nms=config.nms, max_proposals=config.max_proposals)
    return evaluate(det, data["B_test"]), net, hist


def run(config: Config) -> dict:
    """Table 2 / 4 in miniature per seed (the models of ``config.models``), Fig. 4's per-layer
    accuracy, Table 1's transfer variants and Fig. 6's annotation fractions (where configured), the
    findings."""
    rows, hists, layers, t1, f6 = [], [], [], [], []
    example = nms_study = None
    for seed in config.seeds:
        data = make_data(config, seed)
        for name in config.models:
            m, net, hist = run_model(config, data, name, seed)
            rows.append({"model": name, "seed": seed, **m})
            if len(hist):
                hists.append(hist.assign(model=name, seed=seed))
            if net is not None and name in ("AherNet⁻", "AherNet") :
                layers.append(per_map_accuracy(net, data, transfer=name != "AherNet⁻").assign(model=name, seed=seed))
            if net is not None and name == "AherNet" and seed == config.seeds[0]:
                example = detect(net, data["B_test"]["features"][:4], nms=config.nms,
                                 max_proposals=config.max_proposals)
                example = {"detections": example, "gt": data["B_test"]["segments"].query("video_id < 4")}
                nms_study = pd.DataFrame({th: evaluate(detect(net, data["B_test"]["features"], nms=th,
                                                              max_proposals=config.max_proposals), data["B_test"])
                                          for th in (0.5, config.nms)}).T.rename_axis("NMS threshold")
        done = {r["model"]: r for r in rows if r["seed"] == seed}
        metrics = ("mAP", "mAP@0.5", "mAP@0.75", "mAP@0.95", "AUC")
        for kind in config.transfers:  # the configured T is Table 2's AherNet: reused, not retrained
            m = ({k: done["AherNet"][k] for k in metrics} if kind == config.transfer and "AherNet" in done
                 else run_model(config, data, "AherNet", seed, transfer=kind)[0])
            t1.append({"transfer": kind, "seed": seed, **m})
        for frac in config.ratios_annotated:  # fraction 1 is Table 2's AherNet*
            m = ({k: done["AherNet*"][k] for k in metrics} if frac == 1.0 and "AherNet*" in done
                 else run_model(config, data, "AherNet*", seed, fraction=frac)[0])
            f6.append({"fraction": frac, "seed": seed, **m})
    table2 = pd.DataFrame(rows)
    mean = table2.groupby("model", sort=False)[["mAP", "AUC", "mAP@0.5", "mAP@0.75", "mAP@0.95"]].mean()
    per_seed = table2.pivot(index="seed", columns="model", values="mAP")
    out = {"table2": table2, "table2_mean": mean,
           "history": pd.concat(hists, ignore_index=True) if hists else pd.DataFrame(),
           "layers": pd.concat(layers, ignore_index=True) if layers else pd.DataFrame(),
           "table1": pd.DataFrame(t1), "fig6": pd.DataFrame(f6), "example": example,
           "nms_study": nms_study}
    claims = {}
    order = [m for m in ("AherNet⁰", "AherNet⁻", "AherNet", "AherNet*") if m in mean.index]

    def ms(name):
        return report.mean_std(per_seed[name])

    for lo, hi in itertools.pairwise(order):
        claims[f"{lo} < {hi} in average mAP (Tables 2 and 4)"] = (
            "paper claim", bool(mean.loc[lo, "mAP"] < mean.loc[hi, "mAP"]), f"{ms(lo)} vs {ms(hi)}")
    if {"AherNet_M", "AherNet_A", "AherNet"} <= set(mean.index):
        claims["context helps: AherNet_M < AherNet_A (Table 2)"] = (
            "paper claim", bool(mean.loc["AherNet_M", "mAP"] < mean.loc["AherNet_A", "mAP"]),
            f"{ms('AherNet_M')} vs {ms('AherNet_A')}")
        claims["adversarial context beats the L2-pre-trained one: AherNet_A < AherNet (Table 2)"] = (
            "paper claim", bool(mean.loc["AherNet_A", "mAP"] < mean.loc["AherNet", "mAP"]),
            f"{ms('AherNet_A')} vs {ms('AherNet')}")
    if {"AherNet⁻", "AherNet"} <= set(mean.index):
        claims["AherNet's proposals beat AherNet⁻'s in AUC of AR@AN (Table 2)"] = (
            "paper claim", bool(mean.loc["AherNet⁻", "AUC"] < mean.loc["AherNet", "AUC"]),
            f"{mean.loc['AherNet⁻', 'AUC']:.1f} vs {mean.loc['AherNet', 'AUC']:.1f}")
    if len(out["layers"]):
        acc = out["layers"].groupby(["model", "layer"])["accuracy"].mean().unstack(0)
        if {"AherNet⁻", "AherNet"} <= set(acc.columns):
            wins = int((acc["AherNet"] > acc["AherNet⁻"]).sum())
            claims["AherNet classifies anchors better than AherNet⁻ on every layer (Fig. 4)"] = (
                "paper claim", bool(wins == len(acc)), f"{wins} of {len(acc)} layers")
    if len(out["table1"]):
        t = out["table1"].groupby("transfer")["mAP"].agg(["mean", "std"])
        spread = float(t["mean"].max() - t["mean"].min())
        noise = float(np.nanmax(t["std"].to_numpy())) if len(config.seeds) > 1 else float("nan")
        claims["the T variants differ by less than the seed noise (Table 1: 16.1-17.2)"] = (
            "paper claim", None if math.isnan(noise) else bool(spread <= 2 * noise),
            f"spread {spread:.1f}, largest seed std {noise:.1f}")
        claims["2fc + ELU is the best T (Table 1)"] = (
            "paper claim", bool(t["mean"].idxmax() == "2fc + ELU"), f"best: {t['mean'].idxmax()}")
    if len(out["fig6"]) and "AherNet" in mean.index:
        f = out["fig6"].groupby("fraction")["mAP"].mean()
        above = f[f > mean.loc["AherNet", "mAP"]]
        cross = float(above.index.min()) if len(above) else float("nan")
        claims["AherNet* needs more than half of the annotations to beat AherNet (Fig. 6)"] = (
            "paper claim", bool(not math.isnan(cross) and cross > 0.5) if len(above) else True,
            f"first fraction above AherNet: {cross:g}" if len(above) else "none of the fractions")
        claims["AherNet* improves with more annotations (Fig. 6)"] = (
            "paper claim", bool(f.iloc[-1] > f.iloc[0]), ", ".join(f"{k:g}: {v:.1f}" for k, v in f.items()))
    out["findings"] = report.claims_table(claims)
    ours = {k: float(v) for k, v in mean["mAP"].items()}
    ours_auc = {k: float(v) for k, v in mean["AUC"].items()}
    claims_order = [f"{a} < {b}" for a, b in itertools.pairwise(order)]
    out["compare_table2"] = report.compare(PAPER["table2_anet"], ours, claims=claims_order).drop(columns="diff")
    out["compare_table2_auc"] = report.compare(PAPER["table2_anet_auc"], ours_auc,
                                               claims=claims_order).drop(columns="diff")
    t4_ours = {k: v for k, v in ours.items() if k in PAPER["table4"].values}
    out["compare_table4"] = report.compare(PAPER["table4"], t4_ours,
                                           claims=[c for c in claims_order if "*" not in c]).drop(columns="diff")
    return out


# ---------------------------------------------------------------------------------------------
# real data: annotations + per-video features -> the batch format of this module
# ---------------------------------------------------------------------------------------------
def real_videos(annotations: pd.DataFrame, features: dict, length: int, classes: Sequence[str],
                max_instances: int = 8) -> dict:
    """Real untrimmed videos in this module's batch format, for a reader with the data: the
    ``annotations`` of :func:`cvtutor.data.video_readers.load_activitynet` (or THUMOS14's with a
    ``duration`` column), ``features {video_id: (T_v, D)}`` of :func:`~cvtutor.data.video_readers.
    load_features`, each resampled (linearly) to ``length`` snippets as in BSN's pipeline.
    Instances are placed by their normalised times; labels index ``classes``."""
    need = {"video_id", "label", "t_start", "t_end", "duration"}
    if not need <= set(annotations.columns):
        raise ValueError(f"annotations need the columns {sorted(need)}, got {list(annotations.columns)}")
    ids = list(dict.fromkeys(annotations["video_id"]))
    missing = [v for v in ids if v not in features]
    if missing:
        raise KeyError(f"no features for the video(s) {missing[:5]}")
    cls = {c: i for i, c in enumerate(classes)}
    feats, start, end, valid, label, segs = [], [], [], [], [], []
    for n, vid in enumerate(ids):
        f = torch.as_tensor(np.asarray(features[vid], dtype=np.float32))
        if f.ndim != 2:
            raise ValueError(f"features of {vid!r} must be (T, D), got {tuple(f.shape)}")
        feats.append(resample(f.T[None], length)[0].T)
        a = annotations[annotations["video_id"] == vid].head(max_instances)
        d = a["duration"].to_numpy(float)
        s = np.clip(np.floor(a["t_start"].to_numpy(float) / d * length), 0, length - 1).astype(int)
        e = np.clip(np.ceil(a["t_end"].to_numpy(float) / d * length), s + 1, length).astype(int)
        pad = max_instances - len(a)
        start.append(np.r_[s, np.zeros(pad, int)])
        end.append(np.r_[e, np.zeros(pad, int)])
        valid.append(np.r_[np.ones(len(a), bool), np.zeros(pad, bool)])
        labs = [cls[x] for x in a["label"]]
        label.append(labs[0])
        segs += [{"video_id": n, "label": cls[x], "start": si, "end": ei}
                 for x, si, ei in zip(a["label"], s, e)]
    return {"features": torch.stack(feats), "start": torch.as_tensor(np.stack(start)),
            "end": torch.as_tensor(np.stack(end)), "valid": torch.as_tensor(np.stack(valid)),
            "label": torch.as_tensor(label), "segments": pd.DataFrame(segs), "video_ids": ids}
