"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes) as tensors.

The data ships inside scikit-learn, so nothing is downloaded. Pixel values are scaled from
0..16 to [0, 1].
"""
from __future__ import annotations

import torch


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> dict[str, torch.Tensor]:
    """A stratified train/test split of the digits: ``x_train (N,64)``, ``y_train (N,)``, ``x_test``, ``y_test``."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte}


def _digit_modalities(images: torch.Tensor, y: torch.Tensor, n: int, n_classes: int, noise: float,
                      g: torch.Generator) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``n`` tuples: a uniform class, then three images of that class drawn independently."""
    by_class = [torch.nonzero(y == c)[:, 0] for c in range(n_classes)]
    labels = torch.randint(0, n_classes, (n,), generator=g)
    picks = []
    for _ in range(3):  # an independent draw (with replacement) per modality: exact CI given the class
        u = torch.rand(n, generator=g)
        idx = torch.empty(n, dtype=torch.long)
        for c in range(n_classes):
            sel = labels == c
            pool = by_class[c]
            idx[sel] = pool[(u[sel] * len(pool)).long().clamp_max(len(pool) - 1)]
        picks.append(images[idx])
    m1 = picks[0].reshape(n, 64)
    # m2: rotated by 90 degrees, a random 4x4 patch occluded, heavy Gaussian noise
    m2 = torch.rot90(picks[1].reshape(n, 8, 8), 1, dims=(1, 2)).clone()
    r0 = torch.randint(0, 5, (n,), generator=g)
    c0 = torch.randint(0, 5, (n,), generator=g)
    rows = torch.arange(8)
    occl = ((rows[None, :, None] >= r0[:, None, None]) & (rows[None, :, None] < r0[:, None, None] + 4)
            & (rows[None, None, :] >= c0[:, None, None]) & (rows[None, None, :] < c0[:, None, None] + 4))
    m2[occl] = 0.0
    m2 = (m2 + noise * torch.randn(n, 8, 8, generator=g)).reshape(n, 64)
    # m3: a 4x4 low-resolution view (2x2 average pooling) with mild noise
    m3 = picks[2].reshape(n, 1, 8, 8)
    m3 = torch.nn.functional.avg_pool2d(m3, 2).reshape(n, 16) + 0.1 * noise * torch.randn(n, 16, generator=g)
    return [m1, m2, m3], labels


def multimodal_digits(n_train: int = 3000, n_test: int = 1000, n_classes: int = 10, noise: float = 0.5,
                      test_fraction: float = 0.25, seed: int = 0) -> dict:
    """Three "modalities" of a digit class, built from *independent* draws of that class.

    A sample of class ``y`` is ``(x^1, x^2, x^3)``: three different images of digit ``y``, drawn
    independently, so the modalities are exactly independent given the label (Assumption 1 of
    TCGM). ``x^1`` is the clean image (64 values); ``x^2`` another image rotated by 90 degrees, with
    a random 4x4 occlusion and Gaussian noise of std ``noise`` (64 values); ``x^3`` a third image at
    4x4 resolution (16 values). Classes are ``0 .. n_classes-1``, uniform. Test tuples are built
    from test images only (the split of :func:`load_digits`).

    Returns ``{"x_train": [3 tensors], "y_train", "x_test": [...], "y_test", "names"}``.
    """
    if not 2 <= n_classes <= 10:
        raise ValueError(f"n_classes must be in [2, 10], got {n_classes}")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be positive, got {n_train}, {n_test}")
    if noise < 0:
        raise ValueError(f"noise must be non-negative, got {noise}")
    split = load_digits(test_fraction=test_fraction, seed=seed)
    g = torch.Generator().manual_seed(int(seed) + 1)
    out: dict = {"names": ["clean", "rotated+noisy", "low-res"]}
    for part, n in (("train", n_train), ("test", n_test)):
        keep = split[f"y_{part}"] < n_classes
        xs, y = _digit_modalities(split[f"x_{part}"][keep], split[f"y_{part}"][keep], n, n_classes, noise, g)
        out[f"x_{part}"], out[f"y_{part}"] = xs, y
    return out
