"""Readers for the real body-pose data sets, for readers who own them (nothing is downloaded).

Each reads the data set's own file format and raises a clear error naming the expected layout:

- COCO keypoints (``person_keypoints_<split>.json``) and top-down crops by box;
- Human3.6M as VideoPose3D ships it (``data_3d_h36m.npz``: ``positions_3d`` = {subject: {action:
  (T, 32, 3) m}}), mapped to the body world's 17 joints;
- MuPoTS-3D ``TS<k>/annot.mat`` (``annotations``: frames × people structs with ``annot2``,
  ``annot3``, ``univ_annot3``, ``isValidFrame``), mapped to the 17 joints;
- CMU Panoptic ``hdPose3d_stage1_coco19/body3DScene_<frame>.json`` with ``calibration_<seq>.json``;
- 3DPW sequence pickles (``sequenceFiles/<split>/<name>.pkl``), read with the restricted unpickler;
- MPII Human Pose as pytorch-pose ships it (``mpii_annotations.json``) and its PCKh head sizes
  (``detections_our_format.mat``).

Pickled payloads (3DPW, and the object array inside VideoPose3D's ``.npz``) go through
:mod:`cvtutor.data.safe_pickle`, so a hostile file cannot run code. Used by the *People, cameras and
geometry* chapter's papers (``notebooks/eccv2020/world_people.ipynb``).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from cvtutor.data import safe_pickle
from cvtutor.data.bodies.world import crop_by_box

# Human3.6M's 32 mocap joints → the 17 of the body world (VideoPose3D's kept joints, same order)
H36M32_TO_17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
# MuPoTS-3D's 17 (head_top, neck, r_sho, r_elb, r_wri, l_sho, l_elb, l_wri, r_hip, r_knee, r_ank,
# l_hip, l_knee, l_ank, pelvis, spine, head) → the body world's order (thorax ≈ neck,
# head ≈ head top)
MUPOTS_TO_BODY = (14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4)
THREEDPW_KEYS = (
    "sequence", "poses", "trans", "betas", "jointPositions", "cam_poses", "cam_intrinsics",
    "poses2d", "campose_valid",
)


def _need(path: Path, layout: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; expected {layout}")
    return path


# ---- COCO keypoints ------------------------------------------------------------------------
def load_coco_keypoints(path: str | Path) -> dict:
    """``person_keypoints_<split>.json`` → ``images`` {id: (file_name, width, height)} and per
    person
    annotation arrays ``image_id (N,)``, ``bbox (N, 4)`` (x, y, w, h), ``keypoints (N, 17, 3)``
    (u, v, visibility 0/1/2), ``area (N,)``, ``iscrowd (N,)``."""
    path = _need(Path(path), "annotations/person_keypoints_<split>.json (COCO keypoints)")
    data = json.loads(path.read_text())
    if not {"images", "annotations"} <= set(data):
        raise ValueError(
            f"{path}: a COCO keypoints file has 'images' and 'annotations'; got {sorted(data)}"
        )
    anns = [a for a in data["annotations"] if "keypoints" in a]
    kp = np.array([a["keypoints"] for a in anns], dtype=float).reshape(-1, 17, 3)
    return {
        "images": {im["id"]: (im["file_name"], im["width"], im["height"]) for im in data["images"]},
        "image_id": np.array([a["image_id"] for a in anns], dtype=int),
        "bbox": np.array([a["bbox"] for a in anns], dtype=float).reshape(-1, 4),
        "keypoints": kp,
        "area": np.array([a.get("area", 0.0) for a in anns], dtype=float),
        "iscrowd": np.array([a.get("iscrowd", 0) for a in anns], dtype=int),
    }


def topdown_crops(
    image: torch.Tensor,
    bbox_xywh: torch.Tensor,
    keypoints: torch.Tensor,
    size: int,
    scale: float = 1.25,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-down crops of one image ``(C, H, W)``: each person's box ``(N, 4)`` (x, y, w, h) grown by
    ``scale`` and squared, resized to ``size``; returns crops ``(N, C, size, size)`` and the
    keypoints ``(N, 17, 3)`` in crop pixels (visibility kept)."""
    x, y, w, h = bbox_xywh.unbind(-1)
    cx, cy = x + w / 2, y + h / 2
    half = scale * torch.maximum(w, h) / 2
    boxes = torch.stack([cx - half, cy - half, cx + half, cy + half], -1)
    crops = crop_by_box(image[None].expand(len(boxes), *image.shape), boxes, size)
    uv = (keypoints[..., :2] - torch.stack([cx, cy], -1)[:, None]) / half[:, None, None] * (
        size / 2
    ) + size / 2
    return crops, torch.cat([uv, keypoints[..., 2:]], -1)


