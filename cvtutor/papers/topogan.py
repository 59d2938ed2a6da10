"""TopoGAN: A Topology-Aware Generative Adversarial Network (Wang, Liu, Samaras, Chen; ECCV 2020).

A GAN for structure masks (membranes, roads) whose generator gets, besides the WGAN-GP loss, a
*topological GAN loss* that matches synthetic and real masks in the space of persistence diagrams.

Pieces, in the order of the paper
---------------------------------
Def. 1    distance transform of a mask padded with a structure frame  -> :func:`distance_transform_filtration`
Sect. 3.1 1-dim persistence of its sublevel filtration, with the critical (birth) pixel of each hole
          (gudhi cubical complexes)                                     -> :func:`persistence_diagram`
Eq. (3)   birth-only 1-Wasserstein distance with the diagonal       -> :func:`birth_wasserstein`
Eq. (5)   optimal transport between the sets of synthetic and real diagrams -> :func:`transport_plan`
Eq. (4)   topological GAN loss                                       -> :func:`topological_loss`
Sect. 3.3 its gradient, pushed to the pixels through the critical pixels -> :func:`topological_gradient`
Eqs. (1-2) WGAN-GP with DCGAN generator and critic                   -> :func:`train_gan`
Sect. 3.4 Betti score (chi^2) and unbiased MMD with a diagram kernel  -> :func:`betti_score`, :func:`diagram_mmd`

Readings where the paper is not explicit (the supplement is not available)
--------------------------------------------------------------------------
* Eq. (3), the diagonal: we use the one-slice *sliced Wasserstein* construction the paper points
  to ([6], Carrière et al. 2017): each diagram is augmented with the diagonal projections of the
  other's points, everything is projected onto the birth axis, and the two equal-size sets are
  matched on the line (sort-and-match). A point left alone pays (d - b) / 2.
* Sect. 3.3, d f(s_x) / d G(z): b_x = f(s_x) = ||s_x - r_x|| with r_x the structure pixel nearest
  to the saddle s_x. We set d b_x / d p = -1 on r_x and on q_x, the next pixel from r_x towards
  s_x ("change the image values of the few pixels near r"), and 0 elsewhere. Gradient descent then
  raises p at r_x, q_x (grows the mask towards the saddle) when dL/db_x = +1, and lowers it (erodes
  the mask at r_x) when dL/db_x = -1. The matchings pi*, sigma* are held constant.
* The threshold of the generated grey image is 0.5; the loss is averaged over the batch in the
  GAN (Eq. (4) sums; lambda absorbs the batch size).
* Schedule (ours, for time): persistence and the transport LP run on the CPU, so the GAN applies
  lambda L_topo on every ``topo_every``-th generator step only, on ``topo_batch`` of the samples.
* Not trained: the paper's WGAN-SN baseline (its numbers are kept in :data:`PAPER_WGAN_SN`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy import ndimage, optimize, sparse
from scipy.spatial.distance import cdist
from torch import nn

from cvtutor import report
from cvtutor.data import membranes
from cvtutor.metrics.generative import FeatureNet, FIDLite, frechet_distance
from cvtutor.nn.gan import gradient_penalty
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import backward_and_step, fit, minibatches


# ---------------------------------------------------------------------------------------------
# Sect. 3.1: from a mask to a persistence diagram
# ---------------------------------------------------------------------------------------------
def _as_mask(mask) -> np.ndarray:
    m = mask.detach().cpu().numpy() if torch.is_tensor(mask) else np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"a mask must be 2-D (H, W), got shape {m.shape}")
    if m.dtype != bool:
        if not np.all((m == 0) | (m == 1)):
            raise ValueError("a mask must be boolean or hold only 0 and 1; threshold grey images first")
        m = m.astype(bool)
    return m


def distance_transform_filtration(mask, pad: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Definition 1: f(p) = min_q {||p - q|| : q structure}, the filtration function of a mask.

    With ``pad`` the mask first gets a one-pixel structure frame (Sect. 3.1: "so that all branches
    form holes"). Returns ``f`` of shape (H+2, W+2) (or (H, W)) and, for every pixel, the (row, col)
    of its nearest structure pixel, shape (2, H+2, W+2). Structure pixels have f = 0: the sublevel
    sets {f <= t} grow the structure by t.
    """
    m = _as_mask(mask)
    if pad:
        m = np.pad(m, 1, constant_values=True)
    if not m.any():
        raise ValueError("the mask has no structure pixel; use pad=True or a non-empty mask")
    f, nearest = ndimage.distance_transform_edt(~m, return_indices=True)
    return f, nearest


@dataclass
class Diagram:
    """A 1-dim persistence diagram: births, deaths, the critical birth pixel s_x of each hole
    (padded coordinates) and the structure pixel r_x nearest to it."""

    births: np.ndarray
    deaths: np.ndarray
    birth_pixels: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    nearest: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))

    def __len__(self) -> int:
        return len(self.births)

    @property
    def points(self) -> np.ndarray:
        return np.stack([self.births, self.deaths], 1) if len(self) else np.zeros((0, 2))

    @property
    def betti(self) -> int:
        """The Betti number of the mask: holes born at t = 0."""
        return int(np.sum(self.births == 0))

    @classmethod
    def from_points(cls, points) -> "Diagram":
        pts = np.asarray(points, float).reshape(-1, 2)
        if np.any(pts[:, 1] < pts[:, 0]):
            raise ValueError("every diagram point needs death >= birth")
        return cls(pts[:, 0].copy(), pts[:, 1].copy())


