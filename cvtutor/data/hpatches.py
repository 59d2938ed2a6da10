"""Reader of the HPatches sequences (``hpatches-sequences-release``): the data of the S2DNet
chapter's Fig. 3.

Layout: one folder per sequence, ``i_<name>`` (illumination) or ``v_<name>`` (viewpoint), each with
six images ``1.ppm`` … ``6.ppm`` and five plain-text 3×3 homographies ``H_1_2`` … ``H_1_6`` mapping
pixels of image 1 to pixels of image k. Nothing is downloaded: point ``root`` at a copy you own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LAYOUT = "<root>/{i_,v_}<name>/1.ppm ... 6.ppm and H_1_2 ... H_1_6 (hpatches-sequences-release)"


def read_homography(path: str | Path) -> np.ndarray:
    """A 3×3 homography from a whitespace-separated text file (HPatches' ``H_1_k``)."""
    try:
        H = np.loadtxt(path, dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{path}: not a whitespace-separated 3x3 matrix ({err})") from None
    if H.shape != (3, 3) or not np.isfinite(H).all():
        raise ValueError(f"{path}: expected a finite 3x3 homography, got shape {H.shape}")
    return H


def read_sequence(folder: str | Path) -> dict:
    """One sequence: ``name``, ``kind`` (``"illumination"`` / ``"viewpoint"``), ``images`` (six
    ``(H, W, 3)`` uint8 arrays) and ``H`` ``(5, 3, 3)`` (image 1 → images 2..6)."""
    from PIL import Image

    folder = Path(folder)
    kind = {"i": "illumination", "v": "viewpoint"}.get(folder.name[:1])
    if kind is None or folder.name[1:2] != "_":
        raise ValueError(
            f"{folder}: a sequence folder is named i_<name> or v_<name>; layout {LAYOUT}"
        )
    missing = [
        f
        for f in [f"{k}.ppm" for k in range(1, 7)] + [f"H_1_{k}" for k in range(2, 7)]
        if not (folder / f).is_file()
    ]
    if missing:
        raise FileNotFoundError(f"{folder}: missing {missing}; expected layout {LAYOUT}")
    images = [np.asarray(Image.open(folder / f"{k}.ppm").convert("RGB")) for k in range(1, 7)]
    H = np.stack([read_homography(folder / f"H_1_{k}") for k in range(2, 7)])
    return {"name": folder.name, "kind": kind, "images": images, "H": H}


def read_hpatches(
    root: str | Path, kinds: tuple[str, ...] = ("illumination", "viewpoint")
) -> list[dict]:
    """Every sequence under ``root`` (sorted by name) of the given kinds (:func:`read_sequence`)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"HPatches root {root} is not a directory; expected layout {LAYOUT}"
        )
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name[:2] in ("i_", "v_"))
    if not folders:
        raise FileNotFoundError(f"{root}: no i_* or v_* sequence folder; expected layout {LAYOUT}")
    seqs = [read_sequence(p) for p in folders]
    return [s for s in seqs if s["kind"] in kinds]
