"""ExchNet speed: fine-grained critters generated per second, training throughput of one outer
iteration of the alternation (Θ step + V step + anchors) in images per second for ADSH and
ExchNet, and Table 1's search in queries per second, on the CPU (and CUDA when present).
Run: ``OMP_NUM_THREADS=1 python benchmarks/exchnet.py``."""
from __future__ import annotations

import pandas as pd
import torch
from _timing import timed

from cvtutor.papers import exchnet as X


def bench(device: str, profile: str) -> list[dict]:
    cfg = getattr(X.Config, profile)().replace(outer=1, device=device, per_class=40,
                                               query_per_class=10)
    gen_s, _ = timed(lambda: X.make_data(cfg, 0, device), device, cpu_time=True)
    data = X.make_data(cfg, 0, device)
    rows = [{"device": device, "profile": profile, "what": "critters generated",
             "items_per_s": round((len(data.db) + len(data.query)) / gen_s, 1)}]
    seen = cfg.epochs * min(cfg.sample, len(data.db)) // cfg.batch * cfg.batch
    for variant in ("adsh", "exchnet"):
        s, peak = timed(lambda v=variant: X.train_hashing(data, cfg, cfg.bits[0], v), device,
                        cpu_time=True)
        rows.append({"device": device, "profile": profile, "what": f"{variant} training images",
                     "items_per_s": round(seen / s, 1), "peak_MiB": round(peak, 1)})
    return rows


def main() -> None:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if devices == ["cpu"]:
        torch.set_num_threads(1)
    rows = [r for d in devices for p in ("fast", "full") for r in bench(d, p)]
    cfg = X.Config.fast()
    t1 = X.table1(cfg)
    print(pd.DataFrame(rows).to_string(index=False))
    print(t1.assign(queries_per_s=cfg.ann_queries / t1["seconds"]).to_string(index=False))


if __name__ == "__main__":
    main()
