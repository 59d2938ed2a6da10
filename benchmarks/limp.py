"""LIMP (E02) throughput: training steps per second of each stage of the staged schedule
(reconstruction, + local Euclidean prior, + geodesic prior) at the ``fast`` and ``full`` sizes,
on the CPU and on CUDA when present, and the all-pairs heat-method geodesics (meshes per second).

    python benchmarks/limp.py [--steps 5]

The ``full`` estimate of the notebook header is ``planned steps x s/step`` of every stage, summed
over the three models and the seeds of ``run(Config.full())``.
"""

from __future__ import annotations

import argparse
import math

import torch
from _timing import timed

from cvtutor.papers import limp as L
from cvtutor.train import measure_phases


def stage_rates(config: L.Config, device: str, steps: int) -> dict[str, float]:
    """s/step of each stage: training starts at the stage's first step (``start``)."""
    d = L.make_data(config, device)
    out = {}
    starts = {"recon": 0, "euclid": math.ceil(config.warmup * config.steps),
              "geo": math.ceil(config.euclid_until * config.steps)}
    name = {"recon": "VAE", "euclid": "Ours Euc", "geo": "Ours Geo"}
    for stage, s0 in starts.items():
        model, opt = L.new_model(config, d)
        with measure_phases(steps=steps, warmup=2) as recs:
            L.train_model(config, d, name[stage], start=(model, opt, s0))
        out[stage] = recs[0]["s_per_step"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for label, cfg in (("fast", L.Config.fast()), ("full", L.Config.full())):
            d = L.make_data(cfg, device)
            X = d["verts"][:8]
            sec, _ = timed(lambda: L.geodesic_matrix(X, d["faces"]), device)
            print(f"{device} {label}: heat geodesics {len(X) / sec:,.1f} meshes/s "
                  f"({X.shape[1]} vertices, all pairs)")
            r = stage_rates(cfg, device, args.steps)
            for k, v in r.items():
                print(f"  stage {k:<7} {v * 1e3:8.1f} ms/step")
            w, e = math.ceil(cfg.warmup * cfg.steps), math.ceil(cfg.euclid_until * cfg.steps)
            per_seed = w * r["recon"] + (cfg.steps - w) * r["recon"]  # warm-up once, then VAE
            per_seed += (e - w) * 2 * r["euclid"] + (cfg.steps - e) * (r["euclid"] + r["geo"])
            print(f"  fit time of run(): {per_seed * len(cfg.seeds):.0f} s for "
                  f"{len(cfg.seeds)} seed(s)")


if __name__ == "__main__":
    main()
