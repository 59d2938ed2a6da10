"""Pedestrians: person crops drawn from parts, with identities, cameras and exact part masks.

The person re-identification world of ISP (E21), part of the 2-D scene world (chapter
``world_scenes2d``). A pedestrian is a head with hair, a torso in a patterned shirt, two arms in
its sleeves, two legs in trousers, two shoes and, for some identities, a bag (a backpack with its
strap, or a handbag), drawn with :mod:`cvtutor.data.raster` on a ``size`` x ``size // 2`` crop:

* an **identity** is a tuple of attributes (:data:`ATTRIBUTES`: skin, hair colour and length,
  shirt colour, pattern and pattern colour, trousers, shoes, bag type and colour). The identities
  overlap on purpose: a share of them are *near twins* of another, differing in one attribute
  only (one of :data:`GROUPS`, often the bag), so a model must look at the right part;
* a **view** (:class:`PedestrianViews`, one per image) is the camera, the detector's misalignment
  (scale, shift: parts may be cropped away), the gait (stride, arm swing), the facing (mirror),
  the backdrop, in the occluded split an occluder over the lower part of the crop, and for
  partial crops a box around the upper body only (the legs and shoes leave the image);
* a **camera** (:class:`Cameras`) is a photometric shift (colour gain, brightness, contrast) and
  a backdrop tint.

Each image comes with its exact visible part map (:data:`PARTS`, -1 = background or occluder),
the same map with the bag taken as background (what a parser trained without belongings sees),
the amodal part masks and the occluder's mask. :func:`query_gallery` makes a Market-1501 style
split for :func:`cvtutor.metrics.retrieval.evaluate_reid`.

>>> ids = pedestrian_identities(40, seed=0)
>>> data = pedestrians(ids, n_per_id=8, n_cameras=4, size=64, seed=0)
>>> tuple(data.image.shape), tuple(data.parts.shape)
((320, 3, 64, 32), (320, 64, 32))
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import pandas as pd
import torch

from cvtutor.data import raster
from cvtutor.data.scenes2d.figures import (NOISE_SEED, Rows, add_noise, backdrop, capsule,
                                           chunks, generator, place, uniform)

PARTS = ("head", "torso", "legs", "shoes", "bag")
HEAD, TORSO, LEGS, SHOES, BAG = range(len(PARTS))
OCCLUDER = len(PARTS)  # the occluder's instance id in the raster's ids

SKIN = {"light": (0.96, 0.80, 0.69), "fair": (0.87, 0.67, 0.52), "tan": (0.67, 0.48, 0.34),
        "dark": (0.42, 0.29, 0.21)}
HAIR = {"black": (0.08, 0.07, 0.07), "brown": (0.36, 0.21, 0.1), "blond": (0.86, 0.73, 0.42),
        "grey": (0.62, 0.62, 0.62), "red": (0.62, 0.22, 0.1)}
CLOTHES = {"black": (0.1, 0.1, 0.11), "white": (0.93, 0.93, 0.92), "grey": (0.5, 0.5, 0.52),
           "red": (0.8, 0.12, 0.12), "blue": (0.15, 0.3, 0.8), "green": (0.15, 0.6, 0.25),
           "yellow": (0.93, 0.82, 0.2), "purple": (0.5, 0.2, 0.6), "orange": (0.95, 0.5, 0.1),
           "brown": (0.45, 0.3, 0.18)}
SHOES_ = ("black", "white", "brown", "red")                 # shoe colours (names in CLOTHES)
PATTERNS = ("plain", "stripes", "checker", "dots")
PATTERN_TEXTURE = (raster.FLAT, raster.STRIPES, raster.CHECKER, raster.DOTS)
BAGS = ("none", "backpack", "handbag")
NO_BAG, BACKPACK, HANDBAG = range(len(BAGS))
# attribute name -> number of values (each identity holds one index per attribute)
ATTRIBUTES = {"skin": len(SKIN), "hair": len(HAIR), "hair_long": 2, "shirt": len(CLOTHES),
              "pattern": len(PATTERNS), "pattern_color": len(CLOTHES), "trousers": len(CLOTHES),
              "shoes": len(SHOES_), "bag": len(BAGS), "bag_color": len(CLOTHES)}
# what a person "differs in": the bag's type and colour are one attribute (the bag), so are the
# shirt's pattern and its colour (the pattern)
GROUPS = ("skin", "hair", "hair_long", "shirt", "pattern", "trousers", "shoes", "bag")
ATTRIBUTE_GROUP = tuple(GROUPS.index({"pattern_color": "pattern", "bag_color": "bag"}.get(k, k))
                        for k in ATTRIBUTES)
# primitive slots, back to front
SLOTS = ("backpack", "hair", "left_leg", "right_leg", "left_shoe", "right_shoe", "torso",
         "left_arm", "right_arm", "head", "strap", "handbag", "occluder")
SLOT_PART = (BAG, HEAD, LEGS, LEGS, SHOES, SHOES, TORSO, TORSO, TORSO, HEAD, BAG, BAG, -1)
TORSO_SLOT = SLOTS.index("torso")


def _rgb(table: dict[str, tuple[float, float, float]], device) -> torch.Tensor:
    return torch.tensor(list(table.values()), device=device)


@dataclass(frozen=True)
class PedestrianIdentities(Rows):
    """``I`` identities: ``attributes`` (I, len(ATTRIBUTES)) long, column ``a`` an index into the
    values of :data:`ATTRIBUTES`'s ``a``-th attribute; ``twin_of`` (I,) the identity it is a
    near twin of (-1: none)."""

    attributes: torch.Tensor
    twin_of: torch.Tensor

    def column(self, name: str) -> torch.Tensor:
        """One attribute (I,) by name."""
        return self.attributes[:, list(ATTRIBUTES).index(name)]

    def table(self) -> pd.DataFrame:
        """The identities as a frame of attribute names (``bag_color`` blank without a bag)."""
        names = {"skin": list(SKIN), "hair": list(HAIR), "hair_long": ["short", "long"],
                 "shirt": list(CLOTHES), "pattern": list(PATTERNS),
                 "pattern_color": list(CLOTHES), "trousers": list(CLOTHES), "shoes": list(SHOES_),
                 "bag": list(BAGS), "bag_color": list(CLOTHES)}
        a = self.attributes.cpu()
        frame = pd.DataFrame({k: [names[k][int(v)] for v in a[:, i]] for i, k in enumerate(names)})
        frame.loc[frame.bag == "none", "bag_color"] = ""
        frame.loc[frame.pattern == "plain", "pattern_color"] = ""
        frame["twin_of"] = self.twin_of.cpu().numpy()
        return frame

    def differences(self) -> torch.Tensor:
        """(I, I) number of attributes (:data:`GROUPS`) in which two identities differ."""
        return _group_differences(self.attributes[:, None], self.attributes[None])


def _group_differences(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Number of :data:`GROUPS` in which attribute rows ``a`` and ``b`` (..., A) differ."""
    onehot = torch.nn.functional.one_hot(torch.tensor(ATTRIBUTE_GROUP, device=a.device),
                                         len(GROUPS)).to(torch.int64)
    return ((a != b).to(torch.int64) @ onehot > 0).sum(-1)


