"""Critter and pedestrian rendering speed (the 2-D scene world's articulated figures): images per
second at 32, 64 and 128 px (pedestrians: that height, half the width) on the CPU, one thread by
default, and on CUDA when present, with peak memory.
Run: ``python benchmarks/figures2d.py [--n 256] [--threads 1]``."""
from __future__ import annotations

import argparse
import resource
import time

import pandas as pd
import torch

from cvtutor.data.scenes2d import critters as K
from cvtutor.data.scenes2d import pedestrians as P


def bench(world: str, device: str, size: int, n: int) -> dict:
    if world == "critters":
        classes = K.critter_classes(16, seed=0, device=device)

        def make(m: int):
            return K.critters(classes, max(1, m // 16), size=size, seed=1, device=device)
    else:
        ids = P.pedestrian_identities(32, seed=0, device=device)

        def make(m: int):
            return P.pedestrians(ids, max(1, m // 32), n_cameras=4, size=size, seed=1,
                                 occluded=0.2, device=device)
    make(32)  # warm-up
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0, c0 = time.perf_counter(), time.process_time()
    out = make(n)
    if cuda:
        torch.cuda.synchronize()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = (torch.cuda.max_memory_allocated() / 2**20 if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    m = len(out)
    return {"world": world, "device": device, "image_size": size, "n": m,
            "seconds": round(dt, 3), "cpu_seconds": round(cpu, 3),
            "images_per_s": round(m / dt, 1), "peak_MiB": round(peak, 1),
            "peak_kind": "cuda allocated" if cuda else "process max RSS"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [bench(w, d, s, args.n * (16 if d == "cuda" else 1))
            for w in ("critters", "pedestrians") for d in devices for s in (32, 64, 128)]
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
