"""PointMixup (E20) speed: mixed clouds per second for the exact assignment (Hungarian, CPU), the
Sinkhorn assignment (CPU, and CUDA when present), RA and PS, and PointNet-lite training steps with
OA mixing, at the fast (128 points) and full (512) sizes and at the paper's 1,024, with peak memory.
Run: ``python benchmarks/pointmixup.py [--batch 16] [--sizes 128 512 1024]``."""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from cvtutor.nn.pointnets import PointNet
from cvtutor.papers import pointmixup as P
from _timing import timed  # noqa: E402  (benchmarks/_timing.py, beside this script)


def bench(device: str, batch: int, n: int) -> list[dict]:
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(batch, n, 3, generator=g, device=device)
    perm = torch.roll(torch.arange(batch, device=device), 1)
    lam = torch.full((batch,), 0.4, device=device)
    net = PointNet(10, (64, 128, 256), head=256).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    y = torch.nn.functional.one_hot(torch.arange(batch, device=device) % 10, 10).float()

    def step(solver):
        mixer = P.Mixer("oa", x, perm, lam, g, solver=solver)
        loss = P.soft_cross_entropy(
            P.mixed_forward(net, x, mixer, 1), P.mix_labels(y, y[perm], lam)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()

    cases = {
        "RA mix": lambda: P.Mixer("ra", x, perm, lam, g).mix(x, x[perm]),
        "PS mix": lambda: P.Mixer("ps", x, perm, lam, g).mix(x, x[perm]),
        "OA mix (Sinkhorn, 100 iters)": lambda: P.Mixer(
            "oa", x, perm, lam, g, solver="sinkhorn"
        ).mix(x, x[perm]),
        "train step, OA+MM (Sinkhorn)": lambda: step("sinkhorn"),
    }
    if device == "cpu":
        cases["OA mix (exact, Hungarian)"] = lambda: P.Mixer("oa", x, perm, lam, g).mix(x, x[perm])
        cases["train step, OA+MM (exact)"] = lambda: step("exact")
    rows = []
    for name, fn in cases.items():
        dt, peak = timed(fn, device, cpu_time=True)
        rows.append(
            {
                "device": device,
                "points": n,
                "what": name,
                "clouds": batch,
                "seconds": round(dt, 4),
                "clouds_per_s": round(batch / dt, 1),
                "peak_MiB": round(peak, 1),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 512, 1024])
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [r for d in devices for n in args.sizes for r in bench(d, args.batch, n)]
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
