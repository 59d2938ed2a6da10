"""ISP (E21): part pooling, parsing loss, cascaded clustering, aligned distance, parsing IoU."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cvtutor.data import reid
from cvtutor.metrics.retrieval import evaluate_reid
from cvtutor.papers import isp_reid as I


def _net(K=6, seed=0):
    torch.manual_seed(seed)
    return I.ISPNet(n_ids=5, n_parts=K, width=8).eval()


# ---------------------------------------------------------------------------------------------
# Eqs. 1, 2, 5: the network and the part pooling
# ---------------------------------------------------------------------------------------------
def test_backbone_has_stride_four_with_and_without_upsampling():
    x = torch.rand(2, 3, 32, 16)
    for last_stride in (1, 2):
        m = I.Backbone(8, 1, last_stride).eval()(x)
        assert m.shape == (2, 32, 8, 4)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        I.Backbone(8)(torch.rand(2, 1, 32, 16))
    with pytest.raises(ValueError, match="width >= 8"):
        I.Backbone(4)


def test_part_maps_sum_to_the_global_map():
    """Eq. (2) with a softmax (Eq. 5): sum_k M_k = M_g, so sum_k F_k = GAP(M_g)."""
    out = _net()(torch.rand(3, 3, 32, 16))
    m_k = out["probs"][:, :, None] * out["m_g"][:, None]
    assert torch.allclose(m_k.sum(1), out["m_g"], atol=1e-6)
    assert torch.allclose(out["probs"].sum(1), torch.ones_like(out["probs"][:, 0]), atol=1e-6)
    f0 = (out["probs"][:, 0, None] * out["m_g"]).mean((2, 3))
    assert torch.allclose(out["foreground"] + f0, out["global"], atol=1e-6)
    logits = _net().part_classifier(out["m_g"])
    assert torch.allclose(out["probs"], torch.softmax(logits, 1), atol=1e-6)


def test_weighted_pooling_with_one_hot_masks_is_the_masked_mean_times_area():
    g = torch.Generator().manual_seed(0)
    m_g = torch.rand(2, 5, 4, 3, generator=g)
    lab = torch.randint(0, 3, (2, 4, 3), generator=g)
    probs = F.one_hot(lab, 3).permute(0, 3, 1, 2).float()
    pooled = I.part_pooling(m_g, probs)
    for b in range(2):
        for k in (1, 2):
            mask = lab[b] == k
            expect = m_g[b][:, mask].sum(1) / 12.0          # masked mean x (area / hw)
            assert torch.allclose(pooled["parts"][b, k - 1], expect, atol=1e-6)
    with pytest.raises(ValueError, match="same grid"):
        I.part_pooling(m_g, probs[:, :, :2])


def test_baseline_net_has_only_the_global_head():
    net = I.ISPNet(5, n_parts=1, width=8).eval()
    out = net(torch.rand(2, 3, 32, 16))
    assert set(out["features"]) == {"global"} and out["logits"] is None
    with pytest.raises(ValueError, match="n_parts K"):
        I.ISPNet(5, n_parts=2)


# ---------------------------------------------------------------------------------------------
# Eqs. 6-7: the losses, against torch's cross-entropy and by gradients
# ---------------------------------------------------------------------------------------------
def test_parsing_loss_is_the_pixel_cross_entropy():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 3, 5, generator=g)
    labels = torch.randint(0, 4, (2, 3, 5), generator=g)
    logp = torch.log_softmax(logits, 1)
    manual = -logp.gather(1, labels[:, None])[:, 0].mean()              # Eq. (6) / (B h w)
    assert float(I.parsing_loss(logits, labels)) == pytest.approx(float(manual), rel=1e-6)
    with pytest.raises(ValueError, match=r"labels \(B, h, w\)"):
        I.parsing_loss(logits, labels[:, :2])


def test_reid_loss_terms_and_gradient_reaches_the_part_classifier():
    net = _net().train()
    x = torch.rand(8, 3, 32, 16)
    pid = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    lab = torch.randint(0, 6, (8, 8, 4))
    out = net(x)
    terms = I.reid_loss(out, pid, lab, alpha=0.1)
    ce = sum(F.cross_entropy(s, pid, label_smoothing=0.1) for s in out["scores"].values())
    assert float(terms["ce"].detach()) == pytest.approx(float(ce.detach()), rel=1e-6)
    total = terms["triplet"] + terms["ce"] + 0.1 * terms["parsing"]
    assert float(terms["loss"].detach()) == pytest.approx(float(total.detach()), rel=1e-6)
    terms["loss"].backward()
    assert net.part_classifier.weight.grad.abs().sum() > 0
    assert net.backbone.stem[0].weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------
# Sec. 3.2, Eqs. 3-4: the cascaded clustering
# ---------------------------------------------------------------------------------------------
def test_activation_and_normalised_features():
    m = torch.rand(3, 4, 5, 6) + 0.1
    a = I.activation(m)
    assert torch.allclose(a.flatten(1).max(1).values, torch.ones(3))
    assert (a >= 0).all() and (a <= 1).all()
    assert torch.allclose(I.normalized_features(m).norm(dim=1), torch.ones(3, 5, 6), atol=1e-6)


def _two_blob_map(n=3, c=4, h=8, w=4, noise=0.02):
    """High-norm blob A (direction e0) on rows 1-3, blob B (e1) on rows 5-7, weak background."""
    g = torch.Generator().manual_seed(0)
    m = noise * torch.rand(n, c, h, w, generator=g)
    m[:, 0, 1:4] += 2.0
    m[:, 1, 5:8] += 1.5
    truth = torch.zeros(n, h, w, dtype=torch.long)
    truth[:, 1:4], truth[:, 5:8] = 1, 2
    return m, truth


def test_cascade_recovers_two_blobs_ordered_top_to_bottom():
    m, truth = _two_blob_map()
    labels = I.cascaded_clustering(m, n_parts=3, seed=0)
    assert torch.equal(labels, truth)
    # the same blobs upside down: the labels follow the rows, not the feature directions
    labels_flipped = I.cascaded_clustering(m.flip(2), n_parts=3, seed=0)
    assert torch.equal(labels_flipped, _flipped(truth))


def _flipped(truth):
    """The labels of the map upside down: blob B on top is now part 1."""
    t = truth.flip(1)
    return torch.where(t > 0, 3 - t, t)


def test_cascade_fitted_on_a_sample_still_labels_every_pixel():
    """More than 256 points per centre: the centres come from a sample (faiss's rule)."""
    m, truth = _two_blob_map(n=40)
    assert int((truth > 0).sum()) > I.MAX_POINTS_PER_CENTROID * 2
    assert torch.equal(I.cascaded_clustering(m, 3, seed=1), truth)


def test_clustering_variants_and_bad_input():
    m, truth = _two_blob_map()
    for v in I.VARIANTS:
        lab = I.cascaded_clustering(m, 3, 0, v)
        assert lab.shape == truth.shape and int(lab.max()) <= 2
    with pytest.raises(ValueError, match="variant"):
        I.cascaded_clustering(m, 3, 0, "two_step")
    with pytest.raises(ValueError, match="K >= 3"):
        I.cascaded_clustering(m, 2)


def test_pseudo_labels_cluster_each_identity_separately():
    m, truth = _two_blob_map(n=4)
    m[2:] = m[2:].flip(2)                    # identity 1 is upside down
    pid = torch.tensor([0, 0, 1, 1])
    lab = I.pseudo_labels(m, pid, 3)
    assert torch.equal(lab[:2], truth[:2]) and torch.equal(lab[2:], _flipped(truth[2:]))
    with pytest.raises(ValueError, match=r"pid must be \(N,\)"):
        I.pseudo_labels(m, pid[:3], 3)


# ---------------------------------------------------------------------------------------------
# Eqs. 8-10: visibility and the aligned distance
# ---------------------------------------------------------------------------------------------
def test_visibility_is_the_argmax_presence():
    probs = torch.zeros(1, 4, 2, 2)
    probs[0, 0] = 0.5
    probs[0, 2, 0, 0] = 0.9
    probs[0, 3, 1, 1] = 0.4                   # never wins
    assert I.visibility(probs).tolist() == [[False, True, False]]


def _features(n, k=3, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"parts": torch.randn(n, k, c, generator=g),
            "foreground": torch.randn(n, c, generator=g),
            "global": torch.randn(n, c, generator=g)}


def test_distance_is_the_plain_mean_when_all_visible_and_dg_df_when_none():
    q, g = _features(2, seed=1), _features(3, seed=2)
    d_k = I.part_distances(q["parts"], g["parts"])
    d_g = I.cosine_distance(q["global"], g["global"])
    d_f = I.cosine_distance(q["foreground"], g["foreground"])
    q["visible"] = torch.ones(2, 3, dtype=torch.bool)
    g["visible"] = torch.ones(3, 3, dtype=torch.bool)
    plain = (d_k.sum(-1) + d_g + d_f) / 5
    assert torch.allclose(I.aligned_distance(q, g), plain, atol=1e-6)
    q["visible"] = torch.zeros(2, 3, dtype=torch.bool)
    assert torch.allclose(I.aligned_distance(q, g), (d_g + d_f) / 2, atol=1e-6)
    assert torch.allclose(I.aligned_distance(q, g, aligned=False), plain, atol=1e-6)
    # a part visible in the query only does not count
    q["visible"] = torch.tensor([[True, False, False]] * 2)
    g["visible"] = torch.tensor([[False, True, True]] * 3)
    assert torch.allclose(I.aligned_distance(q, g), (d_g + d_f) / 2, atol=1e-6)


def test_distance_is_invariant_to_a_consistent_permutation_of_parts():
    q, g = _features(2, seed=3), _features(4, seed=4)
    q["visible"] = torch.tensor([[True, False, True], [True, True, True]])
    g["visible"] = torch.tensor([[True, True, False]] * 4)
    perm = [2, 0, 1]
    qp = {k: (v[:, perm] if k in ("parts", "visible") else v) for k, v in q.items()}
    gp = {k: (v[:, perm] if k in ("parts", "visible") else v) for k, v in g.items()}
    assert torch.allclose(I.aligned_distance(q, g), I.aligned_distance(qp, gp), atol=1e-6)
    with pytest.raises(ValueError, match="lacks"):
        I.aligned_distance({"parts": q["parts"]}, g)


def test_cosine_distance_against_scipy():
    from scipy.spatial.distance import cdist

    a, b = torch.randn(4, 6, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    assert np.allclose(I.cosine_distance(a, b).numpy(), cdist(a.numpy(), b.numpy(), "cosine"),
                       atol=1e-6)


def test_cmc_excludes_same_camera_matches_on_a_hand_case():
    """Query identity 1, camera 0. The gallery's nearest item is identity 1 in camera 0 (removed),
    then identity 2 (wrong), then identity 1 in camera 1 (correct): Rank-1 0, Rank-2 1, AP 1/2."""
    dist = torch.tensor([[0.1, 0.2, 0.3]])
    res = evaluate_reid(dist, [1], [1, 2, 1], [0], [0, 0, 1], max_rank=3)
    assert res["cmc"].tolist() == [0.0, 1.0, 1.0]
    assert res["mAP"] == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------
# parsing IoU (Table 3) and the ground truth on the feature grid
# ---------------------------------------------------------------------------------------------
def test_parsing_iou_is_one_for_relabelled_ground_truth():
    g = torch.Generator().manual_seed(0)
    gt = torch.randint(-1, 5, (4, 8, 4), generator=g)
    perm = torch.tensor([0, 3, 5, 1, 2, 4])            # background -> 0, parts shuffled
    pred = perm[gt + 1]
    iou = I.parsing_iou(pred, gt, n_parts=6)
    assert all(v == pytest.approx(1.0) for v in iou.values())
    half = pred.clone()
    half[:2] = 0                                       # half the images predicted background
    iou = I.parsing_iou(half, gt, 6)
    fg = (gt >= 0)
    assert iou["foreground"] == pytest.approx(float(fg[2:].sum() / fg.sum()))
    with pytest.raises(ValueError, match="pred must be in"):
        I.parsing_iou(pred + 1, gt, 6)


def test_label_grid_takes_the_majority_of_each_cell():
    parts = torch.full((1, 8, 4), -1)
    parts[0, :4, :4] = 2
    parts[0, 4:7, 0:4] = 3                            # 3 of 4 rows of the cell
    grid = I.label_grid(parts)
    assert grid.tolist() == [[[2], [3]]]
    with pytest.raises(ValueError, match="multiples of 4"):
        I.label_grid(torch.zeros(1, 6, 4))


# ---------------------------------------------------------------------------------------------
# the real data sets' readers (Market-1501 / DukeMTMC / Occluded-Duke / CUHK03-NP) on fixtures
# ---------------------------------------------------------------------------------------------
def _write(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        Image.new("RGB", (8, 16)).save(folder / n)


def test_duke_and_occluded_duke_layout_is_read(tmp_path):
    _write(tmp_path / "query", ["0005_c2_f0046985.jpg"])
    _write(tmp_path / "bounding_box_test", ["0005_c1_f0046000.jpg", "0007_c2_f0000001.jpg"])
    q, g = reid.load_split(tmp_path, "query", "duke"), reid.load_split(tmp_path, "gallery", "duke")
    assert q.pid.tolist() == [5] and q.camid.tolist() == [2] and q.frame.tolist() == [46985]
    dist = torch.tensor([[0.3, 0.1]])                  # the wrong identity is nearer
    res = evaluate_reid(dist, q.pid.tolist(), g.pid.tolist(), q.camid.tolist(), g.camid.tolist(), 2)
    assert res["cmc"].tolist() == [0.0, 1.0]
    _write(tmp_path / "bounding_box_train", ["0005_c2_46985.jpg"])
    with pytest.raises(ValueError, match="0005_c2_f0046985.jpg"):
        reid.load_split(tmp_path, "train", "duke")


def test_cuhk03_np_in_market_layout_drops_junk(tmp_path):
    _write(tmp_path / "bounding_box_train", ["0001_c1s1_000001_00.jpg", "-1_c2s1_000002_00.jpg"])
    assert reid.load_split(tmp_path, "train").pid.tolist() == [1]


# ---------------------------------------------------------------------------------------------
# the experiment
# ---------------------------------------------------------------------------------------------
def test_config_profiles_and_data_checks():
    assert I.Config.fast().n_parts == 6 and I.Config.full().size == 128
    with pytest.raises(ValueError, match="n_test_per_id"):
        I.make_data(I.Config.smoke().replace(n_cameras=4), 0)
    with pytest.raises(ValueError, match="method"):
        I.n_parts_of("pcb", I.Config.fast())


def test_smoke_run_returns_every_key_and_the_cli_repeats_it(tmp_path, monkeypatch):
    """``run(Config.smoke())`` has every key ``full`` has; ``python -m cvtutor run isp_reid
    --profile smoke`` gives the same numbers (same seed, same device)."""
    from cvtutor import cli, report, runtime

    cfg = I.Config.smoke()
    r1 = I.run(cfg)
    keys = {"table5", "table2", "table3", "table4", "iou_epochs", "fig5", "history", "snapshots",
            "checks", "compare_table5", "compare_table2", "compare_table3", "compare_table4",
            "findings"}
    assert keys <= set(r1)
    assert set(r1["table4"]["K"]) == {4, 5, 6}
    assert r1["findings"].loc["Eq. 2: the part maps split the global map, sum_k M_k = M_g",
                              "holds"]
    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)
    monkeypatch.setenv("CVTUTOR_DEVICE", "cpu")
    try:
        assert cli.main(["run", "isp_reid", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    finally:
        runtime.set_deterministic(False)
    r2, meta = report.load_results(tmp_path / "isp_reid-smoke-seed0.json")
    assert meta["profile"] == "smoke"
    assert np.allclose(r1["table5"][["R-1", "mAP"]].values, r2["table5"][["R-1", "mAP"]].values)
