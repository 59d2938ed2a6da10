"""Reader for the referring-expression annotations of RefCOCO, RefCOCO+ and RefCOCOg (Yu et al.
2016, Mao et al. 2016), as distributed with the REFER toolkit (lichengunc/refer).

Expected layout (``root``)::

    root/<dataset>/refs(<split_by>).p     # dataset refcoco | refcoco+ | refcocog
    root/<dataset>/instances.json         # the COCO boxes and masks (read with cvtutor.data.coco)

with ``split_by`` ``unc`` (RefCOCO, RefCOCO+), ``umd`` or ``google`` (RefCOCOg). The ``.p`` file
is a pickle (Python 2, protocol 2) holding a list of refs, one per referred object::

    {"ref_id": 0, "ann_id": 1719310, "image_id": 581857, "category_id": 1, "split": "testA",
     "file_name": "COCO_train2014_000000581857_16.jpg", "sent_ids": [0, 1],
     "sentences": [{"sent_id": 0, "sent": "the lady with the blue shirt", "raw": "...",
                    "tokens": ["the", "lady", ...]}, ...]}

It is read with the restricted unpickler (:mod:`cvtutor.data.safe_pickle`), so a hostile file
cannot run code. ``ann_id`` keys the object's box and mask in ``instances.json``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from cvtutor.data import safe_pickle

SPLIT_BY = {"refcoco": ("unc", "google"), "refcoco+": ("unc",), "refcocog": ("umd", "google")}
REF_KEYS = ("ref_id", "ann_id", "image_id", "category_id", "split", "sentences")
SENTENCE_KEYS = ("sent_id", "sent")
LAYOUT = ("root/<dataset>/refs(<split_by>).p (a pickled list of refs with keys "
          + ", ".join(REF_KEYS) + "; each sentence a dict with " + ", ".join(SENTENCE_KEYS)
          + "), dataset in " + ", ".join(SPLIT_BY))
SENTENCE_COLUMNS = ("ref_id", "ann_id", "image_id", "category_id", "split", "sent_id", "sent",
                    "file_name")


def refs_path(root: str | Path, dataset: str = "refcoco", split_by: str = "unc") -> Path:
    """The path of ``refs(<split_by>).p`` for ``dataset`` under ``root``."""
    if dataset not in SPLIT_BY:
        raise ValueError(f"dataset must be one of {list(SPLIT_BY)}, got {dataset!r}")
    if split_by not in SPLIT_BY[dataset]:
        raise ValueError(f"{dataset} is split by {list(SPLIT_BY[dataset])}, got {split_by!r}")
    return Path(root) / dataset / f"refs({split_by}).p"


def load_refs(root: str | Path, dataset: str = "refcoco", split_by: str = "unc"
              ) -> list[dict[str, Any]]:
    """The refs of ``dataset`` (a list of dicts, module doc), validated."""
    path = refs_path(root, dataset, split_by)
    if not path.is_file():
        raise FileNotFoundError(f"missing {path}; expected the layout {LAYOUT}")
    refs = safe_pickle.load(path)
    if not isinstance(refs, list):
        raise ValueError(f"{path} holds a {type(refs).__name__}, not a list of refs; expected "
                         f"{LAYOUT}")
    for i, ref in enumerate(refs):
        missing = [k for k in REF_KEYS if not isinstance(ref, dict) or k not in ref]
        if missing:
            raise ValueError(f"{path}: ref {i} lacks {missing}; expected {LAYOUT}")
        bad = [s for s in ref["sentences"]
               if not isinstance(s, dict) or any(k not in s for k in SENTENCE_KEYS)]
        if bad:
            raise ValueError(f"{path}: ref {ref['ref_id']} has a sentence without "
                             f"{list(SENTENCE_KEYS)}; expected {LAYOUT}")
    return refs


def refs_sentences(refs: list[dict[str, Any]], split: str | None = None) -> pd.DataFrame:
    """One row per referring expression (columns :data:`SENTENCE_COLUMNS`), optionally only the
    refs of ``split`` (``train``, ``val``, ``test``, ``testA``, ``testB``)."""
    rows = [(r["ref_id"], r["ann_id"], r["image_id"], r["category_id"], r["split"], s["sent_id"],
             s["sent"], r.get("file_name", ""))
            for r in refs if split is None or r["split"] == split for s in r["sentences"]]
    if split is not None and not rows:
        splits = sorted({r["split"] for r in refs})
        raise ValueError(f"no refs in split {split!r}; the file has splits {splits}")
    return pd.DataFrame(rows, columns=list(SENTENCE_COLUMNS))
