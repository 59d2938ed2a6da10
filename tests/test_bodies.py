"""The body world: skeleton, limits, subjects, presets, crowds, visibility, detector model,
crops."""

import math

import pytest
import torch

from cvtutor.data import bodies as B
from cvtutor.data import geometry as G
from cvtutor.data.bodies import skeleton as sk


def test_rest_pose_topology_and_coco_mapping():
    x = B.forward_kinematics(torch.zeros(1, 23, 3))[0]
    assert torch.allclose(x, torch.tensor(sk.REST), atol=1e-6)
    assert (
        len(B.JOINT_NAMES) == 23
        and B.N_H36M == 17
        and all(p < j for j, p in enumerate(B.PARENT) if j)
    )
    coco = B.coco17(x[None])[0]
    for k, j in enumerate(sk.COCO_FROM_BODY):
        if j >= 0:
            assert torch.equal(coco[k], x[j])
    assert torch.allclose(coco[1, 0], -coco[2, 0]) and torch.allclose(
        coco[3, 0], -coco[4, 0]
    )  # mirror pairs
    assert (coco[1:3, 1] < coco[0, 1]).all()  # eyes behind the nose
    with pytest.raises(ValueError, match=r"\(\.\.\., 23, 3\)"):
        B.coco17(torch.zeros(17, 3))


def test_fk_respects_limits_and_lengths():
    g = torch.Generator().manual_seed(0)
    lo, hi = B.angle_limits()
    wild = torch.randn(64, 23, 3, generator=g) * 200
    assert torch.equal(B.forward_kinematics(wild), B.forward_kinematics(B.clip_to_limits(wild)))
    assert torch.equal(lo[sk.JOINT_NAMES.index("r_knee")], torch.tensor([-150.0, 0.0, -10.0]))
    wide = ("r_knee", "l_elbow", "r_ankle", "l_shoulder")
    narrow = ("spine", "thorax")
    span = lambda n: (hi - lo)[sk.JOINT_NAMES.index(n), 0]  # noqa: E731
    assert min(span(n) for n in wide) > 2 * max(span(n) for n in narrow)
    x0 = B.forward_kinematics(B.clip_to_limits(wild))
    L = torch.rand(64, 23, generator=g) + 0.5
    xl = B.forward_kinematics(B.clip_to_limits(wild), L)
    assert torch.allclose(
        B.bone_lengths(xl), B.bone_lengths(x0) * L[:, 1:], atol=1e-5
    )  # rotations keep lengths
    with pytest.raises(ValueError, match=r"\(n, 23, 3\)"):
        B.forward_kinematics(torch.zeros(2, 17, 3))


def test_subjects_and_splits():
    s = B.sample_subjects(12, torch.Generator().manual_seed(1))
    for a, b in B.FLIP_PAIRS:
        assert torch.equal(s[:, a], s[:, b])
    sp = B.subject_splits(10)
    ids = sp["train"] + sp["val"] + sp["test"]
    assert sorted(ids) == list(range(10)) and len(sp["test"]) == 2
    with pytest.raises(ValueError, match="at least 3"):
        B.subject_splits(2)


def test_presets_stand_on_the_floor_and_world_is_seeded():
    w = B.BodyWorld(n_people=5, n_views=3, image_size=40, seed=3)
    a = w.sample(3)
    w2 = B.BodyWorld(n_people=5, n_views=3, image_size=40, seed=3)
    b = w2.sample(3)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert torch.allclose(a["joints"][..., 2].amin(-1), torch.zeros(3, 5), atol=1e-6)
    lo, hi = B.angle_limits()
    assert ((a["angles"] >= lo - 1e-5) & (a["angles"] <= hi + 1e-5)).all()
    cam = G.world_to_camera(a["joints"].reshape(3, 1, -1, 3), w.R, w.t).reshape(a["cam"].shape)
    assert torch.allclose(cam, a["cam"]) and torch.allclose(G.project(cam, w.K), a["uv"], atol=1e-4)
    assert set(a["subject"].unique().tolist()) <= set(w.splits["train"])
    test = w.sample(2, split="test")
    assert set(test["subject"].unique().tolist()) <= set(w.splits["test"])
    # the crowd's density: people per m² over the square
    assert math.isclose(5 / w.side**2, w.density)
    with pytest.raises(ValueError, match="split"):
        w.sample(1, split="dev")
    with pytest.raises(ValueError, match="density"):
        B.BodyWorld(density=0)
    with pytest.raises(ValueError, match="rig must be one of"):
        B.BodyWorld(rig="dome")
    dome = B.BodyWorld(n_people=3, n_views=5, image_size=32, rig="hemisphere", seed=1)
    centre = torch.tensor([0.0, 0.0, 1.0])
    assert torch.allclose((dome.eyes - centre).norm(dim=-1), torch.full((5,), dome.ring_radius))
    assert (dome.eyes[:, 2] > 1.0).all() and dome.sample(1)["visible"].any()


