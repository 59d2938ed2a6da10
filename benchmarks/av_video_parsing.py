"""AVVP (E26) training speed: videos per second of one training step (forward, backward, Adam)
of the parser per temporal net (none, GRU, Transformer, HAN, AVE-style) at the fast (d = 64) and
full (d = 256) widths, on the CPU and on CUDA when present, with peak memory.
Run: ``python benchmarks/av_video_parsing.py [--steps 20] [--batch 64]``."""

from __future__ import annotations

import argparse
import resource
import time

import pandas as pd
import torch

from cvtutor.papers import av_video_parsing as A


def bench(device: str, temporal: str, d_model: int, batch: int, steps: int) -> dict:
    cfg = A.Config.fast()
    torch.manual_seed(0)
    model = A.MMILNet(cfg.feature_dim, cfg.feature_dim, cfg.n_classes, d_model, temporal).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    a = torch.randn(batch, cfg.snippets, cfg.feature_dim, device=device)
    v = torch.randn_like(a)
    y = (torch.rand(batch, cfg.n_classes, device=device) < 0.2).float()
    setting = A.Setting("wsl+g", "attentive", temporal, "smoothing")

    def step():
        loss = sum(A.parsing_loss(model(a, v), y, setting).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"device": device, "temporal": temporal, "d_model": d_model, "batch": batch,
            "params": sum(p.numel() for p in model.parameters()),
            "ms_per_step": round(1000 * dt, 2),
            "videos_per_s": round(batch / dt, 1), "peak_MiB": round(peak, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [bench(dev, t, d, args.batch, args.steps)
            for dev in devices for d in (64, 256) for t in A.TEMPORALS]
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
