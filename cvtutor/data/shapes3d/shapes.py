"""Shapes as unions of posed primitives: categories with part labels, a CAD library, rooms.

Derived in the chapter ``notebooks/eccv2020/world_shapes3d.ipynb`` (section 3). A batch of ``B``
shapes holds ``P`` primitive *slots* each (unused slots have ``valid = False``); slot ``k`` of shape
``b`` is the primitive ``types[b, k]``, ``params[b, k]`` (:mod:`.primitives`) placed by
``x = rot[b, k] @ x_local + trans[b, k]``. Then, exactly:

- occupancy: ``x`` is inside the union iff it is inside some valid slot;
- signed distance: ``min_k sdf_k``, the exact distance outside the union (each slot's distance
  is exact, the superquadric's excepted), a lower bound of the depth inside, with an exact sign;
- surface: the points of some slot's surface that lie inside no other slot; area-uniform samples
  of the union are area-uniform samples of the slots with those points rejected.

Rigid motions and uniform scales keep all of this exact (:meth:`ShapeBatch.transform`). The
categories are built in a z-up frame and normalised into the cube ``[-0.5, 0.5]³``; parts overlap
at their joints by a margin, so that no face of one part lies on another's boundary (such a face
would be neither inside the union nor on its surface).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch

from cvtutor.data.shapes3d import primitives as prim

#: The ten categories of the classification set (ModelNet10 / ShapeNet stand-ins) and their parts.
CATEGORIES = (
    "airplane",
    "bookcase",
    "bottle",
    "car",
    "chair",
    "lamp",
    "mug",
    "sofa",
    "table",
    "vessel",
)
PARTS = {
    "airplane": ("fuselage", "wing", "tail"),
    "bookcase": ("side", "shelf", "back"),
    "bottle": ("body", "neck", "cap"),
    "car": ("body", "cabin", "wheel"),
    "chair": ("seat", "back", "leg", "arm"),
    "lamp": ("base", "pole", "shade", "bulb"),
    "mug": ("body", "handle"),
    "sofa": ("base", "back", "arm"),
    "table": ("top", "leg"),
    "vessel": ("hull", "cabin", "mast"),
}
#: Rough size (largest extent, metres) of each category when placed in a room.
SIZE_M = {
    "airplane": 1.0,
    "bookcase": 1.6,
    "bottle": 0.5,
    "car": 1.0,
    "chair": 0.9,
    "lamp": 1.2,
    "mug": 0.4,
    "sofa": 1.6,
    "table": 1.2,
    "vessel": 1.0,
}
MAX_SLOTS = 12
ROOM_SEMANTICS = ("floor", "wall", *CATEGORIES)


@dataclass
class ShapeBatch:
    """``B`` shapes of ``P`` slots: ``types (B, P)`` long, ``params (B, P, 5)``,
    ``rot (B, P, 3, 3)``, ``trans (B, P, 3)``, ``part (B, P)`` long (the category's part index,
    ``PARTS``), ``valid (B, P)`` bool, ``label (B,)`` long (index into ``CATEGORIES``) and
    ``instance (B, P)`` long (which object of a room a slot belongs to; 0 for single objects)."""

    types: torch.Tensor
    params: torch.Tensor
    rot: torch.Tensor
    trans: torch.Tensor
    part: torch.Tensor
    valid: torch.Tensor
    label: torch.Tensor
    instance: torch.Tensor

    def __post_init__(self) -> None:
        B, P = self.types.shape
        want = {
            "params": (B, P, prim.N_PARAMS),
            "rot": (B, P, 3, 3),
            "trans": (B, P, 3),
            "part": (B, P),
            "valid": (B, P),
            "label": (B,),
            "instance": (B, P),
        }
        for name, shape in want.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(
                    f"ShapeBatch.{name} must be {shape}, got " f"{tuple(getattr(self, name).shape)}"
                )

    def __len__(self) -> int:
        return self.types.shape[0]

    @property
    def device(self) -> torch.device:
        return self.params.device

    def to(self, device) -> "ShapeBatch":
        return ShapeBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __getitem__(self, idx) -> "ShapeBatch":
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return ShapeBatch(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    @staticmethod
    def cat(batches: list["ShapeBatch"]) -> "ShapeBatch":
        """Concatenate batches, padding the slots with invalid ones to the largest ``P``."""
        P = max(b.types.shape[1] for b in batches)
        return ShapeBatch(
            **{
                f.name: torch.cat([_pad(getattr(b, f.name), P, f.name) for b in batches])
                for f in fields(ShapeBatch)
            }
        )

    # -- geometry -----------------------------------------------------------------------------
    def local(self, points: torch.Tensor) -> torch.Tensor:
        """World points ``(B, Q, 3)`` in every slot's frame: ``(B, P, Q, 3)``."""
        if points.ndim != 3 or points.shape[0] != len(self) or points.shape[2] != 3:
            raise ValueError(f"points must be ({len(self)}, Q, 3), got {tuple(points.shape)}")
        d = points[:, None] - self.trans[:, :, None]
        return torch.einsum("bpji,bpqj->bpqi", self.rot, d)

    def slot_sdf(self, points: torch.Tensor) -> torch.Tensor:
        """Signed distance of ``points (B, Q, 3)`` to every slot, ``(B, P, Q)`` (+inf where
        invalid)."""
        d = prim.sdf(self.types, self.params.to(points.dtype), self.local(points))
        return d.masked_fill(~self.valid[..., None], math.inf)

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        """Union signed distance ``(B, Q)``: ``min`` over the valid slots (module docstring)."""
        return self.slot_sdf(points).min(1).values

    def occupancy(self, points: torch.Tensor) -> torch.Tensor:
        """Exact inside test of the union, ``(B, Q)`` bool."""
        return (self.slot_sdf(points) < 0).any(1)

    def nearest_part(self, points: torch.Tensor) -> torch.Tensor:
        """The part label ``(B, Q)`` of the slot nearest to each point (a label for any point)."""
        k = self.slot_sdf(points).argmin(1)
        return self.part.gather(1, k)

    def slot_area(self) -> torch.Tensor:
        """Surface area of every slot ``(B, P)`` (0 where invalid)."""
        return torch.where(self.valid, prim.area(self.types, self.params), 0.0)

    def bbox(self) -> tuple[torch.Tensor, torch.Tensor]:
        """An axis-aligned box ``(lo, hi)``, each ``(B, 3)``, that contains the union (exact for
        axis-aligned slots, conservative for rotated ones)."""
        c = self.params.unbind(-1)
        ext = torch.stack(
            [
                torch.stack([c[0], c[0], c[0]], -1),
                torch.stack(c[:3], -1),
                torch.stack(c[:3], -1),
                torch.stack([c[0], c[0], c[1]], -1),
                torch.stack([torch.maximum(c[0], c[1]), torch.maximum(c[0], c[1]), c[2]], -1),
                torch.stack([c[0] + c[1], c[0] + c[1], c[1]], -1),
                torch.stack([c[0], c[0], c[1] + c[0]], -1),
                torch.stack(c[:3], -1),
            ],
            -2,
        )
        ext = ext.gather(-2, self.types[..., None, None].expand(*self.types.shape, 1, 3))[..., 0, :]
        half = torch.einsum("bpij,bpj->bpi", self.rot.abs(), ext)
        big = torch.finfo(half.dtype).max
        lo = torch.where(self.valid[..., None], self.trans - half, big).min(1).values
        hi = torch.where(self.valid[..., None], self.trans + half, -big).max(1).values
        return lo, hi

    def transform(
        self,
        rot: torch.Tensor | None = None,
        trans: torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
    ) -> "ShapeBatch":
        """``x ↦ scale · rot @ x + trans`` per shape (``rot (B, 3, 3)``, ``trans (B, 3)``,
        ``scale (B,)``); distances scale by ``scale``, so everything stays exact."""
        B, dev, dt = len(self), self.device, self.params.dtype
        rot = torch.eye(3, device=dev, dtype=dt).expand(B, 3, 3) if rot is None else rot.to(dt)
        trans = torch.zeros(B, 3, device=dev, dtype=dt) if trans is None else trans.to(dt)
        scale = torch.ones(B, device=dev, dtype=dt) if scale is None else scale.to(dt)
        if rot.shape != (B, 3, 3) or trans.shape != (B, 3) or scale.shape != (B,):
            raise ValueError(
                f"expected rot ({B}, 3, 3), trans ({B}, 3), scale ({B},); got "
                f"{tuple(rot.shape)}, {tuple(trans.shape)}, {tuple(scale.shape)}"
            )
        if (scale <= 0).any():
            raise ValueError("scale must be positive")
        lm = prim.LENGTH_PARAMS.to(dev)[self.types]
        params = torch.where(lm, self.params * scale[:, None, None], self.params)
        new_rot = rot[:, None] @ self.rot
        new_t = (
            scale[:, None, None] * torch.einsum("bij,bpj->bpi", rot, self.trans) + trans[:, None]
        )
        return replace(self, params=params, rot=new_rot, trans=new_t)

    def normalized(self) -> "ShapeBatch":
        """Centre the bounding box at the origin and scale its largest side to 1 (the unit cube)."""
        lo, hi = self.bbox()
        s = 1.0 / (hi - lo).max(-1).values
        return self.transform(trans=-s[:, None] * (lo + hi) / 2, scale=s)

    def compact(self) -> "ShapeBatch":
        """Move the valid slots first and drop the slot columns no shape uses."""
        order = torch.argsort((~self.valid).to(torch.int8), dim=1, stable=True)
        P = max(int(self.valid.sum(1).max()), 1)
        idx = order[:, :P]

        def take(x):
            shape = idx.shape + x.shape[2:]
            return x.gather(1, idx.reshape(*idx.shape, *([1] * (x.ndim - 2))).expand(shape))

        return ShapeBatch(
            types=take(self.types),
            params=take(self.params),
            rot=take(self.rot),
            trans=take(self.trans),
            part=take(self.part),
            valid=take(self.valid),
            label=self.label,
            instance=take(self.instance),
        )

    def sample(
        self,
        n: int,
        generator: torch.Generator,
        oversample: float = 1.5,
        tol: float = 1e-7,
        max_rounds: int = 50,
    ) -> dict[str, torch.Tensor]:
        """``n`` area-uniform samples of each union surface: ``points (B, n, 3)``, ``normals``,
        ``part (B, n)``, ``slot (B, n)``, ``patch (B, n)``, ``instance (B, n)``.

        Candidates are drawn on the slots (slot ∝ area, then :func:`primitives.sample_surface`) and
        rejected when inside another slot (``sdf < -tol``); rounds continue until every shape
        has ``n`` survivors, and the first ``n`` are kept (their order is random)."""
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        B, P = self.types.shape
        areas = self.slot_area()
        if (areas.sum(1) <= 0).any():
            raise ValueError("every shape needs at least one valid slot with a positive area")
        sq = self.types == prim.TYPE_ID["superquadric"]
        bound = torch.zeros(B, P, dtype=self.params.dtype, device=self.device)
        if sq.any():
            bound = bound.masked_scatter(sq, prim.superquadric_bound(self.params[sq]))
        chunks, kept = [], torch.zeros(B, dtype=torch.long, device=self.device)
        k = max(int(math.ceil(n * oversample)), 8)
        for _ in range(max_rounds):
            slot = torch.multinomial(areas, k, replacement=True, generator=generator)
            c = self._candidates(slot, bound, generator)
            d = self.slot_sdf(c["points"])  # (B, P, k)
            d = d.scatter(1, slot[:, None], math.inf)  # a point is never inside its own slot
            c["ok"] = ~(d < -tol).any(1)
            chunks.append(c)
            kept = kept + c["ok"].sum(1)
            if bool((kept >= n).all()):
                break
        else:
            raise RuntimeError("too few surface points survived; is a slot buried inside another?")
        allc = {key: torch.cat([c[key] for c in chunks], 1) for key in chunks[0]}
        order = torch.argsort((~allc.pop("ok")).to(torch.int8), dim=1, stable=True)[:, :n]
        out = {}
        for key, v in allc.items():
            idx = order if v.ndim == 2 else order[..., None].expand(B, n, v.shape[-1])
            out[key] = v.gather(1, idx)
        return out

    def _candidates(self, slot: torch.Tensor, bound: torch.Tensor, g: torch.Generator) -> dict:
        B, k = slot.shape
        types = self.types.gather(1, slot).reshape(-1)
        params = self.params.gather(1, slot[..., None].expand(B, k, prim.N_PARAMS))
        p, nrm, patch = prim.sample_surface(
            types, params.reshape(-1, prim.N_PARAMS), g, sq_bound=bound.gather(1, slot).reshape(-1)
        )
        R = self.rot.gather(1, slot[..., None, None].expand(B, k, 3, 3))
        t = self.trans.gather(1, slot[..., None].expand(B, k, 3))
        pw = torch.einsum("bkij,bkj->bki", R, p.reshape(B, k, 3)) + t
        nw = torch.einsum("bkij,bkj->bki", R, nrm.reshape(B, k, 3))
        return {
            "points": pw,
            "normals": nw,
            "part": self.part.gather(1, slot),
            "slot": slot,
            "patch": patch.reshape(B, k),
            "instance": self.instance.gather(1, slot),
        }


