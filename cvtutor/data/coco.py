"""COCO-format files: one reader and writer for instances (boxes, RLE masks), keypoints, captions.

The COCO layout (https://cocodataset.org/#format-data) is the exchange format of the book's
scene worlds: :mod:`cvtutor.data.scenes2d` exports its scenes with :func:`coco_dataset`, and the
TIDE chapter reads detections with :func:`load_coco_json`. Masks are run-length encoded with
``pycocotools.mask`` (column-major, the ``counts`` as a string so the file is JSON).

* :func:`load_coco_json` / :func:`to_coco_json`: a ground-truth file plus a results file as a
  :class:`~cvtutor.metrics.detection.DetectionSet` (boxes only), and back.
* :func:`coco_dataset`: the dict of a data set (images, categories with keypoint names,
  annotations with box, mask and keypoints; captions) from plain records.
* :func:`read_coco`: such a dict or file as frames (:class:`CocoData`), checked, with the
  masks decoded on demand and the pycocotools ``COCO`` index at hand.
Malformed input raises ``ValueError`` naming the record and key at fault.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pycocotools import mask as mask_utils


def _read_json(source: Any, name: str) -> Any:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{name} file {path} does not exist")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{name} file {path} is not valid JSON: {err}") from None
    return source


def _require(record: Mapping[str, Any], keys: Sequence[str], where: str) -> None:
    if not isinstance(record, Mapping):
        raise ValueError(f"{where} must be a JSON object, got {type(record).__name__}")
    missing = [k for k in keys if k not in record]
    if missing:
        raise ValueError(f"{where} is missing the key(s) {missing}")


def _bad_ref(where: str, what: str, value: Any, table: str) -> ValueError:
    return ValueError(f"{where} refers to {what} id {value}, which is not in '{table}'")


def _bbox(record: Mapping[str, Any], where: str) -> list[float]:
    box = record["bbox"]
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise ValueError(f"{where}: 'bbox' must be [x, y, w, h], got {box!r}")
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: 'bbox' must hold four numbers, got {box!r}") from None
    if w < 0 or h < 0:
        raise ValueError(f"{where}: 'bbox' {box!r} has a negative width or height")
    return [x, y, w, h]


# ---------------------------------------------------------------------------------------------
# detections (TIDE): ground truth + results <-> DetectionSet
# ---------------------------------------------------------------------------------------------
def load_coco_json(gt: Any, results: Any):
    """Read a COCO-format ground-truth file and a COCO results file (paths or parsed JSON) as a
    :class:`~cvtutor.metrics.detection.DetectionSet`.

    Ground truth: ``{"images": [{"id"}...], "annotations": [{"id", "image_id", "category_id",
    "bbox": [x, y, w, h], "iscrowd"?}...], "categories": [{"id", "name"?}...]}``.
    Results: ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}...]``.
    Malformed input raises ``ValueError`` naming the problem: a missing key, a box with negative
    size, a result on an image or category that the ground truth does not have.
    """
    # imported here: cvtutor.metrics.detection re-exports this function from this module
    from cvtutor.metrics.detection import DET_COLUMNS, GT_COLUMNS, make_detection_set

    gt_json = _read_json(gt, "ground-truth")
    res_json = _read_json(results, "results")
    _require(gt_json, ("images", "annotations", "categories"), "the ground truth")
    images = []
    for i, im in enumerate(gt_json["images"]):
        _require(im, ("id",), f"ground truth images[{i}]")
        images.append(int(im["id"]))
    categories = {}
    for i, cat in enumerate(gt_json["categories"]):
        _require(cat, ("id",), f"ground truth categories[{i}]")
        categories[int(cat["id"])] = str(cat.get("name", cat["id"]))
    image_set = set(images)
    gt_rows = []
    for i, ann in enumerate(gt_json["annotations"]):
        where = f"ground truth annotations[{i}]"
        _require(ann, ("image_id", "category_id", "bbox"), where)
        if int(ann["image_id"]) not in image_set:
            raise _bad_ref(where, "image", ann["image_id"], "images")
        if int(ann["category_id"]) not in categories:
            raise _bad_ref(where, "category", ann["category_id"], "categories")
        gt_rows.append([int(ann.get("id", i + 1)), int(ann["image_id"]), int(ann["category_id"]),
                        *_bbox(ann, where), int(ann.get("iscrowd", 0))])
    if isinstance(res_json, Mapping) and "annotations" in res_json:
        res_json = res_json["annotations"]
    if not isinstance(res_json, list):
        raise ValueError("the results must be a JSON list of "
                         "{image_id, category_id, bbox, score} objects")
    det_rows = []
    for i, det in enumerate(res_json):
        where = f"results[{i}]"
        _require(det, ("image_id", "category_id", "bbox", "score"), where)
        if int(det["image_id"]) not in image_set:
            raise ValueError(f"{where} refers to image id {det['image_id']}, "
                             f"which the ground truth does not have")
        det_rows.append([i + 1, int(det["image_id"]), int(det["category_id"]), *_bbox(det, where),
                         float(det["score"])])
    gt_df = pd.DataFrame(gt_rows, columns=list(GT_COLUMNS))
    det_df = pd.DataFrame(det_rows, columns=list(DET_COLUMNS))
    return make_detection_set(gt_df, det_df, images=images, categories=categories)


def to_coco_json(data) -> tuple[dict, list]:
    """The COCO ground-truth dict and results list of a ``DetectionSet`` (the inverse of
    :func:`load_coco_json`)."""
    gt = {
        "images": [{"id": int(i)} for i in data.images],
        "categories": [{"id": int(k), "name": v} for k, v in data.categories.items()],
        "annotations": [{"id": int(r.id), "image_id": int(r.image_id),
                         "category_id": int(r.category_id),
                         "bbox": [float(r.x), float(r.y), float(r.w), float(r.h)],
                         "area": float(r.w * r.h), "iscrowd": int(r.iscrowd)}
                        for r in data.gt.itertuples()],
    }
    res = [{"image_id": int(r.image_id), "category_id": int(r.category_id),
            "bbox": [float(r.x), float(r.y), float(r.w), float(r.h)], "score": float(r.score)}
           for r in data.dets.itertuples()]
    return gt, res


# ---------------------------------------------------------------------------------------------
# masks as run-length encodings
# ---------------------------------------------------------------------------------------------
def encode_mask(mask: np.ndarray) -> dict:
    """COCO RLE ``{"size": [H, W], "counts": str}`` of a (H, W) boolean mask."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be (H, W), got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_mask(rle: Mapping[str, Any]) -> np.ndarray:
    """The (H, W) boolean mask of a COCO RLE (``counts`` as str or bytes)."""
    _require(rle, ("size", "counts"), "an RLE segmentation")
    counts = rle["counts"]
    if isinstance(counts, list):                                    # uncompressed RLE
        h, w = rle["size"]
        return mask_utils.decode(mask_utils.frPyObjects(dict(rle), h, w)).astype(bool)
    counts = counts.encode("ascii") if isinstance(counts, str) else counts
    return mask_utils.decode({"size": list(rle["size"]), "counts": counts}).astype(bool)


