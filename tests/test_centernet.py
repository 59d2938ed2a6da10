"""Tests of the shared detector pieces: cvtutor.nn.centernet and cvtutor.data.shape_scenes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cvtutor.data.detection_sim import render_scene
from cvtutor.data.shape_scenes import render_shapes, shape_masks, shape_scenes
from cvtutor.nn.centernet import CenterNet, centernet_loss, centernet_targets, decode, focal_loss
from cvtutor.train import fit


# ---------------------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------------------
def test_output_shapes_and_prior():
    net = CenterNet(n_classes=3, width=8, dilations=(1, 2)).eval()
    out = net(torch.rand(2, 3, 32, 48))
    assert out["heatmap"].shape == (2, 3, 8, 12)
    assert out["size"].shape == (2, 2, 8, 12) and out["offset"].shape == (2, 2, 8, 12)
    # the heatmap bias starts every cell near the prior 0.1 (CenterNet's -2.19)
    assert net.heatmap[-1].bias.detach() == pytest.approx(torch.full((3,), math.log(0.1 / 0.9)))


def test_bad_input_raises():
    net = CenterNet(n_classes=2, width=8)
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.rand(1, 3, 30, 32))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        net(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="n_classes"):
        CenterNet(n_classes=0)
    with pytest.raises(ValueError, match="same shape"):
        focal_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"boxes \(B, M, 4\)"):
        centernet_targets(torch.zeros(1, 4), torch.zeros(1, dtype=torch.long), torch.ones(1, dtype=torch.bool), 2, (4, 4))


# ---------------------------------------------------------------------------------------------
# targets
# ---------------------------------------------------------------------------------------------
def test_targets_hand_case():
    # one object of class 1 at x=10, y=6, w=12, h=24 (input pixels), stride 4: centre (16, 18) px
    # = (4.0, 4.5) cells, peak cell (4, 4), offset (0, 0.5), size (3, 6) cells; a padded slot is ignored
    boxes = torch.tensor([[[10.0, 6.0, 12.0, 24.0], [0.0, 0.0, 30.0, 30.0]]])
    labels = torch.tensor([[1, 0]])
    valid = torch.tensor([[True, False]])
    t = centernet_targets(boxes, labels, valid, n_classes=2, out_hw=(8, 8), stride=4)
    assert t["heatmap"].shape == (1, 2, 8, 8)
    assert t["heatmap"][0, 0].abs().max() == 0                       # the invalid object draws nothing
    assert t["heatmap"][0, 1, 4, 4] == 1.0 and (t["heatmap"] == 1).sum() == 1
    assert int(t["index"][0, 0]) == 4 * 8 + 4
    torch.testing.assert_close(t["size"][0, 0], torch.tensor([3.0, 6.0]))
    torch.testing.assert_close(t["offset"][0, 0], torch.tensor([0.0, 0.5]))
    # the Gaussian: sigma = size / 6 = (0.5, 1.0) cells, so one cell right is exp(-0.5 / 0.25)
    assert float(t["heatmap"][0, 1, 4, 5]) == pytest.approx(math.exp(-2.0))
    assert float(t["heatmap"][0, 1, 5, 4]) == pytest.approx(math.exp(-0.5))


def test_targets_take_the_max_of_overlapping_gaussians():
    boxes = torch.tensor([[[0.0, 0.0, 16.0, 16.0], [8.0, 0.0, 16.0, 16.0]]])
    t = centernet_targets(boxes, torch.tensor([[0, 0]]), torch.tensor([[True, True]]), 1, (4, 8))
    one = centernet_targets(boxes[:, :1], torch.tensor([[0]]), torch.tensor([[True]]), 1, (4, 8))["heatmap"]
    two = centernet_targets(boxes[:, 1:], torch.tensor([[0]]), torch.tensor([[True]]), 1, (4, 8))["heatmap"]
    torch.testing.assert_close(t["heatmap"], torch.maximum(one, two))


# ---------------------------------------------------------------------------------------------
# loss
# ---------------------------------------------------------------------------------------------
def test_focal_loss_hand_case():
    # 3 cells: a peak (Y=1) with Ŷ=0.8, a near cell (Y=0.5) with Ŷ=0.4, a far cell (Y=0) with Ŷ=0.1
    p = torch.tensor([0.8, 0.4, 0.1])
    y = torch.tensor([1.0, 0.5, 0.0])
    logits = torch.log(p / (1 - p)).view(1, 1, 1, 3)
    expected = -((0.2**2) * math.log(0.8) + (0.5**4) * (0.4**2) * math.log(0.6) + (0.1**2) * math.log(0.9)) / 1
    assert float(focal_loss(logits, y.view(1, 1, 1, 3))) == pytest.approx(expected, rel=1e-5)


def test_focal_loss_matches_the_formula_on_random_maps():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, 5, generator=g)
    target = torch.rand(2, 3, 5, 5, generator=g) * 0.99
    target[0, 1, 2, 2] = target[1, 0, 4, 1] = 1.0
    p = torch.sigmoid(logits).double()
    y = target.double()
    naive = torch.where(y == 1, (1 - p) ** 2 * torch.log(p), (1 - y) ** 4 * p**2 * torch.log(1 - p)).sum() / 2
    assert float(focal_loss(logits, target)) == pytest.approx(float(-naive), rel=1e-5)


def test_regression_losses_read_the_peak_cells():
    boxes = torch.tensor([[[10.0, 6.0, 12.0, 24.0]]])
    t = centernet_targets(boxes, torch.tensor([[0]]), torch.tensor([[True]]), 1, (8, 8))
    out = {"heatmap": torch.zeros(1, 1, 8, 8), "size": torch.zeros(1, 2, 8, 8), "offset": torch.zeros(1, 2, 8, 8)}
    out["size"][0, :, 4, 4] = torch.tensor([2.0, 6.0])                 # |2 - 3| + |6 - 6| = 1
    out["size"][0, :, 0, 0] = 100.0                                     # far from the peak: not read
    out["offset"][0, :, 4, 4] = torch.tensor([0.25, 0.25])             # |0.25 - 0| + |0.25 - 0.5| = 0.5
    terms = centernet_loss(out, t)
    assert float(terms["size"]) == pytest.approx(1.0) and float(terms["offset"]) == pytest.approx(0.5)
    assert float(terms["loss"]) == pytest.approx(float(terms["heatmap"]) + 0.1 * 1.0 + 1.0 * 0.5)


def test_loss_decreases_on_one_batch():
    torch.manual_seed(0)
    scenes = shape_scenes(8, size=32, n_classes=2, max_objects=2, min_side=6, noise=0.0, seed=1)
    idx = torch.arange(8)
    batch = (scenes.render(idx), scenes.boxes, scenes.labels, scenes.valid)
    net = CenterNet(2, width=8, dilations=(1, 2))

    def loss_fn(models, b, step):
        images, boxes, labels, valid = b
        out = models["model"](images)
        return centernet_loss(out, centernet_targets(boxes, labels, valid, 2, tuple(out["heatmap"].shape[-2:])))

    hist = fit(net, torch.optim.Adam(net.parameters(), 1e-2), lambda s: batch, loss_fn, steps=40, progress=False)
    assert hist["loss"].iloc[-5:].mean() < 0.5 * hist["loss"].iloc[0]
    assert {"heatmap", "size", "offset"} <= set(hist.columns)


# ---------------------------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------------------------
def test_decode_hand_made_heatmap():
    logits = torch.full((1, 3, 8, 8), -10.0)
    logits[0, 2, 3, 5] = 2.0                       # class 2 at cell (x=5, y=3), score sigmoid(2)
    logits[0, 2, 3, 6] = 1.0                       # a weaker neighbour: not a peak, suppressed
    logits[0, 0, 6, 1] = 0.0                       # class 0 at cell (1, 6), score 0.5
    size = torch.zeros(1, 2, 8, 8)
    offset = torch.zeros(1, 2, 8, 8)
    size[0, :, 3, 5] = torch.tensor([2.0, 4.0])
    offset[0, :, 3, 5] = torch.tensor([0.5, 0.25])
    out = decode({"heatmap": logits, "size": size, "offset": offset}, k=2, stride=4)
    assert out["labels"].tolist() == [[2, 0]]
    assert out["scores"][0].tolist() == pytest.approx([1 / (1 + math.exp(-2.0)), 0.5])
    # centre (5.5, 3.25) cells = (22, 13) px, size (8, 16) px -> [18, 5, 8, 16]
    torch.testing.assert_close(out["boxes"][0, 0], torch.tensor([18.0, 5.0, 8.0, 16.0]))


def test_decoding_the_targets_gives_back_the_boxes():
    scenes = shape_scenes(6, size=64, n_classes=3, max_objects=4, min_side=8, seed=3)
    t = centernet_targets(scenes.boxes, scenes.labels, scenes.valid, 3, (16, 16))
    b = len(scenes)

    def dense(values):  # write per-object values at their peak cells
        maps = torch.zeros(b, 2, 16 * 16)
        for i in range(b):
            for j in np.flatnonzero(scenes.valid[i].numpy()):
                maps[i, :, t["index"][i, j]] = values[i, j]
        return maps.view(b, 2, 16, 16)

    logits = torch.logit(t["heatmap"].clamp(1e-6, 1 - 1e-6))
    out = decode({"heatmap": logits, "size": dense(t["size"]), "offset": dense(t["offset"])}, k=4)
    for i in range(b):
        n = int(scenes.valid[i].sum())
        got = out["boxes"][i, :n][out["scores"][i, :n] > 0.99]
        want = scenes.boxes[i][scenes.valid[i]]
        assert len(got) == n
        order_got, order_want = got[:, 0].argsort(), want[:, 0].argsort()
        torch.testing.assert_close(got[order_got], want[order_want], atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------
# the shape scenes
# ---------------------------------------------------------------------------------------------
def test_scenes_are_seeded_disjoint_and_inside():
    a, b = shape_scenes(50, size=48, seed=5), shape_scenes(50, size=48, seed=5)
    torch.testing.assert_close(a.boxes, b.boxes)
    assert not torch.equal(a.boxes, shape_scenes(50, size=48, seed=6).boxes)
    boxes = a.boxes[a.valid]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, :2] + boxes[:, 2:] <= 48 + 1e-4).all()
    assert a.valid.sum(1).min() >= 1 and len(a.gt) == int(a.valid.sum())
    for i in range(50):
        bx = a.boxes[i][a.valid[i]]
        lo = torch.maximum(bx[:, None, :2], bx[None, :, :2])
        hi = torch.minimum(bx[:, None, :2] + bx[:, None, 2:], bx[None, :, :2] + bx[None, :, 2:])
        inter = ((hi - lo) > 0).all(-1) & ~torch.eye(len(bx), dtype=torch.bool)
        assert not inter.any()


def test_shapes_match_the_numpy_renderer():
    s = shape_scenes(20, size=64, seed=2)
    images = s.render(torch.arange(20))                  # no noise
    for i in range(20):
        ref = render_scene(s.gt[s.gt["image_id"] == i + 1], 64, 64, scale=1.0)
        ref_mask = np.abs(ref - 0.93).sum(-1) > 1e-9
        ours = (images[i] - s.background[i]).abs().sum(0).numpy() > 1e-6
        assert (ref_mask == ours).all()


def test_render_noise_depends_on_the_step_only():
    s = shape_scenes(4, size=32, seed=0)
    idx = torch.arange(4)
    torch.testing.assert_close(s.render(idx, step=3), s.render(idx, step=3))
    assert not torch.equal(s.render(idx, step=3), s.render(idx, step=4))


def test_masks_and_scenes_reject_bad_input():
    with pytest.raises(ValueError, match="n_classes"):
        shape_scenes(4, n_classes=6)
    with pytest.raises(ValueError, match="min_side"):
        shape_scenes(4, size=32, min_side=40)
    with pytest.raises(ValueError, match=r"boxes \(B, M, 4\)"):
        shape_masks(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), 8)
    with pytest.raises(ValueError, match=r"\(B, M, 4\)"):
        render_shapes(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.bool),
                      torch.zeros(2, 3), torch.zeros(2), 8)


def test_one_class_per_cell_keeps_only_the_best_class():
    logits = torch.full((1, 2, 4, 4), -10.0)
    logits[0, 0, 1, 1], logits[0, 1, 1, 1] = 1.0, 0.5       # the same cell peaks in two classes
    out = {"heatmap": logits, "size": torch.ones(1, 2, 4, 4), "offset": torch.zeros(1, 2, 4, 4)}
    both = decode(out, k=2)
    assert sorted(both["labels"][0].tolist()) == [0, 1] and float(both["scores"][0, 1]) > 0.5
    one = decode(out, k=2, one_class_per_cell=True)
    assert one["labels"][0, 0] == 0 and float(one["scores"][0, 1]) < 1e-3   # the next is a flat background cell
