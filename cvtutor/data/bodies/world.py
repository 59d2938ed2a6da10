"""``BodyWorld``: crowds of articulated people on a ground plane, seen by a camera rig.

Derived in the *People, cameras and geometry* chapter (``notebooks/eccv2020/world_people.ipynb``).
A scene holds ``P`` people (subjects from :func:`~cvtutor.data.bodies.skeleton.sample_subjects`,
each with a per-person scale, a preset pose with noise, a position on a jittered grid at a chosen
density and a heading) and is seen by ``V`` cameras on a ring. Each person is a proxy of spheres
(capsule chains along the bones); the ray caster (:mod:`cvtutor.data.render3d`) gives exact depth,
person (instance) and bone (part) images, and a joint is visible in a view when no surface lies in
front of it (the z-buffer test). A 2-D detector noise model turns the projections into detections:
visible joints get Gaussian noise, a joint hidden by another person snaps to that occluder's
nearest joint (the classic crowd failure), a self-occluded joint gets a larger noise.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cvtutor.data import geometry, render3d
from cvtutor.data.bodies import skeleton as sk

SPHERES_PER_BONE = 4
RIGS = ("ring", "hemisphere")
HEAD_RADIUS = 0.11


def bone_radii(dtype=torch.float32, device=None) -> torch.Tensor:
    """``(23,)`` radius (m, scale 1) of the capsule ending at each joint (index 0: the pelvis
    sphere)."""
    r = {
        "pelvis": 0.13,
        "r_hip": 0.1,
        "l_hip": 0.1,
        "r_knee": 0.075,
        "l_knee": 0.075,
        "r_ankle": 0.055,
        "l_ankle": 0.055,
        "spine": 0.13,
        "thorax": 0.15,
        "neck_nose": 0.06,
        "head": HEAD_RADIUS,
        "l_shoulder": 0.07,
        "r_shoulder": 0.07,
        "l_elbow": 0.055,
        "r_elbow": 0.055,
        "l_wrist": 0.045,
        "r_wrist": 0.045,
    }
    return torch.tensor([r.get(n, 0.035) for n in sk.JOINT_NAMES], dtype=dtype, device=device)


def body_spheres(
    joints: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sphere proxy of people ``joints (..., 23, 3)``, ``scale (...)``: per bone
    ``SPHERES_PER_BONE`` spheres tapering from the parent's radius to the child's, plus the pelvis
    sphere; returns centres ``(..., M, 3)``, radii ``(..., M)`` and the part id of each sphere
    ``(M,)``: ``j + 1`` for the bone ending at joint ``j``, 1 for the pelvis sphere (0 stays
    background)."""
    p = [a for a, _ in sk.BONES]
    c = [b for _, b in sk.BONES]
    r = bone_radii(joints.dtype, joints.device)
    centres, radii = render3d.capsule_spheres(
        joints[..., p, :],
        joints[..., c, :],
        r[p] * scale[..., None],
        r[c] * scale[..., None],
        SPHERES_PER_BONE,
    )
    centres = torch.cat([joints[..., :1, :], centres.flatten(-3, -2)], -2)
    radii = torch.cat([r[0] * scale[..., None], radii.flatten(-2)], -1)
    part = torch.tensor(
        [1] + [j + 1 for j in c for _ in range(SPHERES_PER_BONE)], device=joints.device
    )
    return centres, radii, part


