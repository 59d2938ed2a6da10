"""E26 AVVP: the hybrid attention network, attentive MMIL pooling, the losses, the inference
filter and the AVVP scores, against closed forms, hand cases and scikit-learn."""
import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from cvtutor.data.events import AudioVisualEvents
from cvtutor.data.video_readers import (llp_dense_matrix, load_features, load_llp_dense,
                                        load_llp_weak)
from cvtutor.metrics import temporal as tm
from cvtutor.papers import av_video_parsing as A


def _P(B=3, T=5, C=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, T, 2, C, generator=g, dtype=torch.float64),
            torch.randn(B, T, 2, C, generator=g, dtype=torch.float64),
            torch.randn(B, T, 2, C, generator=g, dtype=torch.float64))


# --- attention and HAN (Eqs. 1-4) ---------------------------------------------------------------
def test_attention_is_eq3_by_hand():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 3, 4, generator=g), torch.randn(2, 5, 4, generator=g)
    out, w = A.attention(q, k)
    for b in range(2):
        for t in range(3):
            logits = np.array([float(q[b, t] @ k[b, s]) / 2.0 for s in range(5)])  # sqrt(4) = 2
            ref = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
            assert np.allclose(w[b, t].numpy(), ref, atol=1e-6)
            assert np.allclose(out[b, t].numpy(), ref @ k[b].numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="share d"):
        A.attention(q, torch.randn(2, 5, 3))


def test_han_is_permutation_equivariant_and_shares_its_layer():
    torch.manual_seed(0)
    han = A.HAN(16).eval()
    a, v = torch.randn(2, 7, 16), torch.randn(2, 7, 16)
    perm = torch.randperm(7)
    ha, hv = han(a, v)
    pa, pv = han(a[:, perm], v[:, perm])
    assert torch.allclose(pa, ha[:, perm], atol=1e-5) and torch.allclose(pv, hv[:, perm], atol=1e-5)
    # one layer serves both directions: swapping the inputs swaps the outputs
    sa, sv = han(v, a)
    assert torch.allclose(sa, hv, atol=1e-6) and torch.allclose(sv, ha, atol=1e-6)
    # the Transformer baseline has no cross term: audio does not depend on visual
    tr = A.HAN(16, cross=False).eval()
    assert torch.allclose(tr(a, v)[0], tr(a, torch.randn_like(v))[0])
    assert not torch.allclose(han(a, v)[0], han(a, torch.randn_like(v))[0])


def test_han_layer_without_attention_is_the_residual_and_norms():
    layer = A.HANLayer(8, dropout=0.0).eval()
    for att in (layer.self_attn, layer.cm_attn):
        torch.nn.init.zeros_(att.out.weight)
        torch.nn.init.zeros_(att.out.bias)
    for lin in (layer.ffn[0], layer.ffn[3]):
        torch.nn.init.zeros_(lin.weight)
        torch.nn.init.zeros_(lin.bias)
    x = torch.randn(2, 5, 8)
    ln = torch.nn.functional.layer_norm
    ref = ln(ln(x, (8,)), (8,))
    assert torch.allclose(layer(x, torch.randn(2, 5, 8)), ref, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, T, d\)"):
        layer(x, torch.randn(2, 4, 8))


