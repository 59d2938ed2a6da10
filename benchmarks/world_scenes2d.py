"""2-D scene world speed: scenes generated and rendered per second at 32, 64 and 128 px on the CPU
(and CUDA when present), with peak memory. Run: ``python benchmarks/world_scenes2d.py [--n 128]``
(set ``OMP_NUM_THREADS=1`` for the one-thread CPU figure the chapter's budget uses)."""

from __future__ import annotations

import argparse
import resource
import time

import pandas as pd
import torch

from cvtutor.data.scenes2d import scenes2d


def bench(device: str, size: int, n: int, max_objects: int) -> dict:
    scenes2d(8, size, max_objects=max_objects, seed=1, device=device).render()  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0, c0 = time.perf_counter(), time.process_time()
    s = scenes2d(n, size, max_objects=max_objects, seed=0, device=device)
    t1 = time.perf_counter()
    s.render()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t2, c2 = time.perf_counter(), time.process_time()
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "device": device,
        "size": size,
        "n": n,
        "generate_s": round(t1 - t0, 4),
        "render_s": round(t2 - t1, 4),
        "cpu_s": round(c2 - c0, 3),
        "scenes_per_s": round(n / (t2 - t0), 1),
        "peak_MiB": round(peak, 1),
        "peak_kind": "cuda allocated" if device.startswith("cuda") else "max RSS",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=128, help="scenes per CPU measurement (CUDA: 8x)")
    ap.add_argument("--max-objects", type=int, default=6)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [
        bench(d, s, args.n * (8 if d == "cuda" else 1), args.max_objects)
        for d in devices
        for s in (32, 64, 128)
    ]
    print(f"torch threads: {torch.get_num_threads()}")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