# ---------------------------------------------------------------------------------------------
# whole data sets: instances, keypoints, captions
# ---------------------------------------------------------------------------------------------
def coco_dataset(images: Sequence[Mapping[str, Any]], categories: Sequence[Mapping[str, Any]],
                 annotations: Sequence[Mapping[str, Any]],
                 captions: Sequence[Mapping[str, Any]] = (),
                 info: Mapping[str, Any] | None = None) -> dict:
    """A COCO data set dict from records.

    ``images``: ``{"id", "width", "height", "file_name"?}``; ``categories``: ``{"id", "name",
    "supercategory"?, "keypoints"?: [names], "skeleton"?: [[i, j] 1-based]}``; ``annotations``:
    ``{"image_id", "category_id", "bbox", "mask"?: (H, W) bool, "keypoints"?: (K, 3) x, y,
    visibility (0 absent, 1 hidden, 2 visible), "id"?, ...extra keys kept}``: the mask becomes an
    RLE ``segmentation`` whose pixel count is the ``area`` (else the box area); ``captions``:
    ``{"image_id", "caption"}`` (ids 1..n). Captions ride along in the same file under
    ``"captions"`` (COCO ships them in a file of their own: :func:`read_coco` reads either).
    """
    out_images = []
    for i, im in enumerate(images):
        _require(im, ("id", "width", "height"), f"images[{i}]")
        ints = ("id", "width", "height")
        out_images.append({k: (int(v) if k in ints else v) for k, v in im.items()})
    sizes = {im["id"]: (im["height"], im["width"]) for im in out_images}
    out_cats = []
    for i, cat in enumerate(categories):
        _require(cat, ("id", "name"), f"categories[{i}]")
        out_cats.append({"supercategory": cat.get("supercategory", cat["name"]), **cat})
    cat_ids = {c["id"] for c in out_cats}
    out_anns = []
    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        _require(ann, ("image_id", "category_id", "bbox"), where)
        if ann["image_id"] not in sizes:
            raise _bad_ref(where, "image", ann["image_id"], "images")
        if ann["category_id"] not in cat_ids:
            raise _bad_ref(where, "category", ann["category_id"], "categories")
        rec = {k: v for k, v in ann.items() if k not in ("mask", "keypoints")}
        rec.update(id=int(ann.get("id", i + 1)), image_id=int(ann["image_id"]),
                   category_id=int(ann["category_id"]), bbox=_bbox(ann, where),
                   iscrowd=int(ann.get("iscrowd", 0)))
        if ann.get("mask") is not None:
            mask = np.asarray(ann["mask"], bool)
            if mask.shape != sizes[ann["image_id"]]:
                raise ValueError(f"{where}: mask of shape {mask.shape}, but its image is "
                                 f"{sizes[ann['image_id']]} (H, W)")
            rec["segmentation"] = encode_mask(mask)
            rec["area"] = float(mask.sum())
        else:
            rec.setdefault("area", float(rec["bbox"][2] * rec["bbox"][3]))
        if ann.get("keypoints") is not None:
            kp = np.asarray(ann["keypoints"], np.float64)
            if kp.ndim != 2 or kp.shape[1] != 3:
                raise ValueError(f"{where}: keypoints must be (K, 3) [x, y, visibility], "
                                 f"got {kp.shape}")
            rec["keypoints"] = [float(v) if j % 3 < 2 else int(v) for j, v in enumerate(kp.ravel())]
            rec["num_keypoints"] = int((kp[:, 2] > 0).sum())
        out_anns.append(rec)
    out_caps = []
    for i, cap in enumerate(captions):
        _require(cap, ("image_id", "caption"), f"captions[{i}]")
        if cap["image_id"] not in sizes:
            raise _bad_ref(f"captions[{i}]", "image", cap["image_id"], "images")
        out_caps.append({"id": int(cap.get("id", i + 1)), "image_id": int(cap["image_id"]),
                         "caption": str(cap["caption"])})
    data = {"info": dict(info or {}), "images": out_images, "categories": out_cats,
            "annotations": out_anns}
    if out_caps:
        data["captions"] = out_caps
    return data


