"""Convolutional Occupancy Networks (ConvONet).

Peng, Niemeyer, Mescheder, Pollefeys, Geiger. *Convolutional Occupancy Networks*. ECCV 2020,
LNCS 12348, pp. 523-540 (the book's chapter ``notebooks/eccv2020/conv_occupancy.ipynb``).

An implicit occupancy network decodes a query point ``p`` into the probability that it lies inside
the shape. ONet conditions the decoder on one global code ``c(x)`` of the input ``x``; ConvONet
conditions it on a *local* feature ``ψ(p, x)`` read from convolutional feature maps:

(1)     f_θ(p, ψ(p, x)) → [0, 1]                                  (the occupancy decoder)
        F[u] = mean_{k : π(x_k) = u} φ(x_k)                        (scatter-mean onto cells u)
        ψ(p) = Σ_planes Σ_corners w_c(p) U(F)[c],  w_c = Π_a (1 - |p_a - c_a|)   (bi/trilinear)
(2)     L = -[o log ô + (1 - o) log(1 - ô)]                         (BCE on uniform queries)

``φ`` is the local-pool PointNet and ``U`` a 2-D U-Net (shared by the planes) or a 3-D U-Net; both
live in :mod:`cvtutor.nn` (the 3-D shape world derives the encoder and the sampling). The scenes
come from the world's rooms (:func:`cvtutor.data.shapes3d.make_rooms`) and objects
(:func:`cvtutor.data.shapes3d.make_category`), with exact occupancy. Meshes are extracted by
marching cubes at the official test threshold 0.2 (instead of ONet's MISE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from cvtutor import report
from cvtutor.data.shapes3d import make_category, make_rooms
from cvtutor.data.shapes3d import meshes as M
from cvtutor.data.shapes3d import transforms as T
from cvtutor.data.shapes3d.shapes import CATEGORIES, ShapeBatch
from cvtutor.metrics import pointsets as ps
from cvtutor.nn import pointnets as pn
from cvtutor.nn.pointnets import LocalPoolPointNet, OccupancyDecoder, PointNet
from cvtutor.nn.unet import UNet
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import fit
from cvtutor.viz.geometry import isosurface_mesh

#: Half side of the padded cube in which queries live (unit cube + the official padding 0.1).
HALF = 0.5 * 1.1
#: The official test threshold on the occupancy probability (configs ``test.threshold: 0.2``).
THRESHOLD = 0.2

# ---------------------------------------------------------------------------------------------
# the paper's numbers (Table 1 is an image in the source text: its numbers are not invented here)
# ---------------------------------------------------------------------------------------------
_T2 = ("iou", "chamfer", "nc", "fscore")
PAPER = {
    "table2": {  # ShapeNet voxel super-resolution from 32³ voxels, mean over 13 classes
        "ref": "Table 2",
        "rows": {
            "Input": dict(zip(_T2, (0.631, 0.136, 0.810, 0.440))),
            "ONet": dict(zip(_T2, (0.703, 0.110, 0.879, 0.656))),
            "Ours-2D (64²)": dict(zip(_T2, (0.652, 0.145, 0.861, 0.592))),
            "Ours-2D (3×64²)": dict(zip(_T2, (0.752, 0.092, 0.905, 0.735))),
            "Ours-3D (32³)": dict(zip(_T2, (0.752, 0.091, 0.912, 0.729))),
        },
        "gpu_gb": {"ONet": 4.8, "Ours-2D (64²)": 2.4, "Ours-2D (3×64²)": 4.0,
                   "Ours-3D (32³)": 10.8},
    },
    "table3": {  # synthetic rooms, 10,000 noisy points
        "ref": "Table 3",
        "rows": {
            "ONet": dict(zip(_T2, (0.475, 0.203, 0.783, 0.541))),
            "PointConv": dict(zip(_T2, (0.523, 0.165, 0.811, 0.790))),
            "Ours-2D (128²)": dict(zip(_T2, (0.795, 0.047, 0.889, 0.937))),
            "Ours-2D (3×128²)": dict(zip(_T2, (0.805, 0.044, 0.903, 0.948))),
            "Ours-3D (32³)": dict(zip(_T2, (0.782, 0.047, 0.902, 0.941))),
            "Ours-3D (64³)": dict(zip(_T2, (0.849, 0.042, 0.915, 0.964))),
            "Ours-2D-3D (3×128² + 32³)": dict(zip(_T2, (0.816, 0.044, 0.905, 0.952))),
        },
    },
    "table4b": {  # interpolation of the 3×128² planes on synthetic rooms (Chamfer not extracted)
        "ref": "Table 4b",
        "rows": {
            "nearest": {"iou": 0.766, "chamfer": math.nan, "nc": 0.885, "fscore": 0.920},
            "bilinear": {"iou": 0.805, "chamfer": math.nan, "nc": 0.903, "fscore": 0.948},
        },
    },
    "noise_std": {"paper text": 0.05, "official config": 0.005},  # Sec. 4.1 vs pointcloud_noise
}
METRICS = ("iou", "chamfer", "nc", "fscore")
HIGHER_BETTER = {"iou": True, "chamfer": False, "nc": True, "fscore": True}


# ---------------------------------------------------------------------------------------------
# the model: encoder (local-pool PointNet + U-Net), query, decoder (Eq. 1)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """One model of the tables: ``kind`` "onet" (global code), "planes" or "grid"; ``planes`` the
    canonical planes used; ``resolution`` of the planes/grid; U-Net ``depth``; ``interpolation``
    "bilinear" (trilinear for the grid) or "nearest"; ``paper_row`` the row it stands for."""

    name: str
    kind: str
    paper_row: str
    planes: tuple[str, ...] = ("xz", "xy", "yz")
    resolution: int = 32
    depth: int = 3
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.kind not in ("onet", "planes", "grid"):
            raise ValueError(f"Variant.kind must be 'onet', 'planes' or 'grid', got {self.kind!r}")
        if self.interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest', "
                             f"got {self.interpolation!r}")
        if self.kind != "onet" and self.resolution % 2 ** self.depth:
            raise ValueError(f"resolution {self.resolution} must be divisible by 2**depth "
                             f"= {2 ** self.depth} (the U-Net halves it depth times)")


def query_nearest(features: dict[str, torch.Tensor], p01: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour query (Table 4b's ablation): the feature of the cell each normalised
    query ``p01 (B, N, 3)`` falls into (the cell :func:`pn.cell_index` scatters it to), summed
    over the planes: ``(B, N, C)``."""
    out = 0
    for name, f in features.items():
        axes = (0, 1, 2) if name == "grid" else pn.PLANES[name]
        R = f.shape[-1]
        idx = pn.cell_index(p01, R, axes)  # (B, N)
        flat = f.flatten(2)  # (B, C, R^k)
        out = out + flat.gather(2, idx[:, None].expand(-1, flat.shape[1], -1)).transpose(1, 2)
    return out


