"""Hand-world rendering speed: samples per second at 32, 64 and 128 px on the CPU (and CUDA when present),
with peak memory. Run: ``python benchmarks/hand_world.py [--n 256] [--cloud]``."""
from __future__ import annotations

import argparse
import resource
import time

import pandas as pd
import torch

from cvtutor.data.hands import HandWorld


def bench(device: str, size: int, n: int, cloud: bool) -> dict:
    world = HandWorld("rhd", image_size=size, seed=0, device=device, with_cloud=cloud)
    world.sample(8)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    world.sample(n)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"device": device, "image_size": size, "n": n, "cloud": cloud, "seconds": round(dt, 3),
            "samples_per_s": round(n / dt, 1), "peak_MiB": round(peak, 1),
            "peak_kind": "cuda allocated" if device.startswith("cuda") else "process max RSS"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--cloud", action="store_true", help="include the point cloud")
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [bench(d, s, args.n * (8 if d == "cuda" else 1), args.cloud) for d in devices for s in (32, 64, 128)]
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
