"""Readers of the real data sets the translation chapters name, for readers who have them.

Nothing is downloaded; each reader checks the expected layout and says what it expected.

* image folders: CycleGAN's unpaired ``trainA/ trainB/ testA/ testB/`` layout
  (:func:`unpaired_folders`), paired folders matched by file stem (:func:`paired_folders`),
  pix2pix's side-by-side ``A|B`` images (:func:`split_ab`), :func:`load_images`;
* Cityscapes ``*_labelIds.png`` -> the 19 train ids (:data:`CITYSCAPES_TRAIN_IDS`, the table of
  the official ``cityscapesscripts/helpers/labels.py``; 255 = ignored);
* ADE20K SceneParsing annotation PNGs: 0 = "other" (ignored), 1..150 the 150 classes
  (:func:`ade20k_labels`);
* BDD100K label JSON (a list of frames with ``attributes`` weather/scene/timeofday and
  ``labels`` with ``box2d``): :func:`read_bdd100k`; its day/night split
  (:func:`bdd100k_day_night`) and train-id segmentation PNGs (:func:`read_bdd100k_seg`);
* Alderley Day/Night frame pairs (:func:`read_alderley_pairs`, ForkGAN E10);
* face-age file names: UTKFace ``age_gender_race_date.jpg`` and CACD ``age_name_index.jpg``
  (:func:`parse_utkface`, :func:`parse_cacd`).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")

# Cityscapes label id (0..33) -> train id (0..18, 255 ignored); official labels.py
CITYSCAPES_TRAIN_IDS = {
    0: 255, 1: 255, 2: 255, 3: 255, 4: 255, 5: 255, 6: 255, 7: 0, 8: 1, 9: 255, 10: 255, 11: 2,
    12: 3, 13: 4, 14: 255, 15: 255, 16: 255, 17: 5, 18: 255, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 29: 255, 30: 255, 31: 16, 32: 17, 33: 18}
CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                      "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
                      "truck", "bus", "train", "motorcycle", "bicycle")
IGNORE = 255


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of ``folder`` (suffixes :data:`IMAGE_SUFFIXES`), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"expected an image folder at {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def unpaired_folders(root: str | os.PathLike, split: str = "train") -> dict[str, list[Path]]:
    """CycleGAN's layout: ``root/{split}A`` and ``root/{split}B``, each a folder of images of one
    domain (no correspondence between them). Returns ``{"A": [...], "B": [...]}``."""
    root = Path(root)
    out = {}
    for side in "AB":
        folder = root / f"{split}{side}"
        if not folder.is_dir():
            raise FileNotFoundError(f"expected CycleGAN folders {root}/{split}A and "
                                    f"{root}/{split}B; {folder} is missing")
        out[side] = image_files(folder)
        if not out[side]:
            raise FileNotFoundError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return out


def paired_folders(folder_a: str | os.PathLike, folder_b: str | os.PathLike
                   ) -> list[tuple[Path, Path]]:
    """Pairs of images with the same file stem in two folders; every image must have its
    partner (a clear error lists the first unmatched stems)."""
    a = {p.stem: p for p in image_files(folder_a)}
    b = {p.stem: p for p in image_files(folder_b)}
    lonely = sorted(set(a) ^ set(b))
    if lonely:
        raise ValueError(f"paired folders need the same file stems on both sides; unmatched: "
                         f"{lonely[:5]}{' ...' if len(lonely) > 5 else ''}")
    return [(a[k], b[k]) for k in sorted(a)]


def load_images(paths, size: int | None = None) -> torch.Tensor:
    """(N, 3, H, W) float images in [0, 1] (RGB; resized to ``size`` x ``size`` if given, else
    all must share one size)."""
    from PIL import Image

    arrs = []
    for p in paths:
        im = Image.open(p).convert("RGB")
        if size is not None:
            im = im.resize((size, size), Image.BILINEAR)
        arrs.append(np.asarray(im, dtype=np.float32) / 255)
    if len({a.shape for a in arrs}) > 1:
        raise ValueError("images differ in size; pass size= to resize them")
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()


def split_ab(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pix2pix's combined images (N, C, H, 2W), A left and B right -> (A, B), each (N, C, H, W)."""
    if images.ndim != 4 or images.shape[-1] % 2:
        raise ValueError(f"expected (N, C, H, 2W) side-by-side A|B images, got "
                         f"{tuple(images.shape)}")
    w = images.shape[-1] // 2
    return images[..., :w], images[..., w:]


