"""The 3-D shape world's ground-truth checks (the world's chapter, not a paper).

The shared ground of the 3-D shape chapters (SIZER, LIMP, SoftPoolNet, Mask2CAD, PointMixup,
ShapeGF, Convolutional Occupancy Networks, PointContrast): :mod:`cvtutor.data.shapes3d` builds
shapes whose geometry is known exactly, :mod:`cvtutor.metrics.pointsets` measures point sets and
:mod:`cvtutor.nn.pointnets` holds the point networks. :func:`run` computes the checks that the
chapter asserts:

(1) samples on the zero set   max |SDF(x)| over area-uniform surface samples x
(2) occupancy                 Monte Carlo volume of {SDF < 0} against the closed-form volume
(3) areas                     closed form / quadrature against a fine trimesh of the primitive
(4) unions                    samples on the union's zero set, none buried inside another part
(5) scans                     a sphere (radius r) scanned from (0, 0, D) keeps exactly z > r²/D,
                              a visible share of (1 - r/D)/2 of its area
(6) metrics                   F-score(X, X) = 1, Chamfer and EMD grow with the noise,
                              EMD ≥ Chamfer-L1
(7) meshes                    heat-method geodesics on a bent sheet against the closed form
(8) learnability              a plain PointNet trained on the ten categories (random turns about
                              the up axis, jitter) beats chance on shapes it has not seen
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch

from cvtutor import report
from cvtutor.data.shapes3d import meshes as M
from cvtutor.data.shapes3d import primitives as P
from cvtutor.data.shapes3d import shapes as S
from cvtutor.data.shapes3d import transforms as T
from cvtutor.metrics import pointsets as ps
from cvtutor.nn.pointnets import PointNet
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import fit, minibatches

PAPER: dict = {}  # a world chapter: no paper numbers

#: One parameter row per primitive type, the chapter's examples.
EXAMPLES = {
    "sphere": [0.5, 0, 0, 0, 0],
    "ellipsoid": [0.6, 0.4, 0.25, 0, 0],
    "box": [0.3, 0.2, 0.4, 0, 0],
    "cylinder": [0.3, 0.5, 0, 0, 0],
    "cone": [0.4, 0.1, 0.3, 0, 0],
    "torus": [0.5, 0.15, 0, 0, 0],
    "capsule": [0.2, 0.3, 0, 0, 0],
    "superquadric": [0.5, 0.4, 0.3, 0.5, 0.7],
}


@dataclass(frozen=True)
class Config(ProfileConfig):
    n_surface: int = 4000  # surface samples per primitive
    n_volume: int = 100_000  # Monte Carlo points per primitive
    n_per_class: int = 2
    n_points: int = 1024  # samples per category shape
    scan_size: int = 64
    n_rooms: int = 1
    sheet: tuple[int, int] = (17, 17)
    n_train_per_class: int = 24
    n_test_per_class: int = 10
    cls_points: int = 128
    widths: tuple[int, ...] = (32, 64, 128)
    steps: int = 120
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0
    device: str | None = None

    @classmethod
    def fast(cls) -> "Config":
        return cls()

    @classmethod
    def full(cls) -> "Config":
        return cls(
            n_surface=100_000,
            n_volume=4_000_000,
            n_per_class=32,
            n_points=4096,
            scan_size=256,
            n_rooms=8,
            sheet=(33, 33),
            n_train_per_class=400,
            n_test_per_class=100,
            cls_points=1024,
            widths=(64, 128, 256),
            steps=3000,
            batch_size=64,
            lr=1e-3,
        )

    @classmethod
    def smoke(cls) -> "Config":
        return cls.full().replace(
            n_surface=500,
            n_volume=20_000,
            n_per_class=1,
            n_points=256,
            scan_size=32,
            n_rooms=1,
            sheet=(9, 9),
            n_train_per_class=4,
            n_test_per_class=2,
            cls_points=128,
            widths=(16, 32),
            steps=10,
            batch_size=16,
        )


def _trimesh_area(name: str, c: list[float]) -> float | None:
    """The area of trimesh's own fine mesh of a primitive (None where trimesh builds none)."""
    import trimesh

    if name == "sphere":
        return trimesh.creation.icosphere(subdivisions=5, radius=c[0]).area
    if name == "box":
        return trimesh.creation.box(extents=[2 * c[0], 2 * c[1], 2 * c[2]]).area
    if name == "cylinder":
        return trimesh.creation.cylinder(radius=c[0], height=2 * c[1], sections=1024).area
    if name == "torus":
        return trimesh.creation.torus(
            major_radius=c[0], minor_radius=c[1], major_sections=256, minor_sections=256
        ).area
    if name == "capsule":
        return trimesh.creation.capsule(height=2 * c[1], radius=c[0], count=[256, 256]).area
    return None


