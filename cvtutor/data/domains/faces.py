"""Cartoon faces: identity x continuous age x extraneous factors, for face aging (E06).

A face is drawn from three independent groups of factors:

* **identity** (:data:`IDENTITY`, 8 factors in [0, 1], fixed per person): face width and height,
  eye spacing and size, nose length, mouth width, skin tone, iris colour;
* **age** in years (continuous, long-tailed: ``1 + 84 Beta(2, 5)``, most faces young, few old;
  :meth:`Faces.scenes` draws ``ages_per_identity`` ages for each person): *growth* (a child's
  head is smaller, its eyes larger and lower), *wrinkles* (forehead lines and crow's feet whose
  contrast grows from 35 to 70 years) and *greying* (hair blends to grey from 40 to 75);
* **extraneous** factors, redrawn per image: hair style (short, long, fringe) and colour, the
  backdrop, pose (a roll of the head and a yaw that shifts the features sideways) and light (a
  shading gradient across the face in a random direction).

Domains render the scenes at their sampled age (``sampled``) or re-aged to a group's age
(:data:`AGE_GROUPS`: the same person, pose and light at another age). ``label`` is the face-part
map over :data:`PARTS`; re-ageing changes it (a child's face is smaller) but nothing else.
"""
from __future__ import annotations

import math

import torch

from cvtutor.data import raster
from cvtutor.data.domains.base import DomainWorld, generator, uniform

IDENTITY = ("face_width", "face_height", "eye_gap", "eye_size", "nose_length", "mouth_width",
            "skin", "iris")
PARTS = ("background", "hair", "skin", "eye", "brow", "nose", "mouth")
BACKGROUND, HAIR, SKIN, EYE, BROW, NOSE, MOUTH = range(len(PARTS))
AGE_GROUPS = {"child": 8.0, "young": 25.0, "adult": 45.0, "old": 72.0}
# slots back to front
SLOTS = ("hair_back", "neck", "face", "ear_l", "ear_r", "white_l", "white_r", "iris_l", "iris_r",
         "brow_l", "brow_r", "nose", "mouth", "forehead_1", "forehead_2", "crow_l", "crow_r",
         "fringe")
SLOT_PART = (HAIR, SKIN, SKIN, SKIN, SKIN, EYE, EYE, EYE, EYE, BROW, BROW, NOSE, MOUTH, SKIN, SKIN,
             SKIN, SKIN, HAIR)
P = len(SLOTS)
WRINKLES = slice(13, 17)


def growth(age: torch.Tensor) -> torch.Tensor:
    """0 at birth to 1 at 18 years (linear), the head's growth."""
    return (age / 18).clamp(0, 1)


def wrinkles(age: torch.Tensor) -> torch.Tensor:
    """Wrinkle contrast: 0 until 35 years, 1 from 70."""
    return ((age - 35) / 35).clamp(0, 1)


def greying(age: torch.Tensor) -> torch.Tensor:
    """The hair's share of grey: 0 until 40 years, 1 from 75."""
    return ((age - 40) / 35).clamp(0, 1)


