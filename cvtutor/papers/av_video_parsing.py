"""AVVP: weakly-supervised audio-visual video parsing with a hybrid attention network.

Tian, Li, Xu. *Unified Multisensory Perception: Weakly-Supervised Audio-Visual Video Parsing*.
ECCV 2020 (LNCS 12348, pp. 436-454); official code github.com/YapengTian/AVVP-ECCV20.

A video is T one-second snippets with an audio feature ``f_a^t`` and a visual feature ``f_v^t``;
training sees only the video-level label ``y_bar`` (the union over time and modality), testing
asks, per snippet, class and modality, whether the event is heard, seen, or both. Each audio and
each visual snippet is an instance of a multimodal multiple-instance learning (MMIL) bag.

Equations
---------
(1)-(2) f_hat_a^t = f_a^t + g_sa(f_a^t, f_a) + g_ca(f_a^t, f_v)   (and a <-> v)
(3)-(4) g(q, k) = softmax(q k' / sqrt(d)) k                        (self- and cross-attention)
(5)-(6) p_a^t = sigmoid(FC(f_hat_a^t)), p_v^t = sigmoid(FC(f_hat_v^t)), p_av^t = p_a^t * p_v^t
(7)     p_bar = sum_t sum_m (W_tp * W_av * P)[t, m, :]
(8)-(9) W_tp = softmax over t of F_tp, W_av = softmax over m of F_av
        L_wsl = BCE(p_bar, y_bar)
(10)    L_g = BCE(p_bar_a, y_bar_a) + BCE(p_bar_v, y_bar_v), p_bar_a = sum_t (W_tp * P)[t, 0, :]
        label smoothing y_bar_m = (1 - eps_m) y_bar + eps_m / K; L = L_wsl + L_g

The data are :class:`cvtutor.data.events.AudioVisualEvents` (the ``world_video`` chapter), the
metrics :func:`cvtutor.metrics.temporal.avvp_scores` (AVVP's ``eval_metrics.py``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from cvtutor import report
from cvtutor.data.events import AudioVisualEvents
from cvtutor.metrics import temporal as tm
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import fit, minibatches

LOSSES = ("wsl", "g", "wsl+g", "g_audio", "g_visual")
POOLINGS = ("attentive", "max", "mean")
TEMPORALS = ("none", "gru", "transformer", "han", "ave")
NOISES = ("none", "bootstrap", "smoothing")
EPS = 1e-7  # the official code clamps probabilities to [1e-7, 1 - 1e-7] before the BCE


# ---------------------------------------------------------------------------------------------
# the hybrid attention network (Sec. 5.2)
# ---------------------------------------------------------------------------------------------
def attention(query: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. (3)-(4) as written: ``softmax(q k' / sqrt(d)) k`` for ``query (B, T, d)`` and
    ``keys (B, S, d)`` (the keys are also the values). Returns ``(out (B, T, d), w (B, T, S))``;
    each row of ``w`` sums to 1 over the S key snippets."""
    if query.ndim != 3 or keys.ndim != 3 or query.shape[-1] != keys.shape[-1]:
        raise ValueError(f"query (B, T, d) and keys (B, S, d) must share d; got "
                         f"{tuple(query.shape)}, {tuple(keys.shape)}")
    w = torch.softmax(query @ keys.transpose(1, 2) / math.sqrt(query.shape[-1]), dim=-1)
    return w @ keys, w


class SingleHeadAttention(nn.Module):
    """Eq. (3) with learned projections, as a 1-head ``nn.MultiheadAttention``: ``out(softmax(
    q k' / sqrt(d)) v)`` with ``q = W_q x_q``, ``[k, v] = W_kv x_kv``; shapes ``(B, T, d)``."""

    def __init__(self, d_model: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x_q: torch.Tensor, x_kv: torch.Tensor) -> torch.Tensor:
        k, v = self.kv(x_kv).chunk(2, dim=-1)
        h = F.scaled_dot_product_attention(self.q(x_q), k, v,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(h)


class HANLayer(nn.Module):
    """One hybrid attention layer, Eqs. (1)-(4) in the official code's form (``HANLayer``).

    ``x_q`` attends to itself (``g_sa``) and to ``x_kv`` (``g_ca``, omitted with ``cross=False``:
    the Transformer baseline), each a 1-head attention (:class:`SingleHeadAttention`); the
    residual sum ``x + g_sa + g_ca`` (Eq. 1) is layer-normed, then a feed-forward block
    ``d -> d -> d`` with residual and LayerNorm. Shapes ``(B, T, d)``. No positional encoding:
    the layer is permutation-equivariant in time.
    """

    def __init__(self, d_model: int, dropout: float = 0.1, cross: bool = True) -> None:
        super().__init__()
        self.self_attn = SingleHeadAttention(d_model, dropout)
        self.cm_attn = SingleHeadAttention(d_model, dropout) if cross else None
        self.ffn = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(d_model, d_model))
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x_q: torch.Tensor, x_kv: torch.Tensor) -> torch.Tensor:
        if x_q.shape != x_kv.shape:
            raise ValueError(f"x_q and x_kv must both be (B, T, d), got {tuple(x_q.shape)}, "
                             f"{tuple(x_kv.shape)}")
        g = self.self_attn(x_q, x_q)
        if self.cm_attn is not None:
            g = g + self.cm_attn(x_q, x_kv)
        h = self.norm1(x_q + self.drop(g))
        return self.norm2(h + self.drop(self.ffn(h)))


