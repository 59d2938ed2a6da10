"""Fixture files that several test modules write (real formats, tiny, never downloaded)."""
import pickle

import numpy as np


def write_cifar10(root, n=4):
    """Write ``root/cifar-10-batches-py`` with five training batches and a test batch of ``n``
    random 32×32 RGB images each (labels ``0..n-1``), in the official pickle layout."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
                         "labels": list(range(n))}, f)
