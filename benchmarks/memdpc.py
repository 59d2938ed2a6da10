"""MemDPC speed: self-supervised training steps (dense InfoNCE, Eq. 6) and feature extraction,
clips per second on the CPU (and CUDA when present), for the fast and full model sizes.
Run: ``python benchmarks/memdpc.py [--batch 16] [--steps 5]``."""

from __future__ import annotations

import argparse

import pandas as pd
import torch
from _timing import timed

from cvtutor.papers import memdpc as M


def bench(device: str, profile: str, phase: str, batch: int, steps: int) -> dict:
    cfg = getattr(M.Config, profile)()
    torch.manual_seed(0)
    x = torch.rand(batch, cfg.n_blocks, cfg.block_len, 3, cfg.size, cfg.size, device=device)
    model = M.MemDPC(3, cfg.widths, cfg.memory_size, cfg.n_pred).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def ssl_steps():
        for _ in range(steps):
            out = model(x)
            loss, _ = M.dense_infonce(out["z_hat"], out["z"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def features():
        with torch.no_grad():
            for _ in range(steps):
                model.features(x)

    fn = ssl_steps if phase == "SSL step" else features
    fn()  # warm-up
    dt, peak = timed(fn, device)
    return {
        "device": device,
        "profile": profile,
        "phase": phase,
        "batch": batch,
        "size": cfg.size,
        "frames": cfg.frames,
        "seconds": round(dt, 3),
        "clips_per_s": round(batch * steps / dt, 1),
        "peak_MiB": round(peak, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [
        bench(d, p, ph, args.batch, args.steps)
        for d in devices
        for p in ("fast", "full")
        for ph in ("SSL step", "features")
    ]
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main()
