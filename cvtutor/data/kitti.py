"""KITTI 3-D object benchmark readers and the result writer (RTM3D chapter,
``notebooks/eccv2020/rtm3d.ipynb``).

Layout (``root`` is the folder the official zip files unpack into)::

    root/training/image_2/000000.png   left colour images
    root/training/image_3/000000.png   right colour images (optional)
    root/training/label_2/000000.txt   one object a line, 15 fields (below)
    root/training/calib/000000.txt     P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo
    root/ImageSets/train.txt           split files: one 6-digit id a line (3DOP's val1: 3712/3769)

A label line: ``type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y`` (the location is the
bottom centre of the box in rectified camera coordinates, metres; ``alpha`` the observation angle).
A result file adds a 16th field, ``score``; :func:`write_label` writes those for the official devkit.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

LABEL_FIELDS = ("type", "truncated", "occluded", "alpha", "x1", "y1", "x2", "y2", "h", "w", "l", "x", "y",
                "z", "rotation_y")
CALIB_SHAPES = {"P0": (3, 4), "P1": (3, 4), "P2": (3, 4), "P3": (3, 4), "R0_rect": (3, 3),
                "Tr_velo_to_cam": (3, 4), "Tr_imu_to_velo": (3, 4)}
LAYOUT = ("root/training/{image_2,label_2,calib}/<6-digit id>.{png,txt} and root/ImageSets/<split>.txt "
          "(the KITTI 3-D object benchmark)")


def read_label(path: str | Path) -> pd.DataFrame:
    """A ``label_2`` (15 fields) or result (16 fields, with ``score``) file as a DataFrame, one object a row."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no KITTI label file {path}; expected {LAYOUT}")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) not in (15, 16):
            raise ValueError(f"{path}:{n}: a KITTI label line has 15 fields (16 with a score), got {len(f)}")
        try:
            vals = [f[0]] + [float(v) for v in f[1:]]
        except ValueError as e:
            raise ValueError(f"{path}:{n}: fields 2-{len(f)} must be numbers: {e}") from None
        rows.append(vals)
    cols = list(LABEL_FIELDS) + (["score"] if rows and len(rows[0]) == 16 else [])
    if any(len(r) != len(cols) for r in rows):
        raise ValueError(f"{path}: lines mix 15 and 16 fields")
    df = pd.DataFrame(rows, columns=cols)
    if len(df):
        df["occluded"] = df["occluded"].astype(int)
    return df


def write_label(path: str | Path, objects: pd.DataFrame) -> Path:
    """Write objects in the KITTI label format (with the ``score`` column: a result file for the devkit)."""
    missing = set(LABEL_FIELDS) - set(objects.columns)
    if missing:
        raise ValueError(f"objects lack the KITTI fields {sorted(missing)}; expected {LABEL_FIELDS} (+ score)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for _, o in objects.iterrows():
        f = [str(o["type"]), f"{o['truncated']:.2f}", str(int(o["occluded"])), f"{o['alpha']:.2f}"]
        f += [f"{o[k]:.2f}" for k in LABEL_FIELDS[4:]]
        if "score" in objects.columns:
            f.append(f"{o['score']:.4f}")
        lines.append(" ".join(f))
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return path


def read_calib(path: str | Path) -> dict[str, np.ndarray]:
    """A ``calib`` file: ``{"P0".."P3": 3×4, "R0_rect": 3×3, "Tr_velo_to_cam": 3×4, "Tr_imu_to_velo": 3×4}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no KITTI calib file {path}; expected {LAYOUT}")
    out = {}
    for line in path.read_text().splitlines():
        if ":" not in line:
            continue
        key, vals = line.split(":", 1)
        key = key.strip()
        if key in CALIB_SHAPES:
            v = np.array([float(x) for x in vals.split()])
            if v.size != int(np.prod(CALIB_SHAPES[key])):
                raise ValueError(f"{path}: {key} needs {np.prod(CALIB_SHAPES[key])} numbers, got {v.size}")
            out[key] = v.reshape(CALIB_SHAPES[key])
    if "P2" not in out:
        raise ValueError(f"{path}: no P2 line (the left colour camera's 3×4 projection)")
    return out


def read_split(path: str | Path) -> list[str]:
    """A split file (``ImageSets/val.txt``): the 6-digit ids, one a line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no KITTI split file {path}; expected {LAYOUT}")
    ids = [s.strip() for s in path.read_text().splitlines() if s.strip()]
    bad = [i for i in ids if not i.isdigit()]
    if bad:
        raise ValueError(f"{path}: ids must be digits (e.g. 000123), got {bad[:3]}")
    return ids


def read_image(path: str | Path) -> np.ndarray:
    """An ``image_2`` PNG as ``uint8 (H, W, 3)``."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no KITTI image {path}; expected {LAYOUT}")
    return np.asarray(Image.open(path).convert("RGB"))


def read_sample(root: str | Path, sample_id: str, part: str = "training", image: bool = True) -> dict:
    """One frame: ``{"image", "labels", "calib", "K"}`` (``K`` the left 3×3 intrinsics, from P2)."""
    base = Path(root) / part
    if not base.is_dir():
        raise FileNotFoundError(f"no KITTI folder {base}; expected {LAYOUT}")
    calib = read_calib(base / "calib" / f"{sample_id}.txt")
    out = {"calib": calib, "K": calib["P2"][:, :3].copy()}
    label = base / "label_2" / f"{sample_id}.txt"
    out["labels"] = read_label(label) if label.is_file() else None
    if image:
        out["image"] = read_image(base / "image_2" / f"{sample_id}.png")
    return out
