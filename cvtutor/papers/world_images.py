"""The image-classification world: procedural image sets, corruptions, splits and their checks.

Not a paper but the shared ground of the ECCV section "Recognition, robustness and efficiency"
(E04 robust corruptions, E07 OpenHybrid, E14 ProxyBNN, E17 surrogate losses, E30 RPL, E35 DSA,
E36 AutoAugment-KD, E40 MobileNeXt, E41 side-tuning). The pieces live in
:mod:`cvtutor.data.imageclass` (sets, corruptions, splits, augmentation, readers),
:mod:`cvtutor.metrics.classification` and :mod:`cvtutor.nn` (``SmallCNN``, ``ResNetMini``
stages, ``flops``); this module trains the world's reference classifier and computes the
ground-truth checks the chapter shows.

Equations
---------
(1) openness    O = 1 - sqrt(k_train / k_test) (E07 Sec. 4.1, after Scheirer et al. 2013)
(2) AUROC       P(s(known) > s(unknown)) + P(tie) / 2, s = max softmax probability
(3) (k+1)-F1    mean over the k known classes and "unknown" of 2 TP / (2 TP + FP + FN)
(4) CE          CE_c = sum_s E_{s,c} / sum_s E^base_{s,c}; relative: errors minus the clean error
(5) PGD         d <- Proj_{||d||_p <= eps, 0 <= x + d <= 1}(d + a * dir(grad_d L(x + d, y)))
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F

from cvtutor import report
from cvtutor.data.imageclass import augment, corruptions, sets, splits
from cvtutor.metrics import classification as cm
from cvtutor.nn import flops
from cvtutor.nn.resnet_mini import ResNetMini
from cvtutor.nn.small_cnn import SmallCNN
from cvtutor.runtime import ProfileConfig, get_device, seed_everything
from cvtutor.train import fit, minibatches

#: The only numbers this chapter stands for: E07's openness values (Sec. 4.1), in percent.
PAPER = {
    "openness": {
        "6 of 10": 22.54,
        "CIFAR+10 (4 of 14)": 46.54,
        "CIFAR+50 (4 of 54)": 72.78,
        "TinyImageNet (20 of 200)": 68.37,
    }
}
_OPENNESS_CLASSES = {
    "6 of 10": (6, 10),
    "CIFAR+10 (4 of 14)": (4, 14),
    "CIFAR+50 (4 of 54)": (4, 54),
    "TinyImageNet (20 of 200)": (20, 200),
}


@dataclass(frozen=True)
class Config(ProfileConfig):
    n_train: int = 2000
    n_test: int = 1000
    n_ood: int = 500
    n_corrupt: int = 200
    digits_size: int = 16
    n_digits: int | None = None  # training digits used (None: all 1,347)
    n_pgd: int = 450
    model: str = "small"
    width: int = 16
    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-3
    n_known: int = 6
    pgd_eps_linf: float = 8 / 255
    pgd_eps_l2: float = 0.5
    pgd_steps: int = 5
    fine: bool = False
    seeds: tuple[int, ...] = (0,)
    device: str | None = None

    @classmethod
    def fast(cls) -> "Config":
        return cls()

    @classmethod
    def full(cls) -> "Config":
        return cls(
            n_train=20000,
            n_test=5000,
            n_ood=2000,
            n_corrupt=2000,
            digits_size=32,
            model="resnet20",
            width=16,
            epochs=15,
            batch_size=128,
            lr=2e-3,
            pgd_steps=10,
            fine=True,
            seeds=(0, 1, 2),
        )

    @classmethod
    def smoke(cls) -> "Config":
        """``full``'s code paths (ResNet-20, 32 px digits, fine variant, several seeds), toy size."""
        return cls.full().replace(
            n_train=128,
            n_test=64,
            n_ood=32,
            n_corrupt=16,
            n_digits=128,
            n_pgd=32,
            epochs=1,
            batch_size=32,
            pgd_steps=2,
            seeds=(0, 1),
        )


