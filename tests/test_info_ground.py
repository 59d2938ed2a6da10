"""InfoGround (E44): the InfoNCE bound, the attention critic, both losses, the negatives, the
grounding metrics, the captioned world, the readers, and the smoke profile."""
import base64
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import multivariate_normal

from cvtutor.data import grounding as G
from cvtutor.data.coco import read_coco
from cvtutor.data.flickr30k_entities import (parse_sentence, read_annotations,
                                             read_bottomup_tsv, read_sentences)
from cvtutor.metrics.grounding import pointing_accuracy, recall_at_k
from cvtutor.papers import info_ground as I


# ---------------------------------------------------------------------------------------------
# Eqs. (1)-(3): MI and the InfoNCE bound
# ---------------------------------------------------------------------------------------------
def test_constant_critic_gives_log_k():
    for k in (2, 7, 50):
        scores = torch.full((13, k), 0.37)
        assert math.isclose(float(I.infonce_loss(scores)), math.log(k), rel_tol=1e-6)
        assert abs(float(I.infonce_bound(scores))) < 1e-6


def test_bound_at_most_log_k_and_perfect_critic():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        s = 5 * torch.randn(8, 16, generator=g)
        assert float(I.infonce_bound(s)) <= math.log(16) + 1e-6
    perfect = torch.full((4, 10), -1.0)
    perfect[:, 0] = 1.0
    losses = [float(I.infonce_loss(m * perfect)) for m in (1, 5, 20)]
    assert losses[0] > losses[1] > losses[2] and losses[2] < 1e-6


def test_infonce_is_cross_entropy_with_target_zero():
    s = torch.randn(6, 9, generator=torch.Generator().manual_seed(1))
    ref = F.cross_entropy(s, torch.zeros(6, dtype=torch.long))
    assert torch.allclose(I.infonce_loss(s), ref, atol=1e-6)
    with pytest.raises(ValueError, match="k >= 2"):
        I.infonce_loss(torch.randn(5, 1))


def test_gaussian_mi_matches_scipy_entropies():
    rho, d = 0.6, 3
    cov = np.block([[np.eye(d), rho * np.eye(d)], [rho * np.eye(d), np.eye(d)]])
    h_xy = multivariate_normal(np.zeros(2 * d), cov).entropy()
    h_x = multivariate_normal(np.zeros(d), np.eye(d)).entropy()
    assert math.isclose(I.gaussian_mi(rho, d), 2 * h_x - h_xy, rel_tol=1e-10)
    with pytest.raises(ValueError, match="rho"):
        I.gaussian_mi(1.0)


@pytest.mark.parametrize("rho,dim,k", [(0.5, 2, 64), (0.99, 4, 8)])
def test_trained_bilinear_critic_estimates_at_most_min_mi_log_k(rho, dim, k):
    """A bilinear critic trained on correlated Gaussians: estimate <= min(MI, log k) (+ noise),
    and close to MI when MI << log k."""
    torch.manual_seed(0)
    w = torch.zeros(dim, dim, requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.05)

    def sample(n):
        x = torch.randn(n, dim)
        return x, rho * x + math.sqrt(1 - rho ** 2) * torch.randn(n, dim)

    def scores(x, y):  # row i: y_i against x_i (positive) and the other x's
        s = y @ w @ x.T
        pos = s.diagonal()[:, None]
        neg = s.masked_select(~torch.eye(len(x), dtype=torch.bool)).reshape(len(x), -1)
        return torch.cat([pos, neg], 1)

    for _ in range(300):
        x, y = sample(k)
        loss = I.infonce_loss(scores(x, y))
        opt.zero_grad(), loss.backward(), opt.step()
    with torch.no_grad():
        est = float(torch.stack([I.infonce_bound(scores(*sample(k))) for _ in range(200)]).mean())
    mi = I.gaussian_mi(rho, dim)
    assert est <= min(mi, math.log(k)) + 0.05
    if mi < 0.5 * math.log(k):
        assert est > 0.7 * mi


