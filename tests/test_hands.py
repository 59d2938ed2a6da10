import math

import pytest
import torch

from cvtutor.data import hands
from cvtutor.data.hands import camera, render, skeleton


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def batch():
    return hands.HandWorld("rhd", image_size=32, seed=3).sample(24)


# ---- skeleton -------------------------------------------------------------------------------
def test_skeleton_tables():
    assert len(skeleton.JOINT_NAMES) == 21 and skeleton.PARENT[0] == -1
    assert all(skeleton.PARENT[j] < j for j in range(1, 21))
    assert skeleton.SCALE_BONE == (9, 10) and skeleton.JOINT_NAMES[9] == "middle_mcp"
    assert sorted(skeleton.STB2CANON) == list(range(21)) and sorted(skeleton.RHD2CANON) == list(range(21))


def test_index_maps_round_trip():
    x = torch.randn(4, 21, 3)
    rhd = skeleton.reorder(x, skeleton.CANON2RHD)
    assert torch.equal(skeleton.reorder(rhd, skeleton.RHD2CANON), x)
    stb = skeleton.reorder(x, skeleton.CANON2STB)
    assert torch.equal(skeleton.reorder(stb, skeleton.STB2CANON), x)
    # RHD stores each finger tip -> MCP: the RHD joint 4 (thumb "tip" slot 1) is canonical thumb_tip
    assert skeleton.RHD2CANON[1] == 4 and skeleton.RHD2CANON[4] == 1
    # STB: palm, then pinky MCP..tip first; canonical pinky_mcp (17) comes from STB joint 1
    assert skeleton.STB2CANON[17] == 1 and skeleton.STB2CANON[1] == 17
    with pytest.raises(ValueError, match="21"):
        skeleton.reorder(torch.zeros(4, 20, 3), skeleton.RHD2CANON)


def test_rotations_are_rotations_and_flexion_bends_palmar():
    a = torch.tensor([30.0, -70.0, 123.0])
    for R in (skeleton.rot_x(a), skeleton.rot_y(a), skeleton.rot_z(a)):
        assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3).expand(3, 3, 3), atol=1e-6)
        assert torch.allclose(torch.linalg.det(R), torch.ones(3), atol=1e-6)
    y = torch.tensor([0.0, 1.0, 0.0])
    assert (skeleton.rot_x(torch.tensor(30.0)) @ y)[2] > 0  # flexion towards +z (palmar)
    assert torch.allclose(skeleton.rot_z(torch.tensor(-10.0)) @ y,
                          torch.tensor([math.sin(math.radians(10)), math.cos(math.radians(10)), 0.0]), atol=1e-6)


def test_open_hand_fk_matches_the_geometry_table():
    joints, _ = skeleton.forward_kinematics(torch.zeros(1, 20))
    # middle finger at rest (spread 0, no abduction, no flexion) goes straight up +y
    assert torch.allclose(joints[0, 9], torch.tensor([0.0, 86.0, 0.0]))
    assert torch.allclose(joints[0, 12], torch.tensor([0.0, 86.0 + 44 + 28 + 23, 0.0]), atol=1e-4)
    # index spread +8 deg towards the thumb side: x grows along the finger
    assert joints[0, 8, 0] > joints[0, 5, 0]


def test_bone_lengths_preserved_under_articulation():
    g = _gen(1)
    base, lengths, s = skeleton.sample_shape(16, g)
    angles, _ = skeleton.sample_angles(16, g)
    joints, frames = skeleton.forward_kinematics(angles, base, lengths)
    bl = skeleton.bone_lengths(joints).reshape(16, 20)
    finger_bones = bl.reshape(16, 5, 4)[:, :, 1:]  # bones after the base joint
    assert torch.allclose(finger_bones, lengths, atol=1e-4)
    assert torch.allclose(bl.reshape(16, 5, 4)[:, :, 0], base.norm(dim=-1), atol=1e-4)  # wrist -> base
    # the scale bone is 44 mm x s x jitter
    assert torch.allclose(bl[:, 9], lengths[:, 2, 0], atol=1e-4)  # bone (9, 10) is BONES[9]
    assert ((lengths[:, 2, 0] / (44 * s)) - 1).abs().max() <= 0.1 + 1e-6


def test_sampler_respects_limits_and_labels():
    angles, gesture = skeleton.sample_angles(2000, _gen(2))
    lo, hi = skeleton.angle_limits()
    assert (angles >= lo - 1e-6).all() and (angles <= hi + 1e-6).all()
    assert set(gesture.unique().tolist()) <= set(range(-1, 8))
    frac_uniform = (gesture == -1).float().mean().item()
    assert 0.15 < frac_uniform < 0.25
    # DIP/PIP coupling: for most hands DIP ~ 0.67 PIP
    a = angles.reshape(-1, 5, 4)[:, 1:]
    near = ((a[..., 3] - (0.67 * a[..., 2]).clamp(0, 80)).abs() < 16).float().mean()
    assert near > 0.75


