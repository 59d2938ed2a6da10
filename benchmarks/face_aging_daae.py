"""DAAE (E06) throughput: cartoon faces rendered per second, and E/G training steps per second of
DAAE (Eqs. 12-13: one encoder and one generator update per step) for each Table 5 variant, at the
``fast`` and ``full`` sizes, on the CPU and on CUDA when present.

    python benchmarks/face_aging_daae.py [--steps 5]

The ``full`` estimate is ``planned steps x s/step`` summed over the fit calls of one seed, times
the seeds, plus the held-out-range model (``benchmarks/full_profile.py --only face_aging_daae``
measures it on a GPU).
"""
from __future__ import annotations

import argparse

import torch
from _timing import print_phases, timed

from cvtutor.papers import face_aging_daae as M
from cvtutor.train import measure_phases


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for name, cfg in (("fast", M.Config.fast()), ("full", M.Config.full())):
            cfg = cfg.replace(device=device)
            sec, _ = timed(lambda c=cfg: M.make_faces(c, 0), device)
            data = M.make_faces(cfg, 0)
            print(f"{device} {name}: {len(data['image']) / sec:,.0f} faces/s")
            teacher = M.train_judges(cfg.replace(steps_nets=1), data["factors"])["teacher"]
            with measure_phases(steps=args.steps, warmup=2) as records:
                for variant in cfg.variants:
                    M.train_daae(cfg, data, teacher, variant)
            total = print_phases(records, cfg.batch_size, 16)
            extra = 1 if cfg.heldout else 0
            per_variant = total / max(len(cfg.variants), 1)
            print(f"  DAAE fit time of run(): {total * len(cfg.seeds) + extra * per_variant:.0f} s"
                  f" for {len(cfg.seeds)} seed(s)")


if __name__ == "__main__":
    main()
