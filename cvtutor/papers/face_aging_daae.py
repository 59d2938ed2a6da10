"""Hierarchical face aging through disentangled latent characteristics (DAAE).

Li, Huang, Yu, Liu, Wu, Kang, Sun, He. *Hierarchical Face Aging through Disentangled Latent
Characteristics*. ECCV 2020.

A VAE whose code splits into age z_A (prior N(y 1, I): the age is the prior's mean), identity z_I
(distilled from a face-recognition teacher) and extraneous z_E (prior N(0, I)). A hierarchical
generator feeds [z_I, z_E part] to its early blocks and [z_A, z_E part] to its late ones through
conditional BatchNorm; an IntroVAE-style game uses the KL of z_E as the real/fake score.

Equations
---------
(3)   L_kl^(age) = 1/2 sum_i ((mu_A^i - y)^2 + (sigma_A^i)^2 - log (sigma_A^i)^2 - 1)
(4)   L_kd^(id)  = sum_i |z_I^i - F(x)^i|                 (the paper drops the index i)
(5)   L_kl^(ext) = 1/2 sum_i ((mu_E^i)^2 + (sigma_E^i)^2 - log (sigma_E^i)^2 - 1)
(6)   L_rec = 1/2 ||x - x_r||_F^2
(8)   L_reg^(age) = 1/C_A (||z'_A - z_A||_1 + ||z''_A - z^_A||_1)
(9)   L_reg^(id)  = 1/C_I (||z'_I - z_I||_1 + ||z''_I - z^_I||_1)
(10)  L_E^(adv) = L_kl^(ext)(x) + alpha ([m - L_kl^(ext)(x_r)]^+ + [m - L_kl^(ext)(x_s)]^+)
(11)  L_G^(adv) = L_kl^(ext)(x_r) + L_kl^(ext)(x_s)    (printed "L_C^(adv)")
(12)  L_E = L_rec + l1 L_kl^(age) + l2 L_kd^(id) + l3 L_E^(adv)
(13)  L_G = L_rec + l4 L_reg^(age) + l5 L_reg^(id) + l6 L_G^(adv)
(14)  aging: G(z^_A, z_I, z_E), z^_A ~ N(y_target 1, I);  (15) exemplar: z_A of another face
(16)  age estimate y^ = 1/C_A sum_i mu_A^i

The world: :class:`cvtutor.data.domains.Faces` (identity x continuous long-tailed age x
extraneous factors). The teacher F, the age oracle (stand-in for Face++) and the identity
embedder (stand-in for Light-CNN) are small CNNs trained here on real images only.
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
from cvtutor.metrics import generative
from cvtutor.nn.vae import kl_gaussians, kl_to_prior, reparameterize
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import backward_and_step, fit, minibatches

PAPER = {
    "table1_morph": report.PaperTable(
        "Table 1 (Morph)", "mean estimated age of the synthesised group",
        {"AG1": 37.46, "AG2": 49.40, "AG3": 59.67}, note="Face++ estimates; input AG0 <= 30"),
    "table1_real": report.PaperTable(
        "Table 1 (Morph, real data)", "mean estimated age of real faces",
        {"AG1": 38.89, "AG2": 48.10, "AG3": 58.22}),
    "table2_morph": report.PaperTable(
        "Table 2 (Morph)", "verification rate (%)", {"AG1": 99.48, "AG2": 99.36, "AG3": 99.36},
        better="higher", note="Light-CNN, threshold 76.5, FAR 1e-5"),
    "table4": report.PaperTable(
        "Table 4 (Morph)", "age MAE (years)", {"OR-CNN": 3.34, "DEX": 2.68, "SSR-Net": 2.52,
                                               "ThinAgeNet": 2.35, "DAAE": 2.23},
        better="lower"),
    "table5": report.PaperTable(
        "Table 5 (Morph, AG3)", "verification rate (%)",
        {"w/o L_adv": 95.60, "w/o L_reg(age)": 97.89, "w/o L_reg(id)": 93.09,
         "Setting I": 87.35, "Setting II": 72.15, "DAAE": 99.36}, better="higher"),
}
HPARAMS = {"lambdas": (1.0, 100.0, 1.0, 100.0, 100.0, 1.0), "alpha": 0.5, "m": 200.0,
           "lr": 2e-4, "adam_betas": (0.9, 0.99), "batch_size": 16}   # Sect. 4.1
AGE_GROUP_TARGETS = {"AG1": 35.0, "AG2": 45.0, "AG3": 60.0}          # AG1 31-40, AG2 41-50, AG3 51+
VARIANTS = ("DAAE", "w/o L_adv", "w/o L_reg(age)", "w/o L_reg(id)", "Setting I", "Setting II")


# ---------------------------------------------------------------------------------------------
# losses (Eqs. 3-13, 16)
# ---------------------------------------------------------------------------------------------
def age_kl(mu_a: torch.Tensor, logvar_a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. (3): KL(N(mu_A, sigma_A^2) || N(y 1, I)) per sample, ``(B, C_A), (B,) -> (B,)``.
    Its ``(mu_A - y)^2`` term is an L2 age regression."""
    if y.shape != mu_a.shape[:1]:
        raise ValueError(f"y must be (batch,) = {tuple(mu_a.shape[:1])}, got {tuple(y.shape)}")
    mu_p = y[:, None].expand_as(mu_a)
    return kl_gaussians(mu_a, logvar_a, mu_p, torch.zeros_like(mu_a))