COLUMN = {name: i for i, name in enumerate(ATTRIBUTES)}


def _canonical(a: torch.Tensor) -> torch.Tensor:
    """Attributes (..., A) with the values that do not show set to 0: the bag colour without a bag
    and the pattern colour of a plain shirt (so two identities differ only in what can be seen)."""
    a = a.clone()
    bag, pattern = a[..., COLUMN["bag"]], a[..., COLUMN["pattern"]]
    a[..., COLUMN["bag_color"]] = torch.where(bag == NO_BAG, 0, a[..., COLUMN["bag_color"]])
    a[..., COLUMN["pattern_color"]] = torch.where(pattern == 0, 0, a[..., COLUMN["pattern_color"]])
    return a


def _random_identity(g: torch.Generator, bag_rate: float) -> torch.Tensor:
    sizes = torch.tensor(list(ATTRIBUTES.values()))
    a = (torch.rand(len(sizes), generator=g) * sizes).long()
    carries = bool(torch.rand(1, generator=g) < bag_rate)
    a[COLUMN["bag"]] = int(torch.randint(1, len(BAGS), (1,), generator=g)) if carries else NO_BAG
    return _canonical(a)


def _near_twin(g: torch.Generator, parent: torch.Tensor) -> torch.Tensor:
    """``parent`` with one attribute value changed: half of the time the bag (its type, or its
    colour when there is one), else any attribute."""
    sizes = list(ATTRIBUTES.values())
    col = COLUMN["bag"] if torch.rand(1, generator=g) < 0.5 else \
        int(torch.randint(len(sizes), (1,), generator=g))
    if col == COLUMN["bag"] and parent[col] != NO_BAG and torch.rand(1, generator=g) < 0.5:
        col = COLUMN["bag_color"]
    a = parent.clone()
    a[col] = (a[col] + int(torch.randint(1, sizes[col], (1,), generator=g))) % sizes[col]
    return _canonical(a)