def test_fk_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(n, 20\)"):
        skeleton.forward_kinematics(torch.zeros(3, 21))


# ---- camera ---------------------------------------------------------------------------------
def test_projection_and_backprojection_round_trip():
    K = camera.intrinsics(32, 60.0)
    X = torch.tensor([[[0.05, -0.02, 0.5], [0.0, 0.0, 0.4]]])
    uv = camera.project(X, K)
    assert torch.allclose(uv[0, 1], torch.tensor([16.0, 16.0]))
    assert torch.allclose(uv[0, 0], torch.tensor([16 + 60 * 0.1, 16 - 60 * 0.04]))
    assert torch.allclose(camera.backproject(uv, X[..., 2], K), X, atol=1e-6)


def test_normalisation_round_trip_and_scale_bone():
    x = torch.randn(5, 21, 3)
    xn, root, s = camera.normalize_pose(x)
    assert torch.allclose(camera.denormalize_pose(xn, root, s), x, atol=1e-6)
    assert torch.allclose((xn[:, 9] - xn[:, 10]).norm(dim=-1), torch.ones(5), atol=1e-6)
    assert torch.allclose(xn[:, 0], torch.zeros(5, 3))


def test_canonical_transform_conditions():
    x = camera.normalize_pose(torch.randn(6, 21, 3))[0]
    cpose, R = camera.canonical_transform(x)
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3).expand(6, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(6), atol=1e-5)
    assert torch.allclose(cpose[:, 9, [0, 2]], torch.zeros(6, 2), atol=1e-5) and (cpose[:, 9, 1] < 0).all()
    assert torch.allclose(cpose[:, 17, 2], torch.zeros(6), atol=1e-5) and (cpose[:, 17, 0] > 0).all()
    assert torch.allclose(cpose @ R, x, atol=1e-5)


def test_view_correction_maps_the_hand_ray_onto_the_axis():
    K = camera.intrinsics(128, 100.0)
    uv = torch.tensor([[10.0, 100.0], [64.0, 64.0], [120.0, 3.0]])
    R = camera.view_correction(uv, K)
    ray = torch.cat([uv - 64.0, torch.full((3, 1), 100.0)], 1)
    out = (R @ ray[..., None])[..., 0]
    assert torch.allclose(out[:, :2], torch.zeros(3, 2), atol=1e-4) and (out[:, 2] > 0).all()
    assert torch.allclose(R[1], torch.eye(3), atol=1e-6)


def test_random_rotation_is_uniform_enough():
    R = camera.random_rotation(4000, _gen(4))
    assert torch.allclose(torch.linalg.det(R), torch.ones(4000), atol=1e-5)
    assert R.mean(0).abs().max() < 0.05  # E[R] = 0 for the Haar measure


# ---- renderer -------------------------------------------------------------------------------
def test_single_sphere_depth_and_disc_radius():
    S, f, Z, r = 64, 80.0, 0.5, 0.05
    K = camera.intrinsics(S, f)
    geo = render.render_geometry(torch.tensor([[[0.0, 0.0, Z]]]), torch.tensor([[r]]), K, S)
    # the centre pixel (31.5, 31.5) is 0.5 px off-axis in u and v: the ray D = (x, x, 1) with
    # x = -0.5/f meets the sphere at z = (Z - sqrt(Z² - |D|²(Z² - r²)))/|D|²
    x = -0.5 / f
    DD = 2 * x * x + 1
    expected = (Z - math.sqrt(Z * Z - DD * (Z * Z - r * r))) / DD
    assert abs(geo["depth"][0, 0, 31, 31].item() - expected) < 1e-6
    assert abs(expected - (Z - r)) < 2e-4
    area = geo["hit"].sum().item()
    rad = camera.disc_radius_px(f, r, Z)
    assert abs(area - math.pi * rad * rad) / (math.pi * rad * rad) < 0.05
    n = geo["normals"][0, :, 31, 31]
    assert abs(n.norm().item() - 1) < 1e-5 and n[2] < -0.99


def test_window_raycast_equals_dense_raycast():
    g = _gen(5)
    c = torch.randn(7, 30, 3, generator=g) * 0.04 + torch.tensor([0, 0, 0.45])
    r = 0.004 + 0.01 * torch.rand(7, 30, generator=g)
    K = camera.intrinsics(40, 70.0)
    z, i = render.raycast_spheres(c, r, K, 40, chunk=3)
    z2, i2 = render.raycast_dense(render.pixel_rays(K, 40), c, r)
    assert torch.equal(torch.isinf(z), torch.isinf(z2))
    finite = torch.isfinite(z)
    assert torch.allclose(z[finite], z2[finite], atol=1e-6)
    assert (i != i2).float().mean() < 1e-3


