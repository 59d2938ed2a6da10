"""Readers of the real image-classification formats, on fixture files the tests write."""

import pickle
import struct

import numpy as np
import pytest
import torch
from fixture_files import write_cifar10

from cvtutor.data import safe_pickle
from cvtutor.data.imageclass import readers as R

rng = np.random.default_rng(0)


def _idx(path, arr):
    """Write an IDX file: magic (0, 0, dtype 0x08 = uint8, ndim), big-endian dims, data."""
    with open(path, "wb") as f:
        f.write(
            struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
        )
        f.write(arr.astype(np.uint8).tobytes())


def test_mnist_idx(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    imgs = {s: rng.integers(0, 256, (n, 28, 28)) for s, n in (("train", 5), ("t10k", 3))}
    labs = {s: rng.integers(0, 10, len(imgs[s])) for s in imgs}
    for s in imgs:
        _idx(raw / f"{s}-images-idx3-ubyte", imgs[s])
        _idx(raw / f"{s}-labels-idx1-ubyte", labs[s])
    tr, te = R.read_mnist(tmp_path, "train"), R.read_mnist(tmp_path, "test")
    assert tr.x.shape == (5, 1, 28, 28) and te.x.shape == (3, 1, 28, 28)
    assert torch.allclose(tr.x[:, 0] * 255, torch.tensor(imgs["train"], dtype=torch.float32))
    assert tr.y.tolist() == labs["train"].tolist()
    with pytest.raises(R.DataLayoutError, match="train-images-idx3-ubyte"):
        R.read_mnist(tmp_path / "nowhere")
    (raw / "t10k-images-idx3-ubyte").write_bytes(b"not an idx file at all")
    with pytest.raises(R.DataLayoutError, match="not valid IDX files"):
        R.read_mnist(tmp_path, "test")


def _cifar_batch(n, label_key="labels"):
    return {
        "data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
        label_key: rng.integers(0, 10, n).tolist(),
        "batch_label": "fixture",
    }


def test_cifar10_and_100_pickles_through_the_restricted_unpickler(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {f"data_batch_{i}": _cifar_batch(4) for i in range(1, 6)}
    batches["test_batch"] = _cifar_batch(3)
    for name, b in batches.items():
        (folder / name).write_bytes(pickle.dumps(b, protocol=2))
    tr = R.read_cifar(tmp_path, "train")
    assert tr.x.shape == (20, 3, 32, 32) and tr.classes[0] == "airplane"
    # the row layout is 1024 red, 1024 green, 1024 blue values, row-major
    first = batches["data_batch_1"]["data"][0]
    assert tr.x[0, 1, 0, 5] * 255 == pytest.approx(float(first[1024 + 5]))
    assert R.read_cifar(tmp_path, "test").y.tolist() == batches["test_batch"]["labels"]
    c100 = tmp_path / "cifar-100-python"
    c100.mkdir()
    b = _cifar_batch(6, "fine_labels")
    b["coarse_labels"] = [0] * 6
    (c100 / "train").write_bytes(
        pickle.dumps({k.encode() if k != "batch_label" else k: v for k, v in b.items()})
    )
    assert (
        R.read_cifar(tmp_path, "train", classes=100).y.tolist() == b["fine_labels"]
    )  # bytes keys too
    with pytest.raises(R.DataLayoutError, match="test_batch"):
        R.read_cifar(tmp_path / "empty", "test")


class _Evil:
    def __reduce__(self):
        return (print, ("this pickle ran code",))


def test_cifar_pickle_that_runs_code_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps({"data": _Evil(), "labels": [0]}))
    with pytest.raises(safe_pickle.UnsafePickleError, match="builtins.print"):
        R.read_cifar(tmp_path, "test")


def test_svhn_mat(tmp_path):
    import scipy.io

    x = rng.integers(0, 256, (32, 32, 3, 4)).astype(np.uint8)
    y = np.array([[10], [1], [5], [10]], dtype=np.uint8)
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": x, "y": y})
    s = R.read_svhn(tmp_path, "test")
    assert s.x.shape == (4, 3, 32, 32) and s.y.tolist() == [0, 1, 5, 0]  # label 10 is the digit 0
    assert s.x[2, 1, 3, 7] * 255 == pytest.approx(float(x[3, 7, 1, 2]))
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"images": x})
    with pytest.raises(R.DataLayoutError, match=r"found keys \['images'\]"):
        R.read_svhn(tmp_path, "train")
    with pytest.raises(R.DataLayoutError, match="extra_32x32.mat"):
        R.read_svhn(tmp_path, "extra")


