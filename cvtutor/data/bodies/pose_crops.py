"""Top-down single-person crops of the body world for 2-D keypoint heatmap regression: the
rendered scene (Lambert shading, limbs coloured by side like a jersey with one red and one blue
sleeve), each person's box grown to an ``H × W`` crop (aspect 4:3 as COCO's 256×192), 13 COCO
keypoints with COCO visibility flags and the person's pixel area in the crop (OKS's ``s²``).

Used by the RSN chapter (``notebooks/eccv2020/rsn_delicate_local.ipynb``); the bodies, occlusion
and cameras come from :class:`cvtutor.data.bodies.BodyWorld`.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from cvtutor.data import render3d
from cvtutor.data.bodies import skeleton as sk
from cvtutor.data.bodies.world import BodyWorld, crop_by_box, to_crop
from cvtutor.metrics.pose import COCO_SIGMAS

# the 13 COCO keypoints the skeleton has (COCO-17 without the eyes and ears), in COCO order
KEYPOINTS13 = tuple(n for n in sk.COCO_NAMES if not n.endswith(("eye", "ear")))
COCO17_FROM_13 = (0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)  # index of each in COCO-17
BODY_FROM_13 = tuple(sk.COCO_FROM_BODY[i] for i in COCO17_FROM_13)  # index in the 23-joint body
FLIP_PAIRS13 = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12))
SIGMAS13 = COCO_SIGMAS[list(COCO17_FROM_13)]


def part_albedo(dtype=torch.float32, device=None) -> torch.Tensor:
    """``(24, 3)`` RGB albedo per part id of the ray caster (0 background, ``j + 1`` the bone ending
    at joint ``j``): torso and head grey, left limbs reddish, right limbs bluish, so left and right
    can be told apart as on a sports jersey (without it a mirrored pose is ambiguous). Left and
    right are each other's red/blue channel swap, so :func:`mirror` is the world's exact mirror."""
    alb = torch.full((sk.N_JOINTS + 1, 3), 0.75, dtype=dtype, device=device)
    for j, name in enumerate(sk.JOINT_NAMES):
        if name.startswith("l_"):
            alb[j + 1] = torch.tensor([0.95, 0.45, 0.35])  # left: reddish
        elif name.startswith("r_"):
            alb[j + 1] = torch.tensor([0.35, 0.45, 0.95])  # right: its swap
    alb[0] = 0.0
    return alb


def shade(scenes: dict[str, torch.Tensor], noise: float, generator: torch.Generator
          ) -> torch.Tensor:
    """RGB images ``(n, 3, S, S)`` of the first view of :meth:`BodyWorld.sample` output: part albedo
    under a Lambert light from above the camera (left-right symmetric), a floor of grey noise texture, pixel noise ``σ``."""
    part = scenes["part"][:, 0, 0]  # (n, S, S)
    hit = scenes["hit"][:, 0, 0]
    n, S, _ = part.shape
    dev = part.device
    floor = scenes["instance"][:, 0, 0] == scenes["uv"].shape[2]
    alb = part_albedo(device=dev)[part.clamp(0, sk.N_JOINTS)].permute(0, 3, 1, 2)
    tex = 0.25 + 0.2 * torch.rand(n, 1, S, S, generator=generator, device=dev)
    alb = torch.where(floor[:, None], tex.expand(n, 3, S, S), alb)
    light = torch.tensor([0.0, 0.6, 0.8], device=dev)
    light = (light / light.norm()).expand(n, 3)
    img = render3d.lambert(alb, scenes["normals"][:, 0], light, torch.full((n,), 0.35, device=dev))
    img = torch.where(hit[:, None], img, torch.zeros_like(img))
    return img + noise * torch.randn(img.shape, generator=generator, device=dev)


def crop_boxes(uv: torch.Tensor, height: int, width: int, margin: float = 1.25) -> torch.Tensor:
    """Square boxes ``(B, 4)`` (u0, v0, u1, v1) whose central ``width/height`` columns hold the
    keypoints ``uv (B, J, 2)``' box grown by ``margin`` about its centre at aspect ``H : W``."""
    lo, hi = uv.amin(-2), uv.amax(-2)
    centre, size = 0.5 * (lo + hi), hi - lo
    half = margin * 0.5 * torch.maximum(size[:, 1], size[:, 0] * height / width).clamp_min(1.0)
    return torch.cat([centre - half[:, None], centre + half[:, None]], -1)


