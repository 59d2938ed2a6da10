"""People, cameras and geometry: the world chapter of the ECCV pose and geometry papers.

Not a paper but the shared ground of hmor (E15), rsn_delicate_local (E27), crowd_3d_pose_mvg (E32),
part_aware_3d_pose_nas (E42), s2dnet (E37), rtm3d (E38) and deep_reflectance_volumes (E18): the
geometry core (:mod:`cvtutor.data.geometry`), the ray caster (:mod:`cvtutor.data.render3d`), the
body world (:mod:`cvtutor.data.bodies`) and the pose metrics (:mod:`cvtutor.metrics.pose`). A crowd
is seen from a camera ring; ``run`` checks the geometry identities on it numerically and measures
what the world was built to show (occlusion grows with density; a detector's occluded joints snap to
the occluder; the size–depth ambiguity defeats a height prior).

Equations
---------
(1) projection      uv = π(K·(R·X + t))
(2) Rodrigues       R = I + (sin θ/θ)·[ω]_× + ((1 - cos θ)/θ²)·[ω]_×²
(3) floor homography uv ~ K·[r₁ r₂ t]·(X, Y, 1)ᵀ for points on Z = 0
(4) triangulation   A·X̃ = 0 with rows u·p₃ᵀ - p₁ᵀ, v·p₃ᵀ - p₂ᵀ per view
(5) Umeyama         R = U·diag(1, 1, det UVᵀ)·Vᵀ, s = tr(DS)/σ²_X, t = μ_Y - s·R·μ_X
(6) LM              (JᵀJ + λ·diag JᵀJ)·δ = -Jᵀr
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from cvtutor import report
from cvtutor.data import geometry as G
from cvtutor.data.bodies import BodyWorld, coco17
from cvtutor.metrics import pose
from cvtutor.runtime import ProfileConfig, get_device

PAPER: dict = {}  # a world chapter: no paper numbers

# COCO-17 visibility from the body joints: nose and eyes follow the neck-nose joint, ears the head
COCO_VIS_FROM_BODY = (9, 9, 9, 10, 10, 11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3)


@dataclass(frozen=True)
class Config(ProfileConfig):
    n_scenes: int = 12
    n_people: int = 6
    n_views: int = 4
    image_size: int = 96
    density: float = 0.5
    densities: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    scale_ranges: tuple[tuple[float, float], ...] = ((1.0, 1.0), (0.8, 1.2), (0.6, 1.4))
    detector_sigma: float = 1.0
    lm_iters: int = 8
    seed: int = 0
    device: str | None = None

    @classmethod
    def fast(cls) -> "Config":
        return cls()

    @classmethod
    def full(cls) -> "Config":
        return cls(
            n_scenes=256,
            n_people=10,
            n_views=8,
            image_size=128,
            densities=(0.25, 0.5, 1.0, 2.0, 4.0),
            scale_ranges=((1.0, 1.0), (0.9, 1.1), (0.8, 1.2), (0.6, 1.4)),
            lm_iters=15,
        )

    @classmethod
    def smoke(cls) -> "Config":
        """``full``'s code paths (its density and scale sweeps, 8 views) at toy size."""
        return cls.full().replace(n_scenes=2, n_people=4, image_size=48, lm_iters=3)


def make_world(
    config: Config,
    density: float | None = None,
    scale_range=(0.8, 1.2),
    device=None,
    rig: BodyWorld | None = None,
) -> BodyWorld:
    """The chapter's crowd world at ``density`` (default ``config.density``); ``rig``: reuse another
    world's ring radius and focal length (so a sweep keeps the pixels per metre fixed)."""
    kw = {} if rig is None else {"ring_radius": rig.ring_radius, "focal": rig.focal}
    return BodyWorld(
        n_people=config.n_people,
        density=density or config.density,
        n_views=config.n_views,
        image_size=config.image_size,
        scale_range=scale_range,
        detector_sigma=config.detector_sigma,
        seed=config.seed,
        device=device or get_device(config.device),
        **kw,
    )


