"""E28 Learning to Plan with Uncertain Topological Maps: the world, the planner, the baselines."""
import itertools
import math

import networkx as nx
import numpy as np
import pytest
import torch
from scipy.sparse.csgraph import shortest_path

from cvtutor.data import topomaps as tm
from cvtutor.papers import topological_maps as T


@pytest.fixture(scope="module")
def maps():
    return tm.generate(12, 10, seed=3)


def _gt_weights(m):
    return torch.where(m.adj, m.dist, torch.full_like(m.dist, math.inf))


# --- the world ------------------------------------------------------------------------------
def test_generator_is_seeded_and_consistent(maps):
    again = tm.generate(12, 10, seed=3)
    assert torch.equal(maps.prob, again.prob) and torch.equal(maps.positions, again.positions)
    assert not torch.equal(tm.generate(12, 10, seed=4).positions, maps.positions)
    assert torch.allclose(maps.prob, maps.prob.transpose(1, 2))
    assert torch.equal(maps.adj, maps.adj.transpose(1, 2)) and not maps.adj.diagonal(0, 1, 2).any()
    assert bool((maps.dist[maps.adj] < 0.6).all())
    assert maps.features.shape == (12, 10, 19)


def test_line_of_sight_against_a_hand_case():
    walls = torch.tensor([[[0.5, 0.0, 0.5, 1.0]]])
    p = torch.tensor([[0.2, 0.5], [0.2, 0.5]])
    q = torch.tensor([[0.8, 0.5], [0.4, 0.9]])
    assert tm.segments_cross(p, q, walls[0]).tolist() == [True, False]
    depth = tm.ray_cast(torch.tensor([[[0.2, 0.5]]]), torch.tensor([0.0, math.pi]), walls)
    assert torch.allclose(depth, torch.tensor([[[0.3, math.inf]]]))


def test_next_hops_are_consistent_with_scipy_and_networkx(maps):
    for b in range(len(maps)):
        w = torch.where(maps.adj[b], maps.dist[b], torch.zeros(())).double().numpy()
        ref = shortest_path(w, directed=False)
        assert np.allclose(ref, maps.path_len[b].double().numpy(), atol=1e-5)
        g = nx.from_numpy_array(w)
        n = maps.n_nodes
        for t in range(n):
            dist_t = nx.single_source_dijkstra_path_length(g, t)
            for i in range(n):
                nxt = int(maps.next_hop[b, i, t])
                if i == t or i not in dist_t:
                    assert nxt == -1
                    continue
                # D_i,next + dist(next, T) = dist(i, T)
                assert maps.adj[b, i, nxt]
                assert abs(float(maps.dist[b, i, nxt]) + dist_t[nxt] - dist_t[i]) < 1e-5
                assert int(maps.hops[b, i, t]) == len(nx.dijkstra_path(g, i, t)) - 1


def test_floyd_warshall_rejects_bad_input():
    with pytest.raises(ValueError, match="N, N"):
        tm.floyd_warshall(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="non-negative"):
        tm.floyd_warshall(-torch.ones(3, 3))


def test_node_redundancy_eq5_picks_a_clustered_point():
    pts = torch.tensor([[0.0, 0.0], [0.05, 0.0], [0.0, 0.05], [1.0, 1.0]])
    red = tm.node_redundancy(pts, sigma=0.1)
    assert torch.allclose(red[3], torch.tensor(1.0 + 3 * math.exp(-2 / 0.02)), atol=1e-6)
    assert int(tm.most_redundant_node(pts, 0.1)) in (0, 1, 2)        # argmax: "most redundant"
    assert int(tm.most_redundant_node(pts, 0.1, rule="argmin")) == 3  # the printed arg min
    with pytest.raises(ValueError, match="argmax"):
        tm.most_redundant_node(pts, 0.1, rule="min")
    with pytest.raises(ValueError, match="sigma"):
        tm.node_redundancy(pts, 0.0)


