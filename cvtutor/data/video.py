"""Sprite videos: digits moving by known laws over a panning textured background.

The video world of the book's "Video and time" section (chapter ``world_video``; used by E09
AherNet, E19 MemDPC, E26 AVVP and E39 GraphMemVOS). Every frame is rendered in one batched
``grid_sample`` per sprite layer: sprite ``k`` at frame ``t`` is a digit texture (scikit-learn's
bundled 8x8 digits) placed by the similarity transform

    u = R(-theta_tk) (p - c_tk) / (s_tk / 2),      p = pixel centre (x, y) in pixels,

so its position ``c``, size ``s`` and angle ``theta`` are known exactly in every frame. From them
follow, in closed form: per-frame instance masks, the optical flow of every pixel (sprites and the
panning background), occlusion order, and the first-frame masks that semi-supervised VOS starts
from. The *action class* of a video is the motion law of its main sprite (sprite 0):
:data:`MOTIONS`. A stochastic *branch point* rotates the main sprite's future displacement by one
of :data:`BRANCHES`, drawn with stated probabilities, so that the future given the past is
multimodal (what MemDPC's memory is meant to capture).

What it cannot stand for: articulated or non-rigid motion, lighting, motion blur, 3-D occlusion
geometry, camera zoom or rotation (the camera only pans), textures that change with viewpoint.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MOTIONS = ("drift", "bounce", "circle_cw", "circle_ccw", "oscillate", "zoom", "blink")
#: Branch outcomes: the angle (degrees) by which the main sprite's displacement after the branch
#: frame is rotated (image coordinates, y down: +90 turns clockwise on screen).
BRANCHES = {"straight": 0.0, "right": 90.0, "left": -90.0, "reverse": 180.0}
_N_WAVES = 4  # sinusoids of the background texture


@functools.lru_cache(maxsize=1)
def _digit_bank() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits of scikit-learn as ``(1797, 8, 8)`` intensities in [0, 1] and labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (
        torch.tensor(bunch.images, dtype=torch.float32) / 16.0,
        torch.tensor(bunch.target, dtype=torch.long),
    )


def digit_sprites(split: str = "train", device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The sprite textures of a split: ``(N, 8, 8)`` intensities and ``(N,)`` digit classes.

    ``train`` holds the first two thirds of scikit-learn's digits, ``test`` the last third (other
    writers' instances), so a test video never reuses a training sprite.
    """
    images, labels = _digit_bank()
    cut = 2 * len(images) // 3
    if split == "train":
        sl = slice(0, cut)
    elif split == "test":
        sl = slice(cut, None)
    else:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return images[sl].to(device), labels[sl].to(device)


