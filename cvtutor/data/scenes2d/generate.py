"""Attributed 2-D scenes: sampling (on the device, batched) and rendering through the rasteriser.

:func:`scenes2d` draws ``n`` scenes at once: a scene type and a region per image, then up to
``max_objects`` objects per image with a category from the scene type's distribution, a colour
name (its HSV centre jittered), a texture, a box whose long/short side ratio is drawn up to 8:1 in
either orientation (per category), and a depth; boxes may overlap up to ``max_overlap`` IoU.
Look-alikes (a copy of an object's category, colour and texture elsewhere in the scene) and the
planted biases of :class:`Biases` are applied to the whole batch with tensor operations: the only
Python loops run over candidate slots and categories, never over images.
:meth:`Scenes2D.render` turns any subset into RGB, visible ids, part maps and amodal masks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch

from cvtutor.data import raster as R
from cvtutor.data.scenes2d import catalog as K


@dataclass(frozen=True)
class Biases:
    """Planted dataset biases, one knob per REVISE metric (0 everywhere: an unbiased world).

    Object-based: ``count_skew`` (object counts: category weights times exp(-skew * rank) within
    each scene type); ``duplicate_rate`` (duplicate annotations: P(an instance of a category with
    a look-alike name is annotated twice, see :data:`DUPLICATE_NAMES`)); ``scale_shift`` (object
    scale: log-size shift of ``scale_class``); ``cooccurrence`` (co-occurrence: P(``pair[1]`` is
    added to a scene holding ``pair[0]``)); ``scene_confinement`` (scene diversity: the weight of
    ``confined_class`` outside its home scene is multiplied by 1 - knob); ``appearance_collapse``
    (appearance diversity: P(an instance of ``collapse_class`` in its home scene takes its usual
    colour, untextured)).
    Gender-based: ``gender_context`` (contextual representation: P(woman) = 1/2 + knob/2 indoors,
    1/2 - knob/2 outdoors); ``gender_distance`` (instance distances: P(``pair[1]`` is moved next to
    a man)); ``gender_appearance`` (appearance differences: P(a person's texture is dots for a
    woman, stripes for a man)); ``gender_inference`` (label inference: P(a small person, area <
    ``small_area`` of the image, is labelled "man" whatever the truth)).
    Geography-based: ``region_skew`` (country distribution: region weights exp(-skew * rank));
    ``visitor_rate`` (local language: P(a caption is a visitor's) grows with the region's rank:
    knob * rank / (R - 1)); ``tag_boost`` (tag over-representation: the weight of ``tag_class`` in
    the first region is multiplied by 1 + knob)."""

    count_skew: float = 0.0
    duplicate_rate: float = 0.0
    scale_shift: float = 0.0
    scale_class: str = "house"
    cooccurrence: float = 0.0
    pair: tuple[str, str] = ("person", "lamp")
    scene_confinement: float = 0.0
    confined_class: str = "snowman"
    appearance_collapse: float = 0.0
    collapse_class: str = "tree"
    gender_context: float = 0.0
    gender_distance: float = 0.0
    gender_appearance: float = 0.0
    gender_inference: float = 0.0
    small_area: float = 0.01
    region_skew: float = 0.0
    visitor_rate: float = 0.0
    tag_boost: float = 0.0
    tag_class: str = "tree"

    def __post_init__(self) -> None:
        for name in (
            "duplicate_rate",
            "cooccurrence",
            "scene_confinement",
            "appearance_collapse",
            "gender_context",
            "gender_distance",
            "gender_appearance",
            "gender_inference",
            "visitor_rate",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"Biases.{name} is a probability in [0, 1], got {getattr(self, name)}"
                )
        classes = [
            getattr(self, k)
            for k in ("scale_class", "confined_class", "collapse_class", "tag_class")
        ]
        for value in classes + list(self.pair):
            if value not in K.NAMES:
                raise ValueError(f"Biases: unknown category {value!r}; expected one of {K.NAMES}")


# categories whose instances a careless annotator may label twice (REVISE's "cup and mug")
DUPLICATE_NAMES = {
    "circle": "oval",
    "oval": "circle",
    "square": "rectangle",
    "rectangle": "square",
    "triangle": "diamond",
    "diamond": "triangle",
}
TEXTURE_WEIGHTS = {
    "flat": 6,
    "stripes": 1,
    "checker": 1,
    "dots": 1,
    "gradient": 1,
    "grating": 1,
    "noise": 1,
}


@dataclass(frozen=True)
class Scenes2D:
    """``n`` scenes of at most ``m`` objects (slots), padded, every tensor on one device.

    Per image (n,): ``scene`` (index into :data:`catalog.SCENE_NAMES`), ``region``, ``visitor``
    (bool, the caption's author). Per object (n, m): ``valid``, ``category`` (into
    :data:`catalog.NAMES`), ``template``, ``color`` (into :data:`catalog.COLOR_NAMES`), ``rgb``
    (n, m, 3), ``texture`` (into :data:`raster.TEXTURES`), ``texture_period``, ``texture_angle``,
    ``second`` (n, m, 3) the pattern's colour, ``lattice`` (n, m, G, G), ``boxes`` (n, m, 4)
    ``[x, y, w, h]`` pixels (the amodal extent), ``z`` depth (larger in front), ``gender`` (0 man,
    1 woman, -1 not a person) and ``gender_label`` (what an annotator wrote), ``lookalike_of``
    (slot copied, -1), ``duplicate`` (annotated twice). ``size`` is the canvas side."""

    scene: torch.Tensor
    region: torch.Tensor
    visitor: torch.Tensor
    valid: torch.Tensor
    category: torch.Tensor
    template: torch.Tensor
    color: torch.Tensor
    rgb: torch.Tensor
    texture: torch.Tensor
    texture_period: torch.Tensor
    texture_angle: torch.Tensor
    second: torch.Tensor
    lattice: torch.Tensor
    boxes: torch.Tensor
    z: torch.Tensor
    gender: torch.Tensor
    gender_label: torch.Tensor
    lookalike_of: torch.Tensor
    duplicate: torch.Tensor
    size: int
    biases: Biases = Biases()
    seed: int = 0

    def __len__(self) -> int:
        return len(self.scene)

    @property
    def device(self) -> torch.device:
        return self.boxes.device

    def _tensors(self) -> list[str]:
        return [f.name for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)]

    def to(self, device: torch.device | str) -> "Scenes2D":
        return replace(self, **{k: getattr(self, k).to(device) for k in self._tensors()})

    def subset(self, index: torch.Tensor | slice) -> "Scenes2D":
        """The scenes ``index`` (a slice or (B,) indices)."""
        return replace(self, **{k: getattr(self, k)[index] for k in self._tensors()})

    def primitives(self) -> tuple[R.Primitives, dict[str, torch.Tensor]]:
        """The scenes as raster primitives (n, m * Q), object slot-major (object j's parts are
        ``j * Q ... j * Q + Q - 1``), with ``instance``, ``part``, ``z`` (n, m * Q) and the
        ``textures`` of each primitive (its object's)."""
        return primitives_of(self)

    def render(self, index: torch.Tensor | slice | None = None, aa: float = 1.0,
               textured: bool = True, background: torch.Tensor | None = None) -> R.Layers:
        """The layers (:class:`raster.Layers`) of scenes ``index`` (default all): ``rgb``
        (B, 3, S, S), ``ids`` (B, S, S) object slots, ``parts`` (B, S, S) into
        :data:`catalog.PARTS`, ``amodal``/``visible`` (B, m, S, S). ``aa``: anti-aliasing width
        (0: hard edges); ``textured=False`` paints every object flat in its colour;
        ``background`` (B, 3) or (B, 3, S, S) replaces the scene types' backgrounds."""
        sub = self if index is None else self.subset(index)
        prims, extra = sub.primitives()
        bg = backgrounds(sub.scene, sub.size) if background is None else background
        return R.render(
            prims,
            extra["colors"],
            (sub.size, sub.size),
            bg,
            z=extra["z"],
            instance=extra["instance"],
            part=extra["part"],
            n_instances=sub.boxes.shape[1],
            textures=extra["textures"] if textured else None,
            aa=aa,
        )

    def keypoints(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, m, K, 2) pixel positions of each object's keypoints and (n, m, K) bool ``defined``
        (K = :data:`catalog.MAX_KEYPOINTS`; the names are the category's ``keypoints``)."""
        t = K.template_tensors(self.device)
        half = self.boxes[..., 2:] / 2
        uv = t["keypoints"][self.template]  # (n, m, K, 2)
        xy = self.boxes[..., None, :2] + half[..., None, :] + uv * half[..., None, :]
        k = torch.arange(K.MAX_KEYPOINTS, device=self.device)
        return xy, (k < t["n_keypoints"][self.template][..., None]) & self.valid[..., None]


def backgrounds(scene: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, S, S) backgrounds of scene types ``scene`` (B,): the top colour above the horizon,
    the bottom colour below, blended over two pixels."""
    top = torch.tensor([K.SCENES[s]["top"] for s in K.SCENE_NAMES], device=scene.device)[scene]
    bottom = torch.tensor([K.SCENES[s]["bottom"] for s in K.SCENE_NAMES], device=scene.device)[
        scene
    ]
    horizon = torch.tensor([K.SCENES[s]["horizon"] for s in K.SCENE_NAMES], device=scene.device)[
        scene
    ]
    y = torch.arange(size, device=scene.device, dtype=torch.float32) + 0.5
    t = ((y[None, :] - horizon[:, None] * size) / 2 + 0.5).clamp(0, 1)  # (B, S)
    col = top[:, :, None] + t[:, None, :] * (bottom - top)[:, :, None]  # (B, 3, S)
    return col[..., None].expand(-1, -1, -1, size).contiguous()


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """(..., 3) HSV (hue in turns) to RGB."""
    h, s, v = hsv.unbind(-1)
    k = (h[..., None] * 6 + torch.tensor([5.0, 3.0, 1.0], device=hsv.device)) % 6
    return v[..., None] * (1 - s[..., None] * (torch.minimum(k, 4 - k).clamp(0, 1)))


def primitives_of(s: Scenes2D) -> tuple[R.Primitives, dict[str, torch.Tensor]]:
    """See :meth:`Scenes2D.primitives`."""
    t = K.template_tensors(s.device)
    n, m = s.category.shape
    q = K.MAX_PARTS
    tpl = s.template
    half = s.boxes[..., 2:] / 2  # (n, m, 2)
    center = s.boxes[..., :2] + half
    long_axis = t["long_axis"][tpl] & (half[..., 1] > half[..., 0])
    angle = torch.where(long_axis, math.pi / 2, 0.0)
    half = torch.where(long_axis[..., None], half.flip(-1), half)  # in the object frame
    kind = t["kind"][tpl]  # (n, m, Q)
    size = t["size"][tpl]
    hxy, hmin = half[..., None, :], half.min(-1).values[..., None]  # (n, m, 1, 2), (n, m, 1)
    radius_kinds = (kind == R.POLYLINE) | (kind == R.BEZIER) | (kind == R.RING) | (kind == R.DISC)
    params = torch.where(
        radius_kinds[..., None],
        size * hmin[..., None],
        torch.cat([size[..., :2] * hxy, size[..., 2:] * hmin[..., None]], -1),
    )
    stroke = (kind == R.POLYLINE) | (kind == R.BEZIER)
    reach = torch.where(
        stroke[..., None] & long_axis[..., None, None], (hxy - params[..., :1]).clamp_min(0), hxy
    )  # strokes stay inside
    points = t["points"][tpl] * reach[..., None, :]
    offset = R.rotate(t["center"][tpl] * hxy, angle[..., None])
    prims = R.Primitives(
        kind=kind.clamp_min(0).reshape(n, m * q),
        center=(center[..., None, :] + offset).reshape(n, m * q, 2),
        angle=angle[..., None].expand(-1, -1, q).reshape(n, m * q),
        params=params.reshape(n, m * q, 3),
        points=points.reshape(n, m * q, K.MAX_POINTS, 2),
        valid=((kind >= 0) & s.valid[..., None]).reshape(n, m * q),
    )
    shade = t["shade"][tpl][..., None]
    colors = (s.rgb[..., None, :] * shade).reshape(n, m * q, 3)
    second = (s.second[..., None, :] * shade).reshape(n, m * q, 3)
    slot = torch.arange(m, device=s.device)[:, None].expand(m, q)
    part_z = torch.arange(q, device=s.device) * 1e-3  # later parts in front
    rep = lambda x: x[:, :, None].expand(-1, -1, q).reshape(n, m * q)  # noqa: E731
    textures = R.Textures(
        rep(s.texture),
        rep(s.texture_period),
        rep(s.texture_angle),
        second,
        s.lattice[:, :, None].expand(-1, -1, q, -1, -1).reshape(n, m * q, *s.lattice.shape[2:]),
    )
    extra = {
        "colors": colors,
        "instance": slot.reshape(1, m * q).expand(n, -1),
        "part": t["part"][tpl].reshape(n, m * q),
        "z": (s.z[..., None] + part_z).reshape(n, m * q),
    }
    # keep only the slots that draw something: the valid primitives first, cut to the most per scene
    keep = max(int(prims.valid.sum(1).max()), 1)
    order = torch.sort((~prims.valid).to(torch.uint8), dim=1, stable=True).indices[:, :keep]

    def pick(x: torch.Tensor) -> torch.Tensor:
        return x.gather(
            1, order.reshape(n, keep, *([1] * (x.ndim - 2))).expand(-1, -1, *x.shape[2:])
        )

    prims = R.Primitives(**{f.name: pick(getattr(prims, f.name)) for f in fields(R.Primitives)})
    extra = {k: pick(v) for k, v in extra.items()}
    extra["textures"] = R.Textures(*(pick(getattr(textures, f.name)) for f in fields(R.Textures)))
    return prims, extra


def scenes2d(
    n: int,
    size: int = 64,
    min_objects: int = 2,
    max_objects: int = 6,
    min_side: float | None = None,
    max_side: float | None = None,
    max_overlap: float = 0.3,
    lookalike: float = 0.3,
    biases: Biases = Biases(),
    noise_cells: int = 6,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Scenes2D:
    """``n`` random scenes on a ``size`` x ``size`` canvas (see the module docstring).

    Object boxes: side (sqrt of area) log-uniform in [``min_side``, ``max_side``] (defaults
    ``size / 8`` and ``size / 2.2``), aspect ratio log-uniform in the category's range, candidate
    boxes accepted in turn when their IoU with every accepted box is <= ``max_overlap`` (0:
    disjoint). ``lookalike``: P(a scene's last object copies its first one's category, colour and
    texture). Bit-identical for a seed on one device."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    if not 1 <= min_objects <= max_objects:
        raise ValueError(f"need 1 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
    if not 0.0 <= max_overlap <= 1.0 or not 0.0 <= lookalike <= 1.0:
        raise ValueError(f"max_overlap and lookalike are in [0, 1], got {max_overlap}, {lookalike}")
    min_side = size / 8 if min_side is None else min_side
    max_side = size / 2.2 if max_side is None else max_side
    if not 2 <= min_side <= max_side <= size:
        raise ValueError(
            f"need 2 <= min_side <= max_side <= size, got {min_side}, {max_side}, {size}"
        )
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(seed)
    dev = dict(device=device)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=g, **dev)

    def categorical(weights: torch.Tensor, *shape: int) -> torch.Tensor:
        """Draws from weights (C,) in ``shape``, or from rows (n, C) as (n, shape[-1])."""
        if weights.ndim == 1:
            return torch.multinomial(
                weights / weights.sum(), math.prod(shape), replacement=True, generator=g
            ).reshape(shape)
        return torch.multinomial(
            weights / weights.sum(-1, keepdim=True), shape[-1], replacement=True, generator=g
        )

    b, names, nc = biases, K.NAMES, len(K.NAMES)
    n_scene, n_region = len(K.SCENE_NAMES), len(K.REGIONS)
    # image level: region (country distribution), scene type, caption author
    region_w = torch.exp(-b.region_skew * torch.arange(n_region, dtype=torch.float32, **dev))
    region = categorical(region_w, n)
    scene = torch.randint(0, n_scene, (n,), generator=g, **dev)
    visitor = rand(n) < b.visitor_rate * region.float() / (n_region - 1)
    # object level: categories from the scene type's distribution, biased
    w = K.scene_weights().to(device)  # (S, C)
    rank = torch.arange(nc, dtype=torch.float32, **dev)
    w = w * torch.exp(-b.count_skew * rank)
    conf, home = names.index(b.confined_class), K.home_scene(b.confined_class)
    w[torch.arange(n_scene, **dev) != home, conf] *= 1 - b.scene_confinement
    w_img = w[scene]  # (n, C)
    w_img[:, names.index(b.tag_class)] *= torch.where(region == 0, 1 + b.tag_boost, 1.0)
    m = max_objects
    category = categorical(w_img, n, m)  # (n, m)
    count = torch.randint(min_objects, max_objects + 1, (n,), generator=g, **dev)
    # look-alikes copy slot 0 into the last wanted slot; co-occurrence adds pair[1] there instead
    last = (count - 1).clamp_min(0)
    rows = torch.arange(n, **dev)
    is_look = (rand(n) < lookalike) & (count >= 2)
    a_cat, b_cat = names.index(b.pair[0]), names.index(b.pair[1])
    has_a = (category == a_cat) & (torch.arange(m, **dev) < count[:, None])
    elsewhere = has_a & (torch.arange(m, **dev) != last[:, None])
    add_b = (rand(n) < b.cooccurrence) & elsewhere.any(1) & (count >= 2)
    category[rows[add_b], last[add_b]] = b_cat
    is_look &= ~add_b
    category[rows[is_look], last[is_look]] = category[rows[is_look], 0]
    # colour, texture
    color = torch.randint(0, len(K.COLOR_NAMES), (n, m), generator=g, **dev)
    tex_w = torch.tensor([float(TEXTURE_WEIGHTS[k]) for k in R.TEXTURES], **dev)
    texture = categorical(tex_w, n, m)
    # people: gender (context-dependent), texture (appearance difference), template (the dress)
    indoor = torch.tensor([K.SCENES[s]["indoor"] for s in K.SCENE_NAMES], **dev)[scene]
    p_woman = 0.5 + torch.where(indoor, 0.5, -0.5) * b.gender_context
    is_person = category == K.PERSON
    gender = torch.where(is_person, (rand(n, m) < p_woman[:, None]).long(), -1)
    styled = is_person & (rand(n, m) < b.gender_appearance)
    texture = torch.where(styled, torch.where(gender == 1, R.DOTS, R.STRIPES), texture)
    # appearance collapse: the class in its home scene takes its usual colour, flat
    col_c = names.index(b.collapse_class)
    collapse = (
        (category == col_c)
        & (scene == K.home_scene(b.collapse_class))[:, None]
        & (rand(n, m) < b.appearance_collapse)
    )
    color = torch.where(collapse, K.COLOR_NAMES.index(K.CATEGORIES[col_c].usual_color), color)
    texture = torch.where(collapse, R.FLAT, texture)
    # look-alikes: same colour and texture as slot 0
    color[rows[is_look], last[is_look]] = color[rows[is_look], 0]
    texture[rows[is_look], last[is_look]] = texture[rows[is_look], 0]
    template = torch.where(is_person & (gender == 1), K.DRESS_TEMPLATE, category)
    hsv = torch.tensor([K.COLORS[c] for c in K.COLOR_NAMES], **dev)[color]
    jitter = (rand(n, m, 3) * 2 - 1) * torch.tensor(K.HSV_JITTER, **dev)
    hsv = torch.stack(
        [
            (hsv[..., 0] + jitter[..., 0]) % 1,
            (hsv[..., 1] + jitter[..., 1]).clamp(0, 1),
            (hsv[..., 2] + jitter[..., 2]).clamp(0.05, 1),
        ],
        -1,
    )
    rgb = hsv_to_rgb(hsv)
    second = torch.where((hsv[..., 2:] > 0.6), rgb * 0.55, rgb * 0.45 + 0.55)  # darker or lighter
    texture_period = 3.0 + rand(n, m) * 5.0
    texture_angle = rand(n, m) * math.pi
    lattice = R.noise_lattice(n, m, noise_cells, generator=g, device=device)
    # boxes: the size and aspect of each slot's category, placed by rejection (batched over images)
    cats = K.CATEGORIES
    lo = torch.tensor([math.log(c.aspect[0]) for c in cats], **dev)[category]
    hi = torch.tensor([math.log(c.aspect[1]) for c in cats], **dev)[category]
    orient = torch.tensor([{"both": 0, "tall": 1, "wide": 2}[c.orientation] for c in cats], **dev)[
        category
    ]
    tries = 12
    side = torch.exp(math.log(min_side) + rand(n, m, tries) * math.log(max_side / min_side))
    side = (
        side
        * torch.where(category == names.index(b.scale_class), math.exp(b.scale_shift), 1.0)[
            ..., None
        ]
    )
    aspect = torch.exp(lo[..., None] + rand(n, m, tries) * (hi - lo)[..., None]).sqrt()
    tall = torch.where(orient == 0, rand(n, m) < 0.5, orient == 1)[..., None]
    w_ = torch.where(tall, side / aspect, side * aspect).clamp(2.0, size - 1.0)
    h_ = torch.where(tall, side * aspect, side / aspect).clamp(2.0, size - 1.0)
    xy = rand(n, m, tries, 2) * (size - torch.stack([w_, h_], -1))
    cand = torch.cat([xy, w_[..., None], h_[..., None]], -1)  # (n, m, tries, 4)
    boxes = torch.zeros(n, m, 4, **dev)
    valid = torch.zeros(n, m, dtype=torch.bool, **dev)
    for j in range(m):
        placed = torch.zeros(n, dtype=torch.bool, **dev)
        for r in range(tries):
            c = cand[:, j, r]  # (n, 4)
            ok = (
                ~placed
                & (j < count)
                & (box_iou(c[:, None], boxes)[:, 0].masked_fill(~valid, 0).amax(-1) <= max_overlap)
            )
            boxes[ok, j] = c[ok]
            placed |= ok
        valid[:, j] = placed
    z = rand(n, m)
    # gender distance: move pair[1] next to the first man (to his right, or left at the border)
    man = is_person & (gender == 0) & valid
    has_b = (category == b_cat) & valid
    move = man.any(1) & has_b.any(1) & (rand(n) < b.gender_distance)
    i_man, i_b = man.float().argmax(1), has_b.float().argmax(1)
    pm, pb = boxes[rows, i_man], boxes[rows, i_b]
    right = pm[:, 0] + pm[:, 2]
    x_new = torch.where(right + pb[:, 2] <= size, right, pm[:, 0] - pb[:, 2])
    x_new = torch.minimum(x_new.clamp_min(0), size - pb[:, 2])
    y_new = torch.minimum((pm[:, 1] + pm[:, 3] - pb[:, 3]).clamp_min(0), size - pb[:, 3])
    boxes[rows[move], i_b[move], 0], boxes[rows[move], i_b[move], 1] = x_new[move], y_new[move]
    # annotation: gender labels of small people default to "man"; duplicates
    area = boxes[..., 2] * boxes[..., 3] / size**2
    default_man = is_person & (area < b.small_area) & (rand(n, m) < b.gender_inference)
    gender_label = torch.where(default_man, 0, gender)
    dup_ok = torch.zeros(nc, dtype=torch.bool, **dev)
    dup_ok[[names.index(k) for k in DUPLICATE_NAMES]] = True
    duplicate = valid & dup_ok[category] & (rand(n, m) < b.duplicate_rate)
    lookalike_of = torch.full((n, m), -1, dtype=torch.long, **dev)
    lookalike_of[rows[is_look], last[is_look]] = 0
    lookalike_of = torch.where(valid & valid[:, :1], lookalike_of, -1)
    return Scenes2D(
        scene,
        region,
        visitor,
        valid,
        category,
        template,
        color,
        rgb,
        texture,
        texture_period,
        texture_angle,
        second,
        lattice,
        boxes,
        z,
        gender,
        gender_label,
        lookalike_of,
        duplicate,
        size,
        biases,
        seed,
    )


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of boxes ``[x, y, w, h]`` a (..., A, 4) with b (..., B, 4): (..., A, B)."""
    lo = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    hi = torch.minimum(
        a[..., :, None, :2] + a[..., :, None, 2:], b[..., None, :, :2] + b[..., None, :, 2:]
    )
    inter = (hi - lo).clamp_min(0).prod(-1)
    area_a, area_b = a[..., 2] * a[..., 3], b[..., 2] * b[..., 3]
    return inter / (area_a[..., :, None] + area_b[..., None, :] - inter).clamp_min(1e-9)
