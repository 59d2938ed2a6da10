"""Loader for the Stereo Hand Pose Tracking Benchmark (STB, Zhang et al. 2016/2017): labels and images.

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
# depth -> colour extrinsic of the RealSense (SK) camera, as applied by public loaders (lixiny/bihand):
# xyz_colour = (xyz_depth - T) @ R(rvec), millimetres
SK_ROT_VEC = (0.00531, -0.01196, 0.00301)
SK_TRANS_MM = (-24.0381, -0.4563, -1.2326)
IMAGE_FILES = {"BB": "BB_left_{i}.png", "SK": "SK_color_{i}.png"}
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
    SK labels come in the depth camera's frame and are moved to the colour camera's with
    :func:`sk_depth_to_colour`, so ``uv`` lands on the SK colour images. ``frame (n,)`` is the frame index
    within its sequence."""
    from scipy.io import loadmat

    if split not in SPLIT_SEQUENCES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if camera not in ("BB", "SK"):
        raise ValueError(f"camera must be 'BB' or 'SK', got {camera!r}")
    xyz_all, seq_all, frame_all = [], [], []
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
        frame_all.append(np.arange(len(xyz)))
    xyz = torch.as_tensor(np.concatenate(xyz_all)).float()
    if camera == "SK":
        xyz = sk_depth_to_colour(xyz)
    K = torch.tensor(BB_K if camera == "BB" else SK_COLOR_K).float().expand(len(xyz), 3, 3).clone()
    p = xyz @ K.transpose(1, 2)
    out = {"xyz": xyz, "uv": p[..., :2] / p[..., 2:3], "K": K, "sequence": torch.as_tensor(np.concatenate(seq_all)),
           "frame": torch.as_tensor(np.concatenate(frame_all))}
    out["xyz_norm"], out["root"], out["scale"] = normalize_pose(xyz)
    return out


def rodrigues(rvec) -> np.ndarray:
    """Rotation matrix of a rotation vector (axis times angle in radians)."""
    r = np.asarray(rvec, dtype=np.float64)
    theta = np.linalg.norm(r)
    if theta < 1e-12:
        return np.eye(3)
    k = r / theta
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * Kx + (1 - np.cos(theta)) * Kx @ Kx


def sk_depth_to_colour(xyz_m: torch.Tensor) -> torch.Tensor:
    """SK labels from the depth camera's frame to the colour camera's: ``(xyz - T) @ R`` in mm (bihand's convention)."""
    R = torch.as_tensor(rodrigues(SK_ROT_VEC), dtype=xyz_m.dtype)
    T = torch.as_tensor(SK_TRANS_MM, dtype=xyz_m.dtype) / 1000.0
    return (xyz_m - T) @ R


def decode_sk_depth(png_rgb: np.ndarray) -> np.ndarray:
    """SK depth PNG (H, W, 3) uint8 to metres: ``depth_mm = G·256 + R``."""
    if png_rgb.ndim != 3 or png_rgb.shape[2] < 2:
        raise ValueError(f"an SK depth image must be (H, W, 3), got shape {png_rgb.shape}")
    g, r = png_rgb[..., 1].astype(np.float64), png_rgb[..., 0].astype(np.float64)
    return (g * 256.0 + r) / 1000.0


def load_stb(root: str | Path, split: str = "test", camera: str = "SK", limit: int | None = None,
             with_depth: bool = False, wrist_root: bool = True) -> dict[str, torch.Tensor]:
    """STB with images: the keys of :func:`load_stb_labels` plus ``rgb (n,3,480,640)`` in [0, 1] and, for the
    SK camera with ``with_depth``, ``depth (n,1,480,640)`` in metres (0 = no measurement). ``limit`` keeps
    the first ``limit`` frames of the split. The papers treat STB as RGB-only: depth is off by default."""
    from PIL import Image

    if with_depth and camera != "SK":
        raise ValueError("only the SK (RealSense) camera has depth images; use camera='SK'")
    labels = load_stb_labels(root, split, camera, wrist_root)
    n = len(labels["xyz"]) if limit is None else min(limit, len(labels["xyz"]))
    out = {k: v[:n] for k, v in labels.items()}
    rgbs, depths = [], []
    for seq_id, frame in zip(out["sequence"].tolist(), out["frame"].tolist()):
        folder = Path(root) / "images" / SEQUENCES[seq_id]
        path = folder / IMAGE_FILES[camera].format(i=frame)
        if not path.is_file():
            raise FileNotFoundError(f"missing {path}; expected root/images/<seq>/{IMAGE_FILES[camera].format(i='<i>')}")
        rgbs.append(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0)
        if with_depth:
            dpath = folder / f"SK_depth_{frame}.png"
            if not dpath.is_file():
                raise FileNotFoundError(f"missing {dpath}; expected root/images/<seq>/SK_depth_<i>.png")
            depths.append(decode_sk_depth(np.asarray(Image.open(dpath).convert("RGB")))[None].astype(np.float32))
    out["rgb"] = torch.as_tensor(np.stack(rgbs))
    if with_depth:
        out["depth"] = torch.as_tensor(np.stack(depths))
    return out
