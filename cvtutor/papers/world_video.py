"""The video and time world: its generators' ground-truth checks and the metrics' sanity checks.

Not a paper: the shared ground of the "Video and time" section (E09 AherNet, E19 MemDPC, E26
AVVP, E39 GraphMemVOS). Three generators (:mod:`cvtutor.data.video`, :mod:`cvtutor.data.temporal`,
:mod:`cvtutor.data.events`) and one metrics module (:mod:`cvtutor.metrics.temporal`). ``run``
computes what the world promises, from the world itself:

(1) masks agree with frames: a pixel of mask k has sprite k's colour times a shade in [0.6, 1],
    a background pixel is the panned texture;
(2) flow agrees with motion: warping frame t by the backward flow reproduces frame t+1 on sprite
    interiors visible in both, ``|I_{t+1}(p) - I_t(p + f(p))|`` small against ``|I_{t+1} - I_t|``;
(3) branch points: the frequencies of the futures match ``branch_probs``, the pasts coincide;
(4) segment annotations agree with the generating timeline; without noise, an oracle that knows
    the prototypes and the scene recovers the dense audio-visual labels exactly (F = 1), while
    the weak labels alone do not localise the events;
(5) metrics: ActivityNet AP is 1 on perfect detections and falls with boundary jitter; J and F are
    1 on perfect masks; copying the first-frame mask (the zero-motion VOS baseline) decays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from cvtutor import report
from cvtutor.data import video as V
from cvtutor.data.events import AudioVisualEvents
from cvtutor.data.temporal import UntrimmedFeatures
from cvtutor.metrics import temporal as tm
from cvtutor.runtime import ProfileConfig, get_device

PAPER: dict = {}  # a world chapter reproduces no paper's numbers


@dataclass(frozen=True)
class Config(ProfileConfig):
    size: int = 32
    frames: int = 8
    n_videos: int = 64
    n_branch: int = 500
    branch_frame: int = 4
    n_untrimmed: int = 200
    n_events: int = 500
    jitters: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)
    seed: int = 0
    device: str | None = None

    @classmethod
    def fast(cls) -> "Config":
        return cls()

    @classmethod
    def full(cls) -> "Config":
        return cls(
            size=64,
            frames=16,
            n_videos=512,
            n_branch=20000,
            branch_frame=8,
            n_untrimmed=2000,
            n_events=5000,
        )

    @classmethod
    def smoke(cls) -> "Config":
        """``full``'s code paths (64 px, 16 frames) at toy counts."""
        return cls.full().replace(n_videos=8, n_branch=200, n_untrimmed=20, n_events=50)


def sprite_world(config: Config, **changes) -> V.SpriteVideos:
    """The chapter's sprite world at the config's size and length (device from the config)."""
    kw = dict(
        size=config.size,
        frames=config.frames,
        n_sprites=3,
        sprite_size=config.size * 0.42,
        device=get_device(config.device),
    )
    return V.SpriteVideos(**{**kw, **changes})


def mask_agreement(batch: dict[str, torch.Tensor]) -> float:
    """Check (1): the fraction of sprite pixels whose colour is their sprite's colour times one
    shade in [0.6, 1] (1.0 when masks and frames agree)."""
    m = batch["masks"]
    pix = batch["video"].permute(0, 1, 3, 4, 2)
    ok, total = 0, 0
    for k in range(batch["colour"].shape[2]):
        sel = m == k + 1
        ratio = pix[sel] / batch["colour"][:, :, k][:, :, None, None].expand(*m.shape, 3)[sel]
        good = (
            ((ratio - ratio[:, :1]).abs().amax(1) < 1e-4)
            & (ratio.amin(1) > 0.6 - 1e-4)
            & (ratio.amax(1) < 1 + 1e-4)
        )
        ok, total = ok + int(good.sum()), total + int(sel.sum())
    return ok / max(total, 1)


