"""Readers of the real image-classification data sets, for readers who own them (no download).

Used by the chapters of the section "Recognition, robustness and efficiency" in place of the
procedural sets (``notebooks/eccv2020/world_images.ipynb``, section 1). Each returns an
:class:`~cvtutor.data.imageclass.sets.ImageSet` of float images ``(N, C, H, W)`` in [0, 1] and
raises :class:`DataLayoutError` naming the expected layout when files are missing or malformed.

- :func:`read_mnist`: ``root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``, read by
  ``torchvision.datasets.MNIST(download=False)``;
- :func:`read_cifar`: ``root/cifar-10-batches-py/{data_batch_1..5,test_batch}`` or
  ``root/cifar-100-python/{train,test}``, through the restricted unpickler (torchvision's reader
  unpickles with ``pickle.load``, which would run code a hostile file holds);
- :func:`read_svhn`: ``root/{train,test,extra}_32x32.mat`` via ``scipy.io.loadmat`` (torchvision's
  reader insists on the official checksums, so it cannot read a subset or a fixture);
- :func:`read_image_folder`: ``root/<class>/<image>`` via ``torchvision.datasets.ImageFolder``;
- :func:`read_list_file`: a text file of ``<relative path> <label>`` lines and an image folder;
- :func:`read_tiny_imagenet`: ``root/tiny-imagenet-200/{wnids.txt, train/<wnid>/images/*.JPEG,
  val/images/*.JPEG, val/val_annotations.txt}`` (the official archive's layout);
- :func:`read_osr_splits`: the open-set benchmarks' fixed known-class lists (OSRCI / ARPL's
  ``split.py``: a dict literal ``{data set: [[known classes], ...]}``, or the same as JSON), read
  without running the file;
- :func:`read_cifar_c`: ``root/<corruption>.npy`` (``(5 n, 32, 32, 3)`` uint8, severities 1-5 in
  order) and ``root/labels.npy`` (CIFAR-10-C, CIFAR-100-C; ImageNet-C's ``.npy`` exports alike).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cvtutor.data import safe_pickle
from cvtutor.data.imageclass.sets import ImageSet

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


class DataLayoutError(FileNotFoundError):
    """The data set's files are absent or not in the expected layout."""


def _images(arr: np.ndarray) -> torch.Tensor:
    """``(N, H, W)`` or ``(N, H, W, C)`` uint8 -> float ``(N, C, H, W)`` in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.ndim == 3:
        t = t[:, None]
    else:
        t = t.permute(0, 3, 1, 2)
    return t.float() / 255


def read_mnist(root: str | Path, split: str = "train") -> ImageSet:
    """MNIST's IDX files: ``(N, 1, 28, 28)`` images and labels 0-9, via torchvision."""
    from torchvision.datasets import MNIST

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    layout = (
        f"expected {Path(root) / 'MNIST' / 'raw'} to hold train-images-idx3-ubyte, "
        "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (uncompressed)"
    )
    try:
        ds = MNIST(str(root), train=split == "train", download=False)
    except RuntimeError as err:
        raise DataLayoutError(f"MNIST not found: {layout}") from err
    except (
        AssertionError,
        ValueError,
        KeyError,
    ) as err:  # torchvision's IDX parser, malformed file
        raise DataLayoutError(f"MNIST files are not valid IDX files ({err}): {layout}") from err
    return ImageSet(
        ds.data.float()[:, None] / 255, ds.targets.long(), tuple(str(d) for d in range(10))
    )


def _get(d: dict, key: str):
    for k in (key, key.encode()):
        if k in d:
            return d[k]
    raise KeyError(key)


def read_cifar(root: str | Path, split: str = "train", classes: int = 10) -> ImageSet:
    """CIFAR-10 (``classes=10``) or CIFAR-100 (``classes=100``, fine labels) from the Python
    pickles, through :mod:`cvtutor.data.safe_pickle`: ``(N, 3, 32, 32)`` images."""
    if split not in ("train", "test") or classes not in (10, 100):
        raise ValueError(f"need split 'train'/'test' and classes 10/100, got {split!r}, {classes}")
    if classes == 10:
        folder = Path(root) / "cifar-10-batches-py"
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        label_key = "labels"
    else:
        folder = Path(root) / "cifar-100-python"
        names, label_key = [split], "fine_labels"
    layout = f"expected {folder} with {', '.join(names)} (the 'python version' pickles)"
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataLayoutError(f"CIFAR-{classes} files missing ({', '.join(missing)}): {layout}")
    xs, ys = [], []
    for n in names:
        batch = safe_pickle.load(folder / n)
        try:
            data, labels = np.asarray(_get(batch, "data")), np.asarray(_get(batch, label_key))
        except (KeyError, TypeError) as err:
            raise DataLayoutError(f"{folder / n}: no '{err.args[0]}' entry; {layout}") from None
        if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
            raise DataLayoutError(
                f"{folder / n}: data must be (N, 3072) uint8 with N labels, got {data.shape}, "
                f"{len(labels)} labels; {layout}"
            )
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels)
    x = torch.from_numpy(np.concatenate(xs)).float() / 255
    names_out = CIFAR10_CLASSES if classes == 10 else tuple(str(i) for i in range(100))
    return ImageSet(x, torch.from_numpy(np.concatenate(ys)).long(), names_out)


