"""GAN building blocks shared by the image-synthesis chapters (world ``world_translation``).

Losses (logits in, a scalar out)
    :func:`discriminator_loss`, :func:`generator_loss` with ``kind`` in :data:`LOSSES`:
    ``"nsgan"`` (Goodfellow et al. 2014, the non-saturating generator loss), ``"lsgan"`` (Mao et
    al. 2017, targets 1 for real and 0 for fake), ``"hinge"`` (Lim & Ye 2017; Miyato et al. 2018).
    :func:`gradient_penalty` (WGAN-GP, Gulrajani et al. 2017; derived in chapter ``topogan``).
Discriminators (spectral norm, Miyato et al. 2018, via ``torch.nn.utils.parametrizations``)
    :class:`PatchGAN` (pix2pix, Isola et al. 2017), :class:`MultiScaleDiscriminator`
    (pix2pixHD, Wang et al. 2018), :class:`ProjectionDiscriminator` (Miyato & Koyama 2018).
Generator blocks
    :class:`ResnetBlock` (CycleGAN's residual block; with ``dilation > 1`` the dilated residual
    block of Yu et al. 2017), :func:`adain` / :class:`AdaIN` (Huang & Belongie 2017),
    :class:`ConditionalBatchNorm2d` (de Vries et al. 2017), :class:`SPADE` (Park et al. 2019) and
    :class:`FADE` (TSIT, Jiang et al. 2020): normalise, then denormalise with a per-pixel scale
    and shift predicted from a label map (SPADE) or a feature map (FADE).
:func:`generator_ema`: an exponential moving average of a generator's weights
(``torch.optim.swa_utils.AveragedModel``), the copy GANs are usually evaluated with.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

LOSSES = ("nsgan", "lsgan", "hinge")


def _check_kind(kind: str) -> None:
    if kind not in LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}; expected one of {LOSSES}")


def discriminator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss on logits ``real`` = D(x) and ``fake`` = D(G(z)) (any shapes):

    * nsgan: ``softplus(-D(x)) + softplus(D(G(z)))`` = ``-log sigma(D(x)) - log(1 - sigma(D(G(z))))``
    * lsgan: ``(D(x) - 1)^2 / 2 + D(G(z))^2 / 2``
    * hinge: ``relu(1 - D(x)) + relu(1 + D(G(z)))``

    each term averaged over its tensor."""
    _check_kind(kind)
    if kind == "nsgan":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "lsgan":
        return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean()
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def generator_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss on logits ``fake`` = D(G(z)): nsgan ``softplus(-D)`` (= ``-log sigma(D)``,
    the non-saturating form), lsgan ``(D - 1)^2 / 2``, hinge ``-D``; averaged."""
    _check_kind(kind)
    if kind == "nsgan":
        return F.softplus(-fake).mean()
    if kind == "lsgan":
        return 0.5 * ((fake - 1) ** 2).mean()
    return -fake.mean()


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: E[(||grad_x D(x_hat)|| - 1)^2] on random interpolates x_hat of real and fake."""
    eps = torch.rand(len(real), 1, 1, 1, device=real.device)
    x = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()


# ---------------------------------------------------------------------------------------------
# discriminators
# ---------------------------------------------------------------------------------------------
def _sn(module: nn.Module, use: bool) -> nn.Module:
    return spectral_norm(module) if use else module


