"""TSIT (E13) throughput: G/D training steps per second of the style-transfer generators (TSIT,
AdaIN-only, SPADE-style, w/o SS) and of the semantic-synthesis ones (pix2pix, SPADE-style, TSIT;
Table 2) at the ``fast`` and ``full`` sizes, on the CPU and on CUDA when present, and the
landscapes generator (content + two style renderings per second).

    python benchmarks/tsit.py [--steps 5]

The ``full`` estimate is ``planned steps x s/step`` summed over the fit calls of one seed, times
the seeds (``benchmarks/full_profile.py --only tsit`` measures it on a GPU).
"""
from __future__ import annotations

import argparse

import torch
from _timing import print_phases, timed

from cvtutor.papers import tsit as T
from cvtutor.train import measure_phases


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for name, cfg in (("fast", T.Config.fast()), ("full", T.Config.full())):
            cfg = cfg.replace(device=device)
            n = 256
            sec, _ = timed(lambda c=cfg: T.make_data(c, n, 0), device)
            print(f"{device} {name}: landscapes {n / sec:,.0f} (content, 2 styles)/s")
            data = T.make_data(cfg, max(4 * cfg.batch_size, 64), 0)
            percept = T.train_judges(cfg.replace(steps_seg=1, steps_nets=1))["percept"]
            with measure_phases(steps=args.steps, warmup=2) as records:
                for variant in cfg.variants:
                    T.train_tsit(cfg, data, percept, variant)
                if cfg.table2:
                    sem = T.make_semantic_data(cfg, max(4 * cfg.batch_size, 64), 0)
                    for method in T.SEMANTIC_METHODS:
                        T.train_semantic(cfg, sem, percept, method)
            total = print_phases(records, cfg.batch_size, 22)
            print(f"  GAN fit time of run(): {total * len(cfg.seeds):.0f} s for "
                  f"{len(cfg.seeds)} seed(s)")


if __name__ == "__main__":
    main()