def read_svhn(root: str | Path, split: str = "train") -> ImageSet:
    """SVHN's cropped digits ``<split>_32x32.mat`` (``X (32, 32, 3, N)``, ``y (N, 1)`` with 10 for
    the digit 0): ``(N, 3, 32, 32)`` images, labels 0-9."""
    import scipy.io

    if split not in ("train", "test", "extra"):
        raise ValueError(f"split must be 'train', 'test' or 'extra', got {split!r}")
    path = Path(root) / f"{split}_32x32.mat"
    layout = (f"expected {path} with X (32, 32, 3, N) uint8 and y (N, 1) in 1..10 "
              "(format 2, cropped digits)")
    if not path.is_file():
        raise DataLayoutError(f"SVHN not found: {layout}")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises several types on a non-.mat file
        raise DataLayoutError(f"{path} is not a MATLAB file ({err}); {layout}") from err
    if "X" not in mat or "y" not in mat or mat["X"].ndim != 4 or mat["X"].shape[2] != 3:
        raise DataLayoutError(
            f"{path}: found keys {sorted(k for k in mat if not k.startswith('__'))}; {layout}"
        )
    y = torch.from_numpy(mat["y"].astype(np.int64).reshape(-1)) % 10
    return ImageSet(
        _images(np.transpose(mat["X"], (3, 0, 1, 2))), y, tuple(str(d) for d in range(10))
    )


def _load_rgb(paths: list[Path], layout: str) -> torch.Tensor:
    from PIL import Image

    arrs = []
    for p in paths:
        try:
            with Image.open(p) as im:
                arrs.append(np.asarray(im.convert("RGB")))
        except (OSError, ValueError) as err:
            raise DataLayoutError(f"{p} is not a readable image ({err}); {layout}") from err
    sizes = {a.shape for a in arrs}
    if len(sizes) != 1:
        raise DataLayoutError(
            f"images must share one size to form a batch, found {sorted(sizes)}; {layout}"
        )
    return _images(np.stack(arrs))


def read_image_folder(root: str | Path) -> ImageSet:
    """``root/<class name>/<image>`` (classes sorted by name), via torchvision's ``ImageFolder``;
    images of one size, converted to RGB."""
    from torchvision.datasets import ImageFolder

    layout = f"expected {root}/<class>/<image>.png|jpg, one folder per class, images of one size"
    try:
        ds = ImageFolder(str(root))
    except (FileNotFoundError, NotADirectoryError) as err:
        raise DataLayoutError(f"no image folder: {err}; {layout}") from err
    x = _load_rgb([Path(p) for p, _ in ds.samples], layout)
    return ImageSet(x, torch.tensor(ds.targets, dtype=torch.long), tuple(ds.classes))


REAL_SETS = ("cifar10", "imagefolder")


def read_train_test(data: str, root: str | Path | None, device=None) -> dict[str, ImageSet]:
    """``{"train", "test"}`` of a real classification set a chapter may train on instead of its
    synthetic one: ``"cifar10"`` (the Python pickles under ``root``, :func:`read_cifar`) or
    ``"imagefolder"`` (``root/train`` and ``root/val``, ImageNet style, :func:`read_image_folder`).
    Used by the efficiency chapters (E35 DSA, E40 MobileNeXt)."""
    if data not in REAL_SETS:
        raise ValueError(f"data must be one of {REAL_SETS}, got {data!r}")
    if root is None:
        raise ValueError(f"data={data!r} needs root, the folder of the real data")
    if data == "cifar10":
        out = {s: read_cifar(root, s, 10) for s in ("train", "test")}
    else:
        out = {s: read_image_folder(Path(root) / d) for s, d in (("train", "train"), ("test", "val"))}
    return {k: v.to(device) if device is not None else v for k, v in out.items()}


