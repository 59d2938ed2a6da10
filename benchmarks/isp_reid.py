"""ISP speed: pedestrians generated per second, training throughput (images per second) of the
baseline, "+extra" and ISP for one epoch, and the cascaded clustering in identities per second,
on the CPU (and CUDA when present; the ``full`` profile's sizes only there).
Run: ``OMP_NUM_THREADS=1 python benchmarks/isp_reid.py``."""
from __future__ import annotations

import pandas as pd
import torch
from _timing import timed

from cvtutor.papers import isp_reid as I


def bench(device: str, profile: str) -> list[dict]:
    cfg = getattr(I.Config, profile)().replace(epochs=1, device=device)
    gen_s, _ = timed(lambda: I.make_data(cfg, 0, device), device, cpu_time=True)
    data = I.make_data(cfg, 0, device)
    n_images = len(data["train"]) + len(data["test"]) + len(data["occluded"])
    rows = [{"device": device, "profile": profile, "what": "pedestrians generated",
             "items_per_s": round(n_images / gen_s, 1)}]
    seen = cfg.steps_per_epoch * cfg.p * cfg.k
    for method in I.METHODS:
        s, peak = timed(lambda m=method: I.train(m, data, cfg, 0), device, cpu_time=True)
        rows.append({"device": device, "profile": profile, "what": f"{method} training images",
                     "items_per_s": round(seen / s, 1), "peak_MiB": round(peak, 1)})
    model = I.ISPNet(cfg.n_ids, cfg.n_parts, cfg.width, cfg.blocks, cfg.last_stride).to(device)
    m_g = I.feature_maps(model, data["train"].image)["m_g"]
    s, _ = timed(lambda: I.pseudo_labels(m_g, data["train"].pid, cfg.n_parts), device,
                 cpu_time=True)
    rows.append({"device": device, "profile": profile, "what": "identities clustered",
                 "items_per_s": round(cfg.n_ids / s, 1)})
    return rows


def main() -> None:
    cuda = torch.cuda.is_available()
    if not cuda:
        torch.set_num_threads(1)
    runs = [("cpu", "fast")] + ([("cuda", "fast"), ("cuda", "full")] if cuda else [])
    print(pd.DataFrame([r for d, p in runs for r in bench(d, p)]).to_string(index=False))


if __name__ == "__main__":
    main()
