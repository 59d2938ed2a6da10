"""Side-tuning: adapt a frozen base network B with an additive side network S.

Zhang, Sax, Zamir, Guibas, Malik. *Side-Tuning: A Baseline for Network Adaptation via Additive
Side Networks*. ECCV 2020, LNCS 12348. Derived in ``notebooks/eccv2020/side_tuning.ipynb``.

Equations
---------
(1)     R(x) = B(x) (+) S(x); alpha-blending R = alpha B(x) + (1 - alpha) S(x)
(2)     L(x_t, y_t) = || D_t(alpha_t B(x_t) + (1 - alpha_t) S_t(x_t)) - y_t || (the task's loss)
Sec. 3  hyperbolic curriculum alpha(N) = k / (k + N)
Fig. 6  rigidity_i = log(L_i trained at position i / L_i trained first)
[30]    online EWC: L_t + lambda / 2 sum_k F_k (theta_k - theta*_k)^2, F the diagonal Fisher

The miniature: a 4-layer CNN base pre-trained on per-pixel shape classes of
:mod:`cvtutor.data.imageclass.ishapes` scenes, then tasks (segmentation, count, colour, grating
orientation, ...) learnt in sequence with known task ids by side-tuning and its baselines.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from cvtutor import report
from cvtutor.data.imageclass.ishapes import (
    COLOURS,
    ISHAPES,
    ORIENTATIONS,
    IShapes,
    ishapes,
)
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import fit, minibatches

# task name -> (kind, output channels or classes); dense tasks are (C, S, S) maps
TASKS = {
    "segmentation": ("mask", 1),
    "edges": ("dense", 1),
    "depth": ("dense", 1),
    "denoise": ("dense", 3),
    "count": ("class", 3),
    "colour": ("class", len(COLOURS)),
    "orientation": ("class", len(ORIENTATIONS)),
    "position": ("vector", 2),
}
BASE_RELATED = ("segmentation", "edges", "depth", "count", "position")  # read from the shapes
UNRELATED = ("colour", "orientation", "denoise")  # the shape base discards what they need
REPR = 16  # channels of the base's representation B(x): (16, S/4, S/4)

PAPER = {
    # Table 2: average rank (lower is better) over tasks, iTaskonomy and iCIFAR
    "table2": pd.DataFrame(
        {"iTaskonomy": [5.25, 5.25, 3.58, 3.17, 2.42, 1.33],
         "iCIFAR": [2.70, 5.60, 4.40, 5.00, 1.10, 2.20]},
        index=["EWC", "PSP", "Res. Adapter", "Piggyback", "PNN", "Side-tune"]),
    # Table 3a: Taskonomy normals from a curvature base, MSE with 100 / 4M training images
    "table3a_normals_mse": pd.DataFrame(
        {"100 images": [0.200, 0.204, 0.323, 0.199], "all images": [0.094, 0.117, 0.095, 0.095]},
        index=["fine-tune", "features", "scratch", "side-tune"]),
    # Table 4: merge operators, average rank on iTaskonomy (not significantly different)
    "table4": {"product": 3.64, "alpha-blend": 2.27, "MLP": 2.18, "FiLM": 1.91},
    # Table 5: both streams, average rank on iTaskonomy (Table 2 prints 1.33 for side-tuning)
    "table5": {"base only": 2.55, "side only": 2.10, "side-tuning": 1.36},
    # Sec. 4.5: initialisation, Wilcoxon signed-rank p (all tasks / no texture-like tasks)
    "init_wilcoxon_p": {"all tasks": 0.07, "no texture tasks": 0.01},
}


# ---------------------------------------------------------------------------------------------
# networks: base, side, merges, decoders
# ---------------------------------------------------------------------------------------------
def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, 1)


class BaseNet(nn.Module):
    """The base B (Sec. 3.1): a 4-layer CNN, ``(N, 3, S, S) -> (N, 16, S/4, S/4)``.

    ``forward(x, mid=True)`` also returns the third layer's ``(N, 32, S/2, S/2)`` activations
    (the laterals of PNN-lite)."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.c1, self.c2 = _conv(3, width // 2), _conv(width // 2, width, 2)
        self.c3, self.c4 = _conv(width, width), _conv(width, REPR, 2)

    def forward(self, x: torch.Tensor, mid: bool = False):
        h = F.relu(self.c3(F.relu(self.c2(F.relu(self.c1(x))))))
        out = self.c4(h)
        return (out, h) if mid else out


class SideNet(nn.Module):
    """A small side network S: 2 strided convolutions, ``(N, 3, S, S) -> (N, 16, S/4, S/4)``.
    With ``lateral`` channels, PNN-lite: a 1x1 adapter adds the base's mid-level activations
    ``(N, lateral, S/2, S/2)`` before the second layer (Rusu et al.'s lateral connection)."""

    def __init__(self, width: int = 16, lateral: int = 0):
        super().__init__()
        self.c1, self.c2 = _conv(3, width, 2), _conv(width, REPR, 2)
        self.adapter = nn.Conv2d(lateral, width, 1) if lateral else None

    def forward(self, x: torch.Tensor, mid: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.c1(x))
        if self.adapter is not None:
            if mid is None:
                raise ValueError("a PNN-lite side needs the base's mid-level activations")
            h = h + self.adapter(mid)
        return self.c2(h)


