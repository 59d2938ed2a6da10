"""A photometric sphere world: exact flash-lit renders of textured glossy spheres, with shadows.

Derived in the *Deep Reflectance Volumes* chapter (``notebooks/eccv2020/deep_reflectance_volumes
.ipynb``). A scene is ``M`` spheres inside ``[-1, 1]³`` (world frame, z up) with a striped diffuse
albedo and a per-sphere, banded GGX roughness; a point light of intensity ``I`` sits at the camera
centre (collocated flash, as in the paper's capture) or anywhere else (relighting). Every pixel's
ray is intersected analytically with every sphere; the nearest hit is shaded with Lambert + GGX,
the cosine ``(n·ω_i)₊`` and a ``1/d²`` falloff, and a shadow ray to the light decides visibility.
The background is black (a dark room). All of it is batched torch code on the inputs' device.

The BRDF (:func:`brdf`) is our stand-in for the paper's unspecified "simplified Disney BRDF":
``f_r = a/π + D·F·G / (4 (n·ω_i)(n·ω_o))`` with the GGX ``D`` (``α_g = roughness²``), Schlick's
``F`` (``F0 = 0.04``) and the separable Smith-GGX ``G``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cvtutor.data.geometry.cameras import camera_hemisphere
from cvtutor.data.render3d import pixel_rays

F0 = 0.04  # Schlick's normal-incidence reflectance of a dielectric


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def ggx_D(n_dot_h: torch.Tensor, roughness: torch.Tensor) -> torch.Tensor:
    """GGX normal distribution ``D(h) = α²/(π ((n·h)²(α² - 1) + 1)²)``, ``α = roughness²``.
    Normalised so that ``∫ D(h)(n·h) dω_h = 1`` over the hemisphere."""
    a2 = roughness.pow(4)
    c = n_dot_h.clamp_min(0.0)
    return a2 / (math.pi * (c * c * (a2 - 1) + 1).square())


def smith_G1(n_dot_v: torch.Tensor, roughness: torch.Tensor) -> torch.Tensor:
    """Smith-GGX masking of one direction: ``2 (n·v) / ((n·v) + √(α² + (1 - α²)(n·v)²))``."""
    a2 = roughness.pow(4)
    c = n_dot_v.clamp_min(1e-6)
    return 2 * c / (c + (a2 + (1 - a2) * c * c).sqrt())


def brdf(wo: torch.Tensor, wi: torch.Tensor, n: torch.Tensor, albedo: torch.Tensor,
         roughness: torch.Tensor) -> torch.Tensor:
    """Lambert + GGX microfacet BRDF ``f_r(ω_o, ω_i, n, R)`` (our reading of the paper's Sec. 4.1).

    ``wo, wi, n (..., 3)`` unit vectors pointing away from the surface, ``albedo (..., 3)``,
    ``roughness (..., 1)`` in ``(0, 1]`` → ``(..., 3)``. Zero where either direction is below the
    surface."""
    h = _unit(wo + wi)
    n_i = (n * wi).sum(-1, keepdim=True)
    n_o = (n * wo).sum(-1, keepdim=True)
    n_h = (n * h).sum(-1, keepdim=True)
    fresnel = F0 + (1 - F0) * (1 - (h * wi).sum(-1, keepdim=True).clamp(0, 1)).pow(5)
    g = smith_G1(n_i, roughness) * smith_G1(n_o, roughness)
    spec = ggx_D(n_h, roughness) * fresnel * g / (4 * n_i.clamp_min(1e-4) * n_o.clamp_min(1e-4))
    up = ((n_i > 0) & (n_o > 0)).to(albedo.dtype)
    return (albedo / math.pi + spec) * up


def ray_sphere_t(origins: torch.Tensor, dirs: torch.Tensor, centres: torch.Tensor,
                 radii: torch.Tensor, t_min: float = 1e-4) -> torch.Tensor:
    """Ray parameter of the first hit ``t > t_min`` of rays ``o + t·d`` (``(R, 3)``, unit ``d``)
    with spheres ``(M, 3)``, ``(M,)`` → ``(R, M)`` (``inf`` where missed): the smaller root of
    ``t² + 2 t d·(o - c) + ‖o - c‖² - r² = 0`` that exceeds ``t_min``, else the larger one."""
    oc = origins[:, None] - centres[None]
    b = (dirs[:, None] * oc).sum(-1)
    disc = b * b - (oc * oc).sum(-1) + radii[None] ** 2
    s = disc.clamp_min(0).sqrt()
    t0, t1 = -b - s, -b + s
    t = torch.where(t0 > t_min, t0, t1)
    return t.masked_fill((disc <= 0) | (t <= t_min), float("inf"))


@dataclass
class SphereScene:
    """``M`` spheres (centres ``(M, 3)``, radii ``(M,)``) with base albedo ``(M, 3)``, stripe
    frequency ``(M,)`` and base roughness ``(M,)``; light intensity ``intensity``."""

    centres: torch.Tensor
    radii: torch.Tensor
    albedo: torch.Tensor
    stripes: torch.Tensor
    roughness: torch.Tensor
    intensity: float = 16.0

    @classmethod
    def default(cls, device=None, dtype=torch.float32) -> "SphereScene":
        """Three spheres: a large matte one, a glossy one beside it and a small one in front,
        placed so a displaced light casts shadows of one onto another."""
        t = lambda x: torch.tensor(x, dtype=dtype, device=device)  # noqa: E731
        return cls(centres=t([[0.0, 0.0, -0.15], [0.45, 0.35, 0.3], [-0.45, 0.4, 0.2]]),
                   radii=t([0.5, 0.3, 0.25]),
                   albedo=t([[0.8, 0.55, 0.3], [0.3, 0.5, 0.8], [0.6, 0.8, 0.4]]),
                   stripes=t([6.0, 9.0, 12.0]), roughness=t([0.7, 0.3, 0.45]))

    def materials(self, x: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Albedo ``(R, 3)`` and roughness ``(R, 1)`` at surface points ``x (R, 3)`` of spheres
        ``idx (R,)``: albedo striped along z, roughness banded along x (the textures)."""
        local = x - self.centres[idx]
        stripe = 0.5 + 0.5 * torch.sin(self.stripes[idx] * local[:, 2])
        albedo = self.albedo[idx] * (0.55 + 0.45 * stripe[:, None])
        band = torch.cos(self.stripes[idx] * local[:, 0])
        rough = (self.roughness[idx] * (1 + 0.2 * band)).clamp(0.05, 1.0)
        return albedo, rough[:, None]


def render(scene: SphereScene, origins: torch.Tensor, dirs: torch.Tensor,
           lights: torch.Tensor, shadows: bool = True) -> dict[str, torch.Tensor]:
    """Exact render of rays ``o + t·d`` (``(R, 3)``, unit ``d``) lit by point lights ``(R, 3)``
    (one per ray): ``L = f_r(ω_o, ω_i, n, R)·(n·ω_i)₊·I/d²·visibility``.

    Returns ``rgb (R, 3)`` (black background), ``hit (R,)``, ``normal (R, 3)``, ``albedo (R, 3)``,
    ``roughness (R, 1)``, ``shadow (R,)`` (True where a hit point does not see the light)."""
    for name, v in (("origins", origins), ("dirs", dirs), ("lights", lights)):
        if v.ndim != 2 or v.shape[-1] != 3 or v.shape[0] != origins.shape[0]:
            raise ValueError(f"{name} must be (R, 3) like origins, got {tuple(v.shape)}")
    t_all = ray_sphere_t(origins, dirs, scene.centres, scene.radii)
    t, idx = t_all.min(-1)
    hit = torch.isfinite(t)
    tt = torch.where(hit, t, torch.zeros_like(t))
    x = origins + tt[:, None] * dirs
    n = _unit(x - scene.centres[idx])
    albedo, rough = scene.materials(x, idx)
    to_l = lights - x
    d2 = (to_l * to_l).sum(-1, keepdim=True).clamp_min(1e-8)
    wi = to_l / d2.sqrt()
    wo = -dirs
    f = brdf(wo, wi, n, albedo, rough)
    cos = (n * wi).sum(-1, keepdim=True).clamp_min(0)
    blocked = torch.zeros_like(hit)
    if shadows:
        ts = ray_sphere_t(x + 1e-3 * n, wi, scene.centres, scene.radii).amin(-1)
        blocked = ts < d2[:, 0].sqrt()
    lit = (hit & ~blocked).to(x.dtype)[:, None]
    z = torch.zeros_like(x)
    m = hit[:, None]
    rgb = torch.where(m & (lit > 0), f * cos * scene.intensity / d2, z)
    return {"rgb": rgb.clamp(0, 1), "hit": hit, "normal": torch.where(m, n, z),
            "albedo": torch.where(m, albedo, z), "roughness": torch.where(m, rough, z[:, :1]),
            "shadow": hit & blocked}


def camera_rays(R: torch.Tensor, t: torch.Tensor, K: torch.Tensor,
                image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """World-frame rays of ``V`` cameras (``X_c = R·X_w + t``): origins ``-Rᵀt`` and unit
    directions ``Rᵀ K⁻¹ [u, v, 1]`` through the pixel centres → ``(V, S·S, 3)`` each."""
    d_cam = pixel_rays(K, image_size)  # (P, 3)
    dirs = _unit(torch.einsum("vji,pj->vpi", R, d_cam))
    centres = -(R.transpose(-1, -2) @ t[..., None])[..., 0]
    return centres[:, None].expand_as(dirs).contiguous(), dirs


def photometric_views(scene: SphereScene, n_views: int, image_size: int, radius: float = 3.2,
                      focal: float | None = None, light_offset_deg: float = 0.0,
                      phase: float = 0.0, device=None) -> dict[str, torch.Tensor]:
    """``n_views`` flash photographs from a Fibonacci hemisphere of cameras at ``radius``.

    ``light_offset_deg = 0``: the light at the camera centre (collocated, training); otherwise the
    light is rotated by that angle about the world z axis around the origin (non-collocated,
    relighting, with cast shadows). ``phase`` rotates the camera set (held-out views).
    Returns images ``(V, S, S, 3)``, rays ``origins, dirs (V, S·S, 3)``, ``lights (V, 3)``, ``K``.
    """
    if n_views < 1 or image_size < 2:
        raise ValueError(f"need n_views >= 1 and image_size >= 2, got {n_views}, {image_size}")
    dtype = scene.centres.dtype
    focal = focal if focal is not None else 1.5 * image_size
    R, t, eyes = camera_hemisphere(n_views, radius, min_elevation_deg=15.0, dtype=dtype,
                                   device=device)
    if phase:
        c, s = math.cos(phase), math.sin(phase)
        rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=dtype, device=device)
        R, eyes = R @ rot.T, eyes @ rot.T
        t = -(R @ eyes[..., None])[..., 0]
    K = torch.tensor([[focal, 0, image_size / 2], [0, focal, image_size / 2], [0, 0, 1]],
                     dtype=dtype, device=device)
    origins, dirs = camera_rays(R, t, K, image_size)
    a = math.radians(light_offset_deg)
    rot_l = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0],
                          [0.0, 0.0, 1.0]], dtype=dtype, device=device)
    lights = eyes @ rot_l.T
    P = image_size * image_size
    out = render(scene, origins.reshape(-1, 3), dirs.reshape(-1, 3),
                 lights[:, None].expand(-1, P, -1).reshape(-1, 3))
    img = out["rgb"].reshape(n_views, image_size, image_size, 3)
    return {"images": img, "origins": origins, "dirs": dirs, "lights": lights, "K": K,
            "shadow": out["shadow"].reshape(n_views, image_size, image_size)}
