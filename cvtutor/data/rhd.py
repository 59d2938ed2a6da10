"""Loader for the Rendered Hand Pose Dataset (RHD, Zimmermann & Brox 2017), for readers who own it.

Expected layout (``root`` = the ``RHD_published_v2`` folder)::

    root/{training,evaluation}/{color,depth,mask}/%05d.png
    root/{training,evaluation}/anno_{training,evaluation}.pickle   # {id: {'xyz' (42,3) m, 'uv_vis' (42,3), 'K' (3,3)}}

Keypoints 0-20 are the left hand, 21-41 the right, each in RHD order (re-ordered here with
``RHD2CANON``). Depth PNGs store ``depth_m = (R·256 + G)/65535·5``. Mask PNGs: 0 background, 1 person,
2-17 left-hand parts, 18-33 right-hand parts. As in the public RHD script we keep the hand with more
mask pixels and mirror left hands to right ones (x → -x in 3D, u → W - u, image flipped).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cvtutor.data import safe_pickle
from cvtutor.data.hands.camera import normalize_pose
from cvtutor.data.hands.skeleton import RHD2CANON

LAYOUT = ("RHD_published_v2/{training,evaluation}/{color,depth,mask}/%05d.png and "
          "RHD_published_v2/<split>/anno_<split>.pickle")
SPLITS = {"train": "training", "test": "evaluation", "training": "training", "evaluation": "evaluation"}


def depth_two_uint8_to_float(rgb: np.ndarray) -> np.ndarray:
    """RHD depth decoding: ``(R·256 + G)/65535·5`` metres from an (H, W, 3) uint8 PNG."""
    rgb = np.asarray(rgb)
    return (rgb[..., 0].astype(np.float64) * 256 + rgb[..., 1]) / 65535.0 * 5.0


def depth_float_to_two_uint8(depth_m: np.ndarray) -> np.ndarray:
    """The inverse encoding (used by the tests to write fixtures)."""
    q = np.clip(np.round(np.asarray(depth_m) / 5.0 * 65535.0), 0, 65535).astype(np.uint32)
    out = np.zeros((*q.shape, 3), np.uint8)
    out[..., 0], out[..., 1] = q // 256, q % 256
    return out


def _load_annotations(path: Path) -> dict:
    """RHD's annotation pickle, read with the restricted unpickler (builtins and numpy arrays only)."""
    anno = safe_pickle.load(path)
    if not isinstance(anno, dict):
        raise ValueError(f"{path}: expected a dict {{sample id: annotation}}, got {type(anno).__name__}")
    return anno


def load_rhd(root: str | Path, split: str = "train", limit: int | None = None) -> dict[str, torch.Tensor]:
    """RHD as hand-world keys: ``rgb (n,3,H,W)``, ``depth (n,1,H,W)`` m, ``mask (n,1,H,W)`` (1 = chosen
    hand), ``xyz (n,21,3)``, ``uv (n,21,2)``, ``vis (n,21)``, ``K (n,3,3)``, ``root``, ``scale``, ``xyz_norm``,
    ``left (n,)`` (the chosen hand was a mirrored left hand)."""
    from PIL import Image

    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    folder = root / SPLITS[split]
    anno_path = folder / f"anno_{SPLITS[split]}.pickle"
    if not anno_path.is_file():
        raise FileNotFoundError(f"no RHD annotations at {anno_path}; expected the layout {LAYOUT}")
    anno = _load_annotations(anno_path)
    ids = sorted(anno)[:limit]
    out = {k: [] for k in ("rgb", "depth", "mask", "xyz", "uv", "vis", "K", "left")}
    for i in ids:
        a = anno[i]
        try:
            xyz, uv_vis, K = (np.asarray(a[k], dtype=np.float64) for k in ("xyz", "uv_vis", "K"))
        except KeyError as err:
            raise ValueError(f"RHD annotation {i} lacks {err}; expected keys 'xyz', 'uv_vis', 'K'") from None
        if xyz.shape != (42, 3) or uv_vis.shape != (42, 3) or K.shape != (3, 3):
            raise ValueError(f"RHD annotation {i}: expected xyz (42,3), uv_vis (42,3), K (3,3); got "
                             f"{xyz.shape}, {uv_vis.shape}, {K.shape}")
        paths = [folder / sub / f"{i:05d}.png" for sub in ("color", "depth", "mask")]
        for p in paths:
            if not p.is_file():
                raise FileNotFoundError(f"missing {p}; expected the layout {LAYOUT}")
        rgb = np.asarray(Image.open(paths[0]).convert("RGB"), dtype=np.float32) / 255.0
        depth = depth_two_uint8_to_float(np.asarray(Image.open(paths[1]).convert("RGB")))
        mask = np.asarray(Image.open(paths[2]))
        left_px = ((mask >= 2) & (mask <= 17)).sum()
        right_px = (mask >= 18).sum()
        left = left_px > right_px
        sl = slice(0, 21) if left else slice(21, 42)
        hand_xyz, hand_uv = xyz[sl][list(RHD2CANON)], uv_vis[sl][list(RHD2CANON)]
        hand_mask = ((mask >= 2) & (mask <= 17)) if left else (mask >= 18)
        W = rgb.shape[1]
        if left:  # mirror to a right hand
            rgb, depth, hand_mask = rgb[:, ::-1], depth[:, ::-1], hand_mask[:, ::-1]
            hand_xyz = hand_xyz * np.array([-1.0, 1.0, 1.0])
            hand_uv = hand_uv.copy()
            hand_uv[:, 0] = W - hand_uv[:, 0]
            K = K.copy()
            K[0, 2] = W - K[0, 2]
        out["rgb"].append(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
        out["depth"].append(np.ascontiguousarray(depth)[None])
        out["mask"].append(np.ascontiguousarray(hand_mask)[None])
        out["xyz"].append(hand_xyz)
        out["uv"].append(hand_uv[:, :2])
        out["vis"].append(hand_uv[:, 2] > 0.5)
        out["K"].append(K)
        out["left"].append(left)
    res = {k: torch.as_tensor(np.stack(v)) for k, v in out.items()}
    res = {k: (v.float() if v.is_floating_point() else v) for k, v in res.items()}
    res["mask"] = res["mask"].long()
    res["xyz_norm"], res["root"], res["scale"] = normalize_pose(res["xyz"])
    return res
