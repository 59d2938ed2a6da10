"""The scenes as data: an object table for the language and the metrics, and a COCO data set.

Chapter ``world_scenes2d``. :func:`object_table` lists every valid object of a batch with its
words (category, colour, texture, size), box, centre, depth, visible fraction, parts and the
planted labels; :func:`to_coco` writes instances (visible RLE masks, boxes, keypoints with
visibility, the attributes as extra keys, duplicate annotations where the duplicate bias planted
them) and one caption per image, through :func:`cvtutor.data.coco.coco_dataset`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cvtutor.data import language as L
from cvtutor.data import raster as R
from cvtutor.data.coco import coco_dataset
from cvtutor.data.scenes2d import catalog as K
from cvtutor.data.scenes2d.generate import DUPLICATE_NAMES, Scenes2D


def object_table(scenes: Scenes2D, layers: R.Layers | None = None) -> pd.DataFrame:
    """One row per valid object: ``image`` (0-based scene index), ``slot``, ``category``,
    ``supercategory``, ``color``, ``texture``, ``size`` (word), ``x, y, w, h``, ``cx, cy``,
    ``area`` (box area / image area), ``z``, ``parts`` (tuple of part words), ``gender``,
    ``gender_label``, ``lookalike_of``, ``duplicate``, ``scene``, ``region``; with ``layers`` of
    the same scenes also ``visible`` (visible pixels / amodal pixels)."""
    v = scenes.valid.cpu().numpy()
    img, slot = np.nonzero(v)
    get = lambda t: t.cpu().numpy()[img, slot]  # noqa: E731
    boxes = scenes.boxes.cpu().numpy().astype(np.float64)[img, slot]
    cat = get(scenes.category)
    tpl = get(scenes.template)
    area = boxes[:, 2] * boxes[:, 3] / scenes.size**2
    parts = [tuple(dict.fromkeys(p.name for p in K.TEMPLATES[t] if p.name)) for t in tpl]
    df = pd.DataFrame(
        {
            "image": img,
            "slot": slot,
            "category": np.asarray(K.NAMES)[cat],
            "supercategory": [K.CATEGORIES[c].supercategory for c in cat],
            "color": np.asarray(K.COLOR_NAMES)[get(scenes.color)],
            "texture": np.asarray(R.TEXTURES)[get(scenes.texture)],
            "size": [L.size_word(a) for a in area],
            "x": boxes[:, 0],
            "y": boxes[:, 1],
            "w": boxes[:, 2],
            "h": boxes[:, 3],
            "cx": boxes[:, 0] + boxes[:, 2] / 2,
            "cy": boxes[:, 1] + boxes[:, 3] / 2,
            "area": area,
            "z": get(scenes.z),
            "parts": parts,
            "gender": get(scenes.gender),
            "gender_label": get(scenes.gender_label),
            "lookalike_of": get(scenes.lookalike_of),
            "duplicate": get(scenes.duplicate),
            "scene": np.asarray(K.SCENE_NAMES)[scenes.scene.cpu().numpy()[img]],
            "region": np.asarray(K.REGIONS)[scenes.region.cpu().numpy()[img]],
        }
    )
    if layers is not None:
        vis = layers.visible_masks.sum((2, 3)).cpu().numpy()[img, slot]
        amo = layers.masks.sum((2, 3)).cpu().numpy()[img, slot]
        df["visible"] = vis / np.maximum(amo, 1)
    return df


def to_coco(scenes: Scenes2D, layers: R.Layers, image_offset: int = 1) -> dict:
    """The scenes (with their rendered ``layers``) as a COCO data set dict: image ids
    ``image_offset + i``; categories 1..C in :data:`catalog.NAMES` order (with super-category and
    keypoint names); one annotation per object with visible pixels (segmentation: the visible
    mask as RLE; ``bbox`` its tight box; ``amodal_bbox`` the object's whole box; ``color``,
    ``texture``, ``size``, ``slot``, ``z``, ``gender`` (the label) as extra keys), plus a second
    one under the look-alike name for planted duplicates (``duplicate_of``); one caption per image
    (``language``: ``local`` or ``visitor`` in the image record)."""
    table = object_table(scenes, layers)
    masks = layers.visible_masks.cpu().numpy()
    xy, defined = scenes.keypoints()
    xy, defined = xy.cpu().numpy(), defined.cpu().numpy()
    ids = layers.ids.cpu().numpy()
    size = scenes.size
    images, categories = _image_records(scenes, image_offset), _category_records()
    anns = []
    for r in table.itertuples(index=False):
        mask = masks[r.image, r.slot]
        if not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        bbox = [
            float(xs.min()),
            float(ys.min()),
            float(xs.max() + 1 - xs.min()),
            float(ys.max() + 1 - ys.min()),
        ]
        ann = {
            "id": len(anns) + 1,
            "image_id": image_offset + int(r.image),
            "category_id": K.NAMES.index(r.category) + 1,
            "bbox": bbox,
            "mask": mask,
            "amodal_bbox": [r.x, r.y, r.w, r.h],
            "color": r.color,
            "texture": r.texture,
            "size": r.size,
            "slot": int(r.slot),
            "z": float(r.z),
            "gender": int(r.gender_label),
        }
        n_kp = len(K.CATEGORIES[K.NAMES.index(r.category)].keypoints)
        if n_kp:
            kp = xy[r.image, r.slot, :n_kp]
            px = np.clip(kp.astype(int), 0, size - 1)
            inside = (kp >= 0).all(1) & (kp < size).all(1)
            seen = inside & (ids[r.image, px[:, 1], px[:, 0]] == r.slot)
            ann["keypoints"] = np.concatenate(
                [kp, np.where(seen, 2, np.where(inside, 1, 0))[:, None]], 1
            )
        anns.append(ann)
        if r.duplicate and r.category in DUPLICATE_NAMES:
            anns.append(
                {
                    **ann,
                    "id": len(anns) + 1,
                    "category_id": K.NAMES.index(DUPLICATE_NAMES[r.category]) + 1,
                    "duplicate_of": ann["id"],
                }
            )
    captions = _captions(table, image_offset)
    return coco_dataset(
        images,
        categories,
        anns,
        captions,
        info={"description": "cvtutor scenes2d", "seed": scenes.seed},
    )


def _image_records(scenes: Scenes2D, image_offset: int) -> list[dict]:
    """The COCO ``images`` records of a batch: id, size, file name, scene, region, language."""
    return [
        {
            "id": image_offset + i,
            "width": scenes.size,
            "height": scenes.size,
            "file_name": f"{image_offset + i:06d}.png",
            "scene": K.SCENE_NAMES[int(s)],
            "region": K.REGIONS[int(r)],
            "language": "visitor" if bool(vi) else "local",
        }
        for i, (s, r, vi) in enumerate(
            zip(scenes.scene.tolist(), scenes.region.tolist(), scenes.visitor.tolist())
        )
    ]


def _category_records() -> list[dict]:
    """The COCO ``categories``: ids 1..C in :data:`catalog.NAMES` order, with keypoint names."""
    return [
        {
            "id": k + 1,
            "name": c.name,
            "supercategory": c.supercategory,
            **({"keypoints": [n for n, _ in c.keypoints]} if c.keypoints else {}),
        }
        for k, c in enumerate(K.CATEGORIES)
    ]


def _captions(table: pd.DataFrame, image_offset: int) -> list[dict]:
    """One caption per image of an object table (:func:`language.caption`)."""
    return [
        {"image_id": image_offset + int(i), "caption": L.caption(group, group.scene.iloc[0])}
        for i, group in table.groupby("image")
    ]


def _captioned(table: pd.DataFrame, captioned) -> pd.DataFrame:
    if captioned is None:
        return table
    keep = np.asarray(captioned.cpu() if hasattr(captioned, "cpu") else captioned, dtype=bool)
    if keep.ndim != 1 or len(keep) <= table["image"].max():
        raise ValueError(f"captioned must be an (n,) bool mask over the scenes, got {keep.shape}")
    return table[keep[table["image"].to_numpy()]]


def to_coco_boxes(scenes: Scenes2D, image_offset: int = 1, captioned=None) -> dict:
    """The scenes as a COCO data set of boxes only, without rendering (chapter ``revise``): the
    records of :func:`to_coco` with each object's amodal box as its ``bbox`` (``area``: the box
    area), no masks or keypoints, planted duplicates under the look-alike name (``duplicate_of``),
    the ``gender`` label, ``color``, ``texture`` and ``slot``; one caption per image. Objects
    hidden behind others are kept (an annotator of boxes sees what a mask would not).
    ``captioned``: an (n,) bool mask of the images to caption (default all)."""
    table = object_table(scenes)
    anns = []
    for r in table.itertuples(index=False):
        ann = {
            "id": len(anns) + 1,
            "image_id": image_offset + int(r.image),
            "category_id": K.NAMES.index(r.category) + 1,
            "bbox": [r.x, r.y, r.w, r.h],
            "color": r.color,
            "texture": r.texture,
            "slot": int(r.slot),
            "gender": int(r.gender_label),
        }
        anns.append(ann)
        if r.duplicate and r.category in DUPLICATE_NAMES:
            anns.append(
                {
                    **ann,
                    "id": len(anns) + 1,
                    "category_id": K.NAMES.index(DUPLICATE_NAMES[r.category]) + 1,
                    "duplicate_of": ann["id"],
                }
            )
    return coco_dataset(
        _image_records(scenes, image_offset),
        _category_records(),
        anns,
        _captions(_captioned(table, captioned), image_offset),
        info={"description": "cvtutor scenes2d (boxes)", "seed": scenes.seed},
    )
