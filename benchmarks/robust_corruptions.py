"""E04 robust_corruptions throughput: images per second of the exact clipped l2 projection
(footnote 3), of adversarial-noise sampling (Eq. 2), of one ANT classifier step with its
generator step (Eq. 3) and of the eps* line search (Eq. 4), on the CPU and on CUDA when present.

    python benchmarks/robust_corruptions.py
"""

from __future__ import annotations

import torch
from _timing import timed

from cvtutor.data.imageclass.sets import ImageSet
from cvtutor.papers import robust_corruptions as R


def bench(device: str, batch: int = 128) -> None:
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(batch, 1, 16, 16, generator=g, device=device)
    y = torch.randint(0, 10, (batch,), generator=g, device=device)
    d = torch.randn(x.shape, generator=g, device=device)
    cfg = R.Config.fast().replace(ant_steps=2, restart_steps=0, save_every=1)  # no restart cost
    clf = R.make_classifier(cfg).to(device).eval()
    gen = R.NoiseGenerator(1, cfg.gen_hidden).to(device)
    train = ImageSet(x, y, tuple(str(i) for i in range(10)))
    cases = {
        "projection (footnote 3)": lambda: R.project_l2(x, d, cfg.eps),
        "adversarial noise (Eq. 2)": lambda: R.adversarial_noise(gen, x, cfg.eps),
        "ANT, 2 steps (Eq. 3)": lambda: R.train_ant(clf, train, cfg, 0),
        "line search (Eq. 4)": lambda: R.min_perturbation(clf, x, y, d, 16.0, cfg.n_grid,
                                                         cfg.n_bisect),
    }
    for name, fn in cases.items():
        seconds, peak = timed(fn, device, cpu_time=True)
        n = batch * (cfg.ant_steps if name.startswith("ANT") else 1)
        print(f"{device:5s} {name:28s} {n / seconds:12.0f} images/s   peak {peak:7.1f} MiB")


if __name__ == "__main__":
    torch.set_num_threads(1)
    bench("cpu")
    if torch.cuda.is_available():
        bench("cuda")
