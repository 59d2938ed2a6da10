"""Membrane-like binary masks whose topology is known exactly, and a fixed mask -> image texture.

Stand-ins for the CREMI / ISBI12 neuron-membrane masks (Voronoi cells) and the Google Maps road
masks (straight roads) of TopoGAN (ECCV 2020). Convention: ``1`` = structure (membrane, road),
``0`` = background. With a one-pixel structure frame around the patch, every background region
is enclosed, so the number of holes (the first Betti number) equals the number of 4-connected
background components, which :func:`count_holes` computes with ``scipy.ndimage.label``.

Everything is generated with NumPy from a seed (bit-identical for a seed, on any machine) and can
be moved to a torch device afterwards.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

KINDS = ("voronoi", "roads")
_FOUR = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
_NEIGHBOURS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]])


def _check_masks(masks: np.ndarray) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise ValueError(f"masks must be (H, W) or (N, H, W), got shape {masks.shape}")
    return masks.astype(bool)


def frame(masks: np.ndarray) -> np.ndarray:
    """Pad (N, H, W) masks with a one-pixel structure frame: every branch then closes a hole."""
    masks = _check_masks(masks)
    return np.pad(masks, ((0, 0), (1, 1), (1, 1)), constant_values=True)


def count_holes(masks: np.ndarray) -> np.ndarray:
    """Betti-1 of each framed mask = its number of 4-connected background components, shape (N,)."""
    framed = frame(masks)
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = _FOUR  # label each image on its own, 4-connectivity inside an image
    labels, _ = ndimage.label(~framed, structure=structure)
    return np.array([len(np.unique(lab[lab > 0])) for lab in labels], dtype=np.int64)


def _dart_throwing(rng: np.random.Generator, k: int, size: int, min_dist: float, tries: int = 200) -> np.ndarray:
    pts: list[np.ndarray] = []
    for _ in range(tries):
        if len(pts) == k:
            break
        p = rng.uniform(0, size, 2)
        if all(np.hypot(*(p - q)) >= min_dist for q in pts):
            pts.append(p)
    return np.array(pts)


def _voronoi_mask(rng: np.random.Generator, size: int, k: int, min_dist: float) -> tuple[np.ndarray, int]:
    seeds = _dart_throwing(rng, k, size, min_dist)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    d2 = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    lab = d2.argmin(-1)
    mask = np.zeros((size, size), bool)
    # one-sided boundaries: of two 4-adjacent pixels of different cells, the left/top one is membrane,
    # so no two 4-adjacent background pixels belong to different cells
    mask[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    mask[:-1, :] |= lab[:-1, :] != lab[1:, :]
    return mask, len(seeds)


def _road_mask(rng: np.random.Generator, size: int, n_roads: int, width: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    mask = np.zeros((size, size), bool)
    for _ in range(n_roads):
        theta = rng.uniform(0, np.pi)
        c = rng.uniform(0.2 * size, 0.8 * size, 2)
        dist = np.abs((yy - c[0]) * np.cos(theta) - (xx - c[1]) * np.sin(theta))
        mask |= dist < width / 2
    return mask


def membrane_masks(n: int, size: int = 32, seed: int = 0, kind: str = "voronoi", mean_extra_cells: float = 4.0,
                   min_cells: int = 4, max_cells: int = 12, n_roads: tuple[int, int] = (2, 5),
                   road_width: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` masks (N, size, size) of dtype bool and their exact numbers of holes (N,).

    ``kind="voronoi"`` (CREMI-like): K = min_cells + Poisson(mean_extra_cells) seeds (clipped to
    ``max_cells``) placed by dart throwing with a minimum distance, each pixel labelled by its
    nearest seed, one-pixel membranes between cells. A mask is kept only if its number of holes
    (with the frame) equals its number of cells, so the count is exact by construction and by check.
    ``kind="roads"`` (Maps-like): a few straight roads of width ``road_width`` across the patch; its
    number of holes is the number of enclosed background regions.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    if not 1 <= min_cells <= max_cells:
        raise ValueError(f"need 1 <= min_cells <= max_cells, got {min_cells}, {max_cells}")
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), bool)
    holes = np.zeros(n, np.int64)
    min_dist = 0.55 * size / np.sqrt(max_cells)
    i = 0
    while i < n:
        if kind == "voronoi":
            k = int(min(max_cells, min_cells + rng.poisson(mean_extra_cells)))
            mask, placed = _voronoi_mask(rng, size, k, min_dist)
            h = int(count_holes(mask)[0])
            if h != placed:  # a cell vanished or split on the pixel grid: draw again
                continue
        else:
            mask = _road_mask(rng, size, int(rng.integers(n_roads[0], n_roads[1] + 1)), road_width)
            h = int(count_holes(mask)[0])
        masks[i], holes[i] = mask, h
        i += 1
    return masks, holes


def cut_gaps(masks: np.ndarray, n_gaps: int = 1, width: int = 3, seed: int = 0) -> np.ndarray:
    """Erase ``n_gaps`` square windows of side ``width`` centred on random membrane pixels.

    A window is centred on a membrane pixel whose 5x5 neighbourhood holds no junction (no pixel
    with three or more structure 4-neighbours), so each cut breaks one wall between two cells.
    """
    masks = _check_masks(masks).copy()
    if width < 1 or n_gaps < 0:
        raise ValueError(f"need width >= 1 and n_gaps >= 0, got width={width}, n_gaps={n_gaps}")
    rng = np.random.default_rng(seed)
    size_h, size_w = masks.shape[1:]
    for m in masks:
        nb = ndimage.convolve(m.astype(int), _NEIGHBOURS, mode="constant")
        junction = ndimage.binary_dilation(m & (nb >= 3), iterations=2)
        margin = np.zeros_like(m)
        margin[width:size_h - width, width:size_w - width] = True
        ys, xs = np.nonzero(m & ~junction & margin)
        if len(ys) == 0:
            continue
        for j in rng.choice(len(ys), size=min(n_gaps, len(ys)), replace=False):
            y0, x0 = ys[j] - width // 2, xs[j] - width // 2
            m[y0:y0 + width, x0:x0 + width] = False
    return masks


def texture(masks: np.ndarray, seed: int = 0, blur: float = 0.8, noise: float = 0.08) -> np.ndarray:
    """A fixed procedural EM-like rendering of masks: dark blurred membranes on a grainy, shaded
    cell interior. Stands in for the pix2pix mask -> image network of the paper (Table 2).

    Returns float32 images in [0, 1] of the masks' shape. The same masks and seed give the same images.
    """
    masks = _check_masks(masks)
    rng = np.random.default_rng(seed)
    out = np.empty(masks.shape, np.float32)
    for i, m in enumerate(masks):
        lab, n = ndimage.label(~m, structure=_FOUR)
        shade = np.concatenate([[0.0], rng.uniform(-0.12, 0.12, n)])[lab]  # per-cell brightness
        grain = ndimage.gaussian_filter(rng.normal(0, 1, m.shape), 1.0)
        membrane = ndimage.gaussian_filter(m.astype(float), blur)
        img = 0.72 + shade + noise * grain / (grain.std() + 1e-8) - 0.9 * membrane
        out[i] = np.clip(img, 0, 1)
    return out
