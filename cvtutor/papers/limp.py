"""LIMP: latent shape representations with metric preservation priors.

Cosmo, Norelli, Halimi, Kimmel, Rodolà. *LIMP: Learning Latent Shape Representations with Metric
Preservation Priors*. ECCV 2020, LNCS 12348, pp. 19-35 (the book's chapter
``notebooks/eccv2020/limp.ipynb``).

A VAE (PointNet encoder, MLP decoder) of deformable shapes with known correspondence is trained
with losses on the *distance matrices* of the decoded shapes: a decoded linear interpolation of two
codes must have the interpolated distance matrix (the metric preservation prior), and a latent
split ``z = (z^int | z^ext)`` is disentangled by asking that interpolating ``z^int`` of an
isometric pair keeps the Euclidean distances and interpolating ``z^ext`` of a non-isometric pair
keeps the geodesic ones. Geodesics are the differentiable heat method of the 3-D shape world
(:func:`cvtutor.data.shapes3d.meshes.heat_geodesic`), back-propagated at every step.

Equations
---------
(1)  ℓ = ℓ_recon + ℓ_interp + ℓ_disent                          (+ the VAE's KL, implied)
(2)  ℓ_recon = Σ_i ‖D_R3(X'_i) - D_R3(X_i)‖²_F                 (relative: Σ (A-B)²/A², Sect. 3.1)
(3)  ℓ_interp = Σ_{i≠j} ‖D(dec((1-α) z_i + α z_j)) - ((1-α) D(X'_i) + α D(X'_j))‖²_F,  α ~ U(0,1)
     with D the geodesic matrix and, separately, local Euclidean distances (< 10 % diameter)
(4)  ℓ_disent = ℓ_int + ℓ_ext
(5)  ℓ_int = Σ_{iso} ‖D_R3(dec((1-α) z_i^int + α z_j^int | z_i^ext)) - D_R3(X_i)‖²_F
(6)  ℓ_ext = Σ_{non-iso} ‖D_g(dec(z_i^int | (1-α) z_i^ext + α z_j^ext)) - D_g(X_i)‖²_F
(7)  |d_X(x, x') - d_Y(φ(x), φ(x'))| <= K                        (bounded distortion)
(8)  d_α = (1-α) d_X + α d_Y∘φ,  whose distortion to d_X is K_α <= α K
Metrics (Sects. 4.2-4.3): the interpolation error (mean geodesic distortion of decoded
interpolants against d_α) and the disentanglement error (swap z^ext, mean point-to-point
distance to the ground-truth shape).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from cvtutor import report
from cvtutor.data.shapes3d import meshes
from cvtutor.nn.pointnets import PointNet
from cvtutor.nn.vae import kl_to_prior, reparameterize
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import fit

MODELS = ("VAE", "Ours Euc", "Ours Geo")


# ---------------------------------------------------------------------------------------------
# distance matrices and the losses (Sect. 3.1)
# ---------------------------------------------------------------------------------------------
def _check_verts(X: torch.Tensor, name: str = "X") -> None:
    if X.ndim != 3 or X.shape[-1] != 3:
        raise ValueError(f"{name} must be (B, V, 3) vertex positions, got {tuple(X.shape)}")


def euclidean_matrix(X: torch.Tensor) -> torch.Tensor:
    """``D_R3(X)``: pairwise Euclidean distances ``(B, V, V)`` of ``X (B, V, 3)``, with a
    gradient of 0 (not NaN) on the zero diagonal."""
    _check_verts(X)
    sq = (X[:, :, None] - X[:, None]).pow(2).sum(-1)
    return sq.clamp_min(1e-12).sqrt() * (sq > 0)


def geodesic_matrix(X: torch.Tensor, faces: torch.Tensor, t: float | None = None,
                    sources: torch.Tensor | None = None) -> torch.Tensor:
    """``D_g(X)``: all-pairs heat-method geodesics ``(B, V, V)``, symmetrised with a zero diagonal
    (as the official code does), differentiable in ``X``; in float32 or wider, never under bf16.
    With ``sources (S,)``: only their columns, ``(B, V, S)`` (not symmetrised)."""
    _check_verts(X)
    with torch.autocast(device_type=X.device.type, enabled=False):
        Xf = X.to(torch.promote_types(X.dtype, torch.float32))
        V = X.shape[1]
        if sources is not None:
            return meshes.heat_geodesic(Xf, faces, sources, t=t)
        D = meshes.heat_geodesic(Xf, faces, torch.arange(V, device=X.device), t=t)
        D = 0.5 * (D + D.transpose(1, 2))
        return D * (1 - torch.eye(V, dtype=D.dtype, device=D.device))


def _off_diagonal(A: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    V, S = A.shape[-2:]
    if V == S:
        m = ~torch.eye(V, dtype=torch.bool, device=A.device)
    else:  # columns of a few sources: no diagonal to drop
        m = torch.ones(V, S, dtype=torch.bool, device=A.device)
    return m if mask is None else m & mask.bool()


def relative_error(A: torch.Tensor, B: torch.Tensor, mask: torch.Tensor | None = None):
    """Sect. 3.1's relative error ``Σ_ij (A_ij - B_ij)² / A_ij²`` over ``i ≠ j`` (and ``mask``),
    averaged over the entries and the batch (the paper's sum up to a constant): ``A`` the ground
    truth ``(B, V, V)``, ``B`` the prediction."""
    if A.shape != B.shape or A.ndim != 3:
        raise ValueError(f"A and B must be (B, V, V) alike, got {tuple(A.shape)}, {tuple(B.shape)}")
    m = _off_diagonal(A, mask).expand_as(A)
    r = (A - B).pow(2) / A.pow(2).clamp_min(1e-12)
    return (r * m).sum() / m.sum().clamp_min(1)


def normalised_error(A: torch.Tensor, B: torch.Tensor, mask: torch.Tensor | None = None):
    """``‖A - B‖²_F / ‖A‖²_F`` per shape, averaged: the Frobenius error of Eqs. (3) and (6) on
    geodesic matrices, divided by the target's norm so that its weight is unit-free (our
    reading; the paper gives no weights)."""
    if A.shape != B.shape or A.ndim != 3:
        raise ValueError(f"A and B must be (B, V, V) alike, got {tuple(A.shape)}, {tuple(B.shape)}")
    m = _off_diagonal(A, mask).expand_as(A)
    num = ((A - B).pow(2) * m).sum((1, 2))
    return (num / (A.pow(2) * m).sum((1, 2)).clamp_min(1e-12)).mean()


def recon_loss(X_rec: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """ℓ_recon, Eq. (2) in the relative form of Sect. 3.1: 0 for any rigid motion of ``X``."""
    _check_verts(X_rec, "X_rec")
    return relative_error(euclidean_matrix(X), euclidean_matrix(X_rec))


def interpolate_latent(z_i: torch.Tensor, z_j: torch.Tensor, alpha: torch.Tensor,
                       n_int: int, part: str = "all") -> torch.Tensor:
    """The codes of Eqs. (3), (5), (6): ``(1-α) z_i + α z_j`` on all coordinates (``"all"``), on
    ``z^int`` (the first ``n_int``) only, or on ``z^ext`` only; the rest stays ``z_i``'s.
    ``z (B, d)``, ``alpha (B,)``."""
    if z_i.shape != z_j.shape or z_i.ndim != 2 or alpha.shape != z_i.shape[:1]:
        raise ValueError(
            f"z_i, z_j (B, d) and alpha (B,), got {tuple(z_i.shape)}, {tuple(z_j.shape)}, "
            f"{tuple(alpha.shape)}"
        )
    if part not in ("all", "int", "ext") or not 0 <= n_int <= z_i.shape[1]:
        raise ValueError(f"part must be all/int/ext and 0 <= n_int <= d, got {part!r}, {n_int}")
    w = alpha[:, None].expand_as(z_i).clone()
    if part == "int":
        w[:, n_int:] = 0
    elif part == "ext":
        w[:, :n_int] = 0
    return (1 - w) * z_i + w * z_j


def interp_loss(D_mix: torch.Tensor, D_i: torch.Tensor, D_j: torch.Tensor, alpha: torch.Tensor,
                mask: torch.Tensor | None = None, relative: bool = True) -> torch.Tensor:
    """ℓ_interp, Eq. (3): the decoded interpolant's distances ``D_mix`` against
    ``(1-α) D_i + α D_j`` (all ``(B, V, V)``), relative (Euclidean) or normalised (geodesic)."""
    a = alpha[:, None, None]
    target = (1 - a) * D_i + a * D_j
    return (relative_error if relative else normalised_error)(target, D_mix, mask)


def intrinsic_loss(X_mix: torch.Tensor, X_i: torch.Tensor) -> torch.Tensor:
    """ℓ_int, Eq. (5): ``dec((1-α) z_i^int + α z_j^int | z_i^ext)`` of an isometric pair must
    have ``X_i``'s Euclidean distances (relative error)."""
    return recon_loss(X_mix, X_i)


