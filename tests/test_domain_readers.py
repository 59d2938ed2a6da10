"""Readers of the translation chapters' real formats, on fixture files written here."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from cvtutor.data.domains import readers as R


def _img(path, color=(255, 0, 0), size=(8, 6), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def test_unpaired_cyclegan_folders(tmp_path):
    for i in range(3):
        _img(tmp_path / "trainA" / f"{i}.jpg")
    for i in range(2):
        _img(tmp_path / "trainB" / f"b{i}.png", (0, 0, 255))
    (tmp_path / "trainB" / "notes.txt").write_text("x")
    f = R.unpaired_folders(tmp_path)
    assert [p.name for p in f["A"]] == ["0.jpg", "1.jpg", "2.jpg"] and len(f["B"]) == 2
    x = R.load_images(f["B"])
    assert x.shape == (2, 3, 6, 8) and torch.allclose(x[:, 2], torch.ones(2, 6, 8))
    with pytest.raises(FileNotFoundError, match="testA"):
        R.unpaired_folders(tmp_path, "test")


def test_paired_folders_and_split_ab(tmp_path):
    for i in range(2):
        _img(tmp_path / "a" / f"{i}.png")
        _img(tmp_path / "b" / f"{i}.jpg")
    pairs = R.paired_folders(tmp_path / "a", tmp_path / "b")
    assert [(a.stem, b.stem) for a, b in pairs] == [("0", "0"), ("1", "1")]
    _img(tmp_path / "b" / "2.jpg")
    with pytest.raises(ValueError, match="unmatched: \\['2'\\]"):
        R.paired_folders(tmp_path / "a", tmp_path / "b")
    ab = torch.cat([torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)], -1)
    a, b = R.split_ab(ab)
    assert a.sum() == 0 and b.mean() == 1
    with pytest.raises(ValueError, match="2W"):
        R.split_ab(torch.zeros(1, 3, 4, 5))


def test_cityscapes_label_ids_to_train_ids(tmp_path):
    ids = np.array([[7, 8, 26, 0], [23, 33, 24, 9]], dtype=np.uint8)
    Image.fromarray(ids).save(tmp_path / "x_gtFine_labelIds.png")
    t = R.read_cityscapes_label(tmp_path / "x_gtFine_labelIds.png")
    np.testing.assert_array_equal(t, [[0, 1, 13, 255], [10, 18, 11, 255]])
    assert R.CITYSCAPES_CLASSES[13] == "car" and R.CITYSCAPES_CLASSES[10] == "sky"
    trained = sorted(v for v in R.CITYSCAPES_TRAIN_IDS.values() if v != 255)
    assert trained == list(range(19))                       # each train id exactly once
    with pytest.raises(ValueError, match="0..33"):
        R.cityscapes_train_ids(np.array([34]))


def test_ade20k_zero_is_other(tmp_path):
    a = np.array([[0, 1, 150]], dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "ADE_train_0001.png")
    np.testing.assert_array_equal(R.read_ade20k_label(tmp_path / "ADE_train_0001.png"),
                                  [[255, 0, 149]])
    np.testing.assert_array_equal(R.ade20k_labels(a, reduce_zero=False), a)
    with pytest.raises(ValueError, match="0..150"):
        R.ade20k_labels(np.array([151]))
    rgb = tmp_path / "rgb.png"
    _img(rgb)
    with pytest.raises(ValueError, match="single-channel"):
        R.read_ade20k_label(rgb)


def test_bdd100k_json(tmp_path):
    frames = [{"name": "a.jpg", "attributes": {"weather": "rainy", "scene": "city street",
                                               "timeofday": "night"},
               "labels": [{"category": "car", "box2d": {"x1": 1, "y1": 2, "x2": 30, "y2": 40}},
                          {"category": "lane", "poly2d": []}]},
              {"name": "b.jpg", "attributes": {"weather": "clear", "timeofday": "daytime"},
               "labels": []}]
    p = tmp_path / "det_train.json"
    p.write_text(json.dumps(frames))
    f, b = R.read_bdd100k(p)
    assert f.timeofday.tolist() == ["night", "daytime"] and f.weather[0] == "rainy"
    assert len(b) == 1 and b.iloc[0].to_dict() == {"name": "a.jpg", "category": "car", "x1": 1.0,
                                                   "y1": 2.0, "x2": 30.0, "y2": 40.0}
    p.write_text(json.dumps({"oops": 1}))
    with pytest.raises(ValueError, match="list of frames"):
        R.read_bdd100k(p)


def test_face_age_file_names(tmp_path):
    assert R.parse_utkface("26_1_2_20170116174525125.jpg.chip.jpg") == {
        "age": 26, "gender": "female", "race": "Asian", "date": "20170116174525125"}
    assert R.parse_cacd("53_Robin_Williams_0002.jpg") == {"age": 53, "name": "Robin_Williams",
                                                          "index": 2}
    with pytest.raises(ValueError, match="UTKFace"):
        R.parse_utkface("26_3_2_2017.jpg")
    with pytest.raises(ValueError, match="CACD"):
        R.parse_cacd("Robin_Williams.jpg")
    for n in ("14_Aaron_Johnson_0001.jpg", "15_Aaron_Johnson_0003.jpg"):
        _img(tmp_path / "cacd" / n)
    df = R.face_ages(tmp_path / "cacd", "cacd")
    assert df.age.tolist() == [14, 15] and set(df.name) == {"Aaron_Johnson"}
    with pytest.raises(ValueError, match="kind"):
        R.face_ages(tmp_path / "cacd", "imdb")
