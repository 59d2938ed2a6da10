"""What every domain world shares: a seeded scene description, renderers, paired/unpaired draws.

A *world* (:class:`DomainWorld`) samples scene descriptions (:meth:`DomainWorld.scenes`: a dict
of (N, ...) tensors on the device, seeded) and renders any of them in any of its
:attr:`DomainWorld.domains` (:meth:`DomainWorld.render`: a dict with ``image`` (N, 3, H, W) in
[0, 1], ``label`` (N, H, W) long, the layout shared by every domain, and world-specific extras).
Rendering is deterministic given the scenes (the nuisances of a domain, e.g. rain or sketch
jitter, are drawn from the scenes' own seed), so the same scene gives the same layout in every
domain. Chapter ``world_translation``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cvtutor.runtime import get_device


def generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A torch generator on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(int(seed))


def uniform(g: torch.Generator, shape: tuple, lo: float, hi: float,
            device: torch.device | str) -> torch.Tensor:
    """Uniform values in [lo, hi) of ``shape`` from ``g``."""
    return lo + (hi - lo) * torch.rand(shape, generator=g, device=device)


def smooth_noise(g: torch.Generator, n: int, channels: int, size: tuple[int, int], cells: int,
                 device: torch.device | str) -> torch.Tensor:
    """(n, channels, H, W) smooth random fields in [-1, 1]: a ``cells`` x ``cells`` grid of
    uniform values upsampled bicubically (the displacement of an elastic warp, a drop mask)."""
    coarse = torch.rand((n, channels, cells, cells), generator=g, device=device) * 2 - 1
    return F.interpolate(coarse, size=size, mode="bicubic", align_corners=True).clamp(-1, 1)


def boundary(labels: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool: pixels with a 4-neighbour of another label (both sides of each edge)."""
    e = torch.zeros_like(labels, dtype=torch.bool)
    dx = labels[:, :, 1:] != labels[:, :, :-1]
    dy = labels[:, 1:, :] != labels[:, :-1, :]
    e[:, :, 1:] |= dx
    e[:, :, :-1] |= dx
    e[:, 1:, :] |= dy
    e[:, :-1, :] |= dy
    return e


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """(N, H, W) bool dilated by a (2r+1) square."""
    if radius <= 0:
        return mask
    return F.max_pool2d(mask[:, None].float(), 2 * radius + 1, 1, radius)[:, 0] > 0


def warp(images: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample (N, C, H, W) at ``pixel + flow`` with ``flow`` (N, 2, H, W) in pixels (x, y);
    borders replicated."""
    n, _, h, w = images.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=images.device, dtype=images.dtype),
                            torch.arange(w, device=images.device, dtype=images.dtype),
                            indexing="ij")
    x = (xs + flow[:, 0] + 0.5) / w * 2 - 1
    y = (ys + flow[:, 1] + 0.5) / h * 2 - 1
    return F.grid_sample(images, torch.stack([x, y], -1), mode=mode, padding_mode="border",
                         align_corners=False)


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) Rec. 601 luma of (N, 3, H, W)."""
    w = torch.tensor([0.299, 0.587, 0.114], device=rgb.device, dtype=rgb.dtype)
    return (rgb * w[None, :, None, None]).sum(1, keepdim=True)


class DomainWorld:
    """Base of the domain worlds: ``size`` pixels a side, tensors on ``device``.

    Subclasses set :attr:`domains` and implement :meth:`scenes` and :meth:`_render`."""

    domains: tuple[str, ...] = ()

    def __init__(self, size: int = 32, device: torch.device | str | None = None) -> None:
        if size < 16:
            raise ValueError(f"size must be >= 16 pixels, got {size}")
        self.size = size
        self.device = get_device(device) if device is None or isinstance(device, str) else device

    def scenes(self, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _render(self, scenes: dict[str, torch.Tensor], domain: str) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def render(self, scenes: dict[str, torch.Tensor], domain: str) -> dict[str, torch.Tensor]:
        """``scenes`` (from :meth:`scenes`) drawn in ``domain``: ``image`` (N, 3, H, W), ``label``
        (N, H, W) and extras."""
        if domain not in self.domains:
            raise ValueError(f"unknown domain {domain!r} for {type(self).__name__}; expected one "
                             f"of {self.domains}")
        return self._render(scenes, domain)

    def _check_n(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")


def paired(world: DomainWorld, a: str, b: str, n: int, seed: int = 0) -> dict:
    """``n`` scenes rendered in domains ``a`` and ``b``: ``{"a": ..., "b": ..., "scenes": ...}``,
    image i of ``a`` and of ``b`` show the same scene (pix2pix-style supervision, or evaluation
    against the true target)."""
    scenes = world.scenes(n, seed)
    return {"a": world.render(scenes, a), "b": world.render(scenes, b), "scenes": scenes}


def unpaired(world: DomainWorld, a: str, b: str, n: int, seed: int = 0) -> dict:
    """``n`` images of domain ``a`` and ``n`` of ``b`` from *independent* scenes (seeds
    ``2 seed`` and ``2 seed + 1``): the CycleGAN setting, no image has its counterpart."""
    sa, sb = world.scenes(n, 2 * seed), world.scenes(n, 2 * seed + 1)
    return {"a": world.render(sa, a), "b": world.render(sb, b), "scenes_a": sa, "scenes_b": sb}
