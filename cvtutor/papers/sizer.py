"""SIZER: parsing 3-D clothing and learning size-sensitive clothing (ParserNet and SizerNet).

Tiwari, Bhatnagar, Tung, Pons-Moll. *SIZER: A Dataset and Model for Parsing 3D Clothing and
Learning Size Sensitive 3D Clothing*. ECCV 2020.

A single-layer registered mesh ``M = M(β, θ, D)`` (SMPL+D, Eqs. 1-2) of a clothed person is parsed
by **ParserNet** into garment meshes with a fixed template connectivity: every garment vertex is a
*convex combination* of input vertices in a fixed neighbourhood, with weights predicted from the
input (Eq. 6). **SizerNet** encodes a garment to a code, appends the body shape and the input and
output size labels, and decodes the garment in the new size as a displacement field on the garment
template ``T^g(β) = I^g T(β)`` (Eqs. 3, 7). The world: :mod:`cvtutor.data.shapes3d.garments`.

Equations
---------
(1)-(2) M(β, θ, D) = W(T(β, θ, D), J(β), θ, 𝒲),  T = T̄ + B_s(β) + B_p(θ) + D   (A-pose: θ = 0)
(3)     T^g(β, θ, 0) = I^g T(β, θ, 0),  G(β, θ, D^g) = W(T^g(β, θ, D^g), J(β), θ, 𝒲)
(5)     L_β = w_shape Σ_i σ_i (β̂_i - β_i)^2 + w_v ||M(β̂, θ, 0) - M(β, θ, D)||
(6)     G_i = Σ_{j ∈ N_i} W_ij M_j,   W_ij >= 0, Σ_j W_ij = 1   (row softmax)
(7)     x_gar = f_enc(G_in),  D^g = f_dec(β, x_gar, δ_in, δ_out)
(10)    L_3D = ||G_P - G_GT||_1
(11)    L_3D^body = ||w_geo^T · abs(G_P^s - I^s M)||_1
(12)    L_norm = (1/F) Σ_f (1 - N_GT,f · N_P,f)
(13)    L_lap = ||L^g G_GT - L^g G_P||_2
(14)    L_interp = Σ_{(i,j) ∈ C(B, G_P)} 1[d(G_P,j, G_GT,j) < d_tol] ReLU(-N_i · (G_P,j - B_i))
                   / m_g
(15)    L_w = Σ_i Σ_{j ∈ N_i} W_ij d(M_k, M_j),  k = argmax_j W_ij
Metrics (Sect. 5.2): V_err the mean per-vertex distance (mm), A_err the relative change of the
surface area (%).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from cvtutor import report
from cvtutor.data.shapes3d import meshes
from cvtutor.data.shapes3d.garments import GARMENTS, SIZE_SCALE, SIZES, GarmentWorld, split
from cvtutor.metrics import pointsets
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import fit, minibatches

MM = 1000.0  # the world is in metres; the paper reports millimetres


# ---------------------------------------------------------------------------------------------
# templates and neighbourhoods
# ---------------------------------------------------------------------------------------------
def garment_faces(world: GarmentWorld, garment: str, device=None) -> torch.Tensor:
    """The faces ``E^g (F_g, 3)`` of a garment template, indexed into its ``m_g`` vertices: the
    body's faces whose three vertices all belong to the garment (Eq. 3's sub-template)."""
    idx = world.garment_index(garment, device)
    faces = world.faces(device)
    inside = ((faces >= idx[0]) & (faces <= idx[-1])).all(1)
    return faces[inside] - idx[0]


def neighbourhoods(template: torch.Tensor, index: torch.Tensor, k: int) -> torch.Tensor:
    """``N_i``: the ``k`` input vertices nearest to each garment vertex ``index[i]`` on the mean
    template ``(V, 3)``, the vertex itself first (Sect. 4.5: fixed, |N_i| = 50 in the paper):
    ``(m_g, k)`` long."""
    if template.ndim != 2 or template.shape[1] != 3:
        raise ValueError(f"template must be (V, 3), got {tuple(template.shape)}")
    if not 1 <= k <= len(template):
        raise ValueError(f"k must be in [1, {len(template)}], got {k}")
    d = torch.cdist(template[index], template)
    d[torch.arange(len(index)), index] = -1.0  # the vertex itself first
    return d.topk(k, dim=1, largest=False).indices


def convex_combination(
    weights: torch.Tensor, mesh: torch.Tensor, nbr: torch.Tensor
) -> torch.Tensor:
    """Eq. (6): ``G_i = Σ_{j ∈ N_i} W_ij M_j``. ``weights (B, m_g, K)``, ``mesh (B, V, 3)``,
    ``nbr (m_g, K)`` → ``(B, m_g, 3)``, in float32 also under bf16 autocast."""
    if weights.ndim != 3 or weights.shape[1:] != nbr.shape:
        raise ValueError(
            f"weights must be (B, m_g, K) = (B, {tuple(nbr.shape)}), got {tuple(weights.shape)}"
        )
    if mesh.ndim != 3 or mesh.shape[-1] != 3 or len(mesh) != len(weights):
        raise ValueError(f"mesh must be (B, V, 3) with B = {len(weights)}, got {tuple(mesh.shape)}")
    with torch.autocast(device_type=mesh.device.type, enabled=False):  # mm on metres: no bf16
        dt = torch.promote_types(torch.promote_types(weights.dtype, mesh.dtype), torch.float32)
        return torch.einsum("bik,bikc->bic", weights.to(dt), mesh.to(dt)[:, nbr])


def indicator_weights(nbr: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``W = I^g`` written on the neighbourhoods: one-hot rows at each vertex's own index
    ``(m_g, K)`` (the ParserNet initialisation of Sect. 4.5, Fig. 3)."""
    return (nbr == index[:, None]).float()


# ---------------------------------------------------------------------------------------------
# losses (Sect. 4.4)
# ---------------------------------------------------------------------------------------------
def vertex_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """L_3D, Eq. (10): the L1 vertex error, averaged over coordinates (the paper's sum up to a
    constant factor folded into ``w_3D``)."""
    if pred.shape != gt.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must have the same shape"
        )
    return (pred.float() - gt.float()).abs().mean()


