"""Graphic-design layouts ("banner ads") with their ground-truth relation graphs, and readers of
the RICO semantic and PubLayNet (COCO JSON) layout formats.

The world of E29, *Neural Design Network* (notebooks/eccv2020/neural_design_network.ipynb).

A layout is up to ``N`` components on a unit canvas, each a category (:data:`CATEGORIES`; index 0
is the canvas itself) and a box ``(x, y, w, h)`` (top-left corner, y downwards). The generator
picks one of six templates (a left or right image column with text beside it, a hero image on
top, a background image with centred text, a stacked left column, a title above an image), keeps
its required slots and each optional slot with probability ``p_optional``, jitters sizes and
positions while keeping slots that share a guide line left-, centre- or right-aligned, and puts
the components in a random order (the placement order of the paper's iterative generator).

The relation graph of Sec. 3.1 is *complete*: node 0 is the canvas, nodes ``1..N`` the
components, and every pair ``i < j`` (:func:`pairs`) carries one location and one size relation.
Canvas edges ``(0, j)`` carry *unary* relations (where ``j`` sits on the canvas, how large it is);
the others *binary* relations. Location relations are mutually exclusive and resolved by the
paper's priority (Sec. 4.1): above/below before left/right, then around/inside, then overlap.
Every relation set has an ``unknown`` class (index 0) for partial graphs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

CATEGORIES = ("canvas", "image", "logo", "title", "text", "button", "roi")
BINARY_LOC = ("above", "below", "left", "right", "around", "inside", "overlap")
UNARY_LOC = (
    "top-left",
    "top",
    "top-right",
    "middle-left",
    "centre",
    "middle-right",
    "bottom-left",
    "bottom",
    "bottom-right",
)
LOC_RELATIONS = ("unknown",) + BINARY_LOC + UNARY_LOC
BINARY_SIZE = ("smaller", "equal", "bigger")
UNARY_SIZE = ("small", "medium", "large")
SIZE_RELATIONS = ("unknown",) + BINARY_SIZE + UNARY_SIZE
#: the inverse of each location / size relation: (i, r, j) <=> (j, INVERSE[r], i)
LOC_INVERSE = torch.tensor([0, 2, 1, 4, 3, 6, 5, 7] + list(range(8, 17)))
SIZE_INVERSE = torch.tensor([0, 3, 2, 1, 4, 5, 6])

# template slots: (category, alignment 0 left / 1 centre / 2 right, anchor x, y, w, h, optional)
_L, _C, _R = 0, 1, 2
TEMPLATES = {
    "image left, text right": [
        (1, _C, 0.25, 0.13, 0.40, 0.77, 0),
        (2, _C, 0.25, 0.03, 0.12, 0.07, 0),
        (6, _C, 0.25, 0.35, 0.20, 0.25, 1),
        (3, _L, 0.52, 0.12, 0.42, 0.12, 0),
        (4, _L, 0.52, 0.30, 0.40, 0.18, 0),
        (4, _L, 0.52, 0.52, 0.30, 0.10, 1),
        (5, _L, 0.52, 0.74, 0.22, 0.10, 0),
    ],
    "image right, text left": [
        (1, _C, 0.75, 0.13, 0.40, 0.77, 0),
        (2, _C, 0.75, 0.03, 0.12, 0.07, 0),
        (6, _C, 0.75, 0.35, 0.20, 0.25, 1),
        (3, _L, 0.05, 0.12, 0.42, 0.12, 0),
        (4, _L, 0.05, 0.30, 0.40, 0.18, 0),
        (4, _L, 0.05, 0.52, 0.30, 0.10, 1),
        (5, _L, 0.05, 0.74, 0.22, 0.10, 0),
    ],
    "hero image on top": [
        (1, _C, 0.50, 0.05, 0.90, 0.45, 0),
        (2, _C, 0.50, 0.08, 0.12, 0.07, 1),
        (3, _C, 0.50, 0.55, 0.60, 0.10, 0),
        (4, _C, 0.50, 0.68, 0.70, 0.08, 1),
        (5, _C, 0.50, 0.82, 0.30, 0.10, 0),
    ],
    "background image, centred text": [
        (1, _L, 0.00, 0.00, 1.0, 1.0, 0),
        (3, _C, 0.50, 0.25, 0.70, 0.12, 0),
        (4, _C, 0.50, 0.42, 0.60, 0.10, 0),
        (5, _C, 0.50, 0.62, 0.30, 0.10, 0),
        (2, _C, 0.50, 0.82, 0.14, 0.08, 1),
    ],
    "stacked left column": [
        (2, _L, 0.06, 0.06, 0.14, 0.16, 0),
        (3, _L, 0.06, 0.28, 0.50, 0.14, 0),
        (4, _L, 0.06, 0.48, 0.45, 0.12, 1),
        (5, _L, 0.06, 0.68, 0.22, 0.14, 0),
    ],
    "title above image": [
        (3, _C, 0.50, 0.05, 0.80, 0.10, 0),
        (1, _C, 0.50, 0.20, 0.80, 0.48, 0),
        (6, _C, 0.50, 0.30, 0.30, 0.25, 1),
        (4, _C, 0.50, 0.72, 0.70, 0.08, 0),
        (5, _C, 0.50, 0.85, 0.30, 0.09, 1),
        (2, _L, 0.10, 0.88, 0.10, 0.06, 1),
    ],
}
MAX_COMPONENTS = 7


def _template_tensor() -> torch.Tensor:
    """``(T, MAX_COMPONENTS, 8)``: the slots' fields plus a last column 1 where a slot exists."""
    out = torch.zeros(len(TEMPLATES), MAX_COMPONENTS, 8)
    for t, slots in enumerate(TEMPLATES.values()):
        for s, slot in enumerate(slots):
            out[t, s, :7] = torch.tensor(slot, dtype=torch.float32)
            out[t, s, 7] = 1
    return out


