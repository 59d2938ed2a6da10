"""Reader for the list files of Caltech-UCSD Birds-200-2011 (Wah et al. 2011), the fine-grained
retrieval set of ExchNet (E12); NABirds ships the same files.

Expected layout (``root``, the folder ``CUB_200_2011``)::

    root/images.txt               <image_id> <class folder>/<file>.jpg
    root/image_class_labels.txt   <image_id> <class_id>            (1..200)
    root/train_test_split.txt     <image_id> <is_training_image>   (1 train, 0 test)
    root/bounding_boxes.txt       <image_id> <x> <y> <width> <height>   (pixels, optional)
    root/classes.txt              <class_id> <class_name>          (optional)
    root/parts/part_locs.txt      <image_id> <part_id> <x> <y> <visible>   (optional)
    root/images/<class folder>/<file>.jpg

Each file has one line per id, fields separated by single spaces; ids start at 1.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

FILES = {
    "images.txt": ("image_id", "path"),
    "image_class_labels.txt": ("image_id", "class_id"),
    "train_test_split.txt": ("image_id", "is_train"),
    "bounding_boxes.txt": ("image_id", "x", "y", "w", "h"),
    "classes.txt": ("class_id", "class_name"),
    "parts/part_locs.txt": ("image_id", "part_id", "x", "y", "visible"),
}
REQUIRED = ("images.txt", "image_class_labels.txt", "train_test_split.txt")
LAYOUT = ("root/{images.txt, image_class_labels.txt, train_test_split.txt} (required), "
          "root/{bounding_boxes.txt, classes.txt, parts/part_locs.txt} (optional), "
          "space-separated '<id> <value...>' lines")
COLUMNS = ("image_id", "path", "class_id", "class_name", "is_train", "x", "y", "w", "h")


def read_list(path: str | Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """One CUB list file as a frame: the first column an int id, the rest split on the first
    ``len(columns) - 1`` spaces (the last field may hold spaces); numbers parsed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing {path}; expected the layout {LAYOUT}")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.strip().split(" ", len(columns) - 1)
        if len(fields) != len(columns):
            raise ValueError(f"{path}:{n}: expected {len(columns)} fields {columns}, got "
                             f"{line!r}")
        rows.append(fields)
    frame = pd.DataFrame(rows, columns=list(columns))
    for c in columns:
        if c not in ("path", "class_name"):
            try:
                frame[c] = pd.to_numeric(frame[c])
            except ValueError as err:
                raise ValueError(f"{path}: column {c!r} must be numeric ({err})") from None
    return frame


def load_cub(root: str | Path, split: str | None = None) -> pd.DataFrame:
    """The images of CUB (columns :data:`COLUMNS`; boxes and class names ``nan``/``""`` where the
    optional files are absent), ``split`` ``train``, ``test`` or None for all, sorted by id.
    Raises when the list files disagree on the image ids."""
    root = Path(root)
    if split not in (None, "train", "test"):
        raise ValueError(f"split must be 'train', 'test' or None, got {split!r}")
    parts = [read_list(root / f, FILES[f]) for f in REQUIRED]
    ids = set(parts[0].image_id)
    for f, p in zip(REQUIRED[1:], parts[1:]):
        if set(p.image_id) != ids or len(p) != len(ids):
            raise ValueError(f"{root / f} and {root / 'images.txt'} list different image ids")
    frame = parts[0].merge(parts[1], on="image_id").merge(parts[2], on="image_id")
    frame["is_train"] = frame.is_train.astype(bool)
    classes = root / "classes.txt"
    names = (read_list(classes, FILES["classes.txt"]).set_index("class_id").class_name
             if classes.is_file() else pd.Series(dtype=object))
    frame["class_name"] = frame.class_id.map(names).fillna("")
    boxes = root / "bounding_boxes.txt"
    if boxes.is_file():
        frame = frame.merge(read_list(boxes, FILES["bounding_boxes.txt"]), on="image_id",
                            how="left")
    else:
        frame[["x", "y", "w", "h"]] = float("nan")
    frame = frame[list(COLUMNS)].sort_values("image_id").reset_index(drop=True)
    if split is not None:
        frame = frame[frame.is_train == (split == "train")].reset_index(drop=True)
    return frame


def load_cub_parts(root: str | Path) -> pd.DataFrame:
    """The 15 part locations per image (``parts/part_locs.txt``): image_id, part_id, x, y,
    visible (bool)."""
    frame = read_list(Path(root) / "parts" / "part_locs.txt", FILES["parts/part_locs.txt"])
    frame["visible"] = frame.visible.astype(bool)
    return frame
