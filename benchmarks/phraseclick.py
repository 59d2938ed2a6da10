"""PhraseClick (E25) speed: interactive-segmentation targets generated per second, training
samples per second (5-channel U-Net + bi-LSTM + attribute attention, simulated clicks) and
protocol evaluations (one interaction on every target: predict + next click) per second, for the
fast and full sizes, on the CPU (and CUDA when present).
Run: ``OMP_NUM_THREADS=1 python benchmarks/phraseclick.py [--steps 20]``."""
from __future__ import annotations

import argparse

import pandas as pd
import torch
from _timing import timed

from cvtutor.papers import phraseclick as P


def bench(device: str, profile: str, steps: int) -> dict:
    cfg = getattr(P.Config, profile)().replace(steps=steps, device=device)
    n_scenes = min(cfg.n_scenes, 500)
    gen_s, _ = timed(lambda: P.make_targets(n_scenes, cfg.size, cfg.per_scene, device=device),
                     device, cpu_time=True)
    data = P.make_targets(n_scenes, cfg.size, cfg.per_scene, device=device)
    train_s, peak = timed(lambda: P.train(cfg, data, 0, progress=False), device, cpu_time=True)
    model, _ = P.train(cfg.replace(steps=1), data, 0, progress=False)
    test = data.subset(slice(0, 100))
    eval_s, _ = timed(lambda: P.interaction_curve(model, test, 1, False, cfg.truncate), device,
                      cpu_time=True)
    return {"device": device, "profile": profile,
            "targets_per_s": round(n_scenes * cfg.per_scene / gen_s, 1),
            "train_samples_per_s": round(steps * cfg.batch / train_s, 1),
            "s_per_step": round(train_s / steps, 4),
            "protocol_targets_per_s": round(len(test) / eval_s, 1), "peak_MiB": round(peak, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per size")
    ap.add_argument("--profiles", nargs="+", default=["fast", "full"], choices=["fast", "full"])
    opts = ap.parse_args()
    cuda = torch.cuda.is_available()
    if not cuda:
        torch.set_num_threads(1)
    table = pd.DataFrame([bench(dev, prof, opts.steps) for dev in ("cpu", "cuda")[: 1 + cuda]
                          for prof in opts.profiles])
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