def test_depth_at_visible_joint_pixel_agrees_with_geometry(batch):
    n = batch["xyz"].shape[0]
    pix = batch["uv"].floor().long().clamp(0, 31)
    d = batch["depth"][torch.arange(n)[:, None], 0, pix[..., 1], pix[..., 0]]
    vis = batch["vis"]
    # a visible joint lies behind the surface seen at its pixel by less than its sphere radius + 5 mm
    # (+ the depth change within a pixel); and the surface is never far behind the joint.
    gap = batch["xyz"][..., 2] - d
    assert vis.float().mean() > 0.4
    assert (gap[vis] < 0.025).all() and (gap[vis] > -0.03).all()


def test_mask_and_depth_agree(batch):
    hand = batch["mask"] > 0
    wall = batch["depth"].flatten(1).max(1).values[:, None, None, None]  # the fronto-parallel wall
    assert torch.equal(hand, batch["depth"] < wall)
    assert (wall >= 0.8).all()
    assert batch["mask"].max() <= 16 and batch["mask"].min() >= 0


def test_cloud_points_lie_on_spheres_and_back_project():
    w = hands.HandWorld("rhd", image_size=32, seed=1)
    b = w.sample(6)
    cloud = hands.denormalize_pose(b["cloud"], b["root"], b["scale"])  # (n, N, 3) camera frame
    w.reset()
    xyz, C, R, _ = w.geometry(w._draw(6, "train"))
    assert torch.allclose(xyz, b["xyz"])
    dist = (cloud[:, :, None] - C[:, None]).norm(dim=-1) - R[:, None]  # (n, N, M)
    assert dist.abs().min(-1).values.max() < 1e-4  # on a sphere surface
    assert (dist.min(-1).values > -1e-4).all()  # inside no other sphere
    # the cloud and the back-projected masked depth pixels describe the same visible surface:
    # every cloud point is within about a pixel footprint (8 mm at 32 px) of a back-projected pixel
    S = 32
    r_ = torch.arange(S) + 0.5
    v, u = torch.meshgrid(r_, r_, indexing="ij")
    for i in range(6):
        m = b["mask"][i, 0] > 0
        uv = torch.stack([u[m], v[m]], -1)
        pts = camera.backproject(uv, b["depth"][i, 0][m], b["K"][i])
        near = torch.cdist(cloud[i], pts).min(1).values
        assert (near < 0.012).float().mean() > 0.95
        # and the cloud is partial: no point on the far side of the hand
        assert (cloud[i, :, 2] <= b["depth"][i, 0][m].max() + 0.01).all()


def test_heatmaps_peak_at_the_keypoints(batch):
    h = batch["heatmaps"]
    assert h.shape[-2:] == (16, 16)
    inside = ((batch["uv"] >= 0) & (batch["uv"] < 32)).all(-1)
    peak = h.flatten(2).argmax(-1)
    pu, pv = peak % 16, peak // 16
    uvh = batch["uv"] * 0.5
    ok = ((pu + 0.5 - uvh[..., 0]).abs() <= 0.5 + 1e-4) & ((pv + 0.5 - uvh[..., 1]).abs() <= 0.5 + 1e-4)
    assert ok[inside].all()
    assert (h[~inside] == 0).all()


def test_sample_keys_shapes_and_consistency(batch):
    n = 24
    shapes = {"rgb": (n, 3, 32, 32), "depth": (n, 1, 32, 32), "mask": (n, 1, 32, 32), "xyz": (n, 21, 3),
              "uv": (n, 21, 2), "vis": (n, 21), "K": (n, 3, 3), "root": (n, 3), "scale": (n,),
              "xyz_norm": (n, 21, 3), "cpose": (n, 21, 3), "view_R": (n, 3, 3), "cloud": (n, 128, 3),
              "heatmaps": (n, 21, 16, 16), "angles": (n, 20), "gesture": (n,)}
    for k, s in shapes.items():
        assert tuple(batch[k].shape) == s, k
    assert batch["rgb"].min() >= 0 and batch["rgb"].max() <= 1
    assert torch.allclose(camera.project(batch["xyz"], batch["K"]), batch["uv"], atol=1e-4)
    assert torch.allclose(hands.denormalize_pose(batch["xyz_norm"], batch["root"], batch["scale"]), batch["xyz"], atol=1e-6)
    assert torch.allclose(batch["cpose"] @ batch["view_R"], batch["xyz_norm"], atol=1e-5)
    # the hand centre projects near the crop centre
    centre = batch["uv"][:, [0, 5, 9, 13, 17]].mean(1)
    assert ((centre - 16).abs() < 8).all()