# ---- Human3.6M (VideoPose3D's npz) -------------------------------------------------------------
def _npz_object(path: Path, key: str):
    """An object array inside an ``.npz`` without ``allow_pickle``: the ``.npy`` member's header is
    parsed by numpy, its pickled payload by the restricted unpickler."""
    with zipfile.ZipFile(path) as z:
        name = f"{key}.npy"
        if name not in z.namelist():
            raise KeyError(
                f"{path}: no '{key}' array; expected VideoPose3D's data_3d_h36m.npz "
                f"(found {sorted(n[:-4] for n in z.namelist())})"
            )
        with z.open(name) as f:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            _shape, _fortran, dtype = read_header(f)
            if not dtype.hasobject:
                return np.lib.format.read_array(z.open(name), allow_pickle=False)
            arr = safe_pickle.loads(f.read(), source=f"{path}:{name}", encoding="latin1")
    return arr.item() if isinstance(arr, np.ndarray) and arr.shape == () else arr


def load_h36m_npz(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """VideoPose3D's ``data_3d_h36m.npz`` → {subject: {action: (T, 17, 3) metres}} in the body
    world's joint order (:data:`H36M32_TO_17`)."""
    path = _need(Path(path), "data/data_3d_h36m.npz (VideoPose3D's prepare_data_h36m.py output)")
    data = _npz_object(path, "positions_3d")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: positions_3d must hold {{subject: {{action: (T, 32, 3)}}}}")
    out = {}
    for subject, actions in data.items():
        out[subject] = {}
        for action, pos in actions.items():
            pos = np.asarray(pos)
            if pos.ndim != 3 or pos.shape[1:] != (32, 3):
                raise ValueError(f"{path}: {subject}/{action} must be (T, 32, 3), got {pos.shape}")
            out[subject][action] = pos[:, list(H36M32_TO_17)]
    return out


# ---- MuPoTS-3D ------------------------------------------------------------------------------
def load_mupots_annot(path: str | Path) -> dict[str, np.ndarray]:
    """MuPoTS-3D ``TS<k>/annot.mat`` → ``uv (F, P, 17, 2)`` px, ``xyz (F, P, 17, 3)`` mm (camera
    frame), ``xyz_univ`` (height-normalised), ``valid (F, P)``, joints in the body world's order."""
    from scipy.io import loadmat

    path = _need(Path(path), "MultiPersonTestSet/TS<k>/annot.mat (MuPoTS-3D)")
    mat = loadmat(str(path), squeeze_me=False, struct_as_record=False)
    if "annotations" not in mat:
        raise ValueError(f"{path}: expected an 'annotations' cell array (frames × people)")
    ann = mat["annotations"]
    F, P = ann.shape
    idx = list(MUPOTS_TO_BODY)

    def field(a, name, rows):
        v = np.asarray(getattr(a, name), dtype=float)
        if v.shape != (rows, 17):
            raise ValueError(f"{path}: {name} must be ({rows}, 17), got {v.shape}")
        return v.T[idx]

    uv = np.zeros((F, P, 17, 2))
    xyz, univ = np.zeros((F, P, 17, 3)), np.zeros((F, P, 17, 3))
    valid = np.zeros((F, P), bool)
    for f in range(F):
        for p in range(P):
            a = ann[f, p]
            a = a[0, 0] if isinstance(a, np.ndarray) else a
            uv[f, p], xyz[f, p], univ[f, p] = (
                field(a, "annot2", 2),
                field(a, "annot3", 3),
                field(a, "univ_annot3", 3),
            )
            valid[f, p] = bool(np.asarray(a.isValidFrame).reshape(-1)[0])
    return {"uv": uv, "xyz": xyz, "xyz_univ": univ, "valid": valid}


# ---- CMU Panoptic -----------------------------------------------------------------------------
def load_panoptic_calibration(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """``calibration_<seq>.json`` → {camera name: {"K" (3, 3), "R" (3, 3), "t" (3,) cm, "dist" (5,),
    "resolution" (2,)}}; ``X_c = R·X + t``."""
    path = _need(Path(path), "<seq>/calibration_<seq>.json (CMU Panoptic)")
    data = json.loads(path.read_text())
    if "cameras" not in data:
        raise ValueError(f"{path}: expected a 'cameras' list")
    return {
        c["name"]: {
            "K": np.array(c["K"], float),
            "R": np.array(c["R"], float),
            "t": np.array(c["t"], float).reshape(3),
            "dist": np.array(c.get("distCoef", [0] * 5), float),
            "resolution": np.array(c.get("resolution", [0, 0])),
        }
        for c in data["cameras"]
    }


def load_panoptic_bodies(path: str | Path) -> dict[str, np.ndarray]:
    """``hdPose3d_stage1_coco19/body3DScene_<frame>.json`` → ``ids (P,)``, ``joints (P, 19, 3)`` cm,
    ``confidence (P, 19)`` (the COCO-19 order of Panoptic)."""
    path = _need(Path(path), "<seq>/hdPose3d_stage1_coco19/body3DScene_<frame>.json (CMU Panoptic)")
    data = json.loads(path.read_text())
    if "bodies" not in data:
        raise ValueError(f"{path}: expected a 'bodies' list")
    bad = [len(b["joints19"]) for b in data["bodies"] if len(b["joints19"]) != 76]
    if bad:
        raise ValueError(
            f"{path}: joints19 must hold 19 × (x, y, z, confidence) = 76 numbers, got {bad[0]}"
        )
    raw = np.array([b["joints19"] for b in data["bodies"]], dtype=float).reshape(-1, 19, 4)
    return {
        "ids": np.array([b["id"] for b in data["bodies"]], int),
        "joints": raw[..., :3],
        "confidence": raw[..., 3],
    }


def panoptic_project(joints: np.ndarray, cam: dict[str, np.ndarray]) -> np.ndarray:
    """Pixels of ``joints (..., 3)`` in a Panoptic camera, with its radial-tangential distortion
    ``(k1, k2, p1, p2, k3)`` applied to the normalised coordinates (as Panoptic's own tools do)."""
    Xc = joints @ cam["R"].T + cam["t"]
    x, y = Xc[..., 0] / Xc[..., 2], Xc[..., 1] / Xc[..., 2]
    k1, k2, p1, p2, k3 = cam["dist"]
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    K = cam["K"]
    return np.stack([K[0, 0] * xd + K[0, 1] * yd + K[0, 2], K[1, 1] * yd + K[1, 2]], -1)


# ---- 3DPW
# -----------------------------------------------------------------------------------------
def load_3dpw(path: str | Path) -> dict:
    """A 3DPW sequence pickle (Python 2, latin1) read with the restricted unpickler: the SMPL
    parameters per person, ``jointPositions`` (24 SMPL joints, m), camera poses (T, 4, 4) and
    intrinsics, ``poses2d`` (T, 3, 18) and validity; arrays as numpy."""
    path = _need(Path(path), "sequenceFiles/{train,validation,test}/<sequence>.pkl (3DPW)")
    seq = safe_pickle.load(path)
    if not isinstance(seq, dict):
        raise ValueError(f"{path}: expected a dict of sequence fields, got {type(seq).__name__}")
    seq = {k.decode() if isinstance(k, bytes) else k: v for k, v in seq.items()}
    missing = [k for k in THREEDPW_KEYS if k not in seq]
    if missing:
        raise ValueError(f"{path}: a 3DPW sequence has the keys {THREEDPW_KEYS}; missing {missing}")
    out = dict(seq)
    for k in ("poses", "trans", "betas", "jointPositions", "poses2d", "campose_valid"):
        out[k] = [np.asarray(v) for v in seq[k]]
    out["joints"] = [j.reshape(len(j), 24, 3) for j in out["jointPositions"]]
    out["cam_poses"], out["cam_intrinsics"] = (
        np.asarray(seq["cam_poses"]),
        np.asarray(seq["cam_intrinsics"]),
    )
    return out


# ---- MPII Human Pose (pytorch-pose layout) -------------------------------------------------
MPII_JOINTS = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax", "upper_neck",
    "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)
MPII_HEAD_SIZE_BIAS = 0.6  # PCKh's head size: 0.6 x the head box diagonal (MPII's eval code)


def load_mpii_json(path: str | Path) -> dict[str, np.ndarray]:
    """pytorch-pose's ``data/mpii/mpii_annotations.json`` (one record per person: ``img_paths``,
    ``isValidation``, ``objpos``, ``scale_provided``, ``joint_self`` = 16 x (x, y, visible)) →
    ``image (N,)`` file names, ``is_validation (N,)`` bool, ``center (N, 2)``, ``scale (N,)``,
    ``joints (N, 16, 2)`` pixels and ``visible (N, 16)`` bool, joints in :data:`MPII_JOINTS` order.
    Used by the UniLoss chapter (``notebooks/eccv2020/surrogate_loss.ipynb``), head joint only."""
    layout = ("data/mpii/mpii_annotations.json: a JSON list of records with img_paths, "
              "isValidation, objpos, scale_provided and joint_self (16 x [x, y, visible])")
    path = _need(Path(path), layout)
    data = _json_records(path, ("img_paths", "isValidation", "objpos", "scale_provided",
                                "joint_self"), layout)
    joints = np.array([r["joint_self"] for r in data], dtype=float)
    if joints.shape[1:] != (16, 3):
        raise ValueError(f"{path}: joint_self must be 16 x [x, y, visible], got "
                         f"{joints.shape[1:]}; expected {layout}")
    return {
        "image": np.array([r["img_paths"] for r in data]),
        "is_validation": np.array([bool(r["isValidation"]) for r in data]),
        "center": np.array([r["objpos"] for r in data], dtype=float).reshape(-1, 2),
        "scale": np.array([r["scale_provided"] for r in data], dtype=float),
        "joints": joints[..., :2],
        "visible": joints[..., 2] > 0,
    }


def load_mpii_head_sizes(path: str | Path) -> np.ndarray:
    """PCKh's head sizes ``(N,)`` of the validation people from pytorch-pose's
    ``data/mpii/detections_our_format.mat`` (``headboxes_src (2, 2, N)``: top-left and
    bottom-right corner of each head box): ``0.6 * ||corner_2 - corner_1||``."""
    import scipy.io

    layout = "detections_our_format.mat with headboxes_src of shape (2, 2, N)"
    path = _need(Path(path), layout)
    try:
        mat = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises several types on a non-.mat file
        raise ValueError(f"{path} is not a MATLAB file ({err}); expected {layout}") from err
    boxes = mat.get("headboxes_src")
    if boxes is None or boxes.ndim != 3 or boxes.shape[:2] != (2, 2):
        got = sorted(k for k in mat if not k.startswith("__")) if boxes is None else boxes.shape
        raise ValueError(f"{path}: got {got}; expected {layout}")
    return MPII_HEAD_SIZE_BIAS * np.linalg.norm(boxes[1] - boxes[0], axis=0)


def _json_records(path: Path, keys: tuple[str, ...], layout: str) -> list[dict]:
    """A JSON file holding a non-empty list of records that each have ``keys``, else a clear
    error naming ``layout``."""
    data = json.loads(path.read_text())
    if not isinstance(data, list) or not data or not all(
            isinstance(r, dict) and set(keys) <= set(r) for r in data):
        raise ValueError(f"{path}: expected {layout}")
    return data


def load_mpii_hrnet_json(path: str | Path) -> dict[str, np.ndarray]:
    """MPII as HRNet / SimpleBaseline convert it (``data/mpii/annot/{train,valid}.json``: a list
    of people with ``image``, ``center`` (2), ``scale``, ``joints`` (16 x [x, y]) and
    ``joints_vis`` (16)) → ``image (N,)``, ``center (N, 2)``, ``scale (N,)`` (box side / 200 px),
    ``joints (N, 16, 2)`` pixels and ``visible (N, 16)`` bool, in :data:`MPII_JOINTS` order. The
    PCKh head sizes of ``valid.json`` come from its ``gt_valid.mat`` (``headboxes_src``), read by
    :func:`load_mpii_head_sizes`. Used by the RSN chapter (``notebooks/eccv2020/
    rsn_delicate_local.ipynb``)."""
    layout = ("data/mpii/annot/<split>.json: a JSON list of records with image, center, scale, "
              "joints (16 x [x, y]) and joints_vis (16)")
    path = _need(Path(path), layout)
    data = _json_records(path, ("image", "center", "scale", "joints", "joints_vis"), layout)
    joints = np.array([r["joints"] for r in data], dtype=float)
    vis = np.array([r["joints_vis"] for r in data], dtype=float)
    if joints.shape[1:] != (16, 2) or vis.shape[1:] != (16,):
        raise ValueError(f"{path}: joints must be 16 x [x, y] and joints_vis 16 flags, got "
                         f"{joints.shape[1:]} and {vis.shape[1:]}; expected {layout}")
    return {
        "image": np.array([r["image"] for r in data]),
        "center": np.array([r["center"] for r in data], dtype=float).reshape(-1, 2),
        "scale": np.array([r["scale"] for r in data], dtype=float),
        "joints": joints,
        "visible": vis > 0,
    }