def generate_layouts(
    n: int,
    seed: int = 0,
    device: torch.device | str | None = None,
    jitter: float = 0.02,
    p_optional: float = 0.6,
) -> dict[str, torch.Tensor]:
    """``n`` layouts, batched on ``device``; bit-identical for a seed on a device.

    Returns ``labels`` (n, N) long (category 1..6, 0 where absent), ``boxes`` (n, N, 4) float
    ``(x, y, w, h)``, ``mask`` (n, N) bool, and ``template`` (n,) long; present components come
    first, in a random order. Sizes are jittered by ``N(0, jitter)``, every slot's y by half of it,
    and each template's guide lines by one shift per layout, so aligned slots stay aligned.
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of layouts, got {n}")
    device = torch.device(device or "cpu")
    g = torch.Generator(device=device).manual_seed(int(seed))
    tpl = _template_tensor().to(device)
    t = torch.randint(0, len(TEMPLATES), (n,), generator=g, device=device)
    slots = tpl[t]  # (n, N, 8)
    cat, align, anchor, y, w, h, opt, exists = slots.unbind(-1)
    keep = (exists > 0) & (
        (opt == 0) | (torch.rand(n, MAX_COMPONENTS, generator=g, device=device) < p_optional)
    )
    noise = torch.randn(n, MAX_COMPONENTS, 3, generator=g, device=device) * jitter
    shift = torch.randn(n, 1, generator=g, device=device) * jitter  # the guide lines move together
    w = (w + noise[..., 0]).clamp(0.03, 1.0)
    h = (h + noise[..., 1]).clamp(0.03, 1.0)
    y = (y + 0.5 * noise[..., 2]).clamp(min=0.0)
    y = torch.minimum(y, 1.0 - h)
    full = w >= 0.999  # a full-canvas background stays put
    a = anchor + torch.where(full, torch.zeros_like(shift), shift)
    x = torch.where(align == _L, a, torch.where(align == _C, a - w / 2, a - w))
    x = torch.minimum(x.clamp(min=0.0), 1.0 - w)
    boxes = torch.stack([x, y, w, h], -1) * keep[..., None]  # absent slots: zero boxes
    order = torch.argsort(
        torch.rand(n, MAX_COMPONENTS, generator=g, device=device) + 2.0 * (~keep), dim=1
    )
    labels = torch.where(keep, cat.long(), torch.zeros_like(cat.long()))
    take = order[..., None].expand(-1, -1, 4)
    return {
        "labels": labels.gather(1, order),
        "boxes": boxes.gather(1, take),
        "mask": keep.gather(1, order),
        "template": t,
    }


# ---------------------------------------------------------------------------------------------
# the relation graph (Sec. 3.1)
# ---------------------------------------------------------------------------------------------
def pairs(
    n_nodes: int, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Subject and object node indices ``(E,)`` of every pair ``i < j`` of ``n_nodes`` nodes."""
    s, o = torch.triu_indices(n_nodes, n_nodes, offset=1, device=device)
    return s, o


