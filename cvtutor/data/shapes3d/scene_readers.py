"""Readers of real 3-D scene and part data sets in their released formats (no download).

Used by the PointContrast chapter (``notebooks/eccv2020/pointcontrast.ipynb``), whose pre-training
and fine-tuning data these are:

``read_ply``            a PLY file (ascii or binary, parsed by trimesh): each element as a dict
                        of numpy columns (list properties, e.g. faces, as 2-D arrays)
``read_scannet_scene``  ScanNet v2 ``<scene>/<scene>_vh_clean_2.ply`` (vertices, RGB) with, where
                        present, ``_vh_clean_2.labels.ply`` (NYU40 ``label`` per vertex),
                        ``_vh_clean_2.0.010000.segs.json`` (``segIndices``) and
                        ``<scene>.aggregation.json`` (``segGroups``: objects → segments) → instances
``read_s3dis_room``     S3DIS ``Area_k/<room>/Annotations/<class>_<i>.txt`` (``x y z r g b`` lines)
``read_shapenetpart``   ShapeNetPart ``.pts`` (``x y z`` lines) with its ``.seg`` (a part id a line)

Each raises ``FileNotFoundError`` naming the expected layout when a file is missing, and
``ValueError`` for a malformed one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

#: S3DIS's 13 semantic classes (the order of the official ``class_names.txt``).
S3DIS_CLASSES = ("ceiling", "floor", "wall", "beam", "column", "window", "door", "table", "chair",
                 "sofa", "bookcase", "board", "clutter")

def _existing(path, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} not found; expected {what}")
    return p


def read_ply(path) -> dict[str, dict]:
    """A PLY file (ascii or binary) as ``{element: {property: column}}``, parsed by trimesh (its
    raw element data keeps every vertex property, e.g. ScanNet's ``label``): scalar properties
    as 1-D numpy arrays, list properties (faces) as 2-D arrays, a row per element."""
    import trimesh

    p = _existing(path, "a .ply file")
    with open(p, "rb") as f:
        if f.readline().strip() != b"ply":
            raise ValueError(f"{p} is not a PLY file (no 'ply' magic line)")
    try:
        raw = trimesh.load(p, file_type="ply", process=False).metadata["_ply_raw"]
    except Exception as err:  # trimesh raises IndexError/ValueError/KeyError on a broken file
        raise ValueError(f"{p}: malformed PLY (header or body too short or inconsistent): {err}") from err
    out = {}
    for name, e in raw.items():  # ascii: a dict of columns; binary: one structured array
        d = e["data"]
        cols = d if isinstance(d, dict) else {k: d[k] for k in d.dtype.names}
        # a binary list property of fixed length is a (count, items) record: keep the items
        cols = {k: v["f1"] if getattr(v, "dtype", None) is not None and v.dtype.names else v
                for k, v in cols.items()}
        out[name] = {k: np.asarray(v)[:, 0] if np.ndim(v) == 2 and np.shape(v)[1] == 1 else np.asarray(v)
                     for k, v in cols.items()}
    return out


def _xyz(vertex: dict, path) -> np.ndarray:
    if not all(k in vertex for k in "xyz"):
        raise ValueError(f"{path}: vertex element needs x, y, z properties, has {sorted(vertex)}")
    return np.stack([vertex["x"], vertex["y"], vertex["z"]], 1).astype(np.float32)


def read_scannet_scene(folder) -> dict:
    """One ScanNet v2 scene folder ``<scene>/`` (module docstring): ``points (N, 3)``,
    ``colors (N, 3)`` in [0, 1] and, where the files exist, ``label (N,)`` (NYU40 ids from
    ``_vh_clean_2.labels.ply``), ``segment (N,)`` (over-segmentation ids) and ``instance (N,)``
    (``objectId + 1`` of the aggregation group holding the vertex's segment, 0 for none), with
    ``instance_labels`` (objectId → raw category name)."""
    d = _existing(folder, "a ScanNet scene folder <scene>/ holding <scene>_vh_clean_2.ply")
    scene = d.name
    mesh = _existing(d / f"{scene}_vh_clean_2.ply", f"<scene>/{scene}_vh_clean_2.ply (ScanNet v2)")
    v = read_ply(mesh).get("vertex")
    if v is None:
        raise ValueError(f"{mesh}: no vertex element")
    out: dict = {"points": torch.from_numpy(_xyz(v, mesh)), "scene": scene}
    if all(k in v for k in ("red", "green", "blue")):
        out["colors"] = torch.from_numpy(
            np.stack([v["red"], v["green"], v["blue"]], 1).astype(np.float32) / 255)
    n = len(out["points"])
    lab = d / f"{scene}_vh_clean_2.labels.ply"
    if lab.exists():
        lv = read_ply(lab)["vertex"]
        if "label" not in lv or len(lv["label"]) != n:
            raise ValueError(f"{lab}: expected a 'label' property on {n} vertices")
        out["label"] = torch.from_numpy(lv["label"].astype(np.int64))
    segs = d / f"{scene}_vh_clean_2.0.010000.segs.json"
    agg = d / f"{scene}.aggregation.json"
    if segs.exists():
        seg = np.asarray(json.loads(segs.read_text())["segIndices"], dtype=np.int64)
        if len(seg) != n:
            raise ValueError(f"{segs}: {len(seg)} segIndices for {n} vertices")
        out["segment"] = torch.from_numpy(seg)
        if agg.exists():
            groups = json.loads(agg.read_text())["segGroups"]
            inst = np.zeros(n, dtype=np.int64)
            for gr in groups:
                inst[np.isin(seg, gr["segments"])] = gr["objectId"] + 1
            out["instance"] = torch.from_numpy(inst)
            out["instance_labels"] = {gr["objectId"]: gr["label"] for gr in groups}
    return out


def read_s3dis_room(folder) -> dict:
    """One S3DIS room ``Area_k/<room>/`` from its ``Annotations/<class>_<i>.txt`` files:
    ``points (N, 3)``, ``colors (N, 3)`` in [0, 1], ``label (N,)`` (index into
    :data:`S3DIS_CLASSES`; unknown names → ``clutter``) and ``instance (N,)`` (one id per file)."""
    d = _existing(folder, "an S3DIS room folder Area_k/<room>/ with Annotations/*.txt")
    files = sorted((d / "Annotations").glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no {d}/Annotations/<class>_<i>.txt files; expected S3DIS's "
                                "Stanford3dDataset_v1.2 layout")
    pts, lab, inst = [], [], []
    for k, f in enumerate(files):
        m = re.match(r"([a-zA-Z]+)_\d+$", f.stem)
        if m is None:
            raise ValueError(f"{f}: annotation files are named <class>_<i>.txt")
        name = m.group(1)
        a = np.loadtxt(f, dtype=np.float32, ndmin=2)
        if a.shape[1] < 6:
            raise ValueError(f"{f}: expected 'x y z r g b' per line, got {a.shape[1]} columns")
        pts.append(a[:, :6])
        cls = S3DIS_CLASSES.index(name) if name in S3DIS_CLASSES else S3DIS_CLASSES.index("clutter")
        lab.append(np.full(len(a), cls))
        inst.append(np.full(len(a), k))
    a = np.concatenate(pts)
    return {"points": torch.from_numpy(a[:, :3].copy()),
            "colors": torch.from_numpy(a[:, 3:6] / 255),
            "label": torch.from_numpy(np.concatenate(lab).astype(np.int64)),
            "instance": torch.from_numpy(np.concatenate(inst).astype(np.int64))}


def read_shapenetpart(pts_path, seg_path=None) -> dict:
    """A ShapeNetPart shape: ``points (N, 3)`` from its ``.pts`` file and ``part (N,)`` from the
    ``.seg`` file beside it (``points/<id>.pts`` ↔ ``points_label/<id>.seg``, or ``seg_path``);
    the release's 1-based part ids are kept."""
    p = _existing(pts_path, "a ShapeNetPart <synset>/points/<id>.pts file")
    pts = np.loadtxt(p, dtype=np.float32, ndmin=2)
    if pts.shape[1] != 3:
        raise ValueError(f"{p}: expected 'x y z' per line, got {pts.shape[1]} columns")
    if seg_path is None:
        seg_path = p.parent.parent / "points_label" / (p.stem + ".seg")
    s = _existing(seg_path, "the ShapeNetPart <synset>/points_label/<id>.seg beside the .pts")
    seg = np.loadtxt(s, dtype=np.int64, ndmin=1)
    if len(seg) != len(pts):
        raise ValueError(f"{s}: {len(seg)} part labels for {len(pts)} points")
    return {"points": torch.from_numpy(pts), "part": torch.from_numpy(seg)}
