"""REVISE (E43) speed: images per second through the tool's stages on the CPU (and CUDA when
present): drawing scenes and writing/reading their COCO file (``make_world``), the metrics on the
annotations (``analyse`` without features), rendering and featurising crops (``render_crops`` +
HOG/colour). Run: ``OMP_NUM_THREADS=1 python benchmarks/revise.py [--n 2000 --render 200]``.
On the CPU the rates are per second of this process's CPU time (a shared machine inflates wall
time), on CUDA per second of wall time.

The full profile's time is about ``3 seeds x 2 worlds x (30k / make_world rate + 30k / analyse rate
+ 4000 / render rate)``; the script prints that estimate for the device measured."""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from cvtutor.papers import revise as R


def bench(device: str, n: int, n_render: int) -> dict:
    cfg = R.Config.fast().replace(n_images=n, n_render=n_render, device=device)
    R.make_world(cfg.replace(n_images=50), R.PLANTED, 1)  # warm-up
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    clock = time.perf_counter if cuda else time.process_time  # CPU: this process's CPU time
    c0, t0 = time.process_time(), clock()
    world = R.make_world(cfg, R.PLANTED, 0)
    t1 = clock()
    out = R.analyse(world, cfg)
    t2 = clock()
    crops, table = R.render_crops(world, n_render, cfg.crop)
    feats = R.features_of(crops)
    sync()
    t3 = clock()
    full = R.Config.full()
    rates = {"world": n / (t1 - t0), "metrics": n / (t2 - t1), "render": n_render / (t3 - t2)}
    per_world = (full.n_images / rates["world"] + full.n_images / rates["metrics"]
                 + full.n_render / rates["render"])
    return {"device": device, "images": n, "crops": len(feats), "planted rows": len(out["planted"]),
            "world img/s": round(rates["world"], 1), "metrics img/s": round(rates["metrics"], 1),
            "render+features scenes/s": round(rates["render"], 1),
            "cpu_s": round(time.process_time() - c0, 2),
            "full estimate (min)": round(len(full.seeds) * 2 * per_world / 60, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="scenes per world")
    ap.add_argument("--render", type=int, default=200, help="scenes rendered for the features")
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [bench(d, args.n, args.render) for d in devices]
    print(f"torch threads: {torch.get_num_threads()}")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
