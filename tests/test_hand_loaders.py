import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from cvtutor.data import freihand, rhd, stb
from cvtutor.data.hands.skeleton import CANON2RHD, CANON2STB


def test_rhd_depth_encoding_round_trip():
    d = np.random.default_rng(0).uniform(0.1, 4.9, size=(5, 7))
    back = rhd.depth_two_uint8_to_float(rhd.depth_float_to_two_uint8(d))
    assert np.abs(back - d).max() <= 5.0 / 65535 / 2 + 1e-12


def _write_rhd(root, n=3, W=16):
    rng = np.random.default_rng(1)
    folder = root / "evaluation"
    for sub in ("color", "depth", "mask"):
        (folder / sub).mkdir(parents=True)
    anno, truth = {}, {}
    for i in range(n):
        canon = rng.normal(size=(21, 3)) * 0.05 + [0, 0, 0.5]
        xyz = rng.normal(size=(42, 3))
        uv_vis = np.c_[rng.uniform(0, W, (42, 2)), rng.integers(0, 2, 42)]
        left = i == 1
        sl = slice(0, 21) if left else slice(21, 42)
        xyz[sl] = canon[list(CANON2RHD)]
        anno[i] = {"xyz": xyz.astype(np.float32), "uv_vis": uv_vis.astype(np.float32), "K": np.eye(3, dtype=np.float32) * 100}
        depth = rng.uniform(0.3, 1.0, (W, W))
        mask = np.zeros((W, W), np.uint8)
        mask[2:6, 2:6] = 5 if left else 20
        Image.fromarray(rng.integers(0, 255, (W, W, 3), dtype=np.uint8)).save(folder / "color" / f"{i:05d}.png")
        Image.fromarray(rhd.depth_float_to_two_uint8(depth)).save(folder / "depth" / f"{i:05d}.png")
        Image.fromarray(mask).save(folder / "mask" / f"{i:05d}.png")
        truth[i] = (canon, depth, left, uv_vis[sl])
    with open(folder / "anno_evaluation.pickle", "wb") as f:
        pickle.dump(anno, f, protocol=2)
    return truth


def test_rhd_fixture_round_trip(tmp_path):
    truth = _write_rhd(tmp_path)
    data = rhd.load_rhd(tmp_path, "test")
    assert data["rgb"].shape == (3, 3, 16, 16) and data["xyz"].shape == (3, 21, 3)
    for i, (canon, depth, left, uvv) in truth.items():
        mirror = np.array([-1.0, 1, 1]) if left else 1.0
        np.testing.assert_allclose(data["xyz"][i].numpy(), canon * mirror, atol=1e-6)
        d = depth[:, ::-1] if left else depth
        np.testing.assert_allclose(data["depth"][i, 0].numpy(), d, atol=1e-4)
        assert bool(data["left"][i]) == left and data["mask"][i].sum() == 16
    assert torch.allclose((data["xyz"][:, 9] - data["xyz"][:, 10]).norm(dim=-1), data["scale"])


def test_rhd_missing_and_malformed(tmp_path):
    with pytest.raises(FileNotFoundError, match="RHD_published_v2"):
        rhd.load_rhd(tmp_path, "train")
    _write_rhd(tmp_path)
    with open(tmp_path / "evaluation" / "anno_evaluation.pickle", "wb") as f:
        pickle.dump({0: {"xyz": np.zeros((21, 3)), "uv_vis": np.zeros((42, 3)), "K": np.eye(3)}}, f)
    with pytest.raises(ValueError, match=r"xyz \(42,3\)"):
        rhd.load_rhd(tmp_path, "test")


def test_stb_fixture_round_trip_and_split(tmp_path):
    (tmp_path / "labels").mkdir()
    rng = np.random.default_rng(2)
    truth = {}
    for seq in stb.SEQUENCES:
        canon = rng.normal(size=(4, 21, 3)) * 30 + [0, 0, 500]  # mm
        stb_order = canon[:, list(CANON2STB)]
        savemat(tmp_path / "labels" / f"{seq}_BB.mat", {"handPara": stb_order.transpose(2, 1, 0)})
        truth[seq] = canon
    data = stb.load_stb_labels(tmp_path, "test", wrist_root=False)
    expected = np.concatenate([truth["B1Counting"], truth["B1Random"]]) / 1000
    np.testing.assert_allclose(data["xyz"].numpy(), expected, atol=1e-6)
    assert set(data["sequence"].tolist()) == {0, 1}
    tr = stb.load_stb_labels(tmp_path, "train")
    assert len(tr["xyz"]) == 40 and 0 not in tr["sequence"].tolist()
    w = stb.palm_to_wrist(expected)
    np.testing.assert_allclose(w[:, 0], expected[:, 9] + 2.2 * (expected[:, 0] - expected[:, 9]))
    with pytest.raises(FileNotFoundError, match="handPara"):
        stb.load_stb_labels(tmp_path, "test", camera="SK")