def test_occluded_joints_snap_to_their_occluder():
    w = B.BodyWorld(
        n_people=2,
        n_views=1,
        image_size=64,
        seed=0,
        presets=("walk",),
        pose_noise=0.0,
        detector_sigma=0.0,
    )
    p = w.draw(1)
    eye = w.eyes[0]
    d = -eye[:2] / eye[:2].norm()
    p["xy"] = torch.stack([-d * 2.0, d * 1.0])[
        None
    ]  # person 0 in front of person 1 on the view axis
    p["scale"] = torch.ones(1, 2)
    p["yaw"] = torch.atan2(d[0], -d[1]).expand(1, 2)  # both face the camera
    out = w.render(p)
    vis, occ = out["visible"][0, 0], out["occluder"][0, 0]
    assert vis[0].float().mean() > 0.7  # the front person is mostly visible
    hidden = ~vis[1] & (occ[1] == 0)
    assert hidden.sum() >= 5  # the back person is hidden by the front one
    det = out["detected"][0, 0, 1][hidden]
    front = out["uv"][0, 0, 0]
    assert (torch.cdist(det, front).amin(-1) < 1e-4).all()  # each snapped onto a joint of person 0
    assert torch.equal(
        out["detected"][0, 0][out["visible"][0, 0]], out["uv"][0, 0][out["visible"][0, 0]]
    )  # visible joints are exact with σ = 0
    assert (out["confidence"][0, 0, 1][hidden] == 0.3).all()


def test_crops_by_box_map_keypoints():
    S = 48
    img = torch.zeros(2, 1, S, S)
    uv = torch.tensor([[[10.5, 20.5], [30.5, 12.5]], [[5.5, 5.5], [40.5, 40.5]]])
    for b in range(2):
        for u, v in uv[b]:
            img[b, 0, int(v), int(u)] = 1.0
    boxes = B.person_boxes(uv, margin=0.25)
    crops = B.crop_by_box(img, boxes, 64)
    local = B.to_crop(uv, boxes, 64)
    for b in range(2):
        for u, v in local[b]:
            patch = crops[b, 0, int(v) - 1 : int(v) + 2, int(u) - 1 : int(u) + 2]
            assert patch.max() > 0.2  # the bright pixel lands where to_crop says
    assert crops.shape == (2, 1, 64, 64)


def test_bone_segments_hand_case():
    from cvtutor.data.bodies.skeleton import BONES
    from cvtutor.data.bodies.sticks import bone_segments

    uv = torch.zeros(1, 23, 2)
    a, b = BONES[0]
    uv[0, a] = torch.tensor([0.0, 0.5])
    uv[0, b] = torch.tensor([10.0, 0.5])  # bone 0 runs along the centre line of pixel row 0
    d2, t = bone_segments(uv, 12)
    assert d2.shape == t.shape == (1, len(BONES), 144)
    px = 0 * 12 + 4  # row 0, column 4: centre (4.5, 0.5), on the bone, 45 % along it
    assert float(d2[0, 0, px]) == pytest.approx(0.0, abs=1e-9) and float(t[0, 0, px]) == pytest.approx(0.45)
    px = 2 * 12 + 11  # row 2, column 11: centre (11.5, 2.5), beyond the end (10, 0.5)
    assert float(t[0, 0, px]) == 1.0 and float(d2[0, 0, px]) == pytest.approx(1.5 ** 2 + 2.0 ** 2)