# --- attentive MMIL pooling (Eqs. 7-9) --------------------------------------------------------
def test_attentive_pooling_weights_and_closed_forms():
    P, Ftp, Fav = _P()
    out = A.attentive_mmil_pooling(P, Ftp, Fav)
    assert torch.allclose(out["W_tp"].sum(1), torch.ones(3, 2, 4, dtype=torch.float64))
    assert torch.allclose(out["W_av"].sum(2), torch.ones(3, 5, 4, dtype=torch.float64))
    for k in ("p_a", "p_v"):
        assert out[k].shape == (3, 4) and (out[k] >= 0).all() and (out[k] <= 1).all()
    # Eq. (7) is no convex combination: audio attends to t = 0, visual to t = 1, and W_av picks
    # audio at t = 0 and visual at t = 1, so both modalities' full weight lands in p_bar
    tp = torch.full_like(Ftp, -1e4)
    tp[:, 0, 0], tp[:, 1, 1] = 0, 0
    av = torch.full_like(Fav, -1e4)
    av[:, 0, 0], av[:, 1, 1] = 0, 0
    two = A.attentive_mmil_pooling(torch.ones_like(P), tp, av)
    assert torch.allclose(two["p_bar"], torch.full((3, 4), 2.0, dtype=torch.float64))
    # constant P => p_a = p_v = P (convex combinations over t)
    const = A.attentive_mmil_pooling(torch.full_like(P, 0.3), Ftp, Fav)
    for k in ("p_a", "p_v"):
        assert torch.allclose(const[k], torch.full((3, 4), 0.3, dtype=torch.float64))
    # p_bar's weights W_tp * W_av sum to 1 over (t, m) only when W_av is constant over t; with
    # uniform F_av it is the mean of the two modality bags
    uni = A.attentive_mmil_pooling(P, Ftp, torch.zeros_like(Fav))
    assert torch.allclose(uni["p_bar"], (uni["p_a"] + uni["p_v"]) / 2)
    # a one-hot attention picks the instance
    hot_tp = torch.full_like(Ftp, -1e4)
    hot_tp[:, 2] = 0
    hot_av = torch.full_like(Fav, -1e4)
    hot_av[:, :, 1] = 0
    pick = A.attentive_mmil_pooling(P, hot_tp, hot_av)
    assert torch.allclose(pick["p_bar"], P[:, 2, 1], atol=1e-12)
    assert torch.allclose(pick["p_a"], P[:, 2, 0], atol=1e-12)
    # by hand for one (b, c)
    b, c = 1, 2
    wt = torch.softmax(Ftp[b, :, :, c], 0)
    wm = torch.softmax(Fav[b, :, :, c], 1)
    assert torch.isclose(out["p_bar"][b, c], (wt * wm * P[b, :, :, c]).sum())
    with pytest.raises(ValueError, match="M=2"):
        A.attentive_mmil_pooling(P[:, :, :1], Ftp[:, :, :1], Fav[:, :, :1])
    with pytest.raises(ValueError, match="shape"):
        A.attentive_mmil_pooling(P, Ftp[:, :4], Fav)


def test_max_and_mean_pooling():
    P, _, _ = _P()
    mx, mn = A.max_mmil_pooling(P), A.mean_mmil_pooling(P)
    assert torch.equal(mx["p_bar"], P.flatten(1, 2).amax(1))
    assert torch.equal(mx["p_v"], P[:, :, 1].amax(1))
    assert torch.allclose(mn["p_bar"], P.flatten(1, 2).mean(1))
    assert torch.allclose(mn["p_a"], P[:, :, 0].mean(1))


def test_attentive_pooling_gradient_by_finite_differences():
    P, Ftp, Fav = (x.requires_grad_() for x in _P(B=2, T=3, C=2))
    assert torch.autograd.gradcheck(
        lambda p, f, g: A.attentive_mmil_pooling(p, f, g)["p_bar"], (P, Ftp, Fav))


# --- losses ---------------------------------------------------------------------------------------
def test_bce_matches_torch_and_the_guided_loss_sums_two():
    g = torch.Generator().manual_seed(2)
    p, y = torch.rand(4, 5, generator=g), (torch.rand(4, 5, generator=g) < 0.5).float()
    assert torch.allclose(A.bce(p, y), torch.nn.functional.binary_cross_entropy(p, y), atol=1e-6)
    assert torch.isfinite(A.bce(torch.zeros(2, 2), torch.ones(2, 2)))  # clamped like the code
    q = torch.rand(4, 5, generator=g)
    assert torch.isclose(A.guided_loss(p, q, y, y), A.bce(p, y) + A.bce(q, y))
    with pytest.raises(ValueError, match="same shape"):
        A.bce(p, y[:, :3])


def test_label_smoothing_and_bootstrap_values():
    y = torch.tensor([1.0, 0.0])
    assert torch.allclose(A.smooth_labels(y, 0.1), torch.tensor([0.95, 0.05]))  # 0.9 y + 0.05
    assert torch.allclose(A.smooth_labels(y, 0.2, K=4), torch.tensor([0.85, 0.05]))  # 1-e+e/K, e/K
    with pytest.raises(ValueError, match="eps"):
        A.smooth_labels(y, 1.0)
    with pytest.raises(ValueError, match="K"):
        A.smooth_labels(y, 0.1, K=1)
    p = torch.tensor([0.2, 0.6], requires_grad=True)
    b = A.bootstrap_labels(y, p, 0.9)
    assert torch.allclose(b, torch.tensor([0.92, 0.06])) and not b.requires_grad