# ---------------------------------------------------------------------------------------------
# Eqs. (6)-(9): the critic and the losses
# ---------------------------------------------------------------------------------------------
def _critic(layers=1, seed=0):
    torch.manual_seed(seed)
    return I.Compatibility(12, 8, 6, layers).eval()


def test_attention_sums_to_one_and_paired_is_the_diagonal():
    c = _critic()
    g = torch.Generator().manual_seed(0)
    r, w = torch.randn(5, 7, 12, generator=g), torch.randn(5, 4, 8, generator=g)
    a = c.scores(r, w).softmax(-1)
    assert torch.allclose(a.sum(-1), torch.ones(5, 4, 5), atol=1e-6)
    phi = c(r, w)
    phi_p, a_p = c.paired(r, w)
    idx = torch.arange(5)
    assert torch.allclose(phi_p, phi[idx, :, idx], atol=1e-5)
    assert torch.allclose(a_p, a[idx, :, idx], atol=1e-6)


def test_phi_brute_force_and_region_permutation_invariance():
    c = _critic(layers=0)
    g = torch.Generator().manual_seed(1)
    r, w = torch.randn(3, 6, 12, generator=g), torch.randn(2, 3, 8, generator=g)
    phi = c(r, w)
    for b in range(2):
        for t in range(3):
            for i in range(3):
                s = c.k_r(r[i]) @ c.q_w(w[b, t]) / math.sqrt(6)
                v_att = (s.softmax(0)[:, None] * c.v_r(r[i])).sum(0)          # Eq. (7)
                assert torch.isclose(phi[b, t, i], c.v_w(w[b, t]) @ v_att, atol=1e-5)
    perm = torch.randperm(6, generator=g)
    assert torch.allclose(c(r[:, perm], w), phi, atol=1e-5)


def test_gradients_of_phi():
    c = _critic(layers=0).double()
    r = torch.randn(3, 4, 12, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda r, w: c(r, w), (r, w))


def test_l_img_and_l_lang_are_cross_entropies():
    g = torch.Generator().manual_seed(2)
    phi = torch.randn(4, 5, 4, generator=g)
    mask = torch.tensor([True, False, True, True, False])
    ref = sum(F.cross_entropy(phi[b, j][None], torch.tensor([b]))
              for b in range(4) for j in range(5) if mask[j]) / 4
    assert torch.isclose(I.l_img(phi, mask), ref, atol=1e-5)
    pos, neg = torch.randn(6, generator=g), torch.randn(6, 25, generator=g)
    ref = F.cross_entropy(torch.cat([pos[:, None], neg], 1), torch.zeros(6, dtype=torch.long))
    assert torch.isclose(I.l_lang(pos, neg), ref, atol=1e-6)
    with pytest.raises(ValueError, match="B, T, B"):
        I.l_img(torch.randn(3, 5, 4), mask)
    with pytest.raises(ValueError, match="phi_negative"):
        I.l_lang(pos, neg[0])


def test_kv_module_layers_and_bad_input():
    assert len(I.kv_module(4, 3, 0)) == 1 and len(I.kv_module(4, 3, 2)) == 7
    assert isinstance(I.kv_module(4, 3, 1)[1], torch.nn.BatchNorm1d)
    with pytest.raises(ValueError, match="layers"):
        I.kv_module(4, 3, 3)
    with pytest.raises(ValueError, match="regions must be"):
        _critic()(torch.randn(3, 12), torch.randn(3, 2, 8))


# ---------------------------------------------------------------------------------------------
# Sect. 2.4: context-preserving negatives
# ---------------------------------------------------------------------------------------------
def test_reranking_drops_synonyms_on_a_toy_table():
    # words 0 = s, 1 = synonym, 2, 3 = plausible others, 4 = hypernym, 5 = implausible
    p = torch.tensor([[0.30, 0.25, 0.20, 0.15, 0.08, 0.02]])
    q = torch.tensor([[0.40, 0.30, 0.02, 0.01, 0.25, 0.02]])
    plain = I.negative_candidates(p, None, 5, 3)
    assert plain.tolist() == [[0, 1, 2]]
    kept = I.negative_candidates(p, q, 5, 3)
    # p/q over the 5 candidates: 0.75, 0.83, 10, 15, 0.32 -> 3, 2, 1
    assert kept.tolist() == [[3, 2, 1]]
    with pytest.raises(ValueError, match="n_keep"):
        I.negative_candidates(p, q, 3, 5)


