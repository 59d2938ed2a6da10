"""Readers for person re-identification data sets that encode their labels in file names:
Market-1501 (Zheng et al. 2015) and DukeMTMC-reID (Zheng et al. 2017; Occluded-DukeMTMC and
CUHK03-NP in Market layout use the same names).

Expected layout (``root``)::

    root/bounding_box_train/*.jpg    # training images
    root/bounding_box_test/*.jpg     # gallery
    root/query/*.jpg                 # queries

File names::

    Market-1501   0002_c1s1_000451_03.jpg  identity 0002, camera 1, sequence 1, frame 451, box 3
                  -1_c1s1_000401_03.jpg    junk (identity -1): ignored by the evaluation
                  0000_c1s1_000151_01.jpg  distractor (identity 0): a wrong answer in the gallery
    DukeMTMC      0005_c2_f0046985.jpg     identity 0005, camera 2, frame 46985

The evaluation protocol (same identity + same camera removed, junk removed) is
:func:`cvtutor.metrics.retrieval.evaluate_reid`.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

SPLITS = {"train": "bounding_box_train", "gallery": "bounding_box_test", "query": "query"}
PATTERNS = {
    "market1501": re.compile(r"^(?P<pid>-1|\d{4})_c(?P<camid>\d)s(?P<seq>\d)_(?P<frame>\d{6})"
                             r"_(?P<box>\d{2})\.jpg$"),
    "duke": re.compile(r"^(?P<pid>\d{4})_c(?P<camid>\d)_f(?P<frame>\d{7})\.jpg$"),
}
EXAMPLES = {"market1501": "0002_c1s1_000451_03.jpg", "duke": "0005_c2_f0046985.jpg"}
COLUMNS = ("path", "pid", "camid", "seq", "frame", "box")
LAYOUT = ("root/{bounding_box_train,bounding_box_test,query}/*.jpg named like "
          "0002_c1s1_000451_03.jpg (Market-1501) or 0005_c2_f0046985.jpg (DukeMTMC)")


def parse_name(name: str, style: str = "market1501") -> dict[str, int]:
    """Labels of one file name: ``pid`` (-1 junk, 0 distractor), ``camid``, ``seq`` (Duke: 1),
    ``frame`` and ``box`` (Duke: 0), all ints (module doc)."""
    if style not in PATTERNS:
        raise ValueError(f"style must be one of {list(PATTERNS)}, got {style!r}")
    m = PATTERNS[style].match(Path(name).name)
    if m is None:
        raise ValueError(f"{name!r} is not a {style} file name; expected names like "
                         f"{EXAMPLES[style]}")
    g = m.groupdict()
    return {"pid": int(g["pid"]), "camid": int(g["camid"]), "seq": int(g.get("seq") or 1),
            "frame": int(g["frame"]), "box": int(g.get("box") or 0)}


def load_split(root: str | Path, split: str, style: str = "market1501",
               drop_junk: bool = True) -> pd.DataFrame:
    """One row per image of ``split`` (``train``, ``gallery`` or ``query``), columns
    :data:`COLUMNS`, sorted by file name; junk images (pid -1) are dropped unless ``drop_junk``
    is False. Files that are not ``.jpg`` (``Thumbs.db``) are skipped; a ``.jpg`` whose name does
    not parse raises."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    folder = Path(root) / SPLITS[split]
    if not folder.is_dir():
        raise FileNotFoundError(f"missing folder {folder}; expected the layout {LAYOUT}")
    rows = [{"path": str(p), **parse_name(p.name, style)} for p in sorted(folder.glob("*.jpg"))]
    if not rows:
        raise ValueError(f"{folder} has no .jpg images; expected the layout {LAYOUT}")
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    if drop_junk:
        frame = frame[frame.pid != -1].reset_index(drop=True)
    return frame


def relabel(pids: pd.Series) -> pd.Series:
    """Training labels 0..n_ids-1 in order of the sorted identities (for a classifier head)."""
    ids = sorted(pids.unique())
    return pids.map({p: i for i, p in enumerate(ids)}).astype("int64")