def persistence_diagram(mask, pad: bool = True, min_persistence: float = 0.0) -> Diagram:
    """Sect. 3.1: the 1-dim persistence diagram of the distance-transform filtration of ``mask``.

    gudhi's cubical complex takes the pixels as top-dimensional cells (a pixel enters the sublevel
    set at t = f(pixel)); ``cofaces_of_persistence_pairs`` gives, for each hole, the pixel whose
    entry creates it (its value is the birth time) and the pixel whose entry fills it. gudhi
    flattens the pixel array in Fortran order. Points with death - birth <= ``min_persistence`` are dropped.
    """
    import gudhi

    f, nearest = distance_transform_filtration(mask, pad)
    cc = gudhi.CubicalComplex(top_dimensional_cells=f)
    cc.compute_persistence(homology_coeff_field=2, min_persistence=-1.0)
    regular, _ = cc.cofaces_of_persistence_pairs()
    pairs = regular[1] if len(regular) > 1 else np.zeros((0, 2), np.int64)
    if len(pairs) == 0:
        return Diagram(np.zeros(0), np.zeros(0))
    flat = f.ravel(order="F")
    births, deaths = flat[pairs[:, 0]], flat[pairs[:, 1]]
    keep = deaths - births > min_persistence
    bi = np.stack(np.unravel_index(pairs[keep, 0], f.shape, order="F"), 1)
    order = np.lexsort((deaths[keep], births[keep]))
    bi = bi[order]
    r = nearest[:, bi[:, 0], bi[:, 1]].T if len(bi) else np.zeros((0, 2), np.int64)
    return Diagram(births[keep][order], deaths[keep][order], bi, r)


def diagrams(masks, pad: bool = True, min_persistence: float = 0.0) -> list[Diagram]:
    """:func:`persistence_diagram` of each mask of an (N, H, W) batch."""
    arr = masks.detach().cpu().numpy() if torch.is_tensor(masks) else np.asarray(masks)
    if arr.ndim != 3:
        raise ValueError(f"masks must be (N, H, W), got shape {arr.shape}")
    return [persistence_diagram(m, pad, min_persistence) for m in arr.astype(bool)]


# ---------------------------------------------------------------------------------------------
# Eq. (3): birth-only 1-Wasserstein distance between two diagrams
# ---------------------------------------------------------------------------------------------
def _points(d) -> np.ndarray:
    if isinstance(d, Diagram):
        return d.points
    pts = np.asarray(d, float)
    if pts.size == 0:
        return np.zeros((0, 2))
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"a diagram is a Diagram or an (n, 2) array of (birth, death), got shape {pts.shape}")
    return pts


def birth_wasserstein(dgm1, dgm2, diagonal: bool = True, return_targets: bool = False):
    """Eq. (3): W_1(dgm1, dgm2) = min_sigma sum_x |b_x - b_sigma(x)|, births only.

    With ``diagonal`` (our reading, see the module docstring) dgm1 is augmented with the diagonal
    projections (b'+d')/2 of dgm2's points and vice versa; on the birth axis the optimal matching of
    two equal-size sets is sort-and-match. Without it, both diagrams must have the same size.
    With ``return_targets`` also returns, for each point of dgm1, the birth value it is matched to.
    """
    p1, p2 = _points(dgm1), _points(dgm2)
    if diagonal:
        a = np.concatenate([p1[:, 0], p2.sum(1) / 2])
        b = np.concatenate([p2[:, 0], p1.sum(1) / 2])
    else:
        if len(p1) != len(p2):
            raise ValueError(f"without the diagonal both diagrams need the same size, got {len(p1)} and {len(p2)}")
        a, b = p1[:, 0], p2[:, 0]
    ia, ib = np.argsort(a, kind="stable"), np.argsort(b, kind="stable")
    dist = float(np.abs(a[ia] - b[ib]).sum())
    if not return_targets:
        return dist
    partner = np.empty(len(a))
    partner[ia] = b[ib]
    return dist, partner[: len(p1)]


def _step_functions(dgms: Sequence, grid: np.ndarray) -> np.ndarray:
    """phi(t) = #{births <= t} - #{(b+d)/2 <= t} on the left ends of the grid intervals."""
    out = np.empty((len(dgms), len(grid)))
    for i, d in enumerate(dgms):
        p = _points(d)
        out[i] = (np.searchsorted(np.sort(p[:, 0]), grid, side="right")
                  - np.searchsorted(np.sort(p.sum(1) / 2), grid, side="right"))
    return out