def body_vertex_loss(
    pred_skin: torch.Tensor, input_skin: torch.Tensor, w_geo: torch.Tensor
) -> torch.Tensor:
    """L_3D^body, Eq. (11): ``||w_geo^T · abs(G_P^s - I^s M)||_1`` per vertex, averaged:
    ``pred_skin, input_skin (B, m, 3)``, ``w_geo (m,)``."""
    if pred_skin.shape != input_skin.shape or w_geo.shape != pred_skin.shape[1:2]:
        raise ValueError(
            f"expected (B, m, 3) twice and w_geo (m,), got {tuple(pred_skin.shape)}, "
            f"{tuple(input_skin.shape)}, {tuple(w_geo.shape)}"
        )
    return (w_geo[None, :, None] * (pred_skin.float() - input_skin.float()).abs()).mean()


def normal_loss(
    pred: torch.Tensor, gt: torch.Tensor, faces: torch.Tensor, gt_faces: torch.Tensor | None = None
) -> torch.Tensor:
    """L_norm, Eq. (12): ``(1/F) Σ_f (1 - N_GT,f · N_P,f)`` over unit face normals (0 for equal
    meshes, 2 where the prediction's faces are flipped), averaged over the batch. ``gt_faces``: the
    ground truth's vertex order of the same triangles, if it differs from ``faces``."""
    n_p = meshes.face_normals(pred.float(), faces)
    n_g = meshes.face_normals(gt.float(), faces if gt_faces is None else gt_faces)
    return (1 - (n_p * n_g).sum(-1)).mean()


def laplacian_loss(pred: torch.Tensor, gt: torch.Tensor, lap: torch.Tensor) -> torch.Tensor:
    """L_lap, Eq. (13): ``||Δ_init - L^g G_P||_2`` with ``Δ_init = L^g G_GT``, the graph Laplacian
    ``lap (m, m)`` (:func:`cvtutor.data.shapes3d.meshes.graph_laplacian`); the L2 norm per vertex,
    averaged (translation-invariant: the rows of ``L^g`` sum to 0)."""
    if lap.shape != (pred.shape[1], pred.shape[1]):
        raise ValueError(
            f"lap must be (m, m) = ({pred.shape[1]}, {pred.shape[1]}), got {tuple(lap.shape)}"
        )
    with torch.autocast(device_type=pred.device.type, enabled=False):
        diff = torch.einsum("ij,bjc->bic", lap.float(), gt.float() - pred.float())
    return diff.norm(dim=-1).mean()