def test_parsing_loss_terms_per_setting():
    P, Ftp, Fav = _P(C=3)
    out = A.attentive_mmil_pooling(P.float(), Ftp.float(), Fav.float())
    y = torch.tensor([[1.0, 0, 0], [0, 1, 1], [1, 1, 0]])
    t = A.parsing_loss(out, y, A.Setting("wsl+g", noise="smoothing"), eps_v=0.1)
    assert torch.isclose(t["wsl"], A.bce(out["p_bar"], y))
    assert torch.isclose(t["g"], A.bce(out["p_a"], y) + A.bce(out["p_v"], 0.9 * y + 0.05))
    assert set(A.parsing_loss(out, y, A.Setting("wsl"))) == {"wsl"}
    assert set(A.parsing_loss(out, y, A.Setting("g"))) == {"g"}
    assert torch.isclose(A.parsing_loss(out, y, A.Setting("g_visual"))["g"], A.bce(out["p_v"], y))
    with pytest.raises(ValueError, match="unknown loss"):
        A.Setting("l1")
    with pytest.raises(ValueError, match="unknown temporal"):
        A.Setting(temporal="lstm")


# --- inference and scores -------------------------------------------------------------------------
def test_parse_filters_by_the_video_level_prediction():
    P = torch.zeros(1, 4, 2, 2)
    P[0, :2, 0, 0] = 0.9   # class 0 heard in snippets 0-1
    P[0, 3, 1, 1] = 0.8    # class 1 seen in snippet 3, but the video-level p_bar rejects it
    out = {"P": P, "p_bar": torch.tensor([[0.7, 0.2]]), "p_a": torch.tensor([[0.7, 0.0]]),
           "p_v": torch.tensor([[0.0, 0.6]])}
    pa, pv = A.parse(out)
    assert pa.shape == (1, 2, 4)
    assert pa[0, 0].tolist() == [True, True, False, False] and not pv.any()
    pa, pv = A.parse(out, setting=A.Setting("g_visual"))
    assert not pa.any() and pv[0, 1].tolist() == [False, False, False, True]


def test_avvp_scores_by_sklearn_and_by_hand():
    rng = np.random.default_rng(0)
    ga, gv = rng.random((1, 4, 10)) < 0.4, rng.random((1, 4, 10)) < 0.4
    pa, pv = rng.random((1, 4, 10)) < 0.4, rng.random((1, 4, 10)) < 0.4
    s = tm.avvp_scores(pa, pv, ga, gv)

    def seg_f(p, g):  # per class with any positive, sklearn's F1
        return np.mean([f1_score(g[0, c], p[0, c]) for c in range(4)
                        if g[0, c].any() or p[0, c].any()])

    assert np.isclose(s["segment", "audio"], seg_f(pa, ga))
    assert np.isclose(s["segment", "visual"], seg_f(pv, gv))
    assert np.isclose(s["segment", "audio-visual"], seg_f(pa & pv, ga & gv))
    three = s["segment", "audio"] + s["segment", "visual"] + s["segment", "audio-visual"]
    assert np.isclose(s["segment", "Type@AV"], three / 3)
    both = [f1_score(np.r_[ga[0, c], gv[0, c]], np.r_[pa[0, c], pv[0, c]]) for c in range(4)]
    assert np.isclose(s["segment", "Event@AV"], np.mean(both))
    # event level: [1,1,0,1] are two events; IoU exactly 0.5 counts
    g = np.zeros((1, 1, 10), bool)
    g[0, 0, :4] = True
    p = np.zeros_like(g)
    p[0, 0, [0, 1, 3]] = True
    s = tm.avvp_scores(p, g, g, g)
    assert np.isclose(s["event", "audio"], 2 * 1 / (2 * 1 + 1 + 0))  # [0,2) matches, [3,4) does not
    assert s["event", "visual"] == 1.0
    with pytest.raises(ValueError, match="one shape"):
        tm.avvp_scores(p, g, g, g[:, :, :5])


# --- the model, training, run -----------------------------------------------------------------
def test_mmil_net_shapes_and_bad_input():
    net = A.MMILNet(6, 5, 4, d_model=8, temporal="han")
    out = net(torch.randn(2, 10, 6), torch.randn(2, 10, 5))
    assert out["P"].shape == (2, 10, 2, 4) and out["p_bar"].shape == (2, 4)
    assert out["W_tp"].shape == (2, 10, 2, 4)
    for kind in A.TEMPORALS:
        o = A.MMILNet(6, 5, 4, d_model=8, temporal=kind, pooling="mean")(
            torch.randn(2, 10, 6), torch.randn(2, 10, 5))
        assert o["p_bar"].shape == (2, 4)
    with pytest.raises(ValueError, match="share B and T"):
        net(torch.randn(2, 10, 6), torch.randn(2, 9, 5))
    with pytest.raises(ValueError, match="unknown pooling"):
        A.MMILNet(6, 5, 4, pooling="sum")
    with pytest.raises(ValueError, match="unknown temporal"):
        A.temporal_net("lstm", 8)


