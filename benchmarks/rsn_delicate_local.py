"""E27 speed: top-down crops generated per second, and crops per second through one training step
(forward + backward + Adam) and through the full test-time decoder (flip test, filter, quarter
offset) for each block type at matched FLOPs, at the ``fast`` (32×24) and ``full`` (128×96) sizes,
on the CPU (and CUDA when present). Run: ``python benchmarks/rsn_delicate_local.py [--batch 32]``."""
from __future__ import annotations

import argparse

import pandas as pd
import torch

from cvtutor.data.bodies.pose_crops import pose_crops
from cvtutor.papers import rsn_delicate_local as R
from _timing import timed  # noqa: E402  (benchmarks/_timing.py, beside this script)


def bench(cfg: R.Config, profile: str, device: str, batch: int) -> list[dict]:
    rows = []
    dt = timed(lambda: pose_crops(batch, cfg.height, cfg.width, cfg.image_size, device=device),
               device, cpu_time=True)[0]
    rows.append({"device": device, "profile": profile, "what": "generate crops",
                 "items_per_s": round(batch / dt, 1)})
    x = torch.rand(batch, 3, cfg.height, cfg.width, device=device)
    target = torch.rand(batch, 13, cfg.height // 2, cfg.width // 2, device=device)
    vis = torch.full((batch, 13), 2, device=device)
    flops = R.model_flops(R.build(cfg, "rsn", cfg.rsn_width), cfg.height, cfg.width)
    for block in R.BLOCKS:
        w = cfg.rsn_width if block == "rsn" else R.matched_width(block, flops, cfg)[0]
        net = R.build(cfg, block, w, device=device)
        opt = torch.optim.Adam(net.parameters(), 1e-3)

        def step():
            opt.zero_grad()
            R.heatmap_loss(net(x), target, vis).backward()
            opt.step()

        dt = timed(step, device, cpu_time=True)[0]
        rows.append({"device": device, "profile": profile, "what": f"train step, {block}",
                     "items_per_s": round(batch / dt, 1)})
        dt = timed(lambda: R.decode(net, x, R.DECODERS[-1]), device, cpu_time=True)[0]
        rows.append({"device": device, "profile": profile, "what": f"decode (flip), {block}",
                     "items_per_s": round(batch / dt, 1)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32, help="crops per measurement")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for d in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        for profile, cfg in (("fast", R.Config.fast()), ("full", R.Config.full())):
            rows += bench(cfg, profile, d, args.batch)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