def make_model(config: Config, in_channels: int, n_classes: int) -> torch.nn.Module:
    """The world's reference classifier: ``SmallCNN`` (fast) or a CIFAR ResNet (``resnet8`` or
    ``resnet20``)."""
    if config.model == "small":
        return SmallCNN(in_channels, n_classes, config.width)
    depth = {"resnet8": 1, "resnet20": 3}.get(config.model)
    if depth is None:
        raise ValueError(f"model must be 'small', 'resnet8' or 'resnet20', got {config.model!r}")
    return ResNetMini(in_channels, n_classes, config.width, blocks=(depth,) * 3, strides=(1, 2, 2))


def make_data(config: Config, seed: int = 0, device=None) -> dict:
    """The world's sets for one seed: digits, ShapesTextures train/test (and fine), OOD sets.

    Returns the sets and ``timing``: CPU seconds (``time.process_time``) spent generating each.
    """
    device = device or get_device(config.device)
    timing, out = [], {}

    def timed(name, fn, n):
        t = time.process_time()
        out[name] = fn()
        timing.append({"set": name, "images": n, "cpu_s": time.process_time() - t})

    timed(
        "digits",
        lambda: _first_digits(sets.digits16(config.digits_size, device=device), config.n_digits),
        1797,
    )
    timed(
        "shapes_train",
        lambda: sets.shapes_textures(config.n_train, seed=3 * seed, device=device),
        config.n_train,
    )
    timed(
        "shapes_test",
        lambda: sets.shapes_textures(config.n_test, seed=3 * seed + 1, device=device),
        config.n_test,
    )
    if config.fine:
        timed(
            "fine_train",
            lambda: sets.shapes_textures(config.n_train, seed=3 * seed, device=device, fine=True),
            config.n_train,
        )
        timed(
            "fine_test",
            lambda: sets.shapes_textures(
                config.n_test, seed=3 * seed + 1, device=device, fine=True
            ),
            config.n_test,
        )
    for kind in sets.OOD_KINDS:
        timed(
            f"ood_{kind}",
            lambda: sets.ood_images(kind, config.n_ood, 32, 3, seed=100 + seed, device=device),
            config.n_ood,
        )
    out["timing"] = pd.DataFrame(timing)
    return out


def _first_digits(digits: dict[str, sets.ImageSet], n: int | None) -> dict[str, sets.ImageSet]:
    """The digits with only the first ``n`` training images (all when ``n`` is None)."""
    if n is None:
        return digits
    return {
        "train": digits["train"].subset(torch.arange(min(n, len(digits["train"])))),
        "test": digits["test"],
    }


