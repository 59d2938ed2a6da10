"""Readers for the two real neuron-membrane data sets of TopoGAN (ECCV 2020), in their own formats.

Neither data set can be downloaded here; these readers let the chapter run on them where they are
present, and are tested on small fixture files written in the same layout.

* **ISBI 2012** (EM segmentation challenge): ``train-volume.tif`` and ``train-labels.tif``, two
  multi-page grey TIFFs of 30 slices of 512x512 each. In the labels, 255 is cell interior and 0 is
  membrane. Read with Pillow (``ImageSequence``), no other dependency.
* **CREMI** (``sample_A_20160501.hdf`` etc.): HDF5 with ``volumes/raw`` (uint8, Z x Y x X) and
  ``volumes/labels/neuron_ids`` (uint64 neuron ids). Membranes are the boundaries between ids.
  Needs ``h5py``, which is not a dependency of cvtutor (it is not installed in the book's
  environment): :func:`load_cremi` raises an ImportError saying so.

Both return membrane masks with this package's convention: ``True`` = membrane (structure).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ISBI_FILES = ("train-volume.tif", "train-labels.tif")
CREMI_KEYS = ("volumes/raw", "volumes/labels/neuron_ids")


def read_tiff_stack(path: str | os.PathLike) -> np.ndarray:
    """All pages of a multi-page TIFF as an array (pages, H, W)."""
    from PIL import Image, ImageSequence

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no TIFF stack at {path}")
    with Image.open(path) as im:
        pages = [np.asarray(p.convert("L") if p.mode not in ("L", "I;16", "I", "F") else p)
                 for p in ImageSequence.Iterator(im)]
    shapes = {p.shape for p in pages}
    if len(shapes) != 1 or len(pages[0].shape) != 2:
        raise ValueError(f"{path}: expected grey pages of one size, got shapes {sorted(shapes)}")
    return np.stack(pages)


def load_isbi2012(root: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """ISBI 2012 from ``root``/train-volume.tif and ``root``/train-labels.tif.

    Returns ``images`` (Z, H, W) float32 in [0, 1] and ``membranes`` (Z, H, W) bool (label 0).
    """
    root = Path(root)
    missing = [f for f in ISBI_FILES if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(f"ISBI 2012 expects {ISBI_FILES[0]} and {ISBI_FILES[1]} (multi-page TIFFs) "
                                f"in {root}; missing: {', '.join(missing)}")
    raw, labels = (read_tiff_stack(root / f) for f in ISBI_FILES)
    if raw.shape != labels.shape:
        raise ValueError(f"ISBI 2012: volume {raw.shape} and labels {labels.shape} differ in shape")
    values = np.unique(labels)
    if not set(values.tolist()) <= {0, 255}:
        raise ValueError(f"ISBI 2012 labels must be 0 (membrane) or 255 (cell), got values {values[:10]}")
    scale = 255.0 if raw.dtype == np.uint8 else float(max(raw.max(), 1))
    return (raw / scale).astype(np.float32), labels == 0


def boundaries(ids: np.ndarray) -> np.ndarray:
    """Membrane mask of a label slice (H, W) or stack (Z, H, W): a pixel whose right or lower
    4-neighbour has another id (one-sided, one pixel thick, as in :mod:`cvtutor.data.membranes`)."""
    ids = np.asarray(ids)
    if ids.ndim not in (2, 3):
        raise ValueError(f"label ids must be (H, W) or (Z, H, W), got shape {ids.shape}")
    m = np.zeros(ids.shape, bool)
    m[..., :, :-1] |= ids[..., :, :-1] != ids[..., :, 1:]
    m[..., :-1, :] |= ids[..., :-1, :] != ids[..., 1:, :]
    return m


def load_cremi(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A CREMI HDF5 file: ``images`` (Z, Y, X) float32 in [0, 1] from ``volumes/raw`` and
    ``membranes`` (Z, Y, X) bool, the boundaries of ``volumes/labels/neuron_ids`` per slice."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no CREMI file at {path} "
                                f"(an HDF5 file with {CREMI_KEYS[0]} and {CREMI_KEYS[1]})")
    try:
        import h5py
    except ImportError as e:
        raise ImportError("reading CREMI needs h5py (pip install h5py), "
                          "which cvtutor does not depend on") from e
    with h5py.File(path, "r") as f:
        missing = [k for k in CREMI_KEYS if k not in f]
        if missing:
            raise KeyError(f"{path}: a CREMI file holds {CREMI_KEYS[0]} and {CREMI_KEYS[1]}; "
                           f"missing {missing}")
        raw, ids = f[CREMI_KEYS[0]][()], f[CREMI_KEYS[1]][()]
    if raw.shape != ids.shape or raw.ndim != 3:
        raise ValueError(f"{path}: raw {raw.shape} and neuron_ids {ids.shape} "
                         "must be the same (Z, Y, X) shape")
    return (raw / 255.0).astype(np.float32), boundaries(ids)


def patches(masks: np.ndarray, size: int = 64, stride: int | None = None) -> np.ndarray:
    """Non-overlapping (or ``stride``-spaced) square patches (N, size, size) of a (Z, H, W) stack,
    the 64x64 patches the paper trains on."""
    masks = np.asarray(masks)
    if masks.ndim != 3 or min(masks.shape[1:]) < size:
        raise ValueError(f"need a (Z, H, W) stack with H, W >= {size}, got shape {masks.shape}")
    stride = stride or size
    out = [masks[:, y:y + size, x:x + size] for y in range(0, masks.shape[1] - size + 1, stride)
           for x in range(0, masks.shape[2] - size + 1, stride)]
    return np.concatenate(out)
