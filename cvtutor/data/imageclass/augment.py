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

:func:`destructive_rand_augment` is AutoAugment-KD's own space (E36, Sec. 4.1): shear-x/y,
translate-x/y and cutout at 10 levels, ``M = 10`` removing the image; :class:`Tau` holds its
draws, :func:`destructive_augment` is its ``g(x, tau)``. Derived in
``notebooks/eccv2020/autoaugment_kd.ipynb``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


def _op_matrices(
    op: torch.Tensor, strength: torch.Tensor, max_strength: dict = MAX_STRENGTH
) -> torch.Tensor:
    """``(B, 3, 3)`` affine matrices in normalised coordinates mapping output to input points;
    ``max_strength`` gives each op's strength at ``M = 10`` (default :data:`MAX_STRENGTH`)."""
    b = len(op)
    m = torch.eye(3, device=op.device).repeat(b, 1, 1)
    ang = strength * max_strength["rotate"] * math.pi / 180
    rot = op == GEOMETRIC_OPS.index("rotate")
    m[:, 0, 0] = torch.where(rot, ang.cos(), m[:, 0, 0])
    m[:, 0, 1] = torch.where(rot, -ang.sin(), m[:, 0, 1])
    m[:, 1, 0] = torch.where(rot, ang.sin(), m[:, 1, 0])
    m[:, 1, 1] = torch.where(rot, ang.cos(), m[:, 1, 1])
    m[:, 0, 1] = torch.where(
        op == GEOMETRIC_OPS.index("shear_x"), strength * max_strength["shear_x"], m[:, 0, 1]
    )
    m[:, 1, 0] = torch.where(
        op == GEOMETRIC_OPS.index("shear_y"), strength * max_strength["shear_y"], m[:, 1, 0]
    )
    # a translation by a fraction f of the image is 2 f in normalised [-1, 1] coordinates
    m[:, 0, 2] = torch.where(
        op == GEOMETRIC_OPS.index("translate_x"),
        2 * strength * max_strength["translate_x"],
        m[:, 0, 2],
    )
    m[:, 1, 2] = torch.where(
        op == GEOMETRIC_OPS.index("translate_y"),
        2 * strength * max_strength["translate_y"],
        m[:, 1, 2],
    )
    sc = op == GEOMETRIC_OPS.index("scale")
    zoom = 1 / (1 + strength * max_strength["scale"])
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


# ---------------------------------------------------------------------------------------------
# the destructive geometric space of AutoAugment-KD (E36, Sec. 4.1 and Fig. 3)
# ---------------------------------------------------------------------------------------------
DESTRUCTIVE_OPS = ("shear_x", "shear_y", "translate_x", "translate_y", "cutout")
#: strengths at M = 10, where each op removes (nearly) all of the image: a shear that moves the
#: top and bottom rows by one image width each way (factor 2 about the centre; only a diagonal
#: band can survive), a shift by the whole image, a cutout square as large as the image
DESTRUCTIVE_STRENGTH = {
    "rotate": 0.0,
    "scale": 0.0,
    "shear_x": 2.0,
    "shear_y": 2.0,
    "translate_x": 1.0,
    "translate_y": 1.0,
}
_AFFINE_OF = tuple(GEOMETRIC_OPS.index(o) if o in GEOMETRIC_OPS else 0 for o in DESTRUCTIVE_OPS)


@dataclass(frozen=True)
class Tau:
    """The draws ``tau ~ T`` of AutoAugment-KD's ``g(x, tau)`` for a batch of ``B`` images.

    ``ops (n_ops, B)``: indices into :data:`DESTRUCTIVE_OPS`, applied in order; ``sign (n_ops, B)``:
    +-1, the direction of a shear or shift; ``where (n_ops, B, 2)`` in [0, 1): a cutout square's
    centre as a fraction of the range that keeps it inside the image; ``magnitude``: the level
    ``M`` in 0..10 shared by every op (RandAugment's one global magnitude).
    """

    ops: torch.Tensor
    sign: torch.Tensor
    where: torch.Tensor
    magnitude: int

    def __post_init__(self) -> None:
        n, b = self.ops.shape if self.ops.ndim == 2 else (None, None)
        if (
            n is None
            or self.sign.shape != (n, b)
            or self.where.shape != (n, b, 2)
            or not 0 <= self.magnitude <= LEVELS
        ):
            raise ValueError(
                f"expected ops and sign (n_ops, B), where (n_ops, B, 2) and 0 <= magnitude <= "
                f"{LEVELS}; got {tuple(self.ops.shape)}, {tuple(self.sign.shape)}, "
                f"{tuple(self.where.shape)}, {self.magnitude}"
            )

    def vector(self) -> torch.Tensor:
        """The paper's ``tau`` (Sec. 3.1): ``(B, 5)``, the magnitude of each op of
        :data:`DESTRUCTIVE_OPS` for each image, zero where the op was not drawn (at most
        ``n_ops`` non-zero entries a row)."""
        b = self.ops.shape[1]
        drawn = torch.zeros(b, len(DESTRUCTIVE_OPS), device=self.ops.device)
        drawn.scatter_(1, self.ops.T, 1.0)
        return drawn * self.magnitude


