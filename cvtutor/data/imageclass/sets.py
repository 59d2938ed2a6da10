"""Image sets of the image-classification world, generated on the device and seeded.

Derived and shown in ``notebooks/eccv2020/world_images.ipynb`` (section 2). Every generator takes a
``seed`` and a ``device`` and is bit-identical for a seed on a device; images are float tensors
``(N, C, S, S)`` in ``[0, 1]``, labels ``(N,)`` int64.

- :func:`digits16`: scikit-learn's bundled 8x8 digits upsampled to 16x16 (or 32x32), fixed split.
  Stands for MNIST / SVHN-like digit recognition.
- :func:`shapes_textures`: 32x32 RGB, class = shape x texture, with random colour, scale,
  rotation, position, background clutter and noise. Stands for CIFAR-like object recognition
  (harder than digits); ``fine=True`` gives classes that differ only in a small part (a small
  mark's shape and corner on a common body), standing for fine-grained recognition.
- :func:`ood_images`: procedural out-of-distribution sets (stroke glyphs, near-constant images,
  noise, full-frame textures) at any size and channel count, for the open-set / OOD chapters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SHAPES = ("disc", "square", "triangle", "cross", "ring")
TEXTURES = ("solid", "stripes", "checker", "dots")
PART_SHAPES = SHAPES[:4]
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
OOD_KINDS = ("glyphs", "constant", "noise", "textures")
_CHUNK = 4096  # images rendered at a time (the same for every device, so a seed gives one set)


@dataclass(frozen=True)
class ImageSet:
    """Images ``x (N, C, S, S)`` in [0, 1], labels ``y (N,)`` and the class names."""

    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.x.ndim != 4 or self.y.shape != (len(self.x),):
            raise ValueError(
                f"expected x (N, C, S, S) and y (N,), got {tuple(self.x.shape)}, "
                f"{tuple(self.y.shape)}"
            )

    def __len__(self) -> int:
        return len(self.x)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def to(self, device) -> "ImageSet":
        return ImageSet(self.x.to(device), self.y.to(device), self.classes)

    def subset(self, index: torch.Tensor) -> "ImageSet":
        """The images at ``index`` (an index or boolean mask tensor), same class names."""
        return ImageSet(self.x[index], self.y[index], self.classes)


def _generator(seed: int, device) -> torch.Generator:
    return torch.Generator(device=torch.device(device)).manual_seed(int(seed))


def _check_size(size: int, allowed: tuple[int, ...] | None = None) -> None:
    if allowed is not None and size not in allowed:
        raise ValueError(f"size must be one of {allowed}, got {size}")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")


def digits16(
    size: int = 16, test_fraction: float = 0.25, split_seed: int = 0, device="cpu"
) -> dict[str, ImageSet]:
    """scikit-learn's 1,797 digits as ``(N, 1, size, size)`` images, ``size`` 16 or 32.

    The 8x8 images (values 0..16, scaled to [0, 1]) are upsampled bilinearly on the device. The
    stratified ``train`` / ``test`` split is fixed by ``split_seed`` (that of
    :func:`cvtutor.data.digits.load_digits`). Deterministic: no random draw beyond the split.
    """
    _check_size(size, (16, 32))
    from cvtutor.data.digits import load_digits

    split = load_digits(test_fraction=test_fraction, seed=split_seed)
    out = {}
    for part in ("train", "test"):
        x = split[f"x_{part}"].to(device).reshape(-1, 1, 8, 8)
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
        out[part] = ImageSet(x, split[f"y_{part}"].to(device), tuple(str(d) for d in range(10)))
    return out


def _pixel_grid(size: int, device) -> torch.Tensor:
    """Pixel centres in [-1, 1]: ``(S, S, 2)`` with ``[..., 0]`` = x (column), ``[..., 1]`` = y."""
    t = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xx, yy], -1)


def shape_sdf(name: str, q: torch.Tensor) -> torch.Tensor:
    """Signed distance (negative inside) of a unit-size shape at local coordinates ``q (..., 2)``.

    Shapes have a radius of about 1 so their areas are alike: disc (radius 0.9), square (half
    side 0.8), equilateral triangle (inradius 0.55), cross (arms 0.95 x 0.32), ring (0.42-0.98).
    """
    qx, qy = q[..., 0], q[..., 1]
    if name == "disc":
        return q.norm(dim=-1) - 0.9
    if name == "square":
        return torch.maximum(qx.abs(), qy.abs()) - 0.8
    if name == "triangle":
        ang = math.pi / 2 + 2 * math.pi * torch.arange(3, device=q.device) / 3
        normals = torch.stack([ang.cos(), ang.sin()], -1)  # (3, 2), one per edge
        return (q[..., None, :] * normals).sum(-1).amax(-1) - 0.55
    if name == "cross":
        arm1 = torch.maximum(qx.abs() - 0.95, qy.abs() - 0.32)
        arm2 = torch.maximum(qx.abs() - 0.32, qy.abs() - 0.95)
        return torch.minimum(arm1, arm2)
    if name == "ring":
        return (q.norm(dim=-1) - 0.7).abs() - 0.28
    raise ValueError(f"shape must be one of {SHAPES}, got {name!r}")


def texture_pattern(
    name: str, t: torch.Tensor, omega: torch.Tensor, phase: torch.Tensor
) -> torch.Tensor:
    """A binary pattern in {0, 1} at pixel coordinates ``t (N, S, S, 2)`` (in the shape's frame).

    ``omega (N,)`` is the angular frequency (2 pi / period in pixels), ``phase (N, 2)``.
    solid: 0; stripes: sin(w tx + a) > 0; checker: sin(w tx + a) sin(w ty + b) > 0;
    dots: cos(w tx + a) + cos(w ty + b) > 1.
    """
    ax = omega[:, None, None] * t[..., 0] + phase[:, None, None, 0]
    ay = omega[:, None, None] * t[..., 1] + phase[:, None, None, 1]
    if name == "solid":
        return torch.zeros_like(ax)
    if name == "stripes":
        return (ax.sin() > 0).float()
    if name == "checker":
        return (ax.sin() * ay.sin() > 0).float()
    if name == "dots":
        return (ax.cos() + ay.cos() > 1.0).float()
    raise ValueError(f"texture must be one of {TEXTURES}, got {name!r}")


def _coverage(d: torch.Tensor, px_per_unit: torch.Tensor) -> torch.Tensor:
    """Anti-aliased coverage in [0, 1] of the region ``d < 0`` (``d`` in local units)."""
    return (0.5 - d * px_per_unit).clamp(0, 1)


def _rotate(v: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rotate ``v (N, S, S, 2)`` by ``-theta (N,)`` (into the shape's frame)."""
    c, s = theta.cos()[:, None, None], theta.sin()[:, None, None]
    return torch.stack([c * v[..., 0] + s * v[..., 1], -s * v[..., 0] + c * v[..., 1]], -1)


def _per_class(values: torch.Tensor, names: tuple[str, ...], fn) -> torch.Tensor:
    """``fn(name, mask)`` evaluated per distinct name index in ``values (N,)``, merged by mask."""
    out = None
    for k, name in enumerate(names):
        sel = (values == k)[:, None, None]
        r = fn(name)
        out = torch.where(sel, r, r if out is None else out)
    return out


def _render_shapes(p: dict, size: int, fine: bool, grid: torch.Tensor) -> torch.Tensor:
    """Render one chunk of drawn parameters ``p`` to ``(n, 3, S, S)`` before noise."""
    n = len(p["scale"])
    px = p["scale"][:, None, None] * size / 2  # pixels per local unit
    img = p["bg"][:, :, None, None].expand(n, 3, size, size)
    if p["clutter_r"].shape[1]:  # clutter: small discs behind the object, the nearest one's colour
        cd = (grid[None, None] - p["clutter_xy"][:, :, None, None]).norm(dim=-1) - p["clutter_r"][
            ..., None, None
        ]
        dmin, which = cd.min(1)
        rgb = torch.gather(p["clutter_rgb"], 1, which.reshape(n, -1, 1).expand(-1, -1, 3))
        cov = (0.5 - dmin * size / 2).clamp(0, 1)[:, None]
        img = torch.lerp(img, rgb.transpose(1, 2).reshape(n, 3, size, size), cov)
    q = (
        _rotate(grid[None] - p["centre"][:, None, None], p["theta"])
        / p["scale"][:, None, None, None]
    )
    if fine:
        d = shape_sdf("square", q)
    else:
        d = _per_class(p["shape"], SHAPES, lambda name: shape_sdf(name, q))
    tex = _per_class(
        p["texture"],
        TEXTURES,
        lambda name: texture_pattern(name, q * px[..., None], p["omega"], p["phase"]),
    )
    fg = torch.lerp(p["col_a"][:, :, None, None], p["col_b"][:, :, None, None], tex[:, None])
    img = torch.lerp(img, fg, _coverage(d, px)[:, None])
    if fine:  # the small part: a shape of radius 0.32 at one corner of the body
        sgn = torch.tensor([[-1, -1], [1, -1], [-1, 1], [1, 1]], device=q.device, dtype=q.dtype)
        off = 0.45 * sgn[p["corner"]]
        qp = (q - off[:, None, None]) / 0.32
        dp = _per_class(p["part"], PART_SHAPES, lambda name: shape_sdf(name, qp))
        img = torch.lerp(
            img, p["col_part"][:, :, None, None].expand_as(img), _coverage(dp, px * 0.32)[:, None]
        )
    return img


def shapes_textures(
    n: int,
    size: int = 32,
    seed: int = 0,
    device="cpu",
    fine: bool = False,
    n_shapes: int = 4,
    n_textures: int = 4,
    clutter: int = 3,
    noise: float = 0.03,
    labels: torch.Tensor | None = None,
) -> ImageSet:
    """``n`` RGB images ``(n, 3, size, size)`` of ``ShapesTextures`` (or its fine variant).

    Coarse (``fine=False``): class ``y = shape * n_textures + texture`` over the first ``n_shapes``
    of :data:`SHAPES` and ``n_textures`` of :data:`TEXTURES` (4 x 4 = 16 by default, 5 x 4 = 20 at
    most). Fine (``fine=True``): every object is a square body whose texture is a nuisance; class
    ``y = part * 4 + corner`` is the shape (of :data:`PART_SHAPES`) and the corner of a small mark
    on it (16 classes); rotation is limited to +-20 degrees so corners stay corners. Nuisances,
    drawn per image: centre (+-0.25 of the half-width), scale (0.45-0.7), rotation, colours (a
    bright body colour in [0.65, 1]^3, the pattern's 0.25-0.35 darker in each channel, a dark
    background in [0, 0.3]^3: the object is brighter than the scene, as a digit is), texture period
    (3.5-5 px) and phase, ``clutter`` small background discs, and Gaussian noise of std ``noise``.
    Labels are balanced: ``n // n_classes`` or one more each; ``labels (n,)`` imposes them instead,
    with the same nuisances as the drawn ones (so two calls with one seed and different labels show
    the same scenes with other classes).
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    _check_size(size)
    if not (1 <= n_shapes <= len(SHAPES) and 1 <= n_textures <= len(TEXTURES)):
        raise ValueError(
            f"n_shapes must be in 1..{len(SHAPES)} and n_textures in 1..{len(TEXTURES)}, "
            f"got {n_shapes}, {n_textures}"
        )
    if clutter < 0 or noise < 0:
        raise ValueError(f"clutter and noise must be non-negative, got {clutter}, {noise}")
    g = _generator(seed, device)
    dev = torch.device(device)

    def u(*shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(*shape, generator=g, device=dev)

    if fine:
        classes = tuple(f"{s}@{c}" for s in PART_SHAPES for c in CORNERS)
    else:
        classes = tuple(f"{s}/{t}" for s in SHAPES[:n_shapes] for t in TEXTURES[:n_textures])
    k = len(classes)
    y = (torch.arange(n, device=dev) % k)[torch.randperm(n, generator=g, device=dev)]
    if labels is not None:
        if labels.shape != (n,) or not bool(((labels >= 0) & (labels < k)).all()):
            raise ValueError(
                f"labels must be (n,) = ({n},) integers in [0, {k}), got {tuple(labels.shape)}"
            )
        y = labels.to(dev, torch.long)
    col_a = u(n, 3, lo=0.65, hi=1.0)
    p = {
        "centre": u(n, 2, lo=-0.25, hi=0.25),
        "scale": u(n, lo=0.45, hi=0.7),
        "theta": u(n, lo=-math.pi / 9, hi=math.pi / 9) if fine else u(n, hi=2 * math.pi),
        "col_a": col_a,
        "col_b": col_a - u(n, 3, lo=0.25, hi=0.35),
        "bg": u(n, 3, hi=0.3),
        "omega": 2 * math.pi / u(n, lo=3.5, hi=5.0),
        "phase": u(n, 2, hi=2 * math.pi),
        "clutter_xy": u(n, clutter, 2, lo=-1, hi=1),
        "clutter_r": u(n, clutter, lo=0.06, hi=0.12),
        "clutter_rgb": u(n, clutter, 3),
    }
    if fine:
        p["part"], p["corner"] = y // 4, y % 4
        p["texture"] = torch.randint(0, len(TEXTURES), (n,), generator=g, device=dev)
        p["col_part"] = col_a - 0.6
    else:
        p["shape"], p["texture"] = y // n_textures, y % n_textures
    grid = _pixel_grid(size, dev)
    chunks = []
    for i in range(0, n, _CHUNK):
        img = _render_shapes({key: v[i : i + _CHUNK] for key, v in p.items()}, size, fine, grid)
        if noise > 0:
            img = img + noise * torch.randn(img.shape, generator=g, device=dev)
        chunks.append(img.clamp(0, 1))
    return ImageSet(torch.cat(chunks), y, classes)


def _segment_distance(pts: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance from ``pts (S, S, 2)`` to segments ``a, b (N, K, 2)``: ``(N, K, S, S)``."""
    ab = (b - a)[:, :, None, None]
    ap = pts[None, None] - a[:, :, None, None]
    h = ((ap * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-8)).clamp(0, 1)
    return (ap - h[..., None] * ab).norm(dim=-1)


def ood_images(
    kind: str, n: int, size: int = 32, channels: int = 3, seed: int = 0, device="cpu"
) -> torch.Tensor:
    """``n`` out-of-distribution images ``(n, channels, size, size)`` in [0, 1] of one ``kind``.

    ``glyphs``: a bright 3-stroke polyline (thickness 0.08-0.14 of the half-width) on a dark
    background, digit-like but no digit; ``constant``: one random colour plus noise of std 0.02;
    ``noise``: Gaussian noise N(0.5, 0.25^2), clamped; ``textures``: a full-frame stripes / checker
    / dots pattern (period 3.5-8 px, random rotation) in two random colours, no object.
    They stand for the OOD sets of the open-set papers (e.g. Omniglot / noise / LSUN against
    MNIST or CIFAR): inputs no known class explains.
    """
    if kind not in OOD_KINDS:
        raise ValueError(f"kind must be one of {OOD_KINDS}, got {kind!r}")
    if n < 1 or channels not in (1, 3):
        raise ValueError(f"n must be positive and channels 1 or 3, got {n}, {channels}")
    _check_size(size)
    g = _generator(seed, device)
    dev = torch.device(device)

    def u(*shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(*shape, generator=g, device=dev)

    grid = _pixel_grid(size, dev)
    if kind == "constant":
        x = u(n, channels)[:, :, None, None] + 0.02 * torch.randn(
            n, channels, size, size, generator=g, device=dev
        )
    elif kind == "noise":
        x = 0.5 + 0.25 * torch.randn(n, channels, size, size, generator=g, device=dev)
    elif kind == "glyphs":
        pts = u(n, 4, 2, lo=-0.6, hi=0.6)
        width = u(n, lo=0.08, hi=0.14)
        d = _segment_distance(grid, pts[:, :-1], pts[:, 1:]).amin(1) - width[:, None, None]
        cov = (0.5 - d * size / 2).clamp(0, 1)[:, None]
        fg, bg = u(n, channels, lo=0.6, hi=1.0), u(n, channels, hi=0.3)
        x = bg[:, :, None, None] * (1 - cov) + fg[:, :, None, None] * cov
    else:  # textures
        t = _rotate(grid[None].expand(n, -1, -1, -1), u(n, hi=2 * math.pi)) * size / 2
        which = torch.randint(1, len(TEXTURES), (n,), generator=g, device=dev)
        omega, phase = 2 * math.pi / u(n, lo=3.5, hi=8.0), u(n, 2, hi=2 * math.pi)
        tex = _per_class(which, TEXTURES, lambda name: texture_pattern(name, t, omega, phase))[
            :, None
        ]
        a, b = u(n, channels), u(n, channels)
        x = a[:, :, None, None] * (1 - tex) + b[:, :, None, None] * tex
    return x.clamp(0, 1)