def identity_checks(seed: int = 0) -> pd.DataFrame:
    """The geometry identities on random float64 data: each row's error against its tolerance."""
    g = torch.Generator().manual_seed(seed)
    d = torch.float64
    rows = []

    def row(name, err, tol):
        rows.append(
            {"identity": name, "max error": float(err), "tolerance": tol, "holds": bool(err <= tol)}
        )

    w = torch.randn(256, 3, generator=g, dtype=d)
    w = (
        w / w.norm(dim=-1, keepdim=True) * torch.rand(256, 1, generator=g, dtype=d) * 3.0
    )  # angles below π
    row("so3_log(so3_exp(ω)) = ω  (|ω| < π)", (G.so3_log(G.so3_exp(w)) - w).abs().max(), 1e-6)
    xi = torch.cat([torch.randn(256, 3, generator=g, dtype=d), w], -1)
    row("se3_log(se3_exp(ξ)) = ξ", (G.se3_log(G.se3_exp(xi)) - xi).abs().max(), 1e-6)
    K = G.pinhole(500.0, 500.0, 320.0, 240.0, dtype=d)
    X = torch.randn(256, 3, generator=g, dtype=d) + torch.tensor([0, 0, 6.0], dtype=d)
    row(
        "backproject(project(X), Z) = X",
        (G.backproject(G.project(X, K), X[:, 2], K) - X).abs().max(),
        1e-6,
    )
    H = torch.eye(3, dtype=d) + 0.05 * torch.randn(3, 3, generator=g, dtype=d)
    H[2, :2] *= 1e-2
    src = torch.rand(4, 2, generator=g, dtype=d) * 300
    Hn = G.homography_dlt(src, G.apply_homography(H, src))
    row("4-point DLT recovers H (noise-free)", (Hn - H / H[2, 2]).abs().max(), 1e-6)
    R = G.so3_exp(torch.randn(3, generator=g, dtype=d))
    Y = 1.7 * X @ R.T + torch.tensor([0.3, -2.0, 1.0], dtype=d)
    s, R2, t2 = G.umeyama(X, Y)
    row("Umeyama recovers (s, R, t)", max((s - 1.7).abs(), (R2 - R).abs().max()), 1e-6)
    row(
        "PA-MPJPE of a similarity copy = 0 (mm)",
        pose.pa_mpjpe(Y[None] * 1000, X[None] * 1000),
        1e-6,
    )
    a = torch.tensor([0.0, 0, 0, 2, 2, 2, 0.7], dtype=d)
    b = a.clone()
    b[:2] += torch.tensor(
        [np.cos(0.7), np.sin(0.7)], dtype=d
    )  # shifted by half its length along its heading
    row("3-D IoU of a box shifted by half its length = 1/3", (G.iou_3d(a, b) - 1 / 3).abs(), 1e-9)
    return pd.DataFrame(rows)


def world_checks(scenes: dict, world: BodyWorld) -> pd.DataFrame:
    """The identities on the crowd (float32 world, float64 checks): the floor homography, the
    4-point DLT between two views of the floor, noise-free triangulation and the size–depth
    ambiguity."""
    d = torch.float64
    K, R, t = world.K.double().cpu(), world.R.double().cpu(), world.t.double().cpu()
    joints = scenes["joints"].double().cpu()  # (n, P, 23, 3)
    n, P = joints.shape[:2]
    low = joints[..., 2].argmin(-1)  # each person's lowest joint lies on the floor z = 0
    feet = torch.gather(joints, 2, low[..., None, None].expand(n, P, 1, 3))[:, :, 0]  # (n, P, 3)
    Hg = G.ground_plane_homography(K, R, t)  # (V, 3, 3)
    uv_feet = G.project(G.world_to_camera(feet.reshape(1, -1, 3), R, t), K)  # (V, nP, 2)
    err_h = (
        (G.apply_homography(Hg, feet.reshape(1, -1, 3)[..., :2].expand(len(R), -1, 2)) - uv_feet)
        .abs()
        .max()
    )
    H01 = Hg[1] @ torch.linalg.inv(Hg[0])
    H01 = H01 / H01[2, 2]
    H_dlt = G.homography_dlt(uv_feet[0, :4], uv_feet[1, :4])
    P_mat = G.projection_matrix(K, R, t)  # (V, 3, 4)
    uv = G.project(G.world_to_camera(joints.reshape(1, -1, 3), R, t), K).permute(
        1, 0, 2
    )  # (N, V, 2)
    X = G.triangulate_dlt(P_mat.expand(uv.shape[0], -1, 3, 4), uv)
    cam = G.world_to_camera(joints.reshape(1, -1, 3), R, t)
    rows = [
        (
            "floor homography K[r1 r2 t] maps each person's lowest joint to its pixel",
            err_h,
            1e-6,
            "px",
        ),
        (
            "4-point DLT of four people's feet = H_1·H_0⁻¹ between views 0 and 1",
            (H_dlt - H01).abs().max() / H01.abs().max(),
            1e-6,
            "relative",
        ),
        (
            "DLT triangulation of every joint from the ring (noise-free)",
            (X - joints.reshape(-1, 3)).norm(dim=-1).max() * 1000,
            1e-6,
            "mm",
        ),
        (
            "size–depth ambiguity: a person 2× as large at 2× the depth projects identically",
            (G.project(2 * cam, K) - G.project(cam, K)).abs().max(),
            1e-9,
            "px",
        ),
    ]
    return pd.DataFrame(
        [
            {
                "identity": a,
                "max error": float(e),
                "tolerance": tol,
                "unit": u,
                "holds": bool(e <= tol),
            }
            for a, e, tol, u in rows
        ]
    )