def test_truth_proxy_and_implication_of_the_world_vocabulary():
    imp = G.implication()
    w = G.WORD_ID
    assert imp[w["circle"], w["disc"]] and imp[w["circle"], w["shape"]]
    assert not imp[w["circle"], w["oval"]] and not imp[w["shape"], w["circle"]]
    assert imp[w["man"], w["person"]] and not imp[w["man"], w["woman"]]
    p = G.slot_prior(G.naming_table())
    assert torch.allclose(p.sum(1), torch.ones(len(p)), atol=1e-6)
    q = I.truth_proxy(p[:1], torch.tensor([w["circle"]]), imp)
    kept = I.negative_candidates(p[:1], q, 12, 8, torch.tensor(G.NOUN_IDS))
    assert not set(kept[0].tolist()) & {w["circle"], w["disc"], w["dot"], w["shape"]}


def test_phrase_score_is_max_over_tokens():
    a = torch.rand(2, 5, 4, generator=torch.Generator().manual_seed(3))
    pos = torch.tensor([[0, 2], [3, 4]])
    s = I.phrase_scores(a, pos)
    assert torch.equal(s[:, 1], torch.maximum(a[:, 3], a[:, 4]))


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------
def test_recall_iou_half_boundary_and_pointing_edge():
    gt = torch.tensor([[[0.0, 0.0, 2.0, 1.0]]])
    ok = torch.tensor([[True]])
    boxes = torch.tensor([[[0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 1.0, 1.0]]])  # IoU 0.5, 0
    assert recall_at_k(torch.tensor([[1.0, 0.0]]), boxes, gt, ok, 1).item() == 1.0
    assert recall_at_k(torch.tensor([[0.0, 1.0]]), boxes, gt, ok, 1).item() == 0.0
    assert recall_at_k(torch.tensor([[0.0, 1.0]]), boxes, gt, ok, 2).item() == 1.0
    under = torch.tensor([[[0.0, 0.0, 0.99, 1.0], [5.0, 5.0, 1.0, 1.0]]])
    assert recall_at_k(torch.tensor([[1.0, 0.0]]), under, gt, ok, 1).item() == 0.0
    edge = torch.tensor([[[1.0, 0.5, 2.0, 1.0], [0.0, 0.0, 1.0, 1.0]]])   # centre (2, 1): corner
    assert pointing_accuracy(torch.tensor([[1.0, 0.0]]), edge, gt, ok).item() == 1.0
    out = torch.tensor([[[1.1, 0.5, 2.0, 1.0], [0.0, 0.0, 1.0, 1.0]]])
    assert pointing_accuracy(torch.tensor([[1.0, 0.0]]), out, gt, ok).item() == 0.0
    assert pointing_accuracy(torch.tensor([[1.0, 0.0]]), edge, gt, ~ok).item() == 0.0
    with pytest.raises(ValueError, match="gt_valid"):
        pointing_accuracy(torch.tensor([[1.0, 0.0]]), edge, gt, ok.float())
    with pytest.raises(ValueError, match="boxes must be"):
        recall_at_k(torch.tensor([[1.0, 0.0]]), boxes[:, :1], gt, ok, 1)


