"""PhraseClick (E25): click maps, phrase encoder, attribute attention, losses, the click protocol,
NoC, graph cut, the targets of the 2-D scene world, the readers and the smoke run."""
import itertools
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from cvtutor import cli, report
from cvtutor.data import interactive_seg as IS
from cvtutor.papers import phraseclick as P


# --- Eq. (1) ---------------------------------------------------------------------------------
def test_click_maps_match_brute_force_and_truncate():
    g = torch.Generator().manual_seed(0)
    clicks = torch.randint(0, 12, (3, 4, 2), generator=g)
    sign = torch.tensor([[1, -1, 0, 1], [-1, -1, 0, 0], [1, 0, 0, 0]])
    d = P.click_maps(clicks, sign, 12, truncate=5.0)
    assert d.shape == (3, 2, 12, 12)
    for b in range(3):
        for ch, s in ((0, 1), (1, -1)):
            pts = clicks[b][sign[b] == s].numpy()
            for y, x in itertools.product(range(12), range(12)):
                want = min([np.hypot(x - px, y - py) for px, py in pts], default=np.inf)
                assert float(d[b, ch, y, x]) == pytest.approx(min(want, 5.0) / 5.0, abs=1e-5)
    # zero at a click, 1 (truncated) with no click of that sign
    assert float(d[0, 0, clicks[0, 0, 1], clicks[0, 0, 0]]) == 0.0
    assert torch.all(d[2, 1] == 1.0)


def test_click_maps_bad_input():
    with pytest.raises(ValueError, match="clicks must be"):
        P.click_maps(torch.zeros(2, 3), torch.zeros(2, 3), 8, 4.0)
    with pytest.raises(ValueError, match="truncate"):
        P.click_maps(torch.zeros(1, 1, 2), torch.ones(1, 1), 8, 0.0)