def location_relation(a: torch.Tensor, b: torch.Tensor, tol: float = 0.01) -> torch.Tensor:
    """The binary location relation of ``a`` to ``b`` (boxes ``(..., 4)``), an index into
    :data:`LOC_RELATIONS`: above and below first, then left and right (Sec. 4.1's priority), then
    around (``a`` contains ``b``), inside, and overlap when none holds."""
    ax, ay, aw, ah = a.unbind(-1)
    bx, by, bw, bh = b.unbind(-1)
    conds = [
        ay + ah <= by + tol,
        ay >= by + bh - tol,
        ax + aw <= bx + tol,
        ax >= bx + bw - tol,
        (ax <= bx + tol)
        & (ay <= by + tol)
        & (ax + aw >= bx + bw - tol)
        & (ay + ah >= by + bh - tol),
        (bx <= ax + tol)
        & (by <= ay + tol)
        & (bx + bw >= ax + aw - tol)
        & (by + bh >= ay + ah - tol),
    ]
    rel = torch.full(ax.shape, 7, dtype=torch.long, device=a.device)
    for k in reversed(range(len(conds))):  # the first true condition wins
        rel = torch.where(conds[k], torch.full_like(rel, k + 1), rel)
    return rel


def canvas_location(b: torch.Tensor) -> torch.Tensor:
    """Where a box's centre sits on the canvas, on a 3 x 3 grid: an index into
    :data:`LOC_RELATIONS` (``8 + 3 row + column``)."""
    cx = b[..., 0] + b[..., 2] / 2
    cy = b[..., 1] + b[..., 3] / 2
    col = (cx * 3).floor().clamp(0, 2).long()
    row = (cy * 3).floor().clamp(0, 2).long()
    return 1 + len(BINARY_LOC) + 3 * row + col


def size_relation(a: torch.Tensor, b: torch.Tensor, ratio: float = 1.2) -> torch.Tensor:
    """``a`` smaller / equal / bigger than ``b`` by area (equal within a factor ``ratio``)."""
    r = (a[..., 2] * a[..., 3]) / (b[..., 2] * b[..., 3]).clamp(min=1e-9)
    return torch.where(r < 1 / ratio, 1, torch.where(r > ratio, 3, 2)).long()


def canvas_size(b: torch.Tensor, bins: tuple[float, float] = (0.05, 0.2)) -> torch.Tensor:
    """Unary size of a box: small (area < bins[0]), medium, large (area >= bins[1])."""
    area = b[..., 2] * b[..., 3]
    return 4 + (area >= bins[0]).long() + (area >= bins[1]).long()


def layout_graph(
    labels: torch.Tensor, boxes: torch.Tensor, mask: torch.Tensor, tol: float = 0.01
) -> dict[str, torch.Tensor]:
    """The complete relation graph ``G`` of layouts (Sec. 3.1), with the canvas as node 0.

    In: ``labels`` (B, N), ``boxes`` (B, N, 4), ``mask`` (B, N). Out: ``nodes`` (B, N+1) categories,
    ``node_mask`` (B, N+1), ``boxes`` (B, N+1, 4) with the canvas box (0, 0, 1, 1), ``loc`` and
    ``size`` (B, E) relation indices of the pairs :func:`pairs` (``E = (N+1) N / 2``), ``edge_mask``
    (B, E) where both ends exist, and ``unary`` (E,) True on canvas edges.
    """
    _check_layouts(labels, boxes, mask)
    b, n = labels.shape
    dev = boxes.device
    nodes = torch.cat([torch.zeros(b, 1, dtype=torch.long, device=dev), labels.long()], 1)
    node_mask = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=dev), mask.bool()], 1)
    canvas = torch.tensor([0.0, 0.0, 1.0, 1.0], device=dev, dtype=boxes.dtype).expand(b, 1, 4)
    allb = torch.cat([canvas, boxes], 1)
    s, o = pairs(n + 1, dev)
    bs, bo = allb[:, s], allb[:, o]
    unary = s == 0
    loc = torch.where(unary, canvas_location(bo), location_relation(bs, bo, tol))
    size = torch.where(unary, canvas_size(bo), size_relation(bs, bo))
    edge_mask = node_mask[:, s] & node_mask[:, o]
    zero = torch.zeros_like(loc)
    return {
        "nodes": nodes,
        "node_mask": node_mask,
        "boxes": allb,
        "loc": torch.where(edge_mask, loc, zero),
        "size": torch.where(edge_mask, size, zero),
        "edge_mask": edge_mask,
        "unary": unary,
    }