# ---------------------------------------------------------------------------------------------
# the world
# ---------------------------------------------------------------------------------------------
def test_world_is_seeded_and_consistent():
    a, b = G.grounding_data(40, seed=3), G.grounding_data(40, seed=3)
    assert torch.equal(a.features, b.features) and torch.equal(a.tokens, b.tokens)
    assert not torch.equal(a.tokens, G.grounding_data(40, seed=4).tokens)
    n, m, mm = 40, 10, 3
    assert a.features.shape == (n, m, 64) and a.boxes.shape == (n, m, 4)
    assert a.gt_valid.shape == (n, mm, 6) and a.gt_valid.any(-1).all()
    # the mentioned object is among what its phrase denotes, and it is one of the regions
    assert a.gt_valid.gather(2, a.mention_slot[..., None]).all()
    for i in range(n):
        objs = a.region_slot[i][a.region_kind[i] == 0]
        assert set(a.mention_slot[i].tolist()) <= set(objs.tolist())
    nouns = a.tokens.gather(1, a.noun_pos[None].expand(n, -1))
    assert torch.isin(nouns, torch.tensor(G.NOUN_IDS)).all()
    text = G.caption_text(a.tokens[0])
    assert text.startswith("a ") and " scene with a " in text
    with pytest.raises(ValueError, match="max_objects"):
        G.grounding_data(5, n_regions=4, max_objects=6)


def test_encoder_pretrained_is_frozen_and_synonyms_are_close():
    pre, rnd = G.ContextualEncoder(16, True), G.ContextualEncoder(16, False)
    assert not any(p.requires_grad for p in pre.parameters())
    assert all(p.requires_grad for p in rnd.parameters())
    e = F.normalize(pre.embed.weight, dim=1)
    w = G.WORD_ID
    assert e[w["circle"]] @ e[w["disc"]] > e[w["circle"]] @ e[w["house"]] + 0.3
    with pytest.raises(ValueError, match="long word ids"):
        pre(torch.zeros(2, 3))
    tok = torch.tensor([[1, 2, 3]])
    caps = G.substitute(tok, torch.tensor([1]), torch.tensor([[7, 8]]))
    assert caps.tolist() == [[[1, 7, 3], [1, 8, 3]]]


def test_tiny_mlm_masking_and_slot_distributions():
    tok = G.grounding_data(64, seed=1).tokens
    g = torch.Generator().manual_seed(0)
    corrupted, chosen = G.mlm_batch(tok, g)
    assert chosen.any(1).all() and torch.equal(corrupted[~chosen], tok[~chosen])
    big = tok.repeat(50, 1)
    c2, ch2 = G.mlm_batch(big, g)
    share_mask = float((c2[ch2] == G.WORD_ID["[MASK]"]).float().mean())
    assert 0.74 < share_mask < 0.86 and 0.15 < float(ch2.float().mean()) < 0.25
    torch.manual_seed(0)
    mlm = G.TinyMLM(16, layers=1, heads=2)
    pos = torch.full((64,), 6)
    p, q = G.mlm_slot_distributions(mlm, tok, pos, chunk=20)
    assert p.shape == q.shape == (64, len(G.VOCAB))
    assert torch.allclose(p.sum(1), torch.ones(64), atol=1e-5)
    with pytest.raises(ValueError, match="long word ids"):
        mlm.hidden(torch.zeros(2, 40, dtype=torch.long))
    frozen = G.MLMFeatures(mlm, frozen=True)
    assert not any(x.requires_grad for x in frozen.parameters())
    assert frozen(tok[:2]).shape == (2, tok.shape[1], 16)


# ---------------------------------------------------------------------------------------------
# readers, on fixture files written here
# ---------------------------------------------------------------------------------------------
def test_flickr30k_sentence_parser(tmp_path):
    text, ph = parse_sentence("[/EN#123/people A man] rides [/EN#7/animals/other a brown horse] .")
    assert text == "A man rides a brown horse ."
    assert ph[0] == {"phrase": "A man", "entity": 123, "types": ["people"], "first_word": 0}
    assert ph[1]["types"] == ["animals", "other"] and ph[1]["first_word"] == 3
    with pytest.raises(ValueError, match="malformed"):
        parse_sentence("[/EN#1/people A man rides")
    f = tmp_path / "1000.txt"
    f.write_text("[/EN#1/people A girl] plays .\n"
                 "[/EN#1/people The child] and [/EN#2/animals a dog]\n")
    df = read_sentences(f)
    assert df.entity.tolist() == [1, 1, 2] and df.sentence.tolist() == [0, 1, 1]
    assert df.image_id.iloc[0] == "1000"
    with pytest.raises(FileNotFoundError, match="Sentences"):
        read_sentences(tmp_path / "missing.txt")


