"""PointContrast: Unsupervised Pre-training for 3D Point Cloud Understanding (Xie et al., ECCV 2020).

The chapter ``notebooks/eccv2020/pointcontrast.ipynb`` derives and runs it. Algorithm 1 (garbled in
the paper's text; reconstructed from Sect. 3.3): for each scene ``x``, make two partial views
``x¹, x²`` aligned in world coordinates, compute the correspondences ``M = {(i, j): ‖x¹_i − x²_j‖ <
r}`` *before* the views move, draw two independent rigid transforms ``T₁, T₂`` (rotation, scale,
translation), run one fully-convolutional network on ``T₁(x¹)`` and ``T₂(x²)`` and pull the
features of matched points together, push the others apart with

* the **hardest-contrastive loss** of FCGF (Sect. 3.4, first display), margins ``m_p = 0.1``,
  ``m_n = 1.4`` on L2-normalised features, the hardest negative among a random subset ``𝒩``;
* **PointInfoNCE** (Sect. 3.4, second display): cross-entropy over the ``|𝒫| × |𝒫|`` similarity
  matrix of the matched features with temperature ``τ`` (not given in the paper; the official code's
  ``nceT = 0.07``).

Then the pre-trained weights initialise semantic segmentation (Sect. 4), against the same network
trained from scratch. Stand-ins, stated in the chapter: the scenes are the 3-D shape world's rooms
(:func:`cvtutor.data.shapes3d.make_rooms`); the sparse residual U-Net (SR-UNet, 38M parameters,
MinkowskiEngine) is a small dense 3-D U-Net (:class:`cvtutor.nn.unet.UNet`) on a voxel grid
of fixed metric voxel size, its output sampled back to the points (:class:`VoxelUNet`); rotations
are about the gravity axis (the official code draws a random axis; our grid is flat).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree
from torch import nn

from cvtutor import report
from cvtutor.data.geometry.rotations import so3_exp
from cvtutor.data.shapes3d import make_rooms
from cvtutor.data.shapes3d import transforms as T
from cvtutor.data.shapes3d.shapes import (
    MAX_SLOTS,
    ROOM_SEMANTICS,
    ShapeBatch,
    axis_rotation,
)
from cvtutor.metrics.segmentation import confusion_matrix, iou_per_class
from cvtutor.nn.contrastive import info_nce
from cvtutor.nn.pointnets import sample_grid_features, scatter_mean
from cvtutor.nn.unet import UNet
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import fit

N_CLASSES = len(ROOM_SEMANTICS)


# ------------------------------------------------------------------------------------------------
# Paper numbers
# ------------------------------------------------------------------------------------------------
def _fractions(ref: str, metric: str, rows: dict[str, tuple[float, float, float]],
               cols: tuple[str, ...], note: str = "") -> report.PaperTable:
    return report.PaperTable(ref, metric, {f"{r} {c}": v for r, vs in rows.items()
                                           for c, v in zip(cols, vs)}, better="higher", note=note)


PAPER = {
    "table1": report.PaperTable(
        "Table 1", "relative gain of PointContrast over training from scratch (points)",
        {"S3DIS mIoU": 2.7, "SUN RGB-D mAP@0.5": 3.1, "ScanNet mIoU": 1.9, "ScanNet mAP@0.5": 2.6,
         "ShapeNet acc. (1%)": 4.0, "ShapeNetPart mIoU (1%)": 2.2, "Synthia4D mIoU": 3.3},
        better="higher",
        note="Sect. 4.4's text says +2.3 for Synthia4D; Table 6 gives 79.8 → 82.6 (HC, +2.8) and "
             "→ 83.1 (NCE, +3.3): the text's number matches neither.",
    ),
    "table2": _fractions("Table 2 (top)", "ShapeNet classification accuracy (%)",
                         {"scratch": (62.2, 77.9, 85.1), "HC": (66.2, 79.0, 85.7),
                          "NCE": (65.8, 78.8, 85.7)}, ("1%", "10%", "100%"),
                         note="Training-data fractions for fine-tuning, the same as ours."),
    "table3": _fractions("Table 3", "ShapeNetPart segmentation mIoU (%)",
                         {"scratch": (71.8, 79.3, 84.7), "HC": (74.0, 79.9, 85.1),
                          "NCE": (73.1, 79.9, 85.1)}, ("1%", "5%", "100%")),
    "table4": report.PaperTable("Table 4", "S3DIS Area 5 mIoU (%)",
                                {"scratch": 68.2, "HC": 70.9, "NCE": 70.3}, better="higher"),
    "table7": report.PaperTable("Table 7", "ScanNet validation mIoU (%)",
                                {"scratch": 72.2, "HC": 73.3, "NCE": 74.1}, better="higher"),
    "holistic": report.PaperTable(
        "Sect. 4.6", "S3DIS mIoU (%) after pre-training on holistic scenes",
        {"scratch": 68.17, "holistic": 68.35, "multi-view HC": 70.9, "multi-view NCE": 70.3},
        better="higher",
        note="Holistic: both 'views' are the same full reconstruction under independent T₁, T₂.",
    ),
}


# ------------------------------------------------------------------------------------------------
# Views, correspondences, transforms (Algorithm 1)
# ------------------------------------------------------------------------------------------------
def _instances(rooms: ShapeBatch, first: int, count: int, width: int) -> tuple[ShapeBatch, torch.Tensor]:
    """The slots of instances ``first .. first + count - 1`` of every room as separate shapes of
    ``width`` slots, ``(B·count,)`` of them, and which of them have a valid slot."""
    B = len(rooms)
    inst = first + torch.arange(count)
    member = (rooms.instance[:, None, :] == inst[None, :, None]) & rooms.valid[:, None]  # B, K, P
    order = torch.argsort((~member).to(torch.int8), dim=2, stable=True)[..., :width]
    keep = member.gather(2, order).reshape(B * count, width)
    order = order.reshape(B * count, width)
    room = torch.arange(B).repeat_interleave(count)

    def take(x):
        return x[room[:, None], order]

    sb = ShapeBatch(types=take(rooms.types), params=take(rooms.params), rot=take(rooms.rot),
                    trans=take(rooms.trans), part=take(rooms.part), valid=take(rooms.valid) & keep,
                    label=torch.zeros(B * count, dtype=torch.long), instance=take(rooms.instance))
    return sb, keep.any(1)


def make_scenes(n: int, n_points: int, generator: torch.Generator, object_share: float = 0.5
                ) -> dict[str, torch.Tensor]:
    """``n`` rooms of the 3-D shape world (:func:`cvtutor.data.shapes3d.make_rooms`, 4–8
    objects), each as ``n_points`` surface samples: ``points (n, N, 3)`` (metres, z up, floor at
    ``z = 0``), ``normals`` and ``label (n, N)`` (the semantic class, :data:`ROOM_SEMANTICS`:
    floor, wall and ten object categories). Floor and walls get ``1 − object_share`` of the
    samples (area-uniform over their union), the objects the rest (area-uniform within each
    object, the same count per object): a denser sampling of the objects than a uniform one,
    which would leave them about 6 % of the points. Each object is sampled on its own (its parts
    are rejected only against its own parts: objects do not touch each other, and the 1 cm by
    which they sink into the floor faces down, unseen by any camera)."""
    rooms = make_rooms(n, generator, n_objects=(4, 8))
    n_struct = round((1 - object_share) * n_points)
    # the floor and the four walls (instances 0-4, the first five slots) as one shape a room
    structure = ShapeBatch(**{f.name: getattr(rooms, f.name)[:, :5] if f.name != "label"
                              else rooms.label for f in fields(ShapeBatch)})
    if not bool((structure.instance == torch.arange(5)).all()):
        raise RuntimeError("make_rooms no longer puts the floor and walls in its first five slots")
    s = structure.sample(n_struct, generator)
    objs, ok = _instances(rooms, 5, 8, MAX_SLOTS)
    rest = n_points - n_struct
    k_of = ok.reshape(n, 8).sum(1)  # objects per room
    room_of = torch.arange(n).repeat_interleave(8)
    op, on, ol = [None] * n, [None] * n, [None] * n
    for k in k_of.unique().tolist():  # rooms with k objects: rest / k samples per object
        sel = ok & (k_of[room_of] == k)
        o = objs[sel].sample(math.ceil(rest / k), generator)
        rooms_k = room_of[sel].reshape(-1, k)[:, 0]
        for r, b in enumerate(rooms_k.tolist()):
            pick = torch.randperm(k * o["points"].shape[1], generator=generator)[:rest]
            op[b] = o["points"][r * k:(r + 1) * k].reshape(-1, 3)[pick]
            on[b] = o["normals"][r * k:(r + 1) * k].reshape(-1, 3)[pick]
            ol[b] = o["part"][r * k:(r + 1) * k].reshape(-1)[pick]
    pts = [s["points"], torch.stack(op)]
    nrm = [s["normals"], torch.stack(on)]
    lab = [s["part"], torch.stack(ol)]
    return {"points": torch.cat(pts, 1), "normals": torch.cat(nrm, 1), "label": torch.cat(lab, 1)}


def _cameras(points: torch.Tensor, generator: torch.Generator, k: int, spread: float
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A first camera per scene inside the room (60 % of its extent, 0.8–1.2 m up) and ``k``
    second cameras per scene nearby (``spread`` m) turned by up to ±75° in yaw; each looks 25°
    down. Returns ``eye1 (B, 3)``, ``eye2 (B, k, 3)``, and their targets ``(B, 3)``, ``(B, k, 3)``."""
    B = len(points)
    lo, hi = points.amin(1), points.amax(1)
    u = torch.rand(B, 3, generator=generator)
    eye = lo + (hi - lo) * (0.2 + 0.6 * u)
    eye[:, 2] = 0.8 + 0.4 * u[:, 2]
    yaw = 2 * math.pi * torch.rand(B, generator=generator)
    yaw2 = yaw[:, None] + math.radians(75) * (2 * torch.rand(B, k, generator=generator) - 1)
    eye2 = eye[:, None] + spread * torch.randn(B, k, 3, generator=generator) * torch.tensor(
        [1.0, 1.0, 0.2])
    eye2 = torch.maximum(torch.minimum(eye2, hi[:, None] - 0.2), lo[:, None] + 0.2)

    def target(e, a):
        d = torch.stack([a.cos(), a.sin(), torch.full_like(a, -math.tan(math.radians(25)))], -1)
        return e + d

    return eye, eye2, target(eye, yaw), target(eye2, yaw2)


