"""SIZER (E01) throughput: training steps per second (and samples per second) of ParserNet, FC and
SizerNet at the ``fast`` and ``full`` sizes, on the CPU and on CUDA when present, and the world's
generator (subjects x sizes per second).

    python benchmarks/sizer.py [--steps 5]

The ``full`` estimate of the notebook header is ``planned steps x s/step`` summed over the fit calls
of ``run(Config.full())`` (``benchmarks/full_profile.py --only sizer`` measures it on a GPU).
"""

from __future__ import annotations

import argparse
import time

import torch
from _timing import timed

from cvtutor.papers import sizer as S
from cvtutor.train import measure_phases


def fit_rates(config: S.Config, device: str, steps: int) -> list[dict]:
    """s/step of every fit call of one seed (ParserNet, FC, SizerNet, ablations, f^β)."""
    d = S.make_data(config.replace(seeds=(0,)), 0, device)
    with measure_phases(steps=steps, warmup=2) as records:
        S.train_parser(config, d, "upper", "parser")
        S.train_parser(config, d, "upper", "fc")
        S.train_sizer(config, d, "upper")
        S.train_beta(config, d)
    return records


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for name, cfg in (("fast", S.Config.fast()), ("full", S.Config.full())):
            world = cfg.world()
            sec, _ = timed(
                lambda w=world, c=cfg, dv=device: w.sample(c.n_subjects, seed=0, device=dv), device
            )
            print(
                f"{device} {name}: generator {cfg.n_subjects * 4 / sec:,.0f} samples/s "
                f"({world.n_verts} vertices)"
            )
            t0 = time.perf_counter()
            recs = fit_rates(cfg, device, args.steps)
            for r in recs:
                print(
                    f"  {r['desc']:<14} {r['s_per_step'] * 1e3:8.1f} ms/step "
                    f"{cfg.batch_size / r['s_per_step']:9.0f} samples/s"
                )
            per_seed = 0.0
            by = {r["desc"]: r["s_per_step"] for r in recs}
            # one seed of run(): 2 ParserNets + 2 ablation ParserNets + the body ParserNet
            # (smaller: bounded by one garment ParserNet), 2 FCs, 2 SizerNets, f^β
            per_seed += 5 * cfg.steps * by["parser upper"] + 2 * cfg.steps * by["fc upper"]
            per_seed += 2 * cfg.sizer_steps * by["sizer upper"] + cfg.beta_steps * by["beta"]
            print(
                f"  fit time of run(): {per_seed * len(cfg.seeds):.0f} s "
                f"for {len(cfg.seeds)} seed(s) "
                f"(measured in {time.perf_counter() - t0:.0f} s)"
            )


if __name__ == "__main__":
    main()
