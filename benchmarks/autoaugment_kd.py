"""AutoAugment-KD (E36): augmented images per second in the destructive space, KD-loss rows per
second, and training images per second of a student with RandAugment alone and with the KD loss
(fast sizes: SmallCNN on 16 px digits; full sizes: ResNet-8 student, ResNet-20 teacher, 32 px) on
the CPU, and on CUDA when present.

Run: ``OMP_NUM_THREADS=1 python benchmarks/autoaugment_kd.py [--n 2048]``. CPU rates are per CPU
second of this process (``time.process_time``); CUDA rates are wall-clock after a synchronise.
The last column of the training rows, ms per step, is what ``full``'s estimate in the notebook
header multiplies by its ~56,000 steps.
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from cvtutor.data.imageclass import augment
from cvtutor.papers import autoaugment_kd as K
from _timing import timed  # noqa: E402  (benchmarks/_timing.py, beside this script)


def augmentation(device: str, n: int) -> list[dict]:
    rows = []
    for size, channels in ((16, 1), (32, 3)):
        x = torch.rand(n, channels, size, size, device=device)
        for m in (3, 7):
            dt = timed(lambda x=x, m=m: augment.destructive_rand_augment(x, 2, m, seed=0), device,
                       cpu_time=True)[0]
            rows.append({"device": device, "what": f"destructive RandAugment M={m}",
                         "size": size, "per_s": round(n / dt), "ms_per_step": None})
    return rows


def kd_loss_rate(device: str, n: int) -> list[dict]:
    s, t = torch.randn(n, 100, device=device), torch.randn(n, 100, device=device)
    y = torch.randint(0, 100, (n,), device=device)
    dt = timed(lambda: K.kd_loss(s, t, y, 1.0, 5, 2.0)["loss"], device, cpu_time=True)[0]
    return [{"device": device, "what": "kd_loss (C = 100, K = 5)", "size": None,
             "per_s": round(n / dt), "ms_per_step": None}]


def training(device: str, steps: int) -> list[dict]:
    rows = []
    for name, cfg in (("fast", K.Config.fast()), ("full", K.Config.full())):
        c = cfg.replace(device=device)
        ch = 1 if c.data == "digits" else 3
        x = torch.rand(c.batch_size * steps, ch, c.size, c.size, device=device)
        y = torch.randint(0, 10, (len(x),), device=device)
        data = K.sets.ImageSet(x, y, tuple(str(i) for i in range(10)))
        teacher = K.make_model(c.teacher, ch, 10, c.teacher_width, c.size).to(device)
        for method, t in (("RA", None), ("RA+KD", teacher)):
            one = c.replace(epochs=1)
            dt = timed(lambda t=t, one=one, d=data: K.train_model(d, one, 0, 5, t), device,
                       cpu_time=True)[0]
            rows.append({"device": device, "what": f"train {name} student, {method}",
                         "size": c.size, "per_s": round(len(x) / dt),
                         "ms_per_step": round(1000 * dt / steps, 2)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048, help="images per timed call (x8 on CUDA)")
    ap.add_argument("--steps", type=int, default=10, help="training steps per timed call")
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for d in devices:
        n = args.n * (8 if d == "cuda" else 1)
        rows += augmentation(d, n) + kd_loss_rate(d, n) + training(d, args.steps)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