def partial_graph(
    graph: Mapping[str, torch.Tensor],
    keep: float | torch.Tensor | Mapping[str, float],
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """``G^p``: each relation set to ``unknown`` unless kept. ``keep`` is one probability, a
    per-graph tensor (B,), or ``{"size_unary", "size_binary", "loc_unary", "loc_binary"}``
    probabilities (Table 2's percentages of constraints given)."""
    loc, size, unary = graph["loc"], graph["size"], graph["unary"]
    if isinstance(keep, Mapping):
        need = {"size_unary", "size_binary", "loc_unary", "loc_binary"}
        if set(keep) != need:
            raise ValueError(f"keep must have the keys {sorted(need)}, got {sorted(keep)}")
        u = unary.float()
        pk_loc = (u * keep["loc_unary"] + (1 - u) * keep["loc_binary"]).expand_as(loc)
        pk_size = (u * keep["size_unary"] + (1 - u) * keep["size_binary"]).expand_as(loc)
    else:
        k = torch.as_tensor(keep, dtype=torch.float32, device=loc.device)
        if k.ndim == 1:
            k = k[:, None]
        pk_loc = pk_size = k.expand_as(loc)
    u1 = torch.rand(loc.shape, generator=generator, device=loc.device)
    u2 = torch.rand(loc.shape, generator=generator, device=loc.device)
    out = dict(graph)
    out["loc"] = torch.where(u1 < pk_loc, loc, torch.zeros_like(loc))
    out["size"] = torch.where(u2 < pk_size, size, torch.zeros_like(size))
    return out


def constraint_consistency(
    given: Mapping[str, torch.Tensor], boxes: torch.Tensor
) -> tuple[float, int]:
    """Table 4: the share of the given (not unknown) relations of ``given`` that the layouts
    ``boxes`` (B, N, 4, components only) satisfy, and how many relations were given."""
    g = layout_graph(given["nodes"][:, 1:], boxes, given["node_mask"][:, 1:])
    sel_l = (given["loc"] > 0) & given["edge_mask"]
    sel_s = (given["size"] > 0) & given["edge_mask"]
    ok = (g["loc"] == given["loc"])[sel_l].sum() + (g["size"] == given["size"])[sel_s].sum()
    total = int(sel_l.sum() + sel_s.sum())
    return (float(ok) / total if total else float("nan")), total


def alignment(boxes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. (10) per layout: ``sum_i min_{j != i} min(l, m, r)`` with ``l, m, r`` the distances of
    the left edges, centres and right edges of components ``i`` and ``j`` (x only). ``(B,)``;
    the metric is its mean over layouts. Layouts with one component score 0."""
    _check_layouts(torch.zeros(mask.shape, dtype=torch.long, device=mask.device), boxes, mask)
    x, w = boxes[..., 0], boxes[..., 2]
    left, mid, right = x, x + w / 2, x + w
    d = torch.stack([(v[:, :, None] - v[:, None, :]).abs() for v in (left, mid, right)]).amin(0)
    n = mask.shape[1]
    pair_ok = (
        mask[:, :, None] & mask[:, None, :] & ~torch.eye(n, dtype=torch.bool, device=mask.device)
    )
    d = torch.where(pair_ok, d, torch.full_like(d, float("inf"))).amin(2)
    has = pair_ok.any(2)
    return torch.where(has, d, torch.zeros_like(d)).sum(1)


def _check_layouts(labels: torch.Tensor, boxes: torch.Tensor, mask: torch.Tensor) -> None:
    if labels.ndim != 2 or boxes.shape != (*labels.shape, 4) or mask.shape != labels.shape:
        raise ValueError(
            f"expected labels (B, N), boxes (B, N, 4) and mask (B, N); got "
            f"{tuple(labels.shape)}, {tuple(boxes.shape)} and {tuple(mask.shape)}"
        )


# ---------------------------------------------------------------------------------------------
# real formats
# ---------------------------------------------------------------------------------------------
RICO_CLASSES = (
    "Toolbar",
    "Image",
    "Text",
    "Icon",
    "Text Button",
    "Input",
    "List Item",
    "Advertisement",
    "Pager Indicator",
    "Web View",
    "Background Image",
    "Drawer",
    "Modal",
)


def _pack(
    items: Sequence[list[tuple[int, list[float]]]], max_components: int
) -> dict[str, torch.Tensor]:
    b = len(items)
    labels = torch.zeros(b, max_components, dtype=torch.long)
    boxes = torch.zeros(b, max_components, 4)
    mask = torch.zeros(b, max_components, dtype=torch.bool)
    for i, comps in enumerate(items):
        for k, (lab, box) in enumerate(comps):
            labels[i, k], boxes[i, k], mask[i, k] = lab, torch.tensor(box), True
    return {"labels": labels, "boxes": boxes, "mask": mask}


def read_rico_semantic(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    classes: Sequence[str] = RICO_CLASSES,
    max_components: int = 9,
) -> dict:
    """Read RICO semantic-annotation JSON files (a folder of ``*.json`` or a list of files).

    Each file is one screen: a tree of nodes with ``bounds`` ``[x1, y1, x2, y2]`` (pixels),
    ``componentLabel`` and ``children``. The tree is flattened, components of ``classes`` are kept
    (label ``1 + index``), boxes are normalised by the root's bounds to ``(x, y, w, h)``, and, as in
    the paper (Sec. 4), screens with no kept component or more than ``max_components`` (< 10) are
    dropped. Returns the generator's format plus ``files`` (the screens kept) and ``classes``.
    """
    files = _json_files(paths, "RICO semantic annotations (one <screen id>.json per screen)")
    items, kept = [], []
    for f in files:
        root = _load_json(f)
        if not isinstance(root, dict) or "bounds" not in root:
            raise ValueError(
                f"{f}: a RICO semantic file is a JSON object with 'bounds' [x1, y1, x2, y2] "
                "and 'children'"
            )
        x1, y1, x2, y2 = (float(v) for v in root["bounds"])
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"{f}: the root's bounds {root['bounds']} are empty")
        comps, stack = [], list(root.get("children", []))
        while stack:
            node = stack.pop(0)
            if not isinstance(node, dict):
                raise ValueError(
                    f"{f}: every child must be a JSON object, got {type(node).__name__}"
                )
            stack.extend(node.get("children", []))
            lab = node.get("componentLabel")
            if lab in classes:
                a, b, c, d = (float(v) for v in node["bounds"])
                comps.append(
                    (
                        1 + classes.index(lab),
                        [
                            (a - x1) / (x2 - x1),
                            (b - y1) / (y2 - y1),
                            (c - a) / (x2 - x1),
                            (d - b) / (y2 - y1),
                        ],
                    )
                )
        if 0 < len(comps) <= max_components:
            items.append(comps)
            kept.append(str(f))
    return {**_pack(items, max_components), "files": kept, "classes": tuple(classes)}


def read_publaynet(path: str | os.PathLike, max_components: int = 9) -> dict:
    """Read a PubLayNet annotation file (COCO JSON: ``images`` with ``id``, ``width``, ``height``;
    ``annotations`` with ``image_id``, ``category_id``, ``bbox`` ``[x, y, w, h]`` in pixels;
    ``categories`` with ``id`` and ``name``). Boxes are normalised by the page size; pages with
    more than ``max_components`` elements are dropped. Labels are ``1 + `` the category's rank."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no PubLayNet annotation file at {path} (expected e.g. train.json, COCO format)"
        )
    data = _load_json(path)
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= set(data):
        raise ValueError(
            f"{path}: a COCO JSON object needs 'images', 'annotations' and 'categories'"
        )
    cats = sorted(data["categories"], key=lambda c: c["id"])
    rank = {c["id"]: i for i, c in enumerate(cats)}
    size = {im["id"]: (float(im["width"]), float(im["height"])) for im in data["images"]}
    per: dict = {im["id"]: [] for im in data["images"]}
    for a in data["annotations"]:
        if a["image_id"] not in size or a["category_id"] not in rank:
            raise ValueError(f"{path}: annotation {a.get('id')} names an unknown image or category")
        W, H = size[a["image_id"]]
        x, y, w, h = (float(v) for v in a["bbox"])
        per[a["image_id"]].append((1 + rank[a["category_id"]], [x / W, y / H, w / W, h / H]))
    ids = [i for i in per if 0 < len(per[i]) <= max_components]
    return {
        **_pack([per[i] for i in ids], max_components),
        "image_ids": ids,
        "classes": tuple(c["name"] for c in cats),
    }


def _json_files(paths, what: str) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        p = Path(paths)
        if p.is_dir():
            files = sorted(p.glob("*.json"))
        elif p.is_file():
            files = [p]
        else:
            raise FileNotFoundError(f"no {what} at {p}")
    else:
        files = [Path(f) for f in paths]
    if not files:
        raise FileNotFoundError(f"no .json files found: expected {what}")
    return files


def _load_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
