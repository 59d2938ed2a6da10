import json

import numpy as np
import pytest
import torch
from scipy import linalg

from cvtutor.data import layouts as L
from cvtutor.metrics.generative import frechet_distance
from cvtutor.nn.vae import kl_gaussians, kl_to_prior
from cvtutor.papers import neural_design_network as T


def box(x, y, w, h):
    return torch.tensor([x, y, w, h])


# ---------------------------------------------------------------------------------------------
# the world: generator and relations (Sec. 3.1, 4.1)
# ---------------------------------------------------------------------------------------------
def test_generator_is_seeded_batched_and_in_the_canvas():
    a, b = L.generate_layouts(500, seed=3), L.generate_layouts(500, seed=3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["boxes"], L.generate_layouts(500, seed=4)["boxes"])
    m = a["mask"]
    assert a["boxes"].shape == (500, L.MAX_COMPONENTS, 4) and m.sum(1).min() >= 3
    bb = a["boxes"][m]
    assert (bb[:, 0] >= 0).all() and (bb[:, 1] >= 0).all()
    assert (bb[:, 0] + bb[:, 2] <= 1 + 1e-6).all() and (bb[:, 1] + bb[:, 3] <= 1 + 1e-6).all()
    assert (
        (a["labels"][m] >= 1).all() and (a["labels"][~m] == 0).all() and (a["boxes"][~m] == 0).all()
    )
    # present components first
    assert torch.equal(m, torch.sort(m.long(), 1, descending=True).values.bool())
    with pytest.raises(ValueError, match="positive number"):
        L.generate_layouts(0)


def test_location_relation_is_symmetric_and_follows_the_priority():
    a, b = box(0.1, 0.1, 0.2, 0.2), box(0.5, 0.5, 0.2, 0.2)  # a is upper-left of b
    assert L.LOC_RELATIONS[int(L.location_relation(a, b))] == "above"  # above beats left
    assert L.LOC_RELATIONS[int(L.location_relation(b, a))] == "below"
    c = box(0.5, 0.1, 0.2, 0.2)
    assert L.LOC_RELATIONS[int(L.location_relation(a, c))] == "left"
    assert L.LOC_RELATIONS[int(L.location_relation(c, a))] == "right"
    big, small = box(0, 0, 1, 1), box(0.3, 0.3, 0.2, 0.2)
    assert L.LOC_RELATIONS[int(L.location_relation(big, small))] == "around"
    assert L.LOC_RELATIONS[int(L.location_relation(small, big))] == "inside"
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(2000, 2, 2, generator=g) * 0.7
    wh = 0.05 + torch.rand(2000, 2, 2, generator=g) * 0.25
    p, q = torch.cat([xy[:, 0], wh[:, 0]], 1), torch.cat([xy[:, 1], wh[:, 1]], 1)
    assert torch.equal(L.LOC_INVERSE[L.location_relation(p, q)], L.location_relation(q, p))
    assert torch.equal(L.SIZE_INVERSE[L.size_relation(p, q)], L.size_relation(q, p))


def test_canvas_relations_and_graph_shapes():
    labels = torch.tensor([[1, 2, 0]])
    boxes = torch.stack([box(0.05, 0.05, 0.2, 0.2), box(0.5, 0.5, 0.45, 0.45), box(0, 0, 0, 0)])[
        None
    ]
    mask = torch.tensor([[True, True, False]])
    g = L.layout_graph(labels, boxes, mask)
    s, o = L.pairs(4)
    assert g["loc"].shape == (1, 6) and torch.equal(g["unary"], s == 0)
    names = {(int(i), int(j)): L.LOC_RELATIONS[int(r)] for i, j, r in zip(s, o, g["loc"][0])}
    assert names[(0, 1)] == "top-left" and names[(0, 2)] == "bottom-right"
    assert names[(1, 2)] == "above" and names[(0, 3)] == "unknown"
    sizes = {(int(i), int(j)): L.SIZE_RELATIONS[int(r)] for i, j, r in zip(s, o, g["size"][0])}
    assert sizes[(0, 1)] == "small" and sizes[(0, 2)] == "large" and sizes[(1, 2)] == "smaller"
    assert g["edge_mask"][0].tolist() == [True, True, False, True, False, False]
    with pytest.raises(ValueError, match=r"boxes \(B, N, 4\)"):
        L.layout_graph(labels, boxes[..., :3], mask)


