"""The Pix3D reader (Sun et al., CVPR 2018), the data set of the Mask2CAD chapter
(``notebooks/eccv2020/mask2cad.ipynb``).

Pix3D ships ``pix3d.json``: a list of records, one per image, with the keys ``img`` (image path),
``mask`` (PNG path), ``model`` (``.obj`` path), ``category``, ``img_size`` ``[w, h]``, ``bbox``
``[x0, y0, x1, y1]``, ``rot_mat`` (3×3), ``trans_mat`` (3), ``focal_length`` (mm), all paths
relative to the data root. Mesh R-CNN's S1/S2 splits (``pix3d_s1_train.json``...) are COCO files:
read them with :func:`cvtutor.data.coco.read_coco`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from cvtutor.data.shapes3d.readers import read_mesh

KEYS = ("img", "mask", "model", "category", "bbox", "rot_mat", "trans_mat")


def read_pix3d(root, load_masks: bool = True) -> list[dict]:
    """The records of ``root/pix3d.json``: each dict has the file's keys, ``bbox`` as a float
    tensor ``(4,)``, ``R (3, 3)``, ``t (3,)`` and, with ``load_masks``, ``mask_array`` ``(H, W)``
    bool. Raises ``FileNotFoundError`` naming the expected layout, ``ValueError`` for a bad
    record."""
    root = Path(root)
    path = root / "pix3d.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; expected the Pix3D root with pix3d.json, img/, "
                                "mask/ and model/")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of records, got {type(data).__name__}")
    out = []
    for i, rec in enumerate(data):
        missing = [k for k in KEYS if k not in rec]
        if missing:
            raise ValueError(f"{path}: record {i} lacks {missing}; a Pix3D record has {list(KEYS)}")
        r = dict(rec)
        r["bbox"] = torch.tensor(rec["bbox"], dtype=torch.float32)
        r["R"] = torch.tensor(rec["rot_mat"], dtype=torch.float32)
        r["t"] = torch.tensor(rec["trans_mat"], dtype=torch.float32)
        if r["bbox"].shape != (4,) or r["R"].shape != (3, 3) or r["t"].shape != (3,):
            raise ValueError(f"{path}: record {i} needs bbox (4,), rot_mat (3, 3), trans_mat (3,)")
        if load_masks:
            from PIL import Image

            mpath = root / rec["mask"]
            if not mpath.is_file():
                raise FileNotFoundError(f"{mpath} not found (record {i}'s mask)")
            r["mask_array"] = np.asarray(Image.open(mpath).convert("L")) > 127
        out.append(r)
    return out


def read_pix3d_model(root, record: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``.obj`` CAD model of a record: ``verts (V, 3)``, ``faces (F, 3)`` (via trimesh)."""
    return read_mesh(Path(root) / record["model"])
