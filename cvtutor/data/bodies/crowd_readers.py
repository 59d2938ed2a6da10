"""Readers of the crowd pose chapter's real data, for readers who own them (nothing is downloaded):

- Wildtrack's calibrations (``calibrations/intrinsic_zero/intr_<cam>.xml`` and
  ``calibrations/extrinsic/extr_<cam>.xml``, OpenCV ``FileStorage`` XML), parsed with
  ``xml.etree`` so OpenCV is not needed;
- COCO-foot keypoints (OpenPose's ``person_keypoints_<split>2017_foot_v1.json``: COCO annotations
  whose ``keypoints`` hold the 17 body joints and then the 6 foot joints, big toe, small toe and
  heel of the left then the right foot).

CMU Panoptic is read by :func:`cvtutor.data.bodies.load_panoptic_bodies` and
:func:`~cvtutor.data.bodies.load_panoptic_calibration`. Used by the crowd pose chapter
(``notebooks/eccv2020/crowd_3d_pose_mvg.ipynb``).
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch

from cvtutor.data.bodies.readers import _need
from cvtutor.data.geometry.rotations import so3_exp

FOOT_NAMES = ("l_big_toe", "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel")


def _storage_node(path: Path, name: str, layout: str) -> np.ndarray:
    """A numeric node of an OpenCV FileStorage XML file: an ``opencv-matrix`` (rows, cols, data)
    or a plain whitespace-separated sequence."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: not an XML file ({err}); expected {layout}") from None
    if root.tag != "opencv_storage":
        raise ValueError(f"{path}: the root must be <opencv_storage>, got <{root.tag}>; "
                         f"expected {layout}")
    node = root.find(name)
    if node is None:
        raise ValueError(f"{path}: no <{name}> node; expected {layout}")
    data = node.find("data")
    text = (data.text if data is not None else node.text) or ""
    try:
        values = np.array([float(x) for x in text.split()])
    except ValueError:
        raise ValueError(f"{path}: <{name}> must hold numbers, got {text[:40]!r}") from None
    if data is not None:
        rows, cols = int(node.findtext("rows")), int(node.findtext("cols"))
        if values.size != rows * cols:
            raise ValueError(f"{path}: <{name}> declares {rows}x{cols} but holds {values.size}")
        values = values.reshape(rows, cols)
    return values


def load_wildtrack_calibration(intrinsic: str | Path, extrinsic: str | Path
                               ) -> dict[str, np.ndarray]:
    """One Wildtrack camera: ``K (3, 3)``, ``dist (5,)`` from ``intr_<cam>.xml``
    (``camera_matrix``, ``distortion_coefficients``) and ``R (3, 3)`` (Rodrigues of ``rvec``),
    ``t (3,)`` (``tvec``, cm) from ``extr_<cam>.xml``, with ``X_c = R·X + t``."""
    layout_i = ("calibrations/intrinsic_zero/intr_<cam>.xml: OpenCV FileStorage with "
                "camera_matrix (3x3) and distortion_coefficients")
    layout_e = "calibrations/extrinsic/extr_<cam>.xml: OpenCV FileStorage with rvec and tvec"
    pi, pe = _need(Path(intrinsic), layout_i), _need(Path(extrinsic), layout_e)
    K = _storage_node(pi, "camera_matrix", layout_i)
    if K.shape != (3, 3):
        raise ValueError(f"{pi}: camera_matrix must be 3x3, got {K.shape}")
    dist = _storage_node(pi, "distortion_coefficients", layout_i).reshape(-1)
    rvec = _storage_node(pe, "rvec", layout_e).reshape(-1)
    tvec = _storage_node(pe, "tvec", layout_e).reshape(-1)
    if rvec.size != 3 or tvec.size != 3:
        raise ValueError(f"{pe}: rvec and tvec must hold 3 numbers each, got {rvec.size}, "
                         f"{tvec.size}")
    R = so3_exp(torch.tensor(rvec, dtype=torch.float64)).numpy()
    return {"K": K, "dist": dist, "R": R, "t": tvec}


def load_coco_foot_keypoints(path: str | Path) -> dict:
    """COCO-foot annotations → ``images`` {id: (file_name, width, height)} and per person
    ``image_id (N,)``, ``bbox (N, 4)`` (x, y, w, h), ``keypoints (N, 23, 3)`` (u, v, visibility;
    17 COCO body joints, then :data:`FOOT_NAMES`), ``area (N,)``, ``iscrowd (N,)``."""
    layout = ("person_keypoints_<split>2017_foot_v1.json: COCO 'images' and 'annotations' with "
              "23 x 3 keypoints (17 body + 6 foot)")
    path = _need(Path(path), layout)
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not {"images", "annotations"} <= set(data):
        raise ValueError(f"{path}: expected {layout}")
    anns = [a for a in data["annotations"] if "keypoints" in a]
    bad = [len(a["keypoints"]) for a in anns if len(a["keypoints"]) != 69]
    if bad:
        raise ValueError(f"{path}: keypoints must hold 23 x 3 = 69 numbers, got {bad[0]}; "
                         f"expected {layout}")
    return {
        "images": {im["id"]: (im["file_name"], im["width"], im["height"]) for im in data["images"]},
        "image_id": np.array([a["image_id"] for a in anns], dtype=int),
        "bbox": np.array([a["bbox"] for a in anns], dtype=float).reshape(-1, 4),
        "keypoints": np.array([a["keypoints"] for a in anns], dtype=float).reshape(-1, 23, 3),
        "area": np.array([a.get("area", 0.0) for a in anns], dtype=float),
        "iscrowd": np.array([a.get("iscrowd", 0) for a in anns], dtype=int),
    }
