"""The body skeleton: Human3.6M's 17 joints plus 6 foot joints, the COCO-17 mapping, forward
kinematics with per-joint limits, subjects as bone-length sets, and pose presets.

Derived in the *People, cameras and geometry* chapter (``notebooks/eccv2020/world_people.ipynb``).
Body frame (metres): x the person's left, y forward, z up; the rest pose stands at the origin
(pelvis at 0.95 m for a subject of scale 1) with the arms hanging down. A pose is ``angles (n, 23,
3)`` in degrees, per joint ``(flex, abd, twist)`` = rotations about the body x, y and z axes of that
joint's parent frame, ``R_j = Rx(flex)·Ry(abd)·Rz(twist)``; a joint's rotation moves all its
descendants.
"""
from __future__ import annotations

import torch

from cvtutor.data.geometry.rotations import rot_x, rot_y, rot_z

JOINT_NAMES = (  # the 17 Human3.6M joints, then 6 foot joints
    "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine", "thorax",
    "neck_nose", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
    "l_big_toe", "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel",
)
N_JOINTS = 23
N_H36M = 17
PARENT = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15, 6, 6, 6, 3, 3, 3)
BONES = tuple((PARENT[j], j) for j in range(1, N_JOINTS))
ROOT = 0
FLIP_PAIRS = ((1, 4), (2, 5), (3, 6), (11, 14), (12, 15), (13, 16), (17, 20), (18, 21), (19, 22))

REST = (  # rest positions (m) of a scale-1 subject
    (0.0, 0.0, 0.95), (-0.11, 0.0, 0.93), (-0.11, 0.0, 0.51), (-0.11, -0.02, 0.09),
    (0.11, 0.0, 0.93), (0.11, 0.0, 0.51), (0.11, -0.02, 0.09),
    (0.0, -0.01, 1.17), (0.0, 0.0, 1.42), (0.0, 0.07, 1.58), (0.0, 0.02, 1.72),
    (0.18, 0.0, 1.42), (0.19, 0.0, 1.13), (0.2, 0.0, 0.88),
    (-0.18, 0.0, 1.42), (-0.19, 0.0, 1.13), (-0.2, 0.0, 0.88),
    (0.1, 0.16, 0.02), (0.15, 0.13, 0.02), (0.11, -0.07, 0.03),
    (-0.1, 0.16, 0.02), (-0.15, 0.13, 0.02), (-0.11, -0.07, 0.03),
)

# COCO-17 from the skeleton: 13 joints are shared; the eyes and ears are placed in the head frame
COCO_NAMES = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
    "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)
COCO_FROM_BODY = (9, -1, -1, -1, -1, 11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3)
COCO_FACE = (
    (0.035, 0.02, 0.04),
    (-0.035, 0.02, 0.04),
    (0.075, -0.05, 0.02),
    (-0.075, -0.05, 0.02),
)  # x, back, up
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

_NARROW = ((-25.0, 10.0), (-10.0, 10.0), (-15.0, 15.0))
LIMITS = {  # (flex, abd, twist) ranges in degrees; every other joint is rigid
    "r_hip": ((-25.0, 120.0), (-40.0, 15.0), (-30.0, 30.0)),
    "l_hip": ((-25.0, 120.0), (-15.0, 40.0), (-30.0, 30.0)),
    "r_knee": ((-150.0, 0.0), (0.0, 0.0), (-10.0, 10.0)),
    "l_knee": ((-150.0, 0.0), (0.0, 0.0), (-10.0, 10.0)),
    "r_ankle": ((-45.0, 30.0), (-25.0, 25.0), (-25.0, 25.0)),
    "l_ankle": ((-45.0, 30.0), (-25.0, 25.0), (-25.0, 25.0)),
    "spine": _NARROW,
    "thorax": _NARROW,
    "neck_nose": ((-30.0, 30.0), (-20.0, 20.0), (-45.0, 45.0)),
    "l_shoulder": ((-60.0, 170.0), (-120.0, 20.0), (-60.0, 60.0)),
    "r_shoulder": ((-60.0, 170.0), (-20.0, 120.0), (-60.0, 60.0)),
    "l_elbow": ((0.0, 150.0), (0.0, 0.0), (-60.0, 60.0)),
    "r_elbow": ((0.0, 150.0), (0.0, 0.0), (-60.0, 60.0)),
}
PRESETS = ("walk", "reach", "sit")


