"""The 2-D world's articulated figures: critters (E12, E23) and pedestrians (E21). Masks against
the images, closed forms, mirror symmetry, class balance, seeds, samplers, bag and camera."""
from __future__ import annotations

import math

import pytest
import torch

from cvtutor.data import raster
from cvtutor.data.scenes2d import critters as K
from cvtutor.data.scenes2d import pedestrians as P
from cvtutor.data.scenes2d.figures import hsv_to_rgb
from cvtutor.metrics.retrieval import evaluate_reid


def test_hsv_to_rgb_matches_colorsys():
    import colorsys

    hsv = torch.rand(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = torch.tensor([colorsys.hsv_to_rgb(*map(float, x)) for x in hsv], dtype=torch.float64)
    torch.testing.assert_close(hsv_to_rgb(hsv), ref)


# ---------------------------------------------------------------------------------------------
# critters
# ---------------------------------------------------------------------------------------------
def test_critters_shapes_balance_and_masks():
    classes = K.critter_classes(6, seed=1)
    data = K.critters(classes, n_per_class=7, size=32, seed=2, chunk=16)
    assert data.image.shape == (42, 3, 32, 32) and data.parts.shape == (42, 32, 32)
    assert data.part_masks.shape == (42, len(K.PARTS), 32, 32)
    assert torch.equal(data.label.bincount(), torch.full((6,), 7))                # balanced
    assert torch.equal(data.mask, data.parts >= 0)
    assert set(data.parts.unique().tolist()) <= set(range(-1, len(K.PARTS)))
    # every visible part pixel lies in that part's amodal mask
    for k in range(len(K.PARTS)):
        assert not ((data.parts == k) & ~data.part_masks[:, k]).any()
    assert data.image.min() >= 0 and data.image.max() <= 1
    assert (data.mask.flatten(1).sum(1) > 20).all()                               # all visible


def test_critter_pixels_are_their_parts_colours():
    classes = K.critter_classes(5, seed=3)
    classes = classes.with_(texture=torch.full((5,), raster.FLAT))
    labels = torch.arange(5).repeat(4)
    poses = K.sample_poses(20, seed=4, clutter=False)
    out = K.render_critters(classes, labels, poses, size=48, aa=0.0)
    img = out.image.permute(0, 2, 3, 1)                                            # (N, H, W, 3)
    cls = classes[labels]
    for i in range(20):
        def close(mask, *colors):
            px = img[i][mask]
            ok = torch.zeros(len(px), dtype=torch.bool)
            for c in colors:
                ok |= (px - c).abs().max(1).values < 1e-5
            return bool(ok.all())

        p = out.parts[i]
        assert close(p == -1, poses.backdrop[i])
        assert close(p == K.BODY, cls.body[i])
        assert close(p == K.HEAD, cls.head_color[i], torch.full((3,), 0.08))      # and the eye
        assert close(p == K.EAR, cls.ear[i])
        assert close(p == K.TAIL, cls.legs[i])
        assert close(p == K.LEG, cls.legs[i], 0.7 * cls.legs[i])                  # near, far


def test_critter_body_area_is_the_ellipse_area():
    classes = K.critter_classes(8, seed=5)
    poses = K.sample_poses(8, seed=6, scale=(0.45, 0.5), max_shift=0.0)
    out = K.render_critters(classes, torch.arange(8), poses, size=96)
    side = 96 * poses.scale
    area = math.pi * (0.5 * side) * (0.5 * side / classes.aspect)                 # pi a b
    counted = out.part_masks[:, K.BODY].flatten(1).sum(1).float()
    torch.testing.assert_close(counted, area, rtol=0.03, atol=0)


def test_pose_is_content_class_is_appearance():
    classes = K.critter_classes(2, seed=7)
    # the same shapes, other colours and textures: the same masks, other pixels
    recoloured = classes.with_(body=classes.body.flip(1), texture=torch.tensor([raster.STRIPES,
                                                                                raster.DOTS]))
    poses = K.sample_poses(6, seed=8)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    a = K.render_critters(classes, labels, poses)
    b = K.render_critters(recoloured, labels, poses)
    assert torch.equal(a.parts, b.parts) and not torch.equal(a.image, b.image)
    # facing mirrors the figure: centred on the canvas, upright, the part map flips left-right
    p = poses.with_(angle=torch.zeros(6), center=torch.full((6, 2), 0.5), facing=torch.ones(6))
    right = K.render_critters(classes, labels, p, size=64, aa=0.0).parts
    left = K.render_critters(classes, labels, p.with_(facing=-torch.ones(6)), size=64, aa=0.0).parts
    assert (right.flip(-1) != left).float().mean() < 2e-3


def test_fine_grained_subclasses_differ_only_in_the_ear():
    classes, base = K.fine_grained_classes(2, ear_colors=2, seed=9)
    assert len(classes) == 2 * len(K.EARS) * 2 and base.tolist() == [0] * 6 + [1] * 6
    for f in ("body", "head_color", "texture", "aspect", "leg_length", "n_legs", "tail_curl"):
        col = getattr(classes, f)
        assert torch.equal(col[:6], col[:1].expand_as(col[:6]))
    sub = {(int(s), tuple(c.tolist())) for s, c in zip(classes.ear_shape[:6], classes.ear[:6])}
    assert len(sub) == 6                                                           # all distinct
    poses = K.sample_poses(1, seed=10)
    renders = [K.render_critters(classes, torch.tensor([c]), poses, size=64) for c in range(6)]
    ears = torch.stack([r.part_masks[0, K.EAR] for r in renders])
    for r in renders[1:]:
        changed = r.parts[0] != renders[0].parts[0]
        assert not (changed & ~(ears.any(0))).any()        # only where some sub-class has its ear
    assert ears.flatten(1).sum(1).max() < 0.08 * renders[0].mask.sum()            # a small part


def test_critters_are_bit_identical_for_a_seed():
    classes = K.critter_classes(4, seed=11)
    a = K.critters(classes, 3, size=32, seed=12, noise=0.05)
    b = K.critters(K.critter_classes(4, seed=11), 3, size=32, seed=12, noise=0.05)
    assert torch.equal(a.image, b.image) and torch.equal(a.parts, b.parts)
    c = K.critters(classes, 3, size=32, seed=13, noise=0.05)
    assert not torch.equal(a.image, c.image)
    # rendering in chunks of 5 images gives the same data as one chunk
    d = K.critters(classes, 3, size=32, seed=12, noise=0.05, chunk=5)
    assert torch.equal(a.image, d.image) and torch.equal(a.part_masks, d.part_masks)


def test_class_split_and_k_shot_sampler():
    seen, unseen = K.class_split(20, 5, seed=0)
    assert len(unseen) == 5 and len(seen) == 15
    assert sorted(torch.cat([seen, unseen]).tolist()) == list(range(20))
    assert torch.equal(K.class_split(20, 5, seed=0)[1], unseen)
    labels = K.balanced_labels(20, 6)
    sampler = K.KShotSampler(labels, unseen, n_way=3, k_shot=2, n_query=3, n_episodes=30, seed=1)
    episodes = list(sampler)
    assert len(episodes) == 30
    for e, (support, query) in enumerate(episodes):
        way = sampler.episode(e)[0]
        assert support.shape == (3, 2) and query.shape == (3, 3)
        assert len(set(way.tolist())) == 3 and set(way.tolist()) <= set(unseen.tolist())
        assert torch.equal(labels[support], way[:, None].expand(3, 2))
        assert torch.equal(labels[query], way[:, None].expand(3, 3))
        both = torch.cat([support.flatten(), query.flatten()])
        assert len(set(both.tolist())) == len(both)                                # disjoint
    again = K.KShotSampler(labels, unseen, 3, 2, 3, seed=1)
    assert torch.equal(sampler.episode(4)[1], again.episode(4)[1])
    with pytest.raises(ValueError, match="fewer than k_shot"):
        K.KShotSampler(labels, unseen, 3, k_shot=5, n_query=2)
    with pytest.raises(ValueError, match="n_way"):
        K.KShotSampler(labels, unseen, 6, 1)
    with pytest.raises(ValueError, match="n_unseen"):
        K.class_split(5, 5)


def test_critter_bad_input():
    classes = K.critter_classes(3)
    poses = K.sample_poses(2)
    with pytest.raises(ValueError, match="index the 3 classes"):
        K.render_critters(classes, torch.tensor([0, 3]), poses)
    with pytest.raises(ValueError, match=r"\(N,\) = \(2,\)"):
        K.render_critters(classes, torch.tensor([0]), poses)
    with pytest.raises(ValueError, match="n_classes"):
        K.critter_classes(0)


# ---------------------------------------------------------------------------------------------
# pedestrians
# ---------------------------------------------------------------------------------------------
def test_identities_are_distinct_with_near_twins():
    ids = P.pedestrian_identities(60, twin_rate=0.5, seed=0)
    a = ids.attributes
    assert len({tuple(r.tolist()) for r in a}) == 60
    twins = ids.twin_of >= 0
    assert int(twins.sum()) == 30
    diff = ids.differences()
    assert (diff[torch.arange(60)[twins], ids.twin_of[twins]] == 1).all()         # one attribute
    assert (diff + 99 * torch.eye(60, dtype=torch.long)).min(1).values.float().mean() < 2
    bag = list(P.ATTRIBUTES).index("bag")
    parent = ids.attributes[ids.twin_of[twins]]
    changed_bag = (a[twins, bag] != parent[:, bag]) & ((a[twins, bag] == 0) | (parent[:, bag] == 0))
    assert changed_bag.any()                                   # some twins differ by having a bag
    # a bag with its colour counts as one attribute: taking it away is one difference
    one = ids.attributes[:1].clone()
    one[0, bag], one[0, bag + 1] = P.BACKPACK, 3
    none = one.clone()
    none[0, bag], none[0, bag + 1] = P.NO_BAG, 0
    pair = P.PedestrianIdentities(torch.cat([one, none]), torch.tensor([-1, 0]))
    assert pair.differences()[0, 1] == 1
    table = ids.table()
    assert list(table.columns) == [*P.ATTRIBUTES, "twin_of"]
    assert (table.bag_color[table.bag == "none"] == "").all()


def test_pedestrian_parts_bag_and_occluder():
    ids = P.pedestrian_identities(12, seed=1)
    data = P.pedestrians(ids, n_per_id=6, n_cameras=3, size=64, seed=2, occluded=0.4)
    assert data.image.shape == (72, 3, 64, 32) and data.part_masks.shape == (72, 5, 64, 32)
    assert torch.equal(data.mask, data.parts >= 0)
    assert torch.equal(data.parts_no_bag, data.parts.masked_fill(data.parts == P.BAG, -1))
    has_bag = ids.column("bag")[data.pid] != P.NO_BAG
    bag_px = (data.parts == P.BAG).flatten(1).sum(1)
    assert (bag_px[~has_bag] == 0).all() and (bag_px[has_bag & ~data.views.occluded] > 0).all()
    for k in range(len(P.PARTS)):
        assert not ((data.parts == k) & ~data.part_masks[:, k]).any()
    # the occluder: only in the occluded split, never on the person, below its top edge
    occ = data.occluder.flatten(1).any(1)
    assert torch.equal(occ, data.views.occluded) and not (data.occluder & data.mask).any()
    rows = torch.arange(64).view(1, 64, 1).float() + 0.5
    assert not (data.occluder & (rows < data.views.occluder_top.view(-1, 1, 1) * 64)).any()
    assert 0.2 < data.views.occluded.float().mean() < 0.6
    assert torch.equal(data.camera, torch.arange(6).repeat(12) % 3)


def test_partial_crops_cut_the_legs_not_the_head():
    ids = P.pedestrian_identities(10, seed=12)
    data = P.pedestrians(ids, n_per_id=4, n_cameras=2, size=64, seed=13, partial=0.5)
    cut = data.views.partial
    assert 0 < int(cut.sum()) < len(cut)
    shoes = (data.parts == P.SHOES).flatten(1).any(1)
    head = (data.parts == P.HEAD).flatten(1).any(1)
    assert not shoes[cut].any() and shoes[~cut].all() and head.all()
    # the same seed without partial crops gives the same views but for the partial ones
    full = P.sample_views(data.camera, seed=13)
    assert torch.equal(full.stride, data.views.stride) and not full.partial.any()


def test_part_masks_with_and_without_the_bag():
    ids = P.pedestrian_identities(30, bag_rate=1.0, twin_rate=0.0, seed=3)
    bagless = P.PedestrianIdentities(ids.attributes.clone(), ids.twin_of)
    bagless.attributes[:, list(P.ATTRIBUTES).index("bag")] = P.NO_BAG
    pid = torch.arange(30)
    views = P.sample_views(pid % 2, seed=4)
    cams = P.cameras(2, seed=5)
    with_bag = P.render_pedestrians(ids, pid, views, cams, size=64, aa=0.0)
    without = P.render_pedestrians(bagless, pid, views, cams, size=64, aa=0.0)
    bag = with_bag.part_masks[:, P.BAG]
    assert bag.flatten(1).any(1).all() and not without.part_masks[:, P.BAG].any()
    # outside the bag the two renders agree exactly, pixels and parts
    assert torch.equal(with_bag.parts[~bag], without.parts[~bag])
    img_a, img_b = with_bag.image.permute(0, 2, 3, 1), without.image.permute(0, 2, 3, 1)
    assert torch.equal(img_a[~bag], img_b[~bag])
    # under the bag the bagless person shows what the bag hid (torso, legs or background)
    assert set(without.parts[bag].unique().tolist()) <= {-1, P.HEAD, P.TORSO, P.LEGS, P.SHOES}
    # the bagless render's part map is the bag render's with the bag as background, outside it
    assert torch.equal(with_bag.parts_no_bag[~bag], without.parts[~bag])


def test_pedestrian_pixels_and_cameras():
    ids = P.pedestrian_identities(10, seed=6)
    pid = torch.arange(10)
    views = P.sample_views(torch.zeros(10, dtype=torch.long), seed=7)
    neutral = P.cameras(3, strength=0.0, seed=8)
    out = P.render_pedestrians(ids, pid, views, neutral, aa=0.0)
    img = out.image.permute(0, 2, 3, 1)
    clothes = torch.tensor(list(P.CLOTHES.values()))
    trousers = clothes[ids.column("trousers")]
    for i in range(10):
        legs = img[i][out.parts[i] == P.LEGS]
        assert len(legs) and torch.allclose(legs, trousers[i].expand_as(legs), atol=1e-6)
    # a camera is photometric only: other camera, same parts, pixels by the camera's formula
    cams = P.cameras(3, seed=9)
    cams = P.Cameras(cams.gain, cams.brightness, cams.contrast, neutral.tint)
    two = views.with_(camera=torch.full((10,), 2))
    shifted = P.render_pedestrians(ids, pid, two, cams, aa=0.0)
    assert torch.equal(shifted.parts, out.parts)
    identity = P.Cameras(torch.ones(3, 3), torch.zeros(3), torch.ones(3), neutral.tint)
    base = P.render_pedestrians(ids, pid, two, identity, aa=0.0).image
    gain = cams.gain[2, :, None, None]
    expected = ((base - 0.5) * cams.contrast[2] + 0.5 + cams.brightness[2]) * gain
    torch.testing.assert_close(shifted.image, expected.clamp(0, 1))


def test_pedestrians_bit_identical_and_query_gallery_protocol():
    ids = P.pedestrian_identities(8, seed=10)
    a = P.pedestrians(ids, 6, n_cameras=3, size=32, seed=11, occluded=0.3, noise=0.02)
    b = P.pedestrians(P.pedestrian_identities(8, seed=10), 6, 3, size=32, seed=11, occluded=0.3,
                      noise=0.02)
    assert torch.equal(a.image, b.image) and torch.equal(a.parts, b.parts)
    c = P.pedestrians(ids, 6, 3, size=32, seed=11, occluded=0.3, noise=0.02, chunk=7)
    assert torch.equal(a.image, c.image) and torch.equal(a.occluder, c.occluder)
    is_query = P.query_gallery(a.pid, a.camera, seed=0)
    pairs = a.pid * 3 + a.camera
    per_pair = torch.bincount(pairs[is_query], minlength=24)
    assert torch.equal(per_pair, torch.ones(24, dtype=torch.long))
    # an oracle distance (0 within an identity, 1 across) is perfect under the protocol
    q, g = is_query, ~is_query
    dist = (a.pid[q][:, None] != a.pid[g][None, :]).float()
    res = evaluate_reid(dist, a.pid[q], a.pid[g], a.camera[q], a.camera[g], max_rank=5)
    assert res["mAP"] == 1.0 and res["cmc"][0] == 1.0 and res["n_valid"] == 24


def test_pedestrian_bad_input():
    ids = P.pedestrian_identities(3)
    views = P.sample_views(torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="index the 2 cameras"):
        P.render_pedestrians(ids, torch.tensor([0, 1]), views, P.cameras(2))
    with pytest.raises(ValueError, match="even number"):
        P.render_pedestrians(ids, torch.tensor([0, 1]), views, P.cameras(6), size=33)
    with pytest.raises(ValueError, match="occluded"):
        P.sample_views(torch.tensor([0]), occluded=2.0)
    with pytest.raises(ValueError, match="partial must be a share"):
        P.sample_views(torch.tensor([0]), partial=-0.1)
