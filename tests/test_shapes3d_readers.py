"""The shape world's readers on fixture files written here (never a download)."""

import h5py
import numpy as np
import pytest
import torch

from cvtutor.data.shapes3d import readers as R

V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.0]])
F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


def _write_off(path):
    lines = (
        ["OFF", f"{len(V)} {len(F)} 0"]
        + [" ".join(map(str, v)) for v in V]
        + ["3 " + " ".join(map(str, f)) for f in F]
    )
    path.write_text("\n".join(lines) + "\n")


def _write_obj(path):
    path.write_text(
        "".join(f"v {a} {b} {c}\n" for a, b, c in V)
        + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in F)
    )


def _write_ply(path, verts=V):
    head = [
        "ply",
        "format ascii 1.0",
        f"element vertex {len(verts)}",
        "property float x",
        "property float y",
        "property float z",
        f"element face {len(F)}",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    body = [" ".join(map(str, v)) for v in verts] + ["3 " + " ".join(map(str, f)) for f in F]
    path.write_text("\n".join(head + body) + "\n")


@pytest.mark.parametrize(
    "writer,ext", [(_write_off, "off"), (_write_obj, "obj"), (_write_ply, "ply")]
)
def test_meshes_round_trip(tmp_path, writer, ext):
    p = tmp_path / f"tet.{ext}"
    writer(p)
    v, f = R.read_mesh(p)
    assert torch.allclose(v, torch.tensor(V, dtype=torch.float32)) and torch.equal(
        f, torch.tensor(F)
    )
    with pytest.raises(FileNotFoundError, match="expected a mesh file"):
        R.read_mesh(tmp_path / "missing.off")


def _pcd_header(n, data, fields="x y z intensity", size="4 4 4 4", typ="F F F U", count="1 1 1 1"):
    return (
        f"# .PCD v0.7\nVERSION 0.7\nFIELDS {fields}\nSIZE {size}\nTYPE {typ}\nCOUNT {count}\n"
        f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {data}\n"
    )


def test_pcd_ascii_and_binary(tmp_path):
    g = np.random.default_rng(0)
    xyz = g.random((5, 3)).astype(np.float32)
    inten = np.arange(5, dtype=np.uint32)
    a = tmp_path / "a.pcd"
    a.write_text(
        _pcd_header(5, "ascii")
        + "".join(f"{x!r} {y!r} {z!r} {i}\n" for (x, y, z), i in zip(xyz.tolist(), inten))
    )
    rec = np.zeros(5, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<u4")])
    rec["x"], rec["y"], rec["z"], rec["intensity"] = xyz[:, 0], xyz[:, 1], xyz[:, 2], inten
    b = tmp_path / "b.pcd"
    b.write_bytes(_pcd_header(5, "binary").encode() + rec.tobytes())
    for p in (a, b):
        out = R.read_pcd(p)
        assert torch.allclose(out["points"], torch.from_numpy(xyz)) and out[
            "intensity"
        ].tolist() == list(range(5))
    c = tmp_path / "c.pcd"
    c.write_bytes(_pcd_header(5, "binary_compressed").encode() + b"\0" * 16)
    with pytest.raises(ValueError, match="not supported"):
        R.read_pcd(c)
    short = tmp_path / "d.pcd"
    short.write_bytes(_pcd_header(5, "binary").encode() + rec.tobytes()[:20])
    with pytest.raises(ValueError, match="fewer than 5"):
        R.read_pcd(short)


def test_modelnet40_scanobjectnn_completion3d(tmp_path):
    g = np.random.default_rng(1)
    pts = [g.random((3, 16, 3)).astype(np.float32) for _ in range(2)]
    for i, p in enumerate(pts):
        with h5py.File(tmp_path / f"ply_data_train{i}.h5", "w") as h:
            h["data"] = p
            h["label"] = np.full((3, 1), i, dtype=np.uint8)
    out = R.read_modelnet40(tmp_path, "train")
    assert (
        torch.allclose(out["points"], torch.tensor(np.concatenate(pts)))
        and out["label"].tolist() == [0] * 3 + [1] * 3
    )
    with pytest.raises(FileNotFoundError, match="ply_data_test"):
        R.read_modelnet40(tmp_path, "test")
    so = tmp_path / "scan.h5"
    with h5py.File(so, "w") as h:
        h["data"], h["label"], h["mask"] = (
            pts[0],
            np.array([2, 5, 7]),
            np.ones((3, 16), dtype=np.int64),
        )
    out = R.read_scanobjectnn(so)
    assert out["label"].tolist() == [2, 5, 7] and out["mask"].shape == (3, 16)
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as h:
        h["points"] = pts[0]
    with pytest.raises(ValueError, match="no dataset 'data'"):
        R.read_scanobjectnn(bad)
    for kind in ("partial", "gt"):
        d = tmp_path / "c3d" / "val" / kind / "02691156"
        d.mkdir(parents=True)
        with h5py.File(d / "m1.h5", "w") as h:
            h["data"] = pts[0][0] * (2 if kind == "gt" else 1)
    out = R.read_completion3d(tmp_path / "c3d", "val")
    assert (
        torch.allclose(out["gt"], 2 * out["partial"])
        and out["synset"] == ["02691156"]
        and out["model"] == ["m1"]
    )


def test_pc15k_and_onet(tmp_path):
    g = np.random.default_rng(2)
    d = tmp_path / "pc15k" / "03001627" / "train"
    d.mkdir(parents=True)
    a = g.random((100, 3)).astype(np.float32)
    np.save(d / "m1.npy", a)
    out = R.read_pc15k(tmp_path / "pc15k", ["03001627"], "train", n_points=50)
    assert torch.allclose(out["points"][0], torch.from_numpy(a[:50])) and out["model"] == ["m1"]
    with pytest.raises(FileNotFoundError, match="PC15k"):
        R.read_pc15k(tmp_path / "pc15k", ["04379243"])
    q = g.random((13, 3)).astype(np.float16)
    occ = g.random(13) < 0.5
    np.savez(
        tmp_path / "points.npz",
        points=q,
        occupancies=np.packbits(occ),
        loc=np.zeros(3),
        scale=np.array(1.5),
    )
    out = R.read_onet_points(tmp_path / "points.npz")
    assert (
        torch.equal(out["occupancies"], torch.from_numpy(occ))
        and out["points"].dtype == torch.float32
    )
    assert out["scale"].item() == 1.5
    np.savez(tmp_path / "pointcloud.npz", points=q, normals=q)
    out = R.read_onet_pointcloud(tmp_path / "pointcloud.npz")
    assert torch.allclose(out["normals"], torch.tensor(q.astype(np.float32)))
    np.savez(tmp_path / "bad.npz", points=q)
    with pytest.raises(ValueError, match="missing"):
        R.read_onet_points(tmp_path / "bad.npz")


def test_faust_and_dfaust(tmp_path):
    for i in range(3):
        _write_ply(tmp_path / f"tr_reg_{i:03d}.ply", V + i)
    out = R.read_faust(tmp_path)
    assert out["verts"].shape == (3, 4, 3) and torch.allclose(
        out["verts"][2], torch.tensor(V + 2, dtype=torch.float32)
    )
    assert torch.equal(out["faces"], torch.tensor(F))
    seq = np.stack([V + t for t in range(5)], -1)  # (V, 3, T)
    p = tmp_path / "registrations_f.hdf5"
    with h5py.File(p, "w") as h:
        h["50004_jumping_jacks"] = seq
        h["faces"] = F
    assert R.read_dfaust(p)["sequences"] == ["50004_jumping_jacks"]
    out = R.read_dfaust(p, "50004_jumping_jacks")
    assert out["verts"].shape == (5, 4, 3) and torch.allclose(
        out["verts"][3], torch.tensor(V + 3, dtype=torch.float32)
    )
    with pytest.raises(KeyError, match="holds"):
        R.read_dfaust(p, "50004_punching")
