import math

import numpy as np

import pytest
import torch
import torch.nn.functional as F

from cvtutor.data import video as V


def _world(**kw):
    base = dict(size=32, frames=8, n_sprites=2)
    return V.SpriteVideos(**{**base, **kw})


def test_seeded_bit_identical_and_shapes():
    w = _world(branch_frame=3, p_leave=0.3)
    a, b = w.sample(12, seed=5), w.sample(12, seed=5)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["video"], w.sample(12, seed=6)["video"])
    assert a["video"].shape == (12, 8, 3, 32, 32) and a["masks"].shape == (12, 8, 32, 32)
    assert a["flow"].shape == a["flow_back"].shape == (12, 7, 2, 32, 32)
    assert 0 <= a["video"].min() and a["video"].max() <= 1
    assert torch.equal(a["first_mask"], a["masks"][:, 0])


def test_masks_agree_with_frames():
    """Background pixels are the panned texture; a sprite's pixels are its colour times a shade
    in [0.6, 1], so each masked pixel's colour is parallel to that sprite's colour."""
    w = _world(n_sprites=3, colour_drift=0.02)
    b = w.sample(16, seed=1)
    p = V.pixel_grid(32)
    waves = w._params(16, torch.Generator().manual_seed(1), torch.device("cpu"))
    bg = V.background(
        p,
        b["pan"],
        {
            "base": waves["wave_base"],
            "k": waves["wave_k"],
            "phase": waves["wave_phase"],
            "amp": waves["wave_amp"],
        },
    )
    m = b["masks"]
    bgm = (m == 0)[:, :, None].expand_as(bg)
    assert torch.equal(b["video"][bgm], bg[bgm])
    for k in range(3):
        sel = m == k + 1
        pix = b["video"].permute(0, 1, 3, 4, 2)[sel]  # P 3
        col = b["colour"][:, :, k][:, :, None, None].expand(*m.shape, 3)[sel]
        ratio = pix / col
        assert len(pix) > 0
        assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-5)
        assert ratio.min() >= 0.6 - 1e-5 and ratio.max() <= 1 + 1e-5
    # occlusion order: where the two front-most sprites' alphas overlap, the mask shows the front
    assert set(m.unique().tolist()) <= {0, 1, 2, 3}


def test_flow_agrees_with_motion():
    """Warping frame t by ``flow_back[:, t]`` reproduces frame t+1 on sprite interiors that are
    visible in both frames; the forward flow maps sprite points by the known similarity."""
    w = _world(
        n_sprites=2,
        colour_drift=0.0,
        motions=("drift", "bounce", "circle_cw", "zoom"),
        scale_drift=0.05,
        rotation_drift=0.1,
    )
    b = w.sample(24, seed=2)
    n, T = 24, 8
    prev = b["video"][:, :-1].reshape(-1, 3, 32, 32)
    nxt = b["video"][:, 1:].reshape(-1, 3, 32, 32)
    fb = b["flow_back"].reshape(-1, 2, 32, 32)
    warped = V.warp(prev, fb)
    m_next = b["masks"][:, 1:].reshape(-1, 32, 32)
    src = V.warp(b["masks"][:, :-1].reshape(-1, 1, 32, 32).float(), fb)[:, 0]
    total_flow, total_id = 0.0, 0.0
    for k in (1, 2):
        inner = -F.max_pool2d(-(m_next == k).float()[:, None], 3, 1, 1)[:, 0] > 0.5
        inner &= (src - k).abs() < 1e-6  # all four source neighbours are the same sprite
        assert inner.sum() > 200
        e_flow = (warped - nxt).abs().amax(1)[inner]
        e_id = (prev - nxt).abs().amax(1)[inner]
        assert e_flow.mean() < 0.03 and e_flow.mean() < 0.25 * e_id.mean()
        total_flow, total_id = total_flow + e_flow.mean(), total_id + e_id.mean()
    # background: a pure pan, bilinear on a smooth texture
    bg = (-F.max_pool2d((m_next > 0).float()[:, None], 5, 1, 2)[:, 0] > -0.5) & (src == 0)
    bg[:, :2], bg[:, -2:], bg[:, :, :2], bg[:, :, -2:] = False, False, False, False
    assert ((warped - nxt).abs().amax(1)[bg]).mean() < 0.01
    # forward flow of the main sprite's centre pixel is its centre displacement
    c = b["centre"][:, :-1, 0]  # n T-1 2
    i = c[..., 1].floor().long().clamp(0, 31)
    j = c[..., 0].floor().long().clamp(0, 31)
    p = torch.stack([j + 0.5, i + 0.5], -1)
    ar = torch.arange(n)[:, None]
    tt = torch.arange(T - 1)[None]
    f = b["flow"][ar, tt, :, i, j]  # n T-1 2
    s0, s1 = b["scale"][:, :-1, 0], b["scale"][:, 1:, 0]
    a0, a1 = b["angle"][:, :-1, 0], b["angle"][:, 1:, 0]
    u = V._rot(-a0) @ ((p - c) / (s0[..., None] / 2))[..., None]
    expect = b["centre"][:, 1:, 0] + (s1[..., None] / 2) * (V._rot(a1) @ u)[..., 0] - p
    on = b["masks"][ar, tt, i, j] == 1
    assert on.sum() > 20 and torch.allclose(f[on], expect[on], atol=1e-4)


