"""Part-aware 3-D pose NAS (E42) speed: stick figures rendered per second, search steps per second
(Eq. 5: an α step on a val batch, first or second order, plus a w step) and retraining steps per
second of the derived net, at the fast and full layouts (full shrunk to 32 px on the CPU), on the
CPU and on CUDA when present. Run: ``python benchmarks/part_aware_3d_pose_nas.py``."""

from __future__ import annotations

import pandas as pd
import torch
from _timing import timed

from cvtutor.papers import part_aware_3d_pose_nas as P


def bench(device: str, profile: str) -> list[dict]:
    cfg = getattr(P.Config, profile)().replace(device=device)
    if profile == "full" and not device.startswith("cuda"):
        cfg = cfg.replace(image_size=32, depth=8)  # full's cells and ops at a size a CPU finishes
    rows = []
    n = 256
    dt, _ = timed(lambda: P.stick_figures(n, cfg.image_size), "cpu", cpu_time=True)
    rows.append({"what": f"stick figures ({cfg.image_size} px)", "items": n, "seconds": dt})
    data = {k: {"image": v["image"].to(device), "joints": v["joints"].to(device)}
            for k, v in P.make_data(cfg.replace(n_train=cfg.search_batch, n_val=cfg.search_batch,
                                                n_test=8), 0).items()}
    steps = 3
    c = cfg.replace(search_steps=steps, warmup_steps=0)
    dt, peak = timed(lambda: P.search(c, data, 2, 0), device, cpu_time=True)
    rows.append({"what": f"search steps (ξ = {cfg.xi:g}, batch {cfg.search_batch})",
                 "items": steps, "seconds": dt, "peak_mib": peak})
    g = P.make_net(cfg, 2).genotypes()
    c = cfg.replace(retrain_steps=steps, batch=cfg.search_batch)
    dt, peak = timed(lambda: P.train_net(c, P.make_net(cfg, 2, g), data, 0), device,
                     cpu_time=True)
    rows.append({"what": f"retrain steps (batch {cfg.search_batch})", "items": steps,
                 "seconds": dt, "peak_mib": peak})
    for r in rows:
        r.update(device=device, profile=profile, items_per_s=round(r["items"] / r["seconds"], 2))
        r["seconds"] = round(r["seconds"], 3)
    return rows


def main() -> None:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [r for d in devices for p in ("fast", "full") for r in bench(d, p)]
    print(pd.DataFrame(rows)[["device", "profile", "what", "items", "seconds", "items_per_s"]]
          .to_string(index=False))


if __name__ == "__main__":
    main()
