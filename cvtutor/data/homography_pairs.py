"""Synthetic HPatches: textured planes seen under a homography and a change of illumination.

The image-matching world of the S2DNet chapter (``notebooks/eccv2020/s2dnet.ipynb``). A scene is a
continuous procedural texture ``T(x, y)`` on a plane (two octaves of value noise under a few rotated
boxes with sharp edges, so that a corner detector has corners to find). Image A samples ``T`` at
the pixel centres; image B samples it at ``H⁻¹·q`` for every pixel ``q`` of B, so ``p_B = H·p_A``
holds exactly and no resampling blur or empty border enters B. A pair is of one of two kinds, as in
HPatches: ``"viewpoint"`` (corner jitter of the homography up to ``viewpoint_jitter`` of the image
size) or ``"illumination"`` (jitter up to ``illumination_jitter``, but a strong photometric change:
gamma, contrast, brightness and, for some pairs, a dark and noisy "night" version).

Conventions: pixel ``(i, j)`` (row, column) has its centre at ``x = j``, ``y = i``; keypoints are
``(x, y)``; ``H`` maps A's pixels to B's, ``(3, 3)`` per pair. Everything is torch, batched, on the
generator's device; a seed gives bit-identical pairs on one device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cvtutor.data.geometry import apply_homography, homography_dlt
from cvtutor.data.raster import value_noise

KINDS = ("illumination", "viewpoint")


def pixel_grid(size: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``(size, size, 2)`` pixel centres ``(x, y)`` of a square image (``x = j``, ``y = i``)."""
    r = torch.arange(size, device=device, dtype=dtype)
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([xx, yy], -1)