def test_determinism_and_stream():
    a = hands.HandWorld("stb", image_size=24, seed=7).sample(5)
    w = hands.HandWorld("stb", image_size=24, seed=7, chunk=2)
    b = w.sample(5)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    c = w.sample(5)
    assert not torch.equal(b["xyz"], c["xyz"])
    w.reset()
    assert torch.equal(w.sample(5)["rgb"], a["rgb"])


def test_frei_versions_share_poses_and_differ_in_appearance():
    outs = {d: hands.HandWorld(d, image_size=24, seed=2).sample(4) for d in ("frei_G", "frei_H", "frei_S", "frei_A")}
    for d in ("frei_H", "frei_S", "frei_A"):
        assert torch.equal(outs[d]["xyz"], outs["frei_G"]["xyz"])
        assert torch.equal(outs[d]["mask"], outs["frei_G"]["mask"])
        assert not torch.equal(outs[d]["rgb"], outs["frei_G"]["rgb"])
    g = outs["frei_A"]["rgb"]
    ratio = g[:, 0] / g[:, 2].clamp_min(1e-3)  # sepia: red over blue is the same tint everywhere
    assert ratio[g[:, 2] > 0.2].std() < 0.3


def test_stb_split_uses_held_out_scene():
    tr = hands.HandWorld("stb", image_size=16, seed=0, with_cloud=False).sample(40)
    te = hands.HandWorld("stb", image_size=16, seed=0, split="test", with_cloud=False).sample(10)
    assert 0 not in tr["scene_id"].tolist() and set(te["scene_id"].tolist()) == {0}
    rtr = hands.HandWorld("rhd", image_size=16, seed=0, with_cloud=False).sample(40)["character"]
    rte = hands.HandWorld("rhd", image_size=16, seed=0, split="test", with_cloud=False).sample(40)["character"]
    assert rtr.max() < 16 and rte.min() >= 16


def test_skipping_the_cloud_changes_nothing_else():
    a = hands.HandWorld("rhd", image_size=16, seed=4).sample(3)
    b = hands.HandWorld("rhd", image_size=16, seed=4, with_cloud=False).sample(3)
    assert "cloud" not in b and all(torch.equal(a[k], b[k]) for k in b)


def test_sequences_shapes_and_motion_pairs():
    w = hands.HandWorld("rhd", image_size=16, seed=0, with_cloud=False)
    s = w.sample_sequences(6, frames=5, classes=("grab", "release"))
    assert s["rgb"].shape == (6, 5, 3, 16, 16) and s["xyz"].shape == (6, 5, 21, 3) and s["label"].shape == (6,)
    flex = s["angles"][..., 4:].mean(-1)  # finger flexion over time
    for i, lab in enumerate(s["label"].tolist()):
        trend = flex[i, -1] - flex[i, 0]
        assert (trend > 20) if lab == 0 else (trend < -20)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(domain="nyu"), ValueError, "unknown domain"),
    (dict(image_size=8), ValueError, "image_size must be >= 16"),
    (dict(image_size=32.0), TypeError, "image_size must be an int"),
    (dict(views="all"), ValueError, "views"),
    (dict(seed=-1), ValueError, "seed"),
])
def test_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        hands.HandWorld(**kwargs)


def test_bad_n():
    w = hands.HandWorld("rhd", image_size=16)
    with pytest.raises(ValueError, match="n must be >= 1"):
        w.sample(0)
    with pytest.raises(TypeError, match="n must be an int"):
        w.sample(2.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_geometry():
    a = hands.HandWorld("rhd", image_size=32, seed=0).sample(8)
    b = hands.HandWorld("rhd", image_size=32, seed=0, device="cuda").sample(8)
    assert torch.allclose(a["xyz"], b["xyz"].cpu(), atol=1e-5)
    assert (a["mask"] == b["mask"].cpu()).float().mean() > 0.999
    c = hands.HandWorld("rhd", image_size=32, seed=0, device="cuda").sample(8)
    assert all(torch.equal(b[k], c[k]) for k in b)


def test_draw_then_render_equals_sample_and_edits_are_rendered():
    from cvtutor.data.hands import HandWorld

    a = HandWorld("rhd", image_size=16, seed=3, with_cloud=False)
    b = HandWorld("rhd", image_size=16, seed=3, with_cloud=False)
    s = a.sample(3)
    p = b.draw(3)
    r = b.render(p)
    for k in ("rgb", "depth", "xyz"):
        assert torch.equal(s[k], r[k])
    p2 = {k: v.clone() if torch.is_tensor(v) else v for k, v in p.items()}
    p2["angles"] = p2["angles"][[1, 1, 1]]
    assert not torch.equal(b.render(p2)["xyz"], r["xyz"])
    with pytest.raises(ValueError, match="n must"):
        b.draw(0)