def primitive_checks(config: Config, device) -> pd.DataFrame:
    """Checks (1)–(3) per primitive type, in float64."""
    g = torch.Generator(device=device).manual_seed(config.seed)
    rows = []
    for name, row in EXAMPLES.items():
        t = P.TYPE_ID[name]
        types = torch.full((config.n_surface,), t, device=device)
        params = torch.tensor(row, dtype=torch.float64, device=device).expand(config.n_surface, 5)
        pts, _, _ = P.sample_surface(types, params.contiguous(), g)
        one_t, one_p = types[:1], params[:1]
        q = (
            torch.rand(1, config.n_volume, 3, generator=g, device=device, dtype=torch.float64) * 2
            - 1
        )
        occ = P.occupancy(one_t, one_p, q).double().mean().item()
        vol = P.volume(one_t, one_p).item()
        rows.append(
            {
                "primitive": name,
                "max |sdf| on samples": P.sdf(one_t, one_p, pts[None]).abs().max().item(),
                "volume": vol,
                "volume (Monte Carlo)": 8 * occ,
                "MC standard error": 8 * math.sqrt(occ * (1 - occ) / config.n_volume),
                "area": P.area(one_t, one_p).item(),
                "area (trimesh)": _trimesh_area(name, row),
            }
        )
    return pd.DataFrame(rows)


def category_checks(config: Config, device) -> tuple[pd.DataFrame, S.ShapeBatch, dict]:
    """Check (4) on ``n_per_class`` shapes of each category: worst |SDF| of the samples and the
    share of samples whose inward offset (1e-4 along the normal) is inside and outward is outside.
    """
    g = torch.Generator(device=device).manual_seed(config.seed + 1)
    shapes = S.make_classes(config.n_per_class, g, device)
    smp = shapes.sample(config.n_points, g)
    d = shapes.sdf(smp["points"]).abs().amax(1)
    inner = shapes.occupancy(smp["points"] - 1e-4 * smp["normals"]).float().mean(1)
    outer = (~shapes.occupancy(smp["points"] + 1e-4 * smp["normals"])).float().mean(1)
    df = pd.DataFrame(
        {
            "category": [S.CATEGORIES[i] for i in shapes.label.tolist()],
            "max |sdf|": d.cpu(),
            "inward inside": inner.cpu(),
            "outward outside": outer.cpu(),
            "parts": [len(S.PARTS[S.CATEGORIES[i]]) for i in shapes.label.tolist()],
        }
    )
    df = df.groupby("category", sort=False).agg(
        {"max |sdf|": "max", "inward inside": "min", "outward outside": "min", "parts": "first"}
    )
    return df.reset_index(), shapes, smp


