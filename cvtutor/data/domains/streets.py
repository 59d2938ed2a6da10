"""Streets: one road scene by day and as a rainy night, with its label map and sign glyphs.

The rainy-night -> day world of E10 (ForkGAN; BDD100K/Alderley-like). A scene (N of them, all
drawn at once) is a road in perspective towards a vanishing point on the horizon, sidewalks,
four buildings, two cars (body and cabin) scaled by their distance, a traffic sign on a pole whose
plate (disc or box) carries a glyph (bar, ring or dot: :data:`GLYPHS`), and a street lamp.
Domains:

* ``day``: flat daylight colours under a blue sky;
* ``night``: the day image through ``gamma`` (darker mid-tones), dimmed, with a blue cast; glows
  around the lamp and the cars' lights, their smear on the wet road (blurred downwards), slanted
  rain streaks and sensor noise.

``label`` (N, H, W) is the class map over :data:`CLASSES` (sky where nothing is drawn), identical
in both domains (the night's nuisances change colours, never the layout).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cvtutor.data import raster
from cvtutor.data.domains.base import DomainWorld, generator, uniform

CLASSES = ("road", "sidewalk", "building", "sky", "car", "sign", "pole")
ROAD, SIDEWALK, BUILDING, SKY, CAR, SIGN, POLE = range(len(CLASSES))
GLYPHS = ("bar", "ring", "dot")
# primitive slots: sidewalk, road, 4 buildings, 2 x (car body, cabin), pole, plate, glyph,
# lamp post, lamp head
SLOT_CLASS = (SIDEWALK, ROAD, *[BUILDING] * 4, CAR, CAR, CAR, CAR, POLE, SIGN, SIGN, POLE, POLE)
P = len(SLOT_CLASS)


class Streets(DomainWorld):
    """Streets world (module docstring)."""

    domains = ("day", "night")

    def scenes(self, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
        """The layout as (N, P) primitives (``kind``, ``center``, ``params``, ``points``, ``z``),
        day ``colors`` (N, P, 3), ``sky`` (N, 3), ``glyph`` (N,) index into :data:`GLYPHS`,
        ``lights`` (N, 3, 2) lamp and car light positions (px), ``seed``."""
        self._check_n(n)
        dev, s = self.device, float(self.size)
        g = generator(seed, dev)
        u = lambda *shape, lo=0.0, hi=1.0: uniform(g, shape, lo, hi, dev)
        hor = s * u(n, lo=0.42, hi=0.5)
        vx = s * u(n, lo=0.4, hi=0.6)
        kind = torch.full((n, P), raster.BOX, device=dev)
        center = torch.zeros(n, P, 2, device=dev)
        params = torch.zeros(n, P, 3, device=dev)
        points = torch.zeros(n, P, 4, 2, device=dev)
        z = torch.arange(P, device=dev, dtype=torch.float32).expand(n, P).clone()
        center[:, 0] = torch.stack([torch.full_like(hor, s / 2), (hor + s) / 2], -1)  # sidewalk
        params[:, 0, :2] = torch.stack([torch.full_like(hor, s), (s - hor) / 2], -1)
        kind[:, 1] = raster.POLYGON                                                    # road
        mid = (hor + s) / 2
        center[:, 1] = torch.stack([vx, mid], -1)
        half_top, half_bot = torch.full_like(hor, 0.02 * s), s * u(n, lo=0.55, hi=0.8)
        dy = (s - hor) / 2
        points[:, 1] = torch.stack([torch.stack([-half_top, -dy], -1),
                                    torch.stack([half_top, -dy], -1),
                                    torch.stack([half_bot, dy], -1),
                                    torch.stack([-half_bot, dy], -1)], 1)
        bw = s * u(n, 4, lo=0.08, hi=0.14)                                             # buildings
        bh = s * u(n, 4, lo=0.12, hi=0.35)
        order = torch.tensor([0.12, 0.34, 0.66, 0.88], device=dev)
        bx = s * order + s * u(n, 4, lo=-0.04, hi=0.04)
        center[:, 2:6] = torch.stack([bx, hor[:, None] + 0.02 * s - bh], -1)
        params[:, 2:6, :2] = torch.stack([bw, bh], -1)
        depth = u(n, 2, lo=0.25, hi=0.9)                                               # cars
        cy = hor[:, None] + depth * (s - hor[:, None]) * 0.85
        scale = (cy - hor[:, None]) / (s - hor[:, None]).clamp_min(1) * s * 0.32 + 1.5
        cx = vx[:, None] + (cy - hor[:, None]) * u(n, 2, lo=-0.5, hi=0.5)
        for c in range(2):
            body, cab = 6 + 2 * c, 7 + 2 * c
            kind[:, body] = kind[:, cab] = raster.ROUNDED_BOX
            center[:, body] = torch.stack([cx[:, c], cy[:, c]], -1)
            params[:, body] = torch.stack([scale[:, c], 0.35 * scale[:, c],
                                           0.12 * scale[:, c]], -1)
            center[:, cab] = torch.stack([cx[:, c], cy[:, c] - 0.55 * scale[:, c]], -1)
            params[:, cab] = torch.stack([0.6 * scale[:, c], 0.3 * scale[:, c],
                                          0.12 * scale[:, c]], -1)
            z[:, body] = z[:, cab] = 20 + cy[:, c]                  # nearer cars are in front
            z[:, cab] -= 0.1
        left = torch.rand(n, generator=g, device=dev) < 0.5                            # sign
        sx = torch.where(left, s * u(n, lo=0.06, hi=0.2), s * u(n, lo=0.8, hi=0.94))
        foot = hor + s * u(n, lo=0.15, hi=0.3)
        ph = s * u(n, lo=0.22, hi=0.3)
        kind[:, 10] = raster.POLYLINE
        center[:, 10] = torch.stack([sx, foot - ph / 2], -1)
        params[:, 10, 0] = 0.025 * s
        points[:, 10, 0] = torch.stack([0 * ph, -ph / 2], -1)
        points[:, 10, 1:] = torch.stack([0 * ph, ph / 2], -1)[:, None]
        r = 0.075 * s
        disc = torch.rand(n, generator=g, device=dev) < 0.5
        kind[:, 11] = torch.where(disc, raster.DISC, raster.BOX)
        center[:, 11] = torch.stack([sx, foot - ph], -1)
        params[:, 11, 0] = r
        params[:, 11, 1] = r
        glyph = torch.randint(0, len(GLYPHS), (n,), generator=g, device=dev)
        kind[:, 12] = torch.tensor([raster.BOX, raster.RING, raster.DISC], device=dev)[glyph]
        center[:, 12] = center[:, 11]
        gp = torch.tensor([[0.7, 0.2, 0], [0.45, 0.15, 0], [0.3, 0, 0]], device=dev)[glyph] * r
        params[:, 12] = gp
        z[:, 10:13] += 40
        lx = torch.where(left, s * u(n, lo=0.8, hi=0.95), s * u(n, lo=0.05, hi=0.2))   # lamp
        lh = s * u(n, lo=0.3, hi=0.4)
        kind[:, 13] = raster.POLYLINE
        center[:, 13] = torch.stack([lx, foot - lh / 2], -1)
        params[:, 13, 0] = 0.02 * s
        points[:, 13, 0] = torch.stack([0 * lh, -lh / 2], -1)
        points[:, 13, 1:] = torch.stack([0 * lh, lh / 2], -1)[:, None]
        kind[:, 14] = raster.DISC
        center[:, 14] = torch.stack([lx, foot - lh], -1)
        params[:, 14, 0] = 0.04 * s
        z[:, 13:] += 40
        colors = self._day_colors(g, n, glyph)
        lights = torch.stack([center[:, 14], center[:, 6], center[:, 8]], 1)
        return {"kind": kind, "center": center, "params": params, "points": points, "z": z,
                "colors": colors, "sky": uniform(g, (n, 3), 0, 1, dev) * 0.1
                + torch.tensor([0.5, 0.7, 0.95], device=dev),
                "glyph": glyph, "lights": lights, "car_scale": scale, "seed": torch.tensor(seed)}

    def _day_colors(self, g, n, glyph):
        dev = self.device
        u = lambda *shape, lo=0.0, hi=1.0: uniform(g, shape, lo, hi, dev)
        c = torch.zeros(n, P, 3, device=dev)
        c[:, 0] = 0.62 + u(n, 1, lo=-0.05, hi=0.05) + torch.tensor([0.02, 0.0, -0.05], device=dev)
        c[:, 1] = 0.32 + u(n, 1, lo=-0.05, hi=0.05)
        c[:, 2:6] = u(n, 4, 1, lo=0.35, hi=0.75) * torch.tensor([1.0, 0.9, 0.8], device=dev) \
            + u(n, 4, 3, lo=-0.05, hi=0.05)
        car = u(n, 2, 3, lo=0.1, hi=0.9)
        c[:, 6], c[:, 8] = car[:, 0], car[:, 1]
        c[:, 7] = c[:, 9] = torch.tensor([0.2, 0.25, 0.3], device=dev)                # windows
        c[:, 10] = c[:, 13] = c[:, 14] = 0.25
        c[:, 11] = torch.tensor([[0.85, 0.1, 0.1], [0.1, 0.3, 0.85], [0.95, 0.8, 0.1]],
                                device=dev)[glyph]
        c[:, 12] = 0.95
        return c.clamp(0, 1)

    def _render(self, sc: dict[str, torch.Tensor], domain: str) -> dict[str, torch.Tensor]:
        n, dev = len(sc["kind"]), self.device
        prims = raster.primitives(sc["kind"], sc["center"], params=sc["params"],
                                  points=sc["points"])
        cls = torch.tensor(SLOT_CLASS, device=dev).expand(n, P)
        lay = raster.render(prims, sc["colors"], (self.size, self.size), sc["sky"], z=sc["z"],
                            part=cls, instance=torch.arange(P, device=dev).expand(n, P))
        label = torch.where(lay.parts < 0, SKY, lay.parts)
        image = lay.rgb if domain == "day" else self._night(sc, lay.rgb, label)
        return {"image": image, "label": label, "glyph": sc["glyph"]}

    def _night(self, sc, day: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Rainy night from day (module docstring); nuisances seeded by the scenes' seed."""
        n, _, h, w = day.shape
        dev = day.device
        g = generator(int(sc["seed"]) * 7919 + 11, dev)
        gamma = uniform(g, (n, 1, 1, 1), 1.8, 2.4, dev)
        img = day.clamp_min(1e-4) ** gamma * uniform(g, (n, 1, 1, 1), 0.3, 0.45, dev)
        img = img * torch.tensor([0.65, 0.8, 1.15], device=dev)[None, :, None, None]
        ys, xs = torch.meshgrid(torch.arange(h, device=dev) + 0.5, torch.arange(w, device=dev)
                                + 0.5, indexing="ij")
        d2 = (xs - sc["lights"][..., 0, None, None]) ** 2 + (ys - sc["lights"][..., 1, None, None]) ** 2
        sigma = 0.06 * h
        glow = torch.exp(-d2 / (2 * sigma ** 2)).sum(1, keepdim=True)             # (N, 1, H, W)
        warm = torch.tensor([1.0, 0.8, 0.45], device=dev)[None, :, None, None]
        img = img + 0.8 * glow * warm
        k = max(3, h // 4)                                          # the wet road's smear
        smear = F.avg_pool2d(F.pad(glow, (0, 0, k - 1, 0)), (k, 1), 1)
        road = (label == ROAD)[:, None].float()
        img = img + 0.5 * smear * road * warm
        drops = (torch.rand((n, 1, h, w), generator=g, device=dev) < 0.02).float()
        kernel = torch.zeros(1, 1, 5, 5, device=dev)
        kernel[0, 0, torch.arange(5), torch.tensor([3, 3, 2, 1, 1])] = 0.25         # slanted
        rain = F.conv2d(drops, kernel, padding=2)
        img = img + 0.5 * rain * torch.tensor([0.7, 0.75, 0.85], device=dev)[None, :, None, None]
        img = img + 0.03 * torch.randn((n, 3, h, w), generator=g, device=dev)
        return img.clamp(0, 1)
