"""CPN (E24): corner pooling, CornerNet targets and radius, valid pairs, RoIAlign, Eq. 1-3, score
fusion, soft-NMS, the anchor bound, AF, the COCO corner-target reader and the smoke profile."""

import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torchvision.ops import box_iou, nms, roi_align, sigmoid_focal_loss

from cvtutor import report
from cvtutor.papers import cpnet as C


# ---- CornerNet targets --------------------------------------------------------------------------
def _iou_xyxy(a, b):
    return float(box_iou(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)))


@pytest.mark.parametrize("h,w,t", [(10.0, 10.0, 0.3), (4.0, 30.0, 0.3), (20.0, 7.0, 0.7)])
def test_gaussian_radius_keeps_the_iou_in_the_three_cases(h, w, t):
    r = C.gaussian_radius(h, w, t)
    assert r > 0
    box = (0.0, 0.0, w, h)
    cases = {"together": (r, r, w + r, h + r), "inwards": (r, r, w - r, h - r), "outwards": (-r, -r, w + r, h + r)}
    ious = {k: _iou_xyxy(box, v) for k, v in cases.items()}
    assert min(ious.values()) >= t - 1e-9
    assert min(ious.values()) == pytest.approx(t, abs=1e-9)          # the radius is tight
    # any shift within the radius (per coordinate, a grid) keeps IoU >= t in the worst of the three
    for d in itertools.product((-r, 0.0, r), repeat=2):
        shifted = (d[0], d[1], w + d[0], h + d[1])
        assert _iou_xyxy(box, shifted) >= t - 1e-9
    with pytest.raises(ValueError, match="min_overlap"):
        C.gaussian_radius(h, w, 1.5)


def test_corner_targets_peaks_offsets_and_bad_input():
    boxes = torch.tensor([[[5.0, 9.0, 20.0, 12.0], [0.0, 0.0, 4.0, 4.0]]])
    labels, valid = torch.tensor([[1, 0]]), torch.tensor([[True, False]])
    t = C.corner_targets(boxes, labels, valid, 2, (8, 8), stride=4)
    tl, br = t["tl_heat"][0], t["br_heat"][0]
    assert tl[1, 2, 1] == 1.0 and br[1, 5, 6] == 1.0                     # ⌊(5, 9)/4⌋, ⌊(25, 21)/4⌋
    assert tl[1].max() == 1.0 and (tl[1] == 1).sum() == 1 and tl[0].max() == 0  # the invalid one drawn nowhere
    assert torch.allclose(t["tl_offset"][0, 0], torch.tensor([0.25, 0.25]))
    assert torch.allclose(t["br_offset"][0, 0], torch.tensor([0.25, 0.25]))
    assert t["tl_index"][0, 0] == 2 * 8 + 1
    with pytest.raises(ValueError, match="boxes"):
        C.corner_targets(boxes[0], labels, valid, 2, (8, 8))


def test_coco_corner_targets_reads_a_coco_file(tmp_path):
    data = {"images": [{"id": 7, "width": 32, "height": 24, "file_name": "a.jpg"}],
            "categories": [{"id": 3, "name": "cat"}, {"id": 9, "name": "dog"}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 9, "bbox": [4, 4, 16, 8], "area": 128,
                             "iscrowd": 0},
                            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [0, 0, 8, 8], "area": 64,
                             "iscrowd": 1}]}
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps(data))
    t = C.coco_corner_targets(path, 7, stride=4)
    assert t["tl_heat"].shape == (2, 6, 8)                                  # 24/4 x 32/4
    assert t["tl_heat"][1, 1, 1] == 1.0 and t["br_heat"][1, 3, 5] == 1.0   # dog = index 1; crowd cat left out
    assert t["tl_heat"][0].max() == 0
    with pytest.raises(ValueError, match="image id"):
        C.coco_corner_targets(path, 8)
    with pytest.raises(FileNotFoundError):
        C.coco_corner_targets(tmp_path / "missing.json", 7)
    del data["images"][0]["width"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="width"):
        C.coco_corner_targets(path, 7)


