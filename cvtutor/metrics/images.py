"""Full-reference image quality: PSNR and SSIM in torch, batched, on the device of the inputs.

Used by the image-translation world (chapter ``world_translation``), where every translated image
has a *true* target: the same scene rendered in the target domain. Images are (B, C, H, W) floats;
``data_range`` is the span of the values (1 for images in [0, 1]). Both functions return one value
per image, (B,). They agree with ``skimage.metrics.peak_signal_noise_ratio`` and
``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
channel_axis=0)`` (tests/test_image_metrics.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape != y.shape:
        raise ValueError(f"images must be two (B, C, H, W) tensors of one shape, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio ``10 log10(R^2 / MSE)`` per image (B,), in dB (inf if equal)."""
    _check_pair(x, y)
    mse = ((x.double() - y.double()) ** 2).flatten(1).mean(1)
    return (10 * torch.log10(data_range ** 2 / mse)).to(x.dtype)


def gaussian_window(sigma: float = 1.5, truncate: float = 3.5, device=None,
                    dtype=torch.float64) -> torch.Tensor:
    """The normalised 1-D Gaussian of radius ``int(truncate * sigma + 0.5)`` (scipy's)."""
    r = int(truncate * sigma + 0.5)
    t = torch.arange(-r, r + 1, device=device, dtype=dtype)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of (N, 1, H, W) (sides > radius), borders mirrored like scipy's
    ``reflect`` (the edge pixel repeated)."""
    r = len(g) // 2
    x = torch.cat([x[..., :, :r].flip(-1), x, x[..., :, -r:].flip(-1)], -1)
    x = torch.cat([x[..., :r, :].flip(-2), x, x[..., -r:, :].flip(-2)], -2)
    x = F.conv2d(x, g.view(1, 1, 1, -1))
    return F.conv2d(x, g.view(1, 1, -1, 1))


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) per image (B,), averaged over channels and pixels.

    Local means, variances and covariance under a Gaussian window of std ``sigma``;
    ``SSIM = (2 mx my + C1)(2 sxy + C2) / ((mx^2 + my^2 + C1)(sx^2 + sy^2 + C2))`` with
    ``C1 = (k1 R)^2``, ``C2 = (k2 R)^2``; the border of the window's radius is cropped as skimage
    does. Images must be larger than the window (at least ``2 * radius + 1`` pixels a side)."""
    _check_pair(x, y)
    b, c, h, w = x.shape
    g = gaussian_window(sigma, device=x.device)
    r = len(g) // 2
    if min(h, w) < 2 * r + 1:
        raise ValueError(f"ssim needs images of at least {2 * r + 1} x {2 * r + 1} pixels for "
                         f"sigma = {sigma}, got {h} x {w}")
    xs, ys = x.double().reshape(b * c, 1, h, w), y.double().reshape(b * c, 1, h, w)
    mx, my = _blur(xs, g), _blur(ys, g)
    sxx = _blur(xs * xs, g) - mx * mx
    syy = _blur(ys * ys, g) - my * my
    sxy = _blur(xs * ys, g) - mx * my
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    s = s[..., r:h - r, r:w - r]
    return s.reshape(b, c, -1).mean((1, 2)).to(x.dtype)
