"""Objects: shoe- and chair-like silhouettes as photo, grayscale, free-hand sketch and edge map.

The sketch <-> photo world of E03 (sketch2photo, edges2shoes/edges2handbags-like). A scene is one
object of class shoe (0) or chair (1) made of 5 parts (shoe: sole, upper, toe, heel, lace; chair:
seat, back, two legs, stretcher) with per-part proportions, a position, scale and tilt, a colour
per part and a backdrop. Domains:

* ``photo``: shaded parts (a gradient texture per part) on a light backdrop;
* ``grayscale``: the photo's luma in three equal channels;
* ``edges``: black 1-px part boundaries on white (HED/Canny-like edges of the photo);
* ``sketch``: a free-hand drawing of the same object: the part map elastically warped (a smooth
  displacement of up to ``warp`` pixels), its boundaries as strokes, jittered again, some strokes
  dropped (a smooth mask), and diagonal hatching inside the object in some scenes.

``label`` is the (N, H, W) silhouette (1 object, 0 background) of the unwarped object, identical in
every domain; ``parts`` the part map (-1 background). The sketch's strokes lie within
``warp + jitter + 1`` pixels of the silhouette (tested).
"""
from __future__ import annotations

import math

import torch

from cvtutor.data import raster
from cvtutor.data.domains.base import (DomainWorld, boundary, generator, luminance,
                                       smooth_noise, uniform, warp)

CLASSES = ("shoe", "chair")
N_PARTS = 5
# (kind, centre offset (x, y), size params (a, b, c)) in units of the object's scale, per class
_SHOE = [(raster.ROUNDED_BOX, (0.0, 0.38), (0.95, 0.12, 0.1)),     # sole
         (raster.ELLIPSE, (-0.3, 0.0), (0.5, 0.42, 0)),             # upper
         (raster.ELLIPSE, (0.35, 0.18), (0.6, 0.24, 0)),            # toe
         (raster.BOX, (-0.75, 0.3), (0.14, 0.2, 0)),                # heel
         (raster.POLYLINE, (-0.05, -0.05), (0.06, 0, 0))]           # lace
_CHAIR = [(raster.BOX, (0.0, 0.1), (0.62, 0.12, 0)),                # seat
          (raster.BOX, (-0.5, -0.45), (0.12, 0.55, 0)),             # back
          (raster.POLYLINE, (-0.5, 0.55), (0.1, 0, 0)),             # leg
          (raster.POLYLINE, (0.5, 0.55), (0.1, 0, 0)),              # leg
          (raster.POLYLINE, (0.0, 0.62), (0.06, 0, 0))]             # stretcher
# the polylines' end points (object frame, units of scale): lace, legs, stretcher
_SHOE_PATHS = {4: ((-0.25, -0.1), (0.2, 0.1))}
_CHAIR_PATHS = {2: ((0.0, -0.4), (0.0, 0.4)), 3: ((0.0, -0.4), (0.0, 0.4)),
                4: ((-0.5, 0.0), (0.5, 0.0))}


def _table(parts, paths, device):
    kind = torch.tensor([p[0] for p in parts], device=device)
    off = torch.tensor([p[1] for p in parts], device=device, dtype=torch.float32)
    size = torch.tensor([p[2] for p in parts], device=device, dtype=torch.float32)
    pts = torch.zeros(N_PARTS, 2, 2, device=device)
    for i, (a, b) in paths.items():
        pts[i] = torch.tensor([a, b], device=device)
    return kind, off, size, pts


