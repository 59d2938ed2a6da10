"""CPN speed: scenes generated per second, training steps per second (Eq. 3 with the stage-2
RoIAlign classifiers, backward) and test images detected per second (every variant, soft-NMS), for
the fast and full layouts, on the CPU (and CUDA when present). Run: ``python benchmarks/cpnet.py [--n 32]``."""

from __future__ import annotations

import torch
from _timing import rate_table_main, timed, with_rates

from cvtutor.papers import cpnet as C


def bench(device: str, profile: str, n: int) -> list[dict]:
    cfg = getattr(C.Config, profile)().replace(device=device)
    if profile == "full" and not device.startswith("cuda"):
        cfg = cfg.replace(size=64, k=20, k_train=20)  # the full network at a size a CPU finishes
    rows = []
    dt, _ = timed(lambda: C.cpn_scenes(n, cfg.size, cfg.n_classes, seed=0, device=device), device)
    sc = C.cpn_scenes(n, cfg.size, cfg.n_classes, seed=0, device=device)
    rows.append({"what": f"scenes generated ({cfg.size} px)", "items": n, "seconds": dt})
    model = C.make_model(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    b = min(cfg.batch, n)
    images = sc.render(torch.arange(b, device=device))
    g = torch.Generator(device=device).manual_seed(0)

    def step():
        loss = C.cpn_loss(model, model(images), sc.boxes[:b], sc.labels[:b], sc.valid[:b], cfg, g)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    dt, _ = timed(step, device)
    rows.append({"what": f"training steps (batch {b}, Eq. 3)", "items": 1, "seconds": dt})
    dt, _ = timed(lambda: C.detect(model, images, cfg), device)
    rows.append({"what": f"images detected (K = {cfg.k}, 5 variants)", "items": b, "seconds": dt})
    return with_rates(rows, device, profile, digits=2)


if __name__ == "__main__":
    rate_table_main(bench, __doc__, "--n", 32)
