"""ForkGAN: task-agnostic night -> day translation with fork-shaped generators.

Zheng, Wu, Han, Shi. *ForkGAN: Seeing into the Rainy Night*. ECCV 2020.

Each domain has one encoder E and two decoders: a reconstruction decoder G^r (back to the same
domain) and a translation decoder G^t (into the other domain). Both domains go through one
encoding space, made domain-invariant by a domain classifier D_d on the codes (trained with the
flipped label by the encoders) and a perceptual loss between the code of an image and the code of
its translation. At test time a parameter-free refinement re-encodes the translation with the
target domain's encoder and decodes it with its reconstruction decoder.

Notation (the paper's subscripts are inconsistent, Sect. 3.1): encoders are indexed by their
*input* domain (E_x eats night images x, E_y day images y), decoders by the domain they *output*
(G_y^t(z_x) is a day image, G_x^r(z_x) a night image), as in Fig. 2 and the inference formula.

Equations
---------
(1)   L = L_adv + L_cls + L_per + gamma L_cyc + epsilon L_rec,  gamma = epsilon = 10
(2)   L_per = tau sum_n lambda_n ||Phi_n(z~_x) - Phi_n(z_x)||_1,  lambda_n = 1 (tau undefined; 1)
      L_rec = ||G_x^r(E_x(I_x) + n) - I_x||_1      (n: pixel-wise Gaussian code noise, Sect. 3.3)
      L_cyc = ||G_x^t(E_y(G_y^t(E_x(I_x)))) - I_x||_1                       (+ the same for y)
      L_adv: LSGAN over a 2-scale discriminator per domain (CycleGAN's loss, Sect. 3.1, 3.4)
      L_cls: cross-entropy of D_d's domain head on z and z~, labels flipped for the encoders
      inference: I_y = G_y^r(E_y(G_y^t(E_x(I_x))))                             (Sect. 3.3)

The world: :class:`cvtutor.data.domains.Streets` (rainy night and day renderings of one scene,
the label map shared). Chapter ``forkgan``; GAN pieces from :mod:`cvtutor.nn.gan`, FID-lite from
:mod:`cvtutor.metrics.generative`, the U-Net from :mod:`cvtutor.nn.unet`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from cvtutor import report
from cvtutor.data import domains as D
from cvtutor.data.domains.streets import CLASSES, GLYPHS
from cvtutor.metrics import generative, images, segmentation
from cvtutor.nn.gan import (
    MultiScaleDiscriminator,
    ResnetBlock,
    discriminator_loss,
    generator_loss,
)
from cvtutor.nn.unet import UNet
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import backward_and_step, fit, minibatches

PAPER = {
    "table1_fid": report.PaperTable(
        "Table 1 (Alderley, night -> day, 512x256)", "FID", {
            "EnlightenGAN": 249, "UNIT": 155, "MUNIT": 138, "CycleGAN": 167, "DRIT": 145,
            "StarGAN": 117, "UGATIT": 170, "ToDayGAN": 104, "ForkGAN": 61.2, "Original": 210},
        better="lower"),
    "table1_sift": report.PaperTable(
        "Table 1 (Alderley, night -> day, 512x256)", "SIFT matches to the day frame", {
            "EnlightenGAN": 2.00, "UNIT": 2.68, "MUNIT": 2.75, "CycleGAN": 3.36, "DRIT": 3.71,
            "StarGAN": 3.28, "UGATIT": 2.51, "ToDayGAN": 4.14, "ForkGAN": 12.1,
            "Original": 3.12}, better="higher"),
    "table2_fid": report.PaperTable(
        "Table 2 (Alderley ablation)", "FID", {
            "w/o Fork-shape": 146, "Fork-shape": 131, "Fork-shape + DRB": 113,
            "Fork-shape + DRB + MSD": 95.3, "w/o refinement": 70.7, "shared decoders": 73.8,
            "ForkGAN": 61.2}, better="lower"),
    "table2_sift": report.PaperTable(
        "Table 2 (Alderley ablation)", "SIFT matches", {
            "w/o Fork-shape": 4.26, "Fork-shape": 7.12, "Fork-shape + DRB": 8.12,
            "Fork-shape + DRB + MSD": 9.14, "w/o refinement": 11.5, "shared decoders": 9.29,
            "ForkGAN": 12.1}, better="higher"),
    "table3_fid": report.PaperTable(
        "Table 3 (BDD100K, night -> day, 1024x512)", "FID", {
            "EnlightenGAN": 90.3, "UNIT": 62.1, "MUNIT": 61.1, "CycleGAN": 51.7, "DRIT": 53.1,
            "StarGAN": 68.3, "UGATIT": 72.2, "ToDayGAN": 43.8, "ForkGAN": 37.6,
            "Original": 101}, better="lower"),
    "table3_miou": report.PaperTable(
        "Table 3 (BDD100K, DeepLab-v3 trained on Cityscapes)", "mIoU (%)", {
            "EnlightenGAN": 6.03, "UNIT": 2.47, "MUNIT": 2.44, "CycleGAN": 1.88, "DRIT": 2.45,
            "StarGAN": 6.63, "UGATIT": 3.83, "ToDayGAN": 8.19, "ForkGAN": 14.4,
            "Original": 7.03}, better="higher"),
    "table4_setting1": report.PaperTable(
        "Table 4 (BDD100K night val, Faster R-CNN, day labels only)", "mAP (%)",
        {"Day(Real)": 22.1, "+ToDayGAN": 19.5, "+ForkGAN": 22.9}, better="higher"),
    "gamma": 10.0, "epsilon": 10.0, "lr": 2e-4, "msd_scales": 2,          # Sect. 3.1, 4.2
}
# variant -> (fork, dilated residual blocks, discriminator scales, L_per + L_cls, shared decoders)
VARIANTS = {
    "w/o Fork-shape": (False, False, 1, False, False),   # CycleGAN-style generator
    "Fork-shape": (True, False, 1, False, False),
    "Fork-shape + DRB": (True, True, 1, False, False),
    "Fork-shape + DRB + MSD": (True, True, 2, False, False),
    "ForkGAN": (True, True, 2, True, False),
    "shared decoders": (True, True, 2, True, True),
}
DOMAINS = ("x", "y")          # x: rainy night (adverse), y: day (normal)
PROBE_MARGIN = 0.05           # "less domain information": a fresh D_d at least this much less accurate


# ---------------------------------------------------------------------------------------------
# encoders, decoders, the fork
# ---------------------------------------------------------------------------------------------
def conv_in_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """The paper's Conv-Ins-ReLU module (reflection padding keeps S / stride)."""
    return nn.Sequential(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride),
                         nn.InstanceNorm2d(c_out), nn.ReLU())


