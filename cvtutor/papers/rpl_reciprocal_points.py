"""RPL: open-set recognition with discriminative reciprocal points.

Chen, Qiao, Shi, Peng, Li, Huang, Pu, Tian. *Learning Open Set Network with Discriminative
Reciprocal Points*. ECCV 2020, LNCS 12348, pp. 507-522. Official code: github.com/iCGY96/ARPL.

For each known class ``k`` a set of ``M`` learnable *reciprocal points* ``P^k`` stands for what is
*not* class k. A sample goes to the class whose reciprocal points are *farthest* from its embedding;
an open-space loss ties the distance of class-k samples to ``P^k`` to a learnable margin ``R``,
which bounds the feature space, so unknowns (embedded near the centre) stay close to every
reciprocal point and are rejected by a small ``max_k d``.

Equations
---------
(4)  d(f, P^k) = (1/M) sum_i ||f - p_i^k||^2          (official code: also / dim f)
(5)  p(y=k | x) = softmax_k(gamma d(f, P^k))           (official code: d / temperature)
(6)  L_c = -log p(y | x)
(8)  L_o = (1/M) sum_i (d(f, p_i^y) - R^y)^2           (official code: one shared R, init 0)
(10) L = L_c + lambda L_o,  lambda = 0.1
(11) p(known | x) ~ max_k d(f, P^k)                     (official code: max_k softmax_k(d))

Each discrepancy between the equations and the official code is a flag here (``normalise``,
``per_class_radius``, ``score``); the notebook says which reading is the default and why.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from cvtutor import report
from cvtutor.data.imageclass import sets, splits
from cvtutor.metrics import classification as cm
from cvtutor.nn.resnet_mini import ResNetMini
from cvtutor.nn.small_cnn import SmallCNN
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import fit, minibatches

split_data = splits.open_set_data  # one open-set split (moved to the world, shared with E07)

METHODS = ("softmax", "gcpl", "rpl", "rpl++")
SCORES = ("distance", "softmax")


# ---------------------------------------------------------------------------------------------
# the reciprocal-point pieces (Sec. 3.2-3.4)
# ---------------------------------------------------------------------------------------------
def _check(f: torch.Tensor, points: torch.Tensor) -> None:
    if f.ndim != 2:
        raise ValueError(f"f must be (B, dim) embeddings, got shape {tuple(f.shape)}")
    if points.ndim != 3 or points.shape[-1] != f.shape[1]:
        raise ValueError(
            f"points must be (N classes, M points, dim={f.shape[1]}), got {tuple(points.shape)}"
        )


def point_distances(f: torch.Tensor, points: torch.Tensor, normalise: bool = False) -> torch.Tensor:
    """Squared distances ``||f_b - p_i^k||^2`` of embeddings ``f (B, dim)`` to every reciprocal
    point ``points (N, M, dim)``: ``(B, N, M)``. ``normalise`` divides by ``dim`` (the official
    code's mean over dimensions); ``False`` is Eq. (4)'s plain squared L2."""
    _check(f, points)
    diff = f[:, None, None, :] - points[None]
    d = diff.pow(2).sum(-1)
    return d / f.shape[1] if normalise else d


def reciprocal_distance(
    f: torch.Tensor, points: torch.Tensor, normalise: bool = False
) -> torch.Tensor:
    """Eq. (4): ``d(f, P^k) = (1/M) sum_i ||f - p_i^k||^2`` for every class, ``(B, N)``."""
    return point_distances(f, points, normalise).mean(-1)


def rpl_logits(
    f: torch.Tensor, points: torch.Tensor, gamma: float = 1.0, normalise: bool = False
) -> torch.Tensor:
    """Eq. (5)'s logits ``gamma * d(f, P^k)``, ``(B, N)``: the **farthest** reciprocal point wins.
    The official code's ``d / temperature`` is ``gamma = 1 / temperature``."""
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    return gamma * reciprocal_distance(f, points, normalise)


def classification_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. (6): ``L_c = -log p(y | x)`` averaged over the batch."""
    if logits.ndim != 2 or y.shape != logits.shape[:1]:
        raise ValueError(
            f"logits must be (B, N) and y (B,), got {tuple(logits.shape)}, {tuple(y.shape)}"
        )
    return F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), y)


def open_space_loss(
    f: torch.Tensor,
    y: torch.Tensor,
    points: torch.Tensor,
    radius: torch.Tensor,
    normalise: bool = False,
) -> torch.Tensor:
    """Eq. (8): ``L_o = (1/M) sum_i (d(f, p_i^y) - R^y)^2``, averaged over the batch.

    ``radius`` is ``(N,)`` (one margin ``R^k`` per class, the paper) or ``(1,)`` (one margin shared
    by all classes, the official code). Its gradient is ``dL_o/dR^y = -(2/M) sum_i (d_i - R^y)``
    per sample (divided by the batch size)."""
    _check(f, points)
    n = points.shape[0]
    if y.shape != f.shape[:1]:
        raise ValueError(f"y must be (B,) = ({len(f)},), got {tuple(y.shape)}")
    if radius.shape not in ((n,), (1,)):
        raise ValueError(f"radius must be ({n},) per class or (1,) shared, got {tuple(radius.shape)}")
    d = point_distances(f, points, normalise)[torch.arange(len(f), device=f.device), y]  # (B, M)
    r = radius[y] if radius.shape == (n,) else radius.expand(len(f))
    return (d - r[:, None]).pow(2).mean()


def rpl_loss(
    f: torch.Tensor,
    y: torch.Tensor,
    points: torch.Tensor,
    radius: torch.Tensor,
    lam: float = 0.1,
    gamma: float = 1.0,
    normalise: bool = False,
) -> dict[str, torch.Tensor]:
    """Eq. (10): ``L = L_c + lambda L_o`` (Algorithm 1 descends it jointly in theta, P and R)."""
    lc = classification_loss(rpl_logits(f, points, gamma, normalise), y)
    lo = open_space_loss(f, y, points, radius, normalise)
    return {"loss": lc + lam * lo, "L_c": lc.detach(), "L_o": lo.detach()}


def unknown_score(
    f: torch.Tensor,
    points: torch.Tensor,
    score: str = "distance",
    gamma: float = 1.0,
    normalise: bool = False,
) -> torch.Tensor:
    """Known-ness ``(B,)``: Eq. (11)'s ``max_k d(f, P^k)`` (``score="distance"``), or the official
    test code's ``max_k softmax_k(gamma d)`` (``score="softmax"``). Higher = more likely known."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    d = reciprocal_distance(f, points, normalise)
    return d.amax(1) if score == "distance" else (gamma * d).softmax(1).amax(1)


def prototype_distance(f: torch.Tensor, prototypes: torch.Tensor, normalise: bool = False):
    """GCPL's ``||f - c_k||^2`` to one prototype per class ``prototypes (N, dim)``: ``(B, N)``."""
    return reciprocal_distance(f, prototypes[:, None, :], normalise)


def prototype_loss(
    f: torch.Tensor, y: torch.Tensor, prototypes: torch.Tensor, normalise: bool = False
) -> torch.Tensor:
    """GCPL's prototype loss (Yang et al. 2018): ``||f - c_y||^2`` averaged over the batch."""
    d = prototype_distance(f, prototypes, normalise)
    return d[torch.arange(len(f), device=f.device), y].mean()


# ---------------------------------------------------------------------------------------------
# the networks
# ---------------------------------------------------------------------------------------------
def embedding_net(model: str, in_channels: int, dim: int, width: int) -> nn.Module:
    """``f_theta``: ``(B, C, S, S) -> (B, dim)``. ``"small"``: :class:`SmallCNN` whose head maps
    to the embedding; ``"wrn16"``: a WRN-16-k-like :class:`ResNetMini` (two blocks a stage,
    widths ``w, 2w, 4w``; ``w = 32`` is WRN-16-2's 32/64/128)."""
    if model == "small":
        return SmallCNN(in_channels, dim, width)
    if model == "wrn16":
        return ResNetMini(in_channels, dim, width, blocks=(2, 2, 2), strides=(1, 2, 2))
    raise ValueError(f"model must be 'small' or 'wrn16', got {model!r}")


class OpenSetNet(nn.Module):
    """An embedding ``f_theta`` and the head of one method.

    ``softmax``: a linear classifier, cross-entropy, MSP score. ``gcpl``: one prototype per class,
    logits ``-gamma ||f - c_k||^2`` plus ``proto_weight`` times the prototype loss, score
    ``max_k softmax_k(-gamma ||f - c_k||^2)`` (the official code's; the nearest-prototype
    distance ``max_k -||f - c_k||^2`` is reported beside it by :func:`evaluate`). ``rpl``: ``M``
    reciprocal points per class (``0.1 N(0, 1)`` init) and the margin ``R`` (init 0), Eq. (10),
    score Eq. (11). ``rpl++``: RPL plus prototypes trained by
    the prototype loss (our reading of Sec. 4.3: the prototypes only pull each class together;
    the classifier and the score stay RPL's).
    """

    def __init__(self, method: str, embedding: nn.Module, n_classes: int, dim: int,
                 n_points: int = 1, lam: float = 0.1, gamma: float = 1.0, normalise: bool = False,
                 per_class_radius: bool = True, proto_weight: float = 0.1,
                 score: str = "distance") -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if n_points < 1 or lam < 0 or score not in SCORES:
            raise ValueError(f"need n_points >= 1, lam >= 0 and score in {SCORES}, "
                             f"got {n_points}, {lam}, {score!r}")
        self.method, self.embedding, self.lam, self.gamma = method, embedding, lam, gamma
        self.normalise, self.proto_weight, self.score_kind = normalise, proto_weight, score
        if method == "softmax":
            self.head = nn.Linear(dim, n_classes)
        if method in ("gcpl", "rpl++"):
            self.prototypes = nn.Parameter(0.1 * torch.randn(n_classes, dim))
        if method in ("rpl", "rpl++"):
            self.points = nn.Parameter(0.1 * torch.randn(n_classes, n_points, dim))
            self.radius = nn.Parameter(torch.zeros(n_classes if per_class_radius else 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(x).float()

    def logits(self, f: torch.Tensor) -> torch.Tensor:
        if self.method == "softmax":
            return self.head(f)
        if self.method == "gcpl":
            return -self.gamma * prototype_distance(f, self.prototypes, self.normalise)
        return rpl_logits(f, self.points, self.gamma, self.normalise)

    def loss(self, f: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.method in ("rpl", "rpl++"):
            out = rpl_loss(f, y, self.points, self.radius, self.lam, self.gamma, self.normalise)
        else:
            lc = classification_loss(self.logits(f), y)
            out = {"loss": lc, "L_c": lc.detach()}
        if self.method in ("gcpl", "rpl++"):
            lp = prototype_loss(f, y, self.prototypes, self.normalise)
            out["loss"] = out["loss"] + self.proto_weight * lp
            out["L_p"] = lp.detach()
        return out

    def score(self, f: torch.Tensor) -> torch.Tensor:
        """Known-ness of embeddings ``f (B, dim)``: higher = more likely a known class."""
        if self.method == "softmax":
            return cm.msp(self.logits(f))
        if self.method == "gcpl":  # the official code's max_k softmax_k(-gamma ||f - c_k||^2)
            return cm.msp(self.logits(f))
        return unknown_score(f, self.points, self.score_kind, self.gamma, self.normalise)


# ---------------------------------------------------------------------------------------------
# the paper's numbers
# ---------------------------------------------------------------------------------------------
PAPER = {
    "table1": report.PaperTable(
        "Table 1 (MNIST column; 6 known / 4 unknown, 5 trials)", "AUROC (%)",
        {"Softmax": 97.8, "RPL": 98.9, "RPL++": 99.3}, better="higher",
        note="Softmax (and Openmax, G-OpenMax, OSRCI) are copied from C2AE [21], not rerun.",
    ),
    "table1_all": {  # AUROC (%), Table 1, every data set
        "Softmax": {"MNIST": 97.8, "SVHN": 88.6, "CIFAR10": 67.7, "CIFAR+10": 81.6,
                    "CIFAR+50": 80.5, "TinyImageNet": 57.7},
        "RPL": {"MNIST": 98.9, "SVHN": 93.4, "CIFAR10": 82.7, "CIFAR+10": 84.2,
                "CIFAR+50": 83.2, "TinyImageNet": 68.8},
        "RPL++": {"MNIST": 99.3, "SVHN": 95.1, "CIFAR10": 86.1, "CIFAR+10": 85.6,
                  "CIFAR+50": 85.0, "TinyImageNet": 70.2},
    },
    "table2_auroc": report.PaperTable(
        "Table 2 (Air-300, WRN-40-4)", "AUROC (%)",
        {"Softmax": 77.1, "GCPL": 79.1, "RPL lambda=0": 64.6, "RPL lambda=0.01": 82.5,
         "RPL lambda=0.1": 83.1, "RPL lambda=1": 81.7, "RPL++": 84.1}, better="higher"),
    "table2_acc": report.PaperTable(
        "Table 2 (Air-300, WRN-40-4)", "known-class accuracy (%)",
        {"Softmax": 85.7, "GCPL": 84.5, "RPL lambda=0": 84.6, "RPL lambda=0.01": 87.9,
         "RPL lambda=0.1": 88.8, "RPL lambda=1": 86.7, "RPL++": 89.0}, better="higher"),
    "table2_aupr_k": report.PaperTable(
        "Table 2 (Air-300, WRN-40-4)", "AUPR-Known (%)",
        {"Softmax": 85.8, "GCPL": 88.0, "RPL lambda=0": 78.5, "RPL lambda=0.01": 89.3,
         "RPL lambda=0.1": 89.3, "RPL lambda=1": 87.5, "RPL++": 90.1}, better="higher"),
    "table2_aupr_u": report.PaperTable(
        "Table 2 (Air-300, WRN-40-4)", "AUPR-Unknown (%)",
        {"Softmax": 48.0, "GCPL": 61.3, "RPL lambda=0": 43.6, "RPL lambda=0.01": 68.9,
         "RPL lambda=0.1": 70.2, "RPL lambda=1": 69.7, "RPL++": 72.7}, better="higher"),
}


# ---------------------------------------------------------------------------------------------
# experiments
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config(ProfileConfig):
    size: int = 16                       # digits upsampled to size x size
    model: str = "small"                 # embedding network (see embedding_net)
    width: int = 8
    dim: int = 16                        # embedding dimension d
    epochs: int = 10
    batch_size: int = 128
    lr: float = 5e-3
    n_known: int = 6
    n_splits: int = 5
    lam: float = 0.1                     # lambda of Eq. (10)
    lambdas: tuple[float, ...] = (0.0, 0.1)   # the Table 2 sweep
    gamma: float = 1.0
    proto_weight: float = 0.1            # GCPL's / RPL++'s prototype-loss weight
    normalise: bool = False              # Eq. (4) as printed (True: / dim, the official code)
    per_class_radius: bool = True        # R^k per class, Eq. (8) (False: one shared R, the code)
    points_sweep: tuple[int, ...] = ()   # Fig. 5b: M values (() = not run)
    known_sweep: tuple[int, ...] = ()    # Fig. 5a: numbers of known classes (() = not run)
    sweep_splits: int = 1                # splits used by the M / #known / variant sweeps
    variants: bool = True                # the equation-vs-code variants table
    fig4_epochs: int = 8                 # the d = 2 runs of Fig. 4
    n_ood: int = 200                     # far-OOD glyphs of Fig. 4
    n_train: int | None = None           # cap on training images (None: all)
    n_test: int | None = None            # cap on known and on unknown test images (None: all)
    device: str | None = None

    @classmethod
    def fast(cls) -> "Config":
        return cls()

    @classmethod
    def full(cls) -> "Config":
        """32-px digits, WRN-16-2-like embedding, 10 splits, the lambda, M and #known sweeps."""
        return cls(size=32, model="wrn16", width=32, dim=64, epochs=30, batch_size=128, lr=2e-3,
                   n_splits=10, lambdas=(0.0, 0.01, 0.1, 1.0), points_sweep=(1, 2, 4, 8),
                   known_sweep=(4, 6, 8), sweep_splits=5, fig4_epochs=30, n_ood=1000)

    @classmethod
    def smoke(cls) -> "Config":
        """``full``'s code paths at toy size."""
        return cls.full().replace(width=8, dim=8, epochs=1, batch_size=32, n_splits=2,
                                  sweep_splits=1, fig4_epochs=1, n_ood=32, n_train=96,
                                  n_test=64)


def _net(method: str, config: Config, in_channels: int, n_known: int, dim: int | None = None,
         **kw) -> OpenSetNet:
    dim = dim or config.dim
    opts = dict(lam=config.lam, gamma=config.gamma, normalise=config.normalise,
                per_class_radius=config.per_class_radius, proto_weight=config.proto_weight)
    opts.update(kw)
    return OpenSetNet(method, embedding_net(config.model, in_channels, dim, config.width),
                      n_known, dim, **opts)


def train_net(net: OpenSetNet, x: torch.Tensor, y: torch.Tensor, config: Config, seed: int,
              epochs: int | None = None, progress: bool = False, desc: str | None = None
              ) -> pd.DataFrame:
    """Adam with a one-cycle learning rate on ``net.loss`` through :func:`cvtutor.train.fit`
    (joint descent in theta, P, R as Algorithm 1). Leaves ``net`` in eval mode; returns the
    loss history."""
    batches = minibatches(x, y, batch_size=min(config.batch_size, len(x)), seed=seed)
    steps = (epochs or config.epochs) * batches.steps_per_epoch
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps)

    def loss_fn(models, batch, step):
        xb, yb = batch
        m = models["model"]
        return m.loss(m(xb), yb)

    hist = fit(net, opt, batches, loss_fn, steps=steps, schedulers=sched, progress=progress,
               desc=desc)
    net.eval()
    return hist


@torch.no_grad()
def embed(net: OpenSetNet, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    return torch.cat([net(x[i:i + batch]) for i in range(0, len(x), batch)])


@torch.no_grad()
def evaluate(net: OpenSetNet, data: dict) -> dict:
    """Closed-set accuracy on the known test images and AUROC / AUPR-Known / AUPR-Unknown of the
    net's known-ness score (in %); for RPL also the code's softmax score, the learned margin and
    where the reciprocal points sit relative to the features."""
    fk, fu = embed(net, data["x_known"]), embed(net, data["x_unknown"])
    sk, su = net.score(fk), net.score(fu)
    out = {"acc": 100 * cm.accuracy(net.logits(fk), data["y_known"]),
           "auroc": 100 * cm.open_set_auroc(sk, su), "aupr_k": 100 * cm.aupr_in(sk, su),
           "aupr_u": 100 * cm.aupr_out(sk, su)}
    if net.method in ("rpl", "rpl++"):
        other = "softmax" if net.score_kind == "distance" else "distance"
        ok = unknown_score(fk, net.points, other, net.gamma, net.normalise)
        ou = unknown_score(fu, net.points, other, net.gamma, net.normalise)
        out[f"auroc_{other}_score"] = 100 * cm.open_set_auroc(ok, ou)
        out["radius"] = float(net.radius.mean())
        centre = fk.mean(0)
        spread = (fk - centre).pow(2).sum(1).mean().sqrt()
        out["points_to_centre"] = float((net.points - centre).norm(dim=-1).mean() / spread)
    if net.method == "gcpl":
        ok = -prototype_distance(fk, net.prototypes, net.normalise).amin(1)
        ou = -prototype_distance(fu, net.prototypes, net.normalise).amin(1)
        out["auroc_distance_score"] = 100 * cm.open_set_auroc(ok, ou)
    return out


def _label(method: str, lam: float | None = None) -> str:
    return {"softmax": "Softmax", "gcpl": "GCPL", "rpl++": "RPL++"}.get(
        method, f"RPL lambda={lam:g}" if lam is not None else "RPL")


def run_split(digits: dict, known: tuple[int, ...], config: Config, seed: int, device,
              methods: list[tuple[str, dict]]) -> list[dict]:
    """Train and evaluate each ``(method, overrides)`` on one split; one row each."""
    data = {k: v.to(device) for k, v in split_data(digits, known, config.n_train,
                                                           config.n_test).items()}
    rows = []
    for method, kw in methods:
        seed_everything(seed)
        net = _net(method, config, data["x_train"].shape[1], len(known), **kw).to(device)
        train_net(net, data["x_train"], data["y_train"], config, seed)
        rows.append({"method": method, **kw, "known": str(known), "n_known": len(known),
                     **evaluate(net, data)})
    return rows


def table_experiment(digits: dict, config: Config, seed: int, device) -> pd.DataFrame:
    """Tables 1 and 2 in miniature: Softmax, GCPL, RPL at every lambda, RPL++ on every split."""
    methods = [("softmax", {}), ("gcpl", {})]
    methods += [("rpl", {"lam": lam}) for lam in config.lambdas]
    methods += [("rpl++", {})]
    rows = []
    for i, known in enumerate(splits.open_set_splits(10, config.n_known, config.n_splits, seed)):
        for r in run_split(digits, known, config, 1000 * seed + i, device, methods):
            rows.append({**r, "split": i})
    df = pd.DataFrame(rows)
    df["setting"] = [_label(m, lam if m == "rpl" else None)
                     for m, lam in zip(df["method"], df.get("lam", [None] * len(df)))]
    return df


def sweep_experiment(digits: dict, config: Config, seed: int, device) -> pd.DataFrame:
    """Fig. 5: RPL (lambda of the config) against M (``points_sweep``) and against the number of
    known classes (``known_sweep``), and the equation-vs-code variants, on ``sweep_splits``
    splits each. Column ``sweep`` says which."""
    rows = []
    for i in range(config.sweep_splits):
        known = splits.open_set_splits(10, config.n_known, config.n_splits, seed)[i]
        jobs = [("M", {"n_points": m}) for m in config.points_sweep]
        if config.variants:
            jobs += [("variant", {"normalise": not config.normalise}),
                     ("variant", {"per_class_radius": not config.per_class_radius})]
        for (sweep, kw), r in zip(jobs, run_split(digits, known, config, 1000 * seed + i, device,
                                                  [("rpl", kw) for _, kw in jobs])):
            rows.append({**r, "sweep": sweep, "split": i})
        for k in config.known_sweep:
            kn = splits.open_set_splits(10, k, config.sweep_splits, seed + 1)[i]
            for r in run_split(digits, kn, config, 1000 * seed + i, device, [("rpl", {})]):
                rows.append({**r, "sweep": "known", "split": i})
    return pd.DataFrame(rows)


@torch.no_grad()
def _fig4_score(net: OpenSetNet, f: torch.Tensor) -> torch.Tensor:
    """Fig. 4's second row: the max distance to the reciprocal points (RPL), the negated nearest
    prototype distance (GCPL), the MSP (Softmax)."""
    if net.method == "softmax":
        return net.score(f)
    if net.method == "gcpl":
        return -prototype_distance(f, net.prototypes, net.normalise).amin(1)
    return reciprocal_distance(f, net.points, net.normalise).amax(1)


def fig4_experiment(digits: dict, config: Config, seed: int, device) -> dict:
    """Fig. 4 in miniature: d = 2 embeddings of Softmax, RPL without L_o, GCPL and RPL, trained
    on the first split's known digits; far-OOD glyphs as the unknowns. Returns the 2-D features
    (``features``: method, x1, x2, label with -1 = OOD), the reciprocal points / prototypes
    (``centres``), the max distance / score of every sample (``scores``) and ``auroc``."""
    known = splits.open_set_splits(10, config.n_known, config.n_splits, seed)[0]
    data = {k: v.to(device) for k, v in split_data(digits, known, config.n_train,
                                                           config.n_test).items()}
    ood = sets.ood_images("glyphs", config.n_ood, config.size, 1, seed=100 + seed, device=device)
    feats, centres, scores, auroc = [], [], [], {}
    for name, method, kw in (("Softmax", "softmax", {}), ("RPL without L_o", "rpl", {"lam": 0.0}),
                             ("GCPL", "gcpl", {}), ("RPL", "rpl", {})):
        seed_everything(seed)
        net = _net(method, config, 1, len(known), dim=2, **kw).to(device)
        train_net(net, data["x_train"], data["y_train"], config, seed, epochs=config.fig4_epochs)
        fk, fo = embed(net, data["x_known"]), embed(net, ood)
        f = torch.cat([fk, fo]).cpu()
        lab = torch.cat([data["y_known"].cpu(), torch.full((len(fo),), -1)])
        feats.append(pd.DataFrame({"method": name, "x1": f[:, 0].numpy(), "x2": f[:, 1].numpy(),
                                   "label": lab.numpy()}))
        s = _fig4_score(net, torch.cat([fk, fo])).cpu()
        scores.append(pd.DataFrame({"method": name, "score": s.numpy(), "known": (lab >= 0).numpy()}))
        c = net.points.detach()[:, 0] if method == "rpl" else (
            net.prototypes.detach() if method == "gcpl" else None)
        if c is not None:
            c = c.cpu()
            centres.append(pd.DataFrame({"method": name, "x1": c[:, 0].numpy(),
                                         "x2": c[:, 1].numpy(), "label": range(len(c)),
                                         "kind": "prototype" if method == "gcpl" else "reciprocal"}))
        auroc[name] = 100 * cm.open_set_auroc(s[lab >= 0], s[lab < 0])
    return {"features": pd.concat(feats, ignore_index=True),
            "centres": pd.concat(centres, ignore_index=True),
            "scores": pd.concat(scores, ignore_index=True), "auroc": auroc}


def sklearn_check(net_scores_known: torch.Tensor, net_scores_unknown: torch.Tensor) -> float:
    """Largest gap between our AUROC / AUPR-K / AUPR-U and scikit-learn's on the same scores."""
    import numpy as np
    from sklearn.metrics import average_precision_score, roc_auc_score

    k, u = net_scores_known.double().cpu().numpy(), net_scores_unknown.double().cpu().numpy()
    y = np.r_[np.ones(len(k)), np.zeros(len(u))]
    s = np.r_[k, u]
    return max(abs(cm.open_set_auroc(k, u) - roc_auc_score(y, s)),
               abs(cm.aupr_in(k, u) - average_precision_score(y, s)),
               abs(cm.aupr_out(k, u) - average_precision_score(1 - y, -s)))


def summarise(table: pd.DataFrame, column: str = "auroc") -> dict[str, float]:
    """Mean of ``column`` over splits by setting."""
    return {k: float(v) for k, v in table.groupby("setting")[column].mean().items()}


def _gap(table: pd.DataFrame, a: str, b: str, column: str = "auroc") -> tuple[float, float]:
    """Mean and std over splits of the paired difference ``a - b``."""
    w = table.pivot_table(index="split", columns="setting", values=column)
    d = w[a] - w[b]
    return float(d.mean()), float(d.std(ddof=1)) if len(d) > 1 else float("nan")


def _gap_text(mean: float, std: float) -> str:
    beyond = "beyond" if not math.isnan(std) and abs(mean) > std else "within"
    return f"{mean:+.2f} points, split std {std:.2f} ({beyond} one std)"


def run(config: Config, seed: int = 0, progress: bool = False) -> dict:
    """The whole miniature: Tables 1-2 (every method on every split, the lambda sweep), Fig. 4
    (d = 2), Fig. 5 (M and #known sweeps, where the profile runs them), the variants table and
    the findings."""
    device = get_device(config.device)
    digits = {k: v.to(device) for k, v in sets.digits16(config.size, device=device).items()}
    table = table_experiment(digits, config, seed, device)
    sweeps = sweep_experiment(digits, config, seed, device)
    fig4 = fig4_experiment(digits, config, seed, device)
    # the sanity check of the metrics on this run's Fig. 4 scores (RPL, far OOD)
    sc = fig4["scores"][fig4["scores"]["method"] == "RPL"]
    sk_gap = sklearn_check(torch.tensor(sc["score"][sc["known"]].to_numpy()),
                           torch.tensor(sc["score"][~sc["known"]].to_numpy()))
    auroc, acc = summarise(table), summarise(table, "acc")
    lam_hi = f"RPL lambda={config.lam:g}"
    shown = {"Softmax": auroc["Softmax"], "RPL": auroc[lam_hi], "RPL++": auroc["RPL++"]}
    compare_t1 = report.compare(PAPER["table1"], shown,
                                claims=["RPL > Softmax", "RPL++ > RPL"]).drop(columns="diff")
    t2 = {k: v for k, v in auroc.items() if k in PAPER["table2_auroc"].values}
    claims_t2 = [f"{b} < {lam_hi}" for b in ("RPL lambda=0", "Softmax", "GCPL")]
    compare_t2 = report.compare(
        report.PaperTable(PAPER["table2_auroc"].ref, "AUROC (%)",
                          {k: PAPER["table2_auroc"].values[k] for k in t2}, better="higher"),
        t2, claims=claims_t2).drop(columns="diff")
    cols = {"acc": "Acc", "auroc": "AUROC", "aupr_k": "AUPR-K", "aupr_u": "AUPR-U"}
    table2 = table.groupby("setting")[list(cols)].agg(["mean", "std"])
    table2.columns = [f"{cols[c]} {stat}" for c, stat in table2.columns]  # flat: JSON round trip
    rpl = table[table["setting"] == lam_hi]
    rpl0 = table[table["setting"] == "RPL lambda=0"]
    g_sm, s_sm = _gap(table, lam_hi, "Softmax")
    g_0, s_0 = _gap(table, lam_hi, "RPL lambda=0")
    g_pp, s_pp = _gap(table, "RPL++", lam_hi)
    g_gc, s_gc = _gap(table, lam_hi, "GCPL")
    collapse = (float(rpl0["points_to_centre"].mean()), float(rpl["points_to_centre"].mean()))
    claims = {
        "RPL (lambda = 0.1) detects unknown digits better than Softmax (mean AUROC over splits)":
            ("paper claim", g_sm > 0, _gap_text(g_sm, s_sm)),
        "without L_o (lambda = 0) RPL's AUROC drops (Table 2)":
            ("paper claim", g_0 > 0, _gap_text(g_0, s_0)),
        "without L_o the reciprocal points sit nearer the centre of the known features (Fig. 4b)":
            ("paper claim", collapse[0] < collapse[1],
             f"distance to the feature mean / feature rms: {collapse[0]:.2f} at lambda 0, "
             f"{collapse[1]:.2f} at lambda {config.lam:g}"),
        "RPL beats GCPL in AUROC (Table 2)": ("paper claim", g_gc > 0, _gap_text(g_gc, s_gc)),
        "RPL++ beats RPL in AUROC (Tables 1-2; fragile)":
            ("paper claim", g_pp > 0, _gap_text(g_pp, s_pp)),
        "in d = 2, RPL rejects far-OOD glyphs better than Softmax (Fig. 4)":
            ("paper claim", fig4["auroc"]["RPL"] > fig4["auroc"]["Softmax"],
             f"AUROC {fig4['auroc']['RPL']:.1f} vs {fig4['auroc']['Softmax']:.1f}"),
        "our AUROC / AUPR-K / AUPR-U equal scikit-learn's on this run's scores":
            ("sanity check", sk_gap < 1e-9, f"largest gap {sk_gap:.1e}"),
    }
    lams = sorted(config.lambdas)
    if len([lam for lam in lams if lam > 0]) >= 2:
        radius = table[table["method"] == "rpl"].groupby("lam")["radius"].mean()
        pos = radius[radius.index > 0]
        claims["the learned margin R shrinks as lambda grows (Fig. 5a)"] = (
            "paper claim", bool((pos.diff().dropna() < 0).all()),
            ", ".join(f"R={v:.3g} at {k:g}" for k, v in pos.items()))
    if max(lams) > config.lam:
        big = f"RPL lambda={max(lams):g}"
        claims[f"too large a lambda ({max(lams):g}) lowers known accuracy (Table 2)"] = (
            "paper claim", acc[big] < acc[lam_hi], f"{acc[big]:.1f} vs {acc[lam_hi]:.1f} %")
    if len(config.known_sweep) >= 2 and len(sweeps):
        r_k = sweeps[sweeps["sweep"] == "known"].groupby("n_known")["radius"].mean()
        claims["the learned margin R grows with the number of known classes (Fig. 5a)"] = (
            "paper claim", bool((r_k.diff().dropna() > 0).all()),
            ", ".join(f"R={v:.3g} at {k}" for k, v in r_k.items()))
    if len(config.points_sweep) >= 2 and len(sweeps):
        a_m = sweeps[sweeps["sweep"] == "M"].groupby("n_points")["auroc"].mean()
        claims["AUROC is fairly flat in M, the largest M slightly best (Fig. 5b; fragile)"] = (
            "paper claim", bool(a_m.max() - a_m.min() < 2 and a_m.idxmax() == a_m.index.max()),
            ", ".join(f"{v:.1f} at M={k}" for k, v in a_m.items()))
    findings = report.claims_table(claims)
    return {"table": table, "table2": table2, "compare_table1": compare_t1,
            "compare_table2": compare_t2, "sweeps": sweeps, "fig4_features": fig4["features"],
            "fig4_centres": fig4["centres"], "fig4_scores": fig4["scores"],
            "fig4_auroc": fig4["auroc"], "sklearn_gap": sk_gap,
            "openness": cm.openness(config.n_known, 10), "findings": findings}
