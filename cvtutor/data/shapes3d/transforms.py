"""Point-cloud transforms, partial scans from virtual cameras, and voxelisation.

Derived in the chapter ``notebooks/eccv2020/world_shapes3d.ipynb`` (section 4). Clouds are
batched ``(B, N, 3)`` tensors; every random transform takes a ``torch.Generator`` on the clouds'
device and returns what it drew, so a chapter can undo or check it.

**Scans.** A camera at ``eye`` looks at ``target`` (pinhole, ``fov`` degrees, ``size`` pixels).
A surface sample ``p`` with outward normal ``n`` is *visible* when (i) it faces the camera,
``n·(eye - p) > 0``, and (ii) no other sample is nearer in its pixel by more than ``tol`` (a
z-buffer built with a scatter-min over pixels). On a convex surface (i) alone is exact: a sphere of
radius ``r`` at the origin seen from ``eye = (0, 0, D)`` keeps exactly ``z > r²/D``; (ii) removes
the parts hidden behind other parts. Samples keep their index, so two scans of the same samples
have exact correspondences (the indices seen by both) and an exact overlap ratio. For clouds
without normals, :func:`hidden_point_removal` (Katz et al.'s spherical flip) approximates the
visible set.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from cvtutor.data import geometry


def _check_cloud(x: torch.Tensor, name: str = "points") -> None:
    if not torch.is_tensor(x) or x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(
            f"{name} must be a (B, N, 3) tensor, got "
            f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}"
        )


# ------------------------------------------------------------------------------------------------
# Transforms
# ------------------------------------------------------------------------------------------------
def normalize(
    points: torch.Tensor, mode: str = "sphere"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre each cloud and scale it into the unit ``sphere`` (centroid, max radius 1) or the
    unit ``cube`` (bounding-box centre, largest side 1). Returns ``(points, centre (B, 3),
    scale (B,))`` with ``normalized = (points - centre) / scale``."""
    _check_cloud(points)
    if mode == "sphere":
        c = points.mean(1)
        s = (points - c[:, None]).norm(dim=-1).max(1).values
    elif mode == "cube":
        lo, hi = points.min(1).values, points.max(1).values
        c, s = (lo + hi) / 2, (hi - lo).max(-1).values
    else:
        raise ValueError(f"mode must be 'sphere' or 'cube', got {mode!r}")
    s = s.clamp_min(1e-12)
    return (points - c[:, None]) / s[:, None, None], c, s


def random_rotation(
    n: int, generator: torch.Generator, mode: str = "so3", device=None, up: str = "z"
) -> torch.Tensor:
    """``n`` rotations ``(n, 3, 3)``: uniform on SO(3) (``"so3"``, from normalised Gaussian
    quaternions) or about the ``up`` axis only (``"up"``, uniform angle)."""
    device = device or generator.device
    if mode == "up":
        from cvtutor.data.shapes3d.shapes import axis_rotation

        ang = 2 * math.pi * torch.rand(n, generator=generator, device=device)
        return axis_rotation(ang, up)
    if mode != "so3":
        raise ValueError(f"mode must be 'so3' or 'up', got {mode!r}")
    return geometry.random_rotation(n, generator, device)