def dilated_residual_blocks(channels: int, n: int, dilated: bool = True) -> nn.Sequential:
    """``n`` dilated residual blocks (DRB, Yu et al. 2017; Sect. 3.4) with dilations 1, 2, 4, 8,
    ... cycling from 2 (2, 4, 1, 2, ...) if ``dilated``, else plain residual blocks (dilation 1,
    the "w/o DRB" rows of Table 2, same parameter count). Shape-preserving."""
    dil = [(2, 4, 1)[i % 3] if dilated else 1 for i in range(n)]
    return nn.Sequential(*[ResnetBlock(channels, d) for d in dil])


class Encoder(nn.Module):
    """E (Sect. 4.2): 3 Conv-Ins-ReLU modules (7x7 stride 1, then 3x3 stride 2 twice) and
    ``n_drb`` dilated residual blocks: image (B, 3, S, S) in [-1, 1] -> code z (B, 4w, S/4, S/4)."""

    def __init__(self, width: int = 8, n_drb: int = 1, dilated: bool = True) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(conv_in_relu(3, w, 7), conv_in_relu(w, 2 * w, 3, 2),
                                 conv_in_relu(2 * w, 4 * w, 3, 2),
                                 dilated_residual_blocks(4 * w, n_drb, dilated))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"expected images (B, 3, S, S) with S divisible by 4, got "
                             f"{tuple(x.shape)}")
        return self.net(x)


