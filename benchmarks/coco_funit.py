"""COCO-FUNIT (E23) throughput: critters rendered per second, G/D training steps per second of
each generator (FUNIT, w/o COCO, w/o CSB, w/o CC, COCO-FUNIT; Eq. 4) and of the judges, at the
``fast`` and ``full`` sizes, on the CPU and on CUDA when present.

    python benchmarks/coco_funit.py [--steps 5]

The ``full`` estimate is ``planned steps x s/step`` summed over the fit calls of one seed, times
the seeds (``benchmarks/full_profile.py --only coco_funit`` measures it on a GPU).
"""
from __future__ import annotations

import argparse

import torch
from _timing import print_phases, timed

from cvtutor.papers import coco_funit as C
from cvtutor.train import measure_phases


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for name, cfg in (("fast", C.Config.fast()), ("full", C.Config.full())):
            cfg = cfg.replace(device=device)
            sec, _ = timed(lambda c=cfg: C.make_data(c, 0), device)
            data = C.make_data(cfg, 0)
            print(f"{device} {name}: critters {len(data['image']) / sec:,.0f} images/s")
            with measure_phases(steps=args.steps, warmup=2) as records:
                C.train_judges(cfg, data)
                for model in cfg.models:
                    C.train(cfg, data, model)
            total = print_phases(records, None, 16)
            print(f"  fit time of run(): {total * len(cfg.seeds):.0f} s for "
                  f"{len(cfg.seeds)} seed(s) (judges counted once per seed: an upper bound)")


if __name__ == "__main__":
    main()