def extrinsic_loss(X_mix: torch.Tensor, Dg_i: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """ℓ_ext, Eq. (6): ``dec(z_i^int | (1-α) z_i^ext + α z_j^ext)`` of a non-isometric pair must
    keep ``X_i``'s geodesic matrix ``Dg_i (B, V, V)`` (normalised error)."""
    return normalised_error(Dg_i, geodesic_matrix(X_mix, faces))


def interpolated_metric(d_x: torch.Tensor, d_y: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. (8): ``d_α = (1-α) d_X + α d_Y∘φ`` (correspondence by index)."""
    if d_x.shape != d_y.shape:
        raise ValueError(f"d_x and d_y must match, got {tuple(d_x.shape)}, {tuple(d_y.shape)}")
    return (1 - alpha) * d_x + alpha * d_y


def distortion(d_x: torch.Tensor, d_y: torch.Tensor) -> torch.Tensor:
    """The smallest ``K`` of Eq. (7) for the identity correspondence: ``max |d_X - d_Y|``."""
    if d_x.shape != d_y.shape:
        raise ValueError(f"d_x and d_y must match, got {tuple(d_x.shape)}, {tuple(d_y.shape)}")
    return (d_x - d_y).abs().amax((-2, -1))


# ---------------------------------------------------------------------------------------------
# the network (Sect. 3.3, Fig. 2)
# ---------------------------------------------------------------------------------------------
class LIMPVAE(nn.Module):
    """The VAE of Fig. 2: a PointNet encoder (``cvtutor.nn.pointnets.PointNet``, without the
    spatial transformer) to ``(μ, log σ²)`` of ``d = n_int + n_ext`` dimensions, and an MLP
    decoder ``z → (V, 3)`` vertices with LeakyReLU (the official code's), added to ``template
    (V, 3)`` if given (our choice: the mean training shape, so training starts near the data).
    ``encode(X (B, V, 3))``, ``decode(z (B, d))``."""

    def __init__(self, n_verts: int, n_int: int, n_ext: int, widths=(32, 64), head: int = 64,
                 dec_widths=(128, 256), template: torch.Tensor | None = None) -> None:
        super().__init__()
        if min(n_verts, n_int, n_ext) < 1:
            raise ValueError(f"n_verts, n_int, n_ext must be positive, got {n_verts, n_int, n_ext}")
        self.n_verts, self.n_int, self.d = n_verts, n_int, n_int + n_ext
        self.encoder = PointNet(2 * self.d, widths=tuple(widths), head=head)
        layers, c = [], self.d
        for w in dec_widths:
            layers += [nn.Linear(c, w), nn.LeakyReLU(0.2)]
            c = w
        self.decoder = nn.Sequential(*layers, nn.Linear(c, 3 * n_verts))
        t = torch.zeros(n_verts, 3) if template is None else template.detach().float().cpu()
        if t.shape != (n_verts, 3):
            raise ValueError(f"template must be ({n_verts}, 3), got {tuple(t.shape)}")
        self.register_buffer("template", t)

    def encode(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if X.ndim != 3 or X.shape[1:] != (self.n_verts, 3):
            raise ValueError(f"X must be (B, {self.n_verts}, 3), got {tuple(X.shape)}")
        mu, logvar = self.encoder(X.float()).float().chunk(2, -1)
        return mu, logvar.clamp(-12, 6)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.d:
            raise ValueError(f"z must be (B, {self.d}), got {tuple(z.shape)}")
        return self.template + self.decoder(z).float().reshape(-1, self.n_verts, 3)


# ---------------------------------------------------------------------------------------------
# the world: bendable sheets of several widths and lengths (exact isometries)
# ---------------------------------------------------------------------------------------------
def sheet_shapes(rows: int, cols: int, widths, lengths, bends, device=None) -> dict:
    """Every (style, pose) sheet of the miniature. A style is a rest rectangle ``length × width``
    (``u`` along the length); a pose bends it along ``u`` with the curvature profile ``bends[p]``
    (:func:`cvtutor.data.shapes3d.meshes.bend`, an exact isometry). Returns ``verts (S·P, V, 3)``
    centred, ``faces``, ``style``, ``pose`` (``(S·P,)`` long) and ``geodesic (S·P, V, V)``, the
    exact geodesic matrix (the flat distance in the rest rectangle: developable, convex)."""
    base = meshes.grid_sheet(rows, cols, device=device)
    styles = [(L, w) for w in widths for L in lengths]
    kappa = torch.as_tensor(bends, dtype=torch.float32, device=device)
    if kappa.ndim != 2:
        raise ValueError(f"bends must be (P, K) curvature profiles, got {tuple(kappa.shape)}")
    verts, geo, style, pose = [], [], [], []
    for s, (L, w) in enumerate(styles):
        uv = base["uv"] * torch.tensor([L, w], device=device)
        X = meshes.bend(uv.expand(len(kappa), -1, -1), kappa, width=L)
        verts.append(X - X.mean(1, keepdim=True))
        geo.append(torch.cdist(uv, uv).expand(len(kappa), -1, -1))
        style += [s] * len(kappa)
        pose += list(range(len(kappa)))
    return {
        "verts": torch.cat(verts),
        "faces": base["faces"],
        "geodesic": torch.cat(geo),
        "style": torch.tensor(style, device=device),
        "pose": torch.tensor(pose, device=device),
        "styles": styles,
    }


def training_split(style: torch.Tensor, pose: torch.Tensor, n_poses: int) -> torch.Tensor:
    """The few-shot training set: every style in the rest pose 0 and in one bent pose,
    ``1 + style mod (n_poses - 1)``; the other combinations are held out as ground truth of the
    disentanglement error. ``(N,)`` bool."""
    return (pose == 0) | (pose == 1 + style % (n_poses - 1))


# ---------------------------------------------------------------------------------------------
# the paper's numbers
# ---------------------------------------------------------------------------------------------
_T1 = {  # Table 1: interpolation error (VAE, Euc, Geo), disentanglement error (VAE, Euc, Geo)
    "FAUST": (3.89e-2, 5.08e-3, 3.82e-3, 7.16, 4.04, 3.48),
    "DFAUST": (9.82e-2, 3.43e-3, 2.89e-4, 6.15, 4.90, 4.11),
    "COMA": (1.32e-3, 1.03e-3, 7.51e-4, 1.55, 1.30, 1.22),
    "HANDS": (6.01e-3, 8.12e-4, 4.62e-4, float("nan"), float("nan"), float("nan")),
}

PAPER = {
    "table1_interp": report.PaperTable(
        "Table 1", "interpolation error, FAUST", dict(zip(MODELS, _T1["FAUST"][:3])),
        better="lower",
        note="DFAUST " + " / ".join(f"{v:.2e}" for v in _T1["DFAUST"][:3])
        + "; COMA " + " / ".join(f"{v:.2e}" for v in _T1["COMA"][:3]),
    ),
    "table1_disent": report.PaperTable(
        "Table 1", "disentanglement error, FAUST (units not stated)",
        dict(zip(MODELS, _T1["FAUST"][3:])), better="lower",
    ),
    "table1": _T1,
}


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config(ProfileConfig):
    rows: int = 8
    cols: int = 16
    widths: tuple[float, ...] = (0.4, 0.6, 0.8)
    lengths: tuple[float, ...] = (1.0, 1.3)
    bends: tuple[tuple[float, float], ...] = ((0.0, 0.0), (2.5, 2.5), (2.5, -2.5), (-2.5, -2.5))
    n_int: int = 12
    n_ext: int = 4
    enc_widths: tuple[int, ...] = (32, 64)
    enc_head: int = 64
    dec_widths: tuple[int, ...] = (128, 256)
    steps: int = 500
    warmup: float = 0.3  # reconstruction only (paper: 10^4 iterations)
    euclid_until: float = 0.55  # then + local Euclidean interpolation and ℓ_int; then + geodesic
    pairs: int = 4  # pairs per step for each pair loss
    lr: float = 3e-3  # paper: 1e-4 (tuned for its 10^4+ iterations)
    w_kl: float = 1e-4
    w_local: float = 1.0
    w_int: float = 1.0
    w_geo: float = 1.0
    w_ext: float = 1.0
    geo_sources: int | None = 16  # heat-method sources per training step (None: all V)
    local_radius: float = 0.1  # of the diameter (Sect. 3.1)
    alphas: tuple[float, ...] = (0.25, 0.5, 0.75)
    seeds: tuple[int, ...] = (0,)
    device: str | None = None

    @classmethod
    def fast(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        """16 x 40 sheets, the official code's latent (256 = 192 + 64) and decoder, 3 seeds."""
        return cls(rows=16, cols=40, n_int=192, n_ext=64, enc_widths=(32, 128, 256),
                   enc_head=256, dec_widths=(1024, 2048), steps=3000, pairs=8, lr=3e-4, geo_sources=None,
                   seeds=(0, 1, 2))

    @classmethod
    def smoke(cls) -> Config:
        """``full``'s code paths (several seeds, every model) at toy size."""
        return cls(rows=4, cols=6, n_int=6, n_ext=2, enc_widths=(8, 16), enc_head=16,
                   dec_widths=(16, 32), steps=10, pairs=2, seeds=(0, 1))


def make_data(config: Config, device=None) -> dict:
    """The sheets of ``config``, the training mask and the pair lists of the training set."""
    d = sheet_shapes(config.rows, config.cols, config.widths, config.lengths, config.bends, device)
    d["train"] = training_split(d["style"], d["pose"], len(config.bends))
    idx = d["train"].nonzero().squeeze(1)
    st, po = d["style"][idx], d["pose"][idx]
    i, j = torch.meshgrid(torch.arange(len(idx)), torch.arange(len(idx)), indexing="ij")
    i, j = i.flatten().to(idx.device), j.flatten().to(idx.device)
    off = i != j
    d["train_index"] = idx
    d["pairs_all"] = torch.stack([i[off], j[off]], 1)
    iso = off & (st[i] == st[j])
    d["pairs_iso"] = torch.stack([i[iso], j[iso]], 1)
    d["pairs_noniso"] = torch.stack([i[off & ~iso], j[off & ~iso]], 1)
    # the local-Euclidean neighbourhood (Sect. 3.1): geodesic < radius x diameter on the rest shape
    G = d["geodesic"][idx]
    d["local_mask"] = G < config.local_radius * G.amax((1, 2), keepdim=True)
    return d


def stage(step: int, config: Config) -> str:
    """The staged schedule: ``"recon"`` (first ``warmup``), ``"euclid"`` (local Euclidean
    interpolation and ℓ_int), then ``"geo"`` (+ geodesic interpolation and ℓ_ext)."""
    f = step / max(config.steps, 1)
    return "recon" if f < config.warmup else ("euclid" if f < config.euclid_until else "geo")


def _pair_schedule(d: dict, config: Config, seed: int) -> dict[str, torch.Tensor]:
    """Pairs and α for every step, drawn once on the device (seeded): ``(steps, pairs, 2)``."""
    dev = d["verts"].device
    g = torch.Generator(device=dev).manual_seed(seed + 17)
    out = {}
    for k in ("all", "iso", "noniso"):
        P = d[f"pairs_{k}"]
        pick = torch.randint(len(P), (config.steps, config.pairs), generator=g, device=dev)
        out[k] = P[pick]
        out[f"alpha_{k}"] = torch.rand(config.steps, config.pairs, generator=g, device=dev)
    return out


def new_model(config: Config, d: dict, seed: int = 0) -> tuple[LIMPVAE, torch.optim.Optimizer]:
    """A seeded :class:`LIMPVAE` on ``d``'s device (template: the mean training sheet) and its
    Adam optimiser."""
    seed_everything(seed)
    X = d["verts"][d["train_index"]]
    model = LIMPVAE(X.shape[1], config.n_int, config.n_ext, config.enc_widths, config.enc_head,
                    config.dec_widths, template=X.mean(0)).to(X.device)
    return model, torch.optim.Adam(model.parameters(), lr=config.lr)


def train_model(config: Config, d: dict, model_name: str, seed: int = 0,
                start: tuple[LIMPVAE, torch.optim.Optimizer, int] | None = None):
    """Train one of Table 1's models: ``"VAE"`` (ℓ_recon + KL), ``"Ours Euc"`` (+ local Euclidean
    ℓ_interp and ℓ_int after the warm-up), ``"Ours Geo"`` (+ geodesic ℓ_interp and ℓ_ext in the
    last stage), from step 0 or from ``start = (model, optimiser, step)`` (a shared warm-up; the
    model and optimiser are trained in place). Returns the model and the loss history."""
    if model_name not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model_name!r}")
    model, opt, first = start if start is not None else (*new_model(config, d, seed), 0)
    dev = d["verts"].device
    X = d["verts"][d["train_index"]]
    faces = d["faces"]
    sched = _pair_schedule(d, config, seed)
    g = torch.Generator(device=dev).manual_seed(seed * 7919 + first + 29)
    DE = euclidean_matrix(X)
    use_euc = model_name != "VAE"
    use_geo = model_name == "Ours Geo"
    V = X.shape[1]
    src = None if config.geo_sources is None else torch.linspace(
        0, V - 1, min(config.geo_sources, V), device=dev).round().long()

    def loss_fn(models, step, _):
        m = models["model"]
        mu, logvar = m.encode(X)
        z = reparameterize(mu, logvar, generator=g)
        Xr = m.decode(z)
        terms = {"recon": relative_error(DE, euclidean_matrix(Xr)),
                 "kl": kl_to_prior(mu, logvar).mean()}
        loss = terms["recon"] + config.w_kl * terms["kl"]
        s = stage(step, config)
        if use_euc and s != "recon":
            p, a = sched["all"][step], sched["alpha_all"][step]
            Xm = m.decode(interpolate_latent(z[p[:, 0]], z[p[:, 1]], a, config.n_int))
            DEr = euclidean_matrix(Xr).detach()
            mask = d["local_mask"][p[:, 0]] & d["local_mask"][p[:, 1]]
            terms["local"] = interp_loss(euclidean_matrix(Xm), DEr[p[:, 0]], DEr[p[:, 1]], a,
                                         mask=mask)
            q, b = sched["iso"][step], sched["alpha_iso"][step]
            Xi = m.decode(interpolate_latent(z[q[:, 0]], z[q[:, 1]], b, config.n_int, "int"))
            terms["int"] = relative_error(DE[q[:, 0]], euclidean_matrix(Xi))
            loss = loss + config.w_local * terms["local"] + config.w_int * terms["int"]
            if use_geo and s == "geo":
                with torch.no_grad():  # the target: geodesics of the reconstructions X'
                    Dr = geodesic_matrix(Xr[torch.cat([p[:, 0], p[:, 1]])], faces, sources=src)
                Di, Dj = Dr.chunk(2)
                Dm = geodesic_matrix(Xm, faces, sources=src)
                terms["geo"] = interp_loss(Dm, Di, Dj, a, relative=False)
                r, c = sched["noniso"][step], sched["alpha_noniso"][step]
                Xe = m.decode(interpolate_latent(z[r[:, 0]], z[r[:, 1]], c, config.n_int, "ext"))
                Dg = d["geodesic"][d["train_index"][r[:, 0]]]
                De = geodesic_matrix(Xe, faces, sources=src)
                terms["ext"] = normalised_error(Dg if src is None else Dg[:, :, src], De)
                loss = loss + config.w_geo * terms["geo"] + config.w_ext * terms["ext"]
        terms["loss"] = loss
        return terms

    model.train()
    hist = fit(model, opt, lambda step: first + step, lambda ms, st, _: loss_fn(ms, st, _),
               steps=config.steps - first, progress=False, desc=model_name, grad_clip=10.0)
    hist["step"] = hist["step"] + first
    model.eval()
    return model, hist


def train_models(config: Config, d: dict, seed: int = 0) -> dict[str, tuple[LIMPVAE, pd.DataFrame]]:
    """Table 1's three models of one seed. The reconstruction-only warm-up is the same for all
    three, so it is trained once and copied (same seed, same numbers as three separate runs)."""
    import copy

    warm = int(np.ceil(config.warmup * config.steps))
    model, opt = new_model(config, d, seed)
    model, hist0 = train_model(config.replace(steps=warm), d, "VAE", seed, start=(model, opt, 0))
    out = {}
    for name in MODELS:
        m = copy.deepcopy(model)
        o = torch.optim.Adam(m.parameters(), lr=config.lr)
        o.load_state_dict(copy.deepcopy(opt.state_dict()))
        m, h = train_model(config, d, name, seed, start=(m, o, warm))
        out[name] = (m, pd.concat([hist0, h], ignore_index=True))
    return out


# ---------------------------------------------------------------------------------------------
# the metrics (Sects. 4.2-4.3)
# ---------------------------------------------------------------------------------------------
def interpolation_error(model: LIMPVAE, d: dict, alphas=(0.25, 0.5, 0.75)) -> dict:
    """Sect. 4.2's interpolation error on the training shapes' isometric pairs (rest ↔ bent, one
    per style): decode ``(1-α) μ_i + α μ_j``, compute its heat geodesics and compare with ``d_α``
    of Eq. (8) from the heat geodesics of the two inputs (the same tool on both sides). Our
    normalisation: ``mean_ij |D_g - d_α| / mean_ij d_α``. Returns ``error`` (mean), ``table``
    (per pair and α) and ``per_vertex`` ``(pairs, alphas, V)`` distortions."""
    idx = d["train_index"]
    pairs = d["pairs_iso"]
    pairs = pairs[d["pose"][idx][pairs[:, 0]] == 0]  # rest → bent
    X = d["verts"][idx]
    with torch.no_grad():
        mu, _ = model.encode(X)
        DX = geodesic_matrix(X, d["faces"])
        rows, per_vertex = [], []
        for a in alphas:
            al = torch.full((len(pairs),), float(a), device=X.device)
            Xm = model.decode(interpolate_latent(mu[pairs[:, 0]], mu[pairs[:, 1]], al, mu.shape[1]))
            Dm = geodesic_matrix(Xm, d["faces"])
            da = interpolated_metric(DX[pairs[:, 0]], DX[pairs[:, 1]], a)
            scale = da.mean((1, 2))
            err = (Dm - da).abs().mean((1, 2)) / scale
            per_vertex.append((Dm - da).abs().mean(2) / scale[:, None])
            for k in range(len(pairs)):
                rows.append({"pair": k, "alpha": a, "error": float(err[k])})
    table = pd.DataFrame(rows)
    return {"error": float(table["error"].mean()), "table": table,
            "per_vertex": torch.stack(per_vertex, 1), "pairs": pairs}


def disentanglement_error(model: LIMPVAE, d: dict) -> float:
    """Sect. 4.3's disentanglement error: for training shapes ``i, j`` of different style and pose,
    decode ``(μ_i^int | μ_j^ext)`` and take the mean point-to-point distance to the ground-truth
    sheet of ``i``'s style in ``j``'s pose (held out or not). In units of the sheets' length."""
    idx = d["train_index"]
    st, po = d["style"][idx], d["pose"][idx]
    i, j = d["pairs_all"].unbind(1)
    keep = (st[i] != st[j]) & (po[i] != po[j])
    i, j = i[keep], j[keep]
    n_poses = int(d["pose"].max()) + 1
    gt = d["verts"][st[i] * n_poses + po[j]]
    with torch.no_grad():
        mu, _ = model.encode(d["verts"][idx])
        z = torch.cat([mu[i, :model.n_int], mu[j, model.n_int:]], 1)
        return float((model.decode(z) - gt).norm(dim=-1).mean())


def latent_codes(model: LIMPVAE, d: dict) -> pd.DataFrame:
    """``μ`` of every sheet (training and held out; Fig. 6's input) as a DataFrame with columns
    ``style``, ``pose``, ``train``, ``int_0..``, ``ext_0..``."""
    with torch.no_grad():
        mu, _ = model.encode(d["verts"])
    mu = mu.cpu().numpy()
    df = pd.DataFrame({"style": d["style"].cpu().numpy(), "pose": d["pose"].cpu().numpy(),
                       "train": d["train"].cpu().numpy()})
    cols = [f"int_{k}" for k in range(model.n_int)] + [
        f"ext_{k}" for k in range(mu.shape[1] - model.n_int)]
    return pd.concat([df, pd.DataFrame(mu, columns=cols)], axis=1)


def latent_separation(codes: pd.DataFrame) -> dict[str, float]:
    """Fig. 6 as numbers: the silhouette (:func:`sklearn.metrics.silhouette_score`) of ``z^int``
    by style and by pose, and of ``z^ext`` by pose and by style (all sheets)."""
    from sklearn.metrics import silhouette_score

    zi = codes.filter(like="int_").to_numpy()
    ze = codes.filter(like="ext_").to_numpy()
    return {
        "int by style": float(silhouette_score(zi, codes["style"])),
        "int by pose": float(silhouette_score(zi, codes["pose"])),
        "ext by pose": float(silhouette_score(ze, codes["pose"])),
        "ext by style": float(silhouette_score(ze, codes["style"])),
    }


# ---------------------------------------------------------------------------------------------
# the whole miniature
# ---------------------------------------------------------------------------------------------
def _pm(values: pd.Series) -> str:
    return f"{values.mean():.3g}" + (f" ± {values.std(ddof=1):.2g}" if len(values) > 1 else "")


def run(config: Config, models: dict | None = None) -> dict:
    """Table 1 in miniature (interpolation and disentanglement errors of VAE / Ours Euc / Ours Geo
    for every seed), Fig. 6's latent separation, the paper-vs-ours tables and the findings.
    ``models``, if given, is filled with the data, the first seed's models and per-vertex
    distortions (for the notebook's figures)."""
    device = get_device(config.device)
    d = make_data(config, device)
    rows, seps, curves = [], [], {}
    for seed in config.seeds:
        for name, (model, hist) in train_models(config, d, seed).items():
            ie = interpolation_error(model, d, config.alphas)
            sep = latent_separation(latent_codes(model, d))
            rows.append({"model": name, "seed": seed, "interpolation error": ie["error"],
                         "disentanglement error": disentanglement_error(model, d)})
            seps.append({"model": name, "seed": seed} | sep)
            if seed == config.seeds[0]:
                curves[name] = hist
                if models is not None:
                    models[name] = model
                    models[f"{name} per_vertex"] = ie["per_vertex"]
                    models[f"{name} pairs"] = ie["pairs"]
    if models is not None:
        models["data"] = d
    table = pd.DataFrame(rows)
    sep = pd.DataFrame(seps)
    means = table.groupby("model")[["interpolation error", "disentanglement error"]].mean()
    ie, de = means["interpolation error"], means["disentanglement error"]
    comp_i = report.compare(PAPER["table1_interp"], ie.to_dict(),
                            claims=["VAE > Ours Euc", "Ours Euc > Ours Geo"])
    comp_d = report.compare(PAPER["table1_disent"], de.to_dict(),
                            claims=["VAE > Ours Euc", "Ours Euc > Ours Geo"])
    per_seed = table.pivot(index="seed", columns="model")
    pi, pd_ = per_seed["interpolation error"], per_seed["disentanglement error"]
    sm = sep.groupby("model").mean(numeric_only=True)
    n = len(config.seeds)
    findings = report.claims_table({
        "Table 1: the VAE interpolates worse than Ours Euc (interpolation error)": (
            "paper claim", bool(ie["VAE"] > ie["Ours Euc"]),
            f"{_pm(pi['VAE'])} vs {_pm(pi['Ours Euc'])}, {n} seed(s)"),
        "Table 1: Ours Euc interpolates worse than Ours Geo": (
            "paper claim", bool(ie["Ours Euc"] > ie["Ours Geo"]),
            f"{_pm(pi['Ours Euc'])} vs {_pm(pi['Ours Geo'])}"),
        "Table 1: Ours Geo beats the VAE by an order of magnitude (interpolation)": (
            "paper claim", bool(ie["VAE"] > 10 * ie["Ours Geo"]),
            f"ratio {ie['VAE'] / max(ie['Ours Geo'], 1e-12):.1f}"),
        "Table 1: disentanglement error VAE > Ours Euc": (
            "paper claim", bool(de["VAE"] > de["Ours Euc"]),
            f"{_pm(pd_['VAE'])} vs {_pm(pd_['Ours Euc'])}"),
        "Table 1: disentanglement error Ours Euc > Ours Geo": (
            "paper claim", bool(de["Ours Euc"] > de["Ours Geo"]),
            f"{_pm(pd_['Ours Euc'])} vs {_pm(pd_['Ours Geo'])}"),
        "Fig. 6: Ours Geo's z^int groups by style more than by pose": (
            "paper claim", bool(sm.loc["Ours Geo", "int by style"] > sm.loc["Ours Geo", "int by pose"]),
            f"silhouette {sm.loc['Ours Geo', 'int by style']:.2f} vs "
            f"{sm.loc['Ours Geo', 'int by pose']:.2f}"),
        "Fig. 6: Ours Geo's z^ext groups by pose more than by style": (
            "paper claim", bool(sm.loc["Ours Geo", "ext by pose"] > sm.loc["Ours Geo", "ext by style"]),
            f"silhouette {sm.loc['Ours Geo', 'ext by pose']:.2f} vs "
            f"{sm.loc['Ours Geo', 'ext by style']:.2f}"),
    })
    return {
        "table1": table,
        "table1_means": means.reset_index(),
        "compare_interp": comp_i,
        "compare_disent": comp_d,
        "separation": sep,
        "curves_vae": curves["VAE"],
        "curves_euc": curves["Ours Euc"],
        "curves_geo": curves["Ours Geo"],
        "findings": findings,
    }
