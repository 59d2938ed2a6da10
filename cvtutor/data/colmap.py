"""A reader of COLMAP text models (``cameras.txt``, ``images.txt``, ``points3D.txt``).

Used by the *Deep Reflectance Volumes* chapter (``notebooks/eccv2020/deep_reflectance_volumes
.ipynb``) for flash photo sets calibrated by structure from motion: the scene is centred and scaled
into ``[-1, 1]³`` from the sparse points, and the light of each image sits at its camera centre
(collocated flash). COLMAP's pose is world→camera, ``X_c = R(q)·X_w + t`` with the quaternion
``q = (qw, qx, qy, qz)``, the convention of :mod:`cvtutor.data.geometry.cameras`.
"""
from __future__ import annotations

from pathlib import Path

import torch

#: COLMAP camera models read here and the number of parameters each has
MODELS = {"SIMPLE_PINHOLE": 3, "PINHOLE": 4, "SIMPLE_RADIAL": 4, "RADIAL": 5, "OPENCV": 8}


def _raw(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"expected a COLMAP text model file {path} (cameras.txt, "
                                "images.txt and points3D.txt in one folder)")
    return [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]


def _lines(path: Path) -> list[list[str]]:
    return [ln.split() for ln in _raw(path) if ln.strip()]


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` of quaternions ``(..., 4)`` = ``(w, x, y, z)``
    (normalised first)."""
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1
    ).reshape(*q.shape[:-1], 3, 3)


def read_colmap_text(folder, margin: float = 1.1, dtype=torch.float64) -> dict:
    """Read a COLMAP text model and normalise it into ``[-1, 1]³``.

    The sparse points' bounding box centre moves to the origin and its largest half side times
    ``margin`` becomes 1 (``X' = (X - c)/s``; a camera's ``t' = (t + R c)/s``). Returns
    ``K (N, 3, 3)`` (focal and principal point; distortion parameters are ignored), ``R (N, 3,
    3)``, ``t (N, 3)``, ``centres (N, 3)`` (= the collocated lights), ``names`` (N image files),
    ``sizes (N, 2)`` (width, height), ``points (P, 3)``, ``colors (P, 3)`` in ``[0, 1]``,
    ``centre (3,)`` and ``scale`` of the normalisation."""
    folder = Path(folder)
    cams = {}
    for row in _lines(folder / "cameras.txt"):
        model = row[1]
        if model not in MODELS or len(row) != 4 + MODELS[model]:
            raise ValueError(f"cameras.txt: expected 'ID MODEL WIDTH HEIGHT PARAMS' with MODEL in "
                             f"{sorted(MODELS)} and its parameter count, got {' '.join(row)!r}")
        p = [float(v) for v in row[4:]]
        fx, fy, cx, cy = (p[0], p[1], p[2], p[3]) if model in ("PINHOLE", "OPENCV") else \
            (p[0], p[0], p[1], p[2])
        cams[row[0]] = ([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], (int(row[2]), int(row[3])))
    # images.txt: two lines per image, the second (2-D points) may be empty and is then dropped
    text = _raw(folder / "images.txt")
    qs, ts, Ks, sizes, names = [], [], [], [], []
    for ln in text[0::2]:
        row = ln.split()
        if not row:
            continue
        if len(row) != 10 or row[8] not in cams:
            raise ValueError("images.txt: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME' "
                             f"with a CAMERA_ID of cameras.txt, got {ln!r}")
        qs.append([float(v) for v in row[1:5]])
        ts.append([float(v) for v in row[5:8]])
        Ks.append(cams[row[8]][0])
        sizes.append(cams[row[8]][1])
        names.append(row[9])
    pts = _lines(folder / "points3D.txt")
    if not pts or not qs:
        raise ValueError(f"{folder}: expected at least one image and one 3-D point")
    P = torch.tensor([[float(v) for v in r[1:4]] for r in pts], dtype=dtype)
    C = torch.tensor([[float(v) for v in r[4:7]] for r in pts], dtype=dtype) / 255
    R = quaternion_to_matrix(torch.tensor(qs, dtype=dtype))
    t = torch.tensor(ts, dtype=dtype)
    lo, hi = P.amin(0), P.amax(0)
    centre = (lo + hi) / 2
    scale = float((hi - lo).amax() / 2 * margin) or 1.0
    t_n = (t + (R @ centre[:, None])[..., 0]) / scale
    centres = -(R.transpose(-1, -2) @ t_n[..., None])[..., 0]
    return {"K": torch.tensor(Ks, dtype=dtype), "R": R, "t": t_n, "centres": centres,
            "names": names, "sizes": torch.tensor(sizes), "points": (P - centre) / scale,
            "colors": C, "centre": centre, "scale": scale}
