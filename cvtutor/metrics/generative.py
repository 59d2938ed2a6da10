"""Metrics of generated images that need no downloaded weights: Fréchet distance, FID-lite,
diversity.

FID (Heusel et al. 2017) is the Fréchet distance between Gaussians fitted to Inception features
of real and generated images; Inception's weights are a download, so the book's chapters use
**FID-lite**: the same distance on the features of a small network trained, in the notebook, to
classify the world's own labels and then frozen (:class:`FIDLite`). Its numbers rank methods
within one chapter (same feature net, same reference set); they are never comparable with a
paper's FID. Derived in the TopoGAN chapter (``topogan``, Table 1) and explained in the
image-translation world (``world_translation``); E29 (``neural_design_network``) uses the
distance on a layout classifier's features.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from cvtutor.runtime import seed_everything
from cvtutor.train import fit, minibatches


def frechet_distance(f1: np.ndarray, f2: np.ndarray, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}) between Gaussians fitted to two feature sets.

    ``f1`` (n1, d) and ``f2`` (n2, d). ``eps * I`` is added to both covariances (dead ReLU
    features make them singular), as FID code does.
    """
    from scipy import linalg

    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"features must be (n1, d) and (n2, d), got {f1.shape} and {f2.shape}")
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1 = np.cov(f1, rowvar=False) + eps * np.eye(f1.shape[1])
    s2 = np.cov(f2, rowvar=False) + eps * np.eye(f2.shape[1])
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


class FeatureNet(nn.Module):
    """A small CNN ``(B, C, H, W) -> (B, n_classes)`` whose penultimate ``(B, feat_dim)`` ReLU
    features (:meth:`features`) stand in for Inception's pool features."""

    def __init__(self, in_channels: int = 3, n_classes: int = 10, width: int = 16,
                 feat_dim: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
            nn.Flatten(), nn.Linear(2 * width * 16, feat_dim), nn.ReLU())
        self.head = nn.Linear(feat_dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class FIDLite:
    """Fréchet distance on the frozen features of a :class:`FeatureNet` trained on world labels.

    Build one with :meth:`train` (images (N, C, H, W), integer labels (N,)), then compare image
    sets with :meth:`distance` or :meth:`__call__`; :meth:`features` gives the (N, feat_dim)
    features. The net is in eval mode and its parameters do not require gradients."""

    def __init__(self, net: FeatureNet, history: pd.DataFrame | None = None) -> None:
        self.net = net.eval().requires_grad_(False)
        self.history = history

    @classmethod
    def train(cls, images: torch.Tensor, labels: torch.Tensor, steps: int = 200, seed: int = 0,
              batch_size: int = 64, lr: float = 2e-3, width: int = 16, feat_dim: int = 32,
              progress: bool = False, desc: str = "FID-lite net") -> "FIDLite":
        """Cross-entropy training through :func:`cvtutor.train.fit`, then frozen (TopoGAN's count
        net is this training on hole counts)."""
        if images.ndim != 4 or labels.shape != (len(images),):
            raise ValueError(f"need images (N, C, H, W) and labels (N,), got "
                             f"{tuple(images.shape)} and {tuple(labels.shape)}")
        seed_everything(seed)
        net = FeatureNet(images.shape[1], int(labels.max()) + 1, width, feat_dim)
        net = net.to(images.device)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        batches = minibatches(images, labels.long(), batch_size=min(batch_size, len(images)),
                              seed=seed)

        def loss_fn(models, batch, step):
            x, y = batch
            return {"loss": nn.functional.cross_entropy(models["model"](x).float(), y)}

        hist = fit(net, opt, batches, loss_fn, steps=steps, progress=progress, desc=desc)
        return cls(net, hist)

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 512) -> np.ndarray:
        """(N, feat_dim) float64 features of ``images`` (N, C, H, W)."""
        dev = next(self.net.parameters()).device
        return torch.cat([self.net.features(images[i:i + batch_size].to(dev).float()).double().cpu()
                          for i in range(0, len(images), batch_size)]).numpy()

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> float:
        """FID-lite between two image sets (each at least 2 images)."""
        return frechet_distance(self.features(a), self.features(b))

    __call__ = distance


def diversity(features) -> float:
    """Mean pairwise Euclidean distance between the rows of ``features`` (N, d), N >= 2: how
    spread out a set of generated images is in a feature space (0 for a collapsed generator).
    The LPIPS-free stand-in of the papers' LPIPS diversity; compare within one feature net."""
    f = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"features must be (N, d) with N >= 2, got {tuple(f.shape)}")
    d = torch.cdist(f, f)
    n = len(f)
    return float(d.sum() / (n * (n - 1)))
