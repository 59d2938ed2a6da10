import json

import numpy as np
import pytest
from PIL import Image

from cvtutor.data import video_readers as R


def test_activitynet_gt_and_results(tmp_path):
    gt = {
        "version": "VERSION 1.3",
        "taxonomy": [],
        "database": {
            "v1": {
                "subset": "validation",
                "duration": 100.0,
                "url": "",
                "resolution": "640x360",
                "annotations": [
                    {"segment": [10.0, 30.0], "label": "Long jump"},
                    {"segment": [50.0, 60.0], "label": "Long jump"},
                ],
            },
            "v2": {
                "subset": "training",
                "duration": 40.0,
                "annotations": [{"segment": [0, 4], "label": "Surfing"}],
            },
        },
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    df = R.load_activitynet(tmp_path / "gt.json", subset="validation")
    assert len(df) == 2 and df.s_norm.tolist() == [0.1, 0.5] and df.e_norm.tolist() == [0.3, 0.6]
    assert len(R.load_activitynet(tmp_path / "gt.json")) == 3
    res = {
        "version": "VERSION 1.3",
        "results": {"v1": [{"label": "Long jump", "score": 0.9, "segment": [11, 29]}]},
        "external_data": {},
    }
    (tmp_path / "res.json").write_text(json.dumps(res))
    r = R.load_activitynet_results(tmp_path / "res.json")
    assert r.iloc[0].to_dict() == {
        "video_id": "v1",
        "label": "Long jump",
        "t_start": 11.0,
        "t_end": 29.0,
        "score": 0.9,
    }
    (tmp_path / "bad.json").write_text(
        json.dumps(
            {"database": {"v": {"subset": "x", "duration": 1, "annotations": [{"label": "a"}]}}}
        )
    )
    with pytest.raises(ValueError, match="segment"):
        R.load_activitynet(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError):
        R.load_activitynet(tmp_path / "none.json")


def test_thumos14(tmp_path):
    (tmp_path / "BaseballPitch_test.txt").write_text(
        "video_test_0000324 5.3 8.1\nvideo_test_0000324 20.0 22.5\n"
    )
    (tmp_path / "Ambiguous_test.txt").write_text("video_test_0000324 1.0 2.0\n")
    (tmp_path / "BaseballPitch_val.txt").write_text("video_validation_0000051 67.5 75.9\n")
    df = R.load_thumos14(tmp_path, "test")
    assert df.label.tolist() == ["BaseballPitch"] * 2 and df.t_end.tolist() == [8.1, 22.5]
    assert len(R.load_thumos14(tmp_path, "test", keep_ambiguous=True)) == 3
    (tmp_path / "Bad_val.txt").write_text("video 1.0\n")
    with pytest.raises(ValueError, match="video_id start end"):
        R.load_thumos14(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="_test.txt"):
        R.load_thumos14(tmp_path / "empty", "test")


def test_ucf101_and_hmdb51_splits(tmp_path):
    (tmp_path / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    (tmp_path / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n" "Archery/v_Archery_g08_c01.avi 2\n"
    )
    (tmp_path / "testlist01.txt").write_text("Archery/v_Archery_g01_c01.avi\n")
    df = R.load_ucf101_split(tmp_path, 1)
    assert df.label.tolist() == [0, 1, 1] and df.subset.tolist() == ["train", "train", "test"]
    with pytest.raises(FileNotFoundError, match="trainlist02"):
        R.load_ucf101_split(tmp_path, 2)
    h = tmp_path / "hmdb"
    h.mkdir()
    (h / "brush_hair_test_split1.txt").write_text("a.avi 1\nb.avi 2\nc.avi 0\n")
    (h / "cartwheel_test_split1.txt").write_text("d.avi 2\n")
    df = R.load_hmdb51_split(h, 1)
    assert df.video.tolist() == ["a.avi", "b.avi", "d.avi"] and df.label.tolist() == [0, 0, 1]
    assert df.subset.tolist() == ["train", "test", "test"]


def test_llp(tmp_path):
    (tmp_path / "AVVP_train.csv").write_text(
        "filename\tevent_labels\n-0A9suni5YA_0_10\tSpeech,Dog\n"
    )
    w = R.load_llp_weak(tmp_path / "AVVP_train.csv")
    assert w.labels.tolist() == [["Speech", "Dog"]]
    (tmp_path / "AVVP_eval_audio.csv").write_text(
        "filename\tevent_labels\tonset\toffset\n"
        "-0A9suni5YA_0_10\tSpeech\t0\t3\n-0A9suni5YA_0_10\tDog\t5\t10\n"
    )
    d = R.load_llp_dense(tmp_path / "AVVP_eval_audio.csv")
    m = R.llp_dense_matrix(d, ["Dog", "Speech"], ["-0A9suni5YA_0_10"])
    assert m.shape == (1, 2, 10) and m[0, 1].tolist() == [1, 1, 1] + [0] * 7 and m[0, 0, 5:].all()
    (tmp_path / "bad.csv").write_text("filename,event_labels\nx,y\n")
    with pytest.raises(ValueError, match="tab-separated"):
        R.load_llp_weak(tmp_path / "bad.csv")


def _palette_png(path, ids):
    im = Image.fromarray(ids.astype(np.uint8), mode="P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9))
    im.save(path)


def test_davis_2017_and_2016(tmp_path):
    seq = "bear"
    (tmp_path / "JPEGImages/480p" / seq).mkdir(parents=True)
    (tmp_path / "Annotations/480p" / seq).mkdir(parents=True)
    (tmp_path / "ImageSets/2017").mkdir(parents=True)
    (tmp_path / "ImageSets/2017/val.txt").write_text("bear\n")
    rng = np.random.default_rng(0)
    ids = []
    for t in range(3):
        Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).save(
            tmp_path / "JPEGImages/480p" / seq / f"{t:05d}.jpg"
        )
        a = np.zeros((6, 8), np.uint8)
        a[1:3, t : t + 2] = 1
        a[4:, 5:] = 2
        ids.append(a)
        _palette_png(tmp_path / "Annotations/480p" / seq / f"{t:05d}.png", a)
    assert R.davis_sequences(tmp_path, "val") == ["bear"]
    s = R.load_davis_sequence(tmp_path, seq)
    assert s["frames"].shape == (3, 6, 8, 3) and np.array_equal(s["masks"], np.stack(ids))
    assert s["names"] == ["00000", "00001", "00002"]
    # 2016: binary 0/255 annotations and path-pair ImageSets
    (tmp_path / "ImageSets/480p").mkdir(parents=True)
    (tmp_path / "ImageSets/480p/train.txt").write_text(
        "/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png\n"
        "/JPEGImages/480p/bear/00001.jpg /Annotations/480p/bear/00001.png\n"
    )
    assert R.davis_sequences(tmp_path, "train", year=2016) == ["bear"]
    for t in range(3):
        Image.fromarray((ids[t] > 0).astype(np.uint8) * 255).save(
            tmp_path / "Annotations/480p" / seq / f"{t:05d}.png"
        )
    s16 = R.load_davis_sequence(tmp_path, seq, year=2016)
    assert np.array_equal(s16["masks"], (np.stack(ids) > 0).astype(np.uint8))
    with pytest.raises(ValueError, match="palette"):
        R.load_davis_sequence(tmp_path, seq, year=2017)
    with pytest.raises(FileNotFoundError, match="JPEGImages"):
        R.load_davis_sequence(tmp_path, "cow")


def test_youtube_vos_meta_and_features(tmp_path):
    meta = {
        "videos": {
            "003234408d": {
                "objects": {
                    "1": {"category": "penguin", "frames": ["00005", "00000"]},
                    "2": {"category": "penguin", "frames": ["00010"]},
                }
            }
        }
    }
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    df = R.load_youtube_vos_meta(tmp_path / "meta.json")
    assert df.object_id.tolist() == [1, 2] and df.first_frame.tolist() == ["00000", "00010"]
    feats = tmp_path / "feats"
    feats.mkdir()
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    np.save(feats / "vid1.npy", x)
    assert np.array_equal(R.load_features(feats, ["vid1"])["vid1"], x)
    with pytest.raises(FileNotFoundError, match="vid2.npy"):
        R.load_features(feats, ["vid2"])
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["vid1"] = x
    assert np.array_equal(R.load_features(tmp_path / "f.h5", ["vid1"])["vid1"], x)
    with pytest.raises(KeyError, match="vid9"):
        R.load_features(tmp_path / "f.h5", ["vid9"])