def pedestrian_identities(n_ids: int, twin_rate: float = 0.5, bag_rate: float = 0.4,
                          seed: int = 0, device: torch.device | str = "cpu"
                          ) -> PedestrianIdentities:
    """``n_ids`` distinct identities (:class:`PedestrianIdentities`). A share ``1 - twin_rate`` are
    drawn at random (a bag with probability ``bag_rate``); each of the others copies one of those
    and changes a single visible attribute (half of the time its bag: added, removed, changed or
    recoloured), so every twin differs from its original in exactly one of :data:`GROUPS`."""
    if n_ids < 1 or not 0 <= twin_rate < 1 or not 0 <= bag_rate <= 1:
        raise ValueError(f"need n_ids >= 1, 0 <= twin_rate < 1, 0 <= bag_rate <= 1; got {n_ids}, "
                         f"{twin_rate}, {bag_rate}")
    g = torch.Generator().manual_seed(seed)
    n_base = max(1, n_ids - int(round(twin_rate * n_ids)))
    rows: list[torch.Tensor] = []
    twin_of: list[int] = []
    seen: set[tuple[int, ...]] = set()
    while len(rows) < n_ids:  # one identity a pass: the table is small and built once
        parent = -1 if len(rows) < n_base else int(torch.randint(n_base, (1,), generator=g))
        a = _random_identity(g, bag_rate) if parent < 0 else _near_twin(g, rows[parent])
        visible_change = parent < 0 or int(_group_differences(a, rows[parent])) == 1
        if visible_change and tuple(a.tolist()) not in seen:
            seen.add(tuple(a.tolist()))
            rows.append(a)
            twin_of.append(parent)
    return PedestrianIdentities(torch.stack(rows).to(device), torch.tensor(twin_of, device=device))


