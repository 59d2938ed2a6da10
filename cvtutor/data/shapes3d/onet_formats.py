"""The data layouts of Occupancy Networks and Convolutional Occupancy Networks (used by the
chapter ``notebooks/eccv2020/conv_occupancy.ipynb``), read in their own file formats.

==========================  ===================================================================
reader                      layout
==========================  ===================================================================
``read_binvox``             one ``model.binvox`` (``#binvox 1`` header, run-length encoded data)
``read_split``              one ``train.lst`` / ``val.lst`` / ``test.lst``: a model id a line
``read_onet_shapenet``      ``<root>/<synset>/<split>.lst`` and ``<root>/<synset>/<model>/``
                            with ``pointcloud.npz``, ``points.npz`` and optionally ``model.binvox``
``read_synthetic_room``     one scene of the official room set: ``<scene>/pointcloud/
                            pointcloud_XX.npz`` and ``<scene>/points_iou/points_iou_XX.npz``
                            (``multi_files: 10``, one file per ``XX``)
``read_scan_points``        a ScanNet ``*_vh_clean_2.ply`` (any triangle mesh): area-uniform
                            surface points
==========================  ===================================================================

The npz files hold ``points`` (float16 or 32), ``occupancies`` bit-packed with ``np.packbits``
(:func:`cvtutor.data.shapes3d.readers.read_onet_points` unpacks them) and ``normals``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cvtutor.data.shapes3d import meshes
from cvtutor.data.shapes3d.readers import read_mesh, read_onet_pointcloud, read_onet_points


def read_binvox(path) -> dict:
    """A ``.binvox`` voxel file: ``voxels (D, D, D)`` bool indexed ``[x, y, z]`` (binvox stores
    ``x``, then ``z``, then ``y`` fastest, as run-length pairs ``(value, count)``),
    ``translate (3,)`` and ``scale`` (voxel ``i`` covers ``translate + scale · i / D``)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist; expected a .binvox file")
    raw = p.read_bytes()
    lines, pos = [], 0
    while not lines or lines[-1] != b"data":
        end = raw.find(b"\n", pos)
        if end < 0:
            raise ValueError(f"{p}: no 'data' line; expected a '#binvox 1' header")
        lines.append(raw[pos:end].strip())
        pos = end + 1
    if not lines[0].startswith(b"#binvox"):
        raise ValueError(f"{p}: first line {lines[0][:20]!r}; expected '#binvox 1'")
    head = {ln.split()[0]: ln.split()[1:] for ln in lines[1:-1] if ln}
    if b"dim" not in head:
        raise ValueError(f"{p}: header lacks 'dim d h w'")
    dims = tuple(int(x) for x in head[b"dim"])
    pairs = np.frombuffer(raw[pos:], dtype=np.uint8)
    if len(pairs) % 2:
        raise ValueError(f"{p}: odd number of run-length bytes; expected (value, count) pairs")
    values, counts = pairs[0::2].astype(bool), pairs[1::2].astype(np.int64)
    flat = np.repeat(values, counts)
    if flat.size != int(np.prod(dims)):
        raise ValueError(f"{p}: {flat.size} voxels decoded, dim {dims} needs {int(np.prod(dims))}")
    vox = flat.reshape(dims).transpose(0, 2, 1)  # stored x, z, y → [x, y, z]
    translate = np.array([float(x) for x in head.get(b"translate", [0, 0, 0])], np.float32)
    scale = float(head.get(b"scale", [1])[0])
    return {"voxels": torch.from_numpy(np.ascontiguousarray(vox)),
            "translate": torch.from_numpy(translate), "scale": scale}


def read_split(path) -> list[str]:
    """The model ids of one ONet split file (``<synset>/<split>.lst``), blank lines dropped."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist; expected a split file with a model id a line")
    return [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]


def read_onet_shapenet(root, synsets: list[str], split: str = "test",
                       voxels: bool = False) -> list[dict]:
    """ONet's preprocessed ShapeNet: for each model of ``<root>/<synset>/<split>.lst`` its
    surface cloud (``pointcloud.npz``: ``points``, ``normals``), its labelled queries
    (``points.npz``: ``points``, ``occupancies``) and with ``voxels`` its ``model.binvox``.
    Returns one dict per model with ``synset`` and ``model``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory; expected <root>/<synset>/<model>/"
                                "{pointcloud,points}.npz and <root>/<synset>/<split>.lst")
    out = []
    for syn in synsets:
        for model in read_split(root / syn / f"{split}.lst"):
            d = root / syn / model
            item = {"synset": syn, "model": model,
                    "pointcloud": read_onet_pointcloud(d / "pointcloud.npz"),
                    "points": read_onet_points(d / "points.npz")}
            if voxels:
                item["voxels"] = read_binvox(d / "model.binvox")["voxels"]
            out.append(item)
    return out


def read_synthetic_room(scene, index: int = 0) -> dict:
    """One scene of ConvONet's synthetic room set with ``multi_files`` pointcloud/query files:
    ``pointcloud`` (``points``, ``normals``) from ``pointcloud/pointcloud_<index:02d>.npz`` and
    the IoU queries ``points`` / ``occupancies`` from ``points_iou/points_iou_<index:02d>.npz``."""
    scene = Path(scene)
    files = (scene / "pointcloud" / f"pointcloud_{index:02d}.npz",
             scene / "points_iou" / f"points_iou_{index:02d}.npz")
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"{f} does not exist; expected <scene>/pointcloud/"
                                    "pointcloud_XX.npz and <scene>/points_iou/points_iou_XX.npz")
    return {"pointcloud": read_onet_pointcloud(files[0]), "points": read_onet_points(files[1])}


def read_scan_points(path, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``n`` area-uniform points and their face normals on a scanned mesh (ScanNet's
    ``*_vh_clean_2.ply``; ConvONet evaluates ScanNet on points sampled from the mesh)."""
    verts, faces = read_mesh(path)
    verts = verts.float()
    pts, face = meshes.sample_mesh_surface(verts[None], faces.long(), n, generator)
    nrm = meshes.face_normals(verts[None], faces.long())[0][face[0]]
    return {"points": pts[0], "normals": nrm}
