"""Few-shot translation data on disk (COCO-FUNIT, E23): class folders and FUNIT list files.

* :func:`class_folders`: ``root/<class name>/*.png|jpg`` (ImageNet's ``nXXXXXXXX/`` synset
  folders are this layout) -> a table ``path, class_name, label``;
* :func:`few_shot_split`: seen / unseen classes (by name or a seeded random split) and a K-shot
  :class:`~cvtutor.data.scenes2d.critters.KShotSampler` over the unseen ones;
* :func:`read_funit_list`: FUNIT's list files, one ``path x1 y1 x2 y2`` a line (a crop box in
  pixels); :func:`load_crops` reads the boxes as (N, 3, size, size) images in [0, 1].
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cvtutor.data.domains.readers import IMAGE_SUFFIXES, image_files
from cvtutor.data.scenes2d.critters import KShotSampler, class_split


def class_folders(root: str | os.PathLike) -> pd.DataFrame:
    """One row per image of ``root/<class>/``: ``path``, ``class_name``, ``label`` (classes
    sorted by name, 0..C-1)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"expected a folder of class folders at {root}")
    rows = []
    for label, folder in enumerate(sorted(p for p in root.iterdir() if p.is_dir())):
        for f in image_files(folder):
            rows.append({"path": f, "class_name": folder.name, "label": label})
    if not rows:
        raise FileNotFoundError(f"{root} holds no class folders with images "
                                f"({', '.join(IMAGE_SUFFIXES)}), expected root/<class>/<image>")
    return pd.DataFrame(rows)


def few_shot_split(table: pd.DataFrame, unseen: list[str] | int, k_shot: int = 1,
                   n_episodes: int = 100, seed: int = 0) -> dict:
    """``seen`` and ``unseen`` label tensors (``unseen`` class names, or a count for a seeded
    random split) and a one-way K-shot ``sampler`` over the unseen classes' images."""
    names = sorted(table["class_name"].unique())
    if isinstance(unseen, int):
        seen_t, unseen_t = class_split(len(names), unseen, seed)
    else:
        missing = sorted(set(unseen) - set(names))
        if missing:
            raise ValueError(f"unseen classes {missing} are not among the class folders {names}")
        u = torch.tensor(sorted(names.index(n) for n in unseen))
        seen_t = torch.tensor([i for i in range(len(names)) if i not in set(u.tolist())])
        unseen_t = u
    labels = torch.tensor(table["label"].to_numpy().copy())
    return {"seen": seen_t, "unseen": unseen_t,
            "sampler": KShotSampler(labels, unseen_t, 1, k_shot, 0, n_episodes, seed)}


def read_funit_list(path: str | os.PathLike, root: str | os.PathLike | None = None
                    ) -> pd.DataFrame:
    """FUNIT's list file: ``path x1 y1 x2 y2`` per line (blank lines skipped) -> columns
    ``path`` (joined to ``root`` if given), ``x1, y1, x2, y2`` (ints, x2 > x1, y2 > y1)."""
    rows = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 5:
            raise ValueError(f"{path}:{i}: expected 'path x1 y1 x2 y2', got {line!r}")
        try:
            x1, y1, x2, y2 = (int(float(v)) for v in parts[1:])
        except ValueError:
            raise ValueError(f"{path}:{i}: the box 'x1 y1 x2 y2' must be numbers, "
                             f"got {parts[1:]}") from None
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"{path}:{i}: expected x2 > x1 and y2 > y1, got {parts[1:]}")
        p = Path(root) / parts[0] if root is not None else Path(parts[0])
        rows.append({"path": p, "x1": x1, "y1": y1, "x2": x2, "y2": y2})
    return pd.DataFrame(rows, columns=["path", "x1", "y1", "x2", "y2"])


def load_crops(table: pd.DataFrame, size: int) -> torch.Tensor:
    """The boxes of a :func:`read_funit_list` table, cropped and resized: (N, 3, size, size)."""
    from PIL import Image

    out = []
    for r in table.itertuples():
        im = Image.open(r.path).convert("RGB").crop((r.x1, r.y1, r.x2, r.y2))
        out.append(np.asarray(im.resize((size, size), Image.BILINEAR), np.float32) / 255)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()
