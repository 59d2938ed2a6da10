"""E29 layout world and NDN generation speed: layouts (with their relation graphs) per second, and
iterative NDN generation (module 2, untrained weights: the cost does not depend on them) per second,
on the CPU (and CUDA when present), with peak memory.
Run: ``python benchmarks/neural_design_network.py [--n 4096] [--hidden 64]``."""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from cvtutor.data import layouts as L
from cvtutor.papers import neural_design_network as T
from _timing import timed  # noqa: E402  (benchmarks/_timing.py, beside this script)


def bench(device: str, n: int, hidden: int) -> list[dict]:
    def world():
        d = L.generate_layouts(n, seed=0, device=device)
        return L.layout_graph(d["labels"], d["boxes"], d["mask"])

    graph = world()
    model = T.LayoutGeneration(hidden, 32).to(device).eval()
    rows = []
    for what, fn in (("layouts + relation graphs", world),
                     ("NDN iterative generation", lambda: T.generate(model, graph))):
        dt, peak = timed(fn, device)
        rows.append({"device": device, "what": what, "n": n, "items/s": n / dt, "peak MB": peak})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--hidden", type=int, default=64)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [r for d in devices for r in bench(d, args.n, args.hidden)]
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".1f"))


if __name__ == "__main__":
    main()
