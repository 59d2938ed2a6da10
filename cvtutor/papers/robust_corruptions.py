"""Gaussian and adversarial noise training against common corruptions (GNT, ANT).

Rusak, Schott, Zimmermann, Bitterwolf, Bringmann, Bethge, Brendel. *A Simple Way to Make Neural
Networks Robust Against Diverse Image Corruptions*. ECCV 2020, LNCS 12348, pp. 53-69.
Official code: github.com/bethgelab/game-of-noise.

A classifier fine-tuned on additive noise (half of every batch clean) with a well chosen noise
level generalises to corruptions it never saw (GNT, Eq. 1). A small generator of i.i.d. noise
(four 1x1 convolutions, Eq. 2) learns the worst-case noise distribution under a fixed l2 budget;
training the classifier against it in a min-max game with experience replay and generator
restarts (ANT, Eq. 3) does better. Robustness to noise is measured as the median l2 size of the
smallest misclassifying perturbation along a noise direction (Eq. 4).

The chapter stands on the image-classification world: :func:`cvtutor.data.imageclass.digits16`
(16-px digits), :mod:`cvtutor.data.imageclass.corruptions` (the digits-C suite, speckle held out),
:class:`cvtutor.nn.small_cnn.SmallCNN` and :mod:`cvtutor.metrics.classification` (corruption
errors, PGD). Derived in ``notebooks/eccv2020/robust_corruptions.ipynb``.

Equations
---------
(1)  GNT    min_theta E_{x,y} E_{delta ~ N(0, sigma^2 1)} L_CE(f(clip(x + delta)), y)
(2)  AN     max_phi E_{x,y} E_{delta ~ p_phi} L_CE(f(clip(x + delta)), y), ||delta||_2 = eps,
            delta = g_phi(z), z ~ N(0, 1), p_phi(delta) = prod_n p_phi(delta_n) (1x1 convolutions)
fn. 3       ||clip(x + gamma delta) - x||_2^2 is piecewise linear in gamma^2: inverted exactly
(3)  ANT    min_theta max_phi of (2); batches 50% clean, 30% current generator, 20% replayed
(4)  eps*   median_{x,y} ||delta_min||_2, f(x + delta_min) != y along a noise direction
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from cvtutor import report
from cvtutor.data.imageclass import corruptions, sets
from cvtutor.metrics import classification as cm
from cvtutor.nn.small_cnn import SmallCNN
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import backward_and_step, fit, minibatches

# ---------------------------------------------------------------------------------------------
# the paper's numbers (ResNet50 on ImageNet / ImageNet-C)
# ---------------------------------------------------------------------------------------------
PAPER = {
    "table1": report.PaperTable(
        "Table 1", "Top-1 accuracy on IN-C (%)",
        {"Vanilla RN50": 39.2, "Adv. training [36]": 29.1, "Vanilla RN152": 45.0,
         "Adv. training [42]": 35.0, "Vanilla AlexNet": 21.1, "Universal adv. training [37]": 22.2},
        better="higher"),
    "table1_wo_noise": report.PaperTable(
        "Table 1", "Top-1 accuracy on IN-C without the noise category (%)",
        {"Vanilla RN50": 42.3, "Adv. training [36]": 32.0, "Vanilla RN152": 47.9,
         "Adv. training [42]": 35.9, "Vanilla AlexNet": 23.9, "Universal adv. training [37]": 23.1},
        better="higher"),
    "table2_clean": report.PaperTable(
        "Table 2", "clean accuracy (%)",
        {"Vanilla": 76.1, "GNT sigma*": 75.9, "GNT mult": 76.1, "ANT1x1": 76.0}, better="higher",
        note="sigma* = 0.5 in the paper"),
    "table2_eps_gn": report.PaperTable(
        "Table 2", "median perturbation size eps*_GN (l2, ImageNet scale)",
        {"Vanilla": 39.0, "GNT sigma*": 74.8, "GNT mult": 130.1, "ANT1x1": 136.7}, better="higher"),
    "table2_eps_un": report.PaperTable(
        "Table 2", "median perturbation size eps*_UN",
        {"Vanilla": 39.1, "GNT sigma*": 74.9, "GNT mult": 130.7, "ANT1x1": 137.0}, better="higher"),
    "table2_eps_an": report.PaperTable(
        "Table 2", "median perturbation size eps*_AN1x1 (mean of 4 generator seeds)",
        {"Vanilla": 15.7, "GNT sigma*": 31.8, "GNT mult": 24.0, "ANT1x1": 95.4}, better="higher",
        note="+- 0.6, 3.9, 2.2, 5.7 over the 4 generator seeds"),
    "table3": report.PaperTable(
        "Table 3", "Top-1 accuracy on IN-C (%)",
        {"Vanilla": 39.2, "Speckle": 46.4, "GNT mult": 49.2, "GNT sigma*": 49.4, "ANT1x1": 51.1,
         "ANT1x1 w/o EP": 48.9, "ANT3x3": 50.4}, better="higher",
        note="GNT and ANT trained on a test-set corruption (the paper's brackets)"),
    "table3_wo_noise": report.PaperTable(
        "Table 3", "Top-1 accuracy on IN-C without the noise category (%)",
        {"Vanilla": 42.3, "Speckle": 44.5, "GNT mult": 45.2, "GNT sigma*": 47.1, "ANT1x1": 47.7,
         "ANT1x1 w/o EP": 46.5, "ANT3x3": 47.0}, better="higher"),
    "table4": report.PaperTable(
        "Table 4", "accuracy under PGD (%): l2 eps = 0.12 / linf eps = 0.001",
        {"Vanilla l2": 41.1, "GNT sigma* l2": 49.0, "ANT1x1 l2": 50.1,
         "Vanilla linf": 18.1, "GNT sigma* linf": 28.1, "ANT1x1 linf": 28.6}, better="higher"),
    "sigma_best": 0.5,  # Fig. 2: the best single sigma for ResNet50 on [0, 1] images
    "gn_mult": (0.08, 0.12, 0.18, 0.26, 0.38),  # Sect. 4: the IN-C Gaussian-noise sigmas
}


# ---------------------------------------------------------------------------------------------
# noise: Eq. (1), the generator of Eq. (2) and the exact projection of footnote 3
# ---------------------------------------------------------------------------------------------
def _check_images(x: torch.Tensor, name: str = "x") -> None:
    if x.ndim != 4:
        raise ValueError(f"{name} must be images (B, C, H, W), got shape {tuple(x.shape)}")


def noisy_half(x: torch.Tensor, sigma: torch.Tensor | float, kind: str = "gaussian",
               clean_fraction: float = 0.5, generator: torch.Generator | None = None
               ) -> torch.Tensor:
    """The GNT training batch of Eq. (1): the first ``clean_fraction`` of ``x (B, C, H, W)``
    stays clean, the rest becomes ``clip(x + delta)``.

    ``delta ~ N(0, sigma^2 1)`` (``kind="gaussian"``) or ``x * N(0, sigma^2 1)`` (``"speckle"``,
    the ImageNet-C hold-out noise). ``sigma`` is a number or one value per image ``(B,)`` (the
    ``mult`` variant draws it from a set). Batches from :func:`cvtutor.train.minibatches` are
    shuffled, so the clean half is a random half.
    """
    _check_images(x)
    if kind not in ("gaussian", "speckle"):
        raise ValueError(f"kind must be 'gaussian' or 'speckle', got {kind!r}")
    if not 0 <= clean_fraction <= 1:
        raise ValueError(f"clean_fraction must be in [0, 1], got {clean_fraction}")
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.ndim == 1 and sigma.shape != (len(x),):
        raise ValueError(f"sigma must be a number or one per image ({len(x)},), got "
                         f"{tuple(sigma.shape)}")
    sigma = sigma.view(-1, 1, 1, 1) if sigma.ndim == 1 else sigma
    n = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    delta = sigma * n * (x if kind == "speckle" else 1)
    keep = torch.arange(len(x), device=x.device) < round(clean_fraction * len(x))
    return torch.where(keep.view(-1, 1, 1, 1), x, (x + delta).clamp(0, 1))


class NoiseGenerator(nn.Module):
    """The noise generator ``g_phi`` of Eq. (2): ``delta = z + h(z)``, ``z ~ N(0, 1)`` per pixel.

    ``h`` is four convolutions ``C -> hidden -> hidden -> hidden -> C`` with ReLUs between. With
    ``kernel=1`` all are 1x1, so each output pixel is a function of its own input pixel only:
    i.i.d. input gives i.i.d. output (``p(delta) = prod_n p(delta_n)``). ``kernel=3`` makes the
    *second* layer 3x3 (ANT^3x3), so an output pixel depends on a 3x3 neighbourhood of ``z``.
    Weights start as ``N(0, init_std^2)`` and biases at 0, so at initialisation ``delta ~= z``.
    """

    def __init__(self, channels: int = 1, hidden: int = 16, kernel: int = 1,
                 init_std: float = 0.05) -> None:
        super().__init__()
        if kernel not in (1, 3):
            raise ValueError(f"kernel must be 1 (ANT^1x1) or 3 (ANT^3x3), got {kernel}")
        if channels < 1 or hidden < 1 or init_std < 0:
            raise ValueError(f"need channels, hidden >= 1 and init_std >= 0, got "
                             f"{channels}, {hidden}, {init_std}")
        self.channels, self.kernel, self.init_std = channels, kernel, init_std
        sizes = [(channels, hidden, 1), (hidden, hidden, kernel), (hidden, hidden, 1),
                 (hidden, channels, 1)]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, k, padding=k // 2) for a, b, k in sizes)
        self.reset()

    @torch.no_grad()
    def reset(self) -> NoiseGenerator:
        """Small weights, zero biases: a fresh generator (a restart of Sect. 3.2)."""
        for conv in self.convs:
            conv.weight.normal_(0, self.init_std)
            conv.bias.zero_()
        return self

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        _check_images(z, "z")
        if z.shape[1] != self.channels:
            raise ValueError(f"z must have {self.channels} channels, got {tuple(z.shape)}")
        h = z
        for i, conv in enumerate(self.convs):
            h = conv(h) if i == len(self.convs) - 1 else F.relu(conv(h))
        return z + h


def clipped_sq_norm(x: torch.Tensor, delta: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``||clip(x + gamma delta) - x||_2^2`` per image, for ``gamma (B,)``: the function that
    footnote 3 inverts."""
    d = (x + gamma.view(-1, *[1] * (x.ndim - 1)) * delta).clamp(0, 1) - x
    return d.flatten(1).pow(2).sum(1)