def test_branch_points_follow_the_stated_distribution():
    probs = (0.5, 0.3, 0.2, 0.0)
    w = _world(
        frames=10,
        branch_frame=5,
        branch_probs=probs,
        motions=("drift",),
        n_sprites=1,
        scale_drift=0.0,
        rotation_drift=0.0,
    )
    assert w.branch_distribution() == dict(zip(V.BRANCHES, probs))
    b = w.sample(2000, seed=3, shared_past=True)
    # identical pasts (frames up to the branch frame), different futures
    past = b["video"][:, :6]
    assert torch.equal(past, past[:1].expand_as(past))
    freq = torch.bincount(b["branch"], minlength=4).float() / 2000
    sd = torch.sqrt(torch.tensor(probs) * (1 - torch.tensor(probs)) / 2000)
    assert ((freq - torch.tensor(probs)).abs() <= 4 * sd + 1e-9).all()
    # the branch is readable from the path: the displacement after the branch turns by its angle
    c = b["centre"][:, :, 0]
    before = c[:, 5] - c[:, 4]
    after = c[:, 6] - c[:, 5]
    ang = (
        torch.atan2(
            before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0], (before * after).sum(-1)
        )
        * 180
        / math.pi
    )
    want = torch.tensor(list(V.BRANCHES.values()))[b["branch"]]
    diff = torch.remainder(ang - want + 180, 360) - 180
    assert diff.abs().max() < 1e-2
    futures = torch.unique(b["video"][:, -1].reshape(2000, -1), dim=0)
    assert len(futures) == 3  # three branches with probability > 0
    assert (_world(frames=10).sample(4)["branch"] == -1).all()


def test_leave_and_return_lookalikes_blink():
    w = _world(frames=9, p_leave=1.0, n_sprites=1, motions=("drift", "circle_cw"))
    b = w.sample(20, seed=4)
    main = (b["masks"] == 1).flatten(2).any(-1)
    assert not main[:, 3:6].any() and main[:, 0].all()
    w = _world(p_lookalike=1.0, n_sprites=3)
    b = w.sample(30, seed=0)
    assert (b["digit"] == b["digit"][:, :1]).all() and b["lookalike"][:, 1:].all()
    assert not b["lookalike"][:, 0].any()
    w = _world(frames=12, motions=("blink",), n_sprites=1)
    b = w.sample(10, seed=0)
    assert (~b["visible"]).any(1).all()
    shown = (b["masks"] == 1).flatten(2).any(-1)
    assert not (shown & ~b["visible"][:, :, 0]).any()


