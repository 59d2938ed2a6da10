"""Critters: articulated 2-D animals whose **pose is content** and whose **class is appearance**.

The few-shot translation world of COCO-FUNIT (E23) and the fine-grained retrieval world of ExchNet
(E12), part of the 2-D scene world (chapter ``world_scenes2d``). A critter is an ellipse body, a
disc head with an eye and an ear, 2-4 capsule legs and a Bézier tail, drawn with
:mod:`cvtutor.data.raster`:

* its **pose** (:class:`CritterPoses`, one per image): position, scale, rotation, facing (left or
  right), the angle of each leg and the wag of the tail, plus the image's backdrop;
* its **class** (:class:`CritterClasses`, one row per class): the palette (body, head, legs, ear,
  the second colour of the body's texture), the body texture (stripes, checker, dots, gradient or
  grating, its period and direction), the part-shape ratios (body aspect, head size, leg length
  and width, tail length, width and curl), the number of legs and the ear's shape.

Any pose can be drawn with any class (:func:`render_critters`), so content and style are
independent by construction. Each image comes with its foreground mask, its visible part map
(:data:`PARTS`, -1 = background) and every part's amodal mask. :func:`fine_grained_classes` makes
sub-classes that share everything but one small part (the ear: shape and colour);
:func:`class_split` and :class:`KShotSampler` give seen/unseen classes and K-shot episodes.

>>> classes = critter_classes(12, seed=0)
>>> data = critters(classes, n_per_class=5, size=32, seed=0)
>>> tuple(data.image.shape), tuple(data.parts.shape)
((60, 3, 32, 32), (60, 32, 32))
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from cvtutor.data import raster
from cvtutor.data.scenes2d.figures import (NOISE_SEED, Rows, add_noise, backdrop, capsule,
                                           chunks, generator, hsv_to_rgb, place, uniform)

PARTS = ("body", "head", "leg", "tail", "ear")
BODY, HEAD, LEG, TAIL, EAR = range(len(PARTS))
EARS = ("pointed", "round", "long")
POINTED, ROUND, LONG = range(len(EARS))
# the body textures a class may have (value noise is kept for the backdrop)
BODY_TEXTURES = (raster.FLAT, raster.STRIPES, raster.CHECKER, raster.DOTS, raster.GRADIENT,
                 raster.GRATING)
# primitive slots, back to front: tail, far legs, body, near legs, head, ear, eye; the legs are
# (far back, far front, near back, near front)
SLOTS = ("tail", "far_back_leg", "far_front_leg", "body", "near_back_leg", "near_front_leg",
         "head", "ear", "eye")
SLOT_PART = (TAIL, LEG, LEG, BODY, LEG, LEG, HEAD, EAR, HEAD)
TAIL_SLOT, BODY_SLOT, HEAD_SLOT, EAR_SLOT, EYE_SLOT = (SLOTS.index(s) for s in
                                                       ("tail", "body", "head", "ear", "eye"))
LEG_SLOTS = (1, 2, 4, 5)
TAIL_SEGMENTS = 4  # the tail is the polyline through 5 points of its cubic Bézier
# which legs a critter with 2, 3 or 4 legs has (index into LEG_SLOTS)
LEGS_PRESENT = {2: (False, False, True, True), 3: (False, True, True, True),
                4: (True, True, True, True)}


@dataclass(frozen=True)
class CritterClasses(Rows):
    """Appearance of ``C`` classes. Colours (C, 3) RGB in [0, 1]: ``body``, ``second`` (the body
    texture's second colour), ``head_color``, ``legs``, ``ear``; ``texture`` (C,) index into
    :data:`cvtutor.data.raster.TEXTURES` (one of :data:`BODY_TEXTURES`), ``period`` (C,) and
    ``texture_angle`` (C,) of the body pattern (period in body lengths); shape ratios (C,) in body
    lengths: ``aspect`` (body length / height), ``head`` size (diameter), ``leg_length``,
    ``leg_width``, ``tail_length``, ``tail_width``, ``tail_curl`` (-1..1); ``n_legs`` (C,) in 2..4;
    ``ear_shape`` (C,) index into :data:`EARS`."""

    body: torch.Tensor
    second: torch.Tensor
    head_color: torch.Tensor
    legs: torch.Tensor
    ear: torch.Tensor
    texture: torch.Tensor
    period: torch.Tensor
    texture_angle: torch.Tensor
    aspect: torch.Tensor
    head: torch.Tensor
    leg_length: torch.Tensor
    leg_width: torch.Tensor
    tail_length: torch.Tensor
    tail_width: torch.Tensor
    tail_curl: torch.Tensor
    n_legs: torch.Tensor
    ear_shape: torch.Tensor


def _colors(g: torch.Generator, n: int, device: torch.device | str,
            sat: tuple[float, float] = (0.45, 0.95),
            val: tuple[float, float] = (0.45, 0.95)) -> torch.Tensor:
    """``n`` random RGB colours of saturation and value uniform in ``sat`` and ``val``."""
    hsv = torch.stack([uniform(g, (n,), 0.0, 1.0, device), uniform(g, (n,), *sat, device),
                       uniform(g, (n,), *val, device)], -1)
    return hsv_to_rgb(hsv)


def critter_classes(n_classes: int, seed: int = 0, device: torch.device | str = "cpu"
                    ) -> CritterClasses:
    """``n_classes`` random appearances (:class:`CritterClasses`), a function of ``seed``."""
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    g, n = generator(seed, device), n_classes

    def pick(options: tuple[int, ...]) -> torch.Tensor:
        i = torch.randint(len(options), (n,), generator=g, device=device)
        return torch.as_tensor(options, device=device)[i]

    return CritterClasses(
        body=_colors(g, n, device), second=_colors(g, n, device), head_color=_colors(g, n, device),
        legs=_colors(g, n, device, val=(0.2, 0.7)), ear=_colors(g, n, device),
        texture=pick(BODY_TEXTURES), period=uniform(g, (n,), 0.12, 0.35, device),
        texture_angle=uniform(g, (n,), 0.0, math.pi, device),
        aspect=uniform(g, (n,), 1.3, 2.6, device), head=uniform(g, (n,), 0.3, 0.5, device),
        leg_length=uniform(g, (n,), 0.25, 0.6, device),
        leg_width=uniform(g, (n,), 0.04, 0.09, device),
        tail_length=uniform(g, (n,), 0.25, 0.8, device),
        tail_width=uniform(g, (n,), 0.025, 0.06, device),
        tail_curl=uniform(g, (n,), -1.0, 1.0, device),
        n_legs=pick((2, 3, 4)), ear_shape=pick(tuple(range(len(EARS)))))


def fine_grained_classes(n_base: int, ear_colors: int = 3, seed: int = 0,
                         device: torch.device | str = "cpu") -> tuple[CritterClasses, torch.Tensor]:
    """Fine-grained sub-classes: ``n_base`` base appearances, each split into ``len(EARS) *
    ear_colors`` sub-classes that differ **only in the ear** (its shape and colour, a small part).
    Returns the classes (C = n_base · 3 · ear_colors, base-major) and each one's base (C,)."""
    if ear_colors < 1:
        raise ValueError(f"ear_colors must be >= 1, got {ear_colors}")
    base = critter_classes(n_base, seed, device)
    n_sub = len(EARS) * ear_colors
    palette = _colors(generator(seed + 7_919, device), ear_colors, device)   # shared by the bases
    which = torch.arange(n_base, device=device).repeat_interleave(n_sub)
    sub = torch.arange(n_sub, device=device).repeat(n_base)
    classes = base[which].with_(ear_shape=sub // ear_colors, ear=palette[sub % ear_colors])
    return classes, which


@dataclass(frozen=True)
class CritterPoses(Rows):
    """The content of ``N`` images: ``center`` (N, 2) and ``scale`` (N,) as fractions of the image
    side (the body length is ``scale`` · side), ``angle`` (N,) radians, ``facing`` (N,) ±1 (+1:
    head to the right), ``legs`` (N, 4) leg angles from the vertical (radians, positive forward),
    ``tail`` (N,) the tail's wag (radians); the backdrop: ``backdrop`` (N, 3) and ``backdrop2``
    (N, 3) colours mixed by value noise of ``lattice`` (N, G, G) with cell ``cell`` (N,) (fraction
    of the side)."""

    center: torch.Tensor
    scale: torch.Tensor
    angle: torch.Tensor
    facing: torch.Tensor
    legs: torch.Tensor
    tail: torch.Tensor
    backdrop: torch.Tensor
    backdrop2: torch.Tensor
    lattice: torch.Tensor
    cell: torch.Tensor


def sample_poses(n: int, seed: int = 0, device: torch.device | str = "cpu",
                 scale: tuple[float, float] = (0.33, 0.5), max_angle: float = 0.5,
                 max_shift: float = 0.12, clutter: bool = True) -> CritterPoses:
    """``n`` random poses and backdrops (:class:`CritterPoses`): scale uniform in ``scale`` (body
    length over image side; relative sizes 0.66-1, as the plan's 0.6-1.0), rotation within
    ±``max_angle``, centre within ±``max_shift`` of the middle, random facing, legs within ±0.6
    rad, tail wag within ±0.5 rad. ``clutter=False`` gives flat backdrops."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    g = generator(seed, device)
    facing = torch.where(torch.rand(n, generator=g, device=device) < 0.5, -1.0, 1.0)
    bg = hsv_to_rgb(torch.stack([uniform(g, (n,), 0, 1, device), uniform(g, (n,), 0, 0.35, device),
                                 uniform(g, (n,), 0.25, 0.95, device)], -1))
    bg2 = (bg + uniform(g, (n, 3), -0.25, 0.25, device)).clamp(0, 1) if clutter else bg
    return CritterPoses(
        center=0.5 + uniform(g, (n, 2), -max_shift, max_shift, device),
        scale=uniform(g, (n,), *scale, device),
        angle=uniform(g, (n,), -max_angle, max_angle, device),
        facing=facing, legs=uniform(g, (n, 4), -0.6, 0.6, device),
        tail=uniform(g, (n,), -0.5, 0.5, device), backdrop=bg, backdrop2=bg2,
        lattice=torch.rand((n, 8, 8), generator=g, device=device),
        cell=uniform(g, (n,), 0.08, 0.2, device))


@dataclass(frozen=True)
class Critters:
    """Rendered critters: ``image`` (N, 3, H, W) in [0, 1]; ``mask`` (N, H, W) bool foreground;
    ``parts`` (N, H, W) long visible part (:data:`PARTS`, -1 background); ``part_masks``
    (N, len(PARTS), H, W) bool amodal part masks (a part's pixels, occluded or not); ``label``
    (N,) class; ``poses`` the content; ``classes`` the class table the labels index."""

    image: torch.Tensor
    mask: torch.Tensor
    parts: torch.Tensor
    part_masks: torch.Tensor
    label: torch.Tensor
    poses: CritterPoses
    classes: CritterClasses

    def __len__(self) -> int:
        return len(self.image)


def _geometry(cls: CritterClasses, poses: CritterPoses):
    """Figure-unit primitives of each critter (one row per image; body length 1) in the order of
    :data:`SLOTS`: kind, local centre, local angle, params (B, 9, 3), points (B, 9, 5, 2), valid."""
    b, dev = len(poses), poses.center.device
    n, zeros = len(SLOTS), torch.zeros(b, device=dev)
    half_h = 0.5 / cls.aspect                                               # body semi-axis y
    r = cls.head / 2
    kind = torch.empty(b, n, dtype=torch.long, device=dev)
    lc = torch.zeros(b, n, 2, device=dev)
    la = torch.zeros(b, n, device=dev)
    par = torch.zeros(b, n, 3, device=dev)
    pts = torch.zeros(b, n, TAIL_SEGMENTS + 1, 2, device=dev)
    valid = torch.ones(b, n, dtype=torch.bool, device=dev)

    # tail: a cubic Bézier from the rump, backwards, bent by the curl and wagged
    start = torch.stack([-0.42 + zeros, -0.3 * half_h], -1)
    d = torch.stack([-torch.cos(poses.tail), -torch.sin(poses.tail)], -1)   # backwards, wagged
    nrm = torch.stack([-d[:, 1], d[:, 0]], -1) * cls.tail_curl[:, None]
    t = cls.tail_length[:, None]
    control = torch.stack([start, start + t * d / 3, start + 2 * t * d / 3 + t * nrm / 3,
                           start + t * d + t * nrm / 2], 1)
    pts[:, TAIL_SLOT] = raster.bezier_points(control, TAIL_SEGMENTS)
    kind[:, TAIL_SLOT], par[:, TAIL_SLOT, 0] = raster.POLYLINE, cls.tail_width

    # legs: capsules from the hips (under the body) to the feet, drawn as rounded boxes
    hip_x = torch.tensor([-0.28, 0.25, -0.22, 0.3], device=dev)
    for j, slot in enumerate(LEG_SLOTS):
        hip = torch.stack([hip_x[j] + zeros, 0.55 * half_h], -1)
        a = poses.legs[:, j]
        foot = hip + cls.leg_length[:, None] * torch.stack([torch.sin(a), torch.cos(a)], -1)
        kind[:, slot] = raster.ROUNDED_BOX
        lc[:, slot], la[:, slot], par[:, slot] = capsule(hip, foot, cls.leg_width)
    present = torch.tensor([LEGS_PRESENT[k] for k in (2, 3, 4)], device=dev)[cls.n_legs - 2]
    valid[:, list(LEG_SLOTS)] = present

    # body: the ellipse at the origin
    kind[:, BODY_SLOT] = raster.ELLIPSE
    par[:, BODY_SLOT, 0], par[:, BODY_SLOT, 1] = 0.5 + zeros, half_h
    # head over the front of the body, the eye on it
    head_c = torch.stack([0.45 + 0.55 * r, -0.75 * half_h - 0.25 * r], -1)
    kind[:, HEAD_SLOT], lc[:, HEAD_SLOT], par[:, HEAD_SLOT, 0] = raster.DISC, head_c, r
    kind[:, EYE_SLOT] = raster.DISC
    lc[:, EYE_SLOT] = head_c + torch.stack([0.45 * r, -0.15 * r], -1)
    par[:, EYE_SLOT, 0] = 0.16 * r
    # ear on top of the head: a triangle (pointed, long) or a disc (round)
    top = head_c + torch.stack([-0.15 * r, -0.8 * r], -1)

    def triangle(*xy: float) -> torch.Tensor:                              # (B, 3, 2) times r
        return torch.tensor(xy, device=dev).view(1, 3, 2) * r[:, None, None]

    shape = cls.ear_shape
    tri = torch.where((shape == LONG)[:, None, None], triangle(-0.22, 0.1, 0.22, 0.1, -0.1, -1.5),
                      triangle(-0.4, 0.1, 0.4, 0.1, 0.1, -0.85))
    pts[:, EAR_SLOT, :3], pts[:, EAR_SLOT, 3:] = tri, tri[:, 2:]            # last vertex repeated
    kind[:, EAR_SLOT] = torch.where(shape == ROUND, raster.DISC, raster.POLYGON)
    lc[:, EAR_SLOT] = top + torch.where((shape == ROUND)[:, None],
                                        torch.stack([zeros, -0.1 * r], -1), 0.0)
    par[:, EAR_SLOT, 0] = torch.where(shape == ROUND, 0.42 * r, zeros)
    return kind, lc, la, par, pts, valid


def render_critters(classes: CritterClasses, labels: torch.Tensor, poses: CritterPoses,
                    size: int = 32, aa: float = 1.0, noise: float = 0.0, seed: int = 0
                    ) -> Critters:
    """Draw critter ``i`` of class ``labels[i]`` in pose ``poses[i]`` on a ``size`` x ``size``
    canvas (all at once, on the poses' device). ``aa`` is the raster's anti-aliasing width,
    ``noise`` the std of Gaussian pixel noise (seeded by ``seed``)."""
    labels = torch.as_tensor(labels, device=poses.center.device).long()
    if labels.shape != (len(poses),):
        raise ValueError(f"labels must be (N,) = ({len(poses)},) like the poses, "
                         f"got {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
        raise ValueError(f"labels must index the {len(classes)} classes, got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    if size < 8:
        raise ValueError(f"size must be >= 8 pixels, got {size}")
    cls = classes.to(poses.center.device)[labels]
    b, n, dev = len(poses), len(SLOTS), poses.center.device
    prims = place(*_geometry(cls, poses), center=poses.center * size, scale=poses.scale * size,
                  angle=poses.angle, facing=poses.facing)
    dark = torch.full((b, 3), 0.08, device=dev)
    colors = torch.stack([cls.legs, cls.legs * 0.7, cls.legs * 0.7, cls.body, cls.legs, cls.legs,
                          cls.head_color, cls.ear, dark], 1)
    tex_kind = torch.full((b, n), raster.FLAT, dtype=torch.long, device=dev)
    tex_kind[:, BODY_SLOT] = cls.texture
    period = torch.ones(b, n, device=dev)
    period[:, BODY_SLOT] = cls.period * poses.scale * size
    tex_angle = torch.zeros(b, n, device=dev)
    tex_angle[:, BODY_SLOT] = cls.texture_angle
    second = colors.clone()
    second[:, BODY_SLOT] = cls.second
    textures = raster.Textures(tex_kind, period, tex_angle, second)
    background = backdrop(poses.lattice, poses.cell * size, poses.backdrop, poses.backdrop2,
                          size, size)
    part = torch.tensor(SLOT_PART, device=dev).expand(b, -1)
    # each part is its own "instance", so the raster's amodal masks are the amodal part masks
    layers = raster.render(prims, colors, (size, size), background, instance=part, part=part,
                           n_instances=len(PARTS), textures=textures, aa=aa)
    return Critters(image=add_noise(layers.rgb, noise, seed), mask=layers.parts >= 0,
                    parts=layers.parts, part_masks=layers.masks, label=labels, poses=poses,
                    classes=classes)


def balanced_labels(n_classes: int, n_per_class: int, device: torch.device | str = "cpu"
                    ) -> torch.Tensor:
    """(n_classes · n_per_class,) labels, ``n_per_class`` of each class, class-major."""
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    return torch.arange(n_classes, device=device).repeat_interleave(n_per_class)


def critters(classes: CritterClasses, n_per_class: int, size: int = 32, seed: int = 0,
             device: torch.device | str = "cpu", chunk: int | None = None, noise: float = 0.0,
             **pose_options) -> Critters:
    """``n_per_class`` images of every class (class-major labels), fresh poses for each, rendered
    ``chunk`` images at a time (default: about 2^20 pixels a chunk) on ``device``; bit-identical
    for a seed on a device.
    ``pose_options`` go to :func:`sample_poses`."""
    labels = balanced_labels(len(classes), n_per_class, device)
    poses = sample_poses(len(labels), seed, device, **pose_options)
    classes = classes.to(device)
    outs = [render_critters(classes, labels[i.to(device)], poses[i.to(device)], size)
            for i in chunks(len(labels), size * size, chunk)]
    cat = {k: torch.cat([getattr(o, k) for o in outs]) for k in ("image", "mask", "parts",
                                                                 "part_masks")}
    cat["image"] = add_noise(cat["image"], noise, seed + NOISE_SEED)
    return Critters(**cat, label=labels, poses=poses, classes=classes)


def class_split(n_classes: int, n_unseen: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random split of ``0..n_classes-1`` into seen (training) and ``n_unseen`` unseen classes
    (the few-shot targets), each sorted."""
    if not 0 < n_unseen < n_classes:
        raise ValueError(f"n_unseen must be in 1..{n_classes - 1}, got {n_unseen}")
    perm = torch.randperm(n_classes, generator=torch.Generator().manual_seed(seed))
    return perm[n_unseen:].sort().values, perm[:n_unseen].sort().values


class KShotSampler:
    """Few-shot episodes over the images of ``classes``: each episode draws ``n_way`` of those
    classes, ``k_shot`` support images and ``n_query`` query images per class, disjoint, without
    replacement. Episode ``e`` is a function of ``(seed, e)``; an episode is ``(support, query)``
    index tensors of shape (n_way, k_shot) and (n_way, n_query) into ``labels``, row ``i`` of both
    from class ``classes_of_episode[i]`` (:meth:`episode` returns that too)."""

    def __init__(self, labels: torch.Tensor, classes: torch.Tensor, n_way: int, k_shot: int,
                 n_query: int = 0, n_episodes: int = 100, seed: int = 0) -> None:
        labels = torch.as_tensor(labels).long().cpu()
        classes = torch.as_tensor(classes).long().cpu()
        if not 1 <= n_way <= len(classes):
            raise ValueError(f"n_way must be in 1..{len(classes)} (the classes given), got {n_way}")
        if k_shot < 1 or n_query < 0:
            raise ValueError(f"k_shot must be >= 1 and n_query >= 0, got {k_shot}, {n_query}")
        counts = (labels[None, :] == classes[:, None]).sum(1)
        short = classes[counts < k_shot + n_query]
        if len(short):
            raise ValueError(f"classes {short.tolist()} have fewer than k_shot + n_query = "
                             f"{k_shot + n_query} images")
        self.labels, self.classes = labels, classes
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self.n_episodes, self.seed = n_episodes, seed

    def __len__(self) -> int:
        return self.n_episodes

    def episode(self, e: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(classes (n_way,), support (n_way, k_shot), query (n_way, n_query))`` of episode e."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + e)
        way = self.classes[torch.randperm(len(self.classes), generator=g)[: self.n_way]]
        member = self.labels[None, :] == way[:, None]                        # (n_way, N)
        keys = torch.rand(member.shape, generator=g).masked_fill(~member, 2.0)
        pick = torch.argsort(keys, dim=1)[:, : self.k_shot + self.n_query]
        return way, pick[:, : self.k_shot], pick[:, self.k_shot:]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for e in range(self.n_episodes):
            yield self.episode(e)[1:]
