"""iShapes: one input distribution, many tasks (a mini-Taskonomy for side-tuning, E41).

Derived in ``notebooks/eccv2020/side_tuning.ipynb`` (section 3). Each image ``(3, S, S)`` holds
1-3 shapes of the image-classification world (:func:`~cvtutor.data.imageclass.sets.shape_sdf`:
disc, square, triangle) in one of four palette colours, over a faint sinusoidal grating of one of
four orientations, plus Gaussian noise. Every target is computed by the generator, so the tasks
share one input and differ in how much a network pre-trained on the *shape* helps:

- ``shape``: class of the largest object; ``shape_map``: per-pixel class ``(S, S)``, 0 the
  background, ``1 + k`` shape ``k`` (the base network's pre-training task);
- ``segmentation``: foreground mask ``(1, S, S)``; ``edges``: its Sobel magnitude ``(1, S, S)``;
- ``depth``: distance from each pixel inside an object to the nearest boundary, in pixels / 4,
  clipped to [0, 1] (``(1, S, S)``; a distance-transform stand-in for Taskonomy's depth);
- ``count``: number of objects minus one (3 classes); ``colour``: the largest object's colour;
- ``orientation``: the background grating's orientation (4 classes, the base ignores it);
- ``denoise``: the clean rendering ``(3, S, S)`` (the input is the noisy one);
- ``position``: the largest object's centre in [-1, 1]^2 ``(2,)``.

Seeded and bit-identical for a seed on a device; generated batched on the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cvtutor.data.imageclass.sets import _pixel_grid, shape_sdf

ISHAPES = ("disc", "square", "triangle")
PALETTE = torch.tensor([[0.9, 0.2, 0.2], [0.2, 0.85, 0.25], [0.25, 0.35, 0.95], [0.95, 0.85, 0.2]])
COLOURS = ("red", "green", "blue", "yellow")
ORIENTATIONS = (0.0, 45.0, 90.0, 135.0)  # degrees of the grating's wave vector
MAX_OBJECTS = 3
SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


@dataclass(frozen=True)
class IShapes:
    """``x (N, 3, S, S)`` noisy images in [0, 1] and ``targets``: a dict of task name to tensor
    (see the module docstring for each task's shape)."""

    x: torch.Tensor
    targets: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: torch.Tensor) -> IShapes:
        return IShapes(self.x[index], {k: v[index] for k, v in self.targets.items()})


