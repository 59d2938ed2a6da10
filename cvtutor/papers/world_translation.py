"""The image-translation world: one scene, many domains; GAN building blocks; metrics without
downloaded weights.

Not a paper but the shared ground of the "Image synthesis and translation" section (sketch2photo
E03, face aging E06, TopoGAN E08, ForkGAN E10, TSIT E13, COCO-FUNIT E23). A seeded scene
description is rendered by several domain renderers (:mod:`cvtutor.data.domains`), so a
translation method can train on unpaired images while its output is scored against the *true*
target, the same scene rendered in the target domain. This module checks the world's promises
and the metrics' behaviour on cases whose answer is known:

(1) layout: the label map (silhouette) of a scene is the same in every domain; a sketch's strokes
    lie within the warp's reach of the photo's outline;
(2) pairing: paired draws share their layout (layout mIoU 1), unpaired draws do not;
(3) FID-lite (:class:`cvtutor.metrics.generative.FIDLite`): a feature net trained here on the
    world's labels (domain x object class), then frozen; the Fréchet distance between two sets of
    real photos is the floor, other domains lie above it, and it grows with pixel noise;
(4) full-reference quality (:mod:`cvtutor.metrics.images`): PSNR/SSIM of simple "translations"
    against the true target.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from cvtutor import report
from cvtutor.data import domains as D
from cvtutor.data.domains.base import boundary, dilate
from cvtutor.metrics import generative, images, segmentation
from cvtutor.runtime import ProfileConfig, get_device

PAPER: dict = {}


@dataclass(frozen=True)
class Config(ProfileConfig):
    size: int = 32
    n_eval: int = 192            # images per set in the FID-lite and metric checks
    n_train: int = 128           # images per (domain, class) to train the FID-lite net
    fid_steps: int = 120
    fid_width: int = 8
    noise_levels: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2)
    seed: int = 0
    device: str | None = None

    @classmethod
    def fast(cls) -> "Config":
        return cls()

    @classmethod
    def full(cls) -> "Config":
        return cls(size=64, n_eval=2000, n_train=1000, fid_steps=1500, fid_width=16)

    @classmethod
    def smoke(cls) -> "Config":
        """``full``'s code paths and resolution at toy set sizes and training length."""
        return cls.full().replace(n_eval=24, n_train=16, fid_steps=4, fid_width=4)


def worlds(config: Config) -> dict[str, D.DomainWorld]:
    """One instance of each domain world at the config's size, on its device."""
    dev = get_device(config.device)
    return {name: w(config.size, dev) for name, w in D.WORLDS.items()}


def layout_consistency(config: Config, n: int = 16) -> pd.DataFrame:
    """Per world: the fraction of label pixels equal to the first domain's, in every other domain
    (1 for worlds whose domains only recolour; critters and faces change the layout on purpose)."""
    rows = []
    for name, w in worlds(config).items():
        sc = w.scenes(n, config.seed)
        labels = [w.render(sc, d)["label"] for d in w.domains[:4]]
        agree = min(float((labels[0] == x).float().mean()) for x in labels[1:])
        rows.append({"world": name, "domains": ", ".join(w.domains[:4]),
                     "label agreement": agree})
    return pd.DataFrame(rows)


def sketch_fidelity(config: Config, n: int = 64) -> dict[str, float]:
    """Share of sketch stroke pixels within ``warp + jitter + 2`` px of the photo's part
    boundaries (1 by construction), and share of the silhouette's outline covered by strokes."""
    w = D.Objects(config.size, get_device(config.device), hatch=0.0)
    sc = w.scenes(n, config.seed)
    photo, sketch = w.render(sc, "photo"), w.render(sc, "sketch")
    strokes = sketch["image"][:, 0] < 0.5
    near = dilate(boundary(photo["parts"]), int(w.warp + w.jitter) + 2)
    outline = boundary(photo["label"]) & (photo["label"] == 1)
    return {"strokes near the outline": float((strokes & near).sum() / strokes.sum()),
            "outline drawn": float((outline & dilate(strokes, 3)).sum() / outline.sum())}


def pairing(config: Config, n: int = 32) -> pd.DataFrame:
    """Layout mIoU between the two sides of paired and of unpaired draws (landscapes, streets)."""
    rows = []
    for name, a, b, k in (("landscapes", "summer", "winter", 6), ("streets", "day", "night", 7)):
        w = worlds(config)[name]
        for kind, draw in (("paired", D.paired), ("unpaired", D.unpaired)):
            out = draw(w, a, b, n, config.seed)
            conf = segmentation.confusion_matrix(out["a"]["label"], out["b"]["label"], k)
            rows.append({"world": name, "draw": kind, "layout mIoU": segmentation.mean_iou(conf),
                         "pixel accuracy": segmentation.pixel_accuracy(conf)})
    return pd.DataFrame(rows)