class Objects(DomainWorld):
    """Objects world (module docstring): ``Objects(size, device).scenes(n, seed)`` then
    ``render(scenes, domain)`` for a domain in :attr:`domains`."""

    domains = ("photo", "grayscale", "sketch", "edges")

    def __init__(self, size: int = 32, device=None, warp: float = 1.5, jitter: float = 0.5,
                 drop: float = 0.15, hatch: float = 0.5) -> None:
        super().__init__(size, device)
        self.warp, self.jitter, self.drop, self.hatch = warp, jitter, drop, hatch

    def scenes(self, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
        """``cls`` (N,), ``center`` (N, 2) px, ``scale`` (N,) px, ``angle`` (N,), ``stretch``
        (N, 5, 2) per-part size factors, ``colors`` (N, 5, 3), ``backdrop`` (N, 3), ``seed``."""
        self._check_n(n)
        dev, s = self.device, self.size
        g = generator(seed, dev)
        base = uniform(g, (n, 1, 3), 0.1, 0.9, dev)
        return {"cls": torch.randint(0, 2, (n,), generator=g, device=dev),
                "center": s * (0.5 + uniform(g, (n, 2), -0.06, 0.06, dev)),
                "scale": s * uniform(g, (n,), 0.36, 0.44, dev),
                "angle": uniform(g, (n,), -0.15, 0.15, dev),
                "stretch": uniform(g, (n, N_PARTS, 2), 0.85, 1.15, dev),
                "colors": (base + uniform(g, (n, N_PARTS, 3), -0.15, 0.15, dev)).clamp(0, 1),
                "backdrop": uniform(g, (n, 3), 0.8, 0.97, dev),
                "seed": torch.tensor(seed)}

    def primitives(self, sc: dict[str, torch.Tensor]) -> raster.Primitives:
        """The scenes' (N, 5) primitives in pixels."""
        dev = sc["center"].device
        tabs = [_table(_SHOE, _SHOE_PATHS, dev), _table(_CHAIR, _CHAIR_PATHS, dev)]
        pick = sc["cls"][:, None]
        kind = torch.where(pick == 0, tabs[0][0], tabs[1][0])
        off, size, pts = (torch.where(sc["cls"].view(-1, *[1] * t.ndim) == 0, tabs[0][i], t)
                          for i, t in ((1, tabs[1][1]), (2, tabs[1][2]), (3, tabs[1][3])))
        k = sc["scale"][:, None, None]
        st = sc["stretch"]
        off = raster.rotate(off * st * k, sc["angle"][:, None]) + sc["center"][:, None]
        params = size * k
        params = torch.cat([params[..., :2] * st, params[..., 2:]], -1)
        line = kind == raster.POLYLINE                       # a path's thickness is not stretched
        params = torch.where(line[..., None], size * k, params)
        points = pts * k[..., None] * st[:, :, None]
        angle = sc["angle"][:, None].expand(-1, N_PARTS)
        return raster.primitives(kind, off, angle=angle, params=params, points=points)

    def _layers(self, sc: dict[str, torch.Tensor], colors: torch.Tensor) -> raster.Layers:
        n, dev = len(sc["cls"]), sc["center"].device
        prims = self.primitives(sc)
        tex = raster.Textures(kind=torch.full((n, N_PARTS), raster.GRADIENT, device=dev),
                              period=sc["scale"][:, None].expand(-1, N_PARTS),
                              angle=torch.full((n, N_PARTS), math.pi / 2, device=dev),
                              second=colors * 0.55)
        return raster.render(prims, colors, (self.size, self.size), sc["backdrop"],
                             instance=torch.zeros(n, N_PARTS, dtype=torch.long, device=dev),
                             part=torch.arange(N_PARTS, device=dev).expand(n, -1),
                             n_instances=1, textures=tex)

    def _render(self, sc: dict[str, torch.Tensor], domain: str) -> dict[str, torch.Tensor]:
        lay = self._layers(sc, sc["colors"])
        label, parts = (lay.ids >= 0).long(), lay.parts
        out = {"label": label, "parts": parts, "cls": sc["cls"]}
        if domain == "photo":
            return {"image": lay.rgb, **out}
        if domain == "grayscale":
            return {"image": luminance(lay.rgb).expand(-1, 3, -1, -1).contiguous(), **out}
        if domain == "edges":
            return {"image": 1 - boundary(parts)[:, None].float().expand(-1, 3, -1, -1), **out}
        return {"image": self._sketch(sc, parts), **out}

    def _sketch(self, sc: dict[str, torch.Tensor], parts: torch.Tensor) -> torch.Tensor:
        """Strokes of the elastically warped part map, jittered, partly dropped, hatched."""
        n, h, dev = len(parts), self.size, parts.device
        g = generator(int(sc["seed"]) * 7919 + 3, dev)
        flow = self.warp * smooth_noise(g, n, 2, (h, h), 4, dev)
        warped = warp(parts[:, None].float() + 1, flow, mode="nearest")[:, 0].long() - 1
        strokes = boundary(warped)[:, None].float() * uniform(g, (n, 1, 1, 1), 0.7, 1.0, dev)
        keep = (smooth_noise(g, n, 1, (h, h), 6, dev) >= -1 + 2 * self.drop).float()
        strokes = strokes * keep
        yy, xx = torch.meshgrid(torch.arange(h, device=dev), torch.arange(h, device=dev),
                                indexing="ij")
        lines = (((xx + yy) % 4) == 0).float()[None, None]
        hatched = (torch.rand((n, 1, 1, 1), generator=g, device=dev) < self.hatch).float()
        inside = (warped >= 0)[:, None].float()
        strokes = torch.maximum(strokes, 0.6 * lines * inside * hatched)
        strokes = warp(strokes, self.jitter * smooth_noise(g, n, 2, (h, h), 8, dev))
        return (1 - strokes).clamp(0, 1).expand(-1, 3, -1, -1).contiguous()