def scan_checks(config: Config, device) -> dict:
    """Check (5): the visible cap of a sphere, and two views of a chair with their overlap."""
    g = torch.Generator(device=device).manual_seed(config.seed + 2)
    r, D, n = 0.5, 2.0, 20 * config.n_points
    pts, nrm, _ = P.sample_surface(
        torch.zeros(n, dtype=torch.long, device=device),
        torch.tensor([r, 0, 0, 0, 0.0], device=device).expand(n, 5).contiguous(),
        g,
    )
    out = T.scan(
        pts[None], nrm[None], torch.tensor([[0.0, 0, D]], device=device), size=config.scan_size
    )
    vis = out["visible"][0]
    chair = S.make_category("chair", 1, g, device)
    smp = chair.sample(4 * config.n_points, g)
    eyes = torch.tensor([[1.6, -1.2, 0.8], [-1.4, -1.4, 0.6]], device=device)
    views = [T.scan(smp["points"], smp["normals"], e[None], size=config.scan_size) for e in eyes]
    ov = T.overlap(views[0]["visible"], views[1]["visible"])
    return {
        "sphere_min_z": pts[vis, 2].min().item(),
        "sphere_bound": r * r / D,
        "sphere_visible_share": vis.float().mean().item(),
        "sphere_share_closed_form": (1 - r / D) / 2,
        "sphere_n": n,
        "chair": chair,
        "chair_samples": smp,
        "views": views,
        "eyes": eyes,
        "overlap": {k: v.item() for k, v in ov.items() if k != "both"},
    }


def metric_checks(config: Config, device) -> pd.DataFrame:
    """Check (6): Chamfer-L1, EMD and F-score of a shape's samples against noisy copies."""
    g = torch.Generator(device=device).manual_seed(config.seed + 3)
    shape = S.make_category("airplane", 1, g, device)
    n = min(config.n_points, 512)
    a = shape.sample(n, g)["points"]
    b = shape.sample(n, g)["points"]
    rows = []
    for sigma in (0.0, 0.005, 0.01, 0.02, 0.04):
        noisy = b + sigma * torch.randn(b.shape, generator=g, device=device)
        rows.append(
            {
                "noise σ": sigma,
                "Chamfer-L1": ps.chamfer_l1(a, noisy).item(),
                "EMD": float(ps.emd_exact(a.cpu(), noisy.cpu())[0]),
                "F-score@0.01": ps.fscore(a, noisy, 0.01)["fscore"].item(),
                "F-score(X, X)": ps.fscore(a, a, 0.01)["fscore"].item(),
            }
        )
    return pd.DataFrame(rows)


def mesh_checks(config: Config, device) -> dict:
    """Check (7): a sheet bent by an exact isometry; heat-method and Dijkstra distances from a
    corner against the flat (closed-form) geodesic distance."""
    g = torch.Generator(device=device).manual_seed(config.seed + 4)
    rows, cols = config.sheet
    sheet = M.grid_sheet(rows, cols, 1.0, 1.0, device=device, dtype=torch.float64)
    curv = M.random_bends(1, g, pieces=3, max_curvature=4.0, device=device, dtype=torch.float64)
    verts = M.bend(sheet["uv"][None], curv, 1.0)
    exact = torch.cdist(sheet["uv"], sheet["uv"][:1])[:, 0]
    heat = M.heat_geodesic(verts, sheet["faces"], torch.tensor([0], device=device))[0, :, 0]
    dij = M.dijkstra(verts[0], sheet["faces"], [0])[0]
    far = exact > 0.2
    rel = lambda d: ((d - exact).abs()[far] / exact[far]).mean().item()  # noqa: E731
    # a mesh edge is the chord of an arc of its flat length d: shorter by at most κ²d³/24
    edge = M.edge_lengths(verts, sheet["faces"])
    flat_edge = M.edge_lengths(sheet["uv_3d"][None], sheet["faces"])
    bound = (curv.abs().max() ** 2 * flat_edge**3 / 24).max().item()
    return {
        "verts": verts[0],
        "faces": sheet["faces"],
        "uv": sheet["uv"],
        "exact": exact,
        "heat": heat,
        "dijkstra": dij,
        "heat_rel_error": rel(heat),
        "dijkstra_rel_error": rel(torch.as_tensor(dij, device=device)),
        "edge_deficit": (flat_edge - edge).max().item(),
        "edge_deficit_bound": bound,
        "edge_excess": (edge - flat_edge).max().item(),
    }


