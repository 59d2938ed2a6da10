"""Landscapes: one scene in summer, winter and at night, with a 6-class label map.

The season/time-of-day world of E13 (TSIT: summer <-> winter, day -> night; and semantic image
synthesis from label maps). A scene is a sky, up to three mountains (triangles) on the horizon,
the ground below it, a lake (ellipse), three trees (crown and trunk) and two clouds. Domains
colour the same geometry with their palette (:data:`PALETTES`, per-scene jitter): ``summer``
(green ground, blue sky), ``winter`` (snow, grey sky, dark trees, pale ice), ``night`` (dark
blue, with stars in the sky). ``label`` (N, H, W) indexes :data:`CLASSES`, identical in every
domain.
"""
from __future__ import annotations

import torch

from cvtutor.data import raster
from cvtutor.data.domains.base import DomainWorld, generator, uniform

CLASSES = ("sky", "cloud", "mountain", "water", "ground", "tree")
SKY, CLOUD, MOUNTAIN, WATER, GROUND, TREE = range(len(CLASSES))
# slots back to front: 2 clouds, 3 mountains, ground, lake, 3 x (trunk, crown)
SLOT_CLASS = (CLOUD, CLOUD, MOUNTAIN, MOUNTAIN, MOUNTAIN, GROUND, WATER, *[TREE] * 6)
P = len(SLOT_CLASS)
PALETTES = {  # per class: sky, cloud, mountain, water, ground, tree
    "summer": ((0.45, 0.7, 0.95), (0.95, 0.95, 0.97), (0.45, 0.4, 0.35), (0.2, 0.45, 0.75),
               (0.35, 0.65, 0.25), (0.12, 0.4, 0.12)),
    "winter": ((0.75, 0.78, 0.82), (0.9, 0.9, 0.92), (0.85, 0.87, 0.9), (0.7, 0.8, 0.88),
               (0.94, 0.95, 0.97), (0.12, 0.22, 0.15)),
    "night": ((0.03, 0.05, 0.15), (0.15, 0.17, 0.25), (0.08, 0.08, 0.12), (0.05, 0.08, 0.2),
              (0.05, 0.1, 0.07), (0.02, 0.05, 0.03)),
}


class Landscapes(DomainWorld):
    """Landscapes world (module docstring)."""

    domains = tuple(PALETTES)

    def scenes(self, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
        """(N, P) primitives (``kind``, ``center``, ``params``, ``points``), ``valid`` (the number
        of mountains varies), per-scene colour ``jitter`` (N, 6, 3), ``stars`` (N, H, W), ``seed``."""
        self._check_n(n)
        dev, s = self.device, float(self.size)
        g = generator(seed, dev)
        u = lambda *shape, lo=0.0, hi=1.0: uniform(g, shape, lo, hi, dev)
        hor = s * u(n, lo=0.45, hi=0.6)
        kind = torch.tensor([raster.ELLIPSE] * 2 + [raster.POLYGON] * 3 + [raster.BOX,
                            raster.ELLIPSE] + [raster.BOX, raster.ELLIPSE] * 3, device=dev)
        kind = kind.expand(n, P).clone()
        center = torch.zeros(n, P, 2, device=dev)
        params = torch.zeros(n, P, 3, device=dev)
        points = torch.zeros(n, P, 3, 2, device=dev)
        valid = torch.ones(n, P, dtype=torch.bool, device=dev)
        center[:, :2] = torch.stack([s * u(n, 2), hor[:, None] * u(n, 2, lo=0.2, hi=0.6)], -1)
        params[:, :2, :2] = s * torch.stack([u(n, 2, lo=0.12, hi=0.2), u(n, 2, lo=0.04, hi=0.07)], -1)
        mx = s * u(n, 3)
        mh = s * u(n, 3, lo=0.12, hi=0.3)
        mw = mh * u(n, 3, lo=1.2, hi=2.0)
        center[:, 2:5] = torch.stack([mx, hor[:, None] - mh / 2], -1)
        points[:, 2:5] = torch.stack([torch.stack([0 * mh, -mh / 2], -1),
                                      torch.stack([mw, mh / 2], -1),
                                      torch.stack([-mw, mh / 2], -1)], 2)
        valid[:, 4] = torch.rand(n, generator=g, device=dev) < 0.6
        center[:, 5] = torch.stack([torch.full_like(hor, s / 2), (hor + s) / 2], -1)
        params[:, 5, :2] = torch.stack([torch.full_like(hor, s), (s - hor) / 2], -1)
        center[:, 6] = torch.stack([s * u(n, lo=0.3, hi=0.7), hor + (s - hor) * u(n, lo=0.4,
                                                                                    hi=0.7)], -1)
        params[:, 6, :2] = torch.stack([s * u(n, lo=0.15, hi=0.28), (s - hor) * u(n, lo=0.1,
                                                                                  hi=0.18)], -1)
        valid[:, 6] = torch.rand(n, generator=g, device=dev) < 0.8
        tx = s * torch.stack([u(n, lo=0.02, hi=0.25), u(n, lo=0.4, hi=0.6),
                              u(n, lo=0.75, hi=0.98)], 1)
        ty = hor[:, None] + (s - hor[:, None]) * u(n, 3, lo=0.05, hi=0.9)
        th = s * 0.06 + (ty - hor[:, None]) * 0.25
        center[:, 7::2] = torch.stack([tx, ty - th / 2], -1)                          # trunks
        params[:, 7::2, :2] = torch.stack([0.12 * th, th / 2], -1)
        center[:, 8::2] = torch.stack([tx, ty - 1.3 * th], -1)                        # crowns
        params[:, 8::2, :2] = torch.stack([0.5 * th, 0.75 * th], -1)
        z = torch.arange(P, device=dev, dtype=torch.float32).expand(n, P).clone()
        z[:, 7:] = 20 + ty.repeat_interleave(2, 1)
        stars = (torch.rand((n, self.size, self.size), generator=g, device=dev) < 0.03).float()
        return {"kind": kind, "center": center, "params": params, "points": points,
                "valid": valid, "z": z, "jitter": u(n, len(CLASSES), 3, lo=-0.05, hi=0.05),
                "stars": stars * u(n, 1, 1, lo=0.5, hi=1.0), "seed": torch.tensor(seed)}

    def _render(self, sc: dict[str, torch.Tensor], domain: str) -> dict[str, torch.Tensor]:
        n, dev = len(sc["kind"]), self.device
        pal = (torch.tensor(PALETTES[domain], device=dev) + sc["jitter"]).clamp(0, 1)  # (N, 6, 3)
        cls = torch.tensor(SLOT_CLASS, device=dev).expand(n, P)
        colors = pal.gather(1, cls[..., None].expand(-1, -1, 3))
        prims = raster.primitives(sc["kind"], sc["center"], params=sc["params"],
                                  points=sc["points"], valid=sc["valid"])
        lay = raster.render(prims, colors, (self.size, self.size), pal[:, SKY], z=sc["z"],
                            part=cls, instance=torch.arange(P, device=dev).expand(n, P))
        label = torch.where(lay.parts < 0, SKY, lay.parts)
        image = lay.rgb
        if domain == "night":
            image = (image + 0.8 * (sc["stars"] * (label == SKY))[:, None]).clamp(0, 1)
        return {"image": image, "label": label}