def project_l2(x: torch.Tensor, delta: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """The scale ``gamma (B,)`` with ``||clip(x + gamma delta) - x||_2 = eps`` (footnote 3), exact.

    Per pixel the clipped change is ``gamma delta_n`` until ``x_n + gamma delta_n`` hits 0 or 1,
    at ``gamma = t_n``, and ``c_n = (bound - x_n)`` after. So with ``s = gamma^2``

        f(s) = s * sum_{n: t_n^2 > s} delta_n^2 + sum_{n: t_n^2 <= s} c_n^2,

    continuous, non-decreasing and linear between the sorted breakpoints ``t_n^2``: find the
    segment where ``f`` crosses ``eps^2`` and solve it. Differentiable in ``delta`` (the chosen
    segment is fixed locally). Where ``eps`` exceeds the largest reachable norm (every pixel with
    ``delta_n != 0`` clipped) it returns the smallest ``gamma`` that reaches that norm.
    ``x (B, ...)`` in [0, 1], ``delta`` of the same shape; ``eps`` a number or ``(B,)``.
    """
    if x.shape != delta.shape or x.ndim < 2:
        raise ValueError(f"x and delta must be batches (B, ...) of one shape, got "
                         f"{tuple(x.shape)} and {tuple(delta.shape)}")
    dt = torch.float64
    xf, d = x.detach().flatten(1).to(dt), delta.flatten(1).to(dt)
    if not torch.is_tensor(eps) and eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    eps = torch.as_tensor(eps, dtype=dt, device=x.device).expand(len(x))
    pos, neg = d > 0, d < 0
    room = torch.where(pos, 1 - xf, xf)                       # distance to the bound it moves to
    big = torch.finfo(dt).max
    t2 = torch.where(pos | neg, (room / d.abs().clamp_min(1e-300)) ** 2, torch.full_like(d, big))
    t2, order = t2.sort(1)
    d2 = d.pow(2).gather(1, order)
    c2 = torch.where(pos | neg, room ** 2, torch.zeros_like(room)).gather(1, order)
    zero = torch.zeros_like(d2[:, :1])
    slope = d2.sum(1, keepdim=True) - torch.cat([zero, d2.cumsum(1)[:, :-1]], 1)  # k saturated
    const = torch.cat([zero, c2.cumsum(1)[:, :-1]], 1)
    finite = t2 < big
    f_right = torch.where(finite, t2 * slope + const, torch.full_like(t2, big))
    k = (f_right < eps.pow(2)[:, None]).sum(1, keepdim=True).clamp(max=d2.shape[1] - 1)
    s = (eps.pow(2)[:, None] - const.gather(1, k)) / slope.gather(1, k).clamp_min(1e-300)
    reach = c2.sum(1, keepdim=True)                          # the norm^2 with every pixel clipped
    t_max = torch.where(finite, t2, zero).amax(1, keepdim=True)
    s = torch.where(eps.pow(2)[:, None] >= reach, t_max, s.clamp_min(0))
    return s.clamp_min(0).sqrt().squeeze(1).to(delta.dtype)


def perturb(x: torch.Tensor, delta: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """``clip(x + gamma delta)`` with ``gamma`` from :func:`project_l2`: norm ``eps`` exactly."""
    gamma = project_l2(x, delta, eps)
    return (x + gamma.view(-1, *[1] * (x.ndim - 1)) * delta).clamp(0, 1)


def adversarial_noise(generator: nn.Module, x: torch.Tensor, eps: float,
                      z: torch.Tensor | None = None) -> torch.Tensor:
    """``clip(x + delta)`` with ``delta = g_phi(z)`` projected to ``||delta||_2 = eps`` (Eq. 2)."""
    z = torch.randn_like(x) if z is None else z
    return perturb(x, generator(z), eps)


# ---------------------------------------------------------------------------------------------
# Eq. (4): the median perturbation size along a noise direction
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def min_perturbation(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     direction: torch.Tensor, eps_max: float, n_grid: int = 24,
                     n_bisect: int = 10) -> torch.Tensor:
    """``||delta_min||_2 (B,)`` of Eq. (4): the smallest l2 size (clipping included, so
    ``x + delta_min`` stays in [0, 1]) along ``direction`` at which ``model`` misclassifies.

    A grid of ``n_grid`` sizes in ``(0, eps_max]`` brackets the first flip, ``n_bisect`` halvings
    refine it, all images at once. Returns 0 for an image misclassified clean and ``inf`` where
    no size up to ``eps_max`` (or the largest reachable under clipping) flips it (footnote 5).
    """
    _check_images(x)
    if direction.shape != x.shape or y.shape != (len(x),):
        raise ValueError(f"need direction like x {tuple(x.shape)} and y ({len(x)},), got "
                         f"{tuple(direction.shape)} and {tuple(y.shape)}")
    if eps_max <= 0 or n_grid < 1 or n_bisect < 0:
        raise ValueError(f"need eps_max > 0, n_grid >= 1, n_bisect >= 0, got "
                         f"{eps_max}, {n_grid}, {n_bisect}")
    wrong = lambda e: model(perturb(x, direction, e)).argmax(1) != y
    grid = torch.linspace(0, eps_max, n_grid + 1, device=x.device)
    flipped = torch.stack([wrong(torch.full((len(x),), float(e), device=x.device))
                           for e in grid], 1)                     # (B, n_grid + 1)
    first = torch.where(flipped.any(1), flipped.float().argmax(1), torch.full_like(y, -1))
    hi = grid[first.clamp_min(0)]
    lo = grid[(first - 1).clamp_min(0)]
    for _ in range(n_bisect):
        mid = (lo + hi) / 2
        w = wrong(mid)
        hi, lo = torch.where(w, mid, hi), torch.where(w, lo, mid)
    size = (perturb(x, direction, hi) - x).flatten(1).norm(dim=1)
    size = torch.where(first == 0, torch.zeros_like(size), size)
    return torch.where(first < 0, torch.full_like(size, math.inf), size)


def median_eps(sizes: torch.Tensor) -> float:
    """``eps*`` of Eq. (4): the median (the lower one for an even count) of the sizes, where an
    image never misclassified counts as ``inf`` (footnote 5)."""
    if sizes.ndim != 1 or len(sizes) == 0:
        raise ValueError(f"sizes must be a non-empty 1-D tensor, got {tuple(sizes.shape)}")
    return float(sizes.median())


def noise_direction(kind: str, x: torch.Tensor, seed: int,
                    generator: nn.Module | None = None) -> torch.Tensor:
    """A noise direction per image: ``"gaussian"`` (N(0, 1)), ``"uniform"`` (U(-1, 1)) or
    ``"adversarial"`` (``g_phi(z)``, which needs ``generator``)."""
    g = torch.Generator(device=x.device).manual_seed(int(seed))
    if kind == "gaussian":
        return torch.randn(x.shape, generator=g, device=x.device)
    if kind == "uniform":
        return 2 * torch.rand(x.shape, generator=g, device=x.device) - 1
    if kind == "adversarial":
        if generator is None:
            raise ValueError("the adversarial direction needs a trained generator")
        with torch.no_grad():
            return generator(torch.randn(x.shape, generator=g, device=x.device))
    raise ValueError(f"kind must be 'gaussian', 'uniform' or 'adversarial', got {kind!r}")


# ---------------------------------------------------------------------------------------------
# training: vanilla, GNT (Eq. 1), the adversarial generator (Eq. 2), ANT (Eq. 3), PGD training
# ---------------------------------------------------------------------------------------------
MODELS = ("Vanilla", "GNT sigma*", "GNT mult", "Speckle", "ANT1x1", "ANT1x1 w/o EP", "ANT3x3",
          "PGD linf")


@dataclass(frozen=True)
class Config(ProfileConfig):
    size: int = 16                        # digits upsampled to size x size
    width: int = 8                        # SmallCNN width (3 conv layers: w, 2w, 4w)
    batch_size: int = 128
    lr: float = 5e-3
    vanilla_steps: int = 150
    finetune_steps: int = 40              # each GNT / speckle fine-tune
    finetune_lr: float = 2e-3
    sigmas: tuple[float, ...] = (0.1, 0.3, 0.5, 1.0)   # the single-sigma sweep of Fig. 2
    mult_sigmas: tuple[float, ...] = ()   # GNT mult (() = not trained)
    speckle_sigma: float | None = None    # the speckle-trained model (None = not trained)
    eps: float = 3.0                      # the l2 budget of the generators (Eq. 2)
    gen_hidden: int = 16
    gen_lr: float = 1e-2
    ant_steps: int = 120                  # classifier steps of ANT
    ant_variants: tuple[str, ...] = ("ANT1x1",)
    gen_steps: int = 1                    # generator steps per classifier step (inner loop)
    save_every: int = 20                  # generator states saved for experience replay
    restart_every: int = 60               # a fresh generator every this many classifier steps
    restart_steps: int = 20               # its steps against the frozen classifier
    attack_steps: int = 20                # the eps*_AN attack generator (trained to convergence)
    attack_seeds: int = 2                 # generator seeds for eps*_AN (+- over them)
    n_grid: int = 16                      # line search of Eq. (4)
    n_bisect: int = 6
    pgd_train_eps: float | None = None    # the linf PGD-trained model of Table 1 (None = none)
    pgd_train_steps: int = 5
    pgd_l2: float = 0.5                   # Table 4's attack sizes at our scale
    pgd_linf: float = 0.03
    pgd_steps: int = 10
    n_corrupt: int | None = 200           # test images under each corruption (None: all 397)
    n_train: int | None = None            # cap on training digits (None: all 1,400)
    corruptions: tuple[str, ...] = corruptions.TEST_CORRUPTIONS
    seeds: tuple[int, ...] = (0,)
    device: str | None = None

    @classmethod
    def fast(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        """Seven sigmas plus mult, speckle, ANT with and without replay, ANT^3x3, a PGD-trained
        model, 3 seeds, longer training."""
        return cls(width=16, vanilla_steps=1000, finetune_steps=300, restart_steps=60,
                   restart_every=100, n_corrupt=None, sigmas=(0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0),
                   mult_sigmas=(0.04, 0.06, 0.08, 0.09, 0.10), speckle_sigma=0.5, ant_steps=1000,
                   ant_variants=("ANT1x1", "ANT1x1 w/o EP", "ANT3x3"), attack_steps=400,
                   attack_seeds=4, n_grid=32, n_bisect=10, pgd_train_eps=0.1, seeds=(0, 1, 2))

    @classmethod
    def smoke(cls) -> Config:
        """``full``'s code paths at toy size."""
        return cls.full().replace(width=8, batch_size=32, vanilla_steps=4, finetune_steps=2,
                                  sigmas=(0.1, 0.5), ant_steps=6, save_every=2, restart_every=3,
                                  restart_steps=2, attack_steps=3, attack_seeds=2, n_grid=4,
                                  n_bisect=2, pgd_train_steps=1, pgd_steps=2, n_corrupt=16,
                                  n_train=96, corruptions=("gaussian_noise", "fog", "jpeg"),
                                  seeds=(0,))


def make_data(config: Config, device=None) -> dict[str, sets.ImageSet]:
    """The world's 16-px digits with the issue's split: 1,400 train / 397 test."""
    data = sets.digits16(config.size, test_fraction=397 / 1797, device=device or "cpu")
    if config.n_train is not None:
        data["train"] = data["train"].subset(torch.arange(min(config.n_train, len(data["train"]))))
    return data


def make_classifier(config: Config) -> SmallCNN:
    """The world's SmallCNN on one channel (about 24k parameters at width 16)."""
    return SmallCNN(1, 10, config.width)


def _fit_classifier(model: nn.Module, train: sets.ImageSet, config: Config, seed: int,
                    steps: int, lr: float, make_batch, desc: str, progress: bool) -> pd.DataFrame:
    """Adam on the cross-entropy of ``make_batch(x, y, step)`` through :func:`fit`."""
    batches = minibatches(train.x, train.y, batch_size=min(config.batch_size, len(train)),
                          seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()

    def loss_fn(models, batch, step):
        xb, yb = make_batch(*batch, step)
        return {"loss": F.cross_entropy(models["model"](xb), yb)}

    hist = fit(model, opt, batches, loss_fn, steps=steps, progress=progress, desc=desc)
    model.eval()
    return hist


def train_vanilla(train: sets.ImageSet, config: Config, seed: int, progress: bool = False):
    """The vanilla classifier (the paper's pretrained ResNet50), on clean digits."""
    seed_everything(seed)
    model = make_classifier(config).to(train.x.device)
    hist = _fit_classifier(model, train, config, seed, config.vanilla_steps, config.lr,
                           lambda x, y, s: (x, y), "vanilla", progress)
    return model, hist


def train_gnt(vanilla: nn.Module, train: sets.ImageSet, config: Config, seed: int,
              sigma: float | tuple[float, ...], kind: str = "gaussian", progress: bool = False):
    """GNT (Eq. 1): fine-tune a copy of ``vanilla`` with half of each batch noisy. ``sigma`` a
    number, or a set from which each image draws its sigma uniformly (GNT mult)."""
    seed_everything(seed)
    model = copy.deepcopy(vanilla)
    options = torch.as_tensor(sigma, dtype=torch.float32, device=train.x.device)

    def make_batch(x, y, step):
        s = options if options.ndim == 0 else options[
            torch.randint(len(options), (len(x),), device=x.device)]
        return noisy_half(x, s, kind), y

    hist = _fit_classifier(model, train, config, seed, config.finetune_steps, config.finetune_lr,
                           make_batch, f"GNT {kind} {sigma}", progress)
    return model, hist


def generator_loss(classifier: nn.Module, generator: nn.Module, x: torch.Tensor,
                   y: torch.Tensor, eps: float) -> torch.Tensor:
    """The generator's objective, Eq. (2) negated (gradient descent maximises the risk)."""
    return -F.cross_entropy(classifier(adversarial_noise(generator, x, eps)), y)


def _generator_steps(classifier, generator, opt, batches, eps: float, steps: int,
                     start: int) -> torch.Tensor:
    """``steps`` Adam steps of the generator against the frozen classifier (eval mode)."""
    was_training = classifier.training
    classifier.eval()
    loss = torch.zeros(())
    for i in range(steps):
        xb, yb = batches(start + i)
        loss = generator_loss(classifier, generator, xb, yb, eps)
        backward_and_step(loss, opt)
    classifier.train(was_training)
    return loss.detach()


def train_generator(classifier: nn.Module, train: sets.ImageSet, config: Config, seed: int,
                    kernel: int = 1, steps: int | None = None, progress: bool = False):
    """A fresh generator trained against a fixed classifier (Sect. 3.2; the eps*_AN attack of
    Sect. 3.3), through :func:`fit`. Returns the generator and its loss history."""
    seed_everything(seed)
    gen = NoiseGenerator(train.x.shape[1], config.gen_hidden, kernel).to(train.x.device)
    clf = copy.deepcopy(classifier).eval().requires_grad_(False)
    batches = minibatches(train.x, train.y, batch_size=min(config.batch_size, len(train)),
                          seed=seed)
    opt = torch.optim.Adam(gen.parameters(), lr=config.gen_lr)

    def loss_fn(models, batch, step):
        return {"loss": generator_loss(clf, models["model"], *batch, config.eps)}

    hist = fit(gen, opt, batches, loss_fn, steps=steps or config.attack_steps, progress=progress,
               desc="attack generator")
    return gen.eval(), hist


def ant_batch_sizes(batch: int, replay: bool) -> tuple[int, int, int]:
    """(clean, current generator, replayed generators) of a batch of ``batch`` images (Sect. 3.2):
    50 / 30 / 20 %; without replay the current generator takes the whole noisy half."""
    if batch < 2:
        raise ValueError(f"an ANT batch needs at least 2 images, got {batch}")
    clean = batch // 2
    current = round(0.3 * batch) if replay else batch - clean
    return clean, current, batch - clean - current


def train_ant(vanilla: nn.Module, train: sets.ImageSet, config: Config, seed: int,
              kernel: int = 1, replay: bool = True, progress: bool = False):
    """ANT (Eq. 3): fine-tune a copy of ``vanilla`` against a jointly trained generator.

    Every classifier step: ``config.gen_steps`` generator ascent steps on the current batch, then
    one classifier step on 50 % clean / 30 % current-generator / 20 % replayed images (a generator
    state drawn from those saved every ``save_every`` steps). Every ``restart_every`` steps (and
    at the start) the generator is re-initialised and trained ``restart_steps`` steps against the
    current classifier. Returns the classifier, its loss history (with the generator's loss) and
    the density of the generator's per-pixel noise at every saved state (Fig. 3A;
    :func:`noise_density`, one block of rows per state).
    """
    seed_everything(seed)
    clf = copy.deepcopy(vanilla).train()
    gen = NoiseGenerator(train.x.shape[1], config.gen_hidden, kernel).to(train.x.device)
    opt_c = torch.optim.Adam(clf.parameters(), lr=config.finetune_lr)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.gen_lr)
    batches = minibatches(train.x, train.y, batch_size=min(config.batch_size, len(train)),
                          seed=seed)
    gen_batches = minibatches(train.x, train.y, batch_size=min(config.batch_size, len(train)),
                              seed=seed + 7919)
    pool: list[dict[str, torch.Tensor]] = []
    pick = random.Random(seed)
    snapshots = []
    z_probe = torch.randn(1, train.x.shape[1], 64, 64, device=train.x.device)
    edges = torch.linspace(-6, 6, 61)

    def loss_fn(models, batch, step):
        nonlocal opt_g
        f, g = models["classifier"], models["generator"]
        if step % config.restart_every == 0:
            g.reset()
            opt_g = torch.optim.Adam(g.parameters(), lr=config.gen_lr)
            _generator_steps(f, g, opt_g, gen_batches, config.eps, config.restart_steps,
                             step * config.restart_steps)
        xb, yb = batch
        g_loss = _generator_steps(f, g, opt_g, lambda i: batch, config.eps, config.gen_steps, 0)
        n_clean, n_cur, n_rep = ant_batch_sizes(len(xb), replay and bool(pool))
        parts = [xb[:n_clean]]
        with torch.no_grad():
            parts.append(adversarial_noise(g, xb[n_clean:n_clean + n_cur], config.eps))
            if n_rep:
                state = pool[pick.randrange(len(pool))]
                old = torch.func.functional_call(g, state, (torch.randn_like(xb[-n_rep:]),))
                parts.append(perturb(xb[-n_rep:], old, config.eps))
        loss = F.cross_entropy(f(torch.cat(parts)), yb)
        backward_and_step(loss, opt_c)
        if (step + 1) % config.save_every == 0:
            pool.append({k: v.detach().clone() for k, v in g.named_parameters()})
            with torch.no_grad():
                snapshots.append(noise_density(g(z_probe), edges).assign(step=step + 1))
        return {"loss": loss.detach(), "generator loss": g_loss}

    name = f"ANT{kernel}x{kernel}" + ("" if replay else " w/o EP")
    hist = fit({"classifier": clf, "generator": gen}, {"classifier": opt_c, "generator": opt_g},
               batches, loss_fn, steps=config.ant_steps, manual=True, progress=progress, desc=name)
    density = (pd.concat(snapshots, ignore_index=True) if snapshots  # none: a run shorter than
               else pd.DataFrame(columns=["delta", "density", "step"]))  # save_every
    return clf.eval(), hist, density


def noise_density(delta: torch.Tensor, edges: torch.Tensor) -> pd.DataFrame:
    """The histogram density of ``delta``'s values scaled to unit variance (the scale is set by
    the projection, only the shape is learned), on the bins ``edges``: columns ``delta``
    (bin centre) and ``density``."""
    d = delta.detach().flatten().cpu().double()
    d = (d - d.mean()) / d.std().clamp_min(1e-12)
    e = edges.double()
    counts = torch.histc(d.clamp(e[0], e[-1]), len(e) - 1, float(e[0]), float(e[-1]))
    dens = counts / (counts.sum() * (e[1] - e[0]))
    return pd.DataFrame({"delta": ((e[1:] + e[:-1]) / 2).numpy(), "density": dens.numpy()})


def train_pgd(vanilla: nn.Module, train: sets.ImageSet, config: Config, seed: int,
              progress: bool = False):
    """Regular l-inf adversarial training (Madry et al.), fine-tuned from ``vanilla``: the
    Table 1 contrast, where ``delta`` itself and not a distribution is optimised."""
    seed_everything(seed)
    model = copy.deepcopy(vanilla)

    def make_batch(x, y, step):
        model.eval()
        adv = cm.pgd_attack(model, x, y, config.pgd_train_eps, steps=config.pgd_train_steps,
                            norm="linf", seed=seed * 100_003 + step)
        model.train()
        return adv, y

    hist = _fit_classifier(model, train, config, seed, config.finetune_steps, config.finetune_lr,
                           make_batch, "PGD training", progress)
    return model, hist


# ---------------------------------------------------------------------------------------------
# evaluation: digits-C, relative CE, eps* (Table 2), PGD (Table 4)
# ---------------------------------------------------------------------------------------------
def group_of(name: str) -> str:
    """The ImageNet-C category of a corruption (noise, blur, weather, digital)."""
    return next(g for g, names in corruptions.GROUPS.items() if name in names)


@torch.no_grad()
def corruption_accuracy(models: dict[str, nn.Module], test: sets.ImageSet,
                        names: tuple[str, ...], seed: int) -> pd.DataFrame:
    """Top-1 accuracy (%) of every model, clean and under each corruption and severity; each
    corrupted set is made once and shared by the models. Columns ``model, corruption, group,
    severity`` (0 = clean), ``accuracy``."""
    rows = []
    cases = [("clean", 0)] + [(n, s) for n in names for s in corruptions.SEVERITIES]
    for name, s in cases:
        x = test.x if s == 0 else corruptions.corrupt(test.x, name, s, seed=seed * 1000 + s)
        for m, model in models.items():
            acc = 100 * float((model(x).argmax(1) == test.y).float().mean())
            rows.append({"model": m, "corruption": name,
                         "group": "clean" if s == 0 else group_of(name), "severity": s,
                         "accuracy": acc})
    return pd.DataFrame(rows)


def summarise(acc: pd.DataFrame) -> pd.DataFrame:
    """Per model: clean accuracy, mean over the -C suite, without the noise category, on noise
    only, and the corruption error relative to Vanilla (``CE_c = sum_s E_sc / sum_s E^V_sc``
    averaged over corruptions: the mCE with our vanilla model in AlexNet's place)."""
    corr = acc[acc.severity > 0]
    err = {m: {c: (100 - g.sort_values("severity")["accuracy"]).tolist()
               for c, g in d.groupby("corruption")} for m, d in corr.groupby("model")}
    rows = []
    for m, d in corr.groupby("model", sort=False):
        clean = acc[(acc.model == m) & (acc.severity == 0)]["accuracy"].mean()
        rows.append({"model": m, "clean": clean, "C": d["accuracy"].mean(),
                     "C w/o noise": d[d.group != "noise"]["accuracy"].mean(),
                     "noise": d[d.group == "noise"]["accuracy"].mean(),
                     "relative mCE": cm.mean_corruption_error(err[m], err["Vanilla"])})
    return pd.DataFrame(rows)


def eps_star_table(models: dict[str, nn.Module], test: sets.ImageSet, train: sets.ImageSet,
                   config: Config, seed: int, progress: bool = False) -> pd.DataFrame:
    """Table 2: clean accuracy and eps*_GN, eps*_UN, eps*_AN1x1 per model (Eq. 4). eps*_AN is
    measured along the samples of a new generator trained against the final classifier, for
    ``config.attack_seeds`` generator seeds (mean and std over them)."""
    x, y = test.x, test.y
    eps_max = float(x[0].numel() ** 0.5)  # a perturbation of this norm saturates most pixels
    rows = []
    for m, model in models.items():
        row = {"model": m, "clean": 100 * cm.accuracy(model(x), y), "seed": seed}
        for kind, key in (("gaussian", "eps GN"), ("uniform", "eps UN")):
            d = noise_direction(kind, x, seed)
            row[key] = median_eps(min_perturbation(model, x, y, d, eps_max, config.n_grid,
                                                   config.n_bisect))
        an = []
        for k in range(config.attack_seeds):
            gen, _ = train_generator(model, train, config, seed * 100 + k, progress=progress)
            d = noise_direction("adversarial", x, seed * 100 + k, gen)
            an.append(median_eps(min_perturbation(model, x, y, d, eps_max, config.n_grid,
                                                  config.n_bisect)))
        an_t = torch.tensor(an)
        row["eps AN"] = float(an_t.mean())
        row["eps AN std"] = float(an_t.std()) if len(an) > 1 else 0.0
        rows.append(row)
    return pd.DataFrame(rows)


def pgd_table(models: dict[str, nn.Module], test: sets.ImageSet, config: Config,
              seed: int) -> pd.DataFrame:
    """Table 4: accuracy (%) under l2 and l-inf PGD (:func:`cvtutor.metrics.classification.
    pgd_attack`) at ``config.pgd_l2`` / ``config.pgd_linf``."""
    rows = []
    for m, model in models.items():
        row = {"model": m, "seed": seed, "clean": 100 * cm.accuracy(model(test.x), test.y)}
        for norm, eps in (("l2", config.pgd_l2), ("linf", config.pgd_linf)):
            adv = cm.pgd_attack(model, test.x, test.y, eps, steps=config.pgd_steps, norm=norm,
                                seed=seed)
            with torch.no_grad():
                row[norm] = 100 * cm.accuracy(model(adv), test.y)
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# the whole miniature
# ---------------------------------------------------------------------------------------------
def train_all(data: dict, config: Config, seed: int, progress: bool = False) -> dict:
    """Every model of the run for one seed: vanilla, the sigma sweep, GNT sigma* (the sweep's
    best on the noise corruptions' mean at severity 3 on the *training* images, so the test set
    does not choose it), mult, speckle, the ANT variants and the PGD model."""
    train = data["train"]
    models, hists = {}, []

    def keep(name, out):
        hists.append(out[1].assign(model=name, seed=seed))
        return out[0]

    models["Vanilla"] = keep("Vanilla", train_vanilla(train, config, seed, progress))
    vanilla = models["Vanilla"]
    sweep = {s: keep(f"GNT {s}", train_gnt(vanilla, train, config, seed, s, progress=progress))
             for s in config.sigmas}
    models["GNT sigma*"] = sweep[select_sigma(sweep, train, seed)]
    if config.mult_sigmas:
        models["GNT mult"] = keep("GNT mult", train_gnt(vanilla, train, config, seed,
                                                         config.mult_sigmas, progress=progress))
    if config.speckle_sigma is not None:
        models["Speckle"] = keep("Speckle", train_gnt(vanilla, train, config, seed,
                                                       config.speckle_sigma, "speckle", progress))
    snapshots = None
    for name in config.ant_variants:
        kernel = 3 if "3x3" in name else 1
        clf, hist, snaps = train_ant(vanilla, train, config, seed, kernel, "w/o EP" not in name,
                                     progress)
        models[name] = clf
        hists.append(hist.assign(model=name, seed=seed))
        if name == "ANT1x1":
            snapshots = snaps.assign(seed=seed)
    if config.pgd_train_eps is not None:
        models["PGD linf"] = keep("PGD linf", train_pgd(vanilla, train, config, seed, progress))
    return {"models": models, "sweep": sweep, "history": pd.concat(hists, ignore_index=True),
            "snapshots": snapshots}


@torch.no_grad()
def select_sigma(sweep: dict[float, nn.Module], train: sets.ImageSet, seed: int) -> float:
    """sigma*: the sweep's best mean accuracy on the noise corruptions at severity 3 of (up to
    400) training images, a validation choice that leaves the test set alone."""
    x, y = train.x[:400], train.y[:400]
    noisy = [corruptions.corrupt(x, n, 3, seed=seed + 17) for n in corruptions.GROUPS["noise"]]
    score = {s: sum(float((m(xc).argmax(1) == y).float().mean()) for xc in noisy)
             for s, m in sweep.items()}
    return max(score, key=score.get)


def run(config: Config, progress: bool = False) -> dict:
    """The miniature of Fig. 2 and Tables 1-4 for every seed of ``config``; returns DataFrames
    (``sweep``, ``summary``, ``accuracy``, ``eps_star``, ``pgd``, ``history``), the compare
    tables, the generator snapshots and the ``findings``."""
    device = get_device(config.device)
    data = {k: v.to(device) for k, v in make_data(config, device).items()}
    test = data["test"] if config.n_corrupt is None else data["test"].subset(
        torch.arange(min(config.n_corrupt, len(data["test"]))))
    sweeps, summaries, accs, eps_rows, pgd_rows, hists, chosen = [], [], [], [], [], [], {}
    snapshots = None
    for seed in config.seeds:
        out = train_all(data, config, seed, progress)
        models = out["models"]
        chosen[seed] = next(s for s, m in out["sweep"].items() if m is models["GNT sigma*"])
        sweep_models = {"Vanilla": models["Vanilla"], **{f"sigma {s}": m
                                                         for s, m in out["sweep"].items()}}
        acc = corruption_accuracy({**sweep_models, **models}, test, config.corruptions, seed)
        accs.append(acc.assign(seed=seed))
        summ = summarise(acc).assign(seed=seed)
        sig = summ[summ.model.isin(sweep_models)].copy()
        sig["sigma"] = [0.0 if m == "Vanilla" else float(m.split()[1]) for m in sig.model]
        sweeps.append(sig)
        summaries.append(summ[summ.model.isin(models)])
        table2 = {k: models[k] for k in ("Vanilla", "GNT sigma*", "GNT mult", "ANT1x1")
                  if k in models}
        eps_rows.append(eps_star_table(table2, test, data["train"], config, seed, progress))
        pgd_rows.append(pgd_table({k: models[k] for k in ("Vanilla", "GNT sigma*", "ANT1x1",
                                                           "PGD linf") if k in models},
                                  test, config, seed))
        hists.append(out["history"])
        snapshots = out["snapshots"] if snapshots is None else snapshots
    res = {"sweep": pd.concat(sweeps, ignore_index=True),
           "summary": pd.concat(summaries, ignore_index=True),
           "accuracy": pd.concat(accs, ignore_index=True),
           "eps_star": pd.concat(eps_rows, ignore_index=True),
           "pgd": pd.concat(pgd_rows, ignore_index=True),
           "history": pd.concat(hists, ignore_index=True), "snapshots": snapshots,
           "sigma_star": chosen}
    res.update(compare_tables(res))
    res["findings"] = findings(res, config)
    return res


def _mean(df: pd.DataFrame, col: str) -> dict[str, float]:
    return df.groupby("model", sort=False)[col].mean().to_dict()


def compare_tables(res: dict) -> dict[str, pd.DataFrame]:
    """Paper-vs-ours tables (means over seeds) for Tables 2, 3 and 4."""
    summ, eps, pgd = res["summary"], res["eps_star"], res["pgd"]

    def cmp(key, ours, claims=()):
        p = PAPER[key]
        ours = {k: v for k, v in ours.items() if k in p.values}
        shown = report.PaperTable(p.ref, p.metric, {k: v for k, v in p.values.items() if k in ours},
                                  better=p.better, note=p.note)
        return report.compare(shown, ours, claims=claims).drop(columns="diff")

    out = {}
    an = _mean(eps, "eps AN")
    out["compare_table2"] = cmp("table2_eps_an", an, [f"ANT1x1 > {m}" for m in an if m != "ANT1x1"]
                                if "ANT1x1" in an else [])
    out["compare_table3"] = cmp("table3", _mean(summ, "C"),
                                [f"{m} > Vanilla" for m in _mean(summ, "C")
                                 if m in PAPER["table3"].values and m != "Vanilla"])
    out["compare_table3_wo_noise"] = cmp("table3_wo_noise", _mean(summ, "C w/o noise"))
    pg = {f"{m} {n}": v for n in ("l2", "linf") for m, v in _mean(pgd, n).items()}
    t4 = [f"{m} {n} > Vanilla {n}" for n in ("l2", "linf") for m in ("GNT sigma*", "ANT1x1")
          if f"{m} {n}" in pg]
    out["compare_table4"] = cmp("table4", pg, t4)
    c = _mean(summ, "C")
    if "PGD linf" in c:  # our PGD-trained model in the row of the paper's [36] (Madry et al.)
        ours1 = {"Vanilla RN50": c["Vanilla"], "Adv. training [36]": c["PGD linf"]}
        out["compare_table1"] = cmp("table1", ours1, ["Adv. training [36] < Vanilla RN50"])
    return out


def findings(res: dict, config: Config) -> pd.DataFrame:
    """The run's findings: paper claims and sanity checks, each computed from ``res``."""
    summ, eps, sweep, pgd = res["summary"], res["eps_star"], res["sweep"], res["pgd"]
    n_seeds = len(config.seeds)
    noise = sweep.groupby("sigma")["noise"].mean()
    wo = sweep.groupby("sigma")["C w/o noise"].mean()
    peak = float(noise.idxmax())
    e = eps.groupby("model", sort=False)[["eps GN", "eps AN"]].mean()
    s = summ.groupby("model", sort=False)[["clean", "C", "C w/o noise", "noise"]].mean()
    noisy = [m for m in s.index if m != "Vanilla" and m != "PGD linf"]
    an, gn = e.loc["Vanilla", "eps AN"], e.loc["Vanilla", "eps GN"]
    claims = {
        "learned adversarial noise fools vanilla at a smaller size than Gaussian noise: eps*_AN <"
        " eps*_GN (Table 2)": ("paper claim", bool(an < gn), f"{an:.2f} vs {gn:.2f}"),
        "learned adversarial noise fools vanilla at a much smaller size: eps*_AN < eps*_GN / 2"
        " (Table 2)": ("paper claim", bool(an < gn / 2), f"{an:.2f} vs {gn:.2f}"),
        "ANT raises eps*_AN the most of the models (Table 2)": (
            "paper claim", bool(e["eps AN"].idxmax() == "ANT1x1") if "ANT1x1" in e.index else None,
            ", ".join(f"{m} {v:.2f}" for m, v in e["eps AN"].items())),
        "every noise-trained model beats vanilla on the noise corruptions (Table 3)": (
            "paper claim", bool(all(s.loc[m, "noise"] > s.loc["Vanilla", "noise"] for m in noisy)),
            ", ".join(f"{m} {s.loc[m, 'noise']:.1f}" for m in ["Vanilla"] + noisy)),
        "an inverted U: accuracy on the noise corruptions peaks at an intermediate sigma"
        " (Fig. 2)": (
            "paper claim", bool(0 < peak < max(noise.index)), f"peak at sigma = {peak:g}"),
        "the best sigma also beats vanilla without the noise corruptions (Fig. 2, transfer)": (
            "paper claim", bool(wo.drop(0.0).max() > wo.loc[0.0]),
            f"{wo.drop(0.0).max():.1f} vs vanilla {wo.loc[0.0]:.1f}" + (
                "; one seed, fragile" if n_seeds == 1 else "")),
    }
    if "ANT1x1" in s.index:
        claims["ANT1x1 >= GNT sigma* on the whole -C suite (Table 3)"] = (
            "paper claim", bool(s.loc["ANT1x1", "C"] >= s.loc["GNT sigma*", "C"]),
            f"{s.loc['ANT1x1', 'C']:.1f} vs {s.loc['GNT sigma*', 'C']:.1f}" + (
                "; one seed, fragile" if n_seeds == 1 else ""))
    if "ANT1x1 w/o EP" in s.index:
        claims["experience replay helps: ANT1x1 > ANT1x1 w/o EP (Table 3)"] = (
            "paper claim", bool(s.loc["ANT1x1", "C"] > s.loc["ANT1x1 w/o EP", "C"]),
            f"{s.loc['ANT1x1', 'C']:.1f} vs {s.loc['ANT1x1 w/o EP', 'C']:.1f}")
    if "PGD linf" in s.index:
        acc = res["accuracy"]
        fc = acc[acc.corruption.isin(["fog", "contrast"])].groupby("model")["accuracy"].mean()
        claims["PGD adversarial training hurts fog and contrast (Table 1)"] = (
            "paper claim", bool(fc["PGD linf"] < fc["Vanilla"]),
            f"{fc['PGD linf']:.1f} vs vanilla {fc['Vanilla']:.1f}")
    p = pgd.groupby("model", sort=False)[["l2", "linf"]].mean()
    if "GNT sigma*" in p.index:
        claims["noise training does not hurt PGD robustness: GNT sigma* >= vanilla, l2 and linf"
               " (Table 4)"] = (
            "paper claim", bool((p.loc["GNT sigma*"] >= p.loc["Vanilla"]).all()),
            f"l2 {p.loc['GNT sigma*', 'l2']:.1f} vs {p.loc['Vanilla', 'l2']:.1f}")
    claims["every model keeps its clean accuracy within 5 points of vanilla (Table 2)"] = (
        "sanity check", bool(all(abs(s.loc[m, "clean"] - s.loc["Vanilla", "clean"]) <= 5
                                 for m in noisy)),
        ", ".join(f"{m} {s.loc[m, 'clean']:.1f}" for m in s.index))
    return report.claims_table(claims)