# --- Eq. (2)-(5) ----------------------------------------------------------------------------
def test_phrase_encoder_equals_a_packed_bidirectional_lstm():
    from torch.nn.utils.rnn import pack_padded_sequence
    torch.manual_seed(0)
    enc = P.PhraseEncoder(10, 6, 5)
    ref = torch.nn.LSTM(6, 5, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(ref, name).copy_(getattr(enc.forward_lstm, name))
            getattr(ref, name + "_reverse").copy_(getattr(enc.backward_lstm, name))
    tokens = torch.tensor([[3, 4, 5], [7, 2, 0], [9, 0, 0]])
    lengths = torch.tensor([3, 2, 1])
    h = enc(tokens, lengths)
    _, (hn, _) = ref(pack_padded_sequence(enc.embed(tokens), lengths, batch_first=True,
                                          enforce_sorted=False))
    assert torch.allclose(h, torch.cat([hn[0], hn[1]], -1), atol=1e-6)
    for i in range(3):  # and each sequence run alone, without padding
        out, _ = ref(enc.embed(tokens[i:i + 1, : int(lengths[i])]))
        assert torch.allclose(h[i], torch.cat([out[0, -1, :5], out[0, 0, 5:]]), atol=1e-6)
    # the zero phrase: no phrase gives zero states
    assert torch.all(enc(tokens, torch.tensor([0, 2, 0]))[[0, 2]] == 0)
    with pytest.raises(ValueError, match="tokens must be"):
        enc(tokens, lengths[:2])


def test_attribute_attention_beta_zero_identity_and_range():
    torch.manual_seed(0)
    att = P.AttributeAttention(8, 6).eval()
    feat, h = torch.randn(4, 8, 5, 5), torch.randn(4, 6) * 10
    out, a, ctx = att(feat, h)
    assert out.shape == feat.shape and a.shape == (4, 8) and ctx.shape == (4, 14)
    assert float(a.abs().max()) <= 1.0
    assert torch.allclose(out, 1.0 * a[..., None, None] * feat + feat)  # Eq. (5), beta = 1
    with torch.no_grad():
        att.beta.zero_()
    assert torch.equal(att(feat, h)[0], feat)
    assert torch.allclose(ctx[:, 6:], feat.mean((2, 3)))  # Eq. (3): GAP(F)
    with pytest.raises(ValueError, match="feat must be"):
        att(feat[0], h)


def test_network_shapes_and_gradient_reaches_the_phrase():
    torch.manual_seed(0)
    net = P.PhraseClickNet(width=8, depth=2, embed=8, hidden=8)
    x = torch.randn(3, 5, 16, 16)
    tokens = torch.tensor([[2, 20, 0], [1, 20, 0], [30, 3, 20]])
    logits, attr, a = net(x, tokens, torch.tensor([2, 2, 3]))
    assert logits.shape == (3, 16, 16) and attr.shape == (3, P.N_ATTRIBUTES) and a.shape == (3, 32)
    logits.sum().backward()
    assert net.phrase.embed.weight.grad.abs().sum() > 0 and net.fuse.beta.grad is not None
    naive = P.PhraseClickNet(width=8, depth=2, embed=8, hidden=8, fusion="naive")
    assert naive(x, tokens, torch.tensor([2, 2, 3]))[2] is None
    with pytest.raises(ValueError, match="5"):
        net(torch.randn(1, 3, 16, 16), tokens[:1], torch.tensor([2]))
    with pytest.raises(ValueError, match="fusion"):
        P.PhraseClickNet(fusion="concat")


# --- Eq. (6)-(7) ----------------------------------------------------------------------------
def test_mask_loss_is_bce_with_logits_and_its_gradient():
    torch.manual_seed(0)
    s = torch.randn(2, 7, 7, dtype=torch.float64, requires_grad=True)
    t = torch.rand(2, 7, 7) > 0.5
    loss = P.mask_loss(s, t)
    assert float(loss) == pytest.approx(float(F.binary_cross_entropy_with_logits(s, t.double())))
    loss.backward()
    assert torch.allclose(s.grad, (torch.sigmoid(s) - t.double()) / s.numel())
    with pytest.raises(ValueError, match="one shape"):
        P.mask_loss(s, t[0])


def test_attribute_loss_by_hand_sign_and_weights():
    logits = torch.tensor([[2.0, -1.0, 0.0], [0.5, 0.5, -3.0]])
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    w = torch.tensor([0.2, 0.3, 0.5])
    sig = torch.sigmoid(logits)
    manual = -(w * (labels * sig.log() + (1 - labels) * (1 - sig).log())).sum(1)
    assert float(P.attribute_loss(logits, labels, w)) == pytest.approx(float(manual.mean()))
    assert float(P.attribute_loss(logits, labels, w)) > 0  # the sign the paper's Eq. (7) lacks
    present = torch.tensor([True, False])
    assert float(P.attribute_loss(logits, labels, w, present)) == pytest.approx(float(manual[0]))
    with pytest.raises(ValueError, match="weights"):
        P.attribute_loss(logits, labels, w[:2])
    wt = P.attribute_weights(torch.tensor([[1, 0], [1, 0], [1, 1], [1, 0]]))
    assert float(wt.sum()) == pytest.approx(1.0) and wt[1] == pytest.approx(4 * wt[0])


# --- protocol, NoC, graph cut ---------------------------------------------------------------
def test_next_click_is_the_interior_most_pixel_of_the_largest_error():
    target = np.zeros((20, 20), bool)
    target[2:9, 2:9] = True            # missed 7x7 square: the largest error
    target[15:17, 15:17] = True        # missed 2x2
    pred = np.zeros((20, 20), bool)
    pred[12:15, 2:5] = True            # false positive 3x3
    assert P.next_click(pred, target) == (5, 5, 1)
    pred2 = target.copy()
    pred2[10:19, 0:9] = True           # now the false positive 9x9 is the largest
    x, y, s = P.next_click(pred2, target)
    assert s == -1 and (x, y) == (4, 14)
    dt = ndimage.distance_transform_edt(np.pad(pred2 & ~target, 1))[1:-1, 1:-1]
    assert dt[y, x] == dt.max()
    assert P.next_click(target, target) == (5, 5, 1)  # no error: the target's centre
    with pytest.raises(ValueError, match="one shape"):
        P.next_click(pred, target[:5])


def test_noc_first_hit_and_cap():
    curve = np.array([[0.9, 0.95, 0.99], [0.1, 0.5, 0.86], [0.1, 0.2, 0.3]])
    assert P.noc(curve, 0.85).tolist() == [1, 3, 3]
    assert P.noc(curve, 0.85, cap=20).tolist() == [1, 3, 20]
    assert P.noc(curve[:, :1], 0.95).tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="curve"):
        P.noc(curve[0], 0.5)


