"""AherNet (E09): anchors (Eq. 3), offsets (Eqs. 5-6), overlap (Eq. 7), weight transfer (Eq. 1),
context concatenation (Eq. 2), the adversarial pair (Eq. 8), Algorithm 1's freezing, NMS, the
ActivityNet AP used in the tables, the real-data path and the smoke profile."""

import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from test_temporal_metrics import ref_compute_average_precision_detection

from cvtutor.data.video_readers import load_activitynet, load_features
from cvtutor.metrics import temporal as tm
from cvtutor.papers import ahernet as A


def _net(n_a=3, n_b=4, width=8, maps=3, transfer="2fc + ELU"):
    torch.manual_seed(0)
    net = A.AherNet(6, width, maps, n_a, n_b, transfer)
    net.dur_range = (3, 8)
    return net


# --- Eq. 3 ----------------------------------------------------------------------------------
def test_anchors_of_a_four_cell_map():
    a = A.default_anchors(4)
    assert a.shape == (4, 3, 2)
    assert torch.allclose(a[:, 0, 0], torch.tensor([0.125, 0.375, 0.625, 0.875]))
    assert torch.allclose(a[:, 0, 1], torch.full((4,), 0.25))
    assert torch.allclose(a[0, :, 1], torch.tensor([1, 2 ** (1 / 3), 2 ** (2 / 3)]) / 4)
    with pytest.raises(ValueError, match="map length"):
        A.default_anchors(0)


def test_all_maps_anchors_follow_the_strides():
    net = _net(maps=3)
    a = net.anchors(16)  # maps of 8, 4, 2 cells
    assert a.shape == ((8 + 4 + 2) * 3, 2)
    assert torch.allclose(a[: 3 * 8: 3, 0], (torch.arange(8) + 0.5) / 8)


# --- Eqs. 5-7 -------------------------------------------------------------------------------
def test_offsets_round_trip_and_zero_decodes_to_the_anchor():
    g = torch.Generator().manual_seed(1)
    anchors = A.default_anchors(8).reshape(-1, 2)
    target = torch.stack([torch.rand(len(anchors), generator=g), 0.05 + torch.rand(len(anchors), generator=g)], -1)
    for alpha in ((1.0, 1.0), (0.5, 2.0)):
        d = A.encode_offsets(anchors, target, alpha)
        assert torch.allclose(A.decode_offsets(anchors, d, alpha), target, atol=1e-6)
    assert torch.equal(A.decode_offsets(anchors, torch.zeros_like(anchors)), anchors)
    # a hand case: m = (0.5, 0.25), Δ = (1, log 2) -> φ = (0.75, 0.5)
    phi = A.decode_offsets(torch.tensor([0.5, 0.25]), torch.tensor([1.0, float(np.log(2))]))
    assert torch.allclose(phi, torch.tensor([0.75, 0.5]))
    with pytest.raises(ValueError, match="widths must be > 0"):
        A.encode_offsets(anchors[:1], torch.tensor([[0.5, 0.0]]))
    with pytest.raises(ValueError, match="centre, width"):
        A.decode_offsets(anchors, torch.zeros(len(anchors), 3))


def test_offset_loss_is_smooth_l1_on_decoded_phi_and_overlap_is_squared():
    g = torch.Generator().manual_seed(2)
    phi = torch.randn(2, 5, 2, generator=g, requires_grad=True)
    gt = torch.randn(2, 5, 2, generator=g)
    fg = torch.tensor([[1, 0, 1, 0, 0], [0, 0, 0, 1, 1]], dtype=torch.bool)
    ref = F.smooth_l1_loss(phi[fg], gt[fg], reduction="sum", beta=1.0) / fg.sum()
    loss = A.offset_loss(phi, gt, fg)
    assert torch.allclose(loss, ref)
    loss.backward()
    assert (phi.grad[~fg] == 0).all() and (phi.grad[fg] != 0).any()
    assert A.offset_loss(phi, gt, torch.zeros_like(fg)).item() == 0.0
    y, iou = torch.tensor([0.2, 0.9]), torch.tensor([0.5, 0.9])
    assert torch.isclose(A.overlap_loss(y, iou), torch.tensor(0.09 / 2))


