"""Side-tuning (E41): iShapes images generated per second, and training images per second of
side-tuning, features and fine-tuning on one task at the fast and full sizes, on the CPU and on
CUDA when present.

Run: ``OMP_NUM_THREADS=1 python benchmarks/side_tuning.py [--n 2048] [--steps 10]``. CPU rates are
per CPU second of this process; CUDA rates are wall-clock after a synchronise. The ms per step of
the training rows is what ``full``'s estimate in the notebook header multiplies by its steps.
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch
from _timing import timed

from cvtutor.data.imageclass.ishapes import ishapes
from cvtutor.papers import side_tuning as S


def generation(device: str, n: int) -> list[dict]:
    dt = timed(lambda: ishapes(n, 24, seed=0, device=device), device, cpu_time=True)[0]
    return [{"device": device, "what": "ishapes 24 px", "per_s": round(n / dt),
             "ms_per_step": None}]


def training(device: str, steps: int) -> list[dict]:
    rows = []
    for name, cfg in (("fast", S.Config.fast()), ("full", S.Config.full())):
        c = cfg.replace(device=device, steps=steps)
        data = ishapes(c.batch_size * steps, c.size, seed=0, device=device)
        base = S.freeze(S.BaseNet().to(device))
        side = S.SideNet(c.side_width).to(device)
        for method in ("side-tune", "features", "fine-tune"):
            def make(method=method, base=base, side=side, c=c):
                if method == "side-tune":
                    return S._side_tuned(base, side, "segmentation", c)
                dec = S.make_decoder("segmentation", c.size)
                if method == "features":
                    return S.Features(base, dec).to(device)
                trunk = S.make_side("copy", base, side)
                return S.Trunk(trunk, dec).to(device)
            dt = timed(lambda make=make, data=data, c=c: S.train_task(make(), "segmentation",
                                                                     data, c, 0),
                       device, cpu_time=True)[0]
            rows.append({"device": device, "what": f"train {name} {method}",
                         "per_s": round(len(data) / dt),
                         "ms_per_step": round(1000 * dt / steps, 2)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048, help="images per timed call (x8 on CUDA)")
    ap.add_argument("--steps", type=int, default=10, help="training steps per timed call")
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for d in devices:
        rows += generation(d, args.n * (8 if d == "cuda" else 1)) + training(d, args.steps)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