def class_table(labels: torch.Tensor, n_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, the indices of its instances (padded with its first) ``(n_classes, max_count)``
    and the counts ``(n_classes,)``: ``table[c, floor(u * count[c])]`` draws an instance of class
    c on the device without a host sync."""
    order = torch.argsort(labels.cpu(), stable=True)
    counts = torch.bincount(labels.cpu(), minlength=n_classes)
    start = torch.cumsum(counts, 0) - counts
    j = torch.arange(int(counts.max()))
    pos = start[:, None] + torch.minimum(j[None], (counts - 1).clamp_min(0)[:, None])
    return order[pos].to(labels.device), counts.to(labels.device)


def pixel_grid(height: int, width: int | None = None, device=None) -> torch.Tensor:
    """Pixel centres ``(H, W, 2)`` as (x, y) in pixels: pixel (i, j) has centre (j+.5, i+.5)."""
    ys = torch.arange(height, device=device, dtype=torch.float32) + 0.5
    xs = torch.arange(width or height, device=device, dtype=torch.float32) + 0.5
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy], -1)


def _rot(theta: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 2, 2)`` of angles ``theta (...)`` in radians."""
    c, s = torch.cos(theta), torch.sin(theta)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _apply(m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``m (..., 2, 2)`` applied to ``v (..., H, W, 2)``, written out (a batched 2x2 product is
    far faster elementwise than as ``bmm``)."""
    m = m[..., None, None, :, :]
    x, y = v[..., 0], v[..., 1]
    return torch.stack(
        [m[..., 0, 0] * x + m[..., 0, 1] * y, m[..., 1, 0] * x + m[..., 1, 1] * y], -1
    )


def sprite_coords(
    p: torch.Tensor, centre: torch.Tensor, scale: torch.Tensor, angle: torch.Tensor
) -> torch.Tensor:
    """The sprite coordinates ``u = R(-theta)(p - c)/(s/2)`` (in [-1, 1] on the sprite).

    ``p (H, W, 2)`` pixel centres; ``centre (..., 2)``, ``scale (...)``, ``angle (...)``.
    Returns ``(..., H, W, 2)``, the ``grid`` argument of ``grid_sample`` (align_corners=False).
    """
    m = _rot(-angle) / (scale / 2)[..., None, None]
    d = p - centre[..., None, None, :]
    return _apply(m, d)


def sprite_point_to_pixel(
    u: torch.Tensor, centre: torch.Tensor, scale: torch.Tensor, angle: torch.Tensor
) -> torch.Tensor:
    """The inverse of :func:`sprite_coords`: ``p = c + (s/2) R(theta) u``, ``u (..., H, W, 2)``."""
    m = _rot(angle) * (scale / 2)[..., None, None]
    return _apply(m, u) + centre[..., None, None, :]


def background(
    p: torch.Tensor, offset: torch.Tensor, waves: dict[str, torch.Tensor]
) -> torch.Tensor:
    """The panning texture: ``b(p) = base + sum_i a_i cos(k_i . (p + o) + phi_i)`` per channel.

    ``p (H, W, 2)``, ``offset (B, T, 2)`` (the camera's pan), ``waves``: ``base (B, 3)``,
    ``k (B, n, 2)``, ``phase (B, n)``, ``amp (B, n, 3)``. Returns ``(B, T, 3, H, W)``. A point of
    texture seen at ``p`` in frame t is seen at ``p - (o_{t+1} - o_t)`` in frame t+1.
    """
    q = p[None, None] + offset[:, :, None, None, :]  # B T H W 2
    k = waves["k"][:, None, None, None]  # B 1 1 1 n 2
    arg = q[..., None, 0] * k[..., 0] + q[..., None, 1] * k[..., 1]
    wave = torch.cos(arg + waves["phase"][:, None, None, None])  # B T H W n
    tex = (wave[:, :, None] * waves["amp"].transpose(1, 2)[:, None, :, None, None]).sum(-1)
    return (waves["base"][:, None, :, None, None] + tex).clamp(0, 1)


def motion_path(
    motion: torch.Tensor,
    t: torch.Tensor,
    start: torch.Tensor,
    velocity: torch.Tensor,
    radius: torch.Tensor,
    omega: torch.Tensor,
    phase: torch.Tensor,
    size: int,
    margin: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre ``(B, T, 2)``, log-scale change ``(B, T)`` and visibility ``(B, T)`` per motion law.

    ``motion (B,)`` indexes :data:`MOTIONS`; ``t (T,)`` frame times; ``start (B, 2)``, ``velocity
    (B, 2)`` px/frame, ``radius (B,)`` px, ``omega (B,)`` rad/frame, ``phase (B,)``. The laws:
    drift ``c0 + v t``; bounce: drift reflected at the walls ``[margin, size - margin]``; circle:
    ``c0 + r (cos(phi), sin(phi))`` with ``phi = phase + omega t`` (cw, y down) or ``- omega t``
    (ccw); oscillate: ``c0 + r sin(omega t + phase) v/|v|``; zoom: a slow drift ``c0 + v t/4``,
    size growing or shrinking (sign from ``phase``) by up to 2.2x over the clip; blink: a slow
    drift, visible on even periods of ``ceil(pi/(2 omega))`` frames.
    """
    tt = t[None, :, None]
    m = motion[:, None, None]
    lin = start[:, None] + velocity[:, None] * tt
    lo, hi = margin, size - margin
    span = hi - lo
    folded = torch.remainder(lin - lo, 2 * span)
    bounce = lo + torch.where(folded > span, 2 * span - folded, folded)
    sign = torch.where(m == MOTIONS.index("circle_ccw"), -1.0, 1.0)[..., 0]
    phi = phase[:, None] + sign * omega[:, None] * t[None]
    circle = start[:, None] + radius[:, None, None] * torch.stack([phi.cos(), phi.sin()], -1)
    unit = velocity / velocity.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    osc = (
        start[:, None]
        + (radius[:, None] * torch.sin(omega[:, None] * t + phase[:, None]))[..., None]
        * unit[:, None]
    )
    slow = start[:, None] + 0.25 * velocity[:, None] * tt
    centre = lin
    for name, path in (
        ("bounce", bounce),
        ("circle_cw", circle),
        ("circle_ccw", circle),
        ("oscillate", osc),
        ("zoom", slow),
        ("blink", slow),
    ):
        centre = torch.where(m == MOTIONS.index(name), path, centre)
    zoom_rate = (
        torch.where(phase > math.pi, 1.0, -1.0) * math.log(2.2) * omega / 0.9 / max(len(t) - 1, 1)
    )
    log_scale = torch.where(
        motion[:, None] == MOTIONS.index("zoom"),
        zoom_rate[:, None] * t[None],
        torch.zeros_like(phi),
    )
    period = torch.ceil(math.pi / (2 * omega)).clamp_min(1)
    on = torch.remainder(torch.div(t[None], period[:, None], rounding_mode="floor"), 2) == 0
    visible = torch.where(motion[:, None] == MOTIONS.index("blink"), on, torch.ones_like(on))
    return centre, log_scale, visible


@dataclass(frozen=True)
class SpriteVideos:
    """A generator of sprite videos ``(n, T, 3, S, S)`` with masks, flow and their causes.

    ``size`` S pixels, ``frames`` T, ``n_sprites`` K (sprite 0 acts the class's motion law, the
    others are distractors that drift or bounce), ``sprite_size`` the mean sprite side in pixels.
    Per video and sprite: ``scale_drift`` (log-size change per frame, std), ``rotation_drift``
    (rad/frame, std), ``colour_drift`` (colour change per frame, std); ``pan`` the camera's pan
    speed (px/frame, max); ``p_lookalike`` the chance that a distractor is another instance of
    the main digit's class in the main sprite's colour; ``p_leave`` the chance that the main
    sprite leaves the frame and returns (an excursion of ``size`` px peaking mid-video);
    ``branch_frame`` the branch point (None: no branching) and ``branch_probs`` the probability
    of each of :data:`BRANCHES`. ``motions`` restricts the classes (names from :data:`MOTIONS`).
    """

    size: int = 32
    frames: int = 8
    n_sprites: int = 2
    sprite_size: float = 14.0
    scale_drift: float = 0.02
    rotation_drift: float = 0.05
    colour_drift: float = 0.0
    pan: float = 1.0
    p_lookalike: float = 0.3
    p_leave: float = 0.0
    branch_frame: int | None = None
    branch_probs: tuple[float, ...] = (0.4, 0.2, 0.2, 0.2)
    motions: tuple[str, ...] = MOTIONS
    split: str = "train"
    device: str | torch.device | None = None

    def __post_init__(self):
        if self.size < 8 or self.frames < 2 or self.n_sprites < 1:
            raise ValueError(
                f"need size >= 8, frames >= 2, n_sprites >= 1; got {self.size}, "
                f"{self.frames}, {self.n_sprites}"
            )
        unknown = [m for m in self.motions if m not in MOTIONS]
        if unknown or not self.motions:
            raise ValueError(f"motions must be a non-empty subset of {MOTIONS}, got {self.motions}")
        if (
            len(self.branch_probs) != len(BRANCHES)
            or min(self.branch_probs) < 0
            or abs(sum(self.branch_probs) - 1) > 1e-6
        ):
            raise ValueError(
                f"branch_probs must be {len(BRANCHES)} probabilities summing to 1 (one "
                f"per {tuple(BRANCHES)}), got {self.branch_probs}"
            )
        if self.branch_frame is not None and not 0 < self.branch_frame < self.frames - 1:
            raise ValueError(
                f"branch_frame must be in [1, frames - 2] = [1, {self.frames - 2}], "
                f"got {self.branch_frame}"
            )
        if not (0 <= self.p_lookalike <= 1 and 0 <= self.p_leave <= 1):
            raise ValueError("p_lookalike and p_leave must be probabilities")

    @property
    def classes(self) -> tuple[str, ...]:
        return self.motions

    def branch_distribution(self) -> dict[str, float]:
        """The stated distribution of futures: ``{branch name: probability}``."""
        return dict(zip(BRANCHES, self.branch_probs))

    def _params(self, n: int, g: torch.Generator, dev) -> dict[str, torch.Tensor]:
        """The random causes of ``n`` videos (all drawn in one go, on ``dev``)."""
        S, K = self.size, self.n_sprites

        def u(*shape, lo=0.0, hi=1.0):
            return lo + (hi - lo) * torch.rand(*shape, generator=g, device=dev)

        tex, digit_class = digit_sprites(self.split, dev)
        motion_ids = torch.tensor([MOTIONS.index(m) for m in self.motions], device=dev)
        label = torch.randint(len(self.motions), (n,), generator=g, device=dev)
        idx = torch.randint(len(tex), (n, K), generator=g, device=dev)
        # look-alikes: distractor k takes a random instance of the main sprite's class
        table, counts = class_table(digit_class)
        main_class = digit_class[idx[:, 0]]
        cnt = counts[main_class][:, None]
        alike_idx = table[main_class[:, None], (u(n, K) * cnt).long().clamp_max(cnt - 1)]
        lookalike = (u(n, K) < self.p_lookalike) & (torch.arange(K, device=dev) > 0)
        idx = torch.where(lookalike, alike_idx, idx)
        hue = u(n, K, 3, lo=0.35, hi=1.0)
        hue = torch.where(lookalike[..., None], hue[:, :1].expand_as(hue), hue)
        margin = self.sprite_size / 2
        return {
            "label": label,
            "motion": torch.cat(
                [motion_ids[label][:, None], torch.where(u(n, K - 1) < 0.5, 0, 1)], 1
            ),
            "sprite_index": idx,
            "digit": digit_class[idx],
            "lookalike": lookalike,
            "colour": hue,
            "colour_rate": self.colour_drift * torch.randn(n, K, 3, generator=g, device=dev),
            "start": u(n, K, 2, lo=margin + 2, hi=S - margin - 2),
            "velocity": torch.where(u(n, K, 2) < 0.5, -1.0, 1.0)
            * u(n, K, 2, lo=0.6, hi=1.8)
            * S
            / 32,
            "radius": u(n, K, lo=0.15 * S, hi=0.25 * S),
            "omega": u(n, K, lo=0.5, hi=0.9),
            "phase": u(n, K, hi=2 * math.pi),
            "size0": self.sprite_size * u(n, K, lo=0.85, hi=1.15),
            "size_rate": self.scale_drift * torch.randn(n, K, generator=g, device=dev),
            "angle0": u(n, K, lo=-0.3, hi=0.3),
            "angle_rate": self.rotation_drift * torch.randn(n, K, generator=g, device=dev),
            "depth": torch.argsort(u(n, K), dim=1),
            "pan": self.pan * u(n, 2, lo=-1.0, hi=1.0),
            "pan0": u(n, 2, hi=100.0),
            "wave_base": u(n, 3, lo=0.05, hi=0.3),
            "wave_k": u(n, _N_WAVES, 2, lo=-0.6, hi=0.6) * 32 / S,
            "wave_phase": u(n, _N_WAVES, hi=2 * math.pi),
            "wave_amp": u(n, _N_WAVES, 3, lo=0.0, hi=0.06),
            "branch": torch.multinomial(
                torch.tensor(self.branch_probs, device=dev), n, replacement=True, generator=g
            ),
            "leave": u(n) < self.p_leave,
            "leave_dir": u(n, hi=2 * math.pi),
        }

    def sample(self, n: int, seed: int = 0, shared_past: bool = False) -> dict[str, torch.Tensor]:
        """``n`` videos. With ``shared_past`` every video has the same causes (those of the first)
        except its branch draw, so all pasts are identical and only the futures differ.

        Keys (T frames, K sprites, S pixels; sprite k's mask id is k + 1, 0 is background):
        ``video (n,T,3,S,S)`` in [0, 1]; ``masks (n,T,S,S)`` long, the visible sprite of each
        pixel; ``first_mask (n,S,S)``; ``label (n,)`` index into :attr:`classes`; ``digit (n,K)``;
        ``lookalike (n,K)``; ``colour (n,T,K,3)``; ``centre (n,T,K,2)`` px; ``scale (n,T,K)`` px;
        ``angle (n,T,K)`` rad; ``visible (n,T,K)`` (not blinked off); ``depth (n,K)`` sprite ids
        back to front; ``pan (n,T,2)`` the camera offset; ``flow (n,T-1,2,S,S)``: where the point
        seen at pixel p of frame t is in frame t+1, minus p (dx, dy in px); ``flow_back
        (n,T-1,2,S,S)``: where the point seen at p in frame t+1 was in frame t, minus p;
        ``branch (n,)`` index into :data:`BRANCHES` (-1 without a branch point); ``leave (n,)``.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        dev = torch.device(self.device) if self.device is not None else torch.device("cpu")
        g = torch.Generator(device=dev).manual_seed(int(seed))
        P = self._params(n, g, dev)
        if shared_past:
            P = {
                k: (v if k == "branch" else v[:1].expand(n, *v.shape[1:]).contiguous())
                for k, v in P.items()
            }
        return self._render(P, n, dev)

    def _render(self, P: dict[str, torch.Tensor], n: int, dev) -> dict[str, torch.Tensor]:
        S, T, K = self.size, self.frames, self.n_sprites
        t = torch.arange(T, device=dev, dtype=torch.float32)
        flat = lambda x: x.reshape(n * K, *x.shape[2:])  # noqa: E731
        centre, log_scale, visible = motion_path(
            flat(P["motion"]),
            t,
            flat(P["start"]),
            flat(P["velocity"]),
            flat(P["radius"]),
            flat(P["omega"]),
            flat(P["phase"]),
            S,
            self.sprite_size / 2,
        )
        centre = centre.reshape(n, K, T, 2).transpose(1, 2)
        log_scale = log_scale.reshape(n, K, T).transpose(1, 2)
        visible = visible.reshape(n, K, T).transpose(1, 2)
        centre = self._branch_and_leave(centre, P, t)
        scale = P["size0"][:, None] * torch.exp(log_scale + P["size_rate"][:, None] * t[:, None])
        angle = P["angle0"][:, None] + P["angle_rate"][:, None] * t[:, None]
        colour = (P["colour"][:, None] + P["colour_rate"][:, None] * t[:, None, None]).clamp(0.2, 1)
        pan = P["pan0"][:, None] + P["pan"][:, None] * t[None, :, None]
        p = pixel_grid(S, device=dev)
        waves = {
            "base": P["wave_base"],
            "k": P["wave_k"],
            "phase": P["wave_phase"],
            "amp": P["wave_amp"],
        }
        video = background(p, pan, waves)
        grid = sprite_coords(p, centre, scale, angle)  # n T K S S 2
        tex = digit_sprites(self.split, dev)[0][P["sprite_index"]]  # n K 8 8
        tex = tex[:, None].expand(n, T, K, 8, 8).reshape(n * T * K, 1, 8, 8)
        inten = F.grid_sample(
            tex,
            grid.reshape(n * T * K, S, S, 2),
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        ).reshape(n, T, K, S, S)
        alpha = (inten > 0.5) & visible[..., None, None]
        masks = torch.zeros(n, T, S, S, dtype=torch.long, device=dev)
        ar = torch.arange(n, device=dev)
        for d in range(K):  # back to front: a later sprite covers an earlier one
            k = P["depth"][:, d]
            a = alpha[ar, :, k]  # n T S S
            shade = colour[ar, :, k][..., None, None] * (0.6 + 0.4 * inten[ar, :, k])[:, :, None]
            video = torch.where(a[:, :, None], shade, video)
            masks = torch.where(a, (k + 1)[:, None, None, None], masks)
        flow, flow_back = self._flow(p, masks, centre, scale, angle, pan)
        branch = P["branch"] if self.branch_frame is not None else torch.full_like(P["branch"], -1)
        return {
            "video": video,
            "masks": masks,
            "first_mask": masks[:, 0],
            "label": P["label"],
            "digit": P["digit"],
            "lookalike": P["lookalike"],
            "colour": colour,
            "centre": centre,
            "scale": scale,
            "angle": angle,
            "visible": visible,
            "depth": P["depth"],
            "pan": pan,
            "flow": flow,
            "flow_back": flow_back,
            "branch": branch,
            "leave": P["leave"],
        }

    def _branch_and_leave(
        self, centre: torch.Tensor, P: dict[str, torch.Tensor], t: torch.Tensor
    ) -> torch.Tensor:
        """The main sprite's path after the branch point (its displacement since the branch frame
        rotated by the drawn angle) and its excursion out of the frame (leave and return)."""
        main = centre[:, :, 0]  # n T 2
        if self.branch_frame is not None:
            b = self.branch_frame
            ang = torch.tensor(list(BRANCHES.values()), device=centre.device)[P["branch"]]
            rot = _rot(ang * math.pi / 180)[:, None]  # n 1 2 2
            disp = main - main[:, b : b + 1]
            turned = main[:, b : b + 1] + torch.einsum("ntij,ntj->nti", rot, disp)
            main = torch.where((t > b)[None, :, None], turned, main)
        T = len(t)
        bump = (1 - (2 * t / max(T - 1, 1) - 1).abs()) * 2  # 0 .. 2 .. 0
        bump = bump.clamp(max=1.0)  # out for the middle
        d = torch.stack([P["leave_dir"].cos(), P["leave_dir"].sin()], -1)
        reach = 1.5 * self.size + self.sprite_size
        main = main + (P["leave"].float()[:, None, None] * reach * bump[None, :, None] * d[:, None])
        return torch.cat([main[:, :, None], centre[:, :, 1:]], 2)

    @staticmethod
    def _flow(p, masks, centre, scale, angle, pan):
        """Forward and backward flow of each pixel from its visible layer's motion (closed form)."""
        n, T, S, _ = masks.shape
        K = centre.shape[2]
        # forward: sprite point u = A_t p is at A_{t+1}^{-1} u in frame t+1
        u_fwd = sprite_coords(p, centre[:, :-1], scale[:, :-1], angle[:, :-1])
        to_next = sprite_point_to_pixel(u_fwd, centre[:, 1:], scale[:, 1:], angle[:, 1:]) - p
        u_bwd = sprite_coords(p, centre[:, 1:], scale[:, 1:], angle[:, 1:])
        to_prev = sprite_point_to_pixel(u_bwd, centre[:, :-1], scale[:, :-1], angle[:, :-1]) - p
        dpan = pan[:, 1:] - pan[:, :-1]  # n T-1 2
        out = []
        for layer_flow, m, sign in ((to_next, masks[:, :-1], -1.0), (to_prev, masks[:, 1:], 1.0)):
            bg = (sign * dpan)[:, :, None, None, :].expand(n, T - 1, S, S, 2)
            flow = bg
            for k in range(K):
                flow = torch.where((m == k + 1)[..., None], layer_flow[:, :, k], flow)
            out.append(flow.permute(0, 1, 4, 2, 3).contiguous())
        return out[0], out[1]


def warp(frames: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warping: ``out(p) = frames(p + flow(p))``, bilinear, ``(N, C, H, W)`` and
    ``(N, 2, H, W)`` (dx, dy in pixels). With ``flow_back[:, t]`` it maps frame t to frame t+1."""
    if (
        frames.ndim != 4
        or flow.ndim != 4
        or flow.shape[1] != 2
        or frames.shape[0] != flow.shape[0]
        or frames.shape[-2:] != flow.shape[-2:]
    ):
        raise ValueError(
            f"warp needs frames (N, C, H, W) and flow (N, 2, H, W) of the same N, H, W; "
            f"got {tuple(frames.shape)} and {tuple(flow.shape)}"
        )
    H, W = frames.shape[-2:]
    q = pixel_grid(H, W, frames.device)[None] + flow.permute(0, 2, 3, 1)
    grid = torch.stack([2 * q[..., 0] / W - 1, 2 * q[..., 1] / H - 1], -1)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_affines(
    n: int,
    frames: int,
    max_shift: float,
    max_rotation: float,
    max_zoom: float,
    g: torch.Generator,
    device=None,
) -> torch.Tensor:
    """``(n, frames, 2, 3)`` ``affine_grid`` matrices moving linearly from the identity (frame 0)
    to a random similarity: shift up to ``max_shift`` (fraction of the half-width), rotation up to
    ``max_rotation`` rad, log-zoom up to ``log(1 + max_zoom)``."""

    def u(*shape):
        return 2 * torch.rand(*shape, generator=g, device=device) - 1

    frac = torch.linspace(0, 1, frames, device=device)[None, :]
    shift = (max_shift * u(n, 2))[:, None] * frac[..., None]
    rot = (max_rotation * u(n))[:, None] * frac
    zoom = torch.exp(math.log1p(max_zoom) * u(n))[:, None] ** frac
    lin = _rot(rot) / zoom[..., None, None]
    return torch.cat([lin, shift[..., None]], -1)


def pseudo_video(
    images: torch.Tensor,
    frames: int = 8,
    seed: int = 0,
    max_shift: float = 0.2,
    max_rotation: float = 0.3,
    max_zoom: float = 0.2,
    masks: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Still images turned into videos by a smooth random affine motion (VOS pre-training).

    ``images (N, C, H, W)``; optional ``masks (N, H, W)`` (integer ids) move with them (nearest
    sampling). Frame 0 is the image itself. Returns ``video (N, T, C, H, W)``, ``affine (N, T, 2,
    3)`` (``affine_grid`` convention: output coordinates to input coordinates, normalised) and
    ``masks (N, T, H, W)`` when given.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    N, C, H, W = images.shape
    if masks is not None and masks.shape != (N, H, W):
        raise ValueError(f"masks must be (N, H, W) = {(N, H, W)}, got {tuple(masks.shape)}")
    g = torch.Generator(device=images.device).manual_seed(int(seed))
    theta = random_affines(N, frames, max_shift, max_rotation, max_zoom, g, images.device)
    grid = F.affine_grid(
        theta.reshape(N * frames, 2, 3), (N * frames, C, H, W), align_corners=False
    )
    rep = (
        lambda x: x[:, None].expand(N, frames, *x.shape[1:]).reshape(N * frames, *x.shape[1:])
    )  # noqa
    out = {
        "video": F.grid_sample(
            rep(images.float()), grid, mode="bilinear", padding_mode="zeros", align_corners=False
        ).reshape(N, frames, C, H, W),
        "affine": theta,
    }
    if masks is not None:
        m = F.grid_sample(
            rep(masks[:, None].float()),
            grid,
            mode="nearest",
            padding_mode="zeros",
            align_corners=False,
        )
        out["masks"] = m.reshape(N, frames, H, W).round().long()
    return out


def block_view(video: torch.Tensor, n_blocks: int, block_len: int) -> torch.Tensor:
    """Non-overlapping consecutive blocks: ``(B, T, ...)`` to ``(B, n_blocks, block_len, ...)``,
    the first ``n_blocks * block_len`` frames (DPC/MemDPC's 8 blocks x 5 frames)."""
    if video.ndim < 2:
        raise ValueError(f"video must be (B, T, ...), got shape {tuple(video.shape)}")
    need = n_blocks * block_len
    if n_blocks < 1 or block_len < 1 or video.shape[1] < need:
        raise ValueError(
            f"{n_blocks} blocks x {block_len} frames need T >= {need} (and both >= 1); "
            f"got T = {video.shape[1]}"
        )
    return video[:, :need].reshape(video.shape[0], n_blocks, block_len, *video.shape[2:])
