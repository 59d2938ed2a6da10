"""The body data readers on fixture files the tests write (never a download)."""
import json
import os
import pickle

import numpy as np
import pytest
import torch

from cvtutor.data import safe_pickle
from cvtutor.data.bodies import readers as R


def test_coco_keypoints_and_topdown_crops(tmp_path):
    kp = np.zeros((17, 3))
    kp[:, 0], kp[:, 1], kp[:, 2] = np.linspace(20, 40, 17), np.linspace(10, 50, 17), 2
    ann = {
        "images": [{"id": 7, "file_name": "a.jpg", "width": 64, "height": 64}],
        "annotations": [
            {
                "id": 1,
                "image_id": 7,
                "bbox": [15, 5, 30, 50],
                "keypoints": kp.reshape(-1).tolist(),
                "area": 900.0,
                "iscrowd": 0,
                "num_keypoints": 17,
            },
            {"id": 2, "image_id": 7, "bbox": [0, 0, 5, 5], "area": 10.0},
        ],
    }  # no keypoints: skipped
    (tmp_path / "person_keypoints_val.json").write_text(json.dumps(ann))
    d = R.load_coco_keypoints(tmp_path / "person_keypoints_val.json")
    assert d["keypoints"].shape == (1, 17, 3) and d["images"][7] == ("a.jpg", 64, 64)
    img = torch.zeros(1, 64, 64)
    u, v = kp[8, :2].astype(int)
    img[0, v, u] = 1.0
    crops, local = R.topdown_crops(
        img,
        torch.tensor(d["bbox"], dtype=torch.float32),
        torch.tensor(d["keypoints"], dtype=torch.float32),
        32,
    )
    assert crops.shape == (1, 1, 32, 32) and local.shape == (1, 17, 3)
    c = local[0, 8, :2].floor().long()
    assert (
        crops[0, 0, c[1] - 1 : c[1] + 2, c[0] - 1 : c[0] + 2].max() > 0.05
    )  # the marked joint lands there
    (tmp_path / "bad.json").write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="'images' and 'annotations'"):
        R.load_coco_keypoints(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="person_keypoints"):
        R.load_coco_keypoints(tmp_path / "missing.json")


