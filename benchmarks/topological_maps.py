"""Uncertain-map world and planner speed (E28): maps generated per second and planner training
instances per second, on the CPU (and CUDA when present), at the fast and full sizes (the full
planner's training only on CUDA).
Run: ``python benchmarks/topological_maps.py [--maps 512] [--steps 5]``."""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from cvtutor.data.topomaps import generate
from cvtutor.papers import topological_maps as T


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _seconds(device: str, fn) -> float:
    fn()  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def bench(device: str, profile: str, n_maps: int, steps: int) -> list[dict]:
    cfg = T.Config.for_profile(profile)
    gen_s = _seconds(device, lambda: generate(n_maps, cfg.n_nodes, seed=0, device=device))
    maps = generate(max(cfg.batch_size, 64), cfg.n_nodes, seed=1, device=device)
    rows = [{"device": device, "profile": profile, "what": "maps generated", "n": n_maps,
             "seconds": round(gen_s, 3), "items_per_s": round(n_maps / gen_s, 1)}]
    if device == "cpu" and profile == "full":
        return rows  # ~50 s a step on one CPU thread: the full planner is timed on CUDA only
    train_s = _seconds(device, lambda: T.train_planner(maps, cfg, True, "probs", steps=steps))
    return rows + [{"device": device, "profile": profile,
                    "what": "training instances (map, target)",
             "n": steps * cfg.batch_size, "seconds": round(train_s, 3),
             "items_per_s": round(steps * cfg.batch_size / train_s, 1),
             "ms_per_step": round(1000 * train_s / steps, 1)}]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--maps", type=int, default=512)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        for profile in ("fast", "full"):
            rows += bench(device, profile, args.maps, args.steps)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
