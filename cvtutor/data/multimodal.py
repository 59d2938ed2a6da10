"""Multi-modal worlds whose modalities are independent given the label (exactly).

Two generators whose Bayes posteriors are known in closed form:

- :class:`DiscreteCIWorld`: a label ``Y`` and M discrete modalities drawn from per-class tables.
  Everything is a finite sum: the joint table, the posteriors, the total correlation.
- :class:`GaussianModalities`: each modality is a point in the plane drawn, given the class, from
  a mixture of Gaussians whose centres are laid out non-linearly (opposite points on a circle,
  a crossed grid, a spiral), so no class is linearly separable in any modality. The posteriors
  ``Pr(Y | x^m)`` and ``Pr(Y | x^{[M]})`` are exact; the Bayes accuracy and the total correlation
  are expectations of exact functions, estimated by Monte Carlo with a standard error.

Both satisfy Assumption 1 of TCGM (conditional independence) by construction. :func:`label_mask`
draws the labelled subset of a semi-supervised split.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


# ---------------------------------------------------------------------------------------------
# discrete world
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiscreteCIWorld:
    """``Pr(Y = c) = prior[c]`` and ``Pr(X^m = k | Y = c) = likelihoods[m][c, k]``, CI given Y."""

    prior: np.ndarray
    likelihoods: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        prior = np.asarray(self.prior, dtype=float)
        if prior.ndim != 1 or np.any(prior <= 0) or abs(prior.sum() - 1) > 1e-9:
            raise ValueError("prior must be a 1-D positive probability vector summing to 1")
        if len(self.likelihoods) < 2:
            raise ValueError(f"need at least 2 modalities, got {len(self.likelihoods)}")
        for m, lik in enumerate(self.likelihoods):
            lik = np.asarray(lik, dtype=float)
            if lik.ndim != 2 or lik.shape[0] != len(prior):
                raise ValueError(f"likelihoods[{m}] must be (C={len(prior)}, K_m), got shape {lik.shape}")
            if np.any(lik < 0) or np.abs(lik.sum(1) - 1).max() > 1e-9:
                raise ValueError(f"likelihoods[{m}] rows must be probability vectors")

    @classmethod
    def random(cls, n_classes: int = 3, sizes: Sequence[int] = (4, 4, 4), concentration: float = 0.5,
               seed: int = 0) -> "DiscreteCIWorld":
        """A random world: Dirichlet prior and per-class likelihood rows."""
        rng = np.random.default_rng(seed)
        prior = rng.dirichlet(np.full(n_classes, 2.0))
        liks = tuple(rng.dirichlet(np.full(k, concentration), size=n_classes) for k in sizes)
        return cls(prior, liks)

    @property
    def n_modalities(self) -> int:
        return len(self.likelihoods)

    def joint_with_label(self) -> np.ndarray:
        """``P[c, x^1, ..., x^M] = Pr(Y = c) prod_m Pr(x^m | c)`` (Assumption 1)."""
        out = np.asarray(self.prior, dtype=float)
        for lik in self.likelihoods:
            out = out[..., None] * np.asarray(lik, dtype=float).reshape((len(self.prior),) + (1,) * (out.ndim - 1) + (-1,))
        return out

    def joint(self) -> np.ndarray:
        """``Pr(X^1, ..., X^M)``, the label summed out."""
        return self.joint_with_label().sum(0)

    def marginal(self, m: int) -> np.ndarray:
        """``Pr(X^m = k) = sum_c Pr(c) Pr(k | c)``."""
        return np.asarray(self.prior) @ np.asarray(self.likelihoods[m])

    def posterior(self, m: int) -> np.ndarray:
        """The Bayes posterior classifier of modality m as a table ``h_*^m[k, c] = Pr(Y = c | X^m = k)``."""
        post = np.asarray(self.prior)[:, None] * np.asarray(self.likelihoods[m])
        return (post / post.sum(0, keepdims=True)).T


# ---------------------------------------------------------------------------------------------
# Gaussian-mixture modalities with non-linear layouts
# ---------------------------------------------------------------------------------------------
def _layout(kind: str, n_classes: int) -> np.ndarray:
    """Component centres ``(C, 2, 2)``: two components per class, classes not linearly separable."""
    C = n_classes
    if kind == "circle":  # opposite points on a circle: class c at angles c and c + C (of 2C)
        ang = 2 * np.pi * np.arange(2 * C) / (2 * C)
        pts = 2.0 * np.stack([np.cos(ang), np.sin(ang)], 1)
        return np.stack([pts[[c, c + C]] for c in range(C)])
    if kind == "grid":  # two rows of C points, the second row reversed: an 'X' of classes
        return np.stack([[[1.4 * (c - (C - 1) / 2), -0.8], [1.4 * ((C - 1 - c) - (C - 1) / 2), 0.8]]
                         for c in range(C)])
    if kind == "spiral":  # 2C points along a spiral, point k belongs to class k mod C
        k = np.arange(2 * C)
        r, th = 0.5 + 0.33 * k, 1.1 * k
        pts = np.stack([r * np.cos(th), r * np.sin(th)], 1)
        return np.stack([pts[[c, c + C]] for c in range(C)])
    raise ValueError(f"unknown layout {kind!r}; expected 'circle', 'grid' or 'spiral'")


@dataclass(frozen=True)
class GaussianModalities:
    """M modalities in R^2; ``X^m | Y = c`` is an equal-weight mixture of isotropic Gaussians
    with centres ``centres[m][c]`` (shape ``(K, 2)``) and standard deviation ``sigmas[m]``."""

    prior: tuple[float, ...]
    centres: tuple[np.ndarray, ...]
    sigmas: tuple[float, ...]
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        prior = np.asarray(self.prior, dtype=float)
        if prior.ndim != 1 or np.any(prior <= 0) or abs(prior.sum() - 1) > 1e-6:
            raise ValueError(f"prior must be a positive probability vector, got {self.prior}")
        if len(self.centres) != len(self.sigmas) or len(self.centres) < 2:
            raise ValueError("need at least 2 modalities, with one sigma per modality")
        for m, c in enumerate(self.centres):
            if np.asarray(c).ndim != 3 or np.asarray(c).shape[0] != len(prior):
                raise ValueError(f"centres[{m}] must be (C={len(prior)}, K, D), got shape {np.asarray(c).shape}")
        if any(s <= 0 for s in self.sigmas):
            raise ValueError(f"sigmas must be positive, got {self.sigmas}")

    @classmethod
    def default(cls, n_classes: int = 4, prior: Sequence[float] | None = None,
                sigmas: Sequence[float] = (0.7, 0.65, 0.5)) -> "GaussianModalities":
        """The book's three-modality world: 'circle', 'grid' and 'spiral' layouts."""
        if n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        if prior is None:
            prior = np.linspace(1.5, 1.0, n_classes)
            prior = prior / prior.sum()
        kinds = ("circle", "grid", "spiral")
        return cls(tuple(float(p) for p in prior), tuple(_layout(k, n_classes) for k in kinds),
                   tuple(float(s) for s in sigmas), kinds)

    @property
    def n_classes(self) -> int:
        return len(self.prior)

    @property
    def n_modalities(self) -> int:
        return len(self.centres)

    def log_prior(self, device=None) -> torch.Tensor:
        return torch.log(torch.tensor(self.prior, dtype=torch.float32, device=device))

    def sample(self, n: int, seed: int = 0, device: torch.device | str | None = None) -> dict:
        """``{"x": [X^1 (n, D), ..., X^M], "y": (n,)}``: a label, then each modality independently."""
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        device = torch.device(device or "cpu")
        g = torch.Generator(device=device).manual_seed(int(seed))
        prior = torch.tensor(self.prior, dtype=torch.float32, device=device)
        y = torch.multinomial(prior, n, replacement=True, generator=g)
        xs = []
        for centres, sigma in zip(self.centres, self.sigmas):
            mu = torch.as_tensor(np.asarray(centres), dtype=torch.float32, device=device)  # (C, K, D)
            k = torch.randint(0, mu.shape[1], (n,), generator=g, device=device)
            noise = torch.randn(n, mu.shape[2], generator=g, device=device)
            xs.append(mu[y, k] + sigma * noise)
        return {"x": xs, "y": y}

    def log_likelihood(self, m: int, x: torch.Tensor) -> torch.Tensor:
        """``log p(x^m | Y = c)`` for every class, shape ``(n, C)``."""
        if not 0 <= m < self.n_modalities:
            raise ValueError(f"modality index must be in [0, {self.n_modalities}), got {m}")
        mu = torch.as_tensor(np.asarray(self.centres[m]), dtype=x.dtype, device=x.device)  # (C, K, D)
        if x.ndim != 2 or x.shape[1] != mu.shape[2]:
            raise ValueError(f"x^{m} must be (n, {mu.shape[2]}), got shape {tuple(x.shape)}")
        s = self.sigmas[m]
        d2 = ((x[:, None, None, :] - mu[None]) ** 2).sum(-1)  # (n, C, K)
        log_comp = -d2 / (2 * s * s) - mu.shape[2] * math.log(s * math.sqrt(2 * math.pi))
        return torch.logsumexp(log_comp, dim=2) - math.log(mu.shape[1])

    def log_posterior(self, m: int, x: torch.Tensor) -> torch.Tensor:
        """Bayes posterior of one modality, ``log Pr(Y = c | x^m)``, ``(n, C)``."""
        ll = self.log_likelihood(m, x) + self.log_prior(x.device).to(x.dtype)
        return torch.log_softmax(ll, dim=1)

    def joint_log_posterior(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        """``log Pr(Y = c | x^1, ..., x^M)``: the prior times every modality's likelihood (Assumption 1)."""
        if len(xs) != self.n_modalities:
            raise ValueError(f"expected {self.n_modalities} modalities, got {len(xs)}")
        ll = self.log_prior(xs[0].device).to(xs[0].dtype) + sum(self.log_likelihood(m, x) for m, x in enumerate(xs))
        return torch.log_softmax(ll, dim=1)

    def log_ratio(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Point-wise total correlation ``log R(x^{[M]}) = log p(x^{[M]}) - sum_m log p(x^m)``, exactly."""
        lp = self.log_prior(xs[0].device).to(xs[0].dtype)
        lls = [self.log_likelihood(m, x) for m, x in enumerate(xs)]
        joint = torch.logsumexp(lp + sum(lls), dim=1)
        return joint - sum(torch.logsumexp(lp + ll, dim=1) for ll in lls)

    def bayes_accuracy(self, n: int = 200_000, seed: int = 12345) -> dict[str, float]:
        """Bayes accuracy per modality and with all modalities: ``E[max_c Pr(c | x)]`` (Monte Carlo)."""
        data = self.sample(n, seed)
        out = {}
        for m, x in enumerate(data["x"]):
            out[self.name(m)] = float(self.log_posterior(m, x).exp().max(1).values.mean())
        out["all"] = float(self.joint_log_posterior(data["x"]).exp().max(1).values.mean())
        return out

    def total_correlation(self, n: int = 200_000, seed: int = 12345) -> tuple[float, float]:
        """``TC = E[log R]`` (Eq. 2) by Monte Carlo on exact log-ratios: ``(estimate, standard error)``."""
        data = self.sample(n, seed)
        lr = self.log_ratio([x.double() for x in data["x"]])
        return float(lr.mean()), float(lr.std() / math.sqrt(n))

    def name(self, m: int) -> str:
        return self.names[m] if self.names else f"m{m + 1}"


# ---------------------------------------------------------------------------------------------
# semi-supervised split
# ---------------------------------------------------------------------------------------------
def label_mask(y: torch.Tensor, rate: float, seed: int = 0) -> torch.Tensor:
    """A boolean mask that labels a fraction ``rate`` of the samples, stratified by class, with at
    least one labelled sample per class present in ``y`` (so cross-entropy sees every class)."""
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"label rate must be in (0, 1], got {rate}")
    if y.ndim != 1 or y.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"y must be a 1-D integer tensor of labels, got {y.dtype} of shape {tuple(y.shape)}")
    g = torch.Generator().manual_seed(int(seed))
    y_cpu = y.cpu()
    mask = torch.zeros(len(y_cpu), dtype=torch.bool)
    for c in torch.unique(y_cpu):
        idx = torch.nonzero(y_cpu == c)[:, 0]
        k = max(1, int(round(rate * len(idx))))
        mask[idx[torch.randperm(len(idx), generator=g)[:k]]] = True
    return mask.to(y.device)
