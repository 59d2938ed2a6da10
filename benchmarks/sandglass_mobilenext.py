"""MobileNeXt (E40): training images per second of MobileNetV2 and MobileNeXt (the fast profile's
three-stage nets at width 0.35 and the full profile's eight-stage Table 2 nets at widths 0.35 and
1.0, 32 px), INT8 inference images per second (CPU), CPU and CUDA when present.

Run: ``OMP_NUM_THREADS=1 python benchmarks/sandglass_mobilenext.py [--steps 5]``. CPU rates are
per CPU second of this process (``time.process_time``); CUDA rates are wall-clock after a
synchronise. Depthwise convolutions are memory-bound on one CPU thread: expect low rates.
"""

from __future__ import annotations

import argparse
import warnings

import pandas as pd
import torch
import torch.nn.functional as F

from cvtutor.papers import sandglass_mobilenext as P
from _timing import timed  # noqa: E402  (benchmarks/_timing.py, beside this script)


def train_rates(device: str, steps: int, batch: int) -> list[dict]:
    """Forward + backward + SGD step, ``steps`` batches of ``batch`` 32-px images per timed call."""
    rows = []
    settings = [("fast", P.Config.fast(), 0.35), ("full", P.Config.full(), 0.35),
                ("full", P.Config.full(), 1.0)]
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 16, (batch,), device=device)
    for profile, cfg, w in settings:
        for fam in ("MobileNetV2", "MobileNeXt"):
            model = P.build(fam, w, 16, cfg).to(device)
            opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

            def run(model=model, opt=opt):
                for _ in range(steps):
                    loss = F.cross_entropy(model(x), y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()

            dt, _ = timed(run, device, cpu_time=True)
            rows.append({"device": device, "profile": profile, "model": f"{fam}-{w}",
                         "train images/s": steps * batch / dt})
    return rows


def int8_rates(batch: int, reps: int) -> list[dict]:
    """INT8 (FX, x86 backend) against FP32 inference of the fast nets, CPU only."""
    rows = []
    cfg = P.Config.fast()
    x = torch.rand(batch, 3, 32, 32)
    for fam in ("MobileNetV2", "MobileNeXt"):
        net = P.build(fam, 0.35, 16, cfg).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q = P.quantize_int8(net, x)
        for name, m in (("fp32", net), ("int8", q)):
            def run(m=m):
                with torch.no_grad():
                    for _ in range(reps):
                        m(x)

            dt, _ = timed(run, "cpu", cpu_time=True)
            rows.append({"device": "cpu", "profile": "fast", "model": f"{fam}-0.35 {name}",
                         "infer images/s": reps * batch / dt})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    rows = train_rates("cpu", args.steps, args.batch) + int8_rates(args.batch, args.steps)
    if torch.cuda.is_available():
        rows += train_rates("cuda", 4 * args.steps, 4 * args.batch)
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.1f"))


if __name__ == "__main__":
    main()