def triangulate_scenes(
    scenes: dict, world: BodyWorld, uv: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """DLT of every joint from per-view 2-D points ``uv (n, V, P, 23, 2)`` → world ``(n, P, 23,
    3)``."""
    n, V, P, J, _ = uv.shape
    P_mat = G.projection_matrix(world.K, world.R, world.t)
    pts = uv.permute(0, 2, 3, 1, 4).reshape(-1, V, 2)
    w = None if weights is None else weights.permute(0, 2, 3, 1).reshape(-1, V)
    return G.triangulate_dlt(P_mat.expand(pts.shape[0], V, 3, 4), pts, w).reshape(n, P, J, 3)


def refine_lm(
    X0: torch.Tensor, uv: torch.Tensor, weights: torch.Tensor, world: BodyWorld, iters: int
) -> dict[str, torch.Tensor]:
    """Levenberg–Marquardt on the weighted reprojection error of every joint, from the DLT estimate:
    ``r = √w_v·(π(K(R_v X + t_v)) - uv_v)`` for all views; autograd Jacobians."""
    n, V, P, J, _ = uv.shape
    pts = uv.permute(0, 2, 3, 1, 4).reshape(-1, V, 2)
    sw = weights.permute(0, 2, 3, 1).reshape(-1, V, 1).sqrt()

    def residual(x):
        proj = G.project(
            G.world_to_camera(x[:, None, None, :], world.R, world.t)[..., 0, :], world.K
        )  # (B, V, 2)
        return (sw * (proj - pts)).reshape(x.shape[0], -1)

    out = G.levenberg_marquardt(residual, X0.reshape(-1, 3), iters=iters)
    return {
        "X": out["x"].reshape(n, P, J, 3),
        "cost_before": out["history"][0].sum(),
        "cost_after": out["cost"].sum(),
    }


def triangulation_table(
    scenes: dict, world: BodyWorld, config: Config
) -> tuple[pd.DataFrame, dict]:
    """Multi-view 3-D pose of the crowd from the noisy detections: DLT, confidence-weighted DLT, and
    LM refinement of the weighted reprojection error; MPJPE over all joints (mm)."""
    gt = scenes["joints"]
    det, conf = scenes["detected"], scenes["confidence"]
    rows, extra = [], {}
    X_plain = triangulate_scenes(scenes, world, det)
    X_w = triangulate_scenes(scenes, world, det, conf)
    lm = refine_lm(X_w, det, conf, world, config.lm_iters)
    for name, X in (
        ("DLT, all detections", X_plain),
        ("DLT, weighted by confidence", X_w),
        ("weighted DLT + LM refinement", lm["X"]),
    ):
        flat = (1000 * X).reshape(-1, 23, 3).cpu()
        ref = (1000 * gt).reshape(-1, 23, 3).cpu()
        rows.append(
            {
                "method": name,
                "ABS-MPJPE (mm)": pose.abs_mpjpe(flat, ref),
                "MPJPE (mm)": pose.mpjpe(flat, ref),
                "PA-MPJPE (mm)": pose.pa_mpjpe(flat, ref),
                "3DPCK@150": pose.pck3d(flat, ref),
            }
        )
    extra["lm_cost_before"] = float(lm["cost_before"])
    extra["lm_cost_after"] = float(lm["cost_after"])
    return pd.DataFrame(rows), extra


def density_table(config: Config, device) -> pd.DataFrame:
    """Occlusion against crowd density (the same people on a smaller floor, the same rig): the
    visible fraction of joints, the fraction hidden by another person, and the error of
    confidence-weighted triangulation from the detections."""
    rows = []
    rig = make_world(
        config, min(config.densities), device=device
    )  # one rig for the sweep: the widest crowd's
    for rho in config.densities:
        world = make_world(config, rho, device=device, rig=rig)
        s = world.sample(config.n_scenes)
        others = (s["occluder"] >= 0) & (s["occluder"] < config.n_people)
        X = triangulate_scenes(s, world, s["detected"], s["confidence"])
        rows.append(
            {
                "density (people/m²)": rho,
                "visible": float(s["visible"].float().mean()),
                "hidden by another person": float(others.float().mean()),
                "MPJPE (mm)": pose.mpjpe(
                    (1000 * X).reshape(-1, 23, 3).cpu(),
                    (1000 * s["joints"]).reshape(-1, 23, 3).cpu(),
                ),
            }
        )
    return pd.DataFrame(rows)


def height_prior_depth(uv: torch.Tensor, focal: float, height_m: float = 1.6) -> torch.Tensor:
    """The depth one view would guess from a person's apparent height and a mean height: ``Ẑ =
    f·H̄/h_px`` with ``h_px`` the vertical extent of the projected joints ``uv (..., 23, 2)``."""
    v = uv[..., 1]
    return focal * height_m / (v.amax(-1) - v.amin(-1)).clamp_min(1e-6)


def ordinal_table(config: Config, device) -> pd.DataFrame:
    """Ordinal depth accuracy of the height prior (per view, all pairs of people) as the per-person
    scale range widens: the size–depth ambiguity in numbers. The true root depths order perfectly.
    Only the joints are needed, so nothing is rendered."""
    rows = []
    for lo, hi in config.scale_ranges:
        world = make_world(config, scale_range=(lo, hi), device=device)
        joints = world.pose(world.draw(config.n_scenes))["joints"]  # (n, P, 23, 3)
        n, P = joints.shape[:2]
        cam = G.world_to_camera(joints.reshape(n, 1, -1, 3), world.R, world.t).reshape(
            n, -1, P, 23, 3
        )
        z = cam[..., 0, 2].reshape(-1, P)  # pelvis depths, per scene and view
        est = height_prior_depth(G.project(cam, world.K), world.focal).reshape(-1, P)
        rows.append(
            {
                "scale range": f"{lo:.1f}–{hi:.1f}",
                "height prior": pose.depth_order_accuracy(est.cpu(), z.cpu()),
                "true depths": pose.depth_order_accuracy(z.cpu(), z.cpu()),
            }
        )
    return pd.DataFrame(rows)


def coco_view(scenes: dict, view: int = 0, detected: bool = False) -> dict[str, np.ndarray]:
    """COCO-17 ground truth (and optionally detections) of one view, ready for
    :func:`cvtutor.metrics.pose.coco_keypoint_ap`: keypoints, COCO ``v`` flags (2 visible, 1
    hidden), image ids, areas (the person's visible pixels) and detections with their scores."""
    cam = scenes["cam"][:, view]  # (n, P, 23, 3)
    n, P = cam.shape[:2]
    K = scenes["K"]
    uv = G.project(coco17(cam), K)  # (n, P, 17, 2)
    vis = scenes["visible"][:, view][..., list(COCO_VIS_FROM_BODY)]
    flags = torch.where(vis, 2, 1)
    inst = scenes["instance"][:, view, 0]  # (n, S, S)
    area = (inst[:, None] == torch.arange(P, device=inst.device)[None, :, None, None]).sum((-1, -2))
    keep = (area > 0) & vis.any(-1)
    image = torch.arange(n, device=cam.device)[:, None].expand(n, P)
    out = {
        "gt_uv": uv[keep],
        "gt_visible": flags[keep],
        "gt_image": image[keep],
        "gt_area": area[keep].float(),
    }
    if detected:
        det = scenes["detected"][:, view]
        # the detector's COCO-17: its body detections plus the projected face offsets moved by the
        # same
        # error as the neck-nose joint
        face_shift = (det - scenes["uv"][:, view])[..., 9:10, :]
        det17 = det[
            ...,
            [max(i, 0) for i in (9, -1, -1, -1, -1, 11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3)],
            :,
        ].clone()
        det17[..., 1:5, :] = uv[..., 1:5, :] + face_shift
        conf = scenes["confidence"][:, view].mean(-1)
        out.update({"pred_uv": det17[keep], "pred_score": conf[keep], "pred_image": image[keep]})
    return {k: v.cpu().numpy() for k, v in out.items()}


def keypoint_ap_table(scenes: dict) -> pd.DataFrame:
    """COCO keypoint AP (pycocotools) of view 0: the ground truth itself and the detector model."""
    c = coco_view(scenes, 0, detected=True)
    args = (c["gt_uv"], c["gt_visible"], c["gt_image"], c["gt_area"])
    rows = [
        {
            "keypoints": "ground truth",
            **pose.coco_keypoint_ap(*args, c["gt_uv"], np.ones(len(c["gt_uv"])), c["gt_image"]),
        },
        {
            "keypoints": "detector model",
            **pose.coco_keypoint_ap(*args, c["pred_uv"], c["pred_score"], c["pred_image"]),
        },
    ]
    return pd.DataFrame(rows)


def run(config: Config) -> dict:
    """The world chapter's checks: identities on random data and on the crowd, multi-view
    triangulation from the detector model, the density and scale sweeps, COCO keypoint AP.

    Returns DataFrames ``identities``, ``world_identities``, ``triangulation``, ``density``,
    ``ordinal``, ``keypoint_ap``, ``findings`` and the scalars ``lm_cost_before``/``after``.
    """
    device = get_device(config.device)
    world = make_world(config, device=device)
    scenes = world.sample(config.n_scenes)
    ids = identity_checks(config.seed)
    wid = world_checks(scenes, world)
    tri, extra = triangulation_table(scenes, world, config)
    dens = density_table(config, device)
    order = ordinal_table(config, device)
    ap = keypoint_ap_table(scenes)
    m = tri.set_index("method")["MPJPE (mm)"]
    vis = dens["visible"].to_numpy()
    hp = order["height prior"].to_numpy()
    findings = report.claims_table(
        {
            "every geometry identity holds to its tolerance (random data)": (
                "sanity check",
                bool(ids.holds.all()),
            ),
            "every identity holds on the crowd (floor homography, DLT, triangulation)": (
                "sanity check",
                bool(wid.holds.all()),
            ),
            "COCO keypoint AP of the ground truth is 1 (pycocotools)": (
                "sanity check",
                bool(abs(ap.loc[0, "AP"] - 1) < 1e-9),
                f"AP = {ap.loc[0, 'AP']:.3f}",
            ),
            "denser crowds hide more joints (visible fraction falls with density)": (
                "construction",
                bool(np.all(np.diff(vis) < 0)),
                ", ".join(f"{v:.2f}" for v in vis),
            ),
            "weighting views by detector confidence lowers the triangulation error": (
                "construction",
                bool(m["DLT, weighted by confidence"] < m["DLT, all detections"]),
                f"{m['DLT, all detections']:.0f} → {m['DLT, weighted by confidence']:.0f} mm",
            ),
            "LM lowers the weighted reprojection error of the DLT estimate": (
                "sanity check",
                bool(extra["lm_cost_after"] <= extra["lm_cost_before"]),
            ),
            "a wider spread of body sizes defeats the height prior more (size–depth ambiguity)": (
                "construction",
                bool(hp[-1] < hp[0]),
                f"{hp[0]:.2f} → {hp[-1]:.2f}",
            ),
        }
    )
    return {
        "identities": ids,
        "world_identities": wid,
        "triangulation": tri,
        "density": dens,
        "ordinal": order,
        "keypoint_ap": ap,
        "findings": findings,
        **extra,
    }