def pose_crops(n: int, height: int = 32, width: int = 24, image_size: int = 64,
               n_people: int = 2, split: str = "train", noise: float = 0.03, seed: int = 0,
               device: str | torch.device | None = "cpu") -> dict[str, torch.Tensor]:
    """``n`` top-down crops: ``image (n, 3, H, W)``, ``uv (n, 13, 2)`` keypoints in crop pixels
    (pixel centres at ``k + 0.5``), ``visible (n, 13)`` COCO flags (2 seen, 1 occluded inside the
    crop, 0 outside it), ``area (n,)`` the person's pixels in the crop, ``mask (n, H, W)`` the
    person's pixels. Scenes of ``n_people`` people (the others are clutter and occluders) from one
    camera of :class:`BodyWorld`; seeded and bit-identical for a seed on a device."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if height < width or height % 2 or width % 2:
        raise ValueError(f"need an even height ≥ an even width, got {height}×{width}")
    world = BodyWorld(n_people=n_people, n_views=1, image_size=image_size, seed=seed,
                      device=device)
    scenes = world.sample(math.ceil(n / n_people), split)
    gen = torch.Generator(device=world.device).manual_seed(seed + 104729)
    img = shade(scenes, noise, gen)  # (m, 3, S, S)
    m, P = scenes["uv"].shape[0], n_people
    uv = scenes["uv"][:, 0].reshape(m * P, sk.N_JOINTS, 2)[:n]
    vis = scenes["visible"][:, 0].reshape(m * P, sk.N_JOINTS)[:n]
    scene = torch.arange(m * P, device=world.device)[:n] // P
    own = torch.arange(m * P, device=world.device)[:n] % P
    boxes = crop_boxes(uv[:, list(BODY_FROM_13)], height, width)
    mask = (scenes["instance"][:, 0, 0][scene] == own[:, None, None]).to(img.dtype)
    crops = crop_by_box(torch.cat([img[scene], mask[:, None]], 1), boxes, height)
    off = (height - width) // 2
    crops = crops[..., off:off + width]
    kp = to_crop(uv[:, list(BODY_FROM_13)], boxes, height) - torch.tensor(
        [float(off), 0.0], device=world.device)
    inside = ((kp >= 0) & (kp < torch.tensor([width, height], device=world.device))).all(-1)
    flags = torch.where(inside, 1 + vis[:, list(BODY_FROM_13)].long(), torch.zeros_like(own)[:, None])
    person = crops[:, 3] > 0.5
    return {"image": crops[:, :3], "uv": kp, "visible": flags, "area": person.sum((1, 2)).to(
        img.dtype).clamp_min(1.0), "mask": person}


def mirror(images: torch.Tensor) -> torch.Tensor:
    """The world's left-right mirror of crops ``(B, 3, H, W)``: a horizontal flip *and* the
    red/blue swap that turns left limbs' colour into right limbs' (a flip alone would show a
    mirrored person with the left limbs' colour on the right side, a body no crop contains)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    return images.flip(-1)[:, [2, 1, 0]]


def to_coco17(uv13: torch.Tensor | np.ndarray, visible13=None) -> tuple[np.ndarray, np.ndarray]:
    """13 keypoints ``(n, 13, 2)`` → COCO-17 ``(n, 17, 2)`` with the eyes and ears at 0 and flagged
    absent (``v = 0``, so OKS ignores them); ``visible13 (n, 13)`` → ``(n, 17)`` (all 2 if None)."""
    uv = np.asarray(uv13.detach().cpu() if torch.is_tensor(uv13) else uv13, dtype=float)
    if uv.ndim != 3 or uv.shape[1:] != (13, 2):
        raise ValueError(f"keypoints must be (n, 13, 2), got {uv.shape}")
    out = np.zeros((len(uv), 17, 2))
    out[:, list(COCO17_FROM_13)] = uv
    v = np.full(uv.shape[:2], 2) if visible13 is None else np.asarray(
        visible13.cpu() if torch.is_tensor(visible13) else visible13)
    flags = np.zeros((len(uv), 17), dtype=int)
    flags[:, list(COCO17_FROM_13)] = v
    return out, flags
