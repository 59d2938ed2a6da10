"""Shape scenes as tensors, for training a detector on any device.

Scenes like those of :func:`cvtutor.data.detection_sim.random_scenes` (disjoint boxes,
log-uniform sizes, aspect ratio in [1/2, 2]), on a small square canvas, generated with torch *on
the device that trains*: the ground truth for all images at once, the images a batch at a time,
so a GPU never waits for a loader.

Class k is drawn as shape ``SHAPES[k-1]`` (square, disc, triangle, diamond, cross) filling its
box. Unlike :func:`~cvtutor.data.detection_sim.render_scene`, the colour of each object is random
(so the class must be read from the *shape*, and small objects are genuinely ambiguous), the
background grey level varies per image, and each batch gets fresh Gaussian pixel noise. The shapes
are hard-edged primitives of the 2-D rasteriser :mod:`cvtutor.data.raster`
(:func:`shape_primitives`).

>>> scenes = shape_scenes(100, size=64, seed=0)          # GT of 100 images, as tensors
>>> images = scenes.render(torch.arange(8), step=0)       # (8, 3, 64, 64) in [0, 1]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from cvtutor.data.detection_sim import SHAPES
from cvtutor.data.raster import (BOX, ELLIPSE, POLYGON, Primitives, concat, primitives, render,
                                 signed_distance)


@dataclass(frozen=True)
class ShapeScenes:
    """``n`` scenes of at most ``m`` objects each, padded: ``boxes`` (n, m, 4) ``[x, y, w, h]`` in
    pixels, ``labels`` (n, m) class indices 0..C-1, ``valid`` (n, m) bool, ``colors`` (n, m, 3),
    ``background`` (n,) grey level; ``gt`` is the same ground truth as a frame (image ids 1..n,
    category ids 1..C) for the metrics; ``size`` the side of the square images."""

    boxes: torch.Tensor
    labels: torch.Tensor
    valid: torch.Tensor
    colors: torch.Tensor
    background: torch.Tensor
    gt: pd.DataFrame
    size: int
    n_classes: int
    noise: float = 0.04
    seed: int = 0

    def __len__(self) -> int:
        return len(self.boxes)

    def to(self, device: torch.device | str) -> "ShapeScenes":
        t = {k: getattr(self, k).to(device) for k in ("boxes", "labels", "valid", "colors", "background")}
        return ShapeScenes(**t, gt=self.gt, size=self.size, n_classes=self.n_classes, noise=self.noise, seed=self.seed)

    def render(self, index: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """The images of scenes ``index`` (B,) as a (B, 3, size, size) tensor on the scenes' device.
        ``step`` seeds the pixel noise (``None``: no noise), so a batch is a function of the step."""
        index = index.to(self.boxes.device)
        images = render_shapes(self.boxes[index], self.labels[index], self.valid[index], self.colors[index],
                               self.background[index], self.size)
        if step is not None and self.noise > 0:
            g = torch.Generator(device=images.device).manual_seed(self.seed * 1_000_003 + int(step))
            noise = torch.randn(images.shape, generator=g, device=images.device)
            images = (images + self.noise * noise).clamp(0.0, 1.0)
        return images


def shape_scenes(n_images: int, size: int = 64, n_classes: int = 5, min_objects: int = 1, max_objects: int = 6,
                 min_side: float = 6.0, max_side: float | None = None, margin: float = 2.0, noise: float = 0.04,
                 seed: int = 0, device: torch.device | str = "cpu") -> ShapeScenes:
    """``n_images`` random scenes on a ``size`` x ``size`` canvas, generated on ``device``.

    Each image wants ``min_objects..max_objects`` objects; candidate boxes (side log-uniform in
    [``min_side``, ``max_side``], default ``size / 2``; aspect ratio log-uniform in [1/2, 2]) are
    drawn for all images at once and accepted, in turn, when they keep ``margin`` pixels from the
    boxes already placed (a crowded image may end with fewer objects). Colours are random.
    """
    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    if not 1 <= n_classes <= len(SHAPES):
        raise ValueError(f"n_classes must be in [1, {len(SHAPES)}] (one shape per class), got {n_classes}")
    if size < 8:
        raise ValueError(f"size must be >= 8 pixels, got {size}")
    if not 1 <= min_objects <= max_objects:
        raise ValueError(f"need 1 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
    max_side = size / 2 if max_side is None else max_side
    if not 0 < min_side <= max_side <= size - 2:
        raise ValueError(f"need 0 < min_side <= max_side <= size - 2, got {min_side}, {max_side} for size {size}")
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(seed)

    def uniform(*shape: int, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(shape, generator=g, device=device)

    n, m, k = n_images, max_objects, 20 * max_objects
    wanted = torch.randint(min_objects, max_objects + 1, (n,), generator=g, device=device)
    side = uniform(n, k, lo=float(np.log(min_side)), hi=float(np.log(max_side))).exp()
    ratio = uniform(n, k, lo=float(np.log(0.5)), hi=float(np.log(2.0))).exp().sqrt()
    w, h = (side * ratio).clamp(max=size - 2), (side / ratio).clamp(max=size - 2)
    cand = torch.stack([uniform(n, k) * (size - w), uniform(n, k) * (size - h), w, h], -1)   # (n, k, 4)
    cand_labels = torch.randint(0, n_classes, (n, k), generator=g, device=device)
    boxes = torch.zeros(n, m, 4, device=device)
    labels = torch.zeros(n, m, dtype=torch.long, device=device)
    valid = torch.zeros(n, m, dtype=torch.bool, device=device)
    count = torch.zeros(n, dtype=torch.long, device=device)
    rows = torch.arange(n, device=device)
    for j in range(k):
        c = cand[:, j]                                                          # (n, 4)
        lo = torch.maximum(c[:, None, :2] - margin, boxes[..., :2])
        hi = torch.minimum(c[:, None, :2] + c[:, None, 2:] + margin, boxes[..., :2] + boxes[..., 2:])
        overlaps = ((hi - lo) > 0).all(-1) & valid                              # (n, m)
        ok = ~overlaps.any(1) & (count < wanted)
        r, slot = rows[ok], count[ok]
        boxes[r, slot], labels[r, slot], valid[r, slot] = c[ok], cand_labels[ok, j], True
        count += ok.long()
    background = uniform(n, lo=0.6, hi=0.95)
    colors = random_colors(uniform(n, m), uniform(n, m, lo=0.25, hi=0.55))
    return ShapeScenes(boxes, labels, valid, colors, background, gt_frame(boxes, labels, valid), size, n_classes,
                       noise, seed)


def gt_frame(boxes: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> pd.DataFrame:
    """The padded ground truth as a frame of :data:`~cvtutor.metrics.detection.GT_COLUMNS`
    (image ids 1..n, category ids 1..C, GT ids 1..N in image order)."""
    img, slot = np.nonzero(valid.cpu().numpy())
    b = boxes.cpu().numpy().astype(np.float64)[img, slot]
    return pd.DataFrame({"id": np.arange(1, len(img) + 1), "image_id": img + 1,
                         "category_id": labels.cpu().numpy()[img, slot] + 1,
                         "x": b[:, 0], "y": b[:, 1], "w": b[:, 2], "h": b[:, 3], "iscrowd": 0})


def random_colors(hue: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Saturated colours (HSV with S = 1) of the given hue and brightness, shape (..., 3). With
    brightness <= 0.55 every channel is below the lightest background's 0.6: objects stand out."""
    k = (hue[..., None] * 6 + torch.tensor([5.0, 3.0, 1.0], device=hue.device)) % 6
    rgb = 1 - torch.minimum(k, 4 - k).clamp(0, 1)
    return rgb * value[..., None]