def test_freihand_fixture_versions_and_split(tmp_path):
    n = 11
    rng = np.random.default_rng(3)
    xyz = rng.normal(size=(n, 21, 3)) * 0.05 + [0, 0, 0.5]
    K = np.tile(np.array([[200.0, 0, 112], [0, 200, 112], [0, 0, 1]]), (n, 1, 1))
    (tmp_path / "training_xyz.json").write_text(json.dumps(xyz.tolist()))
    (tmp_path / "training_K.json").write_text(json.dumps(K.tolist()))
    (tmp_path / "training" / "rgb").mkdir(parents=True)
    for j in range(4 * n):  # version k of sample i is image i + k n, coloured by k
        Image.fromarray(np.full((8, 8, 3), 40 * (j // n), np.uint8)).save(tmp_path / "training" / "rgb" / f"{j:08d}.jpg")
    tr = freihand.load_freihand(tmp_path, "S", "train")
    te = freihand.load_freihand(tmp_path, "S", "test")
    assert len(tr["xyz"]) + len(te["xyz"]) == n and te["index"][0] == len(tr["xyz"])
    np.testing.assert_allclose(tr["xyz"].numpy(), xyz[: len(tr["xyz"])], atol=1e-6)
    assert abs(tr["rgb"].mean().item() - 80 / 255) < 0.02  # version S = k 2
    assert list(freihand.kap_split(32_560, "test")) == list(range(30_000, 32_560))
    with pytest.raises(ValueError, match="version"):
        freihand.load_freihand(tmp_path, "X")
    (tmp_path / "training_K.json").write_text(json.dumps([[1, 2]]))
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        freihand.load_freihand(tmp_path, "G")


def test_stb_images_depth_and_sk_extrinsic(tmp_path):
    from cvtutor.data.hands.skeleton import CANON2STB as C2S

    (tmp_path / "labels").mkdir()
    rng = np.random.default_rng(4)
    canon = rng.normal(size=(3, 21, 3)) * 30 + [0, 0, 500]
    for seq in stb.SEQUENCES:
        savemat(tmp_path / "labels" / f"{seq}_SK.mat", {"handPara": canon[:, list(C2S)].transpose(2, 1, 0)})
    folder = tmp_path / "images" / "B1Counting"
    folder.mkdir(parents=True)
    depth_mm = rng.integers(300, 1200, size=(6, 8))
    for i in range(2):
        Image.fromarray(np.full((6, 8, 3), 60 * i, np.uint8)).save(folder / f"SK_color_{i}.png")
        enc = np.zeros((6, 8, 3), np.uint8)
        enc[..., 0], enc[..., 1] = depth_mm % 256, depth_mm // 256
        Image.fromarray(enc).save(folder / f"SK_depth_{i}.png")
    data = stb.load_stb(tmp_path, "test", camera="SK", limit=2, with_depth=True, wrist_root=False)
    assert data["rgb"].shape == (2, 3, 6, 8) and data["depth"].shape == (2, 1, 6, 8)
    assert torch.allclose(data["rgb"][1], torch.full((3, 6, 8), 60 / 255))
    np.testing.assert_allclose(data["depth"][0, 0].numpy(), depth_mm / 1000.0, rtol=1e-6)
    # the extrinsic: a pure translation when the rotation is zero, and a proper rotation matrix
    R = stb.rodrigues(stb.SK_ROT_VEC)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    expected = (canon[:2] / 1000 - np.array(stb.SK_TRANS_MM) / 1000) @ R
    np.testing.assert_allclose(data["xyz"].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(stb.rodrigues([0, 0, np.pi / 2]) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    assert data["frame"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="only the SK"):
        stb.load_stb(tmp_path, "test", camera="BB", with_depth=True)
    with pytest.raises(FileNotFoundError, match="SK_color_2.png"):
        stb.load_stb(tmp_path, "test", camera="SK", limit=3)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        stb.decode_sk_depth(np.zeros((4, 4)))