def train_classifier(
    data: sets.ImageSet,
    n_classes: int,
    config: Config,
    seed: int,
    device,
    progress: bool = False,
    desc: str | None = None,
) -> tuple[torch.nn.Module, pd.DataFrame]:
    """Adam on cross-entropy (one-cycle learning rate) through :func:`cvtutor.train.fit`, for
    ``config.epochs`` epochs. Returns the model in eval mode and the loss history."""
    seed_everything(seed)
    model = make_model(config, data.x.shape[1], n_classes).to(device)
    batches = minibatches(data.x, data.y, batch_size=min(config.batch_size, len(data)), seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps = config.epochs * batches.steps_per_epoch
    # one-cycle schedule: the rate ends near 0, so BatchNorm's running statistics (a moving average
    # over the last steps) match the final weights
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps)

    def loss_fn(models, batch, step):
        xb, yb = batch
        return {"loss": F.cross_entropy(models["model"](xb).float(), yb)}

    hist = fit(
        model, opt, batches, loss_fn, steps=steps, schedulers=sched, progress=progress, desc=desc
    )
    model.eval()
    return model, hist


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Logits of ``x`` in batches, float32."""
    return torch.cat([model(x[i : i + batch]).float() for i in range(0, len(x), batch)])


def corruption_table(
    model: torch.nn.Module, test: sets.ImageSet, n: int, seed: int = 0
) -> pd.DataFrame:
    """Top-1 error (%) of ``model`` on the first ``n`` test images, clean and under every corruption
    and severity (with the mean absolute change of the images)."""
    x, y = test.x[:n], test.y[:n]
    rows = [
        {
            "corruption": "clean",
            "severity": 0,
            "error": 100 * (1 - cm.accuracy(predict(model, x), y)),
        }
    ]
    for name in corruptions.CORRUPTIONS:
        for s in corruptions.SEVERITIES:
            xc = corruptions.corrupt(x, name, s, seed=seed)
            rows.append(
                {
                    "corruption": name,
                    "severity": s,
                    "error": 100 * (1 - cm.accuracy(predict(model, xc), y)),
                    "distance": float((xc - x).abs().mean()),
                }
            )
    return pd.DataFrame(rows)


def open_set_digits(digits: dict, config: Config, seed: int, device) -> dict:
    """Open-set recognition on digits: train on ``n_known`` classes of a seeded split, score test
    images by MSP; AUROC / AUPR, and the (k+1)-way F1 with the threshold at 95 % of known kept."""
    known = splits.open_set_splits(10, config.n_known, 1, seed=seed)[0]
    tr, te = digits["train"], digits["test"]
    y_tr = splits.relabel_known(tr.y, known)
    keep = y_tr < config.n_known
    model, hist = train_classifier(
        sets.ImageSet(tr.x[keep], y_tr[keep], tuple(map(str, known))),
        config.n_known,
        config,
        seed,
        device,
    )
    logits = predict(model, te.x)
    y_te = splits.relabel_known(te.y, known).cpu()
    score = cm.msp(logits).cpu()
    is_known = y_te < config.n_known
    thr = torch.quantile(score[is_known].double(), 0.05).item()
    pred = torch.where(score >= thr, logits.argmax(1).cpu(), torch.full_like(y_te, config.n_known))
    return {
        "known": known,
        "score": score,
        "y": y_te,
        "pred": pred,
        "closed_pred": logits.argmax(1).cpu(),
        "auroc": cm.open_set_auroc(score[is_known], score[~is_known]),
        "aupr_in": cm.aupr_in(score[is_known], score[~is_known]),
        "aupr_out": cm.aupr_out(score[is_known], score[~is_known]),
        "f1": cm.open_set_f1(y_te, pred, config.n_known),
        "closed_accuracy": float((logits.argmax(1).cpu() == y_te)[is_known].double().mean()),
        "openness": cm.openness(config.n_known, 10),
    }


def sklearn_agreement(
    score_known: torch.Tensor,
    score_unknown: torch.Tensor,
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    n_known: int,
) -> float:
    """Largest gap between our AUROC, AUPR-in/out, (k+1)-F1 and scikit-learn's on the same input."""
    import numpy as np
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    y = np.r_[np.ones(len(score_known)), np.zeros(len(score_unknown))]
    s = np.r_[score_known.numpy(), score_unknown.numpy()].astype(np.float64)
    ref = [
        roc_auc_score(y, s),
        average_precision_score(y, s),
        average_precision_score(1 - y, -s),
        f1_score(
            np.minimum(y_true.numpy(), n_known),
            np.minimum(y_pred.numpy(), n_known),
            labels=list(range(n_known + 1)),
            average="macro",
            zero_division=0,
        ),
    ]
    ours = [
        cm.open_set_auroc(score_known, score_unknown),
        cm.aupr_in(score_known, score_unknown),
        cm.aupr_out(score_known, score_unknown),
        cm.open_set_f1(y_true, y_pred, n_known),
    ]
    return max(abs(a - b) for a, b in zip(ours, ref))