def test_flickr30k_annotation_reader(tmp_path):
    xml = """<annotation><size><width>500</width><height>333</height><depth>3</depth></size>
    <object><name>1</name><name>4</name><bndbox><xmin>10</xmin><ymin>20</ymin><xmax>110</xmax>
    <ymax>220</ymax></bndbox></object>
    <object><name>1</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox>
    </object><object><name>2</name><nobndbox>1</nobndbox></object>
    <object><name>3</name><scene>1</scene></object></annotation>"""
    f = tmp_path / "1000.xml"
    f.write_text(xml)
    ann = read_annotations(f)
    assert (ann["width"], ann["height"]) == (500, 333)
    assert ann["boxes"][1].shape == (2, 4) and ann["boxes"][4].tolist() == [[10, 20, 110, 220]]
    assert ann["nobox"] == {2} and ann["scene"] == {3}
    (tmp_path / "bad.xml").write_text("<annotation><size></size></annotation>")
    with pytest.raises(ValueError, match="size"):
        read_annotations(tmp_path / "bad.xml")


def test_bottomup_tsv_reader(tmp_path):
    boxes = np.array([[0, 0, 10, 10], [5, 5, 20, 30]], dtype=np.float32)
    feats = np.arange(2 * 6, dtype=np.float32).reshape(2, 6)
    enc = lambda a: base64.b64encode(a.tobytes()).decode()  # noqa: E731
    f = tmp_path / "feats.tsv"
    f.write_text(f"42\t640\t480\t2\t{enc(boxes)}\t{enc(feats)}\n")
    out = read_bottomup_tsv(f)
    assert np.array_equal(out["42"]["boxes"], boxes)
    assert np.array_equal(out["42"]["features"], feats)
    assert (out["42"]["width"], out["42"]["height"]) == (640, 480)
    f.write_text(f"42\t640\t480\t3\t{enc(boxes)}\t{enc(feats)}\n")
    with pytest.raises(ValueError, match="boxes"):
        read_bottomup_tsv(f)
    f.write_text("42\t640\t480\n")
    with pytest.raises(ValueError, match="fields"):
        read_bottomup_tsv(f)


def test_coco_captions_fixture(tmp_path):
    data = {"images": [{"id": 1, "width": 10, "height": 10, "file_name": "a.jpg"}],
            "annotations": [{"id": 5, "image_id": 1, "caption": "A man riding a horse."}]}
    f = tmp_path / "captions_train2017.json"
    f.write_text(json.dumps(data))
    caps = read_coco(str(f)).captions
    assert caps.caption.tolist() == ["A man riding a horse."]


# ---------------------------------------------------------------------------------------------
# training and the smoke profile
# ---------------------------------------------------------------------------------------------
def test_bad_negatives_option():
    cfg = I.Config.smoke()
    with pytest.raises(ValueError, match="negatives"):
        I.train_model(I.make_data(cfg, "val", device="cpu"), cfg, negatives="hard")


def test_cli_smoke_run_returns_every_key(tmp_path, monkeypatch):
    """``python -m cvtutor run info_ground --profile smoke`` (in process): every key of ``full``."""
    from cvtutor import cli, report, runtime

    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)
    monkeypatch.setenv("CVTUTOR_DEVICE", "cpu")
    try:
        assert cli.main(["run", "info_ground", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    finally:
        runtime.set_deterministic(False)
    res, meta = report.load_results(tmp_path / "info_ground-smoke-seed0.json")
    assert meta["profile"] == "smoke"
    assert {"table2", "compare_table2_accuracy", "compare_table2_r1", "compare_table1", "fig4",
            "negatives", "attention", "history", "findings", "mlm_history"} <= set(res)
    assert set(res["table2"]["setting"]) >= set(I.TABLE2_ROWS)
    assert set(res["fig4"]["layers"]) == {0, 1, 2} and set(res["table2"]["seed"]) == {0, 1}
