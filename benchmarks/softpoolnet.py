"""SoftPoolNet (E05) speed: clouds per second for soft pooling, the boundary loss (Eq. 7), the
preserve loss (Eq. 8, Sinkhorn) and whole training steps of SoftPoolNet and PointNet-AE, at the
fast and full profiles' sizes, on the CPU (and CUDA when present), with peak memory.
Run: ``python benchmarks/softpoolnet.py [--batch 16] [--profiles fast full]``."""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from cvtutor.papers import softpoolnet as M
from _timing import timed  # noqa: E402  (benchmarks/_timing.py, beside this script)


def bench(device: str, batch: int, profile: str) -> list[dict]:
    cfg = M.Config.for_profile(profile)
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(batch, cfg.n_in, 3, generator=g, device=device) * 0.3
    gt = torch.randn(batch, cfg.n_complete, 3, generator=g, device=device) * 0.3
    nets = {v: M.build(v, cfg).to(device) for v in ("SoftPoolNet", "PointNet-AE")}
    opts = {v: torch.optim.Adam(n.parameters(), lr=cfg.lr) for v, n in nets.items()}
    f = torch.softmax(3 * torch.randn(batch, cfg.n_in, cfg.n_f, generator=g, device=device), -1)
    coarse = torch.randn(batch, cfg.n_f * cfg.n_r, 3, generator=g, device=device)

    def step(v):
        out = nets[v](x)
        loss = M.losses(nets[v], out, gt, M.VARIANTS[v], cfg)["loss"]
        opts[v].zero_grad()
        loss.backward()
        opts[v].step()

    cases = {
        "soft pool": lambda: M.soft_pool(f, cfg.n_r),
        "L_boundary": lambda: M.boundary_loss(coarse, M.soft_pool(f, cfg.n_r)[0], cfg.tau),
        "L_preserve (Sinkhorn)": lambda: M.preserve_loss(M.soft_pool(f, cfg.n_r)[0], f,
                                                         cfg.n_preserve),
        "train step, SoftPoolNet (5 losses)": lambda: step("SoftPoolNet"),
        "train step, PointNet-AE": lambda: step("PointNet-AE"),
    }
    rows = []
    for name, fn in cases.items():
        dt, peak = timed(fn, device, cpu_time=True)
        rows.append({"device": device, "profile": profile, "what": name, "clouds": batch,
                     "seconds": round(dt, 4), "clouds_per_s": round(batch / dt, 1),
                     "peak_MiB": round(peak, 1)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--profiles", nargs="+", default=["fast", "full"])
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [r for d in devices for p in args.profiles for r in bench(d, args.batch, p)]
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
