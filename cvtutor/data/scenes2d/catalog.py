"""What the 2-D scene world is made of: object categories drawn from parts, colours, textures, scene
types and their object distributions (chapter ``world_scenes2d``).

Every category is a *template*: up to :data:`MAX_PARTS` raster primitives (see
:mod:`cvtutor.data.raster`) laid out in the object's box, in box units ``(u, v)`` in [-1, 1]^2
(``u`` right, ``v`` down); a box of half-extents ``(hx, hy)`` maps them to pixels by
``(u hx, v hy)``.
Lengths that must stay round (a disc's radius, a stroke's half-thickness, a ring's) scale with
``min(hx, hy)``. ``long_axis`` templates (bar, arc) are drawn along the longer side of the box.
The person has two templates (the dress differs), so gender is visible when the figure is large.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cvtutor.data.raster import BEZIER, BOX, ELLIPSE, POLYGON, POLYLINE, RING, ROUNDED_BOX

MAX_PARTS = 4
MAX_POINTS = 4
MAX_KEYPOINTS = 4


@dataclass(frozen=True)
class Part:
    """One primitive of a template: ``kind``; ``center`` (u, v); ``size`` its raster params in box
    units (x-like entries scale with hx, y-like with hy, radii with min(hx, hy)); ``points`` in box
    units; ``shade`` multiplies the object colour's value (a roof darker than its walls); ``name``
    the part word (``""``: not a nameable part)."""

    kind: int
    name: str = ""
    center: tuple[float, float] = (0.0, 0.0)
    size: tuple[float, float, float] = (1.0, 1.0, 0.0)
    points: tuple[tuple[float, float], ...] = ((0.0, 0.0),)
    shade: float = 1.0


@dataclass(frozen=True)
class Category:
    """A category: its parts, the aspect ratios (long side / short side) its box may take, which
    orientations (``"both"``, ``"tall"``, ``"wide"``), its keypoints (name, (u, v)), its
    super-category and its usual colour (used by the appearance-diversity bias)."""

    name: str
    supercategory: str
    parts: tuple[Part, ...]
    aspect: tuple[float, float] = (1.0, 1.0)
    orientation: str = "both"
    keypoints: tuple[tuple[str, tuple[float, float]], ...] = ()
    usual_color: str = "red"
    long_axis: bool = False


_TRI = ((0.0, -1.0), (1.0, 1.0), (-1.0, 1.0), (-1.0, 1.0))
_DIAMOND = ((0.0, -1.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0))
_ROOF = ((-1.0, -0.25), (1.0, -0.25), (0.0, -1.0), (0.0, -1.0))
_SHADE = ((-0.8, -0.3), (0.8, -0.3), (0.4, -1.0), (-0.4, -1.0))
_DRESS = ((-0.35, -0.42), (0.35, -0.42), (0.75, 0.35), (-0.75, 0.35))
_PERSON_KP = (
    ("head", (0.0, -0.78)),
    ("hip", (0.0, 0.2)),
    ("left foot", (-0.35, 0.96)),
    ("right foot", (0.35, 0.96)),
)


def _person(torso: Part) -> tuple[Part, ...]:
    return (
        Part(ELLIPSE, "head", (0.0, -0.78), (0.42, 0.2, 0)),
        torso,
        Part(
            POLYLINE, "legs", points=((-0.25, 0.25), (-0.35, 0.96)), size=(0.16, 0, 0), shade=0.55
        ),
        Part(POLYLINE, "legs", points=((0.25, 0.25), (0.35, 0.96)), size=(0.16, 0, 0), shade=0.55),
    )


CATEGORIES: tuple[Category, ...] = (
    Category("circle", "shape", (Part(ELLIPSE),), usual_color="red"),
    Category("square", "shape", (Part(BOX),), usual_color="blue"),
    Category("rectangle", "shape", (Part(BOX),), aspect=(1.6, 8.0), usual_color="green"),
    Category("oval", "shape", (Part(ELLIPSE),), aspect=(1.6, 8.0), usual_color="yellow"),
    Category(
        "triangle", "shape", (Part(POLYGON, points=_TRI),), aspect=(1.0, 2.0), usual_color="orange"
    ),
    Category(
        "diamond",
        "shape",
        (Part(POLYGON, points=_DIAMOND),),
        aspect=(1.0, 3.0),
        usual_color="purple",
    ),
    Category("ring", "shape", (Part(RING, size=(0.78, 0.44, 0)),), usual_color="pink"),
    Category(
        "bar",
        "stroke",
        (Part(POLYLINE, points=((-1.0, 0.0), (1.0, 0.0)), size=(1.0, 0, 0)),),
        aspect=(3.0, 8.0),
        usual_color="brown",
        long_axis=True,
    ),
    Category(
        "arc",
        "stroke",
        (
            Part(
                BEZIER,
                points=((-1.0, 0.6), (-0.4, -1.4), (0.4, -1.4), (1.0, 0.6)),
                size=(0.35, 0, 0),
            ),
        ),
        aspect=(2.0, 6.0),
        usual_color="black",
        long_axis=True,
    ),
    Category(
        "house",
        "building",
        (
            Part(BOX, "body", (0.0, 0.375), (0.8, 0.625, 0)),
            Part(POLYGON, "roof", points=_ROOF, shade=0.6),
            Part(BOX, "door", (0.0, 0.72), (0.18, 0.28, 0), shade=0.35),
        ),
        aspect=(1.0, 2.0),
        keypoints=(
            ("roof top", (0.0, -1.0)),
            ("left corner", (-0.8, 1.0)),
            ("right corner", (0.8, 1.0)),
        ),
        usual_color="red",
    ),
    Category(
        "snowman",
        "figure",
        (
            Part(ELLIPSE, "base", (0.0, 0.55), (0.8, 0.45, 0)),
            Part(ELLIPSE, "belly", (0.0, -0.05), (0.6, 0.3, 0), shade=0.95),
            Part(ELLIPSE, "head", (0.0, -0.62), (0.42, 0.3, 0), shade=0.9),
        ),
        aspect=(1.4, 2.2),
        orientation="tall",
        keypoints=(("head", (0.0, -0.62)),),
        usual_color="white",
    ),
    Category(
        "lamp",
        "furniture",
        (
            Part(BOX, "base", (0.0, 0.9), (0.6, 0.1, 0), shade=0.5),
            Part(
                POLYLINE, "pole", points=((0.0, 0.85), (0.0, -0.35)), size=(0.12, 0, 0), shade=0.4
            ),
            Part(POLYGON, "shade", points=_SHADE),
        ),
        aspect=(1.8, 3.0),
        orientation="tall",
        keypoints=(("top", (0.0, -1.0)), ("foot", (0.0, 1.0))),
        usual_color="yellow",
    ),
    Category(
        "tree",
        "plant",
        (
            Part(BOX, "trunk", (0.0, 0.7), (0.16, 0.3, 0), shade=0.45),
            Part(ELLIPSE, "crown", (0.0, -0.25), (1.0, 0.75, 0)),
        ),
        aspect=(1.0, 2.0),
        orientation="tall",
        keypoints=(("top", (0.0, -1.0)), ("root", (0.0, 1.0))),
        usual_color="green",
    ),
    Category(
        "person",
        "person",
        _person(Part(ROUNDED_BOX, "torso", (0.0, -0.1), (0.55, 0.35, 0.35))),
        aspect=(2.0, 3.0),
        orientation="tall",
        keypoints=_PERSON_KP,
        usual_color="blue",
    ),
)
NAMES = tuple(c.name for c in CATEGORIES)
PERSON = NAMES.index("person")
# the templates: one per category, plus the person in a dress (template index len(CATEGORIES))
TEMPLATES: tuple[tuple[Part, ...], ...] = tuple(c.parts for c in CATEGORIES) + (
    _person(Part(POLYGON, "torso", points=_DRESS)),
)
TEMPLATE_CATEGORY = tuple(range(len(CATEGORIES))) + (PERSON,)
DRESS_TEMPLATE = len(CATEGORIES)
PARTS = tuple(sorted({p.name for t in TEMPLATES for p in t if p.name}))
SUPERCATEGORIES = tuple(dict.fromkeys(c.supercategory for c in CATEGORIES))

# colour names and their HSV centres (hue in turns)
COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.0, 0.85, 0.85),
    "orange": (0.075, 0.9, 0.95),
    "yellow": (0.15, 0.9, 0.95),
    "green": (0.33, 0.8, 0.65),
    "blue": (0.61, 0.8, 0.85),
    "purple": (0.78, 0.65, 0.7),
    "pink": (0.92, 0.45, 0.95),
    "brown": (0.07, 0.7, 0.5),
    "white": (0.0, 0.0, 0.97),
    "grey": (0.0, 0.0, 0.55),
    "black": (0.0, 0.0, 0.13),
}
COLOR_NAMES = tuple(COLORS)
HSV_JITTER = (0.02, 0.08, 0.08)

# scene types: background (sky/top colour, ground/bottom colour, horizon as a fraction of height),
# whether indoors, and the relative frequency of each category there (scene-conditional objects)
SCENES: dict[str, dict] = {
    "street": dict(
        top=(0.72, 0.84, 0.95),
        bottom=(0.55, 0.55, 0.57),
        horizon=0.6,
        indoor=False,
        weights=dict(house=4, lamp=3, tree=2, person=4, bar=1, rectangle=1),
    ),
    "park": dict(
        top=(0.70, 0.86, 0.98),
        bottom=(0.50, 0.72, 0.42),
        horizon=0.55,
        indoor=False,
        weights=dict(tree=4, person=3, circle=1, arc=1, oval=1, lamp=1, ring=1, snowman=1),
    ),
    "winter": dict(
        top=(0.80, 0.85, 0.92),
        bottom=(0.95, 0.96, 0.98),
        horizon=0.5,
        indoor=False,
        weights=dict(snowman=4, tree=2, house=2, person=2, circle=1),
    ),
    "playroom": dict(
        top=(0.93, 0.89, 0.80),
        bottom=(0.80, 0.68, 0.52),
        horizon=0.75,
        indoor=True,
        weights=dict(
            circle=2,
            square=2,
            rectangle=2,
            oval=2,
            triangle=2,
            diamond=2,
            ring=2,
            bar=1,
            arc=1,
            lamp=1,
            person=1,
            snowman=0.5,
        ),
    ),
}
SCENE_NAMES = tuple(SCENES)
REGIONS = ("north", "south", "east", "west", "centre")


def scene_weights() -> torch.Tensor:
    """(S, C) relative category frequencies per scene type."""
    return torch.tensor(
        [[float(SCENES[s]["weights"].get(c, 0.0)) for c in NAMES] for s in SCENE_NAMES]
    )


def home_scene(category: str) -> int:
    """The scene type where ``category`` is most frequent."""
    return int(scene_weights()[:, NAMES.index(category)].argmax())


def template_tensors(device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """The templates as tensors over (T templates, Q = MAX_PARTS parts): ``kind`` (T, Q) (-1: no
    part), ``center`` (T, Q, 2), ``size`` (T, Q, 3), ``points`` (T, Q, V, 2), ``shade`` (T, Q),
    ``part`` (T, Q) index into :data:`PARTS` (-1: none), ``keypoints`` (T, K, 2) and
    ``n_keypoints`` (T,), ``long_axis`` (T,) bool, ``category`` (T,)."""
    t, q = len(TEMPLATES), MAX_PARTS
    out = {
        "kind": torch.full((t, q), -1, dtype=torch.long),
        "center": torch.zeros(t, q, 2),
        "size": torch.zeros(t, q, 3),
        "points": torch.zeros(t, q, MAX_POINTS, 2),
        "shade": torch.ones(t, q),
        "part": torch.full((t, q), -1, dtype=torch.long),
        "keypoints": torch.zeros(t, MAX_KEYPOINTS, 2),
        "n_keypoints": torch.zeros(t, dtype=torch.long),
        "long_axis": torch.zeros(t, dtype=torch.bool),
        "category": torch.tensor(TEMPLATE_CATEGORY),
    }
    for i, parts in enumerate(TEMPLATES):
        cat = CATEGORIES[TEMPLATE_CATEGORY[i]]
        for j, p in enumerate(parts):
            pts = list(p.points) + [p.points[-1]] * (MAX_POINTS - len(p.points))
            out["kind"][i, j], out["shade"][i, j] = p.kind, p.shade
            out["center"][i, j], out["size"][i, j] = torch.tensor(p.center), torch.tensor(p.size)
            out["points"][i, j] = torch.tensor(pts)
            out["part"][i, j] = PARTS.index(p.name) if p.name else -1
        for j, (_, uv) in enumerate(cat.keypoints):
            out["keypoints"][i, j] = torch.tensor(uv)
        out["n_keypoints"][i], out["long_axis"][i] = len(cat.keypoints), cat.long_axis
    return {k: v.to(device) for k, v in out.items()}