@dataclass(frozen=True)
class CocoData:
    """A COCO data set as frames: ``images`` (id, width, height, ...), ``categories`` (id, name,
    supercategory, ...), ``annotations`` (id, image_id, category_id, x, y, w, h, area, iscrowd,
    and the other keys found), ``captions`` (id, image_id, caption); ``raw`` the dict itself."""

    images: pd.DataFrame
    categories: pd.DataFrame
    annotations: pd.DataFrame
    captions: pd.DataFrame
    raw: dict

    def mask(self, annotation_id: int) -> np.ndarray:
        """The (H, W) bool mask of an annotation (its RLE or polygons; the box when it has none)."""
        return self.coco().annToMask(self.coco().anns[int(annotation_id)]).astype(bool)

    def keypoints(self, annotation_id: int) -> np.ndarray:
        """(K, 3) [x, y, visibility] of an annotation."""
        ann = self.coco().anns[int(annotation_id)]
        if "keypoints" not in ann:
            raise KeyError(f"annotation {annotation_id} has no keypoints")
        return np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)

    def coco(self):
        """The ``pycocotools.coco.COCO`` index of these instances (built once)."""
        cached = self.__dict__.get("_coco")
        if cached is None:
            from pycocotools.coco import COCO

            with contextlib.redirect_stdout(io.StringIO()):           # COCO prints progress
                cached = COCO()
                cached.dataset = {k: v for k, v in self.raw.items() if k != "captions"}
                cached.createIndex()
            object.__setattr__(self, "_coco", cached)
        return cached


