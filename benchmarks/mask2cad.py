"""Mask2CAD (E16) speed: images rendered per second by the box-union CAD renderer (clutter,
occlusion) and training steps per second (Eq. 1 with hard mining + pose heads), at the fast
(32 px, 8-16-32 convs) and full (64 px, 32-64-128 convs) sizes, on the CPU and on CUDA when
present, with peak memory. Run: ``python benchmarks/mask2cad.py [--images 256]``."""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from cvtutor.data.shapes3d import cad_boxes as cad
from cvtutor.papers import mask2cad as P
from _timing import timed  # noqa: E402  (benchmarks/_timing.py, beside this script)


def bench(device: str, n_images: int, profile: str) -> list[dict]:
    cfg = (P.Config.fast() if profile == "fast" else P.Config.full()).replace(
        n_train=max(n_images, 2 * cfg_models(profile)), n_test=16, device=device)
    dev = torch.device(device)
    g = torch.Generator(device=dev).manual_seed(0)
    lib = cad.cad_library(cfg.n_per_class, g, dev)
    model = torch.randint(len(lib["label"]), (n_images,), generator=g, device=dev)
    world = P.make_world(cfg, 0, dev)
    net = P.Mask2CAD(cfg.widths, cfg.dim, cfg.bins).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    step = {"i": 0}

    def render():
        cad.cad_images(lib, model, g, cfg.image_size, cfg.focal)

    def train_step():
        batch = P.sample_batch(world, cfg, step["i"], 0)
        step["i"] += 1
        loss = P.losses(net, batch, world, cfg)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    rows = []
    n_anchor = cfg.models_per_batch // 3 * 3 * cfg.images_per_model
    for name, fn, items in (("render images", render, n_images), ("train step", train_step, n_anchor)):
        dt, peak = timed(fn, device, cpu_time=True)
        rows.append({"device": device, "profile": profile, "what": name, "items": items,
                     "seconds": round(dt, 4), "items_per_s": round(items / dt, 1),
                     "peak_MiB": round(peak, 1)})
    return rows


def cfg_models(profile: str) -> int:
    cfg = P.Config.fast() if profile == "fast" else P.Config.full()
    return 3 * cfg.n_per_class


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=256)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [r for d in devices for p in ("fast", "full") for r in bench(d, args.images, p)]
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