def flow_check(batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """Check (2): mean |frame t+1 - warp(frame t, flow_back)| on sprite interiors visible in both
    frames, beside the same error without motion compensation (the identity warp)."""
    n, T, C, S, _ = batch["video"].shape
    prev = batch["video"][:, :-1].reshape(-1, C, S, S)
    nxt = batch["video"][:, 1:].reshape(-1, C, S, S)
    fb = batch["flow_back"].reshape(-1, 2, S, S)
    m_next = batch["masks"][:, 1:].reshape(-1, S, S)
    src = V.warp(batch["masks"][:, :-1].reshape(-1, 1, S, S).float(), fb)[:, 0]
    inner = (-F.max_pool2d(-(m_next > 0).float()[:, None], 3, 1, 1)[:, 0] > 0.5) & (
        (src - m_next.float()).abs() < 1e-6
    )
    e_flow = (V.warp(prev, fb) - nxt).abs().amax(1)[inner]
    e_id = (prev - nxt).abs().amax(1)[inner]
    return {
        "warp_error": float(e_flow.mean()),
        "identity_error": float(e_id.mean()),
        "pixels": int(inner.sum()),
    }


def branch_table(config: Config) -> tuple[pd.DataFrame, bool]:
    """Check (3): empirical frequency of each future from one shared past, beside the stated one
    (with a 4-sigma binomial band), and whether all pasts are identical."""
    w = sprite_world(config, n_sprites=1, branch_frame=config.branch_frame, motions=("drift",))
    b = w.sample(config.n_branch, seed=config.seed + 1, shared_past=True)
    past = b["video"][:, : config.branch_frame + 1]
    same_past = bool((past == past[:1]).all())
    stated = w.branch_distribution()
    freq = torch.bincount(b["branch"].cpu(), minlength=len(stated)).double() / config.n_branch
    p = torch.tensor(list(stated.values()), dtype=torch.float64)
    band = 4 * torch.sqrt(p * (1 - p) / config.n_branch)
    df = pd.DataFrame(
        {
            "future": list(stated),
            "stated": p.numpy(),
            "observed": freq.numpy(),
            "within 4σ": ((freq - p).abs() <= band + 1e-12).numpy(),
        }
    )
    return df, same_past


def detection_curve(config: Config) -> tuple[pd.DataFrame, bool]:
    """Check (4, 5): annotations vs the timeline, then ActivityNet mAP@[.5:.95] of the true
    segments with their boundaries jittered by ``j`` x duration (scores random)."""
    w = UntrimmedFeatures(device=get_device(config.device))
    b = w.sample(config.n_untrimmed, seed=config.seed)
    seg = b["segments"]
    raster = torch.full_like(b["snippet_labels"], -1).cpu()
    for r in seg.itertuples():
        raster[r.video_id, r.start : r.end] = r.label
    agree = bool(torch.equal(raster, b["snippet_labels"].cpu()))
    gt = seg[["video_id", "label", "t_start", "t_end"]]
    rng = np.random.default_rng(config.seed)
    rows = []
    for j in config.jitters:
        d = (gt.t_end - gt.t_start).to_numpy()
        s = gt.t_start.to_numpy() + j * d * rng.normal(size=len(gt))
        e = gt.t_end.to_numpy() + j * d * rng.normal(size=len(gt))
        pred = gt.assign(
            t_start=np.minimum(s, e), t_end=np.maximum(s, e), score=rng.random(len(gt))
        )
        res = tm.mean_average_precision(gt, pred)
        rows.append(
            {
                "jitter": j,
                "mAP@0.5": res["map"].iloc[0],
                "mAP@0.75": res["map"].iloc[5],
                "mAP@[.5:.95]": res["average_map"],
            }
        )
    return pd.DataFrame(rows), agree


def event_parsing(config: Config) -> pd.DataFrame:
    """Check (4): segment- and event-level F (AVVP) of two parsers, with and without noise.

    The *oracle* knows the prototypes and the scene vector: it solves ``f - z = P^T w`` by least
    squares (``w = (f - z) P^+``) and marks ``w > u_min / 2``; without noise it must recover the
    dense labels exactly. The *weak-label* parser marks every snippet of each present class."""
    rows = []
    for noise in (0.0, AudioVisualEvents.noise):
        w = AudioVisualEvents(noise=noise, device=get_device(config.device))
        b = w.sample(config.n_events, seed=config.seed)
        P = w.prototypes()
        for m in ("audio", "visual"):
            x = b[m] - b[f"scene_{m}"][:, None]
            coef = torch.einsum("ntd,dc->nct", x, torch.linalg.pinv(P[m]))
            parsers = {
                "prototype oracle": (coef > 0.5 * w.intensity[0]) & b["weak"][..., None],
                "weak labels everywhere": b["weak"][..., None].expand_as(coef),
            }
            gc = b[f"{m}_labels"].cpu().numpy()
            for name, pred in parsers.items():
                pc = pred.cpu().numpy()
                rows.append(
                    {
                        "noise": noise,
                        "modality": m,
                        "parser": name,
                        "segment F": float(tm.f_score(*tm.segment_counts(pc, gc)).mean()),
                        "event F": float(tm.f_score(*tm.event_counts(pc, gc)).mean()),
                    }
                )
    return pd.DataFrame(rows)


def vos_baseline(config: Config, batch: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Check (5): J and F per object of 'copy the first-frame mask', the zero-motion baseline of
    semi-supervised VOS, with DAVIS's mean, recall and decay (frames 1..T-1)."""
    rows = []
    n, T = batch["masks"].shape[:2]
    for k in range(batch["colour"].shape[2]):
        gt = batch["masks"] == k + 1  # n T S S
        first = batch["first_mask"] == k + 1
        keep = first.flatten(1).any(1)
        pred = first[:, None].expand_as(gt)
        J = tm.region_similarity(pred[keep, 1:].flatten(0, 1), gt[keep, 1:].flatten(0, 1))
        Fb = tm.boundary_f(pred[keep, 1:].flatten(0, 1), gt[keep, 1:].flatten(0, 1))
        for name, vals in (("J", J), ("F", Fb)):
            for seq in vals.reshape(int(keep.sum()), T - 1).cpu().numpy():
                rows.append({"object": k + 1, "measure": name, **tm.sequence_statistics(seq)})
    return pd.DataFrame(rows).groupby("measure")[["mean", "recall", "decay"]].mean().reset_index()


def run(config: Config) -> dict:
    """All checks. Returns ``checks`` (scalars), the tables ``branches``, ``detection``,
    ``parsing``, ``vos``, and ``findings`` (all JSON-storable)."""
    w = sprite_world(config, branch_frame=None, p_leave=0.25, colour_drift=0.0)
    batch = w.sample(config.n_videos, seed=config.seed)
    batch = {k: v.cpu() for k, v in batch.items()}
    agreement = mask_agreement(batch)
    flow = flow_check(batch)
    branches, same_past = branch_table(config)
    detection, annotations_agree = detection_curve(config)
    parsing = event_parsing(config)
    vos = vos_baseline(config, batch).set_index("measure")
    gt = batch["masks"][:, 1:] == 1
    perfect = (
        tm.region_similarity(gt.flatten(0, 1), gt.flatten(0, 1)).min().item(),
        tm.boundary_f(gt.flatten(0, 1), gt.flatten(0, 1)).min().item(),
    )
    noisy = parsing[parsing.noise > 0].set_index(["modality", "parser"])
    clean = parsing[(parsing.noise == 0) & (parsing.parser == "prototype oracle")]
    maps = detection["mAP@[.5:.95]"].to_numpy()
    findings = report.claims_table(
        {
            "masks agree with the rendered frames (every sprite pixel)": (
                "construction",
                agreement == 1.0,
            ),
            "warping by the analytic flow reproduces the next frame (error < 1/4 of no warp)": (
                "construction",
                flow["warp_error"] < 0.25 * flow["identity_error"],
            ),
            "branch frequencies match the stated distribution (4σ)": (
                "construction",
                bool(branches["within 4σ"].all()),
            ),
            "futures share one past up to the branch frame": ("construction", same_past),
            "segment annotations agree with the generating timeline": (
                "construction",
                annotations_agree,
            ),
            "ActivityNet mAP is 1 on perfect detections": (
                "sanity check",
                bool(np.isclose(maps[0], 1.0)),
            ),
            "mAP falls as boundaries are jittered": (
                "sanity check",
                bool((np.diff(maps) < 0).all()),
            ),
            "J and F are 1 on perfect masks": ("sanity check", bool(min(perfect) == 1.0)),
            "copying the first mask decays (J decay > 0)": (
                "sanity check",
                bool(vos.loc["J", "decay"] > 0),
            ),
            "without noise, the prototype oracle recovers the dense labels (F = 1)": (
                "construction",
                bool((clean[["segment F", "event F"]] == 1.0).all().all()),
            ),
            "weak labels alone do not localise events (F below the noisy oracle)": (
                "sanity check",
                bool(
                    (
                        noisy.xs("weak labels everywhere", level="parser")["segment F"]
                        < noisy.xs("prototype oracle", level="parser")["segment F"]
                    ).all()
                ),
            ),
        }
    )
    checks = {
        "mask_agreement": agreement,
        **flow,
        "same_past": same_past,
        "annotations_agree": annotations_agree,
    }
    return {
        "checks": checks,
        "branches": branches,
        "detection": detection,
        "parsing": parsing,
        "vos": vos.reset_index(),
        "findings": findings,
    }