def test_motion_laws_by_hand():
    t = torch.arange(6.0)
    start = torch.tensor([[16.0, 16.0]] * 4)
    vel = torch.tensor([[1.0, 0.0], [3.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    motion = torch.tensor(
        [V.MOTIONS.index(m) for m in ("drift", "bounce", "circle_cw", "circle_ccw")]
    )
    c, logs, vis = V.motion_path(
        motion, t, start, vel, torch.full((4,), 5.0), torch.full((4,), 0.5), torch.zeros(4), 32, 8.0
    )
    assert torch.allclose(c[0, :, 0], 16 + t)
    assert torch.allclose(c[1, :, 0], torch.tensor([16.0, 19, 22, 23, 20, 17]))  # wall at 24
    assert torch.allclose(c[2, 1], torch.tensor([16 + 5 * math.cos(0.5), 16 + 5 * math.sin(0.5)]))
    assert torch.allclose(c[3, 1], torch.tensor([16 + 5 * math.cos(0.5), 16 - 5 * math.sin(0.5)]))
    assert (logs == 0).all() and vis.all()


def test_pseudo_video_and_blocks():
    img = torch.zeros(3, 1, 32, 32)
    img[:, :, 10:22, 8:20] = 1.0
    masks = img[:, 0].long()
    pv = V.pseudo_video(img, frames=6, seed=1, masks=masks)
    assert pv["video"].shape == (3, 6, 1, 32, 32) and pv["masks"].shape == (3, 6, 32, 32)
    assert torch.allclose(pv["video"][:, 0], img, atol=1e-6) and torch.equal(
        pv["masks"][:, 0], masks
    )
    agree = ((pv["video"][:, :, 0] > 0.5).long() == pv["masks"]).float().mean()
    assert agree > 0.97 and not torch.equal(pv["masks"][:, -1], masks)
    assert torch.equal(V.pseudo_video(img, seed=1)["video"], V.pseudo_video(img, seed=1)["video"])
    v = torch.arange(2 * 40).reshape(2, 40)
    blk = V.block_view(v, 8, 5)
    assert blk.shape == (2, 8, 5) and torch.equal(blk[1, 2], torch.arange(50, 55))
    with pytest.raises(ValueError, match="need T >= 40"):
        V.block_view(v[:, :39], 8, 5)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="subset of"):
        V.SpriteVideos(motions=("spin",))
    with pytest.raises(ValueError, match="branch_probs"):
        V.SpriteVideos(branch_probs=(0.5, 0.5))
    with pytest.raises(ValueError, match="branch_frame"):
        V.SpriteVideos(frames=8, branch_frame=7)
    with pytest.raises(ValueError, match="split"):
        V.digit_sprites("val")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        V.pseudo_video(torch.zeros(32, 32))
    with pytest.raises(ValueError, match="warp needs"):
        V.warp(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_digit_splits_disjoint():
    tr, _ = V.digit_sprites("train")
    te, _ = V.digit_sprites("test")
    assert len(tr) + len(te) == 1797 and tr.shape[1:] == (8, 8)


def test_class_table_and_occlusion_order():
    labels = torch.tensor([2, 0, 2, 1, 2])
    table, counts = V.class_table(labels, 3)
    assert counts.tolist() == [1, 1, 3] and table[2].tolist() == [0, 2, 4] and table[0, 0] == 1
    # two sprites at the same place: the mask shows the one drawn last (depth order back to front)
    w = _world(n_sprites=2, motions=("drift",), p_lookalike=0.0)
    g = torch.Generator().manual_seed(0)
    P = w._params(2, g, torch.device("cpu"))
    P["start"][:] = 16.0
    P["velocity"][:] = 0.5
    P["size0"][:] = 14.0
    P["size_rate"][:] = 0.0
    P["angle_rate"][:] = 0.0
    P["angle0"][:] = 0.0
    P["motion"][:] = 0
    P["depth"] = torch.tensor([[0, 1], [1, 0]])
    P["sprite_index"][:] = torch.tensor([0, 0])  # the same texture for both
    b = w._render(P, 2, torch.device("cpu"))
    fg = b["masks"] > 0
    assert fg.any() and (b["masks"][0][fg[0]] == 2).all() and (b["masks"][1][fg[1]] == 1).all()


def test_viz_helpers():
    from cvtutor.viz import video as vv

    f = torch.zeros(2, 2, 2)
    f[0, 0, 0] = 1.0  # rightwards: red
    f[1, 0, 1] = 1.0  # downwards (y down): hue 1/4
    rgb = vv.flow_to_rgb(f)
    assert (
        rgb.shape == (2, 2, 3) and np.allclose(rgb[0, 0], [1, 0, 0]) and np.allclose(rgb[1, 1], 1)
    )
    assert np.allclose(rgb[0, 1], [0.5, 1, 0])
    assert np.allclose(vv.mask_to_rgb(torch.tensor([[0]]))[0, 0], 0)
    fig = vv.clip_strip(torch.rand(2, 3, 3, 8, 8), rows_titles=["a", "b"])
    assert len(fig.data) == 6
    with pytest.raises(ValueError, match="row titles"):
        vv.clip_strip(torch.rand(2, 3, 3, 8, 8), rows_titles=["a"])
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, H, W\)"):
        vv.flow_to_rgb(torch.zeros(3, 4, 4))