def birth_wasserstein_matrix(dgms1: Sequence, dgms2: Sequence) -> np.ndarray:
    """All pairwise Eq. (3) distances at once: W_1(i, j) = integral |phi_i(t) - phi_j(t)| dt.

    For two equal-size sets A, B on a line, sort-and-match costs the integral of the difference
    of their counting functions; with A = births1 + mids2 and B = births2 + mids1 that difference
    is phi_1 - phi_2. So Eq. (3) is an L1 distance between the step functions phi.
    """
    pts = [_points(d) for d in (*dgms1, *dgms2)]
    values = np.concatenate([np.concatenate([p[:, 0], p.sum(1) / 2]) for p in pts] + [np.zeros(1)])
    grid = np.unique(values)
    if len(grid) < 2:
        return np.zeros((len(dgms1), len(dgms2)))
    widths = np.diff(grid)
    f1 = _step_functions(dgms1, grid[:-1])
    f2 = _step_functions(dgms2, grid[:-1])
    return cdist(f1, f2, "minkowski", p=1, w=widths)


# ---------------------------------------------------------------------------------------------
# Eq. (5): optimal transport between the two sets of diagrams; Eq. (4): the loss
# ---------------------------------------------------------------------------------------------
def transport_plan(cost: np.ndarray) -> np.ndarray:
    """Eq. (5): gamma* = argmin_{gamma >= 0} <C, gamma> with row sums 1/n_syn, column sums 1/n_real.

    Solved exactly as a linear program (HiGHS dual simplex, so the plan is a vertex: a permutation
    over n when n_syn = n_real).
    """
    cost = np.asarray(cost, float)
    if cost.ndim != 2 or min(cost.shape) < 1:
        raise ValueError(f"cost must be a non-empty (n_syn, n_real) matrix, got shape {cost.shape}")
    n, m = cost.shape
    rows = sparse.kron(sparse.eye(n), np.ones((1, m)))
    cols = sparse.kron(np.ones((1, n)), sparse.eye(m))
    a_eq = sparse.vstack([rows, cols]).tocsr()
    b_eq = np.concatenate([np.full(n, 1.0 / n), np.full(m, 1.0 / m)])
    res = optimize.linprog(cost.ravel(), A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs-ds")
    if res.status != 0:
        raise RuntimeError(f"the transport linear program failed: {res.message}")
    return res.x.reshape(n, m)


def match_diagram_sets(syn: Sequence[Diagram], real: Sequence[Diagram]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pi*: the real diagram h(i) = argmax_j gamma*_ij matched to each synthetic one (Sect. 3.2).

    Returns ``h``, the cost matrix and the plan.
    """
    if len(syn) == 0 or len(real) == 0:
        raise ValueError("need at least one synthetic and one real diagram")
    cost = birth_wasserstein_matrix(syn, real)
    plan = transport_plan(cost)
    return plan.argmax(1), cost, plan


def _segment_step(r: np.ndarray, s: np.ndarray) -> np.ndarray | None:
    """The pixel one step from r towards s (None if r = s)."""
    v = s - r
    n = np.hypot(*v)
    if n == 0:
        return None
    return np.rint(r + v / max(n, 1.0)).astype(int)


def topological_gradient(dgm: Diagram, target_births: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Sect. 3.3 (our reading): dL^i/dp for one synthetic grey image p of ``shape``.

    dL/db_x = sign(b_x - b_sigma*(x)); db_x/df = delta at the saddle s_x; df(s_x)/dp = -1 on the
    nearest structure pixel r_x and on the pixel q_x one step from r_x towards s_x (frame pixels,
    outside the image, are skipped).
    """
    grad = np.zeros(shape)
    sign = np.sign(dgm.births - target_births)
    for g, s, r in zip(sign, dgm.birth_pixels, dgm.nearest):
        if g == 0:
            continue
        for pix in (r, _segment_step(r, s)):
            if pix is None:
                continue
            y, x = pix[0] - 1, pix[1] - 1  # padded -> image coordinates
            if 0 <= y < shape[0] and 0 <= x < shape[1]:
                grad[y, x] += -g
    return grad


def topological_loss_numpy(images: np.ndarray, real: Sequence[Diagram], threshold: float = 0.5,
                           reduction: str = "sum") -> tuple[float, np.ndarray, dict]:
    """Eq. (4) and its gradient: L_topo = sum_i W_1(dgm_i, pi*(dgm_i)) for grey images (N, H, W).

    Returns the loss, dL/dimages (N, H, W) and a dict with the matching ``h``, the per-image
    distances ``w`` and the diagrams.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    images = np.asarray(images, float)
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W), got shape {images.shape}")
    syn = diagrams(images > threshold)
    h, cost, plan = match_diagram_sets(syn, real)
    grad = np.zeros_like(images)
    w = np.zeros(len(syn))
    for i, d in enumerate(syn):
        w[i], targets = birth_wasserstein(d, real[h[i]], return_targets=True)
        grad[i] = topological_gradient(d, targets, images.shape[1:])
    scale = 1.0 if reduction == "sum" else 1.0 / len(syn)
    return float(w.sum() * scale), grad * scale, {"h": h, "w": w, "cost": cost, "plan": plan, "diagrams": syn}


class _TopoLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, images, real, threshold, reduction):
        x = images.detach().float().cpu().numpy()
        loss, grad, _ = topological_loss_numpy(x, real, threshold, reduction)
        ctx.save_for_backward(torch.as_tensor(grad, dtype=images.dtype, device=images.device))
        return images.new_tensor(loss)

    @staticmethod
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        return grad_out * grad, None, None, None


def topological_loss(images: torch.Tensor, real: Sequence[Diagram], threshold: float = 0.5,
                     reduction: str = "sum") -> torch.Tensor:
    """Eq. (4) as a torch loss on grey images (N, H, W) or (N, 1, H, W) in [0, 1]: its value is
    L_topo, its backward is the Sect. 3.3 gradient of :func:`topological_gradient`."""
    if not torch.is_tensor(images):
        raise TypeError(f"images must be a torch tensor, got {type(images).__name__}")
    if images.ndim == 4 and images.shape[1] == 1:
        return _TopoLoss.apply(images[:, 0], real, threshold, reduction)
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W) or (N, 1, H, W), got shape {tuple(images.shape)}")
    return _TopoLoss.apply(images, real, threshold, reduction)


# ---------------------------------------------------------------------------------------------
# Sect. 3.4: topology-aware metrics, and a Frechet distance on features of a small network
# ---------------------------------------------------------------------------------------------
def betti_histogram(betti: Sequence[int], n_bins: int) -> np.ndarray:
    """The normalised histogram of Betti numbers over 0 .. n_bins - 1 (larger values in the last bin)."""
    b = np.clip(np.asarray(betti, int), 0, n_bins - 1)
    if b.size == 0:
        raise ValueError("need at least one Betti number")
    return np.bincount(b, minlength=n_bins) / b.size


def chi2_distance(h1: np.ndarray, h2: np.ndarray) -> float:
    """chi^2(h1, h2) = sum_b (h1 - h2)^2 / (h1 + h2) over bins where h1 + h2 > 0 (in [0, 2])."""
    h1, h2 = np.asarray(h1, float), np.asarray(h2, float)
    if h1.shape != h2.shape:
        raise ValueError(f"histograms need the same shape, got {h1.shape} and {h2.shape}")
    s = h1 + h2
    nz = s > 0
    return float(((h1[nz] - h2[nz]) ** 2 / s[nz]).sum())


def betti_score(betti_syn: Sequence[int], betti_real: Sequence[int]) -> float:
    """Sect. 3.4 Betti score: chi^2 distance of the Betti-number histograms of synthetic and real masks."""
    n_bins = int(max(np.max(betti_syn), np.max(betti_real))) + 1
    return chi2_distance(betti_histogram(betti_syn, n_bins), betti_histogram(betti_real, n_bins))


def unbiased_mmd2(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012, Eq. 3): off-diagonal means of K_xx and K_yy minus 2 mean K_xy."""
    m, n = len(k_xx), len(k_yy)
    if m < 2 or n < 2 or k_xy.shape != (m, n):
        raise ValueError(f"need K_xx (m,m), K_yy (n,n), K_xy (m,n) with m, n >= 2; got {k_xx.shape}, "
                         f"{k_yy.shape}, {k_xy.shape}")
    sxx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    syy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(sxx + syy - 2 * k_xy.mean())


def diagram_kernel(dgms1: Sequence, dgms2: Sequence, sigma2: float) -> np.ndarray:
    """k(dgm_i, dgm_j) = exp(-W_1(dgm_i, dgm_j) / sigma^2), Sect. 3.4."""
    if sigma2 <= 0:
        raise ValueError(f"sigma2 must be positive, got {sigma2}")
    return np.exp(-birth_wasserstein_matrix(dgms1, dgms2) / sigma2)


def diagram_mmd(syn: Sequence, real: Sequence, sigma2: float) -> float:
    """Sect. 3.4: the unbiased MMD^2 between two sets of diagrams with the W_1 Gaussian kernel."""
    return unbiased_mmd2(diagram_kernel(syn, syn, sigma2), diagram_kernel(real, real, sigma2),
                         diagram_kernel(syn, real, sigma2))


#: The feature net of the Fréchet distance: the FID-lite net of :mod:`cvtutor.metrics.generative`,
#: trained here on real masks to classify their number of holes (no Inception weights offline).
CountNet = FeatureNet


def train_count_net(masks: torch.Tensor, holes: torch.Tensor, steps: int, seed: int = 0,
                    batch_size: int = 64, progress: bool = True) -> tuple[CountNet, pd.DataFrame]:
    """Train :class:`CountNet` on real masks (N, 1, H, W) and their hole counts; frozen."""
    fid = FIDLite.train(masks, holes, steps=steps, seed=seed, batch_size=batch_size,
                        progress=progress, desc="count net")
    return fid.net, fid.history


def count_features(net: CountNet, masks: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """(N, 32) features of masks (N, 1, H, W) for the Fréchet distance."""
    return FIDLite(net).features(masks, batch_size)


# ---------------------------------------------------------------------------------------------
# Eqs. (1-2) as WGAN-GP, with DCGAN generator and critic
# ---------------------------------------------------------------------------------------------
class DCGANGenerator(nn.Module):
    """z -> 4x4 -> ... -> size x size grey image in [0, 1] (transposed convs, batch norm, sigmoid)."""

    def __init__(self, z_dim: int = 64, size: int = 32, width: int = 32) -> None:
        super().__init__()
        if size not in (16, 32, 64):
            raise ValueError(f"size must be 16, 32 or 64, got {size}")
        n_up = int(np.log2(size // 4))
        ch = width * 2 ** (n_up - 1)
        self.z_dim = z_dim
        self.fc = nn.Sequential(nn.Linear(z_dim, ch * 16), nn.BatchNorm1d(ch * 16), nn.ReLU())
        layers: list[nn.Module] = []
        for _ in range(n_up - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1), nn.BatchNorm2d(ch // 2), nn.ReLU()]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, 1, 4, 2, 1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)
        self.ch0 = width * 2 ** (n_up - 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(len(z), self.ch0, 4, 4))


class DCGANCritic(nn.Module):
    """size x size -> 4x4 -> a score (strided convs, LeakyReLU, no batch norm: WGAN-GP)."""

    def __init__(self, size: int = 32, width: int = 32) -> None:
        super().__init__()
        n_down = int(np.log2(size // 4))
        layers: list[nn.Module] = []
        ch_in, ch = 1, width
        for _ in range(n_down):
            layers += [nn.Conv2d(ch_in, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
            ch_in, ch = ch, ch * 2
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(ch_in * 16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


# ---------------------------------------------------------------------------------------------
# the reference numbers
# ---------------------------------------------------------------------------------------------
_T1 = "Table 1 (CREMI column; mean of 3 runs)"
_T2 = "Table 2 (CREMI column; Dice of a U-Net, 3-fold CV)"
PAPER = {
    "fid": report.PaperTable(_T1, "FID", {"WGAN-GP": 21.64, "TopoGAN": 20.96}, better="lower"),
    "mmd": report.PaperTable(_T1, "unbiased MMD", {"WGAN-GP": 0.142, "TopoGAN": 0.134},
                             better="lower"),
    "betti": report.PaperTable(_T1, "Betti score", {"WGAN-GP": 0.236, "TopoGAN": 0.015},
                               better="lower"),
    "dice": report.PaperTable(_T2, "Dice", {
        "Real data": 0.896, "WGAN-GP": 0.820, "TopoGAN": 0.851,
        "WGAN-GP+real data": 0.897, "TopoGAN+real data": 0.902}, better="higher"),
}
#: The paper's WGAN-SN baseline (spectral-norm critic) is not trained here: the comparison the paper
#: makes is TopoGAN vs the WGAN-GP it is built on, and every step of a third GAN per seed would cost
#: the full profile's time budget. Its numbers stay in :data:`PAPER_TABLE1_ALL` and here.
PAPER_WGAN_SN = {"FID": 34.15, "MMD": 0.326, "Betti score": 0.125, "Dice": 0.827,
                 "Dice+real data": 0.900}
#: The other columns of Table 1 (ISBI12, Retina, Maps, Facade), for the notebook's overview.
PAPER_TABLE1_ALL = {
    "FID": {"WGAN-GP": (21.64, 83.90, 179.69, 72.00, 122.13), "WGAN-SN": (34.15, 78.61, 269.12, 175.52, 126.10),
            "TopoGAN": (20.96, 31.90, 169.21, 60.48, 119.11)},
    "MMD": {"WGAN-GP": (0.142, 0.558, 1.735, 0.482, 0.137), "WGAN-SN": (0.326, 0.602, None, 0.724, 0.166),
            "TopoGAN": (0.134, 0.405, 1.602, 0.471, 0.080)},
    "Betti": {"WGAN-GP": (0.236, 0.908, 0.541, 0.223, 0.176), "WGAN-SN": (0.125, 1.775, None, 0.255, 0.142),
              "TopoGAN": (0.015, 0.802, 0.457, 0.177, 0.124)},
}
DATASETS = ("CREMI", "ISBI12", "Retina", "Maps", "Facade")


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config(ProfileConfig):
    size: int = 32
    n_real: int = 300            # real training masks
    n_eval: int = 128            # masks per set for the metrics
    z_dim: int = 64
    width: int = 8
    batch_size: int = 16
    steps: int = 120             # generator steps
    n_critic: int = 1
    lr: float = 5e-4
    lambda_gp: float = 10.0
    lambda_topo: float = 1.0
    topo_start: float = 0.5      # fraction of the steps before the topological loss is switched on
    topo_batch: int = 4          # synthetic masks per step that get the topological loss
    topo_every: int = 1          # L_topo on every k-th generator step (persistence is on the CPU)
    n_real_ot: int = 8           # real diagrams per step in the transport of Eq. (5)
    mmd_sigma2: float = 4.0
    count_steps: int = 60
    gap_masks: int = 12
    gap_steps: int = 6
    gap_lr: float = 0.6
    gap_ref: int = 64            # real diagrams (of masks other than the cut ones) the demo fits
    seeds: tuple[int, ...] = (0,)
    table2: bool = False
    seg_real: int = 100          # real image/mask pairs available to the segmenter
    seg_syn: int = 1000
    seg_steps: int = 600
    device: str | None = None

    @classmethod
    def fast(cls) -> "Config":
        return cls()

    @classmethod
    def full(cls) -> "Config":
        # 1,500 generator steps (not 4,000) and L_topo on every 8th step on 16 samples: about 140
        # loss calls of ~0.3 s CPU per seed instead of 3,000 of 3-4 s (see the notebook header)
        return cls(size=64, n_real=5000, n_eval=1000, width=32, batch_size=64, steps=1500,
                   n_critic=5, lr=1e-4, topo_start=0.25, topo_batch=16, topo_every=8, n_real_ot=64,
                   count_steps=1500, gap_masks=64, seeds=(0, 1, 2), table2=True, seg_real=200,
                   seg_syn=2000, seg_steps=1000)

    @classmethod
    def smoke(cls) -> "Config":
        """Every code path of ``full`` (Table 2, >= 2 seeds, the topological loss) at toy sizes."""
        return cls(size=16, n_real=48, n_eval=24, width=8, batch_size=8, steps=6, n_critic=2,
                   topo_start=0.5, topo_batch=4, topo_every=2, n_real_ot=8, count_steps=4,
                   gap_masks=4, gap_steps=2, gap_ref=8, seeds=(0, 1), table2=True, seg_real=16,
                   seg_syn=16, seg_steps=3)


# ---------------------------------------------------------------------------------------------
# experiments
# ---------------------------------------------------------------------------------------------
def real_data(config: Config, seed: int = 0, n: int | None = None) -> dict:
    """Real masks (N, 1, H, W) on the device, their hole counts and their cached diagrams."""
    masks, holes = membranes.membrane_masks(n or config.n_real, config.size, seed=seed)
    device = get_device(config.device)
    return {"masks": torch.as_tensor(masks, dtype=torch.float32, device=device)[:, None],
            "holes": torch.as_tensor(holes, device=device), "diagrams": diagrams(masks)}


def gap_reference(config: Config, real: dict) -> list[Diagram]:
    """The real diagrams the gap-closing demo fits: ``gap_ref`` masks *other* than the ``gap_masks``
    cut ones (not their own uncut originals, which would hand the loss the answer)."""
    ref = real["diagrams"][config.gap_masks: config.gap_masks + config.gap_ref]
    if len(ref) == 0:
        raise ValueError(f"need n_real > gap_masks ({config.n_real} <= {config.gap_masks}) for the demo")
    return ref


def gap_closing(masks: np.ndarray, real: Sequence[Diagram], steps: int, lr: float, threshold: float = 0.5) -> dict:
    """Fig. 4 analogue: gradient descent on the pixel values p of masks with L_topo (Eq. 4) alone.

    Deterministic: p <- clip(p - lr * dL/dp, 0, 1). Returns a per-step DataFrame (loss, Betti
    numbers, mean birth of the non-zero births) and the images at each step.
    """
    p = np.asarray(masks, float).copy()
    rows, frames = [], [p.copy()]
    for step in range(steps + 1):
        loss, grad, info = topological_loss_numpy(p, real, threshold)
        births = np.concatenate([d.births for d in info["diagrams"]])
        rows.append({"step": step, "L_topo": loss, "mean_betti": np.mean([d.betti for d in info["diagrams"]]),
                     "almost_holes": int(np.sum(births > 0)),
                     "max_almost_birth": float(births.max()) if births.size and births.max() > 0 else 0.0})
        if step == steps:
            break
        p = np.clip(p - lr * grad, 0.0, 1.0)
        frames.append(p.copy())
    return {"history": pd.DataFrame(rows), "frames": np.stack(frames), "diagrams": info["diagrams"]}


def train_gan(config: Config, real: dict, topo: bool, seed: int, steps: int | None = None,
              checkpoint_dir=None, progress: bool = True, desc: str | None = None
              ) -> tuple[DCGANGenerator, pd.DataFrame]:
    """WGAN-GP (``topo=False``) or TopoGAN (``topo=True``: + lambda L_topo in the generator loss, Eq. 2,
    switched on at step ``topo_start * steps``), trained with ``fit(..., manual=True)``: per step,
    ``n_critic`` critic updates then one generator update, each through ``backward_and_step``.

    Given a ``checkpoint_dir`` that holds a checkpoint, training resumes from it (models,
    optimizers and random states), which :func:`train_pair` uses to branch the two models.
    """
    device = real["masks"].device
    seed_everything(seed)
    G = DCGANGenerator(config.z_dim, config.size, config.width).to(device)
    D = DCGANCritic(config.size, config.width).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr, betas=(0.5, 0.9))
    nb = config.batch_size
    batches = minibatches(real["masks"], batch_size=nb * config.n_critic, seed=seed)
    start = int(config.topo_start * config.steps)
    real_dgms = real["diagrams"]

    def loss_fn(models, batch, step):
        g, d = models["G"], models["D"]
        reals = batch[0].view(config.n_critic, nb, *batch[0].shape[1:])
        for k in range(config.n_critic):
            fake = g(torch.randn(nb, config.z_dim, device=device)).detach()
            w = d(fake).mean() - d(reals[k]).mean()
            d_loss = w + config.lambda_gp * gradient_penalty(d, reals[k], fake)
            backward_and_step(d_loss.float(), opt_d)
        fake = g(torch.randn(nb, config.z_dim, device=device))
        g_adv = -d(fake).mean()
        out = {"critic": d_loss.detach(), "wasserstein": -w.detach(), "G_adv": g_adv.detach()}
        g_loss = g_adv
        if topo and step >= start and (step - start) % config.topo_every == 0:
            # a random subset of the cached real diagrams, the same for a (seed, step)
            pick = np.random.default_rng(seed * 1_000_003 + step).choice(
                len(real_dgms), size=min(config.n_real_ot, len(real_dgms)), replace=False)
            lt = topological_loss(fake[: config.topo_batch].float(), [real_dgms[j] for j in pick],
                                  reduction="mean")
            g_loss = g_adv + config.lambda_topo * lt
            out["L_topo"] = lt.detach()
        backward_and_step(g_loss.float(), opt_g)
        return out

    hist = fit({"G": G, "D": D}, {"G": opt_g, "D": opt_d}, batches, loss_fn, steps=steps or config.steps,
               manual=True, checkpoint_dir=checkpoint_dir, progress=progress,
               desc=desc or ("TopoGAN" if topo else "WGAN-GP"))
    G.eval()
    return G, hist


def train_pair(config: Config, real: dict, seed: int, progress: bool = True) -> tuple[dict, pd.DataFrame]:
    """WGAN-GP and TopoGAN for one seed. Until ``topo_start`` the two runs are the same computation,
    so it is done once: the shared run is checkpointed, copied, and each model resumes from its copy
    (same weights, batches, noise and random states) with or without the topological loss.
    """
    import shutil
    import tempfile

    start = int(config.topo_start * config.steps)
    gens, hists = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        shared = f"{tmp}/shared"
        if start > 0:
            _, h = train_gan(config, real, False, seed, steps=start, checkpoint_dir=shared, progress=progress,
                             desc="shared warm-up")
            hists.append(h.assign(model="shared"))
        for name, topo in (("WGAN-GP", False), ("TopoGAN", True)):
            branch = f"{tmp}/{name}"
            if start > 0:
                shutil.copytree(shared, branch)
            gens[name], h = train_gan(config, real, topo, seed, checkpoint_dir=branch, progress=progress, desc=name)
            hists.append(h[h.step > start].assign(model=name))
    return gens, pd.concat(hists, ignore_index=True).assign(seed=seed)


@torch.no_grad()
def sample_masks(G: DCGANGenerator, n: int, seed: int = 1234, threshold: float = 0.5) -> torch.Tensor:
    """``n`` binary masks (n, 1, H, W) from fixed noise (the same z for every model, as in Fig. 5)."""
    G.eval()
    device = next(G.parameters()).device
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    return (G(z).float() > threshold).float()


def evaluate(masks: torch.Tensor, ref: dict, feat_net: CountNet, config: Config) -> dict:
    """Betti score, unbiased MMD^2 and the Frechet distance of masks (n, 1, H, W) against ``ref``."""
    dg = diagrams(masks[:, 0] > 0.5)
    betti = np.array([d.betti for d in dg])
    return {
        "Betti score": betti_score(betti, ref["betti"]),
        "MMD": diagram_mmd(dg, ref["diagrams"], config.mmd_sigma2),
        "FD": frechet_distance(count_features(feat_net, masks), ref["features"]),
        "betti": betti, "diagrams": dg,
    }


# ---------------------------------------------------------------------------------------------
# Table 2 in miniature: a segmenter trained on real, synthetic, real + synthetic textured pairs
# ---------------------------------------------------------------------------------------------
class TinyUNet(nn.Module):
    """A two-level U-Net: image (N, 1, H, W) -> membrane logits (N, 1, H, W)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()

        def block(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.ReLU(), nn.Conv2d(o, o, 3, padding=1), nn.ReLU())

        self.e1, self.e2, self.mid = block(1, width), block(width, 2 * width), block(2 * width, 4 * width)
        self.u2, self.d2 = nn.ConvTranspose2d(4 * width, 2 * width, 2, 2), block(4 * width, 2 * width)
        self.u1, self.d1 = nn.ConvTranspose2d(2 * width, width, 2, 2), block(2 * width, width)
        self.out = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.e1(x)
        e2 = self.e2(nn.functional.max_pool2d(e1, 2))
        m = self.mid(nn.functional.max_pool2d(e2, 2))
        d2 = self.d2(torch.cat([self.u2(m), e2], 1))
        return self.out(self.d1(torch.cat([self.u1(d2), e1], 1)))


def dice(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Dice = 2 |P & T| / (|P| + |T|) of binary masks."""
    pred, target = pred.bool(), target.bool()
    inter = (pred & target).sum().item()
    total = pred.sum().item() + target.sum().item()
    return 1.0 if total == 0 else 2 * inter / total


def train_segmenter(images: torch.Tensor, masks: torch.Tensor, steps: int, seed: int,
                    progress: bool = False) -> TinyUNet:
    seed_everything(seed)
    net = TinyUNet().to(images.device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    batches = minibatches(images, masks, batch_size=min(32, len(images)), seed=seed)

    def loss_fn(models, batch, step):
        x, y = batch
        return {"loss": nn.functional.binary_cross_entropy_with_logits(models["model"](x).float(), y)}

    fit(net, opt, batches, loss_fn, steps=steps, progress=progress, desc="U-Net")
    net.eval()
    return net


def table2(config: Config, generators: dict[str, DCGANGenerator], seed: int = 0) -> pd.DataFrame:
    """Dice on held-out real pairs of a U-Net trained on real, synthetic and real + synthetic pairs.

    Real pairs: masks textured by :func:`cvtutor.data.membranes.texture`; synthetic pairs: GAN masks
    textured by the same fixed function (it replaces pix2pix).
    """
    device = get_device(config.device)
    rm, _ = membranes.membrane_masks(config.seg_real + 500, config.size, seed=10_000 + seed)
    img = membranes.texture(rm, seed=seed)

    def t(a):
        return torch.as_tensor(a, dtype=torch.float32, device=device)[:, None]

    xr, yr = t(img[: config.seg_real]), t(rm[: config.seg_real])
    xt, yt = t(img[config.seg_real:]), t(rm[config.seg_real:])
    sets = {"Real data": (xr, yr)}
    for name, G in generators.items():
        sm = sample_masks(G, config.seg_syn, seed=20_000 + seed)[:, 0].cpu().numpy().astype(bool)
        xs, ys = t(membranes.texture(sm, seed=seed + 1)), t(sm)
        sets[name] = (xs, ys)
        sets[f"{name}+real data"] = (torch.cat([xs, xr]), torch.cat([ys, yr]))
    rows = []
    for name, (x, y) in sets.items():
        net = train_segmenter(x, y, config.seg_steps, seed)
        with torch.no_grad():
            pred = torch.cat([net(xt[i:i + 256]) for i in range(0, len(xt), 256)]) > 0
        rows.append({"training data": name, "seed": seed, "Dice": dice(pred, yt > 0.5)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# the whole miniature
# ---------------------------------------------------------------------------------------------
def reference_set(config: Config, feat_net: CountNet) -> dict:
    """Held-out real masks (a different seed from training) with their Betti numbers, diagrams, features."""
    ref = real_data(config, seed=777, n=config.n_eval)
    ref["betti"] = np.array([d.betti for d in ref["diagrams"]])
    ref["features"] = count_features(feat_net, ref["masks"])
    return ref


def table1(config: Config, generators: dict[str, DCGANGenerator], ref: dict, feat_net: CountNet,
           real: dict | None = None, seed: int = 0) -> pd.DataFrame:
    """Table 1 in miniature: one row per model (and the real training masks as a floor)."""
    rows = []
    for name, G in generators.items():
        m = evaluate(sample_masks(G, config.n_eval), ref, feat_net, config)
        rows.append({"model": name, "seed": seed, **{k: m[k] for k in ("FD", "MMD", "Betti score")}})
    if real is not None:
        m = evaluate(real["masks"][: config.n_eval], ref, feat_net, config)
        rows.append({"model": "real (train)", "seed": seed, **{k: m[k] for k in ("FD", "MMD", "Betti score")}})
    return pd.DataFrame(rows)


def compare_table1(t1: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Paper vs ours for the three metrics of Table 1, with the claim TopoGAN < WGAN-GP."""
    mean = t1[t1.model.isin(["WGAN-GP", "TopoGAN"])].groupby("model").mean(numeric_only=True)
    out = {}
    for key, col in (("fid", "FD"), ("mmd", "MMD"), ("betti", "Betti score")):
        out[key] = report.compare(PAPER[key], ours=mean[col].to_dict(), claims=["TopoGAN < WGAN-GP"])
    return out


def run(config: Config) -> dict:
    """Gap closing, Table 1 (WGAN-GP vs TopoGAN per seed) and, if ``config.table2``, Table 2."""
    seed_everything(0)
    real = real_data(config, seed=0)
    feat_net, _ = train_count_net(real["masks"], real["holes"], config.count_steps, progress=False)
    ref = reference_set(config, feat_net)

    cut = membranes.cut_gaps(real["masks"][: config.gap_masks, 0].cpu().numpy(), n_gaps=1, width=2, seed=0)
    gaps = gap_closing(cut, gap_reference(config, real), config.gap_steps, config.gap_lr)

    rows, hists, t2 = [], [], []
    for seed in config.seeds:
        gens, h = train_pair(config, real, seed, progress=False)
        hists.append(h)
        rows.append(table1(config, gens, ref, feat_net, real if seed == config.seeds[0] else None, seed))
        if config.table2:
            t2.append(table2(config, gens, seed))
    t1 = pd.concat(rows, ignore_index=True)
    results = {"gap_closing": gaps["history"], "table1": t1, "history": pd.concat(hists, ignore_index=True),
               **{f"table1_{k}": v for k, v in compare_table1(t1).items()}}
    if t2:
        t2df = pd.concat(t2, ignore_index=True)
        results["table2"] = t2df
        results["table2_compare"] = compare_table2(t2df)
    return results


def compare_table2(t2: pd.DataFrame) -> pd.DataFrame:
    mean = t2.groupby("training data")["Dice"].mean().to_dict()
    return report.compare(PAPER["dice"], ours=mean, claims=[
        "TopoGAN > WGAN-GP", "TopoGAN+real data > Real data", "TopoGAN+real data > WGAN-GP+real data"])
