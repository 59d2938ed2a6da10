"""Primitives with exact geometry: signed distances, occupancy, areas, volumes, surface samples.

Derived in the chapter ``notebooks/eccv2020/world_shapes3d.ipynb`` (section 2). Every primitive
lives in its own frame (centred at the origin, axis ``z``) and is described by a type id and a
parameter row of :data:`N_PARAMS` numbers (unused ones are 0):

========  ==  =======================================  ==========================================
type      id  parameters                               patches (``patch`` ids of surface samples)
========  ==  =======================================  ==========================================
sphere     0  r                                        0
ellipsoid  1  a, b, c (semi-axes)                      0
box        2  hx, hy, hz (half extents)                0..5: faces -x, +x, -y, +y, -z, +z
cylinder   3  r, h (half height)                       0 side, 1 bottom cap, 2 top cap
cone       4  r1 (z = -h), r2 (z = +h), h (half height) 0 side, 1 bottom cap, 2 top cap (r2 > 0)
torus      5  R (ring), r (tube)                       0
capsule    6  r, h (half length of the axis segment)   0 side, 1 bottom cap, 2 top cap
superquad  7  a1, a2, a3, eps1, eps2                   0
========  ==  =======================================  ==========================================

Signed distances ``sdf(p) < 0`` inside. They are exact Euclidean distances (Inigo Quilez's forms)
for all types but two: the ellipsoid's distance is found by bisection on the Lagrange multiplier of
the closest-point problem (exact to float64 rounding), and the superquadric's is the *radial*
distance ``|p| (1 - F(p)^(-eps1/2))`` along the ray from the centre (``F`` the inside-outside
function): its zero set and sign are exact, its magnitude an upper bound of the true distance.

Surface samples are uniform in area (probability ∝ area element), with outward unit normals:
direct inverse-CDF maps for sphere, box, cylinder, cone, capsule and torus (whose ``(R + r cos v)``
density is inverted by Newton's method), rejection sampling for the ellipsoid (the sphere mapped by
``diag(a, b, c)``, accepted with probability ``g(u)/max g``) and the superquadric (radial map of the
sphere with the area element ``r³ |∇F| eps1/2`` against a per-row bound). Areas are closed forms,
except the ellipsoid's and the superquadric's: Gauss–Legendre quadrature of the area element.
"""

from __future__ import annotations

import math

import numpy as np
import torch