def fid_training_set(config: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """Objects in all four domains, labelled ``domain * 2 + object class`` (8 classes)."""
    w = D.Objects(config.size, get_device(config.device))
    sc = w.scenes(config.n_train, config.seed + 100)
    xs, ys = [], []
    for i, d in enumerate(w.domains):
        xs.append(w.render(sc, d)["image"])
        ys.append(2 * i + sc["cls"])
    return torch.cat(xs), torch.cat(ys)


def train_fid_lite(config: Config, progress: bool = False) -> generative.FIDLite:
    """The FID-lite feature net for this world, trained on :func:`fid_training_set`."""
    x, y = fid_training_set(config)
    return generative.FIDLite.train(x, y, steps=config.fid_steps, seed=config.seed,
                                    width=config.fid_width, progress=progress)


def add_noise(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """Gaussian pixel noise of std ``sigma``, seeded, clamped to [0, 1]."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g, device=x.device)).clamp(0, 1)


def fid_checks(config: Config, fid: generative.FIDLite) -> dict[str, pd.DataFrame]:
    """FID-lite of held-out sets against a reference set of photos: photos of other scenes (the
    floor), the other domains, and noisy photos; plus the diversity of each set."""
    w = D.Objects(config.size, get_device(config.device))
    ref = w.render(w.scenes(config.n_eval, config.seed + 1), "photo")["image"]
    other = w.scenes(config.n_eval, config.seed + 2)
    sets = {f"{d} (other scenes)": w.render(other, d)["image"] for d in w.domains}
    sets["one photo repeated"] = sets["photo (other scenes)"][:1].expand(config.n_eval, -1, -1,
                                                                           -1)
    feats_ref = fid.features(ref)
    rows = [{"set": k, "FID-lite to photos": generative.frechet_distance(fid.features(v),
                                                                         feats_ref),
             "diversity": generative.diversity(fid.features(v))} for k, v in sets.items()]
    photos = sets["photo (other scenes)"]
    noise = [{"noise std": s, "FID-lite to photos": generative.frechet_distance(
        fid.features(add_noise(photos, s, config.seed)), feats_ref)} for s in config.noise_levels]
    return {"sets": pd.DataFrame(rows), "noise": pd.DataFrame(noise)}


def quality(config: Config, n: int = 64) -> tuple[pd.DataFrame, dict[str, bool]]:
    """PSNR/SSIM (mean over images) of simple translations against the true target photo, and
    whether the true target itself scores PSNR = inf and SSIM = 1 (kept out of the table)."""
    w = D.Objects(config.size, get_device(config.device))
    p = D.paired(w, "grayscale", "photo", n, config.seed + 3)
    gray, photo = p["a"]["image"], p["b"]["image"]
    cands = {"grayscale copied": gray,
             "target + noise 0.05": add_noise(photo, 0.05, config.seed),
             "target + noise 0.1": add_noise(photo, 0.1, config.seed),
             "photo of another scene": w.render(w.scenes(n, config.seed + 4), "photo")["image"]}
    rows = [{"translation": k, "PSNR (dB)": float(images.psnr(x, photo).mean()),
             "SSIM": float(images.ssim(x, photo).mean())} for k, x in cands.items()]
    exact = {"PSNR inf": bool(torch.isinf(images.psnr(photo, photo)).all()),
             "SSIM 1": bool(torch.allclose(images.ssim(photo, photo), torch.ones(()).to(photo)))}
    return pd.DataFrame(rows), exact


def run(config: Config, progress: bool = False) -> dict:
    """All checks of the world; returns DataFrames and the ``findings`` table."""
    layout = layout_consistency(config)
    sketch = sketch_fidelity(config)
    pair = pairing(config)
    fid = train_fid_lite(config, progress)
    fc = fid_checks(config, fid)
    q, exact = quality(config)
    q = q.set_index("translation")
    sets = fc["sets"].set_index("set")["FID-lite to photos"]
    floor = sets["photo (other scenes)"]
    noise = fc["noise"]["FID-lite to photos"].to_numpy()
    recolour = layout[layout.world.isin(["objects", "streets", "landscapes"])]
    pr = pair.set_index(["world", "draw"])["layout mIoU"]
    div = fc["sets"].set_index("set")["diversity"]
    findings = report.claims_table({
        "one scene has the same label map in every domain (objects, streets, landscapes)":
            ("construction", bool((recolour["label agreement"] == 1.0).all())),
        "every sketch stroke lies within the warp's reach of the photo's outline":
            ("construction", sketch["strokes near the outline"] == 1.0,
             f"{sketch['outline drawn']:.0%} of the outline drawn"),
        "paired draws share their layout (mIoU 1), unpaired draws do not":
            ("construction", bool((pr.xs("paired", level="draw") == 1.0).all()
                                  and (pr.xs("unpaired", level="draw") < 0.9).all())),
        "FID-lite: photos of other scenes are closer to photos than any other domain":
            ("sanity check", bool((sets.drop(["photo (other scenes)"]) > floor).all()),
             f"floor {floor:.3g}"),
        "FID-lite grows with pixel noise": ("sanity check", bool(np.all(np.diff(noise) > 0))),
        "a collapsed set has zero diversity, real photos do not":
            ("sanity check", bool(div["one photo repeated"] < 1e-9 < div["photo (other scenes)"])),
        "PSNR and SSIM rank the true target first, then less noise before more":
            ("sanity check", bool(exact["PSNR inf"] and exact["SSIM 1"]
                                  and q.loc["target + noise 0.05", "SSIM"]
                                  > q.loc["target + noise 0.1", "SSIM"]
                                  > q.loc["photo of another scene", "SSIM"]
                                  and q.loc["target + noise 0.05", "PSNR (dB)"]
                                  > q.loc["target + noise 0.1", "PSNR (dB)"])),
    })
    return {"layout": layout, "sketch": sketch, "pairing": pair, "fid_sets": fc["sets"],
            "fid_noise": fc["noise"], "quality": q.reset_index(), "fid_history": fid.history,
            "findings": findings}