def test_consistency_is_100_on_ground_truth_and_partial_keeps_what_it_is_told():
    d = L.generate_layouts(300, seed=0)
    g = L.layout_graph(d["labels"], d["boxes"], d["mask"])
    assert L.constraint_consistency(g, d["boxes"])[0] == 1.0
    p = L.partial_graph(
        g,
        {"size_unary": 0, "size_binary": 0, "loc_unary": 1, "loc_binary": 0},
        generator=torch.Generator().manual_seed(0),
    )
    assert (p["size"] == 0).all() and torch.equal(p["loc"][:, g["unary"]], g["loc"][:, g["unary"]])
    assert (p["loc"][:, ~g["unary"]] == 0).all()
    moved = d["boxes"].clone()
    moved[..., 0] = 1 - moved[..., 0] - moved[..., 2]  # mirror: left <-> right
    assert L.constraint_consistency(g, moved)[0] < 1.0
    with pytest.raises(ValueError, match="keys"):
        L.partial_graph(g, {"loc": 0.5})


def test_alignment_eq10_hand_values():
    mask = torch.ones(1, 3, dtype=torch.bool)
    left = torch.tensor([[[0.1, 0.0, 0.3, 0.1], [0.1, 0.3, 0.5, 0.1], [0.1, 0.6, 0.2, 0.1]]])
    assert float(L.alignment(left, mask)) == 0.0
    # three boxes: left edges .0, .2, .5; centres .1, .35, .6; right edges .2, .5, .7
    b = torch.tensor([[[0.0, 0, 0.2, 0.1], [0.2, 0, 0.3, 0.1], [0.5, 0, 0.2, 0.1]]])
    # box 0: min over j of min(l, m, r): j=1 -> (.2, .25, .3) -> .2; j=2 -> (.5, .5, .5) -> .2
    # box 1: j=0 -> .2; j=2 -> (.3, .25, .2) -> .2 ; box 2: j=1 -> .2 (right edges .5/.7 -> .2)
    assert float(L.alignment(b, mask)) == pytest.approx(0.2 + 0.2 + 0.2, abs=1e-6)
    b2 = b.clone()
    b2[0, 2] = torch.tensor([0.45, 0, 0.05, 0.1])  # right edge .5 = box 1's right edge
    assert float(L.alignment(b2, mask)) == pytest.approx(0.2 + 0.0 + 0.0, abs=1e-6)
    one = torch.tensor([[True, False, False]])
    assert float(L.alignment(b, one)) == 0.0


# ---------------------------------------------------------------------------------------------
# the losses' closed forms
# ---------------------------------------------------------------------------------------------
def test_gaussian_kls_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mq, lq, mp, lp = (torch.randn(5, 4, generator=g) for _ in range(4))
    D = torch.distributions
    q = D.Independent(D.Normal(mq, torch.exp(0.5 * lq)), 1)
    p = D.Independent(D.Normal(mp, torch.exp(0.5 * lp)), 1)
    torch.testing.assert_close(kl_gaussians(mq, lq, mp, lp), D.kl_divergence(q, p))
    std = D.Independent(D.Normal(torch.zeros(5, 4), torch.ones(5, 4)), 1)
    torch.testing.assert_close(kl_to_prior(mq, lq), D.kl_divergence(q, std))
    assert float(kl_gaussians(mq, lq, mq, lq).abs().max()) < 1e-6


