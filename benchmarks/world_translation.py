"""Domain rendering speed of the image-translation world: images per second of every world's
every domain at 32 and 64 px on the CPU (one thread by default) and on CUDA when present (16x the
batch). The scenes are sampled once; only the rendering is timed.
Run: ``python benchmarks/world_translation.py [--n 256] [--threads 1]``."""
from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from cvtutor.data import domains as D


def bench(name: str, device: str, size: int, n: int) -> list[dict]:
    world = D.WORLDS[name](size, device)
    scenes = world.scenes(n, seed=1)
    rows = []
    for domain in world.domains[:4]:
        world.render(world.scenes(8, seed=0), domain)           # warm-up
        cuda = device.startswith("cuda")
        if cuda:
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        world.render(scenes, domain)
        if cuda:
            torch.cuda.synchronize()
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append({"world": name, "domain": domain, "device": device, "image_size": size,
                     "n": n, "seconds": round(dt, 3), "cpu_seconds": round(cpu, 3),
                     "images_per_s": round(n / dt, 1)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [r for name in D.WORLDS for d in devices for s in (32, 64)
            for r in bench(name, d, s, args.n * (16 if d == "cuda" else 1))]
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
