"""Loader for FreiHAND (Zimmermann et al. 2019) training annotations and its four versions.

Expected layout (``root``)::

    root/training_K.json, training_xyz.json      # JSON lists: n × (3,3), n × (21,3) metres, canonical order
    root/training/rgb/%08d.jpg                   # 4 × n images: index i + k·n is version k of sample i

Versions ``k``: 0 ``gs`` (green screen, "G"), 1 ``hom`` (harmonized, "H"), 2 ``sample`` (colorization sample,
"S"), 3 ``auto`` (colorization auto, "A"). KaP's split: per version the first 30,000 samples train and the
remaining 2,560 evaluate (``kap_split``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from cvtutor.data.hands.camera import normalize_pose

VERSIONS = ("G", "H", "S", "A")
LAYOUT = "root/training_K.json, root/training_xyz.json (JSON lists), root/training/rgb/%08d.jpg (4 x n images)"
KAP_TRAIN = 30_000


def kap_split(n: int, split: str) -> range:
    """KaP supplement §3: the first 30,000 training samples train, the remaining (2,560 of 32,560) evaluate.
    For a smaller ``n`` (fixtures) the same rule is applied proportionally."""
    cut = KAP_TRAIN if n > KAP_TRAIN else int(round(n * KAP_TRAIN / 32_560))
    if split == "train":
        return range(cut)
    if split == "test":
        return range(cut, n)
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _json_array(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"missing {path}; expected the layout {LAYOUT}")
    arr = np.asarray(json.loads(path.read_text()), dtype=np.float64)
    if arr.ndim != 1 + len(shape) or arr.shape[1:] != shape:
        raise ValueError(f"{path}: expected a list of {shape} arrays, got shape {arr.shape}")
    return arr


def load_freihand(root: str | Path, version: str = "G", split: str = "train", images: bool = True,
                  limit: int | None = None) -> dict[str, torch.Tensor]:
    """FreiHAND training samples of one version as hand-world keys: ``rgb`` (if ``images``), ``xyz``, ``uv``,
    ``K``, ``root``, ``scale``, ``xyz_norm``, ``index`` (sample index i)."""
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
    root = Path(root)
    K = _json_array(root / "training_K.json", (3, 3))
    xyz = _json_array(root / "training_xyz.json", (21, 3))
    if len(K) != len(xyz):
        raise ValueError(f"training_K.json has {len(K)} entries but training_xyz.json {len(xyz)}")
    idx = list(kap_split(len(xyz), split))[:limit]
    out = {"xyz": torch.as_tensor(xyz[idx]).float(), "K": torch.as_tensor(K[idx]).float(), "index": torch.tensor(idx)}
    p = out["xyz"] @ out["K"].transpose(1, 2)
    out["uv"] = p[..., :2] / p[..., 2:3]
    out["xyz_norm"], out["root"], out["scale"] = normalize_pose(out["xyz"])
    if images:
        from PIL import Image

        k = VERSIONS.index(version)
        rgbs = []
        for i in idx:
            path = root / "training" / "rgb" / f"{i + k * len(xyz):08d}.jpg"
            if not path.is_file():
                raise FileNotFoundError(f"missing {path}; expected the layout {LAYOUT}")
            rgbs.append(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0)
        out["rgb"] = torch.as_tensor(np.stack(rgbs))
    return out
