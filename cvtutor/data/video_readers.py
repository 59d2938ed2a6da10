"""Readers of the real video data sets' annotation formats (for readers who own the data).

Presented in the ``world_video`` chapter; each reader parses the data set's own files, returns
plain DataFrames / arrays, and raises an error naming the expected layout when a file is missing
or malformed. Nothing is downloaded. Formats:

* ActivityNet v1.3 ground truth JSON (``{"database": {id: {"subset", "duration", "annotations":
  [{"segment": [s, e], "label"}]}}}``) and results JSON (``{"results": {id: [{"label", "score",
  "segment"}]}}``);
* THUMOS14 temporal annotations: one ``<Class>_<subset>.txt`` per class, lines ``video start end``
  (seconds); ``Ambiguous_<subset>.txt`` marks ambiguous segments;
* UCF101 splits (``classInd.txt``, ``trainlist0k.txt`` with 1-based labels, ``testlist0k.txt``)
  and HMDB51 splits (``<action>_test_split<k>.txt``, lines ``video.avi flag``: 1 train, 2 test,
  0 unused);
* LLP (AVVP): ``AVVP_train.csv`` / ``AVVP_val_pd.csv`` / ``AVVP_test_pd.csv`` (tab-separated
  ``filename, event_labels`` with comma-separated labels) and ``AVVP_eval_audio.csv`` /
  ``AVVP_eval_visual.csv`` (``filename, event_labels, onset, offset``, seconds);
* DAVIS 2016/2017: ``JPEGImages/<res>/<seq>/*.jpg``, ``Annotations/<res>/<seq>/*.png`` (2017:
  palette PNGs of object ids; 2016: 0/255 foreground), ``ImageSets/2017/<subset>.txt`` (sequence
  names) or ``ImageSets/<res>/<subset>.txt`` (2016: image/annotation path pairs);
* YouTube-VOS ``meta.json`` (``{"videos": {id: {"objects": {oid: {"category", "frames"}}}}}``);
* per-video features: ``<dir>/<video_id>.npy`` or one HDF5 file with a data set per video id
  (``h5py``, imported only when needed).
Video decoding (PyAV) is not needed by the book and not included.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

PathLike = str | os.PathLike


def _file(path: PathLike, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what}: no file at {p}")
    return p


def _json(path: PathLike, what: str):
    p = _file(path, what)
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} {p} is not valid JSON: {err}") from None


# ---------------------------------------------------------------------------------------------
# temporal action detection
# ---------------------------------------------------------------------------------------------
def load_activitynet(path: PathLike, subset: str | None = None) -> pd.DataFrame:
    """ActivityNet v1.3 ground truth: one row per annotation, columns ``video_id, subset,
    duration, label, t_start, t_end, s_norm, e_norm`` (normalised by the duration)."""
    data = _json(path, "ActivityNet ground truth")
    if not isinstance(data, dict) or "database" not in data:
        raise ValueError(
            f"{path}: an ActivityNet file has a top-level 'database' object "
            "{video_id: {subset, duration, annotations: [{segment, label}]}}"
        )
    rows = []
    for vid, v in data["database"].items():
        for key in ("subset", "duration", "annotations"):
            if key not in v:
                raise ValueError(
                    f"{path}: video {vid!r} lacks {key!r} (expected subset, duration, annotations)"
                )
        if subset is not None and v["subset"] != subset:
            continue
        for a in v["annotations"]:
            seg = a.get("segment")
            if not (isinstance(seg, list) and len(seg) == 2) or "label" not in a:
                raise ValueError(
                    f"{path}: video {vid!r} has an annotation {a!r}; expected "
                    "{'segment': [start, end], 'label': name}"
                )
            d = float(v["duration"])
            rows.append(
                {
                    "video_id": vid,
                    "subset": v["subset"],
                    "duration": d,
                    "label": a["label"],
                    "t_start": float(seg[0]),
                    "t_end": float(seg[1]),
                    "s_norm": float(seg[0]) / d if d > 0 else np.nan,
                    "e_norm": float(seg[1]) / d if d > 0 else np.nan,
                }
            )
    cols = ["video_id", "subset", "duration", "label", "t_start", "t_end", "s_norm", "e_norm"]
    return pd.DataFrame(rows, columns=cols)


def load_activitynet_results(path: PathLike) -> pd.DataFrame:
    """An ActivityNet detection results file: columns ``video_id, label, t_start, t_end, score``."""
    data = _json(path, "ActivityNet results")
    if not isinstance(data, dict) or "results" not in data:
        raise ValueError(
            f"{path}: a results file has a top-level 'results' object "
            "{video_id: [{label, score, segment}]}"
        )
    rows = []
    for vid, dets in data["results"].items():
        for d in dets:
            if not {"label", "score", "segment"} <= set(d):
                raise ValueError(f"{path}: result {d!r} of {vid!r} needs label, score, segment")
            rows.append(
                {
                    "video_id": vid,
                    "label": d["label"],
                    "t_start": float(d["segment"][0]),
                    "t_end": float(d["segment"][1]),
                    "score": float(d["score"]),
                }
            )
    return pd.DataFrame(rows, columns=["video_id", "label", "t_start", "t_end", "score"])


def load_thumos14(
    annotation_dir: PathLike, subset: str = "test", keep_ambiguous: bool = False
) -> pd.DataFrame:
    """THUMOS14 temporal annotations of ``subset`` (``val`` or ``test``): columns ``video_id,
    label, t_start, t_end`` (seconds); the ``Ambiguous`` class is left out unless asked for."""
    if subset not in ("val", "test"):
        raise ValueError(f"subset must be 'val' or 'test', got {subset!r}")
    root = Path(annotation_dir)
    files = sorted(root.glob(f"*_{subset}.txt")) if root.is_dir() else []
    if not files:
        raise FileNotFoundError(
            f"THUMOS14 expects <Class>_{subset}.txt files (lines 'video start end') " f"in {root}"
        )
    rows = []
    for f in files:
        label = f.name[: -len(f"_{subset}.txt")]
        if label == "Ambiguous" and not keep_ambiguous:
            continue
        for n, line in enumerate(f.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3:
                raise ValueError(f"{f}:{n}: expected 'video_id start end', got {line!r}")
            rows.append(
                {
                    "video_id": parts[0],
                    "label": label,
                    "t_start": float(parts[1]),
                    "t_end": float(parts[2]),
                }
            )
    return pd.DataFrame(rows, columns=["video_id", "label", "t_start", "t_end"])


# ---------------------------------------------------------------------------------------------
# action recognition splits
# ---------------------------------------------------------------------------------------------
def load_ucf101_split(split_dir: PathLike, split: int = 1) -> pd.DataFrame:
    """UCF101's train/test list ``split`` (1-3): columns ``path, label`` (0-based, from
    ``classInd.txt``), ``class_name``, ``subset``."""
    if split not in (1, 2, 3):
        raise ValueError(f"UCF101 has splits 1, 2, 3; got {split}")
    root = Path(split_dir)
    classes = {}
    for n, line in enumerate(
        _file(root / "classInd.txt", "UCF101 classInd.txt").read_text().splitlines(), 1
    ):
        if line.strip():
            parts = line.split()
            if len(parts) != 2 or not parts[0].isdigit():
                raise ValueError(f"classInd.txt:{n}: expected 'index ClassName', got {line!r}")
            classes[parts[1]] = int(parts[0]) - 1
    rows = []
    for subset in ("train", "test"):
        f = _file(root / f"{subset}list0{split}.txt", f"UCF101 {subset}list0{split}.txt")
        for line in f.read_text().splitlines():
            if not line.strip():
                continue
            path = line.split()[0]
            name = path.split("/")[0]
            if name not in classes:
                raise ValueError(f"{f}: class {name!r} of {path!r} is not in classInd.txt")
            rows.append(
                {"path": path, "label": classes[name], "class_name": name, "subset": subset}
            )
    return pd.DataFrame(rows, columns=["path", "label", "class_name", "subset"])


def load_hmdb51_split(split_dir: PathLike, split: int = 1) -> pd.DataFrame:
    """HMDB51's split ``split`` (1-3): columns ``video, label`` (0-based, actions sorted by name),
    ``class_name``, ``subset`` (train / test; flag 0, unused, is dropped)."""
    if split not in (1, 2, 3):
        raise ValueError(f"HMDB51 has splits 1, 2, 3; got {split}")
    files = sorted(Path(split_dir).glob(f"*_test_split{split}.txt"))
    if not files:
        raise FileNotFoundError(
            f"HMDB51 expects <action>_test_split{split}.txt files in {split_dir}"
        )
    rows = []
    for label, f in enumerate(files):
        name = f.name[: -len(f"_test_split{split}.txt")]
        for n, line in enumerate(f.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise ValueError(f"{f}:{n}: expected 'video.avi 0|1|2', got {line!r}")
            if parts[1] != "0":
                rows.append(
                    {
                        "video": parts[0],
                        "label": label,
                        "class_name": name,
                        "subset": "train" if parts[1] == "1" else "test",
                    }
                )
    return pd.DataFrame(rows, columns=["video", "label", "class_name", "subset"])


# ---------------------------------------------------------------------------------------------
# LLP (audio-visual video parsing)
# ---------------------------------------------------------------------------------------------
def _llp_csv(path: PathLike, columns: Sequence[str]) -> pd.DataFrame:
    df = pd.read_csv(_file(path, "LLP csv"), sep="\t", header=0)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: an LLP file is tab-separated with the header {list(columns)}; "
            f"missing {missing} (found {list(df.columns)})"
        )
    return df


def load_llp_weak(path: PathLike) -> pd.DataFrame:
    """``AVVP_train.csv`` / ``AVVP_val_pd.csv`` / ``AVVP_test_pd.csv``: columns ``filename`` and
    ``labels`` (a list of event names per clip)."""
    df = _llp_csv(path, ("filename", "event_labels"))
    return pd.DataFrame(
        {
            "filename": df["filename"].astype(str),
            "labels": [str(s).split(",") for s in df["event_labels"]],
        }
    )


def load_llp_dense(path: PathLike) -> pd.DataFrame:
    """``AVVP_eval_audio.csv`` / ``AVVP_eval_visual.csv``: ``filename, label, onset, offset``
    (seconds, integer snippet boundaries)."""
    df = _llp_csv(path, ("filename", "event_labels", "onset", "offset"))
    out = pd.DataFrame(
        {
            "filename": df["filename"].astype(str),
            "label": df["event_labels"].astype(str),
            "onset": df["onset"].astype(int),
            "offset": df["offset"].astype(int),
        }
    )
    bad = out[(out.onset < 0) | (out.offset < out.onset)]
    if len(bad):
        raise ValueError(f"{path}: events need 0 <= onset <= offset, e.g. {bad.iloc[0].to_dict()}")
    return out


def llp_dense_matrix(
    events: pd.DataFrame, classes: Sequence[str], filenames: Sequence[str], snippets: int = 10
) -> np.ndarray:
    """Dense labels ``(N, C, T)`` of ``filenames`` from :func:`load_llp_dense` rows: snippet t of
    an event ``[onset, offset)`` is positive (the AVVP evaluation's convention)."""
    index = {c: i for i, c in enumerate(classes)}
    rows = {f: i for i, f in enumerate(filenames)}
    out = np.zeros((len(filenames), len(classes), snippets), dtype=bool)
    for r in events.itertuples():
        if r.filename not in rows:
            continue
        if r.label not in index:
            raise ValueError(
                f"event label {r.label!r} of {r.filename!r} is not one of the classes given"
            )
        out[rows[r.filename], index[r.label], r.onset : min(r.offset, snippets)] = True
    return out


# ---------------------------------------------------------------------------------------------
# video object segmentation
# ---------------------------------------------------------------------------------------------
def davis_sequences(
    root: PathLike, subset: str = "val", year: int = 2017, resolution: str = "480p"
) -> list[str]:
    """The sequence names of a DAVIS subset, from ``ImageSets`` (2017: one name a line; 2016:
    image/annotation path pairs, sequences in order of first appearance)."""
    root = Path(root)
    if year == 2017:
        f = _file(root / "ImageSets" / "2017" / f"{subset}.txt", "DAVIS 2017 ImageSets")
        return [s.strip() for s in f.read_text().splitlines() if s.strip()]
    if year == 2016:
        f = _file(root / "ImageSets" / resolution / f"{subset}.txt", "DAVIS 2016 ImageSets")
        seqs: list[str] = []
        for line in f.read_text().splitlines():
            if line.strip():
                parts = Path(line.split()[0]).parts
                if len(parts) < 2:
                    raise ValueError(
                        f"{f}: expected '/JPEGImages/<res>/<seq>/<frame>.jpg ...', got {line!r}"
                    )
                if parts[-2] not in seqs:
                    seqs.append(parts[-2])
        return seqs
    raise ValueError(f"year must be 2016 or 2017, got {year}")


def load_davis_sequence(
    root: PathLike, sequence: str, year: int = 2017, resolution: str = "480p"
) -> dict[str, np.ndarray]:
    """One DAVIS sequence: ``frames (T, H, W, 3)`` uint8, ``names`` of the frames, ``masks (A, H,
    W)`` object ids of the ``A`` frames that have an annotation PNG (2017: palette indices, 255 =
    void; 2016: foreground = 1) and ``annotated``, their names (test-dev: the first frame only)."""
    from PIL import Image

    root = Path(root)
    img_dir = root / "JPEGImages" / resolution / sequence
    ann_dir = root / "Annotations" / resolution / sequence
    images = sorted(img_dir.glob("*.jpg"))
    if not images:
        raise FileNotFoundError(
            f"DAVIS expects JPEGImages/{resolution}/{sequence}/*.jpg under {root}"
        )
    frames = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in images])
    names = [p.stem for p in images]
    masks, annotated = [], []
    for name in names:
        p = ann_dir / f"{name}.png"
        if not p.is_file():
            continue
        im = Image.open(p)
        if year == 2017 and im.mode != "P":
            raise ValueError(
                f"{p}: DAVIS 2017 annotations are palette (mode 'P') PNGs of object ids, "
                f"got mode {im.mode!r}"
            )
        a = np.asarray(im)
        if a.ndim == 3:
            a = a[..., 0]
        masks.append(a.astype(np.uint8) if year == 2017 else (a > 0).astype(np.uint8))
        annotated.append(name)
    if masks and masks[0].shape != frames.shape[1:3]:
        raise ValueError(
            f"{sequence}: masks {masks[0].shape} and frames {frames.shape[1:3]} differ in size"
        )
    return {
        "frames": frames,
        "masks": np.stack(masks) if masks else np.zeros((0,) + frames.shape[1:3], np.uint8),
        "names": names,
        "annotated": annotated,
    }