def sample_tau(b: int, n_ops: int = 2, magnitude: int = 3, seed: int = 0, device="cpu") -> Tau:
    """RandAugment's policy over :data:`DESTRUCTIVE_OPS`: each of ``b`` images draws ``n_ops`` ops
    uniformly (with replacement), a sign each and a cutout position each; seeded on ``device``."""
    if b < 1 or n_ops < 0:
        raise ValueError(f"need b >= 1 and n_ops >= 0, got {b}, {n_ops}")
    g = torch.Generator(device=torch.device(device)).manual_seed(int(seed))
    ops = torch.randint(0, len(DESTRUCTIVE_OPS), (n_ops, b), generator=g, device=device)
    sign = torch.randint(0, 2, (n_ops, b), generator=g, device=device) * 2 - 1
    where = torch.rand(n_ops, b, 2, generator=g, device=device)
    return Tau(ops, sign, where, int(magnitude))


def destructive_augment(x: torch.Tensor, tau: Tau, fill: float = 0.0) -> torch.Tensor:
    """``g(x, tau)`` of AutoAugment-KD (Sec. 3.1) over its geometric space (Sec. 4.1): the ops of
    ``tau`` applied to ``x (B, C, H, W)`` one after the other, at strength ``M / 10`` of
    :data:`DESTRUCTIVE_STRENGTH` (a cutout square of side ``M / 10`` of the image, filled with
    ``fill``; outside the image is 0, the background).

    Exact composition in one resampling: each output pixel is traced back through the ops (last to
    first); a cutout removes it if its position in that op's frame lies in the square. Images
    that no op moves (``M = 0``, or cutouts only) keep their pixels bit-identical.
    """
    if x.ndim != 4 or tau.ops.shape[1:] != (len(x),):
        raise ValueError(
            f"expected images (B, C, H, W) and tau for B images, got {tuple(x.shape)} and "
            f"ops {tuple(tau.ops.shape)}"
        )
    (b, _, h, w), dev = x.shape, x.device
    s = tau.magnitude / LEVELS
    affine_of = torch.tensor(_AFFINE_OF, device=dev)
    # pixel centres in [-1, 1] (grid_sample's align_corners=False), built with elementwise ops
    # only, so that CUDA autocast never rounds the coordinates to bf16 (as it would a matmul)
    centres = [(torch.arange(n, device=dev, dtype=torch.float32) * 2 + 1) / n - 1 for n in (h, w)]
    qy, qx = (t.expand(b, h, w) for t in torch.meshgrid(*centres, indexing="ij"))
    q = torch.stack([qx, qy], -1)  # (B, H, W, 2): x (column), y (row)
    cut = torch.zeros(q.shape[:3], dtype=torch.bool, device=dev)
    moved = torch.zeros(b, dtype=torch.bool, device=dev)
    for k in reversed(range(tau.ops.shape[0])):
        ops = tau.ops[k].to(dev)
        mid = (2 * tau.where[k].to(dev) - 1) * (1 - s)  # the square stays inside the image
        inside = ((q - mid[:, None, None]).abs() < s).all(-1)
        cut |= (ops == DESTRUCTIVE_OPS.index("cutout"))[:, None, None] & inside
        m = _op_matrices(affine_of[ops], tau.sign[k].to(dev) * s, DESTRUCTIVE_STRENGTH)
        moved |= (m != torch.eye(3, device=dev)).flatten(1).any(1)
        a = m[:, None, None]  # (B, 1, 1, 3, 3)
        q = torch.stack([a[..., 0, 0] * q[..., 0] + a[..., 0, 1] * q[..., 1] + a[..., 0, 2],
                         a[..., 1, 0] * q[..., 0] + a[..., 1, 1] * q[..., 1] + a[..., 1, 2]], -1)
    warped = F.grid_sample(x, q, mode="bilinear", padding_mode="zeros", align_corners=False)
    kept = torch.where(moved[:, None, None, None], warped, x)
    return torch.where(cut[:, None], torch.full_like(x, fill), kept)


def destructive_rand_augment(
    x: torch.Tensor, n_ops: int = 2, magnitude: int = 3, seed: int = 0, fill: float = 0.0
) -> torch.Tensor:
    """RandAugment (``n_ops`` ops a image, one magnitude ``M``) in AutoAugment-KD's destructive
    space: :func:`destructive_augment` of ``x`` with :func:`sample_tau` drawn on ``x``'s device."""
    if x.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got {tuple(x.shape)}")
    return destructive_augment(x, sample_tau(len(x), n_ops, magnitude, seed, x.device), fill)