def test_graph_cut_is_the_brute_force_minimum():
    rng = np.random.default_rng(0)
    prob, image = rng.uniform(0.05, 0.95, (3, 3)), rng.uniform(0, 1, (3, 3, 3))
    for lam in (0.0, 0.5, 2.0):
        cut = P.graph_cut(prob, image, lam=lam, scale=1e5)
        energies = [P.graph_cut_energy(np.array(bits).reshape(3, 3), prob, image, lam)
                    for bits in itertools.product((0, 1), repeat=9)]
        assert P.graph_cut_energy(cut, prob, image, lam) == pytest.approx(min(energies), abs=1e-3)
    assert np.array_equal(P.graph_cut(prob, image, lam=0.0), prob > 0.5)
    with pytest.raises(ValueError, match="lam"):
        P.graph_cut(prob, image, lam=-1)


def test_graph_cut_recovers_two_noisy_regions():
    rng = np.random.default_rng(1)
    truth = np.zeros((24, 24), bool)
    truth[:, 12:] = True
    image = np.broadcast_to(truth.astype(float), (3, 24, 24)).copy()
    prob = np.clip(np.where(truth, 0.7, 0.3) + rng.normal(0, 0.3, truth.shape), 0.01, 0.99)
    noisy_acc = ((prob > 0.5) == truth).mean()
    cut = P.graph_cut(prob, image, lam=2.0)
    assert noisy_acc < 0.85 and (cut == truth).mean() > 0.98


def test_seeded_graph_cut_from_two_clicks():
    image = np.zeros((3, 20, 20))
    image[0, 5:15, 5:15] = 1.0  # a red square on black
    cut = P.seeded_graph_cut(image, np.array([[9, 9], [2, 2]]), np.array([1, -1]))
    truth = image[0] > 0.5
    assert (cut == truth).mean() > 0.99 and cut[9, 9] and not cut[2, 2]
    assert not P.seeded_graph_cut(image, np.array([[2, 2]]), np.array([-1])).any()
    with pytest.raises(ValueError, match="clicks must be"):
        P.seeded_graph_cut(image, np.array([9, 9]), np.array([1]))


# --- the targets of the scene world -----------------------------------------------------------
def test_targets_are_seeded_nested_and_labelled():
    a = P.make_targets(30, 32, 3, seed=3)
    b = P.make_targets(30, 32, 3, seed=3)
    for f in a.__dataclass_fields__:
        assert torch.equal(getattr(a, f), getattr(b, f))
    assert len(a) == 90 and set(a.kind.tolist()) == {0, 1, 2}
    assert torch.all(a.mask <= a.container)  # part inside its object, object inside its group
    part = a.kind == 1
    assert torch.all(a.mask[part].flatten(1).sum(1) >= 6)
    assert torch.all((a.container & ~a.mask)[part].flatten(1).any(1))
    # attribute labels are the phrase's words
    for i in range(len(a)):
        words = set(a.tokens[i, : int(a.lengths[i])].tolist())
        assert set((torch.nonzero(a.attributes[i])[:, 0] + 1).tolist()) == words
    assert a.unique[a.kind == 2].all() and not a.unique.all()
    assert P.phrase_text(a, int(torch.nonzero(part)[0])).startswith("the ")
    with pytest.raises(ValueError, match="n_scenes"):
        P.make_targets(0)


def test_training_clicks_fall_where_the_simulator_says():
    t = P.make_targets(20, 32, 2, seed=0)
    g = torch.Generator().manual_seed(0)
    n = torch.full((len(t),), 3)
    clicks, signs = P.simulate_clicks(t, n, g)
    rows = torch.arange(len(t))
    inside = t.mask[rows[:, None], clicks[..., 1], clicks[..., 0]]
    assert torch.all(signs[:, 0] == 1)
    assert torch.all(inside[signs == 1]) and not torch.any(inside[signs == -1])
    assert torch.all(P.simulate_clicks(t, torch.zeros(len(t), dtype=torch.long), g)[1] == 0)


# --- readers on fixture files -----------------------------------------------------------------
def _palette_png(path, indices):
    im = Image.fromarray(indices.astype(np.uint8), mode="P")
    im.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    im.save(path)