def load_youtube_vos_meta(path: PathLike) -> pd.DataFrame:
    """YouTube-VOS ``meta.json``: one row per object, ``video_id, object_id, category, frames``
    (the frame names where it is annotated) and ``first_frame``."""
    data = _json(path, "YouTube-VOS meta.json")
    if not isinstance(data, dict) or "videos" not in data:
        raise ValueError(
            f"{path}: meta.json has a top-level 'videos' object "
            "{video_id: {objects: {object_id: {category, frames}}}}"
        )
    rows = []
    for vid, v in data["videos"].items():
        if "objects" not in v:
            raise ValueError(f"{path}: video {vid!r} lacks 'objects'")
        for oid, o in v["objects"].items():
            frames = list(o.get("frames", []))
            rows.append(
                {
                    "video_id": vid,
                    "object_id": int(oid),
                    "category": o.get("category"),
                    "frames": frames,
                    "first_frame": min(frames) if frames else None,
                }
            )
    return pd.DataFrame(
        rows, columns=["video_id", "object_id", "category", "frames", "first_frame"]
    )


# ---------------------------------------------------------------------------------------------
# per-video features
# ---------------------------------------------------------------------------------------------
def load_features(source: PathLike, video_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Pre-extracted features per video: ``source`` is a directory of ``<video_id>.npy`` files or
    an HDF5 file (``.h5``/``.hdf5``) with one data set per video id. Returns ``{id: (T, D)}``."""
    src = Path(source)
    out = {}
    if src.is_dir():
        for vid in video_ids:
            p = src / f"{vid}.npy"
            if not p.is_file():
                raise FileNotFoundError(f"features: expected {vid}.npy in {src}")
            out[vid] = np.load(p, allow_pickle=False)
        return out
    if src.suffix in (".h5", ".hdf5"):
        _file(src, "HDF5 features")
        try:
            import h5py
        except ImportError:
            raise ImportError(
                "reading HDF5 features needs h5py (pip install h5py); "
                "or convert them to one .npy per video"
            ) from None
        with h5py.File(src, "r") as f:
            for vid in video_ids:
                if vid not in f:
                    raise KeyError(f"{src}: no data set {vid!r} (it holds {sorted(f)[:5]}...)")
                out[vid] = np.asarray(f[vid])
        return out
    raise FileNotFoundError(
        f"features: {src} is neither a directory of <video_id>.npy files nor an .h5 file"
    )