def test_pth_reader_round_trip_and_errors(maps, tmp_path):
    path = tm.save_graph_pth(maps, 2, tmp_path / "graph_0002.pth")
    d = tm.load_graph_pth(path)
    assert set(tm.PTH_KEYS) <= set(d)
    assert torch.equal(d["optimal_actions"], maps.next_hop[2])
    assert torch.allclose(d["predicted_adj_mat"], maps.prob[2])
    assert d["positions"].shape == (10, 3)
    with pytest.raises(FileNotFoundError, match="positions"):
        tm.load_graph_pth(tmp_path / "missing.pth")
    bad = dict(d)
    del bad["ground_adj_mat"]
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(KeyError, match="ground_adj_mat"):
        tm.load_graph_pth(tmp_path / "bad.pth")
    bad = dict(d, path_length_mat=torch.zeros(3, 3))
    torch.save(bad, tmp_path / "bad2.pth")
    with pytest.raises(ValueError, match="path_length_mat must be N x N"):
        tm.load_graph_pth(tmp_path / "bad2.pth")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pth_reader_refuses_code(tmp_path):
    torch.save({"positions": _Evil()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="weights-only"):
        tm.load_graph_pth(tmp_path / "evil.pth")


# --- Bellman-Ford in the planner's skeleton (Eq. 4) ----------------------------------------
def test_hand_bellman_ford_equals_shortest_path(maps):
    w = _gt_weights(maps)
    for t in range(maps.n_nodes):
        bound, nxt = T.bellman_ford_planner(w, torch.full((len(maps),), t))
        ref = maps.path_len[:, :, t]
        assert torch.allclose(bound.nan_to_num(posinf=-1), ref.nan_to_num(posinf=-1), atol=1e-5)
        own = torch.arange(maps.n_nodes) == t
        assert torch.equal(nxt.masked_fill(own, -1), maps.next_hop[:, :, t])


def test_bellman_ford_rounds_are_relaxations():
    # a path 0-1-2-3: after k rounds only nodes within k hops of the target 3 have a bound
    w = torch.full((1, 4, 4), math.inf)
    for i in range(3):
        w[0, i, i + 1] = w[0, i + 1, i] = 1.0
    bound, _ = T.bellman_ford_planner(w, torch.tensor([3]), rounds=2)
    assert bound[0].tolist() == [math.inf, 2.0, 1.0, 0.0]


# --- symbolic baselines ----------------------------------------------------------------------
def test_threshold_zero_is_the_complete_graph_and_one_above_every_e_has_no_path(maps):
    assert torch.isfinite(T.threshold_weights(maps, 0.0)).all()
    tab = T.shortest_path_table(T.threshold_weights(maps, 1.01))
    assert bool((tab == -1).all())


def test_custom_cost_lambda_limits():
    g = torch.Generator().manual_seed(0)
    pos = torch.rand(1, 6, 2, generator=g, dtype=torch.float64)
    dist = (pos[:, :, None] - pos[:, None]).norm(dim=-1)
    prob = torch.rand(1, 6, 6, generator=g, dtype=torch.float64) * 0.9 + 0.05
    prob = torch.triu(prob, 1)
    prob = prob + prob.transpose(1, 2) + torch.eye(6, dtype=torch.float64)
    m = tm.TopoMaps(*(torch.zeros(1),) * 5, prob=prob, adj=dist < 0, dist=dist, path_len=dist,
                    next_hop=dist.long(), hops=dist.long())
    direct = T.shortest_path_table(T.custom_cost_weights(m, 0.0))
    eye = torch.eye(6, dtype=bool)
    assert torch.equal(direct[0], torch.arange(6).expand(6, 6).masked_fill(eye, -1))
    big = T.shortest_path_table(T.custom_cost_weights(m, 1e4))
    for s, t in itertools.permutations(range(6), 2):
        best = max((p for k in range(5) for p in itertools.permutations(set(range(6)) - {s, t}, k)),
                   key=lambda mid: np.prod([float(prob[0, a, b]) for a, b in
                                            zip((s,) + mid, mid + (t,))]))
        assert int(big[0, s, t]) == (best[0] if best else t)
    with pytest.raises(ValueError, match="lambda"):
        T.custom_cost_weights(m, -1.0)


# --- the planner -----------------------------------------------------------------------------
def test_gated_message_is_eq1_and_has_exact_gradients():
    torch.manual_seed(0)
    msg = T.GatedMessage(5, 3).double()
    n = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    out = msg(n)
    w1 = torch.cat([msg.w_i.weight[:3], msg.w_j.weight[:3]], 1)
    w2 = torch.cat([msg.w_i.weight[3:], msg.w_j.weight[3:]], 1)
    pair = torch.cat([n[:, :, None].expand(-1, -1, 4, -1), n[:, None].expand(-1, 4, -1, -1)], -1)
    ref = (pair @ w1.T + msg.w_i.bias[:3]) * torch.sigmoid(pair @ w2.T + msg.w_i.bias[3:])
    assert torch.allclose(out, ref)
    assert torch.autograd.gradcheck(msg, (n,))


@pytest.mark.parametrize("aggregation", ["gru", "mean"])
def test_planner_shapes_and_softmax(maps, aggregation):
    d = T.input_dim(10, 19, True, "probs")
    model = T.NeuralPlanner(d, 10, hidden=8, gru_layers=2, rounds=2, aggregation=aggregation)
    x = T.node_inputs(maps[:3], torch.tensor([0, 4, 9]), True, "probs")
    assert x.shape == (3, 10, d)
    logits = model(x)
    assert logits.shape == (3, 10, 10) and torch.isinf(logits.diagonal(0, 1, 2)).all()
    assert torch.allclose(torch.softmax(logits, -1).sum(-1), torch.ones(3, 10))
    loss = T.planner_loss(logits, maps[:3], torch.tensor([0, 4, 9]))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="B, 10"):
        model(x[..., :-1])
    with pytest.raises(ValueError, match="aggregation"):
        T.NeuralPlanner(d, 10, aggregation="max")


