"""OpenHybrid (E07) speed: features per second through the residual flow's log-density with its
backward pass (the density step of Eq. 4), exact log-det (vmap + jacrev + slogdet) against the
Russian-roulette estimator, at the fast (d = 16, 2 blocks of 32) and full (d = 64, 6 blocks of
128) sizes, on the CPU and on CUDA when present.
Run: ``python benchmarks/openhybrid.py [--batch 64]``."""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from cvtutor.papers import openhybrid as O
from _timing import timed  # noqa: E402  (benchmarks/_timing.py, beside this script)

SIZES = {"fast": (16, 2, 32), "full": (64, 6, 128)}


def bench(device: str, batch: int) -> list[dict]:
    rows = []
    for size, (d, blocks, hidden) in SIZES.items():
        for kind in O.LOGDETS:
            flow = O.ResidualFlow(d, blocks, hidden, logdet=kind).to(device).train()
            u = torch.rand(batch, d, device=device) * 0.8 + 0.1
            flow.log_prob(u)  # ActNorm's data-dependent initialisation

            def step():
                flow.zero_grad(set_to_none=True)
                flow.log_prob(u).mean().backward()

            dt, peak = timed(step, device, cpu_time=True)
            rows.append({"device": device, "size": size, "logdet": kind, "batch": batch,
                         "seconds": round(dt, 4), "features_per_s": round(batch / dt, 1),
                         "peak_MiB": round(peak, 1)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    rows = bench("cpu", args.batch)
    if torch.cuda.is_available():
        rows += bench("cuda", args.batch)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
