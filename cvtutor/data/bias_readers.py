"""Readers of the data sets REVISE (chapter ``revise``, E43) analyses, as object tables.

The REVISE metrics take one row per annotated object: ``image``, ``category``, ``supercategory``,
the box ``x, y, w, h`` and its centre ``cx, cy`` in pixels (or in image units for OpenImages),
``area`` (box area / image area) and ``img_w, img_h``; plus whatever the format adds.

* :func:`coco_objects`: a COCO instances file read by :func:`cvtutor.data.coco.read_coco`
  (``instances_*.json``; captions from ``captions_*.json`` are read by the same reader);
* :func:`read_openimages`: OpenImages' ``*-annotations-bbox.csv`` with
  ``class-descriptions-boxable.csv`` (label id to display name);
* :func:`iter_yfcc`: the YFCC100m metadata TSV, streamed in chunks (it has 100 million lines).
Malformed input raises ``ValueError`` naming the expected layout.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote_plus

import numpy as np
import pandas as pd

from cvtutor.data.coco import CocoData

OBJECT_COLUMNS = ("image", "category", "supercategory", "x", "y", "w", "h", "cx", "cy", "area",
                  "img_w", "img_h")


def _finish(df: pd.DataFrame) -> pd.DataFrame:
    df["cx"], df["cy"] = df["x"] + df["w"] / 2, df["y"] + df["h"] / 2
    df["area"] = df["w"] * df["h"] / (df["img_w"] * df["img_h"])
    return df


def coco_objects(data: CocoData) -> pd.DataFrame:
    """The object table of a COCO instances data set (:class:`~cvtutor.data.coco.CocoData`):
    the columns of :data:`OBJECT_COLUMNS` (``image`` the image id, ``category`` its name), the
    annotation ``id`` and every extra annotation key (e.g. ``gender``, ``duplicate_of``)."""
    anns, cats, imgs = data.annotations, data.categories, data.images
    if not {"width", "height"} <= set(imgs.columns):
        raise ValueError("coco_objects needs the images' 'width' and 'height' (a COCO instances "
                         "file)")
    cat = cats.set_index("id")
    sup = cat["supercategory"] if "supercategory" in cat else cat["name"]
    size = imgs.set_index("id")[["width", "height"]].astype(float)
    df = anns.rename(columns={"image_id": "image"}).copy()
    df["category"] = df["category_id"].map(cat["name"])
    df["supercategory"] = df["category_id"].map(sup)
    df["img_w"] = df["image"].map(size["width"])
    df["img_h"] = df["image"].map(size["height"])
    df = _finish(df.drop(columns=["area"]))
    rest = [c for c in df.columns if c not in OBJECT_COLUMNS]
    return df[list(OBJECT_COLUMNS) + rest]


OPENIMAGES_BOX_COLUMNS = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax")


def read_openimages(boxes_csv: str | os.PathLike, classes_csv: str | os.PathLike,
                    hierarchy: dict[str, str] | None = None) -> pd.DataFrame:
    """OpenImages boxes as an object table, in image units (``img_w = img_h = 1``: the CSV's
    coordinates are fractions of the image). ``boxes_csv``: the header
    ``ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,...`` (the columns of
    :data:`OPENIMAGES_BOX_COLUMNS` are required, the flags kept); ``classes_csv``: two columns
    without header, ``LabelName,DisplayName``. ``hierarchy`` maps a display name to its
    super-category (default: itself)."""
    for path in (boxes_csv, classes_csv):
        if not Path(path).is_file():
            raise FileNotFoundError(f"OpenImages file {path} does not exist")
    boxes = pd.read_csv(boxes_csv)
    missing = [c for c in OPENIMAGES_BOX_COLUMNS if c not in boxes.columns]
    if missing:
        raise ValueError(f"{boxes_csv}: missing the column(s) {missing}; expected the OpenImages "
                         f"header {','.join(OPENIMAGES_BOX_COLUMNS)},...")
    classes = pd.read_csv(classes_csv, header=None, dtype=str)
    if classes.shape[1] != 2:
        raise ValueError(f"{classes_csv}: expected two columns LabelName,DisplayName without a "
                         f"header, got {classes.shape[1]}")
    names = dict(zip(classes[0], classes[1]))
    unknown = sorted(set(boxes["LabelName"]) - set(names))
    if unknown:
        raise ValueError(f"{boxes_csv}: label(s) {unknown[:5]} are not in {classes_csv}")
    coords = boxes[["XMin", "XMax", "YMin", "YMax"]].astype(float)
    if ((coords < 0) | (coords > 1)).any().any() or (coords["XMax"] < coords["XMin"]).any() or \
            (coords["YMax"] < coords["YMin"]).any():
        raise ValueError(f"{boxes_csv}: box coordinates must be fractions with XMin <= XMax and "
                         f"YMin <= YMax")
    category = boxes["LabelName"].map(names)
    df = pd.DataFrame({
        "image": boxes["ImageID"].astype(str),
        "category": category,
        "supercategory": category.map(lambda c: (hierarchy or {}).get(c, c)),
        "x": coords["XMin"], "y": coords["YMin"],
        "w": coords["XMax"] - coords["XMin"], "h": coords["YMax"] - coords["YMin"],
        "img_w": 1.0, "img_h": 1.0,
    })
    df = _finish(df)
    flags = [c for c in boxes.columns if c.startswith("Is")]
    return pd.concat([df[list(OBJECT_COLUMNS)], boxes[flags]], axis=1)


# the 23 tab-separated fields of yfcc100m_dataset (Yahoo Webscope readme), in order
YFCC_FIELDS = ("photo_id", "user_nsid", "user_nickname", "date_taken", "date_uploaded",
               "capture_device", "title", "description", "user_tags", "machine_tags",
               "longitude", "latitude", "accuracy", "page_url", "download_url", "license_name",
               "license_url", "server_id", "farm_id", "secret", "secret_original",
               "extension_original", "marker")


def iter_yfcc(path: str | os.PathLike, chunksize: int = 100_000) -> Iterator[pd.DataFrame]:
    """Stream the YFCC100m metadata TSV (no header; the 23 fields of :data:`YFCC_FIELDS`) in
    chunks of ``chunksize`` lines, each a frame of ``photo_id``, ``user_nsid``, ``date_taken``,
    ``tags`` (the user tags, URL-decoded, a tuple per photo), ``longitude``, ``latitude``
    (float, NaN without geotag), ``accuracy`` and ``is_video``. Raises ``ValueError`` on a line
    with another number of fields."""
    if chunksize < 1:
        raise ValueError(f"chunksize must be >= 1, got {chunksize}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"YFCC100m metadata file {path} does not exist")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        rows: list[list[str]] = []
        for line, row in enumerate(reader, 1):
            if len(row) != len(YFCC_FIELDS):
                raise ValueError(f"{path}, line {line}: {len(row)} tab-separated fields, expected "
                                 f"the {len(YFCC_FIELDS)} of YFCC100m ({', '.join(YFCC_FIELDS)})")
            rows.append(row)
            if len(rows) == chunksize:
                yield _yfcc_frame(rows)
                rows = []
        if rows:
            yield _yfcc_frame(rows)


def _yfcc_frame(rows: list[list[str]]) -> pd.DataFrame:
    raw = pd.DataFrame(rows, columns=list(YFCC_FIELDS))
    num = lambda c: pd.to_numeric(raw[c].replace("", np.nan), errors="coerce")  # noqa: E731
    return pd.DataFrame({
        "photo_id": raw["photo_id"],
        "user_nsid": raw["user_nsid"],
        "date_taken": raw["date_taken"],
        "tags": [tuple(unquote_plus(t) for t in s.split(",") if t) for s in raw["user_tags"]],
        "longitude": num("longitude"),
        "latitude": num("latitude"),
        "accuracy": num("accuracy"),
        "is_video": raw["marker"] == "1",
    })
