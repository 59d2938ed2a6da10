"""The 21-joint hand skeleton: joint order, index maps, bone geometry, 20-DoF forward kinematics,
joint limits, the DIP/PIP coupling, eight gesture prototypes and the pose sampler.

Conventions (spec: knowledge-as-priors digest, sections A-C)
-----------------------------------------------------------
* Canonical joint order = MANO / FreiHAND order, see :data:`JOINT_NAMES`; root = joint 0 (wrist);
  scale bone = (9, 10), the middle MCP-PIP bone.
* Palm frame (right hand, millimetres): origin at the wrist, +y towards the middle MCP, +x towards
  the thumb/index (radial) side, +z the palmar normal; flexion (positive angles) bends towards +z.
* Articulation: 20 angles in degrees, per finger (thumb, index, middle, ring, pinky) the four values
  ``[flex0, abd, flex1, flex2]`` (base flexion, base abduction, middle-joint and distal-joint flexion).
"""
from __future__ import annotations

import torch

from cvtutor.data.geometry.rotations import rot_x, rot_y, rot_z  # noqa: F401 (skeleton.rot_z in the chapters)

FINGERS = ("thumb", "index", "middle", "ring", "pinky")
JOINT_NAMES = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)
N_JOINTS = 21
PARENT = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)
BONES = tuple((PARENT[j], j) for j in range(1, N_JOINTS))
ROOT = 0
SCALE_BONE = (9, 10)
FINGER_JOINTS = tuple(tuple(range(1 + 4 * f, 5 + 4 * f)) for f in range(5))  # base .. tip per finger

# index maps, canonical = other[MAP] (knowledge-as-priors digest, section A)
RHD2CANON = (0, 4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18, 17)
CANON2RHD = RHD2CANON  # the RHD map reverses each finger, so it is its own inverse
STB2CANON = (0, 17, 18, 19, 20, 13, 14, 15, 16, 9, 10, 11, 12, 5, 6, 7, 8, 1, 2, 3, 4)
CANON2STB = tuple(sorted(range(N_JOINTS), key=lambda i: STB2CANON[i]))
FREI2CANON = tuple(range(N_JOINTS))

# ---- geometry (palm frame, mm) ------------------------------------------------------------
BASE_POSITIONS = (  # thumb CMC, index/middle/ring/pinky MCP
    (22.0, 26.0, 8.0), (25.0, 84.0, 0.0), (0.0, 86.0, 0.0), (-21.0, 80.0, 0.0), (-39.0, 70.0, 0.0))
PHALANX_LENGTHS = ((42.0, 32.0, 27.0), (40.0, 24.0, 21.0), (44.0, 28.0, 23.0), (42.0, 27.0, 22.0), (33.0, 20.0, 20.0))
REST_SPREAD_DEG = (55.0, 8.0, 0.0, -8.0, -16.0)
SPHERE_RADII = ((11.0, 10.0, 9.0), (9.5, 8.5, 7.5), (9.8, 8.8, 7.8), (9.3, 8.3, 7.3), (8.5, 7.5, 6.8))

# ---- limits (deg), per finger [flex0, abd, flex1, flex2] -----------------------------------
_FINGER_LIMITS = ((-20.0, 90.0), (-15.0, 15.0), (0.0, 110.0), (0.0, 80.0))
ANGLE_LIMITS = (
    ((-20.0, 50.0), (-10.0, 60.0), (-10.0, 60.0), (-15.0, 80.0)),  # thumb: CMC flex, CMC abd, MCP, IP
    _FINGER_LIMITS, _FINGER_LIMITS, _FINGER_LIMITS,
    ((-20.0, 90.0), (-20.0, 15.0), (0.0, 110.0), (0.0, 80.0)),  # pinky abducts further outwards
)

# ---- gesture prototypes (deg), thumb first ------------------------------------------------
_OPEN = (0.0, 0.0, 0.0, 0.0)
_FIST = (85.0, 0.0, 100.0, 60.0)


def _proto(thumb, index, middle, ring, pinky):
    return tuple(v for finger in (thumb, index, middle, ring, pinky) for v in finger)