def _read_png(path: str | os.PathLike) -> np.ndarray:
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected a label PNG at {path}")
    arr = np.asarray(Image.open(path))
    if arr.ndim != 2:
        raise ValueError(f"{path}: a label PNG must be single-channel (H, W), got {arr.shape}")
    return arr


def cityscapes_train_ids(label_ids) -> np.ndarray:
    """Cityscapes label ids (..., values 0..33) -> train ids (uint8; 0..18, 255 ignored)."""
    ids = np.asarray(label_ids)
    if ids.size and (ids.min() < 0 or ids.max() > 33):
        raise ValueError(f"Cityscapes labelIds lie in 0..33, got values in "
                         f"[{ids.min()}, {ids.max()}] (a trainIds or colour image?)")
    lut = np.array([CITYSCAPES_TRAIN_IDS[i] for i in range(34)], dtype=np.uint8)
    return lut[ids]


def read_cityscapes_label(path: str | os.PathLike) -> np.ndarray:
    """A ``*_gtFine_labelIds.png`` as (H, W) uint8 train ids."""
    return cityscapes_train_ids(_read_png(path))


def ade20k_labels(annotation, reduce_zero: bool = True) -> np.ndarray:
    """ADE20K SceneParsing annotation values (0 = other, 1..150 the classes) -> (H, W) uint8:
    with ``reduce_zero`` the classes become 0..149 and "other" 255 (ignored), the usual
    training convention; else the values are returned as they are."""
    a = np.asarray(annotation)
    if a.size and (a.min() < 0 or a.max() > 150):
        raise ValueError(f"ADE20K SceneParsing annotations lie in 0..150 (0 = other), got "
                         f"values in [{a.min()}, {a.max()}]")
    a = a.astype(np.int64)
    return np.where(a == 0, IGNORE, a - 1).astype(np.uint8) if reduce_zero else a.astype(np.uint8)


def read_ade20k_label(path: str | os.PathLike, reduce_zero: bool = True) -> np.ndarray:
    """An ADE20K SceneParsing ``annotations/*.png`` through :func:`ade20k_labels`."""
    return ade20k_labels(_read_png(path), reduce_zero)