def partial_views(scenes: dict, generator: torch.Generator, min_overlap: float = 0.3,
                  candidates: int = 6, size: int = 48, fov: float = 90.0, spread: float = 0.4
                  ) -> dict[str, torch.Tensor]:
    """Two partial scans per scene (Sect. 3.6's pairs of RGB-D frames), visibility by
    :func:`cvtutor.data.shapes3d.transforms.scan`: ``visible1``, ``visible2 (B, N)`` bool and the
    ``overlap (B,)`` ``min(|A∩B|/|A|, |A∩B|/|B|)``. Of ``candidates`` second cameras, one with
    overlap ≥ ``min_overlap`` is drawn at random (the largest-overlap one if none qualifies)."""
    P, Nrm = scenes["points"], scenes["normals"]
    B, N, _ = P.shape
    eye, eye2, tgt, tgt2 = _cameras(P, generator, candidates, spread)
    v1 = T.scan(P, Nrm, eye, tgt, size=size, fov=fov)["visible"]
    rep = lambda x: x.repeat_interleave(candidates, 0)
    v2 = T.scan(rep(P), rep(Nrm), eye2.reshape(-1, 3), tgt2.reshape(-1, 3), size=size,
                fov=fov)["visible"].reshape(B, candidates, N)
    ov = T.overlap(v1[:, None].expand_as(v2).reshape(-1, N), v2.reshape(-1, N))
    ratio = torch.minimum(ov["ratio_a"], ov["ratio_b"]).reshape(B, candidates).float()
    score = torch.where(ratio >= min_overlap, torch.rand(B, candidates, generator=generator) + 1,
                        ratio)
    pick = score.argmax(1)
    return {"visible1": v1, "visible2": v2[torch.arange(B), pick],
            "overlap": ratio[torch.arange(B), pick]}