# ---- proposals ----------------------------------------------------------------------------------
def test_valid_pairs_equal_brute_force():
    g = torch.Generator().manual_seed(3)
    tl_c, br_c = torch.randint(0, 3, (2, 9), generator=g), torch.randint(0, 3, (2, 7), generator=g)
    tl_xy, br_xy = torch.rand(2, 9, 2, generator=g) * 10, torch.rand(2, 7, 2, generator=g) * 10
    ok = C.valid_pairs(tl_c, tl_xy, br_c, br_xy)
    for b, i, j in itertools.product(range(2), range(9), range(7)):
        ref = tl_c[b, i] == br_c[b, j] and tl_xy[b, i, 0] < br_xy[b, j, 0] and tl_xy[b, i, 1] < br_xy[b, j, 1]
        assert bool(ok[b, i, j]) == bool(ref)
    with pytest.raises(ValueError, match="xy"):
        C.valid_pairs(tl_c, tl_xy[..., :1], br_c, br_xy)


def test_corner_proposals_recover_a_planted_box():
    m = C.CornerProposalNet(2, width=8, depth=1)
    out = {k: torch.full((1, 2, 4, 4), -10.0) for k in ("tl_heat", "br_heat")}
    out["tl_heat"][0, 1, 1, 0] = 5.0
    out["br_heat"][0, 1, 3, 2] = 5.0
    out.update({k: torch.zeros(1, 2, 4, 4) for k in ("tl_offset", "br_offset")})
    out.update({k: torch.zeros(1, 1, 4, 4) for k in ("tl_embed", "br_embed")})
    pr = C.corner_proposals(out, k=3, stride=m.stride)
    hit = (pr["rois"][:, 1:] == torch.tensor([0.0, 4.0, 8.0, 12.0])).all(1)
    assert hit.sum() == 1 and pr["cls"][hit] == 1
    assert pr["s1"][hit] == pytest.approx(torch.sigmoid(torch.tensor(5.0)).item())


def test_roi_features_on_a_constant_map_and_bad_input():
    fmap = torch.full((2, 3, 12, 12), 2.5)
    rois = torch.tensor([[0, 3.0, 5.0, 30.0, 20.0], [1, 0.0, 0.0, 47.0, 47.0]])
    f = C.roi_features(fmap, rois, stride=4)
    assert f.shape == (2, 3, 7, 7) and torch.allclose(f, torch.full_like(f, 2.5))
    ramp = torch.arange(12.0).repeat(12, 1)[None, None]                    # value = x cell index
    ours = C.roi_features(ramp, torch.tensor([[0, 8.0, 8.0, 36.0, 36.0]]), stride=4)
    ref = roi_align(ramp, [torch.tensor([[8.0, 8.0, 36.0, 36.0]])], 7, 0.25, 2, True)
    assert torch.allclose(ours, ref)
    with pytest.raises(ValueError, match="rois"):
        C.roi_features(fmap, rois[:, 1:])


# ---- Eq. 1-3 ------------------------------------------------------------------------------------
def test_proposal_loss_is_torchvision_focal_over_positives():
    g = torch.Generator().manual_seed(0)
    logits, iou = torch.randn(50, generator=g, dtype=torch.float64), torch.rand(50, generator=g, dtype=torch.float64)
    pos = (iou >= 0.7).double()
    ref = sigmoid_focal_loss(logits, pos, alpha=-1, gamma=2, reduction="sum") / pos.sum()
    assert torch.allclose(C.proposal_loss(logits, iou), ref)
    assert torch.allclose(C.proposal_loss(logits, iou, tau=0.3), sigmoid_focal_loss(
        logits, (iou >= 0.3).double(), alpha=-1, gamma=2, reduction="sum") / (iou >= 0.3).sum())
    with pytest.raises(ValueError, match=r"\(M,\)"):
        C.proposal_loss(logits[:, None], iou[:, None])


def test_class_loss_hand_case_and_gradient():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]], requires_grad=True)
    iou = torch.tensor([[0.8, 0.1], [0.2, 0.9]])
    # positives (0,0) and (1,1) at p = 1/2: (1/2)^2 log 2 each; negatives (0,1) at 1/2, (1,0) at 3/4
    expected = (2 * 0.25 * math.log(2) + 0.25 * math.log(2) + 0.5625 * math.log(4)) / 2
    loss = C.class_loss(logits, iou)
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert logits.grad[0, 0] < 0 and logits.grad[1, 0] > 0               # up on positives, down on negatives
    num = torch.autograd.gradcheck(lambda x: C.class_loss(x, iou.double()), logits.detach().double().requires_grad_())
    assert num
    with pytest.raises(ValueError, match=r"\(M, C\)"):
        C.class_loss(logits[0], iou[0])


