"""COCO-FUNIT: few-shot unsupervised image translation with a content-conditioned style encoder.

Saito, Saenko, Liu. *COCO-FUNIT: Few-Shot Unsupervised Image Translation with a Content
Conditioned Style Encoder*. ECCV 2020.

FUNIT translates a content image x_c into a class seen only through K example ("style") images;
its style code varies with the crop of the style image, i.e. it leaks pose ("content loss").
COCO computes the style code from the style image *and* the content image, and concatenates a
learned constant style bias (CSB) to the pooled style features.

Equations
---------
(1)   x_bar_k = G(x_c, x_k)
(2)   FUNIT: z_c = E_c(x_c), z_s = E_s(x_s) (averaged over K shots), x_bar = F(z_c, z_s)
(3)   COCO: z_s = phi(E_ss(x_s), E_sc(x_c)), phi = zeta_c * zeta_s,
      zeta_s = FC([pool E_ss(x_s); CSB]), zeta_c = FC(pool E_sc(x_c)), E_sc = E_c
(4)   min_G max_D  L_GAN(D, G) + lambda_R L_R(G) + lambda_F L_FM(G), lambda_R = 0.1,
      lambda_F = 1 (printed "min_D max_G"; we implement G minimising, D maximising)
AdaIN (F's normalisation): gamma (h - mu(h)) / sigma(h) + beta, (gamma, beta) = MLP(z_s).

The world: critters (:mod:`cvtutor.data.scenes2d.critters`): pose is content, class is style;
seen and unseen classes from :func:`~cvtutor.data.scenes2d.critters.class_split`. Shared pieces:
:mod:`cvtutor.nn.gan` (AdaIN, projection discriminator with spectral norm, hinge losses, EMA),
:mod:`cvtutor.metrics.generative` (Fréchet distance, FID-lite features).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from cvtutor import report
from cvtutor.data.scenes2d import critters as cr
from cvtutor.metrics import generative, segmentation
from cvtutor.nn.gan import (
    AdaIN,
    ProjectionDiscriminator,
    ResnetBlock,
    discriminator_loss,
    generator_ema,
    generator_loss,
)
from cvtutor.nn.unet import UNet
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import backward_and_step, fit, minibatches

_T1 = ("mFD", "PAcc", "mIoU")
PAPER = {
    "table1_mfid": report.PaperTable("Table 1 (Carnivores, one-shot)", "mFID",
                                     {"FUNIT": 147.8, "COCO-FUNIT": 107.8}, better="lower"),
    "table1_pacc": report.PaperTable("Table 1 (Carnivores, one-shot)", "PAcc (%)",
                                     {"FUNIT": 59.8, "COCO-FUNIT": 66.5}, better="higher"),
    "table1_miou": report.PaperTable("Table 1 (Carnivores, one-shot)", "mIoU (%)",
                                     {"FUNIT": 44.6, "COCO-FUNIT": 52.1}, better="higher"),
    "table1_motorbikes_content": report.PaperTable(
        "Table 1 (Motorbikes)", "user content preference (%)",
        {"FUNIT": 17.4, "COCO-FUNIT": 82.6}, better="higher", note='printed "17,4"'),
    "table2_mfid": report.PaperTable(
        "Table 2 (Carnivores)", "mFID", {"w/o COCO": 99.6, "w/o CSB": 107.1, "w/o CC": 110.0,
                                         "COCO-FUNIT": 107.8}, better="lower"),
    "table2_pacc": report.PaperTable(
        "Table 2 (Carnivores)", "PAcc (%)", {"w/o COCO": 62.5, "w/o CSB": 61.8, "w/o CC": 66.7,
                                             "COCO-FUNIT": 66.5}, better="higher",
        note="w/o CC >= Ours on Carnivores PAcc"),
    "table2_miou": report.PaperTable(
        "Table 2 (Carnivores)", "mIoU (%)", {"w/o COCO": 47.8, "w/o CSB": 46.9, "w/o CC": 52.1,
                                             "COCO-FUNIT": 52.1}, better="higher"),
}
HPARAMS = {"lambda_r": 0.1, "lambda_f": 1.0, "lr": 1e-4, "adam_betas": (0.0, 0.999),
           "ema_weight": 0.001}   # Sect. 4 (not results)
# model name -> (residual content encoder/decoder, style encoder, CSB, content conditioning)
MODELS = {"FUNIT": (False, "funit", False, False), "w/o COCO": (True, "funit", False, False),
          "w/o CSB": (True, "coco", False, True), "w/o CC": (True, "coco", True, False),
          "COCO-FUNIT": (True, "coco", True, True)}
N_PARTS = len(cr.PARTS) + 1          # background + the critter parts


@dataclass(frozen=True)
class Config(ProfileConfig):
    size: int = 32
    n_classes: int = 32
    n_unseen: int = 8
    n_per_class: int = 48        # 32 x 48 = 1.5k images
    width: int = 16              # content encoder / decoder width (x2 after downsampling)
    style_dim: int = 16
    csb_dim: int = 64
    d_width: int = 16
    batch_size: int = 8
    steps: int = 100
    lr: float = 4e-4             # the paper's 1e-4 is for 150k iterations
    ema_decay: float = 0.9       # the paper's 0.999 averages over ~1000 of its 150k steps
    models: tuple[str, ...] = ("FUNIT", "COCO-FUNIT")
    n_crops: int = 10            # Fig. 5
    n_fig5: int = 16             # style images whose crops are coded
    n_norm: int = 64             # style images for the normaliser (500 in the paper)
    n_eval: int = 8              # translations per unseen class (mFD, PAcc, mIoU)
    steps_judge: int = 60        # the part segmenter and the class-feature net
    csb_scales: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0)   # Fig. 10
    seeds: tuple[int, ...] = (0,)
    seed: int = 0
    device: str | None = None

    @classmethod
    def fast(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        return cls(size=64, n_classes=60, n_unseen=12, n_per_class=100, width=32,
                   style_dim=64, csb_dim=1024, d_width=32, batch_size=32, steps=2000,
                   lr=1e-4, ema_decay=0.999, models=tuple(MODELS), n_fig5=64, n_norm=500,
                   n_eval=64, steps_judge=800, seeds=(0, 1, 2))

    @classmethod
    def smoke(cls) -> Config:
        """``full``'s code paths and resolution at toy sizes and training lengths."""
        return cls.full().replace(n_classes=8, n_unseen=3, n_per_class=6, width=8, style_dim=8,
                                  csb_dim=16, d_width=8, batch_size=4, steps=2, n_fig5=3,
                                  n_norm=6, n_crops=3, n_eval=4, steps_judge=2, seeds=(0, 1))


