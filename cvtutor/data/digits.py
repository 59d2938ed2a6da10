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