class HomographyPairs:
    """Seeded generator of image pairs ``(A, B = A seen through H)`` with ground-truth ``H``.

    ``size``: image side in pixels; ``n_boxes``: sharp-edged boxes per texture; ``cell``: the value
    noise's coarse cell in pixels (a second octave has half of it).
    """

    def __init__(
        self,
        size: int = 48,
        n_boxes: int = 6,
        cell: float = 8.0,
        viewpoint_jitter: float = 0.2,
        illumination_jitter: float = 0.03,
        night_fraction: float = 0.3,
        seed: int = 0,
        device=None,
    ):
        if size < 16:
            raise ValueError(f"size must be >= 16 pixels, got {size}")
        if not 0 <= illumination_jitter <= viewpoint_jitter < 0.5:
            raise ValueError(
                "need 0 <= illumination_jitter <= viewpoint_jitter < 0.5, got "
                f"{illumination_jitter}, {viewpoint_jitter}"
            )
        self.size, self.n_boxes, self.cell = size, n_boxes, cell
        self.jitter = {"viewpoint": viewpoint_jitter, "illumination": illumination_jitter}
        self.night_fraction = night_fraction
        self.device = torch.device(device or "cpu")
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator, device=self.device)

    def textures(self, n: int) -> dict[str, torch.Tensor]:
        """Random parameters of ``n`` textures (lattices, boxes), the input of :meth:`render`."""
        s, b = self.size, self.n_boxes
        return {
            "lat1": self._rand(n, 8, 8),
            "lat2": self._rand(n, 8, 8),
            "centre": self._rand(n, b, 2) * 1.2 * s - 0.1 * s,
            "half": (0.06 + 0.14 * self._rand(n, b, 2)) * s,
            "angle": self._rand(n, b) * math.pi,
            "value": self._rand(n, b),
        }

    def render(self, tex: dict[str, torch.Tensor], q: torch.Tensor) -> torch.Tensor:
        """The texture ``T`` at points ``q (n, H, W, 2)`` (texture-plane pixels) → ``(n, H, W)``
        in [0, 1]: noise of two octaves, then each box painted over it (1-pixel soft edge)."""
        n = q.shape[0]
        cell = torch.full((n, 1, 1), self.cell, device=q.device, dtype=q.dtype)
        img = 0.65 * value_noise(q, tex["lat1"], cell) + 0.35 * value_noise(
            q, tex["lat2"], cell / 2
        )
        c, s = torch.cos(tex["angle"]), torch.sin(tex["angle"])  # (n, b)
        d = q[:, None] - tex["centre"][:, :, None, None]  # (n, b, H, W, 2)
        u = c[..., None, None] * d[..., 0] + s[..., None, None] * d[..., 1]
        v = -s[..., None, None] * d[..., 0] + c[..., None, None] * d[..., 1]
        sdf = torch.maximum(
            u.abs() - tex["half"][..., 0, None, None], v.abs() - tex["half"][..., 1, None, None]
        )
        alpha = (0.5 - sdf).clamp(0, 1)  # (n, b, H, W)
        for k in range(self.n_boxes):  # painter's order over the few boxes, batched over images
            img = img * (1 - alpha[:, k]) + tex["value"][:, k, None, None] * alpha[:, k]
        return img

    def homographies(self, n: int, jitter: torch.Tensor) -> torch.Tensor:
        """``(n, 3, 3)`` homographies moving the image corners by up to ``jitter (n,)`` of the size
        each (uniform in a square), plus a small random shift; exact 4-point DLT."""
        s = self.size - 1
        corners = torch.tensor(
            [[0, 0], [s, 0], [s, s], [0, s]], dtype=torch.float32, device=self.device
        ).expand(n, 4, 2)
        move = (2 * self._rand(n, 4, 2) - 1) * jitter[:, None, None] * self.size
        return homography_dlt(corners, corners + move)

    def photometric(self, img: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
        """Gamma ``∈ [1/3, 3]^strength``, contrast and brightness, and a dark noisy, blurred "night"
        for a ``night_fraction`` of the images; ``img (n, H, W)``, ``strength (n,)`` in [0, 1]."""
        n = img.shape[0]
        log_gamma = (2 * self._rand(n) - 1) * math.log(3.0) * strength
        out = img.clamp(1e-4, 1) ** torch.exp(log_gamma)[:, None, None]
        contrast = 1 + (self._rand(n) - 0.5) * strength
        bright = (self._rand(n) - 0.5) * 0.4 * strength
        out = (out - 0.5) * contrast[:, None, None] + 0.5 + bright[:, None, None]
        night = (self._rand(n) < self.night_fraction * strength)[:, None, None]
        dark = F.avg_pool2d(F.pad(out[:, None], (1, 1, 1, 1), mode="replicate"), 3, 1)[:, 0]
        dark = dark * (0.2 + 0.2 * self._rand(n))[:, None, None]
        dark = dark + 0.03 * torch.randn(img.shape, generator=self.generator, device=self.device)
        return torch.where(night, dark, out).clamp(0, 1)

    def sample(self, n: int, kind: str | None = None) -> dict[str, torch.Tensor]:
        """``n`` pairs: ``image_a``, ``image_b`` ``(n, 1, S, S)``, ``H`` ``(n, 3, 3)`` (A → B),
        ``viewpoint`` ``(n,)`` bool. ``kind`` None draws both kinds half and half."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS} or None, got {kind!r}")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        view = (
            torch.full((n,), kind == "viewpoint", device=self.device)
            if kind
            else torch.arange(n, device=self.device) % 2 == 1
        )
        jitter = torch.where(view, self.jitter["viewpoint"], self.jitter["illumination"])
        H = self.homographies(n, jitter)
        tex = self.textures(n)
        q = pixel_grid(self.size, self.device).expand(n, -1, -1, -1)
        a = self.render(tex, q)
        q_b = apply_homography(torch.linalg.inv(H)[:, None], q)  # B's pixels in A
        b = self.render(tex, q_b)
        a = self.photometric(a, torch.full((n,), 0.3, device=self.device))
        b = self.photometric(b, torch.where(view, 0.5, 1.0))
        return {"image_a": a[:, None], "image_b": b[:, None], "H": H, "viewpoint": view}


def harris_response(img: torch.Tensor, sigma: float = 1.0, k: float = 0.05) -> torch.Tensor:
    """Harris corner response ``det M - k (tr M)²`` of ``img (n, 1, H, W)``, with ``M`` the
    structure tensor of Sobel gradients smoothed by a Gaussian of ``sigma`` pixels."""
    if img.ndim != 4 or img.shape[1] != 1:
        raise ValueError(f"img must be (n, 1, H, W) grey images, got {tuple(img.shape)}")
    sx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=img.device) / 8
    w = torch.stack([sx, sx.T])[:, None].to(img.dtype)
    g = F.conv2d(F.pad(img, (1, 1, 1, 1), mode="replicate"), w)
    gx, gy = g[:, :1], g[:, 1:]
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, device=img.device, dtype=img.dtype)
    gk = torch.exp(-(t**2) / (2 * sigma**2))
    gk = gk / gk.sum()
    prods = torch.cat([gx * gx, gy * gy, gx * gy], 1)
    prods = F.conv2d(
        F.pad(prods, (r, r, 0, 0), mode="replicate"),
        gk.view(1, 1, 1, -1).expand(3, 1, 1, -1),
        groups=3,
    )
    prods = F.conv2d(
        F.pad(prods, (0, 0, r, r), mode="replicate"),
        gk.view(1, 1, -1, 1).expand(3, 1, -1, 1),
        groups=3,
    )
    a, b, c = prods[:, 0], prods[:, 1], prods[:, 2]
    return a * b - c * c - k * (a + b) ** 2


def harris_keypoints(
    img: torch.Tensor, k_max: int, border: int = 3, nms: int = 2, rel_threshold: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``k_max`` Harris corners per image (the stand-in for SuperPoint): local maxima of
    :func:`harris_response` in a ``(2 nms + 1)²`` window, above ``rel_threshold`` × the image's
    maximum, at least ``border`` pixels from the edge, strongest first.

    Returns ``xy (n, k_max, 2)`` integer pixel coordinates (float) and ``valid (n, k_max)``.
    """
    resp = harris_response(img)
    n, h, w = resp.shape
    peak = F.max_pool2d(resp[:, None], 2 * nms + 1, 1, nms)[:, 0]
    keep = (resp == peak) & (resp > rel_threshold * resp.flatten(1).amax(1)[:, None, None])
    keep &= resp > 0
    inner = torch.zeros_like(keep)
    inner[:, border : h - border, border : w - border] = True
    score = torch.where(keep & inner, resp, torch.full_like(resp, -math.inf))
    top, idx = score.flatten(1).topk(min(k_max, h * w), dim=1)
    xy = torch.stack([idx % w, idx // w], -1).to(img.dtype)
    return xy, torch.isfinite(top)
