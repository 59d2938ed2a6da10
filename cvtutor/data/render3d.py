"""A generic exact ray caster: spheres (and capsules as sphere chains), oriented boxes and planes.

Derived in the hand world chapter (``notebooks/hands/hand_world.ipynb``, the sphere proxy) and the
*People, cameras and geometry* chapter (``notebooks/eccv2020/world_people.ipynb``, scenes and rigs).
Every pixel's ray ``z·D`` with ``D = K⁻¹·[u, v, 1]`` (``D_z = 1``, so the ray parameter is the
camera depth) is intersected analytically with every primitive; the nearest hit gives exact depth,
the primitive's part and instance ids and the surface normal. All of it is batched torch code,
chunked over the batch to bound memory, and runs wherever its inputs live (CPU or CUDA).

A scene (camera frame, metres, ``B`` scenes) is a dict of optional primitive groups: ``spheres =
{"centres" (B, M, 3), "radii" (B, M), "part" (B, M), "instance" (B, M)}``, ``boxes = {"centres" (B,
N, 3), "half" (B, N, 3), "R" (B, N, 3, 3), "part", "instance"}`` (``R`` maps box axes to camera
axes) and ``planes = {"normals" (B, Q, 3), "offsets" (B, Q), "part", "instance"}`` for ``n·X = d``.
"""
from __future__ import annotations

import torch

def pixel_rays(K: torch.Tensor, image_size: int) -> torch.Tensor:
    """Rays ``D = K⁻¹·[u, v, 1] = ((u - c_x)/f_x, (v - c_y)/f_y, 1)`` through the pixel centres ``(j
    + 0.5, i + 0.5)``, row-major ``(S·S, 3)``. A point ``z·D`` on the ray has camera depth ``z``."""
    r = torch.arange(image_size, dtype=K.dtype, device=K.device) + 0.5
    v, u = torch.meshgrid(r, r, indexing="ij")
    x = (u.reshape(-1) - K[0, 2]) / K[0, 0]
    y = (v.reshape(-1) - K[1, 2]) / K[1, 1]
    return torch.stack([x, y, torch.ones_like(x)], -1)