class BodyWorld:
    """Crowds on a ground plane seen by a camera ring: ``BodyWorld(n_people=6,
    n_views=4).sample(n)``.

    Parameters
    ----------
    n_people: P people per scene. density: people per m² (the scene is a square of side ``√(P/ρ)``).
    n_views: V cameras on a ring of ``ring_radius`` m (default: 3.5 m beyond the crowd's extent) at
    ``camera_height`` m, looking at the scene centre (1 m above the floor). image_size: S; focal: f
    in pixels (default: the scene fills ~90 % of the view). scale_range: per-person scale (the
    size–depth ambiguity: a small near person projects like a big far one). presets: pose families
    drawn uniformly. pose_noise: σ (degrees) added to the preset angles before clipping to the
    limits. n_subjects: the subject pool (split by
    :func:`~cvtutor.data.bodies.skeleton.subject_splits`). detector_sigma: σ (px) of detected
    visible joints. rig: ``"ring"`` (cameras at ``camera_height``) or ``"hemisphere"`` (a
    Fibonacci dome of radius ``ring_radius`` over the crowd, as in a capture studio). seed, device:
    the stream and where it runs.
    """

    def __init__(
        self,
        n_people: int = 6,
        density: float = 0.5,
        n_views: int = 4,
        image_size: int = 64,
        ring_radius: float | None = None,
        camera_height: float = 2.0,
        focal: float | None = None,
        scale_range=(0.8, 1.2),
        presets=sk.PRESETS,
        pose_noise: float = 8.0,
        n_subjects: int = 10,
        detector_sigma: float = 1.0,
        rig: str = "ring",
        seed: int = 0,
        device: str | torch.device | None = "cpu",
    ) -> None:
        for name, v in (("n_people", n_people), ("n_views", n_views), ("image_size", image_size)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not density > 0:
            raise ValueError(f"density must be > 0 people per m², got {density}")
        unknown = set(presets) - set(sk.PRESETS)
        if unknown or not presets:
            raise ValueError(
                f"presets must be a non-empty subset of {sk.PRESETS}; unknown: {sorted(unknown)}"
            )
        self.n_people, self.density, self.n_views, self.image_size = (
            n_people, density, n_views, image_size,
        )
        self.side = math.sqrt(n_people / density)
        self.scale_range, self.presets, self.pose_noise = (
            tuple(scale_range), tuple(presets), pose_noise,
        )
        self.detector_sigma, self.seed = detector_sigma, seed
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.splits = sk.subject_splits(n_subjects)
        self.subjects = sk.sample_subjects(
            n_subjects, torch.Generator().manual_seed(seed + 7919)
        ).to(self.device)
        reach = self.side / math.sqrt(2) + 0.3  # the crowd's farthest extent from its centre
        ring_radius = ring_radius or reach + 3.5
        if ring_radius <= reach:
            raise ValueError(
                f"ring_radius must exceed the crowd's extent {reach:.2f} m, got {ring_radius}"
            )
        self.ring_radius = ring_radius
        self.focal = focal or 0.45 * image_size * ring_radius / reach  # the crowd spans ~90 %
        self.K = geometry.intrinsics(image_size, self.focal, device=self.device)
        if rig == "ring":
            self.R, self.t, self.eyes = geometry.camera_ring(
                n_views, ring_radius, camera_height, target=(0.0, 0.0, 1.0), device=self.device
            )
        elif rig == "hemisphere":
            self.R, self.t, self.eyes = geometry.camera_hemisphere(
                n_views, ring_radius, target=(0.0, 0.0, 1.0), min_elevation_deg=5.0,
                device=self.device,
            )
        else:
            raise ValueError(f"rig must be one of {RIGS}, got {rig!r}")
        self.rig = rig
        self.reset()

    def reset(self) -> None:
        """Restart the random stream."""
        self._gen = torch.Generator(device=self.device).manual_seed(self.seed)

    def _rand(self, *shape) -> torch.Tensor:
        return torch.rand(*shape, generator=self._gen, device=self.device)

    def draw(self, n: int, split: str = "train") -> dict[str, torch.Tensor]:
        """The random parameters of ``n`` scenes: subject ids, scales, presets, angles, positions,
        headings."""
        if split not in self.splits:
            raise ValueError(f"split must be one of {tuple(self.splits)}, got {split!r}")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        P, dev = self.n_people, self.device
        ids = torch.tensor(self.splits[split], device=dev)
        subject = ids[(self._rand(n, P) * len(ids)).long().clamp_max(len(ids) - 1)]
        lo, hi = self.scale_range
        scale = lo + (hi - lo) * self._rand(n, P)
        preset = (self._rand(n, P) * len(self.presets)).long().clamp_max(len(self.presets) - 1)
        phase = self._rand(n, P)
        noise = torch.randn(n, P, sk.N_JOINTS, 3, generator=self._gen, device=dev) * self.pose_noise
        # positions: a jittered grid of ⌈√P⌉² cells over the square, P of them chosen at random
        g = math.ceil(math.sqrt(P))
        cell = self.side / g
        order = self._rand(n, g * g).argsort(-1)[:, :P]
        gx, gy = (order % g).to(noise.dtype), (order // g).to(noise.dtype)
        jitter = (self._rand(n, P, 2) - 0.5) * 0.5 * cell
        xy = torch.stack([(gx + 0.5) * cell, (gy + 0.5) * cell], -1) - self.side / 2 + jitter
        yaw = self._rand(n, P) * 2 * math.pi
        return {
            "subject": subject,
            "scale": scale,
            "preset": preset,
            "phase": phase,
            "noise": noise,
            "xy": xy,
            "yaw": yaw,
        }

    def pose(self, p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """World joints ``(n, P, 23, 3)`` (feet on the floor ``z = 0``) and the angles used."""
        n, P = p["scale"].shape
        flat = p["phase"].reshape(-1)
        angles = torch.zeros(n * P, sk.N_JOINTS, 3, dtype=flat.dtype, device=flat.device)
        pre = p["preset"].reshape(-1)
        for k, name in enumerate(
            self.presets
        ):  # one template per preset family, selected per person
            angles = torch.where((pre == k)[:, None, None], sk.preset_angles(name, flat), angles)
        angles = sk.clip_to_limits(angles + p["noise"].reshape(n * P, sk.N_JOINTS, 3))
        lengths = self.subjects[p["subject"].reshape(-1)] * p["scale"].reshape(-1, 1)
        body = sk.forward_kinematics(angles, lengths)  # (nP, 23, 3) body frame
        body = (
            body
            - torch.stack(
                [
                    torch.zeros_like(body[:, 0, 0]),
                    torch.zeros_like(body[:, 0, 0]),
                    body[..., 2].amin(-1),
                ],
                -1,
            )[:, None]
        )  # lowest joint on the floor
        Rz = geometry.rot_z(torch.rad2deg(p["yaw"].reshape(-1)))
        xyz = (
            body @ Rz.transpose(1, 2)
            + torch.cat([p["xy"].reshape(-1, 2), torch.zeros_like(flat)[:, None]], -1)[:, None]
        )
        return {
            "joints": xyz.reshape(n, P, sk.N_JOINTS, 3),
            "angles": angles.reshape(n, P, sk.N_JOINTS, 3),
        }

    def render(self, p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Everything about ``n`` scenes drawn by :meth:`draw` (see :meth:`sample`)."""
        out = self.pose(p)
        joints = out["joints"]
        n, P = joints.shape[:2]
        V, S = self.n_views, self.image_size
        c, r, part = body_spheres(joints, p["scale"])  # (n, P, M, 3)
        M = r.shape[-1]
        inst = torch.arange(P, device=self.device).repeat_interleave(M)
        floor = {
            "normals": torch.tensor([[[0.0, 0.0, 1.0]]], device=self.device).expand(n, 1, 3),
            "offsets": torch.zeros(n, 1, device=self.device),
            "part": torch.zeros(n, 1, dtype=torch.long, device=self.device),
            "instance": torch.full((n, 1), P, device=self.device),
        }
        scene = {
            "spheres": {
                "centres": c.reshape(n, P * M, 3),
                "radii": r.reshape(n, P * M),
                "part": part.repeat(P).expand(n, -1),
                "instance": inst.expand(n, -1),
            },
            "planes": floor,
        }
        img = render3d.render_views(scene, self.K, S, self.R, self.t)  # (n, V, ., S, S)
        cam = geometry.world_to_camera(
            joints.reshape(n, 1, P * sk.N_JOINTS, 3), self.R, self.t
        )  # (n,V,PJ,3)
        uv = geometry.project(cam, self.K)
        vis, occluder = self._visibility(uv, cam, img, p["scale"])
        uv = uv.reshape(n, V, P, sk.N_JOINTS, 2)
        cam = cam.reshape(n, V, P, sk.N_JOINTS, 3)
        det, conf = self._detect(uv, vis, occluder)
        out.update(img)
        out.update(
            {
                "cam": cam,
                "uv": uv,
                "visible": vis,
                "occluder": occluder,
                "detected": det,
                "confidence": conf,
                "K": self.K,
                "R": self.R,
                "t": self.t,
                "boxes": person_boxes(uv),
                "scale": p["scale"],
                "subject": p["subject"],
                "preset": p["preset"],
            }
        )
        return out

    def _visibility(self, uv, cam, img, scale):
        """Visible = inside the image and no surface in front of the joint's own sphere surface:
        ``depth(pixel) ≥ z_joint - 2·r`` (r the joint's capsule radius). The occluder is the person
        seen at that pixel (P = the floor, -1 = none)."""
        n, V, PJ, _ = uv.shape
        P, S = PJ // sk.N_JOINTS, self.image_size
        col, row = uv[..., 0].floor().long(), uv[..., 1].floor().long()
        inside = (col >= 0) & (col < S) & (row >= 0) & (row < S) & (cam[..., 2] > 0)
        pix = row.clamp(0, S - 1) * S + col.clamp(0, S - 1)
        depth = torch.gather(img["depth"].reshape(n, V, S * S), 2, pix)
        who = torch.gather(img["instance"].reshape(n, V, S * S), 2, pix)
        r = (bone_radii(cam.dtype, cam.device)[None, :] * scale.reshape(n, P, 1)).reshape(n, 1, PJ)
        front = img["hit"].reshape(n, V, S * S).gather(2, pix) & (depth < cam[..., 2] - 2 * r)
        vis = inside & ~front
        shape = (n, V, P, sk.N_JOINTS)
        occluder = torch.where(vis | ~inside, torch.full_like(who, -1), who)
        return vis.reshape(shape), occluder.reshape(shape)

    def _detect(self, uv, vis, occluder):
        """The 2-D detector noise model: visible → ``uv + N(0, σ²)``; hidden by person ``q`` → the
        2-D position of ``q``'s nearest joint (plus noise); self-occluded or hidden by the floor →
        ``uv + N(0, (3σ)²)``. Confidence: 1 visible, 0.3 snapped, 0.5 self-occluded."""
        n, V, P, J, _ = uv.shape
        sig = self.detector_sigma
        eps = torch.randn(uv.shape, generator=self._gen, device=self.device)
        other = (
            (occluder >= 0)
            & (occluder < P)
            & (occluder != torch.arange(P, device=self.device)[:, None])
        )
        q = occluder.clamp(0, P - 1)
        occ_uv = _joints_of(uv, q)
        d = (occ_uv - uv[..., None, :]).norm(
            dim=-1
        )  # (n, V, P, J, J): to each joint of the occluder
        snap = torch.gather(occ_uv, 4, d.argmin(-1)[..., None, None].expand(n, V, P, J, 1, 2))[
            ..., 0, :
        ]
        det = torch.where(
            vis[..., None],
            uv + sig * eps,
            torch.where(other[..., None], snap + sig * eps, uv + 3 * sig * eps),
        )
        conf = torch.where(vis, 1.0, torch.where(other, 0.3, 0.5))
        return det, conf

    def sample(self, n: int, split: str = "train") -> dict[str, torch.Tensor]:
        """``n`` scenes: ``joints (n, P, 23, 3)`` world (m); per view ``cam (n, V, P, 23, 3)``, ``uv
        (n, V, P, 23, 2)``, ``visible``, ``occluder`` (person id hiding the joint, P = floor, -1
        none), ``detected``, ``confidence``, ``boxes (n, V, P, 4)``; images ``depth``, ``part``,
        ``instance``, ``hit``, ``normals`` ``(n, V, C, S, S)``; the rig ``K, R, t``; the draws."""
        return self.render(self.draw(n, split))


def _joints_of(uv: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """For every joint, all joints of person ``q`` in the same view: ``uv (n, V, P, J, 2)``, ``q (n,
    V, P, J)`` → ``(n, V, P, J, J, 2)``."""
    n, V, P, J, _ = uv.shape
    src = uv[:, :, None, None].expand(n, V, P, J, P, J, 2)
    idx = q[..., None, None, None].expand(n, V, P, J, 1, J, 2)
    return torch.gather(src, 4, idx)[..., 0, :, :]


def person_boxes(uv: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """Tight 2-D boxes ``(…, 4)`` = (u0, v0, u1, v1) of keypoints ``(…, J, 2)``, grown by ``margin``
    of their size on every side."""
    lo, hi = uv.amin(-2), uv.amax(-2)
    pad = margin * (hi - lo)
    return torch.cat([lo - pad, hi + pad], -1)


def crop_by_box(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Square crops ``(B, C, size, size)`` of ``images (B, C, H, W)`` around ``boxes (B, 4)``
    (pixels),
    each box expanded to a square about its centre, bilinear (``grid_sample``, zeros outside)."""
    B, _, H, W = images.shape
    centre, half = box_square(boxes)
    g = (
        torch.arange(size, dtype=images.dtype, device=images.device) + 0.5
    ) / size * 2 - 1  # (-1, 1)
    u = centre[:, 0, None] + half[:, None] * g  # pixel u of each crop column
    v = centre[:, 1, None] + half[:, None] * g
    gx = (u / W * 2 - 1)[:, None, :].expand(B, size, size)
    gy = (v / H * 2 - 1)[:, :, None].expand(B, size, size)
    return F.grid_sample(images, torch.stack([gx, gy], -1), align_corners=False)


def box_square(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre ``(B, 2)`` and half side ``(B,)`` of the square around each box."""
    centre = 0.5 * (boxes[:, :2] + boxes[:, 2:])
    half = 0.5 * (boxes[:, 2:] - boxes[:, :2]).amax(-1).clamp_min(1e-6)
    return centre, half


def to_crop(uv: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Keypoints ``(B, J, 2)`` in image pixels → pixels of the :func:`crop_by_box` crop."""
    centre, half = box_square(boxes)
    return (uv - centre[:, None]) / half[:, None, None] * (size / 2) + size / 2
