"""Tests of the 2-D scene world: cvtutor.data.scenes2d, cvtutor.data.language and the chapter
module cvtutor.papers.world_scenes2d (hand-built scenes for the phrases, pycocotools for COCO)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from pycocotools.coco import COCO

from cvtutor.data import language as L
from cvtutor.data.coco import write_coco
from cvtutor.data.scenes2d import Biases, catalog as K, scenes2d
from cvtutor.data.scenes2d.export import object_table, to_coco
from cvtutor.papers import world_scenes2d as W


@pytest.fixture(scope="module")
def world():
    s = scenes2d(24, 48, max_objects=6, seed=3)
    return s, s.render()


# ---------------------------------------------------------------------------------------------
# the generator
# ---------------------------------------------------------------------------------------------
def test_scenes_are_seeded_and_inside():
    a, b = scenes2d(30, 48, seed=5), scenes2d(30, 48, seed=5)
    for name in ("boxes", "category", "rgb", "lattice", "z"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.boxes, scenes2d(30, 48, seed=6).boxes)
    box = a.boxes[a.valid]
    assert (box[:, :2] >= -1e-4).all() and (box[:, :2] + box[:, 2:] <= 48 + 1e-4).all()
    assert (a.valid.sum(1) >= 1).all()


def test_aspect_ratios_reach_8_to_1_in_both_orientations():
    s = scenes2d(400, 64, max_objects=4, max_overlap=1.0, seed=0)
    t = object_table(s)
    long = t[t["category"].isin(["rectangle", "oval", "bar"])]
    ratio = np.maximum(long.w / long.h, long.h / long.w)
    assert ratio.max() > 6.0 and ratio.min() >= 1.5
    assert (long.w > long.h).any() and (long.h > long.w).any()
    tall = t[t["category"].isin(["person", "lamp", "snowman"])]
    assert (tall.h >= tall.w).all()


def test_overlap_knob_bounds_the_iou():
    from cvtutor.data.scenes2d.generate import box_iou

    for cap in (0.0, 0.3):
        s = scenes2d(100, 64, max_overlap=cap, seed=1)
        iou = box_iou(s.boxes, s.boxes)
        iou = iou.masked_fill(~(s.valid[:, :, None] & s.valid[:, None, :]), 0)
        iou = iou.masked_fill(torch.eye(s.boxes.shape[1], dtype=torch.bool), 0)
        assert float(iou.max()) <= cap + 1e-5
        if cap:
            assert float(iou.max()) > 0.05  # overlaps do occur


def test_scene_types_condition_the_objects():
    t = object_table(scenes2d(600, 48, seed=2))
    freq = pd.crosstab(t["scene"], t["category"])
    for scene, spec in K.SCENES.items():
        absent = [c for c in K.NAMES if spec["weights"].get(c, 0) == 0 and c in freq.columns]
        assert freq.loc[scene, absent].sum() == 0  # never drawn there
    assert freq.loc["winter", "snowman"] > freq.loc["park", "snowman"]


def test_lookalikes_copy_category_colour_and_texture():
    s = scenes2d(200, 48, lookalike=1.0, seed=4)
    i, j = torch.nonzero(s.lookalike_of >= 0, as_tuple=True)
    assert len(i) > 100
    for name in ("category", "color", "texture"):
        assert torch.equal(getattr(s, name)[i, j], getattr(s, name)[i, 0])


def test_every_visible_pixel_is_its_front_object(world):
    checks = W.consistency_checks(world[0])
    assert (
        checks["ids equal the front object"] == 1.0 and checks["RGB equals the front colour"] == 1.0
    )


def test_parts_map_names_the_parts_of_its_object(world):
    s, layers = world
    ids, parts = layers.ids.numpy(), layers.parts.numpy()
    cat = s.category.numpy()
    for b in range(len(s)):
        for slot in np.unique(ids[b][ids[b] >= 0]):
            found = {K.PARTS[p] for p in np.unique(parts[b][ids[b] == slot]) if p >= 0}
            names = {
                p.name
                for t in K.TEMPLATES
                if K.TEMPLATE_CATEGORY[K.TEMPLATES.index(t)] == cat[b, slot]
                for p in t
                if p.name
            }
            assert found <= names


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="max_objects"):
        scenes2d(4, 48, min_objects=3, max_objects=2)
    with pytest.raises(ValueError, match="size must be"):
        scenes2d(4, 8)
    with pytest.raises(ValueError, match="unknown category 'cat'"):
        Biases(scale_class="cat")
    with pytest.raises(ValueError, match="probability"):
        Biases(duplicate_rate=2.0)


# ---------------------------------------------------------------------------------------------
# language on hand-built scenes
# ---------------------------------------------------------------------------------------------
def hand_scene() -> pd.DataFrame:
    rows = [  # slot, category, colour, texture, size, cx, cy, gender label, parts
        (0, "circle", "red", "flat", "small", 10, 10, -1, ()),
        (1, "circle", "red", "stripes", "large", 40, 12, -1, ()),
        (2, "circle", "blue", "flat", "small", 25, 48, -1, ()),
        (3, "house", "red", "flat", "large", 50, 45, -1, ("body", "roof", "door")),
        (4, "person", "blue", "flat", "medium", 5, 50, 1, ("head", "torso", "legs")),
        (5, "square", "grey", "flat", "small", 60, 5, -1, ()),
    ]
    return pd.DataFrame(
        rows,
        columns=[
            "slot",
            "category",
            "color",
            "texture",
            "size",
            "cx",
            "cy",
            "gender_label",
            "parts",
        ],
    )


@pytest.mark.parametrize(
    "phrase, slots",
    [
        (L.Phrase("circle", quantifier="all"), {0, 1, 2}),
        (L.Phrase("circle", color="red", quantifier="all"), {0, 1}),
        (L.Phrase("disc", color="red", texture="striped"), {1}),  # a synonym
        (L.Phrase("shape", quantifier="all"), {0, 1, 2, 5}),  # a hypernym
        (L.Phrase("square", color="gray"), {5}),  # a colour synonym
        (L.Phrase("woman"), {4}),
        (L.Phrase("man"), set()),
        (L.Phrase("person"), {4}),
        (L.Phrase("circle", relation="left of", landmark=L.Phrase("circle", color="blue")), {0}),
        (L.Phrase("circle", relation="above", landmark=L.Phrase("house")), {0, 1}),
        (L.Phrase(None, color="red", quantifier="all"), {0, 1, 3}),
        (L.Phrase("house", part="roof"), {3}),
        (L.Phrase(None, part="roof"), {3}),
    ],
)
def test_denotation_on_a_hand_built_scene(phrase, slots):
    assert L.denotation(phrase, hand_scene()) == slots


def test_text_follows_the_grammar():
    assert L.text(L.Phrase("circle", color="red", quantifier="all")) == "all red circles"
    assert L.text(L.Phrase("house", part="roof", color="red")) == "the roof of the red house"
    p = L.Phrase(
        "circle", size="small", relation="left of", landmark=L.Phrase("circle", color="blue")
    )
    assert L.text(p) == "the small circle left of the blue circle"
    assert L.plural("person") == "people" and L.plural("box") == "boxes"


def test_referring_expressions_are_unique_when_claimed():
    scene = hand_scene()
    for slot in scene["slot"]:
        phrase, unique = L.referring_expression(scene, slot)
        assert unique == (L.denotation(phrase, scene) == {slot})
        assert unique
    phrase, _ = L.referring_expression(scene, 0)
    assert L.text(phrase) == "the small red circle"  # colour cut first, size order in text


def test_ambiguous_objects_are_reported():
    twins = hand_scene().iloc[:2].assign(texture="flat", size="small", cx=[10, 10], cy=[10, 10])
    phrase, unique = L.referring_expression(twins, 0)
    assert not unique and L.denotation(phrase, twins) == {0, 1}


def test_caption_counts_and_person_words():
    cap = L.caption(hand_scene(), "street")
    assert (
        cap
        == "A street scene with two red circles, a blue circle, a red house, a woman and "
        "a grey square."
    )


def test_phrase_rejects_bad_words():
    with pytest.raises(ValueError, match="quantifier"):
        L.Phrase("circle", quantifier="some")
    with pytest.raises(ValueError, match="landmark"):
        L.Phrase("circle", relation="left of")
    with pytest.raises(ValueError, match="size word"):
        L.Phrase("circle", size="huge")


# ---------------------------------------------------------------------------------------------
# COCO export through pycocotools
# ---------------------------------------------------------------------------------------------
def test_coco_export_round_trips_through_pycocotools(world, tmp_path):
    s, layers = world
    data = to_coco(s, layers)
    coco = COCO(str(write_coco(data, tmp_path / "scenes.json")))
    masks = layers.visible_masks.numpy()
    assert len(coco.getImgIds()) == len(s)
    for ann in coco.loadAnns(coco.getAnnIds()):
        m = coco.annToMask(ann).astype(bool)
        assert np.array_equal(m, masks[ann["image_id"] - 1, ann["slot"]])
        ys, xs = np.nonzero(m)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
        assert ann["area"] == m.sum()
        if "keypoints" in ann:
            cat = coco.loadCats(ann["category_id"])[0]
            assert len(ann["keypoints"]) == 3 * len(cat["keypoints"])
    assert len(data["captions"]) == len(s) and all(
        c["caption"].endswith(".") for c in data["captions"]
    )


def test_duplicates_appear_as_second_annotations(tmp_path):
    s = scenes2d(60, 48, biases=Biases(duplicate_rate=1.0), seed=0)
    data = to_coco(s, s.render())
    dups = [a for a in data["annotations"] if "duplicate_of" in a]
    assert dups
    by_id = {a["id"]: a for a in data["annotations"]}
    for d in dups:
        first = by_id[d["duplicate_of"]]
        assert (
            d["segmentation"] == first["segmentation"] and d["category_id"] != first["category_id"]
        )
