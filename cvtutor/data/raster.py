"""A batched, anti-aliased 2-D rasteriser: signed distances, textures, painter's compositing.

The drawing engine of the 2-D scene world (chapter ``world_scenes2d``): every pixel of a synthetic
scene is explained by the primitive that covers it. Everything is torch, on the device of the
inputs, batched over scenes ``B`` and primitives ``P``; no Python loop runs per scene or per object.

Conventions
-----------
* Pixel ``(i, j)`` (row, column) of an ``H`` x ``W`` canvas has its centre at ``x = j + 0.5``,
  ``y = i + 0.5``: coordinates are in pixels, ``y`` points down, angles are in radians (positive
  turns the ``x`` axis towards ``y``, i.e. clockwise on screen).
* A primitive is a shape of one of :data:`KINDS`, given in its **object frame** (origin at
  ``center``, axes turned by ``angle``). Rotation keeps distances: signed distances are in pixels.
* A signed distance is negative inside, zero on the boundary, positive outside.
* Coverage (alpha) is ``clamp(1/2 - sdf / aa, 0, 1)``: the fraction of a pixel-wide box filter
  inside a straight edge at distance ``sdf``; ``aa = 0`` gives hard 0/1 coverage. Either way
  ``alpha >= 1/2`` exactly when the pixel centre is inside (``sdf <= 0``): the hard masks, ids and
  part maps of :func:`composite` are that test, the same convention as ``skimage.draw``'s.
* A scene object (an *instance*) may be made of several primitives (its *parts*); ``instance``
  and ``part`` give each primitive's owner and part label, ``z`` its depth (larger is in front;
  ties: the later primitive is in front, as in painter's order).

The parameters of each kind (``params`` is (B, P, 3), ``points`` (B, P, V, 2) in the object frame):

============  ==================================================  ===========================
kind          params                                              points
============  ==================================================  ===========================
disc          (radius, -, -)                                      -
ellipse       (semi-axis x, semi-axis y, -)                       -
box           (half width, half height, -)                        -
rounded_box   (half width, half height, corner radius)            -
polygon       -                                                   convex polygon's vertices
polyline      (half thickness, -, -)                              the path (a capsule: 2 points)
ring          (radius, thickness, -)                              -
bezier        (half thickness, -, -)                              4 control points (cubic)
============  ==================================================  ===========================

Point lists shorter than ``V`` are padded by repeating their last point (a repeated point adds a
zero-length edge, which changes neither a polygon nor a path).

>>> prims = primitives(torch.tensor([[DISC, BOX]]), torch.tensor([[[16., 16.], [24., 20.]]]),
...                    params=torch.tensor([[[8., 0, 0], [6., 3., 0]]]))
>>> out = render(prims, torch.tensor([[[1., 0, 0], [0, 0, 1.]]]), (32, 32), torch.ones(1, 3))
>>> out.rgb.shape, out.ids.shape, out.amodal.shape
(torch.Size([1, 3, 32, 32]), torch.Size([1, 32, 32]), torch.Size([1, 2, 32, 32]))
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch

KINDS = ("disc", "ellipse", "box", "rounded_box", "polygon", "polyline", "ring", "bezier")
DISC, ELLIPSE, BOX, ROUNDED_BOX, POLYGON, POLYLINE, RING, BEZIER = range(len(KINDS))
TEXTURES = ("flat", "stripes", "checker", "dots", "gradient", "grating", "noise")
FLAT, STRIPES, CHECKER, DOTS, GRADIENT, GRATING, NOISE = range(len(TEXTURES))
BEZIER_SEGMENTS = 24  # a cubic Bézier stroke is the thick polyline through this many chords


# ---------------------------------------------------------------------------------------------
# coordinates
# ---------------------------------------------------------------------------------------------
def pixel_centers(height: int, width: int, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(H, W, 2) ``(x, y)`` of the pixel centres, ``(j + 1/2, i + 1/2)``."""
    if height < 1 or width < 1:
        raise ValueError(f"need a canvas of at least 1 x 1 pixels, got {height} x {width}")
    y = torch.arange(height, device=device, dtype=dtype) + 0.5
    x = torch.arange(width, device=device, dtype=dtype) + 0.5
    return torch.stack(torch.broadcast_tensors(x[None, :], y[:, None]), -1)


