"""Video object segmentation with episodic graph memory networks (GraphMemVOS).

Lu, Wang, Danelljan, Zhou, Shen, Van Gool. *Video Object Segmentation with Episodic Graph Memory
Networks*. ECCV 2020.

N support frames (the first annotated frame and previously segmented ones), each encoded with its
mask and a one-hot label map, are the nodes of a fixed-size, fully connected graph memory. A read
controller, initialised from the query's features, reads the memory by soft node addressing; a
write controller updates every node by messages from the other nodes (pixel-to-pixel attention)
and the read state. After K such episodes the decoder reads the mask from the final read state
and the query features. The memory never grows: new frames replace nodes.

Equations
---------
(1) h^0 = f_P(q)                                              (1x1 conv)
(2) s_i^k = <h^{k-1}, m_i^{k-1}> / (|h^{k-1}| |m_i^{k-1}|)    (cosine of whole tensors)
(3) w_i^k = softmax_i(s_i^k)
(4) m^k = sum_i w_i^k m_i^{k-1}
(5) h~ = W_r^h*h + U_r^h*m^k,  a_r = sigma(W_r^a*h + U_r^a*m^k),  h^k = a_r h~ + (1 - a_r) h
(6) e_ij = m_i W_e m_j^T  in R^{WH x WH}
(7) c_i = sum_{j != i} softmax_row(e_ij) m_j
(8) m~_i = W_u^m*h^k + U_u^m*m_i + V_u^m*c_i,  a_u = sigma(W_u^a*h^k + U_u^a*m_i + V_u^a*c_i),
    m_i^k = a_u m~_i + (1 - a_u) m_i^{k-1}
(9) S = f_R(h^K, q)                                           (decoder with skips, 2-way softmax)

Readings of the printed text (flagged in the chapter): Eq. (5) as printed is a GRU without reset
gate and without a tanh on the candidate (``controller="printed"``); the text says "implemented
using ConvGRU", so ``controller="convgru"`` adds both. Eq. (8)'s last line drops the index i
(``m~^k``, ``m^{k-1}``), read as ``m~_i^k`` and ``m_i^{k-1}``. With K = 0, Eq. (9) decodes
``h^0 = f_P(q)``, which holds no memory content at all; the paper's K = 0 row (78.1 J) is well
above its "w/o graph memory" row (73.5), so the authors' K = 0 must still read the memory; we
follow the equations. The released code reads STM-style key-value attention instead of Eqs. 2-4;
:func:`stm_read` is that read, used by the STM-like baseline whose memory grows by a node per frame.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from cvtutor import report
from cvtutor.data.video import SpriteVideos
from cvtutor.metrics.temporal import boundary_f, region_similarity, sequence_statistics
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import fit

# ---------------------------------------------------------------------------------------------
# the paper's numbers
# ---------------------------------------------------------------------------------------------
PAPER = {
    "table1": report.PaperTable(
        "Table 1 (DAVIS17 val, O-VOS)",
        "J&F mean (%)",
        {"OSVOS": 60.3, "RGMP": 66.7, "AGAME": 71.0, "FEELVOS": 71.5, "STM": 81.8, "Ours": 82.8},
        better="higher",
    ),
    "table1_ours": {
        "J mean": 80.2, "J recall": 90.1, "J decay": 6.0,
        "F mean": 85.2, "F recall": 93.3, "F decay": 8.4,
    },
    "table5_memory": report.PaperTable(
        "Table 5 (DAVIS17 val, O-VOS)",
        "mean J (%)",
        {"full (N=3, K=3)": 80.0, "w/o graph memory": 73.5},
        better="higher",
        note="Table 1 gives 80.2 J / 85.2 F for the same full model; Table 5 gives 80.0 / 85.9.",
    ),
    "table5_memory_F": {"full (N=3, K=3)": 85.9, "w/o graph memory": 78.4},
    "table5_K": report.PaperTable(
        "Table 5 (DAVIS17 val, O-VOS)",
        "mean J (%)",
        {"K=0": 78.1, "K=1": 78.9, "K=2": 79.3, "K=3": 80.0, "K=4": 80.0},
        better="higher",
    ),
    "table5_N": report.PaperTable(
        "Table 5 (DAVIS17 val, O-VOS)",
        "mean J (%)",
        {"N=2": 76.0, "N=3": 80.0, "N=4": 79.5, "N=5": 80.0},
        better="higher",
    ),
    "table5_shuffle": report.PaperTable(
        "Table 5 (DAVIS17 val, O-VOS)",
        "mean J (%)",
        {"with label shuffling": 80.0, "w/o label shuffling": 78.5},
        better="higher",
    ),
    "seconds_per_frame": {"Ours": 0.2, "STM": 0.18},  # Table 1, time row
}


# ---------------------------------------------------------------------------------------------
# encoders (Sect. 3.4)
# ---------------------------------------------------------------------------------------------
def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1), nn.GroupNorm(1, c_out), nn.ReLU(inplace=True)
    )


class Encoder(nn.Module):
    """The query / memory encoder (Sect. 3.4): conv blocks, strides 2, 2, 1, ... (a small stand-in
    for ResNet-50's first four blocks). With ``extra`` input channels (the memory encoder: the
    1-channel object mask and the one-hot label map) they pass through a 1x1 conv whose output
    is *added* to the RGB features of the first block. Returns the features of every block (the
    decoder's skips); the last is q (or m_i^0) with ``widths[-1]`` = C channels at stride 4."""

    def __init__(self, widths: Sequence[int] = (16, 32, 32), extra: int = 0):
        super().__init__()
        if len(widths) < 2:
            raise ValueError(f"widths needs >= 2 blocks, got {widths}")
        strides = [2, 2] + [1] * (len(widths) - 2)
        chans = [3, *widths]
        self.blocks = nn.ModuleList(
            _block(a, b, s) for a, b, s in zip(chans[:-1], chans[1:], strides)
        )
        self.extra = nn.Conv2d(extra, widths[0], 1, 2) if extra else None

    def forward(self, rgb: torch.Tensor, extra: torch.Tensor | None = None) -> list[torch.Tensor]:
        if (extra is None) != (self.extra is None):
            raise ValueError("the memory encoder needs mask + labels, the query encoder none")
        x = self.blocks[0][0](rgb)
        if extra is not None:
            x = x + self.extra(extra)
        x = self.blocks[0][2](self.blocks[0][1](x))
        feats = [x]
        for b in self.blocks[1:]:
            feats.append(b(feats[-1]))
        return feats


def label_map(masks: torch.Tensor, order: torch.Tensor, n_labels: int) -> torch.Tensor:
    """The one-hot label map (Sect. 3.4, STM's input): ``masks (B, H, W)`` instance ids 1..L
    (0 background) to ``(B, L, H, W)``, instance ``o`` in channel ``order[b, o - 1]``."""
    if masks.ndim != 3 or order.shape != (masks.shape[0], n_labels):
        raise ValueError(
            f"masks must be (B, H, W) and order (B, {n_labels}); got {tuple(masks.shape)} and "
            f"{tuple(order.shape)}"
        )
    out = torch.zeros(masks.shape[0], n_labels, *masks.shape[1:], device=masks.device)
    for o in range(n_labels):
        ch = order[:, o]
        out[torch.arange(len(ch)), ch] += (masks == o + 1).float()
    return out


def label_shuffle(batch: int, n_labels: int, generator: torch.Generator | None = None,
                  device=None) -> torch.Tensor:
    """Label shuffling (Sect. 3.4, Fig. 3): a random permutation of the label channels per clip,
    ``(batch, n_labels)`` long, so instance o is sometimes label 2 instead of 1 and vice versa."""
    return torch.argsort(torch.rand(batch, n_labels, generator=generator), 1).to(device)


# ---------------------------------------------------------------------------------------------
# the graph memory (Sect. 3.3)
# ---------------------------------------------------------------------------------------------
def read_weights(h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Eqs. (2)-(3): cosine similarity of the whole tensors h ``(B, C, H, W)`` and each node m_i
    ``(B, N, C, H, W)``, then a softmax over the N nodes: ``w (B, N)``."""
    if m.ndim != 5 or h.shape != (m.shape[0], *m.shape[2:]):
        raise ValueError(
            f"h must be (B, C, H, W) and m (B, N, C, H, W) of the same B, C, H, W; got "
            f"{tuple(h.shape)} and {tuple(m.shape)}"
        )
    s = F.cosine_similarity(h.flatten(1)[:, None], m.flatten(2), dim=-1, eps=1e-8)
    return torch.softmax(s, dim=1)


def memory_summary(w: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Eq. (4): m^k = sum_i w_i m_i, ``(B, C, H, W)``."""
    return torch.einsum("bn,bnchw->bchw", w, m)


def edge_affinities(m: torch.Tensor, W_e: torch.Tensor) -> torch.Tensor:
    """Eq. (6): e_ij = m_i W_e m_j^T for every ordered node pair, nodes flattened to (WH) x C:
    ``(B, N, N, WH, WH)``."""
    f = m.flatten(3).transpose(2, 3)  # B N HW C
    return torch.einsum("bipc,cd,bjqd->bijpq", f, W_e, f)


def messages(m: torch.Tensor, W_e: torch.Tensor) -> torch.Tensor:
    """Eq. (7): c_i = sum_{j != i} softmax_row(e_ij) m_j, ``(B, N, C, H, W)``."""
    B, N, C, H, W = m.shape
    if N < 2:
        raise ValueError(f"messages need >= 2 nodes, got N = {N}")
    att = torch.softmax(edge_affinities(m, W_e), dim=-1)  # rows over j's positions
    f = m.flatten(3).transpose(2, 3)  # B N HW C
    msg = torch.einsum("bijpq,bjqc->bijpc", att, f)
    off = 1.0 - torch.eye(N, device=m.device, dtype=m.dtype)
    c = torch.einsum("ij,bijpc->bipc", off, msg)
    return c.transpose(2, 3).reshape(B, N, C, H, W)


def stm_read(h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The STM-style read of the released code (and of the STM-like baseline): every query
    position attends over all T*H*W memory positions (dot products / sqrt(C), softmax), reading
    their values; ``(B, C, H, W)``."""
    B, C, H, W = h.shape
    q = h.flatten(2).transpose(1, 2)  # B HW C
    k = m.permute(0, 1, 3, 4, 2).reshape(B, -1, C)  # B THW C
    att = torch.softmax(q @ k.transpose(1, 2) / C**0.5, dim=-1)
    return (att @ k).transpose(1, 2).reshape(B, C, H, W)


class ReadController(nn.Module):
    """Eq. (5), the read controller with 1x1 kernels. ``"printed"``: the equation as printed (an
    update gate only, linear candidate); ``"convgru"``: ConvGRU [2], with a reset gate r on h and a
    tanh on the candidate."""

    def __init__(self, c: int, mode: str = "printed"):
        super().__init__()
        if mode not in ("printed", "convgru"):
            raise ValueError(f"controller must be 'printed' or 'convgru', got {mode!r}")
        self.mode = mode
        self.W_h, self.U_h = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1, bias=False)
        self.W_a, self.U_a = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1, bias=False)
        if mode == "convgru":
            self.W_z, self.U_z = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1, bias=False)

    def gate(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.W_a(h) + self.U_a(x))

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        a = self.gate(h, x)
        if self.mode == "printed":
            cand = self.W_h(h) + self.U_h(x)
        else:
            r = torch.sigmoid(self.W_z(h) + self.U_z(x))
            cand = torch.tanh(self.W_h(r * h) + self.U_h(x))
        return a * cand + (1 - a) * h


class WriteController(nn.Module):
    """Eq. (8), the write controller: candidate and gate from h^k, m_i^{k-1} and c_i^k (kernels
    W, U, V, 1x1); ``"convgru"`` adds a tanh on the candidate (the reset gate is left out)."""

    def __init__(self, c: int, mode: str = "printed"):
        super().__init__()
        self.mode = mode
        self.W_m, self.U_m, self.V_m = (nn.Conv2d(c, c, 1, bias=b) for b in (True, False, False))
        self.W_a, self.U_a, self.V_a = (nn.Conv2d(c, c, 1, bias=b) for b in (True, False, False))

    def gate(self, h: torch.Tensor, m: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.W_a(h) + self.U_a(m) + self.V_a(c))

    def forward(self, h: torch.Tensor, m: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``h (B, C, H, W)``, ``m, c (B, N, C, H, W)`` -> the new nodes ``(B, N, C, H, W)``."""
        hh = h[:, None].expand_as(m).flatten(0, 1)
        mm, cc = m.flatten(0, 1), c.flatten(0, 1)
        cand = self.W_m(hh) + self.U_m(mm) + self.V_m(cc)
        if self.mode == "convgru":
            cand = torch.tanh(cand)
        a = self.gate(hh, mm, cc)
        return (a * cand + (1 - a) * mm).reshape(m.shape)


class GraphMemory(nn.Module):
    """K episodes of read (Eqs. 2-5) and write (Eqs. 6-8) on an N-node graph memory. Returns
    h^K, the final memory and the read weights of every step ``(B, K, N)``."""

    def __init__(self, c: int, controller: str = "printed"):
        super().__init__()
        self.read = ReadController(c, controller)
        self.write = WriteController(c, controller)
        self.W_e = nn.Parameter(torch.eye(c) / c**0.5)

    def forward(self, h: torch.Tensor, m: torch.Tensor, K: int):
        ws = []
        for _ in range(K):
            w = read_weights(h, m)
            h = self.read(h, memory_summary(w, m))  # Eq. (5)
            c = messages(m, self.W_e) if m.shape[1] > 1 else torch.zeros_like(m)
            m = self.write(h, m, c)  # Eq. (8)
            ws.append(w)
        weights = torch.stack(ws, 1) if ws else h.new_zeros(h.shape[0], 0, m.shape[1])
        return h, m, weights


class Decoder(nn.Module):
    """f_R (Eq. 9): fuse h^K with q, then upsampling blocks with skips to the encoder's blocks,
    3x3 convs, a last 1x1 conv to 2 channels (the softmax is in the loss / :meth:`probs`)."""

    def __init__(self, widths: Sequence[int]):
        super().__init__()
        c = widths[-1]
        self.fuse = _block(2 * c, c, 1)
        self.up1 = _block(c + widths[0], widths[0], 1)  # stride 4 -> 2, skip of block 1
        self.up2 = _block(widths[0] + 3, widths[0], 1)  # stride 2 -> 1, the image
        self.out = nn.Conv2d(widths[0], 2, 1)

    def forward(self, h: torch.Tensor, feats: list[torch.Tensor], rgb: torch.Tensor):
        x = self.fuse(torch.cat([h, feats[-1]], 1))
        x = F.interpolate(x, size=feats[0].shape[-2:], mode="bilinear", align_corners=False)
        x = self.up1(torch.cat([x, feats[0]], 1))
        x = F.interpolate(x, size=rgb.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(self.up2(torch.cat([x, rgb], 1)))


MEMORIES = ("graph", "none", "stm")


class GraphMemoryVOS(nn.Module):
    """The whole network (Fig. 1). ``memory="graph"``: Eqs. (1)-(9); ``"none"``: the "w/o graph
    memory (direct inference)" ablation, h = f_P(q) fused with the first support node by a 1x1
    conv, no reads or writes; ``"stm"``: an STM-like read (:func:`stm_read`) over all nodes."""

    def __init__(self, widths: Sequence[int] = (16, 32, 32), n_labels: int = 3,
                 memory: str = "graph", controller: str = "printed"):
        super().__init__()
        if memory not in MEMORIES:
            raise ValueError(f"memory must be one of {MEMORIES}, got {memory!r}")
        c = widths[-1]
        self.memory, self.n_labels = memory, n_labels
        self.query_encoder = Encoder(widths)
        self.memory_encoder = Encoder(widths, extra=1 + n_labels)
        self.f_P = nn.Conv2d(c, c, 1)
        self.graph = GraphMemory(c, controller) if memory == "graph" else None
        self.direct = nn.Conv2d(2 * c, c, 1) if memory == "none" else None
        self.decoder = Decoder(widths)

    def encode_memory(self, rgb: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor):
        """m_i^0 from a support frame, its (soft) object mask ``(B, 1, H, W)`` and label map."""
        return self.memory_encoder(rgb, torch.cat([mask, labels], 1))[-1]

    def forward(self, rgb: torch.Tensor, m0: torch.Tensor, K: int = 3):
        """Query ``rgb (B, 3, H, W)``, initial nodes ``m0 (B, N, C, h, w)`` -> logits ``(B, 2, H,
        W)`` and the read weights ``(B, K, N)``."""
        feats = self.query_encoder(rgb)
        h = self.f_P(feats[-1])  # Eq. (1)
        weights = h.new_zeros(h.shape[0], 0, m0.shape[1])
        if self.memory == "graph":
            h, _, weights = self.graph(h, m0, K)
        elif self.memory == "none":
            h = self.direct(torch.cat([h, m0[:, 0]], 1))
        else:
            h = h + stm_read(h, m0)
        return self.decoder(h, feats, rgb), weights  # Eq. (9)


def soft_aggregation(probs: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """RGMP's soft aggregation: per-object foreground probabilities ``(O, ...)``, each from an
    independent run, to ``(O + 1, ...)`` probabilities over background + objects summing to 1:
    background ``prod(1 - p_o)``, then a softmax of the logits ``log(p / (1 - p))``."""
    p = probs.clamp(eps, 1 - eps)
    bg = torch.prod(1 - p, dim=0, keepdim=True).clamp(eps, 1 - eps)
    q = torch.cat([bg, p], 0)
    return torch.softmax(torch.log(q / (1 - q)), dim=0)


def memory_indices(t: int, N: int, generator: torch.Generator | None = None) -> list[int]:
    """The inference memory policy (Sect. 3.4) for query frame ``t``: the first annotated frame,
    N-2 frames sampled from the earlier segmented ones and the last segmented frame (t - 1);
    while fewer than N frames exist, the available frames are repeated."""
    if t < 1 or N < 1:
        raise ValueError(f"need query frame t >= 1 and N >= 1, got t = {t}, N = {N}")
    if N == 1:
        return [0]
    middle = list(range(1, t - 1))
    if len(middle) >= N - 2:
        pick = torch.randperm(len(middle), generator=generator)[: N - 2].sort().values.tolist()
        sampled = [middle[i] for i in pick]
    else:
        avail = list(range(t))
        sampled = [avail[i % len(avail)] for i in range(N - 2)]
    return [0, *sorted(sampled), t - 1]


def memory_footprint(T: int, N: int, C: int, h: int, w: int) -> pd.DataFrame:
    """Floats the memory holds at frame t: constant N*C*h*w for the graph memory (by
    construction), t*C*h*w for STM, which writes a new slot per frame (its every-5-frames
    variant is ignored)."""
    return pd.DataFrame(
        {"frame": range(1, T), "graph memory": N * C * h * w,
         "STM": [t * C * h * w for t in range(1, T)]}
    )


# ---------------------------------------------------------------------------------------------
# config and data
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config(ProfileConfig):
    size: int = 32
    frames: int = 8
    n_sprites: int = 3
    n_train: int = 400
    n_val: int = 40
    widths: tuple = (16, 32, 32)
    N: int = 3
    K: int = 3
    controller: str = "printed"
    batch: int = 8
    steps: int = 220
    lr: float = 2e-3
    colour_drift: float = 0.03
    p_leave: float = 0.2
    p_lookalike: float = 0.5
    sprite_scale: float = 0.6  # mean sprite side / frame side (thicker strokes at 32 px)
    label_shuffling: bool = True
    infer_K: tuple = (0, 1, 2, 3)
    ablate_N: tuple = ()  # retrained node counts (full)
    ablate_K: tuple = ()  # retrained episode counts (full)
    ablate_shuffle: bool = False  # retrain without label shuffling (full)
    stm_baseline: bool = False  # train the STM-like baseline (full)
    seeds: tuple = (0,)
    device: str | None = None

    @classmethod
    def fast(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        return cls(
            size=96, frames=12, n_train=5000, n_val=100, widths=(32, 64, 128, 128),
            batch=16, steps=800, lr=1e-3, ablate_N=(2, 4), ablate_K=(1,),
            ablate_shuffle=True, stm_baseline=True, seeds=(0, 1, 2),
        )

    @classmethod
    def smoke(cls) -> Config:
        """``full``'s code paths (ablations, STM baseline, three encoder blocks+, two seeds) at
        toy size."""
        return cls.full().replace(
            size=32, frames=5, n_train=16, n_val=2, widths=(8, 8, 8, 8), batch=4, steps=2,
            seeds=(0, 1),
        )


def world(config: Config, split: str = "train", device=None) -> SpriteVideos:
    """The sprite-video world of the "Video and time" section: digits that drift in colour, scale
    and rotate, look-alike distractors, occlusions, a main sprite that may leave and come back."""
    return SpriteVideos(
        size=config.size, frames=config.frames, n_sprites=config.n_sprites,
        sprite_size=config.size * config.sprite_scale, colour_drift=config.colour_drift, pan=1.0,
        p_lookalike=config.p_lookalike, p_leave=config.p_leave, split=split, device=device,
    )


def videos(config: Config, n: int, split: str, seed: int, device=None) -> dict[str, torch.Tensor]:
    """``n`` videos ``(n, T, 3, S, S)`` and their instance masks ``(n, T, S, S)`` (uint8 ids),
    generated in chunks of 512."""
    w = world(config, split, device)
    parts = [w.sample(min(512, n - i), seed=seed * 1000 + i // 512) for i in range(0, n, 512)]
    return {"video": torch.cat([p["video"] for p in parts]),
            "masks": torch.cat([p["masks"].to(torch.uint8) for p in parts])}


def recurrence_clips(d: dict[str, torch.Tensor], N: int, g: torch.Generator,
                     n_labels: int, shuffle: bool):
    """Recurrence training (Sect. 3.4): per video N+1 temporally ordered frames, the first N the
    support set (with their masks), the last the query; a target instance visible in the first
    support frame; the label map's order shuffled (label shuffling) or fixed (instance o in
    channel o - 1, the "planted" order). Returns support ``(B, N, 3, H, W)``, support masks of
    the target ``(B, N, 1, H, W)``, support label maps ``(B, N, L, H, W)``, query and target."""
    video, masks = d["video"], d["masks"]
    B, T = video.shape[:2]
    if T < N + 1:
        raise ValueError(f"recurrence training needs T >= N + 1 = {N + 1} frames, got {T}")
    idx = torch.argsort(torch.rand(B, T, generator=g), 1)[:, : N + 1].sort(1).values
    idx = idx.to(video.device)
    ar = torch.arange(B, device=video.device)[:, None]
    v, m = video[ar, idx], masks[ar, idx]  # B N+1 ...
    present = torch.stack([(m[:, 0] == o + 1).flatten(1).any(1) for o in range(n_labels)], 1)
    score = torch.rand(B, n_labels, generator=g).to(video.device) + present.float()
    target = score.argmax(1) + 1  # a visible instance (any one if none is visible)
    order = (label_shuffle(B, n_labels, g, video.device) if shuffle
             else torch.arange(n_labels, device=video.device).expand(B, n_labels))
    tgt = (m == target[:, None, None, None]).float()
    labels = torch.stack([label_map(m[:, i], order, n_labels) for i in range(N)], 1)
    return v[:, :N], tgt[:, :N, None], labels, v[:, N], tgt[:, N].long()


def make_model(config: Config, memory: str = "graph") -> GraphMemoryVOS:
    return GraphMemoryVOS(config.widths, config.n_sprites, memory, config.controller)


def encode_support(model: GraphMemoryVOS, frames, masks, labels) -> torch.Tensor:
    B, N = frames.shape[:2]
    m0 = model.encode_memory(frames.flatten(0, 1), masks.flatten(0, 1), labels.flatten(0, 1))
    return m0.reshape(B, N, *m0.shape[1:])


def train(config: Config, seed: int, memory: str = "graph", data=None, device=None,
          N: int | None = None, K: int | None = None, shuffle: bool | None = None,
          progress: bool = False) -> tuple[GraphMemoryVOS, pd.DataFrame]:
    """Recurrence training with the cross-entropy loss on the query (Sect. 3.4), Adam with the
    "poly" schedule of power 1 (Sect. 3.5)."""
    device = device or get_device(config.device)
    N, K = N or config.N, config.K if K is None else K
    shuffle = config.label_shuffling if shuffle is None else shuffle
    seed_everything(seed)
    d = data if data is not None else videos(config, config.n_train, "train", 100 + seed, device)
    model = make_model(config, memory).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / config.steps)
    g = torch.Generator().manual_seed(seed)
    n = d["video"].shape[0]

    def batches(step):
        sel = torch.randint(n, (min(config.batch, n),), generator=g).to(d["video"].device)
        return recurrence_clips({k: v[sel] for k, v in d.items()}, N, g, config.n_sprites, shuffle)

    def loss_fn(models, batch, step):
        sup, sup_m, sup_l, query, target = batch
        net = models["model"]
        logits, _ = net(query, encode_support(net, sup, sup_m, sup_l), K)
        return {"loss": F.cross_entropy(logits.float(), target)}

    hist = fit(model, opt, batches, loss_fn, steps=config.steps, device=device,
               schedulers=sched, progress=progress, desc=f"{memory} N={N} K={K} seed {seed}")
    model.eval()
    return model, hist


# ---------------------------------------------------------------------------------------------
# inference and evaluation (DAVIS protocol)
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def segment_object(model: GraphMemoryVOS, video: torch.Tensor, first_mask: torch.Tensor,
                   order: torch.Tensor, N: int, K: int, seed: int = 0) -> torch.Tensor:
    """Sequential O-VOS inference for one object in each of B videos ``(B, T, 3, H, W)`` from
    its first-frame mask ``(B, H, W)`` float: frames 1..T-1 segmented in turn, each one's memory
    built by :func:`memory_indices` from the first frame (given mask) and the segmented frames
    (their predicted soft masks). The label map of a segmented frame is the object's own channel
    ``order (B,)`` filled with its soft mask (the other objects are run independently). For the
    STM-like model the memory is every frame so far (it grows). Returns probabilities ``(B, T, H,
    W)`` (frame 0: the given mask)."""
    B, T = video.shape[:2]
    L = model.n_labels
    g = torch.Generator().manual_seed(seed)
    probs = [first_mask.float()]
    ar = torch.arange(B, device=video.device)

    def node(t):
        lab = torch.zeros(B, L, *video.shape[-2:], device=video.device)
        lab[ar, order] = probs[t]
        return model.encode_memory(video[:, t], probs[t][:, None], lab)

    cache = [node(0)]
    for t in range(1, T):
        idx = list(range(t)) if model.memory == "stm" else memory_indices(t, N, g)
        m0 = torch.stack([cache[i] for i in idx], 1)
        logits, _ = model(video[:, t], m0, K)
        probs.append(torch.softmax(logits.float(), 1)[:, 1])
        cache.append(node(t))
    return torch.stack(probs, 1)


@torch.no_grad()
def evaluate(model: GraphMemoryVOS, d: dict[str, torch.Tensor], N: int, K: int,
             n_labels: int, seed: int = 0, chunk: int = 64) -> pd.DataFrame:
    """Every object of every validation video segmented independently, merged by soft
    aggregation, scored per object (frames 1..T-1) by J and F with DAVIS's mean, recall and
    decay. Objects absent from the first frame are skipped (DAVIS annotates an object where it
    first appears; here the first frame). Returns one row per (video, object)."""
    rows = []
    n = d["video"].shape[0]
    g = torch.Generator().manual_seed(seed)
    for s in range(0, n, chunk):
        video, masks = d["video"][s : s + chunk], d["masks"][s : s + chunk]
        order = label_shuffle(video.shape[0], n_labels, g, video.device)
        per_obj = torch.stack([
            segment_object(model, video, (masks[:, 0] == o + 1).float(), order[:, o], N, K, seed)
            for o in range(n_labels)
        ])  # O B T H W
        pred = soft_aggregation(per_obj).argmax(0)  # B T H W, 0 background
        rows += _score(pred, masks, n_labels, offset=s)
    return pd.DataFrame(rows)


def first_frame_copy(d: dict[str, torch.Tensor], n_labels: int) -> pd.DataFrame:
    """The zero-motion baseline: every frame's mask is the first frame's."""
    masks = d["masks"]
    return pd.DataFrame(_score(masks[:, :1].expand_as(masks), masks, n_labels))


def _score(pred: torch.Tensor, masks: torch.Tensor, n_labels: int, offset: int = 0) -> list[dict]:
    """Per (video, object) present in frame 0: J and F of frames 1..T-1 (one batched call per
    object) and DAVIS's mean, recall and decay of each."""
    rows = []
    T = masks.shape[1]
    for o in range(n_labels):
        gt, pr = masks == o + 1, pred == o + 1
        keep = torch.nonzero(gt[:, 0].flatten(1).any(1)).flatten()
        if len(keep) == 0:
            continue
        g_, p_ = gt[keep, 1:].flatten(0, 1), pr[keep, 1:].flatten(0, 1)
        J = region_similarity(p_, g_).reshape(len(keep), T - 1).cpu().numpy()
        Fb = boundary_f(p_, g_).reshape(len(keep), T - 1).cpu().numpy()
        for b, j, f in zip(keep.tolist(), J, Fb):
            rows.append({"video": offset + b, "object": o + 1,
                         **{f"J {k}": v for k, v in sequence_statistics(j).items()},
                         **{f"F {k}": v for k, v in sequence_statistics(f).items()},
                         "J per frame": j.tolist()})
    return rows


SCORES = ("J mean", "J recall", "J decay", "F mean", "F recall", "F decay")


def summary(ev: pd.DataFrame) -> dict[str, float]:
    """DAVIS's table entries in %: the means over objects of each statistic, and J&F."""
    out = {k: 100 * float(ev[k].mean()) for k in SCORES}
    out["J&F"] = (out["J mean"] + out["F mean"]) / 2
    return out


@torch.no_grad()
def example(model: GraphMemoryVOS, d: dict[str, torch.Tensor], config: Config, video: int = 0):
    """One validation video's query frame t = T-1: the read weights per episode ``(K, N)``, the
    ground truth and predicted mask of object 1, and one row of softmax(e_12) (Eq. 6) for the
    query pixel at the object's centre, as maps."""
    v, m = d["video"][video : video + 1], d["masks"][video : video + 1]
    T = v.shape[1]
    order = torch.arange(config.n_sprites)[None].to(v.device)
    probs = segment_object(model, v, (m[:, 0] == 1).float(), order[:, 0], config.N, config.K)
    idx = memory_indices(T - 1, config.N, torch.Generator().manual_seed(0))
    labs = [label_map((m[:, i] == 1).long() * 1, order, config.n_sprites) for i in idx]
    m0 = torch.stack([model.encode_memory(v[:, i], (m[:, i] == 1).float()[:, None], lab)
                      for i, lab in zip(idx, labs)], 1)
    _, w = model(v[:, T - 1], m0, config.K)
    e = edge_affinities(m0, model.graph.W_e) if model.graph is not None else None
    hw = m0.shape[-2:]
    ys, xs = torch.nonzero(F.max_pool2d((m[0, idx[0]] == 1).float()[None, None],
                                        config.size // hw[0])[0, 0] > 0, as_tuple=True)
    p = int(ys.float().mean().round()) * hw[1] + int(xs.float().mean().round()) if len(ys) else 0
    aff = torch.softmax(e[0, 0, 1, p], -1).reshape(hw).cpu().numpy() if e is not None else None
    return {"weights": w[0].cpu().numpy(), "frames": v[0].cpu().numpy(),
            "gt": (m[0] == 1).cpu().numpy(), "pred": (probs[0] > 0.5).cpu().numpy(),
            "memory_frames": idx, "affinity": aff, "query_pixel": p}


# ---------------------------------------------------------------------------------------------
# the whole miniature
# ---------------------------------------------------------------------------------------------
def paired_gap(objects: pd.DataFrame, a: str, b: str, score: str) -> tuple[float, float, int]:
    """Model ``a`` minus model ``b`` on the same validation objects (same seed, video, object):
    the mean gap of ``score`` in points and its standard error, and the number of pairs."""
    key = ["seed", "video", "object"]
    m = objects[objects.model == a].merge(objects[objects.model == b], on=key)
    d = 100 * (m[f"{score}_x"] - m[f"{score}_y"]).to_numpy()
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return float(d.mean()), se, len(d)


def run(config: Config) -> dict:
    """Per seed: train the graph memory model (N, K) and the no-memory ablation (and in ``full``
    the retrained N / K / no-shuffling variants and the STM-like baseline); evaluate them on the
    validation videos, the K = 0..3 inference sweep on the trained model, the first-frame copy
    baseline, the memory footprint; the findings."""
    device = get_device(config.device)
    rows, hists, ksweep, per_frame, per_object = [], [], [], [], []
    for seed in config.seeds:
        tr = videos(config, config.n_train, "train", 100 + seed, device)
        va = videos(config, config.n_val, "test", 900 + seed, device)
        variants = [("full", "graph", config.N, config.K, config.label_shuffling),
                    ("w/o graph memory", "none", config.N, config.K, config.label_shuffling)]
        variants += [(f"N={n}", "graph", n, config.K, True) for n in config.ablate_N]
        variants += [(f"K={k} (retrained)", "graph", config.N, k, True) for k in config.ablate_K]
        if config.ablate_shuffle:
            variants.append(("w/o label shuffling", "graph", config.N, config.K, False))
        if config.stm_baseline:
            variants.append(("STM-like", "stm", config.N, config.K, True))
        for name, memory, N, K, shuffle in variants:
            t0 = time.perf_counter()
            model, hist = train(config, seed, memory, tr, device, N, K, shuffle)
            train_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            ev = evaluate(model, va, N, K, config.n_sprites, seed)
            n_frames = config.n_val * (config.frames - 1) * config.n_sprites
            rows.append({"model": name, "seed": seed, **summary(ev), "train s": train_s,
                         "s per object-frame": (time.perf_counter() - t0) / n_frames})
            hists.append(hist.assign(model=name, seed=seed))
            per_object.append(ev[["video", "object", "J mean", "F mean"]].assign(model=name, seed=seed))
            if name == "full":
                per_frame.append(pd.DataFrame(
                    {"frame": np.arange(1, config.frames), "seed": seed,
                     "J": np.mean(np.stack(ev["J per frame"].to_list()), 0)}))
                for k in config.infer_K:
                    ksweep.append({"K at inference": k, "seed": seed,
                                   **summary(evaluate(model, va, N, k, config.n_sprites, seed))})
                if seed == config.seeds[0]:
                    ex = example(model, va, config)
                    full_model = model
        copy = summary(first_frame_copy(va, config.n_sprites))
        rows.append({"model": "first-frame copy", "seed": seed, **copy})
    table = pd.DataFrame(rows)
    ksweep, per_frame = pd.DataFrame(ksweep), pd.concat(per_frame, ignore_index=True)
    history = pd.concat(hists, ignore_index=True)
    hw = config.size // 4
    foot = memory_footprint(config.frames, config.N, config.widths[-1], hw, hw)
    n_params = sum(p.numel() for p in full_model.parameters())

    def col(model, key="J mean"):
        return table.loc[table.model == model, key].to_numpy()

    objects = pd.concat(per_object, ignore_index=True)
    gap_J, se_J, n_obj = paired_gap(objects, "full", "w/o graph memory", "J mean")
    gap_F, se_F, _ = paired_gap(objects, "full", "w/o graph memory", "F mean")
    kj = ksweep.groupby("K at inference")["J mean"].mean()
    ks = sorted(kj.index)
    findings = {
        "the graph memory beats the no-memory ablation in J by > 2 SE (Table 5: +6.5)": (
            "paper claim", bool(gap_J > 2 * se_J),
            (f"{report.mean_std(col('full'))} vs {report.mean_std(col('w/o graph memory'))}; paired gap "
             f"{gap_J:+.1f} ± {se_J:.1f} over {n_obj} objects")),
        "the graph memory beats the no-memory ablation in F by > 2 SE (Table 5: +7.5)": (
            "paper claim", bool(gap_F > 2 * se_F),
            (f"{report.mean_std(col('full', 'F mean'))} vs "
             f"{report.mean_std(col('w/o graph memory', 'F mean'))}; paired gap {gap_F:+.1f} ± {se_F:.1f}")),
        "the trained model beats copying the first mask (J)": (
            "sanity check", bool(col("full").mean() > col("first-frame copy").mean()),
            f"{report.mean_std(col('full'))} vs {report.mean_std(col('first-frame copy'))}"),
        f"more episodes help: K = {ks[0]} < K = {ks[-1]} at inference (Table 5; a proxy, the "
        f"model trained at K = {config.K})": (
            "paper claim", bool(kj[ks[0]] < kj[ks[-1]]),
            ", ".join(f"K={k}: {kj[k]:.1f}" for k in ks)),
        f"J rises monotonically with K = {ks[0]}..{ks[-1]} at inference (Table 5)": (
            "paper claim", bool(np.all(np.diff(kj.to_numpy()) > 0)),
            ", ".join(f"{v:.1f}" for v in kj)),
        "the graph memory's size is constant while STM's grows per frame": (
            "construction",
            bool(foot["graph memory"].nunique() == 1 and foot["STM"].is_monotonic_increasing),
            f"{foot['graph memory'].iloc[0]} floats vs {foot['STM'].iloc[0]}..{foot['STM'].iloc[-1]}"),
    }
    if config.ablate_N:
        for n in config.ablate_N:
            if n < config.N:
                findings[f"N = {n} nodes is worse than N = {config.N} (Table 5)"] = (
                    "paper claim", bool(col(f"N={n}").mean() < col("full").mean()),
                    f"{report.mean_std(col(f'N={n}'))} vs {report.mean_std(col('full'))}")
            else:
                findings[f"N = {n} nodes adds little over N = {config.N} (< 1 J, Table 5)"] = (
                    "paper claim", bool(col(f"N={n}").mean() - col("full").mean() < 1.0),
                    f"{report.mean_std(col(f'N={n}'))} vs {report.mean_std(col('full'))}")
    for k in config.ablate_K:
        findings[f"retrained K = {k} is worse than K = {config.K} (Table 5)"] = (
            "paper claim", bool(col(f"K={k} (retrained)").mean() < col("full").mean()),
            f"{report.mean_std(col(f'K={k} (retrained)'))} vs {report.mean_std(col('full'))}")
    if config.ablate_shuffle:
        findings["label shuffling helps (Table 5: 80.0 vs 78.5 J)"] = (
            "paper claim", bool(col("full").mean() > col("w/o label shuffling").mean()),
            f"{report.mean_std(col('full'))} vs {report.mean_std(col('w/o label shuffling'))}")
    if config.stm_baseline:
        findings["the fixed-size graph memory is within 2 J of the growing STM-like read "
                 "(Table 1: 80.2 vs 79.2)"] = (
            "paper claim", bool(col("full").mean() > col("STM-like").mean() - 2.0),
            f"{report.mean_std(col('full'))} vs {report.mean_std(col('STM-like'))}")
    mean = table.groupby("model", sort=False)[["J&F", *SCORES]].mean()
    compare_memory = report.compare(
        PAPER["table5_memory"],
        {"full (N=3, K=3)": float(mean.loc["full", "J mean"]),
         "w/o graph memory": float(mean.loc["w/o graph memory", "J mean"])},
    )
    # judged like the finding: the paired per-object gap must exceed two standard errors
    compare_memory.loc["full (N=3, K=3)", "claim"] = "> w/o graph memory by > 2 SE (paired)"
    compare_memory.loc["full (N=3, K=3)", "holds"] = bool(gap_J > 2 * se_J)
    compare_K = report.compare(
        PAPER["table5_K"].__class__(PAPER["table5_K"].ref, PAPER["table5_K"].metric,
                                    {f"K={k}": PAPER["table5_K"].values[f"K={k}"] for k in ks},
                                    better="higher"),
        {f"K={k}": float(kj[k]) for k in ks},
        claims=[f"K={ks[-1]} > K={ks[0]}"],
    )
    return {
        "table": table,
        "table_mean": mean.reset_index(),
        "k_sweep": ksweep,
        "per_frame": per_frame,
        "per_object": objects,
        "history": history,
        "footprint": foot,
        "example": ex,
        "n_params": n_params,
        "compare_memory": compare_memory,
        "compare_K": compare_K,
        "findings": report.claims_table(findings),
    }