def rotate(points: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """``(B, N, 3)`` points (or normals) rotated by ``rot (B, 3, 3)``."""
    _check_cloud(points)
    if rot.shape != (len(points), 3, 3):
        raise ValueError(f"rot must be ({len(points)}, 3, 3), got {tuple(rot.shape)}")
    return points @ rot.transpose(1, 2)


def anisotropic_scale(
    points: torch.Tensor, generator: torch.Generator, lo: float = 2 / 3, hi: float = 3 / 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each axis by a factor uniform in ``[lo, hi]`` (PointNet++'s augmentation).
    Returns ``(points, factors (B, 3))``."""
    _check_cloud(points)
    f = lo + (hi - lo) * torch.rand(
        len(points), 3, generator=generator, device=points.device, dtype=points.dtype
    )
    return points * f[:, None], f


def jitter(
    points: torch.Tensor, generator: torch.Generator, sigma: float = 0.01, clip: float = 0.05
) -> torch.Tensor:
    """Add clipped Gaussian noise ``clip(σ·ε, -clip, clip)`` to every coordinate."""
    _check_cloud(points)
    eps = torch.randn(points.shape, generator=generator, device=points.device, dtype=points.dtype)
    return points + (sigma * eps).clamp(-clip, clip)


def drop_points(
    points: torch.Tensor, generator: torch.Generator, max_ratio: float = 0.875
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random point dropout (PointNet++): per cloud a ratio uniform in ``[0, max_ratio]`` of
    points is replaced by the cloud's first point. Returns ``(points, kept (B, N) bool)``."""
    _check_cloud(points)
    B, N, _ = points.shape
    ratio = max_ratio * torch.rand(B, 1, generator=generator, device=points.device)
    kept = torch.rand(B, N, generator=generator, device=points.device) >= ratio
    kept[:, 0] = True
    return torch.where(kept[..., None], points, points[:, :1]), kept


def resample(
    points: torch.Tensor, n: int, generator: torch.Generator, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` points per cloud uniformly from the points where ``mask (B, N)`` holds (all
    when None): without replacement when there are at least ``n``, else with replacement.
    Returns ``(points (B, n, 3), index (B, n))`` into the input."""
    _check_cloud(points)
    B, N, _ = points.shape
    mask = torch.ones(B, N, dtype=torch.bool, device=points.device) if mask is None else mask
    if mask.shape != (B, N):
        raise ValueError(f"mask must be ({B}, {N}), got {tuple(mask.shape)}")
    count = mask.sum(1)
    if (count == 0).any():
        raise ValueError("every cloud needs at least one point to resample from")
    key = torch.rand(B, N, generator=generator, device=points.device).masked_fill(~mask, 2.0)
    order = key.argsort(1)  # masked points first, in random order
    j = torch.arange(n, device=points.device)[None].expand(B, n)
    # beyond the available count, cycle through a random draw with replacement
    extra = (torch.rand(B, n, generator=generator, device=points.device) * count[:, None]).long()
    pos = torch.where(j < count[:, None], j, extra)
    idx = order.gather(1, pos)
    return points.gather(1, idx[..., None].expand(B, n, 3)), idx


# ------------------------------------------------------------------------------------------------
# Cameras and partial scans
# ------------------------------------------------------------------------------------------------
def look_at(
    eye: torch.Tensor, target: torch.Tensor | None = None, up=(0.0, 0.0, 1.0)
) -> torch.Tensor:
    """World-to-camera rotations ``(B, 3, 3)`` (rows: camera x right, y down, z forward) of
    cameras at ``eye (B, 3)`` looking at ``target (B, 3)`` (the origin by default)."""
    target = torch.zeros_like(eye) if target is None else target
    fwd = target - eye
    fwd = fwd / fwd.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    upv = torch.as_tensor(up, dtype=eye.dtype, device=eye.device).expand_as(fwd)
    right = torch.cross(fwd, upv, dim=-1)
    # looking along the up axis: any right vector will do
    alt = torch.tensor([1.0, 0, 0], dtype=eye.dtype, device=eye.device).expand_as(fwd)
    bad = right.norm(dim=-1, keepdim=True) < 1e-6
    right = torch.where(bad, torch.cross(fwd, alt, dim=-1), right)
    right = right / right.norm(dim=-1, keepdim=True)
    down = torch.cross(fwd, right, dim=-1)
    return torch.stack([right, down, fwd], 1)


def sphere_cameras(
    n: int,
    generator: torch.Generator,
    radius: float = 2.0,
    device=None,
    min_elevation: float = -90.0,
    max_elevation: float = 90.0,
) -> torch.Tensor:
    """``n`` camera positions ``(n, 3)`` uniform on the sphere of ``radius`` between two elevations
    (degrees), looking at the origin."""
    device = device or generator.device
    lo, hi = math.sin(math.radians(min_elevation)), math.sin(math.radians(max_elevation))
    z = lo + (hi - lo) * torch.rand(n, generator=generator, device=device)
    phi = 2 * math.pi * torch.rand(n, generator=generator, device=device)
    s = (1 - z * z).clamp_min(0).sqrt()
    return radius * torch.stack([s * phi.cos(), s * phi.sin(), z], -1)


def scan(
    points: torch.Tensor,
    normals: torch.Tensor,
    eye: torch.Tensor,
    target: torch.Tensor | None = None,
    size: int = 64,
    fov: float = 60.0,
    tol: float | None = None,
) -> dict[str, torch.Tensor]:
    """The samples that a camera at ``eye (B, 3)`` sees (module docstring): ``visible (B, N)``
    bool, ``depth (B, size, size)`` (the z-buffer, ``inf`` where empty), ``uv (B, N, 2)`` pixel
    coordinates, ``cam_points (B, N, 3)`` in the camera frame and the rotation ``R (B, 3, 3)``.

    ``tol``: how far behind the nearest sample of its pixel a sample may lie and still count as
    seen; by default two pixel footprints at the sample's depth times ``1 + tan θ`` (``θ`` the
    angle between its normal and the ray: a surface at a grazing angle spans more depth per pixel).
    """
    _check_cloud(points)
    _check_cloud(normals, "normals")
    B, N, _ = points.shape
    if eye.shape != (B, 3):
        raise ValueError(f"eye must be ({B}, 3), got {tuple(eye.shape)}")
    R = look_at(eye, target)
    pc = torch.einsum("bij,bnj->bni", R, points - eye[:, None])
    z = pc[..., 2]
    f = 0.5 * size / math.tan(math.radians(fov) / 2)
    uv = f * pc[..., :2] / z.clamp_min(1e-9)[..., None] + size / 2
    view = eye[:, None] - points
    cos = (view * normals).sum(-1) / view.norm(dim=-1).clamp_min(1e-12)
    facing = cos > 0
    pix = uv.floor().long()
    inside = (z > 1e-6) & (pix >= 0).all(-1) & (pix < size).all(-1)
    cand = facing & inside
    flat = pix[..., 1].clamp(0, size - 1) * size + pix[..., 0].clamp(0, size - 1)
    zbuf = torch.full((B, size * size), math.inf, dtype=points.dtype, device=points.device)
    zbuf = zbuf.scatter_reduce(1, flat, torch.where(cand, z, math.inf), reduce="amin")
    # a surface at grazing angle θ spans a depth range of about footprint·tan θ within one pixel
    c = cos.clamp(0.05, 1)
    tol_z = 2 * z / f * (1 + (1 - c * c).sqrt() / c) if tol is None else torch.full_like(z, tol)
    visible = cand & (z <= zbuf.gather(1, flat) + tol_z)
    return {
        "visible": visible,
        "depth": zbuf.reshape(B, size, size),
        "uv": uv,
        "cam_points": pc,
        "R": R,
    }


def hidden_point_removal(points: torch.Tensor, eye: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """Katz, Tal & Basri's direct visibility of point sets (SIGGRAPH 2007), for clouds without
    normals: with ``q = p - eye``, flip every point about the sphere of radius
    ``R = 10^gamma · max |q|``, ``q ↦ q + 2 (R - |q|) q/|q|``; the points whose flips are vertices of
    the convex hull of the flips and the eye are visible. Returns ``visible (B, N)`` bool
    (:class:`scipy.spatial.ConvexHull` per cloud, on the CPU). Larger ``gamma`` keeps more points;
    beyond about 2 the flipped points crowd onto one sphere and the hull loses precision."""
    from scipy.spatial import ConvexHull

    _check_cloud(points)
    if eye.shape != (len(points), 3):
        raise ValueError(f"eye must be ({len(points)}, 3), got {tuple(eye.shape)}")
    q = (points - eye[:, None]).detach().double().cpu()
    norm = q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    R = norm.amax(1, keepdim=True) * 10.0 ** gamma
    flipped = (q + 2 * (R - norm) * q / norm).numpy()
    visible = torch.zeros(points.shape[:2], dtype=torch.bool)
    for i, f in enumerate(flipped):
        hull = ConvexHull(np.vstack([f, np.zeros((1, 3))]))
        v = hull.vertices[hull.vertices < len(f)]
        visible[i, torch.from_numpy(v)] = True
    return visible.to(points.device)


def overlap(visible_a: torch.Tensor, visible_b: torch.Tensor) -> dict[str, torch.Tensor]:
    """Overlap of two scans of the same samples: ``both (B, N)`` (the exact correspondences:
    sample ``i`` is seen in both views), ``ratio_a`` / ``ratio_b`` (``|A∩B|/|A|``, ``|A∩B|/|B|``,
    PointContrast's overlap) and ``iou`` (``|A∩B|/|A∪B|``), each ``(B,)``."""
    if visible_a.shape != visible_b.shape or visible_a.ndim != 2:
        raise ValueError(
            f"visibility masks must both be (B, N), got {tuple(visible_a.shape)} and "
            f"{tuple(visible_b.shape)}"
        )
    both = visible_a & visible_b
    nb = both.sum(1).double()
    return {
        "both": both,
        "ratio_a": nb / visible_a.sum(1).clamp_min(1),
        "ratio_b": nb / visible_b.sum(1).clamp_min(1),
        "iou": nb / (visible_a | visible_b).sum(1).clamp_min(1),
    }


def correspondences(
    visible_a: torch.Tensor, visible_b: torch.Tensor, index_a: torch.Tensor, index_b: torch.Tensor
) -> list[torch.Tensor]:
    """Matched pairs between two resampled scans: scan ``a`` holds samples ``index_a (B, n_a)``,
    scan ``b`` ``index_b (B, n_b)``; returns, per batch item, ``(K, 2)`` positions ``(i, j)`` with
    ``index_a[i] == index_b[j]`` (the same surface sample), each ``i`` once."""
    out = []
    for ia, ib in zip(index_a, index_b):
        eq = ia[:, None] == ib[None, :]
        i, j = eq.nonzero(as_tuple=True)
        first = torch.ones_like(i, dtype=torch.bool)
        first[1:] = i[1:] != i[:-1]
        out.append(torch.stack([i[first], j[first]], -1))
    return out


# ------------------------------------------------------------------------------------------------
# Voxels
# ------------------------------------------------------------------------------------------------
def grid_points(
    resolution: int, lo: float = -0.5, hi: float = 0.5, device=None, dtype=torch.float32
) -> torch.Tensor:
    """Centres of a ``resolution³`` voxel grid over ``[lo, hi]³``, ``(resolution³, 3)`` in
    ``(i, j, k)`` ↔ ``(x, y, z)`` order (index ``(i·R + j)·R + k``)."""
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    c = lo + (torch.arange(resolution, device=device, dtype=dtype) + 0.5) * (hi - lo) / resolution
    return torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)


def voxelize_occupancy(
    occupancy_fn,
    batch: int,
    resolution: int,
    lo: float = -0.5,
    hi: float = 0.5,
    device=None,
    chunk: int = 32768,
) -> torch.Tensor:
    """Exact occupancy at the voxel centres: ``occupancy_fn(points (B, Q, 3)) → (B, Q)`` bool
    (e.g. ``ShapeBatch.occupancy``), evaluated in chunks; returns ``(B, R, R, R)`` bool."""
    pts = grid_points(resolution, lo, hi, device)
    out = [occupancy_fn(pts[i : i + chunk].expand(batch, -1, 3)) for i in range(0, len(pts), chunk)]
    return torch.cat(out, 1).reshape(batch, resolution, resolution, resolution)


def voxelize_points(
    points: torch.Tensor, resolution: int, lo: float = -0.5, hi: float = 0.5
) -> torch.Tensor:
    """Point counts per voxel, ``(B, R, R, R)`` float (points outside ``[lo, hi)³`` are dropped);
    ``> 0`` is the binary voxelisation of the cloud."""
    _check_cloud(points)
    B = len(points)
    ijk = ((points - lo) / (hi - lo) * resolution).floor().long()
    ok = ((ijk >= 0) & (ijk < resolution)).all(-1)
    flat = (ijk[..., 0] * resolution + ijk[..., 1]) * resolution + ijk[..., 2]
    out = torch.zeros(B, resolution**3, dtype=points.dtype, device=points.device)
    out.scatter_add_(1, flat.clamp(0, resolution**3 - 1), ok.to(points.dtype))
    return out.reshape(B, resolution, resolution, resolution)


def pointflow_normalize(
    points: torch.Tensor, per_shape: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PointFlow's normalisation of ShapeNet PC15k clouds ``(B, N, 3)`` (used by ShapeGF's
    loaders, chapter ``notebooks/eccv2020/shapegf.ipynb``): subtract the mean and divide by the
    standard deviation, per shape (``mean (B, 1, 3)``, one ``std (B, 1, 1)`` over all coordinates)
    or over the whole set (``per_shape=False``: ``mean (1, 1, 3)``, ``std (1, 1, 1)``). Returns
    ``(normalized, mean, std)`` with ``points = normalized * std + mean``."""
    _check_cloud(points)
    if per_shape:
        mean = points.mean(1, keepdim=True)
        std = (points - mean).reshape(len(points), -1).std(1).reshape(-1, 1, 1)
    else:
        mean = points.reshape(-1, points.shape[-1]).mean(0).reshape(1, 1, -1)
        std = (points - mean).reshape(-1).std().reshape(1, 1, 1)
    std = std.clamp_min(1e-12)
    return (points - mean) / std, mean, std