def room_checks(config: Config, device) -> dict:
    """Rooms: exact union samples and their semantic classes."""
    g = torch.Generator(device=device).manual_seed(config.seed + 5)
    rooms = S.make_rooms(config.n_rooms, g, device)
    smp = rooms.sample(4 * config.n_points, g)
    return {
        "rooms": rooms,
        "samples": smp,
        "max_sdf": rooms.sdf(smp["points"]).abs().max().item(),
        "objects": [
            int(rooms.instance[i][rooms.valid[i]].unique().numel() - 5) for i in range(len(rooms))
        ],
    }


def classification_data(config: Config, device) -> dict[str, torch.Tensor]:
    """Train and test clouds of the ten categories (different seeds, so different shapes):
    ``x_train (n, N, 3)``, ``y_train (n,)``, ``x_test``, ``y_test``."""
    out = {}
    for split, n, seed in (
        ("train", config.n_train_per_class, 10),
        ("test", config.n_test_per_class, 11),
    ):
        g = torch.Generator(device=device).manual_seed(config.seed * 100 + seed)
        shapes = S.make_classes(n, g, device)
        x = shapes.sample(config.cls_points, g)["points"]
        x = T.rotate(x, T.random_rotation(len(x), g, mode="up"))
        out[f"x_{split}"], out[f"y_{split}"] = x, shapes.label
    return out


