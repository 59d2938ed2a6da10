"""Augmentation of the image-classification world: batched per-image RandAugment and
torchvision v2 policy wrappers.

Shown in ``notebooks/eccv2020/world_images.ipynb`` (section 3); used by AutoAugment-KD (E36) and the
robustness chapter (E04).

:func:`rand_augment` is RandAugment (Cubuk et al. 2020) over a geometric space: each image draws
its own ``n_ops`` operations from :data:`GEOMETRIC_OPS` and a random sign for each, at one
global magnitude ``M`` of 10 levels (the strength is ``M / 10`` of the op's maximum), all composed
into one affine warp per image and applied in one batched ``grid_sample``. ``M = 0`` (or drawing
``identity`` for every op) is exactly the identity: such images are returned unchanged.

torchvision's ``v2.RandAugment`` / ``v2.AutoAugment`` treat a ``(B, C, H, W)`` tensor as one
sample: **one call draws one policy (ops, magnitudes, signs) for the whole batch** (checked in
``tests/test_imageclass_data.py``). :func:`tv_rand_augment` / :func:`tv_auto_augment` wrap them
with ``per_image=True`` (a Python loop, one draw per image; slow) or ``False`` (one draw a batch).
Use :func:`rand_augment` where per-image sampling matters at speed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

GEOMETRIC_OPS = ("identity", "rotate", "shear_x", "shear_y", "translate_x", "translate_y", "scale")
#: the op's strength at M = 10: degrees, shear factor, fraction of the image, relative scale change
MAX_STRENGTH = {
    "rotate": 30.0,
    "shear_x": 0.3,
    "shear_y": 0.3,
    "translate_x": 0.3,
    "translate_y": 0.3,
    "scale": 0.3,
}
LEVELS = 10


def _op_matrices(op: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """``(B, 3, 3)`` affine matrices in normalised coordinates mapping output to input points."""
    b = len(op)
    m = torch.eye(3, device=op.device).repeat(b, 1, 1)
    ang = strength * MAX_STRENGTH["rotate"] * math.pi / 180
    rot = op == GEOMETRIC_OPS.index("rotate")
    m[:, 0, 0] = torch.where(rot, ang.cos(), m[:, 0, 0])
    m[:, 0, 1] = torch.where(rot, -ang.sin(), m[:, 0, 1])
    m[:, 1, 0] = torch.where(rot, ang.sin(), m[:, 1, 0])
    m[:, 1, 1] = torch.where(rot, ang.cos(), m[:, 1, 1])
    m[:, 0, 1] = torch.where(
        op == GEOMETRIC_OPS.index("shear_x"), strength * MAX_STRENGTH["shear_x"], m[:, 0, 1]
    )
    m[:, 1, 0] = torch.where(
        op == GEOMETRIC_OPS.index("shear_y"), strength * MAX_STRENGTH["shear_y"], m[:, 1, 0]
    )
    # a translation by a fraction f of the image is 2 f in normalised [-1, 1] coordinates
    m[:, 0, 2] = torch.where(
        op == GEOMETRIC_OPS.index("translate_x"),
        2 * strength * MAX_STRENGTH["translate_x"],
        m[:, 0, 2],
    )
    m[:, 1, 2] = torch.where(
        op == GEOMETRIC_OPS.index("translate_y"),
        2 * strength * MAX_STRENGTH["translate_y"],
        m[:, 1, 2],
    )
    sc = op == GEOMETRIC_OPS.index("scale")
    zoom = 1 / (1 + strength * MAX_STRENGTH["scale"])
    m[:, 0, 0] = torch.where(sc, zoom, m[:, 0, 0])
    m[:, 1, 1] = torch.where(sc, zoom, m[:, 1, 1])
    return m


def rand_augment(
    x: torch.Tensor,
    n_ops: int = 2,
    magnitude: int = 9,
    seed: int = 0,
    ops: tuple[str, ...] = GEOMETRIC_OPS,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Per-image RandAugment of ``x (B, C, H, W)``: ``n_ops`` ops per image from ``ops``, magnitude
    ``M`` in 0..10 (strength ``M / 10`` times :data:`MAX_STRENGTH`, random sign per op).

    One composed affine warp per image, bilinear; images whose warp is the identity come back
    bit-identical. Seeded on ``x``'s device.
    """
    if x.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got {tuple(x.shape)}")
    if not 0 <= magnitude <= LEVELS or n_ops < 0:
        raise ValueError(
            f"need 0 <= magnitude <= {LEVELS} and n_ops >= 0, got {magnitude}, {n_ops}"
        )
    unknown = set(ops) - set(GEOMETRIC_OPS)
    if unknown or not ops:
        raise ValueError(
            f"ops must be a non-empty subset of {GEOMETRIC_OPS}, got {sorted(unknown) or ops}"
        )
    g = torch.Generator(device=x.device).manual_seed(int(seed))
    allowed = torch.tensor([GEOMETRIC_OPS.index(o) for o in ops], device=x.device)
    b = len(x)
    total = torch.eye(3, device=x.device).repeat(b, 1, 1)
    for _ in range(n_ops):
        op = allowed[torch.randint(0, len(allowed), (b,), generator=g, device=x.device)]
        sign = torch.randint(0, 2, (b,), generator=g, device=x.device) * 2 - 1
        total = total @ _op_matrices(op, sign * magnitude / LEVELS)
    identity = (total == torch.eye(3, device=x.device)).flatten(1).all(1)
    grid = F.affine_grid(total[:, :2], list(x.shape), align_corners=False)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    return torch.where(identity[:, None, None, None], x, warped)


def _tv_apply(transform, x: torch.Tensor, seed: int, per_image: bool) -> torch.Tensor:
    """Apply a torchvision v2 transform to uint8 images under a forked, seeded global RNG."""
    if x.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got {tuple(x.shape)}")
    u8 = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        out = torch.stack([transform(im) for im in u8]) if per_image else transform(u8)
    return out.to(x.dtype) / 255


def tv_rand_augment(
    x: torch.Tensor, n_ops: int = 2, magnitude: int = 9, seed: int = 0, per_image: bool = True
) -> torch.Tensor:
    """torchvision ``v2.RandAugment(n_ops, magnitude)`` (its full colour + geometric space, 31
    levels) on ``x (B, C, H, W)`` in [0, 1]; ``per_image=False`` draws one policy for the batch."""
    from torchvision.transforms import v2

    return _tv_apply(v2.RandAugment(num_ops=n_ops, magnitude=magnitude), x, seed, per_image)


def tv_auto_augment(x: torch.Tensor, seed: int = 0, per_image: bool = True) -> torch.Tensor:
    """torchvision ``v2.AutoAugment`` with the CIFAR-10 policy (Cubuk et al. 2019) on ``x`` in
    [0, 1]; ``per_image=False`` draws one sub-policy for the whole batch."""
    from torchvision.transforms import v2

    return _tv_apply(v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10), x, seed, per_image)