def test_visual_noise_is_additive_to_the_world():
    base = AudioVisualEvents().sample(20, seed=3)
    same = AudioVisualEvents(visual_noise=0.3).sample(20, seed=3)  # = noise: bit-identical
    for k in base:
        assert torch.equal(base[k], same[k]), k
    noisy = AudioVisualEvents(visual_noise=0.9).sample(20, seed=3)
    assert torch.equal(noisy["audio"], base["audio"])
    assert torch.equal(noisy["visual_labels"], base["visual_labels"])
    assert (noisy["visual"] - base["visual"]).std() > 0.3


def test_modality_bias_appears_with_wsl_alone():
    cfg = A.Config.fast()
    tr, te = A.make_data(cfg, 0)
    model, hist = A.train_parser(A.Setting("wsl", "attentive", "none"), tr, cfg, 0)
    s = A.evaluate(model, te)
    assert s["segment", "visual"] < s["segment", "audio"] - 10
    assert hist["wsl"].iloc[-20:].mean() < hist["wsl"].iloc[:20].mean()


def test_cli_smoke_run_returns_every_full_key(tmp_path, monkeypatch):
    """``python -m cvtutor run av_video_parsing --profile smoke``: full's settings and keys."""
    from cvtutor import cli, report

    smoke, full = A.Config.smoke(), A.Config.full()
    assert set(smoke.settings) == set(full.settings) and smoke.table1 == full.table1
    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)
    monkeypatch.setenv("CVTUTOR_DEVICE", "cpu")
    assert cli.main(["run", "av_video_parsing", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    r, meta = report.load_results(tmp_path / "av_video_parsing-smoke-seed0.json")
    assert meta["profile"] == "smoke"
    assert {"scores", "table2_ours", "compare_table2", "curves", "findings", "examples", "pooling",
            "compare_table1_segment", "compare_table1_event"} <= set(r)
    assert set(r["scores"]["seed"]) == set(smoke.seeds)
    assert r["findings"]["kind"].isin(("paper claim", "sanity check", "construction")).all()
    assert len(r["compare_table2"]) == 5 * len(A.TABLE2_ROWS)


def test_paper_numbers_are_the_tables():
    t2 = A.PAPER["table2"].values
    assert t2["L_wsl, attentive, none | visual"] == 16.4
    assert t2["L_wsl+L_g, attentive, han, LS | Type@AV"] == 54.0
    assert A.PAPER["table1_event"].values["ours | Event@AV"] == 48.0


# --- LLP readers on fixture files ----------------------------------------------------------------
def test_llp_files_feed_the_parser(tmp_path):
    (tmp_path / "AVVP_train.csv").write_text(
        "filename\tevent_labels\nabcdefghijk_30_40\tSpeech,Dog\nzyxwvutsrqp_0_10\tCar\n")
    (tmp_path / "AVVP_eval_audio.csv").write_text(
        "filename\tevent_labels\tonset\toffset\nabcdefghijk_30_40\tSpeech\t0\t4\n"
        "abcdefghijk_30_40\tDog\t6\t10\n")
    weak = load_llp_weak(tmp_path / "AVVP_train.csv")
    assert weak.labels[0] == ["Speech", "Dog"]
    dense = llp_dense_matrix(load_llp_dense(tmp_path / "AVVP_eval_audio.csv"),
                             ["Speech", "Dog", "Car"], ["abcdefghijk_30_40"])
    assert dense.shape == (1, 3, 10) and dense[0, 0, :4].all() and dense[0, 1, 6:].all()
    feats = tmp_path / "vggish"
    feats.mkdir()
    np.save(feats / "abcdefghijk.npy", np.ones((10, 128), np.float32))
    np.save(feats / "zyxwvutsrqp.npy", np.zeros((10, 128), np.float32))
    ids = [f[:11] for f in weak.filename]
    f = load_features(feats, ids)
    a = torch.from_numpy(np.stack([f[i] for i in ids]))
    out = A.MMILNet(128, 128, 3, d_model=8)(a, a)
    assert out["P"].shape == (2, 10, 2, 3)
    with pytest.raises(FileNotFoundError, match="expected"):
        load_features(feats, ["missing_id00"])