def test_prior_bias_and_score_fusion():
    assert torch.sigmoid(torch.tensor(C.prior_bias())).item() == pytest.approx(0.1)
    assert C.prior_bias() == pytest.approx(-math.log(9))
    m = C.CornerProposalNet(4, width=8, depth=1)
    assert m.binary.bias.item() == pytest.approx(-math.log(9))
    assert C.fuse_scores(1.0, 1.0) == pytest.approx(1.0) and C.fuse_scores(0.5, 0.5) == pytest.approx(1 / 2.25)
    s = np.linspace(0, 1, 11)
    assert (np.diff(C.fuse_scores(s, 0.3)) > 0).all() and (np.diff(C.fuse_scores(0.7, s)) > 0).all()


def test_cpn_loss_terms_are_finite_and_backpropagate():
    cfg = C.Config.smoke()
    model = C.make_model(cfg)
    sc = C.scenes(cfg, "train", 0)
    images = sc.render(torch.arange(4))
    g = torch.Generator().manual_seed(0)
    terms = C.cpn_loss(model, model(images), sc.boxes[:4], sc.labels[:4], sc.valid[:4], cfg, g)
    assert set(terms) >= {"loss", "corner", "offset", "prop", "class", "pull", "push"}
    assert all(torch.isfinite(v) for v in terms.values())
    terms["loss"].backward()
    assert model.binary.weight.grad is not None and model.multi.weight.grad.abs().sum() > 0
    assert model.tl.heat[-1].weight.grad.abs().sum() > 0


def test_embedding_loss_zero_when_grouped_and_apart():
    t = {"valid": torch.tensor([[True, True]]), "tl_index": torch.tensor([[0, 3]]), "br_index": torch.tensor([[1, 2]])}
    emb = torch.tensor([[[[0.0, 0.0], [2.0, 2.0]]]])                       # cells 0,1 -> 0; cells 2,3 -> 2
    pull, push = C.embedding_loss(emb, emb, t)
    assert pull.item() == 0 and push.item() == 0
    close = torch.tensor([[[[0.0, 0.0], [0.5, 0.5]]]])
    assert C.embedding_loss(close, close, t)[1].item() == pytest.approx(0.5)


# ---- inference ----------------------------------------------------------------------------------
def test_hard_soft_nms_equals_torchvision_nms():
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(40, 2, generator=g) * 30
    boxes = torch.cat([xy, xy + 5 + torch.rand(40, 2, generator=g) * 10], 1)
    scores = torch.rand(40, generator=g)
    keep, _ = C.soft_nms(boxes.numpy(), scores.numpy(), "hard", iou_threshold=0.4)
    assert keep.tolist() == nms(boxes, scores, 0.4).tolist()
    kg, sg = C.soft_nms(boxes.numpy(), scores.numpy(), "gaussian", sigma=0.5, score_threshold=0.0)
    assert len(kg) == 40 and (np.diff(sg) <= 1e-12).all() and sg[0] == pytest.approx(scores.max().item())
    with pytest.raises(ValueError, match="method"):
        C.soft_nms(boxes.numpy(), scores.numpy(), "cubic")


# ---- the anchor baseline ------------------------------------------------------------------------
@pytest.mark.parametrize("r,expected", [(8.0, 1 / 3), (5.0, 0.4624), (2.0, 1.0), (1.0, 1.0)])
def test_anchor_bound_closed_form(r, expected):
    assert C.anchor_iou_bound(r) == pytest.approx(expected, abs=1e-4)


def test_anchor_bound_against_brute_force():
    w, h = 40.0, 5.0                                                      # aspect 8
    best = 0.0
    box = torch.tensor([[0.0, 0.0, w, h]])
    for a in (0.5, 1.0, 2.0):
        for area in np.geomspace(10, 4000, 120):
            aw, ah = math.sqrt(area * a), math.sqrt(area / a)
            for cx in np.linspace(0, w, 21):
                anchor = torch.tensor([[cx - aw / 2, h / 2 - ah / 2, cx + aw / 2, h / 2 + ah / 2]])
                best = max(best, float(box_iou(box, anchor)))
    bound = float(C.anchor_iou_bound(8.0))
    assert best <= bound + 1e-6 and best > bound - 0.01


