"""Tests of cvtutor.data.raster: SDFs against closed forms and skimage.draw, compositing against a
brute-force painter, textures in the object frame, devices and bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import draw

from cvtutor.data import raster as R


def one(kind, center, angle=0.0, params=(0.0, 0.0, 0.0), points=None) -> R.Primitives:
    """One primitive in one scene."""
    pts = None if points is None else torch.tensor(points, dtype=torch.float32)[None, None]
    return R.primitives(torch.tensor([[R.KINDS.index(kind)]]),
                        torch.tensor([[center]], dtype=torch.float32), torch.tensor([[angle]]),
                        torch.tensor([[params]], dtype=torch.float32), pts)


def alpha(prims, size=64, aa=1.0):
    return R.coverage(R.signed_distance(prims, size, size), aa)[0, 0]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def convex_polygon(rng, n, center, radius):
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    return np.stack([center[0] + radius * np.cos(t), center[1] + radius * np.sin(t)], 1)


# ---------------------------------------------------------------------------------------------
# against skimage.draw (pixel (r, c) of skimage has its centre at our (c + 1/2, r + 1/2))
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_polygon_matches_skimage(seed):
    rng = np.random.default_rng(seed)
    verts = convex_polygon(rng, int(rng.integers(3, 9)), (32, 32), rng.uniform(8, 26))
    ours = alpha(one("polygon", (0.0, 0.0), points=verts.tolist()), aa=0).numpy() > 0
    ref = np.zeros((64, 64), bool)
    ref[draw.polygon(verts[:, 1] - 0.5, verts[:, 0] - 0.5, (64, 64))] = True
    assert iou(ours, ref) > 0.98


@pytest.mark.parametrize("radius", [3.0, 5.5, 10.0, 20.3])
def test_disc_area_and_skimage(radius):
    a = alpha(one("disc", (31.7, 32.2), params=(radius, 0, 0)))
    assert float(a.sum()) == pytest.approx(math.pi * radius**2, rel=0.01)
    ref = np.zeros((64, 64), bool)
    ref[draw.disk((32.2 - 0.5, 31.7 - 0.5), radius, shape=(64, 64))] = True
    assert iou(a.numpy() >= 0.5, ref) > 0.98


@pytest.mark.parametrize("angle", [0.0, 0.4, 1.3, -2.0])
def test_rotated_ellipse_matches_skimage(angle):
    a = alpha(one("ellipse", (30.0, 33.0), angle, (20.0, 8.0, 0)))
    assert float(a.sum()) == pytest.approx(math.pi * 20 * 8, rel=0.01)
    ref = np.zeros((64, 64), bool)  # skimage turns counter-clockwise in (row, col): our -angle
    ref[draw.ellipse(33.0 - 0.5, 30.0 - 0.5, 8.0, 20.0, shape=(64, 64), rotation=-angle)] = True
    assert iou(a.numpy() >= 0.5, ref) > 0.98


def test_rotated_box_matches_its_polygon():
    angle, half = 0.7, np.array([14.0, 5.0])
    box = alpha(one("box", (32.0, 30.0), angle, (*half, 0)), aa=0).numpy() > 0
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    c, s = np.cos(angle), np.sin(angle)
    img = corners @ np.array([[c, s], [-s, c]]) + [32.0, 30.0]
    ref = np.zeros((64, 64), bool)
    ref[draw.polygon(img[:, 1] - 0.5, img[:, 0] - 0.5, (64, 64))] = True
    assert iou(box, ref) > 0.98


# ---------------------------------------------------------------------------------------------
# closed forms
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, params, points, area", [
    ("box", (12.0, 7.0, 0), None, 4 * 12 * 7),
    ("rounded_box", (12.0, 7.0, 4.0), None, 4 * 12 * 7 - (4 - math.pi) * 16),
    ("ring", (15.0, 4.0, 0), None, math.pi * (17**2 - 13**2)),
    ("polyline", (3.0, 0, 0), [[-15.0, -5.0], [12.0, 9.0]],
     2 * 3 * math.hypot(27, 14) + math.pi * 9),
    ("bezier", (3.0, 0, 0), [[-15.0, -5.0], [-6.0, 0.0], [3.0, 4.0], [12.0, 9.0]],
     2 * 3 * math.hypot(27, 14) + math.pi * 9),                             # collinear: a capsule
    ("polygon", (0, 0, 0), [[-10.0, -8.0], [14.0, -8.0], [2.0, 12.0], [2.0, 12.0]], 24 * 20 / 2),
])
def test_areas_are_the_closed_forms(kind, params, points, area):
    a = alpha(one(kind, (32.3, 31.6), 0.5, params, points))
    assert float(a.sum()) == pytest.approx(area, rel=0.01)


def test_sdf_values_at_hand_points():
    q = torch.tensor([[0.0, 0.0], [13.0, 0.0], [15.0, 11.0], [5.0, 3.0]])
    close, t = torch.testing.assert_close, torch.tensor
    box = R.sdf_box(q, t([10.0, 7.0]))
    close(box, t([-7.0, 3.0, math.sqrt(41), -4.0]))
    close(R.sdf_disc(q, t(5.0)), q.norm(dim=1) - 5)
    rect = t([[-10.0, -7.0], [10.0, -7.0], [10.0, 7.0], [-10.0, 7.0]])
    close(R.sdf_polygon(q, rect), box)
    close(R.sdf_polygon(q, rect.flip(0)), box)                              # either orientation
    close(R.sdf_ellipse(q[:2], t([10.0, 10.0])), t([-10.0, 3.0]))
    capsule = R.sdf_capsule(q, t([-5.0, 0]), t([5.0, 0]), t(1.0))
    close(capsule, t([-1.0, 7.0, math.hypot(10, 11) - 1, 2.0]))
    close(R.sdf_ring(q[:2], t(10.0), t(2.0)), t([9.0, 2.0]))


def test_coverage_is_the_box_filter_of_a_straight_edge():
    sdf = torch.tensor([-2.0, -0.5, -0.25, 0.0, 0.25, 0.5, 2.0])
    torch.testing.assert_close(R.coverage(sdf), torch.tensor([1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0]))
    assert R.coverage(sdf, aa=0).tolist() == [1, 1, 1, 1, 0, 0, 0]
    # an axis-aligned half plane x <= 20.3 covers 20.3 pixels of each row exactly
    a = alpha(one("box", (0.0, 32.0), params=(20.3, 100.0, 0)))
    torch.testing.assert_close(a.sum(1), torch.full((64,), 20.3))


# ---------------------------------------------------------------------------------------------
# compositing
# ---------------------------------------------------------------------------------------------
def random_scene(b=3, p=7, size=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    kind = torch.randint(0, len(R.KINDS), (b, p), generator=g)
    center = torch.rand(b, p, 2, generator=g) * size
    angle = torch.rand(b, p, generator=g) * 6.3
    params = torch.rand(b, p, 3, generator=g) * torch.tensor([10.0, 6.0, 2.0]) + 3.0
    params[..., 2] = params[..., 2] - 2.5                                   # corner radius 0.5..2.5
    points = (torch.rand(b, p, 4, 2, generator=g) - 0.5) * 20
    points[..., 0] = points[..., 0].sort(-1).values                       # 4 points, sorted by x:
    points[..., 1] = points[..., 1] * torch.tensor([-1.0, 1.0, 1.0, -1.0]).abs()   # any path
    hull = torch.tensor([[-8.0, -6.0], [9.0, -5.0], [4.0, 8.0], [-6.0, 5.0]])
    points = torch.where((kind == R.POLYGON)[..., None, None], hull, points)
    valid = torch.rand(b, p, generator=g) < 0.9
    prims = R.primitives(kind, center, angle, params, points, valid=valid)
    colors = torch.rand(b, p, 3, generator=g)
    z = torch.randint(0, 3, (b, p), generator=g).float()                   # ties on purpose
    return prims, colors, z, torch.rand(b, 3, generator=g)


def test_every_visible_pixel_shows_its_front_object():
    prims, colors, z, bg = random_scene()
    out = R.render(prims, colors, (48, 48), bg, z=z, aa=0)
    sdf = R.signed_distance(prims, 48, 48)
    b, p = prims.shape
    for i in range(b):
        depth = z[i] * (p + 1) + torch.arange(p)                           # ties: later in front
        cover = sdf[i] <= 0
        key = torch.where(cover, depth[:, None, None], -math.inf)
        want = torch.where(cover.any(0), key.argmax(0), -1)
        assert torch.equal(out.ids[i], want)
        front = colors[i][want.clamp_min(0)].permute(2, 0, 1)
        shown = torch.where(want[None] >= 0, front, bg[i][:, None, None])
        torch.testing.assert_close(out.rgb[i], shown, atol=1e-6, rtol=0)   # RGB = front colour
    assert torch.equal(out.masks, sdf <= 0)                                # amodal: occluded or not
    assert torch.equal(out.visible_masks, out.visible > 0.5)


def test_soft_weights_sum_to_one_and_ids_follow_the_centre_test():
    prims, colors, z, bg = random_scene(seed=1)
    out = R.render(prims, colors, (48, 48), bg, z=z)
    weights = out.visible.sum(1) + out.alpha.mul(-1).add(1).prod(1)        # objects + background
    torch.testing.assert_close(weights, torch.ones_like(weights))
    hard = R.render(prims, colors, (48, 48), bg, z=z, aa=0)
    assert torch.equal(out.ids, hard.ids) and torch.equal(out.masks, hard.masks)
    inside = out.alpha.amax(1) < 1e-6
    bg_image = bg[:, None, None].expand(-1, 48, 48, -1)
    torch.testing.assert_close(out.rgb.permute(0, 2, 3, 1)[inside], bg_image[inside])


def test_z_order_decides_which_overlapping_disc_is_seen():
    center = torch.tensor([[[20.0, 24.0], [28.0, 24.0]]])
    prims = R.primitives("disc", center, params=torch.tensor([[[10.0, 0, 0], [10.0, 0, 0]]]))
    colors = torch.tensor([[[1.0, 0, 0], [0, 0, 1.0]]])
    a = R.render(prims, colors, (48, 48), torch.ones(1, 3), z=torch.tensor([[1.0, 0.0]]))
    b = R.render(prims, colors, (48, 48), torch.ones(1, 3), z=torch.tensor([[0.0, 1.0]]))
    assert int(a.ids[0, 24, 24]) == 0 and int(b.ids[0, 24, 24]) == 1
    assert a.rgb[0, :, 24, 24].tolist() == [1.0, 0.0, 0.0]
    assert b.rgb[0, :, 24, 24].tolist() == [0.0, 0.0, 1.0]
    assert a.order.tolist() == [[0, 1]] and b.order.tolist() == [[1, 0]]
    torch.testing.assert_close(a.amodal, b.amodal)                         # amodal: occlusion-free
    assert int(a.visible_masks[0, 1].sum()) < int(a.masks[0, 1].sum())


def test_instances_made_of_parts():
    # a house: body (box, part 0) + roof (triangle, part 1) as instance 0; a sun (disc) instance 1
    kind = torch.tensor([[R.BOX, R.POLYGON, R.DISC]])
    center = torch.tensor([[[20.0, 36.0], [20.0, 20.0], [44.0, 12.0]]])
    params = torch.tensor([[[10.0, 8.0, 0], [0, 0, 0], [6.0, 0, 0]]])
    points = torch.zeros(1, 3, 3, 2)
    points[0, 1] = torch.tensor([[-12.0, 8.0], [12.0, 8.0], [0.0, -8.0]])
    prims = R.primitives(kind, center, params=params, points=points)
    out = R.render(prims, torch.rand(1, 3, 3), (56, 56), torch.ones(1, 3),
                   instance=torch.tensor([[0, 0, 1]]), part=torch.tensor([[0, 1, 0]]), aa=0)
    assert out.amodal.shape == (1, 2, 56, 56)
    assert int(out.ids[0, 36, 20]) == 0 and int(out.parts[0, 36, 20]) == 0
    assert int(out.ids[0, 18, 20]) == 0 and int(out.parts[0, 18, 20]) == 1
    assert int(out.ids[0, 12, 44]) == 1
    assert int(out.ids[0, 2, 2]) == -1 and int(out.parts[0, 2, 2]) == -1
    sdf = R.signed_distance(prims, 56, 56)[0]
    assert torch.equal(out.masks[0, 0], (sdf[0] <= 0) | (sdf[1] <= 0))


def test_batched_equals_one_scene_at_a_time():
    prims, colors, z, bg = random_scene(b=4, seed=2)
    out = R.render(prims, colors, (40, 40), bg, z=z)
    for i in range(4):
        sub = R.Primitives(**{f: getattr(prims, f)[i:i + 1] for f in
                              ("kind", "center", "angle", "params", "points", "valid")})
        o = R.render(sub, colors[i:i + 1], (40, 40), bg[i:i + 1], z=z[i:i + 1])
        torch.testing.assert_close(o.rgb, out.rgb[i:i + 1])
        assert torch.equal(o.ids, out.ids[i:i + 1])


def test_concat_pads_point_lists():
    a = one("disc", (10.0, 10.0), params=(4.0, 0, 0))
    b = one("polygon", (30.0, 30.0), points=[[-5.0, -5.0], [5.0, -5.0], [0.0, 5.0]])
    c = R.concat([a, b])
    assert c.shape == (1, 2) and c.points.shape == (1, 2, 3, 2)
    torch.testing.assert_close(R.signed_distance(c, 40, 40)[:, :1], R.signed_distance(a, 40, 40))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    prims, colors, z, bg = random_scene(seed=3)
    cpu = R.render(prims, colors, (48, 48), bg, z=z)
    gpu = R.render(prims.to("cuda"), colors.cuda(), (48, 48), bg.cuda(), z=z.cuda())
    torch.testing.assert_close(gpu.rgb.cpu(), cpu.rgb, atol=1e-5, rtol=0)
    assert (gpu.ids.cpu() != cpu.ids).float().mean() < 1e-3


# ---------------------------------------------------------------------------------------------
# textures
# ---------------------------------------------------------------------------------------------
def textured(kind, period=8.0, angle=0.0, center=(32.0, 32.0), tex_angle=0.0, lattice=None):
    prims = one("box", center, angle, (20.0, 20.0, 0))
    tex = R.Textures(torch.tensor([[R.TEXTURES.index(kind)]]), torch.tensor([[period]]),
                     torch.tensor([[tex_angle]]), torch.tensor([[[1.0, 1.0, 1.0]]]), lattice)
    return R.render(prims, torch.zeros(1, 1, 3), (64, 64), torch.full((1, 3), 0.5), textures=tex)


@pytest.mark.parametrize("kind, fraction", [
    ("flat", 0.0), ("stripes", 0.5), ("checker", 0.5), ("grating", 0.5), ("gradient", 0.5),
    ("dots", math.pi / 16),                                 # a disc of radius P/4 per P x P cell
])
def test_texture_mean_is_its_duty_cycle(kind, fraction):
    out = textured(kind)
    inside = out.rgb[0, 0, 12:52, 12:52]                                   # the box's interior
    assert float(inside.mean()) == pytest.approx(fraction, abs=0.03)


def test_textures_live_in_the_object_frame():
    g = torch.Generator().manual_seed(0)
    lattice = R.noise_lattice(1, 1, 6, generator=g)
    for kind in ("stripes", "checker", "dots", "noise"):
        a = textured(kind, center=(30.0, 30.0), lattice=lattice).rgb
        b = textured(kind, center=(34.0, 27.0), lattice=lattice).rgb       # moved by (4, -3) pixels
        torch.testing.assert_close(b[..., 7:57, 9:59], a[..., 10:60, 5:55], atol=1e-5, rtol=0)
    # turned by 90 degrees, vertical stripes become horizontal ones
    v = textured("stripes", period=8.0).rgb[0, 0]
    h = textured("stripes", period=8.0, angle=math.pi / 2).rgb[0, 0]
    torch.testing.assert_close(h[12:52, 12:52], v[12:52, 12:52].T.flip(0), atol=1e-4, rtol=0)


def test_value_noise_interpolates_its_lattice():
    lattice = torch.rand(1, 5, 5)
    grid = torch.stack(torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="xy"), -1)
    grid = grid[None] * 3.0                                                # the lattice points
    torch.testing.assert_close(R.value_noise(grid, lattice, torch.tensor([[[3.0]]])), lattice)


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
def test_bad_input_names_what_was_expected():
    prims = one("disc", (5.0, 5.0), params=(3.0, 0, 0))
    with pytest.raises(ValueError, match="center must be"):
        R.primitives(torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="unknown primitive kind"):
        R.primitives("star", torch.zeros(1, 1, 2))
    with pytest.raises(ValueError, match="must index KINDS"):
        R.primitives(torch.tensor([[9]]), torch.zeros(1, 1, 2))
    with pytest.raises(ValueError, match=r"params must have shape \(1, 1, 3\)"):
        prims.replace(params=torch.zeros(1, 1, 2))
    with pytest.raises(ValueError, match="4 control points"):
        R.signed_distance(one("bezier", (5.0, 5.0), params=(1.0, 0, 0),
                              points=[[0.0, 0.0], [1.0, 1.0]]), 8, 8)
    with pytest.raises(ValueError, match="aa"):
        R.coverage(torch.zeros(3), aa=-1)
    with pytest.raises(ValueError, match=r"colors must be \(B, P, 3\)"):
        R.render(prims, torch.zeros(1, 3), (8, 8), torch.ones(1, 3))
    with pytest.raises(ValueError, match="background must be"):
        R.render(prims, torch.zeros(1, 1, 3), (8, 8), torch.ones(3))
    with pytest.raises(ValueError, match="instance ids must be"):
        R.render(prims, torch.zeros(1, 1, 3), (8, 8), torch.ones(1, 3),
                 instance=torch.tensor([[2]]), n_instances=1)
    with pytest.raises(ValueError, match="lattice"):
        R.Textures(torch.tensor([[R.NOISE]]), torch.ones(1, 1), torch.zeros(1, 1),
                   torch.zeros(1, 1, 3))
    with pytest.raises(ValueError, match="canvas"):
        R.pixel_centers(0, 4)
