"""InfoGround speed: captioned region sets generated per second, and training steps of the
contrastive critic (L_img + L_lang with re-ranked negatives) in image-caption pairs per second,
for the fast and full sizes, on the CPU (and CUDA when present).
Run: ``OMP_NUM_THREADS=1 python benchmarks/info_ground.py [--steps 20]``."""
from __future__ import annotations

import argparse

import pandas as pd
import torch
from _timing import timed

from cvtutor.papers import info_ground as I


def bench(device: str, profile: str, steps: int) -> dict:
    cfg = getattr(I.Config, profile)().replace(steps=steps, device=device, n_val=100, n_test=100)
    n = min(cfg.n_train, 3000)
    gen_s, _ = timed(lambda: I.make_data(cfg.replace(n_train=n), "train", 0, device), device,
                     cpu_time=True)
    data = I.make_data(cfg.replace(n_train=n), "train", 0, device)
    train_s, peak = timed(lambda: I.train_model(data, cfg, "rerank", True, seed=0), device,
                          cpu_time=True)
    return {"device": device, "profile": profile, "scenes_per_s": round(n / gen_s, 1),
            "pairs_per_s": round(steps * cfg.batch / train_s, 1),
            "s_per_step": round(train_s / steps, 4), "peak_MiB": round(peak, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if devices == ["cpu"]:
        torch.set_num_threads(1)
    rows = [bench(d, p, args.steps) for d in devices for p in ("fast", "full")]
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
