"""Readers for the interactive-segmentation benchmarks: PASCAL VOC instances, image + mask folders
(GrabCut, Berkeley) and RefCOCO referring targets (phrase + mask).

Chapter ``phraseclick`` (PhraseClick, ECCV 2020 E25). Each reader returns one *target* per
object: the image (H, W, 3) uint8, the object's mask (H, W) bool, the pixels to ignore (H, W)
bool and, where the data set has one, a phrase. Expected layouts::

    VOC:       root/JPEGImages/<id>.jpg, root/SegmentationObject/<id>.png (palette PNG: 0
               background, k = instance k, 255 void), root/SegmentationClass/<id>.png,
               root/ImageSets/Segmentation/<split>.txt (one id a line)
    folders:   images/<name>.{jpg,png,bmp}, masks/<name>.{png,bmp} (0 background, 255 object;
               GrabCut's 128 marks the uncertain band, ignored)
    RefCOCO:   root/<dataset>/refs(<split_by>).p + root/<dataset>/instances.json
               (:mod:`cvtutor.data.refcoco`; the masks decoded by :mod:`cvtutor.data.coco`)

The paper's own phrase annotations of GrabCut and Berkeley are not public: their targets carry no
phrase; VOC's phrase is the class name, as in the paper.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cvtutor.data import refcoco
from cvtutor.data.coco import read_coco

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor")
VOC_LAYOUT = ("root/JPEGImages/<id>.jpg, root/SegmentationObject/<id>.png, "
              "root/SegmentationClass/<id>.png, root/ImageSets/Segmentation/<split>.txt")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
MASK_SUFFIXES = (".png", ".bmp")


def _image(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _indices(path: Path) -> np.ndarray:
    """A palette (or grey) PNG's raw indices, (H, W) uint8."""
    with Image.open(path) as im:
        if im.mode not in ("P", "L"):
            raise ValueError(f"{path}: expected a palette or grey PNG of indices, got mode "
                             f"{im.mode!r}")
        return np.asarray(im)


def read_voc_instances(root: str | Path, split: str = "val") -> list[dict]:
    """One target per object instance of VOC's ``split``: ``image``, ``mask``, ``ignore`` (the
    void band, 255), ``id`` (the image id), ``instance`` (its index in the PNG), ``category``
    and ``phrase`` (the class name: the majority class of its pixels)."""
    root = Path(root)
    ids_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not ids_file.is_file():
        raise FileNotFoundError(f"missing {ids_file}; expected the VOC layout {VOC_LAYOUT}")
    out = []
    for image_id in ids_file.read_text().split():
        paths = (root / "JPEGImages" / f"{image_id}.jpg",
                 root / "SegmentationObject" / f"{image_id}.png",
                 root / "SegmentationClass" / f"{image_id}.png")
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"missing {missing}; expected the VOC layout {VOC_LAYOUT}")
        image, obj, cls = _image(paths[0]), _indices(paths[1]), _indices(paths[2])
        if obj.shape != image.shape[:2] or cls.shape != obj.shape:
            raise ValueError(f"{image_id}: image {image.shape[:2]}, SegmentationObject "
                             f"{obj.shape} and SegmentationClass {cls.shape} must have one size")
        for k in sorted(set(np.unique(obj).tolist()) - {0, 255}):
            mask = obj == k
            labels = cls[mask]
            labels = labels[labels < len(VOC_CLASSES)]
            c = int(np.bincount(labels, minlength=len(VOC_CLASSES)).argmax()) if labels.size else 0
            out.append({"id": image_id, "instance": int(k), "image": image, "mask": mask,
                        "ignore": obj == 255, "category": VOC_CLASSES[c],
                        "phrase": VOC_CLASSES[c]})
    return out


def read_mask_folder(images: str | Path, masks: str | Path) -> list[dict]:
    """One target per image of a GrabCut / Berkeley style folder pair, matched by file stem:
    ``name``, ``image``, ``mask`` (value > 128), ``ignore`` (value 128, GrabCut's uncertain band),
    ``phrase`` None. Every image needs a mask of its size."""
    images, masks = Path(images), Path(masks)
    for d in (images, masks):
        if not d.is_dir():
            raise FileNotFoundError(f"missing folder {d}; expected images/<name>.jpg|png|bmp "
                                    "and masks/<name>.png|bmp")
    by_stem = {p.stem: p for p in sorted(masks.iterdir()) if p.suffix.lower() in MASK_SUFFIXES}
    out = []
    for p in sorted(images.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if p.stem not in by_stem:
            raise FileNotFoundError(f"no mask for {p.name} in {masks} (expected "
                                    f"{p.stem}.png or {p.stem}.bmp)")
        image = _image(p)
        with Image.open(by_stem[p.stem]) as im:
            m = np.asarray(im.convert("L"))
        if m.shape != image.shape[:2]:
            raise ValueError(f"{p.name}: image {image.shape[:2]} and mask {m.shape} differ in size")
        out.append({"name": p.stem, "image": image, "mask": m > 128, "ignore": m == 128,
                    "phrase": None})
    if not out:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {images}")
    return out


def read_refcoco_targets(root: str | Path, dataset: str = "refcoco", split_by: str = "unc",
                         split: str | None = "testA") -> list[dict]:
    """One target per referring expression of ``split``: ``ref_id``, ``ann_id``, ``image_id``,
    ``phrase`` (the sentence), ``mask`` (H, W) bool from ``instances.json`` (images themselves are
    COCO's, not read here). An ``ann_id`` absent from ``instances.json`` raises a clear error."""
    refs = refcoco.load_refs(root, dataset, split_by)
    path = Path(root) / dataset / "instances.json"
    if not path.is_file():
        raise FileNotFoundError(f"missing {path}; expected the layout {refcoco.LAYOUT} next to "
                                "the COCO instances.json")
    coco = read_coco(path)
    known = set(coco.annotations["id"].astype(int))
    out = []
    for row in refcoco.refs_sentences(refs, split).itertuples(index=False):
        if int(row.ann_id) not in known:
            raise ValueError(f"{path} has no annotation {row.ann_id} (ref {row.ref_id})")
        out.append({"ref_id": int(row.ref_id), "ann_id": int(row.ann_id),
                    "image_id": int(row.image_id), "phrase": row.sent,
                    "mask": coco.mask(row.ann_id)})
    return out