def test_tiou_and_anchor_labels_by_hand():
    a = torch.tensor([[0.0, 0.5], [0.0, 0.45], [0.6, 1.0], [0.3, 0.5]])
    gt = torch.tensor([[[0.0, 0.5], [0.9, 1.0]]])
    iou = A.tiou_matrix(a, gt[0])
    assert np.allclose(iou.numpy(), tm.tiou(a.numpy(), gt[0].numpy()))
    lab = A.label_anchors(a, gt, torch.tensor([[True, True]]))
    assert torch.allclose(lab["g_iou"][0], torch.tensor([1.0, 0.9, 0.25, 0.4]))
    # > 0.8 is foreground; anchor 2 is the second GT's best anchor (0.25): foreground by SSD's rule
    assert lab["fg"][0].tolist() == [True, True, True, False]
    assert lab["bg"][0].tolist() == [False, False, False, False]
    lab = A.label_anchors(a, gt, torch.tensor([[True, False]]))  # the second GT absent
    assert lab["fg"][0].tolist() == [True, True, False, False]
    assert lab["bg"][0].tolist() == [False, False, True, False]
    with pytest.raises(ValueError, match=r"\(B, M, 2\)"):
        A.label_anchors(a, gt[0], torch.tensor([True, True]))


# --- Eq. 1, Eq. 4 ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", A.TRANSFERS)
def test_weight_transfer_shapes_and_sharing(kind):
    T = A.WeightTransfer(8, 3, kind)
    w = torch.randn(5, 8)
    out = T(w)
    assert out.shape == (5, 3, 8)
    # category-agnostic: the same row gives the same weights whatever the other classes are
    assert torch.allclose(T(w[2:3])[0], out[2], atol=1e-6)
    with pytest.raises(ValueError, match=r"\(C, 8\)"):
        T(torch.randn(5, 7))
    with pytest.raises(ValueError, match="kind must be one of"):
        A.WeightTransfer(8, 3, "3fc")


def test_theta_learns_from_l_cls_not_from_l_reg():
    net = _net()
    x = torch.randn(2, 6, 16)
    # L_reg (Eq. 4) does not touch T
    lreg = F.cross_entropy(net.segment_logits(net.M(x), "B").flatten(0, 1), torch.tensor([0, 1]).repeat(3))
    lreg.backward()
    assert all(p.grad is None for p in net.T.parameters())
    assert net.w_regv["B"].grad is not None and net.w_regv["B"].grad.abs().sum() > 0
    net.zero_grad(set_to_none=True)
    gt = torch.tensor([[[0.25, 0.75]], [[0.0, 0.5]]])
    out = A.localization_losses(net, x, gt, torch.ones(2, 1, dtype=torch.bool), torch.tensor([1, 2]),
                                net.w_clsa("A"))
    out["cls"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.T.parameters())
    assert net.w_regv["A"].grad.abs().sum() > 0  # T's input receives a gradient (frozen in step 2)


def test_segment_logits_are_the_pooled_projection():
    net = _net()
    x = torch.randn(3, 6, 16)
    maps = net.M(x)
    lg = net.segment_logits(maps, "A")
    j = 1
    ref = maps[j].mean(-1) @ net.w_regv["A"][j].T + net.b_regv["A"][j]
    assert torch.allclose(lg[j], ref)


def test_anchor_logits_use_the_transferred_weights():
    net = _net()
    maps = net.M(torch.randn(2, 6, 16))
    w = net.w_clsa("B")
    lg = net.anchor_logits(maps, w)
    A_ = sum(h.shape[-1] for h in maps) * 3
    assert lg.shape == (2, A_, 1 + 4)
    # cell t = 2 of map 0, ratio r = 1, class c = 3: <h_t, W_clsa[c, r]>
    h = maps[0][0, :, 2]
    assert torch.allclose(lg[0, 2 * 3 + 1, 1 + 3], h @ w[0][3, 1], atol=1e-5)
    assert torch.allclose(lg[0, 2 * 3 + 1, 0], h @ net.w_bg[0, 1] + net.b_bg[0, 1], atol=1e-5)


