"""DSA pruning (E35): training images per second of a dense step and of a DSA step (batched
bisection for every group, sampled straight-through masks, masked forward and backward) for the
fast profile's plain CNN (16 px digits) and the full profile's ResNet-20 (32 px), and the time of
one ADMM update (Eq. 8, with its 50 z-steps); CPU and CUDA when present.

Run: ``OMP_NUM_THREADS=1 python benchmarks/dsa_pruning.py [--steps 5]``. CPU rates are per CPU
second of this process (``time.process_time``); CUDA rates are wall-clock after a synchronise.
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch
import torch.nn.functional as F

from cvtutor.papers import dsa_pruning as P
from _timing import timed  # noqa: E402  (benchmarks/_timing.py, beside this script)


def rates(device: str, steps: int, batch: int) -> list[dict]:
    rows = []
    for profile, cfg, c_in, hw in (("fast", P.Config.fast(), 1, 16),
                                   ("full", P.Config.full(), 3, 32)):
        net = P.PrunableNet(cfg.spec(c_in, 10)).to(device)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        x = torch.rand(batch, c_in, hw, hw, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        alpha = torch.full((net.n_groups,), 0.7, device=device)
        gen = torch.Generator(device=device).manual_seed(0)

        def step(dsa: bool):
            for _ in range(steps):
                masks = P.group_masks(net, alpha, 1.0, gen)[0] if dsa else None
                loss = F.cross_entropy(net(x, masks), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

        for name, dsa in (("dense", False), ("DSA masked", True)):
            dt, _ = timed(lambda dsa=dsa: step(dsa), device, cpu_time=True)
            rows.append({"device": device, "profile": profile, "model": cfg.model, "step": name,
                         "train images/s": steps * batch / dt})
        fa, fb = P.budget_model(net.spec, hw)
        f0 = float(fa.sum() + fb.sum())
        fa, fb = (fa / f0).to(device), (fb / f0).to(device)
        st = P.AdmmState.init(net.n_groups, 5.0, device)
        g = torch.zeros(net.n_groups, dtype=torch.float64, device=device)
        dt, _ = timed(lambda: [P.admm_update(st, g, fa, fb, 0.5, cfg) for _ in range(steps)],
                      device, cpu_time=True)
        rows.append({"device": device, "profile": profile, "model": cfg.model,
                     "step": "ADMM update", "ms per update": 1e3 * dt / steps})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    rows = rates("cpu", args.steps, args.batch)
    if torch.cuda.is_available():
        rows += rates("cuda", 4 * args.steps, 2 * args.batch)
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.1f"))


if __name__ == "__main__":
    main()