def read_bdd100k(path: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """BDD100K label JSON -> (frames, boxes): ``frames`` one row per image (``name``,
    ``weather``, ``scene``, ``timeofday``), ``boxes`` one row per ``box2d`` label (``name``,
    ``category``, ``x1, y1, x2, y2``). ForkGAN's domains are ``timeofday`` and ``weather``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected a BDD100K label JSON at {path}")
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "frames" in data:          # the Scalabel export
        data = data["frames"]
    if not isinstance(data, list) or not all(isinstance(f, dict) and "name" in f for f in data):
        raise ValueError(f"{path}: expected a list of frames, each with 'name', 'attributes' "
                         f"and 'labels' (the BDD100K label format)")
    frames, boxes = [], []
    for f in data:
        att = f.get("attributes") or {}
        frames.append({"name": f["name"], "weather": att.get("weather"),
                       "scene": att.get("scene"), "timeofday": att.get("timeofday")})
        for lab in f.get("labels") or []:
            if "box2d" in lab:
                b = lab["box2d"]
                boxes.append({"name": f["name"], "category": lab.get("category"),
                              **{k: float(b[k]) for k in ("x1", "y1", "x2", "y2")}})
    return (pd.DataFrame(frames, columns=["name", "weather", "scene", "timeofday"]),
            pd.DataFrame(boxes, columns=["name", "category", "x1", "y1", "x2", "y2"]))


_UTK = re.compile(r"^(\d+)_([01])_([0-4])_(\d+)\.jpg(\.chip\.jpg)?$", re.IGNORECASE)
_CACD = re.compile(r"^(\d+)_(.+)_(\d+)\.jpg$", re.IGNORECASE)
UTK_GENDERS = ("male", "female")
UTK_RACES = ("White", "Black", "Asian", "Indian", "Others")


def parse_utkface(name: str) -> dict:
    """UTKFace ``[age]_[gender]_[race]_[date&time].jpg`` -> ``{"age", "gender", "race",
    "date"}`` (gender 0 male, 1 female; race 0..4 as :data:`UTK_RACES`)."""
    m = _UTK.match(Path(name).name)
    if not m:
        raise ValueError(f"not a UTKFace file name [age]_[gender 0/1]_[race 0-4]_[date].jpg: "
                         f"{name!r}")
    return {"age": int(m[1]), "gender": UTK_GENDERS[int(m[2])], "race": UTK_RACES[int(m[3])],
            "date": m[4]}


def parse_cacd(name: str) -> dict:
    """CACD ``[age]_[Name_Parts]_[index].jpg`` -> ``{"age", "name", "index"}``."""
    m = _CACD.match(Path(name).name)
    if not m:
        raise ValueError(f"not a CACD file name [age]_[name]_[index].jpg: {name!r}")
    return {"age": int(m[1]), "name": m[2], "index": int(m[3])}


_FGNET = re.compile(r"^(\d{3})A(\d{2})([a-z]?)\.jpg$", re.IGNORECASE)


def parse_fgnet(name: str) -> dict:
    """FG-NET ``[subject 3 digits]A[age 2 digits][optional letter].JPG`` (``001A02.JPG``,
    ``010A07a.JPG``) -> ``{"subject", "age", "variant"}`` (E06's test set)."""
    m = _FGNET.match(Path(name).name)
    if not m:
        raise ValueError(f"not an FG-NET file name [subject]A[age][letter].JPG, e.g. "
                         f"001A02.JPG: {name!r}")
    return {"subject": int(m[1]), "age": int(m[2]), "variant": m[3]}


def face_ages(folder: str | os.PathLike, kind: str) -> pd.DataFrame:
    """The parsed file names of a UTKFace (``kind="utkface"``), CACD (``"cacd"``) or FG-NET
    (``"fgnet"``) folder, one row per image with its ``path``; an empty folder raises
    ``ValueError`` naming the layout."""
    parse = {"utkface": parse_utkface, "cacd": parse_cacd, "fgnet": parse_fgnet}
    if kind not in parse:
        raise ValueError(f"kind must be one of {tuple(parse)}, got {kind!r}")
    files = image_files(folder)
    if not files:
        raise ValueError(f"no images in {folder!s}: expected a flat folder of {kind} JPGs")
    return pd.DataFrame([{"path": p, **parse[kind](p.name)} for p in files])


# ---------------------------------------------------------------------------------------------
# ForkGAN (E10): Alderley day/night frame pairs, BDD100K day/night splits and segmentation PNGs
# ---------------------------------------------------------------------------------------------
_FRAME_NUMBER = re.compile(r"(\d+)$")


def _numbered_frames(folder: Path) -> dict[int, Path]:
    out = {}
    for p in image_files(folder):
        m = _FRAME_NUMBER.search(p.stem)
        if m:
            out[int(m.group(1))] = p
    if not out:
        raise FileNotFoundError(f"{folder} holds no numbered frames (e.g. Image00001.jpg)")
    return out


def read_alderley_pairs(root: str | os.PathLike, night: str = "FRAMESA", day: str = "FRAMESB",
                        matches: str = "framematches.csv") -> pd.DataFrame:
    """Alderley Day/Night (Milford & Wyeth 2012; ForkGAN's Table 1): two frame folders of one
    route, the rainy night (``root/FRAMESA``) and the sunny day (``root/FRAMESB``), frames named
    ``Image00001.jpg`` ..., and the ground-truthed correspondences ``root/framematches.csv``: one
    row per pair, two integer columns (night frame number, day frame number), an optional header
    row. (Check these names against your copy; pass ``night``, ``day``, ``matches`` if they
    differ.) Returns one row per pair: ``night_frame``, ``day_frame``, ``night``, ``day``
    (paths), ``split`` ("train" for the first four fifths of the route, "test" for the rest, as
    in ForkGAN Sect. 4.1)."""
    root = Path(root)
    folders = {k: root / v for k, v in (("night", night), ("day", day))}
    for k, f in folders.items():
        if not f.is_dir():
            raise FileNotFoundError(f"expected Alderley's {k} frames in {f} (layout: "
                                    f"{root}/{night}/, {root}/{day}/, {root}/{matches})")
    csv = root / matches
    if not csv.is_file():
        raise FileNotFoundError(f"expected Alderley's frame correspondences at {csv}: two "
                                f"integer columns (night frame, day frame)")
    rows = []
    for i, line in enumerate(csv.read_text().splitlines()):
        parts = [p for p in re.split(r"[,;\s]+", line.strip()) if p]
        if not parts:
            continue
        try:
            a, b = (int(float(p)) for p in parts[:2])
        except ValueError:
            if i == 0:
                continue                          # a header row
            raise ValueError(f"{csv}, line {i + 1}: expected two frame numbers, got "
                             f"{line!r}") from None
        if len(parts) < 2:
            raise ValueError(f"{csv}, line {i + 1}: expected two frame numbers, got {line!r}")
        rows.append((a, b))
    if not rows:
        raise ValueError(f"{csv} lists no frame pairs")
    frames = {k: _numbered_frames(f) for k, f in folders.items()}
    missing = [(a, b) for a, b in rows if a not in frames["night"] or b not in frames["day"]]
    if missing:
        raise ValueError(f"{csv}: {len(missing)} pairs name frames that are not in the folders, "
                         f"first {missing[:3]}")
    df = pd.DataFrame(rows, columns=["night_frame", "day_frame"])
    df["night"] = [frames["night"][a] for a in df.night_frame]
    df["day"] = [frames["day"][b] for b in df.day_frame]
    cut = round(0.8 * len(df))
    df["split"] = ["train" if i < cut else "test" for i in range(len(df))]
    return df


BDD100K_TIMES = ("daytime", "night", "dawn/dusk")


def bdd100k_day_night(frames: pd.DataFrame, weather: str | None = None
                      ) -> dict[str, pd.DataFrame]:
    """ForkGAN's BDD100K domains from :func:`read_bdd100k`'s frames: ``{"day": ..., "night":
    ...}`` by ``timeofday`` ("daytime" / "night"; dawn/dusk and undefined frames dropped),
    optionally only one ``weather`` (e.g. "rainy")."""
    need = {"name", "timeofday", "weather"}
    if not need <= set(frames.columns):
        raise ValueError(f"frames need the columns {sorted(need)} (read_bdd100k's output), got "
                         f"{list(frames.columns)}")
    f = frames if weather is None else frames[frames.weather == weather]
    return {"day": f[f.timeofday == "daytime"].reset_index(drop=True),
            "night": f[f.timeofday == "night"].reset_index(drop=True)}


def read_bdd100k_seg(path: str | os.PathLike) -> np.ndarray:
    """A BDD100K semantic segmentation label PNG (``seg/labels/{train,val}/*_train_id.png``):
    (H, W) uint8, the 19 Cityscapes train ids (:data:`CITYSCAPES_CLASSES`) and 255 = ignored."""
    arr = _read_png(path)
    bad = np.setdiff1d(np.unique(arr), np.r_[np.arange(19), IGNORE])
    if bad.size:
        raise ValueError(f"{path}: BDD100K train-id masks hold 0..18 and 255, found "
                         f"{bad[:5].tolist()} (a colour or label-id image?)")
    return arr.astype(np.uint8)
