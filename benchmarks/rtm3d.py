"""RTM3D speed: KITTI-like images rendered per second, training steps per second (Eq. 6, backward) of the
tiny (fast) and ResNet-18 (full) keypoint networks with KFPN, LM box solves (Eq. 7) and Deep3DBox solves per
second, on the CPU (and CUDA when present). Run: ``python benchmarks/rtm3d.py [--n 32]``."""

from __future__ import annotations

import torch
from _timing import rate_table_main, timed, with_rates

from cvtutor.papers import rtm3d as R


def bench(device: str, profile: str, n: int) -> list[dict]:
    cfg = getattr(R.Config, profile)().replace(device=device)
    if profile == "full" and not device.startswith("cuda"):
        cfg = cfg.replace(width=192, height=64)  # the full network at a size a CPU finishes
    rows = []
    dt, _ = timed(lambda: R.make_data(cfg, n, 0), "cpu")
    d = R.make_data(cfg, n, 0)
    rows.append({"what": f"images rendered + targets ({cfg.width}×{cfg.height})", "items": n, "seconds": dt})
    net = R.RTM3DNet(cfg.backbone, cfg.net_width, cfg.head_width, True).to(device)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    b = min(cfg.batch, n)
    img = d["image"][:b].to(device)
    tgt = {k: v[:b].to(device) for k, v in d["targets"].items()}

    def step():
        loss = R.rtm3d_loss(net(img), tgt)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    dt, _ = timed(step, device)
    rows.append({"what": f"training steps, {cfg.backbone} + KFPN (batch {b})", "items": b, "seconds": dt})
    obj = R.geometry_objects(cfg.replace(n_geometry=max(n, 8)), 0)
    c = R.corrupt(obj, 2.0, 0.1, 0)
    dt, _ = timed(lambda: R.solve_keypoint_boxes(obj, c["kp"], c["conf"], cfg.lm_iters), "cpu")
    rows.append({"what": f"LM box solves (Eq. 7, {cfg.lm_iters} iterations)", "items": len(obj["T"]), "seconds": dt})
    dt, _ = timed(lambda: R.deep3dbox_translation(c["box2d"], obj["D_hat"], obj["ry_hat"], obj["K"]), "cpu")
    rows.append({"what": "Deep3DBox solves (1024 assignments)", "items": len(obj["T"]), "seconds": dt})
    return with_rates(rows, device, profile)


if __name__ == "__main__":
    rate_table_main(bench, __doc__, "--n", 32)