def read_list_file(list_file: str | Path, image_root: str | Path | None = None) -> ImageSet:
    """A ``<relative path> <integer label>`` line per image (TinyImageNet / ImageNet-style
    ``val.txt``, the open-set benchmarks' split files), paths relative to ``image_root`` (default:
    the list's folder).
    Class names are the label numbers."""
    list_file = Path(list_file)
    image_root = Path(image_root) if image_root is not None else list_file.parent
    layout = (f"expected {list_file} with one '<path relative to {image_root}> <integer label>' "
              "line per image")
    if not list_file.is_file():
        raise DataLayoutError(f"list file not found: {layout}")
    paths, labels = [], []
    for i, line in enumerate(list_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DataLayoutError(f"{list_file}:{i}: {line!r} is not '<path> <label>'; {layout}")
        paths.append(image_root / parts[0])
        labels.append(int(parts[1]))
    if not paths:
        raise DataLayoutError(f"{list_file} lists no image; {layout}")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataLayoutError(
            f"{len(missing)} listed images are missing, e.g. {missing[0]}; {layout}"
        )
    y = torch.tensor(labels, dtype=torch.long)
    return ImageSet(_load_rgb(paths, layout), y, tuple(str(c) for c in range(int(y.max()) + 1)))


def read_cifar_c(root: str | Path, corruption: str, severity: int) -> ImageSet:
    """One corruption and severity of CIFAR-10-C / CIFAR-100-C: ``root/<corruption>.npy`` holds the
    5 severities stacked in order (``(5 n, 32, 32, 3)`` uint8) and ``root/labels.npy`` their labels.
    """
    if severity not in (1, 2, 3, 4, 5):
        raise ValueError(f"severity must be 1..5, got {severity!r}")
    root = Path(root)
    layout = (
        f"expected {root}/<corruption>.npy of shape (5 n, H, W, 3) uint8 (severities 1-5 stacked) "
        f"and {root}/labels.npy of shape (5 n,)"
    )
    path, lab = root / f"{corruption}.npy", root / "labels.npy"
    if not path.is_file() or not lab.is_file():
        have = sorted(p.stem for p in root.glob("*.npy")) if root.is_dir() else []
        raise DataLayoutError(f"{corruption!r} not found (have {have}): {layout}")
    x = np.load(path, mmap_mode="r", allow_pickle=False)
    y = np.load(lab, allow_pickle=False)
    if x.ndim != 4 or x.shape[-1] != 3 or len(x) % 5 or len(y) != len(x) or x.dtype != np.uint8:
        raise DataLayoutError(
            f"{path}: shape {x.shape} dtype {x.dtype} with {len(y)} labels; {layout}"
        )
    n = len(x) // 5
    sl = slice((severity - 1) * n, severity * n)
    return ImageSet(
        _images(np.array(x[sl])),
        torch.from_numpy(y[sl].astype(np.int64)),
        tuple(str(c) for c in range(int(y.max()) + 1)),
    )


def read_tiny_imagenet(
    root: str | Path, split: str = "train", classes: tuple[int, ...] | None = None
) -> ImageSet:
    """TinyImageNet-200 (64x64 RGB): ``root/tiny-imagenet-200/wnids.txt`` names the classes (label
    = line number), ``train/<wnid>/images/*.JPEG``, ``val/images/*.JPEG`` labelled by
    ``val/val_annotations.txt`` (``<file> <wnid> <box>`` lines). ``classes`` keeps only those
    labels (e.g. an open-set split's 20 known classes); labels stay the 0..199 ones."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    base = Path(root) / "tiny-imagenet-200"
    layout = (f"expected {base}/wnids.txt, {base}/train/<wnid>/images/*.JPEG and "
              f"{base}/val/images/*.JPEG with {base}/val/val_annotations.txt")
    if not (base / "wnids.txt").is_file():
        raise DataLayoutError(f"TinyImageNet not found: {layout}")
    wnids = [w.strip() for w in (base / "wnids.txt").read_text().splitlines() if w.strip()]
    label = {w: i for i, w in enumerate(wnids)}
    keep = set(range(len(wnids)) if classes is None else classes)
    paths, labels = [], []
    if split == "train":
        for w in wnids:
            if label[w] in keep:
                found = sorted((base / "train" / w / "images").glob("*.JPEG"))
                if not found:
                    raise DataLayoutError(f"no training images for class {w}; {layout}")
                paths += found
                labels += [label[w]] * len(found)
    else:
        ann = base / "val" / "val_annotations.txt"
        if not ann.is_file():
            raise DataLayoutError(f"{ann} is missing; {layout}")
        for i, line in enumerate(ann.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2 or parts[1] not in label:
                raise DataLayoutError(f"{ann}:{i}: {line!r} names no class of wnids.txt; {layout}")
            if label[parts[1]] in keep:
                paths.append(base / "val" / "images" / parts[0])
                labels.append(label[parts[1]])
    missing = [str(p) for p in paths if not p.is_file()]
    if missing or not paths:
        raise DataLayoutError(f"{len(missing)} images missing (e.g. {missing[:1]}) or none "
                              f"listed; {layout}")
    return ImageSet(_load_rgb(paths, layout), torch.tensor(labels, dtype=torch.long), tuple(wnids))


def read_osr_splits(path: str | Path) -> dict[str, dict[str, list[tuple[int, ...]]]]:
    """The fixed open-set splits of the benchmarks: a Python file of top-level assignments
    ``name = {"mnist": [[2, 4, 5, 9, 8, 3], ...], ...}`` (ARPL's ``split.py``, after OSRCI) or a
    JSON file ``{"mnist": [[...], ...]}`` (returned under the name ``"splits"``).

    The Python file is parsed with :func:`ast.literal_eval` on each assignment, never executed.
    Returns ``{name: {data set: [known classes of each trial, in the file's order]}}``; each
    list of classes must hold distinct non-negative integers."""
    import ast
    import json

    path = Path(path)
    layout = (f"expected {path} to hold 'name = {{\"mnist\": [[known classes], ...], ...}}' "
              "assignments (Python literals) or that dict as JSON")
    if not path.is_file():
        raise DataLayoutError(f"split file not found: {layout}")
    text = path.read_text()
    raw: dict = {}
    if path.suffix == ".json":
        try:
            raw["splits"] = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataLayoutError(f"{path} is not JSON ({err}); {layout}") from None
    else:
        try:
            tree = ast.parse(text)
        except SyntaxError as err:
            raise DataLayoutError(f"{path} is not Python ({err}); {layout}") from None
        for node in tree.body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)):
                raise DataLayoutError(f"{path}:{node.lineno}: not a 'name = literal' line; {layout}")
            try:
                raw[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                raise DataLayoutError(f"{path}:{node.lineno}: the value is not a literal; "
                                      f"{layout}") from None
    out: dict[str, dict[str, list[tuple[int, ...]]]] = {}
    for name, table in raw.items():
        if not isinstance(table, dict) or not table:
            raise DataLayoutError(f"{path}: {name} is not a non-empty dict; {layout}")
        out[name] = {}
        for ds, trials in table.items():
            ok = isinstance(trials, list) and trials and all(
                isinstance(t, list) and t and len(set(t)) == len(t)
                and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in t)
                for t in trials)
            if not ok:
                raise DataLayoutError(f"{path}: {name}[{ds!r}] must be a list of lists of distinct "
                                      f"non-negative integers; {layout}")
            out[name][str(ds)] = [tuple(t) for t in trials]
    if not out:
        raise DataLayoutError(f"{path} holds no split table; {layout}")
    return out


def read_imagenet_c(root: str | Path, corruption: str, severity: int) -> ImageSet:
    """One corruption and severity of ImageNet-C (Hendrycks & Dietterich's release, E04):
    ``root/<corruption>/<severity 1-5>/<wnid>/<image>.JPEG``, read as an image folder (classes are
    the sorted wnids)."""
    if severity not in (1, 2, 3, 4, 5):
        raise ValueError(f"severity must be 1..5, got {severity!r}")
    root = Path(root)
    folder = root / corruption / str(severity)
    if not folder.is_dir():
        have = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise DataLayoutError(
            f"{folder} not found (corruptions present: {have}); expected "
            f"{root}/<corruption>/<severity 1-5>/<wnid>/<image>.JPEG"
        )
    return read_image_folder(folder)


def read_mnist_c(root: str | Path, corruption: str, split: str = "test") -> ImageSet:
    """One corruption of MNIST-C (Mu & Gilmer 2019, E04): ``root/<corruption>/{train,test}_
    images.npy`` (``(N, 28, 28, 1)`` or ``(N, 28, 28)`` uint8) and ``{train,test}_labels.npy``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    layout = (
        f"expected {root}/<corruption>/{split}_images.npy ((N, H, W) or (N, H, W, 1) uint8) and "
        f"{root}/<corruption>/{split}_labels.npy ((N,) integers)"
    )
    img, lab = root / corruption / f"{split}_images.npy", root / corruption / f"{split}_labels.npy"
    if not img.is_file() or not lab.is_file():
        have = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise DataLayoutError(f"{corruption!r} not found (have {have}): {layout}")
    x = np.load(img, allow_pickle=False)
    y = np.load(lab, allow_pickle=False)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.dtype != np.uint8 or y.shape != (len(x),):
        raise DataLayoutError(f"{img}: shape {x.shape} dtype {x.dtype}, labels {y.shape}; {layout}")
    return ImageSet(_images(x), torch.from_numpy(y.astype(np.int64)), tuple(str(d) for d in range(10)))