def subsample(mask: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` indices ``(B, n)`` drawn from the ``True`` entries of each row of ``mask (B, N)``
    (without replacement where the row has ``n``, else with); a row with none raises."""
    counts = mask.sum(1)
    if (counts == 0).any():
        raise ValueError("every view must see at least one point")
    keys = torch.rand(mask.shape, generator=generator).masked_fill(~mask, 2.0)
    order = keys.argsort(1)
    pos = torch.arange(n)[None].expand(len(mask), n)
    # with fewer than n visible points, cycle through them
    pos = pos % counts[:, None]
    return order.gather(1, pos)


def correspondences(x1: np.ndarray | torch.Tensor, x2: np.ndarray | torch.Tensor,
                    radius: float) -> torch.Tensor:
    """The correspondence mapping ``M = {(i, j): ‖x¹_i − x²_j‖ < r}`` of two views in the shared
    world frame (Sect. 3.3, computed before ``T₁, T₂``): for each ``i`` its nearest ``j`` within
    ``radius`` (:class:`scipy.spatial.cKDTree`). ``x1 (N1, 3)``, ``x2 (N2, 3)`` → ``(K, 2)`` long."""
    a, b = np.asarray(x1, dtype=np.float64), np.asarray(x2, dtype=np.float64)
    for name, x in (("x1", a), ("x2", b)):
        if x.ndim != 2 or x.shape[1] != 3:
            raise ValueError(f"{name} must be an (N, 3) point array, got {x.shape}")
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    d, j = cKDTree(b).query(a, k=1, distance_upper_bound=radius)
    i = np.nonzero(np.isfinite(d) & (d < radius))[0]
    return torch.from_numpy(np.stack([i, j[i]], 1).astype(np.int64)).reshape(-1, 2)


def random_rigid(n: int, generator: torch.Generator, rotation: str = "up",
                 scale: tuple[float, float] = (0.8, 1.2)) -> dict[str, torch.Tensor]:
    """``n`` random similarity transforms ``T(x) = s R x + t`` (Algorithm 1's ``T₁, T₂``; the
    official config: rotation range 360°, scale 0.8–1.2): ``R (n, 3, 3)`` about z (``"up"``) or
    about a random axis by a uniform angle in [−180°, 180°) (``"axis"``, the official sampler),
    ``s (n,)`` uniform in ``scale``; ``t`` is chosen later to centre each view
    (:func:`centre_views`)."""
    lo, hi = scale
    if not 0 < lo <= hi:
        raise ValueError(f"scale must be (lo, hi) with 0 < lo <= hi, got {scale}")
    ang = 2 * math.pi * torch.rand(n, generator=generator) - math.pi
    if rotation == "up":
        R = axis_rotation(ang, "z")
    elif rotation == "axis":
        axis = F.normalize(torch.randn(n, 3, generator=generator), dim=1)
        R = so3_exp(axis * ang[:, None])  # Rodrigues, angle-axis -> rotation
    else:
        raise ValueError(f"rotation must be 'up' or 'axis', got {rotation!r}")
    s = lo + (hi - lo) * torch.rand(n, generator=generator)
    return {"R": R, "s": s}


def apply_rigid(x: torch.Tensor, R: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``T(x) = s R x + t`` for ``x (B, N, 3)``, ``R (B, 3, 3)``, ``s (B,)``, ``t (B, 3)``."""
    return s[:, None, None] * T.rotate(x, R) + t[:, None]


def invert_rigid(y: torch.Tensor, R: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``T⁻¹(y) = Rᵀ (y − t) / s``."""
    return T.rotate((y - t[:, None]) / s[:, None, None], R.transpose(1, 2))


def centre_views(x: torch.Tensor, R: torch.Tensor, s: torch.Tensor) -> dict[str, torch.Tensor]:
    """Apply ``s R`` and the translation ``t`` that puts each view's bounding-box centre at the
    origin (the grid's centre): returns ``points`` and ``t``."""
    y = s[:, None, None] * T.rotate(x, R)
    t = -(y.amin(1) + y.amax(1)) / 2
    return {"points": y + t[:, None], "t": t}


def make_views(scenes: dict, idx: torch.Tensor, config: Config, generator: torch.Generator,
               holistic: bool = False) -> dict:
    """Algorithm 1's first two lines for the scenes ``idx``: two views (partial scans, or two
    copies of the whole scene when ``holistic``, Sect. 4.6's ablation), each of
    ``config.view_points`` points with its own jitter (``config.view_noise`` m), and their
    correspondences in the world frame (radius ``config.match_radius × config.voxel``). Returns
    ``w1, w2 (B, n, 3)``, the per-pair ``matches`` list of ``(K, 2)`` and ``overlap (B,)``."""
    P = scenes["points"][idx]
    B, n = len(idx), config.view_points
    if holistic:
        full = torch.ones(P.shape[:2], dtype=torch.bool)
        i1 = i2 = subsample(full, n, generator)
        overlap = torch.ones(B)
    else:
        v = partial_views({"points": P, "normals": scenes["normals"][idx]}, generator,
                          config.min_overlap)
        i1, i2 = subsample(v["visible1"], n, generator), subsample(v["visible2"], n, generator)
        overlap = v["overlap"]
    take = lambda i: P.gather(1, i[..., None].expand(B, n, 3))
    w1 = take(i1) + config.view_noise * torch.randn(B, n, 3, generator=generator)
    w2 = take(i2) + config.view_noise * torch.randn(B, n, 3, generator=generator)
    r = config.match_radius * config.voxel
    matches = [correspondences(a, b, r) for a, b in zip(w1, w2)]
    return {"w1": w1, "w2": w2, "matches": matches, "overlap": overlap}


def transform_views(views: dict, config: Config, generator: torch.Generator) -> dict:
    """Algorithm 1's third line: independent ``T₁, T₂`` (:func:`random_rigid`, then centred):
    adds the network inputs ``x1, x2`` and the transforms ``T1, T2`` (``R, s, t``)."""
    B = len(views["w1"])
    t1 = random_rigid(B, generator, config.rotation, config.scale)
    t2 = random_rigid(B, generator, config.rotation, config.scale)
    x1 = centre_views(views["w1"], t1["R"], t1["s"])
    x2 = centre_views(views["w2"], t2["R"], t2["s"])
    return {**views, "x1": x1["points"], "x2": x2["points"], "T1": {**t1, "t": x1["t"]},
            "T2": {**t2, "t": x2["t"]}}


def make_pairs(scenes: dict, idx: torch.Tensor, config: Config, generator: torch.Generator,
               holistic: bool = False) -> dict:
    """One batch of Algorithm 1's inputs: :func:`make_views` then :func:`transform_views`."""
    return transform_views(make_views(scenes, idx, config, generator, holistic), config, generator)


def pair_pool(scenes: dict, n_pairs: int, config: Config, generator: torch.Generator,
              holistic: bool = False, chunk: int = 32) -> dict:
    """``n_pairs`` view pairs (:func:`make_views`) of random scenes, made once and drawn from
    during pre-training (the full profile's stand-in for the 870K stored ScanNet pairs); the
    transforms are still drawn per step."""
    parts = [make_views(scenes, torch.randint(0, len(scenes["points"]), (min(chunk, n_pairs - k),),
                                              generator=generator), config, generator, holistic)
             for k in range(0, n_pairs, chunk)]
    return {"w1": torch.cat([p["w1"] for p in parts]), "w2": torch.cat([p["w2"] for p in parts]),
            "matches": [m for p in parts for m in p["matches"]],
            "overlap": torch.cat([p["overlap"] for p in parts])}


# ------------------------------------------------------------------------------------------------
# Backbone
# ------------------------------------------------------------------------------------------------
def voxel_index(points: torch.Tensor, grid: tuple[int, int, int], voxel: float
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Voxelisation of centred ``points (B, N, 3)`` on a ``grid`` of cubes of side ``voxel``
    centred at the origin: the flat index ``(B, N)`` (x slowest) and the normalised position
    ``p01 (B, N, 3)`` in ``[0, 1)`` (points outside the grid are clamped to its border voxels)."""
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be (B, N, 3), got {tuple(points.shape)}")
    g = torch.tensor(grid, dtype=points.dtype, device=points.device)
    p01 = (points / (g * voxel) + 0.5).clamp(0, 1 - 1e-6)
    ijk = (p01 * g).long()
    flat = (ijk[..., 0] * grid[1] + ijk[..., 1]) * grid[2] + ijk[..., 2]
    return flat, p01


class VoxelUNet(nn.Module):
    """The fully-convolutional backbone (a stand-in for Sect. 3.5's SR-UNet): the points are
    voxelised at a fixed metric ``voxel`` size, each voxel gets ``[occupied, mean offset of its
    points from the voxel centre (3)]``, a dense 3-D U-Net (:class:`cvtutor.nn.unet.UNet`, batch
    norm, ReLU) maps the grid to ``dim`` channels, and each point reads its feature by trilinear
    interpolation: ``forward(points (B, N, 3)) → (B, N, dim)`` (full-resolution output, as the
    SR-UNet's). Convolutions make it translation-equivariant in whole voxels; rotations and scales
    are what pre-training must teach it."""

    def __init__(self, grid: tuple[int, int, int] = (32, 32, 8), voxel: float = 0.22,
                 dim: int = 32, width: int = 8, depth: int = 3) -> None:
        super().__init__()
        if any(s % 2 ** depth for s in grid):
            raise ValueError(f"every grid side must be divisible by 2**depth = {2 ** depth}, "
                             f"got {grid}")
        self.grid, self.voxel, self.dim = tuple(grid), voxel, dim
        self.unet = UNet(4, dim, dims=3, width=width, depth=depth, norm="batch")

    def voxelize(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat, p01 = voxel_index(points, self.grid, self.voxel)
        g = torch.tensor(self.grid, dtype=points.dtype, device=points.device)
        offset = p01 * g - (p01 * g).floor() - 0.5
        feat = torch.cat([torch.ones_like(offset[..., :1]), offset], -1)
        cells = scatter_mean(feat, flat, math.prod(self.grid))  # (B, V, 4)
        return cells.transpose(1, 2).reshape(len(points), 4, *self.grid), p01

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        vox, p01 = self.voxelize(points)
        return sample_grid_features(self.unet(vox), p01)


class SegmentationNet(nn.Module):
    """Fine-tuning (Sect. 4): the backbone and a per-point linear classifier → logits
    ``(B, N, n_classes)``."""

    def __init__(self, backbone: VoxelUNet, n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Linear(backbone.dim, n_classes)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.relu(self.backbone(points)))


def build_backbone(config: Config) -> VoxelUNet:
    return VoxelUNet(config.grid, config.voxel, config.dim, config.width, config.depth)


# ------------------------------------------------------------------------------------------------
# Losses (Sect. 3.4)
# ------------------------------------------------------------------------------------------------
def _check_pairs(f1: torch.Tensor, f2: torch.Tensor, pairs: torch.Tensor) -> None:
    for name, f in (("f1", f1), ("f2", f2)):
        if f.ndim != 2 or not f.is_floating_point():
            raise ValueError(f"{name} must be a float (N, D) feature tensor, got {tuple(f.shape)}")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"f1 and f2 need one feature dimension, got {f1.shape[1]} and {f2.shape[1]}")
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0:
        raise ValueError(f"pairs must be a non-empty (P, 2) index tensor, got {tuple(pairs.shape)}")


def hardest_contrastive(f1: torch.Tensor, f2: torch.Tensor, pairs: torch.Tensor,
                        pos_margin: float = 0.1, neg_margin: float = 1.4,
                        negatives: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """The hardest-contrastive loss (Sect. 3.4, first display; FCGF)::

        L = Σ_(i,j)∈𝒫 { [d(f_i, f_j) − m_p]²₊ / |𝒫|
                        + ½ [m_n − min_k∈𝒩 d(f_i, f_k)]²₊ / |𝒩_i|
                        + ½ [m_n − min_k∈𝒩 d(f_j, f_k)]²₊ / |𝒩_j| }

    ``f1 (N1, D)``, ``f2 (N2, D)`` (L2-normalised by the caller), ``pairs (P, 2)`` matched
    ``(i, j)``; ``negatives = (idx1, idx2)``: the candidate sets 𝒩 in each view (all points by
    default). The hardest negative of ``f¹_i`` is searched in view 2's candidates, that of ``f²_j``
    in view 1's, excluding the partner itself (FCGF masks it). ``|𝒩_i|``: we read the two sums
    as means over the anchors, as FCGF's code does (``neg_loss.mean()``)."""
    _check_pairs(f1, f2, pairs)
    i, j = pairs[:, 0], pairs[:, 1]
    n1 = torch.arange(len(f1), device=f1.device) if negatives is None else negatives[0]
    n2 = torch.arange(len(f2), device=f2.device) if negatives is None else negatives[1]
    fi, fj = f1[i], f2[j]
    pos = (fi - fj).norm(dim=1)
    d_i = torch.cdist(fi, f2[n2]).masked_fill(n2[None] == j[:, None], math.inf)
    d_j = torch.cdist(fj, f1[n1]).masked_fill(n1[None] == i[:, None], math.inf)
    hard_i, hard_j = d_i.min(1).values, d_j.min(1).values
    return (F.relu(pos - pos_margin).pow(2).mean()
            + 0.5 * F.relu(neg_margin - hard_i).pow(2).mean()
            + 0.5 * F.relu(neg_margin - hard_j).pow(2).mean())


def point_info_nce(f1: torch.Tensor, f2: torch.Tensor, pairs: torch.Tensor,
                   temperature: float = 0.07) -> torch.Tensor:
    """PointInfoNCE (Sect. 3.4, second display), averaged over the pairs::

        L = −Σ_(i,j)∈𝒫 log exp(f_i·f_j/τ) / Σ_(·,k)∈𝒫 exp(f_i·f_k/τ)

    the query ``f¹_i``, its positive key ``f²_j`` and, as negatives, the other *matched* points of
    view 2 (non-matched points are not used): the cross-entropy of ``F₁ F₂ᵀ / τ`` with the
    diagonal as labels (:func:`cvtutor.nn.contrastive.info_nce`)."""
    _check_pairs(f1, f2, pairs)
    return info_nce(f1[pairs[:, 0]], f2[pairs[:, 1]], temperature, normalize=False)


def _batched_pairs(matches: list[torch.Tensor], n: int, k: int, generator: torch.Generator
                   ) -> torch.Tensor:
    """The matches of a batch as indices into the flattened ``(B·n)`` views, ``k`` drawn at
    random (all if fewer)."""
    allp = torch.cat([m + b * n for b, m in enumerate(matches)])
    if len(allp) == 0:
        raise ValueError("no correspondences in this batch; raise match_radius or min_overlap")
    if len(allp) > k:
        allp = allp[torch.randperm(len(allp), generator=generator)[:k]]
    return allp


def pretext_loss(model: VoxelUNet, batch: dict, config: Config, generator: torch.Generator
                 ) -> dict[str, torch.Tensor]:
    """Algorithm 1's step: features of both transformed views, L2-normalised, and the chosen
    contrastive loss on ``config.n_pos`` sampled matched pairs."""
    B, n, _ = batch["x1"].shape
    dev = next(model.parameters()).device
    f = F.normalize(model(torch.cat([batch["x1"], batch["x2"]]).to(dev)), dim=-1)
    f1, f2 = f[:B].reshape(B * n, -1), f[B:].reshape(B * n, -1)
    pairs = _batched_pairs(batch["matches"], n, config.n_pos, generator).to(dev)
    if config.loss == "nce":
        loss = point_info_nce(f1, f2, pairs, config.temperature)
    else:
        neg = (torch.randperm(B * n, generator=generator)[:config.n_neg].to(dev),
               torch.randperm(B * n, generator=generator)[:config.n_neg].to(dev))
        loss = hardest_contrastive(f1, f2, pairs, config.pos_margin, config.neg_margin, neg)
    with torch.no_grad():
        spread = f1.std(0).sum()  # 0 when the features collapse to one vector
    return {"loss": loss, "feature spread": spread}


# ------------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------------
def feature_match_recall(f1: list[torch.Tensor], f2: list[torch.Tensor], w1: torch.Tensor,
                         w2: torch.Tensor, matches: list[torch.Tensor], tau1: float,
                         tau2: float = 0.05) -> dict[str, float]:
    """FCGF's feature-match recall: for each pair of views, the inlier ratio is the share of
    matched points ``i`` whose nearest neighbour in feature space among view 2's points lies within
    ``tau1`` of ``x¹_i`` in the world frame; FMR is the share of pairs whose inlier ratio exceeds
    ``tau2``. Returns ``fmr`` and the mean ``inlier_ratio``."""
    ratios = []
    for a, b, x, y, m in zip(f1, f2, w1, w2, matches):
        if len(m) == 0:
            continue
        nn_j = torch.cdist(a[m[:, 0]], b).argmin(1)
        ratios.append(float(((x[m[:, 0]] - y[nn_j]).norm(dim=1) < tau1).float().mean()))
    if not ratios:
        raise ValueError("no pair of views has a correspondence")
    r = np.array(ratios)
    return {"fmr": float((r > tau2).mean()), "inlier_ratio": float(r.mean())}


def scene_miou(conf: torch.Tensor) -> float:
    """Mean IoU over the classes present in the target or the prediction (NaN classes left out),
    in %."""
    return 100 * float(torch.nanmean(iou_per_class(conf)))


# ------------------------------------------------------------------------------------------------
# Config
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config(ProfileConfig):
    n_pretrain: int = 64  # rooms for pre-training (pairs drawn on the fly)
    n_labelled: int = 40  # rooms with labels for fine-tuning
    n_test: int = 20
    n_eval_pairs: int = 20  # view pairs of test rooms for FMR
    scene_points: int = 6000  # surface samples per room
    view_points: int = 1024  # points per view
    seg_points: int = 2048  # points per room for segmentation
    min_overlap: float = 0.3
    view_noise: float = 0.01  # per-view jitter (m)
    voxel: float = 0.22  # m
    match_radius: float = 1.5  # × voxel
    rotation: str = "up"
    scale: tuple[float, float] = (0.8, 1.2)
    grid: tuple[int, int, int] = (32, 32, 8)
    width: int = 8
    depth: int = 3
    dim: int = 32
    losses: tuple[str, ...] = ("nce",)  # pre-training losses compared
    loss: str = "nce"  # the one used by pretext_loss (set per run)
    temperature: float = 0.07
    n_pos: int = 512  # matched pairs per step
    n_neg: int = 256  # hardest-negative candidates
    pos_margin: float = 0.1
    neg_margin: float = 1.4
    pretrain_steps: int = 150
    pool_pairs: int = 0  # 0: pairs made on the fly; else a pool of this many, made once
    pairs_per_step: int = 2
    pretrain_lr: float = 1e-3
    holistic: bool = False  # run the holistic single-view ablation
    fractions: tuple[float, ...] = (0.1,)  # label fractions
    finetune_steps: int = 100
    finetune_batch: int = 4
    finetune_lr: float = 2e-3
    fmr_tau: float = 0.3  # m
    seeds: tuple[int, ...] = (0,)
    device: str | None = None

    @classmethod
    def fast(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        """Finer grid and wider U-Net, 1/10/100 % labels, HC against NCE, the holistic ablation,
        three seeds."""
        return cls(n_pretrain=400, n_labelled=200, n_test=60, n_eval_pairs=60,
                   scene_points=12000, view_points=2048, seg_points=8192, voxel=0.11,
                   grid=(64, 64, 16), width=16, depth=3, losses=("nce", "hc"), n_pos=4096,
                   pretrain_steps=600, pool_pairs=2400, pairs_per_step=8, holistic=True,
                   fractions=(0.01, 0.1, 1.0), finetune_steps=400, finetune_batch=8,
                   seeds=(0, 1, 2))

    @classmethod
    def smoke(cls) -> Config:
        return cls.full().replace(n_pretrain=4, n_labelled=8, n_test=2, n_eval_pairs=2,
                                  scene_points=1500, view_points=128, seg_points=256, voxel=0.44,
                                  grid=(16, 16, 8), width=8, depth=2, n_pos=64, n_neg=32,
                                  pretrain_steps=2, pool_pairs=6, pairs_per_step=2,
                                  fractions=(0.1, 1.0),
                                  finetune_steps=2, finetune_batch=2, seeds=(0, 1))


# ------------------------------------------------------------------------------------------------
# Experiments
# ------------------------------------------------------------------------------------------------
def pretrain(config: Config, scenes: dict, loss: str, seed: int, holistic: bool = False,
             progress: bool = False, pool: dict | None = None) -> tuple[VoxelUNet, pd.DataFrame]:
    """Pre-train a backbone with ``loss`` (``"nce"`` or ``"hc"``) on pairs drawn on the fly from
    ``scenes`` (or from a :func:`pair_pool`, with fresh transforms each step); returns the model
    and the loss history."""
    if loss not in ("nce", "hc"):
        raise ValueError(f"loss must be 'nce' or 'hc', got {loss!r}")
    cfg = config.replace(loss=loss)
    seed_everything(seed)
    dev = get_device(cfg.device)
    model = build_backbone(cfg).to(dev)
    g = torch.Generator().manual_seed(seed + 1000)

    def batch(step: int):
        if pool is None:
            idx = torch.randint(0, len(scenes["points"]), (cfg.pairs_per_step,), generator=g)
            return make_pairs(scenes, idx, cfg, g, holistic=holistic)
        idx = torch.randint(0, len(pool["w1"]), (cfg.pairs_per_step,), generator=g)
        views = {"w1": pool["w1"][idx], "w2": pool["w2"][idx],
                 "matches": [pool["matches"][i] for i in idx.tolist()]}
        return transform_views(views, cfg, g)

    opt = torch.optim.Adam(model.parameters(), lr=cfg.pretrain_lr)
    hist = fit(model, opt, batch, lambda m, b, s: pretext_loss(m["model"], b, cfg, g),
               steps=cfg.pretrain_steps, device=dev, progress=progress,
               desc=f"pre-train {loss}{' holistic' if holistic else ''}")
    return model, hist


@torch.no_grad()
def evaluate_fmr(model: VoxelUNet, pairs: dict, config: Config) -> dict[str, float]:
    """FMR and inlier ratio of ``model``'s features on held-out view pairs."""
    model.eval()
    dev = next(model.parameters()).device
    f1 = F.normalize(model(pairs["x1"].to(dev)), dim=-1).cpu()
    f2 = F.normalize(model(pairs["x2"].to(dev)), dim=-1).cpu()
    out = feature_match_recall(list(f1), list(f2), pairs["w1"], pairs["w2"], pairs["matches"],
                               config.fmr_tau)
    out["spread"] = float(f1.reshape(-1, f1.shape[-1]).std(0).sum())
    model.train()
    return out


def seg_data(scenes: dict, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``n`` points of every room (the whole reconstruction), centred: ``points``, ``label``."""
    idx = subsample(torch.ones(scenes["points"].shape[:2], dtype=torch.bool), n, generator)
    P = scenes["points"].gather(1, idx[..., None].expand(-1, -1, 3))
    P = P - (P.amin(1, keepdim=True) + P.amax(1, keepdim=True)) / 2
    return {"points": P, "label": scenes["label"].gather(1, idx)}


def finetune(config: Config, init: VoxelUNet | None, data: dict, seed: int,
             progress: bool = False, desc: str = "fine-tune") -> tuple[SegmentationNet, pd.DataFrame]:
    """Semantic segmentation from ``init``'s weights (a copy) or from scratch (``None``), with
    random flips and scales 0.9–1.1 as augmentation."""
    seed_everything(seed)
    backbone = build_backbone(config)
    if init is not None:
        backbone.load_state_dict(init.state_dict())
    dev = get_device(config.device)
    model = SegmentationNet(backbone).to(dev)
    g = torch.Generator().manual_seed(seed + 2000)
    n = len(data["points"])

    def batch(step: int):
        idx = torch.randint(0, n, (config.finetune_batch,), generator=g)
        x = data["points"][idx].clone()
        flip = torch.where(torch.rand(len(idx), 1, 3, generator=g) < 0.5, -1.0, 1.0)
        flip[..., 2] = 1.0
        s = 0.9 + 0.2 * torch.rand(len(idx), 1, 1, generator=g)
        return (x * flip * s).to(dev), data["label"][idx].to(dev)

    def loss_fn(models, b, step):
        x, y = b
        return {"loss": F.cross_entropy(models["model"](x).reshape(-1, N_CLASSES), y.reshape(-1))}

    opt = torch.optim.Adam(model.parameters(), lr=config.finetune_lr)
    hist = fit(model, opt, batch, loss_fn, steps=config.finetune_steps, device=dev,
               progress=progress, desc=desc)
    return model, hist


@torch.no_grad()
def segment_miou(model: SegmentationNet, data: dict, chunk: int = 8) -> float:
    model.eval()
    conf = 0
    dev = next(model.parameters()).device
    for k in range(0, len(data["points"]), chunk):
        pred = model(data["points"][k:k + chunk].to(dev)).argmax(-1).cpu()
        conf = conf + confusion_matrix(pred, data["label"][k:k + chunk], N_CLASSES, None)
    model.train()
    return scene_miou(conf)


def transform_checks(config: Config, scenes: dict, generator: torch.Generator) -> dict[str, float]:
    """Sanity checks of Algorithm 1's geometry on one batch: matched points' world distance
    (below the radius by construction), the mapping back through ``T⁻¹`` (exact), the rotations'
    orthonormality and determinant."""
    b = make_pairs(scenes, torch.arange(min(2, len(scenes["points"]))), config, generator)
    back = invert_rigid(b["x1"], b["T1"]["R"], b["T1"]["s"], b["T1"]["t"])
    R = b["T1"]["R"]
    dmax = max(float((b["w1"][k][m[:, 0]] - b["w2"][k][m[:, 1]]).norm(dim=1).max())
               for k, m in enumerate(b["matches"]) if len(m))
    return {"max match distance": dmax, "radius": config.match_radius * config.voxel,
            "inverse error": float((back - b["w1"]).abs().max()),
            "orthonormality error": float((R @ R.transpose(1, 2) - torch.eye(3)).abs().max()),
            "min det": float(torch.linalg.det(R).min()), "mean overlap": float(b["overlap"].mean())}


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.array(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else float("nan")


def run(config: Config, progress: bool = False) -> dict:
    """The chapter's miniature: pre-training (each loss in ``config.losses``, plus the holistic
    ablation when asked), FMR before and after, fine-tuning scratch vs pre-trained at each label
    fraction, for each seed. Returns DataFrames and ``findings``."""
    t0 = time.perf_counter()
    # the scenes, scans and kd-trees live on the CPU; the networks on get_device(config.device)
    g = torch.Generator().manual_seed(12345)
    pre_scenes = make_scenes(config.n_pretrain, config.scene_points, g)
    lab_scenes = make_scenes(config.n_labelled, config.scene_points, g)
    test_scenes = make_scenes(config.n_test, config.scene_points, g)
    eval_pairs = make_pairs(test_scenes, torch.arange(config.n_test).repeat(
        math.ceil(config.n_eval_pairs / config.n_test))[:config.n_eval_pairs], config, g)
    train_seg = seg_data(lab_scenes, config.seg_points, g)
    test_seg = seg_data(test_scenes, config.seg_points, g)
    checks = transform_checks(config, pre_scenes, g)

    variants = [(loss, False) for loss in config.losses]
    if config.holistic:
        variants.append((config.losses[0], True))
    names = {(loss, h): (f"holistic {loss.upper()}" if h else loss.upper()) for loss, h in variants}
    pools = {h: pair_pool(pre_scenes, config.pool_pairs, config, g, h) if config.pool_pairs else None
             for h in {h for _, h in variants}}
    fmr_rows, seg_rows, histories, ft_hist = [], [], [], []
    for seed in config.seeds:
        seed_everything(seed)
        rand = build_backbone(config).to(get_device(config.device))
        fmr_rows.append({"seed": seed, "init": "random", **evaluate_fmr(rand, eval_pairs, config)})
        models = {}
        for loss, hol in variants:
            m, h = pretrain(config, pre_scenes, loss, seed, hol, progress, pools[hol])
            models[names[loss, hol]] = m
            histories.append(h.assign(seed=seed, init=names[loss, hol]))
            fmr_rows.append({"seed": seed, "init": names[loss, hol],
                             **evaluate_fmr(m, eval_pairs, config)})
        for frac in config.fractions:
            k = max(1, round(frac * config.n_labelled))
            sub = {key: v[:k] for key, v in train_seg.items()}
            for init_name, init in [("scratch", None), *models.items()]:
                net, h = finetune(config, init, sub, seed, progress,
                                  desc=f"{init_name} {100 * frac:g}%")
                ft_hist.append(h.assign(seed=seed, labels=f"{100 * frac:g}%", init=init_name))
                seg_rows.append({"seed": seed, "labels": f"{100 * frac:g}%", "scenes": k,
                                 "init": init_name, "mIoU": segment_miou(net, test_seg)})
    fmr = pd.DataFrame(fmr_rows)
    seg = pd.DataFrame(seg_rows)
    out = {"fmr": fmr, "segmentation": seg, "checks": checks,
           "pretrain_history": pd.concat(histories, ignore_index=True),
           "finetune_history": pd.concat(ft_hist, ignore_index=True),
           "inits": list(names.values())}
    out["fmr_table"] = fmr_table(fmr)
    out["seg_table"] = seg_table(seg, config)
    out.update(paper_tables(seg))
    out["findings"] = findings(out, config)
    out["seconds"] = time.perf_counter() - t0
    return out


def fmr_table(fmr: pd.DataFrame) -> pd.DataFrame:
    """Mean (± std over seeds) FMR, inlier ratio and feature spread per initialisation."""
    rows = {}
    for init, d in fmr.groupby("init", sort=False):
        r = {}
        for col in ("fmr", "inlier_ratio", "spread"):
            m, s = _mean_std(d[col].tolist())
            r[col], r[f"{col} std"] = m, s
        rows[init] = r
    return pd.DataFrame(rows).T.rename_axis("init")


def seg_table(seg: pd.DataFrame, config: Config) -> pd.DataFrame:
    """mIoU by label fraction (rows) and initialisation (columns), mean over seeds, with the
    gain of each pre-training over scratch and, beside it, the paper's Table 2 numbers at the
    same fraction where it has one."""
    rows = []
    for labels, d in seg.groupby("labels", sort=False):
        r = {"labels": labels}
        by = {i: _mean_std(dd["mIoU"].tolist()) for i, dd in d.groupby("init", sort=False)}
        for init, (m, s) in by.items():
            r[init] = m
        for init in by:
            if init == "scratch":
                continue
            gains = (d[d.init == init].set_index("seed")["mIoU"]
                     - d[d.init == "scratch"].set_index("seed")["mIoU"])
            gm, gs = _mean_std(gains.tolist())
            r[f"gain {init}"], r[f"gain {init} std"] = gm, gs
        p = PAPER["table2"].values
        r["paper gain NCE"] = (p[f"NCE {labels}"] - p[f"scratch {labels}"]
                               if f"NCE {labels}" in p else float("nan"))
        rows.append(r)
    return pd.DataFrame(rows).set_index("labels")


def paper_tables(seg: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Paper-vs-ours tables (:func:`cvtutor.report.compare`): Table 2's label fractions (our
    segmentation mIoU, mean over seeds, beside the paper's classification accuracy at the same
    fraction; the claim is the ordering, pre-trained above scratch) and, when the run has the
    holistic ablation, Sect. 4.6's rows at our lowest fraction."""
    mean = seg.groupby(["labels", "init"], sort=False)["mIoU"].mean()
    ours, claims = {}, []
    for (labels, init), v in mean.items():
        key = f"{init} {labels}"
        if key in PAPER["table2"].values:
            ours[key] = float(v)
            if init != "scratch" and f"scratch {labels}" in PAPER["table2"].values:
                claims.append(f"{key} > scratch {labels}")
    out = {"table2_vs_paper": report.compare(PAPER["table2"], ours, claims, tol=0.0)}
    low = seg["labels"].iloc[0]
    inits = set(seg["init"])
    if "holistic NCE" in inits:
        row = {"scratch": "scratch", "holistic": "holistic NCE", "multi-view NCE": "NCE",
               "multi-view HC": "HC"}
        ours_h = {k: float(mean[(low, v)]) for k, v in row.items() if v in inits}
        out["holistic_vs_paper"] = report.compare(
            PAPER["holistic"], ours_h, ["multi-view NCE > holistic", "holistic > scratch"], tol=0.0)
    return out


def _judge(gain: float, std: float, n: int) -> tuple[bool, str]:
    """A gain holds when positive; with several seeds, when its mean exceeds one standard error."""
    se = std / math.sqrt(n) if n > 1 and not math.isnan(std) else 0.0
    detail = f"{gain:+.1f} mIoU" + (f", SE {se:.1f}, {n} seeds" if n > 1 else ", 1 seed")
    return bool(gain > se), detail


def findings(out: dict, config: Config) -> pd.DataFrame:
    """The chapter's findings, each computed from the run."""
    fmr, tab, ck = out["fmr_table"], out["seg_table"], out["checks"]
    n = len(config.seeds)
    first = out["inits"][0]
    claims: dict[str, tuple] = {}
    claims["matches lie within the radius and T⁻¹ recovers the world frame"] = (
        "sanity check",
        ck["max match distance"] < ck["radius"] and ck["inverse error"] < 1e-4
        and ck["orthonormality error"] < 1e-5 and abs(ck["min det"] - 1) < 1e-5,
        (f"max match {ck['max match distance']:.3f} m < {ck['radius']:.3f} m, "
         f"inverse error {ck['inverse error']:.1e}"))
    ir_rand, ir_pre = fmr.loc["random", "inlier_ratio"], fmr.loc[first, "inlier_ratio"]
    claims[f"{first} pre-training raises feature-match inlier ratio and FMR"] = (
        "sanity check",
        bool(ir_pre > ir_rand and fmr.loc[first, "fmr"] >= fmr.loc["random", "fmr"]),
        (f"inlier ratio {ir_rand:.3f} → {ir_pre:.3f}, FMR {fmr.loc['random', 'fmr']:.2f} → "
         f"{fmr.loc[first, 'fmr']:.2f}"))
    low = tab.index[0]
    g, s = tab.loc[low, f"gain {first}"], tab.loc[low, f"gain {first} std"]
    holds, det = _judge(g, s, n)
    claims[f"pre-training ({first}) helps fine-tuning at the lowest label fraction ({low})"] = (
        "paper claim", holds, det)
    top = tab.index[-1]
    if len(tab) > 1:
        g_top, s_top = tab.loc[top, f"gain {first}"], tab.loc[top, f"gain {first} std"]
        holds, det = _judge(g_top, s_top, n)
        claims[f"pre-training ({first}) still helps at {top} labels (fragile)"] = (
            "paper claim", holds, det)
        claims[f"the gain is larger at {low} than at {top} labels"] = (
            "paper claim", bool(g > g_top), f"{g:+.1f} vs {g_top:+.1f} mIoU")
    else:
        claims["pre-training still helps at the largest label fraction (fragile)"] = (
            "paper claim", None, "full profile only")
    if "HC" in fmr.index:
        g_hc, s_hc = tab.loc[low, "gain HC"], tab.loc[low, "gain HC std"]
        holds, det = _judge(g_hc, s_hc, n)
        claims[f"hardest-contrastive pre-training also helps at {low} labels"] = (
            "paper claim", holds, det)
        claims["hardest-contrastive features keep their spread (no collapse)"] = (
            "paper claim", bool(fmr.loc["HC", "spread"] > 0.5 * fmr.loc["NCE", "spread"]),
            f"spread HC {fmr.loc['HC', 'spread']:.2f}, NCE {fmr.loc['NCE', 'spread']:.2f}")
    else:
        claims["hardest-contrastive pre-training also helps (fragile)"] = (
            "paper claim", None, "full profile only")
    hol = f"holistic {first}"
    if f"gain {hol}" in tab.columns:
        gm = tab.loc[low, f"gain {first}"] - tab.loc[low, f"gain {hol}"]
        diffs = (out["segmentation"].query("labels == @low and init == @first").set_index("seed")["mIoU"]
                 - out["segmentation"].query("labels == @low and init == @hol").set_index("seed")["mIoU"])
        _, sd = _mean_std(diffs.tolist())
        holds, det = _judge(gm, sd, n)
        claims[f"multi-view pairs beat the holistic single view at {low} labels (fragile)"] = (
            "paper claim", holds, det)
    else:
        claims["multi-view pairs beat the holistic single view (fragile)"] = (
            "paper claim", None, "full profile only")
    return report.claims_table(claims)