TYPES = ("sphere", "ellipsoid", "box", "cylinder", "cone", "torus", "capsule", "superquadric")
TYPE_ID = {name: i for i, name in enumerate(TYPES)}
N_PARAMS = 5
#: Which parameters are lengths (they scale with the shape); the superquadric's exponents do not.
LENGTH_PARAMS = torch.tensor(
    [
        [1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
    ],
    dtype=torch.bool,
)
N_PATCHES = (1, 1, 6, 3, 3, 1, 3, 1)


def check_params(types: torch.Tensor, params: torch.Tensor) -> None:
    """Raise a clear error unless ``types (...)`` are type ids and ``params (..., 5)`` match
    them."""
    if params.shape[-1] != N_PARAMS or params.shape[:-1] != types.shape:
        raise ValueError(
            f"expected types (...) and params (..., {N_PARAMS}) with the same leading "
            f"shape, got {tuple(types.shape)} and {tuple(params.shape)}"
        )
    if types.numel() and (types.min() < 0 or types.max() >= len(TYPES)):
        raise ValueError(f"type ids must be in 0..{len(TYPES) - 1} ({', '.join(TYPES)})")


# ------------------------------------------------------------------------------------------------
# Signed distances and occupancy
# ------------------------------------------------------------------------------------------------
def _length(*xs: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(sum(x * x for x in xs))


def _sd_box(p, h):
    q = p.abs() - h
    return _length(*q.clamp_min(0).unbind(-1)) + q.max(-1).values.clamp_max(0)


def _sd_cylinder(p, r, h):
    dx = _length(p[..., 0], p[..., 1]) - r
    dz = p[..., 2].abs() - h
    return torch.maximum(dx, dz).clamp_max(0) + _length(dx.clamp_min(0), dz.clamp_min(0))


def _sd_cone(p, r1, r2, h):
    """Exact distance to a capped cone (frustum), radius ``r1`` at ``z = -h``, ``r2`` at
    ``z = +h``."""
    qx, qy = _length(p[..., 0], p[..., 1]), p[..., 2]
    k2x, k2y = r2 - r1, 2 * h
    cax = qx - torch.minimum(qx, torch.where(qy < 0, r1, r2))
    cay = qy.abs() - h
    s = ((-qx + r2) * k2x + (h - qy) * k2y) / (k2x * k2x + k2y * k2y)
    s = s.clamp(0, 1)
    cbx, cby = qx - r2 + k2x * s, qy - h + k2y * s
    sign = torch.where((cbx < 0) & (cay < 0), -1.0, 1.0).to(p.dtype)
    return sign * torch.sqrt(torch.minimum(cax * cax + cay * cay, cbx * cbx + cby * cby))


def _sd_torus(p, R, r):
    return _length(_length(p[..., 0], p[..., 1]) - R, p[..., 2]) - r


def _sd_capsule(p, r, h):
    z = p[..., 2] - p[..., 2].clamp(-h, h)
    return _length(p[..., 0], p[..., 1], z) - r


def _sd_ellipsoid(p, a, iters: int = 64):
    """Exact distance to the ellipsoid with semi-axes ``a (..., 3)``, by bisection (float64).

    The closest point is ``x_i = a_i² y_i / (a_i² + t)`` with ``t`` the root of
    ``G(t) = Σ (a_i y_i / (a_i² + t))² - 1``, decreasing on ``t > -min a_i²``; in the degenerate
    inside case (``G`` never reaches 0 there) the candidate with ``t = -a_min²`` is used too.
    """
    dtype = p.dtype
    y, a = p.double().abs(), a.double()
    a2 = a * a
    amin2 = a2.min(-1, keepdim=True).values
    lo = -amin2[..., 0] + 1e-300
    hi = (a.max(-1).values * _length(*y.unbind(-1))).clamp_min(1e-12)

    def g(t):
        return ((a * y / (a2 + t[..., None])) ** 2).sum(-1) - 1

    lo = lo.clone()
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        pos = g(mid) > 0
        lo, hi = torch.where(pos, mid, lo), torch.where(pos, hi, mid)
    t = 0.5 * (lo + hi)
    x = a2 * y / (a2 + t[..., None]).clamp_min(1e-300)
    d = _length(*(x - y).unbind(-1))
    on = (((x / a) ** 2).sum(-1) - 1).abs() < 1e-6  # else the root lies at the pole t = -a_min²
    d = torch.where(on, d, math.inf)
    # degenerate inside case: the component on the shortest axis is free
    k = a2.argmin(-1, keepdim=True)
    denom = (a2 - amin2).clamp_min(1e-300)
    xd = torch.where(torch.arange(3, device=p.device) == k, 0.0, a2 * y / denom)
    rest = 1 - ((xd / a) ** 2).sum(-1)
    xk = a.gather(-1, k)[..., 0] * rest.clamp_min(0).sqrt()
    xd = xd.scatter(-1, k, xk[..., None])
    dd = _length(*(xd - y).unbind(-1))
    inside = ((y / a) ** 2).sum(-1) < 1
    d = torch.where(inside & (rest >= 0), torch.minimum(d, dd), d)
    d = torch.where(torch.isfinite(d), d, dd)
    return torch.where(inside, -d, d).to(dtype)


def superquadric_F(p, a, e1, e2):
    """The inside-outside function ``F = ((|x/a1|^(2/e2) + |y/a2|^(2/e2))^(e2/e1) + |z/a3|^(2/e1))``
    (``F < 1`` inside), homogeneous of degree ``2/e1``: ``F(λp) = λ^(2/e1) F(p)``."""
    q = (p / a).abs()
    u = q[..., 0] ** (2 / e2) + q[..., 1] ** (2 / e2)
    return u.clamp_min(1e-30) ** (e2 / e1) + q[..., 2] ** (2 / e1)


def _superquadric_grad(p, a, e1, e2):
    q = (p / a).abs()
    u = (q[..., 0] ** (2 / e2) + q[..., 1] ** (2 / e2)).clamp_min(1e-30)
    c = (2 / e1) * u ** (e2 / e1 - 1)
    gx = c * q[..., 0] ** (2 / e2 - 1) * torch.sign(p[..., 0]) / a[..., 0]
    gy = c * q[..., 1] ** (2 / e2 - 1) * torch.sign(p[..., 1]) / a[..., 1]
    gz = (2 / e1) * q[..., 2] ** (2 / e1 - 1) * torch.sign(p[..., 2]) / a[..., 2]
    return torch.stack([gx, gy, gz], -1)


def _sd_superquadric(p, a, e1, e2):
    rho = _length(*p.unbind(-1))
    return rho * (1 - superquadric_F(p, a, e1, e2).clamp_min(1e-30) ** (-e1 / 2))


def sdf(types: torch.Tensor, params: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Signed distance of local points ``p (..., Q, 3)`` to primitives ``types (...)``,
    ``params (..., 5)`` → ``(..., Q)``; negative inside (see the module docstring for exactness)."""
    check_params(types, params)
    if p.shape[-1] != 3 or p.shape[:-2] != types.shape:
        raise ValueError(
            f"points must be (..., Q, 3) with leading shape {tuple(types.shape)}, "
            f"got {tuple(p.shape)}"
        )
    w = params[..., None, :].expand(*p.shape[:-1], N_PARAMS)
    c = [w[..., i] for i in range(N_PARAMS)]
    out = torch.zeros(p.shape[:-1], dtype=p.dtype, device=p.device)
    t = types[..., None].expand(p.shape[:-1])
    for tid in range(len(TYPES)):
        m = t == tid
        if not m.any():
            continue
        pm, cm = p[m], [x[m] for x in c]
        if tid == 0:
            d = _length(*pm.unbind(-1)) - cm[0]
        elif tid == 1:
            d = _sd_ellipsoid(pm, torch.stack(cm[:3], -1))
        elif tid == 2:
            d = _sd_box(pm, torch.stack(cm[:3], -1))
        elif tid == 3:
            d = _sd_cylinder(pm, cm[0], cm[1])
        elif tid == 4:
            d = _sd_cone(pm, cm[0], cm[1], cm[2])
        elif tid == 5:
            d = _sd_torus(pm, cm[0], cm[1])
        elif tid == 6:
            d = _sd_capsule(pm, cm[0], cm[1])
        else:
            d = _sd_superquadric(pm, torch.stack(cm[:3], -1), cm[3], cm[4])
        out = out.masked_scatter(m, d)
    return out


def occupancy(types: torch.Tensor, params: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Exact inside test ``(..., Q)`` bool: the sign of :func:`sdf` (every SDF here has an
    exact sign)."""
    return sdf(types, params, p) < 0


# ------------------------------------------------------------------------------------------------
# Areas and volumes
# ------------------------------------------------------------------------------------------------
def _gauss_sphere(n: int, device, dtype):
    """Quadrature on the unit sphere: Gauss–Legendre in ``z`` × the trapezoid rule in the angle."""
    z, wz = np.polynomial.legendre.leggauss(n)
    phi = (np.arange(2 * n) + 0.5) * math.pi / n
    zz, pp = np.meshgrid(z, phi, indexing="ij")
    s = np.sqrt(1 - zz**2)
    d = np.stack([s * np.cos(pp), s * np.sin(pp), zz], -1).reshape(-1, 3)
    w = np.repeat(wz, 2 * n) * (math.pi / n)
    return torch.tensor(d, device=device, dtype=dtype), torch.tensor(w, device=device, dtype=dtype)


def _radial_weight(d, a, e1, e2):
    """Area element per unit solid angle of ``d ↦ A x(d)``, ``A = diag(a)``, ``x(d) = r(d) d`` the
    radial map of the unit superquadric (``a = 1``): ``r² / (n·d) = r³ |∇F(x)| e1/2`` (Euler's
    theorem ``x·∇F = (2/e1) F``) times the linear map's factor ``det A |A⁻ᵀ n|``. For an
    ellipsoid (``e = 1``) it is ``sqrt((bc d_x)² + (ac d_y)² + (ab d_z)²)``, smooth for any axes."""
    one = torch.ones_like(a)
    r = superquadric_F(d, one, e1, e2).clamp_min(1e-30) ** (-e1 / 2)
    grad = _superquadric_grad(r[..., None] * d, one, e1, e2)
    gn = _length(*grad.unbind(-1))
    n = grad / gn[..., None].clamp_min(1e-30)
    return r**3 * gn * e1 / 2 * a.prod(-1) * _length(*(n / a).unbind(-1))


def _quadrature_area(a, e1, e2, n: int = 64):
    d, w = _gauss_sphere(n, a.device, torch.float64)
    sh = a.shape[:-1]
    val = _radial_weight(
        d.expand(*sh, -1, 3),
        a.double()[..., None, :],
        e1.double()[..., None],
        e2.double()[..., None],
    )
    return (val * w).sum(-1)


def area(types: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Surface area of each primitive ``(...)`` (closed forms; quadrature for ellipsoid and
    superquadric, see :func:`_quadrature_area`)."""
    check_params(types, params)
    c = params.unbind(-1)
    pi = math.pi
    slant = _length(c[0] - c[1], 2 * c[2])
    a3 = torch.stack(c[:3], -1).clamp_min(1e-12)
    quad = torch.zeros_like(c[0])
    for tid in (1, 7):
        m = types == tid
        if m.any():
            e1 = torch.ones_like(c[0][m]) if tid == 1 else c[3][m]
            e2 = torch.ones_like(c[0][m]) if tid == 1 else c[4][m]
            quad = quad.masked_scatter(m, _quadrature_area(a3[m], e1, e2).to(params.dtype))
    forms = torch.stack(
        [
            4 * pi * c[0] ** 2,
            quad,
            8 * (c[0] * c[1] + c[1] * c[2] + c[0] * c[2]),
            4 * pi * c[0] * c[1] + 2 * pi * c[0] ** 2,
            pi * (c[0] + c[1]) * slant + pi * (c[0] ** 2 + c[1] ** 2),
            4 * pi**2 * c[0] * c[1],
            4 * pi * c[0] * c[1] + 4 * pi * c[0] ** 2,
            quad,
        ],
        -1,
    )
    return forms.gather(-1, types[..., None])[..., 0]


def volume(types: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Volume of each primitive ``(...)``, closed forms (the superquadric's by Jaklič et al.:
    ``2 a1 a2 a3 e1 e2 B(e1/2 + 1, e1) B(e2/2, e2/2)``)."""
    check_params(types, params)
    c = params.unbind(-1)
    pi = math.pi
    e1, e2 = c[3].clamp_min(1e-6), c[4].clamp_min(1e-6)

    def beta(x, y):
        return torch.exp(torch.lgamma(x) + torch.lgamma(y) - torch.lgamma(x + y))

    forms = torch.stack(
        [
            4 / 3 * pi * c[0] ** 3,
            4 / 3 * pi * c[0] * c[1] * c[2],
            8 * c[0] * c[1] * c[2],
            2 * pi * c[0] ** 2 * c[1],
            2 * pi * c[2] / 3 * (c[0] ** 2 + c[0] * c[1] + c[1] ** 2),
            2 * pi**2 * c[0] * c[1] ** 2,
            2 * pi * c[0] ** 2 * c[1] + 4 / 3 * pi * c[0] ** 3,
            2 * c[0] * c[1] * c[2] * e1 * e2 * beta(e1 / 2 + 1, e1) * beta(e2 / 2, e2 / 2),
        ],
        -1,
    )
    return forms.gather(-1, types[..., None])[..., 0]


def superquadric_bound(params: torch.Tensor, n: int = 24) -> torch.Tensor:
    """An upper bound ``(...)`` of the radial area element of superquadric rows ``params (..., 5)``:
    its maximum on a quadrature grid, times 1.25 (the element is smooth for ``eps ≤ 2``)."""
    d, _ = _gauss_sphere(n, params.device, params.dtype)
    sh = params.shape[:-1]
    val = _radial_weight(
        d.expand(*sh, -1, 3), params[..., None, :3], params[..., None, 3], params[..., None, 4]
    )
    return 1.25 * val.max(-1).values


# ------------------------------------------------------------------------------------------------
# Surface samples
# ------------------------------------------------------------------------------------------------
def _uniform(shape, g, device, dtype):
    return torch.rand(shape, generator=g, device=device, dtype=dtype)


def _unit_sphere(n, g, device, dtype):
    v = torch.randn(n, 3, generator=g, device=device, dtype=dtype)
    return v / _length(*v.unbind(-1)).clamp_min(1e-12)[:, None]


def _pick(u: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Index of the weight each uniform ``u (M,)`` falls into, for rows of weights ``(M, K)``."""
    cdf = weights.cumsum(-1)
    cdf = cdf / cdf[:, -1:].clamp_min(1e-30)
    return torch.searchsorted(cdf, u[:, None]).clamp_max(weights.shape[-1] - 1)[:, 0]


def _disc(n, r, z, up, g, device, dtype):
    rho = r * _uniform(n, g, device, dtype).sqrt()
    th = 2 * math.pi * _uniform(n, g, device, dtype)
    p = torch.stack([rho * th.cos(), rho * th.sin(), z], -1)
    nz = torch.where(up, 1.0, -1.0).to(dtype)
    return p, torch.stack([torch.zeros_like(nz), torch.zeros_like(nz), nz], -1)


def _sample_sphere(c, g):
    d = _unit_sphere(len(c[0]), g, c[0].device, c[0].dtype)
    return c[0][:, None] * d, d, torch.zeros(len(d), dtype=torch.long, device=d.device)


def _sample_box(c, g):
    dev, dt = c[0].device, c[0].dtype
    m = len(c[0])
    h = torch.stack(c[:3], -1)
    axis_area = torch.stack([h[:, 1] * h[:, 2], h[:, 0] * h[:, 2], h[:, 0] * h[:, 1]], -1)
    face = _pick(_uniform(m, g, dev, dt), axis_area.repeat_interleave(2, -1))
    axis, side = face // 2, (face % 2) * 2 - 1
    p = (2 * _uniform((m, 3), g, dev, dt) - 1) * h
    onehot = torch.nn.functional.one_hot(axis, 3).bool()
    p = torch.where(onehot, side[:, None].to(dt) * h, p)
    return p, onehot.to(dt) * side[:, None].to(dt), face


def _sample_cylinder_like(c, g, kind):
    """Cylinder (side + caps), frustum (side + caps) and capsule (side + hemispheres)."""
    dev, dt = c[0].device, c[0].dtype
    m = len(c[0])
    if kind == "cone":
        r1, r2, h = c[0], c[1], c[2]
        slant = _length(r1 - r2, 2 * h)
        w = torch.stack([math.pi * (r1 + r2) * slant, math.pi * r1**2, math.pi * r2**2], -1)
    else:
        r1 = r2 = c[0]
        h = c[1]
        cap = math.pi * r1**2 if kind == "cylinder" else 2 * math.pi * r1**2
        w = torch.stack([4 * math.pi * r1 * h, cap, cap], -1)
    patch = _pick(_uniform(m, g, dev, dt), w)
    # side: radius linear in s ∈ [0, 1] from z = -h to +h, density ∝ radius (inverse CDF)
    u = _uniform(m, g, dev, dt)
    dr = r2 - r1
    disc = (r1 * r1 + u * (r2 * r2 - r1 * r1)).clamp_min(0).sqrt()
    s = torch.where(dr.abs() > 1e-12, (disc - r1) / torch.where(dr.abs() > 1e-12, dr, 1.0), u)
    th = 2 * math.pi * _uniform(m, g, dev, dt)
    rho = r1 + dr * s
    side_p = torch.stack([rho * th.cos(), rho * th.sin(), -h + 2 * h * s], -1)
    nrm = torch.stack([2 * h * th.cos(), 2 * h * th.sin(), -dr], -1)
    side_n = nrm / _length(*nrm.unbind(-1))[:, None]
    top = patch == 2
    if kind == "capsule":
        d = _unit_sphere(m, g, dev, dt)
        sign = torch.where(top, 1.0, -1.0).to(dt)
        d = torch.cat([d[:, :2], sign[:, None] * d[:, 2:].abs()], -1)
        cap_p = r1[:, None] * d
        cap_p[:, 2] += sign * h
        cap_n = d
    else:
        cap_p, cap_n = _disc(m, torch.where(top, r2, r1), torch.where(top, h, -h), top, g, dev, dt)
    is_side = (patch == 0)[:, None]
    return torch.where(is_side, side_p, cap_p), torch.where(is_side, side_n, cap_n), patch


def _sample_torus(c, g, newton: int = 30):
    R, r = c[0], c[1]
    dev, dt = R.device, R.dtype
    m = len(R)
    u = _uniform(m, g, dev, dt)
    # tube angle v with density ∝ R + r cos v: CDF (R v + r sin v) / (2π R), Newton from v = 2πu
    target = 2 * math.pi * R * u
    v = 2 * math.pi * u
    for _ in range(newton):
        v = v - (R * v + r * torch.sin(v) - target) / (R + r * torch.cos(v))
    th = 2 * math.pi * _uniform(m, g, dev, dt)
    n = torch.stack([v.cos() * th.cos(), v.cos() * th.sin(), v.sin()], -1)
    ring = torch.stack([R * th.cos(), R * th.sin(), torch.zeros_like(R)], -1)
    return ring + r[:, None] * n, n, torch.zeros(m, dtype=torch.long, device=dev)


def _rejection(propose, accept_prob, m, g, device, max_rounds: int = 200):
    """Draw one accepted proposal per row: ``propose(idx) → (points, normals)`` for the rows
    ``idx``, ``accept_prob(idx, points) → (len(idx),)``. Rounds over the rows still waiting."""
    out_p = out_n = None
    todo = torch.arange(m, device=device)
    for _ in range(max_rounds):
        p, n = propose(todo)
        if out_p is None:
            out_p, out_n = torch.empty(m, 3, dtype=p.dtype, device=device), torch.empty(
                m, 3, dtype=p.dtype, device=device
            )
        ok = _uniform(len(todo), g, device, p.dtype) < accept_prob(todo, p)
        out_p[todo[ok]], out_n[todo[ok]] = p[ok], n[ok]
        todo = todo[~ok]
        if len(todo) == 0:
            return out_p, out_n
    raise RuntimeError("rejection sampling did not converge; are the parameters degenerate?")


def _sample_ellipsoid(c, g):
    a = torch.stack(c[:3], -1)
    dev, dt = a.device, a.dtype
    gmax = torch.stack([a[:, 1] * a[:, 2], a[:, 0] * a[:, 2], a[:, 0] * a[:, 1]], -1).max(-1).values

    def propose(idx):
        u = _unit_sphere(len(idx), g, dev, dt)
        return u, u  # the sphere point, mapped below

    def accept(idx, u):
        ai = a[idx]
        gu = _length(
            ai[:, 1] * ai[:, 2] * u[:, 0],
            ai[:, 0] * ai[:, 2] * u[:, 1],
            ai[:, 0] * ai[:, 1] * u[:, 2],
        )
        return gu / gmax[idx]

    u, _ = _rejection(propose, accept, len(a), g, dev)
    n = u / a
    return (
        a * u,
        n / _length(*n.unbind(-1))[:, None],
        torch.zeros(len(a), dtype=torch.long, device=dev),
    )


def _sample_superquadric(c, g, bound):
    a, e1, e2 = torch.stack(c[:3], -1), c[3], c[4]
    dev, dt = a.device, a.dtype
    if bound is None:
        bound = superquadric_bound(torch.stack(c, -1))

    def propose(idx):
        d = _unit_sphere(len(idx), g, dev, dt)
        return d, d

    def accept(idx, d):
        return _radial_weight(d, a[idx], e1[idx], e2[idx]) / bound[idx]

    d, _ = _rejection(propose, accept, len(a), g, dev)
    one = torch.ones_like(a)
    x = (superquadric_F(d, one, e1, e2).clamp_min(1e-30) ** (-e1 / 2))[:, None] * d * a
    n = _superquadric_grad(x, a, e1, e2)
    return (
        x,
        n / _length(*n.unbind(-1)).clamp_min(1e-30)[:, None],
        torch.zeros(len(a), dtype=torch.long, device=dev),
    )


def sample_surface(
    types: torch.Tensor,
    params: torch.Tensor,
    generator: torch.Generator,
    sq_bound: torch.Tensor | None = None,
):
    """One area-uniform surface sample per row: ``types (M,)``, ``params (M, 5)`` → local points
    ``(M, 3)``, outward unit normals ``(M, 3)`` and patch ids ``(M,)`` (module docstring).

    ``sq_bound (M,)``: the rejection bound of superquadric rows (:func:`superquadric_bound`),
    computed here when not given. ``generator`` lives on the device of ``params``.
    """
    check_params(types, params)
    if types.ndim != 1:
        raise ValueError(
            f"sample_surface takes rows: types (M,), params (M, 5); got {tuple(types.shape)}"
        )
    m = len(types)
    pts = torch.zeros(m, 3, dtype=params.dtype, device=params.device)
    nrm = torch.zeros_like(pts)
    patch = torch.zeros(m, dtype=torch.long, device=params.device)
    for tid in range(len(TYPES)):
        idx = (types == tid).nonzero()[:, 0]
        if len(idx) == 0:
            continue
        c = list(params[idx].unbind(-1))
        if tid == 0:
            p, n, k = _sample_sphere(c, generator)
        elif tid == 1:
            p, n, k = _sample_ellipsoid(c, generator)
        elif tid == 2:
            p, n, k = _sample_box(c, generator)
        elif tid in (3, 4, 6):
            p, n, k = _sample_cylinder_like(c, generator, TYPES[tid])
        elif tid == 5:
            p, n, k = _sample_torus(c, generator)
        else:
            p, n, k = _sample_superquadric(
                c, generator, None if sq_bound is None else sq_bound[idx]
            )
        pts[idx], nrm[idx], patch[idx] = p, n, k
    return pts, nrm, patch