class ConvolutionalEncoder(nn.Module):
    """ConvONet's encoder: the local-pool PointNet φ scatters point features onto the canonical
    planes (``(B, C, R, R)`` each) or a grid ``(B, C, R, R, R)`` by average pooling, then a U-Net
    (one 2-D U-Net shared by the planes, as in the official code, or a 3-D one) turns each map into
    the features ψ is interpolated from."""

    def __init__(self, variant: Variant, c_dim: int = 32, hidden: int = 32, blocks: int = 3,
                 unet_width: int = 8) -> None:
        super().__init__()
        if variant.kind == "onet":
            raise ValueError("ConvolutionalEncoder needs a 'planes' or 'grid' variant")
        self.variant = variant
        grid = variant.kind == "grid"
        self.pointnet = LocalPoolPointNet(c_dim=c_dim, hidden=hidden, blocks=blocks,
                                          resolution=variant.resolution,
                                          planes=variant.planes, grid=grid)
        self.unet = UNet(c_dim, c_dim, dims=3 if grid else 2, width=unet_width,
                         depth=variant.depth, norm="none")

    def forward(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        """``points (B, N, 3)`` → feature maps by plane name (or ``"grid"``)."""
        maps = self.pointnet(points)
        names = list(maps)
        if self.variant.kind == "planes":  # one batched pass of the shared 2-D U-Net
            out = self.unet(torch.cat([maps[n] for n in names])).chunk(len(names))
            return dict(zip(names, out))
        return {n: self.unet(maps[n]) for n in names}

    def query(self, features: dict[str, torch.Tensor], points: torch.Tensor) -> torch.Tensor:
        """ψ(p, x) at query ``points (B, N, 3)``: ``(B, N, c_dim)``, bilinear on each plane and
        summed (trilinear in the grid), or nearest-cell for ``interpolation="nearest"``."""
        if self.variant.interpolation == "nearest":
            return query_nearest(features, pn.normalize_coords(points, self.pointnet.padding))
        return self.pointnet.sample(features, points)


class ConvONet(nn.Module):
    """Eq. (1) with a local feature: ``logits (B, Q) = f_θ(p, ψ(p, x))``; ψ is added to the input
    of every ResNet block of the decoder (:class:`cvtutor.nn.pointnets.OccupancyDecoder`)."""

    def __init__(self, variant: Variant, c_dim: int = 32, hidden: int = 32,
                 enc_blocks: int = 3, dec_blocks: int = 3, unet_width: int = 8) -> None:
        super().__init__()
        self.encoder = ConvolutionalEncoder(variant, c_dim, hidden, enc_blocks, unet_width)
        self.decoder = OccupancyDecoder(c_dim=c_dim, hidden=hidden, blocks=dec_blocks)

    def forward(self, inputs: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        _check_pair(inputs, queries)
        feats = self.encoder(inputs)
        return self.decoder(queries, self.encoder.query(feats, queries))


class ONet(nn.Module):
    """The ONet baseline of Eq. (1) with a global code: a PointNet with a max over all points
    gives ``c(x)``, the same for every query, added to every decoder block (in place of ONet's
    conditional batch norm; the decoder is ConvONet's, so only the conditioning differs)."""

    def __init__(self, c_dim: int = 32, hidden: int = 32, dec_blocks: int = 3) -> None:
        super().__init__()
        self.encoder = PointNet(out_dim=c_dim, widths=(2 * hidden, 2 * hidden, 4 * hidden),
                                head=2 * hidden)
        self.decoder = OccupancyDecoder(c_dim=c_dim, hidden=hidden, blocks=dec_blocks)

    def forward(self, inputs: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        _check_pair(inputs, queries)
        c = self.encoder(inputs)[:, None].expand(-1, queries.shape[1], -1)
        return self.decoder(queries, c)


def _check_pair(inputs: torch.Tensor, queries: torch.Tensor) -> None:
    for name, x in (("inputs", inputs), ("queries", queries)):
        if x.ndim != 3 or x.shape[-1] != 3:
            raise ValueError(f"{name} must be (B, N, 3), got {tuple(x.shape)}")
    if len(inputs) != len(queries):
        raise ValueError(f"inputs and queries need the same batch, got {len(inputs)} and "
                         f"{len(queries)}")


def build(variant: Variant, config: "Config") -> nn.Module:
    """The network of a table row."""
    if variant.kind == "onet":
        return ONet(config.c_dim, config.hidden, config.dec_blocks)
    return ConvONet(variant, config.c_dim, config.hidden, config.enc_blocks, config.dec_blocks,
                    config.unet_width)


def occupancy_loss(logits: torch.Tensor, occupancy: torch.Tensor) -> torch.Tensor:
    """Eq. (2): the binary cross-entropy of the predicted occupancy ``σ(logits)`` against the
    labels ``occupancy`` (both ``(B, Q)``), averaged over the queries and the batch."""
    if logits.shape != occupancy.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and occupancy {tuple(occupancy.shape)} "
                         "must have the same shape")
    return nn.functional.binary_cross_entropy_with_logits(logits, occupancy.to(logits.dtype))


# ---------------------------------------------------------------------------------------------
# data: the world's rooms and objects in the unit cube, noisy surface points, uniform queries
# ---------------------------------------------------------------------------------------------
def make_shapes(kind: str, n: int, generator: torch.Generator, device,
                n_objects: tuple[int, int] = (3, 6)) -> ShapeBatch:
    """``n`` scenes of ``kind`` "rooms" (floor, four walls, ``n_objects`` furniture) or
    "objects" (one shape of a random category), normalised into the unit cube."""
    if kind == "rooms":
        return make_rooms(n, generator, device, n_objects=n_objects).normalized()
    if kind == "objects":
        cats = torch.randint(0, len(CATEGORIES), (n,), generator=generator, device=device)
        parts = [make_category(c, int((cats == i).sum()), generator, device)
                 for i, c in enumerate(CATEGORIES) if bool((cats == i).any())]
        return ShapeBatch.cat(parts)
    raise ValueError(f"kind must be 'rooms' or 'objects', got {kind!r}")


def uniform_queries(n: int, count: int, generator: torch.Generator, device) -> torch.Tensor:
    """``(n, count, 3)`` points uniform in the padded cube ``[-0.55, 0.55]³``."""
    u = torch.rand(n, count, 3, generator=generator, device=device)
    return (2 * u - 1) * HALF


def voxel_input(shapes: ShapeBatch, resolution: int, n_points: int,
                generator: torch.Generator) -> torch.Tensor:
    """Table 2's input: the ``resolution³`` voxelisation of each shape (occupancy at the voxel
    centres), given to the encoder as ``n_points`` voxel centres drawn from its occupied voxels
    (the paper feeds voxel centres as points to a one-layer 3-D CNN; see the notebook)."""
    occ = T.voxelize_occupancy(shapes.occupancy, len(shapes), resolution, device=shapes.device)
    w = occ.flatten(1).float()
    w = torch.where(w.sum(1, keepdim=True) > 0, w, torch.ones_like(w))
    idx = torch.multinomial(w, n_points, replacement=True, generator=generator)
    centres = T.grid_points(resolution, device=shapes.device)
    return centres[idx], occ


def make_data(kind: str, n: int, config: "Config", generator: torch.Generator, device,
              n_objects: tuple[int, int] | None = None, voxels: bool = False) -> dict:
    """Scenes with their encoder ``inputs (n, N, 3)`` (noisy surface points, σ =
    ``config.noise``, or voxel centres), training ``queries (n, Q, 3)`` with exact ``occupancy``,
    and the ``shapes`` themselves (for evaluation)."""
    shapes = make_shapes(kind, n, generator, device, n_objects or config.room_objects)
    if voxels:
        inputs, _ = voxel_input(shapes, config.voxel_resolution, config.n_points, generator)
    else:
        pts = shapes.sample(config.n_points, generator)["points"]
        noise = torch.randn(pts.shape, generator=generator, device=device)
        inputs = pts + config.noise * noise
    queries = uniform_queries(n, config.n_queries, generator, device)
    return {"inputs": inputs, "queries": queries, "occupancy": shapes.occupancy(queries),
            "shapes": shapes}


# ---------------------------------------------------------------------------------------------
# evaluation: volumetric IoU, marching cubes at 0.2, Chamfer-L1, normal consistency, F-score
# ---------------------------------------------------------------------------------------------
def volumetric_iou(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """ONet's volumetric IoU of boolean occupancies ``(B, Q)`` at uniform queries: ``(B,)``
    (1 where both are empty)."""
    if pred.shape != gt.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ in shape")
    pred, gt = pred.bool(), gt.bool()
    inter = (pred & gt).sum(-1).double()
    union = (pred | gt).sum(-1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), 1.0)


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor, queries: torch.Tensor,
            chunk: int = 8192) -> torch.Tensor:
    """Occupancy probabilities ``(B, Q)`` at ``queries``, in chunks of queries."""
    model.eval()
    out = [torch.sigmoid(model(inputs, queries[:, i:i + chunk]))
           for i in range(0, queries.shape[1], chunk)]
    model.train()
    return torch.cat(out, 1)


@torch.no_grad()
def extract_meshes(model: nn.Module, inputs: torch.Tensor, resolution: int,
                   threshold: float = THRESHOLD) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """The ``threshold`` level set of the predicted occupancy on a ``resolution³`` grid over the
    padded cube, by marching cubes (the stand-in for MISE): one ``(verts, faces)`` per scene, or
    ``None`` where the prediction never crosses the threshold."""
    grid = T.grid_points(resolution, -HALF, HALF, device=inputs.device)
    prob = predict(model, inputs, grid.expand(len(inputs), -1, 3))
    prob = prob.reshape(-1, resolution, resolution, resolution).cpu().numpy()
    out = []
    for p in prob:
        if p.max() <= threshold or p.min() >= threshold:
            out.append(None)
            continue
        out.append(isosurface_mesh(p, -HALF, HALF, level=threshold))
    return out


def mesh_metrics(meshes: list, shapes: ShapeBatch, n_points: int, tau: float,
                 generator: torch.Generator) -> pd.DataFrame:
    """Chamfer-L1, normal consistency and F-score at ``tau`` between ``n_points`` area-uniform
    samples of each predicted mesh and of the true surface (one row per scene; an empty mesh gets
    Chamfer and NC NaN, F-score 0, and ``empty`` True)."""
    if len(meshes) != len(shapes):
        raise ValueError(f"{len(meshes)} meshes for {len(shapes)} shapes")
    gt = shapes.sample(n_points, generator)
    rows = []
    for b, m in enumerate(meshes):
        if m is None:
            rows.append({"chamfer": math.nan, "nc": math.nan, "fscore": 0.0, "empty": True})
            continue
        v = torch.as_tensor(np.ascontiguousarray(m[0]), dtype=torch.float32,
                            device=shapes.device)[None]
        f = torch.as_tensor(np.ascontiguousarray(m[1]), dtype=torch.long, device=shapes.device)
        pts, face = M.sample_mesh_surface(v, f, n_points, generator)
        nrm = M.face_normals(v, f)[0][face[0]][None]
        g_p, g_n = gt["points"][b:b + 1], gt["normals"][b:b + 1]
        rows.append({
            "chamfer": float(ps.chamfer_l1(pts, g_p)),
            "nc": float(ps.normal_consistency(pts, nrm, g_p, g_n)),
            "fscore": float(ps.fscore(pts, g_p, tau)["fscore"]),
            "empty": False,
        })
    return pd.DataFrame(rows)


def evaluate(model: nn.Module, data: dict, config: "Config", generator: torch.Generator,
             meshes: bool = True) -> dict:
    """IoU on ``config.n_iou`` uniform queries per test scene and, with ``meshes``, the mesh
    metrics of the first ``config.n_mesh_eval`` scenes at ``config.mc_resolution``³."""
    shapes, inputs = data["shapes"], data["inputs"]
    q = uniform_queries(len(shapes), config.n_iou, generator, inputs.device)
    iou = volumetric_iou(predict(model, inputs, q) > THRESHOLD, shapes.occupancy(q))
    out = {"iou": float(iou.mean())}
    if meshes:
        k = min(config.n_mesh_eval, len(shapes))
        ms = extract_meshes(model, inputs[:k], config.mc_resolution)
        mm = mesh_metrics(ms, shapes[:k], config.n_surface_eval, config.tau, generator)
        out.update(chamfer=float(mm["chamfer"].mean()), nc=float(mm["nc"].mean()),
                   fscore=float(mm["fscore"].mean()), empty=int(mm["empty"].sum()))
    return out


# ---------------------------------------------------------------------------------------------
# the experiment
# ---------------------------------------------------------------------------------------------
def _room_variants(R2: int, d2: int, R3: int, d3: int, single: bool) -> tuple[Variant, ...]:
    vs = [Variant("ONet", "onet", "ONet")]
    if single:
        vs.append(Variant(f"Ours-2D ({R2}²)", "planes", "Ours-2D (128²)", ("xy",), R2, d2))
    vs += [Variant(f"Ours-2D (3×{R2}²)", "planes", "Ours-2D (3×128²)", resolution=R2, depth=d2),
           Variant(f"Ours-3D ({R3}³)", "grid", "Ours-3D (32³)", resolution=R3, depth=d3)]
    return tuple(vs)


@dataclass(frozen=True)
class Config(ProfileConfig):
    n_train: int = 80  # rooms generated per seed (on the fly, on the device)
    n_test: int = 10
    n_points: int = 512  # noisy input points per scene
    n_queries: int = 1024  # uniform training queries per scene
    noise: float = 0.005  # the official config's σ (the paper's text says 0.05)
    room_objects: tuple[int, int] = (3, 6)
    c_dim: int = 32
    hidden: int = 32
    enc_blocks: int = 3
    dec_blocks: int = 3
    unet_width: int = 8
    variants: tuple[Variant, ...] = _room_variants(32, 3, 16, 2, single=False)
    steps: int = 80
    batch_size: int = 4
    lr: float = 3e-3
    eval_every: int = 20  # validation IoU for the training-progression curve
    n_val: int = 8
    n_iou: int = 2048  # uniform queries per test scene for the IoU
    n_mesh_eval: int = 6
    mc_resolution: int = 32
    n_surface_eval: int = 1024
    tau: float = 0.01  # F-score threshold: 1 % of the unit cube's side
    nearest: bool = False  # Table 4b: the 3-plane model trained with nearest sampling
    objects: bool = False  # Table 2 (voxel super-resolution) on single objects
    voxel_resolution: int = 32
    object_variants: tuple[Variant, ...] = ()
    gen_objects: tuple[int, int] | None = None  # test rooms with more furniture than training
    seeds: tuple[int, ...] = (0,)
    device: str | None = None

    def __post_init__(self) -> None:
        if self.n_train < self.batch_size:
            raise ValueError(f"n_train ({self.n_train}) must be >= batch_size ({self.batch_size})")
        if not self.variants or self.variants[0].kind != "onet":
            raise ValueError("variants must start with the ONet baseline")

    @classmethod
    def fast(cls) -> "Config":
        """The issue's fast setting: rooms only, ONet, 3×32² planes and a 16³ grid."""
        return cls()

    @classmethod
    def full(cls) -> "Config":
        """Rooms with the paper's decoder (5 blocks, hidden 32), 1-plane and 3×64² planes (depth
        4), a 32³ grid, nearest vs bilinear (Table 4b), voxel super-resolution on objects
        (Table 2), generalisation to 5-object rooms, three seeds."""
        return cls(n_train=2000, n_test=50, n_points=3000, n_queries=2048, dec_blocks=5,
                   unet_width=32, variants=_room_variants(64, 4, 32, 3, single=True),
                   steps=1000, batch_size=32, lr=1e-3, eval_every=250, n_val=32,
                   n_iou=32768, n_mesh_eval=50, mc_resolution=64, n_surface_eval=10000,
                   room_objects=(2, 2), gen_objects=(5, 5), nearest=True, objects=True,
                   object_variants=(
                       Variant("ONet", "onet", "ONet"),
                       Variant("Ours-2D (64²)", "planes", "Ours-2D (64²)", ("xy",), 64, 4),
                       Variant("Ours-2D (3×64²)", "planes", "Ours-2D (3×64²)", resolution=64,
                               depth=4),
                       Variant("Ours-3D (32³)", "grid", "Ours-3D (32³)", resolution=32, depth=3)),
                   seeds=(0, 1, 2))

    @classmethod
    def smoke(cls) -> "Config":
        full = cls.full()
        return full.replace(
            n_train=8, n_test=3, n_points=64, n_queries=64, dec_blocks=2, unet_width=8,
            variants=_room_variants(8, 1, 4, 1, single=True), steps=3, batch_size=4,
            eval_every=2, n_val=2, n_iou=256, n_mesh_eval=2, mc_resolution=12,
            n_surface_eval=128, voxel_resolution=8, seeds=(0, 1),
            object_variants=tuple(v if v.kind == "onet" else
                                  Variant(v.name, v.kind, v.paper_row, v.planes,
                                          8 if v.kind == "planes" else 4, 1)
                                  for v in full.object_variants))


def train_model(variant: Variant, config: Config, data: dict, val: dict | None, seed: int,
                progress: bool = False) -> tuple[nn.Module, pd.DataFrame, pd.DataFrame]:
    """Train one row's network with Eq. (2) through :func:`cvtutor.train.fit`; returns the
    model, the loss history and the validation IoU every ``config.eval_every`` steps."""
    seed_everything(seed)
    device = data["inputs"].device
    model = build(variant, config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    n, B = len(data["inputs"]), config.batch_size
    g = torch.Generator(device=device).manual_seed(seed + 17)
    perm = torch.cat([torch.randperm(n, generator=g, device=device)
                      for _ in range(math.ceil(config.steps * B / n) + 1)])
    curve = []
    gv = torch.Generator(device=device).manual_seed(seed + 29)

    def batch(step: int):
        idx = perm[step * B:(step + 1) * B]
        return data["inputs"][idx], data["queries"][idx], data["occupancy"][idx]

    def loss_fn(models, b, step):
        x, q, o = b
        return {"loss": occupancy_loss(models["model"](x, q), o)}

    def callback(step, terms):
        if val is not None and ((step + 1) % config.eval_every == 0 or step + 1 == config.steps):
            curve.append({"step": step + 1, "iou": evaluate(model, val, config, gv, False)["iou"]})

    hist = fit(model, opt, batch, loss_fn, steps=config.steps, device=device,
               progress=progress, desc=variant.name, callback=callback)
    return model, hist, pd.DataFrame(curve)


def input_iou(data: dict, config: Config, generator: torch.Generator) -> float:
    """Table 2's "Input" row: the IoU of the coarse voxelisation itself (a query is inside when
    its voxel's centre is)."""
    shapes = data["shapes"]
    _, occ = voxel_input(shapes, config.voxel_resolution, 1, generator)
    q = uniform_queries(len(shapes), config.n_iou, generator, shapes.device)
    R = config.voxel_resolution
    ijk = ((q + 0.5) * R).floor().long()
    inside = ((ijk >= 0) & (ijk < R)).all(-1)
    flat = ((ijk[..., 0] * R + ijk[..., 1]) * R + ijk[..., 2]).clamp(0, R ** 3 - 1)
    pred = occ.flatten(1).gather(1, flat) & inside
    return float(volumetric_iou(pred, shapes.occupancy(q)).mean())


def mean_std(df: pd.DataFrame, by: str, cols) -> pd.DataFrame:
    """Mean and standard deviation (over seeds) of ``cols`` per ``by`` value, in first-seen
    order; columns ``<col>`` and ``<col>_std``."""
    g = df.groupby(by, sort=False)[list(cols)]
    m, s = g.mean(), g.std(ddof=1) if df["seed"].nunique() > 1 else g.mean() * np.nan
    return m.join(s.add_suffix("_std"))


def paper_vs_ours(table: str, ours: pd.DataFrame, row_of: dict[str, str]) -> pd.DataFrame:
    """Our mean metrics beside the paper's row each of ours stands for (``row_of``)."""
    rows = []
    for name, r in ours.iterrows():
        paper = PAPER[table]["rows"].get(row_of.get(name, name), {})
        row = {"model": name, "paper row": row_of.get(name, name)}
        for m in METRICS:
            if m in r:
                row[f"{m} (paper)"] = paper.get(m, math.nan)
                row[f"{m} (ours)"] = r[m]
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def _pm(df: pd.DataFrame, row: str, col: str) -> str:
    s = df.loc[row].get(f"{col}_std", math.nan)
    return f"{df.loc[row, col]:.3f}" + ("" if pd.isna(s) else f" ± {s:.3f}")


def run(config: Config, progress: bool = False) -> dict:
    """The whole miniature. Per seed: rooms (Table 3: ONet and the ConvONet variants, the
    training progression), in ``full`` also nearest sampling (Table 4b), generalisation to fuller
    rooms and voxel super-resolution on objects (Table 2). Returns the tables and ``findings``."""
    device = get_device(config.device)
    rows, curves, hists, t4, gen, t2 = [], [], [], [], [], []
    params, example = {}, None
    for seed in config.seeds:
        g = torch.Generator(device=device).manual_seed(1009 + seed)
        train = make_data("rooms", config.n_train, config, g, device)
        val = make_data("rooms", config.n_val, config, g, device)
        test = make_data("rooms", config.n_test, config, g, device)
        fuller = (make_data("rooms", config.n_test, config, g, device, config.gen_objects)
                  if config.gen_objects else None)
        models = {}
        for v in config.variants:
            model, h, c = train_model(v, config, train, val, seed, progress)
            models[v.name] = model
            params[v.name] = sum(p.numel() for p in model.parameters())
            hists.append(h.assign(model=v.name, seed=seed))
            curves.append(c.assign(model=v.name, seed=seed))
            rows.append({"model": v.name, "seed": seed, **evaluate(model, test, config, g)})
            if fuller is not None:
                base = evaluate(model, test, config, g, meshes=False)["iou"]
                gen.append({"model": v.name, "seed": seed, "iou (train-like)": base,
                            "iou (fuller rooms)": evaluate(model, fuller, config, g, False)["iou"]})
        if example is None:
            example = _example(models, test, config)
        if config.nearest:
            three = next(v for v in config.variants if v.kind == "planes" and len(v.planes) == 3)
            near = Variant(three.name, "planes", three.paper_row, three.planes, three.resolution,
                           three.depth, "nearest")
            model, h, _ = train_model(near, config, train, None, seed, progress)
            t4.append({"interpolation": "nearest", "seed": seed,
                       **evaluate(model, test, config, g)})
            t4.append({"interpolation": "bilinear", "seed": seed,
                       **next(r for r in rows if r["model"] == three.name and r["seed"] == seed
                              and "iou" in r)})
        if config.objects:
            otrain = make_data("objects", config.n_train, config, g, device, voxels=True)
            otest = make_data("objects", config.n_test, config, g, device, voxels=True)
            t2.append({"model": "Input", "seed": seed, "iou": input_iou(otest, config, g)})
            for v in config.object_variants:
                model, _, _ = train_model(v, config, otrain, None, seed, progress)
                t2.append({"model": v.name, "seed": seed, **evaluate(model, otest, config, g)})
    per_seed = pd.DataFrame(rows)
    table3 = mean_std(per_seed, "model", [m for m in (*METRICS, "empty") if m in per_seed])
    table3["params"] = [params[n] for n in table3.index]
    row_of = {v.name: v.paper_row for v in config.variants}
    out = {
        "per_seed": per_seed,
        "table3": table3,
        "table3_vs_paper": paper_vs_ours("table3", table3, row_of),
        "curves": pd.concat(curves, ignore_index=True),
        "history": pd.concat(hists, ignore_index=True),
        "example": example,
        "checks": closed_form_checks(),
    }
    if t4:
        t4df = pd.DataFrame(t4)
        out["table4b"] = mean_std(t4df, "interpolation", [m for m in METRICS if m in t4df])
        out["table4b_vs_paper"] = paper_vs_ours("table4b", out["table4b"], {})
    if gen:
        out["generalisation"] = mean_std(pd.DataFrame(gen), "model",
                                         ["iou (train-like)", "iou (fuller rooms)"])
    if t2:
        t2df = pd.DataFrame(t2)
        out["table2"] = mean_std(t2df, "model", [m for m in METRICS if m in t2df])
        out["table2_vs_paper"] = paper_vs_ours(
            "table2", out["table2"], {v.name: v.paper_row for v in config.object_variants})
    out["findings"] = findings(out, config)
    return out


def _example(models: dict, test: dict, config: Config) -> dict:
    """One test room for the figures: its input, its feature planes and each model's mesh."""
    x = test["inputs"][:1]
    meshes = {n: extract_meshes(m, x, config.mc_resolution)[0] for n, m in models.items()}
    gt = T.voxelize_occupancy(test["shapes"][:1].occupancy, 1, config.mc_resolution,
                              -HALF, HALF, device=x.device)[0].float().cpu().numpy()
    planes = next((m for m in models.values() if isinstance(m, ConvONet)
                   and m.encoder.variant.kind == "planes"), None)
    feats = None
    if planes is not None:
        with torch.no_grad():
            f = planes.encoder(x)
        feats = {k: v[0].cpu().numpy() for k, v in f.items()}
    return {"inputs": x[0].cpu().numpy(), "meshes": meshes, "gt_grid": gt, "features": feats}


def closed_form_checks() -> dict:
    """Hand-checkable identities of the pieces (asserted in the notebook and the tests)."""
    g = torch.Generator().manual_seed(0)
    # scatter-mean equals a per-cell loop; empty cells are 0
    feat = torch.randn(1, 50, 4, generator=g)
    idx = torch.randint(0, 16, (1, 50), generator=g)
    sm = pn.scatter_mean(feat, idx, 20)[0]
    loop = torch.stack([feat[0][idx[0] == u].mean(0) if (idx[0] == u).any()
                        else torch.zeros(4) for u in range(20)])
    # bilinear query of a linear ramp F[i, j] = a i + b j (cell centres at (i + ½)/R) is exact
    R, a, b = 8, 0.7, -1.3
    ii, jj = torch.meshgrid(torch.arange(R), torch.arange(R), indexing="ij")
    plane = (a * ii + b * jj).float()[None, None]
    p01 = 0.5 / R + torch.rand(1, 200, 3, generator=g) * (R - 1) / R  # inside the centres' hull
    got = pn.sample_plane_features(plane, p01, (0, 1))[0, :, 0]
    want = a * (p01[0, :, 0] * R - 0.5) + b * (p01[0, :, 1] * R - 0.5)
    # marching cubes of a sphere: area within 2 % of 4πr²
    r, res = 0.35, 64
    pts = T.grid_points(res, -HALF, HALF)
    sdf = (pts.norm(dim=-1) - r).reshape(res, res, res).numpy()
    v, f = isosurface_mesh(sdf, -HALF, HALF, level=0.0)
    area = float(M.face_areas(torch.tensor(v)[None].float(), torch.tensor(f.copy()).long()).sum())
    return {
        "scatter_mean_err": float((sm - loop).abs().max()),
        "ramp_err": float((got - want).abs().max()),
        "sphere_area_rel_err": abs(area / (4 * math.pi * r ** 2) - 1),
    }


def _num(x: float) -> str:
    return "no mesh" if math.isnan(x) else f"{x:.3f}"


def _below(a: float, b: float) -> bool:
    """``a < b`` where NaN (no mesh at all) is worse than any number."""
    return (not math.isnan(a)) and (math.isnan(b) or a < b)


def findings(out: dict, config: Config) -> pd.DataFrame:
    """The chapter's findings, each computed from the run (kinds as in :data:`report.KINDS`)."""
    t3, chk = out["table3"], out["checks"]
    names = [v.name for v in config.variants]
    conv = names[1:]
    onet = t3.loc["ONet", "iou"]
    best_gap = min(t3.loc[n, "iou"] for n in conv) - onet
    auc = out["curves"].groupby("model", sort=False)["iou"].mean()  # mean over the progression
    claims = {
        "every ConvONet variant beats ONet's IoU on rooms (Table 3)": (
            "paper claim", bool(best_gap > 0.05),
            f"smallest margin {best_gap:+.3f} (ONet {_pm(t3, 'ONet', 'iou')})"),
        "every ConvONet variant has a lower Chamfer-L1 than ONet on rooms (Table 3; no mesh "
        "counts as worse)": (
            "paper claim", bool(all(_below(t3.loc[n, "chamfer"], t3.loc["ONet", "chamfer"])
                                    for n in conv)),
            ", ".join(f"{n} {_num(t3.loc[n, 'chamfer'])}" for n in names)),
        "ConvONet's validation IoU is above ONet's over the training progression (faster "
        "convergence, Table 1's plot)": (
            "paper claim", bool(min(auc[n] for n in conv) > auc["ONet"]),
            "mean over the evaluations: " + ", ".join(f"{n} {auc[n]:.3f}" for n in names)),
        "scatter-mean equals the per-cell loop, empty cells 0": (
            "sanity check", chk["scatter_mean_err"] < 1e-6, f"max error {chk['scatter_mean_err']:.1e}"),
        "bilinear query is exact on a linear ramp": (
            "sanity check", chk["ramp_err"] < 1e-4, f"max error {chk['ramp_err']:.1e}"),
        "marching-cubes sphere area within 2 % of 4πr²": (
            "sanity check", chk["sphere_area_rel_err"] < 0.02,
            f"relative error {chk['sphere_area_rel_err']:.4f}"),
    }
    if "table4b" in out:
        t = out["table4b"]
        claims["bilinear beats nearest-neighbour sampling in IoU (Table 4b)"] = (
            "paper claim", bool(t.loc["bilinear", "iou"] > t.loc["nearest", "iou"]),
            f"bilinear {_pm(t, 'bilinear', 'iou')}, nearest {_pm(t, 'nearest', 'iou')}")
    if "generalisation" in out:
        gdf = out["generalisation"]
        drop = gdf["iou (train-like)"] - gdf["iou (fuller rooms)"]
        claims["ConvONet's IoU drops less than ONet's on rooms with more furniture than in "
               "training (translation equivariance)"] = (
            "paper claim", bool(all(drop[n] < drop["ONet"] for n in conv)),
            ", ".join(f"{n} {drop[n]:+.3f}" for n in names))
    if "table2" in out:
        t = out["table2"]
        single = next((v.name for v in config.object_variants
                       if v.kind == "planes" and len(v.planes) == 1), None)
        three = next(v.name for v in config.object_variants
                     if v.kind == "planes" and len(v.planes) == 3)
        grid = next(v.name for v in config.object_variants if v.kind == "grid")
        if single is not None:
            claims["a single plane fails on voxel input: below 3 planes and the grid "
                   "(Table 2, fragile)"] = (
                "paper claim",
                bool(t.loc[single, "iou"] < min(t.loc[three, "iou"], t.loc[grid, "iou"])),
                f"{single} {_pm(t, single, 'iou')}, {three} {_pm(t, three, 'iou')}, "
                f"{grid} {_pm(t, grid, 'iou')}")
        claims["3 planes and the grid improve on the voxel input's IoU (Table 2)"] = (
            "paper claim",
            bool(min(t.loc[three, "iou"], t.loc[grid, "iou"]) > t.loc["Input", "iou"]),
            f"input {t.loc['Input', 'iou']:.3f}")
    return report.claims_table(claims)
