"""Deep Reflectance Volumes (E18) throughput: GT flash photographs rendered per second, and
training steps per second (decode the volume, march the rays, Eq. 12, backward) at the fast and
full sizes, on the CPU and on CUDA when present, with peak memory.

    python benchmarks/deep_reflectance_volumes.py
"""
from __future__ import annotations

import torch
from _timing import timed

from cvtutor.data.reflectance import SphereScene, photometric_views
from cvtutor.papers import deep_reflectance_volumes as D


def _step(cfg: D.Config, device: str):
    scene = SphereScene.default(device=device)
    v = photometric_views(scene, 8, cfg.image_size, device=device)
    model = D.ReflectanceVolume("decoder", cfg.code_dim, cfg.width, cfg.resolution, cfg.warp).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    o, d = v["origins"].reshape(-1, 3), v["dirs"].reshape(-1, 3)
    idx = torch.randint(0, o.shape[0], (cfg.rays,), device=device)
    P = v["origins"].shape[1]
    lights = v["lights"][:, None].expand(-1, P, -1).reshape(-1, 3)
    rgb = v["images"].reshape(-1, 3)

    def step():
        vol = model.volume()
        out = D.ray_march(model, vol, o[idx], d[idx], lights[idx], cfg.n_samples, cfg.step,
                          scene.intensity)
        loss = D.drv_loss(out["rgb"], rgb[idx], out["acc"], torch.sigmoid(vol[0]), 0.01, 0.001)
        opt.zero_grad()
        loss["loss"].backward()
        opt.step()
    return step


def bench(device: str) -> None:
    for name, cfg in (("fast", D.Config.fast()), ("full", D.Config.full())):
        if name == "full" and device == "cpu":
            continue
        n = 40 if name == "fast" else 200
        scene = SphereScene.default(device=device)
        s, mb = timed(lambda: photometric_views(scene, n, cfg.image_size, device=device), device,
                      cpu_time=True)
        print(f"{device:5s} {name}: GT views {cfg.image_size}² {n / s:9.1f} views/s  peak {mb:7.0f} MiB")
        step = _step(cfg, device)
        s, mb = timed(step, device, cpu_time=True)
        print(f"{device:5s} {name}: train step ({cfg.rays} rays × {cfg.n_samples} samples, "
              f"{cfg.resolution}³) {1 / s:7.1f} steps/s  peak {mb:7.0f} MiB")


if __name__ == "__main__":
    torch.set_num_threads(1)
    bench("cpu")
    if torch.cuda.is_available():
        bench("cuda")
