"""Tests of cvtutor.data.coco: masks, keypoints and captions round-trip through pycocotools; bad
files name what is wrong. (The detection reader load_coco_json is tested in tests/test_tide.py.)"""
from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from cvtutor.data import coco as C
from cvtutor.metrics import detection


def hand_set(rng=np.random.default_rng(0)):
    masks = [np.zeros((20, 30), bool), np.zeros((20, 30), bool)]
    masks[0][2:9, 3:15] = True
    masks[1][10:19, 20:29] = rng.random((9, 9)) > 0.3
    images = [{"id": 1, "width": 30, "height": 20, "file_name": "a.png"}]
    cats = [{"id": 1, "name": "house", "supercategory": "building"},
            {"id": 2, "name": "critter", "keypoints": ["head", "tail"], "skeleton": [[1, 2]]}]
    anns = [{"image_id": 1, "category_id": 1, "bbox": [3, 2, 12, 7], "mask": masks[0],
             "color": "red"},
            {"image_id": 1, "category_id": 2, "bbox": [20, 10, 9, 9], "mask": masks[1],
             "keypoints": [[21.5, 11.0, 2], [27.0, 18.5, 1]]}]
    caps = [{"image_id": 1, "caption": "a red house next to a critter"}]
    return C.coco_dataset(images, cats, anns, caps), masks


def test_dataset_round_trips_through_pycocotools(tmp_path):
    data, masks = hand_set()
    path = C.write_coco(data, tmp_path / "set.json")
    coco = COCO(str(path))                                   # the reference reader
    for ann_id, mask in zip((1, 2), masks):
        ann = coco.anns[ann_id]
        assert np.array_equal(coco.annToMask(ann).astype(bool), mask)
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert ann["area"] == mask.sum() == mask_utils.area(rle)
    assert coco.anns[2]["num_keypoints"] == 2 and coco.anns[2]["keypoints"][2] == 2
    assert coco.loadCats(2)[0]["keypoints"] == ["head", "tail"]
    ours = C.read_coco(path)
    assert list(ours.annotations["id"]) == [1, 2] and ours.annotations["color"].iloc[0] == "red"
    assert np.array_equal(ours.mask(2), masks[1])
    np.testing.assert_array_equal(ours.keypoints(2), [[21.5, 11.0, 2], [27.0, 18.5, 1]])
    assert ours.captions["caption"].tolist() == ["a red house next to a critter"]
    assert ours.categories.set_index("id").loc[1, "supercategory"] == "building"


def test_rle_round_trip_and_uncompressed_rle():
    mask = np.random.default_rng(1).random((13, 17)) > 0.5
    assert np.array_equal(C.decode_mask(C.encode_mask(mask)), mask)
    rle = json.loads(json.dumps(C.encode_mask(mask)))        # counts survive JSON as a string
    assert isinstance(rle["counts"], str) and np.array_equal(C.decode_mask(rle), mask)
    square = np.zeros((4, 4), bool)
    square[1:3, 1:3] = True              # column-major runs: 5 off, 2 on, 2 off, 2 on, 5 off
    assert np.array_equal(C.decode_mask({"size": [4, 4], "counts": [5, 2, 2, 2, 5]}), square)


def test_captions_file_in_the_coco_layout(tmp_path):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps({"images": [{"id": 5}], "annotations": [
        {"id": 9, "image_id": 5, "caption": "two discs"},
        {"id": 10, "image_id": 5, "caption": "a pair"}]}))
    caps = C.read_coco(path).captions
    assert caps["id"].tolist() == [9, 10] and set(caps["image_id"]) == {5}


def test_detection_module_re_exports_the_reader():
    assert detection.load_coco_json is C.load_coco_json and detection.to_coco_json is C.to_coco_json


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("categories"), r"missing the key\(s\) \['categories'\]"),
    (lambda d: d["annotations"][0].pop("bbox"),
     r"annotations\[0\] is missing the key\(s\) \['bbox'\]"),
    (lambda d: d["annotations"][1].update(image_id=3), "image id 3"),
    (lambda d: d["annotations"][1].update(category_id=7), "category id 7"),
    (lambda d: d["annotations"][1].update(bbox=[0, 0, -1, 2]), "negative width or height"),
    (lambda d: d["captions"][0].update(image_id=4), r"captions\[0\] refers to image id 4"),
])
def test_malformed_files_name_the_problem(tmp_path, change, message):
    data, _ = hand_set()
    change(data)
    with pytest.raises(ValueError, match=message):
        C.read_coco(C.write_coco(data, tmp_path / "bad.json"))


def test_writer_rejects_bad_records(tmp_path):
    images = [{"id": 1, "width": 4, "height": 3}]
    cats = [{"id": 1, "name": "disc"}]
    with pytest.raises(ValueError, match=r"mask of shape \(4, 4\), but its image is \(3, 4\)"):
        C.coco_dataset(images, cats, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1],
                                       "mask": np.zeros((4, 4), bool)}])
    with pytest.raises(ValueError, match=r"keypoints must be \(K, 3\)"):
        C.coco_dataset(images, cats, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1],
                                       "keypoints": [1, 2]}])
    with pytest.raises(ValueError, match=r"images\[0\] is missing the key\(s\) \['width'\]"):
        C.coco_dataset([{"id": 1, "height": 3}], cats, [])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        C.read_coco(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        C.read_coco(tmp_path / "x.json")
