"""E15 speed: scenes per second of the HMOR loss (Eq. 9, all three levels over every cross-person
pair) and of one training step of the lifting model (forward, every loss of the final ladder row,
backward, Adam), on the CPU and on CUDA when present; also scenes generated per second.
Run: ``python benchmarks/hmor.py [--batch 128]``."""
from __future__ import annotations

import argparse

import pandas as pd
import torch
from _timing import timed  # benchmarks/_timing.py, beside this script

from cvtutor.papers import hmor as H


def bench(device: str, batch: int) -> list[dict]:
    cfg = H.Config.fast().replace(batch=batch)
    rows = []
    dt = timed(lambda: H.make_scenes(cfg, batch, "train", 0, device), device, cpu_time=True)[0]
    rows.append({"what": "make_scenes", "seconds": dt})
    sc = H.make_scenes(cfg, batch, "train", 0, device)
    z0 = float(H.target_equivalent_depth(sc, cfg)[sc["valid"]].mean())
    views = H.sample_views(batch, torch.Generator(device=device).manual_seed(0), device)
    pred = sc["joints"] + 0.05 * torch.randn_like(sc["joints"])
    dt = timed(lambda: H.hmor_loss(pred, sc["joints"], sc["valid"], views), device,
               cpu_time=True)[0]
    rows.append({"what": "hmor_loss (ins + part + jt)", "seconds": dt})
    model = H.LiftingHMOR(hidden=cfg.hidden).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        out = H.predict(model, sc, z0, cfg)
        loss = sum(H.hmor_loss(out["joints"], sc["joints"], sc["valid"], views).values())
        loss = loss + (out["joints"] - sc["joints"]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    dt = timed(step, device, cpu_time=True)[0]
    rows.append({"what": "training step (final row)", "seconds": dt})
    return [{"device": device, **r, "items": batch, "items_per_s": round(batch / r["seconds"], 1)}
            for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128, help="scenes per measurement")
    args = ap.parse_args()
    rows = [r for d in ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
            for r in bench(d, args.batch)]
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
