"""Oriented 3-D boxes: corners, rotated bird's-eye-view IoU and 3-D IoU by exact convex clipping.

Derived in the *People, cameras and geometry* chapter (``notebooks/eccv2020/world_people.ipynb``). A
box is ``(x, y, z, l, w, h, yaw)``: centre, length along its own x, width along y, height along the
world's vertical z, and the heading ``yaw`` about z (radians). (KITTI's camera frame has y down and
yaw about y: pass ``(x, z, -y, l, w, h, -ry)``.)
"""
from __future__ import annotations

import torch


def _check_boxes(b: torch.Tensor, name: str) -> None:
    if b.shape[-1] != 7:
        raise ValueError(f"{name} must be (..., 7) = (x, y, z, l, w, h, yaw), got {tuple(b.shape)}")


def bev_corners(boxes: torch.Tensor) -> torch.Tensor:
    """The 4 bird's-eye corners ``(..., 4, 2)`` counter-clockwise: ``c + R(yaw)·(±l/2, ±w/2)``."""
    _check_boxes(boxes, "boxes")
    sx = torch.tensor([0.5, -0.5, -0.5, 0.5], dtype=boxes.dtype, device=boxes.device)
    sy = torch.tensor([0.5, 0.5, -0.5, -0.5], dtype=boxes.dtype, device=boxes.device)
    dx, dy = boxes[..., 3, None] * sx, boxes[..., 4, None] * sy
    c, s = torch.cos(boxes[..., 6, None]), torch.sin(boxes[..., 6, None])
    return torch.stack(
        [boxes[..., 0, None] + c * dx - s * dy, boxes[..., 1, None] + s * dx + c * dy], -1
    )


def box3d_corners(boxes: torch.Tensor) -> torch.Tensor:
    """The 8 corners ``(..., 8, 3)``: the bird's-eye corners at ``z - h/2`` (0-3), then at ``z +
    h/2`` (4-7)."""
    bev = bev_corners(boxes)
    z0 = (boxes[..., 2] - boxes[..., 5] / 2)[..., None, None].expand(*bev.shape[:-1], 1)
    z1 = (boxes[..., 2] + boxes[..., 5] / 2)[..., None, None].expand(*bev.shape[:-1], 1)
    return torch.cat([torch.cat([bev, z0], -1), torch.cat([bev, z1], -1)], -2)


def _cross2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _inside(p: torch.Tensor, poly: torch.Tensor) -> torch.Tensor:
    """Points ``p (..., K, 2)`` inside (or on) the counter-clockwise convex quad ``poly (..., 4,
    2)``."""
    e = poly.roll(-1, -2) - poly  # (..., 4, 2)
    rel = p[..., :, None, :] - poly[..., None, :, :]  # (..., K, 4, 2)
    return (_cross2(e[..., None, :, :].expand_as(rel), rel) >= -1e-9).all(-1)


def convex_intersection_area(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact area of the intersection of counter-clockwise convex quads ``a, b (..., 4, 2)``.

    The intersection polygon's vertices are the corners of each quad inside the other and the
    crossings of their edges (at most 4 + 4 + 16 candidates, masked). It is convex, so sorting its
    vertices by angle about their centroid orders them, and the shoelace formula gives the area.
    """
    ea = a.roll(-1, -2) - a
    eb = b.roll(-1, -2) - b
    p, r = a[..., :, None, :], ea[..., :, None, :]  # edge i of a: p + s·r
    q, sv = b[..., None, :, :], eb[..., None, :, :]  # edge j of b: q + u·sv
    denom = _cross2(r, sv)
    ok = denom.abs() > 1e-12
    dn = torch.where(ok, denom, torch.ones_like(denom))
    s_ = _cross2(q - p, sv) / dn
    u_ = _cross2(q - p, r) / dn
    hit = ok & (s_ >= 0) & (s_ <= 1) & (u_ >= 0) & (u_ <= 1)
    cross_pts = (p + s_[..., None] * r).flatten(-3, -2)  # (..., 16, 2)
    pts = torch.cat([a, b, cross_pts], -2)  # (..., 24, 2)
    valid = torch.cat([_inside(a, b), _inside(b, a), hit.flatten(-2)], -1)
    w = valid.to(pts.dtype)
    n = w.sum(-1, keepdim=True)
    centre = (pts * w[..., None]).sum(-2) / n.clamp_min(1)
    ang = torch.atan2(pts[..., 1] - centre[..., 1, None], pts[..., 0] - centre[..., 0, None])
    ang = torch.where(valid, ang, torch.full_like(ang, 10.0))  # invalid candidates sort last
    order = ang.argsort(-1)
    sp = torch.gather(pts, -2, order[..., None].expand_as(pts))
    sv_ = torch.gather(valid, -1, order)
    sp = torch.where(sv_[..., None], sp, sp[..., :1, :])  # pad with the first vertex: zero area
    area = 0.5 * _cross2(sp, sp.roll(-1, -2)).sum(-1)
    return torch.where(n[..., 0] >= 3, area.abs(), torch.zeros_like(area))


def bev_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rotated bird's-eye-view IoU of boxes ``(..., 7)`` (broadcast), ``(...)``."""
    _check_boxes(a, "a")
    _check_boxes(b, "b")
    a, b = torch.broadcast_tensors(a, b)
    inter = convex_intersection_area(bev_corners(a), bev_corners(b))
    union = a[..., 3] * a[..., 4] + b[..., 3] * b[..., 4] - inter
    return inter / union.clamp_min(1e-12)


def iou_3d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """3-D IoU of boxes ``(..., 7)`` (broadcast): bird's-eye intersection × vertical overlap over
    the union of the volumes, ``(...)``."""
    _check_boxes(a, "a")
    _check_boxes(b, "b")
    a, b = torch.broadcast_tensors(a, b)
    inter = convex_intersection_area(bev_corners(a), bev_corners(b))
    top = torch.minimum(a[..., 2] + a[..., 5] / 2, b[..., 2] + b[..., 5] / 2)
    bottom = torch.maximum(a[..., 2] - a[..., 5] / 2, b[..., 2] - b[..., 5] / 2)
    vol = inter * (top - bottom).clamp_min(0)
    union = a[..., 3:6].prod(-1) + b[..., 3:6].prod(-1) - vol
    return vol / union.clamp_min(1e-12)
