"""``HandWorld``: the domains (digest section G) and the sampler that renders every modality of the
same hand (sections D-J), plus gesture sequences for video papers.

Determinism: every random number of a call comes either from the world's CPU generator (all
per-hand parameters) or from a device generator seeded from it (per-pixel noise, cloud points),
and everything random is drawn for the whole batch before the chunked rendering, so the same seed
on the same device gives bit-identical samples whatever the chunk size.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F

from cvtutor.data import geometry, render3d
from cvtutor.data.hands import camera, render, skeleton
from cvtutor.nn import heatmaps as hm

DOMAINS = ("rhd", "stb", "frei_G", "frei_H", "frei_S", "frei_A", "synthaug")
SPLITS = ("train", "test", "all")
VIEWS = ("narrow", "wide")
N_SCENES = 6
STB_TEST_SCENE = 0
SEPIA = (1.07, 0.74, 0.43)


@dataclass(frozen=True)
class DomainSpec:
    """The domain-shift knobs of one domain (digest section G)."""

    name: str
    stands_for: str
    narrow: tuple  # ("palm", yaw, pitch, roll) degrees or ("so3",)
    wide: tuple
    z_range: tuple[float, float]
    appearance: str  # "characters" | "subject" | "random"
    n_characters: int
    test_characters: int
    background: str  # "clutter" | "scenes" | "green"
    rgb_noise: float
    blur_p: float
    depth_noise: float  # metres
    depth_holes: float
    p_uniform: float
    scale_range: tuple[float, float] = (0.85, 1.15)
    jitter: float = 0.04
    jitter_clip: float = 0.1
    version: str = ""  # FreiHAND post-processing: G, H, S, A


_FREI = dict(stands_for="FreiHAND, one of its 4 versions of the same sample", narrow=("palm", 70, 70, 180),
             wide=("palm", 70, 70, 180), z_range=(0.45, 0.6), appearance="characters", n_characters=32,
             test_characters=0, rgb_noise=0.01, blur_p=0.0, depth_noise=0.0, depth_holes=0.0, p_uniform=0.2)
SPECS = {
    "rhd": DomainSpec("rhd", "RHD (synthetic, 20 characters, 39 actions)", ("palm", 45, 45, 45), ("so3",),
                      (0.35, 0.7), "characters", 20, 4, "clutter", 0.01, 0.0, 0.0, 0.0, 0.2),
    "stb": DomainSpec("stb", "STB (one subject, 6 backgrounds B1-B6, Counting/Random)", ("palm", 30, 30, 30),
                      ("palm", 45, 45, 90), (0.35, 0.5), "subject", 1, 0, "scenes", 0.03, 0.5, 0.003, 0.02, 0.5),
    "frei_G": DomainSpec("frei_G", background="green", version="G", **_FREI),
    "frei_H": DomainSpec("frei_H", background="clutter", version="H", **_FREI),
    "frei_S": DomainSpec("frei_S", background="clutter", version="S", **_FREI),
    "frei_A": DomainSpec("frei_A", background="clutter", version="A", **_FREI),
    "synthaug": DomainSpec("synthaug", "KaP's 50k MANO augmentation set 'A'", ("palm", 45, 45, 45), ("so3",),
                           (0.35, 0.7), "random", 0, 0, "clutter", 0.01, 0.0, 0.0, 0.0, 1.0,
                           scale_range=(0.75, 1.25), jitter=0.15, jitter_clip=0.15),
}


def domain_table() -> pd.DataFrame:
    """The domains side by side (one row each)."""
    rows = []
    for s in SPECS.values():
        rows.append({"domain": s.name, "stands for": s.stands_for, "views (narrow)": _views_text(s.narrow),
                     "views (wide)": _views_text(s.wide), "Z (m)": f"{s.z_range[0]}-{s.z_range[1]}",
                     "appearance": s.appearance, "background": s.background + (f" ({s.version})" if s.version else ""),
                     "rgb noise": s.rgb_noise, "depth noise (mm)": 1000 * s.depth_noise, "depth holes": s.depth_holes})
    return pd.DataFrame(rows).set_index("domain")


def _views_text(v: tuple) -> str:
    return "uniform SO(3)" if v[0] == "so3" else f"yaw/pitch ±{v[1]}°, roll ±{v[3]}°"


def _seed_from(gen: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=gen))


def _uniform(n, lo, hi, gen, shape=()):
    return lo + (hi - lo) * torch.rand(n, *shape, generator=gen)


# gesture sequences: class name -> how it moves (see HandWorld.sample_sequences)
SEQUENCE_CLASSES = ("grab", "release", "swipe_left", "swipe_right", "roll_cw", "roll_ccw", "grab_fast",
                    "count_up", "count_down")
MOTION_PAIRS = {  # pairs of classes that differ only in motion
    ("grab", "release"): "order", ("swipe_left", "swipe_right"): "direction", ("roll_cw", "roll_ccw"): "direction",
    ("grab", "grab_fast"): "speed", ("count_up", "count_down"): "order"}


class HandWorld:
    """The synthetic hand world: ``HandWorld(domain="rhd", image_size=32, seed=0, device="cpu").sample(n)``.

    Parameters
    ----------
    domain: one of :data:`DOMAINS`.
    image_size: S, the side of the square crop in pixels (>= 16).
    seed: the world's seed; two worlds with the same arguments return bit-identical samples call by call.
    device: where the images are rendered (``"cpu"``, ``"cuda"``, a ``torch.device``).
    n_points: N, points of the partial cloud. heatmap_size: h; heatmap_sigma: σ in heatmap pixels
    (default ``max(1, h/32)``). views: ``"narrow"`` (fast profiles) or ``"wide"`` (full profile) viewpoint
    range. split: ``"train"`` / ``"test"`` / ``"all"`` (rhd: characters 0-15 / 16-19; stb: scenes 1-5 /
    scene 0 = "B1"; other domains ignore it). full_frame: render the hand anywhere in an S×S frame
    (for the view-correction tutorial) instead of the cropped and centred hand. chunk: samples per
    rendering chunk (default: bounded memory). with_cloud: ``False`` skips the point cloud (the
    costliest modality); every other key is unchanged, because the cloud's random numbers are drawn last.
    """

    def __init__(self, domain: str = "rhd", image_size: int = 32, seed: int = 0, device: str | torch.device | None = "cpu",
                 n_points: int = 128, heatmap_size: int = 16, heatmap_sigma: float | None = None,
                 views: str = "narrow", split: str = "train", full_frame: bool = False, chunk: int | None = None,
                 with_cloud: bool = True) -> None:
        if domain not in SPECS:
            raise ValueError(f"unknown domain {domain!r}; expected one of {DOMAINS}")
        for name, value, lo in (("image_size", image_size, 16), ("n_points", n_points, 1), ("heatmap_size", heatmap_size, 1)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < lo:
                raise ValueError(f"{name} must be >= {lo}, got {value}")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if views not in VIEWS:
            raise ValueError(f"views must be one of {VIEWS}, got {views!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.domain, self.spec = domain, SPECS[domain]
        self.image_size, self.seed, self.n_points = image_size, seed, n_points
        self.heatmap_size = heatmap_size
        self.heatmap_sigma = float(heatmap_sigma) if heatmap_sigma is not None else max(1.0, heatmap_size / 32)
        self.views, self.split, self.full_frame, self.chunk = views, split, full_frame, chunk
        self.with_cloud = bool(with_cloud)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        z0, z1 = self.spec.z_range
        self.mean_depth = 0.5 * (z0 + z1)
        self.focal = camera.focal_for_crop(image_size, self.mean_depth, span=0.3 if full_frame else 0.75)
        self.K = geometry.intrinsics(image_size, self.focal, device=self.device)
        self._characters = self._make_characters()
        self._scenes: torch.Tensor | None = None
        self.reset()

    def reset(self) -> None:
        """Start the sample stream again from the seed (mixed with the domain family, so that two
        domains with one seed are not correlated; the four ``frei_*`` versions share their stream)."""
        self._gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self._family_seed())

    def __repr__(self) -> str:
        return (f"HandWorld(domain={self.domain!r}, image_size={self.image_size}, seed={self.seed}, "
                f"device={str(self.device)!r}, views={self.views!r}, split={self.split!r})")

    # ---- fixed per-domain content (independent of the seed) --------------------------------
    def _family_seed(self) -> int:
        family = "frei" if self.domain.startswith("frei") else self.domain
        return sum((i + 1) * ord(c) for i, c in enumerate(family)) + 2020

    def _make_characters(self) -> dict[str, torch.Tensor] | None:
        spec = self.spec
        if spec.appearance == "random":
            return None
        g = torch.Generator().manual_seed(self._family_seed())
        n = spec.n_characters
        base, lengths, s = skeleton.sample_shape(n, g, spec.scale_range, spec.jitter, spec.jitter_clip)
        if spec.appearance == "subject":
            t = torch.full((n,), 0.32)
        else:
            t = torch.rand(n, generator=g)
        texture = 1.0 + 0.1 * (2 * torch.rand(n, render.N_SPHERES, 1, generator=g) - 1)
        return {"base": base, "lengths": lengths, "s": s, "t": t, "texture": texture}

    def _scene_images(self) -> torch.Tensor:
        """The six fixed STB-like scenes, ``(6, 3, S+6, S+6)``, from a fixed seed."""
        if self._scenes is None:
            g = torch.Generator().manual_seed(1500)
            bg = self._clutter_params(N_SCENES, g)
            self._scenes = render.clutter(bg["colors"], bg["rects"], bg["rect_colors"], self.image_size + 6)
        return self._scenes

    def character_ids(self, split: str | None = None) -> torch.Tensor:
        split = split or self.split
        n, n_test = self.spec.n_characters, self.spec.test_characters
        if n == 0:
            return torch.zeros(0, dtype=torch.long)
        if split == "train" and n_test:
            return torch.arange(n - n_test)
        if split == "test" and n_test:
            return torch.arange(n - n_test, n)
        return torch.arange(n)

    def scene_ids(self, split: str | None = None) -> torch.Tensor:
        split = split or self.split
        if split == "train":
            return torch.tensor([s for s in range(N_SCENES) if s != STB_TEST_SCENE])
        if split == "test":
            return torch.tensor([STB_TEST_SCENE])
        return torch.arange(N_SCENES)

    # ---- random draws (CPU) -------------------------------------------------------------------
    @staticmethod
    def _clutter_params(n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        colors = torch.rand(n, 3, 4, 4, generator=g)
        xy0 = _uniform(n, 0.0, 0.8, g, (4, 2))
        wh = _uniform(n, 0.1, 0.5, g, (4, 2))
        rects = torch.cat([xy0, xy0 + wh], -1)
        skin = render.skin_tone(torch.rand(n, 4, generator=g)) * _uniform(n, 0.8, 1.1, g, (4, 1))
        plain = torch.rand(n, 4, 3, generator=g)
        is_skin = torch.rand(n, 4, 1, generator=g) < 0.3
        return {"colors": colors, "rects": rects, "rect_colors": torch.where(is_skin, skin, plain).clamp(0, 1)}

    def _rotations(self, n: int, g: torch.Generator) -> torch.Tensor:
        v = self.spec.narrow if self.views == "narrow" else self.spec.wide
        so3 = geometry.random_rotation(n, g)
        yaw, pitch, roll = (_uniform(n, -a, a, g) for a in (v[1], v[2], v[3])) if v[0] == "palm" else \
            (_uniform(n, -1, 1, g) for _ in range(3))
        palm = camera.palm_facing_rotation(yaw, pitch, roll)
        return so3 if v[0] == "so3" else palm

    def _draw(self, n: int, split: str) -> dict[str, torch.Tensor]:
        """Every per-hand random parameter of ``n`` samples, drawn from the CPU generator in a fixed order."""
        g, spec = self._gen, self.spec
        p = {}
        # pose: stb sequences are "counting" (prototypes only) or "random" (p_uniform = 0.5)
        counting = torch.rand(n, generator=g) < 0.5
        a_proto, ges_proto = skeleton.sample_angles(n, g, p_uniform=0.0)
        a_mixed, ges_mixed = skeleton.sample_angles(n, g, p_uniform=spec.p_uniform)
        if spec.background == "scenes":
            p["angles"] = torch.where(counting[:, None], a_proto, a_mixed)
            p["gesture"] = torch.where(counting, ges_proto, ges_mixed)
        else:
            p["angles"], p["gesture"] = a_mixed, ges_mixed
        p["sequence_type"] = counting.long()
        # shape and appearance
        base, lengths, s = skeleton.sample_shape(n, g, spec.scale_range, spec.jitter, spec.jitter_clip)
        albedo_rand = _uniform(n, 0.2, 1.0, g, (1, 3)).expand(n, render.N_SPHERES, 3)
        ids = self.character_ids(split)
        pick = torch.randint(max(len(ids), 1), (n,), generator=g)
        t_jit = _uniform(n, -0.02, 0.02, g)
        if self._characters is None:
            p.update(base=base, lengths=lengths, s=s, albedo=albedo_rand, character=torch.full((n,), -1),
                     skin=torch.full((n,), float("nan")))
        else:
            c = ids[pick]
            ch = self._characters
            t = ch["t"][c] + (t_jit if spec.appearance == "subject" else 0.0)
            p.update(base=ch["base"][c], lengths=ch["lengths"][c], s=ch["s"][c], character=c, skin=t,
                     albedo=(render.skin_tone(t)[:, None, :] * ch["texture"][c]).clamp(0, 1))
        # global pose
        p["R_g"] = self._rotations(n, g)
        p["Z"] = _uniform(n, *spec.z_range, g)
        spread = 0.3 if self.full_frame else 0.08
        p["offset"] = _uniform(n, -spread, spread, g, (2,)) * self.image_size
        # light
        light = torch.cat([_uniform(n, -1, 1, g, (2,)), _uniform(n, 0.5, 1.5, g, (1,))], 1)
        p["light"] = light / light.norm(dim=1, keepdim=True)
        p["ambient"] = _uniform(n, 0.25, 0.55, g)
        # backgrounds
        p.update({f"bg_{k}": v for k, v in self._clutter_params(n, g).items()})
        scenes = self.scene_ids(split)
        p["scene_id"] = scenes[torch.randint(len(scenes), (n,), generator=g)]
        p["scene_shift"] = torch.randint(-3, 4, (n, 2), generator=g)
        p["Z_bg"] = torch.maximum(_uniform(n, 0.8, 1.5, g), p["Z"] + 0.2)  # the wall stays behind the hand
        p["blur"] = torch.rand(n, generator=g) < spec.blur_p
        hue = torch.rand(n, generator=g)
        sat = _uniform(n, 0.3, 0.7, g)
        p["tint"] = _hsv_tint(hue, sat)
        p["device_seed"] = torch.tensor(_seed_from(g))
        if spec.background != "scenes":
            p["scene_id"] = torch.full((n,), -1)
        return p

    # ---- rendering ----------------------------------------------------------------------------
    def _render(self, p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        dev, S, spec = self.device, self.image_size, self.spec
        gd = torch.Generator(device=dev).manual_seed(int(p["device_seed"]))
        q = {k: v.to(dev) for k, v in p.items() if k != "device_seed"}
        n = q["angles"].shape[0]
        xyz, centres, radii, target = self.geometry(q)
        geo = render3d.render_geometry(centres, radii, self.K, S, self.chunk)
        hit = geo["hit"]
        sphere = geo["sphere"].clamp_min(0)
        part = torch.where(hit, render.sphere_part_ids(dev)[sphere], torch.zeros_like(sphere))
        # RGB: Lambert-shaded albedo over the background
        alb = torch.gather(q["albedo"], 1, sphere.reshape(n, -1, 1).expand(n, S * S, 3))
        alb = alb.permute(0, 2, 1).reshape(n, 3, S, S)
        hand_rgb = render3d.lambert(alb, geo["normals"], q["light"], q["ambient"])
        bg = self._background(q, n)
        if spec.version == "H":  # "harmonized": hand colour moved half way to the background mean
            hand_rgb = 0.5 * hand_rgb + 0.5 * bg.mean((2, 3), keepdim=True)
        rgb = torch.where(hit, hand_rgb, bg)
        if spec.version in ("S", "A"):
            gray = (rgb * torch.tensor([0.299, 0.587, 0.114], device=dev)[:, None, None]).sum(1, keepdim=True)
            tint = q["tint"] if spec.version == "S" else torch.tensor(SEPIA, device=dev).expand(n, 3)
            tint = tint / (tint * torch.tensor([0.299, 0.587, 0.114], device=dev)).sum(1, keepdim=True)
            rgb = gray * tint[:, :, None, None]
        rgb = rgb + spec.rgb_noise * torch.randn(n, 3, S, S, generator=gd, device=dev)
        blurred = F.avg_pool2d(F.pad(rgb, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        rgb = torch.where(q["blur"][:, None, None, None], blurred, rgb).clamp(0, 1)
        # depth: exact hand depth over a wall, then the sensor's noise and holes
        clean = torch.where(hit, geo["depth"], q["Z_bg"][:, None, None, None].expand(n, 1, S, S))
        depth = clean + spec.depth_noise * torch.randn(n, 1, S, S, generator=gd, device=dev)
        holes = torch.rand(n, 1, S, S, generator=gd, device=dev) < spec.depth_holes
        depth = torch.where(holes, torch.zeros_like(depth), depth)
        # keypoints, visibility, heatmaps
        K = self.K.expand(n, 3, 3)
        uv = geometry.project(xyz, K)
        inside = ((uv >= 0) & (uv < S)).all(-1)
        pix = uv.floor().long().clamp(0, S - 1)
        z_at = clean[:, 0][torch.arange(n, device=dev)[:, None], pix[..., 1], pix[..., 0]]
        r_joint = radii[:, list(render.joint_sphere_index())]
        vis = inside & (xyz[..., 2] <= z_at + r_joint + 0.005)
        heatmaps = hm.gaussian_heatmaps(uv, S, self.heatmap_size, self.heatmap_sigma)
        # normalised targets, canonical frame, view correction, cloud
        xyz_norm, root, scale = camera.normalize_pose(xyz)
        cpose, view_R = camera.canonical_transform(xyz_norm)
        centre_uv = geometry.project(target[:, None], K)[:, 0]
        out = {
            "rgb": rgb, "depth": depth, "mask": part, "normals": geo["normals"],
            "xyz": xyz, "uv": uv, "vis": vis, "K": K.clone(), "root": root, "scale": scale, "xyz_norm": xyz_norm,
            "cpose": cpose, "view_R": view_R, "view_corr_R": camera.view_correction(centre_uv, K),
            "heatmaps": heatmaps,
            "angles": q["angles"], "gesture": q["gesture"], "scene_id": q["scene_id"], "character": q["character"],
            "skin": q["skin"], "light": q["light"], "R_g": q["R_g"],
            "domain_id": torch.full((n,), DOMAINS.index(self.domain), device=dev),
        }
        if self.with_cloud:  # drawn last, so skipping it changes nothing else
            cloud = render3d.visible_cloud(centres, radii, self.K, S, self.n_points, gd)
            out["cloud"] = (cloud - root[:, None]) / scale[:, None, None]
        return out

    def geometry(self, p: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Camera-frame geometry (metres) of drawn parameters ``p``: joints ``(n, 21, 3)``, sphere centres
        ``(n, 69, 3)`` and radii ``(n, 69)``, and the hand-centre point ``(n, 3)``.

        Forward kinematics in the palm frame (mm), then ``X = R_g·(x - c_palm)/1000 + t`` where the hand
        centre ``c_palm`` = mean(wrist, four MCPs) lands on ``t = Z·K⁻¹·[c_x + δu, c_y + δv, 1]``.
        """
        joints_mm, _ = skeleton.forward_kinematics(p["angles"], p["base"], p["lengths"])
        centres_mm, radii_mm = render.sphere_proxy(joints_mm, p["s"])
        palm_c = joints_mm[:, [0, 5, 9, 13, 17]].mean(1, keepdim=True)
        target = torch.stack([p["offset"][:, 0] * p["Z"] / self.focal, p["offset"][:, 1] * p["Z"] / self.focal, p["Z"]], 1)

        def to_cam(x_mm):
            return (x_mm - palm_c) @ p["R_g"].transpose(1, 2) / 1000.0 + target[:, None]

        return to_cam(joints_mm), to_cam(centres_mm), radii_mm / 1000.0, target

    def _background(self, q: dict[str, torch.Tensor], n: int) -> torch.Tensor:
        S, dev = self.image_size, self.device
        kind = self.spec.background
        if kind == "green":
            g = torch.Generator(device=dev).manual_seed(int(q["Z_bg"].sum().item() * 1e6) % 2**31)
            base = torch.tensor(render.GREEN_SCREEN, device=dev)[None, :, None, None]
            return base + 0.02 * torch.randn(n, 3, S, S, generator=g, device=dev)
        if kind == "scenes":
            scenes = self._scene_images().to(dev)
            oy = 3 + q["scene_shift"][:, 1]
            ox = 3 + q["scene_shift"][:, 0]
            r = torch.arange(S, device=dev)
            rows = (oy[:, None] + r)[:, :, None]
            cols = (ox[:, None] + r)[:, None, :]
            img = scenes[q["scene_id"]]  # (n,3,S+6,S+6)
            return img[torch.arange(n, device=dev)[:, None, None, None], torch.arange(3, device=dev)[None, :, None, None],
                       rows[:, None], cols[:, None]]
        return render.clutter(q["bg_colors"], q["bg_rects"], q["bg_rect_colors"], S)

    # ---- public sampling ----------------------------------------------------------------------
    def sample(self, n: int, split: str | None = None) -> dict[str, torch.Tensor]:
        """Render ``n`` hands; returns a dict of tensors on the world's device (see the module docs).

        Successive calls continue the world's random stream; :meth:`reset` restarts it.
        """
        _check_n(n, "n")
        split = split or self.split
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self._render(self._draw(n, split))

    def draw(self, n: int, split: str | None = None) -> dict[str, torch.Tensor]:
        """Every random parameter of ``n`` hands (pose, shape, view, appearance, scene), not rendered.

        Edit them (e.g. give two hands the same pose) and pass them to :meth:`render`:
        ``world.render(world.draw(n))`` equals ``world.sample(n)`` on the same stream.
        """
        _check_n(n, "n")
        split = split or self.split
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self._draw(n, split)

    def render(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Render parameters returned by :meth:`draw` (possibly edited)."""
        return self._render(params)

    def sample_sequences(self, n: int, frames: int = 8, split: str | None = None,
                         classes: tuple[str, ...] = SEQUENCE_CLASSES) -> dict[str, torch.Tensor]:
        """``n`` gesture clips of ``frames`` frames each, every key shaped ``(n, frames, ...)`` plus
        ``label (n,)`` (index into ``classes``, a subset of :data:`SEQUENCE_CLASSES`).

        A clip keeps one hand, one background and one light; its pose and global pose move. Classes
        come in pairs that differ only in motion (:data:`MOTION_PAIRS`): ``grab``/``release`` (open→fist
        vs fist→open: same frames, reversed order), ``swipe_left``/``swipe_right`` and
        ``roll_cw``/``roll_ccw`` (direction), ``grab``/``grab_fast`` (speed), ``count_up``/``count_down``
        (point→vee→three vs three→vee→point).
        """
        _check_n(n, "n")
        _check_n(frames, "frames")
        unknown = set(classes) - set(SEQUENCE_CLASSES)
        if unknown or not classes:
            raise ValueError(f"classes must be a non-empty subset of {SEQUENCE_CLASSES}; unknown: {sorted(unknown)}")
        split = split or self.split
        g = self._gen
        p = self._draw(n, split)
        label = torch.randint(len(classes), (n,), generator=g)
        names = [classes[i] for i in label.tolist()]
        start = _uniform(n, 0.0, 0.15, g)
        dur = torch.where(torch.tensor([c == "grab_fast" for c in names]), _uniform(n, 0.2, 0.3, g), _uniform(n, 0.7, 0.85, g))
        jitter = 4.0 * torch.randn(n, 1, 20, generator=g)
        tau = torch.linspace(0, 1, frames)
        phase = ((tau[None] - start[:, None]) / dur[:, None]).clamp(0, 1)
        phase = phase * phase * (3 - 2 * phase)  # smoothstep
        protos = skeleton.prototype_angles()
        G = {name: protos[i] for i, name in enumerate(skeleton.GESTURES)}
        angles = torch.empty(n, frames, 20)
        roll = torch.zeros(n, frames)
        shift = torch.zeros(n, frames)
        for i, c in enumerate(names):
            ph = phase[i][:, None]
            if c in ("grab", "grab_fast"):
                angles[i] = (1 - ph) * G["open"] + ph * G["fist"]
            elif c == "release":
                angles[i] = (1 - ph) * G["fist"] + ph * G["open"]
            elif c in ("count_up", "count_down"):
                keys = [G["point"], G["vee"], G["three"]]
                keys = keys if c == "count_up" else keys[::-1]
                seg = (ph[:, 0] * 2).clamp(0, 2)
                lo = seg.floor().clamp_max(1).long()
                w = (seg - lo)[:, None]
                stacked = torch.stack(keys)
                angles[i] = (1 - w) * stacked[lo] + w * stacked[lo + 1]
            else:
                angles[i] = G["open"]
                direction = 1.0 if c in ("swipe_right", "roll_cw") else -1.0
                if c.startswith("swipe"):
                    shift[i] = direction * (phase[i] - 0.5) * 0.5 * self.image_size
                else:
                    roll[i] = direction * (phase[i] - 0.5) * 90.0
        angles = skeleton.clip_to_limits(angles + jitter)
        q = {k: (v.repeat_interleave(frames, 0) if v.ndim > 0 else v) for k, v in p.items()}
        q["angles"] = angles.reshape(n * frames, 20)
        q["gesture"] = torch.full((n * frames,), -1)
        q["R_g"] = skeleton.rot_z(roll.reshape(-1)) @ q["R_g"]
        q["offset"] = q["offset"] + torch.stack([shift.reshape(-1), torch.zeros(n * frames)], 1)
        q["scene_shift"] = q["scene_shift"]  # a static camera: one background shift per clip
        out = self._render(q)
        out = {k: v.reshape(n, frames, *v.shape[1:]) for k, v in out.items()}
        out["label"] = label.to(self.device)
        return out


def _hsv_tint(hue: torch.Tensor, sat: torch.Tensor) -> torch.Tensor:
    """RGB of ``(hue, sat, value = 1)``, the colour a grayscale image is tinted with in ``frei_S``."""
    h6 = hue[:, None] * 6.0
    k = (torch.tensor([5.0, 3.0, 1.0]) + h6) % 6
    return 1 - sat[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def _check_n(n, name: str) -> None:
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"{name} must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"{name} must be >= 1, got {n}")