def train_classifier(config: Config, device, progress: bool = False) -> dict:
    """Check (8): a plain PointNet on the ten categories, Adam on the cross-entropy through
    :func:`cvtutor.train.fit`; each batch gets a fresh turn about z and jitter."""
    data = classification_data(config, device)
    seed_everything(config.seed)
    model = PointNet(len(S.CATEGORIES), config.widths, head=config.widths[-1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    batches = minibatches(
        data["x_train"], data["y_train"], batch_size=config.batch_size, seed=config.seed
    )
    g = torch.Generator(device=device).manual_seed(config.seed + 7)

    def loss_fn(models, batch, step):
        x, y = batch
        x = T.jitter(T.rotate(x, T.random_rotation(len(x), g, mode="up")), g)
        return {"loss": torch.nn.functional.cross_entropy(models["model"](x).float(), y)}

    hist = fit(model, opt, batches, loss_fn, steps=config.steps, progress=progress, desc="PointNet")
    model.eval()
    with torch.no_grad():
        pred = model(data["x_test"]).argmax(1)
    model.train()
    acc = (pred == data["y_test"]).float().mean().item()
    conf = pd.crosstab(
        pd.Series([S.CATEGORIES[i] for i in data["y_test"].tolist()], name="true"),
        pd.Series([S.CATEGORIES[i] for i in pred.tolist()], name="predicted"),
    )
    return {
        "history": hist,
        "test_accuracy": acc,
        "chance": 1 / len(S.CATEGORIES),
        "confusion": conf,
        "n_test": len(pred),
    }


def findings(res: dict) -> pd.DataFrame:
    """The chapter's findings, each with its kind, from the pieces of a run."""
    prim, cat, scan, met, mesh = (
        res["primitives"],
        res["categories"],
        res["scan"],
        res["metrics"],
        res["mesh"],
    )
    cls = res["classifier"]
    mc_ok = (
        (prim["volume"] - prim["volume (Monte Carlo)"]).abs()
        <= 4 * prim["MC standard error"] + 1e-9
    ).all()
    tri = prim.dropna(subset=["area (trimesh)"])
    area_err = ((tri["area"] - tri["area (trimesh)"]).abs() / tri["area (trimesh)"]).max()
    mono = met["Chamfer-L1"].is_monotonic_increasing and met["EMD"].is_monotonic_increasing
    return report.claims_table(
        {
            "primitive surface samples lie on the SDF's zero set (|SDF| < 1e-5)": (
                "sanity check",
                bool(prim["max |sdf| on samples"].max() < 1e-5),
                f"worst {prim['max |sdf| on samples'].max():.1e}",
            ),
            "occupancy volumes match the closed forms (within 4 Monte Carlo standard errors)": (
                "sanity check",
                bool(mc_ok),
            ),
            "areas match trimesh's fine meshes (relative error < 1e-3)": (
                "sanity check",
                bool(area_err < 1e-3),
                f"worst {area_err:.1e}",
            ),
            "union samples lie on the union's zero set, none buried in a joint": (
                "construction",
                bool(
                    (cat["max |sdf|"] < 1e-5).all()
                    and (cat["inward inside"] > 0.98).all()
                    and (cat["outward outside"] > 0.98).all()
                ),
            ),
            "a sphere scanned from +z keeps only z > r²/D": (
                "sanity check",
                bool(scan["sphere_min_z"] > scan["sphere_bound"] - 1e-6),
                f"min z {scan['sphere_min_z']:.3f}, r²/D = {scan['sphere_bound']:.3f}",
            ),
            "the scanned share of the sphere matches (1 - r/D)/2 (±0.02)": (
                "sanity check",
                bool(abs(scan["sphere_visible_share"] - scan["sphere_share_closed_form"]) < 0.02),
                f"{scan['sphere_visible_share']:.3f} vs {scan['sphere_share_closed_form']:.3f}",
            ),
            "F-score(X, X) = 1; Chamfer-L1 and EMD grow with the noise": (
                "sanity check",
                bool((met["F-score(X, X)"] == 1).all() and mono),
            ),
            "EMD ≥ Chamfer-L1 (a bijection is one choice of nearest neighbours)": (
                "sanity check",
                bool((met["EMD"] >= met["Chamfer-L1"] - 1e-9).all()),
            ),
            "bent edges are chords of arcs of their flat length "
            "(never longer, short by ≤ κ²d³/24)": (
                "construction",
                bool(
                    mesh["edge_excess"] < 1e-9
                    and mesh["edge_deficit"] <= mesh["edge_deficit_bound"] + 1e-12
                ),
                f"deficit {mesh['edge_deficit']:.1e} ≤ {mesh['edge_deficit_bound']:.1e}",
            ),
            "heat-method geodesics are within 5 % of the closed form on the bent sheet": (
                "sanity check",
                bool(mesh["heat_rel_error"] < 0.05),
                f"mean relative error {mesh['heat_rel_error']:.1%}",
            ),
            "a plain PointNet tells the ten categories apart on unseen shapes "
            "(accuracy > 2 × chance)": (
                "sanity check",
                bool(cls["test_accuracy"] > 2 * cls["chance"]),
                f"{cls['test_accuracy']:.0%} on {cls['n_test']} shapes, chance {cls['chance']:.0%}",
            ),
        }
    )


def checks(config: Config, progress: bool = False) -> dict:
    """All checks, with the tensors and shape batches the chapter's figures draw: DataFrames
    ``primitives``, ``categories``, ``metrics``; dicts ``scan``, ``mesh``, ``rooms``,
    ``classifier``; ``findings``."""
    device = get_device(config.device)
    prim = primitive_checks(config, device)
    cat, shapes, smp = category_checks(config, device)
    res = {
        "primitives": prim,
        "categories": cat,
        "shapes": shapes,
        "samples": smp,
        "scan": scan_checks(config, device),
        "metrics": metric_checks(config, device),
        "mesh": mesh_checks(config, device),
        "rooms": room_checks(config, device),
        "classifier": train_classifier(config, device, progress),
    }
    res["findings"] = findings(res)
    return res


def run(config: Config) -> dict:
    """:func:`checks`, reduced to what a results file stores (:func:`summary`)."""
    return summary(checks(config))


def summary(res: dict) -> dict:
    """The storable part of a run: tables and numbers (no tensors)."""
    scalar = (int, float, str, bool)
    return {
        "primitives": res["primitives"],
        "categories": res["categories"],
        "metrics": res["metrics"],
        "scan": {k: v for k, v in res["scan"].items() if isinstance(v, scalar)}
        | {"overlap": res["scan"]["overlap"]},
        "mesh": {k: v for k, v in res["mesh"].items() if isinstance(v, scalar)},
        "rooms": {"max_sdf": res["rooms"]["max_sdf"], "objects": res["rooms"]["objects"]},
        "classifier": {
            "history": res["classifier"]["history"],
            "confusion": res["classifier"]["confusion"],
            "test_accuracy": res["classifier"]["test_accuracy"],
        },
        "findings": res["findings"],
    }