class PatchGAN(nn.Module):
    """``(B, C, H, W) -> (B, 1, H', W')`` logits, one per overlapping patch (pix2pix's
    "N x N PatchGAN": ``n_layers`` stride-2 4x4 convolutions, one stride-1, a 1-channel head;
    3 layers see 70 x 70 pixels). LeakyReLU(0.2); spectral norm on every conv if ``spectral``.
    Needs ``H, W >= 2^n_layers * 4`` or so to leave at least one patch."""

    def __init__(self, in_channels: int = 3, width: int = 32, n_layers: int = 3,
                 spectral: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch_in, ch = in_channels, width
        for _ in range(n_layers):
            layers += [_sn(nn.Conv2d(ch_in, ch, 4, 2, 1), spectral), nn.LeakyReLU(0.2)]
            ch_in, ch = ch, min(2 * ch, 8 * width)
        layers += [_sn(nn.Conv2d(ch_in, ch, 4, 1, 1), spectral), nn.LeakyReLU(0.2),
                   _sn(nn.Conv2d(ch, 1, 4, 1, 1), spectral)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MultiScaleDiscriminator(nn.Module):
    """``n_scales`` :class:`PatchGAN` s on the image and its 2x, 4x ... average-pooled copies;
    returns the list of their logit maps, finest first (pix2pixHD, Sect. 3.2)."""

    def __init__(self, in_channels: int = 3, n_scales: int = 2, width: int = 32,
                 n_layers: int = 3, spectral: bool = True) -> None:
        super().__init__()
        if n_scales < 1:
            raise ValueError(f"n_scales must be >= 1, got {n_scales}")
        self.scales = nn.ModuleList(PatchGAN(in_channels, width, n_layers, spectral)
                                    for _ in range(n_scales))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, d in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
            out.append(d(x))
        return out


class ProjectionDiscriminator(nn.Module):
    """Class-conditional logits ``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>`` (Miyato & Koyama
    2018, Eq. (3)): ``x`` (B, C, H, W), ``y`` (B,) class ids -> (B,). ``phi`` is a strided conv
    stack with global sum pooling; all layers spectrally normalised if ``spectral``."""

    def __init__(self, in_channels: int, n_classes: int, width: int = 32, n_layers: int = 3,
                 spectral: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch_in, ch = in_channels, width
        for _ in range(n_layers):
            layers += [_sn(nn.Conv2d(ch_in, ch, 4, 2, 1), spectral), nn.LeakyReLU(0.2)]
            ch_in, ch = ch, 2 * ch
        self.phi = nn.Sequential(*layers)
        self.psi = _sn(nn.Linear(ch_in, 1), spectral)
        self.embed = _sn(nn.Embedding(n_classes, ch_in), spectral)
        self.n_classes = n_classes

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.shape != (len(x),):
            raise ValueError(f"y must be (B,) = ({len(x)},) class ids, got {tuple(y.shape)}")
        h = self.phi(x).sum((2, 3))
        return self.psi(h)[:, 0] + (self.embed(y) * h).sum(1)


# ---------------------------------------------------------------------------------------------
# generator blocks
# ---------------------------------------------------------------------------------------------
class ResnetBlock(nn.Module):
    """``x + conv-norm-ReLU-conv-norm(x)``, 3x3 reflection-padded convs, shape-preserving
    (B, C, H, W). ``dilation > 1`` dilates both convs (the dilated residual block: a receptive
    field that grows without downsampling). ``norm``: "instance" (CycleGAN), "batch" or "none"."""

    def __init__(self, channels: int, dilation: int = 1, norm: str = "instance") -> None:
        super().__init__()
        norms = {"instance": lambda: nn.InstanceNorm2d(channels),
                 "batch": lambda: nn.BatchNorm2d(channels), "none": nn.Identity}
        if norm not in norms:
            raise ValueError(f"norm must be one of {tuple(norms)}, got {norm!r}")
        if dilation < 1:
            raise ValueError(f"dilation must be >= 1, got {dilation}")
        d = dilation
        self.body = nn.Sequential(
            nn.ReflectionPad2d(d), nn.Conv2d(channels, channels, 3, dilation=d), norms[norm](),
            nn.ReLU(), nn.ReflectionPad2d(d), nn.Conv2d(channels, channels, 3, dilation=d),
            norms[norm]())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def channel_stats(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and std over the pixels of (B, C, H, W): two (B, C, 1, 1)."""
    if x.ndim != 4:
        raise ValueError(f"expected (B, C, H, W), got {tuple(x.shape)}")
    mean = x.mean((2, 3), keepdim=True)
    return mean, (x.var((2, 3), keepdim=True, unbiased=False) + eps).sqrt()


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
          eps: float = 1e-5) -> torch.Tensor:
    """AdaIN (Huang & Belongie 2017, Eq. (8)): ``std_s (x - mu(x)) / sigma(x) + mu_s``, per
    sample and channel; ``content`` (B, C, H, W), ``style_mean``/``style_std`` (B, C) or
    (B, C, 1, 1). The output's per-channel mean and std are the style's."""
    mean, std = channel_stats(content, eps)
    b, c = content.shape[:2]
    return (content - mean) / std * style_std.reshape(b, c, 1, 1) + style_mean.reshape(b, c, 1, 1)


class AdaIN(nn.Module):
    """AdaIN whose style statistics come from a code ``w`` (B, style_dim) through a linear map
    (FUNIT, StyleGAN): ``x`` (B, C, H, W), ``w`` -> (B, C, H, W)."""

    def __init__(self, channels: int, style_dim: int) -> None:
        super().__init__()
        self.affine = nn.Linear(style_dim, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        with torch.no_grad():                       # start as plain instance norm (scale 1, shift 0)
            self.affine.bias.copy_(torch.cat([torch.ones(channels), torch.zeros(channels)]))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        scale, shift = self.affine(w).chunk(2, dim=1)
        return adain(x, shift, scale)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm without affine, then a per-class scale and shift (embeddings, init 1 and 0):
    ``x`` (B, C, H, W), ``y`` (B,) class ids -> (B, C, H, W)."""

    def __init__(self, channels: int, n_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gamma, self.beta = nn.Embedding(n_classes, channels), nn.Embedding(n_classes, channels)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.shape != (len(x),):
            raise ValueError(f"y must be (B,) = ({len(x)},) class ids, got {tuple(y.shape)}")
        return self.bn(x) * self.gamma(y)[..., None, None] + self.beta(y)[..., None, None]


class SPADE(nn.Module):
    """Spatially-adaptive denormalisation (Park et al. 2019, Eq. (1)):
    ``gamma(m) * norm(x) + beta(m)``, with ``norm`` parameter-free batch (or instance) norm and
    ``gamma``, ``beta`` (B, C, H, W) predicted per pixel from the condition ``m`` (B, K, h, w),
    resized (nearest) to x's size, by a shared 3x3 conv + ReLU of ``hidden`` channels and two
    3x3 convs. ``x`` (B, C, H, W) -> (B, C, H, W). Here ``gamma = 1 + conv(...)``, so a zero
    head is the plain normalisation."""

    def __init__(self, channels: int, cond_channels: int, hidden: int | None = 32,
                 norm: str = "batch") -> None:
        super().__init__()
        if norm not in ("batch", "instance"):
            raise ValueError(f"norm must be 'batch' or 'instance', got {norm!r}")
        self.norm = (nn.BatchNorm2d(channels, affine=False) if norm == "batch"
                     else nn.InstanceNorm2d(channels, affine=False))
        self.shared = (nn.Identity() if hidden is None else
                       nn.Sequential(nn.Conv2d(cond_channels, hidden, 3, padding=1), nn.ReLU()))
        ch = cond_channels if hidden is None else hidden
        self.gamma = nn.Conv2d(ch, channels, 3, padding=1)
        self.beta = nn.Conv2d(ch, channels, 3, padding=1)
        self.mode = "nearest"

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if cond.ndim != 4 or len(cond) != len(x):
            raise ValueError(f"cond must be (B, K, h, w) with B = {len(x)}, got "
                             f"{tuple(cond.shape)}")
        cond = F.interpolate(cond.float(), size=x.shape[-2:], mode=self.mode)
        h = self.shared(cond)
        return self.norm(x) * (1 + self.gamma(h)) + self.beta(h)


class FADE(SPADE):
    """Feature-adaptive denormalisation (TSIT, Jiang et al. 2020, Eq. (2)): SPADE whose
    condition is a feature map of the content stream (B, K, h, w), resized bilinearly, with the
    scale and shift convs applied to it directly (no shared hidden layer)."""

    def __init__(self, channels: int, cond_channels: int, norm: str = "batch") -> None:
        super().__init__(channels, cond_channels, hidden=None, norm=norm)
        self.mode = "bilinear"


def generator_ema(model: nn.Module, decay: float = 0.999) -> AveragedModel:
    """An exponential moving average of ``model``'s parameters (and buffers): call
    ``ema.update_parameters(model)`` after each step; ``theta_ema <- decay theta_ema +
    (1 - decay) theta`` (the first call copies). Evaluate ``ema.module``."""
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay}")
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