def _png(path, arr):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_image_folder_and_list_file(tmp_path):
    imgs = {}
    for cls in ("cat", "ant"):
        for i in range(2):
            imgs[(cls, i)] = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
            _png(tmp_path / "folder" / cls / f"{i}.png", imgs[(cls, i)])
    s = R.read_image_folder(tmp_path / "folder")
    assert (
        s.classes == ("ant", "cat") and s.y.tolist() == [0, 0, 1, 1] and s.x.shape == (4, 3, 8, 8)
    )
    assert torch.allclose(
        s.x[2].permute(1, 2, 0) * 255, torch.tensor(imgs[("cat", 0)], dtype=torch.float32)
    )
    with pytest.raises(R.DataLayoutError, match="one folder per class"):
        R.read_image_folder(tmp_path / "missing")
    lst = tmp_path / "val.txt"
    lst.write_text("folder/cat/1.png 3\nfolder/ant/0.png 0\n")
    t = R.read_list_file(lst)
    assert t.y.tolist() == [3, 0] and len(t.classes) == 4
    assert torch.allclose(
        t.x[0].permute(1, 2, 0) * 255, torch.tensor(imgs[("cat", 1)], dtype=torch.float32)
    )
    lst.write_text("folder/cat/1.png\n")
    with pytest.raises(R.DataLayoutError, match="is not '<path> <label>'"):
        R.read_list_file(lst)
    lst.write_text("folder/cat/9.png 1\n")
    with pytest.raises(R.DataLayoutError, match="listed images are missing"):
        R.read_list_file(lst)


def test_cifar_c_npy(tmp_path):
    x = rng.integers(0, 256, (15, 32, 32, 3)).astype(np.uint8)  # 3 images x 5 severities
    y = np.tile(np.array([1, 2, 3]), 5)
    np.save(tmp_path / "fog.npy", x)
    np.save(tmp_path / "labels.npy", y)
    s = R.read_cifar_c(tmp_path, "fog", 4)
    assert s.x.shape == (3, 3, 32, 32) and s.y.tolist() == [1, 2, 3]
    assert torch.allclose(s.x[0].permute(1, 2, 0) * 255, torch.tensor(x[9], dtype=torch.float32))
    with pytest.raises(R.DataLayoutError, match=r"'snow' not found \(have \['fog', 'labels'\]\)"):
        R.read_cifar_c(tmp_path, "snow", 1)
    np.save(tmp_path / "bad.npy", x[:7])
    with pytest.raises(R.DataLayoutError, match="severities 1-5 stacked"):
        R.read_cifar_c(tmp_path, "bad", 1)


def _jpeg(path, arr):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path, format="PNG")  # content matters, not codec