def test_node_inputs_errors(maps):
    with pytest.raises(ValueError, match="edges"):
        T.node_inputs(maps, torch.zeros(12, dtype=torch.long), edges="gt")
    with pytest.raises(ValueError, match="targets"):
        T.node_inputs(maps, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="keep_probs"):
        T.node_inputs(maps, torch.zeros(12, dtype=torch.long), edges="moddrop")


def test_loss_is_cross_entropy_on_the_gt_next_hop(maps):
    logits = torch.randn(2, 10, 10)
    t = torch.tensor([1, 2])
    labels = maps.next_hop[:2].gather(2, t.view(2, 1, 1).expand(2, 10, 1))[..., 0]
    valid = labels >= 0
    ref = torch.nn.functional.cross_entropy(logits[valid], labels[valid])
    assert torch.allclose(T.planner_loss(logits, maps[:2], t), ref)


# --- metrics and the schedule ----------------------------------------------------------------
def test_gt_table_scores_one_and_spl_closed_form(maps):
    assert T.next_hop_accuracy(maps.next_hop, maps) == 1.0
    assert abs(T.h_spl(maps.next_hop, maps) - 1.0) < 1e-6
    s = T.spl(torch.tensor([True, False, True]), torch.tensor([1.0, 1.0, 2.0]),
              torch.tensor([2.0, 1.0, 2.0]))
    assert abs(s - (0.5 + 0 + 1) / 3) < 1e-9
    with pytest.raises(ValueError, match="shape"):
        T.spl(torch.ones(2, dtype=bool), torch.ones(3), torch.ones(3))


def test_mod_drop_schedule_endpoints():
    assert T.mod_drop_probability(0) == 0.5
    assert T.mod_drop_probability(125) == 0.75
    assert T.mod_drop_probability(250) == 1.0 and T.mod_drop_probability(900) == 1.0
    with pytest.raises(ValueError):
        T.mod_drop_probability(-1)


def test_oracle_controller_reaches_targets(maps):
    res = T.hierarchical_rollouts(maps, "table", maps.next_hop, episodes=40, seed=0)
    assert res["success"] > 0.85 and 0 < res["SPL"] <= 1
    with pytest.raises(ValueError, match="planner"):
        T.hierarchical_rollouts(maps, "greedy")


def test_smoke_run_returns_every_key():
    res = T.run(T.Config.smoke())
    for key in ("sweep", "table1", "table2", "data_sizes", "history", "compare_acc", "compare_hspl",
                "compare_1b", "compare_t2", "compare_t2_spl", "findings", "best_symbolic"):
        assert key in res
    assert len(res["data_sizes"]) and res["findings"]["holds"].notna().all()
    key = "the hand-set skeleton (Eq. 4) equals the GT shortest-path lengths on every map"
    assert res["findings"].loc[key, "holds"]


def test_generator_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_nodes >= 2"):
        tm.generate(4, 1)
    with pytest.raises(ValueError, match="positions must be"):
        tm.node_redundancy(torch.zeros(4, 3), 0.1)