def sobel_magnitude(mask: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude ``(N, 1, S, S)`` of ``mask (N, 1, S, S)``, replicate padding,
    divided by 4 (a unit step gives 1), as ``skimage.filters.sobel`` up to its own scaling."""
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"expected mask (N, 1, S, S), got {tuple(mask.shape)}")
    k = torch.stack([SOBEL, SOBEL.T])[:, None].to(mask)
    g = F.conv2d(F.pad(mask, (1, 1, 1, 1), mode="replicate"), k)
    return g.pow(2).sum(1, keepdim=True).sqrt() / 4


def ishapes(n: int, size: int = 24, seed: int = 0, device="cpu", noise: float = 0.1,
            contrast: float = 0.12) -> IShapes:
    """``n`` iShapes images of ``size`` px and their targets (module docstring).

    Objects: count uniform in 1..3, class uniform over :data:`ISHAPES`, colour over
    :data:`PALETTE` (+-0.05 jitter), radius 0.25-0.42 of the half-width, centred
    in distinct quadrants (+-0.1 jitter),
    rotation uniform; drawn from small to large so the largest object is on top. Background: grey
    0.35-0.5 plus a grating of amplitude ``contrast`` and period 4-6 px at one of
    :data:`ORIENTATIONS`. Gaussian noise of std ``noise`` makes ``x``; ``denoise`` is the clean
    image."""
    if n < 1 or size < 8:
        raise ValueError(f"need n >= 1 and size >= 8, got n={n}, size={size}")
    if noise < 0 or contrast < 0:
        raise ValueError(f"noise and contrast must be non-negative, got {noise}, {contrast}")
    dev = torch.device(device)
    g = torch.Generator(device=dev).manual_seed(int(seed))

    def u(*shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(*shape, generator=g, device=dev)

    m = MAX_OBJECTS
    count = torch.randint(1, m + 1, (n,), generator=g, device=dev)
    valid = torch.arange(m, device=dev)[None] < count[:, None]  # (n, m)
    radius = torch.where(valid, u(n, m, lo=0.25, hi=0.42), torch.zeros(n, m, device=dev))
    radius = torch.sort(radius, dim=1).values  # absent (0) first, then small to large: the
    valid = radius > 0  # largest object is the last slot, drawn last (on top)
    kind = torch.randint(0, len(ISHAPES), (n, m), generator=g, device=dev)
    colour = torch.randint(0, len(PALETTE), (n, m), generator=g, device=dev)
    rgb = PALETTE.to(dev)[colour] + u(n, m, 3, lo=-0.05, hi=0.05)
    # one object a quadrant (random distinct quadrants, jittered): objects rarely overlap
    quad = torch.argsort(torch.rand(n, 4, generator=g, device=dev), dim=1)[:, :m]
    corners = torch.tensor([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]], device=dev)
    centre = corners[quad] + u(n, m, 2, lo=-0.1, hi=0.1)
    theta = u(n, m, hi=2 * math.pi)
    orient = torch.randint(0, len(ORIENTATIONS), (n,), generator=g, device=dev)
    grey = u(n, lo=0.35, hi=0.5)
    period = u(n, lo=4.0, hi=6.0)
    phase = u(n, hi=2 * math.pi)
    eps = noise * torch.randn(n, 3, size, size, generator=g, device=dev)

    grid = _pixel_grid(size, dev)  # (S, S, 2) in [-1, 1]
    ang = torch.deg2rad(torch.tensor(ORIENTATIONS, device=dev))[orient]
    wave_dir = torch.stack([ang.cos(), ang.sin()], -1)[:, None, None]  # (n, 1, 1, 2)
    px = (grid[None] * (size / 2) * wave_dir).sum(-1)  # (n, S, S): pixels along the wave
    wave = torch.sin(2 * math.pi * px / period[:, None, None] + phase[:, None, None])
    img = (grey[:, None, None] + contrast * wave)[:, None].expand(n, 3, size, size).clone()
    q = grid[None, None] - centre[:, :, None, None]  # (n, m, S, S, 2)
    c, s = theta.cos()[..., None, None], theta.sin()[..., None, None]
    q = torch.stack([c * q[..., 0] + s * q[..., 1], -s * q[..., 0] + c * q[..., 1]], -1)
    q = q / radius.clamp_min(1e-3)[..., None, None, None]
    sdf = torch.stack([shape_sdf(name, q) for name in ISHAPES])  # (3, n, m, S, S), local units
    sdf = sdf.gather(0, kind[None, :, :, None, None].expand(1, n, m, size, size))[0]
    dist_px = sdf * radius[..., None, None] * (size / 2)  # approx. signed distance in pixels
    dist_px = torch.where(valid[..., None, None], dist_px, torch.full_like(dist_px, 1e3))
    cover = (0.5 - dist_px).clamp(0, 1)  # (n, m, S, S) anti-aliased coverage
    for k in range(m):  # back to front: m = 3 layers, not a loop over samples
        a = cover[:, k, None]
        img = img * (1 - a) + rgb[:, k, :, None, None] * a
    mask = (cover.amax(1, keepdim=True) >= 0.5).float()
    shape_map = torch.zeros(n, size, size, dtype=torch.long, device=dev)
    for k in range(m):  # the top-most object covering a pixel names it
        shape_map = torch.where(cover[:, k] >= 0.5, kind[:, k, None, None] + 1, shape_map)
    inside = (-dist_px).amax(1, keepdim=True).clamp(0, 4) / 4
    last = torch.full((n,), m - 1, device=dev)
    targets = {
        "shape": kind[torch.arange(n, device=dev), last],
        "shape_map": shape_map,
        "segmentation": mask,
        "edges": sobel_magnitude(mask),
        "depth": inside,
        "count": count - 1,
        "colour": colour[torch.arange(n, device=dev), last],
        "orientation": orient,
        "denoise": img.clamp(0, 1),
        "position": centre[:, -1],
    }
    return IShapes((img + eps).clamp(0, 1), targets)
