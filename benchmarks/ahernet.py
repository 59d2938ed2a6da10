"""AherNet speed: Algorithm 1 iterations per second (the four passes: L_reg, L_cls + L_prop on the
untrimmed set, the generators' and the ConvNet's updates on synthetic moments) and detection
(s_f, decoding, 1-D NMS) videos per second, for the fast and full layouts, on the CPU (and CUDA
when present). Run: ``python benchmarks/ahernet.py [--steps 20]``."""

from __future__ import annotations

import argparse

import pandas as pd
import torch
from _timing import timed

from cvtutor.papers import ahernet as A


def bench(device: str, profile: str, steps: int) -> list[dict]:
    cfg = getattr(A.Config, profile)().replace(device=device, steps=steps, pretrain_steps=0)
    if profile == "full" and not device.startswith("cuda"):
        cfg = cfg.replace(videos_a=200, moments_b=400, videos_b_train=50, videos_test=50)
    data = A.make_data(cfg, 0)
    rows = []
    dt, _ = timed(lambda: A.train_ahernet(cfg, data, 0, "AherNet"), device)
    rows.append({"what": f"Algorithm 1 iterations (batch {cfg.batch})", "items": steps, "seconds": dt})
    net = A.train_ahernet(cfg.replace(steps=1), data, 0, "AherNet")[0]
    x = data["B_test"]["features"]
    dt, _ = timed(lambda: A.detect(net, x, nms=cfg.nms), device)
    rows.append({"what": "videos detected (s_f, Eq. 5, NMS)", "items": len(x), "seconds": dt})
    for r in rows:
        r.update(device=device, profile=profile, items_per_s=round(r["items"] / r["seconds"], 1))
        r["seconds"] = round(r["seconds"], 4)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [r for d in devices for p in ("fast", "full") for r in bench(d, p, args.steps)]
    print(pd.DataFrame(rows)[["device", "profile", "what", "items", "seconds", "items_per_s"]].to_string(index=False))


if __name__ == "__main__":
    main()
