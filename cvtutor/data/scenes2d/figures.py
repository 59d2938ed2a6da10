"""Articulated 2-D figures: primitives laid out in a figure's own frame, placed in the image by a
similarity (position, scale, rotation) and an optional mirror (facing), then drawn with
:mod:`cvtutor.data.raster`. The common machinery of the critters (E12, E23) and the pedestrians
(E21) of the 2-D scene world (chapter ``world_scenes2d``).

A figure of ``P`` primitives is given in **figure units**, ``x`` forward (the way the figure
faces), ``y`` down. Primitive ``m`` has a local centre ``c_m``, a local angle ``phi_m``, length
parameters and points in its own frame (the raster's conventions). With image centre ``C``, scale
``s`` (pixels per figure unit), angle ``theta`` and facing ``f = ±1`` (the mirror
``M = diag(f, 1)``), a figure point ``c + R(phi) p`` lands at

$$ C + s R(\\theta) M (c + R(\\phi) p) = C + s R(\\theta) M c + s R(\\theta + f\\phi) M p, $$

since ``M R(phi) = R(f phi) M``: the primitive's image centre is ``C + s R(theta) M c``, its
angle ``theta + f phi``, its points ``s M p`` and its length parameters ``s`` times the figure's.
"""
from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, TypeVar

import torch

from cvtutor.data import raster

NOISE_SEED = 104_729  # offset of the pixel-noise stream from a data set's seed


T = TypeVar("T", bound="Rows")


class Rows:
    """Mixin for frozen dataclasses of tensors that share their first dimension (one row per
    class, image, camera...): ``len``, row selection ``x[index]``, ``with_`` and ``to``."""

    def _tensors(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __len__(self) -> int:
        return len(next(iter(self._tensors().values())))

    def __getitem__(self: T, index: Any) -> T:
        """The rows ``index`` (a subset, a reordering or a repetition, e.g. one row per image)."""
        device = next(iter(self._tensors().values())).device
        index = torch.as_tensor(index, device=device).long()
        return type(self)(**{k: v[index] for k, v in self._tensors().items()})

    def with_(self: T, **changes: torch.Tensor) -> T:
        return replace(self, **changes)

    def to(self: T, device: torch.device | str) -> T:
        return type(self)(**{k: v.to(device) for k, v in self._tensors().items()})


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """RGB (..., 3) in [0, 1] of HSV (..., 3) with hue in [0, 1) (the standard hexcone map)."""
    h, s, v = hsv.unbind(-1)
    k = (torch.tensor([5.0, 3.0, 1.0], device=hsv.device, dtype=hsv.dtype) + 6.0 * h[..., None]) % 6
    return v[..., None] - (v * s)[..., None] * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def place(kind: torch.Tensor, local_center: torch.Tensor, local_angle: torch.Tensor,
          params: torch.Tensor, points: torch.Tensor, valid: torch.Tensor, center: torch.Tensor,
          scale: torch.Tensor, angle: torch.Tensor, facing: torch.Tensor) -> raster.Primitives:
    """Image-space :class:`~cvtutor.data.raster.Primitives` (B, P) of B figures given in figure
    units (module doc): ``kind`` (B, P), ``local_center`` (B, P, 2), ``local_angle`` (B, P),
    ``params`` (B, P, 3) lengths, ``points`` (B, P, V, 2), ``valid`` (B, P); the placement
    ``center`` (B, 2) pixels, ``scale`` (B,) pixels per unit, ``angle`` (B,) radians, ``facing``
    (B,) ±1."""
    b = len(center)
    if not (scale.shape == angle.shape == facing.shape == (b,)) or center.shape != (b, 2):
        raise ValueError(f"center must be (B, 2), scale, angle and facing (B,) with B = {b}; got "
                         f"{tuple(center.shape)}, {tuple(scale.shape)}, {tuple(angle.shape)}, "
                         f"{tuple(facing.shape)}")
    mirror = torch.stack([facing, torch.ones_like(facing)], -1)            # (B, 2)
    s = scale[:, None]
    c = center[:, None] + s[..., None] * raster.rotate(local_center * mirror[:, None],
                                                       angle[:, None])
    return raster.primitives(kind, c, angle[:, None] + facing[:, None] * local_angle,
                             params * s[..., None], points * (s * mirror)[:, None, None],
                             valid)


def capsule(p0: torch.Tensor, p1: torch.Tensor, half_width: torch.Tensor | float
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The capsule from ``p0`` to ``p1`` (..., 2) of half-width ``half_width`` as a rounded box
    (one SDF evaluation instead of a polyline's segments): ``(center (..., 2), angle (...),
    params (..., 3))`` with half-extents ``(|p1 - p0| / 2 + w, w)`` and corner radius ``w``."""
    d = p1 - p0
    w = torch.as_tensor(half_width, dtype=d.dtype, device=d.device).expand(d.shape[:-1])
    half_len = torch.linalg.vector_norm(d, dim=-1) / 2
    return (p0 + p1) / 2, torch.atan2(d[..., 1], d[..., 0]), torch.stack([half_len + w, w, w], -1)


def backdrop(lattice: torch.Tensor, cell: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
             height: int, width: int) -> torch.Tensor:
    """(B, 3, H, W) backdrops: ``first`` (B, 3) mixed with ``second`` (B, 3) by the raster's value
    noise of ``lattice`` (B, G, G) with cell ``cell`` (B,) pixels (passed to the raster as the
    background image, so it costs no primitive)."""
    grid = raster.pixel_centers(height, width, lattice.device, first.dtype)
    t = raster.value_noise(grid.expand(len(lattice), -1, -1, -1), lattice, cell[:, None, None])
    return first[:, :, None, None] + t[:, None] * (second - first)[:, :, None, None]


def chunks(n: int, pixels: int, chunk: int | None = None) -> list[torch.Tensor]:
    """Index ranges (arange tensors) that cover ``0..n-1`` in chunks of ``chunk`` images (default:
    about 2^20 pixels of ``pixels`` each, which bounds the raster's (B, P, H, W) memory)."""
    step = chunk if chunk is not None else max(1, (1 << 20) // pixels)
    if step < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return [torch.arange(i, min(i + step, n)) for i in range(0, n, step)]


def add_noise(image: torch.Tensor, std: float, seed: int) -> torch.Tensor:
    """``image`` plus Gaussian pixel noise of ``std`` drawn from ``seed``, clamped to [0, 1]
    (unchanged for ``std = 0``)."""
    if std <= 0:
        return image
    g = generator(seed, image.device)
    return (image + std * torch.randn(image.shape, generator=g, device=image.device)).clamp(0, 1)


def uniform(generator: torch.Generator, shape: tuple[int, ...], low: float, high: float,
            device: torch.device | str) -> torch.Tensor:
    """Uniform draws in [low, high) from ``generator`` on ``device``."""
    return low + (high - low) * torch.rand(shape, generator=generator, device=device)


def generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A torch generator on ``device`` seeded with ``seed`` (bit-identical draws per device)."""
    return torch.Generator(device=device).manual_seed(int(seed))
