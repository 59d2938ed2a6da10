"""Loader for the Stereo Hand Pose Tracking Benchmark (STB, Zhang et al. 2016/2017) labels.

Expected layout (``root``)::

    root/labels/<seq>_BB.mat, <seq>_SK.mat     # variable 'handPara' (3, 21, 1500), millimetres
    root/images/<seq>/BB_left_<i>.png, SK_color_<i>.png, SK_depth_<i>.png

with sequences ``B1Counting, B1Random, ..., B6Random``. STB's joint order is palm centre, then pinky,
ring, middle, index, thumb (each MCP → tip); we re-order with ``STB2CANON``. Joint 0 is the palm
centre, not the wrist: KaP moves the root to the wrist without giving the formula; ``palm_to_wrist``
applies a public heuristic (bihand's ``wrist = mid_MCP + 2.2·(palm - mid_MCP)``), labelled as such.
Protocol: train on B2-B6, test on B1 (Counting and Random).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cvtutor.data.hands.camera import normalize_pose
from cvtutor.data.hands.skeleton import STB2CANON

SEQUENCES = tuple(f"B{b}{kind}" for b in range(1, 7) for kind in ("Counting", "Random"))
SPLIT_SEQUENCES = {"train": SEQUENCES[2:], "test": SEQUENCES[:2]}
LAYOUT = "root/labels/<seq>_{BB,SK}.mat with 'handPara' (3, 21, n) in mm, <seq> in B1Counting..B6Random"
SK_COLOR_K = ((607.92271, 0.0, 314.78337), (0.0, 607.88192, 236.42484), (0.0, 0.0, 1.0))
BB_K = ((822.79041, 0.0, 318.47345), (0.0, 822.79041, 250.31296), (0.0, 0.0, 1.0))


def palm_to_wrist(xyz: np.ndarray, factor: float = 2.2) -> np.ndarray:
    """Heuristic (bihand): ``wrist = mid_MCP + factor·(palm - mid_MCP)`` on canonical joints (joint 0 = palm in, wrist out)."""
    out = np.array(xyz, dtype=np.float64, copy=True)
    out[..., 0, :] = out[..., 9, :] + factor * (out[..., 0, :] - out[..., 9, :])
    return out


def load_stb_labels(root: str | Path, split: str = "test", camera: str = "BB", wrist_root: bool = True) -> dict[str, torch.Tensor]:
    """3D labels of STB's ``split`` (``train`` = B2-B6, ``test`` = B1) for ``camera`` ``BB`` or ``SK``: ``xyz
    (n,21,3)`` metres in canonical order (root moved to the wrist if ``wrist_root``), ``uv`` projected with
    the camera's intrinsics, ``K``, ``root``, ``scale``, ``xyz_norm``, ``sequence (n,)`` index into SEQUENCES.
    (The SK labels are in the depth camera's frame; apply the depth→colour extrinsic before projecting
    onto SK colour images.)"""
    from scipy.io import loadmat

    if split not in SPLIT_SEQUENCES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if camera not in ("BB", "SK"):
        raise ValueError(f"camera must be 'BB' or 'SK', got {camera!r}")
    xyz_all, seq_all = [], []
    for seq in SPLIT_SEQUENCES[split]:
        path = Path(root) / "labels" / f"{seq}_{camera}.mat"
        if not path.is_file():
            raise FileNotFoundError(f"missing {path}; expected the layout {LAYOUT}")
        mat = loadmat(path)
        if "handPara" not in mat:
            raise ValueError(f"{path} has no variable 'handPara'; expected {LAYOUT}")
        para = np.asarray(mat["handPara"], dtype=np.float64)
        if para.ndim != 3 or para.shape[:2] != (3, 21):
            raise ValueError(f"{path}: handPara must be (3, 21, n), got {para.shape}")
        xyz = para.transpose(2, 1, 0)[:, list(STB2CANON)] / 1000.0
        xyz_all.append(palm_to_wrist(xyz) if wrist_root else xyz)
        seq_all.append(np.full(len(xyz), SEQUENCES.index(seq)))
    xyz = torch.as_tensor(np.concatenate(xyz_all)).float()
    K = torch.tensor(BB_K if camera == "BB" else SK_COLOR_K).float().expand(len(xyz), 3, 3).clone()
    p = xyz @ K.transpose(1, 2)
    out = {"xyz": xyz, "uv": p[..., :2] / p[..., 2:3], "K": K, "sequence": torch.as_tensor(np.concatenate(seq_all))}
    out["xyz_norm"], out["root"], out["scale"] = normalize_pose(xyz)
    return out
