"""Common corruptions at severities 1-5 on any image batch, batched in torch (the ``-C`` suites).

Derived and shown in ``notebooks/eccv2020/world_images.ipynb`` (section 3); used by the
robustness chapter (E04). After Hendrycks & Dietterich, *Benchmarking Neural Network Robustness
to Common Corruptions and Perturbations* (ICLR 2019): the 15 test corruptions in four groups,
noise (gaussian, shot, impulse), blur (gaussian, motion, zoom), weather (fog, snow) and digital
(contrast, brightness, pixelate, JPEG, elastic), plus **speckle** noise, which E04 holds out of the
test suite. Parameters follow the CIFAR-10-C ones (``make_cifar_c.py``) where they carry over to
a batched torch form; blur sizes and displacements are in pixels at 32 px and scale with the image
size. Pixelation uses resolution factors 1/2 .. 1/5 rather than CIFAR-10-C's 0.95 .. 0.65: at 32 px
those change few pixels and, through block alignment, not monotonically in severity. ``frost``
(needs photographs of frost) is not reproduced; ``snow`` and ``fog`` are simplified procedural
versions (a motion-blurred sparse flake layer; a multi-octave smooth noise field).

Every corruption maps ``x (B, C, H, W)`` in [0, 1] (C = 1 or 3) to the same shape in [0, 1];
random ones draw from ``generator`` (on ``x``'s device), so a seed gives one corrupted set.
"""

from __future__ import annotations

import io
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

SEVERITIES = (1, 2, 3, 4, 5)
TEST_CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "gaussian_blur",
    "motion_blur",
    "zoom_blur",
    "fog",
    "snow",
    "contrast",
    "brightness",
    "pixelate",
    "jpeg",
    "elastic",
)
HELD_OUT = ("speckle_noise",)
GROUPS = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("gaussian_blur", "motion_blur", "zoom_blur"),
    "weather": ("fog", "snow"),
    "digital": ("contrast", "brightness", "pixelate", "jpeg", "elastic"),
    "held out": HELD_OUT,
}

_PARAMS = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # std
    "shot_noise": (500, 250, 100, 75, 50),  # photons per unit intensity
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),  # salt-and-pepper fraction
    "speckle_noise": (0.06, 0.10, 0.12, 0.16, 0.20),  # std of the multiplicative noise
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),  # sigma in px at 32 px
    "motion_blur": (2.0, 3.0, 4.0, 5.0, 6.0),  # kernel length in px at 32 px
    "zoom_blur": (0.06, 0.11, 0.16, 0.21, 0.26),  # largest zoom - 1
    "fog": ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75)),  # strength, decay
    "snow": ((0.01, 0.9), (0.02, 0.8), (0.03, 0.7), (0.045, 0.6), (0.06, 0.5)),  # density, keep
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # factor towards the mean
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),  # added to HSV value
    "pixelate": (0.5, 0.4, 0.33, 0.25, 0.2),  # resolution factor (see the module docstring)
    "jpeg": (80, 65, 58, 50, 40),  # quality
    "elastic": (0.5, 1.0, 1.5, 2.0, 2.5),  # displacement std in px at 32 px
}