def test_voc_instances_reader(tmp_path):
    for d in ("JPEGImages", "SegmentationObject", "SegmentationClass", "ImageSets/Segmentation"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "ImageSets/Segmentation/val.txt").write_text("2007_000001\n")
    image = Image.fromarray(np.full((8, 10, 3), 128, np.uint8))
    image.save(tmp_path / "JPEGImages/2007_000001.jpg")
    obj = np.zeros((8, 10), np.uint8)
    obj[1:3, 1:4], obj[5:7, 5:9], obj[4, :] = 1, 2, 255
    cls = np.where(obj == 1, 12, np.where(obj == 2, 15, obj))
    _palette_png(tmp_path / "SegmentationObject/2007_000001.png", obj)
    _palette_png(tmp_path / "SegmentationClass/2007_000001.png", cls)
    targets = IS.read_voc_instances(tmp_path, "val")
    assert [t["phrase"] for t in targets] == ["dog", "person"]
    assert targets[0]["mask"].sum() == 6 and targets[1]["mask"].sum() == 8
    assert targets[0]["ignore"].sum() == 10 and targets[0]["image"].shape == (8, 10, 3)
    with pytest.raises(FileNotFoundError, match="VOC layout"):
        IS.read_voc_instances(tmp_path, "train")
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(
        tmp_path / "SegmentationObject/2007_000001.png")
    with pytest.raises(ValueError, match="palette"):
        IS.read_voc_instances(tmp_path, "val")


def test_mask_folder_reader(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(tmp_path / "images/banana.bmp")
    m = np.zeros((6, 6), np.uint8)
    m[2:4, 2:4], m[1, :] = 255, 128
    Image.fromarray(m).save(tmp_path / "masks/banana.bmp")
    (t,) = IS.read_mask_folder(tmp_path / "images", tmp_path / "masks")
    assert t["name"] == "banana" and t["mask"].sum() == 4 and t["ignore"].sum() == 6
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(tmp_path / "images/cup.jpg")
    with pytest.raises(FileNotFoundError, match="no mask for cup.jpg"):
        IS.read_mask_folder(tmp_path / "images", tmp_path / "masks")
    with pytest.raises(FileNotFoundError, match="missing folder"):
        IS.read_mask_folder(tmp_path / "nope", tmp_path / "masks")


def test_refcoco_targets_reader(tmp_path):
    d = tmp_path / "refcoco"
    d.mkdir()
    refs = [{"ref_id": 0, "ann_id": 7, "image_id": 1, "category_id": 1, "split": "testA",
             "file_name": "x.jpg", "sent_ids": [0],
             "sentences": [{"sent_id": 0, "sent": "left man", "tokens": ["left", "man"]}]}]
    (d / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    coco = {"images": [{"id": 1, "width": 6, "height": 5}],
            "categories": [{"id": 1, "name": "person"}],
            "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2],
                             "area": 4, "iscrowd": 0,
                             "segmentation": [[1, 1, 3, 1, 3, 3, 1, 3]]}]}
    import json
    (d / "instances.json").write_text(json.dumps(coco))
    (t,) = IS.read_refcoco_targets(tmp_path, split="testA")
    assert t["phrase"] == "left man" and t["mask"].shape == (5, 6) and t["mask"].sum() > 0
    coco["annotations"][0]["id"] = 8
    (d / "instances.json").write_text(json.dumps(coco))
    with pytest.raises(ValueError, match="no annotation 7"):
        IS.read_refcoco_targets(tmp_path, split="testA")


# --- the whole miniature ----------------------------------------------------------------------
def test_smoke_run_has_every_key_of_full(tmp_path):
    full, smoke = P.Config.full(), P.Config.smoke()
    assert smoke.naive == full.naive and smoke.refine == full.refine and len(smoke.seeds) >= 2
    res = P.run(smoke)
    keys = {"table1", "table1_mean", "compare_table1", "curve", "noc", "compare_table2",
            "compare_table3",
            "table5", "history", "graph_cut_gain", "attention", "examples", "findings"}
    assert keys <= set(res)
    assert set(res["table1"]["seed"]) == set(smoke.seeds)
    assert set(res["table5"]["fusion"]) == {"attention", "naive"}
    assert "GraphCut" in set(res["noc"]["method"]) and len(res["compare_table2"]) == 5
    assert list(res["findings"].columns[:2]) == ["kind", "holds"] or "holds" in res["findings"]
    assert set(res["findings"]["kind"]) <= set(report.KINDS)
    assert res["examples"]["pred_phraseclick"].shape[1] == smoke.curve_steps


def test_cli_runs_the_smoke_profile(tmp_path):
    assert cli.main(["run", "phraseclick", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    results, meta = report.load_results(tmp_path / "phraseclick-smoke-seed0.json")
    assert meta["profile"] == "smoke" and "findings" in results