def angle_limits(dtype=torch.float32, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lo, hi)``, each ``(23, 3)`` degrees: wide for hips, shoulders, knees, elbows and ankles,
    narrow for the spine and thorax, moderate for the neck, zero for rigid joints. The wrists end
    the 23-joint chain (no child joint), so they carry no rotation here."""
    lo = torch.zeros(N_JOINTS, 3, dtype=dtype, device=device)
    hi = torch.zeros(N_JOINTS, 3, dtype=dtype, device=device)
    for name, lim in LIMITS.items():
        j = JOINT_NAMES.index(name)
        lo[j] = torch.tensor([a for a, _ in lim], dtype=dtype)
        hi[j] = torch.tensor([b for _, b in lim], dtype=dtype)
    return lo, hi


def clip_to_limits(angles: torch.Tensor) -> torch.Tensor:
    """Clamp ``(..., 23, 3)`` angles into :func:`angle_limits`."""
    lo, hi = angle_limits(angles.dtype, angles.device)
    return torch.maximum(torch.minimum(angles, hi), lo)


def rest_offsets(dtype=torch.float32, device=None) -> torch.Tensor:
    """``(23, 3)`` offset of every joint from its parent in the rest pose (the root's: its
    position)."""
    rest = torch.tensor(REST, dtype=dtype, device=device)
    parent = torch.tensor([max(p, 0) for p in PARENT], device=device)
    off = rest - rest[parent]
    off[ROOT] = rest[ROOT]
    return off


def bone_lengths(joints: torch.Tensor) -> torch.Tensor:
    """``(..., 22)`` lengths of :data:`BONES` for joints ``(..., 23, 3)``."""
    p = torch.tensor([a for a, _ in BONES], device=joints.device)
    c = torch.tensor([b for _, b in BONES], device=joints.device)
    return (joints[..., c, :] - joints[..., p, :]).norm(dim=-1)


def forward_kinematics(angles: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Joints ``(n, 23, 3)`` in the body frame from ``angles (n, 23, 3)`` (clipped to the limits)
    and per-bone length factors ``lengths (n, 23)`` (1 = rest; entry ``j`` scales bone
    ``PARENT[j]→j``, entry 0 the pelvis height).

    ``G_j = G_parent·R_j`` and ``X_j = X_parent + G_parent·(ℓ_j·o_j)`` with the rest offsets
    ``o_j``: a static loop over the 23 joints of the tree, batched over the ``n`` poses.
    """
    if angles.ndim != 3 or angles.shape[1:] != (N_JOINTS, 3):
        raise ValueError(f"angles must be (n, {N_JOINTS}, 3) degrees, got {tuple(angles.shape)}")
    n = angles.shape[0]
    a = clip_to_limits(angles)
    R = rot_x(a[..., 0]) @ rot_y(a[..., 1]) @ rot_z(a[..., 2])  # (n, 23, 3, 3)
    off = rest_offsets(angles.dtype, angles.device).expand(n, N_JOINTS, 3)
    if lengths is not None:
        if lengths.shape != (n, N_JOINTS):
            raise ValueError(f"lengths must be (n, {N_JOINTS}), got {tuple(lengths.shape)}")
        off = off * lengths[..., None]
    G, X = [R[:, 0]], [off[:, 0]]
    for j in range(1, N_JOINTS):
        p = PARENT[j]
        X.append(X[p] + (G[p] @ off[:, j, :, None])[..., 0])
        G.append(G[p] @ R[:, j])
    return torch.stack(X, 1)


def sample_subjects(
    n: int, generator: torch.Generator, scale_range=(0.85, 1.15), jitter: float = 0.05
) -> torch.Tensor:
    """``n`` subjects as bone-length factors ``(n, 23)``: a global scale (height) times a per-bone
    jitter, symmetric between left and right (a subject's two legs have the same length)."""
    s = torch.rand(n, 1, generator=generator) * (scale_range[1] - scale_range[0]) + scale_range[0]
    j = 1 + jitter * (2 * torch.rand(n, N_JOINTS, generator=generator) - 1)
    for a, b in FLIP_PAIRS:
        j[:, b] = j[:, a]
    j[:, 0] = 1.0
    return s * j


