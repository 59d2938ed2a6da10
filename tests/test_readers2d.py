"""The 2-D world's real-data readers (RefCOCO refs, Market-1501/Duke names, CUB list files) on
fixture files the tests write."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from cvtutor.data import cub, refcoco, reid, safe_pickle


# ---------------------------------------------------------------------------------------------
# RefCOCO
# ---------------------------------------------------------------------------------------------
def make_refs():
    return [
        {"ref_id": 0, "ann_id": 1719310, "image_id": 581857, "category_id": 1, "split": "testA",
         "file_name": "COCO_train2014_000000581857_16.jpg", "sent_ids": [0, 1],
         "sentences": [{"sent_id": 0, "sent": "the lady with the blue shirt", "raw": "The lady",
                        "tokens": ["the", "lady"]},
                       {"sent_id": 1, "sent": "lady in blue", "raw": "lady", "tokens": ["lady"]}]},
        {"ref_id": 1, "ann_id": 42, "image_id": 7, "category_id": 3, "split": "train",
         "file_name": "COCO_train2014_000000000007_42.jpg", "sent_ids": [2],
         "sentences": [{"sent_id": 2, "sent": "left car", "raw": "left car",
                        "tokens": ["left", "car"]}]},
    ]


def write_refs(tmp_path, obj, dataset="refcoco", split_by="unc", protocol=2):
    folder = tmp_path / dataset
    folder.mkdir(exist_ok=True)
    (folder / f"refs({split_by}).p").write_bytes(pickle.dumps(obj, protocol=protocol))


@pytest.mark.parametrize("protocol", [2, 4])
def test_refcoco_refs_are_read(tmp_path, protocol):
    write_refs(tmp_path, make_refs(), protocol=protocol)
    refs = refcoco.load_refs(tmp_path)
    assert refs == make_refs()
    sents = refcoco.refs_sentences(refs)
    assert list(sents.columns) == list(refcoco.SENTENCE_COLUMNS) and len(sents) == 3
    assert sents.sent.tolist() == ["the lady with the blue shirt", "lady in blue", "left car"]
    assert sents.ann_id.tolist() == [1719310, 1719310, 42]
    train = refcoco.refs_sentences(refs, "train")
    assert train.ref_id.tolist() == [1]
    with pytest.raises(ValueError, match=r"splits \['testA', 'train'\]"):
        refcoco.refs_sentences(refs, "val")


def test_refcocog_path_and_bad_names(tmp_path):
    write_refs(tmp_path, make_refs(), dataset="refcocog", split_by="umd")
    assert len(refcoco.load_refs(tmp_path, "refcocog", "umd")) == 2
    with pytest.raises(ValueError, match=r"split by \['unc'\]"):
        refcoco.load_refs(tmp_path, "refcoco+", "umd")
    with pytest.raises(ValueError, match="dataset must be one of"):
        refcoco.load_refs(tmp_path, "refclef")
    with pytest.raises(FileNotFoundError, match=r"refs\(unc\)\.p.*expected the layout"):
        refcoco.load_refs(tmp_path, "refcoco")


def test_refcoco_malformed_refs_name_the_layout(tmp_path):
    write_refs(tmp_path, {"not": "a list"})
    with pytest.raises(ValueError, match="not a list of refs; expected root/<dataset>"):
        refcoco.load_refs(tmp_path)
    bad = make_refs()
    del bad[1]["ann_id"]
    write_refs(tmp_path, bad)
    with pytest.raises(ValueError, match=r"ref 1 lacks \['ann_id'\]"):
        refcoco.load_refs(tmp_path)
    bad = make_refs()
    bad[0]["sentences"][1] = {"tokens": []}
    write_refs(tmp_path, bad)
    with pytest.raises(ValueError, match="sentence without"):
        refcoco.load_refs(tmp_path)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_refcoco_refuses_a_pickle_that_runs_code(tmp_path):
    refs = make_refs()
    refs[0]["sentences"][0]["raw"] = _RunsCode()
    write_refs(tmp_path, refs)
    refused = r"refs\(unc\)\.p.*(posix|os|nt)\.system"
    with pytest.raises(safe_pickle.UnsafePickleError, match=refused):
        refcoco.load_refs(tmp_path)


# ---------------------------------------------------------------------------------------------
# Market-1501 / DukeMTMC-reID
# ---------------------------------------------------------------------------------------------
def test_market_names_parse():
    assert reid.parse_name("0002_c1s1_000451_03.jpg") == \
        {"pid": 2, "camid": 1, "seq": 1, "frame": 451, "box": 3}
    assert reid.parse_name("some/dir/-1_c3s2_012345_01.jpg")["pid"] == -1
    assert reid.parse_name("0000_c6s4_000151_01.jpg") == \
        {"pid": 0, "camid": 6, "seq": 4, "frame": 151, "box": 1}
    assert reid.parse_name("0005_c2_f0046985.jpg", "duke") == \
        {"pid": 5, "camid": 2, "seq": 1, "frame": 46985, "box": 0}
    for bad in ("0002_c1_000451_03.jpg", "2_c1s1_000451_03.jpg", "0002_c1s1_000451_03.png"):
        with pytest.raises(ValueError, match="expected names like 0002_c1s1_000451_03.jpg"):
            reid.parse_name(bad)
    with pytest.raises(ValueError, match="style must be"):
        reid.parse_name("x.jpg", "cuhk")


def test_market_split_from_fixture_folder(tmp_path):
    names = {"bounding_box_test": ["0002_c1s1_000451_03.jpg", "-1_c1s1_000401_03.jpg",
                                   "0000_c2s1_000151_01.jpg", "0007_c3s2_000100_01.jpg"],
             "query": ["0002_c2s1_000500_01.jpg"],
             "bounding_box_train": ["0009_c1s1_000001_01.jpg", "0003_c1s1_000002_01.jpg"]}
    for folder, files in names.items():
        (tmp_path / folder).mkdir()
        for f in files:
            (tmp_path / folder / f).write_bytes(b"")
    (tmp_path / "bounding_box_test" / "Thumbs.db").write_bytes(b"")
    gallery = reid.load_split(tmp_path, "gallery")
    assert list(gallery.columns) == list(reid.COLUMNS)
    assert sorted(gallery.pid.tolist()) == [0, 2, 7]  # junk dropped, distractor kept
    assert len(reid.load_split(tmp_path, "gallery", drop_junk=False)) == 4
    train = reid.load_split(tmp_path, "train")
    assert reid.relabel(train.pid).tolist() == [0, 1]  # 0003 -> 0, 0009 -> 1
    assert reid.load_split(tmp_path, "query").camid.tolist() == [2]
    (tmp_path / "query" / "badname.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="badname.jpg"):
        reid.load_split(tmp_path, "query")
    with pytest.raises(FileNotFoundError, match="expected the layout root/"):
        reid.load_split(tmp_path / "nothing", "train")
    with pytest.raises(ValueError, match="split must be"):
        reid.load_split(tmp_path, "test")


# ---------------------------------------------------------------------------------------------
# CUB-200-2011
# ---------------------------------------------------------------------------------------------
def write_cub(root, boxes=True):
    root.mkdir(exist_ok=True)
    (root / "images.txt").write_text(
        "1 001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg\n"
        "2 001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg\n"
        "3 002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg\n")
    (root / "image_class_labels.txt").write_text("1 1\n2 1\n3 2\n")
    (root / "train_test_split.txt").write_text("1 0\n2 1\n3 1\n")
    (root / "classes.txt").write_text("1 001.Black_footed_Albatross\n2 002.Laysan_Albatross\n")
    if boxes:
        (root / "bounding_boxes.txt").write_text("1 60.0 27.0 325.0 304.0\n"
                                                 "2 139.0 30.0 153.0 264.0\n"
                                                 "3 14.0 112.0 388.0 186.0\n")
    (root / "parts").mkdir(exist_ok=True)
    (root / "parts" / "part_locs.txt").write_text("1 1 0.0 0.0 0\n1 2 312.0 182.0 1\n")


def test_cub_lists_are_read(tmp_path):
    write_cub(tmp_path)
    frame = cub.load_cub(tmp_path)
    assert list(frame.columns) == list(cub.COLUMNS) and len(frame) == 3
    assert frame.class_id.tolist() == [1, 1, 2] and frame.is_train.tolist() == [False, True, True]
    assert frame.class_name.iloc[2] == "002.Laysan_Albatross"
    np.testing.assert_allclose(frame[["x", "y", "w", "h"]].iloc[0], [60, 27, 325, 304])
    assert cub.load_cub(tmp_path, "test").image_id.tolist() == [1]
    assert cub.load_cub(tmp_path, "train").image_id.tolist() == [2, 3]
    parts = cub.load_cub_parts(tmp_path)
    assert parts.visible.tolist() == [False, True] and parts.x.iloc[1] == 312.0


def test_cub_optional_files_and_errors(tmp_path):
    write_cub(tmp_path, boxes=False)
    assert cub.load_cub(tmp_path).x.isna().all()
    (tmp_path / "image_class_labels.txt").write_text("1 1\n2 1\n")
    with pytest.raises(ValueError, match="list different image ids"):
        cub.load_cub(tmp_path)
    (tmp_path / "image_class_labels.txt").write_text("1 1\n2\n3 2\n")
    with pytest.raises(ValueError, match=r"image_class_labels.txt:2: expected 2 fields"):
        cub.load_cub(tmp_path)
    (tmp_path / "image_class_labels.txt").write_text("1 1\n2 one\n3 2\n")
    with pytest.raises(ValueError, match="column 'class_id' must be numeric"):
        cub.load_cub(tmp_path)
    (tmp_path / "image_class_labels.txt").write_text("1 1\n2 1\n3 2\n")
    (tmp_path / "train_test_split.txt").unlink()
    with pytest.raises(FileNotFoundError, match="train_test_split.txt; expected the layout"):
        cub.load_cub(tmp_path)
    with pytest.raises(ValueError, match="split must be"):
        cub.load_cub(tmp_path, "val")
