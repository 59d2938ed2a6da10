"""Deep Reflectance Volumes (Bi et al., ECCV 2020) in miniature.

A scene is a voxel volume of opacity ``α``, normal ``n``, diffuse albedo and roughness, decoded by
3-D transposed convolutions from a learned code (the deep volume prior, Sec. 4.2) and rendered by a
differentiable single-scattering ray marcher whose opacity is accumulated from the camera *and*
from the light (Eqs. 5-10). Trained on flash photographs (light at the camera: one pass suffices),
it is relit with a moved light (a precomputed light-opacity volume gives cast shadows) and edited
(roughness scaled). The photographs come from the exact sphere world of
:mod:`cvtutor.data.reflectance`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from cvtutor import report
from cvtutor.data.reflectance import SphereScene, brdf, photometric_views
from cvtutor.metrics.images import psnr, ssim
from cvtutor.runtime import ProfileConfig, get_device
from cvtutor.train import fit

PAPER = {
    "fig5": report.PaperTable(
        "Fig. 5 (HOUSE, held-out views)", "PSNR (dB) / SSIM vs #training images",
        {"PSNR@25": 25.33, "PSNR@50": 26.36, "PSNR@100": 26.95, "PSNR@200": 27.85,
         "PSNR@385": 28.13, "SSIM@25": 0.70, "SSIM@50": 0.73, "SSIM@100": 0.75,
         "SSIM@200": 0.80, "SSIM@385": 0.81}, better="higher"),
    "fig6": report.PaperTable(
        "Fig. 6 (novel views, collocated light; printed as SSIM / PSNR)", "SSIM, PSNR (dB)",
        {"DeepVoxels SSIM House": 0.786, "DeepVoxels PSNR House": 25.81,
         "DeepVoxels SSIM Cartoon": 0.532, "DeepVoxels PSNR Cartoon": 16.34,
         "Ours SSIM House": 0.896, "Ours PSNR House": 30.44,
         "Ours SSIM Cartoon": 0.911, "Ours PSNR Cartoon": 29.14}, better="higher"),
    # Sec. 4.3, Training Details
    "beta": {"beta_start": (0.01, 0.01), "beta_late": (1.0, 0.1), "switch_iteration": 300_000,
             "step_size": 1 / 64},
}
CHANNELS = 8  # 1 opacity, 3 normal, 3 albedo, 1 roughness (Sec. 4.2)
#: added to the raw opacity before its sigmoid, so that a freshly initialised volume is nearly
#: empty (α ≈ 0.007 per step); without it the fit starts (and stays) in a fog of α ≈ 0.5
ALPHA_BIAS = -5.0


# --------------------------------------------------------------------- the volume and its lookup
def sample_volume(volume: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Trilinear lookup (the paper's "bilinear") of a ``(C, D, H, W)`` volume spanning
    ``[-1, 1]³`` at world points ``x (N, 3)`` (x ↔ W, y ↔ H, z ↔ D, voxel centres at the grid's
    ends: ``align_corners=True``) → ``(N, C)``; zero outside the cube."""
    if volume.ndim != 4 or x.ndim != 2 or x.shape[-1] != 3:
        raise ValueError(f"need volume (C, D, H, W) and points (N, 3), got {tuple(volume.shape)}"
                         f" and {tuple(x.shape)}")
    g = x.reshape(1, -1, 1, 1, 3).to(volume.dtype)
    out = F.grid_sample(volume[None], g, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.reshape(volume.shape[0], -1).T


def activate(raw: torch.Tensor) -> dict[str, torch.Tensor]:
    """Raw ``(N, 8)`` channels → ``alpha (N, 1)`` (sigmoid of raw + :data:`ALPHA_BIAS`), unit ``normal (N, 3)`` (tanh, then
    normalised), ``albedo (N, 3)`` (sigmoid), ``roughness (N, 1)`` in ``[0.05, 1]``. The paper does
    not state its output activations; these are our reading."""
    n = torch.tanh(raw[:, 1:4])
    return {"alpha": torch.sigmoid(raw[:, :1] + ALPHA_BIAS),
            "normal": n / n.norm(dim=-1, keepdim=True).clamp_min(1e-6),
            "albedo": torch.sigmoid(raw[:, 4:7]),
            "roughness": 0.05 + 0.95 * torch.sigmoid(raw[:, 7:8])}


class Decoder(nn.Module):
    """The deep volume prior (Sec. 4.2): code → linear → ``(w, 4³)`` → stride-2 3-D transposed
    convolutions with LeakyReLU (``w → w/2 → … ``) → an 8-channel ``res³`` volume."""

    def __init__(self, code_dim: int = 64, width: int = 32, resolution: int = 32):
        super().__init__()
        ups = int(round(math.log2(resolution / 4)))
        if 4 * 2 ** ups != resolution or ups < 1:
            raise ValueError(f"resolution must be 4·2^k (8, 16, 32, 64...), got {resolution}")
        self.width = width
        self.fc = nn.Linear(code_dim, width * 64)
        layers, c = [], width
        for i in range(ups):
            last = i == ups - 1
            c_out = CHANNELS if last else max(c // 2, 8)
            layers.append(nn.ConvTranspose3d(c, c_out, 4, stride=2, padding=1))
            if not last:
                layers.append(nn.LeakyReLU(0.2))
            c = c_out
        self.net = nn.Sequential(*layers)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.fc(code), 0.2).reshape(1, self.width, 4, 4, 4)
        return self.net(h)[0]


class Warp(nn.Module):
    """The affine warp field, Eq. (11): ``W(x) = [Σ_j B_j(x) W_j]⁻¹ W_g x``.

    ``W_g`` and the ``J`` basis affines ``W_j`` are ``I + A`` (``A`` learned, zero at start: the
    identity warp); the normalised weights ``B (J, r³)`` are decoded from the code by a linear
    layer and a softmax over ``j`` and looked up trilinearly (the paper: an MLP, a 32³ × 16
    volume; 16 bases, not the text's "six")."""

    def __init__(self, code_dim: int, n_basis: int = 16, resolution: int = 8):
        super().__init__()
        self.n, self.r = n_basis, resolution
        self.global_affine = nn.Parameter(torch.zeros(3, 4))
        self.basis = nn.Parameter(torch.zeros(n_basis, 3, 4))
        self.weights = nn.Linear(code_dim, n_basis * resolution ** 3)
        nn.init.zeros_(self.weights.weight)
        nn.init.zeros_(self.weights.bias)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(3, 4, dtype=x.dtype, device=x.device)
        wg = eye + self.global_affine
        y = x @ wg[:, :3].T + wg[:, 3]
        B = self.weights(code).reshape(self.n, self.r, self.r, self.r).softmax(0)
        b = sample_volume(B, x.clamp(-1, 1))  # (N, J)
        A = torch.einsum("nj,jab->nab", b, eye + self.basis)  # Σ_j B_j(x) W_j
        return torch.linalg.solve(A[:, :, :3], (y - A[:, :, 3])[..., None])[..., 0]


class ReflectanceVolume(nn.Module):
    """A scene model: the deep prior (``mode="decoder"``: a learned code and a :class:`Decoder`)
    or the baseline of Fig. 7 (``mode="direct"``: the voxels themselves optimised), with an
    optional :class:`Warp`. ``volume()`` is the raw ``(8, r, r, r)`` volume in warped space,
    ``fields(x, volume)`` the activated channels at world points ``x (N, 3)``."""

    def __init__(self, mode: str = "decoder", code_dim: int = 64, width: int = 32,
                 resolution: int = 32, warp: bool = False, seed: int = 0):
        super().__init__()
        if mode not in ("decoder", "direct"):
            raise ValueError(f"mode must be 'decoder' or 'direct', got {mode!r}")
        g = torch.Generator().manual_seed(seed)
        self.mode = mode
        self.code = nn.Parameter(torch.randn(code_dim, generator=g))
        if mode == "decoder":
            self.decoder = Decoder(code_dim, width, resolution)
        else:
            self.voxels = nn.Parameter(0.1 * torch.randn(CHANNELS, resolution, resolution,
                                                         resolution, generator=g))
        self.warp = Warp(code_dim) if warp else None

    def volume(self) -> torch.Tensor:
        return self.decoder(self.code) if self.mode == "decoder" else self.voxels

    def fields(self, x: torch.Tensor, volume: torch.Tensor) -> dict[str, torch.Tensor]:
        xw = self.warp(x, self.code) if self.warp is not None else x
        f = activate(sample_volume(volume, xw))
        inside = (xw.abs() <= 1).all(-1, keepdim=True)
        return {**f, "alpha": f["alpha"] * inside}  # empty outside the cube


# ---------------------------------------------------------------------------- the ray marcher
def alpha_for_step(alpha: torch.Tensor, ratio: float | torch.Tensor) -> torch.Tensor:
    """Opacity of a step ``ratio·Δx`` from the opacity ``α = 1 - e^{-σ_t Δx}`` of a step ``Δx``:
    ``1 - (1 - α)^ratio`` (halving the step: ``α' = 1 - √(1 - α)``)."""
    return 1 - (1 - alpha).clamp_min(1e-12) ** ratio


def accumulate(alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (7) along the last axis: ``α_{c→s} = α_{c→(s-1)} + [1 - α_{c→(s-1)}] α(x_s)``.

    ``alpha (..., S)`` → (transmittance *before* each sample ``1 - α_{c→(s-1)} = Π_{i<s}(1 - α_i)``,
    accumulated opacity ``α_{c→S}``)."""
    keep = torch.cumprod(1 - alpha, -1)
    before = torch.cat([torch.ones_like(keep[..., :1]), keep[..., :-1]], -1)
    return before, 1 - keep[..., -1]


def cube_entry(origins: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Ray parameter ``(R,)`` where ``o + t·d`` enters ``[-1, 1]³`` (slab method; 0 if inside or
    missed: such rays then only see the zero padding)."""
    inv = 1 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0, t1 = (-1 - origins) * inv, (1 - origins) * inv
    near = torch.minimum(t0, t1).amax(-1)
    far = torch.maximum(t0, t1).amin(-1)
    return torch.where(far > near, near.clamp_min(0), torch.zeros_like(near))


def shade(f: dict[str, torch.Tensor], x: torch.Tensor, wo: torch.Tensor, lights: torch.Tensor,
          intensity: float) -> torch.Tensor:
    """Local shading, Eq. (8): ``L(x_s) = f_r(ω_o, ω_i, n, R)·(n·ω_i)₊·I/d²`` (cosine and ``1/d²``
    falloff are our reading; the paper leaves ``L_l`` unspecified)."""
    to_l = lights - x
    d2 = (to_l * to_l).sum(-1, keepdim=True)
    wi = to_l / d2.sqrt()
    cos = (f["normal"] * wi).sum(-1, keepdim=True).clamp_min(0)
    return brdf(wo, wi, f["normal"], f["albedo"], f["roughness"]) * cos * intensity / d2


def ray_march(model: ReflectanceVolume, volume: torch.Tensor, origins: torch.Tensor,
              dirs: torch.Tensor, lights: torch.Tensor, n_samples: int, step: float,
              intensity: float, light: str = "collocated",
              light_volume: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Eqs. (5)-(8): samples ``x_s = c - s ω_o Δx`` from the cube's entry, radiance
    ``L = Σ_s [1 - α_{c→(s-1)}][1 - α_{l→(t-1)}] α(x_s) L(x_s)``.

    ``light``: ``"collocated"`` (light at the camera, ``α_{l→t} = α_{c→s}``: one pass),
    ``"volume"`` (``1 - α_{l→t}`` looked up in ``light_volume``, Eqs. 9-10 precomputed by
    :func:`light_transmittance_volume`) or ``"none"`` (no light-side opacity: no shadows).
    Rays ``(R, 3)``, lights ``(R, 3)`` → ``rgb (R, 3)``, ``acc (R,)`` = ``α_{c→S}``."""
    if light not in ("collocated", "volume", "none"):
        raise ValueError(f"light must be 'collocated', 'volume' or 'none', got {light!r}")
    if light == "volume" and light_volume is None:
        raise ValueError("light='volume' needs a light_volume")
    R = origins.shape[0]
    s = torch.arange(n_samples, dtype=origins.dtype, device=origins.device)
    t = cube_entry(origins, dirs)[:, None] + (s + 0.5) * step  # (R, S)
    x = (origins[:, None] + t[..., None] * dirs[:, None]).reshape(-1, 3)
    f = model.fields(x, volume)
    alpha = f["alpha"].reshape(R, n_samples)
    t_cam, acc = accumulate(alpha)
    lx = lights[:, None].expand(-1, n_samples, -1).reshape(-1, 3)
    wo = (-dirs)[:, None].expand(-1, n_samples, -1).reshape(-1, 3)
    L = shade(f, x, wo, lx, intensity).reshape(R, n_samples, 3)
    if light == "collocated":
        t_light = t_cam
    elif light == "volume":
        t_light = sample_volume(light_volume, x).reshape(R, n_samples)
    else:
        t_light = torch.ones_like(t_cam)
    w = t_cam * t_light * alpha
    return {"rgb": (w[..., None] * L).sum(1), "acc": acc, "weights": w}


def light_transmittance_volume(model: ReflectanceVolume, volume: torch.Tensor,
                               light: torch.Tensor, resolution: int, n_samples: int,
                               step: float) -> torch.Tensor:
    """Eqs. (9)-(10) precomputed: ``1 - α_{l→(t-1)}`` at every node of a ``resolution³`` grid on
    ``[-1, 1]³``, by marching ``n_samples`` from the light ``(3,)`` to one step ``Δx`` short of the
    node, each sample's opacity rescaled to its step length (:func:`alpha_for_step`).
    → ``(1, r, r, r)`` (z, y, x order, as :func:`sample_volume` reads it)."""
    lin = torch.linspace(-1, 1, resolution, dtype=volume.dtype, device=volume.device)
    z, y, x = torch.meshgrid(lin, lin, lin, indexing="ij")
    P = torch.stack([x, y, z], -1).reshape(-1, 3)
    seg = P - light
    length = seg.norm(dim=-1, keepdim=True)
    end = (length - step).clamp_min(0)
    frac = (torch.arange(n_samples, dtype=P.dtype, device=P.device) + 0.5) / n_samples
    pts = light + (seg / length)[:, None] * (end[:, None] * frac[None, :, None])
    a = model.fields(pts.reshape(-1, 3), volume)["alpha"].reshape(-1, n_samples)
    a = alpha_for_step(a, end / n_samples / step)
    return torch.prod(1 - a, -1).reshape(1, resolution, resolution, resolution)


# ----------------------------------------------------------------------------------- the loss
def beta_schedule(step: int, steps: int, switch: float = 2 / 3) -> tuple[float, float]:
    """``β1 = β2 = 0.01`` until ``switch·steps``, then ``β1 = 1.0, β2 = 0.1`` (Sec. 4.3: after
    300k of ~450k iterations)."""
    late = step >= int(switch * steps)
    return PAPER["beta"]["beta_late"] if late else PAPER["beta"]["beta_start"]


def drv_loss(pred: torch.Tensor, target: torch.Tensor, acc: torch.Tensor, alpha_volume: torch.Tensor,
             beta1: float, beta2: float, eps: float = 1e-3) -> dict[str, torch.Tensor]:
    """Eq. (12) per ray: ``‖L - L̃‖² + β1 [log α_{c→s'} + log(1 - α_{c→s'})] + β2 ‖∇_x log α‖``.

    ``pred, target (R, 3)``, ``acc (R,)``, ``alpha_volume (r, r, r)``; means over rays and voxels
    (the paper sums; the ratio of the terms per ray is kept). ``acc`` clamped to ``[eps, 1-eps]``."""
    if pred.shape != target.shape or acc.shape != pred.shape[:1]:
        raise ValueError(f"need pred, target (R, 3) and acc (R,), got {tuple(pred.shape)}, "
                         f"{tuple(target.shape)}, {tuple(acc.shape)}")
    photo = (pred - target).square().sum(-1).mean()
    a = acc.clamp(eps, 1 - eps)
    beta_prior = (a.log() + (1 - a).log()).mean()
    la = alpha_volume.clamp_min(eps).log()
    grad = sum(d.abs().mean() for d in (la.diff(dim=0), la.diff(dim=1), la.diff(dim=2)))
    return {"loss": photo + beta1 * beta_prior + beta2 * grad, "photo": photo,
            "beta_prior": beta_prior, "grad_sparsity": grad}


# ------------------------------------------------------------------------------------ config
@dataclass
class Config(ProfileConfig):
    image_size: int = 24
    views: tuple[int, ...] = (10, 40)      # Fig. 5 sweep; the largest trains the main model
    n_test: int = 10                       # collocated and non-collocated held-out views each
    light_offset_deg: float = 45.0
    resolution: int = 16                   # the 32³ / 64 samples / 1024 rays / 300 steps
    code_dim: int = 64                     # cost ~70 s CPU here: fast is sized down
    width: int = 32
    n_samples: int = 48
    rays: int = 768
    steps: int = 200
    lr: float = 3e-3
    light_resolution: int = 16
    light_samples: int = 32
    warp: bool = False
    ablation: bool = False                 # the β ablation (Eq. 12 regularisers off)
    roughness_edit: float = 0.3
    beta_scale: float = 0.01               # β1, β2 of Sec. 4.3 times this (a deviation, see notebook)
    seeds: tuple[int, ...] = (0,)
    device: str | None = None

    @property
    def step(self) -> float:
        """Δx: the samples span the cube's diagonal ``2√3``."""
        return 2 * math.sqrt(3) / self.n_samples

    @classmethod
    def fast(cls) -> "Config":
        return cls()

    @classmethod
    def full(cls) -> "Config":
        """64² images, 200 views, a 64³ volume, 128 samples, the warp; Fig. 5's sweep, the β
        ablation, three seeds; 2,000 steps a model (the issue's 10k do not fit 10 min)."""
        return cls(image_size=64, views=(25, 50, 100, 200), n_test=20, resolution=64,
                   code_dim=128, width=64, n_samples=128, rays=4096, steps=2000,
                   light_resolution=64, light_samples=128, warp=True, ablation=True,
                   seeds=(0, 1, 2))

    @classmethod
    def smoke(cls) -> "Config":
        """``full``'s code paths (warp, sweep, ablation, two seeds) at toy size."""
        return cls(image_size=12, views=(4, 8), n_test=2, resolution=8, code_dim=16, width=8,
                   n_samples=16, rays=128, steps=6, light_resolution=8, light_samples=8,
                   warp=True, ablation=True, seeds=(0, 1))


# ------------------------------------------------------------------------------- experiments
def render_views(model: ReflectanceVolume, views: dict, config: Config, light: str = "collocated",
                 intensity: float = 16.0, chunk: int = 4096, volume: torch.Tensor | None = None,
                 roughness_scale: float = 1.0) -> torch.Tensor:
    """Render every view of ``views`` (as :func:`~cvtutor.data.reflectance.photometric_views`
    returns) → ``(V, S, S, 3)``. ``light="volume"`` precomputes one light volume per view;
    ``roughness_scale`` edits the roughness channel (Fig. 8)."""
    with torch.no_grad():
        vol = model.volume() if volume is None else volume
        if roughness_scale != 1.0:
            r = 0.05 + 0.95 * torch.sigmoid(vol[7])
            r = ((r * roughness_scale).clamp(0.05, 1.0) - 0.05) / 0.95
            vol = torch.cat([vol[:7], torch.logit(r.clamp(1e-4, 1 - 1e-4))[None]], 0)
        out = []
        V, P = views["origins"].shape[:2]
        for v in range(V):
            lv = None
            if light == "volume":
                lv = light_transmittance_volume(model, vol, views["lights"][v],
                                                config.light_resolution, config.light_samples,
                                                config.step)
            lights = views["lights"][v].expand(P, 3)
            rgb = torch.cat([ray_march(model, vol, o, d, lt, config.n_samples, config.step,
                                       intensity, light, lv)["rgb"]
                             for o, d, lt in zip(views["origins"][v].split(chunk),
                                                 views["dirs"][v].split(chunk),
                                                 lights.split(chunk))])
            out.append(rgb.clamp(0, 1))
        S = views["images"].shape[1]
        return torch.stack(out).reshape(V, S, S, 3)


def image_scores(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Mean PSNR and SSIM of ``(V, S, S, 3)`` images in ``[0, 1]``."""
    a, b = pred.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)
    return {"PSNR": psnr(a, b).mean().item(), "SSIM": ssim(a, b).mean().item()}


def train(config: Config, views: dict, mode: str, seed: int, device, beta: bool = True,
          intensity: float = 16.0) -> tuple[ReflectanceVolume, pd.DataFrame]:
    """Fit one scene model to the collocated ``views`` with Eq. (12) (β schedule, or β = 0)."""
    torch.manual_seed(seed)
    model = ReflectanceVolume(mode, config.code_dim, config.width, config.resolution,
                              config.warp, seed).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    o = views["origins"].reshape(-1, 3)
    d = views["dirs"].reshape(-1, 3)
    P = views["origins"].shape[1]
    lights = views["lights"][:, None].expand(-1, P, -1).reshape(-1, 3)
    rgb = views["images"].reshape(-1, 3)
    g = torch.Generator(device=device)

    def batches(step: int):
        g.manual_seed(seed * 1_000_003 + step)
        return torch.randint(0, o.shape[0], (config.rays,), generator=g, device=device)

    def loss_fn(models, idx, step):
        m = models["model"]
        vol = m.volume()
        out = ray_march(m, vol, o[idx], d[idx], lights[idx], config.n_samples, config.step,
                        intensity, "collocated")
        b1, b2 = beta_schedule(step, config.steps) if beta else (0.0, 0.0)
        b1, b2 = b1 * config.beta_scale, b2 * config.beta_scale
        alpha_vol = torch.sigmoid(vol[0] + ALPHA_BIAS)
        return drv_loss(out["rgb"], rgb[idx], out["acc"], alpha_vol, b1, b2)

    hist = fit(model, opt, batches, loss_fn, steps=config.steps, device=device,
               desc=f"{mode} ({views['images'].shape[0]} views, seed {seed})")
    return model, hist


def experiment(config: Config, seed: int, device) -> dict:
    """One seed: the view sweep (Fig. 5), deep prior vs direct voxels (Fig. 7), one- vs two-pass
    relighting, the roughness edit (Fig. 8) and, if asked, the β ablation."""
    scene = SphereScene.default(device=device)
    S, n = config.image_size, max(config.views)
    train_v = photometric_views(scene, n, S, device=device)
    test_c = photometric_views(scene, config.n_test, S, phase=0.37, device=device)
    test_n = photometric_views(scene, config.n_test, S, phase=0.37,
                               light_offset_deg=config.light_offset_deg, device=device)
    sweep, models, hists = [], {}, {}
    for k in config.views:
        # a sweep point's views are the first k of n's Fibonacci set thinned evenly
        idx = torch.linspace(0, n - 1, k, device=device).round().long()
        v = {**train_v, **{key: train_v[key][idx] for key in ("images", "origins", "dirs",
                                                               "lights")}}
        model, hist = train(config, v, "decoder", seed, device, intensity=scene.intensity)
        sweep.append({"seed": seed, "views": k, **image_scores(render_views(
            model, test_c, config, intensity=scene.intensity), test_c["images"])})
        if k == n:
            models["decoder"], hists["decoder"] = model, hist
    models["direct"], hists["direct"] = train(config, train_v, "direct", seed, device,
                                              intensity=scene.intensity)
    m = models["decoder"]
    curves = pd.concat([h.assign(method=k, seed=seed) for k, h in hists.items()],
                       ignore_index=True)
    methods = [{"seed": seed, "method": k, **image_scores(render_views(
        mk, test_c, config, intensity=scene.intensity), test_c["images"])}
        for k, mk in models.items()]
    relight = [{"seed": seed, "opacity": name, **image_scores(render_views(
        m, test_n, config, light=light, intensity=scene.intensity), test_n["images"])}
        for name, light in (("one-pass (camera only)", "none"),
                            ("two-pass (camera + light)", "volume"))]
    edited = replace(scene, roughness=scene.roughness * config.roughness_edit)
    gt_edit = photometric_views(edited, config.n_test, S, phase=0.37, device=device)["images"]
    edit = [{"seed": seed, "render": name, **image_scores(render_views(
        m, test_c, config, intensity=scene.intensity, roughness_scale=r), gt_edit)}
        for name, r in (("edited volume", config.roughness_edit), ("unedited volume", 1.0))]
    ablation = []
    if config.ablation:
        for name, beta in (("β schedule (Eq. 12)", True), ("β = 0", False)):
            mb = m if beta else train(config, train_v, "decoder", seed, device, beta=False,
                                      intensity=scene.intensity)[0]
            acc = ray_march(mb, mb.volume().detach(), test_c["origins"].reshape(-1, 3),
                            test_c["dirs"].reshape(-1, 3),
                            test_c["lights"][:, None].expand(-1, S * S, -1).reshape(-1, 3),
                            config.n_samples, config.step, scene.intensity)["acc"].detach()
            ablation.append({"seed": seed, "loss": name, "binary rays": (
                (acc < 0.05) | (acc > 0.95)).float().mean().item(), **image_scores(
                render_views(mb, test_c, config, intensity=scene.intensity), test_c["images"])})
    return {"sweep": pd.DataFrame(sweep), "methods": pd.DataFrame(methods),
            "relight": pd.DataFrame(relight), "edit": pd.DataFrame(edit),
            "ablation": pd.DataFrame(ablation, columns=["seed", "loss", "binary rays", "PSNR",
                                                        "SSIM"]),
            "curves": curves, "model": m, "views": {"train": train_v, "test_c": test_c,
                                                    "test_n": test_n}}


def _mean(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Mean and std over seeds, flat columns (``"PSNR"``, ``"PSNR std"``...), ``by`` a column."""
    g = df.drop(columns="seed").groupby(by, sort=False)
    mean, std = g.mean(), g.std().fillna(0.0).add_suffix(" std")
    return pd.concat([mean, std], axis=1).reset_index()


def run(config: Config) -> dict:
    """The whole miniature over ``config.seeds``: tables (mean, std over seeds), loss curves and
    the ``findings``, as data (see :func:`run_with_model` for the trained model too)."""
    return run_with_model(config)[0]


def run_with_model(config: Config) -> tuple[dict, dict]:
    """:func:`run`'s results and ``{"model", "views"}``: the first seed's deep-prior model and its
    train / held-out views, for the notebook's renders."""
    device = get_device(config.device)
    runs = [experiment(config, s, device) for s in config.seeds]
    cat = {k: pd.concat([r[k] for r in runs], ignore_index=True)
           for k in ("sweep", "methods", "relight", "edit", "ablation", "curves")}
    sweep = cat["sweep"].groupby("views")[["PSNR", "SSIM"]].mean()
    meth = cat["methods"].groupby("method")["PSNR"].mean()
    rel = cat["relight"].groupby("opacity", sort=False)["PSNR"].mean()
    ed = cat["edit"].groupby("render", sort=False)["PSNR"].mean()
    curves = cat["curves"]
    half = config.steps // 2
    early = curves[curves["step"] < half].groupby("method")["photo"].mean()
    few, many = sweep.index.min(), sweep.index.max()
    findings = report.claims_table({
        f"Fig. 5: PSNR with {many} views > with {few} views": (
            "paper claim", bool(sweep.loc[many, "PSNR"] > sweep.loc[few, "PSNR"]),
            f"{sweep.loc[few, 'PSNR']:.2f} → {sweep.loc[many, 'PSNR']:.2f} dB"),
        "Two-pass (shadowed) > one-pass on non-collocated views": (
            "paper claim", bool(rel.iloc[1] > rel.iloc[0]),
            f"{rel.iloc[0]:.2f} vs {rel.iloc[1]:.2f} dB"),
        "Fig. 7: deep prior's photometric loss lower than direct voxels' (first half)": (
            "paper claim", bool(early["decoder"] < early["direct"]),
            f"{early['decoder']:.4f} vs {early['direct']:.4f}"),
        "Fig. 7: deep prior's held-out PSNR > direct voxels'": (
            "paper claim", bool(meth["decoder"] > meth["direct"]),
            f"{meth['decoder']:.2f} vs {meth['direct']:.2f} dB"),
        "Fig. 8: edited roughness closer to the GT edit than the unedited volume": (
            "paper claim", bool(ed.iloc[0] > ed.iloc[1]),
            f"{ed.iloc[0]:.2f} vs {ed.iloc[1]:.2f} dB"),
        "Relit GT views contain cast shadows (light moved off the camera)": (
            "construction", bool(runs[0]["views"]["test_n"]["shadow"].any()), ""),
        "Collocated GT views contain no shadow": (
            "construction", not bool(runs[0]["views"]["test_c"]["shadow"].any()), ""),
    })
    return {"sweep": _mean(cat["sweep"], "views"), "methods": _mean(cat["methods"], "method"),
            "relight": _mean(cat["relight"], "opacity"), "edit": _mean(cat["edit"], "render"),
            "ablation": (_mean(cat["ablation"], "loss") if len(cat["ablation"])
                         else cat["ablation"]),
            "per_seed": cat, "curves": curves, "findings": findings}, \
        {"model": runs[0]["model"], "views": runs[0]["views"]}