def test_frechet_distance_symmetric_zero_and_matches_closed_form():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 3)), rng.normal(size=(300, 3)) * 2 + 1
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(a, b, eps=0) == pytest.approx(ref, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# the networks
# ---------------------------------------------------------------------------------------------
def test_triple_graph_conv_is_permutation_equivariant():
    torch.manual_seed(0)
    layer = T.TripleGraphConv(8)
    n = 5
    s, o = L.pairs(n)
    v, e = torch.randn(2, n, 8), torch.randn(2, len(s), 8)
    nm, em = torch.ones(2, n, dtype=torch.bool), torch.ones(2, len(s), dtype=torch.bool)
    out_v, out_e = layer(v, e, s, o, nm, em)
    perm = torch.tensor([3, 0, 4, 1, 2])
    inv = torch.argsort(perm)
    pv, pe = layer(v[:, perm], e, inv[s], inv[o], nm, em)
    torch.testing.assert_close(pv, out_v[:, perm])
    torch.testing.assert_close(pe, out_e)
    with pytest.raises(ValueError, match=r"v \(B, N, D\)"):
        layer(v[0], e, s, o, nm, em)


def test_masked_nodes_do_not_change_the_others():
    d = L.generate_layouts(4, seed=1)
    g = L.layout_graph(d["labels"], d["boxes"], d["mask"])
    model = T.Sg2imBoxes(16)
    out = model(g)
    g2 = dict(g)
    g2["nodes"] = torch.where(g["node_mask"], g["nodes"], torch.full_like(g["nodes"], 3))
    torch.testing.assert_close(model(g2), out)
    assert (out[~d["mask"]] == 0).all()


def test_relation_logits_never_predict_unknown_or_the_wrong_kind():
    d = L.generate_layouts(8, seed=2)
    g = L.layout_graph(d["labels"], d["boxes"], d["mask"])
    model = T.RelationPrediction(16, 4)
    lo, si = model.logits(g, torch.zeros(8, 4))
    pred_l, pred_s = lo.argmax(-1), si.argmax(-1)
    assert (pred_l[:, g["unary"]] >= 8).all() and (pred_l[:, ~g["unary"]] <= 7).all()
    assert (pred_l >= 1).all() and (pred_s >= 1).all()
    p = L.partial_graph(g, 0.5, generator=torch.Generator().manual_seed(0))
    full = model.complete(p)
    given = p["loc"] > 0
    assert torch.equal(full["loc"][given], p["loc"][given])  # the user's constraints are kept
    assert ((full["loc"] > 0) == g["edge_mask"]).all()


def test_teacher_forcing_knows_exactly_the_boxes_before_k():
    d = L.generate_layouts(64, seed=0)
    g = L.layout_graph(d["labels"], d["boxes"], d["mask"])
    k, known = T.teacher_forcing_step(g)
    n = d["mask"].sum(1)
    assert (k >= 1).all() and (k <= n).all()
    assert torch.equal(known.sum(1), k) and known[:, 0].all()


def test_generate_fixed_size_and_loo_shapes():
    d = L.generate_layouts(6, seed=0)
    g = L.layout_graph(d["labels"], d["boxes"], d["mask"])
    model = T.LayoutGeneration(16, 4).eval()
    boxes = T.generate(model, g, torch.Generator().manual_seed(0))
    assert boxes.shape == d["boxes"].shape and (boxes[~d["mask"]] == 0).all()
    fixed = torch.full((6, L.MAX_COMPONENTS, 2), float("nan"))
    fixed[:, 0] = torch.tensor([0.3, 0.2])
    out = T.generate(model, g, torch.Generator().manual_seed(0), fixed_size=fixed)
    torch.testing.assert_close(out[:, 0, 2:], torch.tensor([0.3, 0.2]).expand(6, 2))
    pred, true = T.leave_one_out(model, g)
    rows = torch.arange(6)
    torch.testing.assert_close(true, d["boxes"][rows, d["mask"].sum(1) - 1])
    hidden = T.hide_last(g)
    k = d["mask"].sum(1)
    s, o = L.pairs(g["nodes"].shape[1])
    touch = (s[None] == k[:, None]) | (o[None] == k[:, None])
    assert (hidden["loc"][touch] == 0).all() and torch.equal(
        hidden["loc"][~touch], g["loc"][~touch]
    )


def test_box_vae_loss_has_gradients_everywhere():
    vae = T.BoxVAE(8, 4)
    bb, c = torch.rand(16, 4), torch.randn(16, 8)
    out = vae.loss(bb, c)
    out["loss"].backward()
    for name, p in vae.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert set(out) == {"loss", "recon", "kl", "size"}


def test_jitter_is_within_bounds_and_perturb_moves_something():
    d = L.generate_layouts(200, seed=0)
    j = T.jitter(d["boxes"], d["mask"], 0.05, torch.Generator().manual_seed(0))
    assert float((j - d["boxes"]).abs().max()) <= 0.05
    p = T.perturb(d["boxes"], d["mask"], torch.Generator().manual_seed(0))
    moved = (p[..., :2] != d["boxes"][..., :2]).any(-1) & d["mask"]
    # every layout is perturbed (a full-canvas background cannot move, so a few may look unchanged)
    assert moved.any(1).float().mean() > 0.9 and torch.equal(p[..., 2:], d["boxes"][..., 2:])


def test_reorder_by_size_and_errors():
    d = L.generate_layouts(50, seed=0)
    r = T.reorder(d, "size")
    area = r["boxes"][..., 2] * r["boxes"][..., 3]
    area = torch.where(r["mask"], area, torch.full_like(area, -1))
    assert (area[:, :-1] >= area[:, 1:]).all() and torch.equal(r["mask"].sum(1), d["mask"].sum(1))
    with pytest.raises(ValueError, match="unknown order"):
        T.reorder(d, "alphabetical")
    with pytest.raises(ValueError, match="frequencies"):
        T.reorder(d, "occurrence")


# ---------------------------------------------------------------------------------------------
# readers (fixture files written here)
# ---------------------------------------------------------------------------------------------
def test_read_rico_semantic(tmp_path):
    screen = {
        "bounds": [0, 0, 1440, 2560],
        "componentLabel": None,
        "children": [
            {
                "bounds": [0, 0, 1440, 256],
                "componentLabel": "Toolbar",
                "children": [{"bounds": [40, 40, 200, 200], "componentLabel": "Icon"}],
            },
            {"bounds": [0, 256, 1440, 1256], "componentLabel": "Image"},
            {"bounds": [100, 1300, 500, 1400], "componentLabel": "Unknown Widget"},
        ],
    }
    (tmp_path / "1.json").write_text(json.dumps(screen))
    crowded = {
        "bounds": [0, 0, 100, 100],
        "children": [{"bounds": [0, i, 10, i + 5], "componentLabel": "Text"} for i in range(12)],
    }
    (tmp_path / "2.json").write_text(json.dumps(crowded))
    d = L.read_rico_semantic(tmp_path)
    assert len(d["files"]) == 1 and d["files"][0].endswith("1.json")  # 12 components: dropped
    m = d["mask"][0]
    assert int(m.sum()) == 3
    names = [L.RICO_CLASSES[int(i) - 1] for i in d["labels"][0][m]]
    assert names == ["Toolbar", "Image", "Icon"]  # flattened, breadth first
    torch.testing.assert_close(d["boxes"][0, 0], torch.tensor([0, 0, 1, 0.1]))
    torch.testing.assert_close(
        d["boxes"][0, 2], torch.tensor([40 / 1440, 40 / 2560, 160 / 1440, 160 / 2560])
    )
    with pytest.raises(FileNotFoundError, match="RICO semantic"):
        L.read_rico_semantic(tmp_path / "missing")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        L.read_rico_semantic(tmp_path / "bad.json")
    (tmp_path / "nobounds.json").write_text(json.dumps({"children": []}))
    with pytest.raises(ValueError, match="'bounds'"):
        L.read_rico_semantic(tmp_path / "nobounds.json")


def test_read_publaynet(tmp_path):
    coco = {
        "images": [{"id": 7, "width": 600, "height": 800, "file_name": "a.jpg"}],
        "categories": [
            {"id": 1, "name": "text"},
            {"id": 2, "name": "title"},
            {"id": 5, "name": "figure"},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 2, "bbox": [60, 80, 300, 40]},
            {"id": 2, "image_id": 7, "category_id": 5, "bbox": [0, 400, 600, 400]},
        ],
    }
    path = tmp_path / "val.json"
    path.write_text(json.dumps(coco))
    d = L.read_publaynet(path)
    assert d["classes"] == ("text", "title", "figure") and d["image_ids"] == [7]
    assert d["labels"][0, :2].tolist() == [2, 3]
    torch.testing.assert_close(d["boxes"][0, 0], torch.tensor([0.1, 0.1, 0.5, 0.05]))
    try:  # an independent reader of the same file, where installed
        from pycocotools.coco import COCO

        ann = COCO(str(path)).loadAnns(1)[0]
        assert ann["bbox"][2] / 600 == pytest.approx(float(d["boxes"][0, 0, 2]))
    except ImportError:
        pass
    with pytest.raises(FileNotFoundError, match="COCO format"):
        L.read_publaynet(tmp_path / "train.json")
    (tmp_path / "x.json").write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="'annotations'"):
        L.read_publaynet(tmp_path / "x.json")


# ---------------------------------------------------------------------------------------------
# the paper's numbers and the run
# ---------------------------------------------------------------------------------------------
def test_paper_numbers():
    t2 = T.PAPER["table2"].values
    assert t2["100/100 +ref"] < t2["20/20 +ref"] < t2["0/0 +ref"]
    assert T.PAPER["table1_loo"].values["NDN-loo RICO"] == 0.018
    assert T.PAPER["table4"].values["RICO"] == 98.2


def test_smoke_run_returns_every_key_of_full():
    smoke, full = T.Config.smoke(), T.Config.full()
    assert len(smoke.seeds) >= 2 and set(smoke.orders) == set(full.orders) and smoke.trials > 1
    res = T.run(smoke)
    for key in (
        "table",
        "consistency",
        "fixed_size",
        "loo",
        "orders",
        "findings",
        "compare_table1",
        "compare_table2",
        "compare_table3",
        "compare_table4",
        "compare_loo",
    ):
        assert key in res, key
    assert set(res["orders"]["order"]) == set(full.orders)
    assert set(res["table"]["seed"]) == set(smoke.seeds)
    assert set(res["findings"]["kind"]) <= {"paper claim", "sanity check", "construction"}
