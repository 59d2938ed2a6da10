"""The generic ray caster: closed-form depths and normals for spheres, boxes and planes, ids,
views."""

import math

import pytest
import torch

from cvtutor.data import geometry as G
from cvtutor.data import render3d as R3

D = torch.float64
S = 33  # odd: the centre pixel's ray is the optical axis


def _K():
    return G.intrinsics(S, 40.0, dtype=D)


def _centre(img):
    return img[..., S // 2, S // 2]


def test_sphere_scene_matches_render_geometry_and_closed_form():
    c = torch.tensor([[[0.0, 0.0, 3.0], [0.3, 0.0, 4.0]]], dtype=D)
    r = torch.tensor([[0.5, 0.6]], dtype=D)
    out = R3.render_scene(
        {
            "spheres": {
                "centres": c,
                "radii": r,
                "part": torch.tensor([3, 4]),
                "instance": torch.tensor([[0, 1]]),
            }
        },
        _K(),
        S,
    )
    ref = R3.render_geometry(c, r, _K(), S)
    assert torch.equal(out["depth"], ref["depth"]) and torch.allclose(
        out["normals"], ref["normals"]
    )
    assert _centre(out["depth"]).item() == pytest.approx(2.5)  # nearer sphere occludes the far one
    assert _centre(out["part"]).item() == 3 and _centre(out["instance"]).item() == 0
    assert torch.allclose(_centre(out["normals"])[0], torch.tensor([0.0, 0, -1], dtype=D))
    assert (out["instance"][~out["hit"]] == -1).all() and (out["part"][~out["hit"]] == 0).all()


def test_box_depth_and_normals_closed_form():
    half = torch.tensor([[[0.5, 0.5, 0.5]]], dtype=D)
    c = torch.tensor([[[0.0, 0.0, 4.0]]], dtype=D)
    eye = torch.eye(3, dtype=D)[None, None]
    out = R3.render_scene({"boxes": {"centres": c, "half": half, "R": eye}}, _K(), S)
    assert _centre(out["depth"]).item() == pytest.approx(3.5)
    assert torch.allclose(_centre(out["normals"])[0], torch.tensor([0.0, 0, -1], dtype=D))
    Ry = G.rot_y(torch.tensor(45.0, dtype=D))[None, None]  # an edge towards the camera
    out = R3.render_scene({"boxes": {"centres": c, "half": half, "R": Ry}}, _K(), S)
    assert _centre(out["depth"]).item() == pytest.approx(4.0 - 0.5 * math.sqrt(2))
    # the silhouette of the front face spans f·0.5/3.5 pixels either side of the centre
    row = out["hit"][0, 0, S // 2]
    eye_out = R3.render_scene({"boxes": {"centres": c, "half": half, "R": eye}}, _K(), S)
    width = eye_out["hit"][0, 0, S // 2].sum().item()
    assert abs(width - 2 * 40.0 * 0.5 / 3.5) <= 2 and row.sum() > width


def test_ground_plane_depth_and_occlusion():
    K = _K()
    # the plane y = 1 (1 m below a camera looking along z; camera y points down)
    planes = {
        "normals": torch.tensor([[[0.0, 1.0, 0.0]]], dtype=D),
        "offsets": torch.tensor([[1.0]], dtype=D),
        "part": torch.tensor([[9]]),
    }
    out = R3.render_scene({"planes": planes}, K, S)
    rays = R3.pixel_rays(K, S)
    below = rays[:, 1] > 0
    assert torch.equal(out["hit"].reshape(-1), below)
    assert torch.allclose(out["depth"].reshape(-1)[below], 1.0 / rays[below, 1])
    assert torch.allclose(
        out["normals"].reshape(3, -1)[:, below].T,
        torch.tensor([0.0, -1, 0], dtype=D).expand(int(below.sum()), 3),
    )
    sph = {
        "centres": torch.tensor([[[0.0, 0.4, 3.0]]], dtype=D),
        "radii": torch.tensor([[0.5]], dtype=D),
        "part": torch.tensor([[1]]),
        "instance": torch.tensor([[7]]),
    }
    both = R3.render_scene({"spheres": sph, "planes": planes}, K, S)
    assert _centre(both["instance"]).item() == 7 and both["part"].reshape(-1)[-1].item() == 9


def test_capsule_spheres():
    a, b = torch.zeros(2, 3), torch.tensor([[1.0, 0, 0], [0, 2.0, 0]])
    c, r = R3.capsule_spheres(a, b, torch.tensor([0.1, 0.2]), torch.tensor([0.05, 0.2]), 5)
    assert (
        c.shape == (2, 5, 3)
        and torch.allclose(c[:, -1], b)
        and torch.allclose(r[0, [0, -1]], torch.tensor([0.1, 0.05]))
    )
    with pytest.raises(ValueError, match="n >= 2"):
        R3.capsule_spheres(a, b, torch.ones(2), torch.ones(2), 1)


def test_render_views_sees_the_target_in_every_camera():
    Rc, tc, eyes = G.camera_ring(6, radius=4.0, height=0.0, dtype=D)
    scene = {
        "spheres": {
            "centres": torch.zeros(2, 1, 3, dtype=D),
            "radii": torch.tensor([[0.5], [0.3]], dtype=D),
        }
    }
    out = R3.render_views(scene, _K(), S, Rc, tc)
    assert out["depth"].shape == (2, 6, 1, S, S)
    assert torch.allclose(
        _centre(out["depth"])[..., 0], torch.tensor([[3.5] * 6, [3.7] * 6], dtype=D)
    )
    planes = {
        "normals": torch.tensor([[[0.0, 0.0, 1.0]]], dtype=D),
        "offsets": torch.tensor([[-1.0]], dtype=D),
    }
    cam = R3.scene_to_camera({"planes": planes}, Rc, tc)["planes"]
    # the floor z = -1 is 1 m below every camera of the ring: its camera-frame distance is 1
    assert torch.allclose(
        cam["offsets"].abs() / cam["normals"].norm(dim=-1), torch.ones(6, 1, dtype=D)
    )
    with pytest.raises(ValueError, match="none of"):
        R3.render_scene({}, _K(), S)