def test_h36m_npz_through_the_restricted_unpickler(tmp_path):
    pos = np.random.default_rng(0).normal(size=(5, 32, 3)).astype(np.float32)
    np.savez_compressed(tmp_path / "data_3d_h36m.npz", positions_3d={"S1": {"Walking": pos}})
    d = R.load_h36m_npz(tmp_path / "data_3d_h36m.npz")
    assert np.array_equal(d["S1"]["Walking"], pos[:, list(R.H36M32_TO_17)])

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    np.savez(tmp_path / "evil.npz", positions_3d=np.array(Evil(), dtype=object))
    with pytest.raises(safe_pickle.UnsafePickleError, match="posix.system|os.system|refusing"):
        R.load_h36m_npz(tmp_path / "evil.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(KeyError, match="positions_3d"):
        R.load_h36m_npz(tmp_path / "other.npz")


def test_mupots_annot_mat(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(1)
    F, P = 2, 3
    ann = np.empty((F, P), dtype=object)
    truth = rng.normal(size=(F, P, 3, 17))
    for f in range(F):
        for p in range(P):
            ann[f, p] = {
                "annot2": truth[f, p, :2],
                "annot3": truth[f, p],
                "univ_annot3": 2 * truth[f, p],
                "isValidFrame": np.array([[1 if p < 2 else 0]]),
            }
    savemat(tmp_path / "annot.mat", {"annotations": ann})
    d = R.load_mupots_annot(tmp_path / "annot.mat")
    assert d["xyz"].shape == (F, P, 17, 3) and d["valid"].tolist() == [[True, True, False]] * 2
    assert np.allclose(d["xyz"][1, 2, 0], truth[1, 2, :, 14])  # pelvis is MuPoTS joint 14
    assert np.allclose(d["xyz_univ"], 2 * d["xyz"]) and np.allclose(d["uv"], d["xyz"][..., :2])
    savemat(tmp_path / "bad.mat", {"x": np.zeros(3)})
    with pytest.raises(ValueError, match="annotations"):
        R.load_mupots_annot(tmp_path / "bad.mat")


def test_panoptic_bodies_and_calibration(tmp_path):
    from cvtutor.data import geometry as G

    rng = np.random.default_rng(2)
    joints = rng.normal(size=(2, 19, 3)) * 30 + np.array([0, -100, 0])
    conf = rng.uniform(size=(2, 19))
    frame = {
        "version": 0.7,
        "univTime": 1.0,
        "fpsType": "hd_29_97",
        "bodies": [
            {
                "id": k,
                "joints19": np.concatenate([joints[k], conf[k][:, None]], 1).reshape(-1).tolist(),
            }
            for k in range(2)
        ],
    }
    (tmp_path / "body3DScene_00000001.json").write_text(json.dumps(frame))
    R_cam = G.so3_exp(torch.tensor([0.1, -0.3, 0.05], dtype=torch.float64)).numpy()
    cam = {
        "name": "00_03",
        "type": "hd",
        "resolution": [1920, 1080],
        "K": [[1400, 0, 960], [0, 1400, 540], [0, 0, 1]],
        "distCoef": [0, 0, 0, 0, 0],
        "R": R_cam.tolist(),
        "t": [[10.0], [50.0], [300.0]],
    }
    (tmp_path / "calibration_x.json").write_text(
        json.dumps({"calibDataSource": "x", "cameras": [cam]})
    )
    b = R.load_panoptic_bodies(tmp_path / "body3DScene_00000001.json")
    c = R.load_panoptic_calibration(tmp_path / "calibration_x.json")["00_03"]
    assert (
        np.allclose(b["joints"], joints)
        and np.allclose(b["confidence"], conf)
        and b["ids"].tolist() == [0, 1]
    )
    ours = G.project(
        G.world_to_camera(torch.tensor(joints), torch.tensor(c["R"]), torch.tensor(c["t"])),
        torch.tensor(c["K"]),
    )
    assert np.allclose(R.panoptic_project(joints, c), ours.numpy())  # no distortion: the pinhole
    c["dist"] = np.array([0.1, 0.0, 0.0, 0.0, 0.0])
    assert not np.allclose(R.panoptic_project(joints, c), ours.numpy())
    frame["bodies"][0]["joints19"] = [0.0] * 10
    (tmp_path / "bad.json").write_text(json.dumps(frame))
    with pytest.raises(ValueError, match="76 numbers"):
        R.load_panoptic_bodies(tmp_path / "bad.json")


def _3dpw_sequence():
    rng = np.random.default_rng(3)
    T = 4
    return {
        "sequence": "courtyard_x_00",
        "genders": ["m"],
        "poses": [rng.normal(size=(T, 72))],
        "trans": [rng.normal(size=(T, 3))],
        "betas": [rng.normal(size=10)],
        "jointPositions": [rng.normal(size=(T, 72))],
        "cam_poses": np.tile(np.eye(4), (T, 1, 1)),
        "cam_intrinsics": np.eye(3),
        "poses2d": [rng.normal(size=(T, 3, 18))],
        "campose_valid": [np.ones(T)],
        "img_frame_ids": np.arange(T),
    }


def test_3dpw_pickle_and_a_malicious_one(tmp_path):
    seq = _3dpw_sequence()
    (tmp_path / "seq.pkl").write_bytes(pickle.dumps(seq, protocol=2))
    d = R.load_3dpw(tmp_path / "seq.pkl")
    assert d["joints"][0].shape == (4, 24, 3) and np.allclose(
        d["joints"][0].reshape(4, 72), seq["jointPositions"][0]
    )

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    bad = dict(seq, poses=[Evil()])
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(safe_pickle.UnsafePickleError, match="refusing"):
        R.load_3dpw(tmp_path / "evil.pkl")
    del seq["cam_poses"]
    (tmp_path / "short.pkl").write_bytes(pickle.dumps(seq, protocol=2))
    with pytest.raises(ValueError, match="missing \\['cam_poses'\\]"):
        R.load_3dpw(tmp_path / "short.pkl")


def test_mpii_json_and_head_sizes(tmp_path):
    import scipy.io

    joints = [[10.0 + j, 20.0 + j, float(j % 2)] for j in range(16)]
    recs = [{"dataset": "MPI", "isValidation": float(v), "img_paths": f"{i:09d}.jpg",
             "objpos": [50.0, 60.0 + i], "scale_provided": 1.5, "joint_self": joints}
            for i, v in enumerate((0, 1, 1))]
    p = tmp_path / "mpii_annotations.json"
    p.write_text(json.dumps(recs))
    out = R.load_mpii_json(p)
    assert out["joints"].shape == (3, 16, 2) and out["is_validation"].tolist() == [False, True, True]
    assert out["joints"][0, R.MPII_JOINTS.index("head_top")].tolist() == [19.0, 29.0]
    assert out["visible"][0].sum() == 8 and out["center"][2].tolist() == [50.0, 62.0]
    boxes = np.zeros((2, 2, 2))
    boxes[1, :, 0] = (3.0, 4.0)  # diagonal 5 px
    boxes[1, :, 1] = (6.0, 8.0)  # diagonal 10 px
    m = tmp_path / "detections_our_format.mat"
    scipy.io.savemat(m, {"headboxes_src": boxes})
    assert np.allclose(R.load_mpii_head_sizes(m), [3.0, 6.0])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"img_paths": "x.jpg"}]))
    with pytest.raises(ValueError, match="joint_self"):
        R.load_mpii_json(bad)
    with pytest.raises(FileNotFoundError, match="mpii_annotations"):
        R.load_mpii_json(tmp_path / "missing.json")
    scipy.io.savemat(m, {"other": boxes})
    with pytest.raises(ValueError, match="headboxes_src"):
        R.load_mpii_head_sizes(m)