def test_tiny_imagenet_folders(tmp_path):
    base = tmp_path / "tiny-imagenet-200"
    base.mkdir()
    wnids = ["n01443537", "n01629819", "n01641577"]
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    imgs = {}
    for i, w in enumerate(wnids):
        for j in range(2):
            a = np.full((8, 8, 3), 40 * i + j, dtype=np.uint8)
            imgs[(w, j)] = a
            _jpeg(base / "train" / w / "images" / f"{w}_{j}.JPEG", a)
    lines = []
    for j, w in enumerate(["n01641577", "n01443537"]):
        _jpeg(base / "val" / "images" / f"val_{j}.JPEG", np.full((8, 8, 3), 200 + j, np.uint8))
        lines.append(f"val_{j}.JPEG\t{w}\t0\t0\t7\t7")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    tr = R.read_tiny_imagenet(tmp_path, "train")
    assert tr.x.shape == (6, 3, 8, 8) and tr.classes == tuple(wnids)
    assert tr.y.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.allclose(tr.x[3] * 255, torch.full((3, 8, 8), 41.0))
    va = R.read_tiny_imagenet(tmp_path, "val")
    assert va.y.tolist() == [2, 0] and torch.allclose(va.x[1] * 255, torch.full((3, 8, 8), 201.0))
    sub = R.read_tiny_imagenet(tmp_path, "train", classes=(2,))
    assert sub.y.tolist() == [2, 2]
    with pytest.raises(R.DataLayoutError, match="wnids.txt"):
        R.read_tiny_imagenet(tmp_path / "nowhere")
    (base / "val" / "val_annotations.txt").write_text("val_0.JPEG n99999999 0 0 7 7\n")
    with pytest.raises(R.DataLayoutError, match="names no class"):
        R.read_tiny_imagenet(tmp_path, "val")
    with pytest.raises(ValueError, match="'train' or 'val'"):
        R.read_tiny_imagenet(tmp_path, "test")


def test_osr_split_lists_python_and_json(tmp_path):
    py = tmp_path / "split.py"
    py.write_text("splits_2020 = {\n    'mnist': [\n        [2, 4, 5, 9, 8, 3],\n"
                  "        [3, 2, 6, 9, 4, 0]\n    ],\n    'cifar100': [[4, 7, 9, 1]]\n}\n")
    out = R.read_osr_splits(py)
    assert out == {"splits_2020": {"mnist": [(2, 4, 5, 9, 8, 3), (3, 2, 6, 9, 4, 0)],
                                   "cifar100": [(4, 7, 9, 1)]}}
    js = tmp_path / "splits.json"
    js.write_text('{"svhn": [[5, 3, 7, 2, 8, 6]]}')
    assert R.read_osr_splits(js) == {"splits": {"svhn": [(5, 3, 7, 2, 8, 6)]}}
    # a file that would run code is refused, not executed
    evil = tmp_path / "evil.py"
    evil.write_text("import os\nsplits = {'mnist': [[1, 2]]}\n")
    with pytest.raises(R.DataLayoutError, match="not a 'name = literal' line"):
        R.read_osr_splits(evil)
    evil.write_text("splits = {'mnist': [[1, 2]]}.__class__('x')\n")
    with pytest.raises(R.DataLayoutError, match="not a literal"):
        R.read_osr_splits(evil)
    bad = tmp_path / "bad.py"
    bad.write_text("s = {'mnist': [[1, 1, 2]]}\n")
    with pytest.raises(R.DataLayoutError, match="distinct non-negative integers"):
        R.read_osr_splits(bad)
    with pytest.raises(R.DataLayoutError, match="not found"):
        R.read_osr_splits(tmp_path / "none.py")


def test_read_train_test_cifar_pickles_and_image_folders(tmp_path):
    write_cifar10(tmp_path)
    d = R.read_train_test("cifar10", tmp_path, device="cpu")
    assert d["train"].x.shape == (20, 3, 32, 32) and d["test"].x.shape == (4, 3, 32, 32)
    assert d["test"].y.tolist() == [0, 1, 2, 3]
    from PIL import Image

    for split in ("train", "val"):
        for c in ("n01", "n02"):
            (tmp_path / "inet" / split / c).mkdir(parents=True)
            for i in range(2 if split == "train" else 1):
                Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(
                    tmp_path / "inet" / split / c / f"{i}.JPEG")
    d = R.read_train_test("imagefolder", tmp_path / "inet")
    assert d["test"].classes == ("n01", "n02") and d["train"].x.shape == (4, 3, 8, 8)
    assert d["test"].x.shape == (2, 3, 8, 8)  # root/val is the test split
    with pytest.raises(ValueError, match="needs root"):
        R.read_train_test("cifar10", None)
    with pytest.raises(R.DataLayoutError):
        R.read_train_test("cifar10", tmp_path / "none")
    with pytest.raises(ValueError, match="data must be"):
        R.read_train_test("svhn", tmp_path)