# --- Eq. 2, Eq. 8, Algorithm 1 ---------------------------------------------------------------
def test_context_concatenation():
    f_m = torch.randn(2, 6, 5)
    g1, g2 = torch.randn(2, 6, 3), torch.randn(2, 6, 4)
    out = A.context_concat(g1, f_m, g2)
    assert out.shape == (2, 6, 3 + 5 + 4)
    assert torch.equal(out[..., 3:8], f_m)
    with pytest.raises(ValueError, match="share"):
        A.context_concat(g1, torch.randn(2, 5, 5), g2)
    net = _net()
    gen = torch.Generator().manual_seed(0)
    x, se = A.synthetic_moments(net, f_m, 16, gen)
    assert x.shape == (2, 6, 16)
    s, e = (se[0, 0] * 16).round().long().tolist()
    assert torch.allclose(x[..., s:e], A.resample(f_m, e - s))


def test_adversarial_losses_closed_form():
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([-1.0])
    ld, lg = A.adversarial_losses(real, fake)
    s = torch.sigmoid
    ref_d = -(torch.log(s(real))).mean() - torch.log(1 - s(fake)).mean()
    assert torch.isclose(ld, ref_d) and torch.isclose(lg, -torch.log(s(fake)).mean())
    z, _ = A.adversarial_losses(torch.zeros(0), fake)
    assert z.item() == 0.0


def test_frozen_parameters_get_zero_gradient():
    net = _net()
    f_m = torch.randn(2, 6, 5)
    gen = torch.Generator().manual_seed(0)
    conv = net.convnet_parameters()
    with A.frozen(conv, net.D):  # step 4a: only the generators learn
        x, se = A.synthetic_moments(net, f_m, 16, gen)
        o = A.localization_losses(net, x, se, torch.ones(2, 1, dtype=torch.bool), torch.tensor([0, 1]),
                                  net.w_clsa("B"))
        fake = A.discriminator_logits(net, o["maps"], A.background_cells(o["bg"], o["maps"], 3))
        _, lg = A.adversarial_losses(fake.detach(), fake)
        (lg + o["cls"] + o["of"] + o["ov"]).backward()
    assert all(p.grad is None for p in conv) and all(p.grad is None for p in net.D.parameters())
    assert sum(p.grad.abs().sum() for p in net.G1.parameters()) > 0
    assert sum(p.grad.abs().sum() for p in net.G2.parameters()) > 0
    assert all(p.requires_grad for p in conv)  # restored after the block


# --- inference and metrics --------------------------------------------------------------------
def test_nms_by_hand():
    seg = np.array([[0.0, 10.0], [1.0, 10.0], [20.0, 30.0], [0.0, 5.0]])
    sc = np.array([0.9, 0.8, 0.7, 0.6])
    # tIoU(0, 1) = 9/10 = 0.9 (kept at 0.9: suppression needs > threshold), tIoU(0, 3) = 0.5
    assert tm.nms_1d(seg, sc, 0.9).tolist() == [0, 1, 2, 3]
    assert tm.nms_1d(seg, sc, 0.5).tolist() == [0, 2, 3]
    assert tm.nms_1d(seg, sc, 0.4).tolist() == [0, 2]


def test_activitynet_ap_of_detections_matches_the_reference_transcription():
    rng = np.random.default_rng(0)
    for _ in range(3):
        gt = pd.DataFrame({"video_id": rng.integers(0, 5, 10)})
        s = rng.uniform(0, 50, 10)
        gt = gt.assign(t_start=s, t_end=s + rng.uniform(2, 20, 10))
        base = gt.sample(20, replace=True, random_state=int(rng.integers(1000))).reset_index(drop=True)
        jit = rng.normal(0, 2, (20, 2))
        pred = base.assign(t_start=base.t_start + jit[:, 0], t_end=base.t_end + jit[:, 1],
                           score=rng.permutation(20) / 20.0)
        pred["t_end"] = np.maximum(pred.t_end, pred.t_start + 0.1)
        thr = np.array(tm.TIOU_THRESHOLDS)
        ours = tm.average_precision_detection(gt, pred, thr)
        dash = {"video_id": "video-id", "t_start": "t-start", "t_end": "t-end"}
        ref = ref_compute_average_precision_detection(gt.rename(columns=dash), pred.rename(columns=dash), thr)
        assert np.allclose(ours, ref)


def test_evaluate_perfect_detections_give_100():
    W = A.worlds(A.Config.smoke())["B"]
    v = W.sample(5, seed=0)
    seg = v["segments"]
    det = pd.DataFrame({"video_id": seg.video_id, "label": seg.label, "t_start": seg.start.astype(float),
                        "t_end": seg.end.astype(float), "score": np.linspace(1, 0.5, len(seg))})
    m = A.evaluate(det, v)
    assert m["mAP"] == pytest.approx(100.0) and m["AUC"] > 95.0
    worse = A.evaluate(det.assign(t_end=det.t_start + 1.0), v)
    assert worse["mAP"] < 50.0


