"""GraphMemVOS (E39): Eqs. (1)-(9), the controllers' gates, the graph's permutation symmetry,
label shuffling, soft aggregation, the inference memory policy, J & F, and the smoke profile."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import jaccard_score

from cvtutor.metrics.temporal import boundary_f, region_similarity
from cvtutor.papers import graph_memory_vos as G


def _nodes(B=2, N=3, C=4, H=3, W=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, N, C, H, W, generator=g, dtype=dtype)


def test_read_weights_are_a_softmax_of_cosines():
    m = _nodes()
    h = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    w = G.read_weights(h, m)
    assert (w >= 0).all() and torch.allclose(w.sum(1), torch.ones(2, dtype=w.dtype))
    hn, mn = h.numpy(), m.numpy()
    cos = np.array([[np.dot(hn[b].ravel(), mn[b, i].ravel())
                     / np.linalg.norm(hn[b]) / np.linalg.norm(mn[b, i])
                     for i in range(3)] for b in range(2)])
    ref = np.exp(cos) / np.exp(cos).sum(1, keepdims=True)
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-10)
    # Eq. (2) is scale-invariant: scaling h changes nothing
    assert torch.allclose(G.read_weights(5 * h, m), w)


def test_equal_nodes_give_that_node_as_summary():
    node = _nodes(B=1, N=1)
    m = node.expand(1, 4, 4, 3, 3)
    w = G.read_weights(torch.randn(1, 4, 3, 3, dtype=torch.float64), m)
    assert torch.allclose(w, torch.full_like(w, 0.25))
    assert torch.allclose(G.memory_summary(w, m), node[:, 0])


def test_read_rejects_bad_shapes():
    with pytest.raises(ValueError, match="B, N, C, H, W"):
        G.read_weights(torch.zeros(2, 4, 3, 3), torch.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match=">= 2 nodes"):
        G.messages(torch.zeros(1, 1, 4, 3, 3), torch.eye(4))


def test_edge_affinities_match_the_matrix_product():
    m = _nodes()
    We = torch.randn(4, 4, dtype=torch.float64)
    e = G.edge_affinities(m, We)
    f = m.flatten(3).transpose(2, 3)  # B N HW C
    assert e.shape == (2, 3, 3, 9, 9)
    assert torch.allclose(e[1, 0, 2], f[1, 0] @ We @ f[1, 2].T)


def test_messages_exclude_self_and_with_two_nodes_c1_depends_only_on_m2():
    m = _nodes(N=2)
    We = torch.randn(4, 4, dtype=torch.float64)
    c = G.messages(m, We)
    f = m.flatten(3).transpose(2, 3)
    ref = torch.softmax(f[0, 0] @ We @ f[0, 1].T, -1) @ f[0, 1]  # rows sum to 1 (Eq. 7)
    assert torch.allclose(c[0, 0], ref.T.reshape(4, 3, 3))
    # c_1 is a convex combination of m_2's columns: changing m_2 changes c_1 ...
    m2 = m.clone()
    m2[:, 1] += 1.0
    assert not torch.allclose(G.messages(m2, We)[:, 0], c[:, 0])
    # ... while c_1 with m_1 replaced by m_1 * 0 keeps its values inside m_2's range
    m3 = m.clone()
    m3[:, 0] = 0.0  # e_12 = 0: uniform attention, c_1 = mean over m_2's positions
    assert torch.allclose(G.messages(m3, We)[:, 0],
                          m[:, 1].mean((-1, -2), keepdim=True).expand(2, 4, 3, 3))


def _graph(C=4, mode="printed", seed=0):
    torch.manual_seed(seed)
    return G.GraphMemory(C, mode).double()


def test_node_permutation_invariance_of_read_and_equivariance_of_write():
    gm = _graph()
    m = _nodes()
    h = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    perm = torch.tensor([2, 0, 1])
    h1, m1, w1 = gm(h, m, K=3)
    h2, m2, w2 = gm(h, m[:, perm], K=3)
    assert torch.allclose(h1, h2)  # the read state does not see the node order
    assert torch.allclose(m1[:, perm], m2)  # the written memory is permuted the same way
    assert torch.allclose(w1[:, :, perm], w2)
    assert m1.shape == m.shape  # fixed memory size


def test_gates_at_zero_keep_and_at_one_take_the_candidate():
    rc = G.ReadController(4).double()
    h, x = torch.randn(2, 4, 3, 3, dtype=torch.float64), torch.randn(2, 4, 3, 3, dtype=torch.float64)
    with torch.no_grad():
        rc.W_a.bias.fill_(-1e4)
    assert torch.allclose(rc(h, x), h)  # a_r = 0: h^k = h^{k-1}
    with torch.no_grad():
        rc.W_a.bias.fill_(1e4)
    assert torch.allclose(rc(h, x), rc.W_h(h) + rc.U_h(x))  # a_r = 1: the candidate
    wc = G.WriteController(4).double()
    m, c = _nodes(), _nodes(seed=1)
    with torch.no_grad():
        wc.W_a.bias.fill_(-1e4)
    assert torch.allclose(wc(h, m, c), m)
    with torch.no_grad():
        wc.W_a.bias.fill_(1e4)
    cand = (wc.W_m(h)[:, None] + wc.U_m(m.flatten(0, 1)).reshape(m.shape)
            + wc.V_m(c.flatten(0, 1)).reshape(m.shape))
    assert torch.allclose(wc(h, m, c), cand)


def test_convgru_controller_bounds_the_candidate():
    rc = G.ReadController(4, "convgru").double()
    h = torch.zeros(1, 4, 3, 3, dtype=torch.float64)
    x = 1e3 * torch.randn(1, 4, 3, 3, dtype=torch.float64)
    assert rc(h, x).abs().max() <= 1.0  # h = 0, tanh candidate
    with pytest.raises(ValueError, match="printed"):
        G.ReadController(4, "lstm")


def test_gradcheck_graph_memory():
    gm = _graph(mode="printed")
    m = _nodes(B=1, N=3).requires_grad_()
    h = torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda h, m: gm(h, m, 2)[0], (h, m))
    assert torch.autograd.gradcheck(lambda m: G.messages(m, gm.W_e), (m,))


def test_label_map_and_shuffling():
    masks = torch.tensor([[[0, 1], [2, 3]]])
    out = G.label_map(masks, torch.tensor([[2, 0, 1]]), 3)
    assert out[0, 2].tolist() == [[0, 1], [0, 0]]  # instance 1 -> channel 2
    assert out[0, 0].tolist() == [[0, 0], [1, 0]]  # instance 2 -> channel 0
    assert out.sum(1).tolist() == [[[0, 1], [1, 1]]]
    perms = G.label_shuffle(500, 3, torch.Generator().manual_seed(0))
    assert (perms.sort(1).values == torch.arange(3)).all()
    assert len({tuple(p) for p in perms.tolist()}) == 6  # every order occurs
    with pytest.raises(ValueError, match="order"):
        G.label_map(masks, torch.tensor([[0, 1]]), 3)


def test_soft_aggregation_sums_to_one_and_keeps_the_order():
    p = torch.rand(3, 2, 5, 5)
    q = G.soft_aggregation(p)
    assert q.shape == (4, 2, 5, 5) and torch.allclose(q.sum(0), torch.ones(2, 5, 5))
    # one object: the softmax of the logits (-l, l), l = logit(p): p^2 / (p^2 + (1 - p)^2)
    p1 = torch.tensor([[0.2, 0.5, 0.9]])
    fg = p1**2 / (p1**2 + (1 - p1) ** 2)
    assert torch.allclose(G.soft_aggregation(p1), torch.cat([1 - fg, fg]), atol=1e-5)
    # a more confident object wins the pixel
    assert (G.soft_aggregation(torch.tensor([[0.6], [0.8]])).argmax(0) == 2).all()


def test_memory_policy_first_last_and_sampled():
    g = torch.Generator().manual_seed(0)
    for t in range(5, 12):
        idx = G.memory_indices(t, 3, g)
        assert idx[0] == 0 and idx[-1] == t - 1 and 0 < idx[1] < t - 1 and len(idx) == 3
    assert G.memory_indices(1, 3) == [0, 0, 0]
    assert len(G.memory_indices(2, 4)) == 4
    with pytest.raises(ValueError, match="t >= 1"):
        G.memory_indices(0, 3)


def test_model_shapes_and_bad_memory():
    cfg = G.Config.smoke()
    for memory in G.MEMORIES:
        net = G.make_model(cfg, memory)
        rgb = torch.rand(2, 3, 32, 32)
        m0 = torch.stack([net.encode_memory(rgb, torch.rand(2, 1, 32, 32),
                                            torch.rand(2, 3, 32, 32)) for _ in range(3)], 1)
        logits, w = net(rgb, m0, 2)
        assert logits.shape == (2, 2, 32, 32)
        assert w.shape == ((2, 2, 3) if memory == "graph" else (2, 0, 3))
    with pytest.raises(ValueError, match="memory must be"):
        G.GraphMemoryVOS(memory="lstm")
    with pytest.raises(ValueError, match="mask"):
        G.make_model(cfg).memory_encoder(torch.rand(1, 3, 32, 32))


def test_recurrence_clips_take_ordered_frames_and_a_visible_target():
    cfg = G.Config.smoke()
    d = G.videos(cfg, 6, "train", 0)
    sup, sup_m, sup_l, q, tgt = G.recurrence_clips(d, 3, torch.Generator().manual_seed(0), 3, False)
    assert sup.shape == (6, 3, 3, 32, 32) and sup_m.shape == (6, 3, 1, 32, 32)
    assert sup_l.shape == (6, 3, 3, 32, 32) and q.shape == (6, 3, 32, 32) and tgt.shape == (6, 32, 32)
    # the target mask is one of the instances of the support labels
    assert ((sup_m[:, 0, 0] > 0) <= (sup_l[:, 0].sum(1) > 0)).all()
    with pytest.raises(ValueError, match="N \\+ 1"):
        G.recurrence_clips(d, 6, torch.Generator(), 3, True)


def test_footprint_constant_versus_growing():
    f = G.memory_footprint(8, 3, 32, 8, 8)
    assert f["graph memory"].nunique() == 1 and (np.diff(f["STM"]) == 32 * 64).all()


def test_j_and_f_against_sklearn_and_perfect_masks():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(4, 16, 16, generator=g) > 0.5, torch.rand(4, 16, 16, generator=g) > 0.5
    J = region_similarity(a, b)
    ref = [jaccard_score(b[i].flatten().numpy(), a[i].flatten().numpy()) for i in range(4)]
    np.testing.assert_allclose(J.numpy(), ref)
    assert boundary_f(a, a).min() == 1.0
    first = torch.zeros(1, 3, 16, 16, dtype=torch.long)
    first[0, :, 4:12, 4:12] = 1
    ev = G.first_frame_copy({"masks": first}, 1)
    assert ev["J mean"].iloc[0] == 1.0 and ev["J decay"].iloc[0] == 0.0


def test_smoke_profile_runs_every_full_path():
    full, smoke = G.Config.full(), G.Config.smoke()
    assert smoke.ablate_N == full.ablate_N and smoke.stm_baseline and len(smoke.seeds) >= 2
    assert len(smoke.widths) == len(full.widths)
    res = G.run(smoke)
    models = set(res["table"]["model"])
    assert {"full", "w/o graph memory", "N=2", "N=4", "STM-like", "w/o label shuffling",
            "first-frame copy"} <= models
    assert set(res["k_sweep"]["K at inference"]) == set(smoke.infer_K)
    assert res["findings"]["holds"].notna().all()
    assert res["example"]["weights"].shape == (smoke.K, smoke.N)


def test_cli_smoke(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "cvtutor", "run", "graph_memory_vos", "--profile", "smoke",
         "--out", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert list(tmp_path.glob("*.json"))
