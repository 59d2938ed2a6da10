"""Readers for the list files of the fine-grained retrieval sets of ExchNet (E12) beyond CUB
(:mod:`cvtutor.data.cub`): FGVC-Aircraft, NABirds and Food-101. Each returns a frame with one row
per image: ``path`` (relative to ``root``), ``class_id`` (0-based), ``class_name``.

Expected layouts::

    FGVC-Aircraft (root = fgvc-aircraft-2013b/data)
        root/variants.txt                     one variant name a line (class order; optional)
        root/images_variant_<split>.txt       <image id> <variant name>   (split: train, val,
                                              trainval, test; names may hold spaces)
        root/images/<image id>.jpg
    NABirds (root = nabirds)
        root/images.txt                       <uuid> <class folder>/<file>.jpg
        root/image_class_labels.txt           <uuid> <class id>
        root/train_test_split.txt             <uuid> <1 train | 0 test>
        root/classes.txt                      <class id> <class name>     (optional)
    Food-101 (root = food-101)
        root/meta/classes.txt                 one class folder name a line
        root/meta/<split>.txt                 <class folder>/<image id>   (split: train, test)
        root/images/<class folder>/<image id>.jpg
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

AIRCRAFT_SPLITS = ("train", "val", "trainval", "test")
FOOD101_SPLITS = ("train", "test")


def _lines(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"missing {path}; expected {what}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _pairs(path: Path, what: str) -> list[tuple[str, str]]:
    out = []
    for n, line in enumerate(_lines(path, what), 1):
        fields = line.split(" ", 1)
        if len(fields) != 2:
            raise ValueError(f"{path}:{n}: expected '<id> <value>', got {line!r}")
        out.append((fields[0], fields[1]))
    return out


def _with_ids(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(frame["class_name"]) - set(index))
    if unknown:
        raise ValueError(f"classes {unknown[:5]} are not in the class list")
    return frame.assign(class_id=frame["class_name"].map(index).astype(int))


def load_aircraft(root: str | Path, split: str = "trainval") -> pd.DataFrame:
    """FGVC-Aircraft's images of ``split`` at the variant level (100 classes): columns
    ``image_id``, ``path``, ``class_id`` (order of ``variants.txt``, else sorted names),
    ``class_name``."""
    if split not in AIRCRAFT_SPLITS:
        raise ValueError(f"split must be one of {AIRCRAFT_SPLITS}, got {split!r}")
    root = Path(root)
    rows = _pairs(root / f"images_variant_{split}.txt", "'<image id> <variant>' lines")
    frame = pd.DataFrame(rows, columns=["image_id", "class_name"])
    frame["path"] = "images/" + frame["image_id"] + ".jpg"
    listed = root / "variants.txt"
    names = (_lines(listed, "one variant a line") if listed.is_file()
             else sorted(set(frame["class_name"])))
    return _with_ids(frame, names)[["image_id", "path", "class_id", "class_name"]]


def load_nabirds(root: str | Path, split: str | None = None) -> pd.DataFrame:
    """NABirds' images (``split`` None, ``"train"`` or ``"test"``): columns ``image_id`` (the
    uuid), ``path``, ``class_id`` (0-based rank of the file's class id), ``class_name`` (from
    ``classes.txt``, else the class id), ``is_train``."""
    if split not in (None, "train", "test"):
        raise ValueError(f"split must be None, 'train' or 'test', got {split!r}")
    root = Path(root)
    what = "'<uuid> <value>' lines (the NABirds layout)"
    images = dict(_pairs(root / "images.txt", what))
    labels = dict(_pairs(root / "image_class_labels.txt", what))
    train = dict(_pairs(root / "train_test_split.txt", what))
    missing = sorted((set(images) ^ set(labels)) | (set(images) ^ set(train)))
    if missing:
        raise ValueError(f"images.txt, image_class_labels.txt and train_test_split.txt list "
                         f"different ids, e.g. {missing[:3]}")
    classes = root / "classes.txt"
    names = dict(_pairs(classes, what)) if classes.is_file() else {}
    ids = sorted({int(c) for c in labels.values()})
    rank = {c: i for i, c in enumerate(ids)}
    frame = pd.DataFrame({"image_id": list(images), "path": "images/" + pd.Series(images.values()),
                          "class_id": [rank[int(labels[i])] for i in images],
                          "class_name": [names.get(labels[i], labels[i]) for i in images],
                          "is_train": [train[i] == "1" for i in images]})
    if split is not None:
        frame = frame[frame["is_train"] == (split == "train")].reset_index(drop=True)
    return frame


def load_food101(root: str | Path, split: str = "train") -> pd.DataFrame:
    """Food-101's images of ``split`` (750 train / 250 test a class): columns ``image_id``,
    ``path``, ``class_id`` (order of ``meta/classes.txt``), ``class_name``."""
    if split not in FOOD101_SPLITS:
        raise ValueError(f"split must be one of {FOOD101_SPLITS}, got {split!r}")
    root = Path(root)
    names = _lines(root / "meta" / "classes.txt", "one class folder a line")
    rows = []
    for n, line in enumerate(_lines(root / "meta" / f"{split}.txt",
                                    "'<class folder>/<image id>' lines"), 1):
        if line.count("/") != 1:
            raise ValueError(f"meta/{split}.txt:{n}: expected '<class>/<image id>', got {line!r}")
        rows.append(line.split("/") + [f"images/{line}.jpg"])
    frame = pd.DataFrame(rows, columns=["class_name", "image_id", "path"])
    return _with_ids(frame, names)[["image_id", "path", "class_id", "class_name"]]
