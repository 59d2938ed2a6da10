"""Meshes with fixed connectivity: bent sheets, tubes, and the operators on them.

Derived in the chapter ``notebooks/eccv2020/world_shapes3d.ipynb`` (section 5). A batch of
meshes shares one ``faces (F, 3)`` long tensor and has ``verts (B, V, 3)``, so a network can
predict vertex positions of a fixed template (SIZER's garments, LIMP's shapes).

**Bent sheets.** A grid on the rectangle ``[0, W] × [0, H]`` (coordinates ``(u, v)``) is bent
along ``u`` onto a planar curve of unit speed in the ``x``–``z`` plane with piecewise-constant
curvature ``κ_k``, and ``y = v``. Such a map is an isometry of the rectangle, so the geodesic
distance between two points of the bent sheet is their *flat* distance ``‖(u, v) - (u', v')‖``
(the rectangle is convex): a closed form for any bend. The curve is integrated exactly:
on a piece of curvature ``κ`` starting at angle ``θ`` the position advances by
``d·sinc(κd/2)·(cos(θ + κd/2), sin(θ + κd/2))`` over arc length ``d``.

**Operators** (dense, batched, differentiable in the vertices): face normals and areas, the graph
Laplacian ``D - A``, the cotangent Laplacian ``L_ij = -(cot α_ij + cot β_ij)/2``,
``L_ii = -Σ_j L_ij``
(positive semi-definite), the lumped mass (a third of the incident face areas), Dijkstra on the edge
graph (:func:`scipy.sparse.csgraph.dijkstra`) and the heat method (Crane, Weischedel & Wardetzky
2013): ``(M + tL) u = δ_s``, ``X = -∇u/|∇u|`` per face, ``L φ = -∇·X``, distance ``φ - φ_s``.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _check_mesh(verts: torch.Tensor, faces: torch.Tensor) -> None:
    if verts.ndim != 3 or verts.shape[-1] != 3:
        raise ValueError(f"verts must be (B, V, 3), got {tuple(verts.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3 or faces.dtype != torch.long:
        raise ValueError(
            f"faces must be a (F, 3) long tensor, got {tuple(faces.shape)} {faces.dtype}"
        )
    if faces.numel() and (faces.min() < 0 or faces.max() >= verts.shape[1]):
        raise ValueError(
            f"faces index vertices 0..{verts.shape[1] - 1}, got {int(faces.min())}.."
            f"{int(faces.max())}"
        )


# ------------------------------------------------------------------------------------------------
# Templates
# ------------------------------------------------------------------------------------------------
def _grid_faces(rows: int, cols: int, wrap: bool, device) -> torch.Tensor:
    r = torch.arange(rows - 1, device=device)
    c = torch.arange(cols if wrap else cols - 1, device=device)
    rr, cc = torch.meshgrid(r, c, indexing="ij")
    a = rr * cols + cc
    b = rr * cols + (cc + 1) % cols
    d = (rr + 1) * cols + cc
    e = (rr + 1) * cols + (cc + 1) % cols
    return torch.cat(
        [torch.stack([a, b, e], -1).reshape(-1, 3), torch.stack([a, e, d], -1).reshape(-1, 3)]
    )


def grid_sheet(
    rows: int, cols: int, width: float = 1.0, height: float = 1.0, device=None, dtype=torch.float32
) -> dict[str, torch.Tensor]:
    """A ``rows × cols`` grid on ``[0, width] × [0, height]``: ``uv (V, 2)`` (``u`` along the
    columns), ``uv_3d (V, 3)`` (flat, ``z = 0``), ``faces (F, 3)`` (counter-clockwise seen from
    +z), ``row (V,)``, ``col (V,)``."""
    if rows < 2 or cols < 2:
        raise ValueError(f"a sheet needs at least 2 rows and 2 columns, got {rows}x{cols}")
    v = torch.linspace(0, height, rows, device=device, dtype=dtype)
    u = torch.linspace(0, width, cols, device=device, dtype=dtype)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    uv = torch.stack([uu, vv], -1).reshape(-1, 2)
    rr, cc = torch.meshgrid(
        torch.arange(rows, device=device), torch.arange(cols, device=device), indexing="ij"
    )
    return {
        "uv": uv,
        "uv_3d": torch.cat([uv, torch.zeros_like(uv[:, :1])], -1),
        "faces": _grid_faces(rows, cols, False, device),
        "row": rr.reshape(-1),
        "col": cc.reshape(-1),
    }


def random_bends(
    n: int,
    generator: torch.Generator,
    pieces: int = 3,
    max_curvature: float = 4.0,
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """``n`` piecewise-constant curvature profiles ``(n, pieces)``, uniform in
    ``±max_curvature``."""
    device = device or generator.device
    return max_curvature * (
        2 * torch.rand(n, pieces, generator=generator, device=device, dtype=dtype) - 1
    )


def bend(uv: torch.Tensor, curvature: torch.Tensor, width: float) -> torch.Tensor:
    """Bend flat points ``uv (B, V, 2)`` (``u ∈ [0, width]``) by the curvature profiles
    ``curvature (B, K)`` (``K`` equal pieces of ``u``): ``(B, V, 3)`` (module docstring)."""
    if uv.ndim != 3 or uv.shape[-1] != 2 or curvature.ndim != 2 or len(curvature) != len(uv):
        raise ValueError(
            f"expected uv (B, V, 2) and curvature (B, K), got {tuple(uv.shape)} and "
            f"{tuple(curvature.shape)}"
        )
    B, K = curvature.shape
    seg = width / K
    kappa = curvature.to(uv.dtype)

    def advance(theta, k, d):
        half = theta + k * d / 2
        s = d * torch.sinc(k * d / (2 * math.pi))
        return s * torch.cos(half), s * torch.sin(half)

    theta0 = torch.cat([torch.zeros_like(kappa[:, :1]), (kappa * seg).cumsum(1)[:, :-1]], 1)
    dx, dz = advance(theta0, kappa, torch.full_like(kappa, seg))
    x0 = torch.cat([torch.zeros_like(dx[:, :1]), dx.cumsum(1)[:, :-1]], 1)
    z0 = torch.cat([torch.zeros_like(dz[:, :1]), dz.cumsum(1)[:, :-1]], 1)
    u = uv[..., 0]
    k = (u / seg).floor().long().clamp(0, K - 1)
    d = u - k.to(u.dtype) * seg
    px, pz = advance(theta0.gather(1, k), kappa.gather(1, k), d)
    return torch.stack([x0.gather(1, k) + px, uv[..., 1], z0.gather(1, k) + pz], -1)


def tube(radii: torch.Tensor, height: float = 1.0, cols: int = 24) -> dict[str, torch.Tensor]:
    """Tubes with elliptic rings: ``radii (B, rows, 2)`` (semi-axes in ``x`` and ``y`` of each
    ring, bottom to top over ``z ∈ [0, height]``) → ``verts (B, rows·cols, 3)``, ``faces``, and
    ``row (V,)``, the ring of every vertex (a garment is a range of rows: a shirt's torso, a
    pair of trousers' legs)."""
    if radii.ndim != 3 or radii.shape[-1] != 2 or radii.shape[1] < 2:
        raise ValueError(f"radii must be (B, rows >= 2, 2), got {tuple(radii.shape)}")
    B, rows, _ = radii.shape
    dev, dt = radii.device, radii.dtype
    phi = torch.arange(cols, device=dev, dtype=dt) * (2 * math.pi / cols)
    z = torch.linspace(0, height, rows, device=dev, dtype=dt)
    x = radii[..., 0:1] * phi.cos()
    y = radii[..., 1:2] * phi.sin()
    verts = torch.stack([x, y, z[None, :, None].expand(B, rows, cols)], -1).reshape(
        B, rows * cols, 3
    )
    row = torch.arange(rows, device=dev).repeat_interleave(cols)
    return {"verts": verts, "faces": _grid_faces(rows, cols, True, dev), "row": row}


def torso_radii(n: int, generator: torch.Generator, rows: int = 16, device=None) -> torch.Tensor:
    """Torso-like ring profiles ``(n, rows, 2)``: hips, waist and chest as smooth bumps with
    random widths and depths."""
    device = device or generator.device
    t = torch.linspace(0, 1, rows, device=device)
    w = 0.12 + 0.04 * torch.rand(n, 3, generator=generator, device=device)
    prof = (
        w[:, :1]
        + (w[:, 1:2] - w[:, :1]) * torch.sin(math.pi * t) ** 2 * (t < 0.5)
        + (w[:, 2:3] - w[:, :1]) * torch.sin(math.pi * t) ** 2 * (t >= 0.5)
    )
    depth = 0.6 + 0.2 * torch.rand(n, 1, generator=generator, device=device)
    return torch.stack([prof, prof * depth], -1)


# ------------------------------------------------------------------------------------------------
# Operators
# ------------------------------------------------------------------------------------------------
def face_normals(verts: torch.Tensor, faces: torch.Tensor, unit: bool = True) -> torch.Tensor:
    """``(B, F, 3)`` face normals (right-hand rule over the face's vertex order); with
    ``unit=False`` their length is twice the face's area."""
    _check_mesh(verts, faces)
    a, b, c = (verts[:, faces[:, i]] for i in range(3))
    n = torch.cross(b - a, c - a, dim=-1)
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-30) if unit else n