def _near_root(Dc: torch.Tensor, DD: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
    """Depth of the near intersection of ``z·D`` with a sphere: ``‖zD - c‖² = r²`` is the quadratic
    ``‖D‖² z² - 2 (D·c) z + (‖c‖² - r²) = 0``, so ``z = (D·c - √disc)/‖D‖²`` with
    ``disc = (D·c)² - ‖D‖² (‖c‖² - r²)``; ``inf`` where ``disc ≤ 0`` (missed) or ``D·c ≤ 0``
    (behind)."""
    disc = Dc.square().sub_(DD * c2)
    miss = (disc <= 0) | (Dc <= 0)
    z = Dc.sub_(disc.clamp_min_(0.0).sqrt_()).div_(DD)
    return z.masked_fill_(miss, float("inf"))


def ray_sphere_depth(
    rays: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor
) -> torch.Tensor:
    """Depth of the first hit of every ray with every sphere (``inf`` if missed), camera outside the
    spheres.

    rays ``D`` with ``D_z = 1``: ``(P, 3)`` shared or ``(B, P, 3)``; centres ``(B, M, 3)``; radii
    ``(B, M)`` → ``(B, M, P)``.
    """
    if rays.ndim == 2:
        Dc = torch.einsum("bmc,pc->bmp", centres, rays)
        DD = (rays * rays).sum(-1)[None, None]
    else:
        Dc = torch.einsum("bmc,bpc->bmp", centres, rays)
        DD = (rays * rays).sum(-1)[:, None]
    c2 = ((centres * centres).sum(-1) - radii * radii)[..., None]
    return _near_root(Dc, DD, c2)


def sphere_pixel_boxes(centres: torch.Tensor, radii: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Conservative pixel bounding boxes ``(B, M, 4)`` = (u0, v0, u1, v1) of spheres in front of the
    camera: the projections of the 8 corners of each sphere's bounding cube (a convex hull of the
    sphere)."""
    signs = torch.tensor(
        [[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)],
        dtype=centres.dtype,
        device=centres.device,
    )
    corners = centres[..., None, :] + radii[..., None, None] * signs  # (B, M, 8, 3)
    z = corners[..., 2].clamp_min(1e-6)
    u = K[0, 0] * corners[..., 0] / z + K[0, 2]
    v = K[1, 1] * corners[..., 1] / z + K[1, 2]
    return torch.stack([u.amin(-1), v.amin(-1), u.amax(-1), v.amax(-1)], -1)


def raycast_spheres(
    centres: torch.Tensor,
    radii: torch.Tensor,
    K: torch.Tensor,
    image_size: int,
    chunk: int | None = None,
    budget: int = 1 << 22,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The z-buffer over spheres: depth of the nearest hit per pixel ``(B, S·S)`` (``inf`` =
    background) and the index of that sphere ``(B, S·S)`` (-1 = background).

    Each sphere can only be hit by the pixels of its bounding box, so it is intersected with the
    rays of a ``w × w`` window there (``w`` = the largest box of the batch), and the nearest hit per
    pixel is kept with a scatter-min: the same result as testing every pixel against every sphere
    (:func:`raycast_dense`), at a fraction of the cost. The ray of pixel (i, j) is separable,
    ``D = (x_j, y_i, 1)``, so ``D·c = x_j c_x + y_i c_y + c_z`` is a broadcast sum. The batch is
    processed in chunks (default: ``chunk·M·w² ≤ budget`` elements) to bound memory.
    """
    B, M = radii.shape
    S = image_size
    boxes = sphere_pixel_boxes(centres, radii, K)
    lo = boxes[..., :2].floor().long()
    w = int((boxes[..., 2:].floor().long() - lo).max().clamp(0, S - 1)) + 1
    off = torch.arange(w, device=centres.device)
    chunk = chunk or max(1, budget // (M * w * w))
    depths, index = [], []
    for i in range(0, B, chunk):
        c, r, l0 = centres[i : i + chunk], radii[i : i + chunk], lo[i : i + chunk]
        b = c.shape[0]
        cols = l0[..., 0, None, None] + off[None, None, None, :]  # (b, M, 1, w)
        rows = l0[..., 1, None, None] + off[None, None, :, None]  # (b, M, w, 1)
        xs = (cols + 0.5 - K[0, 2]) / K[0, 0]
        ys = (rows + 0.5 - K[1, 2]) / K[1, 1]
        Dc = xs * c[..., 0, None, None] + ys * c[..., 1, None, None] + c[..., 2, None, None]
        DD = xs * xs + ys * ys + 1.0
        c2 = ((c * c).sum(-1) - r * r)[..., None, None]
        z = _near_root(Dc, DD, c2)
        inside = (cols >= 0) & (cols < S) & (rows >= 0) & (rows < S)
        z = z.masked_fill_(~inside, float("inf")).reshape(b, -1)
        pix = (rows.clamp(0, S - 1) * S + cols.clamp(0, S - 1)).reshape(b, -1)
        zbuf = torch.full((b, S * S), float("inf"), dtype=z.dtype, device=z.device)
        zbuf.scatter_reduce_(1, pix, z, reduce="amin")
        winner = (z == zbuf.gather(1, pix)) & torch.isfinite(z)
        sid = torch.arange(M, device=z.device)[None, :, None].expand(b, M, w * w).reshape(b, -1)
        ibuf = torch.full((b, S * S), -1, dtype=torch.long, device=z.device)
        ibuf.scatter_reduce_(1, pix, torch.where(winner, sid, -1), reduce="amax")
        depths.append(zbuf)
        index.append(ibuf)
    return torch.cat(depths), torch.cat(index)


def raycast_dense(
    rays: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference z-buffer: every ray against every sphere (``(B, M, P)`` memory; used by the
    tests)."""
    z = ray_sphere_depth(rays, centres, radii)
    zmin, imin = z.min(dim=1)
    return zmin, torch.where(torch.isfinite(zmin), imin, torch.full_like(imin, -1))


def render_geometry(
    centres: torch.Tensor,
    radii: torch.Tensor,
    K: torch.Tensor,
    image_size: int,
    chunk: int | None = None,
) -> dict[str, torch.Tensor]:
    """Exact depth (camera z, metres; 0 where no hit), sphere index (-1 = background), hit mask and
    unit normals ``(p - c)/r`` of spheres given in the camera frame (metres)."""
    B = centres.shape[0]
    S = image_size
    rays = pixel_rays(K, S)
    z, idx = raycast_spheres(centres, radii, K, S, chunk)
    hit = idx >= 0
    z0 = torch.where(hit, z, torch.zeros_like(z))
    p = z0[..., None] * rays[None]  # (B, P, 3)
    safe = idx.clamp_min(0)
    c = torch.gather(centres, 1, safe[..., None].expand(B, -1, 3))
    r = torch.gather(radii, 1, safe)
    normals = torch.where(hit[..., None], (p - c) / r[..., None], torch.zeros_like(p))
    return {
        "depth": z0.reshape(B, 1, S, S),
        "sphere": idx.reshape(B, 1, S, S),
        "hit": hit.reshape(B, 1, S, S),
        "normals": normals.permute(0, 2, 1).reshape(B, 3, S, S),
    }


def lambert(
    albedo: torch.Tensor, normals: torch.Tensor, light: torch.Tensor, ambient: torch.Tensor
) -> torch.Tensor:
    """``albedo·(a + (1 - a)·max(0, n·(-l)))``; albedo and normals ``(B, 3, H, W)``, light ``(B,
    3)``
    (direction of travel, pointing away from the camera), ambient ``(B,)``."""
    cos = (-(normals * light[:, :, None, None]).sum(1, keepdim=True)).clamp_min(0.0)
    a = ambient[:, None, None, None]
    return albedo * (a + (1 - a) * cos)


def sample_sphere_surface(
    centres: torch.Tensor, radii: torch.Tensor, m: int, generator: torch.Generator
) -> torch.Tensor:
    """``m`` points per object on the union of sphere surfaces, sphere chosen in proportion to its
    area.

    Uses ``generator`` on the device of the inputs; returns ``(B, m, 3)`` and the chosen sphere
    ``(B, m)``."""
    B = centres.shape[0]
    area = radii * radii
    cdf = area.cumsum(1)
    u = (
        torch.rand(B, m, generator=generator, device=centres.device, dtype=centres.dtype)
        * cdf[:, -1:]
    )
    k = torch.searchsorted(cdf, u).clamp_max(radii.shape[1] - 1)
    dirs = torch.randn(B, m, 3, generator=generator, device=centres.device, dtype=centres.dtype)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    c = torch.gather(centres, 1, k[..., None].expand(B, m, 3))
    r = torch.gather(radii, 1, k)
    return c + r[..., None] * dirs, k


def visible_cloud(
    centres: torch.Tensor,
    radii: torch.Tensor,
    K: torch.Tensor,
    image_size: int,
    n_points: int,
    generator: torch.Generator,
    oversample: int = 4,
) -> torch.Tensor:
    """A depth-camera-like partial point cloud ``(B, N, 3)`` (camera frame, metres).

    Sample ``M = oversample·N`` surface points, keep those the camera sees (front-facing, first hit
    of their own ray, inside the image), then resample N of them with replacement.
    """
    B = centres.shape[0]
    pts, _ = sample_sphere_surface(centres, radii, oversample * n_points, generator)
    rays = pts / pts[..., 2:3]
    z = torch.cat(
        [
            ray_sphere_depth(rays[i : i + 64], centres[i : i + 64], radii[i : i + 64])
            .min(dim=1)
            .values
            for i in range(0, B, 64)
        ]
    )  # (B, M): first hit along each point's own ray
    uv = rays[..., :2] * K[0, 0] + K[0, 2]
    inside = ((uv >= 0) & (uv < image_size)).all(-1)
    visible = (z >= pts[..., 2] - 1e-5) & inside
    visible = visible | ~visible.any(1, keepdim=True)  # an object fully outside keeps all points
    w = visible.to(pts.dtype).cumsum(1)
    u = torch.rand(B, n_points, generator=generator, device=pts.device, dtype=pts.dtype) * w[:, -1:]
    k = torch.searchsorted(w, u, right=True).clamp_max(pts.shape[1] - 1)
    return torch.gather(pts, 1, k[..., None].expand(B, n_points, 3))


# ---- generic primitives --------------------------------------------------------------------
def capsule_spheres(
    a: torch.Tensor, b: torch.Tensor, ra: torch.Tensor, rb: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A capsule (a tapered limb) from ``a`` to ``b`` as ``n`` spheres at ``t = k/(n-1)``, radius
    ``(1-t)·r_a + t·r_b``: ``a, b (..., 3)``, ``ra, rb (...)`` → centres ``(..., n, 3)``, radii
    ``(..., n)``. Consecutive spheres overlap when the spacing ``‖b - a‖/(n-1)`` is below the
    radius."""
    if n < 2:
        raise ValueError(f"a capsule needs n >= 2 spheres, got {n}")
    t = torch.linspace(0, 1, n, dtype=a.dtype, device=a.device)
    centres = a[..., None, :] + t[:, None] * (b - a)[..., None, :]
    radii = (1 - t) * ra[..., None] + t * rb[..., None]
    return centres, radii


def ray_box_depth(
    rays: torch.Tensor, centres: torch.Tensor, half: torch.Tensor, R: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slab test of rays ``(P, 3)`` from the camera origin against oriented boxes ``(B, N, ·)``.

    In the box frame the ray is ``o + z·d`` with ``o = -Rᵀc``, ``d = RᵀD``; per axis the slab
    ``|x_k| ≤ h_k`` is crossed at ``(±h_k - o_k)/d_k``; the entry depth ``z_in = max_k min(·)`` is a
    hit when ``z_in ≤ z_out = min_k max(·)`` and ``z_in > 0``. Returns depth ``(B, N, P)`` (``inf``
    =
    miss) and the camera-frame outward normal of the entry face ``(B, N, P, 3)``.
    """
    o = -(R.transpose(-1, -2) @ centres[..., None])[..., 0]  # (B, N, 3)
    d = torch.einsum("bnkc,pk->bnpc", R, rays)  # RᵀD: (B, N, P, 3)
    d = torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    t1 = (-half[..., None, :] - o[..., None, :]) / d
    t2 = (half[..., None, :] - o[..., None, :]) / d
    z_in, axis = torch.minimum(t1, t2).max(-1)
    z_out = torch.maximum(t1, t2).amin(-1)
    hit = (z_in <= z_out) & (z_in > 0)
    sign = -torch.sign(torch.gather(d, -1, axis[..., None]))  # the face the ray enters faces it
    n_box = torch.nn.functional.one_hot(axis, 3).to(d.dtype) * sign
    normals = torch.einsum("bnck,bnpk->bnpc", R, n_box)
    return torch.where(hit, z_in, torch.full_like(z_in, float("inf"))), normals


def ray_plane_depth(
    rays: torch.Tensor, normals: torch.Tensor, offsets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays ``(P, 3)`` against planes ``n·X = d`` ``(B, Q, 3)``, ``(B, Q)``: ``z = d/(n·D)`` where
    positive; returns depth ``(B, Q, P)`` and the normal turned towards the camera ``(B, Q, P,
    3)``."""
    nd = torch.einsum("bqc,pc->bqp", normals, rays)
    safe = torch.where(nd.abs() < 1e-12, torch.full_like(nd, 1e-12), nd)
    z = offsets[..., None] / safe
    z = torch.where(
        (z > 0) & (nd.abs() >= 1e-12), z, torch.full_like(z, float("inf"))
    )  # parallel: miss
    facing = torch.where(nd > 0, -1.0, 1.0).to(normals.dtype)
    return z, facing[..., None] * normals[:, :, None, :]


def _ids(group: dict, key: str, shape: tuple[int, int], device) -> torch.Tensor:
    ids = group.get(key)
    if ids is None:
        return torch.zeros(shape, dtype=torch.long, device=device)
    return torch.as_tensor(ids, device=device).long().expand(shape)


def render_scene(
    scene: dict, K: torch.Tensor, image_size: int, chunk: int | None = None
) -> dict[str, torch.Tensor]:
    """Z-buffer a scene of spheres, boxes and planes (camera frame; see the module docs).

    Returns ``depth (B, 1, S, S)`` (0 = background), ``part`` (0 = background), ``instance``
    (-1 = background), ``hit`` and unit ``normals (B, 3, S, S)``. Spheres go through the windowed
    :func:`raycast_spheres`; boxes and planes (few per scene) are tested against every pixel.
    """
    S = image_size
    groups = [g for g in ("spheres", "boxes", "planes") if scene.get(g) is not None]
    if not groups:
        raise ValueError("render_scene: the scene has none of 'spheres', 'boxes', 'planes'")
    first = scene[groups[0]]
    ref = first["centres"] if "centres" in first else first["normals"]
    B, dev, dt = ref.shape[0], ref.device, ref.dtype
    rays = pixel_rays(K, S)
    zs, parts, insts, norms = [], [], [], []
    if "spheres" in groups:
        sp = scene["spheres"]
        c, r = sp["centres"], sp["radii"]
        M = r.shape[1]
        z, idx = raycast_spheres(c, r, K, S, chunk)
        hit = idx >= 0
        safe = idx.clamp_min(0)
        p = torch.where(hit, z, torch.zeros_like(z))[..., None] * rays[None]
        cc = torch.gather(c, 1, safe[..., None].expand(B, -1, 3))
        rr = torch.gather(r, 1, safe)
        zs.append(z[:, None])
        parts.append(torch.gather(_ids(sp, "part", (B, M), dev), 1, safe)[:, None])
        insts.append(torch.gather(_ids(sp, "instance", (B, M), dev), 1, safe)[:, None])
        norms.append(((p - cc) / rr[..., None])[:, None])
    for name, fn, args in (
        ("boxes", ray_box_depth, ("centres", "half", "R")),
        ("planes", ray_plane_depth, ("normals", "offsets")),
    ):
        if name in groups:
            g = scene[name]
            z, n = fn(rays, *(g[a] for a in args))
            N = z.shape[1]
            zs.append(z)
            parts.append(_ids(g, "part", (B, N), dev)[..., None].expand(B, N, z.shape[-1]))
            insts.append(_ids(g, "instance", (B, N), dev)[..., None].expand(B, N, z.shape[-1]))
            norms.append(n)
    z_all = torch.cat(zs, 1)  # (B, C, P)
    zmin, k = z_all.min(1)
    hit = torch.isfinite(zmin)
    pick = lambda x: torch.gather(torch.cat(x, 1), 1, k[:, None]).squeeze(1)  # noqa: E731
    part = torch.where(hit, pick(parts), torch.zeros_like(k))
    inst = torch.where(hit, pick(insts), torch.full_like(k, -1))
    n_all = torch.cat(norms, 1)
    normals = torch.gather(n_all, 1, k[:, None, :, None].expand(B, 1, -1, 3)).squeeze(1)
    normals = torch.where(hit[..., None], normals, torch.zeros_like(normals))
    return {
        "depth": torch.where(hit, zmin, torch.zeros_like(zmin)).reshape(B, 1, S, S).to(dt),
        "part": part.reshape(B, 1, S, S),
        "instance": inst.reshape(B, 1, S, S),
        "hit": hit.reshape(B, 1, S, S),
        "normals": normals.permute(0, 2, 1).reshape(B, 3, S, S),
    }


def scene_to_camera(scene: dict, R: torch.Tensor, t: torch.Tensor) -> dict:
    """A world-frame scene (batch ``B``) seen by ``V`` cameras ``X_c = R·X_w + t`` (``R (V, 3, 3)``,
    ``t (V, 3)``): the camera-frame scene with batch ``B·V`` (scene-major). A plane ``n·X_w = d``
    becomes ``(R n)·X_c = d + (R n)·t``."""
    V = R.shape[0]
    groups = {k: g for k, g in scene.items() if g is not None}
    B = next(iter(groups.values()))[
        "centres" if "centres" in next(iter(groups.values())) else "normals"
    ].shape[0]
    Rv, tv = R.repeat(B, 1, 1), t.repeat(B, 1)
    out = {}
    for name, g in groups.items():
        g2 = {
            k: v.repeat_interleave(V, 0) if torch.is_tensor(v) and v.ndim >= 2 else v
            for k, v in g.items()
        }
        if name in ("spheres", "boxes"):
            g2["centres"] = (Rv[:, None] @ g2["centres"][..., None])[..., 0] + tv[:, None]
        if name == "boxes":
            g2["R"] = Rv[:, None] @ g2["R"]
        if name == "planes":
            n = (Rv[:, None] @ g2["normals"][..., None])[..., 0]
            g2["normals"], g2["offsets"] = n, g2["offsets"] + (n * tv[:, None]).sum(-1)
        out[name] = g2
    return out


def render_views(
    scene: dict,
    K: torch.Tensor,
    image_size: int,
    R: torch.Tensor,
    t: torch.Tensor,
    chunk: int | None = None,
) -> dict[str, torch.Tensor]:
    """Render a world-frame scene (batch ``B``) from ``V`` cameras sharing ``K``: every output of
    :func:`render_scene` shaped ``(B, V, C, S, S)``."""
    V = R.shape[0]
    out = render_scene(scene_to_camera(scene, R, t), K, image_size, chunk)
    return {k: v.reshape(-1, V, *v.shape[1:]) for k, v in out.items()}