class Decoder(nn.Module):
    """G^r or G^t (Sect. 4.2): ``n_drb`` dilated residual blocks, 2 Deconv-Ins-ReLU (stride 2)
    and a final 7x7 conv with Tanh (our reading of the third "Deconv" module, as in CycleGAN):
    code (B, 4w, S/4, S/4) -> image (B, 3, S, S) in [-1, 1]."""

    def __init__(self, width: int = 8, n_drb: int = 1, dilated: bool = True) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            dilated_residual_blocks(4 * w, n_drb, dilated),
            nn.ConvTranspose2d(4 * w, 2 * w, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(2 * w),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(w),
            nn.ReLU(), nn.ReflectionPad2d(3), nn.Conv2d(w, 3, 7), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class ForkGenerators(nn.Module):
    """The two forks (Fig. 2a): ``E[d]`` for d in ("x", "y"), ``Gt[d]`` the translation decoder
    *into* d, ``Gr[d]`` the reconstruction decoder of d. ``fork=False`` drops G^r (the CycleGAN-
    style generator, "w/o Fork-shape": E_x + G_y^t is a plain encoder-decoder). ``shared``: G^r
    and G^t of a domain are one module (Table 2, "w/ shared decoders"; with output-indexed
    decoders this is a single decoder per output domain)."""

    def __init__(self, width: int = 8, n_drb: int = 1, dilated: bool = True, fork: bool = True,
                 shared: bool = False) -> None:
        super().__init__()
        if shared and not fork:
            raise ValueError("shared decoders need the fork (fork=True)")
        self.fork, self.shared = fork, shared
        self.E = nn.ModuleDict({d: Encoder(width, n_drb, dilated) for d in DOMAINS})
        self.Gt = nn.ModuleDict({d: Decoder(width, n_drb, dilated) for d in DOMAINS})
        if fork:
            self.Gr = self.Gt if shared else nn.ModuleDict(
                {d: Decoder(width, n_drb, dilated) for d in DOMAINS})

    def translate(self, x: torch.Tensor, source: str = "x") -> torch.Tensor:
        """First stage: G_t^target(E_source(x)), no refinement."""
        return self.Gt[_other(source)](self.E[source](x))


def _other(d: str) -> str:
    if d not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {d!r}")
    return "y" if d == "x" else "x"


def refine(model: ForkGenerators, translated: torch.Tensor, target: str = "y") -> torch.Tensor:
    """The refinement stage (Sect. 3.3, Fig. 2b): G_target^r(E_target(.)); no new parameters."""
    if not model.fork:
        raise ValueError("refinement needs the reconstruction decoders (a fork-shaped model)")
    return model.Gr[target](model.E[target](translated))


def forkgan_translate(model: ForkGenerators, x: torch.Tensor, refinement: bool = True
                      ) -> torch.Tensor:
    """Night -> day at inference: G_y^r(E_y(G_y^t(E_x(x)))) (Sect. 3.3), or the first stage
    only (Table 2, "w/o refinement")."""
    out = model.translate(x, "x")
    return refine(model, out, "y") if refinement else out


# ---------------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------------
def reconstruction_loss(decoder: nn.Module, z: torch.Tensor, x: torch.Tensor, sigma: float,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """L_rec = ||G^r(z + n) - x||_1 (mean), n pixel-wise Gaussian of std ``sigma`` (Sect. 3.3;
    the paper gives no sigma)."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
    return F.l1_loss(decoder(z + sigma * noise), x)


def cycle_loss(model: ForkGenerators, x: torch.Tensor, source: str = "x"
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_cyc through the codes: ||G_s^t(E_t(G_t^t(E_s(x)))) - x||_1 (Sect. 3.1). Returns the loss
    and the intermediate ``z`` = E_s(x), ``fake`` = G_t^t(z), ``z_tilde`` = E_t(fake)."""
    t = _other(source)
    z = model.E[source](x)
    fake = model.Gt[t](z)
    z_tilde = model.E[t](fake)
    back = model.Gt[source](z_tilde)
    return F.l1_loss(back, x), {"z": z, "fake": fake, "z_tilde": z_tilde}


class CodeFeatures(nn.Module):
    """Phi_n of Eq. 2, our stand-in for "the last three layers of VGG-19": codes resized
    bilinearly to ``size`` x ``size`` (Sect. 3.2's "rearrange the feature maps"), then three
    frozen, randomly initialised (seeded) 3x3 conv-ReLU layers of the code's width; returns the
    three activations. ImageNet VGG weights are a download, and VGG's layers would not accept the
    code's channel count anyway (the paper does not say how it matched them)."""

    def __init__(self, channels: int, size: int = 8, n_layers: int = 3, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.size = size
        self.layers = nn.ModuleList()
        for _ in range(n_layers):
            conv = nn.Conv2d(channels, channels, 3, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g)
                                  * (2.0 / (9 * channels)) ** 0.5)
                conv.bias.zero_()
            self.layers.append(conv)
        self.requires_grad_(False)

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        h = F.interpolate(z, size=(self.size, self.size), mode="bilinear", align_corners=False)
        feats = []
        for conv in self.layers:
            h = F.relu(conv(h))
            feats.append(h)
        return feats


def perceptual_code_loss(phi: CodeFeatures, z_tilde: torch.Tensor, z: torch.Tensor,
                         tau: float = 1.0, lambdas: tuple[float, ...] | None = None
                         ) -> torch.Tensor:
    """Eq. 2: tau * sum_n lambda_n ||Phi_n(z~) - Phi_n(z)||_1 (mean over elements per level),
    lambda_n = 1; tau is undefined in the paper, we read it as 1."""
    if z_tilde.shape != z.shape:
        raise ValueError(f"z_tilde and z must have one shape, got {tuple(z_tilde.shape)} and "
                         f"{tuple(z.shape)}")
    fa, fb = phi(z_tilde), phi(z)
    lambdas = (1.0,) * len(fa) if lambdas is None else lambdas
    if len(lambdas) != len(fa):
        raise ValueError(f"need {len(fa)} lambdas (one per level), got {len(lambdas)}")
    return tau * sum(lam * F.l1_loss(a, b) for lam, a, b in zip(lambdas, fa, fb))


class DomainClassifier(nn.Module):
    """D_d (Sect. 4.2): a backbone of ``n_blocks`` Conv-Ins-ReLU blocks on a code (B, C, h, h),
    h = ``code_size`` (stride 2 from the second block on), an adversarial branch (one conv: a
    real/fake map, real = the code of a real image z, fake = the code of a translation z~) and a
    classification branch (one fully connected layer on the flattened backbone output: the
    logit of "the code came from E_y"). Its instance norms make it blind to a per-sample,
    per-channel constant offset of the code (and to one positive scale common to all channels)."""

    def __init__(self, channels: int, code_size: int, width: int = 16, n_blocks: int = 2) -> None:
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        layers, c, h = [], channels, code_size
        for i in range(n_blocks):
            layers.append(conv_in_relu(c, width, 3, 1 if i == 0 else 2))
            c, h = width, h if i == 0 else (h + 1) // 2
        self.code_size = code_size
        self.backbone = nn.Sequential(*layers)
        self.adv = nn.Conv2d(width, 1, 3, padding=1)
        self.cls = nn.Linear(width * h * h, 1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if z.ndim != 4 or z.shape[-2:] != (self.code_size, self.code_size):
            raise ValueError(f"expected codes (B, C, {self.code_size}, {self.code_size}), got "
                             f"{tuple(z.shape)}")
        h = self.backbone(z)
        return self.adv(h), self.cls(h.flatten(1))[:, 0]


def code_domain_labels(codes: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The codes ``{"z_x", "z_y", "z_tilde_x", "z_tilde_y"}`` stacked, with the domain label of
    the encoder that made each (1 = E_y): z_x -> 0, z_y -> 1, z~_x = E_y(.) -> 1, z~_y -> 0; so
    z and z~ of one image get opposite labels (our reading of "we assign an opposite label to z
    and z~", Sect. 3.2)."""
    order = (("z_x", 0.0), ("z_y", 1.0), ("z_tilde_x", 1.0), ("z_tilde_y", 0.0))
    z = torch.cat([codes[k] for k, _ in order])
    lab = torch.cat([torch.full((len(codes[k]),), v, device=z.device) for k, v in order])
    return z, lab


def domain_classification_loss(d_d: DomainClassifier, codes: dict[str, torch.Tensor],
                               flip: bool = False) -> torch.Tensor:
    """L_cls: binary cross-entropy of D_d's classification head on z and z~ with the encoder-
    domain labels of :func:`code_domain_labels`; ``flip=True`` is the encoders' side (they are
    trained towards the opposite label, so the codes carry no domain information)."""
    z, lab = code_domain_labels(codes)
    logit = d_d(z)[1]
    return F.binary_cross_entropy_with_logits(logit, 1 - lab if flip else lab)


def code_adversarial_loss(d_d: DomainClassifier, z: torch.Tensor, z_tilde: torch.Tensor,
                          side: str) -> torch.Tensor:
    """D_d's adversarial branch (LSGAN): real = z, fake = z~. ``side="d"`` is D_d's loss (codes
    detached), ``side="g"`` the encoders' (make z~ look like z)."""
    if side == "d":
        return discriminator_loss("lsgan", d_d(z.detach())[0], d_d(z_tilde.detach())[0])
    if side == "g":
        return generator_loss("lsgan", d_d(z_tilde)[0])
    raise ValueError(f"side must be 'd' or 'g', got {side!r}")


def msd_loss(disc: MultiScaleDiscriminator, real: torch.Tensor | None, fake: torch.Tensor,
             side: str) -> torch.Tensor:
    """LSGAN summed over the scales of a multi-scale discriminator (Sect. 3.4, n = 2 scales):
    ``side="d"`` needs ``real``; ``side="g"`` is the generator's loss on ``fake``."""
    if side == "d":
        return sum(discriminator_loss("lsgan", r, f)
                   for r, f in zip(disc(real), disc(fake.detach())))
    if side == "g":
        return sum(generator_loss("lsgan", f) for f in disc(fake))
    raise ValueError(f"side must be 'd' or 'g', got {side!r}")


def total_loss(adv: torch.Tensor, cls: torch.Tensor, per: torch.Tensor, cyc: torch.Tensor,
               rec: torch.Tensor, gamma: float = PAPER["gamma"],
               epsilon: float = PAPER["epsilon"]) -> torch.Tensor:
    """Eq. 1: L = L_adv + L_cls + L_per + gamma L_cyc + epsilon L_rec (gamma = epsilon = 10)."""
    return adv + cls + per + gamma * cyc + epsilon * rec


# ---------------------------------------------------------------------------------------------
# keypoint matches (the SIFT column)
# ---------------------------------------------------------------------------------------------
def _gray_upscaled(x: torch.Tensor, upscale: int) -> np.ndarray:
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected one RGB image (3, H, W) in [0, 1], got {tuple(x.shape)}")
    g = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).float().cpu()[None, None]
    if upscale > 1:
        g = F.interpolate(g, scale_factor=upscale, mode="bilinear", align_corners=False)
    return g[0, 0].clamp(0, 1).numpy().astype(np.float64)


def _detect(img: np.ndarray, method: str):
    from skimage.feature import ORB, SIFT

    if method not in ("sift", "orb"):
        raise ValueError(f"method must be 'sift' or 'orb', got {method!r}")
    det = SIFT() if method == "sift" else ORB(n_keypoints=200, fast_threshold=0.05)
    try:
        det.detect_and_extract(img)
    except RuntimeError:                     # skimage raises when it finds no keypoint
        return np.zeros((0, 2)), None
    return np.asarray(det.keypoints, float), det.descriptors


def keypoint_features(x: torch.Tensor, method: str = "sift", upscale: int = 4
                      ) -> tuple[np.ndarray, np.ndarray | None]:
    """Keypoints (K, 2) in upscaled pixels and descriptors of one image (3, H, W) in [0, 1]:
    scikit-image SIFT or ORB on its luminance, upscaled ``upscale`` x (bilinear)."""
    return _detect(_gray_upscaled(x, upscale), method)


def match_features(fa: tuple, fb: tuple, method: str = "sift", upscale: int = 4,
                   ratio: float = 0.8, tol: float = 2.0) -> dict[str, int]:
    """Mutual nearest-neighbour matches (SIFT: with Lowe's ratio test) between two
    :func:`keypoint_features`: ``keypoints`` (of a), ``matches`` and ``consistent`` (matches
    whose two positions agree within ``tol`` pixels of the original image: our pairs are pixel
    aligned, Alderley's are only GPS-matched)."""
    from skimage.feature import match_descriptors

    (ka, da), (kb, db) = fa, fb
    if da is None or db is None or len(ka) == 0 or len(kb) == 0:
        return {"keypoints": len(ka), "matches": 0, "consistent": 0}
    kw = {"cross_check": True}
    if method == "sift":
        kw["max_ratio"] = ratio
    m = match_descriptors(da, db, **kw)
    dist = np.linalg.norm(ka[m[:, 0]] - kb[m[:, 1]], axis=1) / upscale if len(m) else np.zeros(0)
    return {"keypoints": len(ka), "matches": len(m), "consistent": int((dist <= tol).sum())}


def keypoint_matches(a: torch.Tensor, b: torch.Tensor, method: str = "sift", upscale: int = 4,
                     ratio: float = 0.8, tol: float = 2.0) -> dict[str, int]:
    """Keypoints of image ``a`` matched to those of ``b`` (each (3, H, W) in [0, 1]); the
    Table 1 "SIFT" count (:func:`keypoint_features`, :func:`match_features`)."""
    if a.shape != b.shape:
        raise ValueError(f"a and b must have one shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    return match_features(keypoint_features(a, method, upscale),
                          keypoint_features(b, method, upscale), method, upscale, ratio, tol)


def mean_matches(outputs: torch.Tensor, day_features: list, method: str = "sift",
                 upscale: int = 4) -> dict[str, float]:
    """Mean :func:`match_features` of each output (N, 3, H, W) to its paired day image, whose
    :func:`keypoint_features` are given (computed once per run)."""
    if len(outputs) != len(day_features):
        raise ValueError(f"need one day feature set per output, got {len(day_features)} for "
                         f"{len(outputs)} outputs")
    rows = [match_features(keypoint_features(o, method, upscale), f, method, upscale)
            for o, f in zip(outputs, day_features)]
    return {k: float(np.mean([r[k] for r in rows])) for k in ("keypoints", "matches",
                                                              "consistent")}


# ---------------------------------------------------------------------------------------------
# configuration and data
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config(ProfileConfig):
    size: int = 32
    n_train: int = 480           # unpaired scenes per domain
    n_test: int = 96             # paired night/day test scenes
    n_match: int = 24            # of which scored by keypoint matches (skimage SIFT is slow)
    upscale: int = 4             # images are upscaled to 128 px for SIFT
    width: int = 8
    n_drb: int = 1
    d_width: int = 8
    d_layers: int = 2
    dd_blocks: int = 2
    batch_size: int = 8
    steps: int = 100             # per GAN
    lr: float = 1e-3             # the paper's 2e-4 is for 100k+ steps; see notebook
    code_noise: float = 0.1      # sigma of the code noise (absent from the paper)
    tau: float = 1.0
    variants: tuple[str, ...] = ("w/o Fork-shape", "ForkGAN")
    seg_steps: int = 100
    seg_width: int = 8
    fid_steps: int = 100
    probe_steps: int = 60
    augment: bool = False        # the Table 4 proxy (day -> night augmentation), full only
    seeds: tuple[int, ...] = (0,)
    seed: int = 0
    device: str | None = None

    @classmethod
    def fast(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        """64 px, 4 DRBs, every Table 2 variant, 3 seeds, the Table 4 proxy. 800 steps of 32 (the
        issue planned 4k): a step is host-bound (about 22k operator launches over the six
        variants), and 6 variants x 3 seeds x 800 steps fill the 10-minute GPU budget."""
        return cls(size=64, n_train=4000, n_test=500, n_match=100, upscale=2, width=16, n_drb=4,
                   d_width=16, d_layers=3, dd_blocks=4, batch_size=32, steps=800, lr=2e-4,
                   variants=tuple(VARIANTS), seg_steps=1000, seg_width=16, fid_steps=600,
                   probe_steps=300, augment=True, seeds=(0, 1, 2))

    @classmethod
    def smoke(cls) -> Config:
        """``full``'s code paths and resolution at toy sizes and training lengths."""
        return cls.full().replace(n_train=16, n_test=8, n_match=2, width=8, n_drb=2, d_width=8,
                                  batch_size=4, steps=2, seg_steps=2, seg_width=8, fid_steps=2,
                                  probe_steps=2, seeds=(0, 1))


def make_data(config: Config, seed: int) -> dict[str, torch.Tensor]:
    """Unpaired training images (``x`` night, ``y`` day of independent scenes, in [0, 1]) with
    the day scenes' ``label`` maps and both sides' sign ``glyph``."""
    w = D.Streets(config.size, get_device(config.device))
    u = D.unpaired(w, "night", "day", config.n_train, config.seed + seed)
    return {"x": u["a"]["image"], "y": u["b"]["image"], "label_y": u["b"]["label"],
            "glyph_x": u["a"]["glyph"], "glyph_y": u["b"]["glyph"]}


def make_test(config: Config) -> dict[str, torch.Tensor]:
    """Paired test scenes (night ``x``, day ``y``, shared ``label``) and day images of *other*
    scenes (``y_other``, the FID-lite reference)."""
    w = D.Streets(config.size, get_device(config.device))
    p = D.paired(w, "night", "day", config.n_test, config.seed + 10_000)
    other = w.render(w.scenes(config.n_test, config.seed + 20_000), "day")
    return {"x": p["a"]["image"], "y": p["b"]["image"], "label": p["a"]["label"],
            "y_other": other["image"]}


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
def build(config: Config, variant: str) -> dict[str, nn.Module]:
    """The generators, per-domain discriminators and D_d of one :data:`VARIANTS` row."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {tuple(VARIANTS)}")
    fork, dilated, scales, per_cls, shared = VARIANTS[variant]
    dev = get_device(config.device)
    g = ForkGenerators(config.width, config.n_drb, dilated, fork, shared).to(dev)
    d = nn.ModuleDict({k: MultiScaleDiscriminator(3, scales, config.d_width, config.d_layers,
                                                  spectral=False) for k in DOMAINS}).to(dev)
    out = {"G": g, "D": d}
    if per_cls:
        out["D_d"] = DomainClassifier(4 * config.width, config.size // 4, 2 * config.width,
                                      config.dd_blocks).to(dev)
        out["Phi"] = CodeFeatures(4 * config.width, config.size // 4, seed=config.seed).to(dev)
    return out


def train_forkgan(config: Config, data: dict, variant: str = "ForkGAN", seed: int = 0,
                  progress: bool = False) -> tuple[dict[str, nn.Module], pd.DataFrame]:
    """One variant trained with Eq. 1 through ``fit(..., manual=True)``: per step one update of
    the discriminators (D_x, D_y: LSGAN on real vs translated images; D_d: both branches) and one
    of the encoders and decoders (Eq. 1 with the flipped code labels). Adam, betas (0.5, 0.999)
    as CycleGAN."""
    dev = data["x"].device
    seed_everything(seed)
    m = build(config, variant)
    g, d, d_d, phi = m["G"], m["D"], m.get("D_d"), m.get("Phi")
    betas = (0.5, 0.999)
    opt_g = torch.optim.Adam(g.parameters(), lr=config.lr, betas=betas)
    d_params = list(d.parameters()) + (list(d_d.parameters()) if d_d is not None else [])
    opt_d = torch.optim.Adam(d_params, lr=config.lr, betas=betas)
    batches = minibatches(data["x"], data["y"], batch_size=config.batch_size, seed=seed)
    noise_gen = torch.Generator(device=dev).manual_seed(seed)

    def loss_fn(models, batch, step):
        x, y = batch[0] * 2 - 1, batch[1] * 2 - 1
        cyc_x, cx = cycle_loss(g, x, "x")          # night -> day -> night
        cyc_y, cy = cycle_loss(g, y, "y")          # day -> night -> day
        codes = {"z_x": cx["z"], "z_y": cy["z"], "z_tilde_x": cx["z_tilde"],
                 "z_tilde_y": cy["z_tilde"]}
        # discriminators
        ld = msd_loss(d["y"], y, cx["fake"], "d") + msd_loss(d["x"], x, cy["fake"], "d")
        if d_d is not None:
            ld = ld + code_adversarial_loss(d_d, torch.cat([cx["z"], cy["z"]]),
                                            torch.cat([cx["z_tilde"], cy["z_tilde"]]), "d")
            ld = ld + domain_classification_loss(d_d, {k: v.detach() for k, v in codes.items()})
        backward_and_step(ld, opt_d)
        # encoders and decoders, Eq. 1
        adv = msd_loss(d["y"], None, cx["fake"], "g") + msd_loss(d["x"], None, cy["fake"], "g")
        zero = adv.new_zeros(())
        cls = per = rec = zero
        if d_d is not None:
            adv = adv + code_adversarial_loss(d_d, None, torch.cat([cx["z_tilde"],
                                                                    cy["z_tilde"]]), "g")
            cls = domain_classification_loss(d_d, codes, flip=True)
            per = (perceptual_code_loss(phi, cx["z_tilde"], cx["z"], config.tau)
                   + perceptual_code_loss(phi, cy["z_tilde"], cy["z"], config.tau))
        if g.fork:
            rec = (reconstruction_loss(g.Gr["x"], cx["z"], x, config.code_noise, noise_gen)
                   + reconstruction_loss(g.Gr["y"], cy["z"], y, config.code_noise, noise_gen))
        loss = total_loss(adv, cls, per, cyc_x + cyc_y, rec)
        backward_and_step(loss, opt_g)
        return {"D": ld.detach(), "L_adv": adv.detach(), "L_cls": cls.detach(),
                "L_per": per.detach(), "L_cyc": (cyc_x + cyc_y).detach(), "L_rec": rec.detach()}

    models = {"G": g, "D": d} if d_d is None else {"G": g, "D": d, "D_d": d_d}
    hist = fit(models, {"G": opt_g, "D": opt_d}, batches, loss_fn, steps=config.steps,
               manual=True, progress=progress, desc=variant)
    g.eval()
    return m, hist


@torch.no_grad()
def translate_all(g: ForkGenerators, x: torch.Tensor, refinement: bool,
                  batch_size: int = 256) -> torch.Tensor:
    """Night images (N, 3, S, S) in [0, 1] -> day images in [0, 1]."""
    outs = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size] * 2 - 1
        out = forkgan_translate(g, xb, refinement) if g.fork else g.translate(xb, "x")
        outs.append((out + 1) / 2)
    return torch.cat(outs)


# ---------------------------------------------------------------------------------------------
# judges and metrics
# ---------------------------------------------------------------------------------------------
def train_segmenter(config: Config, images_: torch.Tensor, labels: torch.Tensor,
                    progress: bool = False, desc: str = "U-Net (day)") -> tuple[UNet, pd.DataFrame]:
    """The Table 3 judge: a U-Net trained on labelled images (day, or the Table 4 proxy's
    translated night), then frozen; (B, 3, S, S) in [0, 1] -> 7-class logits."""
    seed_everything(config.seed)
    net = UNet(3, len(CLASSES), width=config.seg_width, depth=2).to(images_.device)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    batches = minibatches(images_, labels.long(), batch_size=min(16, len(images_)),
                          seed=config.seed)

    def loss_fn(models, batch, step):
        xb, yb = batch
        return {"loss": F.cross_entropy(models["model"](xb * 2 - 1).float(), yb)}

    hist = fit(net, opt, batches, loss_fn, steps=config.seg_steps, progress=progress, desc=desc)
    return net.eval().requires_grad_(False), hist


@torch.no_grad()
def seg_miou(net: nn.Module, x: torch.Tensor, label: torch.Tensor) -> float:
    """mIoU of the frozen segmenter on images (N, 3, S, S) in [0, 1] against ``label``."""
    pred = torch.cat([net(x[i:i + 256] * 2 - 1).argmax(1) for i in range(0, len(x), 256)])
    return segmentation.mean_iou(segmentation.confusion_matrix(pred, label, len(CLASSES)))


def train_fid_net(config: Config, data: dict, progress: bool = False) -> generative.FIDLite:
    """FID-lite's feature net: trained on the unpaired training images to tell domain x sign
    glyph (6 classes), then frozen."""
    x = torch.cat([data["x"], data["y"]]) * 2 - 1
    k = len(GLYPHS)
    y = torch.cat([data["glyph_x"], k + data["glyph_y"]])
    return generative.FIDLite.train(x, y, steps=config.fid_steps, seed=config.seed,
                                    width=8, progress=progress, desc="FID-lite net")


def code_probe(config: Config, za: torch.Tensor, zb: torch.Tensor, seed: int = 0
               ) -> float:
    """Held-out accuracy of a fresh D_d classification branch trained to tell codes ``za``
    (label 0) from ``zb`` (label 1), each (N, C, h, w): about 1/2 when the two code sets are
    identically distributed (no domain information), about 1 when they are shifted. Trained on
    the first half of each set, scored on the second."""
    if (za.shape[1:] != zb.shape[1:] or len(za) < 4 or len(zb) < 4
            or za.shape[-1] != za.shape[-2]):
        raise ValueError(f"need two code sets (N >= 4, C, h, h) of one shape, got "
                         f"{tuple(za.shape)} and {tuple(zb.shape)}")
    seed_everything(seed)
    na, nb = len(za) // 2, len(zb) // 2
    xtr = torch.cat([za[:na], zb[:nb]]).detach()
    ytr = torch.cat([torch.zeros(na), torch.ones(nb)]).to(xtr.device)
    net = DomainClassifier(za.shape[1], za.shape[-1], 16, 2).to(xtr.device)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    batches = minibatches(xtr, ytr, batch_size=min(64, len(xtr)), seed=seed)

    def loss_fn(models, batch, step):
        return {"loss": F.binary_cross_entropy_with_logits(models["model"](batch[0])[1],
                                                           batch[1])}

    fit(net, opt, batches, loss_fn, steps=config.probe_steps, progress=False)
    with torch.no_grad():
        xte = torch.cat([za[na:], zb[nb:]])
        yte = torch.cat([torch.zeros(len(za) - na), torch.ones(len(zb) - nb)]).to(xte.device)
        return float(((net(xte)[1] > 0).float() == yte).float().mean())


@torch.no_grad()
def codes_of(g: ForkGenerators, test: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """E_x of the test night images and E_y of the paired day images (codes of one scene)."""
    return g.E["x"](test["x"] * 2 - 1), g.E["y"](test["y"] * 2 - 1)


def score(outputs: torch.Tensor, test: dict, judges: dict, config: Config) -> dict[str, float]:
    """FID-lite to day images of other scenes, SIFT matches (consistent ones) to the paired day
    image, mIoU of the day-trained U-Net, PSNR/SSIM to the paired day image."""
    m = mean_matches(outputs[:config.n_match], judges["day_features"], upscale=config.upscale)
    fid = judges["fid"]
    return {"FID-lite": generative.frechet_distance(fid.features(outputs * 2 - 1),
                                                    judges["fid_ref"]),
            "SIFT": m["consistent"], "SIFT (all)": m["matches"],
            "mIoU": 100 * seg_miou(judges["seg"], outputs, test["label"]),
            "PSNR": float(images.psnr(outputs, test["y"]).mean()),
            "SSIM": float(images.ssim(outputs, test["y"]).mean())}


def augmentation_proxy(config: Config, g: ForkGenerators, data: dict, test: dict,
                       progress: bool = False) -> dict[str, float]:
    """Table 4, setting (1) as a segmentation proxy: a U-Net trained on the day images' day->night
    translations G_x^r(E_x(G_x^t(E_y(y)))) with the day labels, against one trained on day
    images, both tested on the real night test images (mIoU %)."""
    with torch.no_grad():
        y = data["y"] * 2 - 1
        fake = torch.cat([refine(g, g.translate(y[i:i + 256], "y"), "x")
                          for i in range(0, len(y), 256)])
    net, _ = train_segmenter(config, (fake + 1) / 2, data["label_y"], progress, "U-Net (night+)")
    return {"+ForkGAN": 100 * seg_miou(net, test["x"], test["label"])}


# ---------------------------------------------------------------------------------------------
# the whole miniature
# ---------------------------------------------------------------------------------------------
def run(config: Config, progress: bool = False, samples: bool = False) -> dict:
    """Tables 1-3 (and, with ``config.augment``, the Table 4 proxy) in miniature, per seed and
    as mean ± std; returns DataFrames and ``findings`` (with ``samples``, the first seed's outputs
    for six test scenes, and its trained ForkGAN)."""
    test = make_test(config)
    data0 = make_data(config, 0)
    seg, seg_hist = train_segmenter(config, data0["y"], data0["label_y"], progress)
    fid = train_fid_net(config, data0, progress)
    judges = {"seg": seg, "fid": fid, "fid_ref": fid.features(test["y_other"] * 2 - 1),
              "day_features": [keypoint_features(y, upscale=config.upscale)
                               for y in test["y"][:config.n_match]]}
    base = {"Original": score(test["x"], test, judges, config),
            "Day (paired)": score(test["y"], test, judges, config)}
    rows, hists, probes, outs, keep = [], [], [], {}, {}
    aug_rows = []
    for seed in config.seeds:
        data = data0 if seed == 0 else make_data(config, seed)
        for variant in config.variants:
            m, hist = train_forkgan(config, data, variant, seed, progress)
            g = m["G"]
            hists.append(hist.assign(method=variant, seed=seed))
            settings = [(variant, True)] if g.fork else [(variant, False)]
            if variant == "ForkGAN":
                settings.append(("w/o refinement", False))
            for name, ref in settings:
                out = translate_all(g, test["x"], ref)
                rows.append({"seed": seed, "method": name, **score(out, test, judges, config)})
                if seed == config.seeds[0]:
                    outs[name] = out[:6].cpu()
            zx, zy = codes_of(g, test)
            probes.append({"seed": seed, "method": variant,
                           "D_d accuracy": code_probe(config, zx, zy, seed)})
            if variant == "ForkGAN" and config.augment:
                aug_rows.append({"seed": seed, **augmentation_proxy(config, g, data, test)})
            if seed == config.seeds[0] and variant == "ForkGAN":
                keep["model"] = g
    per_seed = pd.DataFrame(rows)
    cols = ["FID-lite", "SIFT", "SIFT (all)", "mIoU", "PSNR", "SSIM"]
    mean = per_seed.groupby("method", sort=False)[cols].mean()
    std = per_seed.groupby("method", sort=False)[cols].std().fillna(0.0)
    base_df = pd.DataFrame(base).T[cols]
    table = pd.concat([base_df, mean])
    probe = pd.DataFrame(probes).groupby("method", sort=False)["D_d accuracy"].agg(["mean", "std"])
    t = table
    fork, cyc = "ForkGAN", "w/o Fork-shape"
    pf = per_seed.pivot(index="seed", columns="method", values="SIFT")
    pm = per_seed.pivot(index="seed", columns="method", values="mIoU")
    pq = per_seed.pivot(index="seed", columns="method", values="FID-lite")
    n_seeds = len(config.seeds)
    orig = t.loc["Original"]
    findings = {
        "Table 1: SIFT matches rank ForkGAN > CycleGAN > raw night":
            ("paper claim", bool((pf[fork] > pf[cyc]).all() and (pf[cyc] > orig["SIFT"]).all()),
             (f"{t.loc[fork, 'SIFT']:.2f} / {t.loc[cyc, 'SIFT']:.2f} / {orig['SIFT']:.2f}"
              f" over {n_seeds} seed(s)")),
        "Table 1: FID-lite ranks ForkGAN < CycleGAN < raw night":
            ("paper claim", bool((pq[fork] < pq[cyc]).all() and (pq[cyc] < orig["FID-lite"]).all()),
             (f"{t.loc[fork, 'FID-lite']:.3g} / {t.loc[cyc, 'FID-lite']:.3g} / "
              f"{orig['FID-lite']:.3g}")),
        "Table 3: ForkGAN raises the day segmenter's mIoU above raw night":
            ("paper claim", bool((pm[fork] > orig["mIoU"]).all()),
             f"{t.loc[fork, 'mIoU']:.1f} vs {orig['mIoU']:.1f}"),
        "Table 3: CycleGAN's translation lowers mIoU below raw night":
            ("paper claim", bool((pm[cyc] < orig["mIoU"]).all()),
             f"{t.loc[cyc, 'mIoU']:.1f} vs {orig['mIoU']:.1f}"),
        "Table 2: the refinement stage adds SIFT matches":
            ("paper claim", bool((pf[fork] > pf["w/o refinement"]).all()),
             f"{t.loc[fork, 'SIFT']:.2f} vs {t.loc['w/o refinement', 'SIFT']:.2f}"),
        "Sect. 3.2: ForkGAN's codes carry less domain information than CycleGAN's "
        "(a fresh D_d's accuracy)":
            ("paper claim", bool(probe.loc[fork, "mean"] < probe.loc[cyc, "mean"] - PROBE_MARGIN),
             f"{probe.loc[fork, 'mean']:.2f} vs {probe.loc[cyc, 'mean']:.2f}"),
        "the day U-Net reads day images and the rainy night lowers it (mIoU)":
            ("construction", bool(base["Day (paired)"]["mIoU"] > 50
                                  and base["Day (paired)"]["mIoU"] > orig["mIoU"]),
             f"{base['Day (paired)']['mIoU']:.1f} vs {orig['mIoU']:.1f}"),
    }
    ladder = [v for v in VARIANTS if v in config.variants and v not in ("shared decoders",)]
    if len(ladder) > 2:
        order = [v for v in VARIANTS if v in ladder and v != "ForkGAN"] + ["w/o refinement",
                                                                            "ForkGAN"]
        vals = [t.loc[v, "SIFT"] for v in order]
        findings["Table 2: SIFT matches grow along the ablation ladder"] = (
            "paper claim", bool(np.all(np.diff(vals) > 0)),
            " < ".join(f"{v:.2f}" for v in vals))
    if "shared decoders" in config.variants:
        findings["Table 2: sharing G^r and G^t hurts (fewer SIFT matches)"] = (
            "paper claim", bool(t.loc["shared decoders", "SIFT"] < t.loc[fork, "SIFT"]),
            f"{t.loc['shared decoders', 'SIFT']:.2f} vs {t.loc[fork, 'SIFT']:.2f}")
    aug = None
    if aug_rows:
        aug_df = pd.DataFrame(aug_rows)
        day_miou = base["Original"]["mIoU"]
        aug = {"Day(Real)": day_miou, "+ForkGAN": float(aug_df["+ForkGAN"].mean())}
        findings["Table 4 proxy: training on day->night translations beats training on day"] = (
            "paper claim", bool((aug_df["+ForkGAN"] > day_miou).all()),
            f"{aug['+ForkGAN']:.1f} ({report.mean_std(aug_df['+ForkGAN'], '.3g', '.2g')}) vs {day_miou:.1f}")
    result = {"table": table.reset_index(names="method"), "std": std.reset_index(),
              "per_seed": per_seed, "probe": probe.reset_index(),
              "history": pd.concat(hists, ignore_index=True), "seg_history": seg_hist,
              "fid_history": fid.history, "augment": aug,
              "findings": report.claims_table(findings)}
    if samples:
        result["samples"] = outs
        result["test"] = {"x": test["x"][:6].cpu(), "y": test["y"][:6].cpu()}
        result["model"] = keep.get("model")
    return result