def _check(x: torch.Tensor, severity: int) -> None:
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images (B, C, H, W) with C = 1 or 3, got {tuple(x.shape)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")


def _px(x: torch.Tensor, at32: float) -> float:
    """A length of ``at32`` pixels at 32 px, scaled to ``x``'s size."""
    return at32 * x.shape[-1] / 32


def _gaussian_kernel1d(sigma: float, device) -> torch.Tensor:
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, device=device, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur_sigma(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of std ``sigma`` px, reflect padding."""
    k = _gaussian_kernel1d(sigma, x.device)
    r = len(k) // 2
    b, c, h, w = x.shape
    y = F.pad(x.reshape(b * c, 1, h, w), (r, r, r, r), mode="reflect")
    y = F.conv2d(F.conv2d(y, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return y.reshape(b, c, h, w)


def _randn(x, g):
    return torch.randn(x.shape, generator=g, device=x.device)


def gaussian_noise(x, s, g):
    return x + _PARAMS["gaussian_noise"][s - 1] * _randn(x, g)


def shot_noise(x, s, g):
    c = _PARAMS["shot_noise"][s - 1]
    return torch.poisson(x * c, generator=g) / c


def impulse_noise(x, s, g):
    amount = _PARAMS["impulse_noise"][s - 1]
    u = torch.rand(x.shape, generator=g, device=x.device)
    salt = torch.rand(x.shape, generator=g, device=x.device) < 0.5
    return torch.where(u < amount, salt.to(x.dtype), x)


def speckle_noise(x, s, g):
    return x + x * _PARAMS["speckle_noise"][s - 1] * _randn(x, g)


def gaussian_blur(x, s, g):
    return gaussian_blur_sigma(x, _px(x, _PARAMS["gaussian_blur"][s - 1]))


def _line_kernels(length: float, angle: torch.Tensor, size: int) -> torch.Tensor:
    """Per-image normalised line kernels ``(B, size, size)`` of ``length`` px at ``angle (B,)``."""
    r = size // 2
    t = torch.arange(-r, r + 1, device=angle.device, dtype=torch.float32)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    c, s_ = angle.cos()[:, None, None], angle.sin()[:, None, None]
    along, across = xx * c + yy * s_, -xx * s_ + yy * c
    k = (1 - across.abs()).clamp_min(0) * (along.abs() <= length / 2).float()
    return k / k.sum((1, 2), keepdim=True)


def _per_image_conv(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve each image with its own kernel ``(B, k, k)`` (a grouped convolution)."""
    b, c, h, w = x.shape
    r = kernels.shape[-1] // 2
    y = F.pad(x.reshape(1, b * c, h, w), (r, r, r, r), mode="replicate")
    weight = kernels.repeat_interleave(c, 0)[:, None]
    return F.conv2d(y, weight, groups=b * c).reshape(b, c, h, w)


def motion_blur(x, s, g):
    length = _px(x, _PARAMS["motion_blur"][s - 1])
    angle = torch.rand(len(x), generator=g, device=x.device) * math.pi
    return _per_image_conv(x, _line_kernels(length, angle, 2 * math.ceil(length / 2) + 1))


def _zoom(x: torch.Tensor, z: float) -> torch.Tensor:
    """Zoom by ``z >= 1`` about the centre (bilinear), same size."""
    theta = torch.tensor([[1 / z, 0, 0], [0, 1 / z, 0]], device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def zoom_blur(x, s, g):
    zmax = _PARAMS["zoom_blur"][s - 1]
    zooms = torch.linspace(0, zmax, 6).tolist()[1:]
    out = x.clone()
    for z in zooms:
        out = out + _zoom(x, 1 + z)
    return out / (len(zooms) + 1)


def _smooth_noise(shape: tuple[int, int, int, int], decay: float, g, device) -> torch.Tensor:
    """A multi-octave noise field in [0, 1] (the plasma fractal's role): octave ``k`` has
    resolution ``2**k`` and amplitude ``decay**-k``."""
    b, _, h, w = shape
    out = torch.zeros(b, 1, h, w, device=device)
    k = 1
    while 2**k <= max(h, w):
        n = torch.rand(b, 1, 2**k, 2**k, generator=g, device=device)
        out = out + F.interpolate(n, size=(h, w), mode="bicubic", align_corners=False) * decay**-k
        k += 1
    lo, hi = out.amin((2, 3), keepdim=True), out.amax((2, 3), keepdim=True)
    return (out - lo) / (hi - lo).clamp_min(1e-8)


def fog(x, s, g):
    strength, decay = _PARAMS["fog"][s - 1]
    x_max = x.amax((1, 2, 3), keepdim=True)
    layer = strength * _smooth_noise(tuple(x.shape), decay, g, x.device)
    return (x + layer) * x_max / (x_max + strength)


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def snow(x, s, g):
    density, keep = _PARAMS["snow"][s - 1]
    b, _, h, w = x.shape
    flakes = (torch.rand(b, 1, h, w, generator=g, device=x.device) < density).float()
    angle = math.pi / 2 + (torch.rand(b, generator=g, device=x.device) - 0.5) * math.pi / 3
    length = _px(x, 2 + s)
    layer = _per_image_conv(flakes, _line_kernels(length, angle, 2 * math.ceil(length / 2) + 1))
    layer = (layer * length).clamp(0, 1)  # a flake keeps full brightness along its streak
    x = keep * x + (1 - keep) * torch.maximum(x, _gray(x) * 1.5 + 0.5)
    return x + layer


def contrast(x, s, g):
    m = x.mean((1, 2, 3), keepdim=True)
    return (x - m) * _PARAMS["contrast"][s - 1] + m


def brightness(x, s, g):
    """HSV value + c with hue and saturation kept: every channel scales by ``min(V + c, 1) / V``."""
    c = _PARAMS["brightness"][s - 1]
    v = x.amax(1, keepdim=True)
    scaled = x * (v + c).clamp(max=1) / v.clamp_min(1e-8)
    return torch.where(v > 0, scaled, torch.full_like(x, c))


def pixelate(x, s, g):
    h, w = x.shape[-2:]
    f = _PARAMS["pixelate"][s - 1]
    small = (max(1, round(h * f)), max(1, round(w * f)))
    return F.interpolate(
        F.interpolate(x, size=small, mode="area"), size=(h, w), mode="nearest-exact"
    )


def jpeg(x, s, g):
    """JPEG at the severity's quality through Pillow (per image on the CPU: the codec is serial)."""
    from PIL import Image

    q = _PARAMS["jpeg"][s - 1]
    arr = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for im in arr:
        buf = io.BytesIO()
        Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im).save(buf, format="JPEG", quality=q)
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
        out.append(dec.reshape(im.shape))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255


def elastic(x, s, g):
    """A smooth random displacement field (std ``amp`` px after Gaussian smoothing at size/8)."""
    b, _, h, w = x.shape
    amp = _px(x, _PARAMS["elastic"][s - 1])
    field = gaussian_blur_sigma(torch.randn(b, 2, h, w, generator=g, device=x.device), h / 8)
    field = field / field.std((1, 2, 3), keepdim=True).clamp_min(1e-8) * amp
    t = (torch.arange(h, device=x.device, dtype=torch.float32) + 0.5) / h * 2 - 1
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    grid = torch.stack([xx + field[:, 0] * 2 / w, yy + field[:, 1] * 2 / h], -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


CORRUPTIONS: dict[str, Callable] = {name: globals()[name] for name in TEST_CORRUPTIONS + HELD_OUT}


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Corruption ``name`` at ``severity`` (1-5) of a batch ``x (B, C, H, W)`` in [0, 1].

    Returns the same shape, clamped to [0, 1]. Random corruptions draw from a generator seeded
    with ``seed`` on ``x``'s device, so the same seed gives the same corrupted batch.
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"corruption must be one of {tuple(CORRUPTIONS)}, got {name!r}")
    _check(x, severity)
    g = torch.Generator(device=x.device).manual_seed(int(seed))
    return CORRUPTIONS[name](x.float(), severity, g).clamp(0, 1)