def test_anchor_set_shape_and_oracle_recall():
    a = C.anchor_set(16, 4, (4.0, 8.0))
    assert a.shape == (16 * 2 * 3, 4)
    wh = a[:, 2:] - a[:, :2]
    assert torch.allclose((wh[:, 0] * wh[:, 1]).round(decimals=3).unique(), torch.tensor([16.0, 64.0]))
    gt = pd.DataFrame({"image_id": [1], "x": [0.0], "y": [0.0], "w": [4.0], "h": [4.0]})
    g = C.oracle_recall(gt, torch.tensor([[0.0, 0.0, 4.0, 4.0]]))
    assert g["best_iou"].item() == pytest.approx(1.0) and g["recall"].item() == 1.0
    with pytest.raises(ValueError, match="positive"):
        C.anchor_set(16, 4, ())


# ---- metrics ------------------------------------------------------------------------------------
def _gt():
    return pd.DataFrame({"id": [1, 2, 3], "image_id": [1, 1, 2], "category_id": [1, 2, 1],
                         "x": [2.0, 20.0, 5.0], "y": [3.0, 4.0, 5.0], "w": [10.0, 6.0, 30.0], "h": [8.0, 20.0, 4.0]})


def test_af_is_zero_and_ap_100_on_perfect_detections():
    gt = _gt()
    dets = gt.drop(columns="id").assign(score=1.0)
    m = C.coco_metrics(gt, dets, 2, 4)
    assert m["AP"] == pytest.approx(100) and m["AF"] == pytest.approx(0) and m["AF50"] == pytest.approx(0)


def test_af_counts_a_wrong_pair():
    gt = _gt()
    bad = pd.DataFrame({"image_id": [1], "category_id": [1], "x": [2.0], "y": [3.0], "w": [24.0], "h": [21.0],
                        "score": [0.99]})                                   # a TL of one object, a BR of the other
    dets = pd.concat([gt.drop(columns="id").assign(score=0.5), bad])
    m = C.coco_metrics(gt, dets, 2, 4)
    assert 0 < m["AF"] < 100 and m["AF50"] > 0


def test_refine_and_correct():
    gt = _gt()
    dets = pd.DataFrame({"image_id": [1, 1, 2], "category_id": [2, 1, 2], "x": [2.0, 40.0, 5.0], "y": [3.0, 40.0, 5.0],
                         "w": [10.0, 5.0, 30.0], "h": [8.0, 5.0, 4.0], "score": [0.9, 0.8, 0.7]})
    out = C.refine_and_correct(gt, dets)
    assert len(out["original"]) == 3 and len(out["refined"]) == 2
    assert out["correct"]["category_id"].tolist() == [1, 1]


# ---- the data -----------------------------------------------------------------------------------
def test_scenes_have_extreme_aspects_and_bounded_overlap():
    s = C.cpn_scenes(200, 48, seed=0)
    ar = C.aspect_ratio(s.gt["w"], s.gt["h"])
    assert ar.max() > 6 and ar.min() < 1.5 and (ar <= 8 + 1e-4).all()
    assert ((s.gt["x"] >= 0) & (s.gt["x"] + s.gt["w"] <= 48 + 1e-4)).all()
    iou = C.batched_iou_xywh(s.boxes, s.boxes)
    pair = s.valid[:, :, None] & s.valid[:, None, :] & ~torch.eye(s.boxes.shape[1], dtype=torch.bool)
    assert iou[pair].max() <= 0.3 + 1e-6 and iou[pair].max() > 0.05
    again = C.cpn_scenes(200, 48, seed=0)
    assert torch.equal(s.boxes, again.boxes)
    with pytest.raises(ValueError, match="does not fit"):
        C.cpn_scenes(2, 24, max_aspect=8, min_short=4)


# ---- the profiles -------------------------------------------------------------------------------
def test_smoke_profile_runs_every_full_path():
    full, smoke = C.Config.full(), C.Config.smoke()
    assert smoke.depth == full.depth and len(smoke.seeds) >= 2 and smoke.tau == full.tau == 0.7
    res = C.run(smoke, progress=False)
    assert set(res) >= {"history", "metrics", "table1", "table2", "table4", "table5", "table6", "findings",
                        "compare_table4", "compare_table5", "compare_table6", "compare_table2"}
    assert set(res["history"]["seed"]) == set(smoke.seeds)
    assert set(res["findings"]["kind"]) <= set(report.KINDS)
    assert list(res["table4"].index) == ["neither", "B only", "M only", "both"]


def test_cli_smoke(tmp_path):
    out = subprocess.run([sys.executable, "-m", "cvtutor", "run", "cpnet", "--profile", "smoke", "--out",
                          str(tmp_path)], check=False, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert list(tmp_path.glob("*.json"))
