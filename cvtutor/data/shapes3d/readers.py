"""Readers for the real 3-D data sets the shape chapters' papers use, in their own file formats.

Nothing is downloaded: a reader who owns a data set points these functions at it. Each reader
says which layout it expected when the files are absent or malformed (the tests write tiny
fixtures of every format). NumPy files are opened with ``allow_pickle=False``.

========================  =====================================================================
reader                    layout
========================  =====================================================================
``read_mesh``             one OFF / PLY / OBJ mesh (trimesh)
``read_pcd``              one PCL ``.pcd`` file, ``DATA ascii`` or ``DATA binary``
``read_modelnet40``       ``<root>/ply_data_<split>*.h5``: ``data (N, 2048, 3)``, ``label (N, 1)``
``read_scanobjectnn``     one ``.h5``: ``data (N, 2048, 3)``, ``label (N,)``, optional ``mask``
``read_completion3d``     ``<root>/<split>/{partial,gt}/<synset>/<model>.h5``,
                          each ``data (2048, 3)``
``read_pc15k``            ``<root>/<synset>/<split>/<model>.npy``, each ``(15000, 3)``
``read_onet_points``      ONet ``points.npz``: ``points`` (float16), ``occupancies``
                          (``np.packbits``), ``loc``, ``scale``
``read_onet_pointcloud``  ONet ``pointcloud.npz``: ``points``, ``normals``, ``loc``, ``scale``
``read_faust``            ``<root>/tr_reg_<iii>.ply`` registrations (6,890 vertices, shared faces)
``read_dfaust``           DFAUST ``registrations_{m,f}.hdf5``:
                          ``<subject>_<sequence> (6890, 3, T)``, ``faces (13776, 3)``
``read_coma``             CoMA ``<root>/<subject>/<expression>/<expression>.<frame>.ply``
``read_sizer_sizes``      SIZER's ``training_data/real_<class>_size.pkl`` (the official code's):
                          slots ``'0' '1' '2'``, each ``scan_name betas pose trans pose_upper size``
``read_sizer_scan``       one SIZER registration folder: ``UpperClothes|Pants|Body .ply|.obj`` and
                          SMPL parameters ``*.pkl`` / ``*.npz`` (``betas``, ``pose``, ``trans``)
``sizer_size_label``      the size S/M/L/XL named in a SIZER file or folder name
========================  =====================================================================

:func:`read_modelnet40_normal` reads ``modelnet40_normal_resampled`` (``<root>/<class>/<id>.txt``,
rows ``x,y,z,nx,ny,nz``, with the class and split lists beside them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def _existing(path, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist; expected {what}")
    return p


def _h5py():
    import h5py

    return h5py


def _dataset(f, key: str, path, shape_hint: str):
    if key not in f:
        raise ValueError(
            f"{path}: no dataset {key!r} (has {sorted(f.keys())}); expected {shape_hint}"
        )
    return f[key][()]


def read_mesh(path) -> tuple[torch.Tensor, torch.Tensor]:
    """One triangle mesh (OFF, PLY, OBJ, ... via trimesh, unprocessed: vertex order kept):
    ``verts (V, 3)`` float32, ``faces (F, 3)`` long."""
    import trimesh

    p = _existing(path, "a mesh file (.off, .ply, .obj)")
    try:
        mesh = trimesh.load(p, force="mesh", process=False)
    except Exception as err:  # trimesh raises many kinds for a malformed file
        raise ValueError(f"{p}: not a readable mesh ({err})") from err
    if not hasattr(mesh, "faces") or len(mesh.faces) == 0:
        raise ValueError(f"{p}: no triangles found; expected a triangle mesh")
    return torch.tensor(np.asarray(mesh.vertices), dtype=torch.float32), torch.tensor(
        np.asarray(mesh.faces), dtype=torch.long
    )


_PCD_TYPES = {
    ("F", 4): np.float32,
    ("F", 8): np.float64,
    ("U", 1): np.uint8,
    ("U", 2): np.uint16,
    ("U", 4): np.uint32,
    ("I", 1): np.int8,
    ("I", 2): np.int16,
    ("I", 4): np.int32,
}


def read_pcd(path) -> dict[str, torch.Tensor]:
    """A PCL point cloud (``.pcd``, ``DATA ascii`` or ``binary``): one ``(N,)`` tensor per field
    (``(N, COUNT)`` where a field has several counts) and ``points (N, 3)`` from ``x, y, z``."""
    p = _existing(path, "a .pcd file")
    raw = p.read_bytes()
    header, pos = {}, 0
    while True:
        end = raw.find(b"\n", pos)
        if end < 0:
            raise ValueError(f"{p}: the header ends before its DATA line")
        line = raw[pos:end].decode("ascii", "replace").strip()
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *vals = line.split()
        header[key.upper()] = vals
        if key.upper() == "DATA":
            break
    for key in ("FIELDS", "SIZE", "TYPE", "POINTS"):
        if key not in header:
            raise ValueError(f"{p}: the header has no {key} line")
    fields, sizes, types = header["FIELDS"], [int(s) for s in header["SIZE"]], header["TYPE"]
    counts = [int(c) for c in header.get("COUNT", ["1"] * len(fields))]
    n = int(header["POINTS"][0])
    if not len(fields) == len(sizes) == len(types) == len(counts):
        raise ValueError(f"{p}: FIELDS, SIZE, TYPE and COUNT must have one entry per field")
    try:
        dtypes = [_PCD_TYPES[(t.upper(), s)] for t, s in zip(types, sizes)]
    except KeyError as err:
        raise ValueError(f"{p}: unsupported field type/size {err}") from None
    mode = header["DATA"][0].lower()
    if mode == "ascii":
        table = np.loadtxt(raw[pos:].decode("ascii").splitlines(), ndmin=2)
        if table.shape != (n, sum(counts)):
            raise ValueError(f"{p}: expected {n} rows of {sum(counts)} values, got {table.shape}")
        cols, k = {}, 0
        for f, c, dt in zip(fields, counts, dtypes):
            cols[f] = table[:, k : k + c].astype(dt)
            k += c
    elif mode == "binary":
        rec = np.dtype([(f, dt, (c,)) for f, dt, c in zip(fields, dtypes, counts)])
        if len(raw) - pos < n * rec.itemsize:
            raise ValueError(f"{p}: binary data holds fewer than {n} points")
        arr = np.frombuffer(raw, dtype=rec, count=n, offset=pos)
        cols = {f: arr[f] for f in fields}
    else:
        raise ValueError(
            f"{p}: DATA {mode} is not supported (ascii or binary; re-save compressed files)"
        )
    out = {
        f: torch.from_numpy(np.ascontiguousarray(v[:, 0] if v.shape[1] == 1 else v))
        for f, v in cols.items()
    }
    if all(k in out for k in "xyz"):
        out["points"] = torch.stack([out["x"], out["y"], out["z"]], -1).float()
    return out


def read_modelnet40(root, split: str = "train") -> dict[str, torch.Tensor]:
    """ModelNet40 as the PointNet HDF5 files (``modelnet40_ply_hdf5_2048``):
    ``points (N, 2048, 3)``, ``label (N,)``, and ``normals`` when the files have them."""
    h5py = _h5py()
    r = _existing(root, "the modelnet40_ply_hdf5_2048 folder")
    files = sorted(r.glob(f"ply_data_{split}*.h5"))
    if not files:
        raise FileNotFoundError(f"no {r}/ply_data_{split}*.h5; expected ModelNet40's HDF5 files")
    pts, lab, nrm = [], [], []
    for f in files:
        with h5py.File(f, "r") as h:
            pts.append(_dataset(h, "data", f, "data (N, 2048, 3)"))
            lab.append(_dataset(h, "label", f, "label (N, 1)").reshape(-1))
            if "normal" in h:
                nrm.append(h["normal"][()])
    out = {
        "points": torch.tensor(np.concatenate(pts), dtype=torch.float32),
        "label": torch.tensor(np.concatenate(lab), dtype=torch.long),
    }
    if nrm and len(nrm) == len(files):
        out["normals"] = torch.tensor(np.concatenate(nrm), dtype=torch.float32)
    if out["points"].ndim != 3 or out["points"].shape[-1] != 3:
        raise ValueError(f"{r}: data must be (N, P, 3), got {tuple(out['points'].shape)}")
    return out


def read_scanobjectnn(path) -> dict[str, torch.Tensor]:
    """One ScanObjectNN HDF5 file (e.g. ``training_objectdataset_augmentedrot_scale75.h5``):
    ``points (N, 2048, 3)``, ``label (N,)`` and ``mask (N, 2048)`` (object vs background) if
    present.
    """
    h5py = _h5py()
    p = _existing(path, "a ScanObjectNN .h5 file")
    with h5py.File(p, "r") as h:
        out = {
            "points": torch.tensor(
                _dataset(h, "data", p, "data (N, 2048, 3)"), dtype=torch.float32
            ),
            "label": torch.tensor(
                _dataset(h, "label", p, "label (N,)").reshape(-1), dtype=torch.long
            ),
        }
        if "mask" in h:
            out["mask"] = torch.tensor(h["mask"][()]).long()
    return out


def read_completion3d(root, split: str = "train") -> dict:
    """Completion3D: pairs ``<root>/<split>/partial/<synset>/<model>.h5`` and ``.../gt/...``
    (``data (2048, 3)`` each): ``partial (N, 2048, 3)``, ``gt (N, 2048, 3)``, ``synset`` and
    ``model`` names (sorted)."""
    h5py = _h5py()
    base = _existing(Path(root) / split / "partial", f"{root}/{split}/partial/<synset>/<model>.h5")
    files = sorted(base.glob("*/*.h5"))
    if not files:
        raise FileNotFoundError(f"no {base}/<synset>/<model>.h5 files")
    partial, gt, syn, model = [], [], [], []
    for f in files:
        g = Path(root) / split / "gt" / f.parent.name / f.name
        if not g.exists():
            raise FileNotFoundError(f"{g} is missing: every partial scan needs its gt file")
        for path, out in ((f, partial), (g, gt)):
            with h5py.File(path, "r") as h:
                out.append(_dataset(h, "data", path, "data (2048, 3)"))
        syn.append(f.parent.name)
        model.append(f.stem)
    return {
        "partial": torch.tensor(np.stack(partial), dtype=torch.float32),
        "gt": torch.tensor(np.stack(gt), dtype=torch.float32),
        "synset": syn,
        "model": model,
    }


def read_pc15k(root, synsets: list[str], split: str = "train", n_points: int | None = None) -> dict:
    """ShapeNet PC15k (PointFlow's ``ShapeNetCore.v2.PC15k``):
    ``<root>/<synset>/<split>/<model>.npy``, each ``(15000, 3)``;
    ``points (N, n_points or 15000, 3)`` (the first ``n_points``), ``synset``,
    ``model``."""
    r = _existing(root, "the ShapeNetCore.v2.PC15k folder")
    pts, syn, model = [], [], []
    for s in synsets:
        files = sorted((r / s / split).glob("*.npy"))
        if not files:
            raise FileNotFoundError(f"no {r}/{s}/{split}/*.npy; expected ShapeNet PC15k's layout")
        for f in files:
            a = np.load(f, allow_pickle=False)
            if a.ndim != 2 or a.shape[1] != 3:
                raise ValueError(f"{f}: expected (15000, 3) points, got {a.shape}")
            pts.append(a[:n_points] if n_points else a)
            syn.append(s)
            model.append(f.stem)
    return {
        "points": torch.tensor(np.stack(pts), dtype=torch.float32),
        "synset": syn,
        "model": model,
    }


def _npz(path, keys: tuple[str, ...]):
    p = _existing(path, "an ONet .npz file")
    with np.load(p, allow_pickle=False) as z:
        missing = [k for k in keys if k not in z.files]
        if missing:
            raise ValueError(f"{p}: missing {missing} (has {z.files})")
        return p, {k: z[k] for k in z.files}


def read_onet_points(path) -> dict[str, torch.Tensor]:
    """ONet's ``points.npz``: query ``points (N, 3)`` float32 (stored as float16), their
    ``occupancies (N,)`` bool (stored bit-packed with ``np.packbits``), ``loc (3,)``, ``scale ()``.
    """
    p, z = _npz(path, ("points", "occupancies"))
    pts = z["points"].astype(np.float32)
    occ = np.unpackbits(z["occupancies"])[: len(pts)].astype(bool)
    if len(occ) != len(pts):
        raise ValueError(f"{p}: {len(pts)} points but only {len(occ)} occupancy bits")
    out = {"points": torch.from_numpy(pts), "occupancies": torch.from_numpy(occ)}
    for k in ("loc", "scale"):
        if k in z:
            out[k] = torch.tensor(z[k], dtype=torch.float32)
    return out


def read_onet_pointcloud(path) -> dict[str, torch.Tensor]:
    """ONet's ``pointcloud.npz``: surface ``points (N, 3)`` and ``normals (N, 3)`` (float32),
    ``loc``, ``scale``."""
    _, z = _npz(path, ("points", "normals"))
    out = {
        "points": torch.tensor(z["points"], dtype=torch.float32),
        "normals": torch.tensor(z["normals"], dtype=torch.float32),
    }
    for k in ("loc", "scale"):
        if k in z:
            out[k] = torch.tensor(z[k], dtype=torch.float32)
    return out


def read_faust(root, pattern: str = "tr_reg_*.ply") -> dict[str, torch.Tensor]:
    """FAUST registrations (``MPI-FAUST/training/registrations``): ``verts (n, V, 3)`` stacked
    and the shared ``faces (F, 3)``; raises if two registrations differ in connectivity."""
    r = _existing(root, "the FAUST registrations folder (tr_reg_000.ply ...)")
    files = sorted(r.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no {r}/{pattern}; expected FAUST's registrations")
    verts, faces = [], None
    for f in files:
        v, fc = read_mesh(f)
        if faces is None:
            faces = fc
        elif not torch.equal(fc, faces):
            raise ValueError(
                f"{f}: its faces differ from {files[0].name}'s; registrations share a template"
            )
        verts.append(v)
    return {"verts": torch.stack(verts), "faces": faces, "names": [f.stem for f in files]}


def read_dfaust(path, sequence: str | None = None) -> dict:
    """DFAUST registrations (``registrations_m.hdf5`` / ``_f``): the dataset ``sequence``
    (``"<subject>_<sequence>"``, shape ``(V, 3, T)``) as ``verts (T, V, 3)`` and ``faces``;
    without a sequence, the ``sequences`` the file holds."""
    h5py = _h5py()
    p = _existing(path, "DFAUST's registrations_m.hdf5 or registrations_f.hdf5")
    with h5py.File(p, "r") as h:
        names = sorted(k for k in h.keys() if k != "faces")
        if sequence is None:
            return {"sequences": names}
        if sequence not in h:
            raise KeyError(f"{p}: no sequence {sequence!r}; it holds {names}")
        v = h[sequence][()]
        faces = _dataset(h, "faces", p, "faces (F, 3)")
    if v.ndim != 3 or v.shape[1] != 3:
        raise ValueError(f"{p}:{sequence} must be (V, 3, T), got {v.shape}")
    return {
        "verts": torch.tensor(v.transpose(2, 0, 1), dtype=torch.float32),
        "faces": torch.tensor(faces, dtype=torch.long),
    }


def read_modelnet40_normal(root, split: str = "train", n_points: int | None = None) -> dict:
    """ModelNet40 as ``modelnet40_normal_resampled`` (PointNet++'s release, the PointMixup
    chapter's): ``<root>/modelnet40_shape_names.txt`` (one class a line),
    ``<root>/modelnet40_<split>.txt`` (one shape id a line, ``<class>_<nnnn>``) and
    ``<root>/<class>/<id>.txt`` (``x,y,z,nx,ny,nz`` per line, 10,000 lines). Returns
    ``points (M, P, 3)``, ``normals (M, P, 3)`` (the first ``n_points`` lines, all by default),
    ``label (M,)`` and the ``names`` of the classes."""
    r = _existing(root, "the modelnet40_normal_resampled folder")
    names_file = r / "modelnet40_shape_names.txt"
    split_file = r / f"modelnet40_{split}.txt"
    for f in (names_file, split_file):
        _existing(f, "modelnet40_shape_names.txt and modelnet40_<split>.txt in the root")
    names = [s.strip() for s in names_file.read_text().splitlines() if s.strip()]
    ids = [s.strip() for s in split_file.read_text().splitlines() if s.strip()]
    pts, lab = [], []
    for shape in ids:
        cls = shape.rsplit("_", 1)[0]
        if cls not in names:
            raise ValueError(
                f"{split_file}: shape {shape!r} names class {cls!r}, not in {names_file.name}"
            )
        f = _existing(r / cls / f"{shape}.txt", "<root>/<class>/<class>_<nnnn>.txt")
        a = np.loadtxt(f, delimiter=",", ndmin=2, max_rows=n_points)
        if a.shape[1] != 6:
            raise ValueError(
                f"{f}: expected 6 comma-separated values a line (x,y,z,nx,ny,nz), got {a.shape[1]}"
            )
        pts.append(a)
        lab.append(names.index(cls))
    if not pts:
        raise ValueError(f"{split_file} lists no shapes")
    if len({len(p) for p in pts}) != 1:
        raise ValueError(f"{r}: the shapes have different numbers of points; pass n_points")
    arr = torch.tensor(np.stack(pts), dtype=torch.float32)
    return {
        "points": arr[..., :3],
        "normals": arr[..., 3:],
        "label": torch.tensor(lab),
        "names": names,
    }
# ---- SIZER (Tiwari et al., ECCV 2020; the chapter notebooks/eccv2020/sizer.ipynb) ----------------
SIZER_SIZES = ("S", "M", "L", "XL")
_SIZER_SLOT_KEYS = ("scan_name", "betas", "pose", "trans", "pose_upper", "size")
_SIZER_LAYERS = ("UpperClothes", "Pants", "Body")


def sizer_size_label(name: str) -> int:
    """The size index (0..3 for S, M, L, XL) named by a token of a SIZER file or folder name,
    e.g. ``"10015_polo_XL.obj"`` or ``"size-m"``; a clear error when none or several are named."""
    import re

    stem = Path(str(name)).name
    tokens = [t.upper() for t in re.split(r"[_\-. ]+", stem) if t]
    found = sorted({t for t in tokens if t in SIZER_SIZES})
    if len(found) != 1:
        raise ValueError(f"{name!r}: expected exactly one size token among {SIZER_SIZES} "
                         f"(separated by _ - . or space), found {found or 'none'}")
    return SIZER_SIZES.index(found[0])


def read_sizer_sizes(path) -> list[dict[str, np.ndarray]]:
    """SIZER's size-pair training file ``real_<class>_size.pkl`` as the official code reads it
    (``data_utils/sizer_data.py``): a dict of slots ``'0'``, ``'1'``, ``'2'`` (the sizes a subject
    wore), each holding ``scan_name (N,)``, ``betas (N, 10)``, ``pose (N, 72)``, ``trans (N, 3)``,
    ``pose_upper (N, m, 3)`` (the registered garment) and ``size (N,)`` (0..3 = S..XL). Read with
    the restricted unpickler; returns one dict of arrays per slot."""
    from cvtutor.data import safe_pickle

    p = _existing(path, "SIZER's training_data/real_<class>_size.pkl")
    data = safe_pickle.load(p)
    layout = f"a dict of slots '0', '1', ... each with keys {_SIZER_SLOT_KEYS}"
    if not isinstance(data, dict) or "0" not in data:
        raise ValueError(f"{p}: expected {layout}")
    slots = []
    for key in sorted((k for k in data if str(k).isdigit()), key=int):
        slot = data[key]
        if not isinstance(slot, dict) or not set(_SIZER_SLOT_KEYS) <= set(slot):
            have = sorted(slot) if isinstance(slot, dict) else type(slot).__name__
            raise ValueError(f"{p}: slot {key!r} has {have}; expected {layout}")
        out = {"scan_name": np.asarray(slot["scan_name"]).astype(str)}
        for k in ("betas", "pose", "trans", "pose_upper"):
            out[k] = np.asarray(slot[k], dtype=np.float32)
        out["size"] = np.asarray(slot["size"]).reshape(-1).astype(np.int64)
        n = len(out["scan_name"])
        if out["pose_upper"].ndim != 3 or out["pose_upper"].shape[2] != 3:
            raise ValueError(f"{p}: slot {key!r} pose_upper must be (N, m, 3), "
                             f"got {out['pose_upper'].shape}")
        bad = [k for k in ("betas", "pose", "trans", "pose_upper", "size") if len(out[k]) != n]
        if bad:
            raise ValueError(f"{p}: slot {key!r}: {bad} do not have N = {n} rows like scan_name")
        if n and (out["size"].min() < 0 or out["size"].max() >= len(SIZER_SIZES)):
            raise ValueError(f"{p}: slot {key!r} sizes must be 0..3 (S..XL), "
                             f"got {np.unique(out['size'])}")
        slots.append(out)
    return slots


def read_sizer_scan(folder) -> dict:
    """One SIZER registration folder: the meshes ``UpperClothes``, ``Pants``, ``Body`` (``.ply`` or
    ``.obj``, those present) as ``{layer: (verts (V, 3), faces (F, 3))}`` under ``"meshes"``, and
    the SMPL parameters ``betas``, ``pose``, ``trans`` from the folder's one ``*.pkl`` (restricted
    unpickler) or ``*.npz`` (no pickles) under ``"smpl"``; ``"size"`` from the folder's name when it
    names one (else ``None``)."""
    from cvtutor.data import safe_pickle

    root = _existing(folder, "a SIZER registration folder (UpperClothes/Pants/Body meshes and "
                             "SMPL parameters)")
    found = {}
    for layer in _SIZER_LAYERS:
        for ext in (".ply", ".obj"):
            if (root / f"{layer}{ext}").is_file():
                found[layer] = read_mesh(root / f"{layer}{ext}")
                break
    if not found:
        raise FileNotFoundError(f"{root}: no {'/'.join(_SIZER_LAYERS)} .ply or .obj mesh")
    params = sorted(root.glob("*.pkl")) + sorted(root.glob("*.npz"))
    if len(params) != 1:
        raise FileNotFoundError(f"{root}: expected one SMPL parameter file (*.pkl or *.npz), found "
                                f"{[q.name for q in params]}")
    q = params[0]
    if q.suffix == ".npz":
        with np.load(q, allow_pickle=False) as z:
            raw = {k: z[k] for k in z.files}
    else:
        raw = safe_pickle.load(q)
    if not isinstance(raw, dict) or not {"betas", "pose", "trans"} <= set(raw):
        have = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"{q}: expected a dict with betas, pose, trans; got {have}")
    smpl = {k: np.asarray(raw[k], dtype=np.float32).reshape(-1) for k in ("betas", "pose", "trans")}
    if smpl["pose"].size != 72 or smpl["trans"].size != 3:
        raise ValueError(f"{q}: pose must have 72 values and trans 3, got {smpl['pose'].size}, "
                         f"{smpl['trans'].size}")
    try:
        size = sizer_size_label(root.name)
    except ValueError:
        size = None
    return {"meshes": found, "smpl": smpl, "size": size}


def read_coma(root, subject: str | None = None) -> dict:
    """CoMA faces (``COMA_data/<subject>/<expression>/<expression>.<frame>.ply``, 5,023 FLAME
    vertices, shared faces; LIMP's COMA set): ``verts (n, V, 3)``, ``faces``, and the
    ``subject``, ``expression`` and ``frame`` name of every mesh, of one ``subject`` or all.
    Raises if two meshes differ in connectivity."""
    r = _existing(root, "the CoMA folder (<subject>/<expression>/<expression>.<frame>.ply)")
    files = sorted(r.glob(f"{subject or '*'}/*/*.ply"))
    if not files:
        raise FileNotFoundError(
            f"no {r}/{subject or '<subject>'}/<expression>/*.ply; expected CoMA's layout"
        )
    verts, faces, meta = [], None, {"subject": [], "expression": [], "frame": []}
    for f in files:
        v, fc = read_mesh(f)
        if faces is None:
            faces = fc
        elif not torch.equal(fc, faces):
            raise ValueError(f"{f}: its faces differ from {files[0]}'s; CoMA shares FLAME's")
        verts.append(v)
        meta["subject"].append(f.parent.parent.name)
        meta["expression"].append(f.parent.name)
        meta["frame"].append(f.stem.rsplit(".", 1)[-1])
    return {"verts": torch.stack(verts), "faces": faces, **meta}
