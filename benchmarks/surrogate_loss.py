"""UniLoss (E17) throughput: surrogate evaluations (comparisons -> anchors -> IDW -> backward)
per second for the three refactored metrics, on the CPU and on CUDA when present.

    python benchmarks/surrogate_loss.py
"""

from __future__ import annotations

import time

import torch

from cvtutor.papers import surrogate_loss as U


def _cases(device):
    g = torch.Generator(device=device).manual_seed(0)
    s_acc = torch.randn(128, 10, generator=g, device=device)
    y_acc = torch.randint(0, 10, (128,), generator=g, device=device)
    s_ap = torch.randn(128, generator=g, device=device)
    y_ap = (torch.rand(128, generator=g, device=device) < 0.1).long()
    y_ap[0] = 1
    hm = torch.randn(32, 1, 8, 8, generator=g, device=device)
    uv = torch.rand(32, 2, generator=g, device=device) * 32
    idx, ok = U.positive_pixels(uv, torch.full((32,), 4.0, device=device), 8, 4.0, 25)
    return {
        "accuracy (128 x 9 binaries)": lambda s: U.uniloss(U.accuracy_comparisons(s, y_acc),
                                                         U.accuracy_g, fraction=0.2),
        "AP (128 images)": lambda s: U.uniloss(U.ap_comparisons(s, y_ap), U.ap_g),
        "PCKh (32 heatmaps 8 x 8)": lambda s: _pck(s, idx, ok),
    }, {"accuracy (128 x 9 binaries)": s_acc, "AP (128 images)": s_ap,
        "PCKh (32 heatmaps 8 x 8)": hm.flatten(1)}


def _pck(s, idx, ok):
    c, valid = U.pck_comparisons(s, idx, ok)
    return U.uniloss(c, lambda a: U.pck_g(a, valid), valid)


def bench(device: str, reps: int = 30) -> None:
    fns, inputs = _cases(device)
    for name, fn in fns.items():
        x = inputs[name].clone().requires_grad_(True)
        fn(x).backward()  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn(x).backward()
        if device == "cuda":
            torch.cuda.synchronize()
        print(f"{device:5s} {name:30s} {reps / (time.perf_counter() - t0):8.1f} surrogates/s")


if __name__ == "__main__":
    torch.set_num_threads(1)
    bench("cpu")
    if torch.cuda.is_available():
        bench("cuda")