def identity_distillation(z_i: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Eq. (4): ``sum_i |z_I^i - F(x)^i|`` per sample (the paper omits the index on F(x) and
    writes p_A for p_I)."""
    if z_i.shape != teacher_feat.shape:
        raise ValueError(f"z_I and F(x) must have one shape (batch, C_I); got {tuple(z_i.shape)}"
                         f" and {tuple(teacher_feat.shape)}")
    return (z_i - teacher_feat).abs().sum(-1)


def extraneous_kl(mu_e: torch.Tensor, logvar_e: torch.Tensor) -> torch.Tensor:
    """Eq. (5): KL(N(mu_E, sigma_E^2) || N(0, I)) per sample."""
    return kl_to_prior(mu_e, logvar_e)


def reconstruction_loss(x: torch.Tensor, x_r: torch.Tensor) -> torch.Tensor:
    """Eq. (6): ``1/2 ||x - x_r||_F^2`` per sample."""
    if x.shape != x_r.shape:
        raise ValueError(f"x and x_r must have one shape; got {tuple(x.shape)}, {tuple(x_r.shape)}")
    return 0.5 * (x - x_r).pow(2).flatten(1).sum(-1)


def code_regulariser(z_rec: torch.Tensor, z: torch.Tensor, z_smp: torch.Tensor,
                     z_hat: torch.Tensor) -> torch.Tensor:
    """Eqs. (8)-(9): ``1/C (||z' - z||_1 + ||z'' - z^||_1)`` per sample, the codes re-inferred
    from x_r and x_s against those that generated them (the paper's indices are garbled)."""
    c = z.shape[-1]
    return ((z_rec - z).abs().sum(-1) + (z_smp - z_hat).abs().sum(-1)) / c


def hinge(m: float, kl: torch.Tensor) -> torch.Tensor:
    """``[m - KL]^+``: zero, with zero gradient, once KL >= m."""
    return F.relu(m - kl)


def encoder_adversarial(kl_real: torch.Tensor, kl_rec: torch.Tensor, kl_smp: torch.Tensor,
                        m: float, alpha: float) -> torch.Tensor:
    """Eq. (10) (unlabelled in the paper): the encoder pushes the KL of generated images above m."""
    return kl_real + alpha * (hinge(m, kl_rec) + hinge(m, kl_smp))


def generator_adversarial(kl_rec: torch.Tensor, kl_smp: torch.Tensor) -> torch.Tensor:
    """Eq. (11) (printed L_C^(adv), used as L_G^(adv) in Eq. 13): the generator pulls them down."""
    return kl_rec + kl_smp


def estimate_age(mu_a: torch.Tensor) -> torch.Tensor:
    """Eq. (16): ``y^ = 1/C_A sum_i mu_A^i``."""
    return mu_a.mean(-1)


def tar_at_far(genuine, impostor, far: float) -> float:
    """Verification rate: the largest share of genuine scores >= t over thresholds t whose share of
    impostor scores >= t is at most ``far`` (the ROC point set of sklearn's ``roc_curve``)."""
    g, i = np.asarray(genuine, float).ravel(), np.asarray(impostor, float).ravel()
    if not (0 <= far <= 1) or len(g) == 0 or len(i) == 0:
        raise ValueError(f"need non-empty genuine and impostor scores and far in [0, 1]; got "
                         f"{len(g)}, {len(i)}, far={far}")
    t = np.unique(np.concatenate([g, i]))
    fa = (len(i) - np.searchsorted(np.sort(i), t, side="left")) / len(i)   # share of i >= t
    ta = (len(g) - np.searchsorted(np.sort(g), t, side="left")) / len(g)
    ok = fa <= far
    return float(ta[ok].max()) if ok.any() else 0.0


# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------
class Encoder(nn.Module):
    """E: three stride-2 convs, then the heads mu_A / log sigma_A^2 (C_A), z_I (C_I,
    deterministic) and mu_E / log sigma_E^2 (C_E)."""

    def __init__(self, size: int, c_a: int, c_i: int, c_e: int, width: int = 16) -> None:
        super().__init__()
        layers, c = [], 3
        for k in range(3):
            layers += [nn.Conv2d(c, width * 2 ** k, 4, 2, 1), nn.BatchNorm2d(width * 2 ** k),
                       nn.LeakyReLU(0.2)]
            c = width * 2 ** k
        self.body = nn.Sequential(*layers, nn.Flatten())
        feat = c * (size // 8) ** 2
        self.dims = (c_a, c_a, c_i, c_e, c_e)
        self.head = nn.Linear(feat, sum(self.dims))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu_a, lv_a, z_i, mu_e, lv_e = self.head(self.body(x * 2 - 1)).split(self.dims, -1)
        return {"mu_A": mu_a, "logvar_A": lv_a.clamp(-8, 8), "z_I": z_i, "mu_E": mu_e,
                "logvar_E": lv_e.clamp(-8, 8)}


class CBN(nn.Module):
    """Conditional BatchNorm: ``gamma(c) (h - mu_B) / sigma_B + beta(c)``, gamma and beta linear
    in the condition vector c (initialised to gamma = 1, beta = 0)."""

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gamma, self.beta = nn.Linear(cond_dim, channels), nn.Linear(cond_dim, channels)
        for lin, b in ((self.gamma, 1.0), (self.beta, 0.0)):
            nn.init.zeros_(lin.weight)
            nn.init.constant_(lin.bias, b)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.gamma(c)[:, :, None, None] * self.bn(h) + self.beta(c)[:, :, None, None]


class UpBlock(nn.Module):
    """A residual up-block (x2 nearest) with CBN before each conv."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int) -> None:
        super().__init__()
        self.n1, self.n2 = CBN(c_in, cond_dim), CBN(c_out, cond_dim)
        self.c1, self.c2 = nn.Conv2d(c_in, c_out, 3, padding=1), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        u = F.interpolate(F.relu(self.n1(h, c)), scale_factor=2)
        return self.c2(F.relu(self.n2(self.c1(u), c))) + self.skip(F.interpolate(h, scale_factor=2))


class HierarchicalGenerator(nn.Module):
    """G (Sect. 3.2): z_E splits into (input, early, late) parts; the input part -> FC -> 4x4 map;
    ``n_blocks`` up-blocks, the first ``n_early`` conditioned on [z_I, z_E early], the rest on
    [z_A, z_E late]. ``setting="I"`` swaps the conditions (Table 5), ``setting="II"`` feeds every
    code at the input and conditions no block (a zero condition)."""

    def __init__(self, size: int, c_a: int, c_i: int, c_e: int, width: int = 16,
                 setting: str = "hierarchical") -> None:
        super().__init__()
        if setting not in ("hierarchical", "I", "II"):
            raise ValueError(f"setting must be 'hierarchical', 'I' or 'II', got {setting!r}")
        n_blocks = int(np.log2(size // 4))
        self.setting, self.size = setting, size
        self.e_split = (c_e - 2 * (c_e // 4), c_e // 4, c_e // 4)
        self.n_early = max(1, n_blocks - 1)
        d_in = self.e_split[0] + (c_a + c_i + 2 * self.e_split[1] if setting == "II" else 0)
        ch = [width * 2 ** (n_blocks - k) for k in range(n_blocks + 1)]
        self.fc = nn.Linear(d_in, ch[0] * 16)
        dims = {"early": c_i + self.e_split[1], "late": c_a + self.e_split[2]}
        if setting == "I":
            dims = {"early": dims["late"], "late": dims["early"]}
        self.blocks = nn.ModuleList(
            UpBlock(ch[k], ch[k + 1], dims["early" if k < self.n_early else "late"])
            for k in range(n_blocks))
        self.out = nn.Sequential(nn.BatchNorm2d(ch[-1]), nn.ReLU(), nn.Conv2d(ch[-1], 3, 3, padding=1))
        self.ch0 = ch[0]

    def conditions(self, z_a, z_i, z_e) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(generator input, early condition, late condition)."""
        e0, e1, e2 = z_e.split(self.e_split, -1)
        early, late = torch.cat([z_i, e1], -1), torch.cat([z_a, e2], -1)
        if self.setting == "I":
            early, late = late, early
        if self.setting == "II":
            return (torch.cat([e0, z_a, z_i, e1, e2], -1), torch.zeros_like(early),
                    torch.zeros_like(late))
        return e0, early, late

    def forward(self, z_a: torch.Tensor, z_i: torch.Tensor, z_e: torch.Tensor,
                return_blocks: bool = False):
        inp, early, late = self.conditions(z_a, z_i, z_e)
        h = self.fc(inp).view(-1, self.ch0, 4, 4)
        feats = []
        for k, blk in enumerate(self.blocks):
            h = blk(h, early if k < self.n_early else late)
            feats.append(h)
        x = torch.sigmoid(self.out(h))
        return (x, feats) if return_blocks else x


def shuffle_codes(codes: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """x_s's codes (Sect. 3.3, our reading of the "marginal product" recipe): z^_A, z^_I, z^_E
    each taken from another sample of the batch, with independent permutations."""
    b = codes["z_A"].shape[0]
    dev = codes["z_A"].device
    return {k: codes[k][torch.randperm(b, generator=generator, device="cpu").to(dev)]
            for k in ("z_A", "z_I", "z_E")}


# ---------------------------------------------------------------------------------------------
# configuration and data
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config(ProfileConfig):
    size: int = 32
    n_identities: int = 60
    ages_per_identity: int = 10
    c_a: int = 8
    c_i: int = 16
    c_e: int = 16
    width: int = 16
    batch_size: int = 32
    steps: int = 250             # DAAE G/E steps per variant
    steps_nets: int = 150        # teacher and identity embedder
    steps_oracle: int = 500      # the age oracle (150 steps left it at the mean predictor)
    age_scale: float = 10.0      # y = age / age_scale (years would dwarf the prior's unit variance)
    margin: float = 40.0         # m, re-tuned: the paper's 200 is tied to its C_E
    far: float = 0.01            # our FAR (the paper's 1e-5 needs ~1e6 impostor pairs)
    variants: tuple[str, ...] = ("DAAE",)
    heldout: tuple[float, float] | None = None   # age range removed from training (full)
    seeds: tuple[int, ...] = (0,)
    seed: int = 0
    device: str | None = None

    @classmethod
    def fast(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        return cls(size=64, n_identities=200, ages_per_identity=10, c_a=16, c_i=32, c_e=32,
                   width=32, steps=2000, steps_nets=1000, steps_oracle=1000, variants=VARIANTS,
                   heldout=(55.0, 70.0), seeds=(0, 1, 2))

    @classmethod
    def smoke(cls) -> Config:
        """``full``'s code paths and resolution at toy sizes and training lengths."""
        return cls.full().replace(n_identities=6, ages_per_identity=4, width=8, batch_size=8,
                                  steps=2, steps_nets=2, steps_oracle=2, seeds=(0, 1))


def make_faces(config: Config, seed: int, factors: torch.Tensor | None = None,
               age: float | torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """``n_identities x ages_per_identity`` faces: ``image`` (N, 3, S, S), ``age`` (N,) years,
    ``identity`` (N,). ``factors`` keeps the identities of another draw (new ages, hair, pose,
    light); ``age`` re-renders every face at that age."""
    w = D.Faces(config.size, get_device(config.device), config.ages_per_identity)
    sc = w.scenes(config.n_identities * config.ages_per_identity, seed)
    if factors is not None:
        sc["factors"] = factors
    if age is not None:
        sc["age"] = torch.as_tensor(age, dtype=sc["age"].dtype, device=sc["age"].device
                                    ).expand_as(sc["age"]).clone()
    out = w.render(sc, "sampled")
    return {"image": out["image"], "age": out["age"], "identity": out["identity"],
            "factors": sc["factors"], "scenes": sc}


def _train_net(net: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, seed: int,
               kind: str, desc: str, progress: bool) -> pd.DataFrame:
    seed_everything(seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    batches = minibatches(x, y, batch_size=min(32, len(x)), seed=seed)

    def loss_fn(models, batch, step):
        xb, yb = batch
        out = models["model"](xb * 2 - 1).float()
        loss = F.cross_entropy(out, yb) if kind == "class" else F.mse_loss(out[:, 0], yb)
        return {"loss": loss}

    hist = fit(net, opt, batches, loss_fn, steps=steps, progress=progress, desc=desc)
    net.eval().requires_grad_(False)
    return hist.assign(net=desc)


class AgeOracle(nn.Module):
    """The age judge (stand-in for Face++): conv-pool x3 -> MLP -> age / age_scale. Also the plain
    CNN regressor of Table 4."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
            nn.Flatten(), nn.Linear(8 * width, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train_judges(config: Config, factors: torch.Tensor, progress: bool = False) -> dict:
    """The teacher F (identity classifier on the training draw; its C_I-d penultimate features),
    and the independent judges trained on *other* draws of the same people: the age oracle and
    the identity embedder (a wider FeatureNet; cosine of its features)."""
    train = make_faces(config, config.seed, factors)
    other = make_faces(config, config.seed + 7, factors)
    dev = train["image"].device
    n = config.n_identities
    seed_everything(config.seed)
    teacher = generative.FeatureNet(3, n, width=16, feat_dim=config.c_i).to(dev)
    h1 = _train_net(teacher, train["image"], train["identity"], config.steps_nets, config.seed,
                    "class", "teacher F", progress)
    embed = generative.FeatureNet(3, n, width=24, feat_dim=48).to(dev)
    h2 = _train_net(embed, other["image"], other["identity"], config.steps_nets, config.seed + 1,
                    "class", "identity embedder", progress)
    oracle = AgeOracle().to(dev)
    h3 = _train_net(oracle, other["image"], other["age"] / config.age_scale, config.steps_oracle,
                    config.seed + 2, "regress", "age oracle", progress)
    return {"teacher": teacher, "embedder": embed, "oracle": oracle,
            "history": pd.concat([h1, h2, h3], ignore_index=True)}


def _variant(variant: str) -> dict:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return {"setting": {"Setting I": "I", "Setting II": "II"}.get(variant, "hierarchical"),
            "adv": variant != "w/o L_adv", "reg_age": variant != "w/o L_reg(age)",
            "reg_id": variant != "w/o L_reg(id)"}


def encode(enc: Encoder, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
    """Posterior codes plus the reparameterised samples z_A, z_E (z_I is deterministic)."""
    q = enc(x)
    q["z_A"] = reparameterize(q["mu_A"], q["logvar_A"], generator)
    q["z_E"] = reparameterize(q["mu_E"], q["logvar_E"], generator)
    return q


def train_daae(config: Config, data: dict, teacher: nn.Module, variant: str = "DAAE",
               seed: int = 0, progress: bool = False) -> tuple[Encoder, HierarchicalGenerator, pd.DataFrame]:
    """E and G with Eqs. (12)-(13) through ``fit(..., manual=True)``: per step one E update
    (L_rec, age KL, identity distillation, Eq. 10 on detached x_r and x_s) and one G update
    (L_rec, Eqs. 8-9, Eq. 11); Adam(2e-4, (0.9, 0.99)) as in Sect. 4.1."""
    v = _variant(variant)
    dev = data["image"].device
    seed_everything(seed)
    enc = Encoder(config.size, config.c_a, config.c_i, config.c_e, config.width).to(dev)
    gen = HierarchicalGenerator(config.size, config.c_a, config.c_i, config.c_e, config.width,
                                v["setting"]).to(dev)
    opt_e = torch.optim.Adam(enc.parameters(), lr=HPARAMS["lr"], betas=HPARAMS["adam_betas"])
    opt_g = torch.optim.Adam(gen.parameters(), lr=HPARAMS["lr"], betas=HPARAMS["adam_betas"])
    batches = minibatches(data["image"], data["age"] / config.age_scale,
                          batch_size=config.batch_size, seed=seed)
    l1, l2, l3, l4, l5, l6 = HPARAMS["lambdas"]
    m, alpha = config.margin, HPARAMS["alpha"]
    rng = torch.Generator().manual_seed(seed)

    def loss_fn(models, batch, step):
        e, g = models["E"], models["G"]
        x, y = batch
        q = encode(e, x)
        with torch.no_grad():
            feat = teacher.features(x * 2 - 1)
        z = {"z_A": q["z_A"], "z_I": q["z_I"], "z_E": q["z_E"]}
        zs = shuffle_codes({k: t.detach() for k, t in z.items()}, rng)
        x_r = g(z["z_A"], z["z_I"], z["z_E"])
        x_s = g(zs["z_A"], zs["z_I"], zs["z_E"])
        rec = reconstruction_loss(x, x_r).mean()
        kl_a = age_kl(q["mu_A"], q["logvar_A"], y).mean()
        kd = identity_distillation(q["z_I"], feat).mean()
        kl_e = extraneous_kl(q["mu_E"], q["logvar_E"])
        if v["adv"]:
            qr, qs = e(x_r.detach()), e(x_s.detach())
            adv_e = encoder_adversarial(kl_e, extraneous_kl(qr["mu_E"], qr["logvar_E"]),
                                        extraneous_kl(qs["mu_E"], qs["logvar_E"]), m, alpha).mean()
        else:
            adv_e = kl_e.mean()            # the plain Eq. (5) prior term
        backward_and_step(rec + l1 * kl_a + l2 * kd + l3 * adv_e, opt_e)
        # G step: fresh forward with the codes fixed
        zd = {k: t.detach() for k, t in z.items()}
        x_r = g(zd["z_A"], zd["z_I"], zd["z_E"])
        x_s = g(zs["z_A"], zs["z_I"], zs["z_E"])
        qr, qs = e(x_r), e(x_s)
        loss_g = reconstruction_loss(x, x_r).mean()
        reg_a = code_regulariser(qr["mu_A"], zd["z_A"], qs["mu_A"], zs["z_A"]).mean()
        reg_i = code_regulariser(qr["z_I"], zd["z_I"], qs["z_I"], zs["z_I"]).mean()
        kl_r = extraneous_kl(qr["mu_E"], qr["logvar_E"])
        kl_s = extraneous_kl(qs["mu_E"], qs["logvar_E"])
        adv_g = generator_adversarial(kl_r, kl_s).mean()
        if v["reg_age"]:
            loss_g = loss_g + l4 * reg_a
        if v["reg_id"]:
            loss_g = loss_g + l5 * reg_i
        if v["adv"]:
            loss_g = loss_g + l6 * adv_g
        backward_and_step(loss_g, opt_g)
        return {"L_rec": rec.detach(), "L_kl(age)": kl_a.detach(), "L_kd(id)": kd.detach(),
                "KL_E real": kl_e.mean().detach(), "KL_E rec": kl_r.mean().detach(),
                "KL_E smp": kl_s.mean().detach(), "L_reg(age)": reg_a.detach(),
                "L_reg(id)": reg_i.detach()}

    hist = fit({"E": enc, "G": gen}, {"E": opt_e, "G": opt_g}, batches, loss_fn,
               steps=config.steps, manual=True, progress=progress, desc=variant)
    return enc.eval(), gen.eval(), hist


# ---------------------------------------------------------------------------------------------
# inference and evaluation
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def age_faces(enc: Encoder, gen: HierarchicalGenerator, x: torch.Tensor, target_age: float,
              config: Config, seed: int = 1234) -> torch.Tensor:
    """Eq. (14): ``G(z^_A, z_I, z_E)`` with ``z^_A ~ N(y_target 1, I)`` and the input's z_I, mu_E."""
    q = enc(x)
    g = torch.Generator(device="cpu").manual_seed(seed)
    z_a = target_age / config.age_scale + torch.randn(q["mu_A"].shape, generator=g).to(x.device)
    return gen(z_a, q["z_I"], q["mu_E"])


@torch.no_grad()
def exemplar_aging(enc: Encoder, gen: HierarchicalGenerator, x: torch.Tensor,
                   x_e: torch.Tensor) -> torch.Tensor:
    """Eq. (15): every input at each exemplar's age code: (len(x_e), len(x), 3, S, S)."""
    q, qe = enc(x), enc(x_e)
    return torch.stack([gen(qe["mu_A"][k].expand_as(q["mu_A"]), q["z_I"], q["mu_E"])
                        for k in range(len(x_e))])


@torch.no_grad()
def _oracle_age(judges: dict, x: torch.Tensor, config: Config) -> torch.Tensor:
    return judges["oracle"](x * 2 - 1)[:, 0] * config.age_scale


@torch.no_grad()
def _embed(judges: dict, x: torch.Tensor) -> torch.Tensor:
    return F.normalize(judges["embedder"].features(x * 2 - 1), dim=-1)


def impostor_scores(judges: dict, test: dict) -> np.ndarray:
    """Cosine scores of real test faces of different people (the FAR side)."""
    f = _embed(judges, test["image"])
    s = f @ f.T
    diff = test["identity"][:, None] != test["identity"][None, :]
    return s[torch.triu(diff, 1)].cpu().numpy()


@torch.no_grad()
def evaluate(enc, gen, test: dict, judges: dict, config: Config, impostor: np.ndarray) -> dict:
    """Table 4 (MAE of Eq. 16), Table 1 (oracle age of aged AG0 inputs per target group) and
    Table 2 (TAR@FAR of input vs aged output, identity embedder)."""
    mae = float((estimate_age(enc(test["image"])["mu_A"]) * config.age_scale
                 - test["age"]).abs().mean())
    ag0 = test["age"] <= 30
    x0 = test["image"][ag0]
    f0 = _embed(judges, x0)
    aged, tar = {}, {}
    for grp, y in AGE_GROUP_TARGETS.items():
        out = age_faces(enc, gen, x0, y, config)
        aged[grp] = float(_oracle_age(judges, out, config).mean())
        gen_scores = (f0 * _embed(judges, out)).sum(-1).cpu().numpy()
        tar[grp] = 100 * tar_at_far(gen_scores, impostor, config.far)
    return {"MAE": mae, **{f"age {k}": v for k, v in aged.items()},
            **{f"TAR {k}": v for k, v in tar.items()}}


def real_references(config: Config, test: dict, judges: dict, impostor: np.ndarray) -> dict:
    """What a perfect aging would score: the AG0 test faces re-rendered at each group's target age
    (same person, pose, light), judged like the synthesised ones; plus the oracle's MAE and the
    mean predictor's."""
    ag0 = test["age"] <= 30
    f0 = _embed(judges, test["image"][ag0])
    out = {}
    for grp, y in AGE_GROUP_TARGETS.items():
        re = make_faces(config, config.seed + 1000, test["factors"], y)
        re = {"image": re["image"][ag0]}
        out[f"age {grp}"] = float(_oracle_age(judges, re["image"], config).mean())
        out[f"TAR {grp}"] = 100 * tar_at_far((f0 * _embed(judges, re["image"])).sum(-1).cpu().numpy(),
                                             impostor, config.far)
    out["oracle MAE"] = float((_oracle_age(judges, test["image"], config) - test["age"]).abs().mean())
    return out


def _mean_std(per_seed: pd.DataFrame, cols) -> pd.DataFrame:
    g = per_seed.groupby("method", sort=False)[list(cols)]
    mean, std = g.mean(), g.std().fillna(0.0)
    return mean.join(std.add_suffix(" std")).reset_index()


def run(config: Config, progress: bool = False, samples: bool = False) -> dict:
    """Tables 1, 2, 4 and (with the ablation variants) 5 in miniature, per seed and mean +- std;
    with ``config.heldout`` one more DAAE trained without that age range and asked for its
    middle. Returns DataFrames and ``findings``."""
    if "DAAE" not in config.variants:
        raise ValueError(f"config.variants must include 'DAAE', got {config.variants}")
    ident = make_faces(config, config.seed)["factors"]          # the people, fixed
    judges = train_judges(config, ident, progress)
    test = make_faces(config, config.seed + 1000, ident)
    impostor = impostor_scores(judges, test)
    ref = real_references(config, test, judges, impostor)
    train_mean = float(make_faces(config, config.seed, ident)["age"].mean())
    mean_mae = float((test["age"] - train_mean).abs().mean())
    rows, hists, samp = [], [], {}
    for seed in config.seeds:
        data = make_faces(config, config.seed + seed, ident) if seed else make_faces(
            config, config.seed, ident)
        for variant in config.variants:
            enc, gen, hist = train_daae(config, data, judges["teacher"], variant, seed, progress)
            rows.append({"seed": seed, "method": variant,
                         **evaluate(enc, gen, test, judges, config, impostor)})
            hists.append(hist.assign(method=variant, seed=seed))
            if seed == config.seeds[0] and variant == "DAAE" and samples:
                x = test["image"][test["age"] <= 30][:6]
                samp = {"input": x.cpu(),
                        "aged": torch.stack([age_faces(enc, gen, x, a, config)
                                             for a in (5, 15, 25, 35, 45, 60, 75)]).cpu(),
                        "exemplars": test["image"][:4].cpu(),
                        "exemplar_aged": exemplar_aging(enc, gen, x, test["image"][:4]).cpu(),
                        "mu_age": (estimate_age(enc(test["image"])["mu_A"]) * config.age_scale).cpu(),
                        "true_age": test["age"].cpu()}
    per_seed = pd.DataFrame(rows)
    cols = ["MAE", *[f"age {g}" for g in AGE_GROUP_TARGETS], *[f"TAR {g}" for g in AGE_GROUP_TARGETS]]
    table = _mean_std(per_seed, cols).set_index("method")
    d = table.loc["DAAE"]
    n_seeds = len(config.seeds)
    ps = per_seed[per_seed.method == "DAAE"]
    mono = bool(((ps["age AG1"] < ps["age AG2"]) & (ps["age AG2"] < ps["age AG3"])).all())
    hist = pd.concat(hists, ignore_index=True)
    last = hist[(hist.method == "DAAE")].groupby("seed").tail(20)
    claims = {
        "Table 4: DAAE's age estimate (Eq. 16) beats the mean predictor and is within 1.5x of a "
        "plain CNN regressor":
            ("paper claim", bool(d["MAE"] < mean_mae and d["MAE"] <= 1.5 * ref["oracle MAE"]),
             f"MAE {d['MAE']:.1f} vs CNN {ref['oracle MAE']:.1f} vs mean {mean_mae:.1f} years"),
        "Table 1: the oracle's age of the aged faces rises with the target group (every seed)":
            ("paper claim", mono, (f"{d['age AG1']:.1f} / {d['age AG2']:.1f} / {d['age AG3']:.1f}"
                                  f" years over {n_seeds} seed(s)")),
        "Table 2: aged faces keep the identity (TAR@FAR >= 50 % in every group)":
            ("paper claim", bool(min(d[f"TAR {g}"] for g in AGE_GROUP_TARGETS) >= 50),
             " / ".join(f"{d[f'TAR {g}']:.0f}" for g in AGE_GROUP_TARGETS) + f" % at FAR {config.far}"),
        "the judges read real faces: oracle MAE < 8 years, real re-aged faces verify >= 90 %":
            ("sanity check", bool(ref["oracle MAE"] < 8 and min(ref[f"TAR {g}"] for g in
                                                                AGE_GROUP_TARGETS) >= 90),
             f"MAE {ref['oracle MAE']:.1f}; TAR " + " / ".join(
                 f"{ref[f'TAR {g}']:.0f}" for g in AGE_GROUP_TARGETS)),
        "the margin m lies above the real faces' KL_E (as IntroVAE needs)":
            ("sanity check", bool(last["KL_E real"].mean() < config.margin),
             f"KL_E real {last['KL_E real'].mean():.1f}, m = {config.margin:g}"),
    }
    result = {"table": table.reset_index(), "per_seed": per_seed, "history": hist,
              "judge_history": judges["history"], "reference": ref, "mean_predictor_mae": mean_mae,
              "compare_table4": report.compare(
                  {"DAAE": PAPER["table4"].values["DAAE"], "CNN": PAPER["table4"].values["DEX"]},
                  {"DAAE": d["MAE"], "CNN": ref["oracle MAE"]}, []),
              "compare_table1": report.compare(
                  PAPER["table1_morph"], {g: d[f"age {g}"] for g in AGE_GROUP_TARGETS},
                  ["AG1 < AG2", "AG2 < AG3"]),
              "compare_table2": report.compare(
                  PAPER["table2_morph"], {g: d[f"TAR {g}"] for g in AGE_GROUP_TARGETS}, [])}
    if len(config.variants) > 1:
        t3 = {v: table.loc[v, "TAR AG3"] for v in config.variants}
        others = [v for v in config.variants if v != "DAAE"]
        claims["Table 5: the full model verifies at least as well as every ablation (AG3)"] = (
            "paper claim", bool(all(t3["DAAE"] >= t3[v] for v in others)),
            ", ".join(f"{v} {t3[v]:.0f}" for v in config.variants))
        if "Setting II" in config.variants:
            claims["Table 5: Setting II (all codes at the input) is the worst"] = (
                "paper claim", bool(t3["Setting II"] <= min(t3.values())),
                f"{t3['Setting II']:.0f} %")
        result["compare_table5"] = report.compare(
            PAPER["table5"], t3, ["DAAE > Setting II"] if "Setting II" in t3 else [])
    if config.heldout is not None:
        lo, hi = config.heldout
        full = make_faces(config, config.seed, ident)
        keep = (full["age"] < lo) | (full["age"] > hi)
        data = {k: full[k][keep] for k in ("image", "age")}
        enc, gen, _ = train_daae(config, data, judges["teacher"], "DAAE", config.seeds[0])
        x0 = test["image"][test["age"] <= 30]
        mid = (lo + hi) / 2
        est = float(_oracle_age(judges, age_faces(enc, gen, x0, mid, config), config).mean())
        result["heldout"] = {"range": (lo, hi), "target": mid, "oracle age": est,
                             "train images kept": int(keep.sum())}
        claims[f"ages never seen ({lo:g}-{hi:g}) can be synthesised: target {mid:g} -> oracle in "
               "range"] = ("paper claim", bool(lo <= est <= hi), f"{est:.1f} years")
    result["findings"] = report.claims_table(claims)
    if samples:
        result["samples"] = samp
    return result
