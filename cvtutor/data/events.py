"""Audio-visual events: per-video timelines whose events are heard, seen, both, or out of sync.

The stand-in for the Look, Listen and Parse (LLP) data of E26 (weakly supervised audio-visual
video parsing), derived in the ``world_video`` chapter. A video is ``T`` one-second snippets;
it holds 1..``max_classes`` event classes, each one event with an onset and a duration and a
*modality pattern* from :data:`PATTERNS`:

* ``av``: heard and seen over the same snippets;
* ``audio``: heard only (an off-screen sound);
* ``visual``: seen only (a silent object);
* ``async``: heard and seen, the visual event shifted by 1..``max_shift`` snippets (kept inside
  the clip: the shift flips sign, then is clamped, so a long event may shift less).

Features per modality ``m`` (audio, visual) and snippet ``t``:

    f^m_t = sum_c y^m_{c,t} u_c p^m_c + z^m + sigma eps_t,

with ``y^m`` the dense labels, ``u_c`` the event's intensity, ``p^m_c`` the class's prototype in
that modality, ``z^m`` a per-video scene vector and white noise. The weak label of a video is
``max_t max_m y^m_{c,t}``, all that AVVP trains from.

What it cannot stand for: sound mixing (audio of two classes overlapping is a plain sum here),
visual occlusion, events that repeat within a video, label noise of real annotators.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PATTERNS = ("av", "audio", "visual", "async")


@dataclass(frozen=True)
class AudioVisualEvents:
    """A generator of audio-visual event videos with dense and weak labels.

    ``n_classes`` C event classes, ``snippets`` T, ``audio_dim``/``visual_dim`` feature sizes;
    ``pattern_probs`` the probability of each of :data:`PATTERNS` (LLP-like default: 40 % AV,
    25 % audio-only, 15 % visual-only, 20 % asynchronous); ``min_duration..max_duration`` snippets
    per event; ``max_shift`` the asynchronous offset; intensities uniform in ``intensity``;
    ``scene`` the std of the per-video scene vector, ``noise`` of the white noise (``visual_noise``,
    if given, that of the visual stream: a weaker visual signal, the audio-heavy imbalance of
    AudioSet behind AVVP's modality bias). Prototypes depend on ``prototype_seed`` only.
    """

    n_classes: int = 10
    snippets: int = 10
    max_classes: int = 3
    audio_dim: int = 16
    visual_dim: int = 16
    pattern_probs: tuple[float, float, float, float] = (0.4, 0.25, 0.15, 0.2)
    min_duration: int = 2
    max_duration: int = 6
    max_shift: int = 3
    intensity: tuple[float, float] = (0.7, 1.3)
    scene: float = 0.5
    noise: float = 0.3
    visual_noise: float | None = None
    prototype_seed: int = 0
    device: str | torch.device | None = None

    def __post_init__(self):
        if (
            len(self.pattern_probs) != len(PATTERNS)
            or min(self.pattern_probs) < 0
            or abs(sum(self.pattern_probs) - 1) > 1e-6
        ):
            raise ValueError(
                f"pattern_probs must be {len(PATTERNS)} probabilities summing to 1 (one per "
                f"{PATTERNS}), got {self.pattern_probs}"
            )
        if not 1 <= self.max_classes <= self.n_classes:
            raise ValueError(
                f"need 1 <= max_classes <= n_classes, got {self.max_classes}, {self.n_classes}"
            )
        if not 1 <= self.min_duration <= self.max_duration <= self.snippets:
            raise ValueError(
                f"need 1 <= min_duration <= max_duration <= snippets, got "
                f"{self.min_duration}, {self.max_duration}, {self.snippets}"
            )

    @property
    def _dev(self) -> torch.device:
        return torch.device(self.device) if self.device is not None else torch.device("cpu")

    def prototypes(self) -> dict[str, torch.Tensor]:
        """Unit-norm class prototypes ``audio (C, Da)`` and ``visual (C, Dv)``."""
        g = torch.Generator(device=self._dev).manual_seed(int(self.prototype_seed) + 31337)
        pa = torch.randn(self.n_classes, self.audio_dim, generator=g, device=self._dev)
        pv = torch.randn(self.n_classes, self.visual_dim, generator=g, device=self._dev)
        return {
            "audio": pa / pa.norm(dim=1, keepdim=True),
            "visual": pv / pv.norm(dim=1, keepdim=True),
        }

    def sample(self, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
        """``n`` videos. Keys: ``audio (n, T, Da)``, ``visual (n, T, Dv)`` features; dense labels
        ``audio_labels``, ``visual_labels``, ``av_labels`` (both), each ``(n, C, T)`` bool; ``weak
        (n, C)``; the timeline: ``present (n, C)``, ``pattern (n, C)`` (index into
        :data:`PATTERNS`, -1 if absent), ``onset``, ``duration``, ``shift``, ``intensity`` (n, C);
        ``scene_audio (n, Da)``, ``scene_visual (n, Dv)``."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        dev, C, T = self._dev, self.n_classes, self.snippets
        g = torch.Generator(device=dev).manual_seed(int(seed))
        k = torch.randint(1, self.max_classes + 1, (n,), generator=g, device=dev)
        rank = torch.argsort(torch.rand(n, C, generator=g, device=dev), dim=1).argsort(1)
        present = rank < k[:, None]  # k random classes
        pattern = torch.multinomial(
            torch.tensor(self.pattern_probs, device=dev), n * C, replacement=True, generator=g
        ).reshape(n, C)
        pattern = torch.where(present, pattern, torch.full_like(pattern, -1))
        duration = torch.randint(
            self.min_duration, self.max_duration + 1, (n, C), generator=g, device=dev
        )
        onset = (torch.rand(n, C, generator=g, device=dev) * (T - duration + 1)).long()
        sign = torch.where(torch.rand(n, C, generator=g, device=dev) < 0.5, -1, 1)
        shift = sign * torch.randint(1, self.max_shift + 1, (n, C), generator=g, device=dev)
        shift = torch.where(pattern == PATTERNS.index("async"), shift, torch.zeros_like(shift))
        last = T - duration  # keep it in the clip:
        fits = lambda s: (onset + s >= 0) & (onset + s <= last)  # noqa: E731
        shift = torch.where(fits(shift), shift, -shift)  # flip, then clamp
        shift = torch.minimum(torch.maximum(onset + shift, torch.zeros_like(onset)), last) - onset
        lo, hi = self.intensity
        inten = lo + (hi - lo) * torch.rand(n, C, generator=g, device=dev)
        t = torch.arange(T, device=dev)
        on = lambda s: (t >= s[..., None]) & (t < (s + duration)[..., None])  # noqa: E731
        heard = present & (pattern != PATTERNS.index("visual"))
        seen = present & (pattern != PATTERNS.index("audio"))
        audio_labels = on(onset) & heard[..., None]
        visual_labels = on(onset + shift) & seen[..., None]
        P = self.prototypes()
        scene_a = self.scene * torch.randn(n, self.audio_dim, generator=g, device=dev)
        scene_v = self.scene * torch.randn(n, self.visual_dim, generator=g, device=dev)
        feats = {}
        v_noise = self.noise if self.visual_noise is None else self.visual_noise
        for name, y, proto, z, d, sigma in (
            ("audio", audio_labels, P["audio"], scene_a, self.audio_dim, self.noise),
            ("visual", visual_labels, P["visual"], scene_v, self.visual_dim, v_noise),
        ):
            w = y.float() * inten[..., None]  # n C T
            feats[name] = (
                torch.einsum("nct,cd->ntd", w, proto)
                + z[:, None]
                + sigma * torch.randn(n, T, d, generator=g, device=dev)
            )
        return {
            **feats,
            "audio_labels": audio_labels,
            "visual_labels": visual_labels,
            "av_labels": audio_labels & visual_labels,
            "weak": (audio_labels | visual_labels).any(-1),
            "present": present,
            "pattern": pattern,
            "onset": onset,
            "duration": duration,
            "shift": shift,
            "intensity": inten,
            "scene_audio": scene_a,
            "scene_visual": scene_v,
        }