@dataclass(frozen=True)
class Cameras(Rows):
    """``C`` cameras as photometric shifts: the image becomes
    ``clamp(((x - 1/2) · contrast + 1/2 + brightness) · gain)``; ``gain`` (C, 3), ``brightness``
    (C,), ``contrast`` (C,); ``tint`` (C, 3) the colour of the camera's backdrop."""

    gain: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor
    tint: torch.Tensor

    def apply(self, image: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) seen through cameras ``camera`` (N,)."""
        c = camera.long()
        x = (image - 0.5) * self.contrast[c, None, None, None] + 0.5
        x = x + self.brightness[c, None, None, None]
        return (x * self.gain[c, :, None, None]).clamp(0.0, 1.0)


def cameras(n_cameras: int, strength: float = 1.0, seed: int = 0,
            device: torch.device | str = "cpu") -> Cameras:
    """``n_cameras`` random cameras; ``strength`` scales the shifts (0: all identical, neutral)."""
    if n_cameras < 1:
        raise ValueError(f"n_cameras must be >= 1, got {n_cameras}")
    g = generator(seed, device)
    n, s = n_cameras, strength
    return Cameras(gain=1 + s * uniform(g, (n, 3), -0.2, 0.2, device),
                   brightness=s * uniform(g, (n,), -0.1, 0.1, device),
                   contrast=1 + s * uniform(g, (n,), -0.25, 0.15, device),
                   tint=uniform(g, (n, 3), 0.3, 0.8, device))


@dataclass(frozen=True)
class PedestrianViews(Rows):
    """How ``N`` images see their person: ``camera`` (N,); misalignment ``scale`` (N,) (person
    height over crop height) and ``shift`` (N, 2) (fractions of the crop's width and height);
    gait ``stride`` (N,) and ``swing`` (N,) (radians); ``facing`` (N,) ±1 (mirror); backdrop
    ``lattice`` (N, G, G) value noise mixing the camera's tint with ``backdrop2`` (N, 3);
    ``occluded`` (N,) bool, the occluder covering the crop below ``occluder_top`` (N,) (fraction
    of the height) in ``occluder_color`` (N, 3) / ``occluder_color2`` (N, 3) stripes or noise
    (``occluder_texture`` (N,) raster texture)."""

    camera: torch.Tensor
    scale: torch.Tensor
    shift: torch.Tensor
    stride: torch.Tensor
    swing: torch.Tensor
    facing: torch.Tensor
    lattice: torch.Tensor
    backdrop2: torch.Tensor
    occluded: torch.Tensor
    occluder_top: torch.Tensor
    occluder_color: torch.Tensor
    occluder_color2: torch.Tensor
    occluder_texture: torch.Tensor
    partial: torch.Tensor


def sample_views(camera: torch.Tensor, seed: int = 0, misalign: float = 1.0,
                 occluded: float = 0.0, partial: float = 0.0) -> PedestrianViews:
    """Random views for images taken by ``camera`` (N,) (on its device): scale in
    0.85-1.0 (×``misalign`` around 0.92), shift within ±0.08 of the width and ±0.1 of the height
    (×``misalign``; 0 centres every person), stride and swing up to 0.35 rad, random facing; a
    share ``occluded`` of the images get an occluder over the lower 30-50 % of the crop, a share
    ``partial`` are partial crops: the person 1.2-1.5 times the crop's height, head at the top."""
    camera = torch.as_tensor(camera).long()
    n, dev = len(camera), camera.device
    if n < 1:
        raise ValueError("need at least one image (camera is empty)")
    for name, share in (("occluded", occluded), ("partial", partial)):
        if not 0 <= share <= 1:
            raise ValueError(f"{name} must be a share in [0, 1], got {share}")
    g = generator(seed, dev)
    scale = 0.92 + misalign * uniform(g, (n,), -0.07, 0.08, dev)
    shift = misalign * torch.stack([uniform(g, (n,), -0.08, 0.08, dev),
                                    uniform(g, (n,), -0.1, 0.1, dev)], -1)
    texture = torch.where(torch.rand(n, generator=g, device=dev) < 0.5, raster.STRIPES,
                          raster.NOISE)
    views = PedestrianViews(
        camera=camera, scale=scale, shift=shift, stride=uniform(g, (n,), 0.0, 0.35, dev),
        swing=uniform(g, (n,), 0.0, 0.35, dev),
        facing=torch.where(torch.rand(n, generator=g, device=dev) < 0.5, -1.0, 1.0),
        lattice=torch.rand((n, 8, 8), generator=g, device=dev),
        backdrop2=uniform(g, (n, 3), 0.2, 0.9, dev),
        occluded=torch.rand(n, generator=g, device=dev) < occluded,
        occluder_top=uniform(g, (n,), 0.5, 0.7, dev),
        occluder_color=uniform(g, (n, 3), 0.1, 0.9, dev),
        occluder_color2=uniform(g, (n, 3), 0.1, 0.9, dev), occluder_texture=texture,
        partial=torch.zeros(n, dtype=torch.bool, device=dev))
    # partial crops, drawn last so the other draws do not depend on the share
    cut = torch.rand(n, generator=g, device=dev) < partial
    tall = uniform(g, (n,), 1.2, 1.5, dev)
    top = 0.5 * tall + 0.02 - 0.5                      # the head's top 2 % below the crop's top
    return views.with_(scale=torch.where(cut, tall, scale), partial=cut,
                       shift=torch.where(cut[:, None], torch.stack([shift[:, 0], top], -1), shift))


@dataclass(frozen=True)
class Pedestrians:
    """Rendered pedestrians: ``image`` (N, 3, H, W) with ``W = H // 2``, after the camera's shift;
    ``parts`` (N, H, W) visible part (:data:`PARTS`; -1 background or occluder); ``parts_no_bag``
    the same with the bag as background; ``part_masks`` (N, len(PARTS), H, W) bool amodal part
    masks; ``mask`` (N, H, W) the visible person; ``occluder`` (N, H, W) the occluder's visible
    pixels; ``pid`` (N,) identity; ``views``."""

    image: torch.Tensor
    parts: torch.Tensor
    parts_no_bag: torch.Tensor
    part_masks: torch.Tensor
    mask: torch.Tensor
    occluder: torch.Tensor
    pid: torch.Tensor
    views: PedestrianViews

    def __len__(self) -> int:
        return len(self.image)

    @property
    def camera(self) -> torch.Tensor:
        return self.views.camera


def _geometry(a: torch.Tensor, views: PedestrianViews):
    """Figure primitives (person height 1, y down, origin at mid-height) in the order of
    :data:`SLOTS` but the occluder: kind, local centre, local angle, params (B, 12, 3), points
    (B, 12, 1, 2) (unused) and valid."""
    b, dev = len(a), a.device
    n = len(SLOTS) - 1
    kind = torch.full((b, n), raster.ELLIPSE, dtype=torch.long, device=dev)
    lc = torch.zeros(b, n, 2, device=dev)
    la = torch.zeros(b, n, device=dev)
    par = torch.zeros(b, n, 3, device=dev)
    valid = torch.ones(b, n, dtype=torch.bool, device=dev)
    slot = {name: i for i, name in enumerate(SLOTS)}

    def at(x: float, y: float) -> torch.Tensor:
        return torch.tensor([x, y], device=dev).expand(b, 2)

    def limb(name: str, p0: torch.Tensor, p1: torch.Tensor, half_width: float) -> None:
        i = slot[name]
        kind[:, i] = raster.ROUNDED_BOX
        lc[:, i], la[:, i], par[:, i] = capsule(p0, p1, half_width)

    def box(name: str, x: float, y: float, half_w: float, half_h: float, corner: float) -> None:
        i = slot[name]
        kind[:, i], lc[:, i] = raster.ROUNDED_BOX, at(x, y)
        par[:, i] = torch.tensor([half_w, half_h, corner], device=dev)

    bag, long_hair = a[:, COLUMN["bag"]], a[:, COLUMN["hair_long"]] == 1
    # the backpack behind the torso, sticking out on the +x side, and its strap in front
    box("backpack", 0.1, -0.2, 0.065, 0.12, 0.025)
    limb("strap", at(0.06, -0.33), at(0.06, -0.07), 0.014)
    valid[:, slot["backpack"]] = valid[:, slot["strap"]] = bag == BACKPACK
    # a handbag at the hip on the other side
    box("handbag", -0.15, 0.02, 0.05, 0.045, 0.012)
    valid[:, slot["handbag"]] = bag == HANDBAG
    # hair behind the head: a cap, or long hair down to the shoulders; the head
    i = slot["hair"]
    lc[:, i] = torch.where(long_hair[:, None], at(0.0, -0.39), at(0.0, -0.435))
    par[:, i, 0] = torch.where(long_hair, 0.072, 0.062)
    par[:, i, 1] = torch.where(long_hair, 0.095, 0.05)
    lc[:, slot["head"]] = at(0.0, -0.41)
    par[:, slot["head"], 0], par[:, slot["head"], 1] = 0.052, 0.064
    # legs from the hips, striding, with the shoes at the ankles
    for side, sign in (("left", -1.0), ("right", 1.0)):
        hip = at(0.045 * sign, -0.03)
        ang = sign * views.stride / 2
        ankle = hip + 0.44 * torch.stack([torch.sin(ang), torch.cos(ang)], -1)
        limb(f"{side}_leg", hip, ankle, 0.042)
        i = slot[f"{side}_shoe"]
        lc[:, i] = ankle + at(0.012, 0.035)
        par[:, i, 0], par[:, i, 1] = 0.045, 0.026
        # arms in their sleeves, swinging
        shoulder = at(0.095 * sign, -0.3)
        ang = sign * (0.12 + views.swing / 2)
        hand = shoulder + 0.27 * torch.stack([torch.sin(ang), torch.cos(ang)], -1)
        limb(f"{side}_arm", shoulder, hand, 0.027)
    # the torso, patterned
    box("torso", 0.0, -0.18, 0.095, 0.16, 0.035)
    return kind, lc, la, par, torch.zeros(b, n, 1, 2, device=dev), valid


def render_pedestrians(identities: PedestrianIdentities, pid: torch.Tensor,
                       views: PedestrianViews, cams: Cameras, size: int = 64, aa: float = 1.0,
                       noise: float = 0.0, seed: int = 0) -> Pedestrians:
    """Draw identity ``pid[i]`` as seen by view ``views[i]`` on a ``size`` x ``size // 2`` crop
    (all at once, on the views' device), then apply each image's camera; ``noise`` is the std of
    Gaussian pixel noise drawn from ``seed``."""
    dev = views.camera.device
    pid = torch.as_tensor(pid, device=dev).long()
    if pid.shape != (len(views),):
        raise ValueError(f"pid must be (N,) = ({len(views)},) like the views, "
                         f"got {tuple(pid.shape)}")
    if pid.numel() and (int(pid.min()) < 0 or int(pid.max()) >= len(identities)):
        raise ValueError(f"pid must index the {len(identities)} identities")
    if int(views.camera.max()) >= len(cams) or int(views.camera.min()) < 0:
        raise ValueError(f"camera ids must index the {len(cams)} cameras")
    if size < 16 or size % 2:
        raise ValueError(f"size must be an even number of pixels >= 16, got {size}")
    h, w, b, n = size, size // 2, len(pid), len(SLOTS)
    a = identities.attributes.to(dev)[pid]
    center = torch.stack([w / 2 + views.shift[:, 0] * w, h / 2 + views.shift[:, 1] * h], -1)
    figure = place(*_geometry(a, views), center=center, scale=views.scale * h,
                   angle=torch.zeros(b, device=dev), facing=views.facing)
    occ_c = torch.stack([torch.full((b,), w / 2, device=dev), (views.occluder_top + 1) / 2 * h], -1)
    occ_half = torch.stack([torch.full((b,), w * 0.6, device=dev),
                            (1 - views.occluder_top) / 2 * h, torch.zeros(b, device=dev)], -1)
    occluder = raster.primitives("box", occ_c[:, None], params=occ_half[:, None],
                                 valid=views.occluded[:, None])
    prims = raster.concat([figure, occluder])

    def value(name: str) -> torch.Tensor:
        return a[:, COLUMN[name]]

    skin, hair = _rgb(SKIN, dev)[value("skin")], _rgb(HAIR, dev)[value("hair")]
    clothes = _rgb(CLOTHES, dev)
    shoe_color = torch.tensor([list(CLOTHES).index(s) for s in SHOES_], device=dev)
    shoe = clothes[shoe_color[value("shoes")]]
    shirt, trousers = clothes[value("shirt")], clothes[value("trousers")]
    bag = clothes[value("bag_color")]
    colors = torch.stack([bag, hair, trousers, trousers, shoe, shoe, shirt, shirt, shirt, skin,
                          bag, bag, views.occluder_color], 1)
    tex = torch.full((b, n), raster.FLAT, dtype=torch.long, device=dev)
    tex[:, TORSO_SLOT] = torch.tensor(PATTERN_TEXTURE, device=dev)[value("pattern")]
    tex[:, -1] = views.occluder_texture
    period = torch.ones(b, n, device=dev)
    period[:, TORSO_SLOT] = 0.06 * views.scale * h
    period[:, -1] = 0.12 * h
    second = colors.clone()
    second[:, TORSO_SLOT] = clothes[value("pattern_color")]
    second[:, -1] = views.occluder_color2
    lattice = torch.zeros(b, n, *views.lattice.shape[1:], device=dev)
    lattice[:, -1] = views.lattice.flip(-1)
    textures = raster.Textures(tex, period, torch.zeros(b, n, device=dev), second, lattice)
    tint = cams.tint.to(dev)[views.camera]
    background = backdrop(views.lattice, torch.full((b,), 0.15 * h, device=dev), tint,
                          views.backdrop2, h, w)
    part = torch.tensor(SLOT_PART, device=dev).expand(b, -1)
    instance = part.clone()
    instance[:, -1] = OCCLUDER
    # each part is its own "instance", so the raster's amodal masks are the amodal part masks
    layers = raster.render(prims, colors, (h, w), background, instance=instance, part=part,
                           n_instances=len(PARTS) + 1, textures=textures, aa=aa)
    image = add_noise(cams.to(dev).apply(layers.rgb, views.camera), noise, seed)
    parts = layers.parts
    return Pedestrians(image=image, parts=parts, parts_no_bag=parts.masked_fill(parts == BAG, -1),
                       part_masks=layers.masks[:, : len(PARTS)], mask=parts >= 0,
                       occluder=layers.ids == OCCLUDER, pid=pid, views=views)


def pedestrians(identities: PedestrianIdentities, n_per_id: int, n_cameras: int = 4,
                size: int = 64, seed: int = 0, occluded: float = 0.0, partial: float = 0.0,
                misalign: float = 1.0,
                camera_strength: float = 1.0, noise: float = 0.0,
                device: torch.device | str = "cpu", chunk: int | None = None) -> Pedestrians:
    """``n_per_id`` images of every identity (identity-major), camera ``j % n_cameras`` for the
    identity's j-th image (so every identity is seen by every camera when ``n_per_id >=
    n_cameras``), views from :func:`sample_views`, rendered ``chunk`` images at a time (default:
    about 2^20 pixels a chunk); bit-identical for a seed on a device."""
    if n_per_id < 1:
        raise ValueError(f"n_per_id must be >= 1, got {n_per_id}")
    pid = torch.arange(len(identities), device=device).repeat_interleave(n_per_id)
    camera = torch.arange(n_per_id, device=device).repeat(len(identities)) % n_cameras
    views = sample_views(camera, seed, misalign, occluded, partial)
    cams = cameras(n_cameras, camera_strength, seed, device)
    outs = [render_pedestrians(identities, pid[i.to(device)], views[i.to(device)], cams, size)
            for i in chunks(len(pid), size * size // 2, chunk)]
    cat = {f.name: torch.cat([getattr(o, f.name) for o in outs])
           for f in fields(Pedestrians) if f.name not in ("pid", "views")}
    cat["image"] = add_noise(cat["image"], noise, seed + NOISE_SEED)
    return Pedestrians(**cat, pid=pid, views=views)


def query_gallery(pid: torch.Tensor, camera: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A Market-1501 style split: for every (identity, camera) pair one random image is a query,
    the others are the gallery. Returns ``is_query`` (N,) bool."""
    pid, camera = torch.as_tensor(pid).long().cpu(), torch.as_tensor(camera).long().cpu()
    if pid.shape != camera.shape or pid.ndim != 1:
        raise ValueError(f"pid and camera must be (N,) vectors, got {tuple(pid.shape)}, "
                         f"{tuple(camera.shape)}")
    key = pid * (int(camera.max()) + 1) + camera
    u = torch.rand(len(pid), generator=torch.Generator().manual_seed(seed))
    order = torch.argsort(key.double() + u, stable=True)               # by pair, then at random
    first = torch.ones(len(pid), dtype=torch.bool)
    first[1:] = key[order][1:] != key[order][:-1]
    is_query = torch.zeros(len(pid), dtype=torch.bool)
    is_query[order[first]] = True
    return is_query
