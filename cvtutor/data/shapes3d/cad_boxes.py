"""A CAD library of box unions (chairs, tables, sofas) and its renderer: clutter, occlusion,
off-centre objects, exact masks, depth and poses.

Derived in the Mask2CAD chapter (``notebooks/eccv2020/mask2cad.ipynb``). A model is a union of
``NB = 8`` axis-aligned boxes in its own frame (x right, y *down*, z towards the back, as the
camera frame, so an upright object has its top at negative y); unused boxes have zero size. Every
model is centred on its bounding box and scaled so its longest bounding-box edge is ``EXTENT``.
Models differ by sub-structure (arms or not, four legs or a pedestal, a lower shelf, an L-shaped
chaise) and by proportions. Rendering goes through the generic ray caster
:func:`cvtutor.data.render3d.render_scene` (exact per-pixel depth, normals and instance ids).
"""
from __future__ import annotations

import math

import torch

from cvtutor.data.geometry.cameras import intrinsics, project
from cvtutor.data.geometry.rotations import rot_x, rot_y
from cvtutor.data.render3d import lambert, render_scene

CLASSES = ("chair", "table", "sofa")
NB = 8
EXTENT = 1.2


def _u(g: torch.Generator, n: int, lo: float, hi: float, device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


def _coin(g: torch.Generator, n: int, p: float, device) -> torch.Tensor:
    return (torch.rand(n, generator=g, device=device) < p).float()


def _box(cx, cy, cz, hx, hy, hz, on=None):
    """One box slot for ``n`` models: centres ``(n, 3)`` (``y`` = height above the floor, made
    negative later) and halves ``(n, 3)``; ``on`` (0/1) zeroes the box."""
    c = torch.stack(torch.broadcast_tensors(cx, cy, cz), -1)
    h = torch.stack(torch.broadcast_tensors(hx, hy, hz), -1)
    if on is not None:
        c, h = c * on[:, None], h * on[:, None]
    return c, h


def _chairs(n, g, dev):
    w, d, st = _u(g, n, 0.8, 1.1, dev), _u(g, n, 0.75, 1.0, dev), _u(g, n, 0.06, 0.14, dev)
    hs, lt, hb = _u(g, n, 0.4, 0.6, dev), _u(g, n, 0.05, 0.13, dev), _u(g, n, 0.35, 0.9, dev)
    bt, arms, ah = _u(g, n, 0.05, 0.12, dev), _coin(g, n, 0.5, dev), _u(g, n, 0.15, 0.3, dev)
    z = torch.zeros(n, device=dev)
    boxes = [_box(z, hs + st / 2, z, w / 2, st / 2, d / 2)]
    for sx in (-1, 1):
        for sz in (-1, 1):
            boxes.append(_box(sx * (w / 2 - lt / 2), hs / 2, sz * (d / 2 - lt / 2), lt / 2, hs / 2,
                              lt / 2))
    boxes.append(_box(z, hs + st + hb / 2, -(d / 2 - bt / 2), w / 2, hb / 2, bt / 2))
    for sx in (-1, 1):
        boxes.append(_box(sx * (w / 2 - 0.04), hs + st + ah / 2, z + 0.05, 0.04 + z, ah / 2,
                          0.4 * d, arms))
    return boxes


def _tables(n, g, dev):
    w, d, tt = _u(g, n, 1.0, 1.7, dev), _u(g, n, 0.55, 1.0, dev), _u(g, n, 0.04, 0.12, dev)
    H, lt = _u(g, n, 0.5, 0.8, dev), _u(g, n, 0.05, 0.12, dev)
    ped, shelf = _coin(g, n, 0.35, dev), _coin(g, n, 0.4, dev)
    legs, z = 1 - ped, torch.zeros(n, device=dev)
    hl = (H - tt) / 2
    boxes = [_box(z, H - tt / 2, z, w / 2, tt / 2, d / 2)]
    for sx in (-1, 1):
        for sz in (-1, 1):
            boxes.append(_box(sx * (w / 2 - lt / 2), hl, sz * (d / 2 - lt / 2), lt / 2, hl, lt / 2,
                              legs))
    boxes.append(_box(z, hl, z, 1.5 * lt, hl, 1.5 * lt, ped))
    boxes.append(_box(z, 0.03 + z, z, w / 4, 0.03 + z, d / 4, ped))
    boxes.append(_box(z, 0.15 + z, z, w / 2 - lt, 0.02 + z, d / 2 - lt, legs * shelf))
    return boxes


def _sofas(n, g, dev):
    w, d, bh = _u(g, n, 1.4, 2.1, dev), _u(g, n, 0.7, 0.95, dev), _u(g, n, 0.3, 0.45, dev)
    kh, bt = _u(g, n, 0.25, 0.5, dev), _u(g, n, 0.12, 0.25, dev)
    arms, ah, aw = _coin(g, n, 0.6, dev), _u(g, n, 0.12, 0.3, dev), _u(g, n, 0.1, 0.22, dev)
    chaise, cw, cd = _coin(g, n, 0.4, dev), _u(g, n, 0.5, 0.8, dev), _u(g, n, 0.4, 0.8, dev)
    z = torch.zeros(n, device=dev)
    boxes = [_box(z, bh / 2, z, w / 2, bh / 2, d / 2),
             _box(z, bh + kh / 2, -(d / 2 - bt / 2), w / 2, kh / 2, bt / 2)]
    for sx in (-1, 1):
        boxes.append(_box(sx * (w / 2 - aw / 2), bh + ah / 2, z, aw / 2, ah / 2, d / 2, arms))
    boxes.append(_box(w / 2 - cw / 2, bh / 2, d / 2 + cd / 2, cw / 2, bh / 2, cd / 2, chaise))
    zero = _box(z, z, z, z, z, z)
    return boxes + [zero] * (NB - len(boxes))


def cad_library(n_per_class: int, generator: torch.Generator, device=None) -> dict[str, torch.Tensor]:
    """``3·n_per_class`` box-union models: ``centres, half (M, NB, 3)`` (object frame, y down),
    ``label (M,)`` class index into :data:`CLASSES`, ``valid (M, NB)`` (box has volume).

    Each model is centred on its bounding box and scaled so that its longest edge is
    :data:`EXTENT`. Seeded: the same generator state gives the same library.
    """
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    dev = device or generator.device
    cs, hs, labels = [], [], []
    for k, make in enumerate((_chairs, _tables, _sofas)):
        boxes = make(n_per_class, generator, dev)
        c = torch.stack([b[0] for b in boxes], 1)
        h = torch.stack([b[1] for b in boxes], 1)
        cs.append(c * c.new_tensor([1.0, -1.0, 1.0]))  # height up = -y
        hs.append(h)
        labels.append(torch.full((n_per_class,), k, dtype=torch.long, device=dev))
    c, h = torch.cat(cs), torch.cat(hs)
    valid = (h > 1e-6).all(-1)
    big = torch.full_like(c, float("inf"))
    lo = torch.where(valid[..., None], c - h, big).amin(1)
    hi = torch.where(valid[..., None], c + h, -big).amax(1)
    centre, scale = (lo + hi) / 2, EXTENT / (hi - lo).amax(-1)
    c = (c - centre[:, None]) * scale[:, None, None] * valid[..., None]
    h = h * scale[:, None, None] * valid[..., None]
    return {"centres": c, "half": h, "label": torch.cat(labels), "valid": valid}


def _check_library(lib: dict) -> None:
    for key in ("centres", "half", "label", "valid"):
        if key not in lib:
            raise KeyError(f"a CAD library needs the key {key!r} (see cad_library), got {sorted(lib)}")
    if lib["centres"].ndim != 3 or lib["centres"].shape[-1] != 3:
        raise ValueError(f"library centres must be (M, NB, 3), got {tuple(lib['centres'].shape)}")


def inside(lib: dict, p: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """``(M, P)`` bool: is point ``p (M, P, 3)`` (object frame) strictly inside one of model m's
    boxes (shrunk by ``margin``)?"""
    _check_library(lib)
    d = (p[:, :, None] - lib["centres"][:, None]).abs()  # (M, P, NB, 3)
    inner = (d < lib["half"][:, None] - margin).all(-1) & lib["valid"][:, None]
    return inner.any(-1)


def sample_surface(lib: dict, n: int, generator: torch.Generator, oversample: int = 4
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points on the outer surface of every model and their outward normals, both ``(M, n,
    3)``: faces drawn by area, uniform on the face, points inside another box (hidden faces of the
    union) rejected."""
    _check_library(lib)
    c, h = lib["centres"], lib["half"]
    M, dev = c.shape[0], c.device
    P = oversample * n
    # the 6·NB faces: axis a, sign s; area 4·h_b·h_c
    ax = torch.arange(3, device=dev).repeat_interleave(2)  # (6,)
    sg = torch.tensor([-1.0, 1.0], device=dev).repeat(3)
    area = torch.stack([4 * h[..., (a + 1) % 3] * h[..., (a + 2) % 3] for a in ax.tolist()], -1)
    face = torch.multinomial(area.reshape(M, -1) + 1e-12, P, replacement=True, generator=generator)
    box, f = face // 6, face % 6
    cb = torch.gather(c, 1, box[..., None].expand(M, P, 3))
    hb = torch.gather(h, 1, box[..., None].expand(M, P, 3))
    uv = 2 * torch.rand(M, P, 3, generator=generator, device=dev) - 1
    normal = torch.nn.functional.one_hot(ax[f], 3).to(c.dtype) * sg[f][..., None]
    on_face = torch.where(normal != 0, normal, uv)
    p = cb + on_face * hb
    keep = ~inside(lib, p, margin=1e-6)
    pick = torch.multinomial(keep.to(c.dtype) + 1e-9, n, replacement=False, generator=generator)
    return (torch.gather(p, 1, pick[..., None].expand(M, n, 3)),
            torch.gather(normal, 1, pick[..., None].expand(M, n, 3)))


def voxelize(lib: dict, res: int) -> torch.Tensor:
    """``(M, res, res, res)`` float occupancy of voxel centres in the cube ``[-EXTENT/2,
    EXTENT/2]³`` (axes x, y, z)."""
    _check_library(lib)
    g = (torch.arange(res, device=lib["centres"].device) + 0.5) / res * EXTENT - EXTENT / 2
    X = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(1, -1, 3)
    occ = inside(lib, X.expand(lib["centres"].shape[0], -1, -1))
    return occ.reshape(-1, res, res, res).float()


def voxel_surface(occ: torch.Tensor, n: int, generator: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points and normals ``(B, n, 3)`` on the boundary faces of voxel grids ``occ (B, R, R,
    R)`` (occupied voxel, empty neighbour): face centres jittered across the face. An empty grid
    gives points at the origin."""
    if occ.ndim != 4 or len(set(occ.shape[1:])) != 1:
        raise ValueError(f"occ must be cubic voxel grids (B, R, R, R), got {tuple(occ.shape)}")
    B, R = occ.shape[0], occ.shape[1]
    o = occ > 0.5
    pad = torch.nn.functional.pad(o.float(), (1, 1, 1, 1, 1, 1)).bool()
    g = (torch.arange(R, device=occ.device) + 0.5) / R * EXTENT - EXTENT / 2
    C = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1)  # (R, R, R, 3)
    pts, nrm, wts = [], [], []
    for a in range(3):
        for s in (-1, 1):
            sl = [slice(1, R + 1)] * 3
            sl[a] = slice(1 + s, R + 1 + s)
            boundary = o & ~pad[(slice(None), *sl)]
            e = torch.zeros(3, device=occ.device)
            e[a] = s
            pts.append((C + e * EXTENT / (2 * R)).reshape(1, -1, 3).expand(B, -1, -1))
            nrm.append(e.expand(B, R ** 3, 3))
            wts.append(boundary.reshape(B, -1).float())
    pts, nrm, w = torch.cat(pts, 1), torch.cat(nrm, 1), torch.cat(wts, 1)
    pick = torch.multinomial(w + 1e-12, n, replacement=True, generator=generator)
    p = torch.gather(pts, 1, pick[..., None].expand(B, n, 3))
    nn_ = torch.gather(nrm, 1, pick[..., None].expand(B, n, 3))
    jitter = (torch.rand(B, n, 3, generator=generator, device=occ.device) - 0.5) * EXTENT / R
    p = p + jitter * (nn_ == 0)
    empty = (w.sum(1) == 0)[:, None, None]
    return torch.where(empty, torch.zeros_like(p), p), nn_


def pose_rotation(yaw_deg: torch.Tensor, pitch_deg: torch.Tensor) -> torch.Tensor:
    """Object-to-camera rotation ``R = R_x(pitch)·R_y(yaw)``: spin about the vertical, then tilt
    the top towards the camera (a camera looking down by ``pitch``)."""
    return rot_x(pitch_deg) @ rot_y(yaw_deg)


def render_cad(lib: dict, model: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
               image_size: int, focal: float, extra: dict | None = None, chunk: int = 128
               ) -> dict[str, torch.Tensor]:
    """Render models ``model (B,)`` at camera poses ``X_c = R·X_o + t`` (``R (B, 3, 3)``, ``t (B,
    3)``), with optional ``extra = {"centres", "half", "R"}`` boxes ``(B, E, ·)`` (clutter,
    occluders; instance 1), ``chunk`` images at a time. Returns :func:`render_scene`'s dict with
    ``instance`` 0 on the model."""
    _check_library(lib)
    B = model.shape[0]
    if R.shape != (B, 3, 3) or t.shape != (B, 3):
        raise ValueError(f"R must be ({B}, 3, 3) and t ({B}, 3), got {tuple(R.shape)}, {tuple(t.shape)}")
    c = lib["centres"][model]
    h = lib["half"][model]
    centres = (R[:, None] @ c[..., None])[..., 0] + t[:, None]
    boxes_R = R[:, None].expand(B, NB, 3, 3)
    inst = torch.zeros(B, NB, dtype=torch.long, device=c.device)
    if extra is not None:
        centres = torch.cat([centres, extra["centres"]], 1)
        h = torch.cat([h, extra["half"]], 1)
        boxes_R = torch.cat([boxes_R, extra["R"]], 1)
        inst = torch.cat([inst, torch.ones(B, extra["half"].shape[1], dtype=torch.long,
                                           device=c.device)], 1)
    K = intrinsics(image_size, focal, dtype=c.dtype, device=c.device)
    parts = [render_scene({"boxes": {"centres": centres[i:i + chunk], "half": h[i:i + chunk],
                                     "R": boxes_R[i:i + chunk], "instance": inst[i:i + chunk]}},
                          K, image_size) for i in range(0, B, chunk)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def render_views(lib: dict, R_views: torch.Tensor, image_size: int, focal: float, depth: float
                 ) -> torch.Tensor:
    """The CAD renderings ``(M, V, 1, S, S)``: every model at every canonical rotation ``R_views
    (V, 3, 3)``, centred at ``depth``, plain Lambertian shading with a headlight, black
    background."""
    M, V = lib["centres"].shape[0], R_views.shape[0]
    model = torch.arange(M, device=R_views.device).repeat_interleave(V)
    R = R_views.repeat(M, 1, 1)
    t = R.new_tensor([0.0, 0.0, depth]).expand(M * V, 3)
    out = render_cad(lib, model, R, t, image_size, focal)
    return _shade(out, R.new_tensor([0.3, 0.5, 1.0]).expand(M * V, 3), 0.3, 1.0
                  ).reshape(M, V, 1, image_size, image_size)


def mask_boxes(mask: torch.Tensor) -> torch.Tensor:
    """Tight boxes ``(B, 4)`` ``(x0, y0, x1, y1)`` (pixel edges) of masks ``(B, 1, S, S)``; an
    empty mask gives the whole image."""
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must be (B, 1, S, S), got {tuple(mask.shape)}")
    S = mask.shape[-1]
    m = mask > 0.5 if mask.dtype != torch.bool else mask
    r = torch.arange(S, device=mask.device, dtype=torch.float32)
    rows, cols = m.any(-1)[:, 0], m.any(-2)[:, 0]
    big = torch.full_like(rows, S, dtype=torch.float32)
    box = torch.stack([torch.where(cols, r, big).amin(-1), torch.where(rows, r, big).amin(-1),
                       torch.where(cols, r + 1, -big).amax(-1),
                       torch.where(rows, r + 1, -big).amax(-1)], -1)
    return torch.where(rows.any(-1)[:, None], box, box.new_tensor([0.0, 0.0, S, S]))


def _shade(out: dict, light: torch.Tensor, ambient: float, albedo) -> torch.Tensor:
    B = light.shape[0]
    light = light / light.norm(dim=-1, keepdim=True)
    a = torch.full((B,), ambient, device=light.device, dtype=light.dtype)
    alb = torch.as_tensor(albedo, dtype=light.dtype, device=light.device).expand(B)[:, None, None,
                                                                                     None]
    img = lambert(alb.expand(B, 3, *out["depth"].shape[-2:]), out["normals"], light, a)[:, :1]
    return torch.where(out["hit"], img, torch.zeros_like(img))


def cad_images(lib: dict, model: torch.Tensor, generator: torch.Generator, image_size: int,
               focal: float, pitch: tuple[float, float] = (10.0, 40.0),
               depth: tuple[float, float] = (2.6, 3.4), shift: float = 0.12,
               occlusion: float = 0.5, clutter: int = 2) -> dict[str, torch.Tensor]:
    """"Real" images of ``model (B,)``: random yaw in [0, 360°), pitch in ``pitch``, depth in
    ``depth``, the object shifted off the optical axis by up to ``shift·S`` pixels, ``clutter``
    random boxes behind it, with probability ``occlusion`` a random box in front of it, random
    albedos and light, a noisy background.

    Returns ``image (B, 1, S, S)`` in [0, 1], the visible ``mask (B, 1, S, S)``, its ``box (B, 4)``
    ``(x0, y0, x1, y1)`` in pixels, the object ``R (B, 3, 3)``, ``t (B, 3)``, the projected centre
    ``centre (B, 2)`` and the GT rotation ``yaw, pitch`` in degrees.
    """
    _check_library(lib)
    B, dev, S = model.shape[0], lib["centres"].device, image_size
    u = lambda lo, hi, *shape: lo + (hi - lo) * torch.rand(  # noqa: E731
        *(shape or (B,)), generator=generator, device=dev)
    yaw, pit = u(0.0, 360.0), u(*pitch)
    R = pose_rotation(yaw, pit)
    z = u(*depth)
    off = u(-shift, shift, B, 2) * S / focal * z[:, None]
    t = torch.cat([off, z[:, None]], 1)
    # clutter behind, an occluder in front (a box far away when there is none)
    E = clutter + 1
    cc = torch.cat([u(-1.2, 1.2, B, clutter, 2) * 1.5, u(4.5, 6.0, B, clutter, 1)], -1)
    occ_on = torch.rand(B, generator=generator, device=dev) < occlusion
    side = torch.where(torch.rand(B, 1, generator=generator, device=dev) < 0.5, -1.0, 1.0)
    oc = torch.cat([side * u(0.35, 0.6, B, 1), u(-0.4, 0.4, B, 1), u(1.5, 1.8, B, 1)], -1)
    oc = torch.where(occ_on[:, None], oc, oc.new_tensor([0.0, 0.0, -50.0]))
    extra = {"centres": torch.cat([cc, oc[:, None]], 1),
             "half": torch.cat([u(0.3, 0.8, B, clutter, 3), u(0.08, 0.2, B, 1, 3)], 1),
             "R": pose_rotation(u(0.0, 90.0, B, E), torch.zeros(B, E, device=dev))}
    out = render_cad(lib, model, R, t, S, focal, extra)
    light = torch.cat([u(-1.0, 1.0, B, 2), u(0.5, 1.5, B, 1)], -1)
    inst = out["instance"]
    alb = torch.where(inst == 0, u(0.5, 1.0)[:, None, None, None], u(0.2, 0.9)[:, None, None, None])
    img = _shade(out, light, 0.35, 1.0) * alb
    noise = torch.rand(B, 1, S // 4, S // 4, generator=generator, device=dev)
    bg = 0.15 + 0.35 * torch.nn.functional.interpolate(noise, size=(S, S), mode="bilinear",
                                                      align_corners=False)
    img = torch.where(out["hit"], img, bg)
    mask = inst == 0
    box = mask_boxes(mask)
    K = intrinsics(S, focal, dtype=img.dtype, device=dev)
    centre = project(t[:, None], K)[:, 0]
    return {"image": img.clamp(0, 1), "mask": mask.float(), "box": box, "R": R, "t": t,
            "centre": centre, "yaw": yaw, "pitch": pit, "model": model, "focal": focal}