def interpenetration_loss(
    pred: torch.Tensor,
    gt: torch.Tensor,
    body: torch.Tensor,
    body_normals: torch.Tensor,
    d_tol: float,
    nearest: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_interp, Eq. (14) (GarNet's term): for every predicted garment vertex ``G_P,j`` its nearest
    body vertex ``B_i`` with normal ``N_i``; the depth ``ReLU(-N_i · (G_P,j - B_i))`` counts where
    ``|G_P,j - G_GT,j| < d_tol``; summed over j, divided by ``m_g``, averaged over the batch.
    ``pred, gt (B, m, 3)``, ``body, body_normals (B, n, 3)``; ``nearest (B, m)``, if given, are the
    correspondences (e.g. computed once from the registered garment), else found for ``pred``."""
    if d_tol <= 0:
        raise ValueError(f"d_tol must be positive, got {d_tol}")
    pred, gt = pred.float(), gt.float()
    if nearest is None:
        with torch.no_grad():  # a constant correspondence
            nearest = pointsets.nearest(pred, body.float())[1]  # (B, m)
    b = torch.gather(body.float(), 1, nearest[..., None].expand(-1, -1, 3))
    n = torch.gather(body_normals.float(), 1, nearest[..., None].expand(-1, -1, 3))
    depth = torch.relu(-(n * (pred - b)).sum(-1))
    gate = ((pred - gt).norm(dim=-1) < d_tol).float()
    return (gate * depth).sum(1).mean() / pred.shape[1]


def weight_regulariser(
    weights: torch.Tensor, mesh: torch.Tensor, nbr: torch.Tensor
) -> torch.Tensor:
    """L_w, Eq. (15): ``Σ_j W_ij d(M_k, M_j)`` with ``k = argmax_j W_ij``, a constant index (no
    gradient flows through the argmax), averaged over garment vertices and the batch (the paper
    sums over i). 0 for one-hot rows."""
    nb = mesh.float()[:, nbr]  # (B, m, K, 3)
    k = weights.detach().argmax(-1)  # (B, m)
    mk = torch.gather(nb, 2, k[..., None, None].expand(-1, -1, 1, 3))
    return (weights.float() * (nb - mk).norm(dim=-1)).sum(-1).mean()


def shape_loss(
    beta_hat: torch.Tensor,
    beta: torch.Tensor,
    sigma: torch.Tensor,
    body_hat: torch.Tensor,
    mesh: torch.Tensor,
    w_shape: float = 1.0,
    w_v: float = 1.0,
) -> torch.Tensor:
    """L_β, Eq. (5): ``w_shape Σ_i σ_i (β̂_i - β_i)^2 + w_v ||M(β̂, 0) - M(β, D)||``; the vertex
    term is the mean per-vertex distance between the predicted naked body and the clothed input."""
    if beta_hat.shape != beta.shape or sigma.shape != beta.shape[1:]:
        raise ValueError(
            f"beta_hat, beta (B, k) and sigma (k,); got {tuple(beta_hat.shape)}, "
            f"{tuple(beta.shape)}, {tuple(sigma.shape)}"
        )
    param = (sigma * (beta_hat.float() - beta.float()) ** 2).sum(1).mean()
    vert = (body_hat.float() - mesh.float()).norm(dim=-1).mean()
    return w_shape * param + w_v * vert


def row_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of the rows of ``W``: 0 for one-hot rows, ``log K`` for uniform ones
    (our measure of how spread the weights are, for the L_w ablation)."""
    w = weights.float().clamp_min(1e-12)
    return -(w * w.log()).sum(-1).mean()


def geodesic_weights(world: GarmentWorld, scale: float = 0.05) -> torch.Tensor:
    """``w_geo`` of Eq. (11) on the skin region: the sigmoid of the geodesic distance (edge-graph
    Dijkstra on the mean template) from each skin vertex to the skin / clothing boundary, divided by
    ``scale``: ``(m_s,)``, 0.5 on the boundary rising to 1 inside the skin."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    T = world.template()
    lo, _ = world.row_ranges()["skin"]
    boundary = torch.arange(lo * world.cols, (lo + 1) * world.cols)
    d = meshes.dijkstra(T, world.faces(), boundary.numpy()).min(0)
    skin = world.garment_index("skin")
    return torch.sigmoid(torch.as_tensor(d[skin.numpy()], dtype=torch.float32) / scale)


# ---------------------------------------------------------------------------------------------
# metrics (Sect. 5.2)
# ---------------------------------------------------------------------------------------------
def vertex_error(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """V_err: mean per-vertex Euclidean distance in mm, one value per mesh ``(B,)``."""
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(
            f"pred and gt must be (B, m, 3) alike, got {tuple(pred.shape)}, {tuple(gt.shape)}"
        )
    return MM * (pred.float() - gt.float()).norm(dim=-1).mean(-1)


def area_error(pred: torch.Tensor, gt: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """A_err: ``100 |A_P - A_GT| / A_GT`` (%) per mesh ``(B,)``. The paper says only "change in
    mesh surface area"; the relative absolute change is our reading."""
    a_p = meshes.face_areas(pred.float(), faces).sum(-1)
    a_g = meshes.face_areas(gt.float(), faces).sum(-1)
    return 100 * (a_p - a_g).abs() / a_g


# ---------------------------------------------------------------------------------------------
# networks (Sect. 4.1-4.3, 4.5)
# ---------------------------------------------------------------------------------------------
def mesh_features(mesh: torch.Tensor, faces: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """ParserNet's input, vertices and normals (Sect. 4.2): ``(B, V·6)``, the vertices as offsets
    from the mean template in decimetres (our normalisation)."""
    n = meshes.vertex_normals(mesh.float(), faces)
    return torch.cat([10 * (mesh.float() - template), n], -1).flatten(1)


def mlp(d_in: int, hidden: int, d_out: int, layers: int = 3) -> nn.Sequential:
    """``layers`` fully connected layers with ReLU between them."""
    dims = [d_in] + [hidden] * (layers - 1) + [d_out]
    mods: list[nn.Module] = []
    for i in range(layers):
        mods.append(nn.Linear(dims[i], dims[i + 1]))
        if i < layers - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


class ParserNet(nn.Module):
    """f^g_w: input mesh features → the weights ``W^g (B, m_g, K)`` of Eq. (6), convex by a
    softmax over each row (the paper does not say how convexity is enforced); 3 FC layers.

    ``init_index`` (the garment vertices' own indices, ``I^g``) sets the last layer so that the net
    starts at ``W ≈ I^g`` (self weight ``init_weight``): the closed form of the paper's
    "train to predict W = I^g" initialisation (Sect. 4.5)."""

    def __init__(
        self,
        d_in: int,
        nbr: torch.Tensor,
        hidden: int = 256,
        init_index: torch.Tensor | None = None,
        init_weight: float = 0.9,
    ) -> None:
        super().__init__()
        self.register_buffer("nbr", nbr.clone())
        m, k = nbr.shape
        self.net = mlp(d_in, hidden, m * k)
        if init_index is not None:
            last = self.net[-1]
            with torch.no_grad():
                last.weight.mul_(0.01)
                logit = float(np.log(init_weight * (k - 1) / (1 - init_weight)))
                last.bias.copy_((logit * indicator_weights(nbr, init_index)).flatten())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        m, k = self.nbr.shape
        return torch.softmax(self.net(features).float().reshape(-1, m, k), dim=-1)

    def parse(
        self, features: torch.Tensor, mesh: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(G (B, m_g, 3), W (B, m_g, K))``."""
        W = self(features)
        return convex_combination(W, mesh, self.nbr), W


class FCBaseline(nn.Module):
    """Table 1's "FC": ParserNet's architecture predicting the displacement ``D^g`` of the garment
    template ``T^g(β)`` directly (in centimetres) instead of ``W``."""

    def __init__(self, d_in: int, m: int, hidden: int = 256) -> None:
        super().__init__()
        self.m = m
        self.net = mlp(d_in, hidden, 3 * m)

    def forward(self, features: torch.Tensor, garment_template: torch.Tensor) -> torch.Tensor:
        return garment_template.float() + 0.01 * self.net(features).float().reshape(-1, self.m, 3)


class SizerNet(nn.Module):
    """Eq. (7): ``x_gar = f_enc(G_in)``, ``D^g = f_dec(β, x_gar, δ_in, δ_out)``; the output garment
    ``G_out = T^g(β) + D^g`` (Eq. 3, A-pose). FC layers with a skip connection from the encoder's
    hidden layer into the decoder's (the paper gives no widths). The encoder reads ``G_in`` as its
    offsets from ``T^g(β)`` in centimetres (our normalisation)."""

    def __init__(
        self, m: int, n_beta: int, hidden: int = 128, d: int = 30, n_sizes: int = len(SIZES)
    ) -> None:
        super().__init__()
        self.m, self.n_sizes = m, n_sizes
        self.enc1 = nn.Linear(3 * m, hidden)
        self.enc2 = nn.Linear(hidden, d)
        self.dec1 = nn.Linear(n_beta + d + 2 * n_sizes, hidden)
        self.dec2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 3 * m)

    def encode(
        self, g_in: torch.Tensor, garment_template: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.enc1(100 * (g_in - garment_template).flatten(1)))
        return self.enc2(h), h

    def forward(
        self,
        g_in: torch.Tensor,
        beta: torch.Tensor,
        size_in: torch.Tensor,
        size_out: torch.Tensor,
        garment_template: torch.Tensor,
    ) -> torch.Tensor:
        if g_in.shape[1:] != (self.m, 3):
            raise ValueError(f"g_in must be (B, {self.m}, 3), got {tuple(g_in.shape)}")
        x_gar, h = self.encode(g_in, garment_template)
        one = nn.functional.one_hot
        z = torch.cat(
            [
                beta,
                x_gar,
                one(size_in, self.n_sizes).to(beta.dtype),
                one(size_out, self.n_sizes).to(beta.dtype),
            ],
            1,
        )
        y = torch.relu(self.dec2(torch.relu(self.dec1(z)) + h))
        return garment_template.float() + 0.01 * self.out(y).float().reshape(-1, self.m, 3)


class BetaRegressor(nn.Module):
    """f^β_w (Sect. 4.1): 2 FC layers and a linear output, input mesh features → ``β̂``."""

    def __init__(self, d_in: int, n_beta: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = mlp(d_in, hidden, n_beta)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).float()


# ---------------------------------------------------------------------------------------------
# baselines (Tables 1 and 2)
# ---------------------------------------------------------------------------------------------
def lasso_weights(
    meshes_in: torch.Tensor, garments: torch.Tensor, nbr: torch.Tensor, alpha: float = 1e-6
) -> torch.Tensor:
    """Table 1's "linear model", our reading of "a linearized ParserNet implemented with LASSO": one
    input-independent sparse, non-negative ``W (m_g, K)`` fitted per garment vertex by
    :class:`sklearn.linear_model.Lasso` on the training pairs (the three coordinates are samples
    sharing the weights, as in ``G = W M``)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso

    if meshes_in.ndim != 3 or garments.ndim != 3 or len(meshes_in) != len(garments):
        raise ValueError(
            f"expected meshes (N, V, 3) and garments (N, m, 3), got {tuple(meshes_in.shape)}, "
            f"{tuple(garments.shape)}"
        )
    M = meshes_in.detach().double().cpu().numpy()
    G = garments.detach().double().cpu().numpy()
    nb = nbr.cpu().numpy()
    W = np.zeros(nb.shape)
    for i in range(len(nb)):
        X = M[:, nb[i]].transpose(0, 2, 1).reshape(-1, nb.shape[1])  # (N·3, K)
        y = G[:, i].reshape(-1)
        with warnings.catch_warnings():  # a few fits stop at max_iter within 1e-4 of the optimum
            warnings.simplefilter("ignore", ConvergenceWarning)
            W[i] = (
                Lasso(alpha=alpha, positive=True, fit_intercept=False, max_iter=5000)
                .fit(X, y)
                .coef_
            )
    return torch.as_tensor(W, dtype=torch.float32)


def linear_scaling(
    g_in: torch.Tensor, size_in: torch.Tensor, size_out: torch.Tensor
) -> torch.Tensor:
    """Table 2's "linear scaling + alignment": scale the garment about its centroid by
    ``SIZE_SCALE[δ_out] / SIZE_SCALE[δ_in]`` and keep the centroid on the body (our reading)."""
    scale = torch.tensor(SIZE_SCALE, device=g_in.device)
    s = (scale[size_out] / scale[size_in])[:, None, None]
    c = g_in.mean(1, keepdim=True)
    return c + s * (g_in - c)


# ---------------------------------------------------------------------------------------------
# the paper's numbers
# ---------------------------------------------------------------------------------------------
_T1 = {
    "Polo": (32.21, 17.25, 14.33),
    "Shirt": (27.63, 19.35, 14.56),
    "Vest": (28.17, 18.56, 15.89),
    "Hoodies": (37.34, 23.69, 15.76),
    "T-Shirt": (26.94, 15.98, 13.77),
    "Shorts": (29.78, 20.12, 16.07),
    "Pants": (34.82, 18.2, 17.24),
    "Coat": (41.27, 22.19, 15.34),
    "Shorts2": (31.38, 23.45, 16.23),
}
_T2 = {
    "Polo t-shirt": (33.25, 24.56, 23.86, 3.63, 35.05, 8.45, 16.42, 1.79),
    "Shirt": (36.52, 19.57, 21.95, 2.76, 34.53, 7.01, 15.54, 1.41),
    "Shorts": (43.21, 27.21, 24.79, 5.41, 35.77, 4.99, 16.71, 2.38),
    "Pants": (30.83, 15.15, 21.54, 4.73, 38.16, 7.13, 19.26, 2.43),
}
PARSE_METHODS = ("Linear", "FC", "ParserNet")
SIZE_METHODS = ("Error-margin", "Average-pred", "Linear scaling", "SizerNet")


def _mean_over(table: dict, col: int) -> float:
    return float(np.mean([v[col] for v in table.values()]))


PAPER = {
    "table1": report.PaperTable(
        "Table 1",
        "V_err (mm), mean over the 9 garment classes",
        {m: _mean_over(_T1, i) for i, m in enumerate(PARSE_METHODS)},
        better="lower",
        note="per class: " + "; ".join(f"{k} {v[0]}/{v[1]}/{v[2]}" for k, v in _T1.items()),
    ),
    "table2_verr": report.PaperTable(
        "Table 2",
        "V_err (mm), mean over the 4 garment classes",
        {m: _mean_over(_T2, 2 * i) for i, m in enumerate(SIZE_METHODS)},
        better="lower",
    ),
    "table2_aerr": report.PaperTable(
        "Table 2",
        "A_err (%), mean over the 4 garment classes",
        {m: _mean_over(_T2, 2 * i + 1) for i, m in enumerate(SIZE_METHODS)},
        better="lower",
    ),
    "table1_per_class": _T1,
    "table2_per_class": _T2,
}


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config(ProfileConfig):
    rows: int = 20
    cols: int = 24
    n_subjects: int = 100
    n_test: int = 40  # held-out samples per garment class (Sect. 4.5)
    k: int = 16  # |N_i| (paper: 50)
    hidden: int = 128  # ParserNet / FC width
    sizer_hidden: int = 128
    beta_hidden: int = 128
    steps: int = 200
    sizer_steps: int = 250
    beta_steps: int = 200
    batch_size: int = 16  # paper: 8
    lr: float = 1e-3  # paper: 1e-4 (tuned for its thousands of steps)
    w_3d: float = 1.0
    w_norm: float = 0.01
    w_lap: float = 1.0
    w_interp: float = 1.0
    w_w: float = 0.1
    d_tol: float = 0.02  # metres (the paper gives none)
    lasso_alpha: float = 1e-6
    seeds: tuple[int, ...] = (0,)
    device: str | None = None

    @classmethod
    def fast(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        """48 x 40 vertices, |N_i| = 50, width 1024, three seeds."""
        return cls(
            rows=40,
            cols=48,
            k=50,
            hidden=1024,
            sizer_hidden=512,
            beta_hidden=256,
            steps=3000,
            sizer_steps=3000,
            beta_steps=1500,
            batch_size=8,
            seeds=(0, 1, 2),
        )

    @classmethod
    def smoke(cls) -> Config:
        """``full``'s code paths (three seeds, every model) at toy size."""
        return cls(
            rows=10,
            cols=8,
            n_subjects=12,
            n_test=8,
            k=6,
            hidden=16,
            sizer_hidden=16,
            beta_hidden=16,
            steps=6,
            sizer_steps=6,
            beta_steps=6,
            batch_size=8,
            seeds=(0, 1),
        )

    def world(self) -> GarmentWorld:
        return GarmentWorld(rows=self.rows, cols=self.cols)


# ---------------------------------------------------------------------------------------------
# data of one seed, flattened to (subject, size) samples
# ---------------------------------------------------------------------------------------------
def make_data(config: Config, seed: int = 0, device=None) -> dict:
    """The world's subjects for ``seed``, the train/test masks and per-garment templates."""
    world = config.world()
    d = world.sample(config.n_subjects, seed=seed, device=device)
    masks = {
        k: v.to(d["beta"].device) for k, v in split(config.n_subjects, config.n_test, seed).items()
    }
    faces = world.faces(d["beta"].device)
    T = world.template(d["beta"].device)
    d.update(
        world=world,
        masks=masks,
        faces=faces,
        template=T,
        body_normals=meshes.vertex_normals(d["body"], faces),
    )
    # L_interp's body-garment correspondences C(B, G), from the registered garments, once
    d["nearest"] = {
        g: torch.stack([pointsets.nearest(G[:, z], d["body"])[1] for z in range(len(SIZES))], 1)
        for g, G in d["garments"].items()
    }
    return d


def _samples(d: dict, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Subject and size indices of the samples in ``mask (N, 4)``."""
    subj, size = mask.nonzero(as_tuple=True)
    return subj, size


def _garment_loss(
    config: Config, pred, gt, parts, body, body_normals, nearest
) -> dict[str, torch.Tensor]:
    terms = {
        "l3d": vertex_loss(pred, gt),
        "lnorm": normal_loss(pred, gt, parts["faces"]),
        "llap": laplacian_loss(pred, gt, parts["lap"]),
        "linterp": interpenetration_loss(pred, gt, body, body_normals, config.d_tol, nearest),
    }
    terms["loss"] = (
        config.w_3d * terms["l3d"]
        + config.w_norm * terms["lnorm"]
        + config.w_lap * terms["llap"]
        + config.w_interp * terms["linterp"]
    )
    return terms


# ---------------------------------------------------------------------------------------------
# training (all through cvtutor.train.fit)
# ---------------------------------------------------------------------------------------------
def adam(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """Adam (the paper names no optimiser; its learning rate is 1e-4), the fused kernel (one pass
    over the parameters per step, which is most of a small MLP's step on a CPU)."""
    return torch.optim.Adam(model.parameters(), lr=lr, fused=True)


def train_parser(
    config: Config,
    d: dict,
    garment: str,
    kind: str = "parser",
    use_init: bool = True,
    w_w: float | None = None,
    steps: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> tuple[nn.Module, pd.DataFrame, dict]:
    """Train ParserNet (``kind="parser"``, L_parser of Eq. 8) or the FC baseline (``"fc"``, the
    same losses without L_w) for one garment on the training samples. Returns the model, its loss
    history and the garment's template parts."""
    device = d["beta"].device
    seed_everything(seed)
    world = d["world"]
    idx = world.garment_index(garment, device)
    faces_g = garment_faces(world, garment, device)
    parts = {
        "index": idx,
        "faces": faces_g,
        "lap": meshes.graph_laplacian(faces_g, len(idx)).to(device),
        "nbr": neighbourhoods(d["template"], idx, config.k),
    }
    subj, size = _samples(d, d["masks"]["train"])
    feats = mesh_features(d["mesh"][subj, size], d["faces"], d["template"])
    d_in = feats.shape[1]
    if kind == "parser":
        model = ParserNet(d_in, parts["nbr"], config.hidden, idx if use_init else None).to(device)
    elif kind == "fc":
        model = FCBaseline(d_in, len(idx), config.hidden).to(device)
    else:
        raise ValueError(f"kind must be 'parser' or 'fc', got {kind!r}")
    w_w = config.w_w if w_w is None else w_w
    opt = adam(model, config.lr)
    batches = minibatches(
        feats, subj, size, batch_size=min(config.batch_size, len(subj)), seed=seed
    )

    def loss_fn(models, batch, step):
        x, s, z = batch
        net = models["model"]
        M = d["mesh"][s, z]
        gt = d["garments"][garment][s, z]
        if kind == "parser":
            pred, W = net.parse(x, M)
        else:
            pred = net(x, d["body"][s][:, idx])
        terms = _garment_loss(
            config, pred, gt, parts, d["body"][s], d["body_normals"][s], d["nearest"][garment][s, z]
        )
        if kind == "parser":
            terms["lw"] = weight_regulariser(W, M, parts["nbr"])
            terms["loss"] = terms["loss"] + w_w * terms["lw"]
        return terms

    hist = fit(
        model,
        opt,
        batches,
        loss_fn,
        steps=steps or config.steps,
        progress=progress,
        desc=f"{kind} {garment}",
    )
    model.eval()
    return model, hist, parts


@torch.no_grad()
def predict_parser(
    model: nn.Module, d: dict, garment: str, subj, size
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Parsed garments ``(B, m_g, 3)`` (and ``W`` for ParserNet) of the samples ``(subj, size)``."""
    feats = mesh_features(d["mesh"][subj, size], d["faces"], d["template"])
    if isinstance(model, ParserNet):
        return model.parse(feats, d["mesh"][subj, size])
    idx = d["world"].garment_index(garment, d["beta"].device)
    return model(feats, d["body"][subj][:, idx]), None


def size_pairs(mask_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All ordered pairs ``(subject, δ_in, δ_out)``, ``δ_in != δ_out``, with the output sample in
    ``mask_out (N, 4)`` (inputs may be any size of the subject: at test time the input is given)."""
    subj, out = mask_out.nonzero(as_tuple=True)
    s = subj.repeat_interleave(3)
    o = out.repeat_interleave(3)
    shift = torch.arange(1, 4, device=mask_out.device).repeat(len(subj))
    i = (o + shift) % 4
    return s, i, o


def train_sizer(
    config: Config,
    d: dict,
    garment: str,
    steps: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> tuple[nn.Module, pd.DataFrame]:
    """SizerNet on all ordered size pairs of the training samples (both sizes in training), with
    L_sizer (Eq. 9) on registered garments, the smooth body ``T(β)`` for L_interp."""
    device = d["beta"].device
    seed_everything(seed)
    world = d["world"]
    idx = world.garment_index(garment, device)
    faces_g = garment_faces(world, garment, device)
    parts = {"faces": faces_g, "lap": meshes.graph_laplacian(faces_g, len(idx)).to(device)}
    train = d["masks"]["train"]
    s, i, o = size_pairs(train)
    keep = train[s, i]
    s, i, o = s[keep], i[keep], o[keep]
    model = SizerNet(len(idx), d["beta"].shape[1], config.sizer_hidden).to(device)
    opt = adam(model, config.lr)
    batches = minibatches(s, i, o, batch_size=min(config.batch_size, len(s)), seed=seed + 1)
    G = d["garments"][garment]

    def loss_fn(models, batch, step):
        bs, bi, bo = batch
        tg = d["body"][bs][:, idx]
        pred = models["model"](G[bs, bi], d["beta"][bs], bi, bo, tg)
        return _garment_loss(
            config,
            pred,
            G[bs, bo],
            parts,
            d["body"][bs],
            d["body_normals"][bs],
            d["nearest"][garment][bs, bo],
        )

    hist = fit(
        model,
        opt,
        batches,
        loss_fn,
        steps=steps or config.sizer_steps,
        progress=progress,
        desc=f"sizer {garment}",
    )
    model.eval()
    return model, hist


def train_beta(
    config: Config, d: dict, seed: int = 0, progress: bool = False
) -> tuple[nn.Module, pd.DataFrame]:
    """f^β on the training samples with L_β (Eq. 5); the vertex term uses the world's
    differentiable template ``T(β̂, 0)``."""
    device = d["beta"].device
    seed_everything(seed)
    world = d["world"]
    subj, size = _samples(d, d["masks"]["train"])
    feats = mesh_features(d["mesh"][subj, size], d["faces"], d["template"])
    model = BetaRegressor(feats.shape[1], d["beta"].shape[1], config.beta_hidden).to(device)
    opt = adam(model, config.lr)
    sigma = torch.tensor(world.sigma, device=device) / max(world.sigma)
    batches = minibatches(
        feats, subj, size, batch_size=min(config.batch_size, len(subj)), seed=seed + 2
    )

    def loss_fn(models, batch, step):
        x, s, z = batch
        bh = models["model"](x)
        return {
            "loss": shape_loss(bh, d["beta"][s], sigma, world.body(bh), d["mesh"][s, z], w_v=10.0)
        }

    hist = fit(
        model, opt, batches, loss_fn, steps=config.beta_steps, progress=progress, desc="beta"
    )
    model.eval()
    return model, hist


# ---------------------------------------------------------------------------------------------
# experiments
# ---------------------------------------------------------------------------------------------
def parsing_experiment(config: Config, d: dict, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Table 1 in miniature: Linear (LASSO), FC and ParserNet per garment; V_err on the test samples
    overall and on the fold vertices (GT fold amplitude above the garment's median). Returns the
    table (one row per garment and method) and the trained ParserNets and histories."""
    rows, keep = [], {}
    te_s, te_z = _samples(d, d["masks"]["test"])
    tr_s, tr_z = _samples(d, d["masks"]["train"])
    for garment in GARMENTS:
        idx = d["world"].garment_index(garment, d["beta"].device)
        gt = d["garments"][garment][te_s, te_z]
        fold = d["fold"][te_s, te_z][:, idx]
        folded = fold > fold.median()
        parser, hist, parts = train_parser(config, d, garment, "parser", seed=seed)
        fc, hist_fc, _ = train_parser(config, d, garment, "fc", seed=seed)
        W_lin = lasso_weights(
            d["mesh"][tr_s, tr_z],
            d["garments"][garment][tr_s, tr_z],
            parts["nbr"],
            config.lasso_alpha,
        ).to(gt.device)
        preds = {
            "Linear": convex_combination(
                W_lin.expand(len(te_s), -1, -1), d["mesh"][te_s, te_z], parts["nbr"]
            ),
            "FC": predict_parser(fc, d, garment, te_s, te_z)[0],
            "ParserNet": predict_parser(parser, d, garment, te_s, te_z)[0],
        }
        for method, pred in preds.items():
            per_vertex = MM * (pred - gt).norm(dim=-1)
            rows.append(
                {
                    "garment": garment,
                    "method": method,
                    "seed": seed,
                    "V_err": float(per_vertex.mean()),
                    "V_err folds": float(per_vertex[folded].mean()),
                    "V_err flat": float(per_vertex[~folded].mean()),
                }
            )
        keep[garment] = {
            "parser": parser,
            "fc": fc,
            "history": hist,
            "history_fc": hist_fc,
            "parts": parts,
            "W_linear": W_lin,
        }
    return pd.DataFrame(rows), keep


def resizing_experiment(config: Config, d: dict, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Table 2 in miniature on registered garments: every ordered size pair whose output sample is
    held out; Error-margin (the change between consecutive sizes, on the consecutive pairs),
    Average-pred (the mean of the subject's sizes), Linear scaling, SizerNet; V_err and A_err."""
    rows, keep = [], {}
    s, i, o = size_pairs(d["masks"]["test"])
    for garment in GARMENTS:
        idx = d["world"].garment_index(garment, d["beta"].device)
        faces_g = garment_faces(d["world"], garment, d["beta"].device)
        G = d["garments"][garment]
        model, hist = train_sizer(config, d, garment, seed=seed)
        with torch.no_grad():
            sizer = model(G[s, i], d["beta"][s], i, o, d["body"][s][:, idx])
        gt = G[s, o]
        consec = (i - o).abs() == 1
        preds = {
            "Error-margin": (G[s, i][consec], gt[consec]),
            "Average-pred": (G[s].mean(1), gt),
            "Linear scaling": (linear_scaling(G[s, i], i, o), gt),
            "SizerNet": (sizer, gt),
        }
        for method, (pred, target) in preds.items():
            rows.append(
                {
                    "garment": garment,
                    "method": method,
                    "seed": seed,
                    "V_err": float(vertex_error(pred, target).mean()),
                    "A_err": float(area_error(pred, target, faces_g).mean()),
                }
            )
        keep[garment] = {"sizer": model, "history": hist}
    return pd.DataFrame(rows), keep


def ablations(
    config: Config, d: dict, main: dict, seed: int = 0, garment: str = "upper"
) -> pd.DataFrame:
    """L_w on/off (mean row entropy of W on the test samples, and V_err) and the I^g initialisation
    on/off (mean training L_3D over the first quarter of the steps, and V_err) on ``garment``; the
    setting with both is the main ParserNet ``main`` (``{"parser", "history"}``) of Table 1."""
    te_s, te_z = _samples(d, d["masks"]["test"])
    gt = d["garments"][garment][te_s, te_z]
    rows = []
    settings = {
        "L_w on, I^g init": None,
        "L_w off": {"w_w": 0.0},
        "no I^g init": {"use_init": False},
    }
    for name, kw in settings.items():
        if kw is None:
            model, hist = main["parser"], main["history"]
        else:
            model, hist, _ = train_parser(config, d, garment, "parser", seed=seed, **kw)
        pred, W = predict_parser(model, d, garment, te_s, te_z)
        q = max(1, len(hist) // 4)
        rows.append(
            {
                "setting": name,
                "seed": seed,
                "row entropy": float(row_entropy(W)),
                "V_err": float(vertex_error(pred, gt).mean()),
                "early loss": float(hist["l3d"].iloc[:q].mean()),
                "final loss": float(hist["l3d"].iloc[-q:].mean()),
            }
        )
    return pd.DataFrame(rows)


def beta_experiment(config: Config, d: dict, seed: int = 0) -> dict[str, float]:
    """f^β on the test samples: RMS error of β̂ (in units of the prior's std 1) and the vertex error
    of the naked body ``T(β̂)`` against the true body (mm)."""
    model, hist = train_beta(config, d, seed=seed)
    s, z = _samples(d, d["masks"]["test"])
    with torch.no_grad():
        bh = model(mesh_features(d["mesh"][s, z], d["faces"], d["template"]))
        body_err = vertex_error(d["world"].body(bh), d["body"][s]).mean()
    return {
        "beta_rmse": float((bh - d["beta"][s]).pow(2).mean().sqrt()),
        "body_V_err": float(body_err),
        "mean_body_V_err": float(
            vertex_error(d["template"].expand(len(s), -1, -1), d["body"][s]).mean()
        ),
        "history": hist,
        "model": model,
    }


def body_parser_experiment(
    config: Config, d: dict, beta_model: nn.Module, seed: int = 0
) -> pd.DataFrame:
    """Body ParserNet f^B (Sect. 4.2) on the skin band: the smooth body ``T(β̂)`` from f^β, then
    every skin vertex a convex combination of its K input neighbours and its own smooth-body vertex
    (our reading of how covered regions fall back to the smooth body: the candidate set includes
    it), initialised at the smooth body and trained with L_3D^body (Eq. 11, ``w_geo`` from
    :func:`geodesic_weights`) against the input's skin ``I^s M``. Skin V_err (mm) on the test
    samples
    against the true detailed body, beside the smooth body and the raw input skin."""
    device = d["beta"].device
    seed_everything(seed)
    world = d["world"]
    skin = world.garment_index("skin", device)
    V = world.n_verts
    nbr = torch.cat(
        [
            neighbourhoods(d["template"], skin, config.k),
            V + torch.arange(len(skin), device=device)[:, None],
        ],
        1,
    )
    w_geo = geodesic_weights(world).to(device)
    with torch.no_grad():
        feats_all = mesh_features(d["mesh"].flatten(0, 1), d["faces"], d["template"])
        smooth = world.body(beta_model(feats_all)).reshape(d["mesh"].shape)[:, :, skin]
    cands = torch.cat([d["mesh"], smooth], 2)  # (N, 4, V + m_s, 3)
    model = ParserNet(feats_all.shape[1], nbr, config.hidden, init_index=nbr[:, -1]).to(device)
    opt = adam(model, config.lr)
    subj, size = _samples(d, d["masks"]["train"])
    feats = feats_all.reshape(*d["mesh"].shape[:2], -1)
    batches = minibatches(subj, size, batch_size=min(config.batch_size, len(subj)), seed=seed + 3)

    def loss_fn(models, batch, step):
        s, z = batch
        pred, _ = models["model"].parse(feats[s, z], cands[s, z])
        return {"loss": body_vertex_loss(pred, d["mesh"][s, z][:, skin], w_geo)}

    fit(model, opt, batches, loss_fn, steps=config.steps, progress=False, desc="body parser")
    model.eval()
    s, z = _samples(d, d["masks"]["test"])
    gt = d["skin"][s][:, skin]
    with torch.no_grad():
        pred, _ = model.parse(feats[s, z], cands[s, z])
    rows = {
        "smooth body T(β̂)": smooth[s, z],
        "body ParserNet": pred,
        "input skin I^s M": d["mesh"][s, z][:, skin],
    }
    return pd.DataFrame(
        [
            {"method": k, "seed": seed, "skin V_err": float(vertex_error(v, gt).mean())}
            for k, v in rows.items()
        ]
    )


def _means(table: pd.DataFrame, col: str) -> dict[str, float]:
    return table.groupby("method")[col].mean().to_dict()


def run(config: Config, models: dict | None = None) -> dict:
    """The whole miniature: Table 1 (parsing), Table 2 (resizing), the L_w and I^g ablations, the
    β regressor and the body ParserNet, for every seed; paper-vs-ours tables and the findings.
    ``models``, if given, is
    filled with the first seed's data and trained networks (for the notebook's figures)."""
    device = get_device(config.device)
    t1, t2, ab, beta, bodies, curves = [], [], [], [], [], {}
    for seed in config.seeds:
        d = make_data(config, seed, device)
        p, trained = parsing_experiment(config, d, seed)
        r, sized = resizing_experiment(config, d, seed)
        t1.append(p)
        t2.append(r)
        ab.append(ablations(config, d, trained["upper"], seed))
        b = beta_experiment(config, d, seed)
        beta.append({k: v for k, v in b.items() if k not in ("history", "model")} | {"seed": seed})
        bodies.append(body_parser_experiment(config, d, b["model"], seed))
        if seed == config.seeds[0] and models is not None:
            models.update(
                data=d,
                parsers={g: trained[g]["parser"] for g in GARMENTS},
                fcs={g: trained[g]["fc"] for g in GARMENTS},
                sizers={g: sized[g]["sizer"] for g in GARMENTS},
                parts={g: trained[g]["parts"] for g in GARMENTS},
            )
        if seed == config.seeds[0]:
            curves = {
                "parser": trained["upper"]["history"],
                "fc": trained["upper"]["history_fc"],
                "sizer": sized["upper"]["history"],
                "beta": b["history"],
            }
    t1, t2, ab, beta = (
        pd.concat(t1, ignore_index=True),
        pd.concat(t2, ignore_index=True),
        pd.concat(ab, ignore_index=True),
        pd.DataFrame(beta),
    )
    v1 = _means(t1, "V_err")
    compare1 = report.compare(
        PAPER["table1"], v1, claims=["Linear > FC", "FC > ParserNet", "lower is better"]
    )
    v2, a2 = _means(t2, "V_err"), _means(t2, "A_err")
    compare2v = report.compare(
        PAPER["table2_verr"],
        v2,
        claims=["SizerNet < Linear scaling", "SizerNet < Average-pred", "SizerNet < Error-margin"],
    )
    compare2a = report.compare(
        PAPER["table2_aerr"],
        a2,
        claims=["SizerNet < Linear scaling", "SizerNet < Average-pred", "SizerNet < Error-margin"],
    )
    per_g = t1.groupby(["garment", "method"])["V_err"].mean().unstack()
    per_g2 = t2.groupby(["garment", "method"])[["V_err", "A_err"]].mean()
    abm = ab.groupby("setting")[["row entropy", "V_err", "early loss", "final loss"]].mean()

    def pm(t: pd.DataFrame, method: str) -> str:  # " ± std over seeds" where there are several
        if len(config.seeds) < 2:
            return ""
        return f" ± {float(t[t.method == method].groupby('seed')['V_err'].mean().std(ddof=1)):.1f}"

    order_ok = bool(((per_g["Linear"] > per_g["FC"]) & (per_g["FC"] > per_g["ParserNet"])).all())
    n_seeds = len(config.seeds)
    findings = report.claims_table(
        {
            "Table 1: ParserNet < FC < Linear model (V_err) on every garment": (
                "construction",
                order_ok,
                "; ".join(
                    f"{g}: " + " / ".join(f"{per_g.loc[g, m]:.1f}" for m in PARSE_METHODS)
                    for g in per_g.index
                ),
            ),
            "Table 2: SizerNet's V_err is below linear scaling's": (
                "paper claim",
                bool(v2["SizerNet"] < v2["Linear scaling"]),
                f"{v2['SizerNet']:.1f} vs {v2['Linear scaling']:.1f} mm, {n_seeds} seed(s)",
            ),
            "Table 2: SizerNet's A_err is below linear scaling's": (
                "paper claim",
                bool(a2["SizerNet"] < a2["Linear scaling"]),
                f"{a2['SizerNet']:.2f} vs {a2['Linear scaling']:.2f} %",
            ),
            "Table 2: SizerNet's V_err is below the average prediction's": (
                "paper claim",
                bool(v2["SizerNet"] < v2["Average-pred"]),
                f"{v2['SizerNet']:.1f}{pm(t2, 'SizerNet')} vs "
                f"{v2['Average-pred']:.1f}{pm(t2, 'Average-pred')} mm",
            ),
            "Table 2: SizerNet's V_err is below the error margin (consecutive sizes)": (
                "paper claim",
                bool(v2["SizerNet"] < v2["Error-margin"]),
                f"{v2['SizerNet']:.1f} vs {v2['Error-margin']:.1f} mm",
            ),
            "L_w makes the rows of W more concentrated (lower entropy)": (
                "paper claim",
                bool(
                    abm.loc["L_w on, I^g init", "row entropy"] < abm.loc["L_w off", "row entropy"]
                ),
                f"{abm.loc['L_w on, I^g init', 'row entropy']:.2f} vs "
                f"{abm.loc['L_w off', 'row entropy']:.2f} nats",
            ),
            "the I^g initialisation speeds up convergence (lower early L_3D)": (
                "paper claim",
                bool(
                    abm.loc["L_w on, I^g init", "early loss"] < abm.loc["no I^g init", "early loss"]
                ),
                (
                    f"{MM * abm.loc['L_w on, I^g init', 'early loss']:.1f} vs "
                    f"{MM * abm.loc['no I^g init', 'early loss']:.1f} mm (first quarter)"
                ),
            ),
            "f^β recovers the body better than the mean body does": (
                "sanity check",
                bool(beta["body_V_err"].mean() < beta["mean_body_V_err"].mean()),
                f"{beta['body_V_err'].mean():.1f} vs {beta['mean_body_V_err'].mean():.1f} mm",
            ),
        }
    )
    body = pd.concat(bodies, ignore_index=True)
    bm = body.groupby("method")["skin V_err"].mean()
    findings = pd.concat(
        [
            findings,
            report.claims_table(
                {
                    "the body ParserNet keeps personal details (skin V_err below T(β̂)'s)": (
                        "paper claim",
                        bool(bm["body ParserNet"] < bm["smooth body T(β̂)"]),
                        f"{bm['body ParserNet']:.1f} vs {bm['smooth body T(β̂)']:.1f} mm",
                    )
                }
            ),
        ]
    )
    return {
        "body_parser": body,
        "table1": t1,
        "table2": t2,
        "ablations": ab,
        "beta": beta,
        "compare_table1": compare1,
        "compare_table2_verr": compare2v,
        "compare_table2_aerr": compare2a,
        "table1_per_garment": per_g.reset_index(),
        "table2_per_garment": per_g2.reset_index(),
        "ablation_means": abm.reset_index(),
        "curves_parser": curves["parser"],
        "curves_fc": curves["fc"],
        "curves_sizer": curves["sizer"],
        "curves_beta": curves["beta"],
        "findings": findings,
    }