# ---------------------------------------------------------------------------------------------
# encoders, decoder, generator
# ---------------------------------------------------------------------------------------------
class ContentEncoder(nn.Module):
    """E_c of Eq. (2): conv3x3, two stride-2 convs, then (``residual``) two residual blocks
    (COCO-FUNIT's change) or two plain conv layers (FUNIT): (B, 3, S, S) -> z_c
    (B, 2 width, S/4, S/4), instance-normalised."""

    def __init__(self, width: int = 16, residual: bool = True) -> None:
        super().__init__()
        w = width
        layers = [nn.Conv2d(3, w, 3, padding=1), nn.InstanceNorm2d(w), nn.ReLU(),
                  nn.Conv2d(w, 2 * w, 4, 2, 1), nn.InstanceNorm2d(2 * w), nn.ReLU(),
                  nn.Conv2d(2 * w, 2 * w, 4, 2, 1), nn.InstanceNorm2d(2 * w), nn.ReLU()]
        if residual:
            layers += [ResnetBlock(2 * w), ResnetBlock(2 * w)]
        else:
            layers += [nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.InstanceNorm2d(2 * w), nn.ReLU()] * 1
        self.net = nn.Sequential(*layers)
        self.out_channels = 2 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be (B, 3, H, W), got {tuple(x.shape)}")
        return self.net(x)


class StyleFeatures(nn.Module):
    """E_s / E_ss: conv3x3 then ``n_down`` stride-2 convs and global mean pooling:
    (B, 3, S, S) -> (B, 4 width)."""

    def __init__(self, width: int = 16, n_down: int = 3) -> None:
        super().__init__()
        layers, c = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU()], width
        for i in range(n_down):
            c2 = min(4 * width, 2 * c)
            layers += [nn.Conv2d(c, c2, 4, 2, 1), nn.ReLU()]
            c = c2
        self.net, self.out_channels = nn.Sequential(*layers), c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).mean((2, 3))


class FUNITStyleEncoder(nn.Module):
    """Eq. (2): z_s = FC(pool E_s(x_s)); ``x_s`` (B, K, 3, S, S) or (B, 3, S, S) (K = 1) ->
    (B, style_dim), the codes of the K shots averaged. ``x_c`` is ignored (same signature as
    :class:`COCOStyleEncoder`)."""

    def __init__(self, width: int = 16, style_dim: int = 16) -> None:
        super().__init__()
        self.features = StyleFeatures(width)
        self.fc = nn.Linear(self.features.out_channels, style_dim)

    def forward(self, x_s: torch.Tensor, x_c: torch.Tensor | None = None,
                content_encoder: nn.Module | None = None) -> torch.Tensor:
        x_s = _shots(x_s)
        b, k = x_s.shape[:2]
        return self.fc(self.features(x_s.flatten(0, 1))).view(b, k, -1).mean(1)