GESTURES = ("open", "fist", "point", "vee", "ok", "thumbs_up", "three", "claw")
PROTOTYPES = {
    "open": _proto(_OPEN, _OPEN, _OPEN, _OPEN, _OPEN),
    "fist": _proto((30, 10, 50, 40), _FIST, _FIST, _FIST, _FIST),
    "point": _proto((30, 10, 50, 40), _OPEN, _FIST, _FIST, _FIST),
    "vee": _proto((30, 10, 50, 40), (0, 10, 0, 0), (0, -10, 0, 0), _FIST, _FIST),
    "ok": _proto((35, 40, 20, 20), (40, 0, 60, 30), _OPEN, _OPEN, _OPEN),
    "thumbs_up": _proto((-10, 40, 0, 0), _FIST, _FIST, _FIST, _FIST),
    "three": _proto((0, 30, 0, 0), _OPEN, _OPEN, _FIST, _FIST),
    "claw": _proto((20, 30, 30, 30), (30, 0, 60, 40), (30, 0, 60, 40), (30, 0, 60, 40), (30, 0, 60, 40)),
}


def angle_limits(dtype=torch.float32, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper joint limits as two ``(20,)`` tensors in degrees."""
    lim = torch.tensor(ANGLE_LIMITS, dtype=dtype, device=device).reshape(20, 2)
    return lim[:, 0], lim[:, 1]


def prototype_angles(dtype=torch.float32, device=None) -> torch.Tensor:
    """The eight gesture prototypes as an ``(8, 20)`` tensor in degrees, rows in :data:`GESTURES` order."""
    return torch.tensor([PROTOTYPES[g] for g in GESTURES], dtype=dtype, device=device)


def clip_to_limits(angles: torch.Tensor) -> torch.Tensor:
    lo, hi = angle_limits(angles.dtype, angles.device)
    return torch.maximum(torch.minimum(angles, hi), lo)


# ---- rest frames --------------------------------------------------------------------------
def rest_rotations(dtype=torch.float32, device=None) -> torch.Tensor:
    """``(5, 3, 3)`` rest frames: ``Rz(-a)`` for the fingers and ``Rz(-55°)·Rx(35°)·Ry(-80°)`` for the thumb."""
    spread = torch.tensor(REST_SPREAD_DEG, dtype=dtype, device=device)
    R = rot_z(-spread)
    one = torch.ones((), dtype=dtype, device=device)
    R[0] = rot_z(-55.0 * one) @ rot_x(35.0 * one) @ rot_y(-80.0 * one)
    return R


# ---- shape --------------------------------------------------------------------------------
def default_shape(n: int = 1, dtype=torch.float32, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean hand: ``(base (n,5,3) mm, lengths (n,5,3) mm)``."""
    base = torch.tensor(BASE_POSITIONS, dtype=dtype, device=device).expand(n, 5, 3).clone()
    lengths = torch.tensor(PHALANX_LENGTHS, dtype=dtype, device=device).expand(n, 5, 3).clone()
    return base, lengths


def sample_shape(n: int, generator: torch.Generator, scale_range=(0.85, 1.15), jitter: float = 0.04,
                 jitter_clip: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-hand shape: global scale ``s ~ U(scale_range)``, per-bone jitter ``N(1, jitter)`` clipped to
    ``1 ± jitter_clip``. Returns ``(base (n,5,3), lengths (n,5,3), s (n,))`` in mm (CPU)."""
    base, lengths = default_shape(n)
    s = scale_range[0] + (scale_range[1] - scale_range[0]) * torch.rand(n, generator=generator)
    j = (1.0 + jitter * torch.randn(n, 5, 3, generator=generator)).clamp(1 - jitter_clip, 1 + jitter_clip)
    return base * s[:, None, None], lengths * s[:, None, None] * j, s


# ---- forward kinematics -------------------------------------------------------------------
def forward_kinematics(angles: torch.Tensor, base: torch.Tensor | None = None,
                       lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """20-DoF forward kinematics in the palm frame (digest section C).

    Per finger ``R = R_rest · Rz(-abd) · Rx(flex0)``; each bone adds ``R·[0, L, 0]``; after bone 1
    ``R ← R·Rx(flex1)``, after bone 2 ``R ← R·Rx(flex2)``.

    angles: ``(n, 20)`` degrees; base ``(n, 5, 3)`` and lengths ``(n, 5, 3)`` in mm (default: mean hand).
    Returns ``joints (n, 21, 3)`` in mm, canonical order, and the bone frames ``(n, 5, 3, 3, 3)``
    (finger, bone, rotation) used to place the geometry.
    """
    if angles.ndim != 2 or angles.shape[1] != 20:
        raise ValueError(f"angles must be (n, 20) degrees, got shape {tuple(angles.shape)}")
    n = angles.shape[0]
    if base is None or lengths is None:
        b0, l0 = default_shape(n, angles.dtype, angles.device)
        base = b0 if base is None else base
        lengths = l0 if lengths is None else lengths
    if base.shape != (n, 5, 3) or lengths.shape != (n, 5, 3):
        raise ValueError(f"base and lengths must be ({n}, 5, 3); got {tuple(base.shape)} and {tuple(lengths.shape)}")
    a = angles.reshape(n, 5, 4)
    R = rest_rotations(angles.dtype, angles.device)[None] @ rot_z(-a[..., 1]) @ rot_x(a[..., 0])  # (n,5,3,3)
    e_y = torch.tensor([0.0, 1.0, 0.0], dtype=angles.dtype, device=angles.device)
    pos = base
    chain, frames = [base], []
    for bone in range(3):
        if bone > 0:
            R = R @ rot_x(a[..., bone + 1])
        frames.append(R)
        pos = pos + (R @ e_y) * lengths[..., bone:bone + 1]
        chain.append(pos)
    fingers = torch.stack(chain, 2)  # (n, 5, 4, 3): base, j1, j2, tip
    wrist = torch.zeros(n, 1, 3, dtype=angles.dtype, device=angles.device)
    joints = torch.cat([wrist, fingers.reshape(n, 20, 3)], 1)
    return joints, torch.stack(frames, 2)


def bone_lengths(joints: torch.Tensor) -> torch.Tensor:
    """``(..., 20)`` lengths of :data:`BONES` for joints ``(..., 21, 3)``."""
    parents = torch.tensor([p for p, _ in BONES], device=joints.device)
    children = torch.tensor([c for _, c in BONES], device=joints.device)
    return (joints[..., children, :] - joints[..., parents, :]).norm(dim=-1)


# ---- pose sampler -------------------------------------------------------------------------
def couple_dip(angles: torch.Tensor, generator: torch.Generator, p: float = 0.8, noise_deg: float = 5.0) -> torch.Tensor:
    """With probability ``p`` per hand, ``DIP := clip(0.67·PIP + N(0, noise), 0, 80)`` on the four fingers."""
    n = angles.shape[0]
    a = angles.clone().reshape(n, 5, 4)
    use = torch.rand(n, generator=generator) < p
    noise = noise_deg * torch.randn(n, 4, generator=generator)
    coupled = (0.67 * a[:, 1:, 2] + noise).clamp(0.0, 80.0)
    a[:, 1:, 3] = torch.where(use[:, None], coupled, a[:, 1:, 3])
    return a.reshape(n, 20)


def uniform_angles(n: int, generator: torch.Generator) -> torch.Tensor:
    lo, hi = angle_limits()
    return lo + (hi - lo) * torch.rand(n, 20, generator=generator)


def sample_angles(n: int, generator: torch.Generator, p_uniform: float = 0.2, p_blend: float = 0.5,
                  noise_deg: float = 8.0, prototypes: tuple[int, ...] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The pose prior of digest section C. Returns ``(angles (n, 20) deg, gesture (n,) long)`` on the CPU.

    With probability ``1 - p_uniform``: prototypes a, b, ``α = U(0, 1)`` with probability ``p_blend``
    else 0, angles = ``(1-α)·a + α·b + N(0, noise)``, gesture = the prototype with the larger weight;
    otherwise angles uniform within the limits and gesture = -1. Then the DIP/PIP coupling, then clipping.
    """
    protos = prototype_angles()
    allowed = torch.tensor(prototypes if prototypes is not None else range(len(GESTURES)))
    ia = allowed[torch.randint(len(allowed), (n,), generator=generator)]
    ib = allowed[torch.randint(len(allowed), (n,), generator=generator)]
    alpha = torch.rand(n, generator=generator) * (torch.rand(n, generator=generator) < p_blend)
    blended = (1 - alpha[:, None]) * protos[ia] + alpha[:, None] * protos[ib]
    blended = blended + noise_deg * torch.randn(n, 20, generator=generator)
    uniform = uniform_angles(n, generator)
    is_uniform = torch.rand(n, generator=generator) < p_uniform
    angles = torch.where(is_uniform[:, None], uniform, blended)
    gesture = torch.where(is_uniform, torch.full_like(ia, -1), torch.where(alpha > 0.5, ib, ia))
    return clip_to_limits(couple_dip(angles, generator)), gesture


def reorder(x: torch.Tensor, index_map) -> torch.Tensor:
    """Re-order joints along dim ``-2`` (for ``(..., 21, C)``) with a map such as :data:`RHD2CANON`."""
    if x.shape[-2] != N_JOINTS:
        raise ValueError(f"expected (..., 21, C) joints, got shape {tuple(x.shape)}")
    return x[..., list(index_map), :]