def xavier_init(module: nn.Module) -> nn.Module:
    """Xavier-uniform weights and zero biases for every convolution / linear layer (in place)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return module


def freeze(module: nn.Module) -> nn.Module:
    """No gradients, eval mode: the base (and every trained task's modules) from now on."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


class AlphaBlend(nn.Module):
    """Alpha-blending, Eq. (1): ``R = alpha B + (1 - alpha) S``, ``alpha = sigmoid(a)`` learnable
    (initial ``alpha0``). ``fixed`` (a float, e.g. from :func:`hyperbolic_alpha`) overrides it."""

    def __init__(self, alpha0: float = 0.5, learnable: bool = True):
        super().__init__()
        if not 0 < alpha0 < 1:
            raise ValueError(f"alpha0 must be in (0, 1), got {alpha0}")
        a = torch.logit(torch.tensor(float(alpha0)))
        self.a = nn.Parameter(a) if learnable else nn.Parameter(a, requires_grad=False)
        self.fixed: float | None = None

    @property
    def alpha(self) -> torch.Tensor:
        return torch.tensor(self.fixed) if self.fixed is not None else torch.sigmoid(self.a)

    def forward(self, b: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        if b.shape != s.shape:
            raise ValueError(f"B(x) and S(x) must have one shape, got {tuple(b.shape)}, "
                             f"{tuple(s.shape)}")
        alpha = self.alpha.to(b)
        return alpha * b + (1 - alpha) * s


class Product(nn.Module):
    """Element-wise product merge ``R = B * S`` (Table 4)."""

    def forward(self, b: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return b * s


class MLPMerge(nn.Module):
    """MLP merge (Table 4, as in PNN): a per-pixel 2-layer MLP on ``[B, S]``."""

    def __init__(self, channels: int = REPR):
        super().__init__()
        self.l1, self.l2 = nn.Conv2d(2 * channels, channels, 1), nn.Conv2d(channels, channels, 1)

    def forward(self, b: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return self.l2(F.relu(self.l1(torch.cat([b, s], 1))))


class FiLM(nn.Module):
    """FiLM merge (Table 4): the side predicts a per-pixel scale and shift of the base,
    ``R = (1 + gamma(S)) * B + beta(S)``."""

    def __init__(self, channels: int = REPR):
        super().__init__()
        self.gamma, self.beta = nn.Conv2d(channels, channels, 1), nn.Conv2d(channels, channels, 1)

    def forward(self, b: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return (1 + self.gamma(s)) * b + self.beta(s)


MERGES = {"alpha-blend": AlphaBlend, "product": Product, "MLP": MLPMerge, "FiLM": FiLM}


def make_merge(name: str) -> nn.Module:
    if name not in MERGES:
        raise ValueError(f"merge must be one of {tuple(MERGES)}, got {name!r}")
    return MERGES[name]()


def hyperbolic_alpha(n: float | torch.Tensor, k: float) -> float | torch.Tensor:
    """The curriculum alpha(N) = k / (k + N) (Sec. 3) at epoch ``N >= 0``: 1 at the start, 1/2
    at ``N = k``, towards 0 (fine-tuning, the MLE) as evidence accumulates."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if (torch.as_tensor(n) < 0).any():
        raise ValueError(f"N must be non-negative, got {n}")
    return k / (k + n)


def make_decoder(task: str, size: int) -> nn.Module:
    """The task decoder D_t on ``(N, 16, S/4, S/4)``: two 2x transposed convolutions for a
    dense task, flatten + linear for a class or vector task."""
    kind, out = _task(task)
    if kind in ("mask", "dense"):
        return nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(REPR, 16, 4, 2, 1), nn.ReLU(),
                             nn.ConvTranspose2d(16, out, 4, 2, 1))
    return nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(REPR * (size // 4) ** 2, out))


def _task(task: str) -> tuple[str, int]:
    if task not in TASKS:
        raise ValueError(f"task must be one of {tuple(TASKS)}, got {task!r}")
    return TASKS[task]


def task_loss(task: str, out: torch.Tensor, target: torch.Tensor,
              reduction: str = "mean") -> torch.Tensor:
    """The task's own loss in Eq. (2): cross-entropy (class), binary cross-entropy on logits
    (mask), mean squared error (dense, vector). ``reduction="none"`` gives one value a sample."""
    kind, _ = _task(task)
    if kind == "class":
        per = F.cross_entropy(out, target, reduction="none")
    else:
        if out.shape != target.shape:
            raise ValueError(f"{task}: output {tuple(out.shape)} vs target {tuple(target.shape)}")
        fn = F.binary_cross_entropy_with_logits if kind == "mask" else F.mse_loss
        per = fn(out, target, reduction="none").flatten(1).mean(1)
    return per if reduction == "none" else per.mean()


def task_score(task: str, out: torch.Tensor, target: torch.Tensor) -> float:
    """Accuracy (class), IoU at 0.5 (mask) or MSE (dense, vector)."""
    kind, _ = _task(task)
    if kind == "class":
        return float((out.argmax(1) == target).float().mean())
    if kind == "mask":
        p, t = out > 0, target > 0.5
        return float((p & t).sum() / (p | t).sum().clamp_min(1))
    return float(F.mse_loss(out, target))


class Features(nn.Module):
    """Feature extraction: ``D_t(B(x))`` with B frozen (alpha = 1)."""

    def __init__(self, base: nn.Module, decoder: nn.Module):
        super().__init__()
        self.base, self.decoder = base, decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            b = self.base(x)
        return self.decoder(b)


class SideTuned(nn.Module):
    """Side-tuning for one task, Eq. (2): ``D_t(B(x) (+) S_t(x))``; the base runs without
    gradients. ``merge=None`` drops the base stream (side only, Table 5); a PNN-lite side gets
    the base's laterals."""

    def __init__(self, base: nn.Module, side: nn.Module, merge: nn.Module | None,
                 decoder: nn.Module):
        super().__init__()
        self.base, self.side, self.merge, self.decoder = base, side, merge, decoder

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """R(x), Eq. (1)."""
        with torch.no_grad():
            b, mid = self.base(x, mid=True)
        s = self.side(x, mid) if getattr(self.side, "adapter", None) is not None else self.side(x)
        return s if self.merge is None else self.merge(b, s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.representation(x))


class Trunk(nn.Module):
    """A trunk trained with the task (fine-tuning, EWC, scratch): ``D_t(trunk(x))``."""

    def __init__(self, trunk: nn.Module, decoder: nn.Module):
        super().__init__()
        self.trunk, self.decoder = trunk, decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.trunk(x))


def count_parameters(module: nn.Module, trainable: bool = False) -> int:
    """Number of parameters (only those that get gradients with ``trainable=True``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


# ---------------------------------------------------------------------------------------------
# online EWC
# ---------------------------------------------------------------------------------------------
def fisher_diagonal(model: nn.Module, params: list[str], loss_fn, x: torch.Tensor,
                    y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Empirical diagonal Fisher of the named ``params``: the mean over samples of the squared
    per-sample gradient of ``loss_fn(output, target)`` (the negative log-likelihood), computed
    batched with ``torch.func.vmap``."""
    from torch.func import functional_call, grad, vmap

    named = dict(model.named_parameters())
    missing = [p for p in params if p not in named]
    if missing:
        raise ValueError(f"unknown parameter names {missing}")
    rest = {k: v.detach() for k, v in named.items() if k not in params}
    buffers = dict(model.named_buffers())

    def nll(theta, xi, yi):
        out = functional_call(model, {**theta, **rest, **buffers}, (xi[None],))
        return loss_fn(out, yi[None]).sum()

    theta = {k: named[k].detach() for k in params}
    g = vmap(grad(nll), in_dims=(None, 0, 0))(theta, x, y)
    return {k: v.pow(2).mean(0) for k, v in g.items()}


def ewc_penalty(model: nn.Module, fisher: dict[str, torch.Tensor],
                anchor: dict[str, torch.Tensor], lam: float) -> torch.Tensor:
    """The EWC term ``lambda / 2 sum_k F_k (theta_k - theta*_k)^2``; 0 at ``theta = theta*``."""
    named = dict(model.named_parameters())
    total = sum((fisher[k] * (named[k] - anchor[k]).pow(2)).sum() for k in fisher)
    return 0.5 * lam * total


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------
def rigidity(loss_at_position: np.ndarray, loss_first: np.ndarray) -> np.ndarray:
    """Fig. 6: ``log(L_i trained at position i / L_i trained first)`` per task."""
    a, b = np.asarray(loss_at_position, float), np.asarray(loss_first, float)
    if a.shape != b.shape or (a <= 0).any() or (b <= 0).any():
        raise ValueError(f"need two positive arrays of one shape, got {a.shape}, {b.shape}")
    return np.log(a / b)


def forgetting(losses: np.ndarray) -> np.ndarray:
    """From ``losses[s, i]`` (loss of task i after training stage s, NaN before task i is
    trained), the increase ``L_i(end) - L_i(just after training i)`` per task."""
    m = np.asarray(losses, float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"expected a square (stages, tasks) matrix, got {m.shape}")
    return m[-1] - np.diag(m)


def average_rank(table: pd.DataFrame) -> pd.Series:
    """Rank the methods (columns) on every task (row) by loss, lower is better (ties share the
    mean rank, ``scipy.stats.rankdata``), and average over tasks."""
    ranks = np.vstack([stats.rankdata(row) for row in table.to_numpy(float)])
    return pd.Series(ranks.mean(0), index=table.columns, name="average rank")


# ---------------------------------------------------------------------------------------------
# configuration and training
# ---------------------------------------------------------------------------------------------
@dataclass
class Config(ProfileConfig):
    size: int = 24
    n_train: int = 2000
    n_test: int = 500
    tasks: tuple[str, ...] = ("segmentation", "count", "orientation")
    base_steps: int = 150
    distill_steps: int = 50
    steps: int = 100
    batch_size: int = 32
    lr: float = 3e-3
    side_width: int = 16
    ewc_lams: tuple[float, ...] = (100.0,)
    fisher_samples: int = 128
    methods: tuple[str, ...] = ("side-tune", "features", "fine-tune", "EWC")
    extras: bool = False  # Tables 3a, 4, 5, init study, alpha curriculum
    few: int = 100  # Table 3a's small training set
    curriculum_k: float = 1.0
    seeds: tuple[int, ...] = (0,)
    device: str | None = None

    @classmethod
    def fast(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        """Eight tasks, 20k images, every baseline, the extra studies, three seeds."""
        return cls(n_train=20000, n_test=2000, tasks=tuple(TASKS), base_steps=1500,
                   distill_steps=300, steps=400, batch_size=128, ewc_lams=(1.0, 1000.0),
                   fisher_samples=512, methods=("side-tune", "features", "fine-tune", "EWC",
                                                "scratch", "PNN-lite"),
                   extras=True, seeds=(0, 1, 2))

    @classmethod
    def smoke(cls) -> Config:
        return cls.full().replace(n_train=256, n_test=64, base_steps=3, distill_steps=2,
                                  steps=3, batch_size=16, fisher_samples=8, few=32, seeds=(0, 1))


def _method_names(config: Config) -> list[str]:
    out = []
    for m in config.methods:
        out += [f"EWC λ={lam:g}" for lam in config.ewc_lams] if m == "EWC" else [m]
    return out


def make_data(config: Config, seed: int, device) -> dict[str, IShapes]:
    return {"train": ishapes(config.n_train, config.size, seed=2 * seed, device=device),
            "test": ishapes(config.n_test, config.size, seed=2 * seed + 1, device=device)}


def train_task(net: nn.Module, task: str, data: IShapes, config: Config, seed: int,
               steps: int | None = None, penalty=None, on_step=None,
               desc: str | None = None) -> pd.DataFrame:
    """Train ``net``'s parameters that need gradients on ``task`` (Adam) through
    :func:`cvtutor.train.fit`; ``penalty()`` is added to the loss (EWC) and ``on_step(step)``
    runs first at every step (the alpha curriculum). Returns the loss history."""
    seed_everything(seed)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr)
    idx = torch.arange(len(data), device=data.x.device)
    batches = minibatches(idx, batch_size=min(config.batch_size, len(data)), seed=seed)
    target = data.targets[task]

    def loss_fn(models, batch, step):
        if on_step is not None:
            on_step(step, batches.steps_per_epoch)
        (i,) = batch
        loss = task_loss(task, models["model"](data.x[i]), target[i])
        if penalty is None:
            return {"loss": loss}
        pen = penalty()
        return {"loss": loss + pen, "task": loss, "ewc": pen}

    hist = fit(net, opt, batches, loss_fn, steps=steps or config.steps, progress=False,
               desc=desc)
    net.eval()
    return hist


@torch.no_grad()
def evaluate(net: nn.Module, task: str, data: IShapes) -> tuple[float, float]:
    """Test loss and score (:func:`task_score`) of ``net`` on ``task``."""
    net.eval()
    out = torch.cat([net(data.x[i:i + 1024]) for i in range(0, len(data), 1024)])
    t = data.targets[task]
    return float(task_loss(task, out, t)), task_score(task, out, t)


def pretrain_base(data: IShapes, config: Config, seed: int) -> tuple[BaseNet, float]:
    """Pre-train B on per-pixel shape classes (``shape_map``: background or which shape), then
    freeze it. Returns (B, pixel accuracy on the training images)."""
    seed_everything(seed)
    base = BaseNet().to(data.x.device)
    head = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(REPR, 16, 4, 2, 1), nn.ReLU(),
                         nn.ConvTranspose2d(16, len(ISHAPES) + 1, 4, 2, 1)).to(data.x.device)
    net = Trunk(base, head)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    idx = torch.arange(len(data), device=data.x.device)
    batches = minibatches(idx, batch_size=min(config.batch_size, len(data)), seed=seed)
    target = data.targets["shape_map"]

    def loss_fn(models, batch, step):
        (i,) = batch
        return {"loss": F.cross_entropy(models["model"](data.x[i]), target[i])}

    fit(net, opt, batches, loss_fn, steps=config.base_steps, progress=False, desc="base")
    with torch.no_grad():
        acc = float((net(data.x[:1024]).argmax(1) == target[:1024]).float().mean())
    return freeze(base), acc


def distill_side(base: nn.Module, data: IShapes, config: Config, seed: int,
                 lateral: int = 0) -> SideNet:
    """Side initialisation by knowledge distillation: the small side regresses B(x) (MSE)."""
    seed_everything(seed)
    side = SideNet(config.side_width, lateral).to(data.x.device)
    if lateral:
        return side  # PNN-lite's laterals change the input: it starts from its default init
    opt = torch.optim.Adam(side.parameters(), lr=config.lr)
    idx = torch.arange(len(data), device=data.x.device)
    batches = minibatches(idx, batch_size=min(config.batch_size, len(data)), seed=seed + 7)

    def loss_fn(models, batch, step):
        (i,) = batch
        with torch.no_grad():
            b = base(data.x[i])
        return {"loss": F.mse_loss(models["side"](data.x[i]), b)}

    fit({"side": side}, opt, batches, loss_fn, steps=config.distill_steps, progress=False,
        desc="distil side")
    return side.eval()


def make_side(kind: str, base: BaseNet, distilled: SideNet) -> nn.Module:
    """A fresh trainable side: a copy of the distilled side, a copy of the base (same
    architecture, so R = B at step 0), or Xavier-initialised."""
    if kind == "distill":
        side = copy.deepcopy(distilled)
    elif kind == "copy":
        side = copy.deepcopy(base)
    elif kind == "xavier":
        side = xavier_init(copy.deepcopy(distilled))
    else:
        raise ValueError(f"side init must be 'distill', 'copy' or 'xavier', got {kind!r}")
    for p in side.parameters():
        p.requires_grad_(True)
    return side.train()


def _side_tuned(base, distilled, task, config, merge="alpha-blend", init="distill",
                side_only=False) -> SideTuned:
    side = make_side(init, base, distilled)
    dec = make_decoder(task, config.size)
    return SideTuned(base, side, None if side_only else make_merge(merge), dec).to(
        base.c1.weight.device)


def incremental(method: str, base: BaseNet, distilled: SideNet, data: dict, config: Config,
                seed: int) -> dict:
    """Learn ``config.tasks`` in order with known task ids. After each stage every task trained
    so far is evaluated. Returns ``losses (stages, tasks)`` (NaN above the diagonal), final
    scores, learned alphas, the trainable parameter count and each task's final model."""
    tasks, dev = config.tasks, base.c1.weight.device
    T = len(tasks)
    losses, scores = np.full((T, T), np.nan), np.full(T, np.nan)
    nets: list[nn.Module] = []
    alphas = {}
    trunk = None
    fisher: dict[str, torch.Tensor] = {}
    anchor: dict[str, torch.Tensor] = {}
    lam = float(method.split("=")[1]) if method.startswith("EWC") else 0.0
    n_params = 0
    for t, task in enumerate(tasks):
        task_seed = seed * 1000 + list(TASKS).index(task)  # by task, not position: no rigidity
        seed_everything(task_seed)  # the new modules' initialisation too
        if method in ("side-tune", "side-only", "PNN-lite"):
            if method == "PNN-lite":
                side = distill_side(base, data["train"], config, task_seed, lateral=32)
                net = SideTuned(base, side, None, make_decoder(task, config.size)).to(dev)
            else:
                net = _side_tuned(base, distilled, task, config, side_only=method == "side-only")
        elif method == "features":
            net = Features(base, make_decoder(task, config.size)).to(dev)
        elif method == "scratch":
            net = Trunk(xavier_init(BaseNet()), make_decoder(task, config.size)).to(dev)
        elif method == "fine-tune" or method.startswith("EWC"):
            if trunk is None:
                trunk = copy.deepcopy(base)
                for p in trunk.parameters():
                    p.requires_grad_(True)
            trunk.train()
            net = Trunk(trunk, make_decoder(task, config.size).to(dev)).to(dev)
        else:
            raise ValueError(f"unknown method {method!r}")
        penalty = None
        if lam and fisher:
            def penalty(net=net, fisher=fisher, anchor=anchor):
                return ewc_penalty(net, fisher, anchor, lam)
        train_task(net, task, data["train"], config, task_seed, penalty=penalty,
                   desc=f"{method} {task}")
        n_params += count_parameters(net, trainable=True) if t == 0 or not isinstance(
            net, Trunk) or method == "scratch" else count_parameters(net.decoder, trainable=True)
        if lam:  # online EWC: accumulate the Fisher of this task at its optimum
            names = [f"trunk.{k}" for k, _ in trunk.named_parameters()]
            sub = data["train"].subset(torch.arange(min(config.fisher_samples,
                                                         len(data["train"])), device=dev))
            f_t = fisher_diagonal(net, names, lambda o, y, task=task: task_loss(task, o, y),
                                  sub.x, sub.targets[task])
            fisher = {k: fisher.get(k, 0) + v for k, v in f_t.items()}
            anchor = {k: v.detach().clone() for k, v in net.named_parameters() if k in names}
        if isinstance(net, Trunk) and method != "scratch":
            freeze(net.decoder)
        else:
            freeze(net)
        if isinstance(net, SideTuned) and isinstance(net.merge, AlphaBlend):
            alphas[task] = float(net.merge.alpha)
        nets.append(net)
        for i in range(t + 1):
            losses[t, i], s = evaluate(nets[i], tasks[i], data["test"])
            if t == T - 1:
                scores[i] = s
    if trunk is not None:
        freeze(trunk)
    return {"losses": losses, "scores": scores, "alphas": alphas, "params": n_params,
            "nets": nets}


def trained_first(base: BaseNet, distilled: SideNet, data: dict, config: Config,
                  seed: int) -> dict[str, dict[str, float]]:
    """Each task trained first, straight from the base, by fine-tuning (also EWC's first task)
    and by side-tuning: the denominators of the rigidity, ``{method: {task: test loss}}``."""
    out: dict[str, dict[str, float]] = {"fine-tune": {}, "side-tune": {}}
    for task in config.tasks:
        task_seed = seed * 1000 + list(TASKS).index(task)
        for method, losses in out.items():
            seed_everything(task_seed)
            if method == "side-tune":
                net = _side_tuned(base, distilled, task, config)
            else:
                trunk = copy.deepcopy(base)
                for p in trunk.parameters():
                    p.requires_grad_(True)
                net = Trunk(trunk, make_decoder(task, config.size)).to(base.c1.weight.device)
            train_task(net, task, data["train"], config, task_seed)
            losses[task] = evaluate(net, task, data["test"])[0]
    return out


def extra_studies(base: BaseNet, distilled: SideNet, data: dict, config: Config,
                  seed: int) -> pd.DataFrame:
    """Per task, the final test loss of side-tuning variants: the merges (Table 4), side only
    (Table 5), side initialisations (Sec. 4.5) and the alpha curriculum (Sec. 3). Each variant
    is trained on each task alone (side-tuning does not depend on the order)."""
    variants = {f"merge {m}": {"merge": m} for m in MERGES if m != "alpha-blend"}
    variants.update({"side only": {"side_only": True}, "init copy": {"init": "copy"},
                     "init xavier": {"init": "xavier"}, "alpha hyperbolic": {"curriculum": True},
                     "alpha fixed 0.5": {"fixed": 0.5}})
    rows = []
    for task in config.tasks:
        task_seed = seed * 1000 + list(TASKS).index(task)
        for name, v in variants.items():
            seed_everything(task_seed)
            net = _side_tuned(base, distilled, task, config, merge=v.get("merge", "alpha-blend"),
                              init=v.get("init", "distill"), side_only=v.get("side_only", False))
            on_step = None
            if "fixed" in v:
                net.merge.fixed = v["fixed"]
            if v.get("curriculum"):
                def on_step(step, per_epoch, net=net):
                    net.merge.fixed = float(hyperbolic_alpha(step / per_epoch, config.curriculum_k))
            train_task(net, task, data["train"], config, task_seed, on_step=on_step)
            loss, score = evaluate(net, task, data["test"])
            rows.append({"seed": seed, "task": task, "variant": name, "loss": loss,
                         "score": score})
    return pd.DataFrame(rows)


def few_vs_all(base: BaseNet, distilled: SideNet, data: dict, config: Config,
               seed: int, task: str = "segmentation") -> pd.DataFrame:
    """Table 3a analogue: ``task`` learnt from ``config.few`` images or all of them by
    fine-tuning, features, scratch and side-tuning (test loss)."""
    rows = []
    task_seed = seed * 1000 + list(TASKS).index(task)
    for n_name, n in (("few", config.few), ("all", len(data["train"]))):
        train = data["train"].subset(torch.arange(n, device=data["train"].x.device))
        for method in ("fine-tune", "features", "scratch", "side-tune"):
            seed_everything(task_seed)
            dec = make_decoder(task, config.size)
            if method == "side-tune":
                net = _side_tuned(base, distilled, task, config)
            elif method == "features":
                net = Features(base, dec)
            else:
                trunk = xavier_init(BaseNet()) if method == "scratch" else copy.deepcopy(base)
                for p in trunk.parameters():
                    p.requires_grad_(True)
                net = Trunk(trunk, dec)
            net = net.to(base.c1.weight.device)
            train_task(net, task, train, config, task_seed)
            rows.append({"seed": seed, "images": n_name, "method": method,
                         "loss": evaluate(net, task, data["test"])[0]})
    return pd.DataFrame(rows)


def run(config: Config) -> dict:
    """The whole miniature, for every seed: pre-train and freeze the base, distil the side's
    initialisation, learn the tasks in sequence with every method, each task trained first (the
    rigidity's reference) and, with ``extras``, Tables 3a, 4, 5, the init study and the alpha
    curriculum. Returns DataFrames and the ``findings`` table."""
    if len(config.tasks) < 2:
        raise ValueError(f"need at least two tasks in sequence, got {config.tasks}")
    for t in config.tasks:
        _task(t)
    device = get_device(config.device)
    methods = _method_names(config)
    final, curves, forget, rigid, alphas, params, bases, extras, few = ([] for _ in range(9))
    bitwise = {}
    for seed in config.seeds:
        data = make_data(config, seed, device)
        base, base_acc = pretrain_base(data["train"], config, seed)
        base_state = {k: v.clone() for k, v in base.state_dict().items()}
        bases.append({"seed": seed, "base pixel accuracy": base_acc})
        distilled = distill_side(base, data["train"], config, seed)
        first = trained_first(base, distilled, data, config, seed)
        for method in methods:
            res = incremental(method, base, distilled, data, config, seed)
            L = res["losses"]
            for s_, t_ in zip(*np.nonzero(~np.isnan(L))):
                curves.append({"seed": seed, "method": method, "stage": int(s_),
                               "task": config.tasks[t_], "loss": L[s_, t_]})
            for i, task in enumerate(config.tasks):
                final.append({"seed": seed, "method": method, "task": task,
                              "loss": L[-1, i], "score": res["scores"][i]})
            fg = forgetting(L)
            ref = first["side-tune" if method == "side-tune" else "fine-tune"]
            rg = rigidity(np.diag(L), np.array([ref[t] for t in config.tasks]))
            for i, task in enumerate(config.tasks):
                forget.append({"seed": seed, "method": method, "task": task, "forgetting": fg[i]})
                if method == "side-tune" or method == "fine-tune" or method.startswith("EWC"):
                    rigid.append({"seed": seed, "method": method, "position": i, "task": task,
                                  "rigidity": rg[i]})
            for task, a in res["alphas"].items():
                alphas.append({"seed": seed, "method": method, "task": task, "alpha": a})
            params.append({"seed": seed, "method": method, "trainable parameters": res["params"]})
            if method in ("side-tune", "features"):  # earlier tasks' losses after the last task
                bitwise[(seed, method)] = bool(np.array_equal(L[-1], np.diag(L)))
        bitwise[(seed, "base")] = all(torch.equal(base.state_dict()[k], v)
                                      for k, v in base_state.items())
        if config.extras:
            extras.append(extra_studies(base, distilled, data, config, seed))
            few.append(few_vs_all(base, distilled, data, config, seed))
    out = {"base": pd.DataFrame(bases), "final": pd.DataFrame(final),
           "curves": pd.DataFrame(curves), "forgetting": pd.DataFrame(forget),
           "rigidity": pd.DataFrame(rigid), "alphas": pd.DataFrame(alphas),
           "params": pd.DataFrame(params).groupby("method", sort=False)[
               "trainable parameters"].first().reset_index(),
           "bitwise": bitwise,
           "extras": pd.concat(extras, ignore_index=True) if extras else pd.DataFrame(
               columns=["seed", "task", "variant", "loss", "score"]),
           "few_vs_all": pd.concat(few, ignore_index=True) if few else pd.DataFrame(
               columns=["seed", "images", "method", "loss"])}
    out["table2"] = table2(out["final"])
    out["table4"], out["table5"], out["init_study"] = extra_tables(out)
    out["table3a"] = table3a(out["few_vs_all"])
    out["findings"] = findings(out, config)
    return out


def _per_seed_rank(final: pd.DataFrame, columns: str = "method") -> pd.DataFrame:
    rows = []
    for seed, g in final.groupby("seed"):
        wide = g.pivot_table(index="task", columns=columns, values="loss", sort=False)
        rows.append(average_rank(wide).rename(seed))
    return pd.DataFrame(rows)


def _mean_std(per_seed: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"ours (mean)": per_seed.mean(axis=0),
                         "ours (std)": per_seed.std(axis=0) if len(per_seed) > 1 else np.nan,
                         "seeds": len(per_seed)})


def table2(final: pd.DataFrame) -> pd.DataFrame:
    """Average rank of the methods over tasks (Table 2), mean and std over seeds, the paper's
    iTaskonomy rank beside where the method is in the paper's table."""
    t = _mean_std(_per_seed_rank(final))
    names = {"side-tune": "Side-tune", "PNN-lite": "PNN"}
    paper = PAPER["table2"]["iTaskonomy"]
    t["paper iTaskonomy"] = [paper.get(names.get(m, "EWC" if m.startswith("EWC") else m),
                                       np.nan) for m in t.index]
    return t.rename_axis("method").reset_index()


def extra_tables(res: dict) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Table 4 (merges), Table 5 (base only / side only / both) as average ranks over tasks,
    and the initialisation study (mean loss, Wilcoxon signed-rank over tasks x seeds)."""
    ex = res["extras"]
    empty = pd.DataFrame(columns=["variant", "ours (mean)", "ours (std)", "seeds", "paper"])
    if ex.empty:
        return empty, empty, pd.DataFrame(columns=["comparison", "mean loss difference",
                                                   "wilcoxon p", "pairs", "paper p"])
    side = res["final"].query("method == 'side-tune'")[["seed", "task", "loss"]]
    feats = res["final"].query("method == 'features'")[["seed", "task", "loss"]]
    both = pd.concat([ex, side.assign(variant="alpha-blend"),
                      feats.assign(variant="base only")], ignore_index=True)

    def ranked(variants, rename, paper):
        sub = both[both["variant"].isin(variants)].replace({"variant": rename})
        t = _mean_std(_per_seed_rank(sub, "variant"))
        t["paper"] = [paper.get(v, np.nan) for v in t.index]
        return t.rename_axis("variant").reset_index()

    t4 = ranked(["merge product", "alpha-blend", "merge MLP", "merge FiLM"],
                {"merge product": "product", "merge MLP": "MLP", "merge FiLM": "FiLM"},
                PAPER["table4"])
    t5 = ranked(["base only", "side only", "alpha-blend"], {"alpha-blend": "side-tuning"},
                PAPER["table5"])
    rows = []
    ref = side.set_index(["seed", "task"])["loss"]
    for variant in ("init copy", "init xavier"):
        other = ex[ex.variant == variant].set_index(["seed", "task"])["loss"].loc[ref.index]
        d = (other - ref).to_numpy()
        p = float(stats.wilcoxon(d).pvalue) if len(d) > 1 and np.any(d != 0) else np.nan
        rows.append({"comparison": f"{variant} − distilled", "mean loss difference": d.mean(),
                     "wilcoxon p": p, "pairs": len(d),
                     "paper p": PAPER["init_wilcoxon_p"]["all tasks"]})
    return t4, t5, pd.DataFrame(rows)


def table3a(few: pd.DataFrame) -> pd.DataFrame:
    """Table 3a analogue: mean test loss by method and training-set size."""
    if few.empty:
        return pd.DataFrame(columns=["method", "few", "all"])
    t = few.pivot_table(index="method", columns="images", values="loss", aggfunc="mean",
                        sort=False)[["few", "all"]]
    return t.rename_axis("method").reset_index().rename_axis(None, axis=1)


def findings(res: dict, config: Config) -> pd.DataFrame:
    """The chapter's findings, each with its kind and a computed verdict."""
    fg, rg, al = res["forgetting"], res["rigidity"], res["alphas"]
    bit = res["bitwise"]
    n_seeds = len(config.seeds)
    never = all(bit[(s, m)] for s in config.seeds for m in ("side-tune", "features")
                if (s, m) in bit)
    base_same = all(bit[(s, "base")] for s in config.seeds)
    ft = fg[fg.method == "fine-tune"]
    ft_forgets = ft[ft.task != config.tasks[-1]].groupby("task")["forgetting"].mean()
    side_rig = rg[rg.method == "side-tune"]["rigidity"]
    ranks = res["table2"].set_index("method")["ours (mean)"]
    claims = {
        "the frozen base's parameters are bitwise unchanged after every task (all seeds)": (
            "sanity check", base_same, "state_dict compared with torch.equal"),
        "Sec. 3.2: side-tuning and features never forget (final losses bitwise equal to "
        "those right after each task)": (
            "construction", never, "every earlier task's test loss, each stage, each seed"),
        "Fig. 5: sequential fine-tuning forgets (mean loss increase on the earlier tasks > 0)": (
            "paper claim", bool(ft_forgets.mean() > 0),
            ", ".join(f"{t}: {v:+.3f}" for t, v in ft_forgets.items())),
        "Fig. 6: side-tuning's rigidity is 0 (training does not depend on the position)": (
            "construction", bool(np.allclose(side_rig, 0, atol=1e-6)),
            f"max |log ratio| {side_rig.abs().max():.2g}"),
    }
    if "side-tune" in ranks.index:
        best = ranks.idxmin()
        claims[f"Table 2: side-tuning has the best average rank ({n_seeds} seed(s))"] = (
            "paper claim", bool(ranks["side-tune"] <= ranks.min() + 1e-9),
            ", ".join(f"{m}: {v:.2f}" for m, v in ranks.items()) + f"; best {best}")
    rel = al[al.task.isin(BASE_RELATED)]["alpha"].mean()
    unrel = al[al.task.isin(UNRELATED)]["alpha"].mean()
    claims["Sec. 4.5: learned alpha is higher on base-related tasks (segmentation, count, ...) "
           "than on unrelated ones (colour, orientation, denoising)"] = (
        "paper claim", None if np.isnan(rel) or np.isnan(unrel) else bool(rel > unrel),
        f"mean alpha {rel:.3f} vs {unrel:.3f}")
    ewc = [m for m in ranks.index if m.startswith("EWC")]
    if len(ewc) > 1:
        r = rg[rg.method.isin(ewc)].groupby("method")["rigidity"].mean()
        lams = sorted(ewc, key=lambda m: float(m.split("=")[1]))
        claims["Fig. 6: EWC's rigidity grows with lambda"] = (
            "paper claim", bool(r[lams[-1]] > r[lams[0]]),
            ", ".join(f"{m}: {r[m]:+.3f}" for m in lams))
    t3 = res["table3a"].set_index("method") if len(res["table3a"]) else None
    if t3 is not None:
        ok = all(t3.loc["side-tune", c] <= 1.05 * t3.loc[["fine-tune", "features"], c].min()
                 for c in ("few", "all"))
        claims["Table 3a: side-tuning matches the better of fine-tuning and features with few "
               "and with all images (within 5 %)"] = (
            "paper claim", ok, "; ".join(f"{c}: " + ", ".join(
                f"{m} {t3.loc[m, c]:.3f}" for m in t3.index) for c in ("few", "all")))
    t5 = res["table5"].set_index("variant")
    if len(t5):
        claims["Table 5: using both streams ranks better than base only or side only"] = (
            "paper claim", bool(t5.loc["side-tuning", "ours (mean)"] < t5["ours (mean)"].drop(
                "side-tuning").min()),
            ", ".join(f"{v}: {r:.2f}" for v, r in t5["ours (mean)"].items()))
    return report.claims_table(claims)
