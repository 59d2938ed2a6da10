"""Uncertain topological maps of procedural floor plans (the world of the E28 chapter,
``notebooks/eccv2020/topological_maps.ipynb``, Beeching et al., *Learning to Plan with Uncertain
Topological Maps*, ECCV 2020).

A map is the valued graph ``G = {V, E, L, D}`` of the paper's Sec. 3: ``N`` nodes at locations
``L`` in a unit-square apartment of 2 to 4 axis-aligned rectangular rooms joined by doors, node
features ``V`` standing for what a camera sees there, connection probabilities ``E`` from a noisy
line-of-sight classifier (``f_link`` of Sec. 3.3), Euclidean distances ``D``, and the ground-truth
adjacency ``E*`` (line of sight and closer than ``r_max``) that only training may read.

Everything is generated batched on the device from one ``torch.Generator``: the same seed gives
the same maps, bit for bit, on the same device. The graph algorithms (batched Floyd-Warshall with
next hops) live here too, since the labels (Dijkstra's next hops on ``E*``, Sec. 4) need them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

import torch

N_WALLS = 10          # 4 outer walls + 3 inner walls of 2 segments each (a door between them)
FAR = 10.0            # where an absent inner wall is parked (nothing in the unit square hits it)


@dataclass
class TopoMaps:
    """A batch of ``B`` uncertain topological maps of ``N`` nodes (every tensor on one device).

    ``walls (B, W, 4)`` segments ``x0, y0, x1, y1``; ``positions (B, N, 2)`` the locations ``L``;
    ``rooms (B, N)`` each node's room; ``scans (B, N, K)`` ray-cast depth in ``K`` directions,
    ``colours (B, N, 3)`` the noisy colour of the node's room (together the "visual" features
    ``V``); ``prob (B, N, N)`` the connection probabilities ``E`` (symmetric, diagonal 1);
    ``adj (B, N, N)`` the GT adjacency ``E*`` (bool, no self loops); ``dist (B, N, N)`` ``D``;
    ``path_len (B, N, N)`` GT shortest-path length in metres (``inf`` if unreachable);
    ``next_hop (B, N, N)`` ``[b, i, t]`` the next node from ``i`` towards target ``t`` on the GT
    shortest path (``-1`` if ``i == t`` or unreachable); ``hops (B, N, N)`` its number of edges.
    """

    walls: torch.Tensor
    positions: torch.Tensor
    rooms: torch.Tensor
    scans: torch.Tensor
    colours: torch.Tensor
    prob: torch.Tensor
    adj: torch.Tensor
    dist: torch.Tensor
    path_len: torch.Tensor
    next_hop: torch.Tensor
    hops: torch.Tensor

    def __len__(self) -> int:
        return self.positions.shape[0]

    @property
    def n_nodes(self) -> int:
        return self.positions.shape[1]

    @property
    def features(self) -> torch.Tensor:
        """The visual node features ``V`` as ``(B, N, K + 3)``: scan and room colour."""
        return torch.cat([self.scans, self.colours], -1)

    def __getitem__(self, idx) -> "TopoMaps":
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return TopoMaps(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def to(self, device) -> "TopoMaps":
        return TopoMaps(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


# ---------------------------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------------------------
def _cross(ax, ay, bx, by):
    return ax * by - ay * bx


def segments_cross(p: torch.Tensor, q: torch.Tensor, walls: torch.Tensor) -> torch.Tensor:
    """Whether segment ``p -> q`` properly crosses any wall: ``p, q (..., 2)``,
    ``walls (..., W, 4)`` broadcastable to ``p``'s leading dims; returns bool ``(...)``."""
    px, py, qx, qy = p[..., None, 0], p[..., None, 1], q[..., None, 0], q[..., None, 1]
    ax, ay, bx, by = walls.unbind(-1)
    d1 = _cross(bx - ax, by - ay, px - ax, py - ay)
    d2 = _cross(bx - ax, by - ay, qx - ax, qy - ay)
    d3 = _cross(qx - px, qy - py, ax - px, ay - py)
    d4 = _cross(qx - px, qy - py, bx - px, by - py)
    return ((d1 * d2 < 0) & (d3 * d4 < 0)).any(-1)


