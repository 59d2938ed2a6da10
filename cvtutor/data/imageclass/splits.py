"""Class splits of the image-classification world: open-set known/unknown partitions,
class-incremental tasks and label-fraction subsets.

Derived in ``notebooks/eccv2020/world_images.ipynb`` (section 4); used by the open-set chapters
(E07, E30: "6 known of 10, five random partitions"), side-tuning's incremental tasks (E41) and the
label-fraction experiments. All seeded (CPU generator: a split is the same on every device).
"""

from __future__ import annotations

import math

import torch

from cvtutor.metrics.classification import open_set_labels, openness

__all__ = [
    "open_set_splits",
    "relabel_known",
    "open_set_labels",
    "openness",
    "class_incremental_tasks",
    "task_of_class",
    "label_fraction",
    "open_set_data",
]


def open_set_splits(
    n_classes: int, n_known: int, n_splits: int = 5, seed: int = 0
) -> list[tuple[int, ...]]:
    """``n_splits`` distinct random sets of ``n_known`` known classes (sorted tuples) of
    ``0 .. n_classes-1``; the rest are unknown. The benchmarks' protocol (Neal et al. 2018):
    e.g. 6 known of 10 classes in 5 partitions, openness :func:`openness(6, 10)` = 22.54 %."""
    if not 1 <= n_known < n_classes:
        raise ValueError(f"need 1 <= n_known < n_classes, got {n_known}, {n_classes}")
    if not 1 <= n_splits <= math.comb(n_classes, n_known):
        raise ValueError(
            f"n_splits must be in 1..C({n_classes}, {n_known}) = "
            f"{math.comb(n_classes, n_known)}, got {n_splits}"
        )
    g = torch.Generator().manual_seed(int(seed))
    out: list[tuple[int, ...]] = []
    while len(out) < n_splits:
        known = tuple(sorted(torch.randperm(n_classes, generator=g)[:n_known].tolist()))
        if known not in out:
            out.append(known)
    return out


def relabel_known(y: torch.Tensor, known: tuple[int, ...]) -> torch.Tensor:
    """Known class ``known[i]`` becomes label ``i``; every other class the unknown label ``k``."""
    y = torch.as_tensor(y)
    lut = torch.full(
        (int(y.max()) + 1 if len(y) else 1,), len(known), dtype=torch.long, device=y.device
    )
    for i, c in enumerate(known):
        if c < len(lut):
            lut[c] = i
    return lut[y.long()]


def class_incremental_tasks(
    n_classes: int, n_tasks: int, seed: int | None = None
) -> list[tuple[int, ...]]:
    """Split the classes into ``n_tasks`` disjoint tasks of equal size, in class order or, with a
    ``seed``, in a random class order (iCaRL's protocol)."""
    if n_tasks < 1 or n_classes % n_tasks:
        raise ValueError(
            f"n_tasks must divide n_classes, got {n_tasks} tasks for {n_classes} classes"
        )
    order = (
        list(range(n_classes))
        if seed is None
        else torch.randperm(n_classes, generator=torch.Generator().manual_seed(int(seed))).tolist()
    )
    size = n_classes // n_tasks
    return [tuple(order[t * size : (t + 1) * size]) for t in range(n_tasks)]


def task_of_class(tasks: list[tuple[int, ...]], y: torch.Tensor) -> torch.Tensor:
    """The task index of each label in ``y``."""
    lut = torch.full((max(max(t) for t in tasks) + 1,), -1, dtype=torch.long)
    for i, t in enumerate(tasks):
        lut[list(t)] = i
    return lut.to(torch.as_tensor(y).device)[torch.as_tensor(y).long()]


def label_fraction(y: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Sorted indices of a class-stratified subset: ``max(1, round(fraction * n_c))`` samples of
    each class ``c`` (the "x % of the labels" experiments)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    y = torch.as_tensor(y).cpu()
    g = torch.Generator().manual_seed(int(seed))
    keep = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c)[:, 0]
        m = max(1, round(fraction * len(idx)))
        keep.append(idx[torch.randperm(len(idx), generator=g)[:m]])
    return torch.sort(torch.cat(keep)).values


def open_set_data(digits: dict, known: tuple[int, ...], n_train: int | None = None,
                  n_test: int | None = None) -> dict:
    """One open-set split of a world ``{"train": ImageSet, "test": ImageSet}`` (E30, E07): the
    known classes' training images (labels 0..k-1), the known test images, and every image of
    the unknown classes (train and test parts). ``n_train`` / ``n_test`` cap the counts."""
    k = len(known)
    tr, te = digits["train"], digits["test"]
    ytr, yte = relabel_known(tr.y, known), relabel_known(te.y, known)
    keep = torch.nonzero(ytr < k)[:, 0]
    if n_train is not None:
        keep = keep[:n_train]
    unknown = torch.cat([tr.x[ytr == k], te.x[yte == k]])
    n = n_test if n_test is not None else len(te.x) + len(unknown)
    return {"x_train": tr.x[keep], "y_train": ytr[keep], "x_known": te.x[yte < k][:n],
            "y_known": yte[yte < k][:n], "x_unknown": unknown[:n]}
