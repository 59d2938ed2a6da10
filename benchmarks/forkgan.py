"""ForkGAN (E10) throughput: training steps per second of the CycleGAN-style generator ("w/o
Fork-shape") and of ForkGAN (two forks, 2-scale discriminators, D_d) at the ``fast`` and ``full``
sizes, on the CPU and on CUDA when present, the streets generator (unpaired night + day scenes
per second) and the SIFT match count (images per second).

    python benchmarks/forkgan.py [--steps 5]

The ``full`` estimate is ``planned steps x s/step`` summed over the variants of one seed, times
the seeds (``benchmarks/full_profile.py --only forkgan`` measures the whole run).
"""
from __future__ import annotations

import argparse

import torch
from _timing import print_phases, timed

from cvtutor.papers import forkgan as FG
from cvtutor.train import measure_phases


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for name, cfg in (("fast", FG.Config.fast()), ("full", FG.Config.full())):
            cfg = cfg.replace(device=device, n_train=256)
            sec, data = timed(lambda c=cfg: FG.make_data(c, 0), device)
            print(f"{device} {name}: streets {2 * cfg.n_train / sec:,.0f} images/s")
            test = FG.make_test(cfg.replace(n_test=16))
            sec, _ = timed(lambda c=cfg, t=test: [FG.keypoint_matches(a, b, upscale=c.upscale)
                                                  for a, b in zip(t["x"].cpu(), t["y"].cpu())],
                           "cpu")
            print(f"  SIFT matches {16 / sec:,.1f} pairs/s")
            with measure_phases(steps=args.steps, warmup=2) as records:
                for variant in cfg.variants:
                    FG.train_forkgan(cfg, data, variant)
            total = print_phases(records, cfg.batch_size, 24)
            print(f"  GAN fit time of run(): {total * len(cfg.seeds):.0f} s for "
                  f"{len(cfg.seeds)} seed(s)")


if __name__ == "__main__":
    main()
