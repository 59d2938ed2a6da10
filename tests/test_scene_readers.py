"""The real-format readers of cvtutor.data.shapes3d.scene_readers (ScanNet, S3DIS, ShapeNetPart, PLY),
on fixture files the tests write."""

import json
import struct

import numpy as np
import pytest

from cvtutor.data.shapes3d import scene_readers as R


def _ply_ascii(path, verts, extra=(), faces=None):
    names = ["x", "y", "z", *[n for n, _ in extra]]
    lines = ["ply", "format ascii 1.0", "comment fixture", f"element vertex {len(verts)}"]
    lines += ["property float x", "property float y", "property float z"]
    lines += [f"property {t} {n}" for n, t in extra]
    if faces is not None:
        lines += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
    lines.append("end_header")
    for k, v in enumerate(verts):
        lines.append(" ".join(str(x) for x in v))
    for f in faces or []:
        lines.append(" ".join(map(str, [len(f), *f])))
    path.write_text("\n".join(lines) + "\n")


def _ply_binary(path, xyz, rgb, faces):
    head = ("ply\nformat binary_little_endian 1.0\n"
            f"element vertex {len(xyz)}\nproperty float x\nproperty float y\nproperty float z\n"
            "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar alpha\n"
            f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n")
    body = b"".join(struct.pack("<fffBBBB", *p, *c, 255) for p, c in zip(xyz, rgb))
    body += b"".join(struct.pack("<B" + "i" * len(f), len(f), *f) for f in faces)
    path.write_bytes(head.encode() + body)


def test_read_ply_binary_and_ascii_agree(tmp_path):
    xyz = [(0.0, 1.0, 2.0), (3.5, -1.0, 0.25), (1.0, 1.0, 1.0)]
    rgb = [(255, 0, 0), (0, 128, 0), (0, 0, 255)]
    _ply_binary(tmp_path / "b.ply", xyz, rgb, [(0, 1, 2)])
    _ply_ascii(tmp_path / "a.ply", [(*p, *c) for p, c in zip(xyz, rgb)],
               extra=[("red", "uchar"), ("green", "uchar"), ("blue", "uchar")], faces=[(0, 1, 2)])
    b, a = R.read_ply(tmp_path / "b.ply"), R.read_ply(tmp_path / "a.ply")
    for k in ("x", "y", "z", "red", "green", "blue"):
        np.testing.assert_array_equal(a["vertex"][k], b["vertex"][k])
    assert b["vertex"]["x"].dtype == np.float32 and list(b["face"]["vertex_indices"][0]) == [0, 1, 2]
    assert list(a["face"]["vertex_indices"][0]) == [0, 1, 2]


def test_read_ply_errors(tmp_path):
    (tmp_path / "bad.ply").write_text("not a ply\n")
    with pytest.raises(ValueError, match="not a PLY"):
        R.read_ply(tmp_path / "bad.ply")
    (tmp_path / "short.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 5\n"
                                         b"property float x\nend_header\n\x00\x00")
    with pytest.raises(ValueError, match="too short"):
        R.read_ply(tmp_path / "short.ply")
    with pytest.raises(FileNotFoundError, match=".ply"):
        R.read_ply(tmp_path / "missing.ply")


def test_read_scannet_scene(tmp_path):
    d = tmp_path / "scene0000_00"
    d.mkdir()
    xyz = [(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
    rgb = [(255, 255, 255), (0, 0, 0), (255, 0, 0), (0, 255, 0)]
    _ply_binary(d / "scene0000_00_vh_clean_2.ply", xyz, rgb, [(0, 1, 2), (0, 2, 3)])
    _ply_ascii(d / "scene0000_00_vh_clean_2.labels.ply",
               [(*p, *c, 255, lab) for p, c, lab in zip(xyz, rgb, (1, 2, 5, 5))],
               extra=[("red", "uchar"), ("green", "uchar"), ("blue", "uchar"), ("alpha", "uchar"),
                      ("label", "ushort")])
    (d / "scene0000_00_vh_clean_2.0.010000.segs.json").write_text(
        json.dumps({"sceneId": "scene0000_00", "segIndices": [7, 7, 9, 9]}))
    (d / "scene0000_00.aggregation.json").write_text(json.dumps(
        {"sceneId": "scene0000_00", "segGroups": [{"id": 0, "objectId": 0, "segments": [9],
                                                   "label": "chair"}]}))
    s = R.read_scannet_scene(d)
    assert s["points"].shape == (4, 3) and s["points"][3].tolist() == [0, 0, 1]
    assert s["colors"][0].tolist() == [1, 1, 1] and s["label"].tolist() == [1, 2, 5, 5]
    assert s["segment"].tolist() == [7, 7, 9, 9] and s["instance"].tolist() == [0, 0, 1, 1]
    assert s["instance_labels"] == {0: "chair"}
    with pytest.raises(FileNotFoundError, match="_vh_clean_2.ply"):
        R.read_scannet_scene(tmp_path)


def test_read_s3dis_room(tmp_path):
    ann = tmp_path / "Area_5" / "office_1" / "Annotations"
    ann.mkdir(parents=True)
    np.savetxt(ann / "chair_1.txt", [[0, 0, 0, 255, 0, 0], [1, 1, 1, 0, 255, 0]], fmt="%.3f")
    np.savetxt(ann / "floor_1.txt", [[2, 2, 0, 0, 0, 255]], fmt="%.3f")
    np.savetxt(ann / "stairs_1.txt", [[3, 3, 3, 10, 10, 10]], fmt="%.3f")
    r = R.read_s3dis_room(tmp_path / "Area_5" / "office_1")
    assert r["points"].shape == (4, 3)
    names = [R.S3DIS_CLASSES[k] for k in r["label"].tolist()]
    assert names == ["chair", "chair", "floor", "clutter"] and r["instance"].tolist() == [0, 0, 1, 2]
    assert abs(float(r["colors"][0, 0]) - 1) < 1e-6
    with pytest.raises(FileNotFoundError, match="Annotations"):
        R.read_s3dis_room(tmp_path / "Area_5")
    np.savetxt(ann / "table_1.txt", [[0, 0, 0]], fmt="%.1f")
    with pytest.raises(ValueError, match="x y z r g b"):
        R.read_s3dis_room(tmp_path / "Area_5" / "office_1")


def test_read_shapenetpart(tmp_path):
    (tmp_path / "points").mkdir()
    (tmp_path / "points_label").mkdir()
    np.savetxt(tmp_path / "points" / "a1.pts", [[0, 0, 0], [0.1, 0.2, 0.3], [1, 1, 1]])
    (tmp_path / "points_label" / "a1.seg").write_text("1\n2\n2\n")
    s = R.read_shapenetpart(tmp_path / "points" / "a1.pts")
    assert s["points"].shape == (3, 3) and s["part"].tolist() == [1, 2, 2]
    (tmp_path / "points_label" / "a1.seg").write_text("1\n2\n")
    with pytest.raises(ValueError, match="2 part labels for 3 points"):
        R.read_shapenetpart(tmp_path / "points" / "a1.pts")
    with pytest.raises(FileNotFoundError, match="points_label"):
        R.read_shapenetpart(tmp_path / "points" / "a1.pts", tmp_path / "nope.seg")
