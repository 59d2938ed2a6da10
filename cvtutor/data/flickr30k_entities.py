"""Readers for phrase grounding data: Flickr30K Entities and bottom-up-attention region features.

Chapter ``info_ground``. Nothing is downloaded; these read files a user already has:

* **Flickr30K Entities** (Plummer et al. 2015): ``Sentences/<image_id>.txt`` holds five captions,
  one a line, with each entity phrase marked ``[/EN#<entity_id>/<type>[/<type>...] words]``;
  ``Annotations/<image_id>.xml`` is Pascal-VOC-like: ``<size>`` and ``<object>`` elements, each
  with one or more ``<name>`` entity ids and either a ``<bndbox>`` (``xmin ymin xmax ymax``) or a
  ``<nobndbox>1`` / ``<scene>1`` flag. :func:`parse_sentence`, :func:`read_sentences`,
  :func:`read_annotations`.
* **Bottom-up-attention features** (Anderson et al. 2018): a TSV with the fields
  ``image_id, image_w, image_h, num_boxes, boxes, features``, the last two base64 of float32
  arrays (num_boxes, 4) ``x1 y1 x2 y2`` and (num_boxes, D). :func:`read_bottomup_tsv`.

COCO captions files are read by :func:`cvtutor.data.coco.read_coco`.
"""
from __future__ import annotations

import base64
import csv
import re
import sys
import xml.etree.ElementTree as ET
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

_PHRASE = re.compile(r"\[/EN#(\d+)((?:/[^\s\]/]+)+)\s+([^\]]*)\]")
BOTTOMUP_FIELDS = ("image_id", "image_w", "image_h", "num_boxes", "boxes", "features")


def parse_sentence(line: str) -> tuple[str, list[dict]]:
    """A Flickr30K Entities sentence -> (plain caption, phrases). Each phrase: ``phrase`` (its
    words), ``entity`` (int id), ``types`` (list), ``first_word`` (0-based word index in the
    caption). ``[/EN#123/people A man]`` -> phrase "A man", entity 123, types ["people"]."""
    words: list[str] = []
    phrases: list[dict] = []
    pos = 0
    for m in _PHRASE.finditer(line):
        words += line[pos:m.start()].split()
        if "[" in line[pos:m.start()] or "]" in line[pos:m.start()]:
            raise ValueError(f"malformed phrase markup before column {m.start()} in {line!r}; "
                             "expected [/EN#<id>/<type> words]")
        text = m.group(3).strip()
        phrases.append({"phrase": text, "entity": int(m.group(1)),
                        "types": m.group(2).strip("/").split("/"), "first_word": len(words)})
        words += text.split()
        pos = m.end()
    rest = line[pos:]
    if "[" in rest or "]" in rest:
        raise ValueError(f"malformed phrase markup in {line!r}; expected [/EN#<id>/<type> words]")
    words += rest.split()
    return " ".join(words), phrases


def read_sentences(path: str | PathLike) -> pd.DataFrame:
    """``Sentences/<image_id>.txt`` -> one row per phrase: ``image_id``, ``sentence`` (0-based),
    ``caption``, ``phrase``, ``entity``, ``types`` (``"/"``-joined), ``first_word``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no Flickr30K Entities sentence file {path}; expected "
                                "Sentences/<image_id>.txt")
    rows = []
    for i, line in enumerate(l for l in path.read_text(encoding="utf-8").splitlines() if l.strip()):
        caption, phrases = parse_sentence(line)
        for p in phrases:
            rows.append({"image_id": path.stem, "sentence": i, "caption": caption,
                         **p, "types": "/".join(p["types"])})
    return pd.DataFrame(rows, columns=["image_id", "sentence", "caption", "phrase", "entity",
                                       "types", "first_word"])


def read_annotations(path: str | PathLike) -> dict:
    """``Annotations/<image_id>.xml`` -> ``width``, ``height``, ``boxes`` {entity id: (K, 4)
    float array of ``x1 y1 x2 y2``}, ``nobox`` (entity ids marked ``nobndbox``), ``scene``
    (entity ids marked ``scene``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no Flickr30K Entities annotation file {path}; expected "
                                "Annotations/<image_id>.xml")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: not a valid XML annotation file ({err})") from None
    size = root.find("size")
    if size is None or size.find("width") is None or size.find("height") is None:
        raise ValueError(f"{path}: expected <size><width>..</width><height>..</height></size>")
    boxes: dict[int, list] = {}
    nobox, scene = set(), set()
    for obj in root.iter("object"):
        ids = [int(n.text) for n in obj.findall("name") if n.text and n.text.strip().isdigit()]
        if not ids:
            raise ValueError(f"{path}: an <object> without a numeric <name> entity id")
        box = obj.find("bndbox")
        if box is not None:
            try:
                xyxy = [float(box.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]
            except (AttributeError, TypeError, ValueError):
                raise ValueError(f"{path}: a <bndbox> needs numeric xmin, ymin, xmax, ymax") \
                    from None
            for e in ids:
                boxes.setdefault(e, []).append(xyxy)
        for flag, dest in (("nobndbox", nobox), ("scene", scene)):
            el = obj.find(flag)
            if el is not None and (el.text or "").strip() == "1":
                dest.update(ids)
    return {"width": int(size.find("width").text), "height": int(size.find("height").text),
            "boxes": {e: np.asarray(b, dtype=np.float64) for e, b in boxes.items()},
            "nobox": nobox, "scene": scene}


def _decode(field: str, name: str, shape: tuple[int, int], where: str) -> np.ndarray:
    try:
        raw = base64.b64decode(field, validate=True)
    except (ValueError, TypeError):
        raise ValueError(f"{where}: field {name} is not base64") from None
    arr = np.frombuffer(raw, dtype=np.float32) if len(raw) % 4 == 0 else None
    k, d = shape
    ok = arr is not None and (arr.size == k * d if d else (k > 0 and arr.size % k == 0))
    if not ok:
        raise ValueError(f"{where}: field {name} holds {len(raw)} bytes, expected "
                         f"num_boxes = {k} rows of {d or 'D'} float32")
    return arr.reshape(k, -1).copy()


def read_bottomup_tsv(path: str | PathLike) -> dict[str, dict]:
    """The bottom-up-attention TSV -> {image_id: {"width", "height", "boxes" (K, 4) x1 y1 x2 y2,
    "features" (K, D)}} (float32)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no bottom-up feature file {path}; expected a TSV with fields "
                                f"{', '.join(BOTTOMUP_FIELDS)}")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    out = {}
    with path.open(newline="") as f:
        for i, row in enumerate(csv.reader(f, delimiter="\t")):
            where = f"{path.name} line {i + 1}"
            if len(row) != len(BOTTOMUP_FIELDS):
                raise ValueError(f"{where}: {len(row)} fields, expected {len(BOTTOMUP_FIELDS)} "
                                 f"({', '.join(BOTTOMUP_FIELDS)})")
            rec = dict(zip(BOTTOMUP_FIELDS, row))
            try:
                k, w, h = int(rec["num_boxes"]), int(rec["image_w"]), int(rec["image_h"])
            except ValueError:
                raise ValueError(f"{where}: num_boxes, image_w, image_h must be integers") \
                    from None
            out[rec["image_id"]] = {"width": w, "height": h,
                                    "boxes": _decode(rec["boxes"], "boxes", (k, 4), where),
                                    "features": _decode(rec["features"], "features", (k, 0),
                                                        where)}
    return out