def test_detect_output_and_bad_input():
    net = _net().eval()
    x = torch.randn(3, 16, 6)
    det = A.detect(net, x, max_proposals=5)
    assert set(det.columns) == {"video_id", "label", "t_start", "t_end", "score"}
    assert (det.groupby("video_id").size() <= 5).all()
    assert ((det.t_start >= 0) & (det.t_end <= 16) & (det.t_end > det.t_start)).all()
    assert det["label"].between(0, 3).all()
    with pytest.raises(ValueError, match=r"\(N, T, D\)"):
        A.detect(net, torch.randn(16, 6))


def test_snippet_baseline_groups_a_clean_instance():
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor([[3.0, 0, 0, 0], [0, 3.0, 0, 0]])
    lab = torch.tensor([0, 1] * 10)
    moments = {"features": mu[lab][..., None] + 0.1 * torch.randn(20, 4, 8, generator=g), "label": lab}
    x = 0.02 * torch.randn(1, 20, 4, generator=g)  # well inside the χ² acceptance region
    x[0, 5:12] += mu[1]
    det = A.snippet_baseline(moments, x)
    top = det.sort_values("score", ascending=False).iloc[0]
    assert (top.t_start, top.t_end, top.label) == (5.0, 12.0, 1) and top.score > 0.9
    assert len(det) == 1  # the five thresholds give the same run; NMS keeps one


# --- real data ---------------------------------------------------------------------------------
def test_real_videos_from_activitynet_json_and_npy_features(tmp_path):
    db = {"database": {
        "v1": {"subset": "validation", "duration": 20.0,
               "annotations": [{"segment": [5.0, 10.0], "label": "Surfing"}]},
        "v2": {"subset": "validation", "duration": 10.0,
               "annotations": [{"segment": [0.0, 2.5], "label": "Diving"},
                               {"segment": [5.0, 10.0], "label": "Diving"}]}}}
    (tmp_path / "anet.json").write_text(json.dumps(db))
    feats = tmp_path / "feats"
    feats.mkdir()
    np.save(feats / "v1.npy", np.arange(40 * 3, dtype=np.float32).reshape(40, 3))
    np.save(feats / "v2.npy", np.ones((10, 3), np.float32))
    ann = load_activitynet(tmp_path / "anet.json")
    v = A.real_videos(ann, load_features(feats, ["v1", "v2"]), 16, ["Diving", "Surfing"], max_instances=2)
    assert v["features"].shape == (2, 16, 3)
    assert v["start"].tolist() == [[4, 0], [0, 8]] and v["end"].tolist() == [[8, 0], [4, 16]]
    assert v["valid"].tolist() == [[True, False], [True, True]]
    assert v["segments"]["label"].tolist() == [1, 0, 0]
    with pytest.raises(KeyError, match="no features"):
        A.real_videos(ann, {"v1": np.zeros((4, 3))}, 16, ["Diving", "Surfing"])
    with pytest.raises(ValueError, match="columns"):
        A.real_videos(ann.drop(columns="duration"), {}, 16, ["Diving", "Surfing"])


# --- profiles ------------------------------------------------------------------------------------
def test_smoke_profile_runs_every_full_path():
    full, smoke = A.Config.full(), A.Config.smoke()
    assert smoke.models == full.models and len(smoke.seeds) >= 2 and smoke.transfers and smoke.ratios_annotated
    t = time.time()
    res = A.run(smoke)
    assert time.time() - t < 120
    assert set(res["table2"]["model"]) == set(A.MODELS)
    assert set(res["table2"]["seed"]) == set(smoke.seeds)
    assert set(res["table1"]["transfer"]) == set(smoke.transfers)
    assert set(res["fig6"]["fraction"]) == set(smoke.ratios_annotated)
    f = res["findings"]
    assert {"kind", "holds"} <= set(f.columns) and len(f) >= 8
    assert res["compare_table2"]["holds"].notna().any()


def test_cli_smoke(tmp_path):
    out = subprocess.run([sys.executable, "-m", "cvtutor", "run", "ahernet", "--profile", "smoke",
                          "--out", str(tmp_path)], check=False, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
