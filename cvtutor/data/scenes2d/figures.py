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

import torch

from cvtutor.data import raster


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


def uniform(generator: torch.Generator, shape: tuple[int, ...], low: float, high: float,
            device: torch.device | str) -> torch.Tensor:
    """Uniform draws in [low, high) from ``generator`` on ``device``."""
    return low + (high - low) * torch.rand(shape, generator=generator, device=device)


def generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A torch generator on ``device`` seeded with ``seed`` (bit-identical draws per device)."""
    return torch.Generator(device=device).manual_seed(int(seed))