def shape_primitives(boxes: torch.Tensor, labels: torch.Tensor,
                     valid: torch.Tensor | None = None) -> Primitives:
    """The objects as :mod:`~cvtutor.data.raster` primitives, two slots per object (B, 2M): slot m
    is object m's shape inscribed in its box (square: a box, disc: an ellipse, triangle (apex up)
    and diamond: polygons, cross: its vertical bar of width 0.34 w), slot M + m the cross's
    horizontal bar of height 0.34 h (invalid for the other shapes). The same shapes as
    :func:`cvtutor.data.detection_sim.render_scene`."""
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or labels.shape != boxes.shape[:2]:
        raise ValueError(f"need boxes (B, M, 4) and labels (B, M), "
                         f"got {tuple(boxes.shape)}, {tuple(labels.shape)}")
    valid = torch.ones_like(labels, dtype=torch.bool) if valid is None else valid
    boxes = boxes.float()
    half = boxes[..., 2:] / 2                                                   # (B, M, 2)
    center = boxes[..., :2] + half
    k = labels % len(SHAPES)
    kind = torch.tensor([BOX, ELLIPSE, POLYGON, POLYGON, BOX], device=boxes.device)[k]
    hx, hy, zero = half[..., 0], half[..., 1], torch.zeros_like(half[..., 0])
    def polygon(*corners: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:     # (B, M, 4, 2)
        return torch.stack([torch.stack(c, -1) for c in corners], -2)

    triangle = polygon((zero, -hy), (hx, hy), (-hx, hy), (-hx, hy))          # apex up (y down)
    diamond = polygon((zero, -hy), (hx, zero), (zero, hy), (-hx, zero))
    points = torch.where((k == 2)[..., None, None], triangle, diamond)
    arm = torch.tensor([0.34, 1.0], device=boxes.device)
    params = torch.cat([torch.where((k == 4)[..., None], half * arm, half), zero[..., None]], -1)
    bar = torch.cat([half * arm.flip(0), zero[..., None]], -1)
    return concat([primitives(kind, center, params=params, points=points, valid=valid),
                   primitives("box", center, params=bar, points=points, valid=valid & (k == 4))])


def shape_masks(boxes: torch.Tensor, labels: torch.Tensor, size: int) -> torch.Tensor:
    """(B, M, size, size) bool masks: class k's shape inscribed in each box, the pixels whose centre
    it contains (the union of the two primitives of :func:`shape_primitives`)."""
    sdf = signed_distance(shape_primitives(boxes, labels), size, size)
    m = boxes.shape[1]
    return (sdf[:, :m] <= 0) | (sdf[:, m:] <= 0)


def render_shapes(boxes: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor,
                  colors: torch.Tensor, background: torch.Tensor, size: int) -> torch.Tensor:
    """Paint the valid objects of each scene over its grey background: (B, 3, size, size) in [0, 1],
    hard-edged (:func:`cvtutor.data.raster.render` with ``aa = 0``). The objects are disjoint, so a
    pixel is background + Σ_m mask_m (colour_m - background)."""
    if boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be (B, M, 4) [x, y, w, h], got shape {tuple(boxes.shape)}")
    b, m = labels.shape
    prims = shape_primitives(boxes, labels, valid)
    instance = torch.arange(m, device=boxes.device).repeat(2).expand(b, -1)
    bg = background.float()[:, None].expand(-1, 3)
    return render(prims, colors.float().repeat(1, 2, 1), (size, size), bg, instance=instance,
                  n_instances=m, aa=0).rgb