class HAN(nn.Module):
    """Eqs. (1)-(2): the *same* layer updates audio from (audio, visual) and visual from (visual,
    audio), as the official ``Encoder``; both directions run as one batch. ``layers`` layers."""

    def __init__(self, d_model: int, layers: int = 1, dropout: float = 0.1, cross: bool = True):
        super().__init__()
        self.layers = nn.ModuleList(HANLayer(d_model, dropout, cross) for _ in range(layers))

    def forward(self, a: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in self.layers:
            a, v = layer(torch.cat([a, v]), torch.cat([v, a])).chunk(2)
        return a, v


class GRUNet(nn.Module):
    """The GRU baseline of Table 2: one bidirectional GRU (hidden d/2 each way) shared by the
    two modalities, with a residual connection; no cross-modal interaction."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        if d_model % 2:
            raise ValueError(f"GRUNet needs an even d_model, got {d_model}")
        self.gru = nn.GRU(d_model, d_model // 2, batch_first=True, bidirectional=True)

    def forward(self, a: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return a + self.gru(a)[0], v + self.gru(v)[0]


class AVEFusion(nn.Module):
    """An AVE-style baseline (Tian et al. 2018 with audio and visual branches, Table 1): a GRU per
    modality plus a snippet-synchronous fusion of the two features added to both branches.
    Fusion at the same t only: no attention across time, nothing for asynchronous events."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.gru = GRUNet(d_model)
        self.fuse = nn.Sequential(nn.Linear(2 * d_model, d_model), nn.ReLU())

    def forward(self, a: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.fuse(torch.cat([a, v], -1))
        a, v = self.gru(a, v)
        return a + z, v + z


class NoTemporal(nn.Module):
    """Table 2's rows without a temporal net: the projected features as they are."""

    def forward(self, a: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return a, v


def temporal_net(kind: str, d_model: int, dropout: float = 0.1) -> nn.Module:
    """The temporal model of a Table 2 row: ``none``, ``gru``, ``transformer`` (HAN without its
    cross-attention), ``han`` or ``ave`` (the AVE-style fusion of Table 1)."""
    if kind == "none":
        return NoTemporal()
    if kind == "gru":
        return GRUNet(d_model)
    if kind == "transformer":
        return HAN(d_model, dropout=dropout, cross=False)
    if kind == "han":
        return HAN(d_model, dropout=dropout)
    if kind == "ave":
        return AVEFusion(d_model)
    raise ValueError(f"unknown temporal net {kind!r}; expected one of {TEMPORALS}")


# ---------------------------------------------------------------------------------------------
# MMIL pooling (Sec. 5.3)
# ---------------------------------------------------------------------------------------------
def _check_P(P: torch.Tensor, name: str = "P") -> None:
    if P.ndim != 4 or P.shape[2] != 2:
        raise ValueError(f"{name} must be (B, T, M=2, C), got {tuple(P.shape)}")


def attentive_mmil_pooling(P: torch.Tensor, F_tp: torch.Tensor, F_av: torch.Tensor
                           ) -> dict[str, torch.Tensor]:
    """Eqs. (7)-(9) and the per-modality bags of Eq. (10).

    ``P (B, T, M, C)`` snippet probabilities (m = 0 audio, 1 visual); ``F_tp``, ``F_av`` the two
    FC maps of the features, same shape. ``W_tp`` = softmax over t (per m, c), ``W_av`` = softmax
    over m (per t, c); ``p_bar = sum_{t,m} W_tp W_av P``, ``p_a = sum_t (W_tp P)[:, :, 0]``,
    ``p_v`` likewise. ``p_a``, ``p_v`` are convex combinations of instances, in [0, 1]; ``p_bar``
    is not: its weights sum over (t, m) to anything in (0, M), so it lies in [0, 2] (the official
    code clamps it into [1e-7, 1 - 1e-7] before the BCE, as :func:`bce` does).
    """
    _check_P(P)
    if F_tp.shape != P.shape or F_av.shape != P.shape:
        raise ValueError(f"F_tp {tuple(F_tp.shape)} and F_av {tuple(F_av.shape)} must have P's "
                         f"shape {tuple(P.shape)}")
    W_tp = torch.softmax(F_tp, dim=1)
    W_av = torch.softmax(F_av, dim=2)
    temporal = W_tp * P
    return {"p_bar": (temporal * W_av).sum((1, 2)), "p_a": temporal[:, :, 0].sum(1),
            "p_v": temporal[:, :, 1].sum(1), "W_tp": W_tp, "W_av": W_av}


def max_mmil_pooling(P: torch.Tensor) -> dict[str, torch.Tensor]:
    """Table 2's Max pooling: the most confident instance of the bag (over t and m; over t for
    the per-modality bags)."""
    _check_P(P)
    m = P.amax(1)  # B M C
    return {"p_bar": m.amax(1), "p_a": m[:, 0], "p_v": m[:, 1]}


def mean_mmil_pooling(P: torch.Tensor) -> dict[str, torch.Tensor]:
    """Table 2's Mean pooling: every instance weighs the same."""
    _check_P(P)
    m = P.mean(1)
    return {"p_bar": m.mean(1), "p_a": m[:, 0], "p_v": m[:, 1]}


class MMILNet(nn.Module):
    """The parser of Fig. 3: per-modality projections to ``d_model``, a temporal net, the shared
    FC + sigmoid of Eqs. (5)-(6), and MMIL pooling (Eqs. 7-9, or max / mean).

    ``forward(audio (B, T, Da), visual (B, T, Dv))`` returns ``P (B, T, 2, C)`` and the pooled
    ``p_bar``, ``p_a``, ``p_v`` ``(B, C)`` (attentive pooling also ``W_tp``, ``W_av``).
    """

    def __init__(self, audio_dim: int, visual_dim: int, n_classes: int, d_model: int = 64,
                 temporal: str = "han", pooling: str = "attentive", dropout: float = 0.1) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")
        self.pooling = pooling
        self.fc_a = nn.Linear(audio_dim, d_model)
        self.fc_v = nn.Linear(visual_dim, d_model)
        self.temporal = temporal_net(temporal, d_model, dropout)
        self.fc_prob = nn.Linear(d_model, n_classes)  # shared by both modalities, Eqs. (5)-(6)
        self.fc_frame_att = nn.Linear(d_model, n_classes)
        self.fc_av_att = nn.Linear(d_model, n_classes)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> dict[str, torch.Tensor]:
        if audio.ndim != 3 or visual.ndim != 3 or audio.shape[:2] != visual.shape[:2]:
            raise ValueError(f"audio (B, T, Da) and visual (B, T, Dv) must share B and T; got "
                             f"{tuple(audio.shape)}, {tuple(visual.shape)}")
        a, v = self.temporal(self.fc_a(audio), self.fc_v(visual))
        x = torch.stack([a, v], dim=2)  # F: B T M d
        P = torch.sigmoid(self.fc_prob(x).float())
        if self.pooling == "attentive":
            out = attentive_mmil_pooling(P, self.fc_frame_att(x).float(),
                                         self.fc_av_att(x).float())
        else:
            out = (max_mmil_pooling if self.pooling == "max" else mean_mmil_pooling)(P)
        return {"P": P, **out}


# ---------------------------------------------------------------------------------------------
# losses (Secs. 5.3-5.4)
# ---------------------------------------------------------------------------------------------
def bce(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy ``-mean[y log p + (1 - y) log(1 - p)]`` of probabilities, clamped to
    ``[1e-7, 1 - 1e-7]`` (the code's ``nn.BCELoss``; the paper writes only the positive term)."""
    if p.shape != y.shape:
        raise ValueError(f"p {tuple(p.shape)} and y {tuple(y.shape)} must have the same shape")
    p = p.float().clamp(EPS, 1 - EPS)
    y = y.float()
    return -(y * torch.log(p) + (1 - y) * torch.log1p(-p)).mean()


def weak_label_loss(p_bar: torch.Tensor, y_bar: torch.Tensor) -> torch.Tensor:
    """``L_wsl = BCE(p_bar, y_bar)`` (Sec. 5.3)."""
    return bce(p_bar, y_bar)


def guided_loss(p_a: torch.Tensor, p_v: torch.Tensor, y_a: torch.Tensor, y_v: torch.Tensor
                ) -> torch.Tensor:
    """Individual guided learning, Eq. (10): ``BCE(p_bar_a, y_bar_a) + BCE(p_bar_v, y_bar_v)``."""
    return bce(p_a, y_a) + bce(p_v, y_v)


def smooth_labels(y_bar: torch.Tensor, eps: float, K: int = 2) -> torch.Tensor:
    """Label smoothing of Sec. 5.4, ``(1 - eps) y_bar + eps / K``. The official code smooths the
    visual target only, with ``eps = 0.1, K = 2`` (``0.9 y + 0.05``): 1 -> 0.95, 0 -> 0.05."""
    if not 0 <= eps < 1:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    if K < 2:
        raise ValueError(f"K must be > 1 (the paper's u = 1/K, K > 1), got {K}")
    return (1 - eps) * y_bar.float() + eps / K


def bootstrap_labels(y_bar: torch.Tensor, p: torch.Tensor, beta: float = 0.95) -> torch.Tensor:
    """Soft bootstrapping (Reed et al. 2015, Table 2's "Bootstrap"): ``beta y + (1 - beta) p``
    with the model's own prediction ``p`` (no gradient through the target)."""
    if not 0 <= beta <= 1:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    return beta * y_bar.float() + (1 - beta) * p.detach().float()


@dataclass(frozen=True)
class Setting:
    """One row of Table 2: loss (``wsl``, ``g``, ``wsl+g``; ``g_audio`` / ``g_visual``: one
    modality's MIL alone, the single-modality baselines of Table 1), pooling, temporal net and
    noisy-label handling."""

    loss: str = "wsl+g"
    pooling: str = "attentive"
    temporal: str = "han"
    noise: str = "none"

    def __post_init__(self) -> None:
        for value, allowed, what in ((self.loss, LOSSES, "loss"),
                                     (self.pooling, POOLINGS, "pooling"),
                                     (self.temporal, TEMPORALS, "temporal net"),
                                     (self.noise, NOISES, "noise handling")):
            if value not in allowed:
                raise ValueError(f"unknown {what} {value!r}; expected one of {allowed}")

    @property
    def name(self) -> str:
        loss = {"wsl": "L_wsl", "g": "L_g", "wsl+g": "L_wsl+L_g", "g_audio": "audio MIL",
                "g_visual": "visual MIL"}[self.loss]
        noise = {"none": "", "bootstrap": ", bootstrap", "smoothing": ", LS"}[self.noise]
        return f"{loss}, {self.pooling}, {self.temporal}{noise}"


def parsing_loss(out: dict[str, torch.Tensor], y_bar: torch.Tensor, setting: Setting,
                 eps_v: float = 0.1, beta: float = 0.95) -> dict[str, torch.Tensor]:
    """The training loss of a setting, as named terms: ``wsl`` and/or ``g`` (targets smoothed or
    bootstrapped on the visual guide as the setting says; ``eps_v`` the visual smoothing)."""
    terms = {}
    if setting.loss in ("wsl", "wsl+g"):
        terms["wsl"] = weak_label_loss(out["p_bar"], y_bar)
    y_a = y_v = y_bar.float()
    if setting.noise == "smoothing":
        y_v = smooth_labels(y_bar, eps_v)
    elif setting.noise == "bootstrap":
        y_a = bootstrap_labels(y_bar, out["p_a"], beta)
        y_v = bootstrap_labels(y_bar, out["p_v"], beta)
    if setting.loss in ("g", "wsl+g"):
        terms["g"] = guided_loss(out["p_a"], out["p_v"], y_a, y_v)
    elif setting.loss == "g_audio":
        terms["g"] = bce(out["p_a"], y_a)
    elif setting.loss == "g_visual":
        terms["g"] = bce(out["p_v"], y_v)
    return terms


# ---------------------------------------------------------------------------------------------
# inference (official code): threshold the snippets, keep the classes the video-level p_bar keeps
# ---------------------------------------------------------------------------------------------
def parse(out: dict[str, torch.Tensor], threshold: float = 0.5, setting: Setting | None = None
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense predictions ``(B, C, T)`` bool for audio and visual: ``P >= threshold`` on snippets
    whose class has ``p_bar >= threshold`` (the official filter by predicted weak labels). A
    single-modality baseline filters by its own bag (``p_a`` or ``p_v``) and predicts nothing
    for the other modality."""
    P = out["P"]
    keep_a = keep_v = out["p_bar"] >= threshold
    if setting is not None and setting.loss == "g_audio":
        keep_a, keep_v = out["p_a"] >= threshold, torch.zeros_like(keep_a)
    elif setting is not None and setting.loss == "g_visual":
        keep_a, keep_v = torch.zeros_like(keep_a), out["p_v"] >= threshold
    pred_a = (P[:, :, 0] >= threshold).transpose(1, 2) & keep_a[..., None]
    pred_v = (P[:, :, 1] >= threshold).transpose(1, 2) & keep_v[..., None]
    return pred_a, pred_v


# ---------------------------------------------------------------------------------------------
# the paper's numbers (segment-level F, %)
# ---------------------------------------------------------------------------------------------
COLUMNS = ("audio", "visual", "audio-visual", "Type@AV", "Event@AV")


def _rows(rows: dict[Setting, tuple[float, ...]]) -> dict[str, float]:
    return {f"{s.name} | {c}": v for s, vals in rows.items() for c, v in zip(COLUMNS, vals)}


TABLE2_ROWS = {
    Setting("wsl", "attentive", "none"): (56.9, 16.4, 17.2, 30.2, 43.3),
    Setting("g", "attentive", "none"): (42.3, 43.9, 34.5, 40.3, 42.0),
    Setting("wsl+g", "attentive", "none"): (45.1, 51.7, 35.0, 44.0, 48.9),
    Setting("wsl+g", "max", "none"): (31.6, 43.6, 22.5, 32.6, 39.1),
    Setting("wsl+g", "mean", "none"): (40.2, 43.2, 35.0, 39.5, 39.7),
    Setting("wsl+g", "attentive", "gru"): (52.0, 49.4, 39.0, 46.8, 51.0),
    Setting("wsl+g", "attentive", "transformer"): (53.4, 53.8, 41.8, 49.7, 53.3),
    Setting("wsl+g", "attentive", "han"): (58.4, 52.8, 48.4, 53.2, 54.5),
    Setting("wsl", "attentive", "han"): (39.6, 40.5, 20.1, 33.4, 44.9),
    Setting("g", "attentive", "han"): (57.5, 52.5, 47.4, 52.5, 53.8),
    Setting("wsl+g", "max", "han"): (55.7, 52.0, 48.6, 52.1, 51.8),
    Setting("wsl+g", "mean", "han"): (56.0, 51.9, 46.3, 51.4, 52.9),
    Setting("wsl+g", "attentive", "han", "bootstrap"): (59.0, 52.6, 47.8, 53.1, 55.2),
    Setting("wsl+g", "attentive", "han", "smoothing"): (60.1, 52.9, 48.9, 54.0, 55.4),
}
#: Table 1 (segment / event level): ours, the AVE baseline with branches, and the best
#: single-modality baselines (TALNet for audio, CMCS for visual).
OURS = Setting("wsl+g", "attentive", "han", "smoothing")
AVE = Setting("wsl+g", "attentive", "ave")
AUDIO_MIL = Setting("g_audio", "attentive", "none")
VISUAL_MIL = Setting("g_visual", "attentive", "none")

PAPER = {
    "table2": report.PaperTable(
        "Table 2", "segment-level F-score (%) on the LLP test set", _rows(TABLE2_ROWS),
        better="higher",
        note="header garbled in the text: columns read from the last row, which matches Table 1; "
             "that row's loss is printed 'L_msl + L_a' (read L_wsl + L_g)."),
    "table1_segment": report.PaperTable(
        "Table 1 (segment level)", "F-score (%) on the LLP test set",
        {**{f"ours | {c}": v for c, v in zip(COLUMNS, (60.1, 52.9, 48.9, 54.0, 55.4))},
         **{f"AVE | {c}": v for c, v in zip(COLUMNS, (47.2, 37.1, 35.4, 39.9, 41.6))},
         "TALNet (audio) | audio": 50.0, "CMCS (visual) | visual": 48.1}, better="higher"),
    "table1_event": report.PaperTable(
        "Table 1 (event level)", "F-score (%) on the LLP test set",
        {**{f"ours | {c}": v for c, v in zip(COLUMNS, (51.3, 48.9, 43.0, 47.7, 48.0))},
         **{f"AVE | {c}": v for c, v in zip(COLUMNS, (40.4, 34.7, 31.6, 35.5, 36.5))},
         "TALNet (audio) | audio": 41.7, "CMCS (visual) | visual": 45.1}, better="higher"),
}


# ---------------------------------------------------------------------------------------------
# configuration and experiments
# ---------------------------------------------------------------------------------------------
FAST_SETTINGS = (
    Setting("wsl", "attentive", "none"),
    Setting("g", "attentive", "none"),
    Setting("wsl+g", "attentive", "none"),
    Setting("wsl+g", "max", "none"),
    Setting("wsl+g", "attentive", "han"),
    Setting("wsl+g", "attentive", "han", "smoothing"),
)


@dataclass(frozen=True)
class Config(ProfileConfig):
    n_classes: int = 10
    snippets: int = 10
    feature_dim: int = 32                  # audio and visual feature size
    scene: float = 0.3                     # per-video scene vector (std)
    noise: float = 0.15                    # audio white noise
    visual_noise: float = 0.4              # the visual stream is the weaker one (AudioSet-like)
    pattern_probs: tuple[float, float, float, float] = (0.35, 0.3, 0.15, 0.2)
    n_train: int = 1500
    n_test: int = 300
    d_model: int = 64
    dropout: float = 0.1                   # the official HAN's
    epochs: int = 12
    batch_size: int = 64                   # paper: 16
    lr: float = 3e-3                       # paper: 3e-4, x0.1 every 10 of 40 epochs
    lr_step_epochs: int = 8
    eps_v: float = 0.1                     # code: visual target 0.9 y + 0.05
    beta: float = 0.95                     # bootstrap weight (not given by the paper)
    settings: tuple[Setting, ...] = FAST_SETTINGS
    table1: bool = False                   # also the AVE-style and single-modality baselines
    seeds: tuple[int, ...] = (0,)
    device: str | None = None

    @classmethod
    def fast(cls) -> "Config":
        return cls()

    @classmethod
    def full(cls) -> "Config":
        """Table 2's fourteen rows and Table 1's baselines, d = 256, three seeds."""
        return cls(n_train=4000, n_test=600, d_model=256, epochs=20, lr=1e-3, lr_step_epochs=10,
                   settings=tuple(TABLE2_ROWS), table1=True, seeds=(0, 1, 2))

    @classmethod
    def smoke(cls) -> "Config":
        """``full``'s code paths (every setting, two seeds) at toy size."""
        return cls.full().replace(n_train=64, n_test=32, d_model=16, epochs=1, batch_size=32,
                                  lr_step_epochs=1, seeds=(0, 1))

    def world(self, device=None) -> AudioVisualEvents:
        return AudioVisualEvents(
            n_classes=self.n_classes, snippets=self.snippets, audio_dim=self.feature_dim,
            visual_dim=self.feature_dim, scene=self.scene, noise=self.noise,
            visual_noise=self.visual_noise,
            pattern_probs=self.pattern_probs, device=device)


def make_data(config: Config, seed: int = 0, device=None) -> tuple[dict, dict]:
    """Weakly labelled training videos and densely labelled test videos (one world)."""
    w = config.world(device)
    train = w.sample(config.n_train, seed=1000 * seed + 1)
    return train, w.sample(config.n_test, seed=1000 * seed + 2)


def train_parser(setting: Setting, data: dict, config: Config, seed: int = 0,
                 progress: bool = False) -> tuple[MMILNet, pd.DataFrame]:
    """Train one Table 2 setting on the weak labels only (Adam, step decay) with :func:`fit`."""
    seed_everything(seed)
    device = data["audio"].device
    model = MMILNet(config.feature_dim, config.feature_dim, config.n_classes, config.d_model,
                    setting.temporal, setting.pooling, config.dropout).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    batches = minibatches(data["audio"], data["visual"], data["weak"].float(),
                          batch_size=min(config.batch_size, config.n_train), seed=seed,
                          device=device)
    steps = config.epochs * batches.steps_per_epoch
    sched = torch.optim.lr_scheduler.StepLR(opt, config.lr_step_epochs * batches.steps_per_epoch,
                                            0.1)

    def loss_fn(models, batch, step):
        a, v, y = batch
        return parsing_loss(models["model"](a, v), y, setting, config.eps_v, config.beta)

    history = fit(model, opt, batches, loss_fn, steps=steps, schedulers=sched, progress=progress,
                  desc=setting.name)
    model.eval()
    return model, history


@torch.no_grad()
def evaluate(model: MMILNet, data: dict, setting: Setting | None = None
             ) -> dict[tuple[str, str], float]:
    """AVVP's ten F-scores (%) of a trained parser on densely labelled videos."""
    model.eval()
    pa, pv = parse(model(data["audio"], data["visual"]), setting=setting)
    scores = tm.avvp_scores(pa.cpu().numpy(), pv.cpu().numpy(), data["audio_labels"].cpu().numpy(),
                            data["visual_labels"].cpu().numpy())
    return {k: 100 * v for k, v in scores.items()}


def run_settings(config: Config, settings, seed: int, train_data: dict, test_data: dict
                 ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict[str, MMILNet]]:
    """Train and score each setting once: a long table (setting, seed, level, type, F)."""
    rows, histories, models = [], {}, {}
    for s in settings:
        model, hist = train_parser(s, train_data, config, seed)
        for (level, kind), f in evaluate(model, test_data, s).items():
            rows.append({"setting": s.name, "seed": seed, "level": level, "type": kind, "F": f})
        histories[s.name], models[s.name] = hist, model
    return pd.DataFrame(rows), histories, models


def _mean(scores: pd.DataFrame, setting: Setting, kind: str, level: str = "segment") -> float:
    sel = scores[(scores.setting == setting.name) & (scores.type == kind) & (scores.level == level)]
    return float(sel.F.mean()) if len(sel) else float("nan")


def _delta(scores: pd.DataFrame, a: Setting, b: Setting, kind: str, level: str = "segment"
           ) -> tuple[bool | None, str]:
    """Is ``a`` above ``b`` on ``kind`` (mean over seeds)? With the per-seed differences."""
    def per_seed(s):
        sel = scores[(scores.setting == s.name) & (scores.type == kind) & (scores.level == level)]
        return sel.set_index("seed").F

    d = (per_seed(a) - per_seed(b)).dropna()
    if d.empty:
        return None, "not run"
    sd = f" ± {d.std(ddof=1):.1f}" if len(d) > 1 else ""
    return bool(d.mean() > 0), f"{d.mean():+.1f}{sd} points over {len(d)} seed(s)"


@torch.no_grad()
def parsing_examples(model: MMILNet, data: dict, setting: Setting, n: int = 6) -> dict:
    """The first ``n`` test videos through a trained parser, as arrays: ``P (n, T, 2, C)``,
    ``W_tp``, ``W_av``, the parsed ``pred_audio`` / ``pred_visual`` and true labels ``(n, C, T)``,
    the weak labels and the modality patterns ``(n, C)``, and the setting's name."""
    out = model.eval()(data["audio"][:n], data["visual"][:n])
    pa, pv = parse(out, setting=setting)
    ex = {k: out[k].cpu().numpy() for k in ("P", "W_tp", "W_av") if k in out}
    ex.update(pred_audio=pa.cpu().numpy(), pred_visual=pv.cpu().numpy(),
              **{k: data[k][:n].cpu().numpy() for k in ("audio_labels", "visual_labels", "weak",
                                                        "pattern")})
    return {"setting": setting.name, **ex}


@torch.no_grad()
def pooling_check(model: MMILNet, data: dict) -> dict[str, float]:
    """Eqs. (7)-(9)'s promises on a trained model: ``error``, the largest deviation from ``W_tp``
    summing to 1 over t, ``W_av`` over m, ``p_a``, ``p_v`` in [0, 1] and ``p_bar`` in [0, M = 2];
    ``p_bar_max`` and ``share_above_1``, how far Eq. (7) leaves [0, 1] (it is not a convex
    combination: the weights ``W_tp W_av`` sum to between 0 and M over (t, m))."""
    out = model.eval()(data["audio"], data["visual"])
    dev = [(out["W_tp"].sum(1) - 1).abs().max(), (out["W_av"].sum(2) - 1).abs().max()]
    dev += [torch.relu(-out[k]).max() + torch.relu(out[k] - 1).max() for k in ("p_a", "p_v")]
    dev += [torch.relu(-out["p_bar"]).max() + torch.relu(out["p_bar"] - 2).max()]
    return {"error": float(torch.stack(dev).max()), "p_bar_max": float(out["p_bar"].max()),
            "share_above_1": float((out["p_bar"] > 1).float().mean())}


def findings_table(scores: pd.DataFrame, pooling: dict[str, float] | None = None) -> pd.DataFrame:
    """The paper's findings judged on this run (mean over seeds; each run setting only), and the
    sanity check of the pooling on a trained model (``pooling``, :func:`pooling_check`)."""
    ran = set(scores.setting)
    S = Setting
    wsl_none, both_none = S("wsl", "attentive", "none"), S("wsl+g", "attentive", "none")
    claims: dict[str, tuple] = {}
    if pooling is not None:
        claims["attentive pooling on a trained parser: W_tp sums to 1 over t, W_av over m; "
               "p_a, p_v in [0, 1], p_bar in [0, 2]"] = (
            "sanity check", bool(pooling["error"] < 1e-5),
            f"largest deviation {pooling['error']:.1e}; max p_bar {pooling['p_bar_max']:.2f}, "
            f"{pooling['share_above_1']:.1%} of (video, class) above 1")

    def add(text, a, b, kind, level="segment"):
        if a.name in ran and b.name in ran:
            claims[text] = ("paper claim", *_delta(scores, a, b, kind, level))

    if wsl_none.name in ran:
        gap = _mean(scores, wsl_none, "audio") - _mean(scores, wsl_none, "visual")
        claims["modality bias: with L_wsl alone (no temporal net) visual F is far below audio F "
               "(by more than 10 points; built in: the visual stream is the noisier one)"] = (
            "construction", bool(gap > 10), f"audio - visual = {gap:+.1f} points")
    add("individual guided learning raises visual F over L_wsl alone (no temporal net)",
        both_none, wsl_none, "visual")
    if wsl_none.name in ran and both_none.name in ran:
        gaps = [_mean(scores, s, "audio") - _mean(scores, s, "visual")
                for s in (wsl_none, both_none)]
        claims["individual guided learning closes at least half of the audio - visual gap "
               "(paper: 40.5 -> -6.6 points)"] = (
            "paper claim", bool(gaps[1] <= gaps[0] / 2),
            f"gap {gaps[0]:+.1f} -> {gaps[1]:+.1f} points")
    add("L_wsl+L_g beats L_g alone (Type@AV, no temporal net)", both_none,
        S("g", "attentive", "none"), "Type@AV")
    add("attentive MMIL pooling beats max pooling (Type@AV, no temporal net)", both_none,
        S("wsl+g", "max", "none"), "Type@AV")
    add("attentive MMIL pooling beats mean pooling (Type@AV, no temporal net)", both_none,
        S("wsl+g", "mean", "none"), "Type@AV")
    han = S("wsl+g", "attentive", "han")
    add("HAN beats no temporal net (Type@AV)", han, both_none, "Type@AV")
    add("HAN beats a GRU (Type@AV)", han, S("wsl+g", "attentive", "gru"), "Type@AV")
    add("HAN beats a Transformer (self-attention only; Type@AV)", han,
        S("wsl+g", "attentive", "transformer"), "Type@AV")
    add("HAN reduces the modality bias: with L_wsl alone, HAN's visual F beats no temporal net's",
        S("wsl", "attentive", "han"), wsl_none, "visual")
    add("attentive beats max pooling with HAN (Type@AV)", han, S("wsl+g", "max", "han"), "Type@AV")
    add("label smoothing beats no noise handling (Type@AV)", OURS, han, "Type@AV")
    add("label smoothing beats bootstrap (Type@AV)", OURS,
        S("wsl+g", "attentive", "han", "bootstrap"), "Type@AV")
    add("Table 1: ours beats the AVE-style fusion (Type@AV, segment level)", OURS, AVE, "Type@AV")
    add("Table 1: ours beats the AVE-style fusion (Type@AV, event level)", OURS, AVE, "Type@AV",
        "event")
    add("Table 1: ours beats audio-only MIL on audio events (segment level)", OURS, AUDIO_MIL,
        "audio")
    add("Table 1: ours beats visual-only MIL on visual events (segment level)", OURS, VISUAL_MIL,
        "visual")
    return report.claims_table(claims)


def compare_table(scores: pd.DataFrame, paper: report.PaperTable,
                  names: dict[str, str] | None = None, level: str = "segment") -> pd.DataFrame:
    """Paper vs ours (mean over seeds) on the rows this run has, keyed ``"<setting> | <type>"``."""
    mean = scores[scores.level == level].groupby(["setting", "type"]).F.mean()
    names = names or {}
    ours = {}
    for key in paper.values:
        setting, kind = key.split(" | ")
        setting = names.get(setting, setting)
        if (setting, kind) in mean.index:
            ours[key] = float(mean[(setting, kind)])
    kept = {k: v for k, v in paper.values.items() if k in ours}
    shown = report.PaperTable(paper.ref, paper.metric, kept, paper.better, paper.note)
    return report.compare(shown, ours).drop(columns="diff")


TABLE1_NAMES = {"ours": OURS.name, "AVE": AVE.name, "TALNet (audio)": AUDIO_MIL.name,
                "CMCS (visual)": VISUAL_MIL.name}


def run(config: Config) -> dict:
    """Table 2's settings (and Table 1's baselines) for each seed: scores, the paper-vs-ours
    tables, loss curves and the findings."""
    device = get_device(config.device)
    settings = list(dict.fromkeys(config.settings))
    if config.table1:
        settings += [s for s in (OURS, AVE, AUDIO_MIL, VISUAL_MIL) if s not in settings]
    parts, curves, pooling, examples = [], [], None, {}
    for seed in config.seeds:
        tr, te = make_data(config, seed, device)
        df, hist, models = run_settings(config, settings, seed, tr, te)
        parts.append(df)
        attentive = [s for s in settings if s.pooling == "attentive"]
        if attentive and pooling is None:
            pooling = pooling_check(models[attentive[-1].name], te)
            examples = parsing_examples(models[attentive[-1].name], te, attentive[-1])
        for name, h in hist.items():
            curves.append(h.assign(setting=name, seed=seed))
    scores = pd.concat(parts, ignore_index=True)
    wide = (scores[scores.level == "segment"].groupby(["setting", "type"]).F.mean().unstack("type")
            .reindex(columns=list(COLUMNS)))
    out = {
        "scores": scores,
        "table2_ours": wide,
        "compare_table2": compare_table(scores, PAPER["table2"]),
        "curves": pd.concat(curves, ignore_index=True),
        "findings": findings_table(scores, pooling),
        "pooling": pooling or {},
        "examples": examples,
    }
    if config.table1:
        out["compare_table1_segment"] = compare_table(scores, PAPER["table1_segment"], TABLE1_NAMES)
        out["compare_table1_event"] = compare_table(scores, PAPER["table1_event"], TABLE1_NAMES,
                                                    "event")
    return out
