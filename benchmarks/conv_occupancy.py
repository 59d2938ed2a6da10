"""Convolutional Occupancy Networks (E31) speed: training steps (Eq. 2) per second of ONet, the
3-plane and the grid ConvONet, in scenes and queries, at the fast (3×32², 16³, batch 4) and full
(3×64² depth 4, 32³, batch 32) sizes, on the CPU and on CUDA when present, with peak memory; and
room generation (surface samples and exact occupancy) in scenes per second.
Run: ``python benchmarks/conv_occupancy.py [--full-batch 32]``."""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from cvtutor.papers import conv_occupancy as P
from _timing import timed  # noqa: E402  (benchmarks/_timing.py, beside this script)


def bench(device: str, profile: str, batch: int | None) -> list[dict]:
    cfg = P.Config.fast() if profile == "fast" else P.Config.full()
    B = batch or cfg.batch_size
    g = torch.Generator(device=device).manual_seed(0)
    data = P.make_data("rooms", B, cfg, g, device)
    rows = []
    dt, peak = timed(lambda: P.make_data("rooms", B, cfg, g, device), device, cpu_time=True)
    rows.append({"device": device, "profile": profile, "what": "room generation", "scenes": B,
                 "seconds/step": round(dt, 4), "scenes_per_s": round(B / dt, 1),
                 "peak_MiB": round(peak, 1)})
    for v in cfg.variants:
        model = P.build(v, cfg).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

        def step():
            loss = P.occupancy_loss(model(data["inputs"], data["queries"]), data["occupancy"])
            opt.zero_grad()
            loss.backward()
            opt.step()

        dt, peak = timed(step, device, cpu_time=True)
        rows.append({"device": device, "profile": profile, "what": f"train step {v.name}",
                     "scenes": B, "seconds/step": round(dt, 4), "scenes_per_s": round(B / dt, 1),
                     "queries_per_s": round(B * cfg.n_queries / dt), "peak_MiB": round(peak, 1)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full-batch", type=int, default=None, help="batch of the full rows")
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [r for d in devices for r in bench(d, "fast", None) + bench(d, "full", args.full_batch)]
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