class Faces(DomainWorld):
    """Cartoon-faces world (module docstring)."""

    domains = ("sampled", *AGE_GROUPS)

    def __init__(self, size: int = 32, device=None, ages_per_identity: int = 4) -> None:
        super().__init__(size, device)
        if ages_per_identity < 1:
            raise ValueError(f"ages_per_identity must be >= 1, got {ages_per_identity}")
        self.ages_per_identity = ages_per_identity

    def scenes(self, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
        """``identity`` (N,) person ids (``ages_per_identity`` consecutive images each),
        ``factors`` (N, 8), ``age`` (N,) years, extraneous ``hair_style`` (N,), ``hair`` (N, 3),
        ``backdrop`` (N, 3), ``roll``, ``yaw`` (N,), ``light`` (N,) angle, ``seed``."""
        self._check_n(n)
        dev, k = self.device, self.ages_per_identity
        g = generator(seed, dev)
        m = -(-n // k)
        person = torch.arange(n, device=dev) // k
        factors = torch.rand((m, len(IDENTITY)), generator=g, device=dev)[person]
        beta = torch.distributions.Beta(torch.tensor(2.0, device=dev), torch.tensor(5.0, device=dev))
        u01 = torch.rand(n, generator=g, device=dev)
        age = 1 + 84 * _beta_icdf(u01, beta)
        return {"identity": person, "factors": factors, "age": age,
                "hair_style": torch.randint(0, 3, (n,), generator=g, device=dev),
                "hair": uniform(g, (n, 1), 0.05, 0.6, dev) * torch.tensor([1.0, 0.75, 0.5],
                                                                         device=dev),
                "backdrop": uniform(g, (n, 3), 0.3, 0.9, dev),
                "roll": uniform(g, (n,), -0.2, 0.2, dev), "yaw": uniform(g, (n,), -1, 1, dev),
                "light": uniform(g, (n,), 0, 2 * math.pi, dev), "seed": torch.tensor(seed)}

    def _render(self, sc: dict[str, torch.Tensor], domain: str) -> dict[str, torch.Tensor]:
        age = sc["age"] if domain == "sampled" else torch.full_like(sc["age"], AGE_GROUPS[domain])
        n, dev, s = len(age), self.device, float(self.size)
        f = sc["factors"]
        gr = growth(age)
        head = s * (0.2 + 0.07 * gr)                           # face semi-height, px
        fw, fh = head * (0.7 + 0.25 * f[:, 0]), head * (0.9 + 0.2 * f[:, 1])
        c = torch.stack([torch.full_like(age, s / 2), s * 0.52 + 0.1 * (1 - gr) * s], -1)
        yaw = sc["yaw"] * 0.15 * fw                            # features shift with the yaw
        kind = torch.full((n, P), raster.ELLIPSE, device=dev)
        off = torch.zeros(n, P, 2, device=dev)                 # offsets in the head frame, px
        params = torch.zeros(n, P, 3, device=dev)
        points = torch.zeros(n, P, 2, 2, device=dev)
        valid = torch.ones(n, P, dtype=torch.bool, device=dev)
        style = sc["hair_style"]
        long_hair = (style == 1).float()
        off[:, 0] = torch.stack([0 * fw, -0.2 * fh + 0.35 * fh * long_hair], -1)
        params[:, 0, :2] = torch.stack([fw * 1.15, fh * (0.95 + 0.45 * long_hair)], -1)
        kind[:, 1] = raster.BOX
        off[:, 1] = torch.stack([0 * fw, fh * 1.05], -1)
        params[:, 1, :2] = torch.stack([0.35 * fw, 0.35 * fh], -1)
        params[:, 2, :2] = torch.stack([fw, fh], -1)
        for i, side in ((3, -1), (4, 1)):
            off[:, i] = torch.stack([side * fw * 0.98 + yaw * 0.3, 0 * fh], -1)
            params[:, i, :2] = torch.stack([0.18 * fw, 0.28 * fh], -1)
        gap = fw * (0.32 + 0.16 * f[:, 2])
        eye_r = fw * (0.12 + 0.06 * f[:, 3]) * (1.35 - 0.35 * gr)
        eye_y = -0.1 * fh * gr
        for i, side in ((5, -1), (6, 1)):
            kind[:, i] = kind[:, i + 2] = raster.DISC
            off[:, i] = off[:, i + 2] = torch.stack([side * gap + yaw, eye_y], -1)
            params[:, i, 0], params[:, i + 2, 0] = eye_r, eye_r * 0.55
            kind[:, i + 4] = raster.POLYLINE                   # brows
            off[:, i + 4] = torch.stack([side * gap + yaw, eye_y - eye_r - 0.12 * fh], -1)
            params[:, i + 4, 0] = 0.04 * fh
            points[:, i + 4] = torch.stack([torch.stack([-eye_r, 0 * eye_r], -1),
                                            torch.stack([eye_r, 0 * eye_r], -1)], 1)
        nose = fh * (0.15 + 0.15 * f[:, 4])
        kind[:, 11] = kind[:, 12] = raster.POLYLINE
        off[:, 11] = torch.stack([yaw * 1.2, eye_y + nose / 2 + 0.05 * fh], -1)
        params[:, 11, 0] = 0.05 * fh
        points[:, 11] = torch.stack([torch.stack([0 * nose, -nose / 2], -1),
                                     torch.stack([0.15 * nose, nose / 2], -1)], 1)
        mw = fw * (0.25 + 0.2 * f[:, 5])
        off[:, 12] = torch.stack([yaw, 0.5 * fh], -1)
        params[:, 12, 0] = 0.05 * fh
        points[:, 12] = torch.stack([torch.stack([-mw, 0 * mw], -1),
                                     torch.stack([mw, 0 * mw], -1)], 1)
        wr = wrinkles(age)
        kind[:, WRINKLES] = raster.POLYLINE
        params[:, WRINKLES, 0] = 0.025 * fh[:, None]
        for i, y in ((13, -0.55), (14, -0.68)):
            off[:, i] = torch.stack([yaw * 0.5, y * fh], -1)
            points[:, i] = torch.stack([torch.stack([-0.45 * fw, 0 * fw], -1),
                                        torch.stack([0.45 * fw, 0 * fw], -1)], 1)
        for i, side in ((15, -1), (16, 1)):
            off[:, i] = torch.stack([side * (gap + eye_r * 1.6) + yaw, eye_y], -1)
            points[:, i] = torch.stack([torch.stack([0 * fw, -0.1 * fh], -1),
                                        torch.stack([side * 0.12 * fw, 0.05 * fh], -1)], 1)
        valid[:, WRINKLES] = (wr > 0)[:, None]
        off[:, 17] = torch.stack([0 * fw, -0.85 * fh], -1)              # fringe
        params[:, 17, :2] = torch.stack([0.9 * fw, 0.3 * fh], -1)
        valid[:, 17] = style == 2
        roll = sc["roll"][:, None]
        center = c[:, None] + raster.rotate(off, roll)
        prims = raster.primitives(kind, center, angle=roll.expand(n, P), params=params,
                                  points=points, valid=valid)
        skin = (torch.tensor([0.95, 0.8, 0.68], device=dev) * (1 - 0.55 * f[:, 6:7]))
        hair = sc["hair"] + greying(age)[:, None] * (torch.tensor([0.82, 0.82, 0.85],
                                                                  device=dev) - sc["hair"])
        iris = torch.stack([0.2 + 0.3 * f[:, 7], 0.25 + 0.25 * (1 - f[:, 7]),
                            0.15 + 0.5 * (1 - f[:, 7])], -1)
        dark = skin * 0.55
        colors = torch.stack([hair, skin, skin, skin * 0.95, skin * 0.95, torch.ones_like(skin),
                              torch.ones_like(skin), iris, iris, hair * 0.8, hair * 0.8,
                              skin * 0.8, torch.tensor([0.6, 0.2, 0.2], device=dev).expand(n, 3),
                              *[skin + wr[:, None] * (dark - skin)] * 4, hair], 1)
        shade = raster.Textures(
            kind=torch.where(torch.tensor(SLOT_PART, device=dev) == SKIN, raster.GRADIENT,
                             raster.FLAT).expand(n, P),
            period=(2 * fw)[:, None].expand(n, P), angle=sc["light"][:, None].expand(n, P),
            second=colors * 0.75)
        lay = raster.render(prims, colors, (self.size, self.size), sc["backdrop"],
                            part=torch.tensor(SLOT_PART, device=dev).expand(n, P),
                            instance=torch.zeros(n, P, dtype=torch.long, device=dev),
                            n_instances=1, textures=shade)
        label = lay.parts.clamp_min(BACKGROUND)
        return {"image": lay.rgb, "label": label, "age": age, "identity": sc["identity"]}


def _beta_icdf(u: torch.Tensor, beta: torch.distributions.Beta, knots: int = 2049) -> torch.Tensor:
    """Beta quantiles of uniforms ``u`` from a tabulated CDF (torch's Beta sampler takes no
    generator, so seeded samples come from seeded uniforms)."""
    grid = torch.linspace(1e-6, 1 - 1e-6, knots, device=u.device)
    cdf = torch.cumsum(beta.log_prob(grid).exp(), 0)
    idx = torch.searchsorted(cdf / cdf[-1], u.clamp(0, 1)).clamp(max=knots - 1)
    return grid[idx]