def ray_cast(origins: torch.Tensor, angles: torch.Tensor, walls: torch.Tensor) -> torch.Tensor:
    """Distance from each origin ``(B, N, 2)`` along each direction ``angles (K,)`` to the nearest
    wall of ``walls (B, W, 4)``: ``(B, N, K)`` (the synthetic panoramic depth scan)."""
    ux, uy = torch.cos(angles), torch.sin(angles)                                  # (K,)
    ox, oy = origins[..., 0, None, None], origins[..., 1, None, None]             # (B, N, 1, 1)
    w = walls[:, None, None]                                                       # (B, 1, 1, W, 4)
    ax, ay, bx, by = w.unbind(-1)
    ex, ey = bx - ax, by - ay
    ux, uy = ux[:, None], uy[:, None]                                              # (K, 1)
    den = _cross(ux, uy, ex, ey)
    safe = torch.where(den.abs() < 1e-12, torch.ones_like(den), den)
    t = _cross(ax - ox, ay - oy, ex, ey) / safe
    s = _cross(ax - ox, ay - oy, ux, uy) / safe
    hit = (den.abs() >= 1e-12) & (t > 0) & (s >= 0) & (s <= 1)
    return torch.where(hit, t, torch.full_like(t, math.inf)).amin(-1)


# ---------------------------------------------------------------------------------------------
# graph algorithms (batched, on the device)
# ---------------------------------------------------------------------------------------------
def floyd_warshall(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All-pairs shortest paths on dense weights ``(..., N, N)`` (``inf`` = no edge, diagonal
    ignored, weights >= 0): returns ``(dist, next_hop)``, ``next_hop[..., i, j]`` the first node
    after ``i`` on a shortest ``i -> j`` path (``-1`` if ``i == j`` or unreachable)."""
    if weights.ndim < 2 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"weights must be (..., N, N), got {tuple(weights.shape)}")
    if bool((weights < 0).any()):
        raise ValueError("floyd_warshall needs non-negative weights (inf for no edge)")
    n = weights.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=weights.device)
    d = torch.where(eye, torch.zeros_like(weights), weights)
    cols = torch.arange(n, device=weights.device).expand_as(d)
    nxt = torch.where(torch.isfinite(d) & ~eye, cols, torch.full_like(cols, -1))
    for k in range(n):
        via = d[..., :, k, None] + d[..., None, k, :]
        better = via < d
        d = torch.where(better, via, d)
        nxt = torch.where(better, nxt[..., :, k, None].expand_as(nxt), nxt)
    return d, nxt


def hop_counts(next_hop: torch.Tensor) -> torch.Tensor:
    """Number of edges on the path that ``next_hop (..., N, N)`` encodes from ``i`` to ``t``
    (``0`` on the diagonal, ``-1`` if unreachable or the table loops)."""
    n = next_hop.shape[-1]
    targets = torch.arange(n, device=next_hop.device).expand_as(next_hop)
    cur = torch.arange(n, device=next_hop.device)[:, None].expand_as(next_hop).clone()
    hops = torch.zeros_like(next_hop)
    done = cur == targets
    for _ in range(n):
        step = _rows(next_hop, cur, targets)
        alive = ~done & (cur >= 0)
        cur = torch.where(alive, step, cur)
        hops = hops + alive.long()
        done = done | (cur == targets)
    return torch.where(done, hops, torch.full_like(hops, -1))


def _rows(table: torch.Tensor, cur: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``table[..., cur[..., i, t], t]`` for each ``(i, t)``: one step of every walk at once."""
    flat = table.flatten(-2)
    idx = cur.clamp(min=0) * table.shape[-1] + targets
    out = flat.gather(-1, idx.flatten(-2)).view_as(cur)
    return torch.where(cur >= 0, out, torch.full_like(out, -1))


# ---------------------------------------------------------------------------------------------
# the generator
# ---------------------------------------------------------------------------------------------
def _u(gen, shape, lo, hi, device):
    return lo + (hi - lo) * torch.rand(shape, generator=gen, device=device)


def floor_plans(n: int, gen: torch.Generator, device, door: float = 0.16):
    """``n`` apartments: a vertical wall at ``x = a`` with one door, and on each side (with
    probability 0.75) a horizontal wall with one door. Returns ``walls (n, 10, 4)`` and the room
    rectangles ``(n, 4, 4)`` as ``x0, y0, x1, y1`` (zero height where a wall is absent)."""
    a = _u(gen, (n,), 0.35, 0.65, device)
    yd = _u(gen, (n,), 0.2, 0.8, device)
    present = torch.rand((n, 2), generator=gen, device=device) < 0.75
    b = torch.where(present, _u(gen, (n, 2), 0.35, 0.65, device), torch.ones(n, 2, device=device))
    u = torch.rand((n, 2), generator=gen, device=device)
    xd = torch.stack([0.1 + u[:, 0] * (a - 0.2), a + 0.1 + u[:, 1] * (0.8 - a)], 1)  # door centres
    z, o = torch.zeros(n, device=device), torch.ones(n, device=device)
    h = door / 2
    segs = [torch.stack(s, 1) for s in (
        (z, z, o, z), (o, z, o, o), (o, o, z, o), (z, o, z, z),                # outer walls
        (a, z, a, yd - h), (a, yd + h, a, o),                         # vertical wall + door
        (z, b[:, 0], xd[:, 0] - h, b[:, 0]), (xd[:, 0] + h, b[:, 0], a, b[:, 0]),
        (a, b[:, 1], xd[:, 1] - h, b[:, 1]), (xd[:, 1] + h, b[:, 1], o, b[:, 1]))]
    walls = torch.stack(segs, 1)
    for k, side in ((6, 0), (8, 1)):                                            # park absent walls
        walls[:, k:k + 2] = torch.where(present[:, side, None, None], walls[:, k:k + 2],
                                        torch.full_like(walls[:, k:k + 2], FAR))
    rooms = torch.stack([torch.stack(r, 1) for r in (
        (z, z, a, b[:, 0]), (z, b[:, 0], a, o), (a, z, o, b[:, 1]), (a, b[:, 1], o, o))], 1)
    return walls, rooms


def node_redundancy(positions: torch.Tensor, sigma: float) -> torch.Tensor:
    """``sum_j K(L_i, L_j)`` with the Gaussian kernel of Eq. (5), ``(..., N, 2) -> (..., N)``."""
    if positions.shape[-1] != 2:
        raise ValueError(f"positions must be (..., N, 2), got {tuple(positions.shape)}")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    d2 = (positions[..., :, None, :] - positions[..., None, :, :]).pow(2).sum(-1)
    return torch.exp(-d2 / (2 * sigma ** 2)).sum(-1)


def most_redundant_node(positions: torch.Tensor, sigma: float,
                        rule: str = "argmax") -> torch.Tensor:
    """The node Eq. (5) replaces, ``(..., N, 2) -> (...)``. The paper prints ``arg min`` but calls
    the node "the most redundant"; ``rule="argmax"`` (default) follows the words, ``"argmin"`` the
    printed formula (which would drop the most isolated node)."""
    if rule not in ("argmax", "argmin"):
        raise ValueError(f"rule must be 'argmax' or 'argmin', got {rule!r}")
    red = node_redundancy(positions, sigma)
    return red.argmax(-1) if rule == "argmax" else red.argmin(-1)


def _sample_in_rooms(rooms, k, gen, margin):
    n = rooms.shape[0]
    w = (rooms[..., 2] - rooms[..., 0] - 2 * margin).clamp(min=0)
    h = (rooms[..., 3] - rooms[..., 1] - 2 * margin).clamp(min=0)
    which = torch.multinomial(w * h, k, replacement=True, generator=gen)         # (n, k)
    r = rooms.gather(1, which[..., None].expand(n, k, 4))
    u = torch.rand((n, k, 2), generator=gen, device=rooms.device)
    x = r[..., 0] + margin + u[..., 0] * (r[..., 2] - r[..., 0] - 2 * margin)
    y = r[..., 1] + margin + u[..., 1] * (r[..., 3] - r[..., 1] - 2 * margin)
    return torch.stack([x, y], -1), which


def generate(n_maps: int, n_nodes: int = 16, seed: int = 0, device=None, r_max: float = 0.6,
             n_rays: int = 16, sigma: float = 0.15, p_false_negative: float = 0.35,
             p_false_positive: float = 0.5, scan_noise: float = 0.02, colour_noise: float = 0.08,
             prob_noise: float = 1.0, chunk: int = 4096) -> TopoMaps:
    """``n_maps`` uncertain topological maps of ``n_nodes`` nodes (all on ``device``).

    Nodes: a stream of ``3 N`` places visited by the exploration (uniform in the rooms, 3 cm from
    the walls); whenever the map holds ``N + 1`` nodes, the most redundant one by Eq. (5)
    (``argmax`` of the kernel sum, bandwidth ``sigma``) is dropped. ``E*``: line of sight and
    ``D < r_max``. ``E = sigmoid(mu + prob_noise * z)``: ``mu = 1.5`` on a true edge, except a
    false negative (probability ``p_false_negative``, ``mu = -1``); ``mu = -2`` on a non-edge,
    except a pair closer than ``r_max`` whose sight line a wall blocks, which reads as connected
    with probability ``p_false_positive`` (``mu = 1.5``). Visual features: a depth scan in
    ``n_rays`` directions and the colour of the node's room, both with Gaussian noise.
    """
    if n_maps < 1 or n_nodes < 2:
        raise ValueError(f"need n_maps >= 1 and n_nodes >= 2, got {n_maps}, {n_nodes}")
    device = torch.device(device or "cpu")
    gen = torch.Generator(device=device).manual_seed(int(seed))
    kw = dict(r_max=r_max, n_rays=n_rays, sigma=sigma, p_false_negative=p_false_negative,
              p_false_positive=p_false_positive, scan_noise=scan_noise, colour_noise=colour_noise,
              prob_noise=prob_noise)
    parts = [_generate(min(chunk, n_maps - s), n_nodes, gen, device, **kw)
             for s in range(0, n_maps, chunk)]
    if len(parts) == 1:
        return parts[0]
    return TopoMaps(**{f.name: torch.cat([getattr(p, f.name) for p in parts])
                       for f in fields(TopoMaps)})


def _generate(n_maps, n_nodes, gen, device, r_max, n_rays, sigma, p_false_negative,
              p_false_positive, scan_noise, colour_noise, prob_noise) -> TopoMaps:
    """One chunk of :func:`generate` from the running generator ``gen``."""
    walls, rooms = floor_plans(n_maps, gen, device)
    cand, which = _sample_in_rooms(rooms, 3 * n_nodes, gen, margin=0.03)
    keep, keep_room = cand[:, :n_nodes], which[:, :n_nodes]
    ar = torch.arange(n_maps, device=device)
    for c in range(n_nodes, 3 * n_nodes):                   # Eq. (5): drop the most redundant
        pool = torch.cat([keep, cand[:, c:c + 1]], 1)
        pool_room = torch.cat([keep_room, which[:, c:c + 1]], 1)
        drop = most_redundant_node(pool, sigma)
        mask = torch.ones(n_maps, n_nodes + 1, dtype=torch.bool, device=device)
        mask[ar, drop] = False
        keep = pool[mask].view(n_maps, n_nodes, 2)
        keep_room = pool_room[mask].view(n_maps, n_nodes)
    pos = keep
    dist = (pos[:, :, None] - pos[:, None]).norm(dim=-1)
    eye = torch.eye(n_nodes, dtype=torch.bool, device=device)
    blocked = segments_cross(pos[:, :, None].expand(-1, -1, n_nodes, -1),
                             pos[:, None].expand(-1, n_nodes, -1, -1), walls[:, None, None])
    near = (dist < r_max) & ~eye
    adj = near & ~blocked
    # uncertain connection probabilities: sampled on the upper triangle, mirrored
    z = torch.randn((n_maps, n_nodes, n_nodes), generator=gen, device=device)
    flip = torch.rand((n_maps, n_nodes, n_nodes), generator=gen, device=device)
    mu = torch.full_like(dist, -2.0)
    mu = torch.where(adj, torch.where(flip < p_false_negative, -1.0, 1.5), mu)
    mu = torch.where(near & blocked, torch.where(flip < p_false_positive, 1.5, -2.0), mu)
    prob = torch.sigmoid(mu + prob_noise * z)
    prob = torch.triu(prob, 1)
    prob = prob + prob.transpose(1, 2) + eye.float()
    # visual features
    angles = torch.arange(n_rays, device=device) * (2 * math.pi / n_rays)
    scans = ray_cast(pos, angles, walls)
    scans = scans + scan_noise * torch.randn(scans.shape, generator=gen, device=device)
    room_rgb = torch.rand((n_maps, 4, 3), generator=gen, device=device)
    colours = room_rgb.gather(1, keep_room[..., None].expand(-1, -1, 3))
    colours = colours + colour_noise * torch.randn(colours.shape, generator=gen, device=device)
    # labels: shortest paths on the GT graph weighted by D
    path_len, next_hop = floyd_warshall(torch.where(adj, dist, torch.full_like(dist, math.inf)))
    return TopoMaps(walls=walls, positions=pos, rooms=keep_room, scans=scans, colours=colours,
                    prob=prob, adj=adj, dist=dist, path_len=path_len, next_hop=next_hop,
                    hops=hop_counts(next_hop))


# ---------------------------------------------------------------------------------------------
# the official per-graph .pth format (github.com/edbeeching/learning_to_plan, graph_dataset.py)
# ---------------------------------------------------------------------------------------------
PTH_KEYS = ("positions", "features", "optimal_actions", "predicted_adj_mat", "ground_adj_mat",
            "global_distance_matrix", "path_length_mat")


def save_graph_pth(maps: TopoMaps, index: int, path: str | Path) -> Path:
    """Write map ``index`` as one official per-graph ``.pth`` dict (``positions`` N x 3 with a zero
    heading, ``features``, ``optimal_actions`` = next hops, ``predicted_adj_mat`` = ``E``,
    ``ground_adj_mat`` = ``E*``, ``global_distance_matrix`` = ``D``, ``path_length_mat``)."""
    m = maps[index].to("cpu")
    pos = torch.cat([m.positions[0], torch.zeros(m.n_nodes, 1)], 1)
    d = {"positions": pos, "features": m.features[0], "optimal_actions": m.next_hop[0],
         "predicted_adj_mat": m.prob[0], "ground_adj_mat": m.adj[0].float(),
         "global_distance_matrix": m.dist[0], "path_length_mat": m.path_len[0]}
    path = Path(path)
    torch.save(d, path)
    return path


def load_graph_pth(path: str | Path) -> dict[str, torch.Tensor]:
    """Read one official per-graph ``.pth`` dict (``torch.load(weights_only=True)``: tensors only,
    no code), check its keys and shapes, and return it. Raises a clear error naming the expected
    layout for a missing file, a missing key or a shape that disagrees with ``positions``."""
    path = Path(path)
    layout = ("a torch-saved dict with keys " + ", ".join(PTH_KEYS) +
              " (positions N x 3, features N x K, the five matrices N x N)")
    if not path.is_file():
        raise FileNotFoundError(f"no graph file at {path}; expected {layout}")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # an unpickling error names what the restricted loader refused
        raise ValueError(f"{path} is not a weights-only torch file ({err}); "
                         f"expected {layout}") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path} holds a {type(d).__name__}; expected {layout}")
    missing = [k for k in PTH_KEYS if k not in d]
    if missing:
        raise KeyError(f"{path} lacks {missing}; expected {layout}")
    pos = d["positions"]
    if not torch.is_tensor(pos) or pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"{path}: positions must be N x 3 (x, y, angle), got "
                         f"{tuple(pos.shape) if torch.is_tensor(pos) else type(pos).__name__}")
    n = pos.shape[0]
    if d["features"].ndim != 2 or d["features"].shape[0] != n:
        raise ValueError(f"{path}: features must be N x K with N = {n}, "
                         f"got {tuple(d['features'].shape)}")
    for k in PTH_KEYS[2:]:
        if tuple(d[k].shape) != (n, n):
            raise ValueError(f"{path}: {k} must be N x N = {n} x {n}, got {tuple(d[k].shape)}")
    return d