def pgd_table(model: torch.nn.Module, test: sets.ImageSet, config: Config, n: int) -> pd.DataFrame:
    """Accuracy (%) clean and under PGD in l_inf and l_2, with the largest perturbation norm."""
    x, y = test.x[:n], test.y[:n]
    rows = [
        {
            "attack": "clean",
            "eps": 0.0,
            "accuracy": 100 * cm.accuracy(predict(model, x), y),
            "max_norm": 0.0,
        }
    ]
    for norm, eps in (("linf", config.pgd_eps_linf), ("l2", config.pgd_eps_l2)):
        adv = cm.pgd_attack(model, x, y, eps, steps=config.pgd_steps, norm=norm)
        d = (adv - x).flatten(1)
        size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
        rows.append(
            {
                "attack": f"PGD-{norm}",
                "eps": eps,
                "accuracy": 100 * cm.accuracy(predict(model, adv), y),
                "max_norm": float(size.max()),
                "in_box": bool((adv >= 0).all() and (adv <= 1).all()),
            }
        )
    return pd.DataFrame(rows)


def cost_table(config: Config) -> pd.DataFrame:
    """Parameters and MAdds per image (FlopCounterMode) of the world's classifiers, with the
    closed form of their convolutions and linear layers."""
    rows = []
    for name, model, size in (
        ("SmallCNN w=16, 16 px", SmallCNN(1, 10, 16), 16),
        ("SmallCNN w=16, 32 px", SmallCNN(3, 16, 16), 32),
        ("ResNet-8", make_model(config.replace(model="resnet8", width=16), 3, 10), 32),
        ("ResNet-20", make_model(config.replace(model="resnet20", width=16), 3, 10), 32),
    ):
        got = flops.flop_count(model, torch.zeros(1, model.in_channels, size, size))
        rows.append(
            {
                "model": name,
                "params": got["params"],
                "MAdds": got["madds"],
                "closed_form_MAdds": _closed_form_madds(model, size),
            }
        )
    return pd.DataFrame(rows)


def _closed_form_madds(model: torch.nn.Module, size: int) -> int:
    """Sum of :func:`flops.conv2d_flops` over the model's convolutions (output sizes from a hooked
    forward pass) plus ``in * out`` per linear layer, halved to multiply-adds."""
    total, hooks = 0, []

    def conv_hook(mod, inp, out):
        nonlocal total
        total += flops.conv2d_flops(
            mod.in_channels, mod.out_channels, mod.kernel_size, tuple(out.shape[-2:]), mod.groups
        )

    def lin_hook(mod, inp, out):
        nonlocal total
        total += 2 * mod.in_features * mod.out_features

    for mod in model.modules():
        if isinstance(mod, torch.nn.Conv2d):
            hooks.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, torch.nn.Linear):
            hooks.append(mod.register_forward_hook(lin_hook))
    with torch.no_grad():
        model.eval()(torch.zeros(1, model.in_channels, size, size))
    for h in hooks:
        h.remove()
    return total // 2


def generator_checks(data: dict, config: Config, seed: int, device) -> dict[str, bool]:
    """Ground truth of the generators: balance, determinism, ranges, severity order, M = 0."""
    shapes = data["shapes_train"]
    twice = [sets.shapes_textures(64, seed=seed, device=device, fine=config.fine) for _ in range(2)]
    counts = shapes.y.bincount(minlength=shapes.n_classes)
    images = [data["digits"]["train"].x, shapes.x] + [data[f"ood_{k}"] for k in sets.OOD_KINDS]
    x = data["shapes_test"].x[:64]
    dist = {
        name: [
            float((corruptions.corrupt(x, name, s) - x).abs().mean())
            for s in corruptions.SEVERITIES
        ]
        for name in corruptions.CORRUPTIONS
    }
    in_range = all(
        bool((c := corruptions.corrupt(x, name, 5)).min() >= 0 and c.max() <= 1)
        for name in corruptions.CORRUPTIONS
    )
    return {
        "balanced": bool(counts.max() - counts.min() <= 1),
        "deterministic": bool(
            torch.equal(twice[0].x, twice[1].x) and torch.equal(twice[0].y, twice[1].y)
        ),
        "sets_in_range": all(bool(t.min() >= 0 and t.max() <= 1) for t in images),
        "corruptions_in_range": in_range,
        "severity_monotone": all(all(b > a for a, b in zip(d, d[1:])) for d in dist.values()),
        "randaugment_m0_identity": bool(
            torch.equal(augment.rand_augment(x, n_ops=2, magnitude=0, seed=seed), x)
        ),
    }