def _shots(x_s: torch.Tensor) -> torch.Tensor:
    if x_s.ndim == 4:
        x_s = x_s[:, None]
    if x_s.ndim != 5 or x_s.shape[2] != 3:
        raise ValueError(f"x_s must be (B, 3, S, S) or (B, K, 3, S, S), got {tuple(x_s.shape)}")
    return x_s


class COCOStyleEncoder(nn.Module):
    """Eq. (3): z_s = zeta_c * zeta_s with zeta_s = MLP([pool E_ss(x_s); CSB * csb_scale]) and
    zeta_c = MLP(pool E_sc(x_c)), E_sc = E_c (the content encoder passed in, shared weights).
    ``csb=False`` drops the bias ("w/o CSB", the MLP input is pool E_ss only);
    ``content_conditioned=False`` sets zeta_c = 1 ("w/o CC"). K shots: zeta_s averaged over them.
    The CSB is a learned constant, initialised N(0, 1); ``csb_scale`` is Fig. 10's lambda."""

    def __init__(self, width: int = 16, style_dim: int = 16, csb_dim: int = 64,
                 content_channels: int = 32, csb: bool = True,
                 content_conditioned: bool = True) -> None:
        super().__init__()
        self.features = StyleFeatures(width)
        self.csb = nn.Parameter(torch.randn(csb_dim)) if csb else None
        fc_in = self.features.out_channels + (csb_dim if csb else 0)
        self.fc_in = fc_in
        self.mlp_style = nn.Sequential(nn.Linear(fc_in, style_dim), nn.ReLU(),
                                       nn.Linear(style_dim, style_dim))
        self.mlp_content = (nn.Sequential(nn.Linear(content_channels, style_dim), nn.ReLU(),
                                          nn.Linear(style_dim, style_dim))
                            if content_conditioned else None)
        self.csb_scale = 1.0

    def zeta_s(self, x_s: torch.Tensor) -> torch.Tensor:
        x_s = _shots(x_s)
        b, k = x_s.shape[:2]
        h = self.features(x_s.flatten(0, 1))
        if self.csb is not None:
            h = torch.cat([h, (self.csb_scale * self.csb).expand(len(h), -1)], 1)
        return self.mlp_style(h).view(b, k, -1).mean(1)

    def zeta_c(self, x_c: torch.Tensor, content_encoder: nn.Module) -> torch.Tensor:
        return self.mlp_content(content_encoder(x_c).mean((2, 3)))

    def forward(self, x_s: torch.Tensor, x_c: torch.Tensor | None = None,
                content_encoder: nn.Module | None = None) -> torch.Tensor:
        zs = self.zeta_s(x_s)
        if self.mlp_content is None:
            return zs
        if x_c is None or content_encoder is None:
            raise ValueError("a content-conditioned COCO needs x_c and the content encoder E_c")
        if len(x_c) != len(zs):
            raise ValueError(f"x_c must have the batch size of x_s ({len(zs)}), got {len(x_c)}")
        return self.zeta_c(x_c, content_encoder) * zs


class AdaINResBlock(nn.Module):
    """``x + conv(ReLU(AdaIN(conv(ReLU(AdaIN(x, z))), z)))``: the decoder's residual block whose
    AdaIN (gamma, beta) come from the style code z through a linear map (:class:`AdaIN`)."""

    def __init__(self, channels: int, style_dim: int) -> None:
        super().__init__()
        self.n1, self.n2 = AdaIN(channels, style_dim), AdaIN(channels, style_dim)
        self.c1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.c2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.relu(self.n1(x, z)))
        return x + self.c2(F.relu(self.n2(h, z)))