def face_areas(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``(B, F)`` triangle areas."""
    return 0.5 * face_normals(verts, faces, unit=False).norm(dim=-1)


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``(B, V, 3)`` area-weighted averages of the incident faces' normals, unit length."""
    n = face_normals(verts, faces, unit=False)
    out = torch.zeros_like(verts)
    for i in range(3):
        out = out.index_add(1, faces[:, i], n)
    return out / out.norm(dim=-1, keepdim=True).clamp_min(1e-30)


def edges(faces: torch.Tensor) -> torch.Tensor:
    """The ``(E, 2)`` undirected edges (``i < j``, sorted) of a triangle list."""
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return torch.unique(e.sort(1).values, dim=0)


def edge_lengths(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``(B, E)`` lengths of :func:`edges`."""
    e = edges(faces)
    return (verts[:, e[:, 0]] - verts[:, e[:, 1]]).norm(dim=-1)


def graph_laplacian(faces: torch.Tensor, n_verts: int) -> torch.Tensor:
    """Dense ``(V, V)`` combinatorial Laplacian ``D - A`` of the edge graph."""
    e = edges(faces)
    A = torch.zeros(n_verts, n_verts, device=faces.device)
    A[e[:, 0], e[:, 1]] = 1
    A[e[:, 1], e[:, 0]] = 1
    return torch.diag(A.sum(1)) - A


def _cotangents(verts, faces):
    """``(B, F, 3)``: the cotangent of each face's angle at vertex 0, 1, 2."""
    out = []
    for i in range(3):
        a, b, c = (verts[:, faces[:, (i + k) % 3]] for k in range(3))
        u, v = b - a, c - a
        out.append((u * v).sum(-1) / torch.cross(u, v, dim=-1).norm(dim=-1).clamp_min(1e-30))
    return torch.stack(out, -1)


def cotangent_laplacian(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Dense ``(B, V, V)`` cotangent Laplacian (positive semi-definite; module docstring)."""
    _check_mesh(verts, faces)
    B, V, _ = verts.shape
    cot = _cotangents(verts, faces)
    L = torch.zeros(B, V * V, dtype=verts.dtype, device=verts.device)
    for k in range(3):  # the angle at vertex k is opposite the edge (k+1, k+2)
        i, j = faces[:, (k + 1) % 3], faces[:, (k + 2) % 3]
        w = -0.5 * cot[..., k]
        L = L.index_add(1, i * V + j, w).index_add(1, j * V + i, w)
    L = L.reshape(B, V, V)
    return L - torch.diag_embed(L.sum(-1))


def mass_lumped(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``(B, V)`` lumped (barycentric) mass: a third of the area of every incident face."""
    a = face_areas(verts, faces) / 3
    out = torch.zeros(verts.shape[:2], dtype=verts.dtype, device=verts.device)
    for i in range(3):
        out = out.index_add(1, faces[:, i], a)
    return out


def dijkstra(verts: torch.Tensor, faces: torch.Tensor, sources) -> np.ndarray:
    """Shortest paths along the edges of one mesh ``verts (V, 3)`` from ``sources``:
    ``(S, V)`` NumPy distances (:func:`scipy.sparse.csgraph.dijkstra`, an upper bound of the
    geodesic distance)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra as _dijkstra

    if verts.ndim != 2 or verts.shape[-1] != 3:
        raise ValueError(f"dijkstra takes one mesh, verts (V, 3); got {tuple(verts.shape)}")
    e = edges(faces).cpu().numpy()
    v = verts.detach().cpu().double().numpy()
    w = np.linalg.norm(v[e[:, 0]] - v[e[:, 1]], axis=1)
    G = coo_matrix((w, (e[:, 0], e[:, 1])), shape=(len(v), len(v))).tocsr()
    return _dijkstra(G, directed=False, indices=np.asarray(sources))


def face_gradient(verts: torch.Tensor, faces: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Per-face gradient ``(B, F, S, 3)`` of vertex functions ``u (B, V, S)`` (piecewise linear):
    ``∇u = Σ_i u_i (N × e_i) / (2A)``, ``e_i`` the edge opposite vertex ``i``, counter-clockwise."""
    n2 = face_normals(verts, faces, unit=False)
    area2 = n2.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    N = n2 / area2
    g = 0
    for i in range(3):
        j, k = faces[:, (i + 1) % 3], faces[:, (i + 2) % 3]
        e = verts[:, k] - verts[:, j]
        g = g + u[:, faces[:, i], :, None] * torch.cross(N, e, dim=-1)[:, :, None]
    return g / area2[..., None]


def divergence(verts: torch.Tensor, faces: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Integrated divergence ``(B, V, S)`` of face vector fields ``X (B, F, S, 3)``:
    ``½ Σ_f [cot θ_k (e_ij · X) + cot θ_j (e_ik · X)]`` at vertex ``i`` of face ``(i, j, k)``."""
    cot = _cotangents(verts, faces)
    B, V = verts.shape[:2]
    out = torch.zeros(B, V, X.shape[2], dtype=X.dtype, device=X.device)
    for s in range(3):
        i, j, k = faces[:, s], faces[:, (s + 1) % 3], faces[:, (s + 2) % 3]
        e1 = (verts[:, j] - verts[:, i])[:, :, None]
        e2 = (verts[:, k] - verts[:, i])[:, :, None]
        val = cot[:, :, (s + 2) % 3, None] * (e1 * X).sum(-1) + cot[:, :, (s + 1) % 3, None] * (
            e2 * X
        ).sum(-1)
        out = out.index_add(1, i, 0.5 * val)
    return out


def heat_geodesic(
    verts: torch.Tensor, faces: torch.Tensor, sources: torch.Tensor, t: float | None = None
) -> torch.Tensor:
    """Geodesic distances ``(B, V, S)`` from the vertices ``sources (S,)`` by the heat method
    (module docstring), dense and differentiable in ``verts (B, V, 3)``. ``t`` defaults to the
    squared mean edge length (Crane et al.'s choice)."""
    _check_mesh(verts, faces)
    B, V, _ = verts.shape
    sources = torch.as_tensor(sources, device=verts.device).long().reshape(-1)
    L = cotangent_laplacian(verts, faces)
    Mv = mass_lumped(verts, faces)
    if t is None:
        t = edge_lengths(verts, faces).mean(1) ** 2
    else:
        t = torch.full((B,), float(t), dtype=verts.dtype, device=verts.device)
    delta = torch.zeros(B, V, len(sources), dtype=verts.dtype, device=verts.device)
    cols = torch.arange(len(sources), device=verts.device)
    delta[:, sources, cols] = 1
    u = torch.linalg.solve(torch.diag_embed(Mv) + t[:, None, None] * L, delta)
    g = face_gradient(verts, faces, u)
    X = -g / g.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    div = divergence(verts, faces, X)
    ones = torch.ones(V, V, dtype=verts.dtype, device=verts.device) / V
    phi = torch.linalg.solve(L + ones, -div)  # Δφ = ∇·X with Δ = -L; the ones fix the constant
    phi = phi - phi[:, sources, cols][:, None]
    return phi


def sample_mesh_surface(verts: torch.Tensor, faces: torch.Tensor, n: int,
                        generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points uniform on the area of each mesh ``verts (B, V, 3)`` with shared ``faces
    (F, 3)`` (the standard way ModelNet's OFF meshes become clouds; the PointMixup chapter): a face
    with probability ∝ its area, then ``(1 - √u) a + √u (1 - v) b + √u v c`` with ``u, v`` uniform
    in [0, 1]. Returns ``points (B, n, 3)`` and the ``face (B, n)`` of each."""
    _check_mesh(verts, faces)
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    area = face_areas(verts, faces)
    if bool((area.sum(1) <= 0).any()):
        raise ValueError("every mesh needs a positive area to sample")
    face = torch.multinomial(area, n, replacement=True, generator=generator)
    B = len(verts)
    u, v = torch.rand(2, B, n, 1, generator=generator, device=verts.device, dtype=verts.dtype)
    su = u.sqrt()
    corner = [verts.gather(1, faces[face, k][..., None].expand(B, n, 3)) for k in range(3)]
    return (1 - su) * corner[0] + su * (1 - v) * corner[1] + su * v * corner[2], face
