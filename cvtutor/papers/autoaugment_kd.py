"""AutoAugment-KD: circumventing the outliers of automated augmentation with knowledge distillation.

Wei, Xiao, Xie, Zhang, Chen, Tian. *Circumventing Outliers of AutoAugment with Knowledge
Distillation*. ECCV 2020, LNCS 12348, pp. 608-625.

Strong augmentation ``x^tau = g(x, tau)`` can remove what makes an image its class ("augment
ambiguity"); the one-hot label is then wrong for that sample. A teacher trained on clean images
scores every augmented image, and the student is trained on cross-entropy plus a KL term to the
teacher over the teacher's top-K classes, so a damaged image gets a soft, plausible label.

Equations (sign-corrected; the paper prints both terms of Eq. 2 negated)
----------------------------------------------------------------------
(1)   T* = argmin_T L(g(x; tau ~ T), y; theta*_T | D_val),
      theta*_T = argmin_theta L(g(x; tau ~ T), y; theta | D_train)   (explained, not searched)
(2)   L^KD = -y^T ln f^S(x^tau) + lambda KL_K[f^T(x^tau) || f^S(x^tau)]
(3)   KL_K = sum_{c in C_K(x^tau; theta^T)} f^T_c ln(f^T_c / f^S_c)
      f_c = exp(z_c / T) / sum_c' exp(z_c' / T)   (temperature T, Sec. 4.1; placement unstated)

The augmentation space (shear-x/y, translate-x/y, cutout; 10 levels; RandAugment with 2 ops) is
the image-classification world's :func:`cvtutor.data.imageclass.augment.destructive_rand_augment`.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from cvtutor import report
from cvtutor.data.imageclass import augment, readers, sets
from cvtutor.nn.resnet_mini import ResNetMini
from cvtutor.nn.small_cnn import SmallCNN
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import fit, minibatches


# ---------------------------------------------------------------------------------------------
# the losses (Eqs. 2-3)
# ---------------------------------------------------------------------------------------------
def _check_logits(student: torch.Tensor, teacher: torch.Tensor) -> int:
    if student.ndim != 2 or student.shape != teacher.shape:
        raise ValueError(
            f"student and teacher logits must both be (B, C), got {tuple(student.shape)} and "
            f"{tuple(teacher.shape)}"
        )
    return student.shape[1]


def tempered_log_softmax(z: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``ln f_c = z_c / T - ln sum_c' exp(z_c' / T)``: the softmax at temperature ``T`` (Sec. 4.1,
    Hinton et al.'s form; the paper names T but no equation shows it), in float32."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return torch.log_softmax(z.float() / temperature, dim=-1)


def top_k_classes(teacher_logits: torch.Tensor, k: int) -> torch.Tensor:
    """``C_K(x^tau; theta^T)``: the indices ``(B, K)`` of the teacher's ``K`` highest scores
    (Eq. 3); the student plays no part in choosing them."""
    c = teacher_logits.shape[-1]
    if not 1 <= k <= c:
        raise ValueError(f"k must be in 1..{c} (the number of classes), got {k}")
    return teacher_logits.detach().topk(k, dim=-1).indices


def top_k_kl(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    k: int,
    temperature: float = 1.0,
    renormalize: bool = False,
) -> torch.Tensor:
    """``KL_K[f^T || f^S]`` of Eq. (3), sign-corrected, per image ``(B,)``.

    ``sum_{c in C_K} f^T_c (ln f^T_c - ln f^S_c)`` with both softmaxes at temperature ``T`` over
    all ``C`` classes and ``C_K`` the teacher's top ``K``. The paper prints
    ``f^T ln(f^S / f^T)``, the negative, under the label ``KL[f^S || f^T]``; the sum is
    teacher-weighted, so it is KL(T || S) that is meant. ``renormalize=True`` (unstated in the
    paper) rescales both distributions to sum to 1 on ``C_K`` first, which makes the term a true
    KL divergence (>= 0); without it, and ``K < C``, the term can be negative (its minimum,
    ``P_K ln P_K`` with ``P_K`` the teacher's mass on ``C_K``, is reached when the student puts
    all its mass on ``C_K`` in the teacher's proportions). ``K = C`` is the full KL. The teacher is
    detached: no gradient reaches it.
    """
    _check_logits(student_logits, teacher_logits)
    idx = top_k_classes(teacher_logits, k)
    log_t = tempered_log_softmax(teacher_logits.detach(), temperature).gather(1, idx)
    log_s = tempered_log_softmax(student_logits, temperature).gather(1, idx)
    if renormalize:
        log_t = log_t - log_t.logsumexp(1, keepdim=True)
        log_s = log_s - log_s.logsumexp(1, keepdim=True)
    return (log_t.exp() * (log_t - log_s)).sum(1)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    y: torch.Tensor,
    lam: float = 1.0,
    k: int = 3,
    temperature: float = 2.0,
    renormalize: bool = False,
    t_squared: bool = False,
) -> dict[str, torch.Tensor]:
    """``L^KD = CE(y, f^S(x^tau)) + lambda KL_K[f^T || f^S]`` of Eq. (2), sign-corrected, as
    batch means.

    The cross-entropy is on the plain (``T = 1``) student logits; the paper prints
    ``+y^T ln f^S``, the negative. ``t_squared`` multiplies the KL term by ``T^2`` (Hinton et al.'s
    gradient-scale correction; the paper does not say). ``teacher_logits=None`` or ``lam = 0`` is
    plain RandAugment training. Returns ``{"loss", "ce", "kl"}``.
    """
    if y.shape != student_logits.shape[:1]:
        raise ValueError(f"y must be (B,) = ({len(student_logits)},), got {tuple(y.shape)}")
    ce = F.cross_entropy(student_logits.float(), y)
    if teacher_logits is None or lam == 0:
        return {"loss": ce, "ce": ce, "kl": torch.zeros_like(ce)}
    kl = top_k_kl(student_logits, teacher_logits, k, temperature, renormalize).mean()
    scale = temperature**2 if t_squared else 1.0
    return {"loss": ce + lam * scale * kl, "ce": ce, "kl": kl}


def printed_eq2(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    y: torch.Tensor,
    lam: float,
    k: int,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Eqs. (2)-(3) exactly as printed, batch mean:
    ``y^T ln f^S + lambda sum_{C_K} f^T ln(f^S / f^T)``.

    Both terms are the negatives of the losses they name, so this is ``-L^KD`` (an objective to be
    maximised); kept only to show that in the notebook."""
    n_classes = _check_logits(student_logits, teacher_logits)
    ln_f = torch.log_softmax(student_logits.float(), 1)
    first = (F.one_hot(y, n_classes) * ln_f).sum(1)
    return (first - lam * top_k_kl(student_logits, teacher_logits, k, temperature)).mean()


# ---------------------------------------------------------------------------------------------
# the paper's numbers
# ---------------------------------------------------------------------------------------------
_TABLE1_RA = (18.4, 19.5, 20.7, 22.4, 25.7, 31.6, 40.3, 55.1)
_TABLE1_KD = (18.0, 17.6, 18.5, 19.9, 21.9, 27.0, 34.9, 48.0)

PAPER = {
    "table1": report.PaperTable(
        "Table 1 (CIFAR-100, WRN-28-10, geometric space, RandAugment)",
        "test error (%)",
        {
            **{f"RA M={m}": v for m, v in enumerate(_TABLE1_RA)},
            **{f"RA+KD M={m}": v for m, v in enumerate(_TABLE1_KD)},
        },
        better="lower",
        note="the header is garbled in the paper (a stray '0'); the columns are M = 0..7",
    ),
    "table1_gain": report.PaperTable(
        "Table 1, gain row",
        "error of RA minus error of RA+KD (points)",
        {f"gain M={m}": round(a - b, 1) for m, (a, b) in enumerate(zip(_TABLE1_RA, _TABLE1_KD))},
        better="higher",
    ),
    "fig4": report.PaperTable(
        "Fig. 4 (EfficientNet-B0, ImageNet, M = 9, T = 10)",
        "top-1 accuracy (%); only these numbers are in the text",
        {"RA (reproduced)": 77.4, "best KD (K = 5, lambda = 0.5)": 78.0,
         "KD gain at lambda = 0.1": 0.3},
        better="higher",
    ),
    "weak_teacher": report.PaperTable(
        "Table 2 (CIFAR-10, Shake-Shake 26 2x96D student, WRN-28-10 teacher)",
        "test error (%)",
        {"teacher (WRN-28-10, AA)": 2.6, "student AA": 2.0, "student AA+KD": 1.8},
        better="lower",
    ),
}


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
DATASETS = ("digits", "shapes", "cifar10")
MODELS = ("small", "resnet8", "resnet20", "mlp")


@dataclass(frozen=True)
class Config(ProfileConfig):
    data: str = "digits"  # digits (digits16), shapes (ShapesTextures 32 px) or cifar10
    cifar_root: str | None = None  # folder holding cifar-10-batches-py, for data="cifar10"
    size: int = 16
    n_train: int = 4000  # ShapesTextures sizes (digits use the fixed split)
    n_test: int = 2000
    teacher: str = "small"
    teacher_width: int = 16
    teacher_epochs: int = 10
    weak_teacher: str = "mlp"  # the weak-teacher experiment's teacher
    student: str = "small"
    student_width: int = 8
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    magnitudes: tuple[int, ...] = (0, 3, 6)
    n_ops: int = 2
    k: int = 3
    lam: float = 1.0
    temperature: float = 2.0
    renormalize: bool = False
    t_squared: bool = False
    space: str = "geometric"  # or "autoaugment": torchvision's CIFAR-10 policy (per image, slow)
    sweep_magnitude: int = 5  # M of the lambda / K sweeps and of the weak-teacher run
    lams: tuple[float, ...] = ()  # Fig. 4 left (empty: not run)
    ks: tuple[int, ...] = ()  # Fig. 4 right
    weak_teacher_run: bool = False
    confidence_magnitudes: tuple[int, ...] = (0, 2, 4, 6, 8, 10)
    seeds: tuple[int, ...] = (0,)
    device: str | None = None

    @classmethod
    def fast(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        """Table 1 at M = 0..7 on 32 px ShapesTextures (ResNet-8 student, ResNet-20 teacher), the
        lambda and K sweeps, an MLP teacher, three seeds."""
        return cls(
            data="shapes",
            size=32,
            n_train=12000,
            n_test=4000,
            teacher="resnet20",
            teacher_width=16,
            teacher_epochs=15,
            student="resnet8",
            student_width=16,
            epochs=15,
            batch_size=256,
            lr=3e-3,
            magnitudes=tuple(range(8)),
            sweep_magnitude=5,
            lams=(0.1, 0.5, 1.0, 2.0),
            ks=(1, 2, 3, 5, 16),
            weak_teacher_run=True,
            seeds=(0, 1, 2),
        )

    @classmethod
    def smoke(cls) -> Config:
        """``full``'s code paths (shapes, ResNets, sweeps, weak teacher, two seeds), toy size."""
        return cls.full().replace(
            n_train=96,
            n_test=64,
            teacher_epochs=1,
            epochs=1,
            batch_size=32,
            magnitudes=(0, 1, 5),
            lams=(0.5, 1.0),
            ks=(2, 3),
            confidence_magnitudes=(0, 10),
            seeds=(0, 1),
        )


# ---------------------------------------------------------------------------------------------
# data, models, training
# ---------------------------------------------------------------------------------------------
def make_data(config: Config, seed: int = 0, device=None) -> dict[str, sets.ImageSet]:
    """``{"train", "test"}`` image sets: digits16 (fixed split), ShapesTextures (drawn per seed)
    or CIFAR-10 read from ``config.cifar_root`` (the Python pickles; no download)."""
    device = device or get_device(config.device)
    if config.data == "digits":
        return {k: v.to(device) for k, v in sets.digits16(config.size, device=device).items()}
    if config.data == "shapes":
        return {
            "train": sets.shapes_textures(config.n_train, config.size, seed=2 * seed,
                                          device=device),
            "test": sets.shapes_textures(config.n_test, config.size, seed=2 * seed + 1,
                                         device=device),
        }
    if config.data == "cifar10":
        if config.cifar_root is None:
            raise ValueError("data='cifar10' needs cifar_root, the folder of cifar-10-batches-py")
        return {s: readers.read_cifar(config.cifar_root, s, 10).to(device)
                for s in ("train", "test")}
    raise ValueError(f"data must be one of {DATASETS}, got {config.data!r}")


def make_model(kind: str, in_channels: int, n_classes: int, width: int, size: int) -> nn.Module:
    """``small`` (:class:`SmallCNN`), ``resnet8`` / ``resnet20`` (CIFAR ResNets) or ``mlp`` (two
    hidden layers of ``8 width`` units on the flattened image: the weak teacher)."""
    if kind == "small":
        return SmallCNN(in_channels, n_classes, width)
    if kind in ("resnet8", "resnet20"):
        n = 1 if kind == "resnet8" else 3
        return ResNetMini(in_channels, n_classes, width, blocks=(n,) * 3, strides=(1, 2, 2))
    if kind == "mlp":
        d, h = in_channels * size * size, 8 * width
        return nn.Sequential(nn.Flatten(), nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                             nn.Linear(h, n_classes))
    raise ValueError(f"model must be one of {MODELS}, got {kind!r}")


def augment_batch(x: torch.Tensor, magnitude: int, config: Config, seed: int) -> torch.Tensor:
    """The training augmentation: RandAugment with ``config.n_ops`` ops at ``magnitude`` in the
    paper's geometric space, or torchvision's AutoAugment CIFAR-10 policy (``space="autoaugment"``,
    the full space of Table 2; ``magnitude`` is then ignored)."""
    if config.space == "geometric":
        return augment.destructive_rand_augment(x, config.n_ops, magnitude, seed)
    if config.space == "autoaugment":
        return augment.tv_auto_augment(x.cpu(), seed=seed, per_image=True).to(x.device)
    raise ValueError(f"space must be 'geometric' or 'autoaugment', got {config.space!r}")


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """Logits ``(N, C)`` of ``model`` in eval mode, in batches."""
    model.eval()
    return torch.cat([model(x[i:i + batch]).float() for i in range(0, len(x), batch)])


def error_rate(model: nn.Module, data: sets.ImageSet) -> float:
    """Test error in percent."""
    return 100.0 * float((predict_logits(model, data.x).argmax(1) != data.y).float().mean())


def train_model(
    data: sets.ImageSet,
    config: Config,
    seed: int,
    magnitude: int = 0,
    teacher: nn.Module | None = None,
    kind: str | None = None,
    width: int | None = None,
    epochs: int | None = None,
    lam: float | None = None,
    k: int | None = None,
    desc: str | None = None,
) -> tuple[nn.Module, pd.DataFrame]:
    """Train a classifier on ``data`` with RandAugment at ``magnitude`` and, given a ``teacher``,
    the KD loss of Eq. (2) (``lam``, ``k`` default to the config's). The teacher sees the same
    augmented batch as the student, in eval mode. Adam, cosine learning-rate decay, through
    :func:`cvtutor.train.fit`. Returns ``(model, history)``; ``history`` has ``loss, ce, kl``."""
    seed_everything(seed)
    kind, width = kind or config.student, width or config.student_width
    lam = config.lam if lam is None else lam
    k = config.k if k is None else k
    model = make_model(kind, data.x.shape[1], data.n_classes, width, data.x.shape[-1])
    model = model.to(data.x.device)
    if teacher is not None:
        teacher.eval()
    batches = minibatches(data.x, data.y, batch_size=min(config.batch_size, len(data)), seed=seed)
    steps = batches.steps_per_epoch * (epochs or config.epochs)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)

    def loss_fn(models, batch, step):
        x, y = batch
        if magnitude > 0 or config.space != "geometric":
            x = augment_batch(x, magnitude, config, seed * 1_000_003 + step)
        t_logits = None
        if teacher is not None:
            with torch.no_grad():
                t_logits = teacher(x)
        return kd_loss(models["model"](x), t_logits, y, lam, k, config.temperature,
                       config.renormalize, config.t_squared)

    history = fit(model, opt, batches, loss_fn, steps=steps, schedulers=sched, progress=False,
                  desc=desc)
    model.eval()
    return model, history


# ---------------------------------------------------------------------------------------------
# experiments
# ---------------------------------------------------------------------------------------------
def confidence_images(data: sets.ImageSet, magnitude: int, config: Config,
                      seed: int = 0) -> torch.Tensor:
    """The augmented training images the teacher is scored on at ``magnitude`` (seeded)."""
    return augment.destructive_rand_augment(data.x, config.n_ops, magnitude, seed=10_000 + seed)


@torch.no_grad()
def teacher_confidence(teacher: nn.Module, data: sets.ImageSet, magnitudes, config: Config,
                       seed: int = 0) -> pd.DataFrame:
    """The teacher's view of augmented training images at each ``M`` (the images of
    :func:`confidence_images`): one row per image with its max probability (at ``T = 1``), the
    probability of the true class, whether the teacher's top class is the label, its mass on its
    top-K classes at the KD temperature, and its top 3 classes and probabilities (``T = 1``)."""
    rows = []
    for m in magnitudes:
        z = predict_logits(teacher, confidence_images(data, m, config, seed))
        p = z.softmax(1)
        p_t = tempered_log_softmax(z, config.temperature).exp()
        k = min(config.k, p.shape[1])
        top = p.topk(min(3, p.shape[1]), 1)
        rows.append(pd.DataFrame({
            "index": range(len(p)),
            "M": m,
            "max_prob": p.max(1).values.cpu().numpy(),
            "true_prob": p.gather(1, data.y[:, None])[:, 0].cpu().numpy(),
            "teacher_correct": (p.argmax(1) == data.y).cpu().numpy(),
            "top_k_mass": p_t.topk(k, 1).values.sum(1).cpu().numpy(),
            **{f"top{j + 1}": top.indices[:, j].cpu().numpy() for j in range(top.indices.shape[1])},
            **{f"p{j + 1}": top.values[:, j].cpu().numpy() for j in range(top.indices.shape[1])},
        }))
    return pd.concat(rows, ignore_index=True)


def _last_epoch_ce(history: pd.DataFrame, frac: float = 0.1) -> float:
    """Mean training cross-entropy (on augmented images) over the last ``frac`` of the steps."""
    n = max(1, int(len(history) * frac))
    return float(history["ce"].tail(n).mean())


def run(config: Config) -> dict:
    """The whole miniature: a clean teacher; Table 1 (RA vs RA+KD at each M, every seed); the
    teacher's confidence by M; with ``full``'s settings the lambda and K sweeps (Fig. 4) and a weak
    (MLP) teacher. Returns DataFrames and the ``findings`` table."""
    device = get_device(config.device)
    if (config.lams or config.ks or config.weak_teacher_run) and \
            config.sweep_magnitude not in config.magnitudes:
        raise ValueError(f"sweep_magnitude {config.sweep_magnitude} must be one of the magnitudes "
                         f"{config.magnitudes} (its RA and RA+KD runs are the sweeps' baselines)")
    rows, sweep_rows, weak_rows, curves, conf, teachers = [], [], [], [], None, []
    for seed in config.seeds:
        data = make_data(config, seed, device)
        teacher, _ = train_model(data["train"], config, seed, 0, kind=config.teacher,
                                 width=config.teacher_width, epochs=config.teacher_epochs,
                                 desc="teacher")
        teachers.append({"seed": seed, "teacher": config.teacher,
                         "test_error": error_rate(teacher, data["test"])})
        if seed == config.seeds[0]:
            conf = teacher_confidence(teacher, data["train"], config.confidence_magnitudes, config)
        for m in config.magnitudes:
            for method, t in (("RA", None), ("RA+KD", teacher)):
                model, hist = train_model(data["train"], config, seed, m, t, desc=f"{method} M={m}")
                rows.append({"seed": seed, "M": m, "method": method,
                             "error": error_rate(model, data["test"]),
                             "train_ce": _last_epoch_ce(hist)})
                if seed == config.seeds[0]:
                    curves.append(hist.assign(M=m, method=method))
        ms = config.sweep_magnitude
        for sweep, values in (("lambda", config.lams), ("K", config.ks)):
            for v in values:  # Fig. 4: lambda at the config's K, K at the config's lambda
                lam, k = (v, config.k) if sweep == "lambda" else (config.lam, int(v))
                model, _ = train_model(data["train"], config, seed, ms, teacher, lam=lam, k=k)
                sweep_rows.append({"seed": seed, "sweep": sweep, "value": v, "k": k, "lam": lam,
                                   "error": error_rate(model, data["test"])})
        if config.weak_teacher_run:
            weak, _ = train_model(data["train"], config, seed, 0, kind=config.weak_teacher,
                                  width=config.teacher_width, epochs=config.teacher_epochs)
            student, _ = train_model(data["train"], config, seed, ms, weak)
            weak_rows += [
                {"seed": seed, "model": "weak teacher (MLP, clean)",
                 "error": error_rate(weak, data["test"])},
                {"seed": seed, "model": f"student RA+KD M={ms}, MLP teacher",
                 "error": error_rate(student, data["test"])},
            ]
    table1 = pd.DataFrame(rows)
    out = {
        "teachers": pd.DataFrame(teachers),
        "table1_runs": table1,
        "table1": table1_summary(table1),
        "curves": pd.concat(curves, ignore_index=True),
        "confidence": conf,
        "confidence_summary": confidence_summary(conf),
        "sweeps": pd.DataFrame(sweep_rows, columns=["seed", "sweep", "value", "k", "lam", "error"]),
        "weak_teacher": pd.DataFrame(weak_rows, columns=["seed", "model", "error"]),
    }
    out["compare_table1"] = compare_table1(out["table1"])
    out["findings"] = findings(out, config)
    return out


def table1_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of the error of RA and RA+KD and of the gain, one row per M."""
    wide = runs.pivot_table(index=["seed", "M"], columns="method", values="error").reset_index()
    wide["gain"] = wide["RA"] - wide["RA+KD"]
    g = wide.groupby("M")
    out = pd.DataFrame({
        "RA": g["RA"].mean(), "RA std": g["RA"].std(),
        "RA+KD": g["RA+KD"].mean(), "RA+KD std": g["RA+KD"].std(),
        "gain": g["gain"].mean(), "gain std": g["gain"].std(), "seeds": g["gain"].count(),
    })
    return out


def confidence_summary(conf: pd.DataFrame) -> pd.DataFrame:
    """Per ``M``: mean teacher max probability, share of augmented images the teacher gets right
    (the rest are the outliers whose one-hot label it contradicts), mean top-K mass at ``T``."""
    g = conf.groupby("M")
    return pd.DataFrame({"mean max prob": g["max_prob"].mean(),
                         "teacher agrees with label": g["teacher_correct"].mean(),
                         "mean top-K mass (T)": g["top_k_mass"].mean()})


def compare_table1(summary: pd.DataFrame) -> pd.DataFrame:
    """Table 1 beside ours (errors of RA and RA+KD and the gain, per M we ran)."""
    rows = []
    for m, r in summary.iterrows():
        paper = m < len(_TABLE1_RA)
        rows.append({"M": int(m),
                     "paper RA": _TABLE1_RA[m] if paper else float("nan"),
                     "paper RA+KD": _TABLE1_KD[m] if paper else float("nan"),
                     "paper gain": (round(_TABLE1_RA[m] - _TABLE1_KD[m], 1) if paper
                                    else float("nan")),
                     "ours RA": r["RA"], "ours RA+KD": r["RA+KD"], "ours gain": r["gain"],
                     "holds": bool(r["gain"] > 0)})
    df = pd.DataFrame(rows).set_index("M")
    df["holds"] = df["holds"].astype("boolean")
    df.attrs.update(ref=PAPER["table1"].ref, metric="test error (%); holds: KD lowers the error")
    return df


def _spearman(a, b) -> float:
    return float(pd.Series(list(a)).rank().corr(pd.Series(list(b)).rank()))


M1 = "Table 1: at M = 1 RA alone is worse than no augmentation, RA+KD better (fragile)"


def findings(res: dict, config: Config) -> pd.DataFrame:
    """The chapter's findings, each with its kind and a computed verdict."""
    t1, cs = res["table1"], res["confidence_summary"]
    ms = list(t1.index)
    gains = t1["gain"]
    lo, hi = min(ms), max(ms)
    n = int(t1["seeds"].min())
    gain_grows = bool(gains[hi] > gains[lo]) and _spearman(ms, gains) > 0
    conf_ms = list(cs.index)
    mp = cs["mean max prob"]
    conf_falls = bool((mp[mp.index > 0] < mp.iloc[0]).all()) and _spearman(conf_ms, mp) < 0
    ce = res["table1_runs"].query("method == 'RA'").groupby("M")["train_ce"].mean()
    claims = {
        f"Table 1: the gain of KD grows with the magnitude (M = {lo} to {hi})": (
            "paper claim", gain_grows,
            (f"gain {gains[lo]:+.1f} at M = {lo}, {gains[hi]:+.1f} at M = {hi}, Spearman "
             f"{_spearman(ms, gains):+.2f}, {n} seed(s)")),
        f"Table 1: KD lowers the error at every M > 0 tried ({n} seed(s))": (
            "paper claim", bool((gains[[m for m in ms if m > 0]] > 0).all()),
            ", ".join(f"M={m}: {gains[m]:+.1f}" for m in ms if m > 0)),
        "Fig. 2: the training loss on augmented images rises with M (towards under-fitting)": (
            "paper claim", bool((ce.diff().dropna() > 0).all()),
            ", ".join(f"M={m}: {v:.2f}" for m, v in ce.items())),
        "Sec. 3.3: the clean teacher's confidence falls as M grows": (
            "paper claim", conf_falls,
            ", ".join(f"M={m}: {v:.2f}" for m, v in mp.items()) + " (mean max prob)"),
        "at M = 10 most augmented images lose their class: the clean teacher agrees with the "
        "label on under a quarter of them": (
            "construction",
            bool(cs.loc[10, "teacher agrees with label"] < 0.25) if 10 in conf_ms else None,
            f"agrees on {cs['teacher agrees with label'].iloc[-1]:.0%} at M = {conf_ms[-1]}"),
    }
    if 1 in ms and 0 in ms:
        ok = bool(t1.loc[1, "RA+KD"] < t1.loc[0, "RA"] < t1.loc[1, "RA"])
        claims[M1] = (
            "paper claim", ok if n > 1 else None,
            (f"RA {t1.loc[1, 'RA']:.1f} / RA+KD {t1.loc[1, 'RA+KD']:.1f} vs M = 0 RA "
             f"{t1.loc[0, 'RA']:.1f}, {n} seed(s)"))
    else:
        claims[M1] = (
            "paper claim", None, "M = 1 is run in the full profile only")
    sw = res["sweeps"]
    base = t1.loc[config.sweep_magnitude, "RA"] if config.sweep_magnitude in ms else None
    if len(sw) and base is not None:
        means = sw.groupby(["sweep", "value"])["error"].mean()
        every = bool((means < base).all())
        lam_best = means["lambda"].idxmin() if "lambda" in means else None
        claims["Fig. 4: every lambda and K tried beats no KD (fragile)"] = (
            "paper claim", every,
            f"no KD {base:.1f}; KD {means.min():.1f} to {means.max():.1f} (% error)")
        if lam_best is not None:
            lams = sorted(means["lambda"].index)
            claims["Fig. 4: a moderate lambda is best, neither the smallest nor the largest "
                   "(fragile)"] = ("paper claim", bool(lams[0] < lam_best < lams[-1]),
                                   f"best lambda {lam_best:g} of {lams}") if len(lams) > 2 else (
                "paper claim", None, f"needs 3 or more lambdas, ran {lams}")
    else:
        claims["Fig. 4: every lambda and K tried beats no KD (fragile)"] = (
            "paper claim", None, "the sweeps run in the full profile only")
    wt = res["weak_teacher"]
    ms_ = config.sweep_magnitude
    if len(wt):
        w = wt.groupby("model")["error"].mean()
        teacher_err = w["weak teacher (MLP, clean)"]
        kd = w[f"student RA+KD M={ms_}, MLP teacher"]
        ra = t1.loc[ms_, "RA"]
        claims["Sec. 3.4: a weaker teacher (an MLP) still lowers a CNN student's error"] = (
            "paper claim", bool(teacher_err > kd and kd < ra),
            (f"at M = {ms_}: teacher {teacher_err:.1f}, student RA {ra:.1f}, RA+KD {kd:.1f} "
             "(% error)"))
    else:
        claims["Sec. 3.4: a weaker teacher (an MLP) still lowers a CNN student's error"] = (
            "paper claim", None, "run in the full profile only")
    return report.claims_table(claims)