class Decoder(nn.Module):
    """F(z_c, z_s): an MLP maps z_s to a code w, two AdaIN blocks (residual, or plain AdaIN-conv
    for FUNIT's vanilla decoder) at S/4, two nearest 2x upsamplings with conv + instance norm,
    conv to RGB and tanh: (B, 2 width, S/4, S/4), (B, style_dim) -> (B, 3, S, S)."""

    def __init__(self, width: int = 16, style_dim: int = 16, residual: bool = True) -> None:
        super().__init__()
        c = 2 * width
        self.mlp = nn.Sequential(nn.Linear(style_dim, 2 * style_dim), nn.ReLU(),
                                 nn.Linear(2 * style_dim, style_dim))
        self.residual = residual
        self.blocks = nn.ModuleList(AdaINResBlock(c, style_dim) for _ in range(2))
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2), nn.Conv2d(c, width, 3, padding=1),
            nn.InstanceNorm2d(width), nn.ReLU(), nn.Upsample(scale_factor=2),
            nn.Conv2d(width, width, 3, padding=1), nn.InstanceNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 3, 3, padding=1), nn.Tanh())

    def forward(self, z_c: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
        w = self.mlp(z_s)
        h = z_c
        for block in self.blocks:
            h = block(h, w) if self.residual else F.relu(block.c1(block.n1(h, w)))
        return self.up(h)


class Generator(nn.Module):
    """G(x_c, x_s) of Eq. (1), images in [-1, 1]; ``model`` one of :data:`MODELS`."""

    def __init__(self, model: str = "COCO-FUNIT", width: int = 16, style_dim: int = 16,
                 csb_dim: int = 64) -> None:
        super().__init__()
        if model not in MODELS:
            raise ValueError(f"model must be one of {tuple(MODELS)}, got {model!r}")
        residual, kind, csb, cc = MODELS[model]
        self.model = model
        self.content = ContentEncoder(width, residual)
        self.style = (FUNITStyleEncoder(width, style_dim) if kind == "funit" else
                      COCOStyleEncoder(width, style_dim, csb_dim, self.content.out_channels,
                                       csb, cc))
        self.decoder = Decoder(width, style_dim, residual)

    def style_code(self, x_s: torch.Tensor, x_c: torch.Tensor) -> torch.Tensor:
        """z_s (B, style_dim): Eq. (2) or (3)."""
        return self.style(x_s, x_c, self.content)

    def forward(self, x_c: torch.Tensor, x_s: torch.Tensor,
                z_s: torch.Tensor | None = None) -> torch.Tensor:
        z_s = self.style_code(x_s, x_c) if z_s is None else z_s
        return self.decoder(self.content(x_c), z_s)


# ---------------------------------------------------------------------------------------------
# losses (Eq. 4)
# ---------------------------------------------------------------------------------------------
def projection_features(d: ProjectionDiscriminator, x: torch.Tensor) -> torch.Tensor:
    """phi(x) of the projection discriminator, sum-pooled: (B, C) (what D(x, y) projects)."""
    return d.phi(x).sum((2, 3))


def projection_logits(d: ProjectionDiscriminator, h: torch.Tensor, y: torch.Tensor
                      ) -> torch.Tensor:
    """D(x, y) = psi(phi(x)) + <embed(y), phi(x)> from the features h = phi(x)."""
    return d.psi(h)[:, 0] + (d.embed(y) * h).sum(1)


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Eq. (4)'s GAN term for D: E[relu(1 - D(x_k, k))] + E[relu(1 + D(x_bar, k))]."""
    return discriminator_loss("hinge", real, fake)


def reconstruction_loss(g: Generator, x: torch.Tensor) -> torch.Tensor:
    """L_R: E|G(x, x) - x|_1, content and style from the same image."""
    return (g(x, x) - x).abs().mean()


def feature_matching_loss(h_fake: torch.Tensor, h_real: torch.Tensor) -> torch.Tensor:
    """L_FM (FUNIT's form): |mean phi(x_bar) - mean phi(x_k)|_1 over the batch, per feature
    averaged; the real features are constants."""
    if h_fake.shape != h_real.shape:
        raise ValueError(f"features must share a shape, got {tuple(h_fake.shape)} and "
                         f"{tuple(h_real.shape)}")
    return (h_fake.mean(0) - h_real.detach().mean(0)).abs().mean()


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def make_data(config: Config, seed: int = 0) -> dict:
    """All classes' critters (``n_per_class`` each, images in [-1, 1]); the seen / unseen split
    (:func:`~cvtutor.data.scenes2d.critters.class_split`); ``parts`` (N, S, S) 0 = background,
    1.. the parts."""
    dev = get_device(config.device)
    classes = cr.critter_classes(config.n_classes, seed=config.seed, device=dev)
    data = cr.critters(classes, config.n_per_class, config.size, seed=seed, device=dev)
    seen, unseen = cr.class_split(config.n_classes, config.n_unseen, config.seed)
    return {"image": data.image * 2 - 1, "label": data.label, "parts": data.parts + 1,
            "seen": seen.to(dev), "unseen": unseen.to(dev)}


def random_crops(x: torch.Tensor, n: int, frac: float = 0.75, seed: int = 0) -> torch.Tensor:
    """``n`` random square crops (side ``frac`` S) of each image, resized back to S (bilinear):
    (B, 3, S, S) -> (B, n, 3, S, S) (Fig. 5's crops of one style image)."""
    if not 0 < frac <= 1:
        raise ValueError(f"frac must be in (0, 1], got {frac}")
    b, _, s, _ = x.shape
    c = max(2, round(frac * s))
    g = torch.Generator().manual_seed(seed)
    offs = torch.randint(0, s - c + 1, (b, n, 2), generator=g)
    out = torch.empty(b, n, *x.shape[1:], device=x.device, dtype=x.dtype)
    for i in range(b):
        for j in range(n):
            u, v = offs[i, j].tolist()
            out[i, j] = F.interpolate(x[i:i + 1, :, u:u + c, v:v + c], size=(s, s),
                                      mode="bilinear", align_corners=False)[0]
    return out


# ---------------------------------------------------------------------------------------------
# Fig. 5
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def crop_deviation(g: Generator, x_s: torch.Tensor, x_c: torch.Tensor, norm_s: torch.Tensor,
                   norm_c: torch.Tensor, n_crops: int = 10, seed: int = 0) -> np.ndarray:
    """Fig. 5's statistic, per style image: the codes of ``n_crops`` crops of x_s[i] (for the
    content x_c[i]) are divided by the mean code norm over the normaliser images
    (``norm_s`` with contents ``norm_c``; our reading of "normalized by the mean extracted from
    500 style images"), and the mean L2 deviation from the crops' mean code is returned: (B,)."""
    scale = g.style_code(norm_s, norm_c).norm(dim=1).mean().clamp_min(1e-12)
    crops = random_crops(x_s, n_crops, seed=seed)
    b = len(x_s)
    z = g.style_code(crops.flatten(0, 1), x_c.repeat_interleave(n_crops, 0)) / scale
    z = z.view(b, n_crops, -1)
    return (z - z.mean(1, keepdim=True)).norm(dim=2).mean(1).cpu().numpy()


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
def train(config: Config, data: dict, model: str, seed: int = 0, progress: bool = False,
          callback=None) -> tuple[Generator, pd.DataFrame]:
    """Eq. (4) on the seen classes: each step a content batch (any seen class) and a style batch
    x_k of seen classes k (one shot); D (projection, spectral norm) on (x_k, k) vs
    (G(x_c, x_k), k) with the hinge loss; G: -D(x_bar, k) + lambda_R L_R + lambda_F L_FM; Adam
    (0, 0.999); returns the EMA generator (weight 1 - ``ema_decay``) and the loss history."""
    dev = data["image"].device
    seed_everything(seed)
    g = Generator(model, config.width, config.style_dim, config.csb_dim).to(dev)
    d = ProjectionDiscriminator(3, config.n_classes, config.d_width, 3).to(dev)
    ema = generator_ema(g, config.ema_decay)
    opt_g = torch.optim.Adam(g.parameters(), lr=config.lr, betas=HPARAMS["adam_betas"])
    opt_d = torch.optim.Adam(d.parameters(), lr=config.lr, betas=HPARAMS["adam_betas"])
    seen = torch.isin(data["label"], data["seen"])
    idx = torch.nonzero(seen)[:, 0]
    content = minibatches(idx, batch_size=config.batch_size, seed=seed)
    style = minibatches(idx, batch_size=config.batch_size, seed=seed + 7919)

    def loss_fn(models, batch, step):
        ic, is_ = content(step)[0], style(step)[0]
        x_c, x_k, k = data["image"][ic], data["image"][is_], data["label"][is_]
        fake = g(x_c, x_k)
        h_real = projection_features(d, x_k)
        d_loss = hinge_d_loss(projection_logits(d, h_real, k),
                              projection_logits(d, projection_features(d, fake.detach()), k))
        backward_and_step(d_loss, opt_d)
        h_fake = projection_features(d, fake)
        adv = generator_loss("hinge", projection_logits(d, h_fake, k))
        rec = reconstruction_loss(g, x_c)
        fm = feature_matching_loss(h_fake, projection_features(d, x_k))
        backward_and_step(adv + HPARAMS["lambda_r"] * rec + HPARAMS["lambda_f"] * fm, opt_g)
        ema.update_parameters(g)
        if callback is not None:
            callback(step, ema.module)
        return {"D": d_loss.detach(), "G_adv": adv.detach(), "L_R": rec.detach(),
                "L_FM": fm.detach()}

    hist = fit({"G": g, "D": d}, {"G": opt_g, "D": opt_d}, lambda s: s, loss_fn,
               steps=config.steps, manual=True, progress=progress, desc=model)
    return ema.module.eval(), hist


def train_judges(config: Config, data: dict, progress: bool = False) -> dict:
    """The judges, trained on real images of all classes: a U-Net part segmenter (PAcc, mIoU of
    a translation against the content's true part map) and a class classifier whose features
    give the per-class Fréchet distance ("mFD", our stand-in for mFID)."""
    dev = data["image"].device
    seed_everything(config.seed)
    seg = UNet(3, N_PARTS, width=max(8, config.width // 2), depth=2).to(dev)
    opt = torch.optim.Adam(seg.parameters(), lr=3e-3)
    batches = minibatches(data["image"], data["parts"], batch_size=32, seed=config.seed)
    hist = fit(seg, opt, batches, lambda m, b, s: {"loss": F.cross_entropy(m["model"](b[0]),
                                                                             b[1])},
               steps=config.steps_judge, progress=progress, desc="part segmenter")
    fid = generative.FIDLite.train(data["image"], data["label"], steps=config.steps_judge,
                                   seed=config.seed, width=8, feat_dim=16, progress=progress,
                                   desc="class features")
    return {"segmenter": seg.eval().requires_grad_(False), "fid": fid, "history": hist}


@torch.no_grad()
def evaluate(g: Generator, data: dict, test: dict, judges: dict, seed: int = 0) -> dict:
    """One-shot translation to every unseen class: ``n_eval`` test contents per class, each with
    one style image of that class; PAcc and mIoU (part segmenter vs the content's true parts,
    background included) and mFD (per unseen class Fréchet distance between translations and
    real ``data`` images of the class, averaged)."""
    gen = torch.Generator().manual_seed(seed)
    preds, targets, fds = [], [], []
    n = len(test["content"])
    for k in data["unseen"].tolist():
        pool = torch.nonzero(test["label"] == k)[:, 0].cpu()
        pick = pool[torch.randint(len(pool), (n,), generator=gen)].to(test["image"].device)
        out = g(test["content"], test["image"][pick])
        preds.append(judges["segmenter"](out).argmax(1))
        targets.append(test["content_parts"])
        real = data["image"][data["label"] == k]
        fds.append(generative.frechet_distance(judges["fid"].features(out),
                                               judges["fid"].features(real)))
    conf = segmentation.confusion_matrix(torch.cat(preds), torch.cat(targets), N_PARTS)
    return {"mFD": float(np.mean(fds)), "PAcc": segmentation.pixel_accuracy(conf),
            "mIoU": segmentation.mean_iou(conf)}


def make_test(config: Config, data: dict) -> dict:
    """Fresh poses: ``content`` (n_eval seen-class images, other poses than training) with their
    ``content_parts``, and a fresh critter set (``image``, ``label``) whose unseen-class images
    are the one-shot style images."""
    fresh = make_data(config, seed=config.seed + 100)
    seen = torch.nonzero(torch.isin(fresh["label"], fresh["seen"]))[:, 0]
    g = torch.Generator().manual_seed(config.seed)
    pick = seen[torch.randperm(len(seen), generator=g)[: config.n_eval].to(seen.device)]
    return {"content": fresh["image"][pick], "content_parts": fresh["parts"][pick],
            "image": fresh["image"], "label": fresh["label"]}


def fig5_inputs(config: Config, test: dict) -> dict:
    """Style images (unseen classes) and contents for Fig. 5 and its normaliser."""
    un = torch.nonzero(torch.isin(test["label"], torch.as_tensor(
        cr.class_split(config.n_classes, config.n_unseen, config.seed)[1],
        device=test["label"].device)))[:, 0]
    g = torch.Generator().manual_seed(config.seed + 5)
    s = un[torch.randperm(len(un), generator=g).to(un.device)]
    m = config.n_fig5
    reps = -(-config.n_norm // len(test["content"]))
    cont = test["content"].repeat(reps, 1, 1, 1)
    norm_idx = s[torch.randint(len(s), (config.n_norm,), generator=g).to(s.device)]
    return {"x_s": test["image"][s[:m]], "x_c": cont[:len(s[:m])],
            "norm_s": test["image"][norm_idx], "norm_c": cont[:config.n_norm]}


@torch.no_grad()
def csb_sweep(g: Generator, x_c: torch.Tensor, x_s: torch.Tensor,
              scales: tuple[float, ...]) -> tuple[pd.DataFrame, torch.Tensor]:
    """Fig. 10: the CSB multiplied by lambda at test time; per lambda the mean |change| of the
    output against lambda = 1, and the outputs (len(scales), B, 3, S, S)."""
    if not isinstance(g.style, COCOStyleEncoder) or g.style.csb is None:
        raise ValueError("the CSB sweep needs a COCO generator with a CSB")
    outs = []
    try:
        for lam in scales:
            g.style.csb_scale = float(lam)
            outs.append(g(x_c, x_s))
    finally:
        g.style.csb_scale = 1.0
    ref = g(x_c, x_s)
    out = torch.stack(outs)
    change = [(o - ref).abs().mean().item() for o in out]
    return pd.DataFrame({"lambda": list(scales), "mean |change|": change}), out


@torch.no_grad()
def interpolate_styles(g: Generator, x_c: torch.Tensor, x_a: torch.Tensor, x_b: torch.Tensor,
                       alphas=(0.0, 0.25, 0.5, 0.75, 1.0)) -> torch.Tensor:
    """Fig. 11: G with z_s = (1 - a) z_s(x_a) + a z_s(x_b): (len(alphas), B, 3, S, S)."""
    za, zb = g.style_code(x_a, x_c), g.style_code(x_b, x_c)
    return torch.stack([g(x_c, x_a, (1 - a) * za + a * zb) for a in alphas])


def _mean_std(per_seed: pd.DataFrame, cols) -> pd.DataFrame:
    stats = per_seed.drop(columns="seed").groupby("model", sort=False).agg(["mean", "std"])
    table = pd.DataFrame({"model": list(stats.index)})
    for col in cols:
        table[col] = stats[(col, "mean")].to_numpy()
        table[f"{col} std"] = stats[(col, "std")].fillna(0.0).to_numpy()
    return table


def run(config: Config, progress: bool = False, samples: bool = False) -> dict:
    """Fig. 5 (crop deviation of the style codes, at init and after training), Tables 1-2 in
    miniature (mFD, PAcc, mIoU of one-shot translations to unseen classes), Fig. 10 (CSB
    scaling) and Fig. 11 (style interpolation), per seed and as mean +- std; ``findings``."""
    if not {"FUNIT", "COCO-FUNIT"} <= set(config.models) or not set(config.models) <= set(MODELS):
        raise ValueError(f"config.models must include FUNIT and COCO-FUNIT and lie in "
                         f"{tuple(MODELS)}, got {config.models}")
    data = make_data(config, config.seed)
    test = make_test(config, data)
    judges = train_judges(config, data, progress)
    f5 = fig5_inputs(config, test)
    rows, f5rows, hists, gens = [], [], [], {}
    for seed in config.seeds:
        for model in config.models:
            seed_everything(seed)
            g0 = Generator(model, config.width, config.style_dim, config.csb_dim).to(
                data["image"].device).eval()
            dev0 = crop_deviation(g0, f5["x_s"], f5["x_c"], f5["norm_s"], f5["norm_c"],
                                  config.n_crops, seed)
            g, hist = train(config, data, model, seed, progress)
            dev1 = crop_deviation(g, f5["x_s"], f5["x_c"], f5["norm_s"], f5["norm_c"],
                                  config.n_crops, seed)
            f5rows.append({"seed": seed, "model": model, "deviation (init)": float(dev0.mean()),
                           "deviation (trained)": float(dev1.mean())})
            rows.append({"seed": seed, "model": model, **evaluate(g, data, test, judges, seed)})
            hists.append(hist.assign(model=model, seed=seed))
            if seed == config.seeds[0]:
                gens[model] = g
    per_seed, f5_seed = pd.DataFrame(rows), pd.DataFrame(f5rows)
    table = _mean_std(per_seed, _T1)
    fig5 = _mean_std(f5_seed, ("deviation (init)", "deviation (trained)"))
    t, t5 = table.set_index("model"), fig5.set_index("model")
    piv = f5_seed.pivot(index="seed", columns="model", values="deviation (trained)")
    piv0 = f5_seed.pivot(index="seed", columns="model", values="deviation (init)")
    n = len(config.seeds)
    coco = gens["COCO-FUNIT"]
    m4 = min(4, len(f5["x_s"]))
    x_c, x_s = test["content"][:m4], f5["x_s"][:m4]
    sweep, sweep_out = csb_sweep(coco, x_c, x_s, config.csb_scales)
    ch = sweep.set_index("lambda")["mean |change|"]
    far = [lam for lam in config.csb_scales if abs(lam - 1) > 1.5]
    near = [lam for lam in config.csb_scales if 0 < abs(lam - 1) <= 0.5]
    interp = interpolate_styles(coco, x_c, x_s, f5["x_s"][4:8] if len(f5["x_s"]) >= 8 and m4 == 4
                                else x_s.flip(0))
    with torch.no_grad():
        end_err = float((interp[0] - coco(x_c, x_s)).abs().max())
    judge_real = evaluate_real(data, test, judges)
    pc = piv["COCO-FUNIT"] < piv["FUNIT"]
    claims = {
        "Fig. 5: after training, COCO's style code varies less across crops than FUNIT's "
        "(every seed)": ("paper claim", bool(pc.all()),
                         (f"{t5.loc['COCO-FUNIT', 'deviation (trained)']:.3f} vs "
                         f"{t5.loc['FUNIT', 'deviation (trained)']:.3f} over {n} seed(s)")),
        "Fig. 5 at initialisation: COCO's code already varies less (the untrained architecture: "
        "its constant style bias, drawn N(0, 1), dominates the style MLP's input; not a paper claim)":
            ("construction", bool((piv0["COCO-FUNIT"] < piv0["FUNIT"]).all()),
             (f"{t5.loc['COCO-FUNIT', 'deviation (init)']:.4f} vs "
             f"{t5.loc['FUNIT', 'deviation (init)']:.4f}")),
        "Table 1: COCO-FUNIT keeps the content better than FUNIT (PAcc)":
            ("paper claim", bool(t.loc["COCO-FUNIT", "PAcc"] > t.loc["FUNIT", "PAcc"]),
             f"{t.loc['COCO-FUNIT', 'PAcc']:.3f} vs {t.loc['FUNIT', 'PAcc']:.3f}"),
        "Table 1: COCO-FUNIT's mFD is below FUNIT's":
            ("paper claim", bool(t.loc["COCO-FUNIT", "mFD"] < t.loc["FUNIT", "mFD"]),
             f"{t.loc['COCO-FUNIT', 'mFD']:.3g} vs {t.loc['FUNIT', 'mFD']:.3g}"),
        "Fig. 10: a far CSB scale changes the output more than a near one":
            ("sanity check", bool(far and near and min(ch[far]) > max(ch[near])),
             ", ".join(f"λ={lam:g}: {ch[lam]:.3g}" for lam in config.csb_scales)),
        "Fig. 11: the interpolation's end point is the translation with the first style":
            ("construction", end_err < 1e-5, f"max |diff| {end_err:.1e}"),
        "the part segmenter reads real images (PAcc > 0.6)":
            ("sanity check", judge_real["PAcc"] > 0.6,
             f"PAcc {judge_real['PAcc']:.3f}, mIoU {judge_real['mIoU']:.3f}"),
    }
    ours = {"FUNIT": t.loc["FUNIT"], "COCO-FUNIT": t.loc["COCO-FUNIT"]}
    result = {"table1": table, "per_seed": per_seed, "fig5": fig5, "fig5_per_seed": f5_seed,
              "fig10": sweep, "history": pd.concat(hists, ignore_index=True),
              "judge_history": judges["history"], "judge_real": judge_real,
              "compare_table1_pacc": report.compare(
                  PAPER["table1_pacc"], {k: 100 * v["PAcc"] for k, v in ours.items()},
                  ["COCO-FUNIT > FUNIT"]),
              "compare_table1_miou": report.compare(
                  PAPER["table1_miou"], {k: 100 * v["mIoU"] for k, v in ours.items()},
                  ["COCO-FUNIT > FUNIT"]),
              "compare_table1_mfid": report.compare(
                  PAPER["table1_mfid"], {k: v["mFD"] for k, v in ours.items()},
                  ["COCO-FUNIT < FUNIT"])}
    abl = [m for m in ("w/o COCO", "w/o CSB", "w/o CC") if m in config.models]
    if abl:
        o2 = {m: t.loc[m] for m in (*abl, "COCO-FUNIT")}
        result["compare_table2_pacc"] = report.compare(
            PAPER["table2_pacc"], {k: 100 * v["PAcc"] for k, v in o2.items()},
            ["COCO-FUNIT > w/o COCO", "COCO-FUNIT > w/o CSB"])
        result["compare_table2_mfid"] = report.compare(
            PAPER["table2_mfid"], {k: v["mFD"] for k, v in o2.items()}, ["w/o COCO < COCO-FUNIT"])
        if "w/o COCO" in abl:
            claims["Table 2: COCO keeps content better than w/o COCO (PAcc)"] = (
                "paper claim", bool(t.loc["COCO-FUNIT", "PAcc"] > t.loc["w/o COCO", "PAcc"]),
                f"{t.loc['COCO-FUNIT', 'PAcc']:.3f} vs {t.loc['w/o COCO', 'PAcc']:.3f}")
        if "w/o CSB" in abl:
            claims["Table 2: the CSB improves content preservation (PAcc)"] = (
                "paper claim", bool(t.loc["COCO-FUNIT", "PAcc"] > t.loc["w/o CSB", "PAcc"]),
                f"{t.loc['COCO-FUNIT', 'PAcc']:.3f} vs {t.loc['w/o CSB', 'PAcc']:.3f}")
    result["findings"] = report.claims_table(claims)
    if samples:
        result["samples"] = {m: gens[m](x_c, x_s).cpu() for m in gens}
        result["inputs"] = {"x_c": x_c.cpu(), "x_s": x_s.cpu()}
        result["fig10_samples"], result["fig11_samples"] = sweep_out.cpu(), interp.cpu()
    return result


@torch.no_grad()
def evaluate_real(data: dict, test: dict, judges: dict) -> dict:
    """The part segmenter on the real test contents (its ceiling)."""
    pred = judges["segmenter"](test["content"]).argmax(1)
    conf = segmentation.confusion_matrix(pred, test["content_parts"], N_PARTS)
    return {"PAcc": segmentation.pixel_accuracy(conf), "mIoU": segmentation.mean_iou(conf)}