def _pad(x: torch.Tensor, P: int, name: str) -> torch.Tensor:
    if name == "label" or x.shape[1] == P:
        return x
    pad = torch.zeros((x.shape[0], P - x.shape[1], *x.shape[2:]), dtype=x.dtype, device=x.device)
    if name == "rot":
        pad = pad + torch.eye(3, dtype=x.dtype, device=x.device)
    if name == "params":
        pad = pad + 0.1  # harmless positive sizes for invalid slots
    return torch.cat([x, pad], 1)


# ------------------------------------------------------------------------------------------------
# Rotations
# ------------------------------------------------------------------------------------------------
def axis_rotation(angle: torch.Tensor, axis: str) -> torch.Tensor:
    """Rotations ``(..., 3, 3)`` by ``angle (...)`` radians about ``axis`` in ``x|y|z``."""
    c, s = torch.cos(angle), torch.sin(angle)
    o, z = torch.ones_like(c), torch.zeros_like(c)
    rows = {
        "x": ((o, z, z), (z, c, -s), (z, s, c)),
        "y": ((c, z, s), (z, o, z), (-s, z, c)),
        "z": ((c, -s, z), (s, c, z), (z, z, o)),
    }[axis]
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


# ------------------------------------------------------------------------------------------------
# Categories
# ------------------------------------------------------------------------------------------------
class _Builder:
    """Collects slots of ``n`` shapes: each ``add`` is one slot column."""

    def __init__(self, n: int, g: torch.Generator, device, dtype=torch.float32) -> None:
        self.n, self.g, self.device, self.dtype = n, g, device, dtype
        self.cols: list[tuple] = []

    def u(self, lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(
            self.n, generator=self.g, device=self.device, dtype=self.dtype
        )

    def add(self, kind: str, params: list, t: list, part: int, rot=None, valid=None) -> None:
        n = self.n
        row = torch.zeros(n, prim.N_PARAMS, device=self.device, dtype=self.dtype)
        for i, v in enumerate(params):
            row[:, i] = v
        tt = torch.stack(
            [torch.as_tensor(v, dtype=self.dtype, device=self.device).expand(n) for v in t], -1
        )
        R = (
            torch.eye(3, device=self.device, dtype=self.dtype).expand(n, 3, 3)
            if rot is None
            else rot
        )
        ok = torch.ones(n, dtype=torch.bool, device=self.device) if valid is None else valid
        self.cols.append((prim.TYPE_ID[kind], row, tt, R.to(self.dtype), part, ok))

    def build(self, label: int) -> ShapeBatch:
        n, dev = self.n, self.device
        P = len(self.cols)
        return ShapeBatch(
            types=torch.tensor([c[0] for c in self.cols], device=dev).expand(n, P).clone(),
            params=torch.stack([c[1] for c in self.cols], 1),
            rot=torch.stack([c[3] for c in self.cols], 1),
            trans=torch.stack([c[2] for c in self.cols], 1),
            part=torch.tensor([c[4] for c in self.cols], device=dev).expand(n, P).clone(),
            valid=torch.stack([c[5] for c in self.cols], 1),
            label=torch.full((n,), label, device=dev, dtype=torch.long),
            instance=torch.zeros(n, P, dtype=torch.long, device=dev),
        )


def _table(b: _Builder) -> None:
    """Top (box, or a disc for three legs) on 3, 4 or 6 cylinder legs."""
    legs = torch.tensor([3, 4, 6], device=b.device)[
        torch.randint(0, 3, (b.n,), generator=b.g, device=b.device)
    ]
    hx, hy, th, H = b.u(0.35, 0.5), b.u(0.2, 0.35), b.u(0.015, 0.03), b.u(0.25, 0.4)
    lr = b.u(0.015, 0.03)
    round_top = legs == 3
    b.add("box", [hx, hy, th], [0, 0, H], 0, valid=~round_top)
    b.add("cylinder", [hy + 0.05, th], [0, 0, H], 0, valid=round_top)
    inset = 0.85
    for k in range(6):
        ang = 2 * math.pi * k / 3 + math.pi / 2
        cx = torch.where(
            round_top,
            0.8 * (hy + 0.05) * math.cos(ang),
            inset * hx * torch.tensor([-1, 1, -1, 1, 0, 0.0])[k].to(b.device),
        )
        cy = torch.where(
            round_top,
            0.8 * (hy + 0.05) * math.sin(ang),
            inset * hy * torch.tensor([-1, -1, 1, 1, -1, 1.0])[k].to(b.device),
        )
        b.add("cylinder", [lr, H / 2], [cx, cy, H / 2], 1, valid=k < legs)


def _chair(b: _Builder) -> None:
    w, d, H, th = b.u(0.2, 0.28), b.u(0.2, 0.28), b.u(0.22, 0.3), b.u(0.02, 0.035)
    bh, leg = b.u(0.22, 0.35), b.u(0.015, 0.025)
    b.add("box", [w, d, th], [0, 0, H], 0)
    b.add("box", [w, th, bh], [0, d - th, H + bh - th / 2], 1)
    for sx in (-1, 1):
        for sy in (-1, 1):
            b.add(
                "box", [leg, leg, H / 2], [sx * (w - leg - 0.01), sy * (d - leg - 0.01), H / 2], 2
            )
    arms = b.u(0, 1) < 0.5
    for sx in (-1, 1):
        b.add(
            "box",
            [th / 2 + 0.005, d * 0.9, th / 2 + 0.005],
            [sx * (w - th / 2), 0, H + 0.12],
            3,
            valid=arms,
        )
        b.add(
            "box",
            [th / 2 + 0.005, th / 2 + 0.005, 0.07],
            [sx * (w - th / 2), -d * 0.7, H + 0.06],
            3,
            valid=arms,
        )


def _sofa(b: _Builder) -> None:
    w, d, h = b.u(0.45, 0.6), b.u(0.22, 0.3), b.u(0.1, 0.15)
    bh, aw, ah = b.u(0.15, 0.25), b.u(0.05, 0.09), b.u(0.06, 0.12)
    b.add("box", [w, d, h], [0, 0, h], 0)
    b.add("box", [w - 0.005, 0.03, bh], [0, d - 0.035, 2 * h + bh - 0.03], 1)
    for sx in (-1, 1):
        b.add("box", [aw + 0.005, d + 0.005, ah], [sx * (w - aw), 0, 2 * h + ah - 0.03], 2)


def _lamp(b: _Builder) -> None:
    H, br = b.u(0.5, 0.8), b.u(0.1, 0.18)
    r1, r2, sh = b.u(0.15, 0.25), b.u(0.06, 0.12), b.u(0.08, 0.14)
    b.add("cylinder", [br, 0.02], [0, 0, 0.02], 0)
    b.add("cylinder", [0.015, H / 2], [0, 0, H / 2 + 0.01], 1)
    b.add("cone", [r1, r2, sh], [0, 0, H + sh * 0.5], 2)
    b.add("sphere", [0.05], [0, 0, H], 3, valid=b.u(0, 1) < 0.5)


def _car(b: _Builder) -> None:
    L, W, H = b.u(0.4, 0.5), b.u(0.16, 0.22), b.u(0.07, 0.1)
    wr = b.u(0.07, 0.09)
    cl, ch = b.u(0.18, 0.28), b.u(0.06, 0.09)
    b.add("box", [L, W, H], [0, 0, wr + H * 0.6], 0)
    b.add("box", [cl, W * 0.85, ch], [-0.05, 0, wr + 1.6 * H + ch - 0.02], 1)
    rx = axis_rotation(torch.full((b.n,), math.pi / 2, device=b.device), "x")
    for sx in (-1, 1):
        for sy in (-1, 1):
            b.add("cylinder", [wr, 0.03], [sx * (L - wr - 0.03), sy * W, wr], 2, rot=rx)


def _airplane(b: _Builder) -> None:
    L, r = b.u(0.42, 0.5), b.u(0.04, 0.06)
    span, chord = b.u(0.35, 0.5), b.u(0.07, 0.12)
    ry = axis_rotation(torch.full((b.n,), math.pi / 2, device=b.device), "y")
    b.add("capsule", [r, L - r], [0, 0, 0], 0, rot=ry)
    b.add("ellipsoid", [chord, span, 0.015], [0.02, 0, 0], 1)
    b.add("box", [0.04, span * 0.35, 0.008], [-L + 0.06, 0, 0.01], 2)
    b.add("box", [0.05, 0.008, b.u(0.06, 0.1)], [-L + 0.07, 0, 0.07], 2)


def _vessel(b: _Builder) -> None:
    L, W, H = b.u(0.4, 0.5), b.u(0.1, 0.15), b.u(0.08, 0.12)
    b.add("superquadric", [L, W, H, b.u(0.3, 0.6), b.u(0.5, 1.0)], [0, 0, H], 0)
    b.add("box", [L * 0.3, W * 0.6, b.u(0.05, 0.08)], [-L * 0.2, 0, 2 * H], 1)
    mh = b.u(0.12, 0.2)
    b.add("cylinder", [0.012, mh], [L * 0.25, 0, 2 * H + mh - 0.05], 2)


def _bookcase(b: _Builder) -> None:
    w, d, H, t = b.u(0.3, 0.45), b.u(0.1, 0.15), b.u(0.45, 0.5), b.u(0.012, 0.02)
    shelves = torch.randint(1, 5, (b.n,), generator=b.g, device=b.device)
    for sx in (-1, 1):
        b.add("box", [t, d, H + 0.005], [sx * (w - t), 0, H], 0)
    b.add("box", [w - t, t, H], [0, d - t - 0.002, H], 2)
    for k in range(6):  # bottom, top and up to four shelves between them
        z = torch.where(
            torch.tensor(k == 0, device=b.device),
            t,
            torch.where(
                torch.tensor(k == 1, device=b.device), 2 * H - t, 2 * H * (k - 1) / (shelves + 1)
            ),
        )
        b.add(
            "box", [w - t * 0.5, d - t * 0.5, t], [0, 0, z], 1, valid=(k < 2) | (k - 1 <= shelves)
        )


def _bottle(b: _Builder) -> None:
    r, h = b.u(0.12, 0.2), b.u(0.18, 0.3)
    nr, nh, sh = b.u(0.035, 0.06), b.u(0.06, 0.1), b.u(0.05, 0.1)
    b.add("cylinder", [r, h], [0, 0, h], 0)
    b.add("cone", [0.97 * r, 1.05 * nr, sh], [0, 0, 2 * h + sh - 0.005], 1)
    b.add("cylinder", [nr, nh], [0, 0, 2 * h + 2 * sh + nh - 0.01], 1)
    b.add("cylinder", [nr * 1.15, 0.02], [0, 0, 2 * h + 2 * sh + 2 * nh - 0.01], 2)


def _mug(b: _Builder) -> None:
    r, h = b.u(0.16, 0.22), b.u(0.18, 0.26)
    hr, ht = b.u(0.09, 0.12), b.u(0.02, 0.03)
    rx = axis_rotation(torch.full((b.n,), math.pi / 2, device=b.device), "x")
    b.add("cylinder", [r, h], [0, 0, h], 0)
    b.add("torus", [hr, ht], [r, 0, h], 1, rot=rx)


_BUILDERS = {
    "airplane": _airplane,
    "bookcase": _bookcase,
    "bottle": _bottle,
    "car": _car,
    "chair": _chair,
    "lamp": _lamp,
    "mug": _mug,
    "sofa": _sofa,
    "table": _table,
    "vessel": _vessel,
}


def make_category(
    name: str, n: int, generator: torch.Generator, device=None, normalize: bool = True
) -> ShapeBatch:
    """``n`` random shapes of category ``name`` (``CATEGORIES``), z up; in the unit cube when
    ``normalize`` (else in their own units, standing on ``z = 0``)."""
    if name not in _BUILDERS:
        raise KeyError(f"unknown category {name!r}; expected one of {CATEGORIES}")
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    b = _Builder(n, generator, device or generator.device)
    _BUILDERS[name](b)
    shapes = b.build(CATEGORIES.index(name))
    return _to_slots(shapes.normalized() if normalize else shapes)


def _to_slots(s: ShapeBatch) -> ShapeBatch:
    P = s.types.shape[1]
    if P > MAX_SLOTS:
        raise AssertionError(f"a category uses {P} slots, more than MAX_SLOTS={MAX_SLOTS}")
    return ShapeBatch(**{f.name: _pad(getattr(s, f.name), MAX_SLOTS, f.name) for f in fields(s)})


def make_classes(
    n_per_class: int, generator: torch.Generator, device=None, classes: tuple[str, ...] = CATEGORIES
) -> ShapeBatch:
    """The classification set: ``n_per_class`` shapes of each class, class-major order."""
    return ShapeBatch.cat([make_category(c, n_per_class, generator, device) for c in classes])


CAD_SEED = 12348


def cad_library(per_class: int = 8, device=None) -> ShapeBatch:
    """The fixed CAD library (the same models everywhere: seed :data:`CAD_SEED`), ``per_class``
    models of each category; model ``i`` is entry ``i`` (its class is ``label[i]``)."""
    g = torch.Generator(device=device or "cpu").manual_seed(CAD_SEED)
    return make_classes(per_class, g, device)


# ------------------------------------------------------------------------------------------------
# Rooms
# ------------------------------------------------------------------------------------------------
def make_rooms(
    n: int,
    generator: torch.Generator,
    device=None,
    n_objects: tuple[int, int] = (3, 8),
    wall_height: float = 1.4,
) -> ShapeBatch:
    """``n`` rooms: a floor (top at ``z = 0``), four walls and ``n_objects`` (inclusive range)
    objects of random categories on a 3×3 grid of cells, turned about ``z``.

    ``label`` is unused (0); ``part`` holds the slot's semantic class (``ROOM_SEMANTICS``: floor,
    wall, then the object's category) and ``instance`` the object index (0 floor, 1–4 walls,
    5 + k for object k)."""
    lo, hi = n_objects
    if not 1 <= lo <= hi <= 9:
        raise ValueError(f"n_objects must satisfy 1 <= lo <= hi <= 9, got {n_objects}")
    dev = device or generator.device
    b = _Builder(n, generator, dev)
    X, Y, t = b.u(1.5, 2.5), b.u(1.5, 2.5), 0.05
    b.add("box", [X + t, Y + t, t], [0, 0, -t], 0)
    for sx in (-1, 1):
        b.add("box", [t, Y + t, wall_height / 2], [sx * (X + t), 0, wall_height / 2 - t], 1)
    for sy in (-1, 1):
        b.add("box", [X + t, t, wall_height / 2], [0, sy * (Y + t), wall_height / 2 - t], 1)
    room = b.build(0)
    room.instance = torch.arange(5, device=dev).expand(n, 5).clone()
    k = torch.randint(lo, hi + 1, (n,), generator=generator, device=dev)
    cells = torch.argsort(torch.rand(n, 9, generator=generator, device=dev), dim=1)[:, :hi]
    cat = torch.randint(0, len(CATEGORIES), (n, hi), generator=generator, device=dev)
    # one batched build per category, scattered into (room, object) order
    flat = cat.reshape(-1)
    parts = []
    for ci, name in enumerate(CATEGORIES):
        idx = (flat == ci).nonzero()[:, 0]
        if len(idx):
            parts.append((idx, make_category(name, len(idx), generator, dev)))
    P = MAX_SLOTS
    template = parts[0][1]
    buf = {
        f.name: torch.zeros(
            (flat.numel(), *getattr(template, f.name).shape[1:]),
            dtype=getattr(template, f.name).dtype,
            device=dev,
        )
        for f in fields(ShapeBatch)
    }
    for idx, sb in parts:
        for f in fields(ShapeBatch):
            buf[f.name][idx] = getattr(sb, f.name)
    obj = ShapeBatch(**buf)
    # place: scale to the category's size, turn about z, stand on the floor in its cell
    size = torch.tensor([SIZE_M[c] for c in CATEGORIES], device=dev)[flat]
    cell = torch.minimum(2 * X / 3, 2 * Y / 3).repeat_interleave(hi)
    s = torch.minimum(size, 0.65 * cell) * (
        0.85 + 0.15 * torch.rand(len(flat), generator=generator, device=dev)
    )
    ang = 2 * math.pi * torch.rand(len(flat), generator=generator, device=dev)
    obj = obj.transform(rot=axis_rotation(ang, "z"), scale=s)
    lo_box, hi_box = obj.bbox()
    ci, cj = cells.reshape(-1) // 3, cells.reshape(-1) % 3
    Xr, Yr = X.repeat_interleave(hi), Y.repeat_interleave(hi)
    cx = (2 * ci.to(X.dtype) - 2) / 3 * Xr
    cy = (2 * cj.to(X.dtype) - 2) / 3 * Yr
    shift = torch.stack(
        [
            cx - (lo_box[:, 0] + hi_box[:, 0]) / 2,
            cy - (lo_box[:, 1] + hi_box[:, 1]) / 2,
            -lo_box[:, 2] - 0.01,
        ],
        -1,
    )  # sunk 1 cm: no face on the floor's
    obj = obj.transform(trans=shift)
    present = (torch.arange(hi, device=dev)[None] < k[:, None]).reshape(-1)

    def per_room(x):
        return x.reshape(n, hi * P, *x.shape[2:])

    objects = ShapeBatch(
        types=per_room(obj.types),
        params=per_room(obj.params),
        rot=per_room(obj.rot),
        trans=per_room(obj.trans),
        part=per_room((2 + obj.label[:, None]).expand(-1, P)),
        valid=per_room(obj.valid & present[:, None]),
        label=torch.zeros(n, dtype=torch.long, device=dev),
        instance=per_room((5 + torch.arange(hi, device=dev).repeat(n))[:, None].expand(-1, P)),
    )
    room.part = torch.tensor([0, 1, 1, 1, 1], device=dev).expand(n, 5).clone()
    full = ShapeBatch(
        **{
            f.name: (
                torch.cat([getattr(room, f.name), getattr(objects, f.name)], 1)
                if f.name != "label"
                else room.label
            )
            for f in fields(ShapeBatch)
        }
    )
    return full.compact()