def subject_splits(n_subjects: int) -> dict[str, tuple[int, ...]]:
    """Train / val / test subject ids, 60/20/20 by id (as Human3.6M splits by subject)."""
    if n_subjects < 3:
        raise ValueError(f"need at least 3 subjects for three splits, got {n_subjects}")
    n_val = max(1, round(0.2 * n_subjects))
    n_train = n_subjects - 2 * n_val
    ids = tuple(range(n_subjects))
    return {
        "train": ids[:n_train],
        "val": ids[n_train : n_train + n_val],
        "test": ids[n_train + n_val :],
    }


def _set(a: torch.Tensor, name: str, axis: int, value: torch.Tensor) -> None:
    a[:, JOINT_NAMES.index(name), axis] = value


def preset_angles(kind: str, phase: torch.Tensor) -> torch.Tensor:
    """The pose template ``(n, 23, 3)`` of a preset at ``phase (n,)`` in [0, 1): ``walk`` (a gait
    cycle: hips and shoulders swing in antiphase, the knee bends in the swing), ``reach`` (an arm
    raised forward, ``phase`` = how high, left or right by ``phase < 0.5``) or ``sit`` (hips and
    knees at ~90°)."""
    if kind not in PRESETS:
        raise ValueError(f"unknown preset {kind!r}; expected one of {PRESETS}")
    n = phase.shape[0]
    a = torch.zeros(n, N_JOINTS, 3, dtype=phase.dtype, device=phase.device)
    w = 2 * torch.pi * phase
    if kind == "walk":
        swing = 25 * torch.sin(w)
        _set(a, "r_hip", 0, swing)
        _set(a, "l_hip", 0, -swing)
        _set(a, "r_knee", 0, -30 * (1 + torch.sin(w + 1.2)).clamp_min(0))
        _set(a, "l_knee", 0, -30 * (1 + torch.sin(w + 1.2 + torch.pi)).clamp_min(0))
        _set(a, "l_shoulder", 0, swing)
        _set(a, "r_shoulder", 0, -swing)
        _set(a, "l_elbow", 0, 20 + 10 * torch.sin(w))
        _set(a, "r_elbow", 0, 20 - 10 * torch.sin(w))
    elif kind == "reach":
        left = phase < 0.5
        height = 60 + 100 * (2 * phase % 1)
        _set(a, "l_shoulder", 0, torch.where(left, height, torch.zeros_like(height)))
        _set(a, "r_shoulder", 0, torch.where(left, torch.zeros_like(height), height))
        _set(a, "l_elbow", 0, torch.where(left, 10.0, 30.0))
        _set(a, "r_elbow", 0, torch.where(left, 30.0, 10.0))
        _set(a, "spine", 0, torch.full_like(phase, -10.0))
    else:
        for side in ("r", "l"):
            _set(a, f"{side}_hip", 0, 85 + 10 * phase)
            _set(a, f"{side}_knee", 0, -85 - 10 * phase)
            _set(a, f"{side}_elbow", 0, torch.full_like(phase, 40.0))
            _set(a, f"{side}_shoulder", 0, torch.full_like(phase, 20.0))
    return a


def coco17(joints: torch.Tensor) -> torch.Tensor:
    """COCO-17 keypoints ``(..., 17, 3)`` from body joints ``(..., 23, 3)``: 13 shared joints, and
    the eyes and ears at fixed offsets in the head frame (x: from the right to the left shoulder, z:
    from the neck-nose joint to the head top, y = z × x: forward) around the head joint."""
    if joints.shape[-2:] != (N_JOINTS, 3):
        raise ValueError(f"joints must be (..., {N_JOINTS}, 3), got {tuple(joints.shape)}")
    x = joints[..., 11, :] - joints[..., 14, :]
    z = joints[..., 10, :] - joints[..., 9, :]
    z = z / z.norm(dim=-1, keepdim=True)
    x = x - (x * z).sum(-1, keepdim=True) * z
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.linalg.cross(z, x, dim=-1)
    face = torch.tensor(COCO_FACE, dtype=joints.dtype, device=joints.device)  # (4, 3): x, back, up
    pts = (
        joints[..., None, 9, :]
        + face[:, 0, None] * x[..., None, :]
        - face[:, 1, None] * y[..., None, :]
        + face[:, 2, None] * z[..., None, :]
    )
    idx = torch.tensor([max(i, 0) for i in COCO_FROM_BODY], device=joints.device)
    out = joints[..., idx, :].clone()
    out[..., 1:5, :] = pts
    return out