def object_frame(points: torch.Tensor, center: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Coordinates of image ``points`` (H, W, 2) in the frames of objects at ``center`` (..., 2)
    turned by ``angle`` (...): ``q = R(-angle) (p - center)``, shape (..., H, W, 2)."""
    c, s = torch.cos(angle)[..., None, None], torch.sin(angle)[..., None, None]
    dx = points[..., 0] - center[..., 0, None, None]
    dy = points[..., 1] - center[..., 1, None, None]
    return torch.stack([c * dx + s * dy, c * dy - s * dx], -1)


def rotate(points: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Points (..., 2) turned by ``angle`` (...) about the origin (object frame to image axes)."""
    c, s = torch.cos(angle)[..., None], torch.sin(angle)[..., None]
    x, y = points[..., :1], points[..., 1:]
    return torch.cat([c * x - s * y, s * x + c * y], -1)


# ---------------------------------------------------------------------------------------------
# signed distance fields of the primitives, in the object frame
# ---------------------------------------------------------------------------------------------
# Each takes q (..., 2) and parameters broadcastable to q[..., 0]; point sets are (..., V, 2)
# broadcastable to q[..., None, :]. All return (...) signed distances in the units of q.

def sdf_disc(q: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Disc of ``radius`` about the origin: ``|q| - r`` (exact)."""
    return torch.hypot(q[..., 0], q[..., 1]) - radius


def sdf_ellipse(q: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """Axis-aligned ellipse of semi-axes ``axes`` (..., 2). The first-order distance
    ``(k0 - 1) k0 / k1`` with ``k0 = |q / a|``, ``k1 = |q / a^2|`` (the level-set value over its
    gradient): its sign is exact (``k0 <= 1``), its value exact on the boundary and within a few
    per cent of the distance in the pixel band where coverage is blended."""
    ax, ay = axes[..., 0], axes[..., 1]
    k0 = torch.hypot(q[..., 0] / ax, q[..., 1] / ay)
    k1 = torch.hypot(q[..., 0] / ax**2, q[..., 1] / ay**2)
    inner = -axes.min(-1).values.expand_as(k0)
    return torch.where(k1 > 0, (k0 - 1) * k0 / k1.clamp_min(1e-12), inner)


def sdf_rounded_box(q: torch.Tensor, half: torch.Tensor,
                    radius: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Axis-aligned box of half-extents ``half`` (..., 2) whose corners are rounded with ``radius``
    (<= the smaller half-extent; 0 gives the sharp box). Exact."""
    radius = torch.as_tensor(radius, dtype=q.dtype, device=q.device)
    dx = q[..., 0].abs() - half[..., 0] + radius
    dy = q[..., 1].abs() - half[..., 1] + radius
    outside = torch.hypot(dx.clamp_min(0), dy.clamp_min(0))
    return outside + torch.maximum(dx, dy).clamp_max(0) - radius


def sdf_box(q: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """Axis-aligned box of half-extents ``half`` (..., 2). Exact."""
    return sdf_rounded_box(q, half, 0.0)


def _segment_distance(q: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance from q (..., 2) to the segments a-b (..., V, 2) -> (..., V) (by components: no
    reduction over a last axis of 2, which is slow)."""
    ex, ey = b[..., 0] - a[..., 0], b[..., 1] - a[..., 1]
    wx, wy = q[..., None, 0] - a[..., 0], q[..., None, 1] - a[..., 1]
    t = ((wx * ex + wy * ey) / (ex * ex + ey * ey).clamp_min(1e-12)).clamp(0, 1)
    return torch.hypot(wx - t * ex, wy - t * ey)


def sdf_polygon(q: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Convex polygon of ``vertices`` (..., V, 2), in either orientation. Exact: the distance to
    the nearest edge, negative where q is on the inner side of every edge."""
    nxt = vertices.roll(-1, dims=-2)
    dist = _segment_distance(q, vertices, nxt).min(-1).values
    ex, ey = nxt[..., 0] - vertices[..., 0], nxt[..., 1] - vertices[..., 1]
    cross = ex * (q[..., None, 1] - vertices[..., 1]) - ey * (q[..., None, 0] - vertices[..., 0])
    area2 = (vertices[..., 0] * nxt[..., 1] - nxt[..., 0] * vertices[..., 1]).sum(-1)
    inside = (cross * torch.sign(area2)[..., None] >= 0).all(-1)
    return torch.where(inside, -dist, dist)


def sdf_polyline(q: torch.Tensor, path: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Thick open polyline through ``path`` (..., V, 2) with half-thickness ``radius`` (round caps
    and joints; two points give a capsule). Exact."""
    d = _segment_distance(q, path[..., :-1, :], path[..., 1:, :]) if path.shape[-2] > 1 else \
        torch.linalg.vector_norm(q[..., None, :] - path, dim=-1)
    return d.min(-1).values - radius


def sdf_capsule(q: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                radius: torch.Tensor) -> torch.Tensor:
    """Capsule: the segment a-b (..., 2) thickened by ``radius``. Exact."""
    return sdf_polyline(q, torch.stack([a, b], -2), radius)


def sdf_ring(q: torch.Tensor, radius: torch.Tensor, thickness: torch.Tensor) -> torch.Tensor:
    """Annulus of mid-radius ``radius`` and ``thickness``: ``||q| - r| - t/2``. Exact."""
    return (torch.hypot(q[..., 0], q[..., 1]) - radius).abs() - thickness / 2


def bezier_points(control: torch.Tensor, n: int = BEZIER_SEGMENTS) -> torch.Tensor:
    """``n + 1`` points along the cubic Béziers of ``control`` (..., 4, 2): (..., n + 1, 2)."""
    if control.shape[-2:] != (4, 2):
        raise ValueError(f"a cubic Bézier needs control points (..., 4, 2), "
                         f"got {tuple(control.shape)}")
    t = torch.linspace(0, 1, n + 1, device=control.device, dtype=control.dtype)[:, None]
    basis = torch.stack([(1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t**2 * (1 - t), t**3], -1)
    return (basis[..., 0, :, None] * control[..., None, :, :]).sum(-2)


def sdf_bezier(q: torch.Tensor, control: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Stroke of half-thickness ``radius`` along the cubic Bézier of ``control`` (..., 4, 2),
    drawn as the thick polyline through :data:`BEZIER_SEGMENTS` chords of the curve."""
    return sdf_polyline(q, bezier_points(control), radius)


# ---------------------------------------------------------------------------------------------
# primitives as one batch
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Primitives:
    """A batch of ``P`` primitives in each of ``B`` scenes (see the module's table of parameters).

    ``kind`` (B, P) long, index into :data:`KINDS`; ``center`` (B, P, 2) pixels; ``angle`` (B, P)
    radians; ``params`` (B, P, 3); ``points`` (B, P, V, 2) in the object frame (V >= 1);
    ``valid`` (B, P) bool (invalid primitives cover nothing)."""

    kind: torch.Tensor
    center: torch.Tensor
    angle: torch.Tensor
    params: torch.Tensor
    points: torch.Tensor
    valid: torch.Tensor

    def __post_init__(self) -> None:
        if self.kind.ndim != 2:
            raise ValueError(f"Primitives.kind must be (B, P), got {tuple(self.kind.shape)}")
        b, p = self.kind.shape
        want = {"center": (b, p, 2), "angle": (b, p), "params": (b, p, 3), "valid": (b, p)}
        for name, shape in want.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"Primitives.{name} must have shape {shape} for kind (B, P) = "
                                 f"{(b, p)}, got {tuple(getattr(self, name).shape)}")
        if self.points.ndim != 4 or self.points.shape[:2] != (b, p) or self.points.shape[-1] != 2:
            raise ValueError(f"Primitives.points must be (B, P, V, 2), "
                             f"got {tuple(self.points.shape)}")
        if self.kind.numel() and (int(self.kind.min()) < 0 or int(self.kind.max()) >= len(KINDS)):
            raise ValueError(f"Primitives.kind must index KINDS {KINDS}, "
                             f"got values outside 0..{len(KINDS) - 1}")

    @property
    def shape(self) -> tuple[int, int]:
        """``(B, P)``."""
        return tuple(self.kind.shape)

    @property
    def device(self) -> torch.device:
        return self.center.device

    def to(self, device: torch.device | str) -> "Primitives":
        return Primitives(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def replace(self, **changes: torch.Tensor) -> "Primitives":
        return replace(self, **changes)


def primitives(kind: torch.Tensor, center: torch.Tensor, angle: torch.Tensor | None = None,
               params: torch.Tensor | None = None, points: torch.Tensor | None = None,
               valid: torch.Tensor | None = None) -> Primitives:
    """:class:`Primitives` with defaults: angle 0, params 0, a single point (0, 0), all valid.
    ``kind`` may be a kind name (str) for all, or (B, P) indices."""
    center = torch.as_tensor(center, dtype=torch.float32) if not torch.is_tensor(center) else center
    if center.ndim != 3 or center.shape[-1] != 2:
        raise ValueError(f"center must be (B, P, 2), got {tuple(center.shape)}")
    b, p, dev, dt = center.shape[0], center.shape[1], center.device, center.dtype
    if isinstance(kind, str):
        if kind not in KINDS:
            raise ValueError(f"unknown primitive kind {kind!r}; expected one of {KINDS}")
        kind = torch.full((b, p), KINDS.index(kind), dtype=torch.long, device=dev)
    return Primitives(
        kind=torch.as_tensor(kind, device=dev).long(), center=center,
        angle=torch.zeros(b, p, device=dev, dtype=dt) if angle is None else angle.to(dt),
        params=torch.zeros(b, p, 3, device=dev, dtype=dt) if params is None else params.to(dt),
        points=torch.zeros(b, p, 1, 2, device=dev, dtype=dt) if points is None else points.to(dt),
        valid=torch.ones(b, p, dtype=torch.bool, device=dev) if valid is None else valid.bool())


def concat(parts: list[Primitives]) -> Primitives:
    """Primitives of several batches side by side, ``(B, P1 + P2 + ...)``; point lists are padded
    to the longest by repeating their last point."""
    v = max(x.points.shape[2] for x in parts)
    pad = [torch.cat([x.points, x.points[:, :, -1:].expand(-1, -1, v - x.points.shape[2], -1)], 2)
           for x in parts]
    cat = {f.name: torch.cat([getattr(x, f.name) for x in parts], 1)
           for f in fields(Primitives) if f.name != "points"}
    return Primitives(**cat, points=torch.cat(pad, 1))


def _by_kind(kind: torch.Tensor, q: torch.Tensor, funcs: dict[int, Callable],
             fill: float) -> torch.Tensor:
    """Evaluate ``funcs[k](rows, q[rows])`` on the flat rows of each kind present; (N, H, W)."""
    out = torch.full(q.shape[:-1], fill, device=q.device, dtype=q.dtype)
    for k, fn in funcs.items():
        rows = torch.nonzero(kind == k).squeeze(1)
        if rows.numel():
            out[rows] = fn(rows, q[rows])
    return out


def signed_distance(prims: Primitives, height: int, width: int) -> torch.Tensor:
    """(B, P, H, W) signed distances (pixels) of every primitive at every pixel centre; ``+inf``
    for invalid primitives. One batched evaluation per kind present (at most 8 calls)."""
    return _signed_distance(prims, _canvas_frame(prims, height, width))


def _canvas_frame(prims: Primitives, height: int, width: int) -> torch.Tensor:
    """:func:`object_frame` of the pixel centres, computed from a row and a column (faster)."""
    dt, dev = prims.center.dtype, prims.device
    x = torch.arange(width, device=dev, dtype=dt) + 0.5 - prims.center[..., 0, None, None]
    y = torch.arange(height, device=dev, dtype=dt)[:, None] + 0.5 - prims.center[..., 1, None, None]
    c, s = torch.cos(prims.angle)[..., None, None], torch.sin(prims.angle)[..., None, None]
    return torch.stack([c * x + s * y, c * y - s * x], -1)


def _signed_distance(prims: Primitives, q: torch.Tensor) -> torch.Tensor:
    """:func:`signed_distance` at object-frame coordinates q (B, P, H, W, 2)."""
    b, p, height, width, _ = q.shape
    q = q.reshape(b * p, height, width, 2)
    par = prims.params.reshape(b * p, 1, 1, 3)
    pts = prims.points.reshape(b * p, 1, 1, -1, 2)
    funcs = {
        DISC: lambda r, x: sdf_disc(x, par[r, ..., 0]),
        ELLIPSE: lambda r, x: sdf_ellipse(x, par[r, ..., :2]),
        BOX: lambda r, x: sdf_box(x, par[r, ..., :2]),
        ROUNDED_BOX: lambda r, x: sdf_rounded_box(x, par[r, ..., :2], par[r, ..., 2]),
        POLYGON: lambda r, x: sdf_polygon(x, pts[r]),
        POLYLINE: lambda r, x: sdf_polyline(x, pts[r], par[r, ..., 0]),
        RING: lambda r, x: sdf_ring(x, par[r, ..., 0], par[r, ..., 1]),
        BEZIER: lambda r, x: sdf_bezier(x, pts[r, ..., :4, :], par[r, ..., 0]),
    }
    if (prims.kind == BEZIER).any() and prims.points.shape[2] < 4:
        raise ValueError(f"bezier primitives need 4 control points, but points has "
                         f"V = {prims.points.shape[2]}")
    kind = torch.where(prims.valid, prims.kind, -1).reshape(-1)
    return _by_kind(kind, q, funcs, math.inf).reshape(b, p, height, width)


def coverage(sdf: torch.Tensor, aa: float = 1.0) -> torch.Tensor:
    """Alpha in [0, 1] from signed distances (pixels): ``clamp(1/2 - sdf / aa, 0, 1)``, the area of
    a pixel-wide box filter inside a straight edge for ``aa = 1``; ``aa = 0``: hard ``sdf <= 0``."""
    if aa < 0:
        raise ValueError(f"aa (the anti-aliasing width in pixels) must be >= 0, got {aa}")
    if aa == 0:
        return (sdf <= 0).to(sdf.dtype)
    return (0.5 - sdf / aa).clamp(0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# textures, in the object frame
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Textures:
    """A pattern per primitive mixing its colour with a second one: pixel colour
    ``color + t (second - color)`` with ``t`` in [0, 1] from :func:`texture_field`.

    ``kind`` (B, P) index into :data:`TEXTURES`; ``period`` (B, P) pixels (stripe/check/dot pitch,
    gradient length, noise cell); ``angle`` (B, P) the pattern's direction in the object frame;
    ``second`` (B, P, 3) the second colour; ``lattice`` (B, P, G, G) values in [0, 1] of the value
    noise (see :func:`noise_lattice`), or None when no primitive uses ``noise``."""

    kind: torch.Tensor
    period: torch.Tensor
    angle: torch.Tensor
    second: torch.Tensor
    lattice: torch.Tensor | None = None

    def __post_init__(self) -> None:
        s = tuple(self.kind.shape)
        got = [tuple(t.shape) for t in (self.kind, self.period, self.angle, self.second)]
        if len(s) != 2 or got[1:] != [s, s, (*s, 3)]:
            raise ValueError(f"Textures needs kind, period, angle (B, P) and second (B, P, 3); "
                             f"got {got}")
        if (self.kind == NOISE).any() and (self.lattice is None or self.lattice.shape[:2] != s):
            raise ValueError("Textures with 'noise' need a lattice (B, P, G, G): "
                             "see noise_lattice()")


def noise_lattice(b: int, p: int, g: int = 8, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, P, G, G) uniform values for :func:`value_noise` (its pattern repeats every G cells)."""
    return torch.rand((b, p, g, g), generator=generator, device=device)


def _square_wave(x: torch.Tensor, period: torch.Tensor) -> torch.Tensor:
    """Anti-aliased 0/1 stripes of ``period`` pixels along x (1 on each period's middle half)."""
    f = x / period - torch.floor(x / period)
    return (0.5 - ((f - 0.5).abs() - 0.25) * period).clamp(0, 1)


def value_noise(q: torch.Tensor, lattice: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """Value noise: ``lattice`` (N, G, G) values at integer points of ``q / cell`` (q (N, H, W, 2),
    cell (N, 1, 1)), smoothstep-interpolated between them, wrapping every G cells; (N, H, W)."""
    n, g = lattice.shape[0], lattice.shape[-1]
    u = q / cell[..., None]
    i0 = torch.floor(u)
    f = u - i0
    f = f * f * (3 - 2 * f)
    i0 = i0.long() % g
    i1 = (i0 + 1) % g
    flat = lattice.reshape(n, 1, g * g)

    def at(ix: torch.Tensor, iy: torch.Tensor) -> torch.Tensor:
        idx = (iy * g + ix).reshape(n, 1, -1)
        return flat.expand(-1, 1, -1).gather(2, idx).reshape(ix.shape)

    top = at(i0[..., 0], i0[..., 1]) * (1 - f[..., 0]) + at(i1[..., 0], i0[..., 1]) * f[..., 0]
    bottom = at(i0[..., 0], i1[..., 1]) * (1 - f[..., 0]) + at(i1[..., 0], i1[..., 1]) * f[..., 0]
    return top * (1 - f[..., 1]) + bottom * f[..., 1]


def texture_field(textures: Textures, q: torch.Tensor) -> torch.Tensor:
    """(B, P, H, W) mixing weights ``t`` in [0, 1] at object-frame coordinates q (B, P, H, W, 2):
    ``flat`` 0; ``stripes`` and ``checker`` anti-aliased square waves (checker: their exclusive or);
    ``dots`` discs of radius ``period / 4`` on a square lattice; ``gradient`` a linear ramp over
    ``period`` centred on the object; ``grating`` ``(1 + cos(2 pi x / period)) / 2``; ``noise``
    value noise of cell ``period``."""
    b, p, h, w, _ = q.shape
    q = q.reshape(b * p, h, w, 2)
    turn = -textures.angle.reshape(b * p, 1, 1).to(q.dtype)
    per = textures.period.reshape(b * p, 1, 1).to(q.dtype)
    lat = textures.lattice
    lat = None if lat is None else lat.reshape(b * p, *lat.shape[2:])

    def dots(rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        f = x / per[rows, ..., None]
        d = torch.linalg.vector_norm((f - torch.floor(f) - 0.5), dim=-1) * per[rows] - per[rows] / 4
        return (0.5 - d).clamp(0, 1)

    def checker(rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        sx, sy = _square_wave(x[..., 0], per[rows]), _square_wave(x[..., 1], per[rows])
        return sx + sy - 2 * sx * sy

    funcs = {
        STRIPES: lambda rows, x: _square_wave(x[..., 0], per[rows]),
        CHECKER: checker,
        DOTS: dots,
        GRADIENT: lambda rows, x: (0.5 + x[..., 0] / per[rows]).clamp(0, 1),
        GRATING: lambda rows, x: 0.5 + 0.5 * torch.cos(2 * math.pi * x[..., 0] / per[rows]),
        NOISE: lambda rows, x: value_noise(x, lat[rows], per[rows]),
    }
    def in_pattern_axes(fn: Callable) -> Callable:                          # turn the rows' q only
        return lambda rows, x: fn(rows, rotate(x, turn[rows]))

    funcs = {k: in_pattern_axes(fn) for k, fn in funcs.items()}
    return _by_kind(textures.kind.reshape(-1), q, funcs, 0.0).reshape(b, p, h, w)


# ---------------------------------------------------------------------------------------------
# painter's compositing
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layers:
    """What :func:`composite` returns, for ``B`` scenes of ``N`` instances made of ``P`` primitives.

    ``rgb`` (B, 3, H, W) in [0, 1]; ``ids`` (B, H, W) long, the visible instance (-1: background):
    the instance of the front-most primitive whose centre test passes (alpha >= 1/2); ``parts``
    (B, H, W) long, that primitive's part label (-1: background); ``alpha`` (B, P, H, W) each
    primitive's own coverage; ``amodal`` (B, N, H, W) each instance's coverage ignoring occluders
    (max over its primitives); ``visible`` (B, N, H, W) the weight of each instance in the pixel's
    colour (sums with the background's to 1); ``order`` (B, P) primitive indices front to back."""

    rgb: torch.Tensor
    ids: torch.Tensor
    parts: torch.Tensor
    alpha: torch.Tensor
    amodal: torch.Tensor
    visible: torch.Tensor
    order: torch.Tensor

    @property
    def masks(self) -> torch.Tensor:
        """(B, N, H, W) bool hard amodal masks (pixel centre inside the instance)."""
        return self.amodal >= 0.5

    @property
    def visible_masks(self) -> torch.Tensor:
        """(B, N, H, W) bool: pixels whose visible instance is n (``ids == n``)."""
        n = self.amodal.shape[1]
        return self.ids[:, None] == torch.arange(n, device=self.ids.device)[None, :, None, None]


def composite(alpha: torch.Tensor, colors: torch.Tensor, background: torch.Tensor,
              z: torch.Tensor | None = None, instance: torch.Tensor | None = None,
              part: torch.Tensor | None = None, n_instances: int | None = None,
              texture: torch.Tensor | None = None, second: torch.Tensor | None = None) -> Layers:
    """Paint primitives back to front over the background (painter's algorithm, "over" operator).

    ``alpha`` (B, P, H, W) coverages; ``colors`` (B, P, 3); ``background`` (B, 3) or (B, 3, H, W);
    ``z`` (B, P) depth, larger in front (default: the primitive index); ``instance`` (B, P) long
    owner in 0..N-1 (default: each primitive its own instance; -1: drawn but owned by none);
    ``part`` (B, P) long part labels (default -1); ``texture`` (B, P, H, W) mixing weights toward
    ``second`` (B, P, 3) colours. With primitives sorted front to back, primitive m's weight is
    ``w_m = a_m prod_{k in front} (1 - a_k)`` and the pixel is ``bg + sum_m w_m (c_m - bg)``
    (the same as ``prod_m (1 - a_m) bg + sum_m w_m c_m``)."""
    if alpha.ndim != 4:
        raise ValueError(f"alpha must be (B, P, H, W), got {tuple(alpha.shape)}")
    b, p, h, w = alpha.shape
    dev = alpha.device
    if colors.shape != (b, p, 3):
        raise ValueError(f"colors must be (B, P, 3) = {(b, p, 3)}, got {tuple(colors.shape)}")
    if background.shape not in ((b, 3), (b, 3, h, w)):
        raise ValueError(f"background must be (B, 3) or (B, 3, H, W) = {(b, 3, h, w)}, "
                         f"got {tuple(background.shape)}")
    for name, t in (("z", z), ("instance", instance), ("part", part)):
        if t is not None and t.shape != (b, p):
            raise ValueError(f"{name} must be (B, P) = {(b, p)}, got {tuple(t.shape)}")
    if (texture is None) != (second is None):
        raise ValueError("texture (B, P, H, W) and second (B, P, 3) come together")
    arange = torch.arange(p, device=dev).expand(b, p)
    z = arange.to(alpha.dtype) if z is None else z
    instance = arange if instance is None else instance.long()
    part = torch.full((b, p), -1, dtype=torch.long, device=dev) if part is None else part.long()
    n = (int(instance.max()) + 1 if instance.numel() else 0) if n_instances is None else n_instances
    if instance.numel() and int(instance.max()) >= n:
        raise ValueError(f"instance ids must be < n_instances = {n}, got {int(instance.max())}")

    back_to_front = torch.sort(z, dim=1, stable=True).indices
    order = back_to_front.flip(1)                                                   # front first
    rows = torch.arange(b, device=dev)
    through = alpha.new_ones(b, h, w)                            # transmittance of what is in front
    weight = torch.empty_like(alpha)
    prim = torch.full((b, h, w), -1, dtype=torch.long, device=dev)   # front-most primitive hit
    for k in range(p):                                           # front to back, all scenes at once
        idx = order[:, k]
        a = alpha[rows, idx]                                                        # (B, H, W)
        weight[rows, idx] = a * through
        through = through * (1 - a)
        prim = torch.where((a >= 0.5) & (prim < 0), idx[:, None, None], prim)
    colors = colors.to(alpha.dtype)
    if background.ndim == 2:
        bg = background.to(alpha.dtype)
        rgb = bg[..., None, None] + torch.einsum("bpyx,bpc->bcyx", weight, colors - bg[:, None])
    else:
        bg = background.to(alpha.dtype)
        rgb = bg + torch.einsum("bpyx,bpc->bcyx", weight, colors) - weight.sum(1, keepdim=True) * bg
    if texture is not None:
        mix = second.to(alpha.dtype) - colors
        rgb = rgb + torch.einsum("bpyx,bpc->bcyx", weight * texture, mix)

    hit = prim >= 0
    prim = prim.clamp_min(0).reshape(b, -1)
    ids = torch.where(hit, instance.gather(1, prim).reshape(b, h, w), -1)
    parts = torch.where(hit, part.gather(1, prim).reshape(b, h, w), -1)

    slot = torch.where(instance >= 0, instance, n)[..., None, None].expand(-1, -1, h, w)  # n: none
    amodal = alpha.new_zeros(b, n + 1, h, w).scatter_reduce_(1, slot, alpha, "amax")[:, :n]
    visible = alpha.new_zeros(b, n + 1, h, w).scatter_add_(1, slot, weight)[:, :n]
    return Layers(rgb.clamp(0.0, 1.0), ids, parts, alpha, amodal, visible, order)


def render(prims: Primitives, colors: torch.Tensor, size: tuple[int, int], background: torch.Tensor,
           z: torch.Tensor | None = None, instance: torch.Tensor | None = None,
           part: torch.Tensor | None = None, n_instances: int | None = None,
           textures: Textures | None = None, aa: float = 1.0) -> Layers:
    """Rasterise ``prims`` on an ``size = (H, W)`` canvas and composite them (:func:`composite`):
    signed distances -> coverage (``aa`` pixels of anti-aliasing, 0: hard) -> textures in each
    object's frame -> painter's order by ``z``."""
    h, w = size
    q = _canvas_frame(prims, h, w)
    alpha = coverage(_signed_distance(prims, q), aa)
    texture = second = None
    if textures is not None:
        if textures.kind.shape != prims.shape:
            raise ValueError(f"textures must be (B, P) = {prims.shape} like the primitives, "
                             f"got {tuple(textures.kind.shape)}")
        texture, second = texture_field(textures, q), textures.second
    return composite(alpha, colors, background, z=z, instance=instance, part=part,
                     n_instances=n_instances, texture=texture, second=second)
