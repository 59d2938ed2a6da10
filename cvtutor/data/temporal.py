"""Untrimmed feature sequences: actions as start-to-end prototype paths in a drifting background.

The stand-in for pre-extracted snippet features of untrimmed video (ActivityNet, THUMOS14) in the
``world_video`` chapter; used by E09 AherNet, which learns to localise actions of classes known
only from *trimmed moments*. A video is ``T`` snippets of ``D``-dimensional features:

    x_t = w_t + sum_i [t in i] ((1 - tau_it) a_c + tau_it b_c) + kappa [t near i] q_c + sigma eps_t,

``w`` a background random walk (``w_t = w_{t-1} + sigma_w eta_t``, per video), instance ``i`` of
class ``c`` spanning snippets ``[s_i, e_i)`` with relative position ``tau = (t - s + 1/2)/(e - s)``
going from the class's start prototype ``a_c`` to its end prototype ``b_c``, ``q_c`` the class's
*context* pattern added to the ``context`` snippets either side of each instance (the background
of a video tells its class), and white noise. Instances do not overlap; each video holds one
class (as most ActivityNet videos do).

What it cannot stand for: actions whose appearance is not a straight path in feature space,
overlapping instances of different classes, cuts and shot changes, features of a real backbone.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch


@dataclass(frozen=True)
class UntrimmedFeatures:
    """A generator of untrimmed feature sequences and trimmed moments of ``n_classes`` actions.

    ``length`` T snippets of ``dim`` D features, ``snippet_seconds`` per snippet; 1 to
    ``max_instances`` instances per video of ``min_duration..max_duration`` snippets;
    ``separation`` the prototype norm, ``walk`` the random walk's step std, ``context`` snippets of class context of weight
    ``context_weight`` either side of each instance, ``noise`` the white noise std. The class
    prototypes depend on ``prototype_seed`` only, so train and test videos (other ``seed``) share
    classes.
    """

    n_classes: int = 5
    dim: int = 16
    length: int = 64
    max_instances: int = 3
    min_duration: int = 4
    max_duration: int = 16
    separation: float = 2.0
    walk: float = 0.1
    context: int = 3
    context_weight: float = 0.5
    noise: float = 0.3
    snippet_seconds: float = 0.5
    prototype_seed: int = 0
    device: str | torch.device | None = None

    def __post_init__(self):
        if self.n_classes < 1 or self.dim < 1 or self.max_instances < 1:
            raise ValueError("n_classes, dim and max_instances must be >= 1")
        if not 1 <= self.min_duration <= self.max_duration:
            raise ValueError(
                f"need 1 <= min_duration <= max_duration, got {self.min_duration}, "
                f"{self.max_duration}"
            )
        if self.max_instances * self.max_duration > self.length:
            raise ValueError(
                f"max_instances x max_duration = {self.max_instances * self.max_duration} "
                f"snippets do not fit in length = {self.length}"
            )

    @property
    def _dev(self) -> torch.device:
        return torch.device(self.device) if self.device is not None else torch.device("cpu")

    def prototypes(self) -> dict[str, torch.Tensor]:
        """``start``, ``end`` and ``context`` prototypes, each ``(n_classes, dim)``, of norm
        ``separation`` (context: half of it)."""
        g = torch.Generator(device=self._dev).manual_seed(int(self.prototype_seed) + 7919)
        p = torch.randn(3, self.n_classes, self.dim, generator=g, device=self._dev)
        p = self.separation * p / p.norm(dim=-1, keepdim=True)
        return {"start": p[0], "end": p[1], "context": 0.5 * p[2]}

    def _timeline(self, n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        """Non-overlapping instances: ``start, end (n, M)`` snippets, ``valid (n, M)``,
        ``label (n,)``."""
        dev, M, T = self._dev, self.max_instances, self.length
        label = torch.randint(self.n_classes, (n,), generator=g, device=dev)
        count = torch.randint(1, M + 1, (n,), generator=g, device=dev)
        valid = torch.arange(M, device=dev)[None] < count[:, None]
        dur = torch.randint(
            self.min_duration, self.max_duration + 1, (n, M), generator=g, device=dev
        )
        dur = torch.where(valid, dur, torch.zeros_like(dur))
        free = T - dur.sum(1)  # >= 0 by the check
        w = torch.rand(n, M + 1, generator=g, device=dev)
        w = torch.where(torch.cat([valid, torch.ones(n, 1, dtype=torch.bool, device=dev)], 1), w, 0)
        gaps = torch.floor(w / w.sum(1, keepdim=True) * free[:, None]).long()
        start = torch.cumsum(gaps[:, :M], 1) + torch.cumsum(dur, 1) - dur
        return {"start": start, "end": start + dur, "valid": valid, "label": label}

    def sample(self, n: int, seed: int = 0) -> dict:
        """``n`` untrimmed videos.

        Returns ``features (n, T, D)``; ``snippet_labels (n, T)`` (the class inside an instance, -1
        outside); ``label (n,)``; the timeline ``start, end, valid (n, M)`` in snippets; and
        ``segments``: a DataFrame ``video_id, label, start, end`` (snippets, end exclusive),
        ``t_start, t_end`` (seconds) and ``s_norm, e_norm`` (normalised time in [0, 1]).
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        dev, T = self._dev, self.length
        g = torch.Generator(device=dev).manual_seed(int(seed))
        tl = self._timeline(n, g)
        P = self.prototypes()
        t = torch.arange(T, device=dev, dtype=torch.float32)
        s, e = tl["start"].float()[..., None], tl["end"].float()[..., None]  # n M 1
        inside = (t >= s) & (t < e) & tl["valid"][..., None]  # n M T
        tau = ((t - s + 0.5) / (e - s).clamp_min(1)).clamp(0, 1)
        near = ((t >= s - self.context) & (t < e + self.context) & tl["valid"][..., None]).any(1)
        act = inside.any(1)
        tau_t = (tau * inside).sum(1)  # n T
        a, b, q = (P[k][tl["label"]] for k in ("start", "end", "context"))  # n D
        action = (1 - tau_t)[..., None] * a[:, None] + tau_t[..., None] * b[:, None]
        walk = torch.cumsum(self.walk * torch.randn(n, T, self.dim, generator=g, device=dev), 1)
        ctx = (near & ~act).float()[..., None] * self.context_weight * q[:, None]
        feats = (
            walk
            + act.float()[..., None] * action
            + ctx
            + self.noise * torch.randn(n, T, self.dim, generator=g, device=dev)
        )
        snip = torch.where(act, tl["label"][:, None], torch.full_like(act, -1, dtype=torch.long))
        return {
            "features": feats,
            "snippet_labels": snip,
            "label": tl["label"],
            **tl,
            "segments": self.segments(tl),
        }

    def segments(self, timeline: dict[str, torch.Tensor]) -> pd.DataFrame:
        """The timeline's instances as annotations in snippets, seconds and normalised time."""
        vid, slot = torch.nonzero(timeline["valid"], as_tuple=True)
        s = timeline["start"][vid, slot].cpu().numpy()
        e = timeline["end"][vid, slot].cpu().numpy()
        return pd.DataFrame(
            {
                "video_id": vid.cpu().numpy(),
                "label": timeline["label"][vid].cpu().numpy(),
                "start": s,
                "end": e,
                "t_start": s * self.snippet_seconds,
                "t_end": e * self.snippet_seconds,
                "s_norm": s / self.length,
                "e_norm": e / self.length,
            }
        )

    def trimmed_moments(self, n: int, length: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
        """``n`` trimmed moments: ``features (n, length, D)`` of one instance each, start to end,
        no background or context (what AherNet's moment classes come with), ``label (n,)``."""
        dev = self._dev
        g = torch.Generator(device=dev).manual_seed(int(seed) + 104729)
        P = self.prototypes()
        label = torch.randint(self.n_classes, (n,), generator=g, device=dev)
        tau = (torch.arange(length, device=dev, dtype=torch.float32) + 0.5) / length
        x = (1 - tau)[None, :, None] * P["start"][label][:, None] + tau[None, :, None] * P["end"][
            label
        ][:, None]
        return {
            "features": x + self.noise * torch.randn(n, length, self.dim, generator=g, device=dev),
            "label": label,
        }
