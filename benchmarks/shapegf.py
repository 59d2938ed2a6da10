"""ShapeGF (E22) speed: DSM training steps (Eq. 13) and annealed Langevin steps (Eqs. 9-10) per
second, in shapes and points, at the fast (256 points, 4×64 blocks) and full (800 points, 8×256
blocks) sizes, on the CPU and on CUDA when present, with peak memory.
Run: ``python benchmarks/shapegf.py [--batch 16]``."""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from cvtutor.papers import shapegf as P
from _timing import timed  # noqa: E402  (benchmarks/_timing.py, beside this script)


def bench(device: str, batch: int, profile: str) -> list[dict]:
    cfg = P.Config.fast() if profile == "fast" else P.Config.full()
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(batch, cfg.n_points, 2, generator=g, device=device) * 2 - 1
    model = P.ShapeGF(2, cfg.z_dim, cfg.hidden, cfg.blocks, cfg.enc_widths).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sig = P.sigma_ladder().to(device=device, dtype=x.dtype)

    def train_step():
        loss = model.loss(x, sig, g, cfg.train_points)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def langevin_level():  # one σ level: cfg.langevin_steps steps
        P.reconstruct(model, x, cfg.n_points, sig[:1], cfg.langevin_steps, g)

    rows = []
    for name, fn, per in (("DSM train step", train_step, 1),
                          ("Langevin step", langevin_level, cfg.langevin_steps)):
        dt, peak = timed(fn, device, cpu_time=True)
        rows.append({"device": device, "profile": profile, "what": name, "shapes": batch,
                     "points": cfg.n_points, "seconds/step": round(dt / per, 5),
                     "shapes_per_s": round(batch * per / dt, 1), "peak_MiB": round(peak, 1)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [r for d in devices for p in ("fast", "full") for r in bench(d, args.batch, p)]
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
