"""Clip sampling and flow images for self-supervised video learning (DPC / MemDPC protocol).

Presented in the MemDPC chapter (``notebooks/eccv2020/memdpc.ipynb``). For readers who own the
data (nothing is downloaded):

* :func:`block_frame_indices`: the frame indices of ``n_blocks`` blocks of ``block_len`` frames
  taken every ``stride``-th frame (MemDPC: 8 blocks x 5 frames at stride 3, 40 frames from 120);
* :func:`load_frame_folder_clip`: those frames read from a folder of JPEG/PNG frames (the layout the
  DPC/MemDPC code reads, ``<video>/image_00001.jpg``...), as ``(n_blocks, block_len, 3, H, W)``;
* :func:`load_kinetics_csv`: a Kinetics-400/600/700 annotation CSV
  (``label,youtube_id,time_start,time_end,split[,is_cc]``);
* :func:`flow_to_image`: the paper's flow encoding, motions truncated to +-20 px, mapped from
  [-20, 20] to [0, 255], a third all-zero channel added.

Decoding ``.avi`` files needs PyAV, which the book does not depend on; extract the frames first
(e.g. ``ffmpeg -i v.avi <video>/image_%05d.jpg``). UCF101 and HMDB51 split files are read by
:mod:`cvtutor.data.video_readers`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

PathLike = str | os.PathLike
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")


def block_frame_indices(
    n_frames: int, n_blocks: int = 8, block_len: int = 5, stride: int = 3, start: int = 0
) -> np.ndarray:
    """Frame indices ``(n_blocks, block_len)`` of consecutive blocks sampled every ``stride``
    frames from ``start``: ``start + stride * (b * block_len + j)``. Raises if the video has fewer
    than ``start + stride * (n_blocks * block_len - 1) + 1`` frames."""
    if min(n_blocks, block_len, stride) < 1 or start < 0:
        raise ValueError(
            f"need n_blocks, block_len, stride >= 1 and start >= 0; got {n_blocks}, "
            f"{block_len}, {stride}, {start}"
        )
    idx = start + stride * np.arange(n_blocks * block_len)
    if idx[-1] >= n_frames:
        raise ValueError(
            f"{n_blocks} blocks x {block_len} frames at stride {stride} from frame {start} need "
            f"{idx[-1] + 1} frames, the video has {n_frames}"
        )
    return idx.reshape(n_blocks, block_len)


def frame_files(folder: PathLike) -> list[Path]:
    """The frame images of a frame folder, sorted by name (``image_00001.jpg``...)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"expected a folder of frame images {FRAME_SUFFIXES}, got {root}")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{root} holds no frame images ({', '.join(FRAME_SUFFIXES)})")
    return files


def load_frame_folder_clip(
    folder: PathLike, n_blocks: int = 8, block_len: int = 5, stride: int = 3, start: int = 0
) -> torch.Tensor:
    """One clip from a frame folder as ``(n_blocks, block_len, 3, H, W)`` floats in [0, 1]."""
    from PIL import Image

    files = frame_files(folder)
    idx = block_frame_indices(len(files), n_blocks, block_len, stride, start)
    frames = []
    for i in idx.ravel():
        with Image.open(files[i]) as im:
            frames.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"{folder}: frames of different sizes {sorted(shapes)}")
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0
    return x.reshape(n_blocks, block_len, *x.shape[1:])


def load_kinetics_csv(path: PathLike) -> pd.DataFrame:
    """A Kinetics annotation CSV: columns ``label, youtube_id, time_start, time_end, split``
    (seconds as floats) and ``clip_id`` (``<youtube_id>_<start:06d>_<end:06d>``, the name of the
    downloaded clip)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"expected a Kinetics CSV with columns {KINETICS_COLUMNS}, got {p}")
    df = pd.read_csv(p)
    missing = [c for c in KINETICS_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{p}: a Kinetics CSV needs columns {KINETICS_COLUMNS}; missing {missing}")
    df = df[list(KINETICS_COLUMNS)].copy()
    for c in ("time_start", "time_end"):
        df[c] = pd.to_numeric(df[c], errors="raise").astype(float)
    df["clip_id"] = [
        f"{y}_{int(s):06d}_{int(e):06d}"
        for y, s, e in zip(df["youtube_id"], df["time_start"], df["time_end"])
    ]
    return df


def flow_to_image(flow: torch.Tensor, bound: float = 20.0) -> torch.Tensor:
    """MemDPC's flow encoding (Sec. 4.1): ``(..., 2, H, W)`` displacements (px) to ``(..., 3, H,
    W)`` values in [0, 255]: each of dx, dy truncated to [-bound, bound] and mapped linearly
    (-bound -> 0, 0 -> 127.5, bound -> 255), then a third all-zero channel."""
    if flow.ndim < 3 or flow.shape[-3] != 2:
        raise ValueError(f"flow must be (..., 2, H, W), got shape {tuple(flow.shape)}")
    if bound <= 0:
        raise ValueError(f"bound must be > 0, got {bound}")
    img = (flow.clamp(-bound, bound) + bound) * (255.0 / (2 * bound))
    return torch.cat([img, torch.zeros_like(img[..., :1, :, :])], dim=-3)