def read_coco(source: Any) -> CocoData:
    """Read a COCO instances/keypoints file (or parsed dict), or a COCO captions file
    (``annotations`` with ``caption``, no ``categories``), or one that has both (``captions``).
    Raises ``FileNotFoundError`` / ``ValueError`` naming the missing file, key or bad reference."""
    data = _read_json(source, "COCO")
    _require(data, ("images", "annotations"), "a COCO file")
    anns = data["annotations"]
    is_captions = bool(anns) and all(isinstance(a, Mapping) and "caption" in a for a in anns)
    if not is_captions:
        _require(data, ("categories",), "a COCO instances file")
    images = []
    for i, im in enumerate(data["images"]):
        _require(im, ("id",), f"images[{i}]")
        images.append(dict(im))
    image_ids = {int(im["id"]) for im in images}
    cats = []
    for i, cat in enumerate(data.get("categories", [])):
        _require(cat, ("id", "name"), f"categories[{i}]")
        cats.append(dict(cat))
    cat_ids = {int(c["id"]) for c in cats}
    rows, caps = [], list(data.get("captions", []))
    for i, ann in enumerate(anns):
        where = f"annotations[{i}]"
        if is_captions:
            caps.append(ann)
            continue
        _require(ann, ("id", "image_id", "category_id", "bbox"), where)
        if int(ann["image_id"]) not in image_ids:
            raise _bad_ref(where, "image", ann["image_id"], "images")
        if int(ann["category_id"]) not in cat_ids:
            raise _bad_ref(where, "category", ann["category_id"], "categories")
        x, y, w, h = _bbox(ann, where)
        rest = {k: v for k, v in ann.items() if k not in ("bbox", "segmentation", "keypoints")}
        rows.append({**rest, "x": x, "y": y, "w": w, "h": h, "area": float(ann.get("area", w * h)),
                     "iscrowd": int(ann.get("iscrowd", 0))})
    cap_rows = []
    for i, cap in enumerate(caps):
        _require(cap, ("image_id", "caption"), f"captions[{i}]")
        if int(cap["image_id"]) not in image_ids:
            raise _bad_ref(f"captions[{i}]", "image", cap["image_id"], "images")
        cap_rows.append({"id": int(cap.get("id", i + 1)), "image_id": int(cap["image_id"]),
                         "caption": str(cap["caption"])})
    ann_cols = ["id", "image_id", "category_id", "x", "y", "w", "h", "area", "iscrowd"]
    raw = dict(data) if not is_captions else {**data, "annotations": [], "categories": cats,
                                               "captions": caps}
    return CocoData(pd.DataFrame(images, columns=None if images else ["id"]),
                    pd.DataFrame(cats, columns=None if cats else ["id", "name"]),
                    pd.DataFrame(rows, columns=None if rows else ann_cols),
                    pd.DataFrame(cap_rows, columns=["id", "image_id", "caption"]), raw)


def write_coco(data: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write a COCO dict (e.g. from :func:`coco_dataset`) as JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path