def run(config: Config, progress: bool = False) -> dict:
    """Generate the world, train the reference classifiers, compute every check.

    Returns DataFrames (``timing``, ``accuracy`` per set and seed, ``corruption`` errors,
    ``open_set``, ``pgd``, ``cost``, ``openness``, ``findings``, training ``history``) and
    ``scores``: the first seed's open-set digits scores, labels (unknown = ``n_known``), closed-set
    predictions, as lists (for the chapter's figure and exercise).
    """
    device = get_device(config.device)
    acc_rows, corr, osr_rows, pgds, histories, timings, checks = [], [], [], [], [], [], []
    scores, sk_gap = {}, 0.0
    for seed in config.seeds:
        data = make_data(config, seed, device)
        timings.append(data["timing"].assign(seed=seed))
        checks.append(generator_checks(data, config, seed, device))
        runs = {
            "digits16": (data["digits"]["train"], data["digits"]["test"]),
            "ShapesTextures": (data["shapes_train"], data["shapes_test"]),
        }
        if config.fine:
            runs["ShapesTextures-fine"] = (data["fine_train"], data["fine_test"])
        models = {}
        for name, (tr, te) in runs.items():
            model, hist = train_classifier(
                tr, tr.n_classes, config, seed, device, progress, f"{name} (seed {seed})"
            )
            models[name] = model
            histories.append(hist.assign(set=name, seed=seed))
            acc_rows.append(
                {
                    "set": name,
                    "seed": seed,
                    "classes": tr.n_classes,
                    "accuracy": 100 * cm.accuracy(predict(model, te.x), te.y),
                }
            )
        shapes_model, shapes_test = models["ShapesTextures"], data["shapes_test"]
        corr.append(
            corruption_table(shapes_model, shapes_test, config.n_corrupt, seed).assign(seed=seed)
        )
        known_score = cm.msp(predict(shapes_model, shapes_test.x[: config.n_ood])).cpu()
        for kind in sets.OOD_KINDS:
            unk = cm.msp(predict(shapes_model, data[f"ood_{kind}"])).cpu()
            osr_rows.append(
                {
                    "task": f"ShapesTextures vs {kind}",
                    "seed": seed,
                    "auroc": cm.open_set_auroc(known_score, unk),
                    "aupr_in": cm.aupr_in(known_score, unk),
                    "aupr_out": cm.aupr_out(known_score, unk),
                }
            )
        osr = open_set_digits(data["digits"], config, seed, device)
        osr_rows.append(
            {
                "task": f"digits16, {config.n_known} known of 10",
                "seed": seed,
                "auroc": osr["auroc"],
                "aupr_in": osr["aupr_in"],
                "aupr_out": osr["aupr_out"],
                "f1": osr["f1"],
            }
        )
        is_known = osr["y"] < config.n_known
        sk_gap = max(
            sk_gap,
            sklearn_agreement(
                osr["score"][is_known],
                osr["score"][~is_known],
                osr["y"],
                osr["pred"],
                config.n_known,
            ),
        )
        if not scores:
            scores = {
                "known": osr["score"][is_known].tolist(),
                "unknown": osr["score"][~is_known].tolist(),
                "known_classes": list(osr["known"]),
                "score": osr["score"].tolist(),
                "y": osr["y"].tolist(),
                "closed_pred": osr["closed_pred"].tolist(),
            }
        pgds.append(
            pgd_table(models["digits16"], data["digits"]["test"], config, config.n_pgd).assign(
                seed=seed
            )
        )
    accuracy = pd.DataFrame(acc_rows)
    corruption = pd.concat(corr, ignore_index=True)
    pgd = pd.concat(pgds, ignore_index=True)
    cost = cost_table(config)
    openness = pd.DataFrame(
        [
            {"protocol": k, "paper": v, "ours": 100 * cm.openness(*_OPENNESS_CLASSES[k])}
            for k, v in PAPER["openness"].items()
        ]
    )
    mean_acc = accuracy.groupby("set")["accuracy"].mean()
    by_sev = corruption[corruption.severity > 0].groupby("severity")["error"].mean()
    clean_err = corruption[corruption.severity == 0]["error"].mean()
    adv = pgd[pgd.attack != "clean"]
    eps_ok = all(r.max_norm <= r.eps + 1e-5 for r in adv.itertuples())
    harder = {
        "ShapesTextures is harder than digits16 (lower accuracy, same classifier and epochs)": (
            "sanity check",
            bool(mean_acc["ShapesTextures"] < mean_acc["digits16"]),
            f"{mean_acc['ShapesTextures']:.1f} % vs {mean_acc['digits16']:.1f} %",
        )
    }
    if config.fine:
        harder["the fine variant is harder than the coarse one"] = (
            "sanity check",
            bool(mean_acc["ShapesTextures-fine"] < mean_acc["ShapesTextures"]),
            f"{mean_acc['ShapesTextures-fine']:.1f} % vs {mean_acc['ShapesTextures']:.1f} %",
        )
    every_seed = {key: all(c[key] for c in checks) for key in checks[0]}
    findings = report.claims_table(
        {
            "ShapesTextures classes are balanced (counts differ by at most one)": (
                "construction", every_seed["balanced"]),
            "a seed gives bit-identical images": ("construction", every_seed["deterministic"]),
            "every set's and every corruption's values stay in [0, 1]": (
                "construction", every_seed["sets_in_range"] and every_seed["corruptions_in_range"]),
            "each corruption moves images further at each higher severity": (
                "construction", every_seed["severity_monotone"]),
            "RandAugment with magnitude 0 is the identity": (
                "construction", every_seed["randaugment_m0_identity"]),
            "the classifier learns (ShapesTextures accuracy above 3x chance)": (
                "sanity check",
                bool(mean_acc["ShapesTextures"] > 300 / 16),
                f"{mean_acc['ShapesTextures']:.1f} %",
            ),
            **harder,
            "the mean corrupted error grows with severity": (
                "sanity check",
                bool(by_sev.is_monotonic_increasing and by_sev.iloc[0] > clean_err - 1e-9),
                " < ".join(f"{v:.1f}" for v in [clean_err, *by_sev.tolist()]) + " %",
            ),
            "our AUROC, AUPR-in/out and (k+1)-F1 equal scikit-learn's on this run's scores": (
                "sanity check",
                bool(sk_gap < 1e-9),
                f"largest gap {sk_gap:.1e}",
            ),
            "our openness formula gives E07's four openness values (to their two decimals)": (
                "sanity check",
                bool(all(int(o * 100) / 100 == p for o, p in zip(openness.ours, openness.paper))),
            ),
            "PGD lowers accuracy and stays inside the eps-ball and the image box": (
                "sanity check",
                bool(
                    eps_ok
                    and adv.in_box.all()
                    and (adv.accuracy.to_numpy() < pgd[pgd.attack == "clean"].accuracy.mean()).all()
                ),
            ),
            "FlopCounterMode's MAdds equal the closed form of every convolution and linear layer": (
                "sanity check",
                bool((cost.MAdds == cost.closed_form_MAdds).all()),
            ),
        }
    )
    return {
        "timing": pd.concat(timings, ignore_index=True),
        "accuracy": accuracy,
        "corruption": corruption,
        "open_set": pd.DataFrame(osr_rows),
        "pgd": pgd,
        "cost": cost,
        "openness": openness,
        "findings": findings,
        "history": pd.concat(histories, ignore_index=True),
        "scores": scores,
    }
